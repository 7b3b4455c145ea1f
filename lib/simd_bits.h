/*
 * simd_bits.h - BMI2 byte/bit helpers shared by the SIMD kernel files
 * (kernels_avx2.c, kernels_avx512.c); each includes it after its
 * intrinsics header and is compiled with -mbmi2.
 */
#ifndef SFP_SIMD_BITS_H
#define SFP_SIMD_BITS_H

#include "internal.h"

#define ONES8 UINT64_C(0x0101010101010101)
#define ONES16 UINT64_C(0x0001000100010001)
/* Byte i holds i: lane numbers for left-packing (pext) and expanding (pdep). */
#define LANES8 UINT64_C(0x0706050403020100)

/* Per-byte mask of the low k bits (k <= 8). */
static inline uint64_t bytemask(unsigned k)
{
    return k >= 8 ? ~UINT64_C(0) : ONES8 * ((1u << k) - 1);
}

/* 8 mask bits -> 8 bytes of 0x00/0xff. */
static inline uint64_t expand8(unsigned m)
{
    return _pdep_u64(m, ONES8) * 0xff;
}

/* 4 mask bits -> 4 u16 of 0x0000/0xffff. */
static inline uint64_t expand16(unsigned m)
{
    return _pdep_u64(m, ONES16) * 0xffff;
}

