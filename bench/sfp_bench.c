/*
 * sfp_bench.c - sfp-bench codec: ratio and single-core speed of the sfp
 * codec next to memcpy, zstd -1 and lz4 on the same bytes, in one run.
 *
 * Every timing is the median of --runs runs after one warm-up run
 * (CLOCK_MONOTONIC, one thread). GB/s are 10^9 bytes of FP32 input per
 * second, for encode and decode alike. Every decode is checked bit for bit
 * against sfp_quantize() of the input; a mismatch fails the run (exit 1).
 */
#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "sfp/sfp.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define MAX_SIZES 16
#define MAX_INPUTS 16
#define MAX_RUNS 1000

static const char usage_text[] =
    "usage: sfp-bench tensor KIND SIZE FILE\n"
    "       sfp-bench codec [--sizes LIST] [--runs N] [--impl c|avx2|avx512|auto]\n"
    "                       [--tensors LIST] [--input FILE.f32]... [--no-synthetic]\n"
    "                       [--clock monotonic|thread]\n"
    "\n"
    "  --sizes LIST     comma-separated FP32 input sizes per synthetic tensor,\n"
    "                   with K/M/G suffixes (KiB, MiB, GiB); default 1M,4M,16M,64M\n"
    "  --runs N         timed runs per measurement (median reported; one\n"
    "                   warm-up run first); default 7\n"
    "  --impl IMPL      kernels for the main table: c, avx2, avx512 or auto\n"
    "                   (default); a second table compares c, avx2 and avx512\n"
    "                   (those the CPU has) on the largest size\n"
    "  --tensors LIST   synthetic tensors: comma-separated weights, preact,\n"
    "                   relu50, relu75 (default all)\n"
    "  --input FILE     also benchmark a raw little-endian FP32 file (repeatable)\n"
    "  --no-synthetic   only the --input files\n"
    "  --clock CLOCK    monotonic (default: wall time) or thread (the thread's\n"
    "                   CPU time: excludes preemption on a shared machine)\n"
    "\n"
    "  tensor writes the synthetic tensor KIND (weights, preact, relu50, relu75)\n"
    "  of SIZE bytes (K/M/G suffixes), exactly the one 'codec' measures, as raw\n"
    "  little-endian FP32 to FILE (for whole-process benchmarks)\n";

/* ------------------------------------------------------------- timing */

/* CLOCK_MONOTONIC by default; --clock thread uses the thread's CPU time,
 * which leaves out time the thread spent preempted on a busy machine. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(*t), cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Keeps the compiler from dropping a memcpy whose result is unused. */
static volatile uint8_t sink;

/* ------------------------------------------------------------ tensors */

typedef enum tensor_kind {
    T_WEIGHTS, /* N(0, 0.05)               */
    T_PREACT,  /* N(0, 1)                  */
    T_RELU50,  /* max(0, N(0,1)): 50% zero */
    T_RELU75,  /* 75% zeros                */
    T_FILE,
} tensor_kind;

static const char *const kind_name[] = {
    "weights N(0,0.05)", "pre-activation N(0,1)", "post-ReLU 50% zeros",
    "post-ReLU 75% zeros", "file",
};

static uint64_t rng_s;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Fills x[0..n) with a synthetic tensor (Box-Muller pairs). */
static void gen_tensor(float *x, size_t n, tensor_kind k, uint64_t seed)
{
    rng_s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(rng_unit())), a = 6.283185307179586 * rng_unit();
        double g[2] = {r * cos(a), r * sin(a)};
        for (size_t j = 0; j < 2 && i + j < n; j++) {
            double v = g[j];
            switch (k) {
            case T_WEIGHTS:
                v *= 0.05;
                break;
            case T_RELU50:
                v = v > 0 ? v : 0;
                break;
            case T_RELU75:
                /* 75th percentile of N(0,1) is 0.6745. */
                v = v > 0.6744897501960817 ? v : 0;
                break;
            default:
                break;
            }
            x[i + j] = (float)v;
        }
    }
}

