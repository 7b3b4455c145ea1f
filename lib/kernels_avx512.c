/*
 * kernels_avx512.c - AVX-512 (F, BW, VL, VBMI2) + BMI2 versions of the
 * encoder's and decoder's hot loops: 16 values per vector, zero compaction
 * and expansion with vpcompressb/vpexpandb (and the word and dword forms),
 * Gecko groups of 16 one per 128-bit lane (4 per vector). Results are bit
 * for bit those of the C reference (tests/lib/test_kernels checks every
 * (k, e), coder and rounding mode). Stochastic rounding, other Gecko group
 * sizes, rANS and the decoder's code unpacking use the AVX2 kernels.
 *
 * Built twice: natively (-mavx512f -mavx512bw -mavx512vl -mavx512vbmi2,
 * table sfp__kernels_avx512, chosen at run time on CPUs that have them), and
 * for tests with SFP_AVX512_EMULATE, where SIMDe emulates the AVX-512
 * intrinsics on any x86-64 with AVX2 (table sfp__kernels_avx512_emu), so
 * the logic is checked on machines without AVX-512 as well.
 */
#include "config.h"
#include "internal.h"

#ifdef SFP_AVX512_EMULATE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <immintrin.h>
#define KTABLE sfp__kernels_avx512_emu

/* VBMI2 byte/word compress and expand, which SIMDe 0.7 lacks. */
static inline __m128i emu_compress_epi8(__mmask16 k, __m128i a)
{
    uint8_t in[16], out[16] = {0};
    unsigned j = 0;
    _mm_storeu_si128((__m128i *)in, a);
    for (unsigned i = 0; i < 16; i++)
        if (k >> i & 1)
            out[j++] = in[i];
    return _mm_loadu_si128((const __m128i *)out);
}

static inline __m128i emu_expand_epi8(__mmask16 k, __m128i a)
{
    uint8_t in[16], out[16] = {0};
    unsigned j = 0;
    _mm_storeu_si128((__m128i *)in, a);
    for (unsigned i = 0; i < 16; i++)
        if (k >> i & 1)
            out[i] = in[j++];
    return _mm_loadu_si128((const __m128i *)out);
}

static inline __m256i emu_compress_epi16(__mmask16 k, __m256i a)
{
    uint16_t in[16], out[16] = {0};
    unsigned j = 0;
    _mm256_storeu_si256((__m256i *)in, a);
    for (unsigned i = 0; i < 16; i++)
        if (k >> i & 1)
            out[j++] = in[i];
    return _mm256_loadu_si256((const __m256i *)out);
}

/* Zero extensions SIMDe 0.7 lacks. */
static inline __m512i emu_cvtepu8_epi32(__m128i a)
{
    uint8_t in[16];
    uint32_t out[16];
    _mm_storeu_si128((__m128i *)in, a);
    for (unsigned i = 0; i < 16; i++)
        out[i] = in[i];
    return _mm512_loadu_si512(out);
}

static inline __m512i emu_cvtepu16_epi32(__m256i a)
{
    uint16_t in[16];
    uint32_t out[16];
    _mm256_storeu_si256((__m256i *)in, a);
    for (unsigned i = 0; i < 16; i++)
        out[i] = in[i];
    return _mm512_loadu_si512(out);
}
/* 512-bit VBMI2 byte compress/expand and the masked qword store. */
static inline __m512i emu_compress512_epi8(__mmask64 k, __m512i a)
{
    uint8_t in[64], out[64] = {0};
    unsigned j = 0;
    _mm512_storeu_si512(in, a);
    for (unsigned i = 0; i < 64; i++)
        if (k >> i & 1)
            out[j++] = in[i];
    return _mm512_loadu_si512(out);
}

static inline __m512i emu_expand512_epi8(__mmask64 k, __m512i a)
{
    uint8_t in[64], out[64] = {0};
    unsigned j = 0;
    _mm512_storeu_si512(in, a);
    for (unsigned i = 0; i < 64; i++)
        if (k >> i & 1)
            out[i] = in[j++];
    return _mm512_loadu_si512(out);
}

static inline void emu_mask_storeu_epi64(void *p, __mmask8 k, __m512i a)
{
    uint64_t in[8];
    _mm512_storeu_si512(in, a);
    for (unsigned i = 0; i < 8; i++)
        if (k >> i & 1)
            memcpy((uint8_t *)p + 8 * i, &in[i], 8);
}
/* SIMDe 0.7's native alias of vpmaddwd takes the masked form's arguments */
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)
/* vpmultishiftqb: SIMDe 0.7's shifts a qword by 64 for a control of 0 */
static inline __m512i emu_multishift_epi64_epi8(__m512i ctrl, __m512i b)
{
    uint8_t c[64], r[64];
    uint64_t q[8];
    _mm512_storeu_si512(c, ctrl);
    _mm512_storeu_si512(q, b);
    for (unsigned i = 0; i < 64; i++) {
        const uint64_t x = q[i / 8];
        const unsigned sh = c[i] & 63;
        r[i] = (uint8_t)(sh ? x >> sh | x << (64 - sh) : x);
    }
    return _mm512_loadu_si512(r);
}
#undef _mm512_multishift_epi64_epi8
#define _mm512_multishift_epi64_epi8(a, b) emu_multishift_epi64_epi8(a, b)
#undef _mm512_maskz_compress_epi8
#undef _mm512_maskz_expand_epi8
#undef _mm512_mask_storeu_epi64
#define _mm512_maskz_compress_epi8(k, a) emu_compress512_epi8(k, a)
#define _mm512_maskz_expand_epi8(k, a) emu_expand512_epi8(k, a)
#define _mm512_mask_storeu_epi64(p, k, a) emu_mask_storeu_epi64(p, k, a)
#undef _mm_maskz_compress_epi8
#undef _mm_maskz_expand_epi8
#undef _mm256_maskz_compress_epi16
#undef _mm512_cvtepu8_epi32
#undef _mm512_cvtepu16_epi32
#define _mm_maskz_compress_epi8(k, a) emu_compress_epi8(k, a)
#define _mm_maskz_expand_epi8(k, a) emu_expand_epi8(k, a)
#define _mm256_maskz_compress_epi16(k, a) emu_compress_epi16(k, a)
#define _mm512_cvtepu8_epi32(a) emu_cvtepu8_epi32(a)
#define _mm512_cvtepu16_epi32(a) emu_cvtepu16_epi32(a)
#else
#include <immintrin.h>
#define KTABLE sfp__kernels_avx512
#endif

#include "simd_bits.h"

/* vpermb / vpermw indices: the low byte / word of every dword. */
static const uint8_t idx_lo_bytes[64] = {
    0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60,
};
static const uint16_t idx_lo_words[32] = {
    0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
};

/* The low byte of each of 16 dwords (vpermb). */
static inline __m128i dw_to_bytes(__m512i v)
{
    return _mm512_castsi512_si128(
        _mm512_permutexvar_epi8(_mm512_loadu_si512(idx_lo_bytes), v));
}

/* The low word of each of 16 dwords (vpermw). */
static inline __m256i dw_to_words(__m512i v)
{
    return _mm512_castsi512_si256(
        _mm512_permutexvar_epi16(_mm512_loadu_si512(idx_lo_words), v));
}

/* pshufb indices shifting each 128-bit lane right by 8, 4, 2, 1 bytes. */
static const uint8_t idx_shr[4][64] = {
#define SFP__SHR(s)                                                                {SFP__L(s), SFP__L(s), SFP__L(s), SFP__L(s)}
#define SFP__B(i, s) ((i) + (s) < 16 ? (i) + (s) : 0x80)
#define SFP__L(s)                                                                  SFP__B(0, s), SFP__B(1, s), SFP__B(2, s), SFP__B(3, s), SFP__B(4, s),         SFP__B(5, s), SFP__B(6, s), SFP__B(7, s), SFP__B(8, s), SFP__B(9, s),         SFP__B(10, s), SFP__B(11, s), SFP__B(12, s), SFP__B(13, s),                   SFP__B(14, s), SFP__B(15, s)
    SFP__SHR(8), SFP__SHR(4), SFP__SHR(2), SFP__SHR(1),
#undef SFP__L
#undef SFP__B
#undef SFP__SHR
};

static inline __mmask16 ne32(__m512i a, __m512i b)
{
    return (__mmask16)~_mm512_cmpeq_epi32_mask(a, b);
}

/* ---------------------------------------------------------- quantizer */

/* Vector constants of a plan (RNE/TRUNC), 16 lanes. */
typedef struct q16 {
    __m512i absmask, zero, low, half, one, sat_ovf, minE, anchor, satv, lim;
    __m128i sh;
    int trunc, noround, fast;
} q16;

