/*
 * model.h - a network as a graph of named values, read from a small text
 * file (docs/TRAINING.md "Model files"); the built-in models (mlp, cnn,
 * resnet, vit) are such files compiled into the binary.
 *
 * Values are the per-image tensors the layers produce (the input image is
 * value 0). A value that some layer's backward reads is STASHED: it gets an
 * activation tensor of its own; so do a layer's internal tensors that its
 * backward reads (attention's Q, K, V and probabilities) and its FP32
 * statistics (BatchNorm, LayerNorm). Every stashed tensor is quantized with
 * its own widths and goes through the stash; parameters (weights, biases,
 * norm scales ...) live in one flat FP32 vector. Two exceptions keep less:
 * a max pool over a ReLU output keeps argmax codes instead of that output
 * (relu_codes), and the output of a layer that can rebuild it cheaply from
 * what its own backward reads anyway (BatchNorm, LayerNorm, GELU: its
 * kind's recompute) is not stashed but RECOMPUTED in backward, bit for bit
 * as forward made it.
 *
 * Tensor table order: the activation tensors in the order the forward pass
 * produces them, then the parameter tensors in layer order.
 */
#ifndef SFPW_MODEL_H
#define SFPW_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels.h"

#define SFPW_MAX_LAYERS 256
#define SFPW_MAX_VALUES (SFPW_MAX_LAYERS + 1)
#define SFPW_MAX_TENSORS 512
#define SFPW_MAX_INPUTS 3
#define SFPW_MAX_SLOTS 5   /* internal stashed tensors of one layer      */
#define SFPW_MAX_OPTS 6    /* key=value options of one layer            */
#define SFPW_NAME_MAX 32
#define SFPW_NCODERS SFP_CODER_COUNT /* every libsfp coder, measured side by side */

/* Limits of a model file (larger is refused with the line that exceeds it). */
#define SFPW_MODEL_MAX_BYTES (1u << 20)
#define SFPW_MODEL_MAX_DIM 65536
#define SFPW_MODEL_MAX_VALUE (1u << 24)   /* values per image of one tensor */
#define SFPW_MODEL_MAX_PARAMS (1u << 28)  /* parameters in all            */

/* Shape of a value per image: [C, H, W] images, [T, D] tokens, [F] vectors. */
typedef struct sfpw_shape {
    int nd;
    int d[3];
} sfpw_shape;

size_t sfpw_shape_size(const sfpw_shape *s);
/* "16x28x28" */
const char *sfpw_shape_str(const sfpw_shape *s, char *buf, size_t cap);

/*
 * What a stashed tensor holds, for the per-kind tables (docs/RESULTS.md):
 * named after what produced it or what reads it.
 */
typedef enum sfpw_role {
    SFPW_ROLE_INPUT,      /* the image batch                        */
    SFPW_ROLE_RELU,       /* post-ReLU                              */
    SFPW_ROLE_BN_IN,      /* BatchNorm input                        */
    SFPW_ROLE_LN_IN,      /* LayerNorm input (not a residual sum)   */
    SFPW_ROLE_RESIDUAL,   /* residual sum (output of add)           */
    SFPW_ROLE_GELU_IN,    /* GELU input                             */
    SFPW_ROLE_GELU_OUT,   /* GELU output                            */
    SFPW_ROLE_NORM_OUT,   /* LayerNorm / BatchNorm output           */
    SFPW_ROLE_Q, SFPW_ROLE_K, SFPW_ROLE_V,
    SFPW_ROLE_PROBS,      /* attention probabilities                */
    SFPW_ROLE_ATTN_OUT,   /* attention output (heads concatenated)  */
    SFPW_ROLE_POOLED,     /* max-pool / average-pool output         */
    SFPW_ROLE_TOKENS,     /* patch embedding, class token, positions */
    SFPW_ROLE_LINEAR,     /* other conv / dense output              */
    SFPW_ROLE_STATS,      /* FP32 per-row / per-channel statistics  */
    SFPW_ROLE_ARGMAX,     /* a max-pool's argmax codes (its input's stand-in) */
    SFPW_ROLE_RECOMPUTED, /* rebuilt in backward from its producer's stash */
    SFPW_ROLE_WEIGHT,     /* parameters                             */
    SFPW_ROLE_BIAS,
    SFPW_ROLE_PARAM,
    SFPW_ROLE_COUNT
} sfpw_role;

