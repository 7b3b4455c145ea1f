/* cls.c - prepends a learned class token: [T, D] -> [T+1, D] (token 0).
 * Backward reads nothing. Initialised N(0, 0.02). */
#include <string.h>

#include "layer.h"

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 2)
        return sfpw_layer_fail(err, cap, "needs a TxD input (tokens)");
    l->out_shape = (sfpw_shape){ 2, { s->d[0] + 1, s->d[1], 0 } };
    sfpw_setup_embedding(l, (size_t)s->d[1]);
    return 0;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const size_t D = (size_t)l->in_shape[0].d[1], in = sfpw_shape_size(&l->in_shape[0]);
    for (int r = 0; r < c->rows; r++) {
        float *y = c->y + r * (in + D);
        memcpy(y, c->W, sizeof(float) * D);
        memcpy(y + D, c->x[0] + r * in, sizeof(float) * in);
    }
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    const size_t D = (size_t)l->in_shape[0].d[1], in = sfpw_shape_size(&l->in_shape[0]);
    for (int r = 0; r < c->rows; r++) {
        const float *dy = c->dy + r * (in + D);
        for (size_t i = 0; i < D; i++)
            c->dW[i] += dy[i];
        if (c->dx[0] && r < c->dx_rows[0])
            sfpw_copy_or_add(c->dx[0] + r * in, dy + D, in, c->dx_add[0]);
    }
}

const sfpw_layer_ops sfpw_layer_cls = {
    .kind = "cls",
    .help = "prepends a learned class token (TxD -> (T+1)xD)",
    .min_in = 1, .max_in = 1,
    .setup = setup, .init = sfpw_init_embedding, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_TOKENS,
};
