/*
 * internal.h - libsfp internals shared between the C reference and the SIMD
 * kernels. Nothing here is part of the public API.
 */
#ifndef SFP_INTERNAL_H
#define SFP_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "config.h"
#include "sfp/sfp.h"

#define SFP__HIDDEN __attribute__((visibility("hidden")))

#define RETURN_IF(cond, err)                                                   \
    do {                                                                       \
        if (cond)                                                              \
            return (err);                                                      \
    } while (0)

#define SFP__LIKELY(x) __builtin_expect(!!(x), 1)
#define SFP__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Values are processed in chunks of this many elements (bf16 is widened to
 * binary32 bit patterns one chunk at a time). Multiple of 64. */
#define SFP__CHUNK 2048

/* ------------------------------------------------------------ rounding */

/*
 * Everything the per-value quantizer needs, precomputed from the params.
 * All arithmetic is on binary32 bit patterns; bf16 is widened (<< 16), which
 * is exact because k <= 7 keeps the rounding point above bit 16.
 */
typedef struct sfp__round {
    unsigned k;        /* kept fraction bits                         */
    unsigned shift;    /* 23 - k                                     */
    uint32_t lowmask;  /* (1 << shift) - 1                           */
    uint32_t satmag;   /* largest finite grid magnitude (E=254)      */
    sfp_rounding mode;
    uint64_t seed;
} sfp__round;

static inline uint64_t sfp__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Random bits for stochastic rounding of element index i. */
static inline uint32_t sfp__rand32(uint64_t seed, uint64_t i)
{
    return (uint32_t)sfp__mix64(seed + (i + 1) * UINT64_C(0x9e3779b97f4a7c15));
}

/*
 * Rounds magnitude a (sign cleared, finite) to k fraction bits. Returns the
 * rounded magnitude; overflow past the largest finite value saturates.
 */
static inline uint32_t sfp__round_mag(const sfp__round *r, uint32_t a,
                                      uint64_t i, int *sat)
{
    uint32_t m;
    if (r->shift == 0)
        return a;
    switch (r->mode) {
    case SFP_ROUND_TRUNC:
        m = a & ~r->lowmask;
        break;
    case SFP_ROUND_STOCHASTIC:
        m = (a + (sfp__rand32(r->seed, i) & r->lowmask)) & ~r->lowmask;
        break;
    default:
        m = (a + (r->lowmask >> 1) + ((a >> r->shift) & 1)) & ~r->lowmask;
        break;
    }
    if (SFP__UNLIKELY(m >= 0x7f800000u)) {
        *sat += 1;
        m = r->satmag;
    }
    return m;
}

void sfp__round_init(sfp__round *r, const sfp_params *p) SFP__HIDDEN;

/* Widens n bf16 patterns to binary32 patterns. */
static inline void sfp__widen_bf16(uint32_t *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint32_t)src[i] << 16;
}

/* ------------------------------------------------------------ analysis */

/*
 * Pass 1 over a tensor: histogram of (sign, biased exponent) of the rounded
 * non-zero values, counts of values that round to zero and of input -0.
 */
typedef struct sfp__hist {
    uint64_t bin[512];   /* index sign << 8 | E, non-zero rounded values */
    uint64_t zeros;      /* values whose rounded magnitude is 0         */
    uint64_t negzero;    /* inputs that are exactly -0                  */
    uint64_t saturated;  /* values saturated by rounding overflow       */
    int nonfinite;
} sfp__hist;

/* The quantization plan that pass 2 (and sfp_quantize) executes. */
typedef struct sfp__plan {
    sfp__round r;
    unsigned ebits;
    int anchor;      /* A                                              */
    int lo;          /* lowest kept biased exponent, A - 2^e + 2       */
    int minE;        /* max(lo, 0): lowest E that is kept               */
    uint64_t n;
    uint64_t nonzero;
    uint64_t zeros;
    uint64_t flushed;
    uint64_t saturated; /* by rounding overflow or fixed anchor         */
    uint64_t negative;  /* kept non-zero negatives                      */
    uint64_t negzero;
} sfp__plan;

int sfp__plan_make(sfp__plan *pl, const sfp_params *p, const void *src,
                   size_t n) SFP__HIDDEN;
