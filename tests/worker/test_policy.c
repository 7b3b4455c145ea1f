/* test_policy.c - QM/QE width policy and the BitWave controller. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sfp/policy.h>

#include "wcheck.h"

static void test_sample(void)
{
    unsigned k, lo, hi;
    CHECK_EQ_INT(sfp_qm_sample(2.25, 0, 23, 0.1, &k, &lo, &hi), 0);
    CHECK(k == 3 && lo == 2 && hi == 3);
    CHECK_EQ_INT(sfp_qm_sample(2.25, 0, 23, 0.3, &k, &lo, &hi), 0);
    CHECK(k == 2 && lo == 2 && hi == 3);
    /* exact integer: bracket (n, n+1), always n */
    CHECK_EQ_INT(sfp_qm_sample(4.0, 0, 23, 0.0, &k, &lo, &hi), 0);
    CHECK(k == 4 && lo == 4 && hi == 5);
    /* upper bound: bracket (hi-1, hi) */
    CHECK_EQ_INT(sfp_qm_sample(8.0, 1, 8, 0.5, &k, &lo, &hi), 0);
    CHECK(k == 8 && lo == 7 && hi == 8);
    /* clamped below */
    CHECK_EQ_INT(sfp_qm_sample(-3, 1, 8, 0.5, &k, &lo, &hi), 0);
    CHECK(k == 1 && lo == 1 && hi == 2);
    CHECK_EQ_INT(sfp_qm_sample(NAN, 0, 23, 0.5, &k, &lo, &hi), SFP_EINVAL);
    CHECK_EQ_INT(sfp_qm_sample(1, 5, 5, 0.5, &k, &lo, &hi), SFP_EINVAL);
    /* expectation: mean of the draws is n */
    double sum = 0;
    for (int i = 0; i < 20000; i++) {
        sfp_qm_sample(2.3, 0, 23, sfp_policy_uniform(9, (uint64_t)i, 0), &k, &lo, &hi);
        sum += k;
    }
    CHECK_NEAR(sum / 20000, 2.3, 0.02);
}

static void test_kinds(void)
{
    sfp_policy_kind k;
    CHECK_EQ_INT(sfp_policy_kind_parse("qmqe", &k), 0);
    CHECK_EQ_INT(k, SFP_POLICY_QMQE);
    CHECK_EQ_INT(sfp_policy_kind_parse("bitwave", &k), 0);
    CHECK_EQ_INT(k, SFP_POLICY_BITWAVE);
    CHECK_EQ_INT(sfp_policy_kind_parse("nope", &k), SFP_EINVAL);
    CHECK(strcmp(sfp_policy_kind_name(SFP_POLICY_FP32), "fp32") == 0);
}

