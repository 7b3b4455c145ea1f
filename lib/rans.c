/*
 * rans.c - entropy-coded exponent plane (coder 2): static rANS with a
 * per-frame frequency table, 2 or 32 interleaved 32-bit states and 16-bit
 * renormalisation. docs/FORMAT.md section "rANS coder" is normative.
 *
 * Every code costs at most SCALE = 12 bits, so the encoder emits at most one
 * 16-bit word per code and a decoder refills at most once per code.
 */
#include "internal.h"

static inline void store16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void sfp__rans_build(sfp__rans_table *t, const uint64_t *count, unsigned nsym)
{
    uint64_t total = 0;
    unsigned i, used = 0;

    memset(t, 0, sizeof(*t));
    t->nsym = nsym;
    for (i = 0; i < nsym; i++)
        total += count[i];
    if (total == 0)
        return;
    int64_t sum = 0;
    for (i = 0; i < nsym; i++) {
        if (!count[i])
            continue;
        /* round to nearest, at least 1 */
        uint64_t f = (count[i] * SFP__RANS_M * 2 + total) / (2 * total);
        t->freq[i] = (uint16_t)(f ? f : 1);
        sum += t->freq[i];
        used++;
    }
    /* Fix the sum: take from or give to the most frequent symbols. */
    while (sum != SFP__RANS_M) {
        unsigned best = 0;
        for (i = 1; i < nsym; i++)
            if (t->freq[i] > t->freq[best])
                best = i;
        if (sum < SFP__RANS_M) {
            t->freq[best] = (uint16_t)(t->freq[best] + (SFP__RANS_M - sum));
            sum = SFP__RANS_M;
        } else {
            /* at most `used` <= 256 excess units; the largest freq >= 16 */
            int64_t take = sum - SFP__RANS_M;
            int64_t room = t->freq[best] - 1;
            if (take > room)
                take = room;
            t->freq[best] = (uint16_t)(t->freq[best] - take);
            sum -= take;
        }
    }
    (void)used;
    uint32_t c = 0;
    for (i = 0; i < nsym; i++) {
        t->cum[i] = (uint16_t)c;
        c += t->freq[i];
    }
}

uint64_t sfp__rans_table_bytes(unsigned nsym, unsigned present)
{
    return (nsym + 7) / 8 + 2u * present;
}

unsigned sfp__rans_states(uint64_t S)
{
    return S >= SFP__RANS_WIDE_MIN ? SFP__RANS_WIDE : 2;
}

uint64_t sfp__rans_bound(uint64_t S, unsigned ebits, unsigned nst)
{
    unsigned nsym = 1u << ebits;
    return S ? sfp__rans_table_bytes(nsym, nsym) + 4u * nst + 2 * S : 0;
}

/* What the encoder needs of one symbol, together. */
typedef struct rans_sym {
    uint64_t rcp;  /* ceil(2^(32+sh) / f)                                  */
    uint32_t xmax; /* renormalise while x >= xmax                          */
    uint16_t cmpl; /* M - f: x + cum + q (M - f) = (q << SCALE) + x - q f + cum */
    uint16_t cum;
    uint8_t sh;
} rans_sym;

/*
 * One encode step: the renormalisation without a branch (the low word is
 * stored whether it is emitted or not, then the pointer moves by 2 or 0;
 * the caller made sure 2 bytes below *pp are in the buffer), then
 * x / f by multiplication: with sh = ceil(log2 f) and
 * m = ceil(2^(32+sh) / f), floor(x * m / 2^(32+sh)) == floor(x / f) for
 * every 32-bit x (tests/lib/test_codec.c checks all f).
 */
static inline uint32_t rans_put(uint32_t x, const rans_sym *e, uint8_t **pp)
{
    const uint32_t r = x >= e->xmax;
    uint8_t *p = *pp - 2;
    store16le(p, (uint16_t)x);
    *pp = p + 2 * (1 - r);
    x >>= 16 * r;
    const uint32_t q = (uint32_t)((uint64_t)(((__uint128_t)x * e->rcp) >> 32) >> e->sh);
    return x + e->cum + q * e->cmpl;
}

