/*
 * sfp_expstudy.c - exponent coding on real training tensors.
 *
 * Reads the tensors that bench/sfp_tap.c dumped from an sfp-train run
 * (DIR/index.tsv + raw float32 files), quantizes each with the container the
 * trainer chose, and compares, in bits per value over the tensor's values:
 *
 *   plain / gecko / rans   zero map + exponent plane of libsfp's real frames
 *                          (header fields from sfp_frame_parse), the zero
 *                          map Huffman-coded where smaller (sfp-train's
 *                          default --zmap)
 *   entropy                order-0 empirical entropy of the exponent codes
 *                          with zero as a symbol (what any coder of the code
 *                          sequence without context needs, tables free)
 *   entropy1               order-1 empirical entropy H(c_i | c_{i-1}) in
 *                          tensor order (a coder with one code of context)
 *   zstd-3 / zstd-19 / lz4 / lz4hc   general-purpose compressors on the same
 *                          codes, one byte per value
 *   ctx1                   the prototype context-modelled coder of ctx1.c
 *                          (order-1 rANS, a table per previous code): its
 *                          plane, the frame it would make (header, sign and
 *                          mantissa planes, trailer) and its decode speed
 *                          (codes and values), checked by a round trip
 *
 * and the encode+decode speed of each libsfp coder (median of --runs).
 * Output: one JSON object on stdout (schema sfp-expstudy/1) with a record per
 * dumped tensor, including histograms of the codes (as distance below the
 * anchor) and of the Gecko group delta widths.
 *
 * usage: sfp-expstudy [--runs N] [--label L] DIR
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lz4.h>
#include <lz4hc.h>
#include <zstd.h>

#include <sfp/sfp.h>

#include "ctx1.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust to preemption on a shared machine */
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned bitlen(unsigned v)
{
    unsigned b = 0;
    while (v) {
        b++;
        v >>= 1;
    }
    return b;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "sfp-expstudy: out of memory\n");
        exit(1);
    }
    return p;
}

static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *x = xmalloc(n * sizeof(float));
    size_t got = fread(x, sizeof(float), n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != n || extra != EOF) {
        free(x);
        return NULL;
    }
    return x;
}

typedef struct coder_res {
    double exp_bits;   /* (zmap + exp bytes) * 8 / n          */
    double frame_bits; /* whole frame * 8 / n                  */
    double enc_ns, dec_ns; /* per value, median                */
    int zmap, coder_used;
} coder_res;

static int run_coder(const float *x, size_t n, const sfp_params *base,
                     sfp_coder c, int runs, coder_res *r, float *tmp)
{
    sfp_params p = *base;
    p.coder = c;
    size_t cap = sfp_frame_bound(n, &p);
    if (!cap)
        return SFP_EINVAL;
    unsigned char *buf = xmalloc(cap);
    double *te = xmalloc(sizeof(double) * (size_t)runs);
    double *td = xmalloc(sizeof(double) * (size_t)runs);
    size_t len = 0;
    int rc = 0;
    for (int i = 0; i < runs && !rc; i++) {
        double t0 = now();
        rc = sfp_encode(x, n, &p, buf, cap, &len, NULL);
        double t1 = now();
        if (!rc)
            rc = sfp_decode(buf, len, tmp, n * sizeof(float), NULL);
        double t2 = now();
        te[i] = t1 - t0;
        td[i] = t2 - t1;
    }
    sfp_frame_info fi;
    if (!rc)
        rc = sfp_frame_parse(buf, len, &fi);
    if (!rc) {
        qsort(te, (size_t)runs, sizeof(double), cmp_d);
        qsort(td, (size_t)runs, sizeof(double), cmp_d);
        r->exp_bits = 8.0 * (double)(fi.zmap_bytes + fi.exp_bytes) / (double)n;
        r->frame_bits = 8.0 * (double)fi.frame_bytes / (double)n;
        r->enc_ns = 1e9 * te[runs / 2] / (double)n;
        r->dec_ns = 1e9 * td[runs / 2] / (double)n;
        r->zmap = (fi.flags & SFP_FLAG_ZMAP) != 0;
        r->coder_used = (int)fi.coder;
    }
    free(buf);
    free(te);
    free(td);
    return rc;
}

typedef struct ctx1_res {
    double plane_bits, frame_bits; /* per value                        */
    double enc_ns, dec_ns, codes_ns; /* per value, median; dec = codes + values */
} ctx1_res;

