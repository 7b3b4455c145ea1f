/*
 * sfp_tap.c - LD_PRELOAD tap on libsfp's sfp_encode / sfp_encode_q.
 *
 * Loaded into an unmodified sfp-train (LD_PRELOAD=.../libsfp-tap.so), it sees
 * every tensor the trainer encodes: activation stashes (sfp_encode from a
 * stash, or sfp_encode_q with the tensor as its own quantized output from the
 * in-process stash, which quantizes while it encodes) and weight pieces
 * (sfp_encode_q with a separate output, from the weight exchange), with the
 * container parameters the policy chose. It forwards every call unchanged to
 * the real libsfp, so the run computes exactly what it would without the tap.
 *
 * In the trace and the dumps, fn "encode" is an activation stash and
 * "encode_q" a weight or bias piece.
 *
 * Environment:
 *   SFP_TAP_TRACE=FILE   one TSV line per call: seq fn n k e anchor coder bytes
 *   SFP_TAP_DUMP=DIR     dump the input values of some calls to DIR
 *   SFP_TAP_EVERY=N      dump the 1st, (N+1)th, (2N+1)th ... call of every
 *                        (function, n) pair (default 1000)
 *   SFP_TAP_MAX=N        at most N dumps per (function, n) pair (default 8)
 * Dumps are DIR/<seq>-<fn>-<n>.f32 (raw little-endian float32, the values as
 * passed: stash inputs on their grid (sfp_encode) or not yet (in-place
 * sfp_encode_q), weight inputs the FP32 master values the encoder quantizes;
 * the encoder quantizes either way) and a line in DIR/index.tsv:
 *   seq fn n k e anchor coder rounding file
 * The exponent-coding study (sfp-expstudy) re-encodes them.
 *
 * Calls with a coder other than the first one seen are not dumped (they are
 * --measure-coders re-encodes of a tensor already seen), but are traced.
 * Single-threaded trainer: no locking. Errors writing the trace or a dump are
 * reported once on stderr and disable the tap; they never fail the encode.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sfp/sfp.h>

typedef int (*encode_fn)(const void *, size_t, const sfp_params *, void *,
                         size_t, size_t *, sfp_qstats *);
typedef int (*encode_q_fn)(const void *, size_t, const sfp_params *, void *,
                           size_t, size_t *, sfp_qstats *, void *);

#define MAXKEYS 64

static struct {
    int init, off, depth;
    FILE *trace, *index;
    const char *dir;
    unsigned long every, max;
    unsigned long long seq;
    int first_coder;
    struct { int fn; size_t n; unsigned long calls, dumps; } key[MAXKEYS];
    int nkeys;
    encode_fn enc;
    encode_q_fn encq;
    void *copy; /* the values of an in-place sfp_encode_q, as passed */
    size_t copy_cap;
} tap;

static void tap_fail(const char *what)
{
    fprintf(stderr, "sfp-tap: %s; tap disabled\n", what);
    tap.off = 1;
}

static void tap_init(void)
{
    if (tap.init)
        return;
    tap.init = 1;
    tap.first_coder = -1;
    tap.enc = (encode_fn)dlsym(RTLD_NEXT, "sfp_encode");
    tap.encq = (encode_q_fn)dlsym(RTLD_NEXT, "sfp_encode_q");
    const char *t = getenv("SFP_TAP_TRACE");
    tap.dir = getenv("SFP_TAP_DUMP");
    const char *ev = getenv("SFP_TAP_EVERY");
    const char *mx = getenv("SFP_TAP_MAX");
    tap.every = ev ? strtoul(ev, NULL, 10) : 1000;
    tap.max = mx ? strtoul(mx, NULL, 10) : 8;
    if (!tap.every)
        tap.every = 1;
    if (t && *t) {
        tap.trace = fopen(t, "w");
        if (!tap.trace)
            tap_fail("cannot open SFP_TAP_TRACE");
        else
            fprintf(tap.trace, "seq\tfn\tn\tk\te\tanchor\tcoder\tbytes\n");
    }
    if (tap.dir && *tap.dir && !tap.off) {
        char p[4096];
        snprintf(p, sizeof p, "%s/index.tsv", tap.dir);
        tap.index = fopen(p, "w");
        if (!tap.index)
            tap_fail("cannot open SFP_TAP_DUMP/index.tsv");
        else
            fprintf(tap.index, "seq\tfn\tn\tk\te\tanchor\tcoder\trounding\tfile\n");
    } else {
        tap.dir = NULL;
    }
}

