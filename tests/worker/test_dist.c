/*
 * test_dist.c - the weight pieces' auto coder (worker/dist.c), one rank
 * (MPI singleton): under SFP_CODER_AUTO a piece is encoded with both coders
 * only at a fresh start, at multiples of 100 steps and when its widths
 * change, which depends on the step alone (a run resumed at a step codes as
 * the uninterrupted one); the working weights are the frames' values either
 * way, and other coders never try both. Run with mpirun -np 2 as well: the
 * rule per rank, and for the gradient containers' pieces. The anchor by
 * error (sfpw_dist_anchor_by_error) lowers a narrow window under outliers
 * and makes the working weights closer to the master weights; it leaves
 * wide windows alone. Its per-binade sums (binade.h) are exact: the C loop
 * against the values' own arithmetic, the AVX-512 kernel against the C loop
 * bit for bit.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sfp/sfp.h>

#include "binade.h"
#include "dist.h"
#include "model.h"
#include "wcheck.h"

typedef struct rig {
    sfpw_model m;
    sfpw_dist *d;
    float *params, *W;
    sfp_width w[SFPW_MAX_TENSORS];
    sfp_params base;
    unsigned pieces;
} rig;

static void rig_init(rig *r, sfp_coder coder)
{
    CHECK_EQ_INT(sfpw_model_build(&r->m, "mlp"), 0);
    r->params = malloc(r->m.nparams * sizeof(float));
    r->W = malloc(r->m.nparams * sizeof(float));
    sfpw_model_init_params(&r->m, r->params, 7);
    CHECK_EQ_INT(sfpw_dist_create(&r->d, MPI_COMM_WORLD, &r->m), 0);
    sfpw_dist_set_master(r->d, r->params);
    r->pieces = 0;
    for (int t = 0; t < r->m.ntensors; t++) {
        r->w[t].k = 2;
        r->w[t].e = 4;
        r->pieces += sfpw_tensor_is_param(r->m.tensors[t].kind) != 0;
    }
    sfp_params_default(&r->base);
    r->base.coder = coder;
}

static void rig_free(rig *r)
{
    sfpw_dist_destroy(&r->d);
    free(r->params);
    free(r->W);
}

/* Publishes for step with fresh; returns the pieces that tried both. */
static unsigned publish(rig *r, uint64_t step, int fresh, double *bytes)
{
    sfpw_exchange x;
    sfpw_dist_coder_step(r->d, step, fresh);
    CHECK_EQ_INT(sfpw_dist_publish(r->d, r->w, &r->base, r->W, bytes), 0);
    sfpw_dist_last_exchange(r->d, &x);
    return x.checks;
}

/* Gradient containers (2 ranks): the pieces this rank sends that tried both
 * coders in a reduce-scatter for step. */
static unsigned reduce(rig *r, const float *G, uint64_t step, int fresh)
{
    sfpw_grad_exchange x;
    sfpw_dist_coder_step(r->d, step, fresh);
    CHECK_EQ_INT(sfpw_dist_reduce_grads_q(r->d, G, r->w, &r->base), 0);
    sfpw_dist_last_grad_exchange(r->d, &x);
    return x.checks;
}

/* The pick both use (net.h; the stashes key it to the exponent width, the
 * pieces to both widths): due before the first check, at the next multiple
 * of SFPW_PICK_STEPS after a check (not SFPW_PICK_STEPS after it), and for
 * another key. */
