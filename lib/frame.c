/*
 * frame.c - frame encoder, header parser and decoder (docs/FORMAT.md).
 *
 * Layout: header (64 bytes) | sign plane | mantissa plane | zero map |
 * exponent plane | XXH3-64 trailer (8 bytes). The two variable-size planes
 * come last so that the fixed-size ones sit at offsets known from the header
 * alone.
 */
#include <xxhash.h>

#include "config.h"
#include "internal.h"

static const uint8_t sfp__magic[4] = {'S', 'F', 'P', 'F'};

static uint64_t ceil8(uint64_t bits)
{
    return (bits + 7) / 8;
}

uint64_t sfp_checksum(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

static unsigned glog2_of(unsigned g)
{
    return (unsigned)__builtin_ctz(g);
}

/* Worst-case bytes of a Gecko exponent plane of s codes. */
static uint64_t gecko_exp_max(uint64_t s, unsigned ebits, unsigned G)
{
    uint64_t groups = (s + G - 1) / G;
    return ceil8(groups * (1 + ebits + sfp__gecko_wbits(ebits)) + s * ebits);
}

static uint64_t exp_max(uint64_t s, unsigned ebits, sfp_coder coder, unsigned G)
{
    return coder == SFP_CODER_GECKO ? gecko_exp_max(s, ebits, G)
                                    : ceil8(s * ebits);
}

static uint64_t zmap_l1(uint64_t n)
{
    return ceil8((n + 63) / 64);
}

static unsigned group_of(const sfp_params *p)
{
    return p->gecko_group ? p->gecko_group : SFP_GECKO_GROUP_DEFAULT;
}

size_t sfp_frame_bound(size_t n, const sfp_params *p)
{
    if (sfp_params_check(p) < 0 || (uint64_t)n > SFP_FRAME_MAX_COUNT)
        return 0;
    uint64_t nn = n;
    uint64_t b = SFP_FRAME_HEADER_SIZE + SFP_FRAME_TRAILER_SIZE;
    b += ceil8(nn);                          /* signs                 */
    b += ceil8(nn * p->mbits);               /* mantissas             */
    b += zmap_l1(nn) + 8 * ((nn + 63) / 64); /* zero map              */
    b += exp_max(nn, p->ebits, p->coder, group_of(p));
    if (b > SIZE_MAX)
        return 0;
    return (size_t)b;
}

/* ---------------------------------------------------------- encoder */

typedef struct enc_state {
    const sfp__plan *pl;
    unsigned flags;
    sfp_coder coder;
    unsigned G;
    sfp__bw sign, mant, exp;
    sfp__gecko_enc gecko;
    uint8_t *zl1;        /* zero map level 1 (zeroed before use)   */
    uint8_t *zl2;        /* next level-2 word                      */
    uint64_t block;      /* next 64-value block index              */
    uint8_t gbuf[64];    /* pending Gecko group                    */
    unsigned gfill;
    uint64_t nonzero;    /* counted while encoding, for a self-check */
} enc_state;

static inline void enc_code(enc_state *s, uint8_t c)
{
    if (s->coder == SFP_CODER_PLAIN) {
        sfp__bw_put(&s->exp, c, s->pl->ebits);
    } else {
        s->gbuf[s->gfill++] = c;
        if (s->gfill == s->G) {
            sfp__gecko_put_group(&s->gecko, s->gbuf, s->G);
            s->gfill = 0;
        }
    }
}

static void enc_chunk(enc_state *s, const uint32_t *x, size_t n, uint64_t i0,
                      uint8_t *code, uint32_t *mant, uint8_t *sign)
{
    const sfp__kernels *kt = sfp__kernels_get();
    const unsigned k = s->pl->r.k;
    const int zsign = (s->flags & SFP_FLAG_ZSIGN) != 0;
    const int hsign = (s->flags & SFP_FLAG_SIGN) != 0;
    const int zmap = (s->flags & SFP_FLAG_ZMAP) != 0;

    kt->split(x, n, s->pl, i0, code, mant, sign);

    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = 0;
        for (size_t j = 0; j < m; j++) {
            uint8_t c = code[b + j];
            int nz = c != 0;
            word |= (uint64_t)nz << j;
            if (hsign && (nz || zsign))
                sfp__bw_put(&s->sign, sign[b + j], 1);
            if (nz && k)
                sfp__bw_put(&s->mant, mant[b + j], k);
            if (nz || !zmap)
                enc_code(s, c);
        }
        s->nonzero += (uint64_t)__builtin_popcountll(word);
        if (zmap) {
            if (word) {
                s->zl1[s->block >> 3] |= (uint8_t)(1u << (s->block & 7));
                sfp__store64le(s->zl2, word);
                s->zl2 += 8;
            }
            s->block++;
        }
    }
}

