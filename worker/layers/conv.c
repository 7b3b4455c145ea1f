/*
 * conv.c - 2-D convolution over [C, H, W] with a square kernel, stride and
 * zero padding; W [out, C*k*k]. Backward reads its input (for dW).
 */
#include "layer.h"

enum { O_OUT, O_K, O_STRIDE, O_PAD, O_BIAS };

static const sfpw_opt_spec opts[] = {
    {"out", -1, 1, 4096, "output channels"},
    {"k", 3, 1, 15, "kernel size"},
    {"stride", 1, 1, 8, "stride"},
    {"pad", 0, 0, 7, "zero padding on each side"},
    {"bias", 1, 0, 1, "learned bias (yes|no)"},
    {NULL, 0, 0, 0, NULL},
};

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 3)
        return sfpw_layer_fail(err, cap, "needs a CxHxW input, not %d-D", s->nd);
    int k = l->opt[O_K], p = l->opt[O_PAD];
    if (s->d[1] + 2 * p < k || s->d[2] + 2 * p < k)
        return sfpw_layer_fail(err, cap, "kernel %d larger than the padded input %dx%d", k,
                               s->d[1] + 2 * p, s->d[2] + 2 * p);
    sfpw_conv_shape_init(&l->conv, s->d[0], s->d[1], s->d[2], l->opt[O_OUT], k, p,
                         l->opt[O_STRIDE]);
    l->out_shape = (sfpw_shape){ 3, { l->conv.oc, l->conv.oh, l->conv.ow } };
    size_t fan_in = (size_t)l->conv.c * k * k;
    sfpw_setup_linear(l, fan_in * l->conv.oc, fan_in, l->conv.oc, l->opt[O_BIAS]);
    l->scratch_fixed = sfpw_conv_scratch(&l->conv);
    return 0;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    sfpw_conv_fwd(&l->conv, c->x[0], c->W, c->b, c->y, c->rows, l->relu, c->scratch);
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    sfpw_conv_bwd(&l->conv, c->x[0], c->W, c->dy, c->dx[0], c->dx[0] ? c->dx_rows[0] : 0,
                  c->dx_add[0], c->dW, c->db, c->rows, c->scratch);
}

const sfpw_layer_ops sfpw_layer_conv = {
    .kind = "conv",
    .help = "2-D convolution, square kernel, stride, zero padding",
    .min_in = 1, .max_in = 1, .opts = opts, .can_relu = 1, .fuses_relu = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = setup, .init = sfpw_init_linear, .forward = forward, .backward = backward,
    .out_role = -1,
};