static void test_qmqe(void)
{
    uint64_t numel[3] = { 1000, 3000, 0 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QMQE);
    c.qm.rule = SFP_QM_RULE_SGD;
    c.qm.warmup = 0;
    c.qm.gamma = 1.0;
    c.qm.lr = 1.0;
    c.qm.max_step = 0.5;
    sfp_policy *p = NULL;
    CHECK_EQ_INT(sfp_policy_create(&p, &c, 0, numel), SFP_EINVAL);
    CHECK_EQ_INT(sfp_policy_create(&p, &c, 3, numel), 0);
    if (!p)
        return;
    CHECK(sfp_policy_wants_gradients(p));
    double n, e;
    sfp_policy_get(p, 0, &n, &e);
    CHECK_NEAR(n, c.qm.n_init, 0);
    CHECK_NEAR(e, c.qm.e_init, 0);
    /* footprint-weighted regularizer: R = sum lambda_t (n_t + e_t) */
    CHECK_NEAR(sfp_policy_regularizer(p), c.qm.n_init + c.qm.e_init, 1e-12);

    /* choose is a pure function of (seed, step, state) */
    sfp_width a[3], b[3];
    CHECK_EQ_INT(sfp_policy_choose(p, 17, a), 0);
    CHECK_EQ_INT(sfp_policy_choose(p, 17, b), 0);
    CHECK(memcmp(a, b, sizeof a) == 0);

    /* zero task gradient: the regularizer alone lowers the widths, the
     * larger tensor (lambda 0.75) faster than the smaller one (0.25) */
    double g0[3] = { 0, 0, 0 };
    CHECK_EQ_INT(sfp_policy_update(p, 0, 1.0, g0, g0), 0);
    double n0, n1, e1;
    sfp_policy_get(p, 0, &n0, NULL);
    sfp_policy_get(p, 1, &n1, &e1);
    CHECK_NEAR(n0, c.qm.n_init - 0.25, 1e-12);
    CHECK_NEAR(n1, c.qm.n_init - 0.5, 1e-12); /* 0.75 clipped to max_step */
    CHECK_NEAR(e1, c.qm.e_init - 0.5, 1e-12);
    /* a strongly negative task gradient (more bits would lower the loss)
     * raises the width, clipped to max_step */
    double gn[3] = { -10, 0, 0 };
    CHECK_EQ_INT(sfp_policy_update(p, 1, 1.0, gn, g0), 0);
    sfp_policy_get(p, 0, &n, NULL);
    CHECK_NEAR(n, n0 + 0.5, 1e-12);
    /* non-finite gradients are rejected and change nothing */
    double bad[3] = { NAN, 0, 0 };
    CHECK_EQ_INT(sfp_policy_update(p, 2, 1.0, bad, g0), SFP_EINVAL);
    sfp_policy_get(p, 0, &e, NULL);
    CHECK_NEAR(e, n, 0);
    /* bounds hold after many steps */
    for (int i = 0; i < 200; i++)
        sfp_policy_update(p, (uint64_t)(3 + i), 1.0, g0, g0);
    for (int t = 0; t < 3; t++) {
        sfp_policy_get(p, (size_t)t, &n, &e);
        CHECK(n >= c.qm.n_min && n <= c.qm.n_max);
        CHECK(e >= c.qm.e_min && e <= c.qm.e_max);
    }
    sfp_policy_get(p, 1, &n, &e);
    CHECK_NEAR(n, c.qm.n_min, 0);
    CHECK_NEAR(e, c.qm.e_min, 0);
    CHECK_EQ_INT(sfp_policy_choose(p, 500, a), 0);
    CHECK(a[1].k == (unsigned)c.qm.n_min && a[1].k_lo == a[1].k && a[1].k_hi == a[1].k + 1);
    CHECK(a[1].e == (unsigned)c.qm.e_min && a[1].e_hi == a[1].e_lo + 1);

    /* checkpoint round trip */
    size_t sz = sfp_policy_state_size(p);
    unsigned char *buf = malloc(sz);
    CHECK_EQ_INT(sfp_policy_state_save(p, buf, sz - 1), SFP_ENOSPC);
    CHECK_EQ_INT(sfp_policy_state_save(p, buf, sz), 0);
    sfp_policy *q = NULL;
    CHECK_EQ_INT(sfp_policy_create(&q, &c, 3, numel), 0);
    CHECK_EQ_INT(sfp_policy_state_load(q, buf, sz - 1), SFP_ETRUNC);
    CHECK_EQ_INT(sfp_policy_state_load(q, buf, sz), 0);
    sfp_width qa[3];
    sfp_policy_choose(q, 500, qa);
    CHECK(memcmp(a, qa, sizeof a) == 0);
    buf[0] ^= 1;
    CHECK(sfp_policy_state_load(q, buf, sz) < 0);
    free(buf);
    sfp_policy_destroy(&q);
    sfp_policy_destroy(&p);
    CHECK(p == NULL);
    sfp_policy_destroy(&p); /* NULL is fine */
}

static void test_qm_only(void)
{
    uint64_t numel[2] = { 10, 10 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QM);
    c.qm.rule = SFP_QM_RULE_SGD;
    c.qm.warmup = 0;
    sfp_policy *p = NULL;
    CHECK_EQ_INT(sfp_policy_create(&p, &c, 2, numel), 0);
    if (!p)
        return;
    double g0[2] = { 0, 0 };
    for (int i = 0; i < 50; i++)
        CHECK_EQ_INT(sfp_policy_update(p, (uint64_t)i, 1.0, g0, NULL), 0);
    double n, e;
    sfp_policy_get(p, 0, &n, &e);
    CHECK(n < c.qm.n_init);
    CHECK_NEAR(e, 8, 0); /* QM keeps the full exponent */
    sfp_width w[2];
    sfp_policy_choose(p, 3, w);
    CHECK_EQ_INT(w[0].e, 8);
    sfp_policy_destroy(&p);
}

/* ------------------------------------------------------- adaptive rule */

/*
 * A synthetic tensor whose bit k+1 is worth C * 4^-k of relative loss
 * (rounding noise ~ 4^-k): the task gradient over bracket (lo, hi) is
 * loss * (C 4^-hi - C 4^-lo) / ... i.e. -loss * C * 4^-lo * (3/4) summed
 * as L(hi) - L(lo) with L(k) = loss * C * 4^-k * (4/3).
 */
