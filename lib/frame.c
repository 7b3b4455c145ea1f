/*
 * frame.c - frame encoder, header parser and decoder (docs/FORMAT.md).
 *
 * Layout: header (64 bytes) | sign plane | mantissa plane | zero map |
 * exponent plane | XXH3-64 trailer (8 bytes). The two variable-size planes
 * come last so that the fixed-size ones sit at offsets known from the header
 * alone.
 */
#include <stddef.h>
#include <xxhash.h>

#include "config.h"
#include "internal.h"

/* a chunk holds whole pairs of 64-value blocks: a block's parity in a chunk
 * is its parity in the tensor (the zero map's two streams) */
_Static_assert(SFP__CHUNK % 128 == 0, "SFP__CHUNK: whole block pairs");

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

/* Largest exponent plane of s codes; lay: Gecko's group size, rANS's
 * states. */
static uint64_t exp_max(uint64_t s, unsigned ebits, sfp_coder coder, unsigned lay)
{
    switch (coder) {
    case SFP_CODER_GECKO:
        return gecko_exp_max(s, ebits, lay);
    case SFP_CODER_RANS:
        return sfp__rans_bound(s, ebits, lay);
    default:
        return ceil8(s * ebits);
    }
}

static uint64_t zmap_l1(uint64_t n)
{
    return ceil8((n + 63) / 64);
}

/* Masks (of 8 values) of a Huffman-coded zero map in two streams: those of
 * the even 64-value blocks (*ma) and of the odd ones (*mb). */
static void zh2_masks(uint64_t n, uint64_t *ma, uint64_t *mb)
{
    const uint64_t whole = n / 64, rest = (n % 64 + 7) / 8;
    *ma = 8 * ((whole + 1) / 2) + (whole % 2 == 0 ? rest : 0);
    *mb = 8 * (whole / 2) + (whole % 2 ? rest : 0);
}

static unsigned group_of(const sfp_params *p)
{
    return p->gecko_group ? p->gecko_group : SFP_GECKO_GROUP_DEFAULT;
}

/* rANS states of a parsed frame (gecko_group reports 0 for two). */
static unsigned rans_states_of(const sfp_frame_info *fi)
{
    return fi->gecko_group ? fi->gecko_group : 2;
}

/* SFP_CODER_AUTO: the Gecko and the rANS request of the same params. */
static void auto_pair(const sfp_params *p, sfp_params *g, sfp_params *r)
{
    *g = *p;
    *r = *p;
    g->coder = SFP_CODER_GECKO;
    r->coder = SFP_CODER_RANS;
}

size_t sfp_frame_bound(size_t n, const sfp_params *p)
{
    if (sfp_params_check(p) < 0 || (uint64_t)n > SFP_FRAME_MAX_COUNT)
        return 0;
    if (p->coder == SFP_CODER_AUTO) {
        /* the Gecko frame, then the rANS attempt behind it */
        sfp_params g, r;
        auto_pair(p, &g, &r);
        size_t bg = sfp_frame_bound(n, &g), br = sfp_frame_bound(n, &r);
        if (!bg || !br || bg > SIZE_MAX - br)
            return 0;
        return bg + br;
    }
    uint64_t nn = n;
    uint64_t b = SFP_FRAME_HEADER_SIZE + SFP_FRAME_TRAILER_SIZE;
    b += ceil8(nn);                          /* signs                 */
    b += ceil8(nn * p->mbits);               /* mantissas             */
    b += zmap_l1(nn) + 8 * ((nn + 63) / 64); /* zero map              */
    b += exp_max(nn, p->ebits, p->coder,
                 p->coder == SFP_CODER_RANS ? sfp__rans_states(nn) : group_of(p));
    if (p->coder == SFP_CODER_RANS)
        b += nn; /* the code sequence is gathered before it is coded */
    else if (p->zmap == SFP_ZMAP_HUFFMAN)
        b += zmap_l1(nn) + 8 * ((nn + 63) / 64); /* the coded map's scratch */
    if (b > SIZE_MAX)
        return 0;
    return (size_t)b;
}

/* ---------------------------------------------------------- encoder */

/*
 * count[c] += occurrences of code c among n codes of e bits. Four tables,
 * so that runs of one code do not wait on one counter; codes of at most 4
 * bits are counted in pairs (one increment per two codes: the histogram
 * took 3 % of a resnet step), the pairs then split into their codes.
 */