static inline void q16_init(q16 *q, const sfp__plan *pl)
{
    const qscal s = qscal_of(pl);
    q->absmask = _mm512_set1_epi32(0x7fffffff), q->zero = _mm512_setzero_si512();
    q->low = _mm512_set1_epi32((int)s.low), q->half = _mm512_set1_epi32((int)s.half);
    q->one = _mm512_set1_epi32(1), q->sat_ovf = _mm512_set1_epi32((int)s.satmag);
    q->lim = _mm512_set1_epi32(0x7f7fffff), q->minE = _mm512_set1_epi32(s.minE);
    q->anchor = _mm512_set1_epi32(s.anchor), q->satv = _mm512_set1_epi32((int)s.satv);
    q->sh = _mm_cvtsi32_si128((int)s.shift);
    q->trunc = s.trunc, q->noround = s.noround, q->fast = s.fast;
}

/* sfp__quant_one of 16 patterns (RNE/TRUNC); with fast set the tensor is
 * known to hold no -0 and no value that saturates. */
static inline __attribute__((always_inline)) __m512i
quant16(__m512i v, const q16 *q, const int fast)
{
    __m512i a = _mm512_and_si512(v, q->absmask);
    __m512i m = a;
    if (!q->noround) {
        if (q->trunc) {
            m = _mm512_andnot_si512(q->low, a);
        } else {
            __m512i odd = _mm512_and_si512(_mm512_srl_epi32(a, q->sh), q->one);
            m = _mm512_andnot_si512(q->low, _mm512_add_epi32(a, _mm512_add_epi32(q->half, odd)));
        }
        if (!fast)
            m = _mm512_mask_mov_epi32(m, _mm512_cmpgt_epi32_mask(m, q->lim), q->sat_ovf);
    }
    __m512i E = _mm512_srli_epi32(m, 23);
    __mmask16 keep = ne32(m, q->zero) & _mm512_cmpge_epi32_mask(E, q->minE);
    if (!fast)
        m = _mm512_mask_mov_epi32(m, _mm512_cmpgt_epi32_mask(E, q->anchor), q->satv);
    __m512i y = _mm512_maskz_mov_epi32(keep, _mm512_or_si512(_mm512_andnot_si512(q->absmask, v), m));
    if (fast)
        return y;
    /* +0 / -0 pass unchanged */
    return _mm512_mask_mov_epi32(y, _mm512_cmpeq_epi32_mask(a, q->zero), v);
}

static void quantize_avx512(uint32_t *y, const uint32_t *x, size_t n,
                            const sfp__plan *pl, uint64_t i0)
{
    size_t i = 0;
    q16 q;
    q16_init(&q, pl);
    if (pl->r.mode != SFP_ROUND_STOCHASTIC) {
        if (q.fast)
            for (; i + 16 <= n; i += 16)
                _mm512_storeu_si512(y + i, quant16(_mm512_loadu_si512(x + i), &q, 1));
        else
            for (; i + 16 <= n; i += 16)
                _mm512_storeu_si512(y + i, quant16(_mm512_loadu_si512(x + i), &q, 0));
    }
    if (i < n)
        sfp__kernels_c.quantize(y + i, x + i, n - i, pl, i0 + i);
}

/*
 * Fast pass 1, as scan_avx2: the largest and smallest non-zero magnitudes
 * fix the anchor (rounding is monotonic); subnormals, saturation, NaN/Inf
 * and stochastic rounding take the exact C scan.
 */
static uint64_t count_below_avx512(const uint32_t *x, size_t n, uint32_t lim)
{
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    const __m512i vlim = _mm512_set1_epi32((int)lim);
    uint64_t c0 = 0, c1 = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i a = _mm512_and_si512(_mm512_loadu_si512(x + i), absmask);
        __m512i b = _mm512_and_si512(_mm512_loadu_si512(x + i + 16), absmask);
        c0 += (unsigned)__builtin_popcount(_mm512_cmpgt_epi32_mask(vlim, a));
        c1 += (unsigned)__builtin_popcount(_mm512_cmpgt_epi32_mask(vlim, b));
    }
    return c0 + c1 + sfp__kernels_c.count_below(x + i, n - i, lim);
}

static void scan_avx512(const uint32_t *x, size_t n, const sfp__round *r,
                        uint64_t i0, int fixed_anchor, sfp__scan *sc)
{
    if (r->mode == SFP_ROUND_STOCHASTIC || n < 64) {
        sfp__kernels_c.scan(x, n, r, i0, fixed_anchor, sc);
        return;
    }
    /* 64 values a turn, no merge-masked accumulators (their register copies
     * made the loop 1.5-2.5x slower than the reads): the largest magnitude
     * and the largest raw pattern (above 0x80000000: a negative non-zero);
     * the smallest non-zero magnitude as the smallest a - 1 (a zero wraps to
     * the largest); zeros and -0s counted from the compare masks. */
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    const __m512i negz = _mm512_set1_epi32((int)0x80000000u);
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i zero = _mm512_setzero_si512();
    __m512i amax = zero, vmax = zero, amin = _mm512_set1_epi32(-1);
    uint64_t zeros = 0, negzero = 0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        prefetch_block(x + i, PF_SCAN);
        const __m512i v0 = _mm512_loadu_si512(x + i), v1 = _mm512_loadu_si512(x + i + 16);
        const __m512i v2 = _mm512_loadu_si512(x + i + 32), v3 = _mm512_loadu_si512(x + i + 48);
        const __m512i a0 = _mm512_and_si512(v0, absmask), a1 = _mm512_and_si512(v1, absmask);
        const __m512i a2 = _mm512_and_si512(v2, absmask), a3 = _mm512_and_si512(v3, absmask);
        amax = _mm512_max_epu32(amax, _mm512_max_epu32(_mm512_max_epu32(a0, a1),
                                                       _mm512_max_epu32(a2, a3)));
        vmax = _mm512_max_epu32(vmax, _mm512_max_epu32(_mm512_max_epu32(v0, v1),
                                                       _mm512_max_epu32(v2, v3)));
        amin = _mm512_min_epu32(
            amin, _mm512_min_epu32(_mm512_min_epu32(_mm512_sub_epi32(a0, one), _mm512_sub_epi32(a1, one)),
                                   _mm512_min_epu32(_mm512_sub_epi32(a2, one), _mm512_sub_epi32(a3, one))));
        const uint64_t z = (uint64_t)_mm512_cmpeq_epi32_mask(a0, zero) |
                           (uint64_t)_mm512_cmpeq_epi32_mask(a1, zero) << 16 |
                           (uint64_t)_mm512_cmpeq_epi32_mask(a2, zero) << 32 |
                           (uint64_t)_mm512_cmpeq_epi32_mask(a3, zero) << 48;
        zeros += (uint64_t)__builtin_popcountll(z);
        if (z) {
            const uint64_t nz = (uint64_t)_mm512_cmpeq_epi32_mask(v0, negz) |
                                (uint64_t)_mm512_cmpeq_epi32_mask(v1, negz) << 16 |
                                (uint64_t)_mm512_cmpeq_epi32_mask(v2, negz) << 32 |
                                (uint64_t)_mm512_cmpeq_epi32_mask(v3, negz) << 48;
            negzero += (uint64_t)__builtin_popcountll(nz);
        }
    }
    uint32_t tmax[16], tmin[16], tv[16], hi = 0, lo = 0xffffffffu, anyneg = 0;
    _mm512_storeu_si512(tmax, amax);
    _mm512_storeu_si512(tmin, amin);
    _mm512_storeu_si512(tv, vmax);
    for (int j = 0; j < 16; j++) {
        hi = tmax[j] > hi ? tmax[j] : hi;
        lo = tmin[j] < lo ? tmin[j] : lo;
        anyneg |= tv[j] > 0x80000000u;
    }
    lo = lo == 0xffffffffu ? lo : lo + 1; /* all ones: no non-zero yet */
    scan_finish(x, n, i, r, i0, fixed_anchor, sc, hi, lo, anyneg, zeros, negzero);
}

/* ------------------------------------------------------------ encoder */

/* Appends the first cnt of 16 fields (of b bits, packed 8 per u64 lane
 * pair lo/hi by pext) to w. */
static inline void put16_bytes(sfp__bw *w, __m128i v, uint64_t mask, unsigned b,
                               unsigned cnt)
{
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(v), hi = (uint64_t)_mm_extract_epi64(v, 1);
    sfp__bw_put(w, _pext_u64(lo, mask), (cnt < 8 ? cnt : 8) * b);
    if (cnt > 8)
        sfp__bw_put(w, _pext_u64(hi, mask), (cnt - 8) * b);
}

