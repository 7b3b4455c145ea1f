/*
 * fuzz_roundtrip.c - libFuzzer target: encode -> decode must give back
 * exactly what sfp_quantize produces.
 *
 * Input layout: 12 parameter bytes, then the raw little-endian values.
 *   [0] dtype (bit 0), rounding (bits 2-3), anchor mode (bit 4)
 *   [1] k (mod 24, or mod 8 for bf16)   [2] e (1 + byte % 8)
 *   [3] Gecko group (8 << bits 0-1), coder (bits 4-5 mod 3: plain, Gecko,
 *       rANS)                           [4] fixed anchor (when bit 4 of [0])
 *   [5..11] stochastic seed bytes
 * NaN/Inf inputs must make both sfp_quantize and sfp_encode fail with
 * SFP_ENONFINITE. Every mismatch abort()s.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfp/sfp.h"
#include "impl_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 12
#define MAX_VALUES 65536

/* A failed property prints where it failed, then aborts (a finding). */
#define must(cond)                                                             \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

static int set_impl_ok(sfp_impl impl)
{
    return sfp_set_impl(impl) == SFP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sfp_params p;
    sfp_qstats qs, es;
    uint8_t *src = NULL, *q = NULL, *frame = NULL, *frame2 = NULL, *out = NULL;

    if (size < HDR)
        return 0;
    sfp_params_default(&p);
    p.dtype = (data[0] & 1) ? SFP_DTYPE_BF16 : SFP_DTYPE_F32;
    p.coder = (sfp_coder)(((data[3] >> 4) & 3) % 3);
    p.rounding = (sfp_rounding)((data[0] >> 2) & 3);
    if (p.rounding > SFP_ROUND_STOCHASTIC)
        p.rounding = SFP_ROUND_RNE;
    p.mbits = data[1] % (p.dtype == SFP_DTYPE_F32 ? 24u : 8u);
    p.ebits = 1u + data[2] % 8u;
    p.gecko_group = 8u << (data[3] % 4u);
    p.anchor = (data[0] & 16) ? data[4] % 255 : -1;
    p.zmap = (data[0] >> 5) & 1;
    p.seed = 0;
    for (unsigned i = 5; i < HDR; i++)
        p.seed = p.seed << 8 | data[i];
    if (sfp_params_check(&p) != SFP_OK) {
        /* The one invalid combination the layout can express: a fixed
         * anchor of 0 with k = 0 has no non-zero grid value (found by this
         * target). Everything must refuse it. */
        must(p.anchor == 0 && p.mbits == 0);
        uint32_t one = 0x3f800000u, out1;
        size_t flen1 = 0;
        uint8_t fbuf[128];
        must(sfp_quantize(&out1, &one, 1, &p, NULL) == SFP_EINVAL);
        must(sfp_encode(&one, 1, &p, fbuf, sizeof(fbuf), &flen1, NULL) == SFP_EINVAL);
        must(sfp_frame_bound(1, &p) == 0);
        return 0;
    }

    const size_t esz = sfp_dtype_size(p.dtype);
    size_t n = (size - HDR) / esz;
    if (n > MAX_VALUES)
        n = MAX_VALUES;
    const size_t nbytes = n * esz;
    src = malloc(nbytes + 1);
    q = malloc(nbytes + 1);
    out = malloc(nbytes + 1);
    size_t bound = sfp_frame_bound(n, &p);
    must(bound >= SFP_FRAME_HEADER_SIZE + SFP_FRAME_TRAILER_SIZE);
    frame = malloc(bound);
    frame2 = malloc(bound);
    if (!src || !q || !out || !frame || !frame2)
        goto done;
    memcpy(src, data + HDR, nbytes);

    int qrc = sfp_quantize(q, src, n, &p, &qs);
    size_t flen = (size_t)-1;
    int erc = sfp_encode(src, n, &p, frame, bound, &flen, &es);
    if (qrc == SFP_ENONFINITE) {
        must(erc == SFP_ENONFINITE);
        must(flen == (size_t)-1);
        goto done;
    }
    must(qrc == SFP_OK);
    must(erc == SFP_OK);
    must(flen <= bound);
    must(qs.count == es.count && qs.zeros == es.zeros);
    must(qs.flushed == es.flushed && qs.saturated == es.saturated);
    must(qs.negative == es.negative && qs.anchor == es.anchor);

    /* Header says what we asked for. */
    sfp_frame_info fi;
    must(sfp_frame_verify(frame, flen, &fi) == SFP_OK);
    must(fi.frame_bytes == flen);
    must(fi.dtype == p.dtype && fi.mbits == p.mbits && fi.ebits == p.ebits);
    /* rANS falls back to plain when that is not larger. */
    must(fi.coder == p.coder ||
         (p.coder == SFP_CODER_RANS && fi.coder == SFP_CODER_PLAIN));
    must(fi.count == n);
    must((int)fi.anchor == qs.anchor);
    must(fi.nonzero == n - qs.zeros);
    if (fi.coder == SFP_CODER_GECKO)
        must(fi.gecko_group == p.gecko_group);
    /* a Huffman zero map only when asked for, and never larger than the
     * bitmap (frame2 is free until the re-encode below) */
    must(!(fi.flags & SFP_FLAG_ZHUF) || p.zmap == SFP_ZMAP_HUFFMAN);
    if (p.zmap == SFP_ZMAP_HUFFMAN) {
        sfp_params pb = p;
        size_t fb = 0;
        pb.zmap = SFP_ZMAP_BITMAP;
        must(sfp_encode(src, n, &pb, frame2, bound, &fb, NULL) == SFP_OK);
        must(flen <= fb);
    }

    /* Decode is bit-exact against the quantizer. */
    size_t dn = (size_t)-1;
    must(sfp_decode(frame, flen, out, nbytes, &dn) == SFP_OK);
    must(dn == n);
    must(memcmp(out, q, nbytes) == 0);

    /* A frame one byte short is refused, and so is a one-byte-short cap. */
    must(sfp_decode(frame, flen - 1, out, nbytes, NULL) == SFP_ETRUNC);
    if (nbytes)
        must(sfp_decode(frame, flen, out, nbytes - 1, NULL) == SFP_ENOSPC);

    /* Values on the grid encode exactly: re-encoding the decoded tensor gives
     * the same values again. */
    size_t flen2 = 0;
    must(sfp_encode(q, n, &p, frame2, bound, &flen2, NULL) == SFP_OK);
    must(sfp_decode(frame2, flen2, out, nbytes, NULL) == SFP_OK);
    must(memcmp(out, q, nbytes) == 0);

    /* The C reference and the SIMD kernels write identical frames. */
    sfp_impl was = sfp_get_impl();
    if (set_impl_ok(SFP_IMPL_C)) {
        must(sfp_encode(src, n, &p, frame2, bound, &flen2, NULL) == SFP_OK);
        must(flen2 == flen && memcmp(frame2, frame, flen) == 0);
        must(sfp_decode(frame, flen, out, nbytes, NULL) == SFP_OK);
        must(memcmp(out, q, nbytes) == 0);
    }
    if (set_impl_ok(SFP_IMPL_AVX2)) {
        must(sfp_encode(src, n, &p, frame2, bound, &flen2, NULL) == SFP_OK);
        must(flen2 == flen && memcmp(frame2, frame, flen) == 0);
        must(sfp_decode(frame, flen, out, nbytes, NULL) == SFP_OK);
        must(memcmp(out, q, nbytes) == 0);
    }
    sfp_set_impl(was);

done:
    free(src);
    free(q);
    free(out);
    free(frame);
    free(frame2);
    return 0;
}
