/*
 * policy.c - QM/QE learnable widths and the BitWave controller
 * (method-spec §4 and §5). See sfp/policy.h for the contracts.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sfp/policy.h"

#define RETURN_IF(cond, err) do { if (cond) return (err); } while (0)

static const char *const kind_names[] = { "fp32", "qm", "qmqe", "bitwave" };
static const char *const rule_names[] = { "adaptive", "sgd" };

#define NAMES(t) (t), sizeof(t) / sizeof((t)[0])

static const char *name_in(const char *const *names, unsigned n, unsigned i)
{
    return i < n ? names[i] : "?";
}

static int parse_in(const char *const *names, unsigned n, const char *name,
                    unsigned *out)
{
    RETURN_IF(!name || !out, SFP_EINVAL);
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return SFP_EINVAL;
}

const char *sfp_policy_kind_name(sfp_policy_kind kind)
{
    return name_in(NAMES(kind_names), (unsigned)kind);
}

int sfp_policy_kind_parse(const char *name, sfp_policy_kind *kind)
{
    unsigned i;
    RETURN_IF(!kind || parse_in(NAMES(kind_names), name, &i), SFP_EINVAL);
    *kind = (sfp_policy_kind)i;
    return 0;
}

const char *sfp_qm_rule_name(sfp_qm_rule rule)
{
    return name_in(NAMES(rule_names), (unsigned)rule);
}

int sfp_qm_rule_parse(const char *name, sfp_qm_rule *rule)
{
    unsigned i;
    RETURN_IF(!rule || parse_in(NAMES(rule_names), name, &i), SFP_EINVAL);
    *rule = (sfp_qm_rule)i;
    return 0;
}

/* ---------------------------------------------------------------- random */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double sfp_policy_uniform(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t h = mix64(seed ^ mix64(a ^ mix64(b + 0x51ed270b27b5a3d1ull)));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* ----------------------------------------------------- Quantum Mantissa */

void sfp_qm_config_default(sfp_qm_config *c, int learn_e)
{
    memset(c, 0, sizeof *c);
    c->n_init = 7.0;
    c->n_min = 0.0;
    c->n_max = 23.0;
    c->e_init = learn_e ? 6.0 : 8.0;
    c->e_min = 3.0;
    c->e_max = 8.0;
    c->rule = SFP_QM_RULE_ADAPTIVE;
    c->lr = 1.0;
    c->max_step = 0.01;
    c->gamma = 0.02;
    c->warmup = 50;
    c->bit_cost = 2.0; /* docs/RESULTS.md: the trade-off curves */
    c->step = 0.02;
    c->beta1 = 0.9;
    c->beta2 = 0.99;
    c->loss_beta = 0.9;
    c->calib_steps = 0;
    c->target_bits = 3.0; /* ~10.7x; effective only with observe_bits() */
    c->bit_cost_min = 0.01;
    c->bit_cost_max = 16;
    c->target_gain = 0.02;
    c->learn_e = learn_e;
}

int sfp_qm_sample(double w, unsigned lo, unsigned hi, double u,
                  unsigned *out, unsigned *blo, unsigned *bhi)
{
    RETURN_IF(!(isfinite(w)) || lo >= hi || !out || !blo || !bhi, SFP_EINVAL);
    if (w < lo)
        w = lo;
    if (w > hi)
        w = hi;
    unsigned f = (unsigned)floor(w);
    double frac = w - f;
    unsigned k = f + (f < hi && u < frac ? 1u : 0u);
    unsigned b0 = f < hi ? f : hi - 1;
    *out = k;
    *blo = b0;
    *bhi = b0 + 1;
    return 0;
}

static int qm_config_check(const sfp_qm_config *c)
{
    RETURN_IF(!(c->n_min >= 0 && c->n_min < c->n_max && c->n_max <= 23),
              SFP_EINVAL);
    RETURN_IF(!(c->e_min >= 1 && c->e_min <= c->e_max && c->e_max <= 8),
              SFP_EINVAL);
    RETURN_IF(c->learn_e && !(c->e_min < c->e_max), SFP_EINVAL);
    RETURN_IF(!(c->n_init >= c->n_min && c->n_init <= c->n_max), SFP_EINVAL);
    RETURN_IF(!(c->e_init >= c->e_min && c->e_init <= c->e_max), SFP_EINVAL);
    RETURN_IF(!(c->lr >= 0 && isfinite(c->lr)), SFP_EINVAL);
    RETURN_IF(!(c->max_step > 0 && isfinite(c->max_step)), SFP_EINVAL);
    RETURN_IF(!(c->gamma >= 0 && isfinite(c->gamma)), SFP_EINVAL);
    RETURN_IF(c->rule != SFP_QM_RULE_ADAPTIVE && c->rule != SFP_QM_RULE_SGD,
              SFP_EINVAL);
    RETURN_IF(!(c->bit_cost >= 0 && isfinite(c->bit_cost)), SFP_EINVAL);
    RETURN_IF(!(c->step > 0 && isfinite(c->step)), SFP_EINVAL);
    RETURN_IF(!(c->beta1 >= 0 && c->beta1 < 1), SFP_EINVAL);
    RETURN_IF(!(c->beta2 >= 0 && c->beta2 < 1), SFP_EINVAL);
    RETURN_IF(!(c->loss_beta >= 0 && c->loss_beta < 1), SFP_EINVAL);
    RETURN_IF(c->calib_steps > ((uint64_t)1 << 40), SFP_EINVAL);
    RETURN_IF(!(c->target_bits >= 0 && c->target_bits <= 64), SFP_EINVAL);
    RETURN_IF(!(c->bit_cost_min > 0 && c->bit_cost_min <= c->bit_cost_max &&
                isfinite(c->bit_cost_max)), SFP_EINVAL);
    RETURN_IF(!(c->target_gain >= 0 && c->target_gain <= 10), SFP_EINVAL);
    return 0;
}

/* -------------------------------------------------------------- BitWave */

void sfp_bitwave_config_default(sfp_bitwave_config *c)
{
    memset(c, 0, sizeof *c);
    c->m_init = 7;
    c->m_min = 2; /* 0 starves the sensitive tensors: docs/RESULTS.md */
    c->m_max = 23;
    c->e_init = 8;
    c->e_min = 4; /* 3 flushes what the transformer needs: docs/RESULTS.md */
    c->e_max = 8;
    c->beta = 0.99;
    c->tau = 0.01;
    c->period = 10;
    c->warmup = 50;
}

int sfp_bitwave_init(sfp_bitwave *bw, const sfp_bitwave_config *c)
{
    RETURN_IF(!bw || !c, SFP_EINVAL);
    RETURN_IF(c->m_min > c->m_max || c->m_max > 23, SFP_EINVAL);
    RETURN_IF(c->e_min < 1 || c->e_min > c->e_max || c->e_max > 8, SFP_EINVAL);
    RETURN_IF(c->m_init < c->m_min || c->m_init > c->m_max, SFP_EINVAL);
    RETURN_IF(c->e_init < c->e_min || c->e_init > c->e_max, SFP_EINVAL);
    RETURN_IF(!(c->beta >= 0 && c->beta < 1), SFP_EINVAL);
    RETURN_IF(!(c->tau >= 0 && isfinite(c->tau)) || c->period == 0,
              SFP_EINVAL);
    memset(bw, 0, sizeof *bw);
    bw->cfg = *c;
    bw->m = c->m_init;
    bw->e = c->e_init;
    return 0;
}

void sfp_bitwave_reset_average(sfp_bitwave *bw)
{
    if (!bw)
        return;
    bw->have_avg = 0;
    bw->win_sum = 0;
    bw->win_n = 0;
}

int sfp_bitwave_observe(sfp_bitwave *bw, uint64_t step, double loss)
{
    RETURN_IF(!bw || !isfinite(loss), SFP_EINVAL);
    const sfp_bitwave_config *c = &bw->cfg;
    bw->avg = bw->have_avg ? c->beta * bw->avg + (1 - c->beta) * loss : loss;
    bw->have_avg = 1;
    bw->win_sum += loss;
    bw->win_n++;
    if ((step + 1) % c->period != 0)
        return 0;
    double s = bw->win_sum / bw->win_n;
    bw->win_sum = 0;
    bw->win_n = 0;
    if (step < c->warmup)
        return 0;
    if (s < bw->avg * (1 - c->tau)) {
        /* improving faster than the trend: spend less precision */
        char f = 0;
        if (bw->m > c->m_min) {
            bw->m--;
            f = 'm';
        } else if (bw->e > c->e_min) {
            bw->e--;
            f = 'e';
        }
        if (f) {
            if (bw->hist_n == SFP_BITWAVE_HISTORY) {
                memmove(bw->hist, bw->hist + 1, SFP_BITWAVE_HISTORY - 1);
                bw->hist_n--;
            }
            bw->hist[bw->hist_n++] = f;
            bw->decisions_down++;
        }
    } else if (s > bw->avg * (1 + c->tau)) {
        /* worse than the trend: give back the most recent decrement */
        char f = bw->hist_n ? bw->hist[--bw->hist_n] : 'm';
        if (f == 'm' && bw->m < c->m_max)
            bw->m++;
        else if (f == 'e' && bw->e < c->e_max)
            bw->e++;
        bw->decisions_up++;
    }
    return 0;
}

/* --------------------------------------------------------------- policy */

/* Calibration sweeps at most this many brackets per dimension. */
#define KN_MAX 23
#define KE_MAX 7

/* Integer range [lo, hi] of a learned width and its bracket sweep. */
typedef struct wrange {
    unsigned lo, hi;     /* integer bounds of the draws                */
    unsigned sweep;      /* brackets calibrated: (lo + j, lo + j + 1)  */
} wrange;

struct sfp_policy {
    sfp_policy_config cfg;
    size_t n;
    double *lambda; /* footprint weights, sum 1       */
    double *wn;     /* learned mantissa widths        */
    double *we;     /* learned exponent widths        */
    double *fn, *fe; /* per-tensor floors (>= config) */
    wrange rn, re;
    /* adaptive rule */
    int calibrated;
    uint64_t calib_steps;
    uint64_t adam_t;            /* Adam steps taken               */
    double loss_ema;
    int have_loss;
    double *mn, *vn, *me, *ve;  /* Adam moments per tensor        */
    double *csn, *cse;          /* calibration sums [t][bracket]  */
    uint32_t cnn[KN_MAX], cne[KE_MAX]; /* samples per bracket     */
    double bit_cost;            /* in force (%)                    */
    double bits_ema;            /* measured stored bits per value  */
    int have_bits;
    double calib_bits;          /* calibration: sum of measured bits */
    uint32_t calib_nbits;       /* and the steps that gave them      */
    sfp_bitwave bw;
};

static wrange range_of(double wmin, double wmax, double winit, int exponent)
{
    wrange r;
    r.lo = (unsigned)ceil(wmin);
    r.hi = (unsigned)floor(wmax);
    if (r.hi <= r.lo) {
        if (exponent)
            r.lo = r.hi - 1;
        else
            r.hi = r.lo + 1;
    }
    /* brackets from the floor up to one above the start */
    unsigned top = (unsigned)ceil(winit) + 1;
    if (top > r.hi)
        top = r.hi;
    r.sweep = top > r.lo ? top - r.lo : 1;
    if (r.sweep > (exponent ? KE_MAX : KN_MAX))
        r.sweep = exponent ? KE_MAX : KN_MAX;
    return r;
}

void sfp_policy_config_default(sfp_policy_config *c, sfp_policy_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->seed = 0x5f9u;
    sfp_qm_config_default(&c->qm, kind == SFP_POLICY_QMQE);
    sfp_bitwave_config_default(&c->bw);
}

static int adaptive(const sfp_policy *p)
{
    return (p->cfg.kind == SFP_POLICY_QM || p->cfg.kind == SFP_POLICY_QMQE) &&
           p->cfg.qm.rule == SFP_QM_RULE_ADAPTIVE;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int sfp_policy_create(sfp_policy **out, const sfp_policy_config *c,
                      size_t ntensors, const uint64_t *numel)
{
    RETURN_IF(!out || !c || ntensors == 0 || !numel, SFP_EINVAL);
    RETURN_IF(ntensors > (SIZE_MAX / sizeof(double)) / (KN_MAX + KE_MAX + 8),
              SFP_EOVERFLOW);
    switch (c->kind) {
    case SFP_POLICY_FP32:
        break;
    case SFP_POLICY_QM:
    case SFP_POLICY_QMQE: {
        int rc = qm_config_check(&c->qm);
        RETURN_IF(rc, rc);
        RETURN_IF(c->kind == SFP_POLICY_QMQE && !c->qm.learn_e, SFP_EINVAL);
        break;
    }
    case SFP_POLICY_BITWAVE: {
        sfp_bitwave tmp;
        int rc = sfp_bitwave_init(&tmp, &c->bw);
        RETURN_IF(rc, rc);
        break;
    }
    default:
        return SFP_EINVAL;
    }
    double total = 0;
    for (size_t t = 0; t < ntensors; t++)
        total += (double)numel[t];
    RETURN_IF(!(total > 0), SFP_EINVAL);

    sfp_policy *p = calloc(1, sizeof *p);
    if (!p)
        return SFP_ENOMEM;
    p->cfg = *c;
    if (c->kind == SFP_POLICY_QM)
        p->cfg.qm.learn_e = 0;
    p->n = ntensors;
    p->lambda = malloc(ntensors * sizeof(double));
    p->wn = malloc(ntensors * sizeof(double));
    p->we = malloc(ntensors * sizeof(double));
    p->fn = malloc(2 * ntensors * sizeof(double));
    p->mn = calloc(4 * ntensors, sizeof(double));
    p->csn = calloc(ntensors * (KN_MAX + KE_MAX), sizeof(double));
    if (!p->lambda || !p->wn || !p->we || !p->fn || !p->mn || !p->csn)
        goto fail;
    p->fe = p->fn + ntensors;
    p->vn = p->mn + ntensors;
    p->me = p->vn + ntensors;
    p->ve = p->me + ntensors;
    p->cse = p->csn + ntensors * KN_MAX;
    for (size_t t = 0; t < ntensors; t++) {
        p->lambda[t] = (double)numel[t] / total;
        p->wn[t] = c->qm.n_init;
        p->we[t] = c->qm.e_init;
        p->fn[t] = c->qm.n_min;
        p->fe[t] = c->qm.e_min;
    }
    const sfp_qm_config *q = &p->cfg.qm;
    p->rn = range_of(q->n_min, q->n_max, q->n_init, 0);
    p->re = range_of(q->e_min, q->e_max, q->e_init, 1);
    if (!q->learn_e)
        p->re.sweep = 0;
    p->calib_steps = q->calib_steps;
    p->bit_cost = q->bit_cost;
    if (q->target_bits > 0)
        p->bit_cost = clampd(p->bit_cost, q->bit_cost_min, q->bit_cost_max);
    if (!p->calib_steps)
        p->calib_steps = 2 * (uint64_t)(p->rn.sweep > p->re.sweep ? p->rn.sweep
                                                                   : p->re.sweep);
    if (c->kind == SFP_POLICY_BITWAVE) {
        sfp_bitwave_init(&p->bw, &c->bw);
        for (size_t t = 0; t < ntensors; t++) {
            p->fn[t] = c->bw.m_min;
            p->fe[t] = c->bw.e_min;
        }
    }
    *out = p;
    return 0;
fail:
    sfp_policy_destroy(&p);
    return SFP_ENOMEM;
}

void sfp_policy_destroy(sfp_policy **pp)
{
    if (!pp || !*pp)
        return;
    sfp_policy *p = *pp;
    free(p->lambda);
    free(p->wn);
    free(p->we);
    free(p->fn);
    free(p->mn);
    free(p->csn);
    free(p);
    *pp = NULL;
}

sfp_policy_kind sfp_policy_kind_of(const sfp_policy *p)
{
    return p->cfg.kind;
}

size_t sfp_policy_ntensors(const sfp_policy *p)
{
    return p->n;
}

int sfp_policy_wants_gradients(const sfp_policy *p)
{
    return p && (p->cfg.kind == SFP_POLICY_QM || p->cfg.kind == SFP_POLICY_QMQE);
}

int sfp_policy_calibrated(const sfp_policy *p)
{
    return p && adaptive(p) ? p->calibrated : -1;
}

static int calibrating(const sfp_policy *p, uint64_t step);

int sfp_policy_observe_bits(sfp_policy *p, uint64_t step, double bits)
{
    RETURN_IF(!p || !(bits >= 0 && isfinite(bits)), SFP_EINVAL);
    const sfp_qm_config *q = &p->cfg.qm;
    if (!adaptive(p) || !(q->target_bits > 0))
        return 0;
    if (calibrating(p, step)) {
        /* the containers of these steps have the start widths: the ratio
         * of measured to dense bits scales the solve at the end */
        p->calib_bits += bits;
        p->calib_nbits++;
        return 0;
    }
    if (!p->calibrated)
        return 0;
    /* ~20-step average: the per-step draws of ⌊n⌋/⌈n⌉ make single steps
     * noisy; the widths follow a new cost within a few tens of steps */
    p->bits_ema = p->have_bits ? 0.95 * p->bits_ema + 0.05 * bits : bits;
    p->have_bits = 1;
    double err = p->bits_ema / q->target_bits - 1;
    p->bit_cost = clampd(p->bit_cost * exp(q->target_gain * clampd(err, -1, 1)),
                         q->bit_cost_min, q->bit_cost_max);
    return 0;
}

double sfp_policy_bit_cost(const sfp_policy *p)
{
    return p && adaptive(p) ? p->bit_cost : 0;
}

const sfp_bitwave *sfp_policy_bitwave(const sfp_policy *p)
{
    return p && p->cfg.kind == SFP_POLICY_BITWAVE ? &p->bw : NULL;
}

static void bracket_fixed(unsigned w, unsigned lo, unsigned hi,
                          unsigned *blo, unsigned *bhi)
{
    unsigned b0 = w < hi ? w : hi - 1;
    if (b0 < lo)
        b0 = lo;
    *blo = b0;
    *bhi = b0 + 1;
}

/* While calibrating, step s measures bracket (lo + j, lo + j + 1). */
static int calibrating(const sfp_policy *p, uint64_t step)
{
    return adaptive(p) && !p->calibrated && step < p->calib_steps;
}

static unsigned sweep_index(uint64_t step, unsigned sweep)
{
    return sweep ? (unsigned)(step % sweep) : 0;
}

/* BitWave: the controller's width w, raised to a tensor's floor f. */
static unsigned bw_width(unsigned w, double f)
{
    return (double)w < f ? (unsigned)f : w;
}

int sfp_policy_choose(const sfp_policy *p, uint64_t step, sfp_width *out)
{
    RETURN_IF(!p || !out, SFP_EINVAL);
    const int calib = calibrating(p, step);
    for (size_t t = 0; t < p->n; t++) {
        sfp_width w;
        switch (p->cfg.kind) {
        case SFP_POLICY_QM:
        case SFP_POLICY_QMQE: {
            const sfp_qm_config *q = &p->cfg.qm;
            double u = sfp_policy_uniform(p->cfg.seed, step, 2 * t);
            unsigned nlo = (unsigned)ceil(p->fn[t]), elo = (unsigned)ceil(p->fe[t]);
            if (nlo >= p->rn.hi)
                nlo = p->rn.hi - 1;
            if (elo >= p->re.hi)
                elo = p->re.hi - 1;
            int rc = sfp_qm_sample(p->wn[t], nlo, p->rn.hi, u, &w.k,
                                   &w.k_lo, &w.k_hi);
            RETURN_IF(rc, rc);
            if (calib) {
                w.k_lo = p->rn.lo + sweep_index(step, p->rn.sweep);
                w.k_hi = w.k_lo + 1;
            }
            if (q->learn_e) {
                double v = sfp_policy_uniform(p->cfg.seed, step, 2 * t + 1);
                rc = sfp_qm_sample(p->we[t], elo, p->re.hi, v, &w.e,
                                   &w.e_lo, &w.e_hi);
                RETURN_IF(rc, rc);
                if (calib) {
                    w.e_lo = p->re.lo + sweep_index(step, p->re.sweep);
                    w.e_hi = w.e_lo + 1;
                }
            } else {
                w.e = (unsigned)lround(q->e_init);
                bracket_fixed(w.e, 1, 8, &w.e_lo, &w.e_hi);
            }
            break;
        }
        case SFP_POLICY_BITWAVE:
            /* the network's widths, or the tensor's floors if higher */
            w.k = bw_width(p->bw.m, p->fn[t]);
            w.e = bw_width(p->bw.e, p->fe[t]);
            bracket_fixed(w.k, 0, 23, &w.k_lo, &w.k_hi);
            bracket_fixed(w.e, 1, 8, &w.e_lo, &w.e_hi);
            break;
        default:
            w.k = 23;
            w.e = 8;
            w.k_lo = 22;
            w.k_hi = 23;
            w.e_lo = 7;
            w.e_hi = 8;
            break;
        }
        out[t] = w;
    }
    return 0;
}

static void update_sgd(sfp_policy *p, uint64_t step, const double *grad_n,
                       const double *grad_e)
{
    const sfp_qm_config *q = &p->cfg.qm;
    double gamma = step < q->warmup ? 0.0 : q->gamma;
    for (size_t t = 0; t < p->n; t++) {
        double reg = gamma * p->lambda[t];
        double dn = clampd(-q->lr * (grad_n[t] + reg), -q->max_step, q->max_step);
        p->wn[t] = clampd(p->wn[t] + dn, p->fn[t], q->n_max);
        if (q->learn_e) {
            double de = clampd(-q->lr * (grad_e[t] + reg), -q->max_step, q->max_step);
            p->we[t] = clampd(p->we[t] + de, p->fe[t], q->e_max);
        }
    }
}

/*
 * Mantissa width where one more bit saves exactly cost (relative loss): the
 * rounding noise of k bits has a variance ~ 4^-k, so the value of bit k+1,
 * v(k) = L(k) - L(k+1), follows C * 4^-k. C is fitted by least squares over
 * the measured brackets (dominated by the low ones, where the signal is
 * well above the sampling noise); the balance C * 4^-n = cost gives n.
 */
static double calib_mantissa(const double *v, const uint32_t *cnt,
                             unsigned lo, unsigned sweep, double cost)
{
    double num = 0, den = 0;
    for (unsigned j = 0; j < sweep; j++) {
        if (!cnt[j])
            continue;
        double w = pow(4.0, -(double)(lo + j));
        num += w * (v[j] / cnt[j]);
        den += w * w;
    }
    if (!(den > 0) || !(num > 0) || !(cost > 0))
        return num > 0 ? 1e9 : -1e9;
    return log(num / den / cost) / log(4.0);
}

/*
 * Exponent width: no closed law (flushing a binade is a biased error that
 * depends on the distribution), so keep every bit whose measured value is
 * at least cost: 1 + the highest such bracket.
 */
static double calib_exponent(const double *v, const uint32_t *cnt,
                             unsigned lo, unsigned sweep, double cost)
{
    double e = lo;
    for (unsigned j = 0; j < sweep; j++)
        if (cnt[j] && v[j] / cnt[j] >= cost)
            e = lo + j + 1;
    return e;
}

/* The balanced widths of tensor t at bit cost P (%), from the calibration. */
static void calib_widths(const sfp_policy *p, size_t t, double P, double *n, double *e)
{
    const sfp_qm_config *q = &p->cfg.qm;
    double cost = P / 100 * p->lambda[t];
    /* no evidence beyond the brackets measured */
    double w = calib_mantissa(p->csn + t * KN_MAX, p->cnn, p->rn.lo, p->rn.sweep, cost);
    w = clampd(w, p->fn[t], (double)(p->rn.lo + p->rn.sweep));
    *n = clampd(w, p->fn[t], q->n_max);
    *e = p->we[t];
    if (q->learn_e) {
        w = calib_exponent(p->cse + t * KE_MAX, p->cne, p->re.lo, p->re.sweep, cost);
        *e = clampd(w, p->fe[t], q->e_max);
    }
}

/* Dense bits per value (sign + mantissa + exponent), footprint-weighted. */
static double dense_bits(const sfp_policy *p, double P)
{
    double b = 0;
    for (size_t t = 0; t < p->n; t++) {
        double n, e;
        if (P > 0) {
            calib_widths(p, t, P, &n, &e);
        } else {
            n = p->wn[t];
            e = p->we[t];
        }
        b += p->lambda[t] * (1 + n + e);
    }
    return b;
}

/*
 * With a footprint target, the bit cost the calibrated widths meet it at:
 * the stored bits are modelled as the measured bits of the calibration
 * steps (start widths) scaled by the dense bits, b(P) = r * dense(P) with
 * r = measured / dense(start) (zeros, Gecko and headers folded into r), and
 * ln P is bisected in [bit_cost_min, bit_cost_max]; b(P) does not rise
 * with P. The controller of sfp_policy_observe_bits() corrects what the
 * model misses. Without measurements the bit cost stays.
 */
static void solve_bit_cost(sfp_policy *p)
{
    const sfp_qm_config *q = &p->cfg.qm;
    double d0 = dense_bits(p, 0);
    if (!(q->target_bits > 0) || !p->calib_nbits || !(d0 > 0))
        return;
    double r = p->calib_bits / p->calib_nbits / d0;
    if (!(r > 0) || !isfinite(r))
        return;
    double lo = log(q->bit_cost_min), hi = log(q->bit_cost_max);
    if (r * dense_bits(p, exp(lo)) <= q->target_bits) {
        p->bit_cost = exp(lo); /* even the cheapest cost stays below */
        return;
    }
    if (r * dense_bits(p, exp(hi)) >= q->target_bits) {
        p->bit_cost = exp(hi); /* the floors cannot meet it */
        return;
    }
    for (int i = 0; i < 40; i++) {
        double mid = 0.5 * (lo + hi);
        if (r * dense_bits(p, exp(mid)) > q->target_bits)
            lo = mid;
        else
            hi = mid;
    }
    p->bit_cost = exp(hi);
}

static void finish_calibration(sfp_policy *p)
{
    if (p->cfg.qm.calib_target)
        solve_bit_cost(p);
    for (size_t t = 0; t < p->n; t++)
        calib_widths(p, t, p->bit_cost, &p->wn[t], &p->we[t]);
    memset(p->mn, 0, 4 * p->n * sizeof(double));
    p->adam_t = 0;
    p->calibrated = 1;
}

static double adam_step(double *m, double *v, double g, const sfp_qm_config *q,
                        uint64_t t)
{
    *m = q->beta1 * *m + (1 - q->beta1) * g;
    *v = q->beta2 * *v + (1 - q->beta2) * g * g;
    double mh = *m / (1 - pow(q->beta1, (double)t));
    double vh = *v / (1 - pow(q->beta2, (double)t));
    double d = -q->step * mh / (sqrt(vh) + 1e-30);
    return clampd(d, -4 * q->step, 4 * q->step);
}

static void update_adaptive(sfp_policy *p, uint64_t step, double loss,
                            const double *grad_n, const double *grad_e)
{
    const sfp_qm_config *q = &p->cfg.qm;
    p->loss_ema = p->have_loss ? q->loss_beta * p->loss_ema + (1 - q->loss_beta) * loss
                               : loss;
    p->have_loss = 1;
    /* relative loss: the cost of a bit means the same at any loss level */
    double scale = p->loss_ema > 1e-12 ? 1.0 / p->loss_ema : 1e12;
    if (calibrating(p, step)) {
        unsigned jn = sweep_index(step, p->rn.sweep), je = sweep_index(step, p->re.sweep);
        for (size_t t = 0; t < p->n; t++) {
            p->csn[t * KN_MAX + jn] -= scale * grad_n[t];
            if (q->learn_e)
                p->cse[t * KE_MAX + je] -= scale * grad_e[t];
        }
        p->cnn[jn]++;
        if (q->learn_e)
            p->cne[je]++;
        if (step + 1 >= p->calib_steps)
            finish_calibration(p);
        return;
    }
    if (!p->calibrated)
        finish_calibration(p); /* resumed past the calibration window */
    p->adam_t++;
    for (size_t t = 0; t < p->n; t++) {
        double reg = p->bit_cost / 100 * p->lambda[t];
        double dn = adam_step(&p->mn[t], &p->vn[t], scale * grad_n[t] + reg, q, p->adam_t);
        p->wn[t] = clampd(p->wn[t] + dn, p->fn[t], q->n_max);
        if (q->learn_e) {
            double de = adam_step(&p->me[t], &p->ve[t], scale * grad_e[t] + reg, q,
                                  p->adam_t);
            p->we[t] = clampd(p->we[t] + de, p->fe[t], q->e_max);
        }
    }
}

int sfp_policy_update(sfp_policy *p, uint64_t step, double loss,
                      const double *grad_n, const double *grad_e)
{
    RETURN_IF(!p, SFP_EINVAL);
    switch (p->cfg.kind) {
    case SFP_POLICY_FP32:
        return 0;
    case SFP_POLICY_BITWAVE:
        return sfp_bitwave_observe(&p->bw, step, loss);
    default:
        break;
    }
    const sfp_qm_config *q = &p->cfg.qm;
    RETURN_IF(!grad_n || (q->learn_e && !grad_e), SFP_EINVAL);
    RETURN_IF(!isfinite(loss), SFP_EINVAL);
    for (size_t t = 0; t < p->n; t++) {
        RETURN_IF(!isfinite(grad_n[t]), SFP_EINVAL);
        RETURN_IF(q->learn_e && !isfinite(grad_e[t]), SFP_EINVAL);
    }
    if (q->rule == SFP_QM_RULE_SGD)
        update_sgd(p, step, grad_n, grad_e);
    else
        update_adaptive(p, step, loss, grad_n, grad_e);
    return 0;
}

int sfp_policy_set_floor(sfp_policy *p, size_t t, double n_min, double e_min)
{
    RETURN_IF(!p || t >= p->n, SFP_EINVAL);
    if (p->cfg.kind == SFP_POLICY_BITWAVE) {
        /* whole bits, within the controller's bounds */
        const sfp_bitwave_config *b = &p->cfg.bw;
        RETURN_IF(!(n_min >= b->m_min && n_min <= b->m_max && n_min == floor(n_min)),
                  SFP_EINVAL);
        RETURN_IF(!(e_min >= b->e_min && e_min <= b->e_max && e_min == floor(e_min)),
                  SFP_EINVAL);
        p->fn[t] = n_min;
        p->fe[t] = e_min;
        return 0;
    }
    RETURN_IF(p->cfg.kind != SFP_POLICY_QM && p->cfg.kind != SFP_POLICY_QMQE,
              SFP_EINVAL);
    const sfp_qm_config *q = &p->cfg.qm;
    RETURN_IF(!(n_min >= q->n_min && n_min < q->n_max), SFP_EINVAL);
    RETURN_IF(!(e_min >= q->e_min && e_min <= q->e_max), SFP_EINVAL);
    RETURN_IF(q->learn_e && !(e_min < q->e_max), SFP_EINVAL);
    p->fn[t] = n_min;
    p->fe[t] = e_min;
    p->wn[t] = clampd(p->wn[t], n_min, q->n_max);
    if (q->learn_e)
        p->we[t] = clampd(p->we[t], e_min, q->e_max);
    return 0;
}

int sfp_policy_get(const sfp_policy *p, size_t t, double *n, double *e)
{
    RETURN_IF(!p || t >= p->n, SFP_EINVAL);
    double vn = 23, ve = 8;
    switch (p->cfg.kind) {
    case SFP_POLICY_QM:
    case SFP_POLICY_QMQE:
        vn = p->wn[t];
        ve = p->we[t];
        break;
    case SFP_POLICY_BITWAVE:
        vn = bw_width(p->bw.m, p->fn[t]);
        ve = bw_width(p->bw.e, p->fe[t]);
        break;
    default:
        break;
    }
    if (n)
        *n = vn;
    if (e)
        *e = ve;
    return 0;
}

double sfp_policy_regularizer(const sfp_policy *p)
{
    double r = 0;
    for (size_t t = 0; p && t < p->n; t++) {
        double n, e;
        sfp_policy_get(p, t, &n, &e);
        r += p->lambda[t] * (n + e);
    }
    return r;
}
/* ------------------------------------------------------------ checkpoint */

/*
 * Image (version 2): "SFPPOL02" | u32 kind | u32 rule | u64 ntensors |
 *        f64 wn[n] | f64 we[n] |
 *        adaptive: u32 calibrated, have_loss | u64 calib_steps, adam_t |
 *        f64 loss_ema, bit_cost, bits_ema | u32 have_bits, pad |
 *        f64 mn[n], vn[n], me[n], ve[n] |
 *        f64 csn[n][23] | f64 cse[n][7] | u32 cnn[23] | u32 cne[7] |
 *        bitwave: u32 m, e, have_avg, win_n, hist_n, pad | f64 avg, win_sum |
 *        u64 down, up | hist[64].
 * Version 1 images ("SFPPOL01": no rule and no adaptive block) still load:
 * the adaptive rule then goes on from the saved widths, calibration done.
 */
#define POL_MAGIC "SFPPOL02"
#define POL_MAGIC_V1 "SFPPOL01"
#define POL_BW_BYTES (6 * 4 + 2 * 8 + 2 * 8 + SFP_BITWAVE_HISTORY)
#define POL_AD_BYTES(n) (4 + 4 + 8 + 8 + 3 * 8 + 4 + 4 + 32 * (n) + \
                         8 * (n) * (KN_MAX + KE_MAX) + 4 * (KN_MAX + KE_MAX))

static size_t state_size_v1(size_t n)
{
    return 8 + 4 + 4 + 8 + 16 * n + POL_BW_BYTES;
}

size_t sfp_policy_state_size(const sfp_policy *p)
{
    if (!p)
        return 0;
    return state_size_v1(p->n) + POL_AD_BYTES(p->n);
}

static void put_u32(unsigned char **w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *(*w)++ = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char **w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *(*w)++ = (unsigned char)(v >> (8 * i));
}

static void put_f64(unsigned char **w, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(w, v);
}

static uint32_t get_u32(const unsigned char **r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)(*r)[i] << (8 * i);
    *r += 4;
    return v;
}

