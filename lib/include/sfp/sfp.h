/*
 * sfp.h - libsfp: adaptive floating-point containers and frames.
 *
 * libsfp quantizes FP32/BF16 tensors onto a container grid of (k mantissa
 * bits, e exponent bits), packs them into self-describing checksummed frames
 * (docs/FORMAT.md is normative), and decodes frames back. It does no I/O, has
 * no threads and never logs: every call returns 0 or a negative SFP_E* code.
 *
 * Thread safety: all functions are reentrant; they keep no global state apart
 * from the CPU-feature dispatch table, which is filled once (idempotently) on
 * first use.
 */
#ifndef SFP_SFP_H
#define SFP_SFP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SFP_BUILDING_LIB) && defined(__GNUC__)
#define SFP_API __attribute__((visibility("default")))
#else
#define SFP_API
#endif

#define SFP_VERSION_MAJOR 0
#define SFP_VERSION_MINOR 1
#define SFP_VERSION_PATCH 0

/* Frame format version written by this library (docs/FORMAT.md). */
#define SFP_FRAME_VERSION 1

/* ---------------------------------------------------------------- errors */

/*
 * X(name, value, message). Every error has a stable value, a name
 * (sfp_strerror_name) and a message (sfp_strerror). Every value lies in
 * [SFP_ERROR_MIN, -1]: the libraries built on libsfp keep their own codes
 * below SFP_ERROR_MIN, so a code never means two things (libsfpclient's
 * SFPC_E* start at -1000).
 */
#define SFP_ERROR_MIN (-99)
#define SFP_ERRORS(X)                                                          \
    X(EINVAL,      -1,  "invalid argument")                                    \
    X(ENOMEM,      -2,  "out of memory")                                       \
    X(ENONFINITE,  -3,  "tensor contains NaN or Inf")                          \
    X(ENOSPC,      -4,  "output buffer too small")                             \
    X(ETRUNC,      -5,  "frame truncated")                                     \
    X(EMAGIC,      -6,  "not an sfp frame (bad magic)")                        \
    X(EVERSION,    -7,  "unsupported frame version")                           \
    X(EHEADER,     -8,  "invalid frame header field")                          \
    X(ECHECKSUM,   -9,  "frame checksum mismatch")                             \
    X(ECORRUPT,    -10, "corrupt frame payload")                               \
    X(EOVERFLOW,   -11, "size overflow")                                       \
    X(EUNSUPPORTED,-12, "unsupported feature")

enum {
    SFP_OK = 0,
#define SFP__ERR_ENUM(name, value, msg) SFP_##name = value,
    SFP_ERRORS(SFP__ERR_ENUM)
#undef SFP__ERR_ENUM
};

/* Human-readable message for an error code; never NULL. */
SFP_API const char *sfp_strerror(int err);
/* Short name ("SFP_ECHECKSUM") for an error code; never NULL. */
SFP_API const char *sfp_strerror_name(int err);

/* ---------------------------------------------------------------- params */

/*
 * The vocabulary of element types and exponent coders: one row each, from
 * which the enums, the counts and the name/parse functions below are made.
 * Code elsewhere (tools, the daemon, the APIs) takes names and tables from
 * here, so a new coder is added in lib/ and appears everywhere by itself.
 *
 * SFP_DTYPES: X(ID, value, "name", "aliases", size in bytes, fraction bits)
 * (values are 1..SFP_DTYPE_COUNT; 0 is never a dtype).
 */
#define SFP_DTYPES(X)                                                          \
    X(F32,  1, "f32",  "fp32 float32", 4, 23) /* IEEE binary32, little endian */ \
    X(BF16, 2, "bf16", "bfloat16",     2, 7)  /* upper half of binary32       */

typedef enum sfp_dtype {
#define SFP__DTYPE_ENUM(id, value, name, aliases, size, fbits) SFP_DTYPE_##id = value,
    SFP_DTYPES(SFP__DTYPE_ENUM)
#undef SFP__DTYPE_ENUM
} sfp_dtype;

#define SFP__COUNT_ROW(...) +1
/* Number of dtypes; the valid values are 1..SFP_DTYPE_COUNT. */
enum { SFP_DTYPE_COUNT = 0 SFP_DTYPES(SFP__COUNT_ROW) };

typedef enum sfp_rounding {
    SFP_ROUND_RNE = 0,        /* round to nearest, ties to even */
    SFP_ROUND_TRUNC = 1,      /* truncate toward zero */
    SFP_ROUND_STOCHASTIC = 2, /* stochastic, seeded, counter-based */
} sfp_rounding;