static int read_f32_file(const char *path, float **out, size_t *out_n)
{
    FILE *f = fopen(path, "rb");
    float *buf = NULL;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "sfp-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "sfp-bench: %s: not seekable\n", path);
        goto fail;
    }
    long sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "sfp-bench: %s: %s\n", path, strerror(errno));
        goto fail;
    }
    if (sz == 0 || sz % 4 != 0) {
        fprintf(stderr, "sfp-bench: %s: size %ld is not a positive multiple of 4\n",
                path, sz);
        goto fail;
    }
    if ((buf = malloc((size_t)sz)) == NULL) {
        fprintf(stderr, "sfp-bench: %s: out of memory\n", path);
        goto fail;
    }
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        fprintf(stderr, "sfp-bench: %s: read error\n", path);
        goto fail;
    }
    *out = buf;
    *out_n = (size_t)sz / 4;
    buf = NULL;
    rc = 0;
fail:
    free(buf);
    fclose(f);
    return rc;
}

/* ----------------------------------------------------------- settings */

typedef struct setting {
    const char *name;
    unsigned k, e;
    sfp_coder coder;
    unsigned group;
    unsigned zmap; /* sfp_params.zmap */
} setting;

static const setting settings[] = {
    {"k23e8 plain (lossless)", 23, 8, SFP_CODER_PLAIN, 16, SFP_ZMAP_BITMAP},
    {"k23e8 gecko (lossless)", 23, 8, SFP_CODER_GECKO, 16, SFP_ZMAP_BITMAP},
    {"k23e8 rans (lossless)", 23, 8, SFP_CODER_RANS, 16, SFP_ZMAP_BITMAP},
    {"k7e8 plain (bf16-like)", 7, 8, SFP_CODER_PLAIN, 16, SFP_ZMAP_BITMAP},
    {"k7e8 gecko", 7, 8, SFP_CODER_GECKO, 16, SFP_ZMAP_BITMAP},
    {"k7e8 rans", 7, 8, SFP_CODER_RANS, 16, SFP_ZMAP_BITMAP},
    {"k4e5 gecko", 4, 5, SFP_CODER_GECKO, 16, SFP_ZMAP_BITMAP},
    {"k2e4 plain", 2, 4, SFP_CODER_PLAIN, 16, SFP_ZMAP_BITMAP},
    {"k2e4 gecko", 2, 4, SFP_CODER_GECKO, 16, SFP_ZMAP_BITMAP},
    {"k2e4 gecko g64", 2, 4, SFP_CODER_GECKO, 64, SFP_ZMAP_BITMAP},
    {"k2e4 rans", 2, 4, SFP_CODER_RANS, 16, SFP_ZMAP_BITMAP},
    {"k1e3 gecko", 1, 3, SFP_CODER_GECKO, 16, SFP_ZMAP_BITMAP},
    {"k1e3 rans", 1, 3, SFP_CODER_RANS, 16, SFP_ZMAP_BITMAP},
    /* the Huffman-coded zero map (FORMAT 2.4.1); pays on zeros in runs
     * (real activations, --input), not on the synthetic tensors' */
    {"k2e4 gecko zhuf", 2, 4, SFP_CODER_GECKO, 16, SFP_ZMAP_HUFFMAN},
    {"k2e3 gecko", 2, 3, SFP_CODER_GECKO, 16, SFP_ZMAP_BITMAP},
    {"k2e3 gecko zhuf", 2, 3, SFP_CODER_GECKO, 16, SFP_ZMAP_HUFFMAN},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void params_of(const setting *s, sfp_params *p)
{
    sfp_params_default(p);
    p->mbits = s->k;
    p->ebits = s->e;
    p->coder = s->coder;
    p->gecko_group = s->group;
    p->zmap = s->zmap;
}

/* ------------------------------------------------------------ buffers */

typedef struct bench_ctx {
    int runs;
    size_t cap;          /* bytes of each buffer below      */
    uint8_t *frame;      /* encoded frame / compressed data */
    float *q;            /* sfp_quantize reference          */
    float *out;          /* decoded values                  */
    double *t;           /* run times                       */
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
} bench_ctx;

typedef struct result {
    double ratio, bpv, enc, dec; /* enc/dec in GB/s of input */
    int ok;
} result;

/* ------------------------------------------------------- measurements */

static double gbps(size_t bytes, double sec)
{
    return sec > 0 ? (double)bytes / sec / 1e9 : 0.0;
}

static int bench_memcpy(bench_ctx *c, const float *x, size_t n, result *r)
{
    const size_t bytes = n * 4;
    for (int i = 0; i <= c->runs; i++) {
        double t0 = now_sec();
        memcpy(c->out, x, bytes);
        sink = ((volatile uint8_t *)c->out)[bytes - 1];
        double t1 = now_sec();
        if (i > 0)
            c->t[i - 1] = t1 - t0;
    }
    r->enc = r->dec = gbps(bytes, median(c->t, c->runs));
    r->ratio = 1.0;
    r->bpv = 32.0;
    r->ok = memcmp(c->out, x, bytes) == 0;
    return r->ok ? 0 : -1;
}

static int bench_zstd(bench_ctx *c, const float *x, size_t n, result *r)
{
    const size_t bytes = n * 4;
    size_t clen = 0;
    for (int i = 0; i <= c->runs; i++) {
        double t0 = now_sec();
        clen = ZSTD_compressCCtx(c->zc, c->frame, c->cap, x, bytes, 1);
        double t1 = now_sec();
        if (ZSTD_isError(clen)) {
            fprintf(stderr, "sfp-bench: zstd: %s\n", ZSTD_getErrorName(clen));
            return -1;
        }
        if (i > 0)
            c->t[i - 1] = t1 - t0;
    }
    r->enc = gbps(bytes, median(c->t, c->runs));
    for (int i = 0; i <= c->runs; i++) {
        double t0 = now_sec();
        size_t d = ZSTD_decompressDCtx(c->zd, c->out, bytes, c->frame, clen);
        double t1 = now_sec();
        if (ZSTD_isError(d) || d != bytes) {
            fprintf(stderr, "sfp-bench: zstd decompress failed\n");
            return -1;
        }
        if (i > 0)
            c->t[i - 1] = t1 - t0;
    }
    r->dec = gbps(bytes, median(c->t, c->runs));
    r->ratio = (double)bytes / (double)clen;
    r->bpv = 8.0 * (double)clen / (double)n;
    r->ok = memcmp(c->out, x, bytes) == 0;
    return r->ok ? 0 : -1;
}

static int bench_lz4(bench_ctx *c, const float *x, size_t n, result *r)
{
    const size_t bytes = n * 4;
    int clen = 0;
    if (bytes > (size_t)LZ4_MAX_INPUT_SIZE || c->cap > INT32_MAX) {
        r->ok = 0;
        return -1;
    }
    for (int i = 0; i <= c->runs; i++) {
        double t0 = now_sec();
        clen = LZ4_compress_default((const char *)x, (char *)c->frame, (int)bytes,
                                    (int)c->cap);
        double t1 = now_sec();
        if (clen <= 0) {
            fprintf(stderr, "sfp-bench: lz4 compress failed\n");
            return -1;
        }
        if (i > 0)
            c->t[i - 1] = t1 - t0;
    }
    r->enc = gbps(bytes, median(c->t, c->runs));
    for (int i = 0; i <= c->runs; i++) {
        double t0 = now_sec();
        int d = LZ4_decompress_safe((const char *)c->frame, (char *)c->out, clen,
                                    (int)bytes);
        double t1 = now_sec();
        if (d != (int)bytes) {
            fprintf(stderr, "sfp-bench: lz4 decompress failed\n");
            return -1;
        }
        if (i > 0)
            c->t[i - 1] = t1 - t0;
    }
    r->dec = gbps(bytes, median(c->t, c->runs));
    r->ratio = (double)bytes / (double)clen;
    r->bpv = 8.0 * (double)clen / (double)n;
    r->ok = memcmp(c->out, x, bytes) == 0;
    return r->ok ? 0 : -1;
}

/* Times encode and decode of one setting; checks decode == quantize. */
static int bench_sfp(bench_ctx *c, const float *x, size_t n, const setting *s,
                     result *r)
{
    const size_t bytes = n * 4;
    sfp_params p;
    size_t flen = 0;
    int rc;

    params_of(s, &p);
    if ((rc = sfp_quantize(c->q, x, n, &p, NULL)) < 0) {
        fprintf(stderr, "sfp-bench: %s: quantize: %s: %s\n", s->name,
                sfp_strerror_name(rc), sfp_strerror(rc));
        return -1;
    }
    for (int i = 0; i <= c->runs; i++) {
        double t0 = now_sec();
        rc = sfp_encode(x, n, &p, c->frame, c->cap, &flen, NULL);
        double t1 = now_sec();
        if (rc < 0) {
            fprintf(stderr, "sfp-bench: %s: encode: %s: %s\n", s->name,
                    sfp_strerror_name(rc), sfp_strerror(rc));
            return -1;
        }
        if (i > 0)
            c->t[i - 1] = t1 - t0;
    }
    r->enc = gbps(bytes, median(c->t, c->runs));
    for (int i = 0; i <= c->runs; i++) {
        size_t got = 0;
        double t0 = now_sec();
        rc = sfp_decode(c->frame, flen, c->out, bytes, &got);
        double t1 = now_sec();
        if (rc < 0 || got != n) {
            fprintf(stderr, "sfp-bench: %s: decode: %s: %s\n", s->name,
                    sfp_strerror_name(rc), sfp_strerror(rc));
            return -1;
        }
        if (i > 0)
            c->t[i - 1] = t1 - t0;
    }
    r->dec = gbps(bytes, median(c->t, c->runs));
    r->ratio = (double)bytes / (double)flen;
    r->bpv = 8.0 * (double)flen / (double)n;
    r->ok = memcmp(c->out, c->q, bytes) == 0;
    if (!r->ok)
        fprintf(stderr, "sfp-bench: %s: decode differs from sfp_quantize\n", s->name);
    return r->ok ? 0 : -1;
}

/* ------------------------------------------------------------ reports */

static const char *impl_name(sfp_impl i)
{
    return i == SFP_IMPL_C ? "c" : i == SFP_IMPL_AVX2 ? "avx2" : i == SFP_IMPL_AVX512 ? "avx512" : "auto";
}

static void size_text(size_t bytes, char *buf, size_t cap)
{
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, cap, "%zu MiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, cap, "%zu KiB", bytes >> 10);
    else
        snprintf(buf, cap, "%zu B", bytes);
}

static void print_header(void)
{
    printf("| %-24s | %7s | %6s | %8s | %8s | %7s | %7s | %8s | %10s |\n", "codec",
           "ratio", "bits/v", "enc GB/s", "dec GB/s", "enc/cpy", "dec/cpy",
           "enc/zstd", "ratio/zstd");
    printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", "--------------------------",
           "--------:", "-------:", "---------:", "---------:", "--------:", "--------:",
           "---------:", "-----------:");
}