static inline uint64_t load8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store8(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static inline uint64_t get_bits(sfp__br *r, unsigned n)
{
    return n > 56 ? sfp__br_get64(r, n) : sfp__br_get(r, n);
}

/* The plain coder: the e-bit codes cb[0..n) appended to the exponent
 * plane, eight per put. */
static inline void put_plain_codes(sfp__bw *we, const uint8_t *cb, size_t n, unsigned e)
{
    const uint64_t em = bytemask(e);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        sfp__bw_put(we, _pext_u64(load8(cb + i), em), 8 * e);
    for (; i < n; i++)
        sfp__bw_put(we, cb[i], e);
}

/*
 * Software prefetch distances, in values, of the scan, the encoders' block
 * loops (input) and the decoders' block loops (the output lines they will
 * write). On the AVX-512 Xeon of docs/BENCHMARKS.md, where tensors over
 * ~48 MiB come from DRAM, 64 MiB post-ReLU k2e4 Gecko encodes at 2.6-2.9
 * GB/s without and 4.4-5.2 with, and decodes at 5.1-5.3 without and
 * 7.2-8.0 with: the hardware prefetcher alone leaves the loops waiting.
 * Prefetches past the end of a buffer do not fault (the address is formed
 * as an integer).
 */
#define PF_SCAN 2048
#define PF_ENC 1024
#define PF_DEC 1024

static inline __attribute__((always_inline)) void prefetch_ahead(const uint32_t *p, size_t d)
{
    _mm_prefetch((const char *)((uintptr_t)p + 4 * d), _MM_HINT_T0);
}

/* the four lines of a 64-value block */
static inline __attribute__((always_inline)) void prefetch_block(const uint32_t *p, size_t d)
{
    prefetch_ahead(p, d);
    prefetch_ahead(p, d + 16);
    prefetch_ahead(p, d + 32);
    prefetch_ahead(p, d + 48);
}

/* The end of the encoders' 64-block loops (enc_fast_body, enc_fast512):
 * the plain coder's codes go out now, before the caller's tail writes its
 * own straight into the exponent plane; the loop's state back into c. */
static inline void fast_enc_finish(sfp__codec *c, const sfp__bw *ws, const sfp__bw *wm,
                                   size_t cn, uint64_t nonzero, uint64_t negative)
{
    if (c->coder == SFP_CODER_PLAIN) {
        sfp__bw we = c->wexp; /* a local copy stays in registers */
        put_plain_codes(&we, c->cbuf, cn, c->ebits);
        c->wexp = we;
        cn = 0;
    }
    c->wsign = *ws;
    c->wmant = *wm;
    c->cn = cn;
    c->nonzero += nonzero;
    c->negative += negative;
}

/*
 * One Gecko group of 16 codes: base B, the OR of its deltas o, the deltas as
 * two qwords of bytes. GK_PUT (any e): through sfp__bw_put, in one put when
 * header and deltas fit 64 bits. GK_FAST3 / GK_FAST2 (e <= 7, so the width
 * w <= 7, writer state from sfp__bw_whole): through the branchless writer, in
 * three puts, or in two when the header and the first eight deltas fit 56
 * bits (e <= 5).
 */
enum { GK_PUT, GK_FAST3, GK_FAST2 };

static inline __attribute__((always_inline)) void
gecko16_put(sfp__bw *we, unsigned e, unsigned wbits, const int how, unsigned *prev, unsigned B,
            unsigned o, uint64_t dlo, uint64_t dhi)
{
    const unsigned w = sfp__bitlen(o);
    unsigned hn;
    const uint64_t h = sfp__gecko_header(e, wbits, prev, B, w, &hn);
    const uint64_t wm = bytemask(w);
    const uint64_t d0 = _pext_u64(dlo, wm), d1 = _pext_u64(dhi, wm);
    if (how == GK_FAST2) {
        sfp__bw_put56(we, h | d0 << hn, hn + 8 * w);
        sfp__bw_put56(we, d1, 8 * w);
    } else if (how == GK_FAST3) {
        sfp__bw_put56(we, h, hn);
        sfp__bw_put56(we, d0, 8 * w);
        sfp__bw_put56(we, d1, 8 * w);
    } else if (hn + 16 * w <= 64) {
        sfp__bw_put(we, h | (d0 | d1 << (8 * w)) << hn, hn + 16 * w);
    } else {
        sfp__bw_put(we, h, hn);
        sfp__bw_put(we, d0, 8 * w);
        sfp__bw_put(we, d1, 8 * w);
    }
}

/*
 * One Gecko group of 16 codes (e <= 7) at bit *pos of p, read with
 * unchecked 64-bit loads (the caller keeps 32 bytes of the plane ahead):
 * header and widths without branches on the data, the 16 deltas checked
 * and subtracted in one vector. A width over e sets *wbad, a delta over the
 * base sets bytes of *badv; the codes go to out[0..16).
 */
static inline __attribute__((always_inline)) void
gecko16_get_fast(const uint8_t *p, uint64_t *posp, unsigned e, unsigned wbits,
                 uint64_t emask, uint64_t wmask, unsigned *prevp, uint8_t *out,
                 __m128i *badv, unsigned *wbad)
{
    uint64_t pos = *posp;
    uint64_t h = sfp__load64le(p + (pos >> 3)) >> (pos & 7);
    const unsigned same = (unsigned)h & 1;
    const unsigned hb = same ? 1 : 1 + e;
    const unsigned B = same ? *prevp : (unsigned)(h >> 1) & (unsigned)emask;
    const unsigned w = (unsigned)(h >> hb) & (unsigned)wmask;
    pos += hb + wbits;
    *wbad |= w > e;
    const uint64_t wm = bytemask(w);
    uint64_t d0 = _pdep_u64(sfp__load64le(p + (pos >> 3)) >> (pos & 7), wm);
    pos += 8 * w;
    uint64_t d1 = _pdep_u64(sfp__load64le(p + (pos >> 3)) >> (pos & 7), wm);
    pos += 8 * w;
    const __m128i bv = _mm_set1_epi8((char)B);
    const __m128i dv = _mm_set_epi64x((long long)d1, (long long)d0);
    /* d > B in some byte <=> max(d, B) != B */
    *badv = _mm_or_si128(*badv, _mm_xor_si128(_mm_max_epu8(dv, bv), bv));
    _mm_storeu_si128((__m128i *)out, _mm_sub_epi8(bv, dv));
    *prevp = B;
    *posp = pos;
}

/*
 * The end of the fast scan (scan_avx2, scan_avx512): the scalar tail
 * x[i..n) and the decision. hi/lo are the largest/smallest non-zero input
 * magnitudes seen so far; rounding is monotonic, so they fix the anchor
 * unless a value is NaN/Inf, saturates or is subnormal (then the exact C
 * scan decides).
 */
static inline void scan_finish(const uint32_t *x, size_t n, size_t i,
                               const sfp__round *r, uint64_t i0, int fixed_anchor,
                               sfp__scan *sc, uint32_t hi, uint32_t lo,
                               uint32_t anyneg, uint64_t zeros, uint64_t negzero)
{
    for (; i < n; i++) {
        uint32_t v = x[i], a = v & 0x7fffffffu;
        hi = a > hi ? a : hi;
        if (a) {
            lo = a < lo ? a : lo;
            anyneg |= v >> 31;
        } else {
            zeros++;
            negzero += v >> 31;
        }
    }
    int sat = 0;
    uint32_t mhi = hi >= 0x7f800000u ? 0 : sfp__round_mag(r, hi, 0, &sat);
    int Ehi = (int)(mhi >> 23);
    if (hi >= 0x7f800000u || sat || (hi != 0 && lo < 0x00800000u) ||
        (fixed_anchor >= 0 && hi != 0 && Ehi > fixed_anchor)) {
        sfp__kernels_c.scan(x, n, r, i0, fixed_anchor, sc);
        return;
    }
    sc->zeros += zeros;
    sc->negzero += negzero;
    if (hi != 0) {
        int Elo = (int)(sfp__round_mag(r, lo, 0, &sat) >> 23);
        sc->maxE = Ehi > sc->maxE ? Ehi : sc->maxE;
        sc->minE = Elo < sc->minE ? Elo : sc->minE;
        sc->anyneg += anyneg;
    }
}

/* The quantizer constants of a plan that the SIMD kernels broadcast. */
typedef struct qscal {
    uint32_t low, half, satmag, satv;
    int minE, anchor;
    unsigned shift;
    int trunc, noround;
    int fast; /* no saturation and no -0 in the tensor: skip those blends */
} qscal;

static inline qscal qscal_of(const sfp__plan *pl)
{
    qscal s;
    s.low = pl->r.lowmask;
    s.half = pl->r.lowmask >> 1;
    s.satmag = pl->r.satmag;
    s.satv = ((uint32_t)pl->anchor << 23) | (0x7fffffu & ~pl->r.lowmask);
    s.minE = pl->minE;
    s.anchor = pl->anchor;
    s.shift = pl->r.shift;
    s.trunc = pl->r.mode == SFP_ROUND_TRUNC;
    s.noround = pl->r.shift == 0;
    s.fast = pl->saturated == 0 && pl->negzero == 0;
    return s;
}

/* The 16 specialisations of enc_values / dec_values: CASE(v) for v 0..15. */
#define SFP__CASES16(CASE)                                                     \
    CASE(0) CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)            \
    CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14) CASE(15)