static uint64_t get_u64(const unsigned char **r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)(*r)[i] << (8 * i);
    *r += 8;
    return v;
}

static double get_f64(const unsigned char **r)
{
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static void put_bw(unsigned char **w, const sfp_bitwave *bw)
{
    put_u32(w, bw->m);
    put_u32(w, bw->e);
    put_u32(w, (uint32_t)bw->have_avg);
    put_u32(w, bw->win_n);
    put_u32(w, bw->hist_n);
    put_u32(w, 0);
    put_f64(w, bw->avg);
    put_f64(w, bw->win_sum);
    put_u64(w, bw->decisions_down);
    put_u64(w, bw->decisions_up);
    memcpy(*w, bw->hist, SFP_BITWAVE_HISTORY);
    *w += SFP_BITWAVE_HISTORY;
}

static void get_bw(const unsigned char **r, sfp_bitwave *bw)
{
    bw->m = get_u32(r);
    bw->e = get_u32(r);
    bw->have_avg = (int)get_u32(r);
    bw->win_n = get_u32(r);
    bw->hist_n = get_u32(r);
    *r += 4;
    bw->avg = get_f64(r);
    bw->win_sum = get_f64(r);
    bw->decisions_down = get_u64(r);
    bw->decisions_up = get_u64(r);
    memcpy(bw->hist, *r, SFP_BITWAVE_HISTORY);
    *r += SFP_BITWAVE_HISTORY;
}

static void put_f64s(unsigned char **w, const double *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_f64(w, d[i]);
}

static int get_f64s(const unsigned char **r, double *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        d[i] = get_f64(r);
        RETURN_IF(!isfinite(d[i]), SFP_EHEADER);
    }
    return 0;
}

