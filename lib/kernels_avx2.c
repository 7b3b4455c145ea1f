/*
 * kernels_avx2.c - AVX2 versions of the quantizer hot loops. Each must give
 * results bit-identical to the C reference in quant.c (tests/lib/test_kernels
 * checks). Stochastic rounding uses the C reference (64-bit multiplies).
 */
#include <immintrin.h>

#include "config.h"
#include "internal.h"
#include "simd_bits.h"

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
            prefetch_ahead(x + i, PF_SCAN);
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

/*
 * Fast pass 1. Rounding (RNE or truncation) is monotonic in the magnitude, so
 * the largest and smallest non-zero rounded exponents follow from the
 * largest and smallest non-zero input magnitudes: the loop only tracks those,
 * the zeros, -0 and whether any value is negative. Inputs with subnormals,
 * values that may saturate, and stochastic rounding take the exact C scan.
 */
static uint64_t count_below_avx2(const uint32_t *x, size_t n, uint32_t lim)
{
    /* magnitudes and lim are below 2^31: signed compares; per-lane counts
     * (subtracting the -1 of a match) folded before they could wrap */
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    const __m256i vlim = _mm256_set1_epi32((int)lim);
    uint64_t total = 0;
    size_t i = 0;
    while (i + 8 <= n) {
        const size_t stop = n - i > (size_t)1 << 30 ? i + ((size_t)1 << 30) : n;
        __m256i c0 = _mm256_setzero_si256(), c1 = c0;
        for (; i + 16 <= stop; i += 16) {
            __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), absmask);
            __m256i b = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i + 8)), absmask);
            c0 = _mm256_sub_epi32(c0, _mm256_cmpgt_epi32(vlim, a));
            c1 = _mm256_sub_epi32(c1, _mm256_cmpgt_epi32(vlim, b));
        }
        for (; i + 8 <= stop; i += 8) {
            __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + i)), absmask);
            c0 = _mm256_sub_epi32(c0, _mm256_cmpgt_epi32(vlim, a));
        }
        uint32_t t[8];
        _mm256_storeu_si256((__m256i *)t, _mm256_add_epi32(c0, c1));
        for (int j = 0; j < 8; j++)
            total += t[j];
    }
    return total + sfp__kernels_c.count_below(x + i, n - i, lim);
}

static void scan_avx2(const uint32_t *x, size_t n, const sfp__round *r,
                      uint64_t i0, int fixed_anchor, sfp__scan *sc)
{
    if (r->mode == SFP_ROUND_STOCHASTIC || n < 64) {
        sfp__kernels_c.scan(x, n, r, i0, fixed_anchor, sc);
        return;
    }
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    const __m256i negz = _mm256_set1_epi32((int)0x80000000u);
    const __m256i zero = _mm256_setzero_si256();
    __m256i amax = zero, amin = _mm256_set1_epi32(-1), neg = zero;
    uint64_t zeros = 0, negzero = 0;
    size_t i = 0;
    while (i + 8 <= n) {
        size_t end = n - i > ((size_t)1 << 28) ? i + ((size_t)1 << 28) : n;
        __m256i zc = zero, nzc = zero;
        for (; i + 8 <= end; i += 8) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
            __m256i a = _mm256_and_si256(v, absmask);
            __m256i isz = _mm256_cmpeq_epi32(a, zero);
            amax = _mm256_max_epi32(amax, a);
            amin = _mm256_min_epu32(amin, _mm256_or_si256(a, isz));
            zc = _mm256_sub_epi32(zc, isz);
            nzc = _mm256_sub_epi32(nzc, _mm256_cmpeq_epi32(v, negz));
            neg = _mm256_or_si256(neg, _mm256_andnot_si256(isz, v));
        }
        uint32_t t[8];
        _mm256_storeu_si256((__m256i *)t, zc);
        for (int j = 0; j < 8; j++)
            zeros += t[j];
        _mm256_storeu_si256((__m256i *)t, nzc);
        for (int j = 0; j < 8; j++)
            negzero += t[j];
    }
    uint32_t t[8];
    uint32_t hi = 0, lo = 0xffffffffu, anyneg = 0;
    _mm256_storeu_si256((__m256i *)t, amax);
    for (int j = 0; j < 8; j++)
        hi = t[j] > hi ? t[j] : hi;
    _mm256_storeu_si256((__m256i *)t, amin);
    for (int j = 0; j < 8; j++)
        lo = t[j] < lo ? t[j] : lo;
    _mm256_storeu_si256((__m256i *)t, neg);
    for (int j = 0; j < 8; j++)
        anyneg |= t[j] >> 31;
    scan_finish(x, n, i, r, i0, fixed_anchor, sc, hi, lo, anyneg, zeros, negzero);
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

/* Vector constants of a plan, loaded once per call (RNE/TRUNC). */
typedef struct qconst {
    __m256i absmask, zero, low, half, one, sat_ovf, minE, anchor, satv, lim;
    __m128i sh;
    int trunc, noround, fast;
} qconst;

static inline void qconst_init(qconst *q, const sfp__plan *pl)
{
    const qscal s = qscal_of(pl);
    q->absmask = _mm256_set1_epi32(0x7fffffff), q->zero = _mm256_setzero_si256();
    q->low = _mm256_set1_epi32((int)s.low), q->half = _mm256_set1_epi32((int)s.half);
    q->one = _mm256_set1_epi32(1), q->sat_ovf = _mm256_set1_epi32((int)s.satmag);
    q->lim = _mm256_set1_epi32(0x7f7fffff), q->minE = _mm256_set1_epi32(s.minE);
    q->anchor = _mm256_set1_epi32(s.anchor), q->satv = _mm256_set1_epi32((int)s.satv);
    q->sh = _mm_cvtsi32_si128((int)s.shift);
    q->trunc = s.trunc, q->noround = s.noround, q->fast = s.fast;
}

/* Quantizes 8 patterns under the plan (RNE/TRUNC). With fast set, the
 * tensor is known to hold no -0 and no value that saturates. */
static inline __attribute__((always_inline)) __m256i
quant8f(__m256i v, const qconst *q, const int fast)
{
    __m256i a = _mm256_and_si256(v, q->absmask);
    __m256i m = a;
    if (!q->noround) {
        if (q->trunc) {
            m = _mm256_andnot_si256(q->low, a);
        } else {
            __m256i odd = _mm256_and_si256(_mm256_srl_epi32(a, q->sh), q->one);
            m = _mm256_andnot_si256(q->low, _mm256_add_epi32(a, _mm256_add_epi32(q->half, odd)));
        }
        if (!fast)
            m = _mm256_blendv_epi8(m, q->sat_ovf, _mm256_cmpgt_epi32(m, q->lim));
    }
    __m256i E = _mm256_srli_epi32(m, 23);
    __m256i flush = _mm256_or_si256(_mm256_cmpeq_epi32(m, q->zero),
                                    _mm256_cmpgt_epi32(q->minE, E));
    if (!fast)
        m = _mm256_blendv_epi8(m, q->satv, _mm256_cmpgt_epi32(E, q->anchor));
    __m256i y = _mm256_or_si256(_mm256_andnot_si256(q->absmask, v), m);
    y = _mm256_andnot_si256(flush, y);
    if (fast)
        return y;
    return _mm256_blendv_epi8(y, v, _mm256_cmpeq_epi32(a, q->zero));
}

