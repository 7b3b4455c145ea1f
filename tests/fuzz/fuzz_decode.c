/*
 * fuzz_decode.c - libFuzzer target for the frame parser and decoder.
 *
 * Arbitrary bytes go through sfp_frame_parse, sfp_frame_verify and
 * sfp_decode. Because a random frame almost never carries a valid XXH3
 * trailer, a copy whose trailer is recomputed is decoded as well, so the
 * fuzzer reaches the plane decoders. The output buffer is allocated with the
 * exact decoded size (when small enough) so ASan sees any overrun.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfp/sfp.h"
#include "impl_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Largest decoded size the target allocates (bounds time and memory). */
#define FUZZ_MAX_OUT (1u << 20)

/* A failed property prints where it failed, then aborts (a finding). */
#define must(cond)                                                             \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

static int is_error_code(int rc)
{
    return rc >= SFP_EUNSUPPORTED && rc <= SFP_EINVAL;
}

static void decode_bounded(const uint8_t *frame, size_t len,
                           const sfp_frame_info *fi)
{
    size_t esz = sfp_dtype_size(fi->dtype);
    must(esz != 0);
    uint64_t want = fi->count * esz;
    size_t cap = want <= FUZZ_MAX_OUT ? (size_t)want : FUZZ_MAX_OUT;
    /* malloc(0) may return NULL; keep one byte so dst is never NULL. */
    uint8_t *dst = malloc(cap ? cap : 1);
    if (dst == NULL)
        return;
    size_t n = (size_t)-1;
    int rc = sfp_decode(frame, len, dst, cap, &n);
    if (rc == SFP_OK) {
        must(n == fi->count);
        must(want <= cap);
        /* what the header promised: z non-zero values, -0 only with ZSIGN */
        uint64_t nz = 0, negz = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = esz == 4 ? (uint32_t)dst[4 * i] | (uint32_t)dst[4 * i + 1] << 8 |
                                        (uint32_t)dst[4 * i + 2] << 16 | (uint32_t)dst[4 * i + 3] << 24
                                  : ((uint32_t)dst[2 * i] | (uint32_t)dst[2 * i + 1] << 8) << 16;
            nz += (v & 0x7fffffffu) != 0;
            negz += v == 0x80000000u;
        }
        must(nz == fi->nonzero);
        must(negz == 0 || (fi->flags & SFP_FLAG_ZSIGN));
    } else {
        must(is_error_code(rc));
        must(n == (size_t)-1); /* out-parameter untouched on failure */
        if (want > cap)
            must(rc == SFP_ENOSPC || rc == SFP_ECHECKSUM);
    }
    /* A buffer one element too small must be refused, not overrun. */
    if (rc == SFP_OK && want > 0) {
        rc = sfp_decode(frame, len, dst, (size_t)want - 1, NULL);
        must(rc == SFP_ENOSPC);
    }
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sfp_frame_info fi, fv;
    /* Copy into an exact-size heap buffer so reads past the end trap. */
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);

    int prc = sfp_frame_parse(buf, size, &fi);
    must(prc == SFP_OK || is_error_code(prc));
    /* the streaming parse (header only) agrees with the whole-frame one */
    sfp_frame_info fh;
    int hrc = sfp_frame_parse_header(buf, size, &fh);
    if (hrc == SFP_OK) {
        must(fh.frame_bytes >= SFP_FRAME_HEADER_SIZE + SFP_FRAME_TRAILER_SIZE);
        must(prc == (fh.frame_bytes <= size ? SFP_OK : SFP_ETRUNC));
        if (prc == SFP_OK)
            must(fh.frame_bytes == fi.frame_bytes && fh.count == fi.count);
    } else {
        must(prc == hrc);
    }
    int vrc = sfp_frame_verify(buf, size, &fv);
    must(vrc == SFP_OK || is_error_code(vrc));
    if (prc != SFP_OK) {
        /* Parse failures must be reported the same way everywhere. */
        must(vrc == prc);
        uint32_t dummy;
        must(sfp_decode(buf, size, &dummy, sizeof(dummy), NULL) == prc);
        free(buf);
        return 0;
    }
    must(fi.frame_bytes <= size);
    /* the count is bounded by the payload (docs/FORMAT.md 2.1) */
    must(fi.count <= (uint64_t)SFP_FRAME_MAX_DENSITY *
                         (fi.frame_bytes - SFP_FRAME_HEADER_SIZE - SFP_FRAME_TRAILER_SIZE));
    must(fi.frame_bytes >= SFP_FRAME_HEADER_SIZE + SFP_FRAME_TRAILER_SIZE);
    must(vrc == SFP_OK || vrc == SFP_ECHECKSUM);

    decode_bounded(buf, size, &fi);

    /* Recompute the trailer so the payload decoders get exercised. */
    uint64_t body = fi.frame_bytes - SFP_FRAME_TRAILER_SIZE;
    uint64_t sum = sfp_checksum(buf, (size_t)body);
    for (unsigned i = 0; i < 8; i++)
        buf[body + i] = (uint8_t)(sum >> (8 * i));
    must(sfp_frame_verify(buf, size, &fv) == SFP_OK);
    decode_bounded(buf, size, &fi);

    /* The frame alone (no trailing garbage) must behave identically. */
    decode_bounded(buf, (size_t)fi.frame_bytes, &fi);
    free(buf);
    return 0;
}
