/* conv_kernels.h - the AVX2 micro-kernels of conv.c (conv_avx2.c); not an
 * interface. See conv_avx2.c for the contracts. */
#ifndef SFPW_CONV_KERNELS_H
#define SFPW_CONV_KERNELS_H

#include <stddef.h>

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

#endif
