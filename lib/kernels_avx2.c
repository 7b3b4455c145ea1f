/*
 * kernels_avx2.c - AVX2 versions of the quantizer hot loops. Each must give
 * results bit-identical to the C reference in quant.c (tests/lib/test_kernels
 * checks). Stochastic rounding uses the C reference (64-bit multiplies).
 */
#include <immintrin.h>

#include "config.h"
#include "internal.h"

/* Rounds the magnitudes in a (8 lanes) like sfp__round_mag (RNE/TRUNC). */
static inline __m256i round_mag8(__m256i a, const sfp__round *r, __m256i *sat)
{
    *sat = _mm256_setzero_si256();
    if (r->shift == 0)
        return a;
    const __m256i low = _mm256_set1_epi32((int)r->lowmask);
    const __m128i sh = _mm_cvtsi32_si128((int)r->shift);
    __m256i m;
    if (r->mode == SFP_ROUND_TRUNC) {
        m = _mm256_andnot_si256(low, a);
    } else {
        __m256i odd = _mm256_and_si256(_mm256_srl_epi32(a, sh), _mm256_set1_epi32(1));
        __m256i add = _mm256_add_epi32(_mm256_set1_epi32((int)(r->lowmask >> 1)), odd);
        m = _mm256_andnot_si256(low, _mm256_add_epi32(a, add));
    }
    /* m >= 0x7f800000 (as signed: a <= 0x7fffffff, m fits in 31 bits + carry) */
    __m256i ov = _mm256_cmpgt_epi32(m, _mm256_set1_epi32(0x7f7fffff));
    *sat = ov;
    return _mm256_blendv_epi8(m, _mm256_set1_epi32((int)r->satmag), ov);
}

static void analyze_avx2(const uint32_t *x, size_t n, const sfp__round *r,
                         uint64_t i0, sfp__hist *h)
{
    if (r->mode == SFP_ROUND_STOCHASTIC) {
        sfp__kernels_c.analyze(x, n, r, i0, h);
        return;
    }
    uint32_t sub[4][512];
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    const __m256i negz = _mm256_set1_epi32((int)0x80000000u);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i dummy = _mm256_set1_epi32(255);
    size_t i = 0;

    while (i < n) {
        /* Sub-histograms are u32: flush every 2^24 values. */
        size_t end = n - i > (1u << 24) ? i + (1u << 24) : n;
        memset(sub, 0, sizeof(sub));
        __m256i nonfin = zero, zc = zero, nzc = zero, satc = zero;
        for (; i + 8 <= end; i += 8) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
            __m256i a = _mm256_and_si256(v, absmask);
            nonfin = _mm256_or_si256(nonfin, _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f7fffff)));
            nzc = _mm256_sub_epi32(nzc, _mm256_cmpeq_epi32(v, negz));
            __m256i ov;
            __m256i m = round_mag8(a, r, &ov);
            __m256i isz = _mm256_cmpeq_epi32(m, zero);
            /* a == 0 implies m == 0; overflow only counts for non-zero a */
            satc = _mm256_sub_epi32(satc, _mm256_andnot_si256(isz, ov));
            zc = _mm256_sub_epi32(zc, isz);
            __m256i idx = _mm256_or_si256(_mm256_slli_epi32(_mm256_srli_epi32(v, 31), 8),
                                          _mm256_srli_epi32(m, 23));
            idx = _mm256_blendv_epi8(idx, dummy, isz);
            uint32_t id[8];
            _mm256_storeu_si256((__m256i *)id, idx);
            sub[0][id[0]]++; sub[1][id[1]]++; sub[2][id[2]]++; sub[3][id[3]]++;
            sub[0][id[4]]++; sub[1][id[5]]++; sub[2][id[6]]++; sub[3][id[7]]++;
        }
        uint32_t t[8];
        _mm256_storeu_si256((__m256i *)t, nonfin);
        for (int j = 0; j < 8; j++)
            h->nonfinite |= t[j] != 0;
        _mm256_storeu_si256((__m256i *)t, zc);
        for (int j = 0; j < 8; j++)
            h->zeros += t[j];
        _mm256_storeu_si256((__m256i *)t, nzc);
        for (int j = 0; j < 8; j++)
            h->negzero += t[j];
        _mm256_storeu_si256((__m256i *)t, satc);
        for (int j = 0; j < 8; j++)
            h->saturated += t[j];
        for (int b = 0; b < 512; b++)
            if (b != 255 && b != 511)
                h->bin[b] += (uint64_t)sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
        if (i < end) { /* tail */
            sfp__kernels_c.analyze(x + i, end - i, r, i0 + i, h);
            i = end;
        }
    }
}

