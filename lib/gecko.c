/*
 * gecko.c - Gecko exponent coding: groups of G codes, each stored as a base
 * (the group maximum, or a 1-bit "same base as the previous group" flag), a
 * width w and G non-negative deltas base - code of w bits. docs/FORMAT.md
 * section "Gecko exponent plane" is the normative description.
 */
#include "config.h"
#include "internal.h"

void sfp__gecko_enc_init(sfp__gecko_enc *g, uint8_t *p, unsigned ebits)
{
    sfp__bw_init(&g->bw, p);
    g->ebits = ebits;
    g->wbits = sfp__gecko_wbits(ebits);
    g->prev_base = (1u << ebits) - 1;
}

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

uint64_t sfp__gecko_group_bits(const sfp__gecko_enc *g, const uint8_t *codes,
                               unsigned n, unsigned *prev_base)
{
    unsigned B, mn;
    group_range(codes, n, &B, &mn);
    unsigned w = sfp__bitlen(B - mn);
    uint64_t bits = 1 + (B == *prev_base ? 0 : g->ebits) + g->wbits +
                    (uint64_t)n * w;
    *prev_base = B;
    return bits;
}

void sfp__gecko_put_group(sfp__gecko_enc *g, const uint8_t *codes, unsigned n)
{
    unsigned B, mn;
    group_range(codes, n, &B, &mn);
    unsigned w = sfp__bitlen(B - mn);

    if (B == g->prev_base) {
        sfp__bw_put(&g->bw, 1, 1);
    } else {
        sfp__bw_put(&g->bw, 0, 1);
        sfp__bw_put(&g->bw, B, g->ebits);
    }
    sfp__bw_put(&g->bw, w, g->wbits);
    if (w) {
        /* Pack up to 4 deltas per put to keep the writer busy less often. */
        unsigned i = 0;
        for (; i + 4 <= n; i += 4) {
            uint32_t v = (B - codes[i]) | (B - codes[i + 1]) << w |
                         (B - codes[i + 2]) << 2 * w | (B - codes[i + 3]) << 3 * w;
            sfp__bw_put(&g->bw, v, 4 * w);
        }
        for (; i < n; i++)
            sfp__bw_put(&g->bw, B - codes[i], w);
    }
    g->prev_base = B;
}

void sfp__gecko_dec_init(sfp__gecko_dec *g, const uint8_t *p, size_t len,
                         unsigned ebits)
{
    sfp__br_init(&g->br, p, len);
    g->ebits = ebits;
    g->wbits = sfp__gecko_wbits(ebits);
    g->prev_base = (1u << ebits) - 1;
}

int sfp__gecko_get_group(sfp__gecko_dec *g, uint8_t *codes, unsigned n)
{
    unsigned B = g->prev_base;
    if (!sfp__br_get(&g->br, 1))
        B = sfp__br_get(&g->br, g->ebits);
    unsigned w = sfp__br_get(&g->br, g->wbits);
    RETURN_IF(w > g->ebits, SFP_ECORRUPT);
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned d = w ? sfp__br_get(&g->br, w) : 0;
        bad |= d > B;
        codes[i] = (uint8_t)(B - d);
    }
    RETURN_IF(bad || g->br.err, SFP_ECORRUPT);
    g->prev_base = B;
    return SFP_OK;
}