static void print_row(const char *name, const result *r, const result *cpy,
                      const result *zstd)
{
    printf("| %-24s | %7.3f | %6.2f | %8.2f | %8.2f | %7.2f | %7.2f | %8.2f | %10.2f |\n",
           name, r->ratio, r->bpv, r->enc, r->dec, r->enc / cpy->enc, r->dec / cpy->dec,
           r->enc / zstd->enc, r->ratio / zstd->ratio);
}

/* Main table for one tensor. Returns 0 or -1 (a check failed). */
static int bench_tensor(bench_ctx *c, const char *label, const float *x, size_t n,
                        sfp_impl impl)
{
    result cpy, zstd, lz4, r;
    char sz[32];
    int fail = 0;

    size_text(n * 4, sz, sizeof(sz));
    sfp_set_impl(impl);
    printf("\n### %s, %s (%zu values), kernels %s\n\n", label, sz, n,
           impl_name(sfp_get_impl()));
    fflush(stdout);
    if (bench_memcpy(c, x, n, &cpy) < 0 || bench_zstd(c, x, n, &zstd) < 0 ||
        bench_lz4(c, x, n, &lz4) < 0)
        return -1;
    print_header();
    print_row("memcpy", &cpy, &cpy, &zstd);
    print_row("zstd -1", &zstd, &cpy, &zstd);
    print_row("lz4 (default)", &lz4, &cpy, &zstd);
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (bench_sfp(c, x, n, &settings[i], &r) < 0) {
            printf("| %-24s | %s |\n", settings[i].name, "FAILED (see stderr)");
            fail = 1;
            continue;
        }
        print_row(settings[i].name, &r, &cpy, &zstd);
        fflush(stdout);
    }
    /* memcpy again: the ratio columns divide by the first measurement, and
     * on a shared machine memory bandwidth drifts while the rows run */
    result again;
    if (bench_memcpy(c, x, n, &again) < 0)
        return -1;
    printf("\nmemcpy measured again after the rows: %.2f GB/s (%.2fx the first)\n", again.enc,
           cpy.enc > 0 ? again.enc / cpy.enc : 0.0);
    return fail ? -1 : 0;
}