/*
 * The encoder's per-value loop, 16 values per step (the tail of a block of
 * 64 in scalar code). With the plain coder the codes go straight into the
 * exponent plane instead of through cbuf.
 */
static inline __attribute__((always_inline)) void
enc_values_body(sfp__codec *c, const uint32_t *x, size_t n, uint64_t i0,
                uint64_t *zw, const q16 *qp, const int fast, const int plain,
                const int zmap, const int hsign)
{
    const q16 q = *qp;
    const __m512i lo1 = _mm512_set1_epi32(c->lo - 1);
    const __m512i frac = _mm512_set1_epi32(0x7fffff);
    const __m512i lo32 = _mm512_set1_epi64(0xffffffff);
    const __m128i sh = _mm_cvtsi32_si128((int)c->shift);
    const __m128i kc = _mm_cvtsi32_si128((int)c->k);
    const unsigned k = c->k, e = c->ebits;
    const int zsign = fast ? 0 : c->zsign; /* fast implies no -0 */
    const uint64_t km8 = bytemask(k), em8 = bytemask(e);
    const uint64_t km16 = ONES16 * ((1u << (k > 16 ? 16 : k)) - 1);
    sfp__bw ws = c->wsign, wm = c->wmant, we = c->wexp;
    uint8_t *cb = c->cbuf;
    size_t cn = c->cn;
    uint64_t nonzero = 0, negative = 0;

    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = 0;
        size_t j = 0;
        for (; j + 16 <= m; j += 16) {
            __m512i y = quant16(_mm512_loadu_si512(x + b + j), &q, fast);
            __m512i ya = _mm512_and_si512(y, q.absmask);
            __mmask16 nz = ne32(ya, q.zero);
            unsigned cnt = (unsigned)__builtin_popcount(nz);
            word |= (uint64_t)nz << j;
            if (hsign) {
                unsigned s16 = _mm512_cmpgt_epi32_mask(q.zero, y);
                negative += (unsigned)__builtin_popcount(s16 & nz);
                if (zsign)
                    sfp__bw_put(&ws, s16, 16);
                else
                    sfp__bw_put(&ws, _pext_u32(s16, nz), cnt);
            }
            __m128i codes = dw_to_bytes(_mm512_maskz_sub_epi32(nz, _mm512_srli_epi32(ya, 23), lo1));
            if (k) {
                __m512i mt = _mm512_srl_epi32(_mm512_and_si512(ya, frac), sh);
                if (k <= 8) {
                    put16_bytes(&wm, _mm_maskz_compress_epi8(nz, dw_to_bytes(mt)), km8, k, cnt);
                } else if (k <= 16) {
                    __m256i w16 = _mm256_maskz_compress_epi16(nz, dw_to_words(mt));
                    uint64_t t[4];
                    _mm256_storeu_si256((__m256i *)t, w16);
                    for (unsigned qq = 0, left = cnt; left; qq++) {
                        unsigned f = left < 4 ? left : 4;
                        sfp__bw_put(&wm, _pext_u64(t[qq], km16), f * k);
                        left -= f;
                    }
                } else {
                    /* two fields per 64-bit lane: lo | hi << k */
                    __m512i cm = _mm512_maskz_compress_epi32(nz, mt);
                    __m512i pr = _mm512_or_si512(_mm512_and_si512(cm, lo32),
                                                 _mm512_sll_epi64(_mm512_srli_epi64(cm, 32), kc));
                    uint64_t t[8];
                    _mm512_storeu_si512(t, pr);
                    for (unsigned qq = 0, left = cnt; left; qq++) {
                        unsigned f = left < 2 ? left : 2;
                        sfp__bw_put(&wm, t[qq], f * k);
                        left -= f;
                    }
                }
            }
            if (plain) {
                if (zmap)
                    put16_bytes(&we, _mm_maskz_compress_epi8(nz, codes), em8, e, cnt);
                else
                    put16_bytes(&we, codes, em8, e, 16);
            } else if (zmap) {
                _mm_storeu_si128((__m128i *)(cb + cn), _mm_maskz_compress_epi8(nz, codes));
                cn += cnt;
            } else {
                _mm_storeu_si128((__m128i *)(cb + cn), codes);
                cn += 16;
            }
            nonzero += cnt;
        }
        if (j < m) {
            uint64_t tw = enc_tail(c, x, b, j, m, i0, &ws, &wm, &we, &cn, plain);
            word |= tw;
            nonzero += (uint64_t)__builtin_popcountll(tw);
        }
        zw[b / 64] = word;
    }
    c->wsign = ws;
    c->wmant = wm;
    c->wexp = we;
    c->cn = cn;
    c->nonzero += nonzero;
    c->negative += negative;
}

/*
 * Whole 64-value blocks for the common case (round to nearest even, no -0,
 * nothing saturates: the plan's "fast"), mantissa widths K 0..6 and 23: four
 * vectors quantized, their exponent and top mantissa byte narrowed to 64
 * bytes each with two vpermt2w and two vpermt2b, the non-zero ones left-packed
 * with vpcompressb, the mantissas packed to K bits each by two multiply-adds
 * (pairs, then pairs of pairs) and a qword shift, and appended to the plane
 * as one 512-bit shift (bw_put512); K = 23 (lossless, nothing to round):
 * the fractions of each quarter left-packed and joined (put_frac23). Writes
 * the same bits as enc_fast_body in kernels_avx2.c. Returns how many values
 * it did.
 */

/* qword i-1 / i+1 of a vector (vpermq; the lane shifted in is cleared) */
/* Qword shifts of a vector by one lane (index 8: lane 0 of a zero vector).
 * Zero lanes come from a second, zero operand rather than from a zeroing
 * mask: gcc 12 at -O2/-O3 compiled the K = 23 encoder loop wrong with
 * immediate masks on these permutes (see put_frac23). */
static const uint64_t idx_qdown[8] = {8, 0, 1, 2, 3, 4, 5, 6};
static const uint64_t idx_qup[8] = {1, 2, 3, 4, 5, 6, 7, 8};

/* Appends the low L bits of v (bits from L on zero; w->nbits + L < 512). */
static inline __attribute__((always_inline)) void bw_put512(sfp__bw *w, __m512i v, unsigned L)
{
    const unsigned nb = w->nbits, T = nb + L, full = T >> 6;
    const __m512i prev =
        _mm512_permutex2var_epi64(v, _mm512_loadu_si512(idx_qdown), _mm512_setzero_si512());
    __m512i o = _mm512_or_si512(_mm512_sllv_epi64(v, _mm512_set1_epi64(nb)),
                                _mm512_srlv_epi64(prev, _mm512_set1_epi64(64 - nb)));
    o = _mm512_or_si512(o, _mm512_maskz_mov_epi64(1, _mm512_set1_epi64((long long)w->acc)));
    _mm512_mask_storeu_epi64(w->p, (__mmask8)((1u << full) - 1), o);
    w->p += 8 * full;
    w->acc = (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(
        _mm512_permutexvar_epi64(_mm512_set1_epi64(full), o)));
    w->nbits = T & 63;
}

/* The next L (<= 448) bits of r as a vector (bits from L on: what follows in
 * the plane); the caller checks that 64 bytes from pos / 8 are inside. */
static inline __attribute__((always_inline)) __m512i br_get512(sfp__br *r, unsigned L)
{
    const unsigned sh = (unsigned)(r->pos & 7);
    const __m512i v = _mm512_loadu_si512(r->p + (r->pos >> 3));
    const __m512i next =
        _mm512_permutex2var_epi64(v, _mm512_loadu_si512(idx_qup), _mm512_setzero_si512());
    r->pos += L;
    return _mm512_or_si512(_mm512_srlv_epi64(v, _mm512_set1_epi64(sh)),
                           _mm512_sllv_epi64(next, _mm512_set1_epi64(64 - sh)));
}

/* K-bit fields, K 0..6 (generated): pack = bytes Kq..Kq+K-1 from the low K
 * bytes of qword q. */