int sfp_encode(const void *src, size_t n, const sfp_params *p, void *dst,
               size_t cap, size_t *out_len, sfp_qstats *stats)
{
    sfp__plan pl;
    enc_state s;
    int rc;

    RETURN_IF((rc = sfp_params_check(p)) < 0, rc);
    RETURN_IF(dst == NULL || out_len == NULL || (n > 0 && src == NULL), SFP_EINVAL);
    RETURN_IF((uint64_t)n > SFP_FRAME_MAX_COUNT, SFP_EOVERFLOW);
    RETURN_IF((rc = sfp__plan_make(&pl, p, src, n)) < 0, rc);

    memset(&s, 0, sizeof(s));
    s.pl = &pl;
    s.coder = p->coder;
    s.G = group_of(p);

    /* Zero map when the zeros it saves outweigh its ~1 bit per value. */
    if (pl.zeros > 0 && pl.zeros * p->ebits * 64 > (uint64_t)n * 65)
        s.flags |= SFP_FLAG_ZMAP;
    if (pl.negzero > 0)
        s.flags |= SFP_FLAG_ZSIGN | SFP_FLAG_SIGN;
    else if (pl.negative > 0)
        s.flags |= SFP_FLAG_SIGN;

    const uint64_t nn = n;
    const uint64_t ncodes = (s.flags & SFP_FLAG_ZMAP) ? pl.nonzero : nn;
    const uint64_t sign_bytes =
        (s.flags & SFP_FLAG_SIGN)
            ? ceil8((s.flags & SFP_FLAG_ZSIGN) ? nn : pl.nonzero) : 0;
    const uint64_t mant_bytes = ceil8(pl.nonzero * p->mbits);
    const uint64_t l1 = (s.flags & SFP_FLAG_ZMAP) ? zmap_l1(nn) : 0;
    const uint64_t zmax = (s.flags & SFP_FLAG_ZMAP) ? l1 + 8 * ((nn + 63) / 64) : 0;
    const uint64_t emax = exp_max(ncodes, p->ebits, p->coder, s.G);
    const uint64_t off_sign = SFP_FRAME_HEADER_SIZE;
    const uint64_t off_mant = off_sign + sign_bytes;
    const uint64_t off_zmap = off_mant + mant_bytes;
    const uint64_t off_expw = off_zmap + zmax; /* where exp is written first */
    RETURN_IF(off_expw + emax + SFP_FRAME_TRAILER_SIZE > cap, SFP_ENOSPC);

    uint8_t *out = dst;
    sfp__bw_init(&s.sign, out + off_sign);
    sfp__bw_init(&s.mant, out + off_mant);
    s.zl1 = out + off_zmap;
    s.zl2 = out + off_zmap + l1;
    memset(s.zl1, 0, l1);
    if (p->coder == SFP_CODER_PLAIN)
        sfp__bw_init(&s.exp, out + off_expw);
    else
        sfp__gecko_enc_init(&s.gecko, out + off_expw, p->ebits);

    {
        uint8_t code[SFP__CHUNK];
        uint8_t sign[SFP__CHUNK];
        uint32_t mant[SFP__CHUNK];
        uint32_t tmp[SFP__CHUNK];
        for (size_t i = 0; i < n; i += SFP__CHUNK) {
            size_t c = n - i < SFP__CHUNK ? n - i : SFP__CHUNK;
            const uint32_t *x;
            if (p->dtype == SFP_DTYPE_F32) {
                x = (const uint32_t *)src + i;
            } else {
                sfp__widen_bf16(tmp, (const uint16_t *)src + i, c);
                x = tmp;
            }
            enc_chunk(&s, x, c, i, code, mant, sign);
        }
    }
    if (s.nonzero != pl.nonzero)
        return SFP_EINVAL; /* cannot happen: pass 1 and 2 disagree */

    sfp__bw_flush(&s.sign);
    sfp__bw_flush(&s.mant);
    uint8_t *eend;
    if (p->coder == SFP_CODER_PLAIN) {
        eend = sfp__bw_flush(&s.exp);
    } else {
        if (s.gfill)
            sfp__gecko_put_group(&s.gecko, s.gbuf, s.gfill);
        eend = sfp__bw_flush(&s.gecko.bw);
    }
    const uint64_t exp_bytes = (uint64_t)(eend - (out + off_expw));
    const uint64_t zmap_bytes = (uint64_t)(s.zl2 - s.zl1);
    const uint64_t off_exp = off_zmap + zmap_bytes;
    if (off_exp != off_expw)
        memmove(out + off_exp, out + off_expw, exp_bytes);

    uint8_t *h = out;
    memset(h, 0, SFP_FRAME_HEADER_SIZE);
    memcpy(h, sfp__magic, 4);
    h[4] = SFP_FRAME_VERSION;
    h[5] = (uint8_t)p->dtype;
    h[6] = (uint8_t)p->mbits;
    h[7] = (uint8_t)p->ebits;
    h[8] = (uint8_t)pl.anchor;
    h[9] = (uint8_t)p->coder;
    h[10] = (uint8_t)(p->coder == SFP_CODER_GECKO ? glog2_of(s.G) : 0);
    h[11] = (uint8_t)s.flags;
    sfp__store64le(h + 16, nn);
    sfp__store64le(h + 24, pl.nonzero);
    sfp__store64le(h + 32, sign_bytes);
    sfp__store64le(h + 40, mant_bytes);
    sfp__store64le(h + 48, zmap_bytes);
    sfp__store64le(h + 56, exp_bytes);

    const uint64_t body = off_exp + exp_bytes;
    sfp__store64le(out + body, sfp_checksum(out, body));
    *out_len = (size_t)(body + SFP_FRAME_TRAILER_SIZE);
    if (stats)
        sfp__plan_stats(&pl, stats);
    return SFP_OK;
}