const char *sfpw_role_name(sfpw_role r);

typedef enum sfpw_tensor_kind {
    SFPW_TENSOR_ACT = 0,    /* stashed, quantized with its widths        */
    SFPW_TENSOR_WEIGHT = 1, /* conv / dense / patch matrices: weight decay */
    SFPW_TENSOR_BIAS = 2,   /* biases, norm shifts                        */
    SFPW_TENSOR_PARAM = 3,  /* norm scales, class token, position embedding:
                             * parameters without weight decay            */
    SFPW_TENSOR_STATS = 4,  /* stashed raw FP32 (never quantized)         */
    SFPW_TENSOR_CODES = 5,  /* stashed exactly: a layer's packed codes that
                             * stand in for n values of its input (n below
                             * counts those; the frames hold fewer floats) */
    SFPW_TENSOR_RECOMP = 6, /* never stashed: backward rebuilds it from its
                             * producer's (owner's, for a slot) stashed
                             * inputs and statistics (counted in the
                             * footprint at 0 bytes)                      */
} sfpw_tensor_kind;

/* Parameters live in the flat vector and are exchanged between ranks. */
static inline int sfpw_tensor_is_param(sfpw_tensor_kind k)
{
    return k == SFPW_TENSOR_WEIGHT || k == SFPW_TENSOR_BIAS || k == SFPW_TENSOR_PARAM;
}
/* Goes through the stash each step (activations, statistics, codes). */
static inline int sfpw_tensor_is_put(sfpw_tensor_kind k)
{
    return k == SFPW_TENSOR_ACT || k == SFPW_TENSOR_STATS || k == SFPW_TENSOR_CODES;
}
/* Counted in the stash's footprint each step: what is put, and the
 * recomputed tensors (0 bytes) that an FP32 training would stash. */
static inline int sfpw_tensor_is_stashed(sfpw_tensor_kind k)
{
    return sfpw_tensor_is_put(k) || k == SFPW_TENSOR_RECOMP;
}
/* Not quantized (no widths): stashed as is, or not stored at all. */
static inline int sfpw_tensor_is_raw(sfpw_tensor_kind k)
{
    return k == SFPW_TENSOR_STATS || k == SFPW_TENSOR_CODES || k == SFPW_TENSOR_RECOMP;
}

typedef struct sfpw_tensor {
    char name[2 * SFPW_NAME_MAX];
    sfpw_tensor_kind kind;
    sfpw_role role;
    int layer;    /* producer (act), owner (params, slots); -1: the input */
    int value;    /* act: the value, or -1 for a layer's internal tensor  */
    int slot;     /* internal tensor: slot of its layer, else -1          */
    size_t off;   /* params: offset in the flat vector                    */
    size_t n;     /* stashed: values per image (+ fixed, see below);
                   * params: values                                       */
    size_t fixed; /* stashed: values per step that do not scale with the
                   * rows (BatchNorm's per-channel statistics)            */
} sfpw_tensor;

typedef struct sfpw_value {
    char name[SFPW_NAME_MAX];
    sfpw_shape shape;
    size_t n;        /* values per image                      */
    int producer;    /* layer index, -1 for the input         */
    int tensor;      /* activation tensor if stashed, else -1 */
    int nconsumers;
    int rebuilt;     /* no tensor, but rebuilt in backward for the
                        recomputation of a reader's output       */
} sfpw_value;

struct sfpw_layer_ops;

