/*
 * attention.c - multi-head scaled dot-product attention over tokens:
 * inputs Q, K, V [T, D] (the outputs of three dense layers), heads H
 * dividing D; head h uses features [h*D/H, (h+1)*D/H). Output [T, D], the
 * heads concatenated (an output projection is a dense layer after it):
 *   P_h = softmax(Q_h K_h^T / sqrt(D/H)),  O_h = P_h V_h.
 * Stash: Q, K and V (its inputs). The probabilities P ("NAME.probs", H*T*T
 * values per image) are recomputed from Q and K in backward, bit for bit
 * (recompute_slot), when Q and K are stashed; otherwise P is stashed and
 * the forward pass uses it as quantized. Small GEMMs per image and head,
 * batched over both.
 */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "hot.h"
#include "layer.h"

enum { O_HEADS };

static const sfpw_opt_spec opts[] = {
    {"heads", -1, 1, 256, "attention heads (must divide D)"},
    {NULL, 0, 0, 0, NULL},
};

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    char sa[64], sb[64];
    const sfpw_shape *q = &l->in_shape[0];
    if (q->nd != 2)
        return sfpw_layer_fail(err, cap, "needs TxD inputs (tokens)");
    for (int j = 1; j < 3; j++)
        if (l->in_shape[j].nd != 2 || l->in_shape[j].d[0] != q->d[0] ||
            l->in_shape[j].d[1] != q->d[1])
            return sfpw_layer_fail(err, cap, "Q, K and V differ in shape: %s and %s",
                                   sfpw_shape_str(q, sa, sizeof sa),
                                   sfpw_shape_str(&l->in_shape[j], sb, sizeof sb));
    if (q->d[1] % l->opt[O_HEADS])
        return sfpw_layer_fail(err, cap, "heads=%d does not divide D=%d", l->opt[O_HEADS],
                               q->d[1]);
    const size_t T = (size_t)q->d[0], H = (size_t)l->opt[O_HEADS];
    l->out_shape = *q;
    l->nslots = 1;
    l->slot_n[0] = H * T * T;
    l->slot_role[0] = SFPW_ROLE_PROBS;
    l->slot_name[0] = "probs";
    l->scratch = H * T * T; /* dP */
    return 0;
}

SFPW_HOT
static void softmax_rows(float *s, int T)
{
    for (int i = 0; i < T; i++) {
        float *r = s + (size_t)i * T, m = r[0];
        for (int j = 1; j < T; j++)
            m = r[j] > m ? r[j] : m;
        for (int j = 0; j < T; j++)
            r[j] = sfpw_exp(r[j] - m);
        float inv = (float)(1.0 / sfpw_sum(r, (size_t)T));
        for (int j = 0; j < T; j++)
            r[j] *= inv;
    }
}

/* dS = P (dP - rowsum(dP P)), in place of dP */
SFPW_HOT
static void softmax_bwd_rows(const float *P, float *d, int T)
{
    for (int i = 0; i < T; i++) {
        const float *p = P + (size_t)i * T;
        float *r = d + (size_t)i * T;
        float dot = (float)sfpw_sum_dydev(r, p, (size_t)T, 0.0);
        for (int j = 0; j < T; j++)
            r[j] = p[j] * (r[j] - dot);
    }
}

/* The probabilities into slot 0 from Q and K: forward and recompute_slot. */
static void probs(const sfpw_layer *l, sfpw_run *c, int s)
{
    const int T = l->in_shape[0].d[0], D = l->in_shape[0].d[1], H = l->opt[O_HEADS];
    const int dh = D / H;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t img = (size_t)T * D, pimg = (size_t)H * T * T;
    (void)s;
    for (int r = 0; r < c->rows; r++)
        for (int h = 0; h < H; h++) {
            float *P = c->slot[0] + r * pimg + (size_t)h * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, scale,
                        c->x[0] + r * img + h * dh, D, c->x[1] + r * img + h * dh, D, 0.0f,
                        P, T);
            softmax_rows(P, T);
        }
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const int T = l->in_shape[0].d[0], D = l->in_shape[0].d[1], H = l->opt[O_HEADS];
    const int dh = D / H;
    const size_t img = (size_t)T * D, pimg = (size_t)H * T * T;
    probs(l, c, 0);
    int rc = c->slot_ready(c, 0);
    if (rc)
        return rc;
    for (int r = 0; r < c->rows; r++)
        for (int h = 0; h < H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, 1.0f,
                        c->slot[0] + r * pimg + (size_t)h * T * T, T,
                        c->x[2] + r * img + h * dh, D, 0.0f, c->y + r * img + h * dh, D);
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    const int T = l->in_shape[0].d[0], D = l->in_shape[0].d[1], H = l->opt[O_HEADS];
    const int dh = D / H;
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t img = (size_t)T * D, pimg = (size_t)H * T * T;
    float *dP = c->scratch;
    /* dP_h = dO_h V_h^T */
    for (int r = 0; r < c->rows; r++)
        for (int h = 0; h < H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, 1.0f,
                        c->dy + r * img + h * dh, D, c->x[2] + r * img + h * dh, D, 0.0f,
                        dP + r * pimg + (size_t)h * T * T, T);
    c->slot_grad(c, 0, dP);
    for (int r = 0; r < c->rows; r++)
        for (int h = 0; h < H; h++) {
            const float *P = c->slot[0] + r * pimg + (size_t)h * T * T;
            float *dS = dP + r * pimg + (size_t)h * T * T;
            softmax_bwd_rows(P, dS, T);
            const size_t o = r * img + h * dh;
            /* in input order, so that one value given twice accumulates */
            if (c->dx[0] && r < c->dx_rows[0]) /* dQ = scale dS K */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, dh, T, scale, dS, T,
                            c->x[1] + o, D, c->dx_add[0] ? 1.0f : 0.0f, c->dx[0] + o, D);
            if (c->dx[1] && r < c->dx_rows[1]) /* dK = scale dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, scale, dS, T,
                            c->x[0] + o, D, c->dx_add[1] ? 1.0f : 0.0f, c->dx[1] + o, D);
            if (c->dx[2] && r < c->dx_rows[2]) /* dV = P^T dO */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, dh, T, 1.0f, P, T,
                            c->dy + o, D, c->dx_add[2] ? 1.0f : 0.0f, c->dx[2] + o, D);
        }
}

const sfpw_layer_ops sfpw_layer_attention = {
    .kind = "attention",
    .help = "multi-head scaled dot-product attention of Q, K, V",
    .min_in = 3, .max_in = 3, .opts = opts,
    .needs = SFPW_NEEDS_IN0 | SFPW_NEEDS_IN1 | SFPW_NEEDS_IN2,
    .setup = setup, .forward = forward, .backward = backward,
    .recompute_slot = probs, .out_role = SFPW_ROLE_ATTN_OUT,
};