static inline __m256i quant8(__m256i v, const qconst *q)
{
    return q->fast ? quant8f(v, q, 1) : quant8f(v, q, 0);
}

static void quantize_avx2(uint32_t *y, const uint32_t *x, size_t n,
                          const sfp__plan *pl, uint64_t i0)
{
    size_t i = 0;
    qconst q;
    qconst_init(&q, pl);
    if (pl->r.mode != SFP_ROUND_STOCHASTIC)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_si256((__m256i *)(y + i),
                                quant8(_mm256_loadu_si256((const __m256i *)(x + i)), &q));
    if (i < n)
        sfp__kernels_c.quantize(y + i, x + i, n - i, pl, i0 + i);
}

/*
 * The encoder's per-value loop. With the plain coder the exponent codes go
 * straight into the exponent plane instead of through cbuf.
 */
static inline __attribute__((always_inline)) void
enc_values_body(sfp__codec *c, const uint32_t *x, size_t n, uint64_t i0,
                uint64_t *zw, const qconst *qp, const int fast, const int plain,
                const int zmap, const int hsign)
{
    const qconst q = *qp;
    const __m256i lo1 = _mm256_set1_epi32(c->lo - 1);
    const __m256i frac = _mm256_set1_epi32(0x7fffff);
    const __m128i sh = _mm_cvtsi32_si128((int)c->shift);
    /* code << 8 | mantissa (k <= 8): bytes 0 (mantissas) and 1 (codes) */
    const __m256i shuf2 = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                           0, 4, 8, 12, 1, 5, 9, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i perm2 = _mm256_setr_epi32(0, 4, 1, 5, 2, 2, 2, 2);
    const unsigned k = c->k, e = c->ebits;
    const int zsign = fast ? 0 : c->zsign; /* fast implies no -0 */
    const uint64_t km8 = bytemask(k), em8 = bytemask(e);
    const uint64_t km16 = ONES16 * ((1u << (k > 16 ? 16 : k)) - 1);
    const uint64_t km32 = (UINT64_C(1) << k) - 1;
    const __m256i lo32 = _mm256_set1_epi64x(0xffffffff);
    const __m128i kc = _mm_cvtsi32_si128((int)k);
    /* Local copies keep the writers in registers (no aliasing with cbuf). */
    sfp__bw ws = c->wsign, wm = c->wmant, we = c->wexp;
    uint8_t *cb = c->cbuf;
    size_t cn = c->cn;
    uint64_t nonzero = 0, negative = 0;
    /* Sign and (k <= 8) mantissa bits of several 8-value groups are gathered
     * in a register and written with one sfp__bw_put: the sign bits of a
     * whole 64-block (<= 64), the mantissas of R groups (R * 8 * k <= 64). */
    const unsigned R = k <= 1 ? 8 : k <= 2 ? 4 : k <= 4 ? 2 : 1;
    uint64_t ps = 0, pm = 0;
    unsigned psn = 0, pmn = 0;

    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = 0;
        size_t j = 0;
        for (; j + 8 <= m; j += 8) {
            __m256i y = quant8f(_mm256_loadu_si256((const __m256i *)(x + b + j)), &q, fast);
            __m256i ya = _mm256_and_si256(y, q.absmask);
            __m256i isz = _mm256_cmpeq_epi32(ya, q.zero);
            unsigned nz8 = 0xffu ^ (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(isz));
            unsigned cnt = (unsigned)__builtin_popcount(nz8);
            uint64_t nzb = expand8(nz8);
            word |= (uint64_t)nz8 << j;
            if (hsign) {
                unsigned s8 = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(y));
                negative += (unsigned)__builtin_popcount(s8 & nz8);
                if (zsign) {
                    ps |= (uint64_t)s8 << psn;
                    psn += 8;
                } else {
                    ps |= (uint64_t)_pext_u32(s8, nz8) << psn;
                    psn += cnt;
                }
            }
            __m256i cd = _mm256_andnot_si256(isz, _mm256_sub_epi32(_mm256_srli_epi32(ya, 23), lo1));
            uint64_t codes;
            if (k <= 8) {
                __m256i mt = _mm256_srl_epi32(_mm256_and_si256(ya, frac), sh);
                __m256i both = _mm256_or_si256(mt, _mm256_slli_epi32(cd, 8));
                both = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(both, shuf2), perm2);
                __m128i lo128 = _mm256_castsi256_si128(both);
                codes = (uint64_t)_mm_extract_epi64(lo128, 1);
                if (k) {
                    pm |= _pext_u64((uint64_t)_mm_cvtsi128_si64(lo128), km8 & nzb) << pmn;
                    pmn += cnt * k;
                    if (((((unsigned)j >> 3) + 1) & (R - 1)) == 0) {
                        sfp__bw_put(&wm, pm, pmn);
                        pm = 0, pmn = 0;
                    }
                }
            } else {
                codes = pack_lo_bytes(cd);
                __m256i mt = _mm256_srl_epi32(_mm256_and_si256(ya, frac), sh);
                if (k <= 16) {
                    __m256i p16 = _mm256_packus_epi32(mt, mt);
                    uint64_t m0 = km16 & expand16(nz8 & 15), m1 = km16 & expand16(nz8 >> 4);
                    sfp__bw_put(&wm, _pext_u64((uint64_t)_mm256_extract_epi64(p16, 0), m0),
                                (unsigned)__builtin_popcount(nz8 & 15) * k);
                    sfp__bw_put(&wm, _pext_u64((uint64_t)_mm256_extract_epi64(p16, 2), m1),
                                (unsigned)__builtin_popcount(nz8 >> 4) * k);
                } else {
                    /* left-pack the non-zero lanes (vpermd by pext of the
                     * lane numbers), then two fields per 64-bit lane */
                    __m256i idx = _mm256_cvtepu8_epi32(
                        _mm_cvtsi64_si128((long long)_pext_u64(LANES8, nzb)));
                    __m256i cm = _mm256_permutevar8x32_epi32(mt, idx);
                    __m256i pr = _mm256_or_si256(_mm256_and_si256(cm, lo32),
                                                 _mm256_sll_epi64(_mm256_srli_epi64(cm, 32), kc));
                    uint64_t t[4];
                    _mm256_storeu_si256((__m256i *)t, pr);
                    for (unsigned qq = 0, left = cnt; left; qq++) {
                        unsigned f = left < 2 ? left : 2;
                        sfp__bw_put(&wm, t[qq] & (f == 2 ? ~UINT64_C(0) : km32), f * k);
                        left -= f;
                    }
                }
            }
            if (plain) {
                if (zmap)
                    sfp__bw_put(&we, _pext_u64(codes, em8 & nzb), cnt * e);
                else
                    sfp__bw_put(&we, _pext_u64(codes, em8), 8 * e);
            } else if (zmap) {
                store8(cb + cn, _pext_u64(codes, nzb));
                cn += cnt;
            } else {
                store8(cb + cn, codes);
                cn += 8;
            }
        }
        if (hsign) {
            sfp__bw_put(&ws, ps, psn);
            ps = 0, psn = 0;
        }
        if (pmn) {
            sfp__bw_put(&wm, pm, pmn);
            pm = 0, pmn = 0;
        }
        if (j < m)
            word |= enc_tail(c, x, b, j, m, i0, &ws, &wm, &we, &cn, plain);
        zw[b / 64] = word;
        nonzero += (uint64_t)__builtin_popcountll(word);
    }
    c->wsign = ws;
    c->wmant = wm;
    c->wexp = we;
    c->cn = cn;
    c->nonzero += nonzero;
    c->negative += negative;
}

