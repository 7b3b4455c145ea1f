/* gelu.c - GELU, the erf form (PyTorch's default): x * Phi(x). Backward
 * reads its input. */
#include <math.h>

#include "layer.h"

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    size_t n = (size_t)c->rows * sfpw_shape_size(&l->out_shape);
    for (size_t i = 0; i < n; i++) {
        float x = c->x[0][i];
        c->y[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    if (!c->dx[0])
        return;
    size_t n = (size_t)c->dx_rows[0] * sfpw_shape_size(&l->out_shape);
    float *dx = c->dx[0];
    for (size_t i = 0; i < n; i++) {
        float x = c->x[0][i];
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        float g = c->dy[i] * (cdf + x * pdf);
        sfpw_put(&dx[i], c->dx_add[0], g);
    }
}

const sfpw_layer_ops sfpw_layer_gelu = {
    .kind = "gelu",
    .help = "GELU, erf form",
    .min_in = 1, .max_in = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = sfpw_setup_same_shape, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_GELU_OUT,
};