/* ----------------------------------------------------------- parser */

int sfp_frame_parse(const void *frame, size_t len, sfp_frame_info *info)
{
    const uint8_t *h = frame;
    sfp_frame_info fi;

    RETURN_IF(frame == NULL || info == NULL, SFP_EINVAL);
    RETURN_IF(len < 4, SFP_ETRUNC);
    RETURN_IF(memcmp(h, sfp__magic, 4) != 0, SFP_EMAGIC);
    RETURN_IF(len < SFP_FRAME_HEADER_SIZE, SFP_ETRUNC);
    RETURN_IF(h[4] != SFP_FRAME_VERSION, SFP_EVERSION);

    memset(&fi, 0, sizeof(fi));
    fi.version = h[4];
    fi.dtype = (sfp_dtype)h[5];
    fi.mbits = h[6];
    fi.ebits = h[7];
    fi.anchor = h[8];
    fi.coder = (sfp_coder)h[9];
    fi.flags = h[11];
    fi.count = sfp__load64le(h + 16);
    fi.nonzero = sfp__load64le(h + 24);
    fi.sign_bytes = sfp__load64le(h + 32);
    fi.mant_bytes = sfp__load64le(h + 40);
    fi.zmap_bytes = sfp__load64le(h + 48);
    fi.exp_bytes = sfp__load64le(h + 56);

    RETURN_IF(fi.dtype != SFP_DTYPE_F32 && fi.dtype != SFP_DTYPE_BF16, SFP_EHEADER);
    RETURN_IF(fi.mbits > (fi.dtype == SFP_DTYPE_F32 ? 23u : 7u), SFP_EHEADER);
    RETURN_IF(fi.ebits < 1 || fi.ebits > 8, SFP_EHEADER);
    RETURN_IF(fi.anchor > 254, SFP_EHEADER);
    RETURN_IF(sfp__load32le(h + 12) != 0, SFP_EHEADER);
    RETURN_IF(fi.flags & ~(SFP_FLAG_SIGN | SFP_FLAG_ZSIGN | SFP_FLAG_ZMAP), SFP_EHEADER);
    RETURN_IF((fi.flags & SFP_FLAG_ZSIGN) && !(fi.flags & SFP_FLAG_SIGN), SFP_EHEADER);
    if (fi.coder == SFP_CODER_PLAIN) {
        RETURN_IF(h[10] != 0, SFP_EHEADER);
    } else if (fi.coder == SFP_CODER_GECKO) {
        RETURN_IF(h[10] < 3 || h[10] > 6, SFP_EHEADER);
        fi.gecko_group = 1u << h[10];
    } else {
        return SFP_EHEADER;
    }
    RETURN_IF(fi.count > SFP_FRAME_MAX_COUNT, SFP_EHEADER);
    RETURN_IF(fi.nonzero > fi.count, SFP_EHEADER);

    /* Every plane size follows from the fields above (except the two
     * variable ones, which are bounded). */
    const int zmap = (fi.flags & SFP_FLAG_ZMAP) != 0;
    uint64_t want_sign = 0;
    if (fi.flags & SFP_FLAG_SIGN)
        want_sign = ceil8((fi.flags & SFP_FLAG_ZSIGN) ? fi.count : fi.nonzero);
    RETURN_IF(fi.sign_bytes != want_sign, SFP_EHEADER);
    RETURN_IF(fi.mant_bytes != ceil8(fi.nonzero * fi.mbits), SFP_EHEADER);
    if (zmap) {
        uint64_t l1 = zmap_l1(fi.count);
        RETURN_IF(fi.zmap_bytes < l1, SFP_EHEADER);
        RETURN_IF((fi.zmap_bytes - l1) % 8 != 0, SFP_EHEADER);
        RETURN_IF((fi.zmap_bytes - l1) / 8 > (fi.count + 63) / 64, SFP_EHEADER);
    } else {
        RETURN_IF(fi.zmap_bytes != 0, SFP_EHEADER);
    }
    const uint64_t ncodes = zmap ? fi.nonzero : fi.count;
    if (fi.coder == SFP_CODER_PLAIN)
        RETURN_IF(fi.exp_bytes != ceil8(ncodes * fi.ebits), SFP_EHEADER);
    else
        RETURN_IF(fi.exp_bytes > gecko_exp_max(ncodes, fi.ebits, fi.gecko_group),
                  SFP_EHEADER);

    /* All four sizes are < 2^44 now, so the sum cannot overflow. */
    fi.frame_bytes = SFP_FRAME_HEADER_SIZE + fi.sign_bytes + fi.mant_bytes +
                     fi.zmap_bytes + fi.exp_bytes + SFP_FRAME_TRAILER_SIZE;
    RETURN_IF(fi.frame_bytes > len, SFP_ETRUNC);
    fi.checksum = sfp__load64le(h + fi.frame_bytes - SFP_FRAME_TRAILER_SIZE);
    *info = fi;
    return SFP_OK;
}