/* 32 states, whole rounds (rounds-1 .. 0), the C loop. */
static uint8_t *enc32_c(uint32_t *x, const rans_sym *sym, const uint8_t *codes,
                        uint64_t rounds, uint8_t *p)
{
    for (uint64_t r = rounds; r-- > 0;) {
        const uint8_t *c = codes + 32 * r;
        for (int l = 31; l >= 0; l--)
            x[l] = rans_put(x[l], &sym[c[l]], &p);
    }
    return p;
}

uint64_t sfp__rans_encode(const sfp__rans_table *t, const uint8_t *codes,
                          uint64_t S, uint8_t *out, uint64_t cap, unsigned nst)
{
    if (S == 0)
        return 0;
    uint8_t *end = out + cap, *p = end;
    uint32_t x[SFP__RANS_WIDE];
    for (unsigned l = 0; l < nst; l++)
        x[l] = SFP__RANS_L;
    rans_sym sym[256];
    for (unsigned s = 0; s < t->nsym; s++) {
        uint32_t f = t->freq[s];
        if (!f)
            continue;
        unsigned sh = f > 1 ? 32u - (unsigned)__builtin_clz(f - 1) : 0;
        sym[s].rcp = (uint64_t)((((__uint128_t)1 << (32 + sh)) + f - 1) / f);
        sym[s].sh = (uint8_t)sh;
        sym[s].cum = t->cum[s];
        sym[s].cmpl = (uint16_t)(SFP__RANS_M - f);
        /* renormalise while x >= ((L >> SCALE) << 16) * f; saturated at
         * 2^32 - 1 for f = M, where x stays L (the only symbol) */
        uint64_t xm = (uint64_t)((SFP__RANS_L >> SFP__RANS_SCALE) << 16) * f;
        sym[s].xmax = xm > 0xffffffffu ? 0xffffffffu : (uint32_t)xm;
    }
    /* every code emits at most one word: with 2 S bytes of room no step
     * can leave the buffer */
    if (cap < 2 * S + 2)
        return UINT64_MAX;
    uint64_t i = S;
    if (nst == 2) {
        if (i & 1) {
            i--;
            x[0] = rans_put(x[0], &sym[codes[i]], &p);
        }
        uint32_t x0 = x[0], x1 = x[1];
        while (i >= 2) {
            i -= 2;
            x1 = rans_put(x1, &sym[codes[i + 1]], &p);
            x0 = rans_put(x0, &sym[codes[i]], &p);
        }
        x[0] = x0, x[1] = x1;
    } else {
        /* the last, partial round first (coding runs backwards) */
        while (i % 32) {
            i--;
            x[i % 32] = rans_put(x[i % 32], &sym[codes[i]], &p);
        }
        const sfp__kernels *kt = sfp__kernels_get();
        p = kt->rans_enc32 ? kt->rans_enc32(x, t, codes, i / 32, p)
                           : enc32_c(x, sym, codes, i / 32, p);
    }
    unsigned present = 0;
    for (unsigned s = 0; s < t->nsym; s++)
        present += t->freq[s] != 0;
    uint64_t tb = sfp__rans_table_bytes(t->nsym, present);
    if ((uint64_t)(p - out) < 4u * nst + tb)
        return UINT64_MAX;
    p -= 4u * nst;
    for (unsigned l = 0; l < nst; l++)
        sfp__store32le(p + 4 * l, x[l]);
    p -= tb;
    uint8_t *q = p;
    memset(q, 0, (t->nsym + 7) / 8);
    for (unsigned s = 0; s < t->nsym; s++)
        if (t->freq[s])
            q[s >> 3] |= (uint8_t)(1u << (s & 7));
    q += (t->nsym + 7) / 8;
    for (unsigned s = 0; s < t->nsym; s++)
        if (t->freq[s]) {
            store16le(q, (uint16_t)(t->freq[s] - 1));
            q += 2;
        }
    uint64_t len = (uint64_t)(end - p);
    memmove(out, p, len);
    return len;
}