static void test_pick(void)
{
    sfpw_pick pk;
    memset(&pk, 0, sizeof pk);
    CHECK(sfpw_pick_due(&pk, 7, 4));
    CHECK_EQ_INT(sfpw_pick_coder(&pk, SFP_CODER_GECKO), SFP_CODER_GECKO);
    sfpw_pick_set(&pk, SFP_CODER_RANS, 150, 4);
    CHECK_EQ_INT(sfpw_pick_coder(&pk, SFP_CODER_GECKO), SFP_CODER_RANS);
    CHECK(!sfpw_pick_due(&pk, 150, 4));
    CHECK(!sfpw_pick_due(&pk, 199, 4));
    CHECK(sfpw_pick_due(&pk, 200, 4));
    CHECK(sfpw_pick_due(&pk, 151, 5));
    sfpw_pick_set(&pk, SFP_CODER_GECKO, 200, 5);
    CHECK_EQ_INT(sfpw_pick_coder(&pk, SFP_CODER_RANS), SFP_CODER_GECKO);
    CHECK(!sfpw_pick_due(&pk, 299, 5));
    CHECK(sfpw_pick_due(&pk, 300, 5));
}


/* Squared error of the working weights against the master over the weight
 * tensors, and the values saturated: kept (non-zero) but at less than half
 * their magnitude, which rounding to the nearest power of two never does. */
static double weight_sse(const rig *r, size_t *saturated)
{
    double sse = 0;
    *saturated = 0;
    for (int t = 0; t < r->m.ntensors; t++) {
        const size_t n = r->m.tensors[t].n, off = r->m.tensors[t].off;
        if (!sfpw_tensor_is_param(r->m.tensors[t].kind))
            continue;
        for (size_t i = 0; i < n; i++) {
            double d = (double)r->W[off + i] - r->params[off + i];
            sse += d * d;
            *saturated += r->W[off + i] != 0 && fabsf(r->params[off + i]) > 1.9f * fabsf(r->W[off + i]);
        }
    }
    return sse;
}

/* The sums of one bin set the independent way: frexp and ldexp on the
 * floats, long double sums (exact here: m below 2^24, m^2 below 2^48, at
 * most 2^15 values a bin). */
static void bins_ref(const float *x, size_t n, int top, int low, long double *cnt,
                     long double *s1, long double *s2)
{
    for (int j = 0; j < SFPW_BINS; j++)
        cnt[j] = s1[j] = s2[j] = 0;
    for (size_t i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (!isnormal(a))
            continue;
        int ex;
        frexpf(a, &ex); /* a = f 2^ex, f in [0.5, 1) */
        const int E = ex - 1 + 127, j = top - E;
        if (j < 0 || j >= SFPW_BINS)
            continue;
        const long double m = ldexpl((long double)a, 150 - E);
        cnt[j] += 1;
        if (j < SFPW_BINS_SAT)
            s1[j] += m;
        if (j < SFPW_BINS_SAT || j >= low)
            s2[j] += m * m;
    }
}