int sfp_frame_verify(const void *frame, size_t len, sfp_frame_info *info)
{
    sfp_frame_info fi;
    int rc = sfp_frame_parse(frame, len, &fi);
    RETURN_IF(rc < 0, rc);
    RETURN_IF(sfp_checksum(frame, fi.frame_bytes - SFP_FRAME_TRAILER_SIZE) !=
                  fi.checksum,
              SFP_ECHECKSUM);
    if (info)
        *info = fi;
    return SFP_OK;
}

/* ---------------------------------------------------------- decoder */

typedef struct dec_state {
    const sfp_frame_info *fi;
    int lo;
    unsigned cmin;      /* smallest valid non-zero code                */
    sfp__br sign, mant, exp;
    sfp__gecko_dec gecko;
    const uint8_t *zl1, *zl2, *zl2_end;
    uint64_t block;
    uint64_t codes_left; /* codes not yet pulled from the exponent plane */
    uint8_t gbuf[64];
    unsigned gpos, glen;
    uint64_t nonzero;
} dec_state;

static inline int dec_code(dec_state *s, uint8_t *c)
{
    RETURN_IF(s->codes_left == 0, SFP_ECORRUPT);
    s->codes_left--;
    if (s->fi->coder == SFP_CODER_PLAIN) {
        *c = (uint8_t)sfp__br_get(&s->exp, s->fi->ebits);
        return SFP_OK;
    }
    if (s->gpos == s->glen) {
        uint64_t left = s->codes_left + 1;
        s->glen = left < s->fi->gecko_group ? (unsigned)left : s->fi->gecko_group;
        s->gpos = 0;
        int rc = sfp__gecko_get_group(&s->gecko, s->gbuf, s->glen);
        RETURN_IF(rc < 0, rc);
    }
    *c = s->gbuf[s->gpos++];
    return SFP_OK;
}