/* Packs one bit per non-zero value (sign) and k bits (mantissa field). */
static void pack_planes(const float *q, size_t n, unsigned k, uint8_t *sign,
                        uint8_t *mant, size_t *nz_out)
{
    size_t nz = 0;
    uint64_t mb = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &q[i], 4);
        if ((b & 0x7fffffffu) == 0)
            continue;
        if (b >> 31)
            sign[nz >> 3] |= (uint8_t)(1u << (nz & 7));
        uint32_t m = (b & 0x7fffffu) >> (23 - k);
        for (unsigned j = 0; j < k; j++, mb++)
            if (m >> j & 1)
                mant[mb >> 3] |= (uint8_t)(1u << (mb & 7));
        nz++;
    }
    *nz_out = nz;
}

static int run_ctx1(const float *q, const uint8_t *codes, size_t n, unsigned k,
                    unsigned e, int anchor, int runs, ctx1_res *r)
{
    /* codes cost at most 2 bytes each, plus the tables and the states */
    size_t cap = 2 * n + 2 + CTX1_MAX_CTX * (32 + 2 * 256) + 16, nz = 0;
    uint8_t *buf = xmalloc(cap), *sign = calloc(n / 8 + 16, 1),
            *mant = calloc(n * k / 8 + 16, 1), *back = xmalloc(n);
    float *vals = xmalloc(n * sizeof(float));
    ctx1_dec *d = xmalloc(sizeof *d);
    double *te = xmalloc(sizeof(double) * (size_t)runs),
           *td = xmalloc(sizeof(double) * (size_t)runs),
           *tc = xmalloc(sizeof(double) * (size_t)runs);
    int rc = 0;
    if (!sign || !mant) {
        fprintf(stderr, "sfp-expstudy: out of memory\n");
        exit(1);
    }
    pack_planes(q, n, k, sign, mant, &nz);
    size_t len = 0;
    for (int i = 0; i < runs && !rc; i++) {
        double t0 = now();
        len = ctx1_encode(codes, n, e, buf, cap);
        double t1 = now();
        if (!len || ctx1_dec_init(d, buf, len, e) || ctx1_decode(d, back, n))
            rc = -1;
        double t2 = now();
        ctx1_assemble(back, n, k, e, anchor, sign, mant, vals);
        double t3 = now();
        te[i] = t1 - t0;
        tc[i] = t2 - t1;
        td[i] = t3 - t1;
    }
    /* the round trip must give back the codes and the values */
    if (!rc && (memcmp(back, codes, n) || memcmp(vals, q, n * sizeof(float))))
        for (size_t i = 0; i < n && !rc; i++) {
            uint32_t a, b;
            memcpy(&a, &vals[i], 4);
            memcpy(&b, &q[i], 4);
            if (back[i] != codes[i] || (a != b && ((a | b) & 0x7fffffffu)))
                rc = -1; /* -0 reads back as +0: the prototype drops zero signs */
        }
    if (!rc) {
        qsort(te, (size_t)runs, sizeof(double), cmp_d);
        qsort(td, (size_t)runs, sizeof(double), cmp_d);
        qsort(tc, (size_t)runs, sizeof(double), cmp_d);
        r->plane_bits = 8.0 * (double)len / (double)n;
        /* like libsfp's frames: no sign plane when no value is negative */
        int neg = 0;
        for (size_t i = 0; i < (nz + 7) / 8 && !neg; i++)
            neg = sign[i] != 0;
        r->frame_bits = 8.0 * (double)(64 + (neg ? (nz + 7) / 8 : 0) + (nz * k + 7) / 8 +
                                       len + 8) / (double)n;
        r->enc_ns = 1e9 * te[runs / 2] / (double)n;
        r->dec_ns = 1e9 * td[runs / 2] / (double)n;
        r->codes_ns = 1e9 * tc[runs / 2] / (double)n;
    }
    free(buf), free(sign), free(mant), free(back), free(vals), free(d);
    free(te), free(td), free(tc);
    return rc;
}