static void test_bins(void)
{
    static const size_t sizes[] = { 0, 1, 63, 64, 65, 1000, 4099, 300001 };
    static const int lows[] = { 1, 3, 7, 15 };
    const size_t nmax = 300001;
    float *x = malloc(nmax * sizeof(float));
    const int simd = sfpw_bins_set_impl(1);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    unsigned cases = 0, simd_cases = 0;
    for (int kind = 0; kind < 3; kind++) {
        for (size_t i = 0; i < nmax; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const double u = (double)(rng >> 11) * 0x1p-53 - 0.5;
            const double g = (double)((rng >> 3) % 1000) / 1000.0 - 0.5;
            x[i] = kind == 0 ? (float)(0.05 * (u + g)) /* weight-like */
                 : kind == 1 ? (float)ldexp(u, (int)((rng >> 40) % 48) - 40) /* every binade */
                             : (float)(u * 1e-3);
        }
        /* zeros, -0, subnormals, Inf, NaN, and values above the top */
        for (size_t i = 0; i + 8 < nmax; i += 997) {
            x[i] = 0.0f;
            x[i + 1] = -0.0f;
            x[i + 2] = 1e-40f;
            x[i + 3] = INFINITY;
            x[i + 4] = -NAN;
            x[i + 5] = 1e30f;
            x[i + 6] = -FLT_MIN;
        }
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
            for (int li = 0; li < 4; li++) {
                const size_t n = sizes[si];
                const int top = 127 - 4 - (kind == 1 ? 0 : 3 * li), low = lows[li];
                sfpw_bins c, v;
                memset(&c, 0, sizeof c);
                memset(&v, 0, sizeof v);
                sfpw_bins_add_c(&c, x, n, top, low);
                if (n <= 70000) { /* the long double sums stay exact */
                    long double cnt[SFPW_BINS], s1[SFPW_BINS], s2[SFPW_BINS];
                    bins_ref(x, n, top, low, cnt, s1, s2);
                    for (int j = 0; j < SFPW_BINS; j++) {
                        CHECK(c.n[j] == (uint64_t)cnt[j]);
                        if (j < SFPW_BINS_SAT)
                            CHECK(c.s1[j] == (uint64_t)s1[j]);
                        CHECK((long double)c.s2[j] == s2[j]);
                    }
                }
                sfpw_bins_add(&v, x, n, top, low);
                CHECK(memcmp(&c, &v, sizeof c) == 0);
                /* sums add: two halves into one set */
                memset(&v, 0, sizeof v);
                sfpw_bins_add(&v, x, n / 2, top, low);
                sfpw_bins_add(&v, x + n / 2, n - n / 2, top, low);
                CHECK(memcmp(&c, &v, sizeof c) == 0);
                cases++;
                simd_cases += simd && n >= 64;
            }
    }
    /* 2^21 values of the largest significand in bin 0: the kernel's 64-bit
     * lanes would overflow without their flushes to the 128-bit sums */
    const size_t big = (size_t)1 << 21;
    float *y = malloc(big * sizeof(float));
    for (size_t i = 0; i < big; i++)
        y[i] = nextafterf(2.0f, 0.0f) * (i & 1 ? -0.25f : 0.25f);
    sfpw_bins c, v;
    memset(&c, 0, sizeof c);
    memset(&v, 0, sizeof v);
    sfpw_bins_add_c(&c, y, big, 125, 7);
    sfpw_bins_add(&v, y, big, 125, 7);
    CHECK(c.n[0] == big && c.s1[0] == big * 0xffffffu);
    CHECK(c.s2[0] == (unsigned __int128)big * 0xffffffu * 0xffffffu);
    CHECK(memcmp(&c, &v, sizeof c) == 0);
    free(y);
    printf("per-binade sums: %u cases, %u through the AVX-512 kernel%s\n", cases, simd_cases,
           simd ? "" : " (not on this CPU: the C loop only)");
    free(x);
}