static int dec_chunk(dec_state *s, uint32_t *y, size_t n, uint8_t *code,
                     uint32_t *mant, uint8_t *sign)
{
    const sfp_frame_info *fi = s->fi;
    const unsigned k = fi->mbits;
    const int zmap = (fi->flags & SFP_FLAG_ZMAP) != 0;
    const int hsign = (fi->flags & SFP_FLAG_SIGN) != 0;
    const int zsign = (fi->flags & SFP_FLAG_ZSIGN) != 0;
    int rc;

    for (size_t b = 0; b < n; b += 64) {
        size_t m = n - b < 64 ? n - b : 64;
        uint64_t word = ~UINT64_C(0);
        if (zmap) {
            word = 0;
            if (s->zl1[s->block >> 3] >> (s->block & 7) & 1) {
                RETURN_IF(s->zl2_end - s->zl2 < 8, SFP_ECORRUPT);
                word = sfp__load64le(s->zl2);
                s->zl2 += 8;
                /* Set bits past the tensor end, or an all-zero word, are
                 * never written by an encoder. */
                RETURN_IF(word == 0, SFP_ECORRUPT);
                RETURN_IF(m < 64 && (word >> m) != 0, SFP_ECORRUPT);
            }
            s->block++;
        }
        unsigned bad = 0;
        for (size_t j = 0; j < m; j++) {
            uint8_t c = 0;
            int nz;
            if (zmap) {
                nz = (int)(word >> j & 1);
                if (nz) {
                    RETURN_IF((rc = dec_code(s, &c)) < 0, rc);
                    bad |= c == 0;
                }
            } else {
                RETURN_IF((rc = dec_code(s, &c)) < 0, rc);
                nz = c != 0;
            }
            bad |= nz && c < s->cmin;
            code[b + j] = c;
            s->nonzero += (uint64_t)nz;
            sign[b + j] = (hsign && (nz || zsign)) ? (uint8_t)sfp__br_get(&s->sign, 1) : 0;
            mant[b + j] = (nz && k) ? sfp__br_get(&s->mant, k) : 0;
        }
        RETURN_IF(bad, SFP_ECORRUPT);
    }
    RETURN_IF(s->sign.err || s->mant.err || s->exp.err, SFP_ECORRUPT);
    sfp__kernels_get()->join(y, n, 23u - k, s->lo, code, mant, sign);
    return SFP_OK;
}