int sfp__rans_dec_init(sfp__rans_dec *d, sfp__rans_table *t, const uint8_t *p,
                       uint64_t len, unsigned ebits, unsigned nst)
{
    const unsigned nsym = 1u << ebits;
    const uint64_t bm = (nsym + 7) / 8;
    unsigned present = 0;

    memset(d, 0, sizeof(*d));
    memset(t->freq, 0, sizeof(t->freq));
    t->nsym = nsym;
    RETURN_IF(len < bm, SFP_ECORRUPT);
    for (unsigned s = 0; s < nsym; s++)
        present += (p[s >> 3] >> (s & 7)) & 1;
    if (nsym < 8)
        RETURN_IF(p[0] >> nsym, SFP_ECORRUPT);
    RETURN_IF(present == 0, SFP_ECORRUPT);
    const uint64_t tb = sfp__rans_table_bytes(nsym, present);
    RETURN_IF(nst != 2 && nst != SFP__RANS_WIDE, SFP_ECORRUPT);
    RETURN_IF(len < tb + 4u * nst, SFP_ECORRUPT);
    const uint8_t *q = p + bm;
    uint32_t sum = 0;
    for (unsigned s = 0; s < nsym; s++) {
        if (!((p[s >> 3] >> (s & 7)) & 1))
            continue;
        uint32_t f = (uint32_t)q[0] + ((uint32_t)q[1] << 8) + 1;
        q += 2;
        RETURN_IF(f > SFP__RANS_M, SFP_ECORRUPT);
        t->cum[s] = (uint16_t)sum;
        t->freq[s] = (uint16_t)f;
        sum += f;
        RETURN_IF(sum > SFP__RANS_M, SFP_ECORRUPT);
        for (uint32_t j = 0; j < f; j++)
            t->slot[t->cum[s] + j] = s | (f - 1) << 8 | j << 20;
    }
    RETURN_IF(sum != SFP__RANS_M, SFP_ECORRUPT);
    d->nst = nst;
    for (unsigned l = 0; l < nst; l++) {
        d->x[l] = sfp__load32le(q + 4 * l);
        RETURN_IF(d->x[l] < SFP__RANS_L, SFP_ECORRUPT);
    }
    d->p = q + 4u * nst;
    d->end = p + len;
    return SFP_OK;
}

/* One decode step on state *x without the renormalisation. */
static inline uint32_t rans_advance(uint32_t v, const sfp__rans_table *t, uint8_t *sym)
{
    const uint32_t e = t->slot[v & (SFP__RANS_M - 1)];
    *sym = (uint8_t)e;
    return ((e >> 8 & 0xfff) + 1) * (v >> SFP__RANS_SCALE) + (e >> 20);
}

/* One decode step on state *x; reads at most one word. */
static inline uint8_t rans_step(uint32_t *x, const sfp__rans_table *t,
                                const uint8_t **pp, const uint8_t *end, int *err)
{
    uint8_t s;
    uint32_t v = rans_advance(*x, t, &s);
    if (v < SFP__RANS_L) {
        const uint8_t *p = *pp;
        uint32_t w = 0;
        if (SFP__LIKELY(end - p >= 2)) {
            w = (uint32_t)p[0] | (uint32_t)p[1] << 8;
            *pp = p + 2;
        } else {
            *err = 1;
        }
        v = v << 16 | w;
    }
    *x = v;
    return s;
}

/*
 * Two symbols, one per state, while at least two words are left: the word
 * is loaded whether it is needed or not and the pointer moves by 2 or 0, so
 * the state chains have no branch to mispredict (a renormalisation happens
 * on about half of the steps of a skewed table).
 */
static inline const uint8_t *rans_pair(uint32_t *x0, uint32_t *x1,
                                       const sfp__rans_table *t, const uint8_t *p,
                                       uint8_t *out)
{
    uint32_t v0 = rans_advance(*x0, t, &out[0]);
    uint32_t v1 = rans_advance(*x1, t, &out[1]);
    /* both words the pair may take, so that state 1's does not wait for
     * state 0's decision to move the pointer */
    const uint32_t wa = sfp__load16le(p), wb = sfp__load16le(p + 2);
    const uint32_t r0 = v0 < SFP__RANS_L, r1 = v1 < SFP__RANS_L;
    const uint32_t w1 = r0 ? wb : wa;
    *x0 = r0 ? v0 << 16 | wa : v0;
    *x1 = r1 ? v1 << 16 | w1 : v1;
    return p + 2 * (r0 + r1);
}