/*
 * The encoder's loop for the common case, compiled once per mantissa width
 * K (0..8): round to nearest even, a tensor without -0 and without values
 * that saturate (the plan's "fast"), codes queued in cbuf (for the plain
 * coder written out at the end). Whole 64-blocks only, the eight groups of 8 unrolled so that
 * the shifts, masks and the points where 64 / (8 K) groups of mantissas are
 * written with one put are constants; the flush mask doubles as the zero
 * test (a value is 0 after quantization exactly when it is flushed).
 * Writes the same bits as enc_values_body. Returns how many values it did.
 */
static inline __attribute__((always_inline)) size_t
enc_fast_body(sfp__codec *c, const uint32_t *x, size_t n, uint64_t *zw,
              const qscal *s, const unsigned K, const int zmap, const int hsign)
{
    const unsigned SH = 23 - K;
    const unsigned R = K <= 1 ? 8 : K <= 2 ? 4 : K <= 4 ? 2 : 1;
    const uint64_t KM8 = bytemask(K > 8 ? 8 : K);
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    const __m256i low = _mm256_set1_epi32((int)((1u << SH) - 1));
    const __m256i half = _mm256_set1_epi32((int)((1u << SH) - 1) >> 1);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i minE = _mm256_set1_epi32(s->minE);
    const __m256i lo1 = _mm256_set1_epi32(c->lo - 1);
    const __m256i frac = _mm256_set1_epi32(0x7fffff);
    const __m256i shuf2 = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                           0, 4, 8, 12, 1, 5, 9, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i perm2 = _mm256_setr_epi32(0, 4, 1, 5, 2, 2, 2, 2);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lo32 = _mm256_set1_epi64x(0xffffffff);
    sfp__bw ws = c->wsign, wm = c->wmant;
    uint8_t *cb = c->cbuf;
    size_t cn = c->cn;
    uint64_t nonzero = 0, negative = 0;
    const size_t nb = n & ~(size_t)63;

    for (size_t b = 0; b < nb; b += 64) {
        prefetch_block(x + b, PF_ENC);
        uint64_t word = 0, ps = 0, pm = 0;
        unsigned psn = 0, pmn = 0;
#pragma GCC unroll 8
        for (unsigned j = 0; j < 64; j += 8) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x + b + j));
            __m256i a = _mm256_and_si256(v, absmask);
            __m256i m = a; /* K = 23: nothing to round */
            if (SH) {
                __m256i odd = _mm256_and_si256(_mm256_srli_epi32(a, (int)SH), one);
                m = _mm256_andnot_si256(low, _mm256_add_epi32(a, _mm256_add_epi32(half, odd)));
            }
            __m256i E = _mm256_srli_epi32(m, 23);
            __m256i fl = _mm256_or_si256(_mm256_cmpeq_epi32(m, zero),
                                         _mm256_cmpgt_epi32(minE, E));
            unsigned nz8 = 0xffu ^ (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(fl));
            unsigned cnt = (unsigned)__builtin_popcount(nz8);
            uint64_t nzb = expand8(nz8);
            word |= (uint64_t)nz8 << j;
            if (hsign) {
                unsigned s8 = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(v));
                negative += (unsigned)__builtin_popcount(s8 & nz8);
                ps |= (uint64_t)_pext_u32(s8, nz8) << psn;
                psn += cnt;
            }
            __m256i cd = _mm256_sub_epi32(E, lo1);
            if (!zmap)
                cd = _mm256_andnot_si256(fl, cd);
            uint64_t codes;
            if (K == 23) {
                /* left-pack the non-zero lanes (vpermd by pext of the lane
                 * numbers), clear the lanes past them, two 23-bit fields
                 * per 64-bit lane, the four lanes as 184 contiguous bits */
                codes = pack_lo_bytes(cd);
                __m256i idx = _mm256_cvtepu8_epi32(
                    _mm_cvtsi64_si128((long long)_pext_u64(LANES8, nzb)));
                __m256i cm = _mm256_permutevar8x32_epi32(_mm256_and_si256(m, frac), idx);
                cm = _mm256_and_si256(cm, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cnt), iota));
                __m256i pr = _mm256_or_si256(_mm256_and_si256(cm, lo32),
                                             _mm256_slli_epi64(_mm256_srli_epi64(cm, 32), 23));
                __m128i p01 = _mm256_castsi256_si128(pr), p23 = _mm256_extracti128_si256(pr, 1);
                uint64_t l0 = (uint64_t)_mm_cvtsi128_si64(p01), l1 = (uint64_t)_mm_extract_epi64(p01, 1);
                uint64_t l2 = (uint64_t)_mm_cvtsi128_si64(p23), l3 = (uint64_t)_mm_extract_epi64(p23, 1);
                const unsigned bits = 23 * cnt;
                sfp__bw_put(&wm, l0 | l1 << 46, bits < 64 ? bits : 64);
                if (bits > 64) {
                    sfp__bw_put(&wm, l1 >> 18 | l2 << 28, bits < 128 ? bits - 64 : 64);
                    if (bits > 128)
                        sfp__bw_put(&wm, l2 >> 36 | l3 << 10, bits - 128);
                }
            } else {
            __m256i both = _mm256_slli_epi32(cd, 8);
            if (K)
                both = _mm256_or_si256(both, _mm256_srli_epi32(_mm256_and_si256(m, frac), (int)SH));
            both = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(both, shuf2), perm2);
            __m128i lo128 = _mm256_castsi256_si128(both);
            codes = (uint64_t)_mm_extract_epi64(lo128, 1);
            if (K) {
                pm |= _pext_u64((uint64_t)_mm_cvtsi128_si64(lo128), KM8 & nzb) << pmn;
                pmn += cnt * K;
                if ((j / 8 + 1) % R == 0) {
                    sfp__bw_put(&wm, pm, pmn);
                    pm = 0, pmn = 0;
                }
            }
            }
            if (zmap) {
                store8(cb + cn, _pext_u64(codes, nzb));
                cn += cnt;
            } else {
                store8(cb + cn, codes);
                cn += 8;
            }
        }
        if (hsign)
            sfp__bw_put(&ws, ps, psn);
        zw[b / 64] = word;
        nonzero += (uint64_t)__builtin_popcountll(word);
    }
    fast_enc_finish(c, &ws, &wm, cn, nonzero, negative);
    return nb;
}