/*
 * SFP_CODERS: X(ID, value, "name") of every exponent plane coder (values
 * are 0..SFP_CODER_COUNT-1, the byte of the frame header, docs/FORMAT.md).
 *  PLAIN: fixed-width exponent codes;
 *  GECKO: grouped base + delta exponent codes;
 *  RANS:  static rANS over the exponent codes (zeros included): within ~1%
 *         of their entropy; 32 interleaved states from 32768 values on
 *         (vector loops), 2 below; the encoder falls back to plain when
 *         that is smaller.
 */
#define SFP_CODERS(X)                                                          \
    X(PLAIN, 0, "plain")                                                       \
    X(GECKO, 1, "gecko")                                                       \
    X(RANS,  2, "rans")

typedef enum sfp_coder {
#define SFP__CODER_ENUM(id, value, name) SFP_CODER_##id = value,
    SFP_CODERS(SFP__CODER_ENUM)
#undef SFP__CODER_ENUM
} sfp_coder;

/* Number of coders; the valid values are 0..SFP_CODER_COUNT-1. */
enum { SFP_CODER_COUNT = 0 SFP_CODERS(SFP__COUNT_ROW) };

/*
 * Not a frame's coder but a request (sfp_params.coder, name "auto"): the
 * encoder codes the exponent plane with Gecko and with rANS (which itself
 * falls back to plain codes when they are smaller) and keeps the smaller
 * frame; a Gecko frame on a tie. About the time of both encodes (rANS is the
 * slower: on weights ~3.5 GB/s per core with AVX-512 and 32 states, ~1.5
 * without); sfp_frame_bound() covers both
 * attempts. For tensors
 * whose bytes matter more than their encode time: weights exchanged or
 * stored, checkpoints.
 */
#define SFP_CODER_AUTO ((sfp_coder)255)

/*
 * Container and coding parameters. Fill with sfp_params_default() and then
 * change what you need; the defaults are lossless FP32 (k=23, e=8, plain).
 */
typedef struct sfp_params {
    sfp_dtype dtype;       /* element type of the values                      */
    unsigned mbits;        /* k: kept fraction bits, 0..23 (F32) or 0..7 (BF16) */
    unsigned ebits;        /* e: exponent window bits, 1..8 (8 is lossless)   */
    sfp_rounding rounding; /* mantissa rounding mode                          */
    uint64_t seed;         /* stochastic rounding: stream seed                */
    int anchor;            /* -1: anchor = tensor's largest exponent (after
                              rounding); 0..254: fixed anchor, larger values
                              saturate to the window's largest magnitude
                              (anchor 0 needs mbits >= 1)                     */
    sfp_coder coder;       /* exponent plane coder (frames only)              */
    unsigned gecko_group;  /* Gecko group size: 8, 16, 32 or 64 (0: default) */
    unsigned zmap;         /* zero map coding when the frame has one (frames
                              only): SFP_ZMAP_BITMAP, or SFP_ZMAP_HUFFMAN to
                              also try Huffman-coded masks and keep the
                              smaller (docs/FORMAT.md 2.4.1)                */
} sfp_params;

#define SFP_ZMAP_BITMAP  0u
#define SFP_ZMAP_HUFFMAN 1u

#define SFP_GECKO_GROUP_DEFAULT 16

SFP_API void sfp_params_default(sfp_params *p);

/* Checks a params struct; returns 0 or SFP_EINVAL. */
SFP_API int sfp_params_check(const sfp_params *p);

/* Bytes per element of a dtype (4 or 2), 0 for an unknown dtype. */
SFP_API size_t sfp_dtype_size(sfp_dtype t);
/* Fraction bits of a dtype (23 or 7; the largest mbits), 0 if unknown. */
SFP_API unsigned sfp_dtype_fraction_bits(sfp_dtype t);

/* Name of a dtype ("f32", "bf16") or coder ("plain", "gecko", "rans", and
 * "auto" for SFP_CODER_AUTO); "?" for a value that is not one. Never NULL. */
SFP_API const char *sfp_dtype_name(sfp_dtype t);
SFP_API const char *sfp_coder_name(sfp_coder c);
/* Parses a name (a dtype also by its aliases: "fp32", "float32",
 * "bfloat16"); exact, lower case. Returns 0 and writes *out, or SFP_EINVAL
 * (*out untouched). */
SFP_API int sfp_dtype_parse(const char *name, sfp_dtype *out);
SFP_API int sfp_coder_parse(const char *name, sfp_coder *out);

/* "bitmap" or "huffman" for SFP_ZMAP_*, "?" otherwise; the parse is exact
 * and returns 0 or SFP_EINVAL. */
