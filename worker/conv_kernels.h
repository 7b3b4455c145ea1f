/* conv_kernels.h - the AVX2 micro-kernels of conv.c (conv_avx2.c); not an
 * interface. See conv_avx2.c for the contracts. */
#ifndef SFPW_CONV_KERNELS_H
#define SFPW_CONV_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* dst[j] (+)= src[j] (+ bias, then ReLU) for j < n: add 1 adds (bias and
 * relu ignored), else writes */
static inline void sfpw_conv_row(float *dst, const float *src, size_t n, float bias, int relu,
                                 int add)
{
    if (add)
        for (size_t j = 0; j < n; j++)
            dst[j] += src[j];
    else if (relu)
        for (size_t j = 0; j < n; j++) {
            float v = src[j] + bias;
            dst[j] = v > 0.0f ? v : 0.0f;
        }
    else
        for (size_t j = 0; j < n; j++)
            dst[j] = src[j] + bias;
}

void sfpw_conv_igemm_avx2(int M, int K, int np, int wp, int ow, const float *Apack,
                          const float *src, const int *koff, const float *bias, int relu,
                          int add, float *y, size_t ldy);
void sfpw_conv_igemm16_avx2(int M, int K, int np, int wp, int ow, const float *Apack,
                            const float *src, const int *koff, const float *bias, int relu,
                            int add, float *y, size_t ldy);
void sfpw_conv_wgrad_avx2(int M, int N, int np, const float *A, size_t lda, const float *src,
                          const int *koff, float *C, size_t ldc);

void sfpw_conv_wgrad16_avx2(int M, int N, int np, const float *At, const float *src,
                            const int *koff, float *C, size_t ldc);

void sfpw_pool_bwd_row_avx2(const float *r0, const float *r1, const float *g, float *d0,
                            float *d1, int ow, int add);

/* The max pool's rows with codes (kernels.c sfpw_pool_fwd_codes and
 * sfpw_pool_bwd_codes): one code byte per window (0-3 the argmax, 4 masked). */
void sfpw_pool_fwd_codes_row_avx2(const float *r0, const float *r1, float *y, uint8_t *code,
                                  int ow);
void sfpw_pool_bwd_codes_row_avx2(const uint8_t *code, const float *g, float *d0, float *d1,
                                  int ow, int add);

void sfpw_widen_t_avx2(const float *dy, int oc, int oh, int ow, int wp, float *dst);

#endif