static void test_anchor_by_error(void)
{
    rig r;
    size_t sat_max, sat_err, sat_wide;
    rig_init(&r, SFP_CODER_GECKO);
    /* a few outliers 16x the bulk in every tensor (the same on every rank) */
    for (size_t i = 0; i < r.m.nparams; i += 997)
        r.params[i] *= 16.0f;
    sfpw_dist_set_master(r.d, r.params); /* the dist keeps its own copy */
    for (int t = 0; t < r.m.ntensors; t++) {
        r.w[t].k = 0;
        r.w[t].e = 2;
    }
    publish(&r, 0, 1, NULL);
    const double max_sse = weight_sse(&r, &sat_max);
    sfpw_dist_anchor_by_error(r.d, 1);
    publish(&r, 1, 0, NULL);
    const double err_sse = weight_sse(&r, &sat_err);
    printf("anchor by error, k0 e2, outliers 16x: squared error %.4g -> %.4g, %zu values "
           "saturated\n", max_sse, err_sse, sat_err);
    CHECK(sat_max == 0 && sat_err > 0);
    CHECK(err_sse < 0.8 * max_sse);
    /* five exponent bits: the window is left at the largest magnitude */
    for (int t = 0; t < r.m.ntensors; t++)
        r.w[t].e = 5;
    float *wide = malloc(r.m.nparams * sizeof(float));
    sfpw_dist_anchor_by_error(r.d, 0);
    publish(&r, 2, 0, NULL);
    memcpy(wide, r.W, r.m.nparams * sizeof(float));
    sfpw_dist_anchor_by_error(r.d, 1);
    publish(&r, 3, 0, NULL);
    CHECK(memcmp(wide, r.W, r.m.nparams * sizeof(float)) == 0);
    CHECK(weight_sse(&r, &sat_wide) >= 0 && sat_wide == 0);
    free(wide);
    rig_free(&r);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    test_pick();
    test_bins();
    test_anchor_by_error();
    int ranks = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    rig a, b;
    rig_init(&a, SFP_CODER_AUTO);
    rig_init(&b, SFP_CODER_AUTO);
    CHECK(a.pieces >= 3);
    /* the rule, step by step; mine: this rank's pieces */
    const unsigned mine = publish(&a, 0, 1, NULL);
    CHECK(mine >= 1);
    if (ranks == 1)
        CHECK_EQ_INT(mine, a.pieces);
    CHECK_EQ_INT(publish(&a, 1, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 99, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 100, 0, NULL), mine);
    CHECK_EQ_INT(publish(&a, 101, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 250, 0, NULL), mine); /* 200 passed */
    CHECK_EQ_INT(publish(&a, 251, 0, NULL), 0);
    int wt = 0; /* the first weight tensor */
    while (!sfpw_tensor_is_param(a.m.tensors[wt].kind))
        wt++;
    a.w[wt].e = 5; /* one tensor's widths change: its pieces try both */
    int changed = (int)publish(&a, 252, 0, NULL), all = changed;
    MPI_Allreduce(&changed, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(changed <= 1 && all >= 1 && all <= ranks);
    CHECK_EQ_INT(publish(&a, 253, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 254, 1, NULL), mine);
    /* resumed at step 120 after a fresh start there: the same checks and
     * the same frames as a run that got there from step 0 */
    a.w[wt].e = 4;
    double ba[SFPW_MAX_TENSORS] = { 0 }, bb[SFPW_MAX_TENSORS] = { 0 }; /* past ntensors: 0 */
    publish(&a, 0, 1, NULL);
    for (uint64_t s = 1; s < 120; s++)
        publish(&a, s, 0, NULL);
    CHECK_EQ_INT(publish(&b, 120, 1, NULL), mine);
    CHECK_EQ_INT(publish(&a, 120, 1, ba), mine);
    for (uint64_t s = 121; s < 320; s++) {
        unsigned ca = publish(&a, s, 0, ba), cb = publish(&b, s, 0, bb);
        CHECK_EQ_INT(ca, cb);
        CHECK_EQ_INT(ca, s % 100 == 0 ? mine : 0);
        CHECK(memcmp(ba, bb, sizeof(ba)) == 0);
    }
    CHECK(memcmp(a.W, b.W, a.m.nparams * sizeof(float)) == 0);
    /* the working weights are what sfp_quantize gives, auto or not */
    rig g;
    rig_init(&g, SFP_CODER_GECKO);
    CHECK_EQ_INT(publish(&g, 0, 1, NULL), 0);
    CHECK_EQ_INT(publish(&g, 100, 0, NULL), 0);
    CHECK(memcmp(a.W, g.W, a.m.nparams * sizeof(float)) == 0);
    if (ranks == 2) {
        /* gradient containers: the pieces sent to the other rank follow
         * the same rule */
        float *G = malloc(a.m.nparams * sizeof(float));
        for (size_t i = 0; i < a.m.nparams; i++)
            G[i] = 1e-3f * (float)((i * 2654435761u) % 2001) - 1.0f;
        const unsigned sent = reduce(&b, G, 400, 1);
        CHECK(sent >= 1);
        CHECK_EQ_INT(reduce(&b, G, 401, 0), 0);
        CHECK_EQ_INT(reduce(&b, G, 499, 0), 0);
        CHECK_EQ_INT(reduce(&b, G, 500, 0), sent);
        CHECK_EQ_INT(reduce(&b, G, 501, 0), 0);
        free(G);
    }
    rig_free(&a);
    rig_free(&b);
    rig_free(&g);
    MPI_Finalize();
    WCHECK_DONE();
}