static void count_codes(const uint8_t *codes, uint64_t n, unsigned e, uint64_t count[256])
{
    uint32_t c4[4][256];
    uint64_t h = 0;
    memset(c4, 0, sizeof(c4));
    while (h < n) {
        /* at most 2^30 codes per round: the uint32_t counters cannot wrap */
        const uint64_t stop = n - h > (1u << 30) ? h + (1u << 30) : n;
        const int pairs = e <= 4;
        if (pairs) {
            for (; h + 8 <= stop; h += 8) {
                c4[0][codes[h] | codes[h + 1] << 4]++;
                c4[1][codes[h + 2] | codes[h + 3] << 4]++;
                c4[2][codes[h + 4] | codes[h + 5] << 4]++;
                c4[3][codes[h + 6] | codes[h + 7] << 4]++;
            }
        } else {
            for (; h + 4 <= stop; h += 4) {
                c4[0][codes[h]]++;
                c4[1][codes[h + 1]]++;
                c4[2][codes[h + 2]]++;
                c4[3][codes[h + 3]]++;
            }
        }
        for (unsigned c = 0; c < 256; c++) {
            const uint64_t t = (uint64_t)c4[0][c] + c4[1][c] + c4[2][c] + c4[3][c];
            if (pairs) {
                count[c & 15] += t;
                count[c >> 4] += t;
            } else {
                count[c] += t;
            }
            c4[0][c] = c4[1][c] = c4[2][c] = c4[3][c] = 0;
        }
        for (; h < stop; h++)
            count[codes[h]]++;
    }
}

/*
 * The rANS request: the gathered code sequence (s->rscratch, one code per
 * value, 0 for zeros) becomes the smallest valid layout among a rANS plane,
 * plain codes, and plain codes of the non-zero values behind a zero map;
 * rANS only when strictly smaller and within SFP_FRAME_MAX_DENSITY. Writes
 * at p (emax bytes before the scratch): the zero map (if chosen) and the
 * exponent plane. Returns the end of the zero map (p when there is none),
 * sets *coder, *ebeg (start of the exponent plane) and s->wexp.p (its end).
 */
static uint8_t *rans_or_smaller(sfp__codec *s, uint8_t *p, uint64_t emax,
                                uint64_t n, uint64_t nonzero, uint64_t fixed,
                                unsigned nst, sfp_coder *coder, uint8_t **ebeg)
{
    const unsigned e = s->ebits;
    const uint8_t *codes = s->rscratch;
    uint64_t count[256] = {0};
    sfp__rans_table rt;
    const sfp__kernels *kt = sfp__kernels_get();
    uint64_t words = UINT64_MAX; /* blocks of 64 codes with a non-zero one */
    if (!kt->count_codes || !kt->count_codes(codes, s->rn, e, count, &words))
        count_codes(codes, s->rn, e, count);
    if (s->rn != n)
        words = UINT64_MAX;
    sfp__rans_build(&rt, count, 1u << e);
    const uint64_t rb = sfp__rans_encode(&rt, codes, s->rn, p, emax, nst);
    const uint64_t plain = ceil8(n * e);
    uint64_t best = plain;
    int pick = 0; /* 0 plain, 1 plain + zero map, 2 rANS */
    const uint64_t l1 = zmap_l1(n);
    if (nonzero < n && l1 + ceil8(nonzero * e) < plain) {
        if (words == UINT64_MAX) {
            words = 0;
            for (uint64_t b = 0; b < n; b += 64) {
                uint64_t m = n - b < 64 ? n - b : 64, any = 0;
                for (uint64_t j = 0; j < m; j++)
                    any |= codes[b + j];
                words += any != 0;
            }
        }
        uint64_t zb = l1 + 8 * words + ceil8(nonzero * e);
        if (zb < best)
            best = zb, pick = 1;
    }
    if (rb < best && n <= (uint64_t)SFP_FRAME_MAX_DENSITY * (fixed + rb))
        pick = 2;
    *coder = pick == 2 ? SFP_CODER_RANS : SFP_CODER_PLAIN;
    *ebeg = p;
    if (pick == 2) {
        s->wexp.p = p + rb;
        return p;
    }
    uint8_t *zl2 = p;
    if (pick == 1) {
        /* level 1, then one word per block holding a non-zero value */
        memset(p, 0, l1);
        zl2 = p + l1;
        for (uint64_t b = 0; b < n; b += 64) {
            uint64_t m = n - b < 64 ? n - b : 64, w = 0;
            for (uint64_t j = 0; j < m; j++)
                w |= (uint64_t)(codes[b + j] != 0) << j;
            if (w) {
                p[b / 512] |= (uint8_t)(1u << ((b / 64) & 7));
                sfp__store64le(zl2, w);
                zl2 += 8;
            }
        }
        *ebeg = zl2;
    }
    sfp__bw_init(&s->wexp, *ebeg);
    for (uint64_t i = 0; i < s->rn; i++)
        if (pick == 0 || codes[i])
            sfp__bw_put(&s->wexp, codes[i], e);
    sfp__bw_flush(&s->wexp);
    return zl2;
}

int sfp_encode(const void *src, size_t n, const sfp_params *p, void *dst,
               size_t cap, size_t *out_len, sfp_qstats *stats)
{
    return sfp_encode_q(src, n, p, dst, cap, out_len, stats, NULL);
}

/* Whether a zero map pays for zeros of n values: the exponent codes it
 * saves outweigh its ~1 bit per value (and a little more). */
static int zmap_pays(uint64_t zeros, uint64_t n, unsigned ebits)
{
    return zeros > 0 && zeros * ebits * 64 > n * 65;
}