static void enc_values_avx2(sfp__codec *c, const uint32_t *x, size_t n,
                            uint64_t i0, uint64_t *zw)
{
    if (c->pl->r.mode == SFP_ROUND_STOCHASTIC) {
        sfp__kernels_c.enc_values(c, x, n, i0, zw);
        return;
    }
    const qscal s = qscal_of(c->pl);
    /* K 0..8 rounded to nearest even, or 23 (nothing to round): slot 9 */
    if (s.fast && (c->k <= 8 ? !s.trunc : s.noround)) {
        const int slot = c->k <= 8 ? (int)c->k : 9;
        size_t done = 0;
        switch (slot << 2 | (c->zmap ? 2 : 0) | (c->hsign ? 1 : 0)) {
#define SFP__FAST_CASE(v)                                                      \
    case v:                                                                    \
        done = enc_fast_body(c, x, n, zw, &s, (v) >> 2 == 9 ? 23 : (v) >> 2,   \
                             ((v) >> 1) & 1, (v) & 1);                         \
        break;
        SFP__CASES36(SFP__FAST_CASE)
        SFP__FAST_CASE(36) SFP__FAST_CASE(37) SFP__FAST_CASE(38) SFP__FAST_CASE(39)
#undef SFP__FAST_CASE
        }
        if (done == n)
            return;
        x += done, n -= done, i0 += done, zw += done / 64;
    }
    qconst q;
    qconst_init(&q, c->pl);
    /* Specialise the loop on what changes per tensor, not per value. */
    const int sel = (q.fast ? 8 : 0) | (c->coder == SFP_CODER_PLAIN ? 4 : 0) |
                    (c->zmap ? 2 : 0) | (c->hsign ? 1 : 0);
    switch (sel) {
#define SFP__ENC_CASE(v)                                                       \
    case v:                                                                    \
        enc_values_body(c, x, n, i0, zw, &q, (v >> 3) & 1, (v >> 2) & 1,       \
                        (v >> 1) & 1, v & 1);                                  \
        break;
    SFP__CASES16(SFP__ENC_CASE)
#undef SFP__ENC_CASE
    }
}

/* Horizontal max and min of the n (8..64) bytes at p. */
static inline void range_bytes(const uint8_t *p, unsigned n, unsigned *hi,
                               unsigned *lo)
{
    __m128i mx, mn;
    if (n == 8) {
        __m128i v = _mm_loadl_epi64((const __m128i *)p);
        mx = mn = _mm_unpacklo_epi64(v, v);
    } else {
        mx = mn = _mm_loadu_si128((const __m128i *)p);
        for (unsigned i = 16; i < n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            mx = _mm_max_epu8(mx, v);
            mn = _mm_min_epu8(mn, v);
        }
    }
    mx = _mm_max_epu8(mx, _mm_srli_si128(mx, 8));
    mn = _mm_min_epu8(mn, _mm_srli_si128(mn, 8));
    mx = _mm_max_epu8(mx, _mm_srli_si128(mx, 4));
    mn = _mm_min_epu8(mn, _mm_srli_si128(mn, 4));
    mx = _mm_max_epu8(mx, _mm_srli_si128(mx, 2));
    mn = _mm_min_epu8(mn, _mm_srli_si128(mn, 2));
    mx = _mm_max_epu8(mx, _mm_srli_si128(mx, 1));
    mn = _mm_min_epu8(mn, _mm_srli_si128(mn, 1));
    *hi = (unsigned)_mm_cvtsi128_si32(mx) & 0xff;
    *lo = (unsigned)_mm_cvtsi128_si32(mn) & 0xff;
}

/*
 * Gecko groups of 16, two groups per vector: lane-wise max, deltas, OR of
 * the deltas; each group out by gecko16_put (how: the branchless writer for
 * e <= 7). Returns how many codes it did.
 */
static inline __attribute__((always_inline)) size_t
gecko16_enc_avx2(sfp__codec *c, sfp__bw *wep, unsigned *prevp, const int how)
{
    const unsigned e = c->ebits, wbits = sfp__gecko_wbits(e);
    const __m256i z = _mm256_setzero_si256();
    sfp__bw we = *wep;
    unsigned prev = *prevp;
    size_t i = 0;
    if (how != GK_PUT)
        sfp__bw_whole(&we);
    for (; c->cn - i >= 32; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(c->cbuf + i));
        __m256i m = _mm256_max_epu8(v, _mm256_bsrli_epi128(v, 8));
        m = _mm256_max_epu8(m, _mm256_bsrli_epi128(m, 4));
        m = _mm256_max_epu8(m, _mm256_bsrli_epi128(m, 2));
        m = _mm256_max_epu8(m, _mm256_bsrli_epi128(m, 1));
        __m256i bv = _mm256_shuffle_epi8(m, z);
        __m256i d = _mm256_sub_epi8(bv, v);
        __m256i o = _mm256_or_si256(d, _mm256_bsrli_epi128(d, 8));
        o = _mm256_or_si256(o, _mm256_bsrli_epi128(o, 4));
        o = _mm256_or_si256(o, _mm256_bsrli_epi128(o, 2));
        o = _mm256_or_si256(o, _mm256_bsrli_epi128(o, 1));
        uint64_t dd[4];
        _mm256_storeu_si256((__m256i *)dd, d);
        const unsigned m0 = (unsigned)_mm256_extract_epi8(m, 0) & 0xff;
        const unsigned m1 = (unsigned)_mm256_extract_epi8(m, 16) & 0xff;
        const unsigned o0 = (unsigned)_mm256_extract_epi8(o, 0) & 0xff;
        const unsigned o1 = (unsigned)_mm256_extract_epi8(o, 16) & 0xff;
        gecko16_put(&we, e, wbits, how, &prev, m0, o0, dd[0], dd[1]);
        gecko16_put(&we, e, wbits, how, &prev, m1, o1, dd[2], dd[3]);
    }
    *wep = we;
    *prevp = prev;
    return i;
}

static void enc_codes_avx2(sfp__codec *c, int last)
{
    size_t i = 0;
    if (c->coder == SFP_CODER_RANS) {
        sfp__enc_codes_rans(c);
        return;
    }
    const unsigned e = c->ebits;
    /* a local writer stays in registers (its stores may alias *c) */
    sfp__bw we = c->wexp;
    unsigned prev = c->prev_base;
    if (c->coder == SFP_CODER_PLAIN) {
        put_plain_codes(&we, c->cbuf, c->cn, e);
        i = c->cn;
    } else {
        const unsigned G = c->G, wbits = sfp__gecko_wbits(e);
        if (G == 16 && e <= 5)
            i = gecko16_enc_avx2(c, &we, &prev, GK_FAST2);
        else if (G == 16 && e <= 7)
            i = gecko16_enc_avx2(c, &we, &prev, GK_FAST3);
        else if (G == 16)
            i = gecko16_enc_avx2(c, &we, &prev, GK_PUT);
        for (; c->cn - i >= G; i += G) {
            const uint8_t *g = c->cbuf + i;
            unsigned B, mn;
            range_bytes(g, G, &B, &mn);
            unsigned w = sfp__bitlen(B - mn), hn;
            const uint64_t h = sfp__gecko_header(e, wbits, &prev, B, w, &hn);
            sfp__bw_put(&we, h, hn);
            if (w) {
                const uint64_t wm = bytemask(w), bb = ONES8 * B;
                for (unsigned q = 0; q < G; q += 8)
                    sfp__bw_put(&we, _pext_u64(bb - load8(g + q), wm), 8 * w);
            }
        }
        if (last && i < c->cn) {
            sfp__gecko_put(&we, e, &prev, c->cbuf + i, (unsigned)(c->cn - i));
            i = c->cn;
        }
    }
    c->wexp = we;
    c->prev_base = prev;
    memmove(c->cbuf, c->cbuf + i, c->cn - i);
    c->cn -= i;
}