int sfp_policy_state_save(const sfp_policy *p, void *buf, size_t cap)
{
    RETURN_IF(!p || !buf, SFP_EINVAL);
    RETURN_IF(cap < sfp_policy_state_size(p), SFP_ENOSPC);
    unsigned char *w = buf;
    memcpy(w, POL_MAGIC, 8);
    w += 8;
    put_u32(&w, (uint32_t)p->cfg.kind);
    put_u32(&w, (uint32_t)p->cfg.qm.rule);
    put_u64(&w, p->n);
    put_f64s(&w, p->wn, p->n);
    put_f64s(&w, p->we, p->n);
    put_u32(&w, (uint32_t)p->calibrated);
    put_u32(&w, (uint32_t)p->have_loss);
    put_u64(&w, p->calib_steps);
    put_u64(&w, p->adam_t);
    put_f64(&w, p->loss_ema);
    put_f64(&w, p->bit_cost);
    put_f64(&w, p->bits_ema);
    put_u32(&w, (uint32_t)p->have_bits);
    put_u32(&w, 0);
    put_f64s(&w, p->mn, 4 * p->n);
    put_f64s(&w, p->csn, p->n * (KN_MAX + KE_MAX));
    for (unsigned j = 0; j < KN_MAX; j++)
        put_u32(&w, p->cnn[j]);
    for (unsigned j = 0; j < KE_MAX; j++)
        put_u32(&w, p->cne[j]);
    put_bw(&w, &p->bw);
    return 0;
}