/*
 * One encode. zmap: 1 a zero map, 0 none, -1 decided here on the zeros the
 * frame is expected to have; *zeros: the zeros of the frame (after the
 * window's flush); *zmapped: it has a zero map.
 */
static int encode_once(const void *src, size_t n, const sfp_params *p, void *dst,
                       size_t cap, size_t *out_len, sfp_qstats *stats, void *qout,
                       int zmap, uint64_t *zeros, int *zmapped)
{
    sfp__plan pl;
    sfp__codec s;
    int rc;

    RETURN_IF((rc = sfp_params_check(p)) < 0, rc);
    RETURN_IF(dst == NULL || out_len == NULL || (n > 0 && src == NULL), SFP_EINVAL);
    RETURN_IF((uint64_t)n > SFP_FRAME_MAX_COUNT, SFP_EOVERFLOW);
    RETURN_IF((rc = sfp__plan_scan(&pl, p, src, n)) < 0, rc);

    memset(&s, 0, offsetof(sfp__codec, cbuf));
    s.pl = &pl;
    s.coder = p->coder;
    s.G = group_of(p);
    s.k = p->mbits;
    s.ebits = p->ebits;
    s.shift = 23u - p->mbits;
    s.lo = pl.lo;
    s.prev_base = (1u << p->ebits) - 1;

    /* Zero map when the zeros it saves outweigh its ~1 bit per value (rANS
     * codes zeros at their entropy: never). Pass 1 knows the input's zeros;
     * when the window flushes some values (pass 1's smallest E below it),
     * the values below the flush limit are counted (a sample of large
     * tensors). The caller encodes again if pass 2's exact count disagrees,
     * so the frame is always the one its zeros call for. */
    if (zmap < 0) {
        zmap = 0;
        if (p->coder != SFP_CODER_RANS) {
            uint64_t z = pl.zeros;
            if (!zmap_pays(z, n, p->ebits) && pl.lowE < pl.minE &&
                pl.r.mode != SFP_ROUND_STOCHASTIC)
                z = sfp__plan_zeros_est(&pl, src, n, p->dtype);
            zmap = zmap_pays(z, n, p->ebits);
        }
    }
    unsigned flags = zmap ? SFP_FLAG_ZMAP : 0;
    if (pl.negzero > 0)
        flags |= SFP_FLAG_ZSIGN | SFP_FLAG_SIGN;
    else if (pl.negative > 0)
        flags |= SFP_FLAG_SIGN;
    s.zmap = (flags & SFP_FLAG_ZMAP) != 0;
    s.hsign = (flags & SFP_FLAG_SIGN) != 0;
    s.zsign = (flags & SFP_FLAG_ZSIGN) != 0;

    /* Planes are written at offsets computed from the upper bound of the
     * non-zero count, then moved down (a no-op when the scan was exact). */
    const uint64_t nn = n;
    const uint64_t nz_ub = pl.nonzero;
    const uint64_t sign_cap = s.hsign ? ceil8(s.zsign ? nn : nz_ub) : 0;
    const uint64_t mant_cap = ceil8(nz_ub * p->mbits);
    const uint64_t l1 = s.zmap ? zmap_l1(nn) : 0;
    const uint64_t zmap_cap = s.zmap ? l1 + 8 * ((nn + 63) / 64) : 0;
    /* rANS codes every value (no zero map): its states follow from n */
    const unsigned rst = sfp__rans_states(nn);
    const uint64_t emax = exp_max(s.zmap ? nz_ub : nn, p->ebits, p->coder,
                                  p->coder == SFP_CODER_RANS ? rst : s.G);
    const uint64_t off_sign = SFP_FRAME_HEADER_SIZE;
    const uint64_t off_mantw = off_sign + sign_cap;
    const uint64_t off_zmapw = off_mantw + mant_cap;
    const uint64_t off_expw = off_zmapw + zmap_cap;
    const uint64_t scratch = p->coder == SFP_CODER_RANS ? (s.zmap ? nz_ub : nn) : 0;
    /* Huffman-coded zero map: written to scratch, kept when smaller */
    const int zhuf = s.zmap && p->zmap == SFP_ZMAP_HUFFMAN && p->coder != SFP_CODER_RANS;
    const uint64_t zscratch = zhuf ? zmap_cap : 0;
    RETURN_IF(off_expw + emax + scratch + zscratch + SFP_FRAME_TRAILER_SIZE > cap,
              SFP_ENOSPC);

    uint8_t *out = dst;
    uint8_t *zl1 = out + off_zmapw, *zl2 = out + off_zmapw + l1;
    sfp__bw_init(&s.wsign, out + off_sign);
    sfp__bw_init(&s.wmant, out + off_mantw);
    sfp__bw_init(&s.wexp, out + off_expw);
    s.rscratch = out + off_expw + emax;
    memset(zl1, 0, l1);

    const sfp__kernels *kt = sfp__kernels_get();
    uint64_t zw[SFP__CHUNK / 64];
    uint32_t tmp[SFP__CHUNK];
    uint64_t zcnt[2][2][256]; /* per stream: even and odd blocks */
    unsigned zprev = 0;
    if (zhuf)
        memset(zcnt, 0, sizeof(zcnt));
    for (size_t i = 0; i < n; i += SFP__CHUNK) {
        size_t c = n - i < SFP__CHUNK ? n - i : SFP__CHUNK;
        const uint32_t *x;
        if (p->dtype == SFP_DTYPE_F32) {
            x = (const uint32_t *)src + i;
        } else {
            sfp__widen_bf16(tmp, (const uint16_t *)src + i, c);
            x = tmp;
        }
        s.qout = qout && p->dtype == SFP_DTYPE_F32 ? (uint32_t *)qout + i : NULL;
        s.qdone = 0;
        kt->enc_values(&s, x, c, i, zw);
        if (qout) {
            /* the chunk is still in cache: quantize it for the caller too
             * (what the kernel has not written while encoding) */
            if (p->dtype == SFP_DTYPE_F32) {
                kt->quantize((uint32_t *)qout + i + s.qdone, x + s.qdone, c - s.qdone, &pl,
                             i + s.qdone);
            } else {
                uint32_t q[SFP__CHUNK];
                uint16_t *d = (uint16_t *)qout + i;
                kt->quantize(q, x, c, &pl, i);
                for (size_t j = 0; j < c; j++)
                    d[j] = (uint16_t)(q[j] >> 16);
            }
        }
        kt->enc_codes(&s, i + c == n);
        if (s.zmap) {
            for (size_t b = 0; b < (c + 63) / 64; b++) {
                uint64_t blk = i / 64 + b;
                if (zw[b]) {
                    zl1[blk >> 3] |= (uint8_t)(1u << (blk & 7));
                    sfp__store64le(zl2, zw[b]);
                    zl2 += 8;
                }
            }
            if (zhuf)
                for (size_t b = 0; b < (c + 63) / 64; b++) {
                    size_t m = c - b * 64 < 64 ? c - b * 64 : 64;
                    unsigned t = (unsigned)b & 1; /* SFP__CHUNK is whole block pairs */
                    sfp__zh_count(zcnt[t], zw[b], (unsigned)(m + 7) / 8, &zprev);
                }
        }
    }
    if (zhuf) {
        /* The masks again, from the bitmap just written, as Huffman codes
         * into the scratch after the planes, in two streams (the even and
         * the odd blocks: FORMAT 2.4.1); kept if smaller. */
        sfp__zh_enc ze;
        uint64_t sum[2][256], sbits[2] = {0, 0};
        for (unsigned x = 0; x < 2; x++)
            for (unsigned m = 0; m < 256; m++)
                sum[x][m] = zcnt[0][x][m] + zcnt[1][x][m];
        sfp__zh_build(&ze, (const uint64_t(*)[256])sum);
        for (unsigned t = 0; t < 2; t++)
            for (unsigned x = 0; x < 2; x++)
                for (unsigned m = 0; m < 256; m++)
                    sbits[t] += zcnt[t][x][m] * ze.len[x][m];
        const uint64_t zbytes = SFP__ZH_TABLE_BYTES + 8 + ceil8(sbits[0]) + ceil8(sbits[1]);
        /* 16 bytes of room in the scratch: the streams are written with a
         * gap of 8 between them (a writer stores 8 bytes at a time) */
        if (zbytes + 16 <= (uint64_t)(zl2 - zl1)) {
            uint8_t *zs = out + off_expw + emax + scratch, *at = zs + SFP__ZH_TABLE_BYTES + 8;
            const uint64_t nblk = (nn + 63) / 64, la = ceil8(sbits[0]);
            const uint8_t *l2 = zl1 + l1;
            sfp__bw wa, wb;
            unsigned prev = 0;
            sfp__zh_write_table(zs, &ze);
            sfp__store64le(zs + SFP__ZH_TABLE_BYTES, la);
            sfp__bw_init(&wa, at);
            sfp__bw_init(&wb, at + la + 8);
            /* the blocks in order, each into its stream (a mask's context
             * is the mask before it, in either stream) */
            for (uint64_t blk = 0; blk < nblk; blk++) {
                uint64_t w = 0, m = nn - blk * 64 < 64 ? nn - blk * 64 : 64;
                if (zl1[blk >> 3] >> (blk & 7) & 1) {
                    w = sfp__load64le(l2);
                    l2 += 8;
                }
                if (blk & 1)
                    sfp__zh_put(&wb, &ze, w, (unsigned)(m + 7) / 8, &prev);
                else
                    sfp__zh_put(&wa, &ze, w, (unsigned)(m + 7) / 8, &prev);
            }
            const uint8_t *ea = sfp__bw_flush(&wa), *eb = sfp__bw_flush(&wb);
            if ((uint64_t)(ea - at) != la || (uint64_t)(eb - at) != la + 8 + ceil8(sbits[1]))
                return SFP_EINVAL; /* cannot happen: the counts gave each stream's bits */
            memmove(at + la, at + la + 8, ceil8(sbits[1]));
            memcpy(zl1, zs, zbytes);
            zl2 = zl1 + zbytes;
            flags |= SFP_FLAG_ZHUF | SFP_FLAG_ZH2;
        }
    }
    if (s.nonzero > nz_ub)
        return SFP_EINVAL; /* cannot happen: pass 1 and 2 disagree */

    /* Exact counts from pass 2. */
    pl.flushed = nz_ub - s.nonzero;
    pl.nonzero = s.nonzero;
    pl.zeros = nn - s.nonzero;
    pl.negative = s.negative;
    if (s.hsign && !s.zsign && s.negative == 0) {
        /* every negative value was flushed: no sign plane after all */
        flags &= ~SFP_FLAG_SIGN;
        s.hsign = 0;
    }

    sfp__bw_flush(&s.wsign);
    sfp__bw_flush(&s.wmant);
    sfp_coder coder = p->coder;
    uint8_t *ebeg = out + off_expw, *eend;
    if (coder == SFP_CODER_RANS) {
        const uint64_t sign_bytes = s.hsign ? ceil8(s.zsign ? nn : pl.nonzero) : 0;
        zl2 = rans_or_smaller(&s, out + off_expw, emax, nn, pl.nonzero,
                              sign_bytes + ceil8(pl.nonzero * p->mbits), rst, &coder, &ebeg);
        if (zl2 != zl1) {
            flags |= SFP_FLAG_ZMAP;
            s.zmap = 1;
        }
        eend = s.wexp.p;
    } else {
        eend = sfp__bw_flush(&s.wexp);
    }
    const uint64_t sign_bytes = s.hsign ? ceil8(s.zsign ? nn : pl.nonzero) : 0;
    const uint64_t mant_bytes = ceil8(pl.nonzero * p->mbits);
    const uint64_t zmap_bytes = (uint64_t)(zl2 - zl1);
    const uint64_t exp_bytes = (uint64_t)(eend - ebeg);
    const uint64_t off_mant = off_sign + sign_bytes;
    const uint64_t off_zmap = off_mant + mant_bytes;
    const uint64_t off_exp = off_zmap + zmap_bytes;
    if (off_mant != off_mantw)
        memmove(out + off_mant, out + off_mantw, mant_bytes);
    if (off_zmap != off_zmapw)
        memmove(out + off_zmap, out + off_zmapw, zmap_bytes);
    if (out + off_exp != ebeg)
        memmove(out + off_exp, ebeg, exp_bytes);

    uint8_t *h = out;
    memset(h, 0, SFP_FRAME_HEADER_SIZE);
    memcpy(h, sfp__magic, 4);
    h[4] = SFP_FRAME_VERSION;
    h[5] = (uint8_t)p->dtype;
    h[6] = (uint8_t)p->mbits;
    h[7] = (uint8_t)p->ebits;
    h[8] = (uint8_t)pl.anchor;
    h[9] = (uint8_t)coder;
    h[10] = (uint8_t)(coder == SFP_CODER_GECKO ? glog2_of(s.G)
                      : coder == SFP_CODER_RANS && rst == SFP__RANS_WIDE ? SFP__RANS_WIDE : 0);
    h[11] = (uint8_t)flags;
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
    *zeros = pl.zeros;
    *zmapped = (flags & SFP_FLAG_ZMAP) != 0;
    return SFP_OK;
}

