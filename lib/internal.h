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
    return (uint32_t)sfp__mix64(seed + (i + 1) * SFP_STOCHASTIC_STEP);
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
    int lowE;        /* smallest E of a non-zero rounded value (pass 1;
                        255 if none): below minE, the window flushes some */
} sfp__plan;

/*
 * Fast pass 1 of the encoder: no histogram, only what fixes the anchor and
 * the plane layout. Exact counts come from pass 2.
 */
typedef struct sfp__scan {
    int maxE;           /* largest E of a non-zero rounded value, -1 if none */
    int minE;           /* smallest such E, 255 if none (informative)        */
    uint64_t zeros;     /* values whose rounded magnitude is 0               */
    uint64_t negzero;   /* inputs that are exactly -0                        */
    uint64_t anyneg;    /* non-zero negative rounded values (0 or more)      */
    uint64_t saturated; /* rounding overflow, and E > fixed anchor           */
    int nonfinite;
} sfp__scan;

/*
 * Encoder plan from a scan: anchor and window are exact; nonzero and
 * negative are upper bounds (exact when nothing is flushed), zeros a lower
 * bound. Pass 2 counts them exactly.
 */
int sfp__plan_scan(sfp__plan *pl, const sfp_params *p, const void *src,
                   size_t n) SFP__HIDDEN;

int sfp__plan_make(sfp__plan *pl, const sfp_params *p, const void *src,
                   size_t n) SFP__HIDDEN;

/*
 * Zeros of the quantized tensor (inputs +-0, values that round to zero and
 * values the window flushes) without quantizing it: every magnitude below
 * one limit (rounding is monotonic). RNE and truncation only (stochastic
 * rounding depends on the element's index).
 */
uint64_t sfp__plan_zeros(const sfp__plan *pl, const void *src, size_t n,
                         sfp_dtype dtype) SFP__HIDDEN;
/* The same, from every SFP__ZEROS_STRIDE-th value when n exceeds
 * SFP__ZEROS_EXACT (scaled to n; exact below). An estimate for a choice
 * that pass 2 checks. */
#define SFP__ZEROS_EXACT 65536
#define SFP__ZEROS_STRIDE 61
uint64_t sfp__plan_zeros_est(const sfp__plan *pl, const void *src, size_t n,
                             sfp_dtype dtype) SFP__HIDDEN;
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

static inline uint32_t sfp__load16le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
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
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    sfp__store32le(p, (uint32_t)v);
    sfp__store32le(p + 4, (uint32_t)(v >> 32));
#endif
}

static inline uint64_t sfp__load64le(const uint8_t *p)
{
    return (uint64_t)sfp__load32le(p) | (uint64_t)sfp__load32le(p + 4) << 32;
}

/*
 * LSB-first bit writer. Bit b of a plane is bit (b % 8) of byte b / 8. The
 * writer stores whole 64-bit words while it runs and the tail bytes on
 * flush, so it never writes past ceil(total_bits / 8) bytes.
 * Invariant: nbits < 64.
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

/* Appends the low n bits of v (n <= 64; bits of v above n must be 0). */
static inline void sfp__bw_put(sfp__bw *w, uint64_t v, unsigned n)
{
    w->acc |= v << w->nbits;
    unsigned t = w->nbits + n;
    if (t >= 64) {
        sfp__store64le(w->p, w->acc);
        w->p += 8;
        w->acc = w->nbits ? v >> (64 - w->nbits) : 0;
        t -= 64;
    }
    w->nbits = t;
}

/*
 * Branchless puts (the Gecko group loops, the Huffman zero map): the state
 * is kept with fewer than 8 bits pending (sfp__bw_whole first), and each put
 * of at most 56 bits stores the whole accumulator and steps over the bytes
 * it completed, with no branch on whether a word filled up. Stores reach up
 * to 7 bytes past the stream's last byte: the frame's planes are followed by
 * the trailer. The state stays one that sfp__bw_put and sfp__bw_flush
 * continue from.
 */
static inline void sfp__bw_whole(sfp__bw *w)
{
    sfp__store64le(w->p, w->acc);
    w->p += w->nbits >> 3;
    w->acc >>= w->nbits & ~7u; /* nbits < 64 */
    w->nbits &= 7;
}