/* CASE(v) for v 0..35: the specialised loops' K 0..8 x zero map x sign. */
#define SFP__CASES36(CASE)                                                     \
    SFP__CASES16(CASE)                                                         \
    CASE(16) CASE(17) CASE(18) CASE(19) CASE(20) CASE(21) CASE(22) CASE(23)    \
    CASE(24) CASE(25) CASE(26) CASE(27) CASE(28) CASE(29) CASE(30) CASE(31)    \
    CASE(32) CASE(33) CASE(34) CASE(35)

/*
 * The scalar tail of an encoder block (values j..m of the 64-block at b):
 * runs sfp__enc_value with the caller's local writers; with the plain coder
 * the queued codes are written at once. Returns the block's mask bits.
 */
static inline uint64_t enc_tail(sfp__codec *c, const uint32_t *x, size_t b, size_t j,
                                size_t m, uint64_t i0, sfp__bw *ws, sfp__bw *wm,
                                sfp__bw *we, size_t *cn, int plain)
{
    uint64_t w = 0;
    c->wsign = *ws, c->wmant = *wm, c->wexp = *we, c->cn = *cn;
    for (; j < m; j++)
        sfp__enc_value(c, x[b + j], i0 + b + j, &w, (unsigned)j);
    *ws = c->wsign, *wm = c->wmant, *we = c->wexp, *cn = c->cn;
    if (plain) {
        for (size_t t = 0; t < *cn; t++)
            sfp__bw_put(we, c->cbuf[t], c->ebits);
        *cn = 0;
    }
    return w;
}

/* The scalar tail of a decoder block, with the caller's local readers. */
static inline void dec_tail(sfp__codec *c, uint32_t *y, size_t b, size_t j, size_t m,
                            uint64_t word, size_t *cpos, sfp__br *rs, sfp__br *rm)
{
    unsigned tbad = 0;
    c->cpos = *cpos, c->rsign = *rs, c->rmant = *rm;
    for (; j < m; j++)
        y[b + j] = sfp__dec_value(c, word, (unsigned)j, &tbad);
    c->bad |= (int)tbad;
    *cpos = c->cpos, *rs = c->rsign, *rm = c->rmant;
}

/*
 * Per-symbol lane constants of the vector rANS encoders (FORMAT 2.5):
 * frequency, cumulative frequency and the float reciprocal of the
 * frequency, for all 256 symbols (absent ones, which never occur, get
 * frequency 1 so that the reciprocal is finite).
 */
typedef struct rans_lanes {
    uint32_t f[256], cum[256];
    float rcp[256];
} rans_lanes;

static inline void rans_lanes_of(rans_lanes *k, const sfp__rans_table *t)
{
    for (unsigned s = 0; s < 256; s++) {
        const unsigned f = s < t->nsym ? t->freq[s] : 0;
        k->f[s] = f ? f : 1;
        k->cum[s] = s < t->nsym ? t->cum[s] : 0;
        k->rcp[s] = 1.0f / (float)k->f[s];
    }
}

#endif /* SFP_SIMD_BITS_H */