static double law_grad(double loss, double C, unsigned lo, unsigned hi)
{
    double Llo = loss * C * pow(4.0, -(double)lo) * 4.0 / 3.0;
    double Lhi = loss * C * pow(4.0, -(double)hi) * 4.0 / 3.0;
    return Lhi - Llo;
}

/* exponent: bracket (j, j+1) is worth v[j] of relative loss */
static double step_grad(double loss, const double *v, unsigned lo, unsigned hi)
{
    double g = 0;
    for (unsigned j = lo; j < hi; j++)
        g -= loss * v[j];
    return g;
}

/* steps [from, to) of tensors following the laws above (ve: 9 per tensor) */
static void feed_laws(sfp_policy *p, uint64_t from, uint64_t to, double loss,
                      const double *Cm, const double *ve)
{
    size_t T = sfp_policy_ntensors(p);
    sfp_width w[4];
    double gn[4], ge[4];
    for (uint64_t s = from; s < to; s++) {
        CHECK_EQ_INT(sfp_policy_choose(p, s, w), 0);
        for (size_t t = 0; t < T; t++) {
            gn[t] = law_grad(loss, Cm[t], w[t].k_lo, w[t].k_hi);
            ge[t] = step_grad(loss, ve + 9 * t, w[t].e_lo, w[t].e_hi);
        }
        CHECK_EQ_INT(sfp_policy_update(p, s, loss, gn, ge), 0);
    }
}

/* a QM+QE policy with the adaptive rule over T tensors (T <= 4) */
static sfp_policy *adaptive_policy(const uint64_t *numel, size_t T,
                                   sfp_policy_config *c)
{
    sfp_policy *p = NULL;
    CHECK_EQ_INT(sfp_policy_create(&p, c, T, numel), 0);
    return p;
}

static void test_adaptive_calibration(void)
{
    /* tensors: lambda 0.75 and 0.25 (footprint shares) */
    uint64_t numel[2] = { 3000, 1000 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QMQE);
    CHECK_EQ_INT(c.qm.rule, SFP_QM_RULE_ADAPTIVE);
    c.qm.bit_cost = 1;
    sfp_policy *p = NULL;
    CHECK_EQ_INT(sfp_policy_create(&p, &c, 2, numel), 0);
    if (!p)
        return;
    CHECK_EQ_INT(sfp_policy_calibrated(p), 0);
    /* brackets: mantissa (0,1)..(7,8), exponent (3,4)..(6,7): 2 sweeps of 8 */
    const uint64_t C = 16;
    const double Cm[2] = { 4.0, 4.0 };
    /* exponent value per bracket (relative loss): tensor 0 keeps the 4th
     * bit (0.01 >= 0.0075), drops the 5th; tensor 1 (cost 0.0025) keeps 5 */
    const double ve[2][9] = { { 0, 0, 0, 0.05, 0.01, 0.004, 0, 0, 0 },
                              { 0, 0, 0, 0.05, 0.01, 0.004, 0, 0, 0 } };
    for (uint64_t s = 0; s < C; s++) {
        sfp_width w[2];
        CHECK_EQ_INT(sfp_policy_choose(p, s, w), 0);
        /* used widths stay at the start; the brackets sweep */
        CHECK_EQ_INT(w[0].k, 7);
        CHECK_EQ_INT(w[0].e, 6);
        CHECK_EQ_INT(w[0].k_lo, s % 8);
        CHECK_EQ_INT(w[0].k_hi, s % 8 + 1);
        CHECK_EQ_INT(w[1].e_lo, 3 + s % 4);
        CHECK_EQ_INT(w[1].e_hi, 4 + s % 4);
        double loss = 2.0, gn[2], ge[2];
        for (int t = 0; t < 2; t++) {
            gn[t] = law_grad(loss, Cm[t], w[t].k_lo, w[t].k_hi);
            ge[t] = step_grad(loss, ve[t], w[t].e_lo, w[t].e_hi);
        }
        CHECK_EQ_INT(sfp_policy_update(p, s, loss, gn, ge), 0);
    }
    CHECK_EQ_INT(sfp_policy_calibrated(p), 1);
    /* balance C 4^-n = bit_cost * lambda */
    double n0, e0, n1, e1;
    sfp_policy_get(p, 0, &n0, &e0);
    sfp_policy_get(p, 1, &n1, &e1);
    CHECK_NEAR(n0, log(4.0 / (0.01 * 0.75)) / log(4.0), 1e-9);
    CHECK_NEAR(n1 - n0, log(3.0) / log(4.0), 1e-9); /* 3x smaller share */
    CHECK_NEAR(e0, 5, 1e-12);
    CHECK_NEAR(e1, 6, 1e-12);
    /* after the calibration the draws follow the widths again */
    sfp_width w[2];
    sfp_policy_choose(p, C, w);
    CHECK(w[0].k_hi == w[0].k_lo + 1 && w[0].k_lo == (unsigned)floor(n0));
    sfp_policy_destroy(&p);

    /* the same run with the loss and the gradients x1000: same widths */
    sfp_policy *q = adaptive_policy(numel, 2, &c);
    if (q)
        feed_laws(q, 0, C, 2000.0, Cm, &ve[0][0]);
    double m0;
    sfp_policy_get(q, 0, &m0, NULL);
    CHECK_NEAR(m0, n0, 1e-9);
    sfp_policy_destroy(&q);
}