/* C reference vs AVX2 vs AVX-512 kernels on a few settings, same tensor,
 * same run; "n/a" where the CPU or the build lacks a set. */
static int bench_impls(bench_ctx *c, const char *label, const float *x, size_t n)
{
    static const size_t pick[] = {0, 1, 3, 8, 11};
    static const sfp_impl impls[3] = {SFP_IMPL_C, SFP_IMPL_AVX2, SFP_IMPL_AVX512};
    char sz[32];
    int fail = 0, have[3];

    for (int m = 0; m < 3; m++)
        have[m] = sfp_set_impl(impls[m]) == 0;
    size_text(n * 4, sz, sizeof(sz));
    printf("\n### kernels: c vs avx2 vs avx512, %s, %s (GB/s; x = vs c)\n\n", label, sz);
    printf("| %-24s | %7s | %7s | %7s | %7s | %7s | %7s | %8s | %8s | %8s | %8s |\n",
           "codec", "enc c", "enc avx2", "enc 512", "dec c", "dec avx2", "dec 512",
           "enc 2 x", "enc 512 x", "dec 2 x", "dec 512 x");
    printf("|--------------------------|--------:|--------:|--------:|--------:|--------:|"
           "--------:|---------:|---------:|---------:|---------:|\n");
    for (size_t i = 0; i < sizeof(pick) / sizeof(pick[0]); i++) {
        const setting *s = &settings[pick[i]];
        result r[3];
        char cell[10][16];
        for (int m = 0; m < 3; m++) {
            memset(&r[m], 0, sizeof(r[m]));
            if (!have[m])
                continue;
            sfp_set_impl(impls[m]);
            if (bench_sfp(c, x, n, s, &r[m]) < 0)
                fail = 1;
        }
        for (int m = 0; m < 3; m++) {
            snprintf(cell[m], 16, have[m] ? "%.2f" : "n/a", r[m].enc);
            snprintf(cell[3 + m], 16, have[m] ? "%.2f" : "n/a", r[m].dec);
        }
        for (int m = 1; m < 3; m++) {
            int ok = have[m] && r[0].enc > 0 && r[0].dec > 0;
            snprintf(cell[5 + m], 16, ok ? "%.2f" : "n/a", ok ? r[m].enc / r[0].enc : 0.0);
            snprintf(cell[7 + m], 16, ok ? "%.2f" : "n/a", ok ? r[m].dec / r[0].dec : 0.0);
        }
        printf("| %-24s | %7s | %7s | %7s | %7s | %7s | %7s | %8s | %8s | %8s | %8s |\n",
               s->name, cell[0], cell[1], cell[2], cell[3], cell[4], cell[5], cell[6],
               cell[7], cell[8], cell[9]);
        fflush(stdout);
    }
    return fail ? -1 : 0;
}

