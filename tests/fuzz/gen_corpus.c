/*
 * gen_corpus.c - writes the checked-in seed corpora and golden frames.
 *
 *   gen_corpus corpus DIR   DIR/fuzz_decode/ and DIR/fuzz_roundtrip/ seeds
 *   gen_corpus golden DIR   DIR/valid/NAME.{sfp,raw} and DIR/invalid/NAME.sfp
 *                           plus DIR/invalid/EXPECTED ("NAME.sfp SFP_E...")
 *
 * Output is deterministic (own PRNG, fixed seeds), so rerunning it gives
 * the same bytes as long as the encoder does. Every invalid golden frame is
 * decoded here and must fail with the code it is listed with; the generator
 * fails otherwise. The files are checked in; the generator is not run by
 * the build (tests/golden/README.md).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sfp/sfp.h"

#define MAXV 33000

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Approximate N(0,1) from the sum of four uniforms (enough for seeds). */
static float rng_gauss(void)
{
    double s = 0;
    for (int i = 0; i < 4; i++)
        s += (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
    return (float)((s - 2.0) * 1.7320508);
}

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

typedef enum dist { D_GAUSS, D_RELU, D_RELU75, D_EDGE, D_NEGZERO, D_ZERO, D_WIDE, D_RUNS } dist;

/* Fills n binary32 patterns of a distribution. */
static void fill(uint32_t *x, size_t n, dist d, uint64_t seed)
{
    static const uint32_t edge[] = {
        0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x00800000u,
        0x7f7fffffu, 0xff7fffffu, 0x3f800000u, 0xbf800000u, 0x3f7fffffu,
        0x33800000u, 0x00400000u, 0x80000001u, 0x7f000000u, 0x3fc00000u,
    };
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        float g = rng_gauss();
        switch (d) {
        case D_GAUSS:
            x[i] = f2u(g * 0.05f);
            break;
        case D_RELU:
            x[i] = g > 0 ? f2u(g) : 0;
            break;
        case D_RELU75:
            x[i] = g > 0.6745f ? f2u(g) : 0;
            break;
        case D_EDGE:
            x[i] = i < sizeof(edge) / 4 ? edge[i]
                                        : (uint32_t)rng_next() % 0x7f800000u |
                                              (uint32_t)(rng_next() & 1) << 31;
            break;
        case D_NEGZERO:
            x[i] = (i % 3 == 0) ? 0x80000000u : f2u(g);
            break;
        case D_ZERO:
            x[i] = 0;
            break;
        case D_RUNS: /* zeros in runs, as in images: a Huffman zero map */
            x[i] = ((i / 40) % 3 != 0 && g != 0.0f) ? f2u(g > 0 ? g : -g) : 0;
            break;
        case D_WIDE: /* every finite exponent */
            x[i] = ((uint32_t)(rng_next() % 255) << 23) |
                   ((uint32_t)rng_next() & 0x807fffffu);
            break;
        }
    }
}

/* Converts binary32 patterns to the dtype's little-endian bytes. */
static size_t to_dtype(uint8_t *out, const uint32_t *x, size_t n, sfp_dtype t)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = t == SFP_DTYPE_F32 ? x[i] : x[i] >> 16;
        size_t sz = t == SFP_DTYPE_F32 ? 4 : 2;
        for (size_t b = 0; b < sz; b++)
            out[i * sz + b] = (uint8_t)(v >> (8 * b));
    }
    return n * sfp_dtype_size(t);
}

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = (n && fwrite(p, 1, n, f) != n) ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    if (rc < 0)
        fprintf(stderr, "gen_corpus: %s: write failed\n", path);
    return rc;
}

static int make_dir(const char *a, const char *b, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s", a, b ? "/" : "", b ? b : "");
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_corpus: mkdir %s: %s\n", out, strerror(errno));
        return -1;
    }
    return 0;
}