static void test_adaptive_adam(void)
{
    /* lambda 0.9 and 0.1: with no task gradient both fall at `step` bits
     * per step (Adam), however different their pull */
    uint64_t numel[2] = { 9000, 1000 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QMQE);
    c.qm.calib_steps = 8;
    c.qm.step = 0.05;
    c.qm.bit_cost = 1;
    sfp_policy *p = adaptive_policy(numel, 2, &c);
    if (!p)
        return;
    /* calibration with strongly negative gradients everywhere: the top of
     * the sweep (one bit above the start) */
    double big[2] = { -1e3, -1e3 };
    for (uint64_t s = 0; s < 8; s++)
        CHECK_EQ_INT(sfp_policy_update(p, s, 1.0, big, big), 0);
    double n0, n1, e0;
    sfp_policy_get(p, 0, &n0, &e0);
    sfp_policy_get(p, 1, &n1, NULL);
    CHECK_NEAR(n0, 8, 1e-12); /* one above the start: the top bracket */
    CHECK_NEAR(e0, 7, 1e-12);
    double g0[2] = { 0, 0 };
    for (uint64_t s = 8; s < 18; s++)
        CHECK_EQ_INT(sfp_policy_update(p, s, 1.0, g0, g0), 0);
    double a0, a1;
    sfp_policy_get(p, 0, &a0, NULL);
    sfp_policy_get(p, 1, &a1, NULL);
    CHECK_NEAR(n0 - a0, 0.5, 1e-9);
    CHECK_NEAR(n1 - a1, 0.5, 1e-9);
    /* at the balance (task gradient = -bit_cost * lambda * loss) a width
     * stops moving */
    sfp_policy *q = NULL;
    CHECK_EQ_INT(sfp_policy_create(&q, &c, 2, numel), 0);
    for (uint64_t s = 0; s < 8; s++)
        sfp_policy_update(q, s, 2.0, big, big);
    double bal[2] = { -0.01 * 0.9 * 2.0, -0.01 * 0.1 * 2.0 };
    for (uint64_t s = 8; s < 58; s++)
        sfp_policy_update(q, s, 2.0, bal, bal);
    sfp_policy_get(q, 0, &a0, NULL);
    sfp_policy_get(q, 1, &a1, NULL);
    CHECK_NEAR(a0, 8, 1e-9);
    CHECK_NEAR(a1, 8, 1e-9);
    sfp_policy_destroy(&q);
    sfp_policy_destroy(&p);
}

/* closed loop: the gradient of the width's own bracket; the width settles
 * where a bit is worth bit_cost * lambda, whatever the tensor's scale */