/*
 * Gecko groups of 16 codes (e <= 7, so a group's deltas are at most
 * 2 x 56 bits) while at least 32 bytes of the plane are left after the
 * reader's position: every header and delta is read with one unchecked
 * 64-bit load from the bit position, the base and the width taken from it
 * without branches on the data, the 16 deltas checked and subtracted in
 * one vector. The rest (the last groups of the plane, a short last group)
 * is left to the caller's loop, with the same checks.
 */
static int dec_gecko16(sfp__codec *c, sfp__br *re, unsigned *prevp, size_t need)
{
    const unsigned e = c->ebits, wbits = sfp__gecko_wbits(e);
    const uint64_t emask = (UINT64_C(1) << e) - 1, wmask = (UINT64_C(1) << wbits) - 1;
    const uint8_t *p = re->p;
    uint64_t pos = re->pos;
    const uint64_t lim = re->len >= 32 ? re->len - 32 : 0;
    uint8_t *cb = c->cbuf;
    size_t cn = c->cn;
    uint64_t left = c->codes_left;
    unsigned prev = *prevp, wbad = 0;
    __m128i badv = _mm_setzero_si128();

    if (re->len < 32)
        return SFP_OK;
    while (cn < need && left >= 16 && (pos >> 3) <= lim) {
        gecko16_get_fast(p, &pos, e, wbits, emask, wmask, &prev, cb + cn, &badv, &wbad);
        cn += 16;
        left -= 16;
    }
    RETURN_IF(wbad || !_mm_testz_si128(badv, badv), SFP_ECORRUPT);
    re->pos = pos;
    c->cn = cn;
    c->codes_left = left;
    *prevp = prev;
    return SFP_OK;
}

static int dec_codes_avx2(sfp__codec *c, size_t need)
{
    if (c->coder == SFP_CODER_RANS)
        return sfp__dec_codes_rans(c, need);
    memmove(c->cbuf, c->cbuf + c->cpos, c->cn - c->cpos);
    c->cn -= c->cpos;
    c->cpos = 0;
    const unsigned e = c->ebits;
    /* local reader and base stay in registers (cbuf stores may alias *c) */
    sfp__br re = c->rexp;
    unsigned prev = c->prev_base;
    if (c->coder == SFP_CODER_PLAIN) {
        size_t m = need > c->cn ? need - c->cn : 0;
        RETURN_IF(m > c->codes_left, SFP_ECORRUPT);
        const uint64_t em = bytemask(e);
        size_t q = 0;
        for (; q + 8 <= m; q += 8) {
            store8(c->cbuf + c->cn, _pdep_u64(get_bits(&re, 8 * e), em));
            c->cn += 8;
        }
        for (; q < m; q++)
            c->cbuf[c->cn++] = (uint8_t)sfp__br_get(&re, e);
        c->codes_left -= m;
    } else {
        const unsigned G = c->G, wbits = sfp__gecko_wbits(e);
        if (G == 16 && e <= 7) {
            int rc = dec_gecko16(c, &re, &prev, need);
            RETURN_IF(rc < 0, rc);
        }
        while (c->cn < need) {
            RETURN_IF(c->codes_left == 0, SFP_ECORRUPT);
            if (c->codes_left < G) {
                unsigned g = (unsigned)c->codes_left;
                int rc = sfp__gecko_get(&re, e, &prev, c->cbuf + c->cn, g);
                RETURN_IF(rc < 0, rc);
                c->cn += g;
                c->codes_left = 0;
                continue;
            }
            unsigned B = prev;
            if (!sfp__br_get(&re, 1))
                B = (unsigned)sfp__br_get(&re, e);
            unsigned w = (unsigned)sfp__br_get(&re, wbits);
            RETURN_IF(w > e, SFP_ECORRUPT);
            const uint64_t wm = bytemask(w), bb = ONES8 * B;
            const __m128i bv = _mm_set1_epi8((char)B);
            __m128i badv = _mm_setzero_si128();
            for (unsigned q = 0; q < G; q += 8) {
                uint64_t d = w ? _pdep_u64(get_bits(&re, 8 * w), wm) : 0;
                __m128i dv = _mm_cvtsi64_si128((long long)d);
                /* d > B in some byte <=> max(d, B) != B */
                badv = _mm_or_si128(badv, _mm_xor_si128(_mm_max_epu8(dv, bv), bv));
                store8(c->cbuf + c->cn + q, bb - d);
            }
            RETURN_IF(_mm_cvtsi128_si64(badv) != 0, SFP_ECORRUPT);
            prev = B;
            c->cn += G;
            c->codes_left -= G;
        }
    }
    c->rexp = re;
    c->prev_base = prev;
    RETURN_IF(sfp__br_overrun(&re), SFP_ECORRUPT);
    return SFP_OK;
}

/* Vector constants of a decoder's per-value loop. */
typedef struct dconst {
    __m256i lo1, zero, cmin, csub, bitsel;
    int sub; /* the window reaches E = 0 */
} dconst;

static inline dconst dconst_of(const sfp__codec *c)
{
    dconst d;
    d.lo1 = _mm256_set1_epi32(c->lo - 1);
    d.zero = _mm256_setzero_si256();
    d.cmin = _mm256_set1_epi32((int)c->cmin);
    d.csub = _mm256_set1_epi32((int)c->csub);
    d.bitsel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    d.sub = c->csub < 256;
    return d;
}

