/*
 * sfp_bins.c - sfp-bins: the weight window's per-binade sums (worker/
 * binade.h), the C loop against the AVX-512 kernel on the same values:
 * N(0, 0.05) weights (a sum of twelve uniforms), anchored at their largest
 * magnitude like --weight-anchor error, thread CPU time, median of --runs
 * after a warm-up. Fails (exit 1) if the two disagree in any bit.
 *
 *   sfp-bins [--sizes LIST] [--runs N] [--e E]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binade.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of runs sums of x with impl (0: C loop, 1: kernel). */
static double time_impl(int impl, const float *x, size_t n, int top, int low, int runs,
                        sfpw_bins *out)
{
    double *t = malloc((size_t)runs * sizeof(double));
    sfpw_bins_set_impl(impl);
    for (int r = -1; r < runs; r++) {
        memset(out, 0, sizeof *out);
        const double t0 = now();
        sfpw_bins_add(out, x, n, top, low);
        if (r >= 0)
            t[r] = now() - t0;
    }
    qsort(t, (size_t)runs, sizeof(double), cmp);
    const double med = t[runs / 2];
    free(t);
    return med;
}

int main(int argc, char **argv)
{
    const char *sizes = "103000,1000000";
    int runs = 21, e = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            sizes = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--e") && i + 1 < argc)
            e = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: sfp-bins [--sizes LIST] [--runs N] [--e E]\n");
            return 2;
        }
    }
    if (runs < 1 || e < 1 || e > 4) {
        fprintf(stderr, "sfp-bins: --runs >= 1, --e 1..4\n");
        return 2;
    }
    const int simd = sfpw_bins_set_impl(1);
    printf("per-binade sums, N(0, 0.05) weights, e = %d (bins >= %d flushable); thread CPU "
           "time, median of %d after a warm-up\n\n", e, (1 << e) - 1, runs);
    printf("| values | C loop ms | ns/value | AVX-512 ms | ns/value | C / AVX-512 |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    int bad = 0;
    for (const char *s = sizes; *s;) {
        char *end;
        const size_t n = strtoull(s, &end, 10);
        s = *end == ',' ? end + 1 : end;
        if (n == 0 || (*end && *end != ',')) {
            fprintf(stderr, "sfp-bins: bad --sizes\n");
            return 2;
        }
        float *x = malloc(n * sizeof(float));
        uint64_t rng = 0x243f6a8885a308d3ull;
        float mx = 0;
        for (size_t i = 0; i < n; i++) {
            double u = 0;
            for (int k = 0; k < 12; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                u += (double)(rng >> 11) * 0x1p-53;
            }
            x[i] = (float)(0.05 * (u - 6));
            mx = fabsf(x[i]) > mx ? fabsf(x[i]) : mx;
        }
        int top;
        frexpf(mx, &top);
        top += 126; /* the biased exponent of mx */
        sfpw_bins c, v;
        const double tc = time_impl(0, x, n, top, (1 << e) - 1, runs, &c);
        if (simd) {
            const double tv = time_impl(1, x, n, top, (1 << e) - 1, runs, &v);
            bad |= memcmp(&c, &v, sizeof c) != 0;
            printf("| %zu | %.3f | %.2f | %.3f | %.2f | %.2fx |\n", n, tc * 1e3, tc * 1e9 / n,
                   tv * 1e3, tv * 1e9 / n, tc / tv);
        } else {
            printf("| %zu | %.3f | %.2f | - | - | - |\n", n, tc * 1e3, tc * 1e9 / n);
        }
        free(x);
    }
    if (!simd)
        printf("\n(no AVX-512 on this CPU or build: the C loop only)\n");
    if (bad) {
        fprintf(stderr, "sfp-bins: the kernel and the C loop disagree\n");
        return 1;
    }
    return 0;
}