static void test_adaptive_equilibrium(void)
{
    uint64_t numel[3] = { 5000, 4999, 1 };
    const double Cm[3] = { 0.5, 50.0, 1e-3 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QMQE);
    c.qm.bit_cost = 2;
    sfp_policy *p = adaptive_policy(numel, 3, &c);
    if (!p)
        return;
    const double ve[27] = { 0, 0, 0, 0.2, 0.1, 0.0, 0, 0, 0,
                            0, 0, 0, 0.2, 0.1, 0.0, 0, 0, 0,
                            0, 0, 0, 0.2, 0.1, 0.0, 0, 0, 0 };
    feed_laws(p, 0, 3000, 0.5, Cm, ve);
    for (int t = 0; t < 3; t++) {
        double lambda = (double)numel[t] / 10000.0, n, e;
        sfp_policy_get(p, (size_t)t, &n, &e);
        /* integer balance: bit k+1 is kept while C 4^-k >= cost */
        double want = ceil(log(Cm[t] / (0.02 * lambda)) / log(4.0));
        if (want < 0)
            want = 0;
        if (!(n >= want - 1.05 && n <= want + 0.05))
            fprintf(stderr, "tensor %d: n %.3f want %.0f\n", t, n, want);
        CHECK(n >= want - 1.05 && n <= want + 0.05);
        CHECK(n >= 0 && n <= 23);
        /* exponent: the 5th bit is worth 0.1 > cost, the 6th nothing (a
         * tensor with a tiny pull creeps down from an overshoot slowly) */
        if (!(e >= 4.0 && e <= 5.5))
            fprintf(stderr, "tensor %d: n %.3f e %.3f\n", t, n, e);
        CHECK(e >= 4.0 && e <= 5.5);
    }
    sfp_policy_destroy(&p);
}

/* the footprint target: a closed loop where the stored bits follow the
 * widths (half of sign + mantissa + exponent bits, like a tensor with
 * half zeros); the bit cost moves until the bits meet the target */
static double sim_bits(const sfp_policy *p, const uint64_t *numel, size_t T)
{
    double b = 0, tot = 0;
    for (size_t t = 0; t < T; t++) {
        double n, e;
        sfp_policy_get(p, t, &n, &e);
        b += (double)numel[t] * 0.5 * (1 + n + e);
        tot += (double)numel[t];
    }
    return b / tot;
}

static void run_target(sfp_policy *p, const uint64_t *numel, uint64_t steps,
                       double *mean_bits)
{
    const double Cm[2] = { 0.5, 5.0 };
    const double ve[18] = { 0, 0, 0, 0.3, 0.05, 0.01, 0.002, 0, 0,
                            0, 0, 0, 0.3, 0.05, 0.01, 0.002, 0, 0 };
    double acc = 0;
    for (uint64_t s = 0; s < steps; s++) {
        CHECK_EQ_INT(sfp_policy_observe_bits(p, s, sim_bits(p, numel, 2)), 0);
        feed_laws(p, s, s + 1, 0.5, Cm, ve);
        if (s >= steps - 300)
            acc += sim_bits(p, numel, 2);
    }
    *mean_bits = acc / 300;
}

static void test_adaptive_target(void)
{
    uint64_t numel[2] = { 7000, 3000 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QMQE);
    c.qm.calib_steps = 16;
    c.qm.target_bits = 3.5;
    c.qm.bit_cost_max = 64;
    sfp_policy *p = adaptive_policy(numel, 2, &c);
    if (!p)
        return;
    CHECK_NEAR(sfp_policy_bit_cost(p), c.qm.bit_cost, 0);
    CHECK_EQ_INT(sfp_policy_observe_bits(p, 0, NAN), SFP_EINVAL);
    CHECK_EQ_INT(sfp_policy_observe_bits(p, 0, -1), SFP_EINVAL);
    /* calibration steps do not move the cost */
    CHECK_EQ_INT(sfp_policy_observe_bits(p, 0, 30.0), 0);
    CHECK_NEAR(sfp_policy_bit_cost(p), c.qm.bit_cost, 0);
    double mb;
    run_target(p, numel, 4000, &mb);
    CHECK_NEAR(mb, 3.5, 0.15);
    double cost = sfp_policy_bit_cost(p);
    CHECK(cost >= c.qm.bit_cost_min && cost <= c.qm.bit_cost_max);
    /* a checkpoint carries the cost in force */
    size_t sz = sfp_policy_state_size(p);
    unsigned char *buf = malloc(sz);
    CHECK_EQ_INT(sfp_policy_state_save(p, buf, sz), 0);
    sfp_policy *q = adaptive_policy(numel, 2, &c);
    CHECK_EQ_INT(sfp_policy_state_load(q, buf, sz), 0);
    CHECK_NEAR(sfp_policy_bit_cost(q), cost, 0);
    free(buf);
    sfp_policy_destroy(&q);
    sfp_policy_destroy(&p);

    /* a looser target lowers the cost and widens the tensors; one below
     * what the floors allow pins the cost at its maximum */
    c.qm.target_bits = 4.5;
    p = adaptive_policy(numel, 2, &c);
    double mb2;
    run_target(p, numel, 4000, &mb2);
    CHECK_NEAR(mb2, 4.5, 0.2);
    CHECK(sfp_policy_bit_cost(p) < cost);
    sfp_policy_destroy(&p);
    c.qm.target_bits = 1.0;
    p = adaptive_policy(numel, 2, &c);
    run_target(p, numel, 4000, &mb2);
    CHECK_NEAR(sfp_policy_bit_cost(p), c.qm.bit_cost_max, 1e-9);
    sfp_policy_destroy(&p);
    /* no target: the cost stays */
    c.qm.target_bits = 0;
    p = adaptive_policy(numel, 2, &c);
    run_target(p, numel, 200, &mb2);
    CHECK_NEAR(sfp_policy_bit_cost(p), c.qm.bit_cost, 0);
    sfp_policy_destroy(&p);
}

