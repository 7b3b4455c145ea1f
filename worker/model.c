/* model.c - models and the quantizing forward/backward engine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

double sfpw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One scratch buffer per process: measurement only, single-threaded. */
static unsigned char *measure_buf;
static size_t measure_cap;

int sfpw_measure_frame(const float *x, size_t n, const sfp_params *p,
                       sfp_coder c, size_t *len)
{
    sfp_params q = *p;
    q.coder = c;
    size_t need = sfp_frame_bound(n, &q);
    if (!need)
        return SFP_EINVAL;
    if (need > measure_cap) {
        unsigned char *nb = realloc(measure_buf, need);
        if (!nb)
            return SFP_ENOMEM;
        measure_buf = nb;
        measure_cap = need;
    }
    return sfp_encode(x, n, &q, measure_buf, measure_cap, len, NULL);
}

/* ------------------------------------------------------------ model table */

static sfpw_layer *add_layer(sfpw_model *m, sfpw_layer_kind kind,
                             const char *name, int relu)
{
    sfpw_layer *l = &m->layers[m->nlayers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->relu = relu;
    l->w_tensor = l->b_tensor = -1;
    return l;
}

static void add_dense(sfpw_model *m, const char *name, int in, int out, int relu)
{
    sfpw_layer *l = add_layer(m, SFPW_LAYER_DENSE, name, relu);
    l->c = in;
    l->h = l->w = 1;
    l->oc = out;
    l->oh = l->ow = 1;
    l->w_n = (size_t)in * out;
    l->b_n = out;
}

static void add_conv(sfpw_model *m, const char *name, int c, int h, int w,
                     int oc, int k, int pad)
{
    sfpw_layer *l = add_layer(m, SFPW_LAYER_CONV, name, 1);
    sfpw_conv_shape_init(&l->conv, c, h, w, oc, k, pad);
    l->c = c;
    l->h = h;
    l->w = w;
    l->oc = oc;
    l->oh = l->conv.oh;
    l->ow = l->conv.ow;
    l->w_n = (size_t)oc * c * k * k;
    l->b_n = oc;
}

static void add_pool(sfpw_model *m, const char *name, int c, int h, int w)
{
    sfpw_layer *l = add_layer(m, SFPW_LAYER_POOL, name, 0);
    l->c = c;
    l->h = h;
    l->w = w;
    l->oc = c;
    l->oh = h / 2;
    l->ow = w / 2;
}

int sfpw_model_build(sfpw_model *m, const char *name)
{
    memset(m, 0, sizeof *m);
    if (strcmp(name, "mlp") == 0) {
        add_dense(m, "fc1", 784, 512, 1);
        add_dense(m, "fc2", 512, 256, 1);
        add_dense(m, "fc3", 256, 10, 0);
    } else if (strcmp(name, "cnn") == 0) {
        add_conv(m, "conv1", 1, 28, 28, 16, 3, 1);
        add_pool(m, "pool1", 16, 28, 28);
        add_conv(m, "conv2", 16, 14, 14, 32, 3, 1);
        add_pool(m, "pool2", 32, 14, 14);
        add_dense(m, "fc1", 32 * 7 * 7, 128, 1);
        add_dense(m, "fc2", 128, 10, 0);
    } else {
        return SFP_EINVAL;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    m->in_dim = 784;
    m->classes = 10;
    /* activation tensors: the input of every layer */
    for (int i = 0; i < m->nlayers; i++) {
        sfpw_layer *l = &m->layers[i];
        l->in_dim = (size_t)l->c * l->h * l->w;
        l->out_dim = (size_t)l->oc * l->oh * l->ow;
        sfpw_tensor *t = &m->tensors[m->ntensors++];
        if (i == 0)
            snprintf(t->name, sizeof t->name, "input");
        else
            snprintf(t->name, sizeof t->name, "%s.out", m->layers[i - 1].name);
        t->kind = SFPW_TENSOR_ACT;
        t->layer = i;
        t->n = l->in_dim;
    }
    size_t off = 0;
    for (int i = 0; i < m->nlayers; i++) {
        sfpw_layer *l = &m->layers[i];
        if (!l->w_n)
            continue;
        sfpw_tensor *t = &m->tensors[m->ntensors];
        snprintf(t->name, sizeof t->name, "%s.w", l->name);
        t->kind = SFPW_TENSOR_WEIGHT;
        t->layer = i;
        t->off = l->w_off = off;
        t->n = l->w_n;
        l->w_tensor = m->ntensors++;
        off += l->w_n;
        t = &m->tensors[m->ntensors];
        snprintf(t->name, sizeof t->name, "%s.b", l->name);
        t->kind = SFPW_TENSOR_BIAS;
        t->layer = i;
        t->off = l->b_off = off;
        t->n = l->b_n;
        l->b_tensor = m->ntensors++;
        off += l->b_n;
    }
    m->nparams = off;
    return 0;
}

void sfpw_model_print(const sfpw_model *m, FILE *f)
{
    fprintf(f, "model %s: %zu parameters\n", m->name, m->nparams);
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        switch (l->kind) {
        case SFPW_LAYER_DENSE:
            fprintf(f, "  %-6s dense   %4d -> %-4d%s  params %zu\n", l->name,
                    l->c, l->oc, l->relu ? " relu" : "     ", l->w_n + l->b_n);
            break;
        case SFPW_LAYER_CONV:
            fprintf(f, "  %-6s conv%dx%d %dx%dx%d -> %dx%dx%d pad %d relu  params %zu\n",
                    l->name, l->conv.k, l->conv.k, l->c, l->h, l->w, l->oc,
                    l->oh, l->ow, l->conv.pad, l->w_n + l->b_n);
            break;
        case SFPW_LAYER_POOL:
            fprintf(f, "  %-6s maxpool2x2 %dx%dx%d -> %dx%dx%d\n", l->name,
                    l->c, l->h, l->w, l->oc, l->oh, l->ow);
            break;
        }
    }
    fprintf(f, "  loss   softmax cross-entropy over %d classes\n", m->classes);
}

void sfpw_model_init_params(const sfpw_model *m, float *params, uint64_t seed)
{
    sfpw_rng r;
    sfpw_rng_seed(&r, seed, 0x1417);
    memset(params, 0, m->nparams * sizeof(float));
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        if (!l->w_n)
            continue;
        size_t fan_in = l->w_n / (size_t)l->oc;
        double sd = sqrt(2.0 / (double)fan_in);
        for (size_t j = 0; j < l->w_n; j++)
            params[l->w_off + j] = (float)(sd * sfpw_rng_normal(&r));
    }
}