/*
 * SFP_CODER_AUTO: a Gecko frame at dst, then the rANS request right behind
 * it (from src again, or from qout == src already on the grid: quantizing
 * grid values is the identity in every rounding mode), and the smaller one
 * moved to dst. The two frames hold the same values.
 */
static int encode_auto(const void *src, size_t n, const sfp_params *p, void *dst,
                       size_t cap, size_t *out_len, sfp_qstats *stats, void *qout)
{
    sfp_params g, r;
    size_t lg = 0, lr = 0;
    int rc;

    auto_pair(p, &g, &r);
    RETURN_IF((rc = sfp_params_check(p)) < 0, rc);
    RETURN_IF(dst == NULL || out_len == NULL, SFP_EINVAL);
    const size_t bound = sfp_frame_bound(n, p);
    RETURN_IF(bound == 0, SFP_EOVERFLOW);
    RETURN_IF(cap < bound, SFP_ENOSPC);
    RETURN_IF((rc = sfp_encode_q(src, n, &g, dst, cap, &lg, stats, qout)) < 0, rc);
    uint8_t *tail = (uint8_t *)dst + lg;
    RETURN_IF((rc = sfp_encode_q(src, n, &r, tail, cap - lg, &lr, NULL, NULL)) < 0, rc);
    if (lr < lg) {
        memmove(dst, tail, lr);
        lg = lr;
    }
    *out_len = lg;
    return SFP_OK;
}