SFP_API const char *sfp_zmap_name(unsigned zmap);
SFP_API int sfp_zmap_parse(const char *name, unsigned *out);

/*
 * Whether s[0..len) is text fit for a name that travels into logs, file
 * names, metric labels and protobuf strings (sfpd's job ids and tensor
 * names): well-formed UTF-8 (shortest form, no surrogates, at most
 * U+10FFFF) without control characters (C0 including NUL, DEL, C1
 * U+0080..U+009F). Returns 0 or SFP_EINVAL. Lengths are the caller's
 * business.
 */
SFP_API int sfp_text_check(const char *s, size_t len);

/* ------------------------------------------------------------ quantizer */

/*
 * Stochastic rounding is counter based: value i of a tensor with seed S
 * gets the random bits that value 0 gets with seed S + i *
 * SFP_STOCHASTIC_STEP (mod 2^64). So a tensor quantized in pieces, the
 * piece starting at value o with seed S + o * SFP_STOCHASTIC_STEP, is
 * rounded exactly as the whole tensor (sfp-codec's chunks do this).
 */
#define SFP_STOCHASTIC_STEP UINT64_C(0x9e3779b97f4a7c15)

/*
 * What a quantization or an encode saw. Counts refer to the values after
 * quantization.
 */
typedef struct sfp_qstats {
    uint64_t count;     /* values                                        */
    uint64_t zeros;     /* values that are zero (input zeros + flushed)  */
    uint64_t flushed;   /* non-zero inputs flushed to zero by the window */
    uint64_t saturated; /* values clamped (fixed anchor or overflow)     */
    uint64_t negative;  /* non-zero negative values                      */
    int anchor;         /* biased exponent anchor A used (0..254)        */
} sfp_qstats;

/*
 * Quantizes n values of p->dtype from src into dst (src == dst allowed) onto
 * the (p->mbits, p->ebits) grid: mantissa rounding with carry into the
 * exponent, then the exponent window [A - 2^e + 2, A] anchored at the largest
 * exponent A; values below the window become +0. Subnormal inputs are kept
 * when the window reaches biased exponent 0 and flushed otherwise. A value
 * whose rounding would overflow to Inf saturates to the largest finite grid
 * value. With p->rounding == SFP_ROUND_STOCHASTIC the random bits of value i
 * are a pure function of (p->seed, i).
 *
 * Returns 0, SFP_EINVAL, or SFP_ENONFINITE if any input is NaN or Inf (dst is
 * then unspecified). stats may be NULL.
 */
SFP_API int sfp_quantize(void *dst, const void *src, size_t n,
                         const sfp_params *p, sfp_qstats *stats);

/* ---------------------------------------------------------------- frames */

/* Header flags (docs/FORMAT.md). */
#define SFP_FLAG_SIGN      0x01u /* sign plane present                       */
#define SFP_FLAG_ZSIGN     0x02u /* sign plane covers zeros too (has -0)     */
#define SFP_FLAG_ZMAP      0x04u /* zero map present; codes only for nonzero */
#define SFP_FLAG_ZHUF      0x08u /* the zero map is Huffman-coded (with ZMAP)  */
#define SFP_FLAG_ZH2       0x10u /* ... in two streams, even/odd blocks (with ZHUF) */

#define SFP_FRAME_HEADER_SIZE 64u
#define SFP_FRAME_TRAILER_SIZE 8u

/* Largest element count a frame may declare (2^40). */
#define SFP_FRAME_MAX_COUNT (UINT64_C(1) << 40)

/*
 * Largest number of values a frame may declare per byte of its planes (the
 * bytes between header and trailer): count <= 512 * payload bytes
 * (docs/FORMAT.md 2.1). Every plain and Gecko layout meets it by
 * construction; it bounds what a decoder allocates from a frame's header to
 * 2048 times the frame's size (FP32), so sfp_frame_parse() refuses more.
 */
#define SFP_FRAME_MAX_DENSITY 512u

/* Everything the header of a frame says, after validation. */
typedef struct sfp_frame_info {
    unsigned version;
    sfp_dtype dtype;
    unsigned mbits, ebits;
    unsigned anchor;
    sfp_coder coder;
    unsigned gecko_group; /* Gecko: group size; rANS: 32 for 32 interleaved
                             states, 0 for two (FORMAT 2.5); plain: 0      */
    unsigned flags;
    uint64_t count;      /* elements                          */
    uint64_t nonzero;    /* elements that are not zero        */
    uint64_t zmap_bytes, exp_bytes, sign_bytes, mant_bytes;
    uint64_t frame_bytes; /* header + planes + trailer         */
    uint64_t checksum;    /* XXH3-64 stored in the trailer     */
} sfp_frame_info;