/* ---------------------------------------------------------------- main */

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024 * 1024 * 1024, end++;
    if (*end == 'i')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || v == 0 || v > (1ull << 34) / mul)
        return -1;
    v *= mul;
    if (v % 4 != 0 || v < 64)
        return -1;
    *out = (size_t)v;
    return 0;
}

static void print_cpu(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 1 + (p[1] == ' ');
                p[strcspn(p, "\n")] = '\0';
                printf("cpu: %s\n", p);
            }
            break;
        }
    }
    fclose(f);
}

static int usage(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "sfp-bench: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

static const char *const tensor_arg[] = {"weights", "preact", "relu50", "relu75"};

/* sfp-bench tensor KIND SIZE FILE */
static int write_tensor(int argc, char **argv)
{
    size_t bytes;
    int k = 0;
    if (argc != 5)
        return usage("tensor: expected KIND SIZE FILE%s", "");
    while (k < 4 && strcmp(argv[2], tensor_arg[k]) != 0)
        k++;
    if (k == 4)
        return usage("tensor: unknown KIND '%s' (weights, preact, relu50, relu75)", argv[2]);
    if (parse_size(argv[3], &bytes) < 0)
        return usage("tensor: bad SIZE '%s'", argv[3]);
    float *x = malloc(bytes);
    FILE *f = fopen(argv[4], "wb");
    int rc = EXIT_FAIL;
    if (x && f) {
        gen_tensor(x, bytes / 4, (tensor_kind)k, UINT64_C(0x5f9) + (uint64_t)k);
        if (fwrite(x, 1, bytes, f) == bytes)
            rc = 0;
    }
    if (f && fclose(f) != 0)
        rc = EXIT_FAIL;
    if (rc != 0)
        fprintf(stderr, "sfp-bench: tensor: %s: %s\n", argv[4], x ? strerror(errno) : "out of memory");
    free(x);
    return rc;
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES] = {1u << 20, 4u << 20, 16u << 20, 64u << 20};
    int nsizes = 4, runs = 7, synthetic = 1, ninputs = 0;
    const char *inputs[MAX_INPUTS];
    sfp_impl impl = SFP_IMPL_AUTO;
    unsigned tensors = 15; /* bit k: tensor_kind k */
    bench_ctx c;
    float *x = NULL;
    int status = EXIT_FAIL;

    memset(&c, 0, sizeof(c));
    if (argc < 2)
        return usage(NULL, NULL);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "tensor") == 0)
        return write_tensor(argc, argv);
    if (strcmp(argv[1], "codec") != 0)
        return usage("unknown benchmark '%s' (codec or tensor)", argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--no-synthetic") == 0) {
            synthetic = 0;
            continue;
        }
        if (v == NULL)
            return usage("option '%s' needs a value (or is unknown)", a);
        i++;
        if (strcmp(a, "--sizes") == 0) {
            char buf[256];
            snprintf(buf, sizeof(buf), "%s", v);
            nsizes = 0;
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
                 tok = strtok_r(NULL, ",", &save)) {
                if (nsizes == MAX_SIZES || parse_size(tok, &sizes[nsizes]) < 0)
                    return usage("bad --sizes entry in '%s' (e.g. 256K,1M,64M)", v);
                nsizes++;
            }
            if (nsizes == 0)
                return usage("empty --sizes '%s'", v);
        } else if (strcmp(a, "--runs") == 0) {
            char *end;
            long r = strtol(v, &end, 10);
            if (*end || r < 1 || r > MAX_RUNS)
                return usage("--runs must be 1..1000, not '%s'", v);
            runs = (int)r;
        } else if (strcmp(a, "--impl") == 0) {
            if (strcmp(v, "c") == 0)
                impl = SFP_IMPL_C;
            else if (strcmp(v, "avx2") == 0)
                impl = SFP_IMPL_AVX2;
            else if (strcmp(v, "avx512") == 0)
                impl = SFP_IMPL_AVX512;
            else if (strcmp(v, "auto") == 0)
                impl = SFP_IMPL_AUTO;
            else
                return usage("--impl must be c, avx2, avx512 or auto, not '%s'", v);
            if (sfp_set_impl(impl) < 0) {
                fprintf(stderr, "sfp-bench: --impl %s: not supported on this CPU/build\n", v);
                return EXIT_FAIL;
            }
        } else if (strcmp(a, "--tensors") == 0) {
            const char *const *tn = tensor_arg;
            char buf[256];
            snprintf(buf, sizeof(buf), "%s", v);
            tensors = 0;
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
                 tok = strtok_r(NULL, ",", &save)) {
                int k = 0;
                while (k < 4 && strcmp(tok, tn[k]) != 0)
                    k++;
                if (k == 4)
                    return usage("--tensors: unknown tensor in '%s' (weights, preact, relu50, relu75)", v);
                tensors |= 1u << k;
            }
        } else if (strcmp(a, "--clock") == 0) {
            if (strcmp(v, "monotonic") == 0)
                bench_clock = CLOCK_MONOTONIC;
            else if (strcmp(v, "thread") == 0)
                bench_clock = CLOCK_THREAD_CPUTIME_ID;
            else
                return usage("--clock must be monotonic or thread, not '%s'", v);
        } else if (strcmp(a, "--input") == 0) {
            if (ninputs == MAX_INPUTS)
                return usage("at most 16 --input files%s", "");
            inputs[ninputs++] = v;
        } else {
            return usage("unknown option '%s'", a);
        }
    }

    /* Buffers sized for the largest tensor. */
    size_t maxn = 0;
    float *files[MAX_INPUTS] = {NULL};
    size_t filen[MAX_INPUTS] = {0};
    for (int i = 0; synthetic && i < nsizes; i++)
        maxn = sizes[i] / 4 > maxn ? sizes[i] / 4 : maxn;
    for (int i = 0; i < ninputs; i++) {
        if (read_f32_file(inputs[i], &files[i], &filen[i]) < 0)
            goto fail;
        maxn = filen[i] > maxn ? filen[i] : maxn;
    }
    if (maxn == 0)
        return usage("nothing to benchmark%s", "");
    c.runs = runs;
    for (size_t i = 0; i < NSETTINGS; i++) {
        sfp_params p;
        params_of(&settings[i], &p);
        size_t b = sfp_frame_bound(maxn, &p);
        if (b == 0) {
            fprintf(stderr, "sfp-bench: %s: no frame bound for %zu values\n",
                    settings[i].name, maxn);
            goto fail;
        }
        c.cap = b > c.cap ? b : c.cap;
    }
    if (ZSTD_compressBound(maxn * 4) > c.cap)
        c.cap = ZSTD_compressBound(maxn * 4);
    if (maxn * 4 <= (size_t)LZ4_MAX_INPUT_SIZE &&
        (size_t)LZ4_compressBound((int)(maxn * 4)) > c.cap)
        c.cap = (size_t)LZ4_compressBound((int)(maxn * 4));
    c.frame = malloc(c.cap);
    c.q = malloc(maxn * 4);
    c.out = malloc(maxn * 4);
    c.t = malloc(sizeof(double) * (size_t)runs);
    x = malloc(maxn * 4);
    c.zc = ZSTD_createCCtx();
    c.zd = ZSTD_createDCtx();
    if (!c.frame || !c.q || !c.out || !c.t || !x || !c.zc || !c.zd) {
        fprintf(stderr, "sfp-bench: out of memory\n");
        goto fail;
    }
    /* Touch every page once so no run pays for first faults. */
    memset(c.frame, 0, c.cap);
    memset(c.q, 0, maxn * 4);
    memset(c.out, 0, maxn * 4);

    printf("sfp-bench codec: libsfp %s, zstd %s, lz4 %s\n", sfp_version(),
           ZSTD_versionString(), LZ4_versionString());
    print_cpu();
    printf("single thread; median of %d runs after 1 warm-up (clock %s); GB/s = 1e9 "
           "bytes of FP32 input per second\n", runs,
           bench_clock == CLOCK_MONOTONIC ? "monotonic" : "thread CPU time");
    printf("enc/cpy, dec/cpy: speed relative to memcpy; enc/zstd: encode speed / "
           "zstd -1 compress speed; ratio/zstd: ratio / zstd -1 ratio\n");

    int failed = 0;
    for (int s = 0; synthetic && s < nsizes; s++) {
        size_t n = sizes[s] / 4;
        for (int k = T_WEIGHTS; k <= T_RELU75; k++) {
            if (!(tensors >> k & 1))
                continue;
            gen_tensor(x, n, (tensor_kind)k, UINT64_C(0x5f9) + (uint64_t)k);
            if (bench_tensor(&c, kind_name[k], x, n, impl) < 0)
                failed = 1;
            if (s == nsizes - 1 && bench_impls(&c, kind_name[k], x, n) < 0)
                failed = 1;
        }
    }
    for (int i = 0; i < ninputs; i++) {
        if (bench_tensor(&c, inputs[i], files[i], filen[i], impl) < 0)
            failed = 1;
        if (bench_impls(&c, inputs[i], files[i], filen[i]) < 0)
            failed = 1;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "sfp-bench: write error\n");
        goto fail;
    }
    status = failed ? EXIT_FAIL : 0;
    if (failed)
        fprintf(stderr, "sfp-bench: some checks FAILED\n");
fail:
    for (int i = 0; i < ninputs; i++)
        free(files[i]);
    ZSTD_freeCCtx(c.zc);
    ZSTD_freeDCtx(c.zd);
    free(c.frame);
    free(c.q);
    free(c.out);
    free(c.t);
    free(x);
    return status;
}