static inline __attribute__((always_inline)) void
dec_values_body(sfp__codec *c, uint32_t *y, size_t n, const uint64_t *zw,
                const int zmap, const int hsign, const int kcls)
{
    const dconst d = dconst_of(c);
    const __m256i lo1 = d.lo1, zero = d.zero, cmin = d.cmin, csub = d.csub, bitsel = d.bitsel;
    const int sub = d.sub;
    const __m128i sh = _mm_cvtsi32_si128((int)c->shift);
    const unsigned k = c->k;
    const uint64_t km8 = bytemask(k);
    const uint64_t km16 = ONES16 * ((1u << (k > 16 ? 16 : k)) - 1);
    const uint64_t km32 = (UINT64_C(1) << k) - 1;
    __m256i badv = zero;
    const int zsign = c->zsign;
    sfp__br rs = c->rsign, rm = c->rmant;
    const uint8_t *cb = c->cbuf;
    size_t cpos = c->cpos;
    uint64_t nonzero = 0;

    /* With a zero map the non-zero pattern is known before the planes are
     * read: the sign bits of a 64-block and the (k <= 8) mantissa bits of
     * R groups of 8 (R * 8 * k <= 64) are fetched with one read each. */
    const unsigned R = k <= 1 ? 8 : k <= 2 ? 4 : k <= 4 ? 2 : 1;
    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = zmap ? zw[b / 64] : 0;
        const size_t mfull = m & ~(size_t)7;
        const uint64_t wfull = mfull == 64 ? word : word & ((UINT64_C(1) << mfull) - 1);
        uint64_t sbits = 0, mbits = 0;
        if (zmap && hsign)
            sbits = zsign ? get_bits(&rs, (unsigned)mfull)
                          : get_bits(&rs, (unsigned)__builtin_popcountll(wfull));
        size_t j = 0;
        for (; j + 8 <= m; j += 8) {
            unsigned nz8, cnt;
            uint64_t codes;
            if (zmap && kcls == 1 && ((j >> 3) & (R - 1)) == 0) {
                uint64_t wr = wfull >> j;
                if (8 * R < 64)
                    wr &= (UINT64_C(1) << (8 * R)) - 1;
                mbits = get_bits(&rm, (unsigned)__builtin_popcountll(wr) * k);
            }
            if (zmap) {
                nz8 = (unsigned)(word >> j) & 0xff;
                cnt = (unsigned)__builtin_popcount(nz8);
                codes = _pdep_u64(load8(cb + cpos), expand8(nz8));
                cpos += cnt;
            } else {
                codes = load8(cb + cpos);
                cpos += 8;
                __m128i cv = _mm_cvtsi64_si128((long long)codes);
                nz8 = 0xffu ^ ((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(cv, _mm_setzero_si128())) & 0xff);
                cnt = (unsigned)__builtin_popcount(nz8);
            }
            __m256i cd = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)codes));
            /* With a zero map the map says which values are zero; a code
             * 0 where it says non-zero is invalid (cmin >= 1). */
            __m256i isz = zmap ? _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)nz8), bitsel), zero)
                               : _mm256_cmpeq_epi32(cd, zero);
            badv = _mm256_or_si256(badv, _mm256_andnot_si256(isz, _mm256_cmpgt_epi32(cmin, cd)));

            __m256i sv = zero;
            if (hsign) {
                unsigned s8;
                if (zmap) {
                    s8 = zsign ? (unsigned)sbits & 0xff : _pdep_u32((unsigned)sbits, nz8);
                    sbits >>= zsign ? 8 : cnt;
                } else {
                    s8 = zsign ? (unsigned)sfp__br_get(&rs, 8)
                               : _pdep_u32((unsigned)sfp__br_get(&rs, cnt), nz8);
                }
                sv = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)s8), bitsel), bitsel);
                sv = _mm256_slli_epi32(sv, 31);
            }
            __m256i mt = zero;
            if (kcls) {
                if (kcls == 1) {
                    uint64_t mb;
                    if (zmap) {
                        mb = _pdep_u64(mbits, km8 & expand8(nz8));
                        if (R > 1) /* cnt * k <= 32 */
                            mbits >>= cnt * k;
                    } else {
                        mb = _pdep_u64(get_bits(&rm, cnt * k), km8 & expand8(nz8));
                    }
                    mt = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mb));
                } else if (kcls == 2) {
                    unsigned lo4 = nz8 & 15, hi4 = nz8 >> 4;
                    uint64_t a0 = _pdep_u64(get_bits(&rm, (unsigned)__builtin_popcount(lo4) * k),
                                            km16 & expand16(lo4));
                    uint64_t a1 = _pdep_u64(get_bits(&rm, (unsigned)__builtin_popcount(hi4) * k),
                                            km16 & expand16(hi4));
                    mt = _mm256_cvtepu16_epi32(_mm_set_epi64x((long long)a1, (long long)a0));
                } else {
                    uint64_t t[4];
                    for (int q = 0; q < 4; q++) {
                        unsigned two = (nz8 >> (2 * q)) & 3;
                        uint64_t mask = ((two & 1) ? km32 : 0) | ((two & 2) ? km32 << 32 : 0);
                        t[q] = _pdep_u64(get_bits(&rm, (unsigned)__builtin_popcount(two) * k), mask);
                    }
                    mt = _mm256_loadu_si256((const __m256i *)t);
                }
            }
            if (sub) /* E = 0 with a zero mantissa is a zero, not a code */
                badv = _mm256_or_si256(badv, _mm256_andnot_si256(isz, _mm256_and_si256(
                    _mm256_cmpeq_epi32(cd, csub), _mm256_cmpeq_epi32(mt, zero))));
            __m256i v = _mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(cd, lo1), 23),
                                        _mm256_sll_epi32(mt, sh));
            v = _mm256_andnot_si256(isz, v);
            _mm256_storeu_si256((__m256i *)(y + b + j), _mm256_or_si256(v, sv));
            nonzero += cnt;
        }
        if (j < m)
            dec_tail(c, y, b, j, m, word, &cpos, &rs, &rm);
    }
    c->cpos = cpos;
    c->rsign = rs;
    c->rmant = rm;
    c->nonzero += nonzero;
    c->bad |= !_mm256_testz_si256(badv, badv);
}

/*
 * The decoder's loop for no -0 and a mantissa width K (0..8) known at
 * compile time, with or without a zero map (without one, a block's map is
 * taken from its 64 codes): whole 64-blocks, the eight groups unrolled, the
 * sign bits of a block and the mantissas of 64 / (8 K) groups fetched with
 * one read each. Same values and the same checks as dec_values_body.
 * Returns how many values it did.
 */