/*
 * Upper bound on the encoded size of n values with params p, or 0 if p is
 * invalid or the size overflows. A buffer of this size always suffices.
 */
SFP_API size_t sfp_frame_bound(size_t n, const sfp_params *p);

/*
 * Encodes n values (p->dtype) from src into dst[0..cap). Values are first
 * quantized as by sfp_quantize(); values already on the grid are encoded
 * exactly. On success writes the frame size to *out_len and, if stats is not
 * NULL, the quantization statistics. On failure *out_len is untouched.
 * Errors: SFP_EINVAL, SFP_ENONFINITE, SFP_ENOSPC (cap too small; a cap of
 * sfp_frame_bound() never fails this way), SFP_EOVERFLOW.
 */
SFP_API int sfp_encode(const void *src, size_t n, const sfp_params *p,
                       void *dst, size_t cap, size_t *out_len,
                       sfp_qstats *stats);

/*
 * sfp_encode() that also writes the quantized values (what sfp_quantize()
 * would produce, n values of p->dtype) to qout, while each chunk is still in
 * cache: one pass over the tensor instead of two for a caller that needs both
 * the frame and the on-grid values. qout may be NULL, may equal src (the
 * values are read before they are overwritten, chunk by chunk), and is
 * unspecified after a failure.
 */
SFP_API int sfp_encode_q(const void *src, size_t n, const sfp_params *p,
                         void *dst, size_t cap, size_t *out_len,
                         sfp_qstats *stats, void *qout);

/*
 * Validates the header of frame[0..len) (magic, version, every field and
 * every size, the count against the payload size (SFP_FRAME_MAX_DENSITY),
 * consistency with len) without reading the payload and without checking
 * the checksum (docs/FORMAT.md 2.6, stage 1). Fills *info on success; a
 * caller may allocate info->count values after it.
 */
SFP_API int sfp_frame_parse(const void *frame, size_t len,
                            sfp_frame_info *info);

/*
 * sfp_frame_parse() of a frame whose first len bytes (at least the 64-byte
 * header) are all that has been read so far, as when reading a stream:
 * every header rule, no length check. Fills *info with info->checksum 0;
 * info->frame_bytes says how many bytes the whole frame has.
 */
SFP_API int sfp_frame_parse_header(const void *frame, size_t len,
                                   sfp_frame_info *info);

/* Validates the header, then the checksum over header and payload. */
SFP_API int sfp_frame_verify(const void *frame, size_t len,
                             sfp_frame_info *info);

/*
 * Decodes frame[0..len) into dst, which must hold cap bytes; the decoded size
 * is info.count * sfp_dtype_size(info.dtype). Validates the header and the
 * checksum before it touches the payload, and every plane while it decodes:
 * any truncated, corrupted or hostile input returns an error (SFP_ETRUNC,
 * SFP_EMAGIC, SFP_EVERSION, SFP_EHEADER, SFP_ECHECKSUM, SFP_ECORRUPT,
 * SFP_ENOSPC) and never reads frame[len..] or writes dst[cap..]. On success
 * writes the element count to *out_n (may be NULL). dst contents are
 * unspecified after a failure.
 */
SFP_API int sfp_decode(const void *frame, size_t len, void *dst, size_t cap,
                       size_t *out_n);

/* --------------------------------------------------------------- helpers */

/* XXH3-64 of a buffer, as used by the frame trailer. */
SFP_API uint64_t sfp_checksum(const void *data, size_t len);

/*
 * Implementation selection for the hot loops. SFP_IMPL_AUTO picks the best
 * the CPU supports (default: AVX-512, else AVX2, else C). Forcing an
 * implementation the CPU lacks returns SFP_EUNSUPPORTED. Without a call,
 * SFP_IMPL=c|avx2|avx512 in the environment picks the first choice (one the
 * CPU lacks falls back to auto). All give bit-identical results. Not thread
 * safe against concurrent encodes: call it at start-up or in tests.
 */
typedef enum sfp_impl {
    SFP_IMPL_AUTO = 0,
    SFP_IMPL_C = 1,      /* portable C reference                          */
    SFP_IMPL_AVX2 = 2,   /* AVX2 + BMI2                                   */
    SFP_IMPL_AVX512 = 3, /* AVX-512 F/BW/VL/VBMI/VBMI2 (+ BMI2)           */
} sfp_impl;

SFP_API int sfp_set_impl(sfp_impl impl);
SFP_API sfp_impl sfp_get_impl(void);

/* Library version string, e.g. "0.1.0". */
SFP_API const char *sfp_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SFP_SFP_H */
