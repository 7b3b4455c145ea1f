/* token.c - takes one token: [T, D] -> [D] (index=0: the class token).
 * Backward reads nothing. */
#include <string.h>

#include "layer.h"

enum { O_INDEX };

static const sfpw_opt_spec opts[] = {
    {"index", 0, 0, SFPW_MODEL_MAX_DIM, "token to take"},
    {NULL, 0, 0, 0, NULL},
};

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    const sfpw_shape *s = &l->in_shape[0];
    if (s->nd != 2)
        return sfpw_layer_fail(err, cap, "needs a TxD input (tokens)");
    if (l->opt[O_INDEX] >= s->d[0])
        return sfpw_layer_fail(err, cap, "index=%d but only %d tokens", l->opt[O_INDEX], s->d[0]);
    l->out_shape = (sfpw_shape){ 1, { s->d[1], 0, 0 } };
    return 0;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    const size_t D = (size_t)l->in_shape[0].d[1], in = sfpw_shape_size(&l->in_shape[0]);
    for (int r = 0; r < c->rows; r++)
        memcpy(c->y + r * D, c->x[0] + r * in + (size_t)l->opt[O_INDEX] * D, sizeof(float) * D);
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    if (!c->dx[0])
        return;
    const size_t D = (size_t)l->in_shape[0].d[1], in = sfpw_shape_size(&l->in_shape[0]);
    for (int r = 0; r < c->dx_rows[0]; r++) {
        float *dx = c->dx[0] + r * in;
        if (!c->dx_add[0])
            memset(dx, 0, sizeof(float) * in);
        float *t = dx + (size_t)l->opt[O_INDEX] * D;
        for (size_t i = 0; i < D; i++)
            t[i] += c->dy[r * D + i];
    }
}

const sfpw_layer_ops sfpw_layer_token = {
    .kind = "token",
    .help = "takes one token of a TxD input (index=0: the class token)",
    .min_in = 1, .max_in = 1, .opts = opts,
    .setup = setup, .forward = forward, .backward = backward,
    .out_role = SFPW_ROLE_TOKENS,
};