int main(int argc, char **argv)
{
    int runs = 5;
    const char *dir = NULL, *label = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 1 || runs > 1000) {
                fprintf(stderr, "sfp-expstudy: --runs 1..1000\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--label") && i + 1 < argc) {
            label = argv[++i];
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "usage: sfp-expstudy [--runs N] [--label L] DIR\n");
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: sfp-expstudy [--runs N] [--label L] DIR\n");
        return 2;
    }
    char path[4096], line[1024];
    snprintf(path, sizeof path, "%s/index.tsv", dir);
    FILE *idx = fopen(path, "r");
    if (!idx) {
        fprintf(stderr, "sfp-expstudy: cannot open %s\n", path);
        return 1;
    }
    printf("{\"schema\": \"sfp-expstudy/1\", \"label\": \"");
    for (const char *s = label; *s; s++)
        if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
            putchar(*s);
    printf("\", \"runs\": %d, \"tensors\": [", runs);
    int nrec = 0, bad = 0;
    if (!fgets(line, sizeof line, idx)) { /* header */
        fclose(idx);
        fprintf(stderr, "sfp-expstudy: empty index\n");
        return 1;
    }
    while (fgets(line, sizeof line, idx)) {
        unsigned long long seq;
        char fn[16], file[256];
        size_t n;
        unsigned k, e;
        int anchor, coder, rounding;
        if (sscanf(line, "%llu %15s %zu %u %u %d %d %d %255s", &seq, fn, &n, &k,
                   &e, &anchor, &coder, &rounding, file) != 9 || !n ||
            n > ((size_t)1 << 30) || strchr(file, '/')) {
            fprintf(stderr, "sfp-expstudy: bad index line: %s", line);
            bad = 1;
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, file);
        float *x = read_f32(path, n);
        if (!x) {
            fprintf(stderr, "sfp-expstudy: cannot read %s (%zu values)\n", path, n);
            bad = 1;
            break;
        }
        sfp_params p;
        sfp_params_default(&p);
        p.mbits = k;
        p.ebits = e;
        p.anchor = anchor;
        p.rounding = (sfp_rounding)rounding;
        p.seed = 0;
        p.zmap = SFP_ZMAP_HUFFMAN;
        if (sfp_params_check(&p)) {
            fprintf(stderr, "sfp-expstudy: bad params in %s\n", file);
            free(x);
            bad = 1;
            break;
        }
        /* the values the frames hold */
        float *q = xmalloc(n * sizeof(float)), *tmp = xmalloc(n * sizeof(float));
        sfp_qstats st;
        int rc = sfp_quantize(q, x, n, &p, &st);
        if (rc) {
            fprintf(stderr, "sfp-expstudy: %s: %s\n", file, sfp_strerror(rc));
            bad = 1;
            free(x), free(q), free(tmp);
            break;
        }
        /* exponent codes, zero = 0 (docs/FORMAT.md 1) */
        const int A = st.anchor, lo = A - (1 << e) + 2;
        unsigned char *codes = xmalloc(n);
        uint64_t hist[256] = { 0 }, below[256] = { 0 };
        size_t nz = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t b;
            memcpy(&b, &q[i], 4);
            if ((b & 0x7fffffffu) == 0) {
                codes[i] = 0;
            } else {
                int E = (int)((b >> 23) & 0xff);
                int c = E - lo + 1;
                if (c < 1 || c > 255)
                    c = 255; /* cannot happen on the grid */
                codes[i] = (unsigned char)c;
                below[A - E < 255 ? A - E : 255]++;
                nz++;
            }
            hist[codes[i]]++;
        }
        /* order-1: H(c_i | c_{i-1}) in tensor order, the previous code of
         * the first value taken as 0 */
        uint32_t *pair = calloc(256 * 256, sizeof(uint32_t));
        if (!pair) {
            fprintf(stderr, "sfp-expstudy: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            pair[(i ? codes[i - 1] : 0) * 256 + codes[i]]++;
        double H1 = 0;
        for (int a = 0; a < 256; a++) {
            uint64_t row = 0;
            for (int b = 0; b < 256; b++)
                row += pair[a * 256 + b];
            for (int b = 0; row && b < 256; b++)
                if (pair[a * 256 + b]) {
                    double pr = (double)pair[a * 256 + b] / (double)row;
                    H1 -= (double)pair[a * 256 + b] / (double)n * log2(pr);
                }
        }
        free(pair);
        double H = 0, Hnz = 0;
        for (int c = 0; c < 256; c++) {
            if (hist[c]) {
                double pr = (double)hist[c] / (double)n;
                H -= pr * log2(pr);
            }
            if (c && hist[c] && nz) {
                double pr = (double)hist[c] / (double)nz;
                Hnz -= pr * log2(pr);
            }
        }
        /* Gecko delta widths (G = 16) over the code sequence as the Gecko
         * frame orders it: non-zero codes with a zero map, all otherwise. */
        coder_res cr[3];
        memset(cr, 0, sizeof cr);
        static const sfp_coder cs[3] = { SFP_CODER_PLAIN, SFP_CODER_GECKO, SFP_CODER_RANS };
        for (int c = 0; c < 3 && !rc; c++)
            rc = run_coder(q, n, &p, cs[c], runs, &cr[c], tmp);
        if (rc) {
            fprintf(stderr, "sfp-expstudy: %s: %s\n", file, sfp_strerror(rc));
            bad = 1;
            free(x), free(q), free(tmp), free(codes);
            break;
        }
        uint64_t whist[9] = { 0 };
        {
            const int G = SFP_GECKO_GROUP_DEFAULT;
            unsigned char grp[64];
            int g = 0;
            for (size_t i = 0; i <= n; i++) {
                int flush = i == n;
                if (!flush) {
                    if (cr[1].zmap && codes[i] == 0)
                        continue;
                    grp[g++] = codes[i];
                    flush = g == G;
                }
                if (flush && g) {
                    unsigned mx = 0, mn = 255;
                    for (int j = 0; j < g; j++) {
                        mx = grp[j] > mx ? grp[j] : mx;
                        mn = grp[j] < mn ? grp[j] : mn;
                    }
                    unsigned w = bitlen(mx - mn);
                    whist[w < 8 ? w : 8]++;
                    g = 0;
                }
            }
        }
        /* general-purpose compressors on the code bytes */
        size_t zc = ZSTD_compressBound(n), lc = (size_t)LZ4_compressBound((int)n);
        unsigned char *zb = xmalloc(zc > lc ? zc : lc);
        size_t z3 = ZSTD_compress(zb, zc, codes, n, 3);
        size_t z19 = ZSTD_compress(zb, zc, codes, n, 19);
        int l1 = LZ4_compress_default((const char *)codes, (char *)zb, (int)n, (int)lc);
        int lh = LZ4_compress_HC((const char *)codes, (char *)zb, (int)n, (int)lc, LZ4HC_CLEVEL_MAX);
        if (ZSTD_isError(z3) || ZSTD_isError(z19) || l1 <= 0 || lh <= 0) {
            fprintf(stderr, "sfp-expstudy: %s: compressor failed\n", file);
            bad = 1;
            free(x), free(q), free(tmp), free(codes), free(zb);
            break;
        }
        ctx1_res cx;
        memset(&cx, 0, sizeof cx);
        if (run_ctx1(q, codes, n, k, e, A, runs, &cx)) {
            fprintf(stderr, "sfp-expstudy: %s: ctx1 prototype round trip failed\n", file);
            bad = 1;
            free(x), free(q), free(tmp), free(codes), free(zb);
            break;
        }
        printf("%s\n  {\"seq\": %llu, \"fn\": \"%s\", \"n\": %zu, \"k\": %u, \"e\": %u, "
               "\"anchor\": %d, \"zero_fraction\": %.6f,\n   \"bits\": {\"entropy\": %.5f, "
               "\"entropy1\": %.5f, \"entropy_nonzero\": %.5f, \"plain\": %.5f, \"gecko\": %.5f, \"rans\": %.5f, "
               "\"zstd3\": %.5f, \"zstd19\": %.5f, \"lz4\": %.5f, \"lz4hc\": %.5f},\n"
               "   \"frame_bits\": {\"plain\": %.5f, \"gecko\": %.5f, \"rans\": %.5f},\n"
               "   \"ctx1\": {\"plane_bits\": %.5f, \"frame_bits\": %.5f, \"enc_ns\": %.3f, "
               "\"dec_ns\": %.3f, \"dec_codes_ns\": %.3f},\n"
               "   \"zmap\": {\"plain\": %d, \"gecko\": %d, \"rans\": %d}, \"rans_used\": %d,\n"
               "   \"ns_per_value\": {\"plain\": [%.3f, %.3f], \"gecko\": [%.3f, %.3f], "
               "\"rans\": [%.3f, %.3f]},\n   \"below_anchor\": [",
               nrec ? "," : "", seq, fn, n, k, e, A, (double)(n - nz) / (double)n,
               H, H1, Hnz, cr[0].exp_bits, cr[1].exp_bits, cr[2].exp_bits,
               8.0 * (double)z3 / (double)n, 8.0 * (double)z19 / (double)n,
               8.0 * l1 / (double)n, 8.0 * lh / (double)n,
               cr[0].frame_bits, cr[1].frame_bits, cr[2].frame_bits,
               cx.plane_bits, cx.frame_bits, cx.enc_ns, cx.dec_ns, cx.codes_ns,
               cr[0].zmap, cr[1].zmap, cr[2].zmap, cr[2].coder_used == SFP_CODER_RANS,
               cr[0].enc_ns, cr[0].dec_ns, cr[1].enc_ns, cr[1].dec_ns,
               cr[2].enc_ns, cr[2].dec_ns);
        int last = 0;
        for (int i = 0; i < 256; i++)
            if (below[i])
                last = i;
        for (int i = 0; i <= last; i++)
            printf("%s%llu", i ? ", " : "", (unsigned long long)below[i]);
        printf("], \"gecko_width\": [");
        for (int i = 0; i <= 8; i++)
            printf("%s%llu", i ? ", " : "", (unsigned long long)whist[i]);
        printf("]}");
        nrec++;
        free(x), free(q), free(tmp), free(codes), free(zb);
    }
    fclose(idx);
    printf("\n]}\n");
    if (bad)
        return 1;
    if (!nrec) {
        fprintf(stderr, "sfp-expstudy: no tensors in %s\n", dir);
        return 1;
    }
    return 0;
}