static void tap_see(int fn, const void *src, size_t n, const sfp_params *p,
                    int rc, const size_t *len)
{
    if (tap.off || !p)
        return;
    unsigned long long seq = tap.seq++;
    if (tap.trace)
        fprintf(tap.trace, "%llu\t%s\t%zu\t%u\t%u\t%d\t%d\t%zu\n", seq,
                fn ? "encode_q" : "encode", n, p->mbits, p->ebits, p->anchor,
                (int)p->coder, rc == 0 && len ? *len : (size_t)0);
    if (!tap.index || rc != 0 || p->dtype != SFP_DTYPE_F32)
        return;
    if (tap.first_coder < 0)
        tap.first_coder = (int)p->coder;
    if ((int)p->coder != tap.first_coder)
        return;
    int k;
    for (k = 0; k < tap.nkeys; k++)
        if (tap.key[k].fn == fn && tap.key[k].n == n)
            break;
    if (k == tap.nkeys) {
        if (tap.nkeys == MAXKEYS)
            return;
        tap.key[k].fn = fn;
        tap.key[k].n = n;
        tap.nkeys++;
    }
    unsigned long c = tap.key[k].calls++;
    if (c % tap.every || tap.key[k].dumps >= tap.max)
        return;
    tap.key[k].dumps++;
    char name[128], path[4096];
    snprintf(name, sizeof name, "%06llu-%s-%zu.f32", seq, fn ? "q" : "e", n);
    snprintf(path, sizeof path, "%s/%s", tap.dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(src, sizeof(float), n, f) != n) {
        if (f)
            fclose(f);
        tap_fail("cannot write a dump");
        return;
    }
    if (fclose(f) != 0) {
        tap_fail("cannot write a dump");
        return;
    }
    fprintf(tap.index, "%llu\t%s\t%zu\t%u\t%u\t%d\t%d\t%d\t%s\n", seq,
            fn ? "encode_q" : "encode", n, p->mbits, p->ebits, p->anchor,
            (int)p->coder, (int)p->rounding, name);
    fflush(tap.index);
}

int sfp_encode(const void *src, size_t n, const sfp_params *p, void *dst,
               size_t cap, size_t *out_len, sfp_qstats *stats)
{
    tap_init();
    if (!tap.enc)
        return SFP_EUNSUPPORTED;
    /* libsfp's sfp_encode calls sfp_encode_q through the PLT: that nested
     * call is the same tensor and is not tapped again */
    tap.depth++;
    int rc = tap.enc(src, n, p, dst, cap, out_len, stats);
    tap.depth--;
    tap_see(0, src, n, p, rc, out_len);
    return rc;
}

int sfp_encode_q(const void *src, size_t n, const sfp_params *p, void *dst,
                 size_t cap, size_t *out_len, sfp_qstats *stats, void *qout)
{
    tap_init();
    if (!tap.encq)
        return SFP_EUNSUPPORTED;
    if (tap.depth)
        return tap.encq(src, n, p, dst, cap, out_len, stats, qout);
    if (src == qout && src && n) {
        /* the in-process stash: an activation, quantized in place while it
         * is encoded; keep the values as passed for the dump */
        const size_t bytes = n * (p && p->dtype == SFP_DTYPE_BF16 ? 2 : 4);
        if (bytes > tap.copy_cap) {
            void *nb = realloc(tap.copy, bytes);
            if (!nb)
                return tap.encq(src, n, p, dst, cap, out_len, stats, qout);
            tap.copy = nb;
            tap.copy_cap = bytes;
        }
        memcpy(tap.copy, src, bytes);
        int rc = tap.encq(src, n, p, dst, cap, out_len, stats, qout);
        tap_see(0, tap.copy, n, p, rc, out_len);
        return rc;
    }
    int rc = tap.encq(src, n, p, dst, cap, out_len, stats, qout);
    tap_see(1, src, n, p, rc, out_len);
    return rc;
}

__attribute__((destructor)) static void tap_fini(void)
{
    if (tap.trace)
        fclose(tap.trace);
    if (tap.index)
        fclose(tap.index);
    free(tap.copy);
}