int sfp_policy_state_load(sfp_policy *p, const void *buf, size_t len)
{
    RETURN_IF(!p || !buf, SFP_EINVAL);
    RETURN_IF(len < 8, SFP_ETRUNC);
    const unsigned char *r = buf;
    int v1 = memcmp(r, POL_MAGIC_V1, 8) == 0;
    RETURN_IF(!v1 && memcmp(r, POL_MAGIC, 8) != 0, SFP_EMAGIC);
    RETURN_IF(len < (v1 ? state_size_v1(p->n) : sfp_policy_state_size(p)),
              SFP_ETRUNC);
    r += 8;
    RETURN_IF(get_u32(&r) != (uint32_t)p->cfg.kind, SFP_EHEADER);
    uint32_t rule = get_u32(&r);
    RETURN_IF(!v1 && rule != (uint32_t)p->cfg.qm.rule, SFP_EHEADER);
    RETURN_IF(get_u64(&r) != p->n, SFP_EHEADER);
    const sfp_qm_config *q = &p->cfg.qm;
    /* decode into a scratch policy image, commit only when all is valid */
    size_t nd = 2 * p->n + 4 * p->n + p->n * (KN_MAX + KE_MAX);
    double *d = calloc(nd ? nd : 1, sizeof(double));
    RETURN_IF(!d, SFP_ENOMEM);
    double *wn = d, *we = d + p->n, *mom = we + p->n, *cs = mom + 4 * p->n;
    int rc = get_f64s(&r, wn, 2 * p->n);
    for (size_t t = 0; !rc && t < p->n; t++)
        if (!(wn[t] >= q->n_min && wn[t] <= q->n_max) ||
            !(we[t] >= q->e_min && we[t] <= q->e_max))
            rc = SFP_EHEADER;
    uint32_t calibrated = 1, have_loss = 0, cnn[KN_MAX] = { 0 }, cne[KE_MAX] = { 0 };
    uint64_t calib_steps = p->calib_steps, adam_t = 0;
    double loss_ema = 0, bit_cost = p->bit_cost, bits_ema = 0;
    uint32_t have_bits = 0;
    if (!rc && !v1) {
        calibrated = get_u32(&r);
        have_loss = get_u32(&r);
        calib_steps = get_u64(&r);
        adam_t = get_u64(&r);
        loss_ema = get_f64(&r);
        bit_cost = get_f64(&r);
        bits_ema = get_f64(&r);
        have_bits = get_u32(&r);
        r += 4;
        if (!(bit_cost >= 0 && isfinite(bit_cost)) || !(bits_ema >= 0 && isfinite(bits_ema)) ||
            have_bits > 1)
            rc = SFP_EHEADER;
        if (calibrated > 1 || have_loss > 1 || !isfinite(loss_ema) ||
            calib_steps > ((uint64_t)1 << 40) || adam_t > ((uint64_t)1 << 50))
            rc = SFP_EHEADER;
        if (!rc)
            rc = get_f64s(&r, mom, 4 * p->n + p->n * (KN_MAX + KE_MAX));
        for (size_t i = 0; !rc && i < 4 * p->n; i++)
            if ((i / p->n) % 2 == 1 && mom[i] < 0) /* second moments */
                rc = SFP_EHEADER;
        for (unsigned j = 0; j < KN_MAX; j++)
            cnn[j] = get_u32(&r);
        for (unsigned j = 0; j < KE_MAX; j++)
            cne[j] = get_u32(&r);
    }
    sfp_bitwave bw = p->bw;
    if (!rc)
        get_bw(&r, &bw);
    if (!rc && p->cfg.kind == SFP_POLICY_BITWAVE) {
        if (bw.m < bw.cfg.m_min || bw.m > bw.cfg.m_max ||
            bw.e < bw.cfg.e_min || bw.e > bw.cfg.e_max ||
            bw.hist_n > SFP_BITWAVE_HISTORY ||
            !isfinite(bw.avg) || !isfinite(bw.win_sum))
            rc = SFP_EHEADER;
    }
    if (!rc) {
        memcpy(p->wn, wn, p->n * sizeof(double));
        memcpy(p->we, we, p->n * sizeof(double));
        memcpy(p->mn, mom, 4 * p->n * sizeof(double));
        memcpy(p->csn, cs, p->n * (KN_MAX + KE_MAX) * sizeof(double));
        memcpy(p->cnn, cnn, sizeof cnn);
        memcpy(p->cne, cne, sizeof cne);
        p->calibrated = (int)calibrated;
        p->have_loss = (int)have_loss;
        p->calib_steps = calib_steps;
        p->adam_t = adam_t;
        p->loss_ema = loss_ema;
        p->bit_cost = bit_cost;
        p->bits_ema = bits_ema;
        p->have_bits = (int)have_bits;
        p->bw = bw;
    }
    free(d);
    return rc;
}
