/*
 * binade_avx512.c - sfpw_bins_add's kernel (binade.h), AVX-512 F + BW.
 *
 * A block of 64 values as four vectors of 16: the bin j = top - E of each
 * value in a dword (zeros, subnormals, Inf/NaN and E > top made at least
 * 2^32 - 256, so no compare below picks them), narrowed with unsigned
 * saturation to 64 bytes whose per-bin popcounts are the counts. The sums
 * of m and m^2 go in 64-bit lanes: the even values (low dwords) and the odd
 * ones (high dwords) of each vector added to the same accumulator under
 * their own compare masks, m^2 by vpmuludq. The three saturating bins keep
 * their accumulators in registers; the bins >= low (rare in a weight
 * tensor once e >= 3) in memory, visited only when a vector has one. Every
 * lane of an accumulator gets at most 8 additions below 2^48 a block, and
 * the lanes go into the 128-bit sums every FLUSH blocks.
 */
#include <immintrin.h>

#include "binade.h"

#define FLUSH 2048 /* blocks: 2^11 * 8 * 2^48 < 2^63 */

static void flush(sfpw_bins *b, __m512i *s1, __m512i *s2, __m512i *s2l, int low,
                  uint64_t lowbins)
{
    for (int q = 0; q < SFPW_BINS_SAT; q++) {
        b->s1[q] += (uint64_t)_mm512_reduce_add_epi64(s1[q]);
        uint64_t l[8];
        _mm512_storeu_si512(l, s2[q]);
        for (int i = 0; i < 8; i++)
            b->s2[q] += l[i];
        s1[q] = s2[q] = _mm512_setzero_si512();
    }
    for (int q = low; q < SFPW_BINS; q++) {
        if (!(lowbins >> q & 1))
            continue;
        uint64_t l[8];
        _mm512_storeu_si512(l, s2l[q]);
        for (int i = 0; i < 8; i++)
            b->s2[q] += l[i];
        s2l[q] = _mm512_setzero_si512();
    }
}

size_t sfpw_bins_add_avx512(sfpw_bins *b, const float *x, size_t n, int top, int low)
{
    if (low < SFPW_BINS_SAT)
        low = SFPW_BINS_SAT; /* those bins have their s2 anyway */
    const __m512i ff = _mm512_set1_epi32(0xff), lo32 = _mm512_set1_epi64(0xffffffff);
    const __m512i topv = _mm512_set1_epi32(top), ones = _mm512_set1_epi32(-1);
    const __m512i mant = _mm512_set1_epi32(0x7fffff), lead = _mm512_set1_epi32(0x800000);
    const __m512i lowv = _mm512_set1_epi32(low), binsv = _mm512_set1_epi32(SFPW_BINS);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i s1[SFPW_BINS_SAT], s2[SFPW_BINS_SAT], s2l[SFPW_BINS];
    for (int q = 0; q < SFPW_BINS_SAT; q++)
        s1[q] = s2[q] = _mm512_setzero_si512();
    for (int q = 0; q < SFPW_BINS; q++)
        s2l[q] = _mm512_setzero_si512();
    uint64_t lowbins = 0; /* low bins whose accumulators hold something */
    const size_t nb = n / 64;
    for (size_t blk = 0; blk < nb; blk++) {
        __m128i j8[4];
        for (int v = 0; v < 4; v++) {
            const __m512i bits = _mm512_loadu_si512(x + 64 * blk + 16 * v);
            const __m512i E = _mm512_and_si512(_mm512_srli_epi32(bits, 23), ff);
            __m512i j = _mm512_sub_epi32(topv, E);
            j = _mm512_mask_mov_epi32(j, _mm512_cmpeq_epi32_mask(E, _mm512_setzero_si512()),
                                      ones);
            j8[v] = _mm512_cvtusepi32_epi8(j);
            /* m = the significand with its leading 1 */
            const __m512i m = _mm512_ternarylogic_epi32(bits, mant, lead, 0xea); /* (a & b) | c */
            const __m512i je = _mm512_and_si512(j, lo32), jo = _mm512_srli_epi64(j, 32);
            const __m512i me = _mm512_and_si512(m, lo32), mo = _mm512_srli_epi64(m, 32);
            const __m512i qe = _mm512_mul_epu32(m, m), qo = _mm512_mul_epu32(mo, mo);
            for (int q = 0; q < SFPW_BINS_SAT; q++) {
                const __m512i qv = _mm512_set1_epi64(q);
                const __mmask8 ke = _mm512_cmpeq_epi64_mask(je, qv);
                const __mmask8 ko = _mm512_cmpeq_epi64_mask(jo, qv);
                s1[q] = _mm512_mask_add_epi64(s1[q], ke, s1[q], me);
                s1[q] = _mm512_mask_add_epi64(s1[q], ko, s1[q], mo);
                s2[q] = _mm512_mask_add_epi64(s2[q], ke, s2[q], qe);
                s2[q] = _mm512_mask_add_epi64(s2[q], ko, s2[q], qo);
            }
            const __mmask16 kl = _mm512_cmpge_epu32_mask(j, lowv) &
                                 _mm512_cmplt_epu32_mask(j, binsv);
            if (kl) {
                /* the bins present among these lanes, one at a time */
                uint32_t pres = (uint32_t)_mm512_reduce_or_epi32(
                    _mm512_maskz_sllv_epi32(kl, one, j));
                lowbins |= pres;
                while (pres) {
                    const int q = __builtin_ctz(pres);
                    pres &= pres - 1;
                    const __m512i qv = _mm512_set1_epi64(q);
                    const __mmask8 ke = _mm512_cmpeq_epi64_mask(je, qv);
                    const __mmask8 ko = _mm512_cmpeq_epi64_mask(jo, qv);
                    s2l[q] = _mm512_mask_add_epi64(s2l[q], ke, s2l[q], qe);
                    s2l[q] = _mm512_mask_add_epi64(s2l[q], ko, s2l[q], qo);
                }
            }
        }
        __m512i jb = _mm512_castsi128_si512(j8[0]);
        jb = _mm512_inserti32x4(jb, j8[1], 1);
        jb = _mm512_inserti32x4(jb, j8[2], 2);
        jb = _mm512_inserti32x4(jb, j8[3], 3);
        for (int q = 0; q < SFPW_BINS; q++)
            b->n[q] += (uint64_t)__builtin_popcountll(
                _mm512_cmpeq_epi8_mask(jb, _mm512_set1_epi8((char)q)));
        if ((blk + 1) % FLUSH == 0) {
            flush(b, s1, s2, s2l, low, lowbins);
            lowbins = 0;
        }
    }
    flush(b, s1, s2, s2l, low, lowbins);
    return nb * 64;
}
