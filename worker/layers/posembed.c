/* posembed.c - adds a learned position embedding [T, D] to its input.
 * Backward reads nothing. Initialised N(0, 0.02). */
#include "layer.h"

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 2)
        return sfpw_layer_fail(err, cap, "needs a TxD input (tokens)");
    l->out_shape = *s;
    sfpw_setup_embedding(l, sfpw_shape_size(s));
    return 0;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const size_t n = l->w_n;
    for (int r = 0; r < c->rows; r++)
        for (size_t i = 0; i < n; i++)
            c->y[r * n + i] = c->x[0][r * n + i] + c->W[i];
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    const size_t n = l->w_n;
    for (int r = 0; r < c->rows; r++) {
        for (size_t i = 0; i < n; i++)
            c->dW[i] += c->dy[r * n + i];
        if (c->dx[0] && r < c->dx_rows[0])
            sfpw_copy_or_add(c->dx[0] + r * n, c->dy + r * n, n, c->dx_add[0]);
    }
}

const sfpw_layer_ops sfpw_layer_posembed = {
    .kind = "posembed",
    .help = "adds a learned position embedding",
    .min_in = 1, .max_in = 1,
    .setup = setup, .init = sfpw_init_embedding, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_TOKENS,
};