static inline __attribute__((always_inline)) size_t
dec_fast_body(sfp__codec *c, uint32_t *y, size_t n, const uint64_t *zw,
              const unsigned K, const int zmap, const int hsign)
{
    const unsigned SH = 23 - K;
    const unsigned R = K <= 1 ? 8 : K <= 2 ? 4 : K <= 4 ? 2 : 1;
    const uint64_t KM8 = bytemask(K);
    const dconst d = dconst_of(c);
    const __m256i lo1 = d.lo1, zero = d.zero, csub = d.csub, bitsel = d.bitsel;
    const int sub = d.sub;
    __m256i badv = zero;
    sfp__br rs = c->rsign, rm = c->rmant;
    const uint8_t *cb = c->cbuf;
    size_t cpos = c->cpos;
    uint64_t nonzero = 0;
    const size_t nb = n & ~(size_t)63;

    for (size_t b = 0; b < nb; b += 64) {
        prefetch_block(y + b, PF_DEC); /* the lines it will write */
        uint64_t word;
        if (zmap) {
            word = zw[b / 64];
        } else { /* a code per value, 0 for a zero */
            const __m256i c0 = _mm256_loadu_si256((const __m256i *)(cb + cpos));
            const __m256i c1 = _mm256_loadu_si256((const __m256i *)(cb + cpos + 32));
            word = ~((uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(c0, zero)) |
                     (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(c1, zero)) << 32);
        }
        uint64_t sbits = 0, mbits = 0;
        if (hsign)
            sbits = get_bits(&rs, (unsigned)__builtin_popcountll(word));
        nonzero += (uint64_t)__builtin_popcountll(word);
#pragma GCC unroll 8
        for (unsigned j = 0; j < 64; j += 8) {
            const unsigned nz8 = (unsigned)(word >> j) & 0xff;
            const unsigned cnt = (unsigned)__builtin_popcount(nz8);
            const uint64_t nzb = expand8(nz8);
            if (K && (j / 8) % R == 0) {
                uint64_t wr = word >> j;
                if (8 * R < 64)
                    wr &= (UINT64_C(1) << (8 * R)) - 1;
                mbits = get_bits(&rm, (unsigned)__builtin_popcountll(wr) * K);
            }
            uint64_t codes;
            if (zmap) {
                codes = _pdep_u64(load8(cb + cpos), nzb);
                cpos += cnt;
            } else {
                codes = load8(cb + cpos + j);
            }
            __m256i cd = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)codes));
            /* a zero has code 0 (pdep by the map puts it there); every
             * other code is >= cmin >= 1 (checked after the loop) */
            __m256i isz = _mm256_cmpeq_epi32(cd, zero);
            __m256i v = _mm256_slli_epi32(_mm256_add_epi32(cd, lo1), 23);
            if (K) {
                uint64_t mb = _pdep_u64(mbits, KM8 & nzb);
                if (R > 1)
                    mbits >>= cnt * K;
                __m256i mt = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mb));
                if (sub) /* E = 0 with a zero mantissa is a zero, not a code */
                    badv = _mm256_or_si256(badv, _mm256_andnot_si256(isz, _mm256_and_si256(
                        _mm256_cmpeq_epi32(cd, csub), _mm256_cmpeq_epi32(mt, zero))));
                v = _mm256_or_si256(v, _mm256_slli_epi32(mt, (int)SH));
            } else if (sub) {
                badv = _mm256_or_si256(badv, _mm256_andnot_si256(isz, _mm256_cmpeq_epi32(cd, csub)));
            }
            v = _mm256_andnot_si256(isz, v);
            if (hsign) {
                unsigned s8 = _pdep_u32((unsigned)sbits, nz8);
                sbits >>= cnt;
                __m256i sv = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)s8), bitsel), bitsel);
                v = _mm256_or_si256(v, _mm256_slli_epi32(sv, 31));
            }
            _mm256_storeu_si256((__m256i *)(y + b + j), v);
        }
        if (!zmap)
            cpos += 64;
    }
    /* the codes read: none below cmin (with a zero map), none in
     * 1..cmin-1 (without: code - 1 wraps 0 to 255) */
    const __m128i cmin8 = _mm_set1_epi8((char)(zmap ? c->cmin : c->cmin - 1));
    const __m128i bias = _mm_set1_epi8(zmap ? 0 : 1);
    size_t q = c->cpos;
    for (; q + 16 <= cpos; q += 16) {
        __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(cb + q)), bias);
        badv = _mm256_or_si256(badv, _mm256_castsi128_si256(
            _mm_xor_si128(_mm_max_epu8(v, cmin8), v)));
    }
    for (; q < cpos; q++)
        badv = _mm256_or_si256(badv, _mm256_set1_epi32(
            (uint8_t)(cb[q] - (zmap ? 0 : 1)) < (zmap ? c->cmin : c->cmin - 1)));
    c->cpos = cpos;
    c->rsign = rs;
    c->rmant = rm;
    c->nonzero += nonzero;
    c->bad |= !_mm256_testz_si256(badv, badv);
    return nb;
}

static void dec_values_avx2(sfp__codec *c, uint32_t *y, size_t n, uint64_t *zw)
{
    if (!c->zsign && c->k <= 8) {
        size_t done = 0;
        switch ((int)c->k << 2 | (c->zmap ? 2 : 0) | (c->hsign ? 1 : 0)) {
#define SFP__FAST_CASE(v)                                                      \
    case v:                                                                    \
        done = dec_fast_body(c, y, n, zw, (v) >> 2, ((v) >> 1) & 1, (v) & 1);  \
        break;
        SFP__CASES36(SFP__FAST_CASE)
#undef SFP__FAST_CASE
        }
        if (done == n)
            return;
        y += done, n -= done, zw += done / 64;
    }
    /* Specialise on zero map, sign plane and mantissa width class. */
    const int kcls = c->k == 0 ? 0 : c->k <= 8 ? 1 : c->k <= 16 ? 2 : 3;
    const int sel = kcls << 2 | (c->zmap ? 2 : 0) | (c->hsign ? 1 : 0);
    switch (sel) {
#define SFP__DEC_CASE(v)                                                       \
    case v:                                                                    \
        dec_values_body(c, y, n, zw, (v >> 1) & 1, v & 1, v >> 2);             \
        break;
    SFP__CASES16(SFP__DEC_CASE)
#undef SFP__DEC_CASE
    }
}

/* ------------------------------------------------------- rANS x32 */

/*
 * 32-state rANS (FORMAT 2.5) in four vectors of 8 lanes, as the AVX-512
 * loops do it in two of 16. AVX2 has gathers but no compress or expand:
 * the words of the lanes that renormalise are moved by a permutation
 * whose indices come from the lane mask by BMI2 (expand: pdep deals the
 * ranks 0, 1, ... to the set lanes; compress: pext gathers the set lanes'
 * numbers), and the encoder stores them through a small buffer.
 */
static inline __m256i lane_idx(uint64_t idx8)
{
    return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)idx8));
}

static inline uint64_t lanes_of(unsigned m)
{
    return _pdep_u64(m, UINT64_C(0x0101010101010101)) * 0xff;
}

/* One decoder step of 8 lanes (32 bytes left at *pp at least). */
static inline __m256i rdec8(__m256i vx, const sfp__rans_table *t, uint8_t *out, const uint8_t **pp)
{
    const __m256i m12 = _mm256_set1_epi32(SFP__RANS_M - 1), one = _mm256_set1_epi32(1);
    const __m256i zero = _mm256_setzero_si256();
    const __m256i e = _mm256_i32gather_epi32((const int *)t->slot, _mm256_and_si256(vx, m12), 4);
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i sb = _mm256_shuffle_epi8(e, pick);
    const uint32_t s0 = (uint32_t)_mm256_extract_epi32(sb, 0), s1 = (uint32_t)_mm256_extract_epi32(sb, 4);
    memcpy(out, &s0, 4);
    memcpy(out + 4, &s1, 4);
    const __m256i f = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(e, 8), m12), one);
    const __m256i v = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(vx, SFP__RANS_SCALE)),
                                       _mm256_srli_epi32(e, 20));
    /* v < L = 2^16 <=> v >> 16 == 0 */
    const __m256i lt = _mm256_cmpeq_epi32(_mm256_srli_epi32(v, 16), zero);
    const unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(lt));
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)*pp));
    const __m256i wx = _mm256_permutevar8x32_epi32(
        w, lane_idx(_pdep_u64(UINT64_C(0x0706050403020100), lanes_of(m))));
    *pp += 2 * (unsigned)__builtin_popcount(m);
    return _mm256_blendv_epi8(v, _mm256_or_si256(_mm256_slli_epi32(v, 16), wx), lt);
}