static const uint8_t tab_pack[7][64] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,},
    {0, 8, 16, 24, 32, 40, 48, 56, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,},
    {0, 1, 8, 9, 16, 17, 24, 25, 32, 33, 40, 41, 48, 49, 56, 57,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,},
    {0, 1, 2, 8, 9, 10, 16, 17, 18, 24, 25, 26, 32, 33, 34, 40,
     41, 42, 48, 49, 50, 56, 57, 58, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,},
    {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27,
     32, 33, 34, 35, 40, 41, 42, 43, 48, 49, 50, 51, 56, 57, 58, 59,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,},
    {0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 16, 17, 18, 19, 20, 24,
     25, 26, 27, 28, 32, 33, 34, 35, 36, 40, 41, 42, 43, 44, 48, 49,
     50, 51, 52, 56, 57, 58, 59, 60, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,},
    {0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19,
     20, 21, 24, 25, 26, 27, 28, 29, 32, 33, 34, 35, 36, 37, 40, 41,
     42, 43, 44, 45, 48, 49, 50, 51, 52, 53, 56, 57, 58, 59, 60, 61,
     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,},
};
/* vpermt2b: the even / odd bytes of two vectors (low / high byte of words) */
static const uint8_t tab_eo[2][64] = {
    {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
     32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62,
     64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94,
     96, 98, 100, 102, 104, 106, 108, 110, 112, 114, 116, 118, 120, 122, 124, 126,},
    {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
     33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63,
     65, 67, 69, 71, 73, 75, 77, 79, 81, 83, 85, 87, 89, 91, 93, 95,
     97, 99, 101, 103, 105, 107, 109, 111, 113, 115, 117, 119, 121, 123, 125, 127,},
};
/* vpermt2b: dword i of quarter q gets the mantissa byte (first operand) as
 * byte 2 and the exponent (second operand) as byte 3 of value 16 q + i */
static const uint8_t tab_join[4][64] = {
    {0, 0, 0, 64, 1, 1, 1, 65, 2, 2, 2, 66, 3, 3, 3, 67,
     4, 4, 4, 68, 5, 5, 5, 69, 6, 6, 6, 70, 7, 7, 7, 71,
     8, 8, 8, 72, 9, 9, 9, 73, 10, 10, 10, 74, 11, 11, 11, 75,
     12, 12, 12, 76, 13, 13, 13, 77, 14, 14, 14, 78, 15, 15, 15, 79,},
    {16, 16, 16, 80, 17, 17, 17, 81, 18, 18, 18, 82, 19, 19, 19, 83,
     20, 20, 20, 84, 21, 21, 21, 85, 22, 22, 22, 86, 23, 23, 23, 87,
     24, 24, 24, 88, 25, 25, 25, 89, 26, 26, 26, 90, 27, 27, 27, 91,
     28, 28, 28, 92, 29, 29, 29, 93, 30, 30, 30, 94, 31, 31, 31, 95,},
    {32, 32, 32, 96, 33, 33, 33, 97, 34, 34, 34, 98, 35, 35, 35, 99,
     36, 36, 36, 100, 37, 37, 37, 101, 38, 38, 38, 102, 39, 39, 39, 103,
     40, 40, 40, 104, 41, 41, 41, 105, 42, 42, 42, 106, 43, 43, 43, 107,
     44, 44, 44, 108, 45, 45, 45, 109, 46, 46, 46, 110, 47, 47, 47, 111,},
    {48, 48, 48, 112, 49, 49, 49, 113, 50, 50, 50, 114, 51, 51, 51, 115,
     52, 52, 52, 116, 53, 53, 53, 117, 54, 54, 54, 118, 55, 55, 55, 119,
     56, 56, 56, 120, 57, 57, 57, 121, 58, 58, 58, 122, 59, 59, 59, 123,
     60, 60, 60, 124, 61, 61, 61, 125, 62, 62, 62, 126, 63, 63, 63, 127,},
};

static const uint16_t idx_even_w[32] = {
    0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
    32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62,
};

/* Rounding constants of enc_fast512 (K fixed per instantiation). */
typedef struct q4c {
    __m512i absmask, low, half, one, thr, signbit;
    unsigned SH;
} q4c;

/* Values 16 j..16 j+15 of a block: the rounded magnitudes' exponent and
 * top mantissa byte (*g), the kept lanes (*kk), the negative lanes (*ks),
 * and for K = 23 (f23 not NULL) the fractions. */
static inline __attribute__((always_inline)) void
enc_quarter(const uint32_t *x, const q4c *q, const unsigned j, __m512i *g, __mmask16 *kk,
            __mmask16 *ks, __m512i *f23, uint32_t *qo)
{
    const __m512i v = _mm512_loadu_si512(x + 16 * j);
    const __m512i a = _mm512_and_si512(v, q->absmask);
    __m512i m = a; /* K = 23: nothing to round */
    if (q->SH) {
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(a, (int)q->SH), q->one);
        m = _mm512_andnot_si512(q->low, _mm512_add_epi32(a, _mm512_add_epi32(q->half, odd)));
    }
    *kk = _mm512_cmpge_epu32_mask(m, q->thr);
    *ks = _mm512_test_epi32_mask(v, q->signbit);
    *g = _mm512_srli_epi32(m, 15); /* E << 8 | the mantissa's top byte */
    if (qo) /* the quantized values: kept magnitudes with their sign, +0 */
        _mm512_storeu_si512(qo + 16 * j,
                            _mm512_maskz_or_epi32(*kk, m, _mm512_and_si512(v, q->signbit)));
    if (f23)
        *f23 = _mm512_and_si512(m, _mm512_set1_epi32(0x7fffff));
}

/* K = 23: the kept lanes' 23-bit fractions of one quarter (fr, kept mask
 * kj) left-packed, paired into 46 bits per qword, and the eight pairs joined
 * at bit 46 q of one 512-bit field (two fields start in some qwords, one
 * runs over), appended to the mantissa plane. */
static inline __attribute__((always_inline)) void
put_frac23(sfp__bw *wm, __m512i fr, __mmask16 kj)
{
    const __m512i lo32 = _mm512_set1_epi64(0xffffffff);
    const __m512i ia = _mm512_set_epi64(0, 0, 7, 6, 5, 3, 2, 0);
    const __m512i ca = _mm512_set_epi64(64, 64, 2, 20, 38, 10, 28, 0);
    const __m512i ib = _mm512_set_epi64(8, 8, 8, 8, 8, 4, 8, 1);
    const __m512i cb = _mm512_set_epi64(64, 64, 64, 64, 64, 56, 64, 46);
    const __m512i ic = _mm512_set_epi64(8, 8, 6, 5, 4, 2, 1, 8);
    const __m512i cc = _mm512_set_epi64(64, 64, 44, 26, 8, 36, 18, 64);
    /* lanes with index 8 take lane 0 of zero (a zeroing mask on these
     * permutes was compiled wrong by gcc 12 at -O2/-O3 once a store of the
     * quantized values joined the loop: frames that did not decode) */
    const __m512i zero = _mm512_setzero_si512();
    fr = _mm512_maskz_compress_epi32(kj, fr);
    const __m512i pr = _mm512_or_si512(_mm512_and_si512(fr, lo32),
                                       _mm512_slli_epi64(_mm512_srli_epi64(fr, 32), 23));
    const __m512i t = _mm512_or_si512(
        _mm512_or_si512(_mm512_sllv_epi64(_mm512_permutexvar_epi64(ia, pr), ca),
                        _mm512_sllv_epi64(_mm512_permutex2var_epi64(pr, ib, zero), cb)),
        _mm512_srlv_epi64(_mm512_permutex2var_epi64(pr, ic, zero), cc));
    bw_put512(wm, t, 23 * (unsigned)__builtin_popcount(kj));
}