/* Packs the low byte of each 32-bit lane into 8 bytes. */
static inline uint64_t pack_lo_bytes(__m256i v)
{
    const __m256i shuf = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i b = _mm256_shuffle_epi8(v, shuf);
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    return (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(b));
}

static void split_avx2(const uint32_t *x, size_t n, const sfp__plan *pl,
                       uint64_t i0, uint8_t *code, uint32_t *mant, uint8_t *sign)
{
    if (pl->r.mode == SFP_ROUND_STOCHASTIC) {
        sfp__kernels_c.split(x, n, pl, i0, code, mant, sign);
        return;
    }
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i minE1 = _mm256_set1_epi32(pl->minE - 1);
    const __m256i anchor = _mm256_set1_epi32(pl->anchor);
    const __m256i satv = _mm256_set1_epi32((int)(((uint32_t)pl->anchor << 23) |
                                                 (0x7fffffu & ~pl->r.lowmask)));
    const __m256i lo1 = _mm256_set1_epi32(pl->lo - 1);
    const __m256i frac = _mm256_set1_epi32(0x7fffff);
    const __m128i sh = _mm_cvtsi32_si128((int)pl->r.shift);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
        __m256i a = _mm256_and_si256(v, absmask);
        __m256i ov;
        __m256i m = round_mag8(a, &pl->r, &ov);
        __m256i E = _mm256_srli_epi32(m, 23);
        __m256i flush = _mm256_or_si256(_mm256_cmpeq_epi32(m, zero),
                                        _mm256_cmpgt_epi32(minE1, E));
        m = _mm256_blendv_epi8(m, satv, _mm256_cmpgt_epi32(E, anchor));
        __m256i y = _mm256_or_si256(_mm256_andnot_si256(absmask, v), m);
        y = _mm256_andnot_si256(flush, y);
        y = _mm256_blendv_epi8(y, v, _mm256_cmpeq_epi32(a, zero));
        __m256i ya = _mm256_and_si256(y, absmask);
        __m256i c = _mm256_sub_epi32(_mm256_srli_epi32(ya, 23), lo1);
        c = _mm256_andnot_si256(_mm256_cmpeq_epi32(ya, zero), c);
        uint64_t cb = pack_lo_bytes(c);
        uint64_t sb = pack_lo_bytes(_mm256_srli_epi32(y, 31));
        memcpy(code + i, &cb, 8);
        memcpy(sign + i, &sb, 8);
        _mm256_storeu_si256((__m256i *)(mant + i),
                            _mm256_srl_epi32(_mm256_and_si256(ya, frac), sh));
    }
    if (i < n)
        sfp__kernels_c.split(x + i, n - i, pl, i0 + i, code + i, mant + i, sign + i);
}

static void join_avx2(uint32_t *y, size_t n, unsigned shift, int lo,
                      const uint8_t *code, const uint32_t *mant, const uint8_t *sign)
{
    const __m256i lo1 = _mm256_set1_epi32(lo - 1);
    const __m256i zero = _mm256_setzero_si256();
    const __m128i sh = _mm_cvtsi32_si128((int)shift);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(code + i)));
        __m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sign + i)));
        __m256i m = _mm256_loadu_si256((const __m256i *)(mant + i));
        __m256i v = _mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(c, lo1), 23),
                                    _mm256_sll_epi32(m, sh));
        v = _mm256_andnot_si256(_mm256_cmpeq_epi32(c, zero), v);
        v = _mm256_or_si256(v, _mm256_slli_epi32(s, 31));
        _mm256_storeu_si256((__m256i *)(y + i), v);
    }
    if (i < n)
        sfp__kernels_c.join(y + i, n - i, shift, lo, code + i, mant + i, sign + i);
}

const sfp__kernels sfp__kernels_avx2 = {
    .analyze = analyze_avx2,
    .split = split_avx2,
    .join = join_avx2,
};
