/*
 * layer.h - the layer registry: one file per layer kind (worker/layers/),
 * each with its options, accepted shapes, forward, backward and what its
 * backward reads from the stash.
 *
 * Adding a kind: write worker/layers/KIND.c defining
 * `const sfpw_layer_ops sfpw_layer_KIND`, add it to the table in
 * worker/layers/registry.c and to sfpw_srcs in worker/meson.build, give it
 * a gradient check in tests/worker/test_layers.c (and a PyTorch comparison
 * in tests/worker/torch_layers.py), and document it in docs/TRAINING.md.
 *
 * Layouts: rows (images) outermost, then the value's shape in row-major
 * order ([C, H, W], [T, D], [F]). Parameters are read from W and their
 * gradients ADDED into dW; input gradients are written (dx_add 0) or added
 * (dx_add 1) for the first dx_rows[i] rows only (dx[i] NULL: not needed).
 */
#ifndef SFPW_LAYER_H
#define SFPW_LAYER_H

#include "model.h"

/* What backward reads besides its output gradient (the engine stashes it). */
#define SFPW_NEEDS_IN0 1u /* first input  */
#define SFPW_NEEDS_IN1 2u /* second input */
#define SFPW_NEEDS_IN2 4u /* third input  */
#define SFPW_NEEDS_OUT 8u /* its own output (after act=relu) */

/* An integer option key=value with bounds; def < lo: required. */
typedef struct sfpw_opt_spec {
    const char *key;
    int def, lo, hi;
    const char *help;
} sfpw_opt_spec;

typedef struct sfpw_run sfpw_run;

typedef struct sfpw_layer_ops {
    const char *kind;
    const char *help;            /* one line for docs/TRAINING.md          */
    int min_in, max_in;          /* number of inputs                       */
    const sfpw_opt_spec *opts;   /* NULL-terminated; values in l->opt[]    */
    int can_relu;                /* accepts act=relu                       */
    int fuses_relu;              /* its forward applies act=relu itself    */
    int subset;                  /* output values are a subset of the input's
                                    (max-pool): stored with no more bits    */
    unsigned needs;              /* SFPW_NEEDS_*                            */
    /*
     * From l->in_shape[] and l->opt[]: l->out_shape and the resources
     * (w_n, b_n, kinds, nbuf, slots, scratch). 0, or -1 with the reason in
     * err (the parser adds the line).
     */
    int (*setup)(sfpw_layer *l, char *err, size_t cap);
    /* Initial parameters (w, b: NULL if none) and running statistics. */
    void (*init)(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r);
    /* 0 or the error of a hook (slot_ready). */
    int (*forward)(const sfpw_layer *l, sfpw_run *c);
    void (*backward)(const sfpw_layer *l, sfpw_run *c);
    /*
     * Optional. Called when the first input is the output of a layer with
     * act=relu that nothing else reads and whose backward reads only the
     * ReLU's mask from it: the layer may instead keep codes of its own (a
     * slot with slot_codes set) and apply that mask itself in backward.
     * Sets l->relu_codes, l->needs and the slot; the builder then stashes
     * no copy of that input.
     */
    void (*relu_codes)(sfpw_layer *l);
    /*
     * Optional. The training forward's output (c->y, before an act=relu
     * the engine applies) from c->x[] and c->slot[] as its backward gets
     * them, bit for bit what forward wrote, without touching running
     * statistics. Only for kinds whose needs cover every input this reads
     * (IN bits) and whose slots hold what forward computed (statistics):
     * the builder then stashes no copy of the output (SFPW_TENSOR_RECOMP).
     */
    void (*recompute)(const sfpw_layer *l, sfpw_run *c);
    /*
     * Optional. Slot s (not raw, not codes) into c->slot[s] from c->x[] as
     * backward gets them, bit for bit what forward computed before it
     * called slot_ready (the slot is then never quantized). Only for kinds
     * whose needs cover every input it reads: when all of those are
     * stashed, the builder stashes no copy of the slot (SFPW_TENSOR_RECOMP).
     */
    void (*recompute_slot)(const sfpw_layer *l, sfpw_run *c, int s);
    /* Role of the output when it is stashed (-1: decided by its readers). */
    int out_role;
} sfpw_layer_ops;

/* One call of a layer. */
struct sfpw_run {
    int rows;
    int train;                   /* training: batch statistics           */
    float momentum;              /* running statistics' update weight    */
    const float *x[SFPW_MAX_INPUTS];
    float *y;                    /* forward: output (rows x out size)     */
    const float *W, *b;          /* parameters (NULL if none)             */
    float *buf;                  /* running statistics (nbuf)             */
    float *dW, *db;
    const float *dy;             /* backward: gradient of the output      */
    float *dx[SFPW_MAX_INPUTS];
    int dx_rows[SFPW_MAX_INPUTS];
    int dx_add[SFPW_MAX_INPUTS];
    float *slot[SFPW_MAX_SLOTS]; /* internal stashed tensors              */
    float *scratch;              /* l->scratch * rows + scratch_fixed     */
    /*
     * forward: slot i is complete; the engine quantizes it in place (the
     * layer goes on with the quantized values) and stashes it.
     */
    int (*slot_ready)(sfpw_run *c, int i);
    /* backward: g = dL/d(slot i) (rows x slot_n), for the width gradient. */
    void (*slot_grad)(sfpw_run *c, int i, const float *g);
    void *engine;
};

/* Backward reads the layer's own output (its kind's need, or its ReLU's
 * mask unless its reader applies it). */
static inline int sfpw_layer_reads_out(const sfpw_layer *l)
{
    return (l->needs & SFPW_NEEDS_OUT) || (l->relu && !l->relu_masked);
}

/* The kind named kind, NULL if none. */
const sfpw_layer_ops *sfpw_layer_find(const char *kind);
/* Every kind, NULL-terminated (docs and --help). */
extern const sfpw_layer_ops *const sfpw_layer_kinds[];

/* Helpers of the kinds (layers/common.c). */
/* setup of an elementwise layer: the output has the input's shape */
int sfpw_setup_same_shape(sfpw_layer *l, char *err, size_t cap);
/* a weight of w_n values (decayed) over fan_in inputs, and a bias of out
 * values if bias; sfpw_init_linear initialises them (He-normal, zero) */
void sfpw_setup_linear(sfpw_layer *l, size_t w_n, size_t fan_in, int out, int bias);
void sfpw_init_linear(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r);
/* a norm's scale and shift over C features (initialised 1 and 0 by
 * sfpw_init_norm) and its raw statistics slot */
void sfpw_setup_norm(sfpw_layer *l, int C, size_t stats_per_image, size_t stats_fixed);
void sfpw_init_norm(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r);
/* one parameter tensor of n values without decay, initialised N(0, 0.02)
 * by sfpw_init_embedding (class token, position embedding) */
void sfpw_setup_embedding(sfpw_layer *l, size_t n);
void sfpw_init_embedding(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r);
/* *dst = g (add 0) or *dst += g (add 1) */
static inline void sfpw_put(float *dst, int add, float g)
{
    *dst = add ? *dst + g : g;
}
int sfpw_layer_fail(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* He-normal (std sqrt(2 / fan_in)) over n values. */
void sfpw_init_he(float *w, size_t n, size_t fan_in, sfpw_rng *r);
/* dst (+)= src over n values: add 0 writes, 1 adds. */
void sfpw_copy_or_add(float *dst, const float *src, size_t n, int add);

#endif
