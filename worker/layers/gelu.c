/* gelu.c - GELU, the erf form (PyTorch's default): x * Phi(x). Backward
 * reads its input; a reader's backward gets the output recomputed from it. Vectorized (hot.h): erf to 1.5e-7. */
#include "hot.h"
#include "layer.h"

SFPW_HOT
static void gelu_fwd(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float cdf, pdf;
        sfpw_normal_cdf_pdf(x[i], &cdf, &pdf);
        y[i] = x[i] * cdf;
    }
}

SFPW_HOT
static void gelu_bwd(const float *x, const float *dy, float *dx, size_t n, int add)
{
    for (size_t i = 0; i < n; i++) {
        float cdf, pdf;
        sfpw_normal_cdf_pdf(x[i], &cdf, &pdf);
        float g = dy[i] * (cdf + x[i] * pdf);
        dx[i] = add ? dx[i] + g : g;
    }
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    gelu_fwd(c->x[0], c->y, (size_t)c->rows * sfpw_shape_size(&l->out_shape));
    return 0;
}

/* Backward of a reader: the output again from the input. */
static void recompute(const sfpw_layer *l, sfpw_run *c)
{
    forward(l, c);
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    if (c->dx[0])
        gelu_bwd(c->x[0], c->dy, c->dx[0], (size_t)c->dx_rows[0] * sfpw_shape_size(&l->out_shape),
                 c->dx_add[0]);
}

const sfpw_layer_ops sfpw_layer_gelu = {
    .kind = "gelu",
    .help = "GELU, erf form",
    .min_in = 1, .max_in = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = sfpw_setup_same_shape, .forward = forward, .backward = backward,
    .recompute = recompute, .out_role = SFPW_ROLE_GELU_OUT,
};