static inline __attribute__((always_inline)) size_t
enc_fast512(sfp__codec *c, const uint32_t *x, size_t n, uint64_t *zw,
            const qscal *s, const unsigned K, const int zmap, const int hsign)
{
    const unsigned SH = 23 - K;
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    const __m512i low = _mm512_set1_epi32((int)((1u << SH) - 1));
    const __m512i half = _mm512_set1_epi32((int)((1u << SH) - 1) >> 1);
    const __m512i one = _mm512_set1_epi32(1);
    /* kept (not flushed) <=> m != 0 and E >= minE <=> m >= thr */
    const __m512i thr = _mm512_set1_epi32(s->minE > 0 ? (int)((uint32_t)s->minE << 23) : 1);
    const __m512i lo1 = _mm512_set1_epi8((char)(c->lo - 1));
    const q4c q4 = {absmask, low, half, one, thr, _mm512_set1_epi32((int)0x80000000u), SH};
    const __m512i iw = _mm512_loadu_si512(idx_even_w);
    const __m512i ieven = _mm512_loadu_si512(tab_eo[0]), iodd = _mm512_loadu_si512(tab_eo[1]);
    const __m512i ipack = _mm512_loadu_si512(tab_pack[K <= 6 ? K : 0]);
    /* the K-bit packing's constants (K <= 6; K = 23 goes by put_frac23) */
    const unsigned KP = K <= 6 ? K : 0;
    const __m512i km = _mm512_set1_epi8((char)((1u << KP) - 1));
    const __m512i mul1 = _mm512_set1_epi16((short)(1 | (1 << KP) << 8));
    const __m512i mul2 = _mm512_set1_epi32((int)(1 | (1u << 2 * KP) << 16));
    const __m512i lo32 = _mm512_set1_epi64(0xffffffff);
    const __mmask64 packed_bytes = KP ? ~UINT64_C(0) >> (64 - 8 * KP) : 0;
    sfp__bw ws = c->wsign, wm = c->wmant;
    uint8_t *cb = c->cbuf;
    size_t cn = c->cn;
    uint64_t nonzero = 0, negative = 0;
    const size_t nb = n & ~(size_t)63;

    for (size_t b = 0; b < nb; b += 64) {
        prefetch_block(x + b, PF_ENC);
        /* the quantized values too, where the caller wants them (written
         * after the block's loads: qout may be x) */
        uint32_t *qo = c->qout && s->minE > 0 ? c->qout + b : NULL;
        /* four vectors; their masks joined with constant shifts (with a
         * loop shifting by 16 j the asan+ubsan build gave wrong masks; that
         * build also had K = 23 copies with out-of-range constant shifts,
         * the likelier cause, since removed) */
        __m512i g[4];
        __m512i f[4];
        __mmask16 kk[4], ks[4];
        enc_quarter(x + b, &q4, 0, &g[0], &kk[0], &ks[0], K == 23 ? &f[0] : NULL, qo);
        enc_quarter(x + b, &q4, 1, &g[1], &kk[1], &ks[1], K == 23 ? &f[1] : NULL, qo);
        enc_quarter(x + b, &q4, 2, &g[2], &kk[2], &ks[2], K == 23 ? &f[2] : NULL, qo);
        enc_quarter(x + b, &q4, 3, &g[3], &kk[3], &ks[3], K == 23 ? &f[3] : NULL, qo);
        if (K == 23) {
            put_frac23(&wm, f[0], kk[0]);
            put_frac23(&wm, f[1], kk[1]);
            put_frac23(&wm, f[2], kk[2]);
            put_frac23(&wm, f[3], kk[3]);
        }
        const uint64_t word = (uint64_t)kk[0] | (uint64_t)kk[1] << 16 | (uint64_t)kk[2] << 32 |
                              (uint64_t)kk[3] << 48;
        const uint64_t sg = hsign ? (uint64_t)ks[0] | (uint64_t)ks[1] << 16 |
                                        (uint64_t)ks[2] << 32 | (uint64_t)ks[3] << 48
                                  : 0;
        const unsigned cnt = (unsigned)__builtin_popcountll(word);
        const __m512i p01 = _mm512_permutex2var_epi16(g[0], iw, g[1]);
        const __m512i p23 = _mm512_permutex2var_epi16(g[2], iw, g[3]);
        const __m512i cd = _mm512_sub_epi8(_mm512_permutex2var_epi8(p01, iodd, p23), lo1);
        if (zmap) {
            _mm512_storeu_si512(cb + cn, _mm512_maskz_compress_epi8(word, cd));
            cn += cnt;
        } else {
            _mm512_storeu_si512(cb + cn, _mm512_maskz_mov_epi8(word, cd));
            cn += 64;
        }
        if (K && K != 23) {
            __m512i mt = _mm512_permutex2var_epi8(p01, ieven, p23);
            mt = _mm512_and_si512(_mm512_srli_epi16(mt, (int)(8 - KP)), km);
            mt = _mm512_maskz_compress_epi8(word, mt);
            /* K-bit fields: pairs in 2K bits, quads in 4K, eights in 8K
             * bits = K bytes per qword, then the qwords' K bytes joined */
            __m512i t = _mm512_madd_epi16(_mm512_maddubs_epi16(mt, mul1), mul2);
            t = _mm512_or_si512(_mm512_and_si512(t, lo32),
                                _mm512_slli_epi64(_mm512_srli_epi64(t, 32), (unsigned)(4 * KP)));
            t = _mm512_maskz_permutexvar_epi8(packed_bytes, ipack, t);
            bw_put512(&wm, t, cnt * KP);
        }
        if (hsign) {
            negative += (uint64_t)__builtin_popcountll(sg & word);
            sfp__bw_put(&ws, _pext_u64(sg, word), cnt);
        }
        zw[b / 64] = word;
        nonzero += cnt;
    }
    fast_enc_finish(c, &ws, &wm, cn, nonzero, negative);
    return nb;
}

