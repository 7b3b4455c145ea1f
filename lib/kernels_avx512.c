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
static void scan_avx512(const uint32_t *x, size_t n, const sfp__round *r,
                        uint64_t i0, int fixed_anchor, sfp__scan *sc)
{
    if (r->mode == SFP_ROUND_STOCHASTIC || n < 64) {
        sfp__kernels_c.scan(x, n, r, i0, fixed_anchor, sc);
        return;
    }
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    const __m512i negz = _mm512_set1_epi32((int)0x80000000u);
    const __m512i zero = _mm512_setzero_si512();
    __m512i amax = zero, amin = _mm512_set1_epi32(-1), neg = zero;
    uint64_t zeros = 0, negzero = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_loadu_si512(x + i);
        __m512i a = _mm512_and_si512(v, absmask);
        __mmask16 isz = _mm512_cmpeq_epi32_mask(a, zero);
        amax = _mm512_max_epu32(amax, a);
        amin = _mm512_mask_min_epu32(amin, (__mmask16)~isz, amin, a);
        zeros += (unsigned)__builtin_popcount(isz);
        negzero += (unsigned)__builtin_popcount(_mm512_cmpeq_epi32_mask(v, negz));
        neg = _mm512_mask_or_epi32(neg, (__mmask16)~isz, neg, v);
    }
    uint32_t tmax[16], tmin[16], tneg[16], hi = 0, lo = 0xffffffffu, anyneg = 0;
    _mm512_storeu_si512(tmax, amax);
    _mm512_storeu_si512(tmin, amin);
    _mm512_storeu_si512(tneg, neg);
    for (int j = 0; j < 16; j++) {
        hi = tmax[j] > hi ? tmax[j] : hi;
        lo = tmin[j] < lo ? tmin[j] : lo;
        anyneg |= tneg[j] >> 31;
    }
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

static void enc_values_avx512(sfp__codec *c, const uint32_t *x, size_t n,
                              uint64_t i0, uint64_t *zw)
{
    if (c->pl->r.mode == SFP_ROUND_STOCHASTIC) {
        sfp__kernels_c.enc_values(c, x, n, i0, zw);
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
 * lane maxima and OR of the deltas by in-lane byte shifts. The rest (other
 * group sizes, the last partial group, rANS) goes to the AVX2 kernel.
 */
static void enc_codes_avx512(sfp__codec *c, int last)
{
    size_t i = 0;
    if (c->coder == SFP_CODER_GECKO && c->G == 16) {
        const unsigned e = c->ebits, wbits = sfp__gecko_wbits(e);
        const __m512i z = _mm512_setzero_si512();
        const __m512i shr[4] = {_mm512_loadu_si512(idx_shr[0]), _mm512_loadu_si512(idx_shr[1]),
                                _mm512_loadu_si512(idx_shr[2]), _mm512_loadu_si512(idx_shr[3])};
        sfp__bw we = c->wexp;
        unsigned prev = c->prev_base;
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
                unsigned B = mm[16 * g], w = sfp__bitlen(oo[16 * g]);
                if (B == prev)
                    sfp__bw_put(&we, 1 | (uint64_t)w << 1, 1 + wbits);
                else
                    sfp__bw_put(&we, (uint64_t)B << 1 | (uint64_t)w << (1 + e), 1 + e + wbits);
                prev = B;
                if (w) {
                    const uint64_t wm = bytemask(w);
                    sfp__bw_put(&we, _pext_u64(dd[2 * g], wm), 8 * w);
                    sfp__bw_put(&we, _pext_u64(dd[2 * g + 1], wm), 8 * w);
                }
            }
        }
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

static void dec_values_avx512(sfp__codec *c, uint32_t *y, size_t n,
                              const uint64_t *zw)
{
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
    return sfp__kernels_avx2.dec_codes(c, need);
}

const sfp__kernels KTABLE = {
    .analyze = analyze_avx512,
    .scan = scan_avx512,
    .quantize = quantize_avx512,
    .enc_values = enc_values_avx512,
    .enc_codes = enc_codes_avx512,
    .dec_codes = dec_codes_avx512,
    .dec_values = dec_values_avx512,
};