/* ------------------------------------------------------------------ engine */

struct sfpw_net {
    const sfpw_model *m;
    int max_rows;
    float *act[SFPW_MAX_LAYERS + 1];
    int acts_placed;        /* act[0..nlayers-1] live in a foreign block */
    float *dbuf[2];
    float *col, *dcol;
    float *W, *G;
    /* width-gradient samples per activation tensor */
    size_t samp_cap;
    int samp_rows[SFPW_MAX_LAYERS];
    float *samp_x, *samp_q; /* scratch                              */
    float *samp_dn[SFPW_MAX_LAYERS], *samp_de[SFPW_MAX_LAYERS];
    float *samp_sn[SFPW_MAX_LAYERS], *samp_se[SFPW_MAX_LAYERS];
};

void sfpw_net_destroy(sfpw_net **pn)
{
    if (!pn || !*pn)
        return;
    sfpw_net *n = *pn;
    for (int i = n->acts_placed ? n->m->nlayers : 0; i <= SFPW_MAX_LAYERS; i++)
        free(n->act[i]);
    for (int i = 0; i < SFPW_MAX_LAYERS; i++) {
        free(n->samp_dn[i]);
        free(n->samp_de[i]);
        free(n->samp_sn[i]);
        free(n->samp_se[i]);
    }
    free(n->dbuf[0]);
    free(n->dbuf[1]);
    free(n->col);
    free(n->dcol);
    free(n->W);
    free(n->G);
    free(n->samp_x);
    free(n->samp_q);
    free(n);
    *pn = NULL;
}

