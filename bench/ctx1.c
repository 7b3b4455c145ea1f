/*
 * ctx1.c - prototype of a context-modelled exponent coder (bench only, not
 * a libsfp coder): order-1 static rANS over the exponent code sequence of a
 * frame (zero = code 0, every value, no zero map), with one frequency table
 * per context. Two interleaved 32-bit states (even and odd positions),
 * 16-bit renormalisation, scale 2^10; the context of a code is the code two
 * positions back (the previous code of the same state), so the two states
 * decode as two independent chains (the previous code itself would chain
 * every step to the one before). Up to 16 context classes: for e <= 4 every
 * code is its own class; for wider codes the distance below the top code,
 * capped.
 *
 * Plane: u16 bitmap of the contexts present | per present context: bitmap
 * of its symbols (ceil(2^e / 8) bytes) and u16 (freq - 1) per present
 * symbol | two u32 states | u16 words.
 *
 * sfp-expstudy measures its size and speed on real stashes against libsfp's
 * coders (docs/RESULTS.md, "Exponent coding beyond order 0").
 */
#include <stdlib.h>
#include <string.h>

#include "ctx1.h"

#define SCALE CTX1_SCALE
#define M (1u << SCALE)
#define L (1u << 16)

static unsigned nctx_of(unsigned e)
{
    unsigned ns = 1u << e;
    return ns <= CTX1_MAX_CTX ? ns : CTX1_MAX_CTX;
}

static inline unsigned ctx_of(unsigned prev, unsigned e)
{
    unsigned ns = 1u << e;
    if (ns <= CTX1_MAX_CTX)
        return prev;
    if (prev == 0)
        return 0;
    unsigned d = (ns - 1) - prev;
    return 1 + (d < CTX1_MAX_CTX - 2 ? d : CTX1_MAX_CTX - 2);
}

