/*
 * patch.c - patch embedding: [C, H, W] cut into (H/p)(W/p) patches of
 * p x p (row-major), each mapped to D features: [T, D]. W [D, C*p*p] in
 * the layout of a conv kernel (a p x p convolution with stride p).
 * Backward reads its input.
 */
#include <string.h>

#include "layer.h"

enum { O_PATCH, O_OUT, O_BIAS };

static const sfpw_opt_spec opts[] = {
    {"patch", -1, 1, 64, "patch size p (divides H and W)"},
    {"out", -1, 1, SFPW_MODEL_MAX_DIM, "features per patch D"},
    {"bias", 1, 0, 1, "learned bias (yes|no)"},
    {NULL, 0, 0, 0, NULL},
};

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    const int p = l->opt[O_PATCH];
    if (s->nd != 3 || s->d[1] % p || s->d[2] % p)
        return sfpw_layer_fail(err, cap, "needs a CxHxW input with H and W multiples of %d", p);
    sfpw_conv_shape_init(&l->conv, s->d[0], s->d[1], s->d[2], l->opt[O_OUT], p, 0, p);
    l->out_shape = (sfpw_shape){ 2, { l->conv.oh * l->conv.ow, l->opt[O_OUT], 0 } };
    size_t fan_in = (size_t)s->d[0] * p * p;
    sfpw_setup_linear(l, fan_in * l->opt[O_OUT], fan_in, l->opt[O_OUT], l->opt[O_BIAS]);
    l->scratch = 2 * sfpw_shape_size(s);
    return 0;
}

/* img [C, H, W] <-> patches [T, C*p*p]; back: add (or write) into img */
static void patchify(const sfpw_conv_shape *s, const float *img, float *pt, int back, int add)
{
    const int p = s->k, C = s->c, H = s->h, W = s->w, PW = s->ow;
    const size_t cpp = (size_t)C * p * p;
    for (int py = 0; py < s->oh; py++)
        for (int px = 0; px < PW; px++) {
            float *row = pt + ((size_t)py * PW + px) * cpp;
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < p; i++) {
                    float *a = row + ((size_t)ch * p + i) * p;
                    float *b = (float *)img + ((size_t)ch * H + py * p + i) * W + px * p;
                    if (!back)
                        memcpy(a, b, sizeof(float) * p);
                    else
                        for (int j = 0; j < p; j++)
                            sfpw_put(&b[j], add, a[j]);
                }
        }
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const size_t img = sfpw_shape_size(&l->in_shape[0]);
    const int T = l->out_shape.d[0], cpp = (int)(img / (size_t)T);
    for (int r = 0; r < c->rows; r++)
        patchify(&l->conv, c->x[0] + r * img, c->scratch + r * img, 0, 0);
    sfpw_dense_fwd(c->scratch, c->W, c->b, c->y, c->rows * T, cpp, l->opt[O_OUT], 0);
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    const size_t img = sfpw_shape_size(&l->in_shape[0]);
    const int T = l->out_shape.d[0], cpp = (int)(img / (size_t)T);
    float *pt = c->scratch, *dpt = c->scratch + (size_t)c->rows * img;
    for (int r = 0; r < c->rows; r++)
        patchify(&l->conv, c->x[0] + r * img, pt + r * img, 0, 0);
    int dr = c->dx[0] ? c->dx_rows[0] : 0;
    sfpw_dense_bwd(pt, c->W, c->dy, dpt, dr * T, 0, c->dW, c->db, c->rows * T, cpp,
                   l->opt[O_OUT]);
    for (int r = 0; r < dr; r++)
        patchify(&l->conv, c->dx[0] + r * img, dpt + r * img, 1, c->dx_add[0]);
}

const sfpw_layer_ops sfpw_layer_patch = {
    .kind = "patch",
    .help = "patch embedding: p x p patches to D features each (tokens)",
    .min_in = 1, .max_in = 1, .opts = opts,
    .needs = SFPW_NEEDS_IN0,
    .setup = setup, .init = sfpw_init_linear, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_TOKENS,
};
