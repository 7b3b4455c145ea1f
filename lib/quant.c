/*
 * quant.c - the quantizer: pass 1 (analysis), the plan, sfp_quantize(), and
 * the C reference kernels.
 */
#include "config.h"
#include "internal.h"

/* ------------------------------------------------------ C reference */

static void analyze_c(const uint32_t *x, size_t n, const sfp__round *r,
                      uint64_t i0, sfp__hist *h)
{
    int sat = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = x[i];
        uint32_t a = v & 0x7fffffffu;
        if (SFP__UNLIKELY((a >> 23) == 255)) {
            h->nonfinite = 1;
            continue;
        }
        if (a == 0) {
            h->zeros++;
            h->negzero += v >> 31;
            continue;
        }
        uint32_t m = sfp__round_mag(r, a, i0 + i, &sat);
        if (m == 0) {
            h->zeros++;
            continue;
        }
        h->bin[(v >> 31) << 8 | m >> 23]++;
    }
    h->saturated += (uint64_t)sat;
}

static void scan_c(const uint32_t *x, size_t n, const sfp__round *r,
                   uint64_t i0, int fixed_anchor, sfp__scan *sc)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = x[i];
        uint32_t a = v & 0x7fffffffu;
        if (SFP__UNLIKELY((a >> 23) == 255)) {
            sc->nonfinite = 1;
            continue;
        }
        if (a == 0) {
            sc->zeros++;
            sc->negzero += v >> 31;
            continue;
        }
        int sat = 0;
        uint32_t m = sfp__round_mag(r, a, i0 + i, &sat);
        if (m == 0) {
            sc->zeros++;
            continue;
        }
        int E = (int)(m >> 23);
        sc->maxE = E > sc->maxE ? E : sc->maxE;
        sc->minE = E < sc->minE ? E : sc->minE;
        sc->anyneg += v >> 31;
        sc->saturated += sat | (fixed_anchor >= 0 && E > fixed_anchor);
    }
}

static uint64_t count_below_c(const uint32_t *x, size_t n, uint32_t lim)
{
    /* magnitudes are below 2^31: a signed compare, which SSE2 has; 32-bit
     * counts per block of 2^16 values, which the compiler vectorizes */
    uint64_t total = 0;
    for (size_t i = 0; i < n; i += 65536) {
        const size_t m = n - i < 65536 ? n - i : 65536;
        uint32_t c = 0;
        for (size_t j = 0; j < m; j++)
            c += (int32_t)(x[i + j] & 0x7fffffffu) < (int32_t)lim;
        total += c;
    }
    return total;
}

static void quantize_c(uint32_t *y, const uint32_t *x, size_t n,
                       const sfp__plan *pl, uint64_t i0)
{
    for (size_t i = 0; i < n; i++)
        y[i] = sfp__quant_one(pl, x[i], i0 + i);
}

static void enc_values_c(sfp__codec *c, const uint32_t *x, size_t n,
                         uint64_t i0, uint64_t *zw)
{
    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = 0;
        for (size_t j = 0; j < m; j++)
            sfp__enc_value(c, x[b + j], i0 + b + j, &word, (unsigned)j);
        zw[b / 64] = word;
        c->nonzero += (uint64_t)__builtin_popcountll(word);
    }
}

static void enc_codes_c(sfp__codec *c, int last)
{
    size_t i = 0;
    if (c->coder == SFP_CODER_RANS) {
        sfp__enc_codes_rans(c);
        return;
    }
    if (c->coder == SFP_CODER_PLAIN) {
        for (; i < c->cn; i++)
            sfp__bw_put(&c->wexp, c->cbuf[i], c->ebits);
    } else {
        for (; c->cn - i >= c->G; i += c->G)
            sfp__gecko_put(&c->wexp, c->ebits, &c->prev_base, c->cbuf + i, c->G);
        if (last && i < c->cn) {
            sfp__gecko_put(&c->wexp, c->ebits, &c->prev_base, c->cbuf + i,
                           (unsigned)(c->cn - i));
            i = c->cn;
        }
    }
    memmove(c->cbuf, c->cbuf + i, c->cn - i);
    c->cn -= i;
}

