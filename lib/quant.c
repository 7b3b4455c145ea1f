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

static void split_c(const uint32_t *x, size_t n, const sfp__plan *pl,
                    uint64_t i0, uint8_t *code, uint32_t *mant, uint8_t *sign)
{
    const int lo1 = pl->lo - 1;
    const unsigned shift = pl->r.shift;
    for (size_t i = 0; i < n; i++) {
        uint32_t y = sfp__quant_one(pl, x[i], i0 + i);
        uint32_t a = y & 0x7fffffffu;
        code[i] = a ? (uint8_t)((int)(a >> 23) - lo1) : 0;
        mant[i] = (a & 0x7fffffu) >> shift;
        sign[i] = (uint8_t)(y >> 31);
    }
}

static void join_c(uint32_t *y, size_t n, unsigned shift, int lo,
                   const uint8_t *code, const uint32_t *mant, const uint8_t *sign)
{
    const int lo1 = lo - 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)sign[i] << 31;
        if (code[i])
            v |= (uint32_t)(code[i] + lo1) << 23 | mant[i] << shift;
        y[i] = v;
    }
}

const sfp__kernels sfp__kernels_c = {
    .analyze = analyze_c,
    .split = split_c,
    .join = join_c,
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

    for (int e = 0; e < 255; e++) {
        uint64_t c = h.bin[e] + h.bin[256 + e];
        if (e < pl->minE) {
            pl->flushed += c;
        } else {
            pl->nonzero += c;
            pl->negative += h.bin[256 + e];
            if (e > pl->anchor)
                pl->saturated += c;
        }
    }
    pl->saturated += h.saturated;
    pl->zeros = h.zeros + pl->flushed;
    pl->negzero = h.negzero;
    return SFP_OK;
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
    RETURN_IF((rc = sfp__plan_make(&pl, p, src, n)) < 0, rc);

    if (p->dtype == SFP_DTYPE_F32) {
        const uint32_t *s = src;
        uint32_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = sfp__quant_one(&pl, s[i], i);
    } else {
        const uint16_t *s = src;
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint16_t)(sfp__quant_one(&pl, (uint32_t)s[i] << 16, i) >> 16);
    }
    if (stats)
        plan_stats(&pl, stats);
    return SFP_OK;
}