typedef struct spec {
    const char *name;
    sfp_dtype dtype;
    unsigned k, e;
    sfp_coder coder;
    unsigned group;
    sfp_rounding rounding;
    dist d;
    size_t n;
    unsigned zmap; /* sfp_params.zmap */
} spec;

static const spec specs[] = {
    {"f32_k23e8_plain_edge", SFP_DTYPE_F32, 23, 8, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_EDGE, 100, 0},
    {"f32_k23e8_gecko_gauss", SFP_DTYPE_F32, 23, 8, SFP_CODER_GECKO, 16, SFP_ROUND_RNE, D_GAUSS, 300, 0},
    {"f32_k23e8_plain_wide", SFP_DTYPE_F32, 23, 8, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_WIDE, 77, 0},
    {"f32_k7e8_plain_gauss", SFP_DTYPE_F32, 7, 8, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_GAUSS, 256, 0},
    {"f32_k2e4_plain_relu", SFP_DTYPE_F32, 2, 4, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_RELU, 200, 0},
    {"f32_k2e4_gecko_relu", SFP_DTYPE_F32, 2, 4, SFP_CODER_GECKO, 16, SFP_ROUND_RNE, D_RELU, 333, 0},
    {"f32_k1e3_gecko64_relu75", SFP_DTYPE_F32, 1, 3, SFP_CODER_GECKO, 64, SFP_ROUND_RNE, D_RELU75, 500, 0},
    {"f32_k0e1_plain_gauss", SFP_DTYPE_F32, 0, 1, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_GAUSS, 65, 0},
    {"f32_k4e5_gecko8_trunc", SFP_DTYPE_F32, 4, 5, SFP_CODER_GECKO, 8, SFP_ROUND_TRUNC, D_GAUSS, 129, 0},
    {"f32_k3e6_gecko32_stoch", SFP_DTYPE_F32, 3, 6, SFP_CODER_GECKO, 32, SFP_ROUND_STOCHASTIC, D_GAUSS, 190, 0},
    {"f32_k10e7_plain_negzero", SFP_DTYPE_F32, 10, 7, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_NEGZERO, 70, 0},
    {"f32_k5e5_gecko_allzero", SFP_DTYPE_F32, 5, 5, SFP_CODER_GECKO, 16, SFP_ROUND_RNE, D_ZERO, 128, 0},
    {"f32_k23e8_plain_empty", SFP_DTYPE_F32, 23, 8, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_GAUSS, 0, 0},
    {"bf16_k7e8_plain_edge", SFP_DTYPE_BF16, 7, 8, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_EDGE, 90, 0},
    {"bf16_k7e8_gecko_gauss", SFP_DTYPE_BF16, 7, 8, SFP_CODER_GECKO, 16, SFP_ROUND_RNE, D_GAUSS, 200, 0},
    {"bf16_k3e5_gecko_relu", SFP_DTYPE_BF16, 3, 5, SFP_CODER_GECKO, 16, SFP_ROUND_RNE, D_RELU, 150, 0},
    {"f32_k23e8_rans_gauss", SFP_DTYPE_F32, 23, 8, SFP_CODER_RANS, 16, SFP_ROUND_RNE, D_GAUSS, 1000, 0},
    {"f32_k2e4_rans_relu", SFP_DTYPE_F32, 2, 4, SFP_CODER_RANS, 16, SFP_ROUND_RNE, D_RELU, 2000, 0},
    {"f32_k1e3_rans_relu75", SFP_DTYPE_F32, 1, 3, SFP_CODER_RANS, 16, SFP_ROUND_RNE, D_RELU75, 777, 0},
    {"bf16_k4e6_rans_gauss", SFP_DTYPE_BF16, 4, 6, SFP_CODER_RANS, 16, SFP_ROUND_RNE, D_GAUSS, 1500, 0},
    {"f32_k3e4_rans_small", SFP_DTYPE_F32, 3, 4, SFP_CODER_RANS, 16, SFP_ROUND_RNE, D_RELU, 9, 0},
    {"f32_k2e4_gecko_zhuf", SFP_DTYPE_F32, 2, 4, SFP_CODER_GECKO, 16, SFP_ROUND_RNE, D_RUNS, 4000, 1},
    {"f32_k0e4_plain_zhuf", SFP_DTYPE_F32, 0, 4, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_RUNS, 3001, 1},
    {"bf16_k3e5_gecko_zhuf", SFP_DTYPE_BF16, 3, 5, SFP_CODER_GECKO, 8, SFP_ROUND_RNE, D_RUNS, 2500, 1},
    /* 32 rANS states (byte 10 = 32): 1025 rounds of 32 and a code more */
    {"bf16_k0e2_rans32_relu75", SFP_DTYPE_BF16, 0, 2, SFP_CODER_RANS, 16, SFP_ROUND_RNE, D_RELU75, 32801, 0},
    /* the Huffman zero map in two streams (ZH2, 2026-12-06; the _zhuf
     * golden frames above were written before it, in one stream): several
     * chunks and an odd number of blocks, the last one partial in each
     * stream */
    {"f32_k2e4_gecko_zh2", SFP_DTYPE_F32, 2, 4, SFP_CODER_GECKO, 16, SFP_ROUND_RNE, D_RUNS, 9000, 1},
    {"f32_k1e3_plain_zh2", SFP_DTYPE_F32, 1, 3, SFP_CODER_PLAIN, 16, SFP_ROUND_RNE, D_RUNS, 2150, 1},
};