int sfp_encode_q(const void *src, size_t n, const sfp_params *p, void *dst,
                 size_t cap, size_t *out_len, sfp_qstats *stats, void *qout)
{
    if (p != NULL && p->coder == SFP_CODER_AUTO)
        return encode_auto(src, n, p, dst, cap, out_len, stats, qout);
    sfp_qstats st;
    uint64_t zeros = 0;
    size_t len = 0;
    int zmapped = 0;
    int rc = encode_once(src, n, p, dst, cap, &len, &st, qout, -1, &zeros, &zmapped);
    RETURN_IF(rc < 0, rc);
    /* The zero map was decided before pass 2 counted the frame's zeros
     * (exactly when nothing is flushed or the tensor is small; from a
     * sample, or under stochastic rounding from the input's zeros alone,
     * otherwise). When pass 2 disagrees, encode again with the other
     * choice: the frame the same values give once on their grid. With
     * qout == src those values are now in src. */
    const int want = p->coder != SFP_CODER_RANS && zmap_pays(zeros, n, p->ebits);
    if (want != zmapped) {
        uint64_t z2 = 0;
        rc = encode_once(src, n, p, dst, cap, &len, NULL, NULL, want, &z2, &zmapped);
        RETURN_IF(rc < 0, rc);
    }
    *out_len = len;
    if (stats)
        *stats = st;
    return SFP_OK;
}