/* the calibration's own solve: the widths meet the target when it ends */
static void test_adaptive_calib_target(void)
{
    uint64_t numel[2] = { 7000, 3000 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QMQE);
    c.qm.calib_steps = 16;
    c.qm.bit_cost_max = 64;
    c.qm.calib_target = 1;
    const double targets[3] = { 3.5, 4.5, 6.0 };
    double prev_cost = INFINITY;
    for (int i = 0; i < 3; i++) {
        c.qm.target_bits = targets[i];
        sfp_policy *p = adaptive_policy(numel, 2, &c);
        if (!p)
            return;
        double mb;
        run_target(p, numel, 16, &mb); /* the calibration only */
        CHECK_EQ_INT(sfp_policy_calibrated(p), 1);
        double b = sim_bits(p, numel, 2);
        if (fabs(b - targets[i]) > 0.25)
            fprintf(stderr, "target %.1f: %.3f bits after calibration\n", targets[i], b);
        CHECK_NEAR(b, targets[i], 0.25);
        double cost = sfp_policy_bit_cost(p);
        CHECK(cost < prev_cost); /* looser target, cheaper bits */
        prev_cost = cost;
        /* and the loop keeps it there */
        run_target(p, numel, 2000, &mb);
        CHECK_NEAR(mb, targets[i], 0.25);
        sfp_policy_destroy(&p);
    }
    /* unreachable targets pin the cost at a bound */
    c.qm.target_bits = 1.0;
    sfp_policy *p = adaptive_policy(numel, 2, &c);
    double mb;
    run_target(p, numel, 16, &mb);
    CHECK_NEAR(sfp_policy_bit_cost(p), c.qm.bit_cost_max, 1e-9);
    sfp_policy_destroy(&p);
    c.qm.target_bits = 40;
    p = adaptive_policy(numel, 2, &c);
    run_target(p, numel, 16, &mb);
    CHECK_NEAR(sfp_policy_bit_cost(p), c.qm.bit_cost_min, 1e-9);
    sfp_policy_destroy(&p);
}

