/*
 * maxpool.c - 2x2 max pooling with stride 2 over [C, H, W] (H, W even).
 * Backward reads its input (the argmax is recomputed from it); its output
 * is a subset of its input: stored with no more bits than the input. When
 * its input is a ReLU output that nothing else reads (conv act=relu ->
 * maxpool), backward reads 3-bit codes of its own instead (the argmax, or
 * "masked" where the maximum is 0), stashed exactly: the input, four times
 * the output's size, is then not stashed at all, and the ReLU's mask is
 * applied here.
 */
#include "kernels.h"
#include "layer.h"

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 3 || s->d[1] % 2 || s->d[2] % 2)
        return sfpw_layer_fail(err, cap, "needs a CxHxW input with even H and W");
    l->out_shape = (sfpw_shape){ 3, { s->d[0], s->d[1] / 2, s->d[2] / 2 } };
    return 0;
}

static void relu_codes(sfpw_layer *l)
{
    const sfpw_shape *s = &l->in_shape[0];
    l->relu_codes = 1;
    l->needs = 0;
    l->nslots = 1;
    l->slot_n[0] = sfpw_pool_code_words(s->d[0], s->d[1], s->d[2]);
    l->slot_codes[0] = sfpw_shape_size(s);
    l->slot_role[0] = SFPW_ROLE_ARGMAX;
    l->slot_name[0] = "argmax";
    /* an image's codes, a byte each, in both directions */
    l->scratch_fixed = (sfpw_pool_code_scratch(s->d[0], s->d[1], s->d[2]) + 3) / 4;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (!l->relu_codes || !c->train) {
        sfpw_pool_fwd(c->x[0], c->y, c->rows, s->d[0], s->d[1], s->d[2]);
        return 0;
    }
    sfpw_pool_fwd_codes(c->x[0], c->y, c->slot[0], c->rows, s->d[0], s->d[1], s->d[2],
                        c->scratch);
    return c->slot_ready(c, 0);
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (!c->dx[0])
        return;
    if (l->relu_codes)
        sfpw_pool_bwd_codes(c->slot[0], c->dy, c->dx[0], c->dx_rows[0], c->dx_add[0],
                            s->d[0], s->d[1], s->d[2], c->scratch);
    else
        sfpw_pool_bwd(c->x[0], c->dy, c->dx[0], c->dx_rows[0], c->dx_add[0], s->d[0],
                      s->d[1], s->d[2]);
}

const sfpw_layer_ops sfpw_layer_maxpool = {
    .kind = "maxpool",
    .help = "2x2 max pooling, stride 2",
    .min_in = 1, .max_in = 1, .subset = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = setup, .forward = forward, .backward = backward,
    .relu_codes = relu_codes,
    .out_role = SFPW_ROLE_POOLED,
};