static void enc_values_avx512(sfp__codec *c, const uint32_t *x, size_t n,
                              uint64_t i0, uint64_t *zw)
{
    if (c->pl->r.mode == SFP_ROUND_STOCHASTIC) {
        sfp__kernels_c.enc_values(c, x, n, i0, zw);
        return;
    }
    const qscal s = qscal_of(c->pl);
    if (s.fast && !s.trunc) {
        /* K 0..6 and 23 (lossless) here; 7 and 8 in the AVX2 kernel's
         * loops (measured as fast as these would be: one pext per 8 values) */
        const int slot = c->k <= 6 ? (int)c->k : c->k == 23 && s.noround ? 7 : -1;
        if (slot < 0 || s.minE > 255) {
            sfp__kernels_avx2.enc_values(c, x, n, i0, zw);
            return;
        }
        size_t done = 0;
        switch (slot << 2 | (c->zmap ? 2 : 0) | (c->hsign ? 1 : 0)) {
#define SFP__FAST_CASE(v)                                                      \
    case v:                                                                    \
        done = enc_fast512(c, x, n, zw, &s, (v) >> 2 == 7 ? 23 : (v) >> 2,     \
                           ((v) >> 1) & 1, (v) & 1);                           \
        break;
        SFP__CASES16(SFP__FAST_CASE)
        SFP__FAST_CASE(16) SFP__FAST_CASE(17) SFP__FAST_CASE(18) SFP__FAST_CASE(19)
        SFP__FAST_CASE(20) SFP__FAST_CASE(21) SFP__FAST_CASE(22) SFP__FAST_CASE(23)
        SFP__FAST_CASE(24) SFP__FAST_CASE(25) SFP__FAST_CASE(26) SFP__FAST_CASE(27)
        SFP__FAST_CASE(28) SFP__FAST_CASE(29) SFP__FAST_CASE(30) SFP__FAST_CASE(31)
#undef SFP__FAST_CASE
        }
        /* the quantized values of the blocks (not of subnormal windows,
         * which quantize takes care of) */
        c->qdone = c->qout && s.minE > 0 ? done : 0;
        if (done < n) /* the tail of the last block */
            sfp__kernels_avx2.enc_values(c, x + done, n - done, i0 + done, zw + done / 64);
        return;
    }
    q16 q;
    q16_init(&q, c->pl);
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

/*
 * Gecko groups of 16: one group per 128-bit lane, 64 codes per vector;
 * lane maxima and OR of the deltas by in-lane byte shifts; each group out
 * by gecko16_put (how: the branchless writer for e <= 7). The rest (other group
 * sizes, the last partial group, rANS) goes to the AVX2 kernel. Returns how
 * many codes it did.
 */
static inline __attribute__((always_inline)) size_t
gecko16_enc_body(sfp__codec *c, sfp__bw *wep, unsigned *prevp, const int how)
{
    const unsigned e = c->ebits, wbits = sfp__gecko_wbits(e);
    const __m512i z = _mm512_setzero_si512();
    const __m512i shr[4] = {_mm512_loadu_si512(idx_shr[0]), _mm512_loadu_si512(idx_shr[1]),
                            _mm512_loadu_si512(idx_shr[2]), _mm512_loadu_si512(idx_shr[3])};
    sfp__bw we = *wep;
    unsigned prev = *prevp;
    size_t i = 0;
    if (how != GK_PUT)
        sfp__bw_whole(&we);
    for (; c->cn - i >= 64; i += 64) {
        __m512i v = _mm512_loadu_si512(c->cbuf + i);
        __m512i m = v, d, o;
        for (int t = 0; t < 4; t++)
            m = _mm512_max_epu8(m, _mm512_shuffle_epi8(m, shr[t]));
        d = _mm512_sub_epi8(_mm512_shuffle_epi8(m, z), v);
        o = d;
        for (int t = 0; t < 4; t++)
            o = _mm512_or_si512(o, _mm512_shuffle_epi8(o, shr[t]));
        uint8_t mm[64], oo[64];
        uint64_t dd[8];
        _mm512_storeu_si512(mm, m);
        _mm512_storeu_si512(oo, o);
        _mm512_storeu_si512(dd, d);
        for (int g = 0; g < 4; g++) {
            gecko16_put(&we, e, wbits, how, &prev, mm[16 * g], oo[16 * g], dd[2 * g],
                        dd[2 * g + 1]);
        }
    }
    *wep = we;
    *prevp = prev;
    return i;
}

static void enc_codes_avx512(sfp__codec *c, int last)
{
    if (c->coder == SFP_CODER_GECKO && c->G == 16) {
        sfp__bw we = c->wexp;
        unsigned prev = c->prev_base;
        size_t i;
        if (c->ebits <= 5)
            i = gecko16_enc_body(c, &we, &prev, GK_FAST2);
        else if (c->ebits <= 7)
            i = gecko16_enc_body(c, &we, &prev, GK_FAST3);
        else
            i = gecko16_enc_body(c, &we, &prev, GK_PUT);
        c->wexp = we;
        c->prev_base = prev;
        memmove(c->cbuf, c->cbuf + i, c->cn - i);
        c->cn -= i;
    }
    sfp__kernels_avx2.enc_codes(c, last);
}

/* ------------------------------------------------------------ decoder */

static inline __attribute__((always_inline)) void
dec_values_body(sfp__codec *c, uint32_t *y, size_t n, const uint64_t *zw,
                const int zmap, const int hsign, const int kcls)
{
    const __m512i lo1 = _mm512_set1_epi32(c->lo - 1);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i cmin = _mm512_set1_epi32((int)c->cmin);
    const __m512i csub = _mm512_set1_epi32((int)c->csub);
    const __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
    const int sub = c->csub < 256; /* the window reaches E = 0 */
    const __m128i sh = _mm_cvtsi32_si128((int)c->shift);
    const unsigned k = c->k;
    const uint64_t km8 = bytemask(k);
    const uint64_t km16 = ONES16 * ((1u << (k > 16 ? 16 : k)) - 1);
    const uint64_t km32 = (UINT64_C(1) << k) - 1;
    const int zsign = c->zsign;
    sfp__br rs = c->rsign, rm = c->rmant;
    const uint8_t *cb = c->cbuf;
    size_t cpos = c->cpos;
    uint64_t nonzero = 0;
    unsigned bad = 0;

    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = zmap ? zw[b / 64] : 0;
        size_t j = 0;
        for (; j + 16 <= m; j += 16) {
            __mmask16 nz;
            __m128i codes;
            if (zmap) {
                nz = (__mmask16)(word >> j);
                codes = _mm_maskz_expand_epi8(nz, _mm_loadu_si128((const __m128i *)(cb + cpos)));
            } else {
                codes = _mm_loadu_si128((const __m128i *)(cb + cpos));
                nz = (__mmask16)(0xffffu ^ (unsigned)_mm_movemask_epi8(
                                              _mm_cmpeq_epi8(codes, _mm_setzero_si128())));
            }
            unsigned cnt = (unsigned)__builtin_popcount(nz);
            cpos += zmap ? cnt : 16;
            __m512i cd = _mm512_cvtepu8_epi32(codes);
            /* a code below the window (a code 0 where the map says
             * non-zero included) */
            bad |= nz & _mm512_cmpgt_epi32_mask(cmin, cd);

            __m512i mt = zero;
            if (kcls == 1) {
                unsigned l8 = nz & 0xff, h8 = nz >> 8;
                uint64_t a0 = _pdep_u64(get_bits(&rm, (unsigned)__builtin_popcount(l8) * k),
                                        km8 & expand8(l8));
                uint64_t a1 = _pdep_u64(get_bits(&rm, (unsigned)__builtin_popcount(h8) * k),
                                        km8 & expand8(h8));
                mt = _mm512_cvtepu8_epi32(_mm_set_epi64x((long long)a1, (long long)a0));
            } else if (kcls == 2) {
                uint64_t t[4];
                for (int qq = 0; qq < 4; qq++) {
                    unsigned f = (nz >> (4 * qq)) & 15;
                    t[qq] = _pdep_u64(get_bits(&rm, (unsigned)__builtin_popcount(f) * k),
                                      km16 & expand16(f));
                }
                mt = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)t));
            } else if (kcls == 3) {
                uint64_t t[8];
                for (int qq = 0; qq < 8; qq++) {
                    unsigned two = (nz >> (2 * qq)) & 3;
                    uint64_t mask = ((two & 1) ? km32 : 0) | ((two & 2) ? km32 << 32 : 0);
                    t[qq] = _pdep_u64(get_bits(&rm, (unsigned)__builtin_popcount(two) * k), mask);
                }
                mt = _mm512_loadu_si512(t);
            }
            if (sub) /* E = 0 with a zero mantissa is a zero, not a code */
                bad |= nz & _mm512_cmpeq_epi32_mask(cd, csub) & _mm512_cmpeq_epi32_mask(mt, zero);
            __m512i v = _mm512_or_si512(_mm512_slli_epi32(_mm512_add_epi32(cd, lo1), 23),
                                        _mm512_sll_epi32(mt, sh));
            v = _mm512_maskz_mov_epi32(nz, v);
            if (hsign) {
                unsigned s16 = zsign ? (unsigned)sfp__br_get(&rs, 16)
                                     : _pdep_u32((unsigned)sfp__br_get(&rs, cnt), nz);
                v = _mm512_mask_or_epi32(v, (__mmask16)s16, v, signbit);
            }
            _mm512_storeu_si512(y + b + j, v);
            nonzero += cnt;
        }
        if (j < m)
            dec_tail(c, y, b, j, m, word, &cpos, &rs, &rm);
    }
    c->cpos = cpos;
    c->rsign = rs;
    c->rmant = rm;
    c->nonzero += nonzero;
    c->bad |= bad != 0;
}

/*
 * Gecko groups of 16 are decoded inside dec_fast512, a few groups ahead of
 * the block that needs them, instead of in a pass of their own before it
 * (dec_codes): the group headers form one dependent chain (each gives the
 * next one's position), which alone takes about as long as the values' work
 * and here overlaps it. dec_codes_avx512 then only keeps the codes left
 * over from the last chunk; what the loop cannot do (the plane's last 32
 * bytes, the last partial group, K 7 and 8, the tail) goes through the AVX2
 * kernel's dec_codes and dec_values as before.
 */
#define GK_AHEAD 64

static inline int gk16_deferred(const sfp__codec *c)
{
    return c->coder == SFP_CODER_GECKO && c->G == 16 && c->ebits <= 7 && !c->zsign &&
           c->k <= 6;
}

/*
 * The decoder's loop for whole 64-value blocks, K 0..6, no -0 plane: the
 * block's codes expanded to their lanes (vpexpandb), its mantissas read as
 * one 512-bit field, unpacked to bytes by vpermb + vpmultishiftqb and
 * expanded, exponent and mantissa bytes joined into the dwords by four
 * vpermt2b. Same values and the same checks as dec_fast_body in
 * kernels_avx2.c. Stops early (returns the values done) where a block's
 * mantissas could reach past the plane's end; the caller finishes.
 */