/* ----------------------------------------------------------- parser */

int sfp_frame_parse_header(const void *frame, size_t len, sfp_frame_info *info)
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
    RETURN_IF(fi.flags & ~(SFP_FLAG_SIGN | SFP_FLAG_ZSIGN | SFP_FLAG_ZMAP | SFP_FLAG_ZHUF |
                           SFP_FLAG_ZH2),
              SFP_EHEADER);
    RETURN_IF((fi.flags & SFP_FLAG_ZSIGN) && !(fi.flags & SFP_FLAG_SIGN), SFP_EHEADER);
    RETURN_IF((fi.flags & SFP_FLAG_ZHUF) && !(fi.flags & SFP_FLAG_ZMAP), SFP_EHEADER);
    RETURN_IF((fi.flags & SFP_FLAG_ZH2) && !(fi.flags & SFP_FLAG_ZHUF), SFP_EHEADER);
    /* rANS codes zeros as a symbol: a zero map with it is not a layout */
    RETURN_IF(fi.coder == SFP_CODER_RANS && (fi.flags & SFP_FLAG_ZMAP), SFP_EHEADER);
    if (fi.coder == SFP_CODER_PLAIN) {
        RETURN_IF(h[10] != 0, SFP_EHEADER);
    } else if (fi.coder == SFP_CODER_RANS) {
        /* interleaved states: 0 means two, 32 thirty-two */
        RETURN_IF(h[10] != 0 && h[10] != SFP__RANS_WIDE, SFP_EHEADER);
        fi.gecko_group = h[10]; /* reported as such: 0 (two states) or 32 */
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
    if (fi.flags & SFP_FLAG_ZH2) {
        /* the tables, the first stream's bytes, then in each stream 1 to
         * 12 bits per mask of 8 values */
        uint64_t ma, mb;
        zh2_masks(fi.count, &ma, &mb);
        RETURN_IF(fi.zmap_bytes < SFP__ZH_TABLE_BYTES + 8 + ceil8(ma) + ceil8(mb), SFP_EHEADER);
        RETURN_IF(fi.zmap_bytes > SFP__ZH_TABLE_BYTES + 8 + ceil8(ma * SFP__ZH_MAXLEN) +
                                      ceil8(mb * SFP__ZH_MAXLEN),
                  SFP_EHEADER);
    } else if (fi.flags & SFP_FLAG_ZHUF) {
        /* the tables, then 1 to 12 bits per mask of 8 values */
        uint64_t masks = (fi.count + 7) / 8;
        RETURN_IF(fi.zmap_bytes < SFP__ZH_TABLE_BYTES + ceil8(masks), SFP_EHEADER);
        RETURN_IF(fi.zmap_bytes > SFP__ZH_TABLE_BYTES + ceil8(masks * SFP__ZH_MAXLEN),
                  SFP_EHEADER);
    } else if (zmap) {
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
        RETURN_IF(fi.exp_bytes > exp_max(ncodes, fi.ebits, fi.coder,
                                         fi.coder == SFP_CODER_RANS ? rans_states_of(&fi)
                                                                    : fi.gecko_group),
                  SFP_EHEADER);
    if (fi.coder == SFP_CODER_GECKO) {
        /* every group costs at least its flag and width bits */
        uint64_t groups = (ncodes + fi.gecko_group - 1) / fi.gecko_group;
        RETURN_IF(fi.exp_bytes < ceil8(groups * (1 + sfp__gecko_wbits(fi.ebits))),
                  SFP_EHEADER);
    }

    /* All four sizes are < 2^44 now, so the sums cannot overflow. */
    const uint64_t payload = fi.sign_bytes + fi.mant_bytes + fi.zmap_bytes + fi.exp_bytes;
    /* The count is bounded by the payload (a rANS plane of one symbol
     * costs nothing per value): what a decoder allocates from the header
     * stays a bounded multiple of the frame's size. */
    RETURN_IF(fi.count > (uint64_t)SFP_FRAME_MAX_DENSITY * payload, SFP_EHEADER);
    fi.frame_bytes = SFP_FRAME_HEADER_SIZE + payload + SFP_FRAME_TRAILER_SIZE;
    *info = fi;
    return SFP_OK;
}

int sfp_frame_parse(const void *frame, size_t len, sfp_frame_info *info)
{
    sfp_frame_info fi;
    int rc = sfp_frame_parse_header(frame, len, &fi);
    RETURN_IF(rc < 0, rc);
    RETURN_IF(fi.frame_bytes > len, SFP_ETRUNC);
    fi.checksum = sfp__load64le((const uint8_t *)frame + fi.frame_bytes - SFP_FRAME_TRAILER_SIZE);
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

/* A plane of `bytes` bytes that was read up to bit `bits`: nothing after
 * the last byte read, and the padding bits of that byte are 0. */
static int plane_exact(const uint8_t *p, uint64_t bytes, uint64_t bits)
{
    if (ceil8(bits) != bytes)
        return 0;
    return (bits & 7) == 0 || (p[bytes - 1] >> (bits & 7)) == 0;
}

int sfp_decode(const void *frame, size_t len, void *dst, size_t cap,
               size_t *out_n)
{
    sfp_frame_info fi;
    sfp__codec s;
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

    memset(&s, 0, offsetof(sfp__codec, cbuf));
    s.k = fi.mbits;
    s.ebits = fi.ebits;
    s.shift = 23u - fi.mbits;
    s.coder = fi.coder;
    s.G = fi.coder == SFP_CODER_GECKO ? fi.gecko_group : 0;
    s.zmap = (fi.flags & SFP_FLAG_ZMAP) != 0;
    s.hsign = (fi.flags & SFP_FLAG_SIGN) != 0;
    s.zsign = (fi.flags & SFP_FLAG_ZSIGN) != 0;
    s.lo = (int)fi.anchor - (1 << fi.ebits) + 2;
    s.cmin = s.lo >= 0 ? 1u : (unsigned)(1 - s.lo);
    s.csub = s.lo <= 0 ? s.cmin : 256u;
    s.prev_base = (1u << fi.ebits) - 1;
    s.codes_left = s.zmap ? fi.nonzero : fi.count;
    sfp__br_init(&s.rsign, f + off_sign, fi.sign_bytes);
    sfp__br_init(&s.rmant, f + off_mant, fi.mant_bytes);
    sfp__br_init(&s.rexp, f + off_exp, fi.exp_bytes);

    sfp__rans_table rt;
    sfp__rans_dec rd;
    if (fi.coder == SFP_CODER_RANS && s.codes_left > 0) {
        RETURN_IF((rc = sfp__rans_dec_init(&rd, &rt, f + off_exp, fi.exp_bytes,
                                           fi.ebits, rans_states_of(&fi))) < 0, rc);
        s.rd = &rd;
        s.rt = &rt;
    } else if (fi.coder == SFP_CODER_RANS) {
        RETURN_IF(fi.exp_bytes != 0, SFP_ECORRUPT);
    }

    const uint8_t *zl1 = f + off_zmap, *zl2 = NULL;
    const uint64_t nblocks = (fi.count + 63) / 64;
    const int zhuf = (fi.flags & SFP_FLAG_ZHUF) != 0;
    sfp__zh_dec zd;
    sfp__zhread zr = {0};
    if (zhuf) {
        RETURN_IF((rc = sfp__zh_dec_init(&zd, zl1)) < 0, rc);
        zr.d = &zd;
        if (fi.flags & SFP_FLAG_ZH2) {
            /* the first stream's bytes, then the two streams */
            const uint64_t room = fi.zmap_bytes - SFP__ZH_TABLE_BYTES - 8;
            const uint64_t la = sfp__load64le(zl1 + SFP__ZH_TABLE_BYTES);
            uint64_t ma, mb;
            zh2_masks(fi.count, &ma, &mb);
            RETURN_IF(la < ceil8(ma) || la > ceil8(ma * SFP__ZH_MAXLEN) || la > room,
                      SFP_ECORRUPT);
            RETURN_IF(room - la < ceil8(mb) || room - la > ceil8(mb * SFP__ZH_MAXLEN),
                      SFP_ECORRUPT);
            sfp__br_init(&zr.r[0], zl1 + SFP__ZH_TABLE_BYTES + 8, la);
            sfp__br_init(&zr.r[1], zl1 + SFP__ZH_TABLE_BYTES + 8 + la, room - la);
            zr.two = 1;
        } else {
            sfp__br_init(&zr.r[0], zl1 + SFP__ZH_TABLE_BYTES, fi.zmap_bytes - SFP__ZH_TABLE_BYTES);
            sfp__br_init(&zr.r[1], zl1, 0);
        }
    } else if (s.zmap) {
        uint64_t l1 = zmap_l1(fi.count);
        uint64_t set = 0;
        for (uint64_t i = 0; i < l1; i++)
            set += (uint64_t)__builtin_popcount(zl1[i]);
        /* Level-1 bits past the last block must be clear. */
        if (nblocks % 8)
            RETURN_IF(zl1[l1 - 1] >> (nblocks % 8), SFP_ECORRUPT);
        RETURN_IF(set * 8 != fi.zmap_bytes - l1, SFP_ECORRUPT);
        zl2 = zl1 + l1;
    }

    const sfp__kernels *kt = sfp__kernels_get();
    /* the kernel may read the Huffman-coded masks itself, block by block */
    const int zdefer = zhuf && kt->dec_zmap && kt->dec_zmap(&s);
    if (zdefer)
        s.zh = &zr;
    uint64_t zw[SFP__CHUNK / 64];
    uint32_t tmp[SFP__CHUNK];
    for (uint64_t i = 0; i < fi.count; i += SFP__CHUNK) {
        size_t c = fi.count - i < SFP__CHUNK ? (size_t)(fi.count - i) : SFP__CHUNK;
        size_t need = c;
        if (zdefer) {
            need = 0; /* dec_codes does not use it then */
        } else if (zhuf) {
            need = 0;
            for (size_t b = 0; b < (c + 63) / 64; b++) {
                size_t m = c - b * 64 < 64 ? c - b * 64 : 64;
                uint64_t w = sfp__zh_block(&zr, i / 64 + b, (unsigned)(m + 7) / 8);
                /* bits past the tensor end are never written by an encoder */
                RETURN_IF(m < 64 && (w >> m) != 0, SFP_ECORRUPT);
                zw[b] = w;
                need += sfp__popcount64(w);
            }
            RETURN_IF(zr.bad || sfp__br_overrun(&zr.r[0]) || sfp__br_overrun(&zr.r[1]),
                      SFP_ECORRUPT);
        } else if (s.zmap) {
            need = 0;
            for (size_t b = 0; b < (c + 63) / 64; b++) {
                uint64_t blk = i / 64 + b;
                uint64_t w = 0;
                if (zl1[blk >> 3] >> (blk & 7) & 1) {
                    w = sfp__load64le(zl2);
                    zl2 += 8;
                    /* An all-zero word, or bits past the tensor end, are
                     * never written by an encoder. */
                    size_t m = c - b * 64;
                    RETURN_IF(w == 0, SFP_ECORRUPT);
                    RETURN_IF(m < 64 && (w >> m) != 0, SFP_ECORRUPT);
                }
                zw[b] = w;
                need += sfp__popcount64(w);
            }
        }
        RETURN_IF((rc = kt->dec_codes(&s, need)) < 0, rc);
        /* The SIMD decoder loads 8 or 16 codes at a time and masks what it does
         * not use; keep those bytes defined (valgrind cannot see the mask). */
        memset(s.cbuf + s.cn, 0, 16);
        uint32_t *y = fi.dtype == SFP_DTYPE_F32 ? (uint32_t *)dst + i : tmp;
        kt->dec_values(&s, y, c, zw);
        RETURN_IF(s.bad || sfp__br_overrun(&s.rsign) || sfp__br_overrun(&s.rmant),
                  SFP_ECORRUPT);
        RETURN_IF(zdefer && (zr.bad || sfp__br_overrun(&zr.r[0]) || sfp__br_overrun(&zr.r[1])),
                  SFP_ECORRUPT);
        if (fi.dtype == SFP_DTYPE_BF16) {
            uint16_t *d = (uint16_t *)dst + i;
            for (size_t j = 0; j < c; j++)
                d[j] = (uint16_t)(tmp[j] >> 16);
        }
    }
    RETURN_IF(s.nonzero != fi.nonzero || s.codes_left != 0 || s.cpos != s.cn,
              SFP_ECORRUPT);
    /* Every plane read to its last byte, padding bits zero. */
    RETURN_IF(!plane_exact(f + off_sign, fi.sign_bytes, s.rsign.pos) ||
                  !plane_exact(f + off_mant, fi.mant_bytes, s.rmant.pos),
              SFP_ECORRUPT);
    if (fi.coder != SFP_CODER_RANS)
        RETURN_IF(!plane_exact(f + off_exp, fi.exp_bytes, s.rexp.pos), SFP_ECORRUPT);
    if (zhuf)
        for (int t = 0; t < 2; t++)
            RETURN_IF(!plane_exact(zr.r[t].p, zr.r[t].len, zr.r[t].pos), SFP_ECORRUPT);
    if (s.rd)
        RETURN_IF((rc = sfp__rans_dec_finish(s.rd)) < 0, rc);
    if (out_n)
        *out_n = (size_t)fi.count;
    return SFP_OK;
}