typedef struct sfpw_layer {
    const struct sfpw_layer_ops *ops;
    char name[SFPW_NAME_MAX];
    int line;                       /* in the model file            */
    int nin;
    int in[SFPW_MAX_INPUTS];        /* values                       */
    int out;                        /* value                        */
    int relu;                       /* act=relu: fused on the output */
    unsigned needs;                 /* what backward reads (SFPW_NEEDS_*):
                                       the kind's, or less (relu_codes)  */
    int relu_masked;                /* its ReLU's mask is applied by its one
                                       reader (relu_codes): its output is
                                       not read in backward            */
    int relu_codes;                 /* its first input is such an output:
                                       it keeps codes instead          */
    int opt[SFPW_MAX_OPTS];         /* the kind's options, in its order */
    sfpw_shape in_shape[SFPW_MAX_INPUTS], out_shape;
    /* set by the kind's setup() */
    size_t w_n, b_n;                /* weight / bias (or scale / shift) */
    sfpw_tensor_kind w_kind, b_kind;
    sfpw_role w_role, b_role;
    size_t nbuf;                    /* running statistics (not trained) */
    int nslots;                     /* internal stashed tensors     */
    size_t slot_n[SFPW_MAX_SLOTS];  /* values per image             */
    size_t slot_fixed[SFPW_MAX_SLOTS]; /* plus values per step      */
    int slot_raw[SFPW_MAX_SLOTS];   /* FP32 statistics, never quantized */
    size_t slot_codes[SFPW_MAX_SLOTS]; /* > 0: packed codes (stashed
                                       exactly) standing in for this many
                                       input values per image          */
    sfpw_role slot_role[SFPW_MAX_SLOTS];
    const char *slot_name[SFPW_MAX_SLOTS];
    size_t scratch;                 /* floats of scratch per image  */
    size_t scratch_fixed;           /* plus floats                  */
    sfpw_conv_shape conv;           /* conv and patch geometry      */
    size_t fan_in;                  /* of the weight (initialisation) */
    /* set by the model builder */
    size_t w_off, b_off, buf_off;
    int w_tensor, b_tensor;         /* -1 if none                   */
    int slot_tensor[SFPW_MAX_SLOTS];
} sfpw_layer;

typedef struct sfpw_model {
    char name[SFPW_NAME_MAX];
    uint64_t hash;         /* of the graph (kinds, names, options, edges) */
    int nlayers;           /* in execution order                          */
    sfpw_layer layers[SFPW_MAX_LAYERS];
    int nvalues;
    sfpw_value values[SFPW_MAX_VALUES];
    int ntensors;
    sfpw_tensor tensors[SFPW_MAX_TENSORS];
    size_t nparams;
    size_t nbuffers;       /* running statistics (BatchNorm)              */
    size_t in_dim;
    sfpw_shape in_shape;
    int output;            /* value holding the logits                    */
    int classes;
} sfpw_model;

/*
 * Parses a model file (text, len bytes, need not be NUL-terminated). On
 * success fills *m and returns 0; on error returns SFP_EINVAL and writes
 * "line N: what is wrong" into err (cap bytes). name: the model's name
 * unless the file names itself ("model NAME").
 */
int sfpw_model_parse(sfpw_model *m, const char *text, size_t len,
                     const char *name, char *err, size_t cap);
/* A built-in model ("mlp", "cnn", "resnet", "vit"); SFP_EINVAL if unknown. */
int sfpw_model_build(sfpw_model *m, const char *name);
/* Reads and parses a model file; errors as sfpw_model_parse (with the path). */
int sfpw_model_load(sfpw_model *m, const char *path, char *err, size_t cap);
/* The text of a built-in model, NULL if unknown; names: NULL-terminated. */
const char *sfpw_model_builtin_text(const char *name);
extern const char *const sfpw_model_builtin_names[];

void sfpw_model_print(const sfpw_model *m, FILE *f);
/* Initial parameters and running statistics; deterministic in seed. */
void sfpw_model_init_params(const sfpw_model *m, float *params, uint64_t seed);
void sfpw_model_init_buffers(const sfpw_model *m, float *buffers);

#endif
