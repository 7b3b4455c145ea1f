/*
 * rans.c - entropy-coded exponent plane (coder 2): static rANS with a
 * per-frame frequency table, two interleaved 32-bit states and 16-bit
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

uint64_t sfp__rans_bound(uint64_t S, unsigned ebits)
{
    unsigned nsym = 1u << ebits;
    return S ? sfp__rans_table_bytes(nsym, nsym) + 8 + 2 * S : 0;
}

uint64_t sfp__rans_encode(const sfp__rans_table *t, const uint8_t *codes,
                          uint64_t S, uint8_t *out, uint64_t cap)
{
    if (S == 0)
        return 0;
    uint8_t *end = out + cap, *p = end;
    uint32_t x[2] = {SFP__RANS_L, SFP__RANS_L};
    /*
     * x / f by multiplication: with sh = ceil(log2 f) and
     * m = ceil(2^(32+sh) / f), floor(x * m / 2^(32+sh)) == floor(x / f) for
     * every 32-bit x (tests/lib/test_codec.c checks all f).
     */
    uint64_t rcp[256];
    uint32_t xmax[256];
    uint8_t rsh[256];
    for (unsigned s = 0; s < t->nsym; s++) {
        uint32_t f = t->freq[s];
        if (!f)
            continue;
        unsigned sh = f > 1 ? 32u - (unsigned)__builtin_clz(f - 1) : 0;
        rcp[s] = (uint64_t)((((__uint128_t)1 << (32 + sh)) + f - 1) / f);
        rsh[s] = (uint8_t)(32 + sh);
        /* renormalise while x >= ((L >> SCALE) << 16) * f (saturates at 2^32) */
        uint64_t xm = (uint64_t)((SFP__RANS_L >> SFP__RANS_SCALE) << 16) * f;
        xmax[s] = xm > 0xffffffffu ? 0xffffffffu : (uint32_t)xm;
    }

    for (uint64_t i = S; i-- > 0;) {
        unsigned s = codes[i];
        uint32_t f = t->freq[s], xs = x[i & 1];
        if (xs >= xmax[s] && f != SFP__RANS_M) {
            if (SFP__UNLIKELY(p - out < 2))
                return UINT64_MAX;
            p -= 2;
            store16le(p, (uint16_t)xs);
            xs >>= 16;
        }
        uint32_t q = (uint32_t)(((__uint128_t)xs * rcp[s]) >> rsh[s]);
        x[i & 1] = (q << SFP__RANS_SCALE) + (xs - q * f) + t->cum[s];
    }
    unsigned present = 0;
    for (unsigned s = 0; s < t->nsym; s++)
        present += t->freq[s] != 0;
    uint64_t tb = sfp__rans_table_bytes(t->nsym, present);
    if ((uint64_t)(p - out) < 8 + tb)
        return UINT64_MAX;
    p -= 8;
    sfp__store32le(p, x[0]);
    sfp__store32le(p + 4, x[1]);
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
                       uint64_t len, unsigned ebits)
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
    RETURN_IF(len < tb + 8, SFP_ECORRUPT);
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
        memset(t->slot + t->cum[s], (int)s, f);
    }
    RETURN_IF(sum != SFP__RANS_M, SFP_ECORRUPT);
    d->x[0] = sfp__load32le(q);
    d->x[1] = sfp__load32le(q + 4);
    RETURN_IF(d->x[0] < SFP__RANS_L || d->x[1] < SFP__RANS_L, SFP_ECORRUPT);
    d->p = q + 8;
    d->end = p + len;
    return SFP_OK;
}

/* One decode step on state *x; reads at most one word. */
static inline uint8_t rans_step(uint32_t *x, const sfp__rans_table *t,
                                const uint8_t **pp, const uint8_t *end, int *err)
{
    uint32_t v = *x;
    uint32_t slot = v & (SFP__RANS_M - 1);
    unsigned s = t->slot[slot];
    v = t->freq[s] * (v >> SFP__RANS_SCALE) + slot - t->cum[s];
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
    return (uint8_t)s;
}

void sfp__rans_dec_run(sfp__rans_dec *d, const sfp__rans_table *t, uint8_t *out,
                       size_t n)
{
    uint32_t x0 = d->x[0], x1 = d->x[1];
    const uint8_t *p = d->p, *end = d->end;
    int err = 0;
    size_t j = 0;

    if (n && (d->i & 1))
        out[j++] = rans_step(&x1, t, &p, end, &err);
    for (; j + 2 <= n; j += 2) {
        out[j] = rans_step(&x0, t, &p, end, &err);
        out[j + 1] = rans_step(&x1, t, &p, end, &err);
    }
    if (j < n)
        out[j] = rans_step(((d->i + j) & 1) ? &x1 : &x0, t, &p, end, &err);
    d->x[0] = x0;
    d->x[1] = x1;
    d->i += n;
    d->p = p;
    d->err |= err;
}

int sfp__rans_dec_finish(const sfp__rans_dec *d)
{
    RETURN_IF(d->err, SFP_ECORRUPT);
    RETURN_IF(d->p != d->end, SFP_ECORRUPT);
    RETURN_IF(d->x[0] != SFP__RANS_L || d->x[1] != SFP__RANS_L, SFP_ECORRUPT);
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