/* Encodes a spec; returns frame length or 0. raw/rawlen get the decoded
 * (quantized) bytes when raw is not NULL. */
static size_t encode_spec(const spec *s, uint64_t seed, uint8_t *frame, size_t cap,
                          uint8_t *raw, size_t *rawlen)
{
    static uint32_t x[MAXV];
    static uint8_t in[MAXV * 4];
    sfp_params p;
    size_t len = 0;

    sfp_params_default(&p);
    p.dtype = s->dtype;
    p.mbits = s->k;
    p.ebits = s->e;
    p.coder = s->coder;
    p.gecko_group = s->group;
    p.zmap = s->zmap;
    p.rounding = s->rounding;
    p.seed = 42;
    fill(x, s->n, s->d, seed);
    size_t inlen = to_dtype(in, x, s->n, s->dtype);
    int rc = sfp_encode(in, s->n, &p, frame, cap, &len, NULL);
    if (rc < 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", s->name, sfp_strerror(rc));
        return 0;
    }
    if (raw) {
        size_t n = 0;
        rc = sfp_decode(frame, len, raw, inlen, &n);
        if (rc < 0 || n != s->n) {
            fprintf(stderr, "gen_corpus: %s: decode %s\n", s->name, sfp_strerror(rc));
            return 0;
        }
        *rawlen = inlen;
    }
    return len;
}

static void fix_checksum(uint8_t *f, size_t len)
{
    uint64_t c = sfp_checksum(f, len - 8);
    for (int i = 0; i < 8; i++)
        f[len - 8 + i] = (uint8_t)(c >> (8 * i));
}

static uint8_t frame_buf[1 << 18], work_buf[1 << 18], raw_buf[MAXV * 4];

