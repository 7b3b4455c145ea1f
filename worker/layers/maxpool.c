/*
 * maxpool.c - 2x2 max pooling with stride 2 over [C, H, W] (H, W even).
 * Backward reads its input (the argmax is recomputed from it). Its output
 * is a subset of its input: stored with no more bits than the input.
 */
#include "layer.h"

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 3 || s->d[1] % 2 || s->d[2] % 2)
        return sfpw_layer_fail(err, cap, "needs a CxHxW input with even H and W");
    l->out_shape = (sfpw_shape){ 3, { s->d[0], s->d[1] / 2, s->d[2] / 2 } };
    return 0;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const sfpw_shape *s = &l->in_shape[0];
    sfpw_pool_fwd(c->x[0], c->y, c->rows, s->d[0], s->d[1], s->d[2]);
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (c->dx[0])
        sfpw_pool_bwd(c->x[0], c->dy, c->dx[0], c->dx_rows[0], c->dx_add[0], s->d[0],
                      s->d[1], s->d[2]);
}

const sfpw_layer_ops sfpw_layer_maxpool = {
    .kind = "maxpool",
    .help = "2x2 max pooling, stride 2",
    .min_in = 1, .max_in = 1, .subset = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = setup, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_POOLED,
};
