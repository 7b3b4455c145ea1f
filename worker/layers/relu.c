/* relu.c - max(x, 0). Backward reads its output (the mask). */
#include <string.h>

#include "hot.h"
#include "layer.h"

SFPW_HOT
static int forward(const sfpw_layer *l, sfpw_run *c)
{
    size_t n = (size_t)c->rows * sfpw_shape_size(&l->out_shape);
    for (size_t i = 0; i < n; i++)
        c->y[i] = c->x[0][i] > 0.0f ? c->x[0][i] : 0.0f;
    return 0;
}

SFPW_HOT
static void backward(const sfpw_layer *l, sfpw_run *c)
{
    if (!c->dx[0])
        return;
    size_t n = (size_t)c->dx_rows[0] * sfpw_shape_size(&l->out_shape);
    float *dx = c->dx[0];
    for (size_t i = 0; i < n; i++) {
        float g = c->y[i] > 0.0f ? c->dy[i] : 0.0f;
        sfpw_put(&dx[i], c->dx_add[0], g);
    }
}

const sfpw_layer_ops sfpw_layer_relu = {
    .kind = "relu",
    .help = "max(x, 0)",
    .min_in = 1, .max_in = 1,
    .needs = SFPW_NEEDS_OUT,
    .setup = sfpw_setup_same_shape, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_RELU,
};