static int gen_corpus(const char *root)
{
    char dd[1024], dr[1024], name[256];
    if (make_dir(root, NULL, dd, sizeof(dd)) < 0 ||
        make_dir(root, "fuzz_decode", dd, sizeof(dd)) < 0 ||
        make_dir(root, "fuzz_roundtrip", dr, sizeof(dr)) < 0)
        return -1;

    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        const spec *s = &specs[i];
        size_t len = encode_spec(s, 1000 + i, frame_buf, sizeof(frame_buf), NULL, NULL);
        if (len == 0)
            return -1;
        snprintf(name, sizeof(name), "%s.sfp", s->name);
        if (write_file(dd, name, frame_buf, len) < 0)
            return -1;
        /* Truncations: inside the header, inside the payload. */
        snprintf(name, sizeof(name), "%s.trunc_hdr", s->name);
        if (write_file(dd, name, frame_buf, 40) < 0)
            return -1;
        snprintf(name, sizeof(name), "%s.trunc_body", s->name);
        if (write_file(dd, name, frame_buf, len - 9) < 0)
            return -1;
        /* A flipped payload bit, with and without a matching checksum. */
        if (len > 72) {
            memcpy(work_buf, frame_buf, len);
            work_buf[64 + (len - 72) / 2] ^= 0x10;
            snprintf(name, sizeof(name), "%s.flip", s->name);
            if (write_file(dd, name, work_buf, len) < 0)
                return -1;
            fix_checksum(work_buf, len);
            snprintf(name, sizeof(name), "%s.flip_sum", s->name);
            if (write_file(dd, name, work_buf, len) < 0)
                return -1;
        }
        /* Roundtrip seed: parameter bytes, then the same values. */
        {
            static uint32_t x[MAXV];
            uint8_t *r = work_buf;
            r[0] = (uint8_t)((s->dtype == SFP_DTYPE_BF16) | (s->rounding << 2) |
                             ((i % 4 == 3) << 4) | s->zmap << 5);
            r[1] = (uint8_t)s->k;
            r[2] = (uint8_t)(s->e - 1);
            r[3] = (uint8_t)((s->group == 8 ? 0 : s->group == 16 ? 1 : s->group == 32 ? 2 : 3) |
                             (unsigned)s->coder << 4);
            r[4] = (uint8_t)(120 + i);
            for (int b = 5; b < 12; b++)
                r[b] = (uint8_t)(i * 7 + b);
            fill(x, s->n, s->d, 1000 + i);
            size_t m = to_dtype(r + 12, x, s->n, s->dtype);
            snprintf(name, sizeof(name), "%s.rt", s->name);
            if (write_file(dr, name, r, 12 + m) < 0)
                return -1;
        }
    }
    /* Non-frames. */
    if (write_file(dd, "empty", "", 0) < 0 || write_file(dd, "magic_only", "SFPF", 4) < 0)
        return -1;
    /* A roundtrip input with a NaN. */
    {
        uint8_t r[12 + 16] = {0, 23, 7, 0x11};
        uint32_t v[4] = {0x3f800000u, 0x7fc00000u, 0, 0xbf000000u};
        memcpy(r + 12, v, sizeof(v));
        if (write_file(dr, "nan.rt", r, sizeof(r)) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- golden */

typedef struct mutation {
    const char *name;
    int base;          /* index into specs */
    int expect;        /* SFP_E* code */
    int fixsum;        /* recompute the checksum after mutating */
    long off;          /* byte offset; negative: from the end */
    uint8_t xor_mask;  /* applied at off (when set < 0) */
    int set;           /* >= 0: byte value stored at off instead */
    long newlen;       /* 0: keep; >0: truncate to this; <0: len + newlen */
    const char *why;
} mutation;

/* Header offsets (docs/FORMAT.md): 4 version, 5 dtype, 6 k, 7 e, 8 anchor,
 * 9 coder, 10 log2 group, 11 flags, 12..15 reserved, 16 count, 24 nonzero,
 * 32 sign bytes, 40 mantissa bytes, 48 zero-map bytes, 56 exponent bytes. */
static const mutation muts[] = {
    {"short_2", 0, SFP_ETRUNC, 0, 0, 0, -1, 2, "2 bytes: shorter than the magic"},
    {"trunc_header", 0, SFP_ETRUNC, 0, 0, 0, -1, 40, "valid magic, header cut at 40 bytes"},
    {"trunc_payload", 1, SFP_ETRUNC, 0, 0, 0, -1, -1, "last trailer byte missing"},
    {"bad_magic", 0, SFP_EMAGIC, 0, 0, 0x20, -1, 0, "magic 'sFPF'"},
    {"bad_version", 0, SFP_EVERSION, 0, 4, 0, 2, 0, "version 2"},
    {"bad_dtype", 0, SFP_EHEADER, 0, 5, 0, 5, 0, "dtype 5"},
    {"bad_mbits", 13, SFP_EHEADER, 0, 6, 0, 15, 0, "bf16 with k = 15"},
    {"bad_ebits", 0, SFP_EHEADER, 0, 7, 0, 0, 0, "e = 0"},
    {"bad_anchor", 0, SFP_EHEADER, 0, 8, 0, 255, 0, "anchor >= 255"},
    {"bad_coder", 0, SFP_EHEADER, 0, 9, 0, 3, 0, "coder 3"},
    {"bad_group", 1, SFP_EHEADER, 0, 10, 0, 7, 0, "Gecko group 2^7 = 128"},
    {"plain_group", 0, SFP_EHEADER, 0, 10, 0, 4, 0, "plain coder with a group field"},
    {"bad_flags", 0, SFP_EHEADER, 0, 11, 0x80, -1, 0, "unknown flag bit"},
    {"zsign_no_sign", 10, SFP_EHEADER, 0, 11, 0x01, -1, 0, "ZSIGN without SIGN"},
    {"reserved", 0, SFP_EHEADER, 0, 13, 0x01, -1, 0, "reserved bytes not zero"},
    {"count_huge", 0, SFP_EHEADER, 0, 21, 0x01, -1, 0, "count > 2^40"},
    {"nonzero_gt_count", 0, SFP_EHEADER, 0, 31, 0x01, -1, 0, "nonzero > count"},
    {"sign_size", 0, SFP_EHEADER, 0, 32, 0x01, -1, 0, "sign plane size does not follow from count"},
    {"mant_size", 0, SFP_EHEADER, 0, 40, 0x01, -1, 0, "mantissa plane size wrong"},
    {"zmap_size", 5, SFP_EHEADER, 0, 48, 0x03, -1, 0, "zero map size not l1 + 8*words"},
    {"exp_size", 0, SFP_EHEADER, 0, 56, 0x01, -1, 0, "plain exponent plane size wrong"},
    {"gecko_exp_big", 1, SFP_EHEADER, 0, 62, 0x01, -1, 0, "Gecko plane larger than its bound"},
    {"checksum", 0, SFP_ECHECKSUM, 0, -1, 0x80, -1, 0, "trailer bit flipped"},
    {"payload_flip", 1, SFP_ECHECKSUM, 0, 100, 0x01, -1, 0, "payload bit flipped, trailer kept"},
    {"gecko_width", 5, SFP_ECORRUPT, 1, 0, 0, -1, 0, "first Gecko group: same-base bit, width 7 > e = 4 (checksum fixed)"},
    {"zmap_word_zero", 6, SFP_ECORRUPT, 1, 0, 0, -1, 0, "zero-map word all zero (checksum fixed)"},
    {"rans_group", 17, SFP_EHEADER, 0, 10, 0, 4, 0, "rANS coder with a group field"},
    {"rans_zmap", 4, SFP_EHEADER, 1, 0, 0, -1, 0, "rANS coder with a zero map: a ZMAP frame whose exponent plane is the rANS plane of its non-zero codes (decodable but for the rule)"},
    {"rans_word", 17, SFP_ECORRUPT, 1, -9, 0x5a, -1, 0, "last rANS renormalisation byte changed (checksum fixed)"},
    {"rans_dense", 0, SFP_EHEADER, 1, 0, 0, -1, 0, "83 bytes declaring 2^40 zeros (rANS, one symbol): more than 512 values per payload byte"},
    {"zmap_code_zero", 4, SFP_ECORRUPT, 1, 0, 0, -1, 0, "ZMAP: exponent code 0 for a value the zero map marks non-zero (checksum fixed)"},
    {"gecko_exp_extra", 5, SFP_ECORRUPT, 1, 0, 0, -1, 0, "Gecko exponent plane one byte longer than its groups (checksum fixed)"},
    {"pad_sign", 0, SFP_ECORRUPT, 1, 0, 0, -1, 0, "padding bit of the sign plane set (checksum fixed)"},
    {"pad_mant", 0, SFP_ECORRUPT, 1, 0, 0, -1, 0, "padding bit of the mantissa plane set (checksum fixed)"},
    {"pad_exp", 7, SFP_ECORRUPT, 1, 0, 0, -1, 0, "padding bit of a plain exponent plane set (checksum fixed)"},
    {"sub_zero", 0, SFP_ECORRUPT, 1, 0, 0, -1, 0, "the code of E = 0 with mantissa 0: a zero coded as a non-zero (checksum fixed)"},
    {"pad_exp_gecko", 5, SFP_ECORRUPT, 1, 0, 0, -1, 0, "padding bit after the last Gecko group set (checksum fixed)"},
    {"zhuf_no_zmap", 21, SFP_EHEADER, 0, 11, 0x04, -1, 0, "ZHUF without ZMAP"},
    {"zhuf_size", 21, SFP_EHEADER, 0, 49, 0x10, -1, 0, "Huffman zero map larger than 256 + 12 bits per mask"},
    {"zh2_no_zhuf", 25, SFP_EHEADER, 0, 11, 0x08, -1, 0, "ZH2 without ZHUF"},
    {"zh2_split", 25, SFP_ECORRUPT, 1, 0, 0, -1, 0, "ZH2: the first stream's byte count one more (checksum fixed)"},
};

/* Plane offsets of a parsed frame. */
static size_t off_mant(const sfp_frame_info *fi) { return 64 + (size_t)fi->sign_bytes; }
static size_t off_zmap(const sfp_frame_info *fi) { return off_mant(fi) + (size_t)fi->mant_bytes; }
static size_t off_exp(const sfp_frame_info *fi) { return off_zmap(fi) + (size_t)fi->zmap_bytes; }

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Sets the highest padding bit of a plane of `bits` bits at p; -1 if the
 * plane has no padding. */
static int set_pad(uint8_t *p, uint64_t bits)
{
    if (bits % 8 == 0)
        return -1;
    p[bits / 8] |= 0x80;
    return 0;
}

/*
 * Mutations that need more than a byte change. Works on work_buf (frame of
 * *len bytes, parsed as fi); returns 0 or -1 (base frame unsuitable).
 */
static int special_mutation(const mutation *mu, size_t *len)
{
    sfp_frame_info fi;
    uint8_t *f = work_buf;
    if (sfp_frame_parse(f, *len, &fi) < 0)
        return -1;
    if (strcmp(mu->name, "zmap_word_zero") == 0) {
        /* First level-2 word sits right after level 1. */
        if (!(fi.flags & SFP_FLAG_ZMAP))
            return -1;
        uint64_t l1 = ((fi.count + 63) / 64 + 7) / 8;
        memset(f + off_zmap(&fi) + l1, 0, 8);
    } else if (strcmp(mu->name, "zh2_split") == 0) {
        /* the byte count after the 256 bytes of code lengths */
        if (!(fi.flags & SFP_FLAG_ZH2))
            return -1;
        uint8_t *at = f + off_zmap(&fi) + 256;
        uint64_t la = 0;
        for (int i = 0; i < 8; i++)
            la |= (uint64_t)at[i] << (8 * i);
        put64(at, la + 1);
    } else if (strcmp(mu->name, "gecko_width") == 0) {
        if (fi.coder != SFP_CODER_GECKO || fi.exp_bytes == 0)
            return -1;
        /* Bit 0 = 1 (keep base 2^e - 1), next bits: width all ones. */
        f[off_exp(&fi)] = 0xff;
    } else if (strcmp(mu->name, "zmap_code_zero") == 0) {
        if (!(fi.flags & SFP_FLAG_ZMAP) || fi.coder != SFP_CODER_PLAIN || fi.ebits != 4)
            return -1;
        f[off_exp(&fi)] &= 0xf0; /* first code: 0 */
    } else if (strcmp(mu->name, "gecko_exp_extra") == 0) {
        if (fi.coder != SFP_CODER_GECKO)
            return -1;
        memmove(f + fi.frame_bytes - 7, f + fi.frame_bytes - 8, 8);
        f[fi.frame_bytes - 8] = 0;
        put64(f + 56, fi.exp_bytes + 1);
        *len += 1;
    } else if (strcmp(mu->name, "pad_sign") == 0) {
        uint64_t bits = (fi.flags & SFP_FLAG_ZSIGN) ? fi.count : fi.nonzero;
        if (!(fi.flags & SFP_FLAG_SIGN) || set_pad(f + 64, bits) < 0)
            return -1;
    } else if (strcmp(mu->name, "pad_mant") == 0) {
        if (set_pad(f + off_mant(&fi), fi.nonzero * fi.mbits) < 0)
            return -1;
    } else if (strcmp(mu->name, "pad_exp") == 0) {
        uint64_t S = (fi.flags & SFP_FLAG_ZMAP) ? fi.nonzero : fi.count;
        if (fi.coder != SFP_CODER_PLAIN || set_pad(f + off_exp(&fi), S * fi.ebits) < 0)
            return -1;
    } else if (strcmp(mu->name, "pad_exp_gecko") == 0) {
        /* the last byte's top bit: padding unless the groups fill it */
        if (fi.coder != SFP_CODER_GECKO || fi.exp_bytes == 0)
            return -1;
        f[off_exp(&fi) + fi.exp_bytes - 1] |= 0x80;
    } else if (strcmp(mu->name, "sub_zero") == 0) {
        /* one subnormal (k 23, e 8, plain), then its mantissa cleared */
        uint32_t one = 1;
        sfp_params p;
        sfp_params_default(&p);
        if (sfp_encode(&one, 1, &p, f, sizeof(work_buf), len, NULL) < 0 ||
            sfp_frame_parse(f, *len, &fi) < 0 || fi.mant_bytes != 3 || fi.sign_bytes != 0)
            return -1;
        memset(f + 64, 0, 3);
    } else if (strcmp(mu->name, "rans_dense") == 0) {
        /* header: f32, k 0, e 1, anchor 127, rANS, 2^40 values, all +0;
         * plane: symbol 0 only (freq 4096), both states L */
        memset(f, 0, 83);
        memcpy(f, "SFPF", 4);
        f[4] = 1, f[5] = SFP_DTYPE_F32, f[6] = 0, f[7] = 1, f[8] = 127;
        f[9] = SFP_CODER_RANS;
        put64(f + 16, UINT64_C(1) << 40);
        put64(f + 56, 11);
        f[64] = 0x01;
        f[65] = 0xff, f[66] = 0x0f;
        put64(f + 67, UINT64_C(0x0001000000010000));
        *len = 83;
    } else if (strcmp(mu->name, "rans_zmap") == 0) {
        /* The base frame's non-zero values, coded alone with rANS (same
         * anchor), give the rANS plane of exactly its non-zero codes. */
        static uint32_t v[MAXV];
        static uint8_t r[1 << 16];
        size_t n = 0, z = 0, rl = 0;
        sfp_frame_info ri;
        sfp_params p;
        if (!(fi.flags & SFP_FLAG_ZMAP) || fi.dtype != SFP_DTYPE_F32 ||
            (fi.flags & SFP_FLAG_SIGN) || sfp_decode(f, *len, v, sizeof(v), &n) < 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (v[i])
                v[z++] = v[i];
        sfp_params_default(&p);
        p.mbits = fi.mbits, p.ebits = fi.ebits, p.anchor = (int)fi.anchor;
        p.coder = SFP_CODER_RANS;
        if (sfp_encode(v, z, &p, r, sizeof(r), &rl, NULL) < 0 ||
            sfp_frame_parse(r, rl, &ri) < 0 || ri.coder != SFP_CODER_RANS ||
            ri.flags != 0 || ri.mant_bytes != fi.mant_bytes)
            return -1;
        size_t oe = off_exp(&fi);
        memcpy(f + oe, r + off_exp(&ri), (size_t)ri.exp_bytes);
        f[9] = SFP_CODER_RANS;
        f[10] = 0;
        put64(f + 56, ri.exp_bytes);
        *len = oe + (size_t)ri.exp_bytes + 8;
    }
    return 0;
}

static int gen_golden(const char *root)
{
    char dv[1024], di[1024], name[256];
    if (make_dir(root, NULL, dv, sizeof(dv)) < 0 ||
        make_dir(root, "valid", dv, sizeof(dv)) < 0 ||
        make_dir(root, "invalid", di, sizeof(di)) < 0)
        return -1;

    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        size_t rawlen = 0;
        size_t len = encode_spec(&specs[i], 2000 + i, frame_buf, sizeof(frame_buf),
                                 raw_buf, &rawlen);
        if (len == 0)
            return -1;
        snprintf(name, sizeof(name), "%s.sfp", specs[i].name);
        if (write_file(dv, name, frame_buf, len) < 0)
            return -1;
        snprintf(name, sizeof(name), "%s.raw", specs[i].name);
        if (write_file(dv, name, raw_buf, rawlen) < 0)
            return -1;
    }

    char mpath[1100];
    snprintf(mpath, sizeof(mpath), "%s/EXPECTED", di);
    FILE *m = fopen(mpath, "w");
    if (m == NULL) {
        fprintf(stderr, "gen_corpus: %s: %s\n", mpath, strerror(errno));
        return -1;
    }
    fprintf(m, "# file  expected-error  what is wrong (generated by tests/fuzz/gen_corpus.c)\n");
    int rc = 0;
    for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]) && rc == 0; i++) {
        const mutation *mu = &muts[i];
        size_t len = encode_spec(&specs[mu->base], 2000 + (size_t)mu->base, work_buf,
                                 sizeof(work_buf), NULL, NULL);
        if (len == 0) {
            rc = -1;
            break;
        }
        if (mu->set < 0 && mu->xor_mask == 0 && mu->newlen == 0) {
            if (special_mutation(mu, &len) < 0) {
                fprintf(stderr, "gen_corpus: %s: base frame unsuitable\n", mu->name);
                rc = -1;
                break;
            }
        } else if (mu->set >= 0 || mu->xor_mask) {
            long off = mu->off < 0 ? (long)len + mu->off : mu->off;
            if (mu->set >= 0)
                work_buf[off] = (uint8_t)mu->set;
            else
                work_buf[off] ^= mu->xor_mask;
        }
        if (mu->fixsum)
            fix_checksum(work_buf, len);
        if (mu->newlen > 0)
            len = (size_t)mu->newlen;
        else if (mu->newlen < 0)
            len = (size_t)((long)len + mu->newlen);
        size_t n = 0;
        int got = sfp_decode(work_buf, len, raw_buf, sizeof(raw_buf), &n);
        if (got != mu->expect) {
            fprintf(stderr, "gen_corpus: %s: decode gives %s, want %s\n", mu->name,
                    sfp_strerror_name(got), sfp_strerror_name(mu->expect));
            rc = -1;
            break;
        }
        snprintf(name, sizeof(name), "%s.sfp", mu->name);
        rc = write_file(di, name, work_buf, len);
        fprintf(m, "%s %s %s\n", name, sfp_strerror_name(mu->expect), mu->why);
    }
    if (fclose(m) != 0)
        rc = -1;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "corpus") && strcmp(argv[1], "golden"))) {
        fprintf(stderr, "usage: gen_corpus corpus|golden DIR\n");
        return 2;
    }
    /* Frames must not depend on the machine's kernels. */
    if (sfp_set_impl(SFP_IMPL_C) < 0)
        return 1;
    int rc = strcmp(argv[1], "corpus") == 0 ? gen_corpus(argv[2]) : gen_golden(argv[2]);
    return rc < 0 ? 1 : 0;
}
