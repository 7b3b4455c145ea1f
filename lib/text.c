/* text.c - names sfp accepts (job ids, tensor names): see sfp.h. */
#include "internal.h"

int sfp_text_check(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    RETURN_IF(!s && len, SFP_EINVAL);
    while (i < len) {
        unsigned c = p[i], need, cp;
        if (c < 0x80) {
            RETURN_IF(c < 0x20 || c == 0x7f, SFP_EINVAL); /* C0 controls, NUL, DEL */
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07;
        else
            return SFP_EINVAL; /* continuation byte, overlong lead, or > U+10FFFF */
        RETURN_IF(len - i <= need, SFP_EINVAL);
        for (unsigned k = 1; k <= need; k++) {
            RETURN_IF((p[i + k] & 0xc0) != 0x80, SFP_EINVAL);
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        /* shortest form only; no surrogates, nothing past U+10FFFF, no C1
         * controls (U+0080..U+009F) */
        RETURN_IF((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000), SFP_EINVAL);
        RETURN_IF(cp >= 0xd800 && cp <= 0xdfff, SFP_EINVAL);
        RETURN_IF(cp > 0x10ffff || (cp >= 0x80 && cp <= 0x9f), SFP_EINVAL);
        i += need + 1;
    }
    return SFP_OK;
}