static inline __attribute__((always_inline)) size_t
dec_fast512(sfp__codec *c, uint32_t *y, size_t n, uint64_t *zw,
            const unsigned K, const int zmap, const int hsign)
{
    const __m512i zero = _mm512_setzero_si512();
    const __m512i lo1 = _mm512_set1_epi8((char)(c->lo - 1));
    const __m512i cmin8 = _mm512_set1_epi8((char)(zmap ? c->cmin : c->cmin - 1));
    const __m512i one8 = _mm512_set1_epi8(1);
    const __m512i csub8 = _mm512_set1_epi8((char)c->csub);
    const int sub = c->csub < 256; /* the window reaches E = 0 */
    const __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
    /* vpermb: bytes Kq..Kq+7 to qword q; vpmultishiftqb: byte i of a
     * qword from its bit K i */
    const uint64_t kq = K * ONES8;
    const __m512i iunp = _mm512_set_epi64((long long)(LANES8 + 7 * kq), (long long)(LANES8 + 6 * kq),
                                          (long long)(LANES8 + 5 * kq), (long long)(LANES8 + 4 * kq),
                                          (long long)(LANES8 + 3 * kq), (long long)(LANES8 + 2 * kq),
                                          (long long)(LANES8 + kq), (long long)LANES8);
    const __m512i ctrl = _mm512_set1_epi64((long long)(K * LANES8));
    const __m512i km = _mm512_set1_epi8((char)((1u << K) - 1));
    const __mmask64 hi2 = 0xccccccccccccccccull;
    sfp__br rs = c->rsign, rm = c->rmant;
    uint8_t *cb = c->cbuf;
    size_t cpos = c->cpos, cn = c->cn;
    uint64_t nonzero = 0, bad = 0;
    const size_t nb = n & ~(size_t)63;
    size_t b = 0;
    /* Gecko groups read here, as the blocks need them (gk16_deferred) */
    const int gk = gk16_deferred(c);
    const unsigned e = c->ebits, wbits = sfp__gecko_wbits(e);
    const uint64_t emask = (UINT64_C(1) << e) - 1, wmask = (UINT64_C(1) << wbits) - 1;
    const uint8_t *ep = c->rexp.p;
    uint64_t epos = c->rexp.pos, left = c->codes_left;
    const uint64_t elim = c->rexp.len >= 32 ? c->rexp.len - 32 : 0;
    unsigned prev = c->prev_base, wbad = 0;
    __m128i gbad = _mm_setzero_si128();
    /* a Huffman-coded zero map read here too, a block's masks as the
     * block comes, so that its dependent chain overlaps the values' work */
    sfp__zhread *zh = zmap ? c->zh : NULL;
    sfp__zhread zs = zh ? *zh : (sfp__zhread){0};

    for (; b < nb; b += 64) {
        prefetch_block(y + b, PF_DEC); /* the lines it will write */
        if (K && (rm.pos >> 3) + 64 > rm.len)
            break;
        uint64_t word = 0;
        if (zh) {
            /* with two streams, a block pair's masks at once (the chunk is
             * whole pairs: the block's parity here is its parity in the
             * tensor) */
            const uint64_t blk = b / 64;
            if (blk < zs.blocks) {
                word = zw[blk];
            } else if (zs.two && !(blk & 1) && b + 64 < nb) {
                uint64_t w1;
                sfp__zh_pair(&zs, &word, &w1);
                zw[blk] = word;
                zw[blk + 1] = w1;
                zs.blocks = blk + 2;
            } else {
                word = sfp__zh_block(&zs, blk, 8);
                zw[blk] = word;
                zs.blocks = blk + 1;
            }
        } else if (zmap) {
            word = zw[b / 64];
        }
        if (gk) {
            const size_t want = zmap ? (size_t)__builtin_popcountll(word) : 64;
            /* a block ahead where the plane allows: the 64-byte load below
             * would stall on 16-byte stores still in flight */
            while (cn - cpos < want + GK_AHEAD && left >= 16 && c->rexp.len >= 32 &&
                   (epos >> 3) <= elim) {
                gecko16_get_fast(ep, &epos, e, wbits, emask, wmask, &prev, cb + cn, &gbad, &wbad);
                cn += 16;
                left -= 16;
            }
            if (cn - cpos < want)
                break; /* near the plane's end: the checked path */
        }
        const __m512i raw = _mm512_loadu_si512(cb + cpos);
        __m512i cd;
        if (zmap) {
            cd = _mm512_maskz_expand_epi8(word, raw);
            /* a code below the window (a code 0 where the map says
             * non-zero included) */
            bad |= word & _mm512_cmplt_epu8_mask(cd, cmin8);
            cpos += (size_t)__builtin_popcountll(word);
        } else { /* a code per value, 0 for a zero; none in 1..cmin-1 */
            cd = raw;
            word = _mm512_test_epi8_mask(cd, cd);
            bad |= _mm512_cmplt_epu8_mask(_mm512_sub_epi8(cd, one8), cmin8);
            cpos += 64;
        }
        const unsigned cnt = (unsigned)__builtin_popcountll(word);
        __m512i mt = zero;
        if (K) {
            mt = _mm512_multishift_epi64_epi8(ctrl, _mm512_permutexvar_epi8(iunp, br_get512(&rm, cnt * K)));
            mt = _mm512_maskz_expand_epi8(word, _mm512_and_si512(mt, km));
        }
        if (sub) { /* E = 0 with a zero mantissa is a zero, not a code */
            uint64_t e0 = word & _mm512_cmpeq_epi8_mask(cd, csub8);
            if (K)
                e0 &= ~_mm512_test_epi8_mask(mt, mt);
            bad |= e0;
        }
        const __m512i eb = _mm512_add_epi8(cd, lo1);
        if (K)
            mt = _mm512_slli_epi16(mt, (int)(8 - K));
        uint64_t sg = 0;
        if (hsign)
            sg = _pdep_u64(get_bits(&rs, cnt), word);
#pragma GCC unroll 4
        for (unsigned q = 0; q < 4; q++) {
            __m512i v = _mm512_maskz_permutex2var_epi8(hi2, mt, _mm512_loadu_si512(tab_join[q]), eb);
            v = _mm512_maskz_mov_epi32((__mmask16)(word >> 16 * q), _mm512_srli_epi32(v, 1));
            if (hsign)
                v = _mm512_mask_or_epi32(v, (__mmask16)(sg >> 16 * q), v, signbit);
            _mm512_storeu_si512(y + b + 16 * q, v);
        }
        nonzero += cnt;
    }
    c->cpos = cpos;
    c->rsign = rs;
    c->rmant = rm;
    c->nonzero += nonzero;
    c->bad |= bad != 0;
    if (gk) {
        c->cn = cn;
        c->rexp.pos = epos;
        c->codes_left = left;
        c->prev_base = prev;
        c->bad |= wbad || !_mm_testz_si128(gbad, gbad);
    }
    if (zh)
        *zh = zs;
    return b;
}

static void dec_values_avx512(sfp__codec *c, uint32_t *y, size_t n, uint64_t *zw)
{
    if (c->zmap && c->zh)
        c->zh->blocks = 0;
    if (!c->zsign && c->k <= 8) {
        size_t done = 0;
        switch (c->k > 6 ? -1 : (int)c->k << 2 | (c->zmap ? 2 : 0) | (c->hsign ? 1 : 0)) {
#define SFP__FAST_CASE(v)                                                      \
    case v:                                                                    \
        done = dec_fast512(c, y, n, zw, (v) >> 2, ((v) >> 1) & 1, (v) & 1);    \
        break;
        SFP__CASES16(SFP__FAST_CASE)
        SFP__FAST_CASE(16) SFP__FAST_CASE(17) SFP__FAST_CASE(18) SFP__FAST_CASE(19)
        SFP__FAST_CASE(20) SFP__FAST_CASE(21) SFP__FAST_CASE(22) SFP__FAST_CASE(23)
        SFP__FAST_CASE(24) SFP__FAST_CASE(25) SFP__FAST_CASE(26) SFP__FAST_CASE(27)
#undef SFP__FAST_CASE
        default:
            break;
        }
        /* K 7, 8, the tail, and blocks at the mantissa or exponent plane's
         * end: the AVX2 kernel's loops (with the codes they need first when
         * the groups were deferred) */
        if (done < n) {
            sfp__zhread *zh = c->zmap ? c->zh : NULL;
            if (zh) {
                /* the masks of the blocks the loop did not read */
                for (uint64_t blk = zh->blocks; blk < (n + 63) / 64; blk++) {
                    const size_t m = n - blk * 64 < 64 ? n - blk * 64 : 64;
                    uint64_t w = sfp__zh_block(zh, blk, (unsigned)(m + 7) / 8);
                    /* bits past the tensor end are never written by an encoder */
                    zh->bad |= m < 64 && (w >> m) != 0;
                    zw[blk] = w;
                }
                zh->blocks = (n + 63) / 64;
                if (zh->bad || sfp__br_overrun(&zh->r[0]) || sfp__br_overrun(&zh->r[1])) {
                    c->bad = 1;
                    return;
                }
            }
            if (gk16_deferred(c)) {
                size_t need = n - done;
                if (c->zmap) {
                    need = 0;
                    for (size_t i = done / 64; i < (n + 63) / 64; i++)
                        need += (size_t)__builtin_popcountll(zw[i]);
                }
                if (sfp__kernels_avx2.dec_codes(c, need) < 0) {
                    c->bad = 1;
                    return;
                }
            }
            sfp__kernels_avx2.dec_values(c, y + done, n - done, zw + done / 64);
        }
        return;
    }
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

static void analyze_avx512(const uint32_t *x, size_t n, const sfp__round *r,
                           uint64_t i0, sfp__hist *h)
{
    sfp__kernels_avx2.analyze(x, n, r, i0, h);
}

static int dec_codes_avx512(sfp__codec *c, size_t need)
{
    if (gk16_deferred(c)) {
        /* dec_values_avx512 reads the groups as its blocks need them */
        memmove(c->cbuf, c->cbuf + c->cpos, c->cn - c->cpos);
        c->cn -= c->cpos;
        c->cpos = 0;
        return SFP_OK;
    }
    return sfp__kernels_avx2.dec_codes(c, need);
}

/* The Huffman-coded zero map is read in dec_fast512 when the Gecko groups
 * are (the chunk's code count is then not needed before dec_values). */
static int dec_zmap_avx512(const sfp__codec *c)
{
    return c->zmap && gk16_deferred(c);
}

/* ------------------------------------------------------- rANS x32 */

/* (Not in the SIMDe emulation build, which lacks gathers and expands: its
 * table leaves rANS to the C loops.) */
#ifndef SFP_AVX512_EMULATE

/* Per-symbol constants of the encoder's lanes. */
typedef struct renc512 {
    int small; /* at most 16 symbols: register permutes, no gathers */
    __m512i f16, c16;
    __m512 r16;
    const uint32_t *ftab, *ctab;
    const float *rtab;
} renc512;

/*
 * One encoder step of 16 lanes (codes sy): the renormalisation of every
 * lane at once (x >= f << 20, i.e. x >> 20 >= f), the low words of the
 * lanes that renormalise stored below p in lane order (the decoder reads
 * them in that order), then x = (x / f) << 12 + x mod f + cum with the
 * quotient from a float reciprocal, at most one off (x < 2^32,
 * x / f < 2^20: three roundings, a relative error under 2^-22, move it by
 * less than 1) and corrected from the remainder.
 */
static inline __m512i renc_step(__m512i vx, __m512i sy, const renc512 *k, uint8_t **pp)
{
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    __m512i f, cum;
    __m512 rc;
    if (k->small) {
        f = _mm512_permutexvar_epi32(sy, k->f16);
        cum = _mm512_permutexvar_epi32(sy, k->c16);
        rc = _mm512_permutexvar_ps(sy, k->r16);
    } else {
        f = _mm512_i32gather_epi32(sy, (const void *)k->ftab, 4);
        cum = _mm512_i32gather_epi32(sy, (const void *)k->ctab, 4);
        rc = _mm512_i32gather_ps(sy, (const void *)k->rtab, 4);
    }
    const __mmask16 re = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(vx, 20), f);
    const unsigned cnt = (unsigned)__builtin_popcount(re);
    const __m256i w = _mm512_cvtepi32_epi16(_mm512_maskz_compress_epi32(re, vx));
    *pp -= 2 * cnt;
    _mm256_mask_storeu_epi16(*pp, (__mmask16)((1u << cnt) - 1), w);
    vx = _mm512_mask_srli_epi32(vx, re, vx, 16);
    __m512i q = _mm512_cvttps_epu32(_mm512_mul_ps(_mm512_cvtepu32_ps(vx), rc));
    __m512i rem = _mm512_sub_epi32(vx, _mm512_mullo_epi32(q, f));
    const __mmask16 below = _mm512_cmplt_epi32_mask(rem, zero);
    const __mmask16 above = _mm512_cmpge_epi32_mask(rem, f);
    q = _mm512_mask_sub_epi32(q, below, q, one);
    rem = _mm512_mask_add_epi32(rem, below, rem, f);
    q = _mm512_mask_add_epi32(q, above, q, one);
    rem = _mm512_mask_sub_epi32(rem, above, rem, f);
    return _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(q, SFP__RANS_SCALE), rem), cum);
}