/* counts -> frequencies summing to M, every present symbol >= 1 */
static void normalize(const uint64_t *cnt, unsigned ns, uint16_t *freq)
{
    uint64_t total = 0;
    for (unsigned s = 0; s < ns; s++)
        total += cnt[s];
    memset(freq, 0, ns * sizeof *freq);
    if (!total)
        return;
    int64_t sum = 0;
    unsigned big = 0;
    for (unsigned s = 0; s < ns; s++) {
        if (!cnt[s])
            continue;
        uint64_t f = (cnt[s] * M * 2 + total) / (2 * total);
        freq[s] = (uint16_t)(f ? f : 1);
        sum += freq[s];
        if (freq[s] > freq[big])
            big = s;
    }
    while (sum != M) {
        for (unsigned s = 0; s < ns; s++)
            if (freq[s] > freq[big])
                big = s;
        int64_t d = (int64_t)M - sum;
        if (d < 0 && -d > freq[big] - 1)
            d = -(int64_t)(freq[big] - 1);
        freq[big] = (uint16_t)(freq[big] + d);
        sum += d;
    }
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

size_t ctx1_encode(const uint8_t *codes, size_t n, unsigned e, uint8_t *out,
                   size_t cap)
{
    const unsigned ns = 1u << e, nc = nctx_of(e), bm = (ns + 7) / 8;
    uint64_t (*cnt)[256] = calloc(CTX1_MAX_CTX, sizeof *cnt);
    uint16_t (*freq)[256] = calloc(CTX1_MAX_CTX, sizeof *freq);
    uint16_t (*cum)[256] = calloc(CTX1_MAX_CTX, sizeof *cum);
    size_t ret = 0;
    if (!cnt || !freq || !cum || !n || e < 1 || e > 8)
        goto done;
    for (size_t i = 0; i < n; i++)
        cnt[ctx_of(i >= 2 ? codes[i - 2] : 0, e)][codes[i]]++;
    unsigned cmask = 0;
    size_t tb = 2;
    for (unsigned c = 0; c < nc; c++) {
        normalize(cnt[c], ns, freq[c]);
        unsigned acc = 0, present = 0;
        for (unsigned s = 0; s < ns; s++) {
            cum[c][s] = (uint16_t)acc;
            acc += freq[c][s];
            present += freq[c][s] != 0;
        }
        if (present) {
            cmask |= 1u << c;
            tb += bm + 2 * present;
        }
    }
    /* symbols backwards into the end of out, then the header in front */
    uint8_t *end = out + cap, *p = end;
    uint32_t x[2] = { L, L };
    for (size_t i = n; i-- > 0;) {
        unsigned s = codes[i], c = ctx_of(i >= 2 ? codes[i - 2] : 0, e);
        uint32_t f = freq[c][s], xs = x[i & 1];
        uint64_t xmax = (uint64_t)((L >> SCALE) << 16) * f;
        if (xs >= xmax && f != M) {
            if (p - out < 2)
                goto done;
            p -= 2;
            put16(p, xs & 0xffff);
            xs >>= 16;
        }
        x[i & 1] = (xs / f << SCALE) + xs % f + cum[c][s];
    }
    if ((size_t)(p - out) < tb + 8)
        goto done;
    p -= 8;
    for (int k = 0; k < 4; k++) {
        p[k] = (uint8_t)(x[0] >> (8 * k));
        p[4 + k] = (uint8_t)(x[1] >> (8 * k));
    }
    p -= tb;
    uint8_t *q = p;
    put16(q, cmask);
    q += 2;
    for (unsigned c = 0; c < nc; c++) {
        if (!(cmask >> c & 1))
            continue;
        memset(q, 0, bm);
        for (unsigned s = 0; s < ns; s++)
            if (freq[c][s])
                q[s >> 3] |= (uint8_t)(1u << (s & 7));
        q += bm;
        for (unsigned s = 0; s < ns; s++)
            if (freq[c][s]) {
                put16(q, freq[c][s] - 1u);
                q += 2;
            }
    }
    ret = (size_t)(end - p);
    memmove(out, p, ret);
done:
    free(cnt);
    free(freq);
    free(cum);
    return ret;
}

int ctx1_dec_init(ctx1_dec *d, const uint8_t *in, size_t len, unsigned e)
{
    const unsigned ns = 1u << e, nc = nctx_of(e), bm = (ns + 7) / 8;
    if (e < 1 || e > 8 || len < 2 + 8 || !(in[0] & 1))
        return -1;
    d->e = e;
    unsigned cmask = in[0] | (unsigned)in[1] << 8;
    const uint8_t *q = in + 2, *end = in + len;
    for (unsigned c = 0; c < nc; c++) {
        uint32_t *t = d->tab[c];
        if (!(cmask >> c & 1)) {
            memset(t, 0, M * sizeof *t);
            continue;
        }
        if ((size_t)(end - q) < bm)
            return -1;
        const uint8_t *map = q;
        q += bm;
        unsigned acc = 0;
        for (unsigned s = 0; s < ns; s++) {
            if (!(map[s >> 3] >> (s & 7) & 1))
                continue;
            if (end - q < 2)
                return -1;
            unsigned f = (q[0] | (unsigned)q[1] << 8) + 1u;
            q += 2;
            if (acc + f > M)
                return -1;
            /* sym | (freq - 1) << 8 | (slot - cum) << 20 */
            for (unsigned k = 0; k < f; k++)
                t[acc + k] = s | (f - 1u) << 8 | k << 20;
            acc += f;
        }
        if (acc != M)
            return -1;
    }
    if (end - q < 8)
        return -1;
    d->x[0] = q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    d->x[1] = q[4] | (uint32_t)q[5] << 8 | (uint32_t)q[6] << 16 | (uint32_t)q[7] << 24;
    d->p = q + 8;
    d->end = end;
    return 0;
}

int ctx1_decode(ctx1_dec *d, uint8_t *codes, size_t n)
{
    uint32_t x0 = d->x[0], x1 = d->x[1];
    const uint8_t *p = d->p, *end = d->end;
    const unsigned e = d->e;
    unsigned c0 = 0, c1 = 0; /* context of the next code of each state */
    size_t i = 0;
    int bad = 0;
#define STEP(X, C)                                                      \
    do {                                                                \
        uint32_t t_ = d->tab[C][X & (M - 1)];                           \
        X = ((t_ >> 8 & 0xfff) + 1) * (X >> SCALE) + (t_ >> 20);          \
        if (X < L) {                                                    \
            bad |= end - p < 2;                                         \
            X = X << 16 | (end - p >= 2 ? p[0] | (uint32_t)p[1] << 8 : 0); \
            p += end - p >= 2 ? 2 : 0;                                  \
        }                                                               \
        codes[i++] = (uint8_t)t_;                                       \
        C = ctx_of(t_ & 0xff, e);                                       \
    } while (0)
    while (i + 2 <= n) {
        STEP(x0, c0);
        STEP(x1, c1);
    }
    if (i < n)
        STEP(x0, c0);
#undef STEP
    return !bad && p == end && x0 == L && x1 == L ? 0 : -1;
}

/*
 * Values from the code sequence and the sign / mantissa planes of the
 * non-zero values (LSB-first bit planes, docs/FORMAT.md): what a frame
 * decoder with this coder would do after the codes.
 */
void ctx1_assemble(const uint8_t *codes, size_t n, unsigned k, unsigned e,
                   int anchor, const uint8_t *sign, const uint8_t *mant,
                   float *out)
{
    const int lo = anchor - (1 << e) + 2;
    const unsigned shift = 23 - k;
    uint64_t sb = 0, mb = 0;
    uint32_t *o = (uint32_t *)(void *)out;
    for (size_t i = 0; i < n; i++) {
        unsigned c = codes[i];
        if (!c) {
            o[i] = 0;
            continue;
        }
        uint32_t s = sign[sb >> 3] >> (sb & 7) & 1;
        sb++;
        uint32_t m = 0;
        if (k) {
            uint64_t w;
            memcpy(&w, mant + (mb >> 3), 8);
            m = (uint32_t)(w >> (mb & 7)) & ((1u << k) - 1);
            mb += k;
        }
        o[i] = s << 31 | (uint32_t)(c + lo - 1) << 23 | m << shift;
    }
}
