/*
 * binade.h - per-binade sums of a weight tensor for the anchor by error
 * (dist.c: sfpw_dist_anchor_by_error). Not an interface.
 *
 * Bin j holds the finite normal values of biased exponent top - j, for
 * j < SFPW_BINS; zeros, subnormals, Inf/NaN and exponents above top are in
 * no bin. Of each value only its significand m (the 23 stored bits with the
 * leading 1: 2^23 <= m < 2^24; |x| = m 2^(E - 150)) is summed, in integers,
 * so the sums are exact and any order gives the same bits: the C loop and
 * the AVX-512 kernel agree bit for bit, and the ranks' sums add exactly.
 */
#ifndef SFPW_BINADE_H
#define SFPW_BINADE_H

#include <stddef.h>
#include <stdint.h>

#define SFPW_BINS 20    /* bins j = 0 .. SFPW_BINS - 1               */
#define SFPW_BINS_SAT 3 /* bins j < 3: the ones a lowered anchor saturates */

/*
 * n[j]: values in bin j (every bin). s1[j]: the sum of m, bins j <
 * SFPW_BINS_SAT. s2[j]: the sum of m^2 (each below 2^48), bins j <
 * SFPW_BINS_SAT and j >= low (the ones an anchor can saturate or flush);
 * the sums of other bins stay 0. 2^40 values at most.
 */
typedef struct sfpw_bins {
    uint64_t n[SFPW_BINS];
    uint64_t s1[SFPW_BINS_SAT];
    unsigned __int128 s2[SFPW_BINS];
} sfpw_bins;

/* Adds the n values of x to b (bins below top; s2 of bins >= low). The
 * AVX-512 kernel where the CPU has it (sfpw_bins_set_impl). */
void sfpw_bins_add(sfpw_bins *b, const float *x, size_t n, int top, int low);

/* The C loop (0) or the AVX-512 kernel (1, where the CPU has it: returns
 * what is in use). Tests. */
int sfpw_bins_set_impl(int simd);

/* The reference loop, and the kernel (binade_avx512.c) for whole blocks
 * of 64 values: returns the values done. */
void sfpw_bins_add_c(sfpw_bins *b, const float *x, size_t n, int top, int low);
size_t sfpw_bins_add_avx512(sfpw_bins *b, const float *x, size_t n, int top, int low);

#endif
