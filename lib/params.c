/* params.c - parameter defaults and validation. */
#include "config.h"
#include "internal.h"

void sfp_params_default(sfp_params *p)
{
    memset(p, 0, sizeof(*p));
    p->dtype = SFP_DTYPE_F32;
    p->mbits = 23;
    p->ebits = 8;
    p->rounding = SFP_ROUND_RNE;
    p->seed = 0;
    p->anchor = -1;
    p->coder = SFP_CODER_PLAIN;
    p->gecko_group = SFP_GECKO_GROUP_DEFAULT;
    p->zmap = SFP_ZMAP_BITMAP;
}

static const struct {
    const char *name, *aliases;
    size_t size;
    unsigned fbits;
} dtypes[SFP_DTYPE_COUNT + 1] = {
    [0] = {"?", "", 0, 0},
#define SFP__DTYPE_ROW(id, value, name, aliases, size, fbits) [value] = {name, aliases, size, fbits},
    SFP_DTYPES(SFP__DTYPE_ROW)
#undef SFP__DTYPE_ROW
};

static const char *const coders[SFP_CODER_COUNT] = {
#define SFP__CODER_ROW(id, value, name) [value] = name,
    SFP_CODERS(SFP__CODER_ROW)
#undef SFP__CODER_ROW
};

static unsigned dtype_index(sfp_dtype t)
{
    return (unsigned)t <= SFP_DTYPE_COUNT ? (unsigned)t : 0;
}

size_t sfp_dtype_size(sfp_dtype t) { return dtypes[dtype_index(t)].size; }

unsigned sfp_dtype_fraction_bits(sfp_dtype t) { return dtypes[dtype_index(t)].fbits; }

const char *sfp_dtype_name(sfp_dtype t) { return dtypes[dtype_index(t)].name; }

const char *sfp_coder_name(sfp_coder c)
{
    if (c == SFP_CODER_AUTO)
        return "auto";
    return (unsigned)c < SFP_CODER_COUNT ? coders[c] : "?";
}

/* Whether word is one of the blank-separated words of list. */
static int in_list(const char *word, const char *list)
{
    size_t n = strlen(word);
    while (*list) {
        size_t l = strcspn(list, " ");
        if (l == n && n && memcmp(word, list, n) == 0)
            return 1;
        list += l;
        list += strspn(list, " ");
    }
    return 0;
}

int sfp_dtype_parse(const char *name, sfp_dtype *out)
{
    RETURN_IF(!name || !out, SFP_EINVAL);
    for (unsigned i = 1; i <= SFP_DTYPE_COUNT; i++) {
        if (strcmp(name, dtypes[i].name) == 0 || in_list(name, dtypes[i].aliases)) {
            *out = (sfp_dtype)i;
            return SFP_OK;
        }
    }
    return SFP_EINVAL;
}

int sfp_coder_parse(const char *name, sfp_coder *out)
{
    RETURN_IF(!name || !out, SFP_EINVAL);
    for (unsigned i = 0; i < SFP_CODER_COUNT; i++) {
        if (strcmp(name, coders[i]) == 0) {
            *out = (sfp_coder)i;
            return SFP_OK;
        }
    }
    if (strcmp(name, "auto") == 0) {
        *out = SFP_CODER_AUTO;
        return SFP_OK;
    }
    return SFP_EINVAL;
}

static const char *const zmaps[] = {"bitmap", "huffman"};

const char *sfp_zmap_name(unsigned zmap)
{
    return zmap < 2 ? zmaps[zmap] : "?";
}

int sfp_zmap_parse(const char *name, unsigned *out)
{
    RETURN_IF(!name || !out, SFP_EINVAL);
    for (unsigned i = 0; i < 2; i++) {
        if (strcmp(name, zmaps[i]) == 0) {
            *out = i;
            return SFP_OK;
        }
    }
    return SFP_EINVAL;
}

int sfp_params_check(const sfp_params *p)
{
    RETURN_IF(p == NULL, SFP_EINVAL);
    RETURN_IF(sfp_dtype_size(p->dtype) == 0, SFP_EINVAL);
    RETURN_IF(p->mbits > sfp_dtype_fraction_bits(p->dtype), SFP_EINVAL);
    RETURN_IF(p->ebits < 1 || p->ebits > 8, SFP_EINVAL);
    RETURN_IF(p->rounding != SFP_ROUND_RNE && p->rounding != SFP_ROUND_TRUNC &&
                  p->rounding != SFP_ROUND_STOCHASTIC,
              SFP_EINVAL);
    RETURN_IF(p->anchor < -1 || p->anchor > 254, SFP_EINVAL);
    /* Fixed anchor 0 with no mantissa bits: the grid has no non-zero value. */
    RETURN_IF(p->anchor == 0 && p->mbits == 0, SFP_EINVAL);
    RETURN_IF((unsigned)p->coder >= SFP_CODER_COUNT && p->coder != SFP_CODER_AUTO, SFP_EINVAL);
    RETURN_IF(p->zmap != SFP_ZMAP_BITMAP && p->zmap != SFP_ZMAP_HUFFMAN, SFP_EINVAL);
    if (p->coder == SFP_CODER_GECKO || p->coder == SFP_CODER_AUTO) {
        unsigned g = p->gecko_group ? p->gecko_group : SFP_GECKO_GROUP_DEFAULT;
        RETURN_IF(g != 8 && g != 16 && g != 32 && g != 64, SFP_EINVAL);
    }
    return SFP_OK;
}

void sfp__round_init(sfp__round *r, const sfp_params *p)
{
    r->k = p->mbits;
    r->shift = 23u - p->mbits;
    r->lowmask = r->shift ? (1u << r->shift) - 1 : 0;
    r->satmag = (254u << 23) | (0x7fffffu & ~r->lowmask);
    r->mode = p->rounding;
    r->seed = p->seed;
}

const char *sfp_version(void)
{
    return SFP_VERSION_STRING;
}
