/*
 * kernels.h - FP32 training kernels of sfp-train over OpenBLAS.
 *
 * Layouts: activations are row-major [B, features], images NCHW
 * ([B, C, H, W], contiguous, so "flatten" is free). Dense weights are
 * [out, in], conv weights [OC, C*K*K]. All backward functions ADD into the
 * weight and bias gradients (so callers zero them once per step) and WRITE
 * the input gradient. Deterministic: no threads of their own, fixed
 * summation order (OpenBLAS runs with OPENBLAS_NUM_THREADS=1 in tests).
 */
#ifndef SFPW_KERNELS_H
#define SFPW_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- random */

/* xoshiro256** seeded by splitmix64: one stream per (seed, purpose). */
typedef struct sfpw_rng {
    uint64_t s[4];
} sfpw_rng;

void sfpw_rng_seed(sfpw_rng *r, uint64_t seed, uint64_t stream);
uint64_t sfpw_rng_next(sfpw_rng *r);
double sfpw_rng_uniform(sfpw_rng *r);      /* [0, 1)       */
double sfpw_rng_normal(sfpw_rng *r);       /* N(0, 1)      */
/* Fisher-Yates shuffle of idx[0..n). */
void sfpw_rng_shuffle(sfpw_rng *r, uint32_t *idx, size_t n);

/* ----------------------------------------------------------------- dense */

/* Y[B,out] = X[B,in] W[out,in]^T + b (b NULL: no bias), then ReLU if relu */
void sfpw_dense_fwd(const float *X, const float *W, const float *b, float *Y,
                    int B, int in, int out, int relu);
/*
 * dW += dY^T X, db += colsum(dY) (db NULL: no bias); if dX, dX[0..dx_rows,
 * in] = dY W (dx_add: +=) for the first dx_rows rows only (the rest of dX
 * is not written).
 */
void sfpw_dense_bwd(const float *X, const float *W, const float *dY,
                    float *dX, int dx_rows, int dx_add, float *dW, float *db,
                    int B, int in, int out);

/* ---------------------------------------------------------------- conv2d */

typedef struct sfpw_conv_shape {
    int c, h, w;    /* input channels and size              */
    int oc, k, pad; /* output channels, square kernel, pad  */
    int stride;
    int oh, ow;     /* output size                          */
} sfpw_conv_shape;

void sfpw_conv_shape_init(sfpw_conv_shape *s, int c, int h, int w, int oc,
                          int k, int pad, int stride);
/*
 * conv.c: im2col over groups of images (enough output pixels per group for
 * an efficient GEMM), GEMM, and one pass that scatters the group back to
 * [B, OC, OH, OW] adding the bias and, with relu, applying ReLU. Backward:
 * dW from the same columns; dX of a stride-1 convolution as the forward
 * convolution of dY with the flipped, transposed kernel (a GEMM over
 * OC*k*k), else W^T dY scattered back (col2im).
 */
/* Which implementation runs: 1 the AVX2 kernels of stride-1 convolutions
 * (no im2col copy; where the CPU has AVX2 and FMA, unless SFPW_CONV=c), 0
 * im2col + GEMM for all. Returns what is in force. For tests. */
int sfpw_conv_set_impl(int fast);
/* 1 when the AVX2 kernels (conv_avx2.c) are in use: the CPU has AVX2 and
 * FMA and SFPW_CONV is not "c" (sfpw_conv_set_impl chooses too). */
int sfpw_simd_fast(void);
/* floats of scratch sfpw_conv_fwd and sfpw_conv_bwd need */
size_t sfpw_conv_scratch(const sfpw_conv_shape *s);
/* Y = conv(X) + b (b NULL: no bias), then ReLU if relu */
void sfpw_conv_fwd(const sfpw_conv_shape *s, const float *X, const float *W,
                   const float *b, float *Y, int B, int relu, float *scratch);
/* As dense: dW, db accumulate; dX written (dx_add: added) for the first
 * dx_rows images. db may be NULL (no bias). */
void sfpw_conv_bwd(const sfpw_conv_shape *s, const float *X, const float *W,
                   const float *dY, float *dX, int dx_rows, int dx_add,
                   float *dW, float *db, int B, float *scratch);