void sfp__plan_stats(const sfp__plan *pl, sfp_qstats *st) SFP__HIDDEN;

/*
 * Quantizes one binary32 pattern under a plan: returns the output pattern
 * (+0 for flushed values). Saturation for fixed anchors is applied here.
 */
static inline uint32_t sfp__quant_one(const sfp__plan *pl, uint32_t x,
                                      uint64_t i)
{
    int sat = 0;
    uint32_t a = x & 0x7fffffffu;
    if (a == 0)
        return x; /* +0 / -0 pass unchanged */
    uint32_t m = sfp__round_mag(&pl->r, a, i, &sat);
    int E = (int)(m >> 23);
    if (m == 0 || E < pl->minE)
        return 0;
    if (E > pl->anchor)
        m = ((uint32_t)pl->anchor << 23) | (0x7fffffu & ~pl->r.lowmask);
    return (x & 0x80000000u) | m;
}

/* ------------------------------------------------------------- bit I/O */

static inline void sfp__store32le(uint8_t *p, uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
#endif
}

static inline uint32_t sfp__load32le(const uint8_t *p)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#else
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
#endif
}

static inline void sfp__store64le(uint8_t *p, uint64_t v)
{
    sfp__store32le(p, (uint32_t)v);
    sfp__store32le(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t sfp__load64le(const uint8_t *p)
{
    return (uint64_t)sfp__load32le(p) | (uint64_t)sfp__load32le(p + 4) << 32;
}

/*
 * LSB-first bit writer. Bit b of a plane is bit (b % 8) of byte b / 8. The
 * writer stores only whole 32-bit words while it runs and the tail bytes on
 * flush, so it never writes past ceil(total_bits / 8) bytes.
 */
typedef struct sfp__bw {
    uint8_t *p;
    uint64_t acc;
    unsigned nbits;
} sfp__bw;

static inline void sfp__bw_init(sfp__bw *w, uint8_t *p)
{
    w->p = p;
    w->acc = 0;
    w->nbits = 0;
}

/* Appends the low n bits of v (n <= 32, v < 2^n). */
static inline void sfp__bw_put(sfp__bw *w, uint32_t v, unsigned n)
{
    w->acc |= (uint64_t)v << w->nbits;
    w->nbits += n;
    if (w->nbits >= 32) {
        sfp__store32le(w->p, (uint32_t)w->acc);
        w->p += 4;
        w->acc >>= 32;
        w->nbits -= 32;
    }
}

/* Appends the low n bits of v (n <= 64). */
static inline void sfp__bw_put64(sfp__bw *w, uint64_t v, unsigned n)
{
    if (n > 32) {
        sfp__bw_put(w, (uint32_t)v, 32);
        sfp__bw_put(w, (uint32_t)(v >> 32), n - 32);
    } else {
        sfp__bw_put(w, (uint32_t)v, n);
    }
}

/* Writes the remaining bits (zero padded to a byte); returns end pointer. */
static inline uint8_t *sfp__bw_flush(sfp__bw *w)
{
    while (w->nbits > 0) {
        *w->p++ = (uint8_t)w->acc;
        w->acc >>= 8;
        w->nbits = w->nbits > 8 ? w->nbits - 8 : 0;
    }
    return w->p;
}

/*
 * Bounds-checked LSB-first bit reader over [p, end). Reading past the end
 * sets the error flag and returns zeros; callers check br.err once per batch.
 */
typedef struct sfp__br {
    const uint8_t *p, *end;
    uint64_t acc;
    unsigned nbits;
    int err;
} sfp__br;

static inline void sfp__br_init(sfp__br *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->end = p + len;
    r->acc = 0;
    r->nbits = 0;
    r->err = 0;
}

static inline void sfp__br_refill(sfp__br *r)
{
    if (r->end - r->p >= 4) {
        r->acc |= (uint64_t)sfp__load32le(r->p) << r->nbits;
        r->p += 4;
        r->nbits += 32;
    } else {
        while (r->nbits <= 56 && r->p < r->end) {
            r->acc |= (uint64_t)*r->p++ << r->nbits;
            r->nbits += 8;
        }
    }
}

/* Reads n bits (n <= 32). */
static inline uint32_t sfp__br_get(sfp__br *r, unsigned n)
{
    if (r->nbits < n) {
        sfp__br_refill(r);
        if (SFP__UNLIKELY(r->nbits < n)) {
            r->err = 1;
            r->nbits = n; /* deliver zeros, keep going branch-free */
        }
    }
    uint32_t v = (uint32_t)(r->acc & ((n == 32) ? 0xffffffffu : ((1u << n) - 1)));
    r->acc = n == 64 ? 0 : r->acc >> n;
    r->nbits -= n;
    return v;
}

static inline uint64_t sfp__br_get64(sfp__br *r, unsigned n)
{
    if (n > 32) {
        uint64_t lo = sfp__br_get(r, 32);
        return lo | (uint64_t)sfp__br_get(r, n - 32) << 32;
    }
    return sfp__br_get(r, n);
}

static inline unsigned sfp__bitlen(uint32_t v)
{
    return v ? 32u - (unsigned)__builtin_clz(v) : 0u;
}

/* ------------------------------------------------------------- gecko */

/* Bits of the per-group width field for e-bit codes: bitlen(e). */
static inline unsigned sfp__gecko_wbits(unsigned ebits)
{
    return sfp__bitlen(ebits);
}

/* Gecko group encoder state (codes arrive one group at a time). */
typedef struct sfp__gecko_enc {
    sfp__bw bw;
    unsigned ebits, wbits;
    unsigned prev_base;
} sfp__gecko_enc;

void sfp__gecko_enc_init(sfp__gecko_enc *g, uint8_t *p, unsigned ebits) SFP__HIDDEN;
void sfp__gecko_put_group(sfp__gecko_enc *g, const uint8_t *codes, unsigned n) SFP__HIDDEN;
/* Exact bits that sfp__gecko_put_group would append for these codes. */
uint64_t sfp__gecko_group_bits(const sfp__gecko_enc *g, const uint8_t *codes,
                               unsigned n, unsigned *prev_base) SFP__HIDDEN;

typedef struct sfp__gecko_dec {
    sfp__br br;
    unsigned ebits, wbits;
    unsigned prev_base;
} sfp__gecko_dec;

void sfp__gecko_dec_init(sfp__gecko_dec *g, const uint8_t *p, size_t len,
                         unsigned ebits) SFP__HIDDEN;
/* Decodes one group of n codes; returns 0 or SFP_ECORRUPT. */
int sfp__gecko_get_group(sfp__gecko_dec *g, uint8_t *codes, unsigned n) SFP__HIDDEN;

/* ------------------------------------------------------------ kernels */

/*
 * Per-implementation hot loops. All take binary32 patterns; bf16 callers
 * widen chunk by chunk. Each function must produce bit-identical results to
 * the C reference (tests/lib/test_kernels.c checks).
 */
typedef struct sfp__kernels {
    /* Pass 1: accumulate into h (bins are added to, not reset). */
    void (*analyze)(const uint32_t *x, size_t n, const sfp__round *r,
                    uint64_t i0, sfp__hist *h);
    /*
     * Quantizes x[0..n) under the plan (element index base i0) and splits
     * every value into planes: nz[j] = 1 if non-zero, code[j] the exponent
     * code (0 for zero), mant[j] the kept fraction bits, sign[j] the sign.
     */
    void (*split)(const uint32_t *x, size_t n, const sfp__plan *pl,
                  uint64_t i0, uint8_t *code, uint32_t *mant, uint8_t *sign);
    /* Inverse of split for decoding: rebuilds binary32 patterns. */
    void (*join)(uint32_t *y, size_t n, unsigned shift, int lo,
                 const uint8_t *code, const uint32_t *mant, const uint8_t *sign);
} sfp__kernels;

extern const sfp__kernels sfp__kernels_c SFP__HIDDEN;
#if HAVE_AVX2
extern const sfp__kernels sfp__kernels_avx2 SFP__HIDDEN;
#endif

const sfp__kernels *sfp__kernels_get(void) SFP__HIDDEN;

#endif /* SFP_INTERNAL_H */
