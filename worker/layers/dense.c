/*
 * dense.c - fully connected layer: y = x W^T + b, W [out, in].
 * A [T, D] input (tokens) is transformed per token into [T, out]; any other
 * shape is flattened into [out]. Backward reads its input (for dW).
 */
#include "layer.h"

enum { O_OUT, O_BIAS };

static const sfpw_opt_spec opts[] = {
    {"out", -1, 1, SFPW_MODEL_MAX_DIM, "output features"},
    {"bias", 1, 0, 1, "learned bias (yes|no)"},
    {NULL, 0, 0, 0, NULL},
};

/* rows of the GEMM per image and features in */
static void geometry(const sfpw_layer *l, int *per, int *in)
{
    const sfpw_shape *s = &l->in_shape[0];
    *per = s->nd == 2 ? s->d[0] : 1;
    *in = (int)(sfpw_shape_size(s) / (size_t)*per);
}

static int setup(sfpw_layer *l, char *err, size_t cap)
{
    int per, in;
    (void)err;
    (void)cap;
    geometry(l, &per, &in);
    if (l->in_shape[0].nd == 2)
        l->out_shape = (sfpw_shape){ 2, { per, l->opt[O_OUT], 0 } };
    else
        l->out_shape = (sfpw_shape){ 1, { l->opt[O_OUT], 0, 0 } };
    sfpw_setup_linear(l, (size_t)in * l->opt[O_OUT], (size_t)in, l->opt[O_OUT], l->opt[O_BIAS]);
    return 0;
}

static int forward(const sfpw_layer *l, sfpw_run *c)
{
    int per, in;
    geometry(l, &per, &in);
    sfpw_dense_fwd(c->x[0], c->W, c->b, c->y, c->rows * per, in, l->opt[O_OUT], l->relu);
    return 0;
}

static void backward(const sfpw_layer *l, sfpw_run *c)
{
    int per, in;
    geometry(l, &per, &in);
    sfpw_dense_bwd(c->x[0], c->W, c->dy, c->dx[0], c->dx[0] ? c->dx_rows[0] * per : 0,
                   c->dx_add[0], c->dW, c->db, c->rows * per, in, l->opt[O_OUT]);
}

const sfpw_layer_ops sfpw_layer_dense = {
    .kind = "dense",
    .help = "fully connected (per token on a TxD input, else flattened)",
    .min_in = 1, .max_in = 1, .opts = opts, .can_relu = 1, .fuses_relu = 1,
    .needs = SFPW_NEEDS_IN0,
    .setup = setup, .init = sfpw_init_linear, .forward = forward, .backward = backward,
    .out_role = -1,
};