/*
 * 32 states, whole rounds while at least 64 bytes are left (the most a
 * round reads): all 32 steps first, then the words of the states that
 * renormalise, in state order, each loaded whether it is needed or not.
 */
static size_t dec32_c(uint32_t *x, const sfp__rans_table *t, const uint8_t **pp,
                      const uint8_t *end, uint8_t *out, size_t rounds)
{
    const uint8_t *p = *pp;
    size_t r = 0;
    for (; r < rounds && end - p >= 64; r++) {
        uint8_t *o = out + 32 * r;
#pragma GCC unroll 32
        for (unsigned l = 0; l < 32; l++) {
            const uint32_t v = rans_advance(x[l], t, &o[l]);
            const uint32_t w = sfp__load16le(p), re = v < SFP__RANS_L;
            x[l] = re ? v << 16 | w : v;
            p += 2 * re;
        }
    }
    *pp = p;
    return r;
}

void sfp__rans_dec_run(sfp__rans_dec *d, const sfp__rans_table *t, uint8_t *out,
                       size_t n)
{
    const uint8_t *p = d->p, *end = d->end;
    int err = 0;
    size_t j = 0;

    if (d->nst == 2) {
        uint32_t x0 = d->x[0], x1 = d->x[1];
        if (n && (d->i & 1))
            out[j++] = rans_step(&x1, t, &p, end, &err);
        for (; j + 2 <= n && end - p >= 4; j += 2)
            p = rans_pair(&x0, &x1, t, p, out + j);
        for (; j + 2 <= n; j += 2) {
            out[j] = rans_step(&x0, t, &p, end, &err);
            out[j + 1] = rans_step(&x1, t, &p, end, &err);
        }
        if (j < n)
            out[j] = rans_step(((d->i + j) & 1) ? &x1 : &x0, t, &p, end, &err);
        d->x[0] = x0;
        d->x[1] = x1;
    } else {
        uint32_t *x = d->x;
        for (; j < n && (d->i + j) % 32; j++)
            out[j] = rans_step(&x[(d->i + j) % 32], t, &p, end, &err);
        const size_t rounds = (n - j) / 32;
        if (rounds) {
            const sfp__kernels *kt = sfp__kernels_get();
            const size_t done = kt->rans_dec32 ? kt->rans_dec32(x, t, &p, end, out + j, rounds)
                                               : dec32_c(x, t, &p, end, out + j, rounds);
            j += 32 * done;
        }
        for (; j < n; j++)
            out[j] = rans_step(&x[(d->i + j) % 32], t, &p, end, &err);
    }
    d->i += n;
    d->p = p;
    d->err |= err;
}

int sfp__rans_dec_finish(const sfp__rans_dec *d)
{
    RETURN_IF(d->err, SFP_ECORRUPT);
    RETURN_IF(d->p != d->end, SFP_ECORRUPT);
    for (unsigned l = 0; l < d->nst; l++)
        RETURN_IF(d->x[l] != SFP__RANS_L, SFP_ECORRUPT);
    return SFP_OK;
}

void sfp__enc_codes_rans(sfp__codec *c)
{
    memcpy(c->rscratch + c->rn, c->cbuf, c->cn);
    c->rn += c->cn;
    c->cn = 0;
}

int sfp__dec_codes_rans(sfp__codec *c, size_t need)
{
    memmove(c->cbuf, c->cbuf + c->cpos, c->cn - c->cpos);
    c->cn -= c->cpos;
    c->cpos = 0;
    if (need <= c->cn)
        return SFP_OK;
    size_t m = need - c->cn;
    RETURN_IF(m > c->codes_left, SFP_ECORRUPT);
    sfp__rans_dec_run(c->rd, c->rt, c->cbuf + c->cn, m);
    c->cn += m;
    c->codes_left -= m;
    RETURN_IF(c->rd->err, SFP_ECORRUPT);
    return SFP_OK;
}