/* 32-state rANS (FORMAT 2.5): two vectors of 16 lanes, states 0-15 and
 * 16-31; within a round the upper half is coded first (coding runs
 * backwards), so its words lie above the lower half's. */
static uint8_t *rans_enc32_avx512(uint32_t *x, const sfp__rans_table *t,
                                  const uint8_t *codes, uint64_t rounds, uint8_t *p)
{
    rans_lanes lt;
    rans_lanes_of(&lt, t);
    renc512 k;
    k.small = t->nsym <= 16;
    k.f16 = _mm512_loadu_si512(lt.f);
    k.c16 = _mm512_loadu_si512(lt.cum);
    k.r16 = _mm512_loadu_ps(lt.rcp);
    k.ftab = lt.f, k.ctab = lt.cum, k.rtab = lt.rcp;
    __m512i lo = _mm512_loadu_si512(x), hi = _mm512_loadu_si512(x + 16);
    for (uint64_t r = rounds; r-- > 0;) {
        const __m256i c = _mm256_loadu_si256((const __m256i *)(codes + 32 * r));
        hi = renc_step(hi, _mm512_cvtepu8_epi32(_mm256_extracti128_si256(c, 1)), &k, &p);
        lo = renc_step(lo, _mm512_cvtepu8_epi32(_mm256_castsi256_si128(c)), &k, &p);
    }
    _mm512_storeu_si512(x, lo);
    _mm512_storeu_si512(x + 16, hi);
    return p;
}

/* One decoder step of 16 lanes: the slot entries by one gather, the
 * symbols out, the 16 steps, the words of the lanes below L expanded from
 * the stream in lane order (32 bytes loaded). */
static inline __m512i rdec_step(__m512i vx, const sfp__rans_table *t, uint8_t *out,
                                const uint8_t **pp)
{
    const __m512i m12 = _mm512_set1_epi32(SFP__RANS_M - 1), one = _mm512_set1_epi32(1);
    const __m512i vL = _mm512_set1_epi32((int)SFP__RANS_L);
    const __m512i e = _mm512_i32gather_epi32(_mm512_and_si512(vx, m12), (const void *)t->slot, 4);
    _mm_storeu_si128((__m128i *)out, _mm512_cvtepi32_epi8(e));
    const __m512i f = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(e, 8), m12), one);
    const __m512i v = _mm512_add_epi32(_mm512_mullo_epi32(f, _mm512_srli_epi32(vx, SFP__RANS_SCALE)),
                                       _mm512_srli_epi32(e, 20));
    const __mmask16 re = _mm512_cmplt_epu32_mask(v, vL);
    const __m512i w = _mm512_maskz_expand_epi32(
        re, _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)*pp)));
    *pp += 2 * (unsigned)__builtin_popcount(re);
    return _mm512_mask_or_epi32(v, re, _mm512_slli_epi32(v, 16), w);
}

static size_t rans_dec32_avx512(uint32_t *x, const sfp__rans_table *t, const uint8_t **pp,
                                const uint8_t *end, uint8_t *out, size_t rounds)
{
    const uint8_t *p = *pp;
    __m512i lo = _mm512_loadu_si512(x), hi = _mm512_loadu_si512(x + 16);
    size_t r = 0;
    for (; r < rounds && end - p >= 64; r++) {
        lo = rdec_step(lo, t, out + 32 * r, &p);
        hi = rdec_step(hi, t, out + 32 * r + 16, &p);
    }
    _mm512_storeu_si512(x, lo);
    _mm512_storeu_si512(x + 16, hi);
    *pp = p;
    return r;
}
#endif

/*
 * Histogram of the rANS request's codes (e <= 5 bits): per symbol a vector
 * of byte counters, one masked add per 64 codes, summed by vpsadbw every
 * 255 rounds (before a byte can wrap); 32 symbols in two passes of 16.
 * The scalar loop was a chain of increments through memory.
 */
static void count16_avx512(const uint8_t *codes, uint64_t n, unsigned s0,
                           uint64_t count[256], uint64_t *blocks)
{
    const __m512i one = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
    uint64_t h = 0, nb = 0;
    while (n - h >= 64) {
        __m512i c[16];
        for (unsigned s = 0; s < 16; s++)
            c[s] = zero;
        const uint64_t stop = n - h >= 64 * 255 ? h + 64 * 255 : n - (n - h) % 64;
        for (; h < stop; h += 64) {
            const __m512i v = _mm512_loadu_si512(codes + h);
            nb += _mm512_test_epi8_mask(v, v) != 0;
#pragma GCC unroll 16
            for (unsigned s = 0; s < 16; s++)
                c[s] = _mm512_mask_add_epi8(
                    c[s], _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8((char)(s0 + s))), c[s], one);
        }
        for (unsigned s = 0; s < 16; s++) {
            uint64_t t[8];
            _mm512_storeu_si512(t, _mm512_sad_epu8(c[s], zero));
            count[s0 + s] += t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
        }
    }
    unsigned any = 0;
    for (; h < n; h++) {
        any |= codes[h];
        if (codes[h] - s0 < 16)
            count[codes[h]]++;
    }
    *blocks = nb + (any != 0);
}

static int count_codes_avx512(const uint8_t *codes, uint64_t n, unsigned e,
                              uint64_t count[256], uint64_t *blocks)
{
    if (e > 5)
        return 0;
    count16_avx512(codes, n, 0, count, blocks);
    if (e == 5)
        count16_avx512(codes, n, 16, count, blocks);
    return 1;
}

const sfp__kernels KTABLE = {
    .analyze = analyze_avx512,
    .scan = scan_avx512,
    .count_below = count_below_avx512,
    .quantize = quantize_avx512,
    .enc_values = enc_values_avx512,
    .enc_codes = enc_codes_avx512,
    .dec_codes = dec_codes_avx512,
    .dec_values = dec_values_avx512,
    .dec_zmap = dec_zmap_avx512,
    .count_codes = count_codes_avx512,
#ifndef SFP_AVX512_EMULATE
    .rans_enc32 = rans_enc32_avx512,
    .rans_dec32 = rans_dec32_avx512,
#endif
};
