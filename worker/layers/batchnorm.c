/*
 * batchnorm.c - BatchNorm over the channels of [C, H, W] (or the features
 * of [F]): batch statistics in training, running statistics (momentum 0.1,
 * unbiased variance; the run's momentum when it sets one, see
 * sfpw_net_set_momentum) in evaluation, learned scale and shift, eps 1e-5.
 *
 * Stash: its INPUT (quantized like every stashed tensor; the forward pass
 * normalizes the quantized values) and, raw FP32, the per-channel mean and
 * inverse standard deviation ("NAME.stats", 2C values per step); backward
 * recomputes the normalized values from them, and its output too when a
 * reader needs it (recompute: the output is not stashed). Each rank normalizes with its
 * own rows' statistics (as PyTorch's DistributedDataParallel does); the
 * running statistics are averaged over the ranks every step (train_epoch.c).
 */
#include <math.h>

#include "hot.h"
#include "layer.h"

#define EPS 1e-5
#define MOMENTUM 0.1f

static void geometry(const sfpw_layer *l, int *C, size_t *hw)
{
    const sfpw_shape *s = &l->in_shape[0];
    *C = s->d[0];
    *hw = sfpw_shape_size(s) / (size_t)s->d[0];
}

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 3 && s->nd != 1)
        return sfpw_layer_fail(err, cap, "needs a CxHxW or F input");
    l->out_shape = *s;
    int C = s->d[0];
    sfpw_setup_norm(l, C, 0, 2 * (size_t)C);
    l->nbuf = 2 * (size_t)C;
    return 0;
}

static void init(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r)
{
    int C = l->in_shape[0].d[0];
    sfpw_init_norm(l, w, b, buf, r);
    for (int i = 0; buf && i < C; i++) {
        buf[i] = 0.0f;     /* running mean     */
        buf[C + i] = 1.0f; /* running variance */
    }
}

/* y = x * a + b per channel (a = istd * scale, b = shift - mean * a) from
 * the statistics in slot 0, with the fused ReLU: forward and recompute. */
SFPW_HOT
static void apply(const sfpw_layer *l, sfpw_run *c)
{
    int C;
    size_t hw;
    geometry(l, &C, &hw);
    const size_t per = (size_t)C * hw;
    const float *mean = c->slot[0], *istd = c->slot[0] + C;
    for (int r = 0; r < c->rows; r++)
        for (int ch = 0; ch < C; ch++) {
            const float *x = c->x[0] + r * per + ch * hw;
            float *y = c->y + r * per + ch * hw;
            const float a = istd[ch] * c->W[ch], b = c->b[ch] - mean[ch] * a;
            if (l->relu)
                for (size_t p = 0; p < hw; p++) {
                    float v = x[p] * a + b;
                    y[p] = v > 0.0f ? v : 0.0f;
                }
            else
                for (size_t p = 0; p < hw; p++)
                    y[p] = x[p] * a + b;
        }
}

SFPW_HOT
static int forward(const sfpw_layer *l, sfpw_run *c)
{
    int C;
    size_t hw;
    geometry(l, &C, &hw);
    const size_t per = (size_t)C * hw, N = (size_t)c->rows * hw;
    float *mean = c->slot[0], *istd = c->slot[0] + C;
    for (int ch = 0; ch < C; ch++) {
        if (!c->train) {
            mean[ch] = c->buf[ch];
            istd[ch] = (float)(1.0 / sqrt((double)c->buf[C + ch] + EPS));
            continue;
        }
        double s = 0, ss = 0;
        for (int r = 0; r < c->rows; r++)
            s += sfpw_sum(c->x[0] + r * per + ch * hw, hw);
        double mu = s / (double)N;
        for (int r = 0; r < c->rows; r++)
            ss += sfpw_sum_dev2(c->x[0] + r * per + ch * hw, hw, mu);
        double var = ss / (double)N;
        mean[ch] = (float)mu;
        istd[ch] = (float)(1.0 / sqrt(var + EPS));
        const float mo = c->momentum > 0 ? c->momentum : MOMENTUM;
        c->buf[ch] = (1 - mo) * c->buf[ch] + mo * (float)mu;
        c->buf[C + ch] = (1 - mo) * c->buf[C + ch] +
                         mo * (float)(N > 1 ? ss / (double)(N - 1) : var);
    }
    apply(l, c);
    return c->train ? c->slot_ready(c, 0) : 0;
}

SFPW_HOT
static void backward(const sfpw_layer *l, sfpw_run *c)
{
    int C;
    size_t hw;
    geometry(l, &C, &hw);
    const size_t per = (size_t)C * hw;
    const double N = (double)c->rows * (double)hw;
    const float *mean = c->slot[0], *istd = c->slot[0] + C;
    for (int ch = 0; ch < C; ch++) {
        double sg = 0, sgx = 0;
        const float mu = mean[ch], is = istd[ch];
        for (int r = 0; r < c->rows; r++) {
            const float *x = c->x[0] + r * per + ch * hw, *dy = c->dy + r * per + ch * hw;
            sg += sfpw_sum(dy, hw);
            sgx += sfpw_sum_dydev(dy, x, hw, mu);
        }
        sgx *= is;
        c->db[ch] += (float)sg;
        c->dW[ch] += (float)sgx;
        if (!c->dx[0])
            continue;
        const float a = c->W[ch] * is, mg = (float)(sg / N), k = (float)(sgx / N) * is;
        for (int r = 0; r < c->dx_rows[0]; r++) {
            const float *x = c->x[0] + r * per + ch * hw, *dy = c->dy + r * per + ch * hw;
            float *dx = c->dx[0] + r * per + ch * hw;
            if (c->dx_add[0])
                for (size_t p = 0; p < hw; p++)
                    dx[p] += a * (dy[p] - mg - (x[p] - mu) * k);
            else
                for (size_t p = 0; p < hw; p++)
                    dx[p] = a * (dy[p] - mg - (x[p] - mu) * k);
        }
    }
}

const sfpw_layer_ops sfpw_layer_batchnorm = {
    .kind = "batchnorm",
    .help = "BatchNorm2d (batch statistics in training, running in evaluation)",
    .min_in = 1, .max_in = 1, .can_relu = 1, .fuses_relu = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = setup, .init = init, .forward = forward, .backward = backward,
    .recompute = apply, .out_role = SFPW_ROLE_NORM_OUT,
};