/* -------------------------------------------------------------- max-pool */

/* 2x2 stride 2 max pool over [B, C, H, W] (H, W even). Ties: first max. */
void sfpw_pool_fwd(const float *X, float *Y, int B, int C, int H, int W);
/* Recomputes the argmax from X; dX fully written (dx_add: added) for the
 * first dx_rows. */
void sfpw_pool_bwd(const float *X, const float *dY, float *dX, int dx_rows,
                   int dx_add, int C, int H, int W);

/*
 * The max pool of a ReLU output that keeps, instead of its input, what its
 * backward needs: per window a 3-bit code, the argmax (0-3, the first max,
 * as sfpw_pool_fwd chooses) or SFPW_POOL_MASKED when the maximum is not
 * positive (the ReLU passes no gradient there). An image's codes are packed
 * seven to a float, window w in bits 3 (w % 7) of float w / 7 (bits 0-20),
 * the other bits those of 1.0f (a finite float in [1, 2): stored exactly
 * wherever raw FP32 is); its last float's unused codes are 0. Codes start
 * afresh with every image: sfpw_pool_code_words(C, H, W) floats per image.
 * Both directions use sfpw_pool_code_scratch(C, H, W) bytes of scratch.
 */
#define SFPW_POOL_MASKED 4u
#define SFPW_POOL_CODES_PER_WORD 7
static inline size_t sfpw_pool_code_words(int C, int H, int W)
{
    return ((size_t)C * (H / 2) * (W / 2) + SFPW_POOL_CODES_PER_WORD - 1) /
           SFPW_POOL_CODES_PER_WORD;
}
static inline size_t sfpw_pool_code_scratch(int C, int H, int W)
{
    return sfpw_pool_code_words(C, H, W) * SFPW_POOL_CODES_PER_WORD;
}
void sfpw_pool_fwd_codes(const float *X, float *Y, float *codes, int B, int C, int H, int W,
                         void *scratch);
/* Backward from the codes alone: each gradient to its argmax, 0 for a
 * masked window; dX as sfpw_pool_bwd writes it, with the producer's ReLU
 * applied. Codes other than 0-3 route nothing. */
void sfpw_pool_bwd_codes(const float *codes, const float *dY, float *dX, int dx_rows,
                         int dx_add, int C, int H, int W, void *scratch);

/* ------------------------------------------------------------------ relu */

/* y[j] (+ b[j]) then ReLU if relu, over n values (b NULL: no bias) */
void sfpw_bias_act(float *y, const float *b, size_t n, int relu);

void sfpw_relu_fwd(float *Y, size_t n);
/* dY[i] = 0 where Y[i] <= 0 (Y is the layer's stored output). */
void sfpw_relu_bwd(const float *Y, float *dY, size_t n);

/* ------------------------------------------------------------------ loss */

/*
 * Softmax cross-entropy over logits [B, C]. Returns the SUM of the losses,
 * writes dlogits = (softmax - onehot) * scale (dlogits may alias logits)
 * and adds the number of correct argmax predictions to *correct.
 */
double sfpw_softmax_xent(const float *logits, const uint8_t *labels,
                         float *dlogits, int B, int C, float scale,
                         uint64_t *correct);
/* Argmax-only accuracy (evaluation). */
uint64_t sfpw_count_correct(const float *logits, const uint8_t *labels, int B,
                            int C);

/* ------------------------------------------------------------- optimizers */

typedef enum sfpw_opt_kind { SFPW_OPT_SGD = 0, SFPW_OPT_ADAM = 1 } sfpw_opt_kind;

typedef struct sfpw_opt_config {
    sfpw_opt_kind kind;
    float lr, momentum, weight_decay;
    float beta1, beta2, eps;
} sfpw_opt_config;

/*
 * One update of n parameters w with gradient g. s1/s2 are the optimizer
 * state (momentum, or Adam's m and v; s2 unused for SGD). t is the 1-based
 * step count (Adam bias correction). decay: apply weight decay (L2 for SGD,
 * decoupled for Adam).
 */
void sfpw_opt_update(const sfpw_opt_config *c, float *w, const float *g,
                     float *s1, float *s2, size_t n, uint64_t t, int decay);

#endif
