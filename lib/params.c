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
}

size_t sfp_dtype_size(sfp_dtype t)
{
    switch (t) {
    case SFP_DTYPE_F32:
        return 4;
    case SFP_DTYPE_BF16:
        return 2;
    }
    return 0;
}

int sfp_params_check(const sfp_params *p)
{
    RETURN_IF(p == NULL, SFP_EINVAL);
    RETURN_IF(p->dtype != SFP_DTYPE_F32 && p->dtype != SFP_DTYPE_BF16, SFP_EINVAL);
    RETURN_IF(p->mbits > (p->dtype == SFP_DTYPE_F32 ? 23u : 7u), SFP_EINVAL);
    RETURN_IF(p->ebits < 1 || p->ebits > 8, SFP_EINVAL);
    RETURN_IF(p->rounding != SFP_ROUND_RNE && p->rounding != SFP_ROUND_TRUNC &&
                  p->rounding != SFP_ROUND_STOCHASTIC,
              SFP_EINVAL);
    RETURN_IF(p->anchor < -1 || p->anchor > 254, SFP_EINVAL);
    /* Fixed anchor 0 with no mantissa bits: the grid has no non-zero value. */
    RETURN_IF(p->anchor == 0 && p->mbits == 0, SFP_EINVAL);
    RETURN_IF(p->coder != SFP_CODER_PLAIN && p->coder != SFP_CODER_GECKO &&
                  p->coder != SFP_CODER_RANS, SFP_EINVAL);
    if (p->coder == SFP_CODER_GECKO) {
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