int sfpw_net_place_acts(sfpw_net *n, void *(*alloc)(void *ctx, size_t bytes),
                        void *ctx)
{
    const sfpw_model *m = n->m;
    size_t sz[SFPW_MAX_LAYERS], total = 0;
    if (n->acts_placed)
        return 1;
    for (int i = 0; i < m->nlayers; i++) {
        size_t dim = i == 0 ? (size_t)m->in_dim : (size_t)m->layers[i - 1].out_dim;
        sz[i] = (sizeof(float) * n->max_rows * dim + 63) & ~(size_t)63;
        total += sz[i];
    }
    unsigned char *blk = alloc(ctx, total);
    if (!blk)
        return 0;
    for (int i = 0; i < m->nlayers; i++) {
        free(n->act[i]);
        n->act[i] = (float *)blk;
        blk += sz[i];
    }
    n->acts_placed = 1;
    return 1;
}

#define SAMPLE_MAX 16384


int sfpw_net_create(sfpw_net **out, const sfpw_model *m, int max_rows)
{
    if (max_rows <= 0)
        return SFP_EINVAL;
    sfpw_net *n = calloc(1, sizeof *n);
    if (!n)
        return SFP_ENOMEM;
    n->m = m;
    n->max_rows = max_rows;
    size_t maxdim = m->in_dim, colsz = 1;
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        if (l->out_dim > maxdim)
            maxdim = l->out_dim;
        if (l->in_dim > maxdim)
            maxdim = l->in_dim;
        if (l->kind == SFPW_LAYER_CONV && sfpw_conv_col_size(&l->conv) > colsz)
            colsz = sfpw_conv_col_size(&l->conv);
    }
    n->act[0] = malloc(sizeof(float) * max_rows * m->in_dim);
    for (int i = 0; i < m->nlayers; i++)
        n->act[i + 1] = malloc(sizeof(float) * max_rows * m->layers[i].out_dim);
    n->dbuf[0] = malloc(sizeof(float) * max_rows * maxdim);
    n->dbuf[1] = malloc(sizeof(float) * max_rows * maxdim);
    n->col = malloc(sizeof(float) * colsz);
    n->dcol = malloc(sizeof(float) * colsz);
    n->W = calloc(m->nparams, sizeof(float));
    n->G = calloc(m->nparams, sizeof(float));
    n->samp_cap = maxdim > SAMPLE_MAX ? maxdim : SAMPLE_MAX;
    n->samp_x = malloc(sizeof(float) * n->samp_cap);
    n->samp_q = malloc(sizeof(float) * n->samp_cap);
    if (!n->act[0] || !n->dbuf[0] || !n->dbuf[1] || !n->col || !n->dcol ||
        !n->W || !n->G || !n->samp_x || !n->samp_q)
        goto fail;
    for (int i = 0; i < m->nlayers; i++) {
        n->samp_dn[i] = malloc(sizeof(float) * n->samp_cap);
        n->samp_de[i] = malloc(sizeof(float) * n->samp_cap);
        n->samp_sn[i] = malloc(sizeof(float) * n->samp_cap);
        n->samp_se[i] = malloc(sizeof(float) * n->samp_cap);
        if (!n->act[i + 1] || !n->samp_dn[i] || !n->samp_de[i] ||
            !n->samp_sn[i] || !n->samp_se[i])
            goto fail;
    }
    *out = n;
    return 0;
fail:
    sfpw_net_destroy(&n);
    return SFP_ENOMEM;
}

float *sfpw_net_weights(sfpw_net *n)
{
    return n->W;
}

float *sfpw_net_grads(sfpw_net *n)
{
    return n->G;
}

/*
 * Over cnt values, with the anchor forced to the step's:
 *   d  = Q(x; k1, e1) - Q(x; k0, e0)                 (first-order term)
 *   sq = ((Q(x; k1, e1) - x)^2 - (Q(x; k0, e0) - x)^2) / 2  (second-order)
 */