static int dec_codes_c(sfp__codec *c, size_t need)
{
    if (c->coder == SFP_CODER_RANS)
        return sfp__dec_codes_rans(c, need);
    memmove(c->cbuf, c->cbuf + c->cpos, c->cn - c->cpos);
    c->cn -= c->cpos;
    c->cpos = 0;
    while (c->cn < need) {
        RETURN_IF(c->codes_left == 0, SFP_ECORRUPT);
        if (c->coder == SFP_CODER_PLAIN) {
            size_t m = need - c->cn;
            if (m > c->codes_left)
                m = (size_t)c->codes_left;
            for (size_t i = 0; i < m; i++)
                c->cbuf[c->cn++] = (uint8_t)sfp__br_get(&c->rexp, c->ebits);
            c->codes_left -= m;
        } else {
            unsigned g = c->codes_left < c->G ? (unsigned)c->codes_left : c->G;
            int rc = sfp__gecko_get(&c->rexp, c->ebits, &c->prev_base,
                                    c->cbuf + c->cn, g);
            RETURN_IF(rc < 0, rc);
            c->cn += g;
            c->codes_left -= g;
        }
    }
    RETURN_IF(sfp__br_overrun(&c->rexp), SFP_ECORRUPT);
    return SFP_OK;
}

static void dec_values_c(sfp__codec *c, uint32_t *y, size_t n, uint64_t *zw)
{
    unsigned bad = 0;
    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = c->zmap ? zw[b / 64] : 0;
        for (size_t j = 0; j < m; j++)
            y[b + j] = sfp__dec_value(c, word, (unsigned)j, &bad);
    }
    c->bad |= (int)bad;
}

const sfp__kernels sfp__kernels_c = {
    .analyze = analyze_c,
    .scan = scan_c,
    .count_below = count_below_c,
    .quantize = quantize_c,
    .enc_values = enc_values_c,
    .enc_codes = enc_codes_c,
    .dec_codes = dec_codes_c,
    .dec_values = dec_values_c,
};

/* ------------------------------------------------------------ plan */

int sfp__plan_make(sfp__plan *pl, const sfp_params *p, const void *src,
                   size_t n)
{
    const sfp__kernels *kt = sfp__kernels_get();
    sfp__hist h;
    uint32_t tmp[SFP__CHUNK];

    memset(&h, 0, sizeof(h));
    memset(pl, 0, sizeof(*pl));
    sfp__round_init(&pl->r, p);
    pl->ebits = p->ebits;
    pl->n = n;

    if (p->dtype == SFP_DTYPE_F32) {
        kt->analyze((const uint32_t *)src, n, &pl->r, 0, &h);
    } else {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i += SFP__CHUNK) {
            size_t c = n - i < SFP__CHUNK ? n - i : SFP__CHUNK;
            sfp__widen_bf16(tmp, s + i, c);
            kt->analyze(tmp, c, &pl->r, i, &h);
        }
    }
    RETURN_IF(h.nonfinite, SFP_ENONFINITE);

    int maxE = 0;
    for (int e = 254; e >= 0; e--) {
        if (h.bin[e] | h.bin[256 + e]) {
            maxE = e;
            break;
        }
    }
    pl->anchor = p->anchor >= 0 ? p->anchor : maxE;
    pl->lo = pl->anchor - (1 << p->ebits) + 2;
    pl->minE = pl->lo > 0 ? pl->lo : 0;

    pl->lowE = 255;
    for (int e = 0; e < 255; e++) {
        uint64_t c = h.bin[e] + h.bin[256 + e];
        if (c && e < pl->lowE)
            pl->lowE = e;
        if (e < pl->minE) {
            pl->flushed += c;
        } else {
            pl->nonzero += c;
            pl->negative += h.bin[256 + e];
            if (e > pl->anchor)
                pl->saturated += c;
        }
    }
    /* Rounding overflow lands in bin 254, already counted when it lies
     * above a fixed anchor. */
    if (pl->anchor >= 254)
        pl->saturated += h.saturated;
    pl->zeros = h.zeros + pl->flushed;
    pl->negzero = h.negzero;
    return SFP_OK;
}

int sfp__plan_scan(sfp__plan *pl, const sfp_params *p, const void *src,
                   size_t n)
{
    const sfp__kernels *kt = sfp__kernels_get();
    sfp__scan sc;
    uint32_t tmp[SFP__CHUNK];

    memset(&sc, 0, sizeof(sc));
    sc.maxE = -1;
    sc.minE = 255;
    memset(pl, 0, sizeof(*pl));
    sfp__round_init(&pl->r, p);
    pl->ebits = p->ebits;
    pl->n = n;
    if (p->dtype == SFP_DTYPE_F32) {
        kt->scan((const uint32_t *)src, n, &pl->r, 0, p->anchor, &sc);
    } else {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i += SFP__CHUNK) {
            size_t c = n - i < SFP__CHUNK ? n - i : SFP__CHUNK;
            sfp__widen_bf16(tmp, s + i, c);
            kt->scan(tmp, c, &pl->r, i, p->anchor, &sc);
        }
    }
    RETURN_IF(sc.nonfinite, SFP_ENONFINITE);
    pl->anchor = p->anchor >= 0 ? p->anchor : (sc.maxE > 0 ? sc.maxE : 0);
    pl->lo = pl->anchor - (1 << p->ebits) + 2;
    pl->minE = pl->lo > 0 ? pl->lo : 0;
    pl->saturated = sc.saturated;
    pl->zeros = sc.zeros;          /* lower bound until pass 2 */
    pl->nonzero = n - sc.zeros;    /* upper bound until pass 2 */
    pl->negative = sc.anyneg;      /* upper bound until pass 2 */
    pl->negzero = sc.negzero;
    pl->lowE = sc.minE;
    return SFP_OK;
}

