/*
 * model.h - the two Fashion-MNIST models and the forward/backward engine
 * that puts every stashed activation through its container.
 *
 * Tensor table: tensors 0..nlayers-1 are the activations that backward
 * needs, namely the INPUT of each layer (tensor 0 is the image batch); they
 * are quantized in place right after they are produced, stashed, and read
 * back from the stash in backward. Then come the parameter tensors
 * (weights and biases), which live in one flat FP32 vector.
 */
#ifndef SFPW_MODEL_H
#define SFPW_MODEL_H

#include <stdint.h>
#include <stdio.h>

#include <sfp/policy.h>
#include <sfp/sfp.h>

#include "kernels.h"
#include "stash.h"

#define SFPW_MAX_LAYERS 8
#define SFPW_MAX_TENSORS (3 * SFPW_MAX_LAYERS)
/* every libsfp coder: sizes measured side by side (sfp.h, SFP_CODERS) */
#define SFPW_NCODERS SFP_CODER_COUNT

/*
 * Frame size of n on-grid values p would produce with coder c (encoded into
 * a scratch buffer that grows as needed). For --measure-coders.
 */
int sfpw_measure_frame(const float *x, size_t n, const sfp_params *p,
                       sfp_coder c, size_t *len);

typedef enum sfpw_layer_kind {
    SFPW_LAYER_DENSE,
    SFPW_LAYER_CONV,
    SFPW_LAYER_POOL,
} sfpw_layer_kind;

typedef struct sfpw_layer {
    sfpw_layer_kind kind;
    char name[16];
    int relu;              /* ReLU fused on the output          */
    int c, h, w;           /* input shape (dense: c = in, h=w=1) */
    int oc, oh, ow;        /* output shape                      */
    size_t in_dim, out_dim;
    sfpw_conv_shape conv;
    size_t w_off, w_n, b_off, b_n; /* in the flat parameter vector */
    int w_tensor, b_tensor;        /* -1 if none                   */
} sfpw_layer;

typedef enum sfpw_tensor_kind {
    SFPW_TENSOR_ACT = 0,
    SFPW_TENSOR_WEIGHT = 1,
    SFPW_TENSOR_BIAS = 2,
} sfpw_tensor_kind;

typedef struct sfpw_tensor {
    char name[32];
    sfpw_tensor_kind kind;
    int layer;   /* consumer layer (act) or owner layer (params)  */
    size_t off;  /* params: offset in the flat vector             */
    size_t n;    /* act: values per image; params: values         */
} sfpw_tensor;

typedef struct sfpw_model {
    char name[16];
    int nlayers;
    sfpw_layer layers[SFPW_MAX_LAYERS];
    int ntensors;
    sfpw_tensor tensors[SFPW_MAX_TENSORS];
    size_t nparams;
    size_t in_dim;
    int classes;
} sfpw_model;

/* "mlp" or "cnn"; SFP_EINVAL otherwise. */
int sfpw_model_build(sfpw_model *m, const char *name);
void sfpw_model_print(const sfpw_model *m, FILE *f);
/* He-normal weights, zero biases; deterministic in seed. */
void sfpw_model_init_params(const sfpw_model *m, float *params, uint64_t seed);

/* ------------------------------------------------------------------ engine */

/* Settings of one forward/backward pass. */
typedef struct sfpw_pass {
    int quantize;             /* put activations on their grid            */
    int stash;                /* go through the stash (training)          */
    int want_grad;            /* compute bitlength gradients (QM/QE)      */
    const sfp_width *width;   /* per tensor (model table order)           */
    sfp_params base;          /* coder, rounding, Gecko group             */
    sfpw_stash *st;
    sfpw_stash_key key;       /* .tensor is filled per tensor             */
    size_t sample_budget;     /* values per tensor for the width gradient */
    int measure_coders;       /* also encode every stash with each coder
                                 (plain, gecko, rans) and count its size   */
    double fisher;            /* > 0: add the second-order term with the
                                 Gauss-Newton curvature fisher * g^2 (the
                                 global batch size); 0: first order only   */
} sfpw_pass;

/* What a pass measured, per tensor (activations only). */
typedef struct sfpw_pass_out {
    double gn[SFPW_MAX_TENSORS], ge[SFPW_MAX_TENSORS]; /* bitlength grads */
    double bytes[SFPW_MAX_TENSORS];   /* stored (frame) bytes            */
    double values[SFPW_MAX_TENSORS];  /* values stored                   */
    double zeros[SFPW_MAX_TENSORS];
    double loss_sum;
    uint64_t correct;
    double coder_bytes[SFPW_NCODERS][SFPW_MAX_TENSORS]; /* measure_coders */
    double t_compute, t_quant, t_stash; /* seconds                       */
} sfpw_pass_out;

typedef struct sfpw_net sfpw_net;

/* Buffers for up to max_rows images. */
int sfpw_net_create(sfpw_net **out, const sfpw_model *m, int max_rows);
/*
 * Moves the buffers of the stashed activations (the inputs of the layers)
 * into one block from alloc(ctx, bytes), e.g. a stash's shared memory so
 * that puts and gets copy nothing. All or none: when alloc returns NULL the
 * buffers stay where they are (returns 0 then, 1 when moved). The block
 * belongs to the allocator and must outlive the net's use of it.
 */
int sfpw_net_place_acts(sfpw_net *n, void *(*alloc)(void *ctx, size_t bytes),
                        void *ctx);

void sfpw_net_destroy(sfpw_net **n);

/* Working (quantized) weights [nparams] and gradients [nparams]. */
float *sfpw_net_weights(sfpw_net *n);
float *sfpw_net_grads(sfpw_net *n);

/*
 * Forward over rows images x[rows, in_dim] with labels y. Accumulates the
 * summed loss and correct count into out. With pass->stash, activations are
 * put under pass->key. loss_scale: dlogits multiplier (1 / global batch).
 */
int sfpw_net_forward(sfpw_net *n, const sfpw_pass *pass, const float *x,
                     const uint8_t *y, int rows, float loss_scale,
                     sfpw_pass_out *out);
/*
 * Backward of the last forward: zeroes and fills the gradients, gets and
 * drops the stashed activations, accumulates the bitlength gradients.
 */
int sfpw_net_backward(sfpw_net *n, const sfpw_pass *pass, int rows,
                      sfpw_pass_out *out);
/* Forward only (evaluation): returns correct predictions in *correct. */
int sfpw_net_eval(sfpw_net *n, const sfpw_pass *pass, const float *x,
                  const uint8_t *y, int rows, uint64_t *correct);

double sfpw_now(void);

#endif