static int width_diff(const float *x, float *d, float *sq, float *tmp,
                      size_t cnt, const sfp_params *base, unsigned k0,
                      unsigned e0, unsigned k1, unsigned e1, int anchor)
{
    sfp_params p = *base;
    p.anchor = anchor;
    p.mbits = k1;
    p.ebits = e1;
    int rc = sfp_quantize(d, x, cnt, &p, NULL);
    if (rc)
        return rc;
    p.mbits = k0;
    p.ebits = e0;
    rc = sfp_quantize(tmp, x, cnt, &p, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < cnt; i++) {
        float hi = d[i] - x[i], lo = tmp[i] - x[i];
        sq[i] = 0.5f * (hi * hi - lo * lo);
        d[i] -= tmp[i];
    }
    return 0;
}

/*
 * What the encoder would report (zeros, anchor) for values already on their
 * grid, for stashes that return before encoding: one pass over the bits,
 * cheaper than libsfp's statistics scan. The anchor of on-grid values is
 * the exponent field of the largest magnitude. Returns 1 when that does not
 * hold (all zeros, or a subnormal largest value): ask libsfp then.
 */
static int grid_stats(const float *a, size_t n, sfp_qstats *st)
{
    const uint32_t *u = (const uint32_t *)(const void *)a;
    uint32_t mx = 0;
    uint64_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t m = u[i] & 0x7fffffffu;
        mx = m > mx ? m : mx;
        zeros += m == 0;
    }
    if ((mx >> 23) == 0)
        return 1;
    memset(st, 0, sizeof *st);
    st->count = n;
    st->zeros = zeros;
    st->anchor = (int)(mx >> 23);
    return 0;
}

/*
 * Puts activation tensor t (the input of layer t, rows x dim in a) on its
 * grid, prepares its width-gradient sample and stashes it.
 */
static int act_produced(sfpw_net *n, const sfpw_pass *ps, int t, float *a,
                        int rows, sfpw_pass_out *out)
{
    const size_t dim = n->m->tensors[t].n, cnt = (size_t)rows * dim;
    if (!ps->quantize) {
        out->bytes[t] += (double)cnt * sizeof(float);
        out->values[t] += (double)cnt;
        return 0;
    }
    double t0 = sfpw_now();
    const sfp_width *w = &ps->width[t];
    int srows = 0;
    if (ps->want_grad) {
        size_t budget = ps->sample_budget ? ps->sample_budget : 4096;
        if (budget > n->samp_cap)
            budget = n->samp_cap;
        srows = (int)(budget / dim);
        if (srows < 1)
            srows = 1;
        if (srows > rows)
            srows = rows;
        memcpy(n->samp_x, a, sizeof(float) * srows * dim);
    }
    n->samp_rows[t] = srows;
    sfp_params p = ps->base;
    p.mbits = w->k;
    p.ebits = w->e;
    p.anchor = -1;
    if (t > 0 && n->m->layers[t - 1].kind == SFPW_LAYER_POOL) {
        /* A max-pool output is a subset of its on-grid input: same anchor,
         * same grid. Storing it with more bits than its producer's only
         * stores zero bits, so cap the container there (lossless). */
        const sfp_width *pw = &ps->width[t - 1];
        if (pw->k < p.mbits)
            p.mbits = pw->k;
        if (pw->e < p.ebits)
            p.ebits = pw->e;
    }
    /* Statistics (zeros, anchor) come from the encoder when stashing: the
     * in-place quantization then takes libsfp's faster no-statistics scan. */
    sfp_qstats st;
    memset(&st, 0, sizeof st);
    const int deferred = ps->stash && (ps->st->ops->flags & SFPW_STASH_DEFERRED);
    int rc = sfp_quantize(a, a, cnt, &p, (!ps->stash && ps->want_grad) ? &st : NULL);
    if (!rc && deferred && grid_stats(a, cnt, &st))
        rc = sfp_quantize(a, a, cnt, &p, &st); /* on-grid values: unchanged */
    if (rc)
        return rc;
    double t1 = sfpw_now();
    out->t_quant += t1 - t0;
    if (ps->stash) {
        sfpw_stash_key key = ps->key;
        key.tensor = (uint32_t)t;
        size_t bytes = 0;
        rc = ps->st->ops->put(ps->st, &key, a, cnt, &p, &bytes, &st);
        if (rc)
            return rc;
        out->bytes[t] += (double)bytes;
        for (int c = 0; ps->measure_coders && c < SFPW_NCODERS; c++) {
            size_t len;
            if ((rc = sfpw_measure_frame(a, cnt, &p, (sfp_coder)c, &len)))
                return rc;
            out->coder_bytes[c][t] += (double)len;
        }
        out->t_stash += sfpw_now() - t1;
    } else {
        out->bytes[t] += (double)cnt * sizeof(float);
    }
    out->zeros[t] += (double)st.zeros;
    if (srows) {
        /* bitlength-gradient samples, anchored like the stored tensor */
        double t2 = sfpw_now();
        size_t sc = (size_t)srows * dim;
        rc = width_diff(n->samp_x, n->samp_dn[t], n->samp_sn[t], n->samp_q, sc,
                        &p, w->k_lo, w->e, w->k_hi, w->e, st.anchor);
        if (!rc)
            rc = width_diff(n->samp_x, n->samp_de[t], n->samp_se[t], n->samp_q,
                            sc, &p, w->k, w->e_lo, w->k, w->e_hi, st.anchor);
        if (rc)
            return rc;
        out->t_quant += sfpw_now() - t2;
    }
    out->values[t] += (double)cnt;
    return 0;
}

