/*
 * hot.h - helpers of the elementwise kernels (not an interface).
 *
 * SFPW_HOT gives a function an AVX2 + FMA clone that the loader picks on
 * CPUs that have them (GCC's target_clones, an ifunc); elsewhere, and with
 * other compilers, the plain build runs. The bodies are written so that
 * the compiler vectorizes them: no calls to libm in the loops.
 */
#ifndef SFPW_HOT_H
#define SFPW_HOT_H

#include <stdint.h>
#include <string.h>

#include "config.h"

#if HAVE_AVX2 && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__)
#define SFPW_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SFPW_HOT
#endif

/* Sums over n values in 8 lanes (vectorizes without reassociating: each
 * lane adds in order), in double. */
static inline double sfpw_sum(const float *x, size_t n)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j];
    double s = 0;
    for (; i < n; i++)
        s += x[i];
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

/* sum (x - mu)^2 */
static inline double sfpw_sum_dev2(const float *x, size_t n, double mu)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            double d = x[i + j] - mu;
            acc[j] += d * d;
        }
    double s = 0;
    for (; i < n; i++)
        s += (x[i] - mu) * (x[i] - mu);
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

/* sum dy * (x - mu) */
static inline double sfpw_sum_dydev(const float *dy, const float *x, size_t n, double mu)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)dy[i + j] * (x[i + j] - mu);
    double s = 0;
    for (; i < n; i++)
        s += (double)dy[i] * (x[i] - mu);
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

/* e^x, relative error < 2e-7 over [-87, 88] (Cephes' polynomial); 0 below,
 * large above. Branch-free, inlined into vectorized loops. */
static inline float sfpw_exp(float x)
{
    x = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
    const float big = 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
    float n = (x * 1.44269504088896341f + big) - big;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

/* Phi(x) = (1 + erf(x / sqrt 2)) / 2 and phi(x) = e^(-x^2/2) / sqrt(2 pi):
 * Abramowitz & Stegun 7.1.26 (absolute error of erf < 1.5e-7). */
static inline void sfpw_normal_cdf_pdf(float x, float *cdf, float *pdf)
{
    const float z = x * 0.70710678118654752f, az = z < 0 ? -z : z;
    const float t = 1.0f / (1.0f + 0.3275911f * az);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    const float g = sfpw_exp(-z * z);
    const float erf_abs = 1.0f - p * t * g;
    *cdf = 0.5f + 0.5f * (z < 0 ? -erf_abs : erf_abs);
    *pdf = 0.39894228040143268f * g;
}

#endif