/* Smallest magnitude pattern that quantizes to a non-zero value. */
static uint32_t zero_limit(const sfp__plan *pl)
{
    uint32_t lo = 0, hi = 0x7f7fffffu; /* quant(lo) == 0, quant(hi) != 0 */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (sfp__quant_one(pl, mid, 0) != 0)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* Magnitudes below lim among src[i], i = 0, step, 2 step, ... < n (F32
 * through the kernels when step is 1). */
static uint64_t count_mags_below(const void *src, size_t n, size_t step, sfp_dtype dtype,
                                 uint32_t lim)
{
    if (dtype == SFP_DTYPE_F32 && step == 1)
        return sfp__kernels_get()->count_below(src, n, lim);
    uint64_t hit = 0;
    for (size_t i = 0; i < n; i += step) {
        uint32_t a = dtype == SFP_DTYPE_F32 ? ((const uint32_t *)src)[i] & 0x7fffffffu
                                            : (uint32_t)(((const uint16_t *)src)[i] & 0x7fffu) << 16;
        hit += a < lim;
    }
    return hit;
}

uint64_t sfp__plan_zeros(const sfp__plan *pl, const void *src, size_t n,
                         sfp_dtype dtype)
{
    return count_mags_below(src, n, 1, dtype, zero_limit(pl));
}

uint64_t sfp__plan_zeros_est(const sfp__plan *pl, const void *src, size_t n,
                             sfp_dtype dtype)
{
    if (n <= SFP__ZEROS_EXACT)
        return sfp__plan_zeros(pl, src, n, dtype);
    const size_t seen = (n + SFP__ZEROS_STRIDE - 1) / SFP__ZEROS_STRIDE;
    const uint64_t hit = count_mags_below(src, n, SFP__ZEROS_STRIDE, dtype, zero_limit(pl));
    return (uint64_t)((double)hit * (double)n / (double)seen);
}

static void plan_stats(const sfp__plan *pl, sfp_qstats *st)
{
    st->count = pl->n;
    st->zeros = pl->zeros;
    st->flushed = pl->flushed;
    st->saturated = pl->saturated;
    st->negative = pl->negative;
    st->anchor = pl->anchor;
}

void sfp__plan_stats(const sfp__plan *pl, sfp_qstats *st)
{
    plan_stats(pl, st);
}

int sfp_quantize(void *dst, const void *src, size_t n, const sfp_params *p,
                 sfp_qstats *stats)
{
    sfp__plan pl;
    int rc;

    RETURN_IF((rc = sfp_params_check(p)) < 0, rc);
    RETURN_IF(n > 0 && (dst == NULL || src == NULL), SFP_EINVAL);
    /* Exact statistics need the histogram pass; the anchor alone does not. */
    if (stats)
        rc = sfp__plan_make(&pl, p, src, n);
    else
        rc = sfp__plan_scan(&pl, p, src, n);
    RETURN_IF(rc < 0, rc);

    const sfp__kernels *kt = sfp__kernels_get();
    if (p->dtype == SFP_DTYPE_F32) {
        kt->quantize(dst, src, n, &pl, 0);
    } else {
        const uint16_t *s = src;
        uint16_t *d = dst;
        uint32_t tmp[SFP__CHUNK];
        for (size_t i = 0; i < n; i += SFP__CHUNK) {
            size_t c = n - i < SFP__CHUNK ? n - i : SFP__CHUNK;
            sfp__widen_bf16(tmp, s + i, c);
            kt->quantize(tmp, tmp, c, &pl, i);
            for (size_t j = 0; j < c; j++)
                d[i + j] = (uint16_t)(tmp[j] >> 16);
        }
    }
    if (stats)
        plan_stats(&pl, stats);
    return SFP_OK;
}
