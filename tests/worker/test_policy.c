/* test_policy.c - QM/QE width policy and the BitWave controller. */
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
    test_bitwave();
    WCHECK_DONE();
}
