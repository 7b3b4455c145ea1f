/*
 * layernorm.c - LayerNorm over the last dimension of [T, D] (or [D]), with
 * learned scale and shift, eps 1e-5.
 *
 * Stash: its INPUT (quantized; the forward pass normalizes the quantized
 * values) and, raw FP32, each token's mean and inverse standard deviation
 * ("NAME.stats", 2T values per image); backward recomputes the normalized
 * values from them.
 */
#include <math.h>

#include "hot.h"
#include "layer.h"

#define EPS 1e-5

static void geometry(const sfpw_layer *l, int *T, int *D)
{
    const sfpw_shape *s = &l->in_shape[0];
    *T = s->nd == 2 ? s->d[0] : 1;
    *D = s->nd == 2 ? s->d[1] : s->d[0];
}

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 2 && s->nd != 1)
        return sfpw_layer_fail(err, cap, "needs a TxD or D input");
    int T, D;
    geometry(l, &T, &D);
    l->out_shape = *s;
    sfpw_setup_norm(l, D, 2 * (size_t)T, 0);
    l->scratch_fixed = 2 * (size_t)D;
    return 0;
}

/* One row: forward and recompute write the same bits. */
static inline void normalize(const float *x, float *y, float m, float is, const float *W,
                             const float *b, int D)
{
    for (int i = 0; i < D; i++)
        y[i] = (x[i] - m) * is * W[i] + b[i];
}

SFPW_HOT
static int forward(const sfpw_layer *l, sfpw_run *c)
{
    int T, D;
    geometry(l, &T, &D);
    const size_t n = (size_t)c->rows * T;
    for (size_t t = 0; t < n; t++) {
        const float *x = c->x[0] + t * D;
        float *y = c->y + t * D;
        double mu = sfpw_sum(x, (size_t)D) / D;
        double var = sfpw_sum_dev2(x, (size_t)D, mu) / D;
        float m = (float)mu, is = (float)(1.0 / sqrt(var + EPS));
        c->slot[0][2 * t] = m;
        c->slot[0][2 * t + 1] = is;
        normalize(x, y, m, is, c->W, c->b, D);
    }
    return c->slot_ready(c, 0);
}

/* Backward of a reader: the output again from the input and statistics. */
SFPW_HOT
static void recompute(const sfpw_layer *l, sfpw_run *c)
{
    int T, D;
    geometry(l, &T, &D);
    const size_t n = (size_t)c->rows * T;
    for (size_t t = 0; t < n; t++)
        normalize(c->x[0] + t * D, c->y + t * D, c->slot[0][2 * t], c->slot[0][2 * t + 1],
                  c->W, c->b, D);
}

SFPW_HOT
static void backward(const sfpw_layer *l, sfpw_run *c)
{
    int T, D;
    geometry(l, &T, &D);
    const size_t n = (size_t)c->rows * T, ndx = c->dx[0] ? (size_t)c->dx_rows[0] * T : 0;
    float *g = c->scratch, *xh = c->scratch + D;
    for (size_t t = 0; t < n; t++) {
        const float *x = c->x[0] + t * D, *dy = c->dy + t * D;
        const float m = c->slot[0][2 * t], is = c->slot[0][2 * t + 1];
        for (int i = 0; i < D; i++) {
            xh[i] = (x[i] - m) * is;
            g[i] = dy[i] * c->W[i];
            c->dW[i] += dy[i] * xh[i];
            c->db[i] += dy[i];
        }
        if (t >= ndx)
            continue;
        const float mg = (float)(sfpw_sum(g, (size_t)D) / D);
        const float mgx = (float)(sfpw_sum_dydev(g, xh, (size_t)D, 0.0) / D);
        float *dx = c->dx[0] + t * D;
        if (c->dx_add[0])
            for (int i = 0; i < D; i++)
                dx[i] += is * (g[i] - mg - xh[i] * mgx);
        else
            for (int i = 0; i < D; i++)
                dx[i] = is * (g[i] - mg - xh[i] * mgx);
    }
}

const sfpw_layer_ops sfpw_layer_layernorm = {
    .kind = "layernorm",
    .help = "LayerNorm over the last dimension",
    .min_in = 1, .max_in = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = setup, .init = sfpw_init_norm, .forward = forward, .backward = backward,
    .recompute = recompute, .out_role = SFPW_ROLE_NORM_OUT,
};