static void test_floors_and_state(void)
{
    uint64_t numel[2] = { 100, 100 };
    sfp_policy_config c;
    sfp_policy_config_default(&c, SFP_POLICY_QMQE);
    c.qm.e_min = 2;
    c.qm.calib_steps = 4;
    sfp_policy *p = adaptive_policy(numel, 2, &c);
    if (!p)
        return;
    CHECK_EQ_INT(sfp_policy_set_floor(p, 1, 0, 4), 0);
    CHECK_EQ_INT(sfp_policy_set_floor(p, 1, 0, 1), SFP_EINVAL); /* below config */
    CHECK_EQ_INT(sfp_policy_set_floor(p, 2, 0, 3), SFP_EINVAL);
    /* zero gradients: the regularizer alone drives both to their floors */
    double g0[2] = { 0, 0 };
    unsigned char *mid = NULL;
    size_t sz = sfp_policy_state_size(p);
    for (uint64_t s = 0; s < 400; s++) {
        CHECK_EQ_INT(sfp_policy_update(p, s, 1.0, g0, g0), 0);
        if (s == 1) { /* mid-calibration checkpoint */
            mid = malloc(sz);
            CHECK_EQ_INT(sfp_policy_state_save(p, mid, sz), 0);
        }
    }
    double n, e;
    sfp_policy_get(p, 0, &n, &e);
    CHECK_NEAR(n, 0, 0);
    CHECK_NEAR(e, 2, 0);
    sfp_policy_get(p, 1, &n, &e);
    CHECK_NEAR(e, 4, 0);
    sfp_width w[2];
    sfp_policy_choose(p, 401, w);
    CHECK(w[0].e == 2 && w[0].e_lo == 2 && w[0].e_hi == 3);
    CHECK(w[1].e == 4 && w[1].e_lo == 4);
    /* a resumed mid-calibration state ends where the uninterrupted run did */
    sfp_policy *q = NULL;
    CHECK_EQ_INT(sfp_policy_create(&q, &c, 2, numel), 0);
    CHECK_EQ_INT(sfp_policy_set_floor(q, 1, 0, 4), 0);
    CHECK_EQ_INT(sfp_policy_state_load(q, mid, sz), 0);
    CHECK_EQ_INT(sfp_policy_calibrated(q), 0);
    for (uint64_t s = 2; s < 400; s++)
        sfp_policy_update(q, s, 1.0, g0, g0);
    unsigned char *a = malloc(sz), *b = malloc(sz);
    sfp_policy_state_save(p, a, sz);
    sfp_policy_state_save(q, b, sz);
    CHECK(memcmp(a, b, sz) == 0);
    /* a state of the other rule is refused; corrupt moments too */
    sfp_policy_config cs = c;
    cs.qm.rule = SFP_QM_RULE_SGD;
    sfp_policy *r = NULL;
    CHECK_EQ_INT(sfp_policy_create(&r, &cs, 2, numel), 0);
    CHECK_EQ_INT(sfp_policy_state_load(r, a, sz), SFP_EHEADER);
    /* a version-1 image (widths and BitWave block only) still loads */
    size_t v1 = 8 + 4 + 4 + 8 + 16 * 2 + (6 * 4 + 2 * 8 + 2 * 8 + SFP_BITWAVE_HISTORY);
    unsigned char *old = calloc(1, v1);
    memcpy(old, "SFPPOL01", 8);
    old[8] = (unsigned char)SFP_POLICY_QMQE;
    old[16] = 2;
    double wv[4] = { 1.5, 2.5, 3.5, 4.5 };
    for (int i = 0; i < 4; i++)
        memcpy(old + 24 + 8 * i, &wv[i], 8); /* little endian host */
    CHECK_EQ_INT(sfp_policy_state_load(r, old, v1), 0);
    sfp_policy_get(r, 1, &n, &e);
    CHECK_NEAR(n, 2.5, 0);
    CHECK_NEAR(e, 4.5, 0);
    CHECK_EQ_INT(sfp_policy_state_load(r, old, v1 - 1), SFP_ETRUNC);
    free(old);
    free(a);
    free(b);
    free(mid);
    sfp_policy_destroy(&r);
    sfp_policy_destroy(&q);
    sfp_policy_destroy(&p);
    /* names */
    sfp_qm_rule rule;
    CHECK_EQ_INT(sfp_qm_rule_parse("sgd", &rule), 0);
    CHECK_EQ_INT(rule, SFP_QM_RULE_SGD);
    CHECK_EQ_INT(sfp_qm_rule_parse("adam", &rule), SFP_EINVAL);
    CHECK(strcmp(sfp_qm_rule_name(SFP_QM_RULE_ADAPTIVE), "adaptive") == 0);
}

