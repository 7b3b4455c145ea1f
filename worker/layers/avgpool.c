/* avgpool.c - global average pooling [C, H, W] -> [C]. Backward reads
 * nothing. */
#include "hot.h"
#include "layer.h"

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 3)
        return sfpw_layer_fail(err, cap, "needs a CxHxW input");
    l->out_shape = (sfpw_shape){ 1, { s->d[0], 0, 0 } };
    return 0;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const sfpw_shape *s = &l->in_shape[0];
    const size_t hw = (size_t)s->d[1] * s->d[2], nc = (size_t)c->rows * s->d[0];
    const float inv = 1.0f / (float)hw;
    for (size_t i = 0; i < nc; i++) {
        c->y[i] = (float)sfpw_sum(c->x[0] + i * hw, hw) * inv;
    }
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    if (!c->dx[0])
        return;
    const sfpw_shape *s = &l->in_shape[0];
    const size_t hw = (size_t)s->d[1] * s->d[2], nc = (size_t)c->dx_rows[0] * s->d[0];
    const float inv = 1.0f / (float)hw;
    for (size_t i = 0; i < nc; i++) {
        float g = c->dy[i] * inv, *dx = c->dx[0] + i * hw;
        for (size_t p = 0; p < hw; p++)
            sfpw_put(&dx[p], c->dx_add[0], g);
    }
}

const sfpw_layer_ops sfpw_layer_avgpool = {
    .kind = "avgpool",
    .help = "global average pooling CxHxW -> C",
    .min_in = 1, .max_in = 1,
    .setup = setup, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_POOLED,
};