static size_t rans_dec32_avx2(uint32_t *x, const sfp__rans_table *t, const uint8_t **pp,
                              const uint8_t *end, uint8_t *out, size_t rounds)
{
    const uint8_t *p = *pp;
    __m256i v0 = _mm256_loadu_si256((const __m256i *)x), v1 = _mm256_loadu_si256((const __m256i *)(x + 8));
    __m256i v2 = _mm256_loadu_si256((const __m256i *)(x + 16)), v3 = _mm256_loadu_si256((const __m256i *)(x + 24));
    size_t r = 0;
    /* four steps read at most 4 x 16 bytes, each load 16 */
    for (; r < rounds && end - p >= 64; r++) {
        uint8_t *o = out + 32 * r;
        v0 = rdec8(v0, t, o, &p);
        v1 = rdec8(v1, t, o + 8, &p);
        v2 = rdec8(v2, t, o + 16, &p);
        v3 = rdec8(v3, t, o + 24, &p);
    }
    _mm256_storeu_si256((__m256i *)x, v0);
    _mm256_storeu_si256((__m256i *)(x + 8), v1);
    _mm256_storeu_si256((__m256i *)(x + 16), v2);
    _mm256_storeu_si256((__m256i *)(x + 24), v3);
    *pp = p;
    return r;
}

/* Per-symbol constants of the encoder's lanes: tables, and for at most 16
 * symbols the same in registers (two permutes instead of a gather). */
typedef struct renc256 {
    const int *ftab, *ctab;
    const float *rtab;
    int small;
    __m256i f0, f1, c0, c1, r0, r1;
} renc256;

/* Entry sy (0..15) of a 16-entry table held as two vectors. */
static inline __m256i perm16(__m256i sy, __m256i lo, __m256i hi)
{
    const __m256i upper = _mm256_cmpgt_epi32(sy, _mm256_set1_epi32(7));
    return _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(lo, sy),
                              _mm256_permutevar8x32_epi32(hi, sy), upper);
}

/*
 * One encoder step of 8 lanes (codes at c): renormalise (x >> 20 >= f),
 * the low words of those lanes below p in lane order, then
 * x = (x / f) << 12 + x mod f + cum with a float-reciprocal quotient
 * corrected from its remainder (x converted as hi * 2^16 + lo: AVX2
 * converts only signed integers).
 */
static inline __m256i renc8(__m256i vx, const uint8_t *c, const renc256 *k, uint8_t **pp)
{
    const __m256i zero = _mm256_setzero_si256();
    const __m256i lo16 = _mm256_set1_epi32(0xffff);
    uint64_t c8;
    memcpy(&c8, c, 8);
    const __m256i sy = lane_idx(c8);
    __m256i f, cum;
    __m256 rc;
    if (k->small) {
        f = perm16(sy, k->f0, k->f1);
        cum = perm16(sy, k->c0, k->c1);
        rc = _mm256_castsi256_ps(perm16(sy, k->r0, k->r1));
    } else {
        f = _mm256_i32gather_epi32(k->ftab, sy, 4);
        cum = _mm256_i32gather_epi32(k->ctab, sy, 4);
        rc = _mm256_i32gather_ps(k->rtab, sy, 4);
    }
    /* x >> 20 >= f <=> !(f > x >> 20) (both below 2^31) */
    const __m256i re = _mm256_xor_si256(_mm256_cmpgt_epi32(f, _mm256_srli_epi32(vx, 20)),
                                        _mm256_set1_epi32(-1));
    const unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(re));
    if (m) {
        const unsigned cnt = (unsigned)__builtin_popcount(m);
        const __m256i pk = _mm256_permutevar8x32_epi32(
            _mm256_and_si256(vx, lo16),
            lane_idx(_pext_u64(UINT64_C(0x0706050403020100), lanes_of(m))));
        /* eight 16-bit words from eight 32-bit lanes, in order */
        const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(pk), _mm256_extracti128_si256(pk, 1));
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, w);
        *pp -= 2 * cnt;
        memcpy(*pp, tmp, 2 * cnt);
        vx = _mm256_blendv_epi8(vx, _mm256_srli_epi32(vx, 16), re);
    }
    /* hi * 2^16 is exact: one rounding, in the add */
    const __m256 xf = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(vx, 16)),
                                                  _mm256_set1_ps(65536.0f)),
                                    _mm256_cvtepi32_ps(_mm256_and_si256(vx, lo16)));
    __m256i q = _mm256_cvttps_epi32(_mm256_mul_ps(xf, rc));
    __m256i rem = _mm256_sub_epi32(vx, _mm256_mullo_epi32(q, f));
    const __m256i below = _mm256_cmpgt_epi32(zero, rem);
    q = _mm256_add_epi32(q, below); /* -1 where below */
    rem = _mm256_add_epi32(rem, _mm256_and_si256(below, f));
    const __m256i above = _mm256_xor_si256(_mm256_cmpgt_epi32(f, rem), _mm256_set1_epi32(-1));
    q = _mm256_sub_epi32(q, above);
    rem = _mm256_sub_epi32(rem, _mm256_and_si256(above, f));
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(q, SFP__RANS_SCALE), rem), cum);
}

static uint8_t *rans_enc32_avx2(uint32_t *x, const sfp__rans_table *t, const uint8_t *codes,
                                uint64_t rounds, uint8_t *p)
{
    rans_lanes lt;
    rans_lanes_of(&lt, t);
    renc256 k;
    k.ftab = (const int *)lt.f, k.ctab = (const int *)lt.cum, k.rtab = lt.rcp;
    k.small = t->nsym <= 16;
    k.f0 = _mm256_loadu_si256((const __m256i *)lt.f);
    k.f1 = _mm256_loadu_si256((const __m256i *)(lt.f + 8));
    k.c0 = _mm256_loadu_si256((const __m256i *)lt.cum);
    k.c1 = _mm256_loadu_si256((const __m256i *)(lt.cum + 8));
    k.r0 = _mm256_castps_si256(_mm256_loadu_ps(lt.rcp));
    k.r1 = _mm256_castps_si256(_mm256_loadu_ps(lt.rcp + 8));
    __m256i v0 = _mm256_loadu_si256((const __m256i *)x), v1 = _mm256_loadu_si256((const __m256i *)(x + 8));
    __m256i v2 = _mm256_loadu_si256((const __m256i *)(x + 16)), v3 = _mm256_loadu_si256((const __m256i *)(x + 24));
    for (uint64_t r = rounds; r-- > 0;) {
        const uint8_t *c = codes + 32 * r;
        /* backwards: the highest lanes' words lie highest */
        v3 = renc8(v3, c + 24, &k, &p);
        v2 = renc8(v2, c + 16, &k, &p);
        v1 = renc8(v1, c + 8, &k, &p);
        v0 = renc8(v0, c, &k, &p);
    }
    _mm256_storeu_si256((__m256i *)x, v0);
    _mm256_storeu_si256((__m256i *)(x + 8), v1);
    _mm256_storeu_si256((__m256i *)(x + 16), v2);
    _mm256_storeu_si256((__m256i *)(x + 24), v3);
    return p;
}

const sfp__kernels sfp__kernels_avx2 = {
    .analyze = analyze_avx2,
    .scan = scan_avx2,
    .count_below = count_below_avx2,
    .quantize = quantize_avx2,
    .enc_values = enc_values_avx2,
    .enc_codes = enc_codes_avx2,
    .dec_codes = dec_codes_avx2,
    .dec_values = dec_values_avx2,
    .rans_enc32 = rans_enc32_avx2,
    .rans_dec32 = rans_dec32_avx2,
};