static void test_bitwave(void)
{
    sfp_bitwave_config c;
    sfp_bitwave_config_default(&c);
    c.warmup = 0;
    c.period = 5;
    c.m_init = 3;
    sfp_bitwave bw;
    CHECK_EQ_INT(sfp_bitwave_init(&bw, &c), 0);
    CHECK_EQ_INT(sfp_bitwave_observe(&bw, 0, NAN), SFP_EINVAL);
    /* a falling loss spends precision: mantissa first, then exponent */
    uint64_t t = 0;
    double loss = 2.0;
    for (int i = 0; i < 200; i++, t++) {
        loss *= 0.97;
        sfp_bitwave_observe(&bw, t, loss);
    }
    CHECK_EQ_INT(bw.m, c.m_min);
    CHECK(bw.e < c.e_init);
    CHECK(bw.e >= c.e_min);
    unsigned m_low = bw.m, e_low = bw.e;
    /* a rising loss gives precision back, most recent decrement first */
    sfp_bitwave_reset_average(&bw);
    for (int i = 0; i < 10; i++, t++) {
        loss *= 1.2;
        sfp_bitwave_observe(&bw, t, loss);
    }
    CHECK(bw.e > e_low || bw.m > m_low);
    CHECK(bw.decisions_up > 0 && bw.decisions_down > 0);
    /* flat loss holds */
    sfp_bitwave_reset_average(&bw);
    unsigned m0 = bw.m, e0 = bw.e;
    for (int i = 0; i < 100; i++, t++)
        sfp_bitwave_observe(&bw, t, 1.0);
    CHECK(bw.m == m0 && bw.e == e0);
    c.e_min = 9;
    CHECK_EQ_INT(sfp_bitwave_init(&bw, &c), SFP_EINVAL);

    /* through the unified policy: all tensors share the widths */
    uint64_t numel[3] = { 5, 6, 7 };
    sfp_policy_config pc;
    sfp_policy_config_default(&pc, SFP_POLICY_BITWAVE);
    pc.bw.warmup = 0;
    sfp_policy *p = NULL;
    CHECK_EQ_INT(sfp_policy_create(&p, &pc, 3, numel), 0);
    if (!p)
        return;
    CHECK(!sfp_policy_wants_gradients(p));
    loss = 3;
    for (uint64_t s = 0; s < 300; s++) {
        loss *= 0.98;
        CHECK_EQ_INT(sfp_policy_update(p, s, loss, NULL, NULL), 0);
    }
    sfp_width w[3];
    sfp_policy_choose(p, 300, w);
    CHECK(w[0].k == w[1].k && w[1].k == w[2].k && w[0].e == w[2].e);
    CHECK(w[0].k < pc.bw.m_init);
    CHECK(sfp_policy_bitwave(p) != NULL);
    sfp_policy_destroy(&p);

    /* per-tensor floors: tensor 1 (an activation in sfp-train) keeps 3
     * mantissa and 5 exponent bits while the network's widths go to the
     * config's floors; whole bits within the config only */
    CHECK_EQ_INT(sfp_policy_create(&p, &pc, 3, numel), 0);
    if (!p)
        return;
    CHECK_EQ_INT(sfp_policy_set_floor(p, 1, 3, 5), 0);
    CHECK_EQ_INT(sfp_policy_set_floor(p, 1, 2.5, 5), SFP_EINVAL);
    CHECK_EQ_INT(sfp_policy_set_floor(p, 1, pc.bw.m_min - 1.0, 5), SFP_EINVAL);
    CHECK_EQ_INT(sfp_policy_set_floor(p, 1, 3, pc.bw.e_max + 1.0), SFP_EINVAL);
    CHECK_EQ_INT(sfp_policy_set_floor(p, 3, 3, 5), SFP_EINVAL);
    sfp_policy_choose(p, 0, w);
    CHECK(w[1].k == pc.bw.m_init && w[1].e == pc.bw.e_init); /* above the floors */
    loss = 3;
    for (uint64_t s = 0; s < 2000; s++) {
        loss *= 0.98;
        CHECK_EQ_INT(sfp_policy_update(p, s, loss, NULL, NULL), 0);
    }
    sfp_policy_choose(p, 2000, w);
    CHECK(w[0].k == pc.bw.m_min && w[0].e == pc.bw.e_min);
    CHECK(w[2].k == pc.bw.m_min && w[2].e == pc.bw.e_min);
    CHECK(w[1].k == 3 && w[1].e == 5);
    CHECK(w[1].k_lo == 3 && w[1].k_hi == 4 && w[1].e_lo == 5 && w[1].e_hi == 6);
    double fn, fe;
    sfp_policy_get(p, 1, &fn, &fe);
    CHECK_NEAR(fn, 3, 0);
    CHECK_NEAR(fe, 5, 0);
    sfp_policy_get(p, 0, &fn, &fe);
    CHECK_NEAR(fn, pc.bw.m_min, 0);
    sfp_policy_destroy(&p);

    /* fp32 policy: lossless widths, ignores updates */
    sfp_policy_config_default(&pc, SFP_POLICY_FP32);
    CHECK_EQ_INT(sfp_policy_create(&p, &pc, 3, numel), 0);
    sfp_policy_choose(p, 0, w);
    CHECK(w[0].k == 23 && w[0].e == 8);
    CHECK_EQ_INT(sfp_policy_update(p, 0, 1.0, NULL, NULL), 0);
    sfp_policy_destroy(&p);
}

int main(void)
{
    test_sample();
    test_kinds();
    test_qmqe();
    test_qm_only();
    test_adaptive_calibration();
    test_adaptive_adam();
    test_adaptive_equilibrium();
    test_floors_and_state();
    test_adaptive_target();
    test_adaptive_calib_target();
    test_bitwave();
    WCHECK_DONE();
}