static void layer_forward(sfpw_net *n, const sfpw_layer *l, const float *in,
                          float *o, int rows)
{
    const float *W = n->W;
    switch (l->kind) {
    case SFPW_LAYER_DENSE:
        sfpw_dense_fwd(in, W + l->w_off, W + l->b_off, o, rows, l->c, l->oc);
        break;
    case SFPW_LAYER_CONV:
        sfpw_conv_fwd(&l->conv, in, W + l->w_off, W + l->b_off, o, rows, n->col);
        break;
    case SFPW_LAYER_POOL:
        sfpw_pool_fwd(in, o, rows, l->c, l->h, l->w);
        break;
    }
    if (l->relu)
        sfpw_relu_fwd(o, (size_t)rows * l->out_dim);
}

static int run_forward(sfpw_net *n, const sfpw_pass *ps, const float *x,
                       int rows, sfpw_pass_out *out)
{
    const sfpw_model *m = n->m;
    if (rows <= 0 || rows > n->max_rows)
        return SFP_EINVAL;
    memcpy(n->act[0], x, sizeof(float) * rows * m->in_dim);
    int rc = act_produced(n, ps, 0, n->act[0], rows, out);
    if (rc)
        return rc;
    for (int i = 0; i < m->nlayers; i++) {
        double t0 = sfpw_now();
        layer_forward(n, &m->layers[i], n->act[i], n->act[i + 1], rows);
        out->t_compute += sfpw_now() - t0;
        if (i + 1 < m->nlayers) {
            rc = act_produced(n, ps, i + 1, n->act[i + 1], rows, out);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int sfpw_net_forward(sfpw_net *n, const sfpw_pass *ps, const float *x,
                     const uint8_t *y, int rows, float loss_scale,
                     sfpw_pass_out *out)
{
    int rc = run_forward(n, ps, x, rows, out);
    if (rc)
        return rc;
    const sfpw_model *m = n->m;
    float *logits = n->act[m->nlayers];
    out->loss_sum += sfpw_softmax_xent(logits, y, n->dbuf[0], rows,
                                       m->classes, loss_scale, &out->correct);
    return 0;
}

int sfpw_net_eval(sfpw_net *n, const sfpw_pass *ps, const float *x,
                  const uint8_t *y, int rows, uint64_t *correct)
{
    sfpw_pass_out tmp;
    memset(&tmp, 0, sizeof tmp);
    sfpw_pass p = *ps;
    p.stash = 0;
    p.want_grad = 0;
    int rc = run_forward(n, &p, x, rows, &tmp);
    if (rc)
        return rc;
    *correct += sfpw_count_correct(n->act[n->m->nlayers], y, rows,
                                   n->m->classes);
    return 0;
}

static double dot_f(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double dot_sq(const float *g, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i] * b[i];
    return s;
}

int sfpw_net_backward(sfpw_net *n, const sfpw_pass *ps, int rows,
                      sfpw_pass_out *out)
{
    const sfpw_model *m = n->m;
    int rc = 0;
    memset(n->G, 0, sizeof(float) * m->nparams);
    float *cur = n->dbuf[0], *nxt = n->dbuf[1];
    sfpw_stash_key key = ps->key;
    if (ps->stash && ps->st->ops->backward) {
        double t0 = sfpw_now();
        if ((rc = ps->st->ops->backward(ps->st, &key, out->bytes)))
            return rc;
        out->t_stash += sfpw_now() - t0;
    }
    for (int i = m->nlayers - 1; i >= 0; i--) {
        const sfpw_layer *l = &m->layers[i];
        const size_t in_cnt = (size_t)rows * l->in_dim;
        if (ps->stash) {
            double t0 = sfpw_now();
            key.tensor = (uint32_t)i;
            rc = ps->st->ops->get(ps->st, &key, n->act[i], in_cnt);
            if (rc)
                return rc;
            if (i > 0) {
                key.tensor = (uint32_t)(i - 1);
                ps->st->ops->prefetch(ps->st, &key);
            }
            out->t_stash += sfpw_now() - t0;
        }
        double t0 = sfpw_now();
        if (l->relu)
            sfpw_relu_bwd(n->act[i + 1], cur, (size_t)rows * l->out_dim);
        if (ps->stash && i + 1 < m->nlayers) {
            key.tensor = (uint32_t)(i + 1);
            ps->st->ops->drop(ps->st, &key);
        }
        int dx_rows = i > 0 ? rows : (ps->want_grad ? n->samp_rows[0] : 0);
        float *W = n->W, *G = n->G;
        switch (l->kind) {
        case SFPW_LAYER_DENSE:
            sfpw_dense_bwd(n->act[i], W + l->w_off, cur, nxt, dx_rows,
                           G + l->w_off, G + l->b_off, rows, l->c, l->oc);
            break;
        case SFPW_LAYER_CONV:
            sfpw_conv_bwd(&l->conv, n->act[i], W + l->w_off, cur, nxt, dx_rows,
                          G + l->w_off, G + l->b_off, rows, n->col, n->dcol);
            break;
        case SFPW_LAYER_POOL:
            sfpw_pool_bwd(n->act[i], cur, nxt, dx_rows, l->c, l->h, l->w);
            break;
        }
        out->t_compute += sfpw_now() - t0;
        if (ps->want_grad && ps->quantize && n->samp_rows[i] > 0) {
            /* g = dL/d(stashed input); estimate on the sampled rows */
            size_t sc = (size_t)n->samp_rows[i] * l->in_dim;
            double scale = (double)rows / n->samp_rows[i];
            out->gn[i] += scale * dot_f(nxt, n->samp_dn[i], sc);
            out->ge[i] += scale * dot_f(nxt, n->samp_de[i], sc);
            if (ps->fisher > 0) {
                out->gn[i] += scale * ps->fisher * dot_sq(nxt, n->samp_sn[i], sc);
                out->ge[i] += scale * ps->fisher * dot_sq(nxt, n->samp_se[i], sc);
            }
        }
        float *t = cur;
        cur = nxt;
        nxt = t;
    }
    if (ps->stash) {
        key.tensor = 0;
        ps->st->ops->drop(ps->st, &key);
    }
    return 0;
}
