/*
 * gecko.c - Gecko exponent coding: groups of G codes, each stored as a base
 * (the group maximum, or a 1-bit "same base as the previous group" flag), a
 * width w and G non-negative deltas base - code of w bits. docs/FORMAT.md
 * section "Gecko exponent plane" is the normative description.
 */
#include "internal.h"

static void group_range(const uint8_t *codes, unsigned n, unsigned *maxc,
                        unsigned *minc)
{
    unsigned hi = 0, lo = 255;
    for (unsigned i = 0; i < n; i++) {
        hi = codes[i] > hi ? codes[i] : hi;
        lo = codes[i] < lo ? codes[i] : lo;
    }
    *maxc = hi;
    *minc = lo;
}

uint64_t sfp__gecko_bits(unsigned ebits, unsigned *prev, const uint8_t *codes,
                         unsigned n)
{
    unsigned B, mn;
    group_range(codes, n, &B, &mn);
    unsigned w = sfp__bitlen(B - mn);
    uint64_t bits = 1 + (B == *prev ? 0 : ebits) + sfp__gecko_wbits(ebits) +
                    (uint64_t)n * w;
    *prev = B;
    return bits;
}

void sfp__gecko_put(sfp__bw *bw, unsigned ebits, unsigned *prev,
                    const uint8_t *codes, unsigned n)
{
    unsigned B, mn;
    group_range(codes, n, &B, &mn);
    unsigned w = sfp__bitlen(B - mn), hn;

    const uint64_t h = sfp__gecko_header(ebits, sfp__gecko_wbits(ebits), prev, B, w, &hn);
    sfp__bw_put(bw, h, hn);
    if (w)
        for (unsigned i = 0; i < n; i++)
            sfp__bw_put(bw, B - codes[i], w);
}

int sfp__gecko_get(sfp__br *r, unsigned ebits, unsigned *prev, uint8_t *codes,
                   unsigned n)
{
    unsigned B = *prev;
    if (!sfp__br_get(r, 1))
        B = (unsigned)sfp__br_get(r, ebits);
    unsigned w = (unsigned)sfp__br_get(r, sfp__gecko_wbits(ebits));
    RETURN_IF(w > ebits, SFP_ECORRUPT);
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned d = (unsigned)sfp__br_get(r, w);
        bad |= d > B;
        codes[i] = (uint8_t)(B - d);
    }
    RETURN_IF(bad || sfp__br_overrun(r), SFP_ECORRUPT);
    *prev = B;
    return SFP_OK;
}
