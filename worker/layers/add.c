/* add.c - elementwise sum of two values of one shape (residual add).
 * Backward reads nothing; the output, when a reader needs it, is recomputed
 * from the inputs if they are stashed or rebuilt themselves (worker/model.c). */
#include "hot.h"
#include "layer.h"

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *a = &l->in_shape[0], *b = &l->in_shape[1];
    char sa[64], sb[64];
    int same = a->nd == b->nd;
    for (int i = 0; same && i < a->nd; i++)
        same = a->d[i] == b->d[i];
    if (!same)
        return sfpw_layer_fail(err, cap, "inputs of different shapes %s and %s",
                               sfpw_shape_str(a, sa, sizeof sa), sfpw_shape_str(b, sb, sizeof sb));
    l->out_shape = *a;
    return 0;
}

SFPW_HOT
static int forward(const sfpw_layer *l, sfpw_run *c)
{
    size_t n = (size_t)c->rows * sfpw_shape_size(&l->out_shape);
    if (l->relu)
        for (size_t i = 0; i < n; i++) {
            float v = c->x[0][i] + c->x[1][i];
            c->y[i] = v > 0.0f ? v : 0.0f;
        }
    else
        for (size_t i = 0; i < n; i++)
            c->y[i] = c->x[0][i] + c->x[1][i];
    return 0;
}

/* The output again from the inputs (when it is recomputed in backward). */
static void recompute(const sfpw_layer *l, sfpw_run *c)
{
    (void)forward(l, c);
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    size_t per = sfpw_shape_size(&l->out_shape);
    for (int j = 0; j < 2; j++)
        if (c->dx[j])
            sfpw_copy_or_add(c->dx[j], c->dy, (size_t)c->dx_rows[j] * per, c->dx_add[j]);
}

const sfpw_layer_ops sfpw_layer_add = {
    .kind = "add",
    .help = "sum of two inputs of one shape (residual connection)",
    .min_in = 2, .max_in = 2, .can_relu = 1, .fuses_relu = 1,
    .setup = setup, .forward = forward, .backward = backward,
    .recompute = recompute, .out_role = SFPW_ROLE_RESIDUAL,
};