int sfp_decode(const void *frame, size_t len, void *dst, size_t cap,
               size_t *out_n)
{
    sfp_frame_info fi;
    dec_state s;
    int rc;

    RETURN_IF(frame == NULL, SFP_EINVAL);
    RETURN_IF((rc = sfp_frame_verify(frame, len, &fi)) < 0, rc);
    const size_t esz = sfp_dtype_size(fi.dtype);
    RETURN_IF(fi.count > SIZE_MAX / esz, SFP_EOVERFLOW);
    RETURN_IF((size_t)fi.count * esz > cap, SFP_ENOSPC);
    RETURN_IF(fi.count > 0 && dst == NULL, SFP_EINVAL);

    const uint8_t *f = frame;
    const uint64_t off_sign = SFP_FRAME_HEADER_SIZE;
    const uint64_t off_mant = off_sign + fi.sign_bytes;
    const uint64_t off_zmap = off_mant + fi.mant_bytes;
    const uint64_t off_exp = off_zmap + fi.zmap_bytes;
    const int zmap = (fi.flags & SFP_FLAG_ZMAP) != 0;

    memset(&s, 0, sizeof(s));
    s.fi = &fi;
    s.lo = (int)fi.anchor - (1 << fi.ebits) + 2;
    s.cmin = s.lo >= 0 ? 1u : (unsigned)(1 - s.lo);
    s.codes_left = zmap ? fi.nonzero : fi.count;
    sfp__br_init(&s.sign, f + off_sign, fi.sign_bytes);
    sfp__br_init(&s.mant, f + off_mant, fi.mant_bytes);
    if (fi.coder == SFP_CODER_PLAIN)
        sfp__br_init(&s.exp, f + off_exp, fi.exp_bytes);
    else
        sfp__gecko_dec_init(&s.gecko, f + off_exp, fi.exp_bytes, fi.ebits);
    if (zmap) {
        uint64_t l1 = zmap_l1(fi.count);
        uint64_t set = 0;
        s.zl1 = f + off_zmap;
        for (uint64_t i = 0; i < l1; i++)
            set += (uint64_t)__builtin_popcount(s.zl1[i]);
        /* Level-1 bits past the last block must be clear. */
        uint64_t nblocks = (fi.count + 63) / 64;
        if (nblocks % 8)
            RETURN_IF(s.zl1[l1 - 1] >> (nblocks % 8), SFP_ECORRUPT);
        RETURN_IF(set * 8 != fi.zmap_bytes - l1, SFP_ECORRUPT);
        s.zl2 = s.zl1 + l1;
        s.zl2_end = f + off_exp;
    }

    uint8_t code[SFP__CHUNK];
    uint8_t sign[SFP__CHUNK];
    uint32_t mant[SFP__CHUNK];
    uint32_t tmp[SFP__CHUNK];
    for (uint64_t i = 0; i < fi.count; i += SFP__CHUNK) {
        size_t c = fi.count - i < SFP__CHUNK ? (size_t)(fi.count - i) : SFP__CHUNK;
        if (fi.dtype == SFP_DTYPE_F32) {
            rc = dec_chunk(&s, (uint32_t *)dst + i, c, code, mant, sign);
        } else {
            rc = dec_chunk(&s, tmp, c, code, mant, sign);
            uint16_t *d = (uint16_t *)dst + i;
            for (size_t j = 0; j < c; j++)
                d[j] = (uint16_t)(tmp[j] >> 16);
        }
        RETURN_IF(rc < 0, rc);
    }
    RETURN_IF(s.nonzero != fi.nonzero || s.codes_left != 0, SFP_ECORRUPT);
    if (fi.coder == SFP_CODER_GECKO)
        RETURN_IF(s.gecko.br.err, SFP_ECORRUPT);
    if (out_n)
        *out_n = (size_t)fi.count;
    return SFP_OK;
}