static inline void sfp__bw_put56(sfp__bw *w, uint64_t v, unsigned n)
{
    const uint64_t acc = w->acc | v << w->nbits;
    const unsigned t = w->nbits + n;
    sfp__store64le(w->p, acc);
    w->p += t >> 3;
    w->acc = acc >> (t & ~7u);
    w->nbits = t & 7;
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
 * Bounds-checked LSB-first bit reader over [p, p + len). Reads past the end
 * deliver zero bits and leave pos > 8 * len, which sfp__br_overrun() reports;
 * callers check once per chunk.
 */
typedef struct sfp__br {
    const uint8_t *p;
    uint64_t len;
    uint64_t pos; /* bit position */
} sfp__br;

static inline void sfp__br_init(sfp__br *r, const uint8_t *p, uint64_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
}

static inline int sfp__br_overrun(const sfp__br *r)
{
    return r->pos > 8 * r->len;
}

/* Reads n bits (1 <= n <= 56, or 0). */
static inline uint64_t sfp__br_get(sfp__br *r, unsigned n)
{
    uint64_t byte = r->pos >> 3;
    unsigned sh = (unsigned)(r->pos & 7);
    uint64_t v;
    if (SFP__LIKELY(byte + 8 <= r->len)) {
        v = sfp__load64le(r->p + byte) >> sh;
    } else {
        v = 0;
        for (unsigned i = 0; i < 8 && byte + i < r->len; i++)
            v |= (uint64_t)r->p[byte + i] << (8 * i);
        v >>= sh;
    }
    r->pos += n;
    return v & ((UINT64_C(1) << n) - 1);
}

/* Reads n bits, 0 <= n <= 64. */
static inline uint64_t sfp__br_get64(sfp__br *r, unsigned n)
{
    if (n > 56) {
        uint64_t lo = sfp__br_get(r, 32);
        return lo | sfp__br_get(r, n - 32) << 32;
    }
    return sfp__br_get(r, n);
}

/* Population count without a libgcc call: the generic files are built for
 * baseline x86-64, where __builtin_popcountll is a function call. */
static inline unsigned sfp__popcount64(uint64_t x)
{
    x -= (x >> 1) & UINT64_C(0x5555555555555555);
    x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
    x = (x + (x >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
    return (unsigned)((x * UINT64_C(0x0101010101010101)) >> 56);
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

/* A Gecko group's header: 1 and w when the base B is the previous group's,
 * else 0, B and w (w in wbits bits); *hn gets its length, *prev becomes B. */
static inline uint64_t sfp__gecko_header(unsigned ebits, unsigned wbits, unsigned *prev,
                                         unsigned B, unsigned w, unsigned *hn)
{
    const unsigned same = B == *prev;
    *prev = B;
    *hn = same ? 1 + wbits : 1 + ebits + wbits;
    return same ? 1 | (uint64_t)w << 1 : (uint64_t)B << 1 | (uint64_t)w << (1 + ebits);
}

/* Appends one group of n codes; *prev is the previous group's base. */
void sfp__gecko_put(sfp__bw *w, unsigned ebits, unsigned *prev,
                    const uint8_t *codes, unsigned n) SFP__HIDDEN;
/* Exact bits sfp__gecko_put would append (updates *prev the same way). */
uint64_t sfp__gecko_bits(unsigned ebits, unsigned *prev, const uint8_t *codes,
                         unsigned n) SFP__HIDDEN;
/* Decodes one group of n codes; returns 0 or SFP_ECORRUPT. */
int sfp__gecko_get(sfp__br *r, unsigned ebits, unsigned *prev, uint8_t *codes,
                   unsigned n) SFP__HIDDEN;

/* ------------------------------------------------- Huffman zero map */

#define SFP__ZH_MAXLEN 12
#define SFP__ZH_TABLE_BYTES 256 /* two contexts x 256 lengths, a nibble each */

/* Encoder tables: lengths and bit-reversed canonical codes per context. */
typedef struct sfp__zh_enc {
    uint8_t len[2][256];
    uint16_t code[2][256];
} sfp__zh_enc;

/* Decoder: the next 12 bits of the stream, per context -> an entry:
 * length (bits 0-3; bits 4-5 are 0, so the entry itself is a shift count
 * for the 64-bit shift, which takes its low 6 bits), symbol (bits 6-13)
 * and SFP__ZH_MISS where no code matches (length 1 then: step one bit, the
 * frame is corrupt). The symbol's bit 7, the next mask's context, is then
 * SFP__ZH_CTX, the byte offset of tab[1]: the next entry's address is the
 * table plus the entry's SFP__ZH_CTX bit plus twice the next bits (an and,
 * an add and a shift after the load, instead of five steps). */
#define SFP__ZH_SYM 6
#define SFP__ZH_CTX (1u << (SFP__ZH_SYM + 7))
#define SFP__ZH_MISS (1u << 14)
typedef struct sfp__zh_dec {
    uint16_t tab[2][1u << SFP__ZH_MAXLEN];
} sfp__zh_dec;
_Static_assert(sizeof(uint16_t) << SFP__ZH_MAXLEN == SFP__ZH_CTX,
               "tab[1] lies SFP__ZH_CTX bytes after tab[0]");

/* Decoder state of a Huffman-coded zero map (frame.c, or a kernel that
 * reads the masks as its blocks come). With two streams (SFP_FLAG_ZH2) the
 * masks of block b are in stream b & 1; a mask's context is still the mask
 * before it in the tensor. */
typedef struct sfp__zhread {
    const sfp__zh_dec *d;
    sfp__br r[2];
    unsigned prev, bad; /* prev: the mask before the next block's */
    unsigned two;    /* 1: two streams (the parity of a block picks one) */
    uint64_t blocks; /* masks of the chunk's first `blocks` blocks read */
} sfp__zhread;

/* Codes for mask counts cnt[context][mask]; returns the stream's bits. */
uint64_t sfp__zh_build(sfp__zh_enc *e, const uint64_t cnt[2][256]) SFP__HIDDEN;
void sfp__zh_write_table(uint8_t *p, const sfp__zh_enc *e) SFP__HIDDEN;
/* Tables from the plane's SFP__ZH_TABLE_BYTES; SFP_ECORRUPT if a length is
 * over 12 or a context's code is over-subscribed. */
int sfp__zh_dec_init(sfp__zh_dec *d, const uint8_t *p) SFP__HIDDEN;

/* Counts the nb masks of a zero-map word (the value before them: *prev).
 * All-zero and all-one words, most of a map with runs, take one step. */
static inline void sfp__zh_count(uint64_t cnt[2][256], uint64_t word,
                                 unsigned nb, unsigned *prev)
{
    unsigned pv = *prev;
    if (nb == 8 && (word == 0 || word == ~UINT64_C(0))) {
        unsigned m = (unsigned)word & 0xffu, x = m >> 7;
        cnt[pv >> 7][m]++;
        cnt[x][m] += 7;
        *prev = m;
        return;
    }
    if (nb == 8) {
        /* a whole block: each mask's context is the bit just below it */
        const uint64_t ctx = word << 1 | pv >> 7;
#pragma GCC unroll 8
        for (unsigned i = 0; i < 8; i++)
            cnt[(ctx >> (8 * i)) & 1][(word >> (8 * i)) & 0xffu]++;
        *prev = (unsigned)(word >> 56);
        return;
    }
    for (unsigned i = 0; i < nb; i++) {
        unsigned m = (unsigned)(word >> (8 * i)) & 0xffu;
        cnt[pv >> 7][m]++;
        pv = m;
    }
    *prev = pv;
}

/* Appends the codes of the nb masks of a word, four per put (<= 48 bits,
 * sfp__bw_put56: the writer starts from sfp__bw_whole's state). */
static inline void sfp__zh_put(sfp__bw *w, const sfp__zh_enc *e, uint64_t word,
                               unsigned nb, unsigned *prev)
{
    unsigned pv = *prev;
    for (unsigned i = 0; i < nb; i += 4) {
        uint64_t acc = 0;
        unsigned n = 0;
        for (unsigned j = i; j < i + 4 && j < nb; j++) {
            unsigned m = (unsigned)(word >> (8 * j)) & 0xffu, x = pv >> 7;
            acc |= (uint64_t)e->code[x][m] << n;
            n += e->len[x][m];
            pv = m;
        }
        sfp__bw_put56(w, acc, n);
    }
    *prev = pv;
}

/* One mask: the entry of the code at the low bits of *v in the context
 * of the previous entry *t (or a mask shifted to SFP__ZH_SYM); *v, *used
 * and *t move past it, *miss or-s the entry. */
static inline unsigned sfp__zh_step(const uint16_t *tab, unsigned *t, uint64_t *v,
                                    unsigned *used, unsigned *miss)
{
    const unsigned e = *(const uint16_t *)(const void *)((const char *)tab +
                                                         (*t & SFP__ZH_CTX) +
                                                         2 * ((unsigned)*v & ((1u << SFP__ZH_MAXLEN) - 1)));
    *v >>= e & 63u; /* the length: bits 4-5 are 0 */
    *used += e & 15u;
    *t = e;
    *miss |= e;
    return e;
}

/* One whole block's 8 masks from stream r at its position (not moved),
 * the first in the context of t (an entry, or a mask << SFP__ZH_SYM): the
 * word; *used bits, *last the last mask's entry, *miss the entries or-ed. */
static inline __attribute__((always_inline)) uint64_t
sfp__zh_chain(const sfp__br *r, const uint16_t *tab, unsigned t, unsigned *used,
              unsigned *last, unsigned *miss)
{
    uint64_t word = 0, pos = r->pos;
    unsigned m = 0;
    for (unsigned h = 0; h < 2; h++) {
        uint64_t v = sfp__load64le(r->p + (pos >> 3)) >> (pos & 7);
        unsigned u = 0;
#pragma GCC unroll 4
        for (unsigned j = 0; j < 4; j++) {
            sfp__zh_step(tab, &t, &v, &u, &m);
            word |= (uint64_t)(t >> SFP__ZH_SYM & 0xffu) << (8 * (4 * h + j));
        }
        pos += u;
    }
    *used = (unsigned)(pos - r->pos);
    *last = t;
    *miss = m;
    return word;
}

/* Decodes nb (<= 8) masks into a word; sets *bad on a missing code. Reads
 * past the plane deliver zero bits (the caller checks sfp__br_overrun). One
 * 64-bit load holds at least 57 bits: four codes of at most 12. */
static inline uint64_t sfp__zh_get(sfp__br *r, const sfp__zh_dec *d, unsigned nb,
                                   unsigned *prev, unsigned *bad)
{
    const uint16_t *tab = d->tab[0]; /* tab[1] follows (SFP__ZH_CTX) */
    uint64_t word = 0;
    unsigned t = *prev << SFP__ZH_SYM, i = 0, miss = 0;
    if (SFP__LIKELY(nb == 8 && (r->pos >> 3) + 16 <= r->len)) {
        /* a whole block in the plane: two loads, four codes each */
        unsigned used, last;
        word = sfp__zh_chain(r, tab, t, &used, &last, &miss);
        r->pos += used;
        *bad |= (miss & SFP__ZH_MISS) != 0;
        *prev = last >> SFP__ZH_SYM & 0xffu;
        return word;
    }
    while (i < nb) {
        uint64_t byte = r->pos >> 3, v;
        if (SFP__LIKELY(byte + 8 <= r->len)) {
            v = sfp__load64le(r->p + byte) >> (r->pos & 7);
        } else {
            v = 0;
            for (unsigned j = 0; j < 8 && byte + j < r->len; j++)
                v |= (uint64_t)r->p[byte + j] << (8 * j);
            v >>= r->pos & 7;
        }
        unsigned used = 0;
        for (unsigned j = 0; j < 4 && i < nb; j++, i++) {
            sfp__zh_step(tab, &t, &v, &used, &miss);
            word |= (uint64_t)(t >> SFP__ZH_SYM & 0xffu) << (8 * i);
        }
        r->pos += used;
    }
    *bad |= (miss & SFP__ZH_MISS) != 0;
    *prev = t >> SFP__ZH_SYM & 0xffu;
    return word;
}

/* The nb masks of block blk (its number in the tensor; blocks are read in
 * order). */
static inline uint64_t sfp__zh_block(sfp__zhread *z, uint64_t blk, unsigned nb)
{
    return sfp__zh_get(&z->r[z->two & (unsigned)blk], z->d, nb, &z->prev, &z->bad);
}

/* Two streams: the masks of the whole blocks blk (even) and blk + 1. The
 * second block's first context is the first block's last mask: it is
 * decoded in both contexts while the first block decodes, and the right
 * one kept, so that three chains (a load, a length, a shift and an index
 * per mask) run side by side instead of two one after the other. */
static inline __attribute__((always_inline)) void
sfp__zh_pair(sfp__zhread *z, uint64_t *w0, uint64_t *w1)
{
    const uint16_t *tab = z->d->tab[0]; /* tab[1] follows (SFP__ZH_CTX) */
    sfp__br *ra = &z->r[0], *rb = &z->r[1];
    if (SFP__UNLIKELY((ra->pos >> 3) + 16 > ra->len || (rb->pos >> 3) + 16 > rb->len)) {
        *w0 = sfp__zh_get(ra, z->d, 8, &z->prev, &z->bad);
        *w1 = sfp__zh_get(rb, z->d, 8, &z->prev, &z->bad);
        return;
    }
    unsigned ua, ub0, ub1, ta, tb0, tb1, ma, mb0, mb1;
    const uint64_t a = sfp__zh_chain(ra, tab, z->prev << SFP__ZH_SYM, &ua, &ta, &ma);
    const uint64_t b0 = sfp__zh_chain(rb, tab, 0, &ub0, &tb0, &mb0);
    const uint64_t b1 = sfp__zh_chain(rb, tab, SFP__ZH_CTX, &ub1, &tb1, &mb1);
    const int one = (ta & SFP__ZH_CTX) != 0; /* the first block's last mask, bit 7 */
    ra->pos += ua;
    rb->pos += one ? ub1 : ub0;
    z->bad |= ((ma | (one ? mb1 : mb0)) & SFP__ZH_MISS) != 0;
    z->prev = (one ? tb1 : tb0) >> SFP__ZH_SYM & 0xffu;
    *w0 = a;
    *w1 = one ? b1 : b0;
}

/* -------------------------------------------------------------- rANS */

#define SFP__RANS_SCALE 12
#define SFP__RANS_M (1u << SFP__RANS_SCALE)
#define SFP__RANS_L (1u << 16)

typedef struct sfp__rans_table {
    unsigned nsym;
    uint16_t freq[256], cum[256];
    /* decoder: slot -> symbol | (freq - 1) << 8 | (slot - cum) << 20, one
     * load per decoded symbol */
    uint32_t slot[SFP__RANS_M];
} sfp__rans_table;

/* Interleaved states: 2 (header byte 10 = 0) or 32 (byte 10 = 32); the
 * encoder takes 32 from SFP__RANS_WIDE_MIN codes on (FORMAT 2.5). */
#define SFP__RANS_WIDE 32u
#define SFP__RANS_WIDE_MIN 32768u

typedef struct sfp__rans_dec {
    uint32_t x[SFP__RANS_WIDE];
    unsigned nst;            /* states: 2 or 32                       */
    uint64_t i;              /* symbols decoded so far (i mod nst: the
                                next symbol's state)                  */
    const uint8_t *p, *end;
    int err;
} sfp__rans_dec;

/* Normalised table for counts of nsym symbols (all zero: empty table). */
void sfp__rans_build(sfp__rans_table *t, const uint64_t *count,
                     unsigned nsym) SFP__HIDDEN;
uint64_t sfp__rans_table_bytes(unsigned nsym, unsigned present) SFP__HIDDEN;
/* States the encoder uses for S codes. */
unsigned sfp__rans_states(uint64_t S) SFP__HIDDEN;
/* Largest rANS plane for S codes of e bits with nst states. */
uint64_t sfp__rans_bound(uint64_t S, unsigned ebits, unsigned nst) SFP__HIDDEN;
/* Codes S symbols with nst states into out[0..cap); returns bytes,
 * UINT64_MAX if cap is too small. */
uint64_t sfp__rans_encode(const sfp__rans_table *t, const uint8_t *codes,
                          uint64_t S, uint8_t *out, uint64_t cap,
                          unsigned nst) SFP__HIDDEN;
int sfp__rans_dec_init(sfp__rans_dec *d, sfp__rans_table *t, const uint8_t *p,
                       uint64_t len, unsigned ebits, unsigned nst) SFP__HIDDEN;
void sfp__rans_dec_run(sfp__rans_dec *d, const sfp__rans_table *t,
                       uint8_t *out, size_t n) SFP__HIDDEN;
/* After the last symbol: stream consumed exactly, states back at L. */
int sfp__rans_dec_finish(const sfp__rans_dec *d) SFP__HIDDEN;

/* ------------------------------------------------------------ kernels */

/*
 * Codec state of one encode or decode, shared by the C reference and the
 * SIMD kernels. The driver (frame.c) works chunk by chunk: per-value planes
 * (sign, mantissa, zero-map words) are produced/consumed by *_values, the
 * exponent codes go through cbuf and are coded by *_codes.
 */
typedef struct sfp__codec {
    /* configuration */
    unsigned k, ebits, shift;
    int lo;              /* lowest biased exponent of the window          */
    unsigned cmin;       /* smallest valid non-zero code                  */
    unsigned csub;       /* code of E = 0 (needs a non-zero mantissa), or
                            256 when the window does not reach E = 0      */
    int zmap, hsign, zsign;
    sfp_coder coder;
    unsigned G;          /* Gecko group size                              */
    const sfp__plan *pl; /* encoder only                                  */
    /* planes */
    sfp__bw wsign, wmant, wexp;
    sfp__br rsign, rmant, rexp;
    unsigned prev_base;  /* Gecko                                         */
    uint8_t *rscratch;   /* rANS encoder: the whole code sequence         */
    uint64_t rn;         /* rANS encoder: codes in rscratch               */
    sfp__rans_dec *rd;   /* rANS decoder state and table                  */
    const sfp__rans_table *rt;
    size_t cn;           /* codes in cbuf                                 */
    size_t cpos;         /* decoder: next code to consume                 */
    uint64_t codes_left; /* decoder: codes still in the exponent plane    */
    uint64_t nonzero;
    uint64_t negative;   /* encoder: non-zero negatives written           */
    int bad;             /* decoder: invalid code seen                    */
    struct sfp__zhread *zh; /* decoder: a Huffman-coded zero map that
                              dec_values reads itself (dec_zmap), or NULL */
    uint32_t *qout;      /* encoder: the chunk's quantized values (binary32;
                            may be the input itself), or NULL              */
    size_t qdone;        /* encoder: values of the chunk from its start that
                            enc_values wrote to qout (kernels may skip it) */
    /* exponent codes of the current chunk (+ a partial Gecko group); last,
     * so that memset(.., offsetof(sfp__codec, cbuf)) clears the rest */
    uint8_t cbuf[SFP__CHUNK + 4 * 64 + 16];
} sfp__codec;

/*
 * One value of the encoder's and the decoder's per-value loops: the C
 * reference runs them for every value, the SIMD kernels for their tails.
 * enc: quantizes x (element index i), sets bit j of *word when non-zero,
 * writes the sign and mantissa bits and queues the exponent code.
 * dec: rebuilds value j of a 64-block (word: its zero-map mask) from the
 * planes and cbuf; returns the pattern and sets *bad on an invalid code.
 */
static inline void sfp__enc_value(sfp__codec *c, uint32_t x, uint64_t i,
                                  uint64_t *word, unsigned j)
{
    uint32_t y = sfp__quant_one(c->pl, x, i);
    uint32_t a = y & 0x7fffffffu;
    int nz = a != 0;
    *word |= (uint64_t)nz << j;
    c->negative += nz & (y >> 31);
    if (c->hsign && (nz || c->zsign))
        sfp__bw_put(&c->wsign, y >> 31, 1);
    if (nz && c->k)
        sfp__bw_put(&c->wmant, (a & 0x7fffffu) >> c->shift, c->k);
    if (nz || !c->zmap)
        c->cbuf[c->cn++] = nz ? (uint8_t)((int)(a >> 23) - (c->lo - 1)) : 0;
}

static inline uint32_t sfp__dec_value(sfp__codec *c, uint64_t word, unsigned j,
                                      unsigned *bad)
{
    unsigned code;
    int nz;
    if (c->zmap) {
        nz = (int)(word >> j & 1);
        code = nz ? c->cbuf[c->cpos++] : 0;
    } else {
        code = c->cbuf[c->cpos++];
        nz = code != 0;
    }
    uint32_t s = (c->hsign && (nz || c->zsign)) ? (uint32_t)sfp__br_get(&c->rsign, 1) : 0;
    uint32_t mt = (nz && c->k) ? (uint32_t)sfp__br_get(&c->rmant, c->k) : 0;
    /* a code below the window, or E = 0 with a zero mantissa (a zero) */
    *bad |= nz && (code < c->cmin || (code == c->csub && mt == 0));
    uint32_t v = s << 31;
    if (nz)
        v |= (uint32_t)((int)code + c->lo - 1) << 23 | mt << c->shift;
    c->nonzero += (uint64_t)nz;
    return v;
}

/* Coder-independent parts of enc_codes/dec_codes (rANS), in rans.c. */
void sfp__enc_codes_rans(sfp__codec *c) SFP__HIDDEN;
int sfp__dec_codes_rans(sfp__codec *c, size_t need) SFP__HIDDEN;

typedef struct sfp__kernels {
    /* Pass 1: accumulate into h (bins are added to, not reset). */
    void (*analyze)(const uint32_t *x, size_t n, const sfp__round *r,
                    uint64_t i0, sfp__hist *h);
    /* Fast pass 1 (fixed_anchor < 0: auto); accumulates into sc. */
    void (*scan)(const uint32_t *x, size_t n, const sfp__round *r,
                 uint64_t i0, int fixed_anchor, sfp__scan *sc);
    /* Number of x[i] whose magnitude (sign cleared) is below lim (< 2^31). */
    uint64_t (*count_below)(const uint32_t *x, size_t n, uint32_t lim);
    /* Quantizes x[0..n) into y (element index base i0). */
    void (*quantize)(uint32_t *y, const uint32_t *x, size_t n,
                     const sfp__plan *pl, uint64_t i0);
    /*
     * Encoder, per chunk (n <= SFP__CHUNK, i0 % 64 == 0): writes sign and
     * mantissa bits, appends exponent codes to cbuf (non-zero ones only in
     * zero-map mode) and sets zw[b] to the non-zero mask of block b.
     */
    void (*enc_values)(sfp__codec *c, const uint32_t *x, size_t n,
                       uint64_t i0, uint64_t *zw);
    /* Codes cbuf into the exponent plane; keeps a partial Gecko group
     * unless last. */
    void (*enc_codes)(sfp__codec *c, int last);
    /* Decoder: makes at least `need` codes available in cbuf[cpos..cn). */
    int (*dec_codes)(sfp__codec *c, size_t need);
    /* Decoder, per chunk: rebuilds binary32 patterns from the planes and
     * cbuf. zw holds the block masks in zero-map mode; with c->zh set the
     * kernel reads them from the Huffman-coded map and writes them there. */
    void (*dec_values)(sfp__codec *c, uint32_t *y, size_t n, uint64_t *zw);
    /*
     * Optional (NULL: the C loops in rans.c): 32-state rANS in whole rounds
     * of 32 codes (code 32 r + l on state x[l]). rans_enc32 codes rounds
     * rounds-1 .. 0 of codes, renormalisation words stored below p (at most
     * 64 bytes per round, which the caller has), and returns the new p.
     * rans_dec32 decodes up to rounds rounds into out while at least 64
     * bytes are left before end, advances *pp and returns the rounds done.
     */
    uint8_t *(*rans_enc32)(uint32_t *x, const sfp__rans_table *t,
                           const uint8_t *codes, uint64_t rounds, uint8_t *p);
    size_t (*rans_dec32)(uint32_t *x, const sfp__rans_table *t, const uint8_t **pp,
                         const uint8_t *end, uint8_t *out, size_t rounds);
    /* Optional: nonzero when dec_values reads a Huffman-coded zero map
     * itself (then dec_codes is not given the chunk's code count). */
    int (*dec_zmap)(const sfp__codec *c);
    /*
     * Optional (NULL or 0 returned: the C loop in frame.c): adds the
     * histogram of n codes of e bits to count[] and sets *blocks to the
     * number of 64-code blocks (the last one partial) with a non-zero code.
     */
    int (*count_codes)(const uint8_t *codes, uint64_t n, unsigned e,
                       uint64_t count[256], uint64_t *blocks);
} sfp__kernels;

extern const sfp__kernels sfp__kernels_c SFP__HIDDEN;
#if HAVE_AVX2
extern const sfp__kernels sfp__kernels_avx2 SFP__HIDDEN;
#endif
#if HAVE_AVX512
extern const sfp__kernels sfp__kernels_avx512 SFP__HIDDEN;
#endif
/* Tests only (libsfp_internal): the AVX-512 kernels over SIMDe. */
#if HAVE_AVX512_EMU
extern const sfp__kernels sfp__kernels_avx512_emu SFP__HIDDEN;
#endif

const sfp__kernels *sfp__kernels_get(void) SFP__HIDDEN;
/* Tests: makes k the active table, reported as impl (not thread safe). */
void sfp__kernels_force(const sfp__kernels *k, sfp_impl impl) SFP__HIDDEN;

#endif /* SFP_INTERNAL_H */
