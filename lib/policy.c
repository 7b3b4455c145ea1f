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

const char *sfp_policy_kind_name(sfp_policy_kind kind)
{
    if ((unsigned)kind < sizeof kind_names / sizeof kind_names[0])
        return kind_names[kind];
    return "?";
}

int sfp_policy_kind_parse(const char *name, sfp_policy_kind *kind)
{
    RETURN_IF(!name || !kind, SFP_EINVAL);
    for (unsigned i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *kind = (sfp_policy_kind)i;
            return 0;
        }
    }
    return SFP_EINVAL;
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
    c->lr = 1.0;
    c->max_step = 0.01;
    c->gamma = 0.02;
    c->warmup = 50;
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
    c->e_min = 3;
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

struct sfp_policy {
    sfp_policy_config cfg;
    size_t n;
    double *lambda; /* footprint weights, sum 1       */
    double *wn;     /* learned mantissa widths        */
    double *we;     /* learned exponent widths        */
    sfp_bitwave bw;
};

void sfp_policy_config_default(sfp_policy_config *c, sfp_policy_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->seed = 0x5f9u;
    sfp_qm_config_default(&c->qm, kind == SFP_POLICY_QMQE);
    sfp_bitwave_config_default(&c->bw);
}

int sfp_policy_create(sfp_policy **out, const sfp_policy_config *c,
                      size_t ntensors, const uint64_t *numel)
{
    RETURN_IF(!out || !c || ntensors == 0 || !numel, SFP_EINVAL);
    RETURN_IF(ntensors > (SIZE_MAX / sizeof(double)) / 4, SFP_EOVERFLOW);
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
    if (!p->lambda || !p->wn || !p->we)
        goto fail;
    for (size_t t = 0; t < ntensors; t++) {
        p->lambda[t] = (double)numel[t] / total;
        p->wn[t] = c->qm.n_init;
        p->we[t] = c->qm.e_init;
    }
    if (c->kind == SFP_POLICY_BITWAVE)
        sfp_bitwave_init(&p->bw, &c->bw);
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

int sfp_policy_choose(const sfp_policy *p, uint64_t step, sfp_width *out)
{
    RETURN_IF(!p || !out, SFP_EINVAL);
    for (size_t t = 0; t < p->n; t++) {
        sfp_width w;
        switch (p->cfg.kind) {
        case SFP_POLICY_QM:
        case SFP_POLICY_QMQE: {
            const sfp_qm_config *q = &p->cfg.qm;
            double u = sfp_policy_uniform(p->cfg.seed, step, 2 * t);
            unsigned nlo = (unsigned)ceil(q->n_min), nhi = (unsigned)floor(q->n_max);
            if (nhi <= nlo)
                nhi = nlo + 1;
            int rc = sfp_qm_sample(p->wn[t], nlo, nhi, u, &w.k, &w.k_lo, &w.k_hi);
            RETURN_IF(rc, rc);
            if (q->learn_e) {
                double v = sfp_policy_uniform(p->cfg.seed, step, 2 * t + 1);
                unsigned elo = (unsigned)ceil(q->e_min), ehi = (unsigned)floor(q->e_max);
                if (ehi <= elo)
                    elo = ehi - 1;
                rc = sfp_qm_sample(p->we[t], elo, ehi, v, &w.e, &w.e_lo, &w.e_hi);
                RETURN_IF(rc, rc);
            } else {
                w.e = (unsigned)lround(q->e_init);
                bracket_fixed(w.e, 1, 8, &w.e_lo, &w.e_hi);
            }
            break;
        }
        case SFP_POLICY_BITWAVE:
            w.k = p->bw.m;
            w.e = p->bw.e;
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

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
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
    for (size_t t = 0; t < p->n; t++) {
        RETURN_IF(!isfinite(grad_n[t]), SFP_EINVAL);
        RETURN_IF(q->learn_e && !isfinite(grad_e[t]), SFP_EINVAL);
    }
    double gamma = step < q->warmup ? 0.0 : q->gamma;
    for (size_t t = 0; t < p->n; t++) {
        double reg = gamma * p->lambda[t];
        double dn = clampd(-q->lr * (grad_n[t] + reg), -q->max_step, q->max_step);
        p->wn[t] = clampd(p->wn[t] + dn, q->n_min, q->n_max);
        if (q->learn_e) {
            double de = clampd(-q->lr * (grad_e[t] + reg), -q->max_step, q->max_step);
            p->we[t] = clampd(p->we[t] + de, q->e_min, q->e_max);
        }
    }
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
        vn = p->bw.m;
        ve = p->bw.e;
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
 * Image: "SFPPOL01" | u32 kind | u32 reserved | u64 ntensors |
 *        f64 wn[n] | f64 we[n] | bitwave: u32 m, e, have_avg, win_n,
 *        hist_n, pad | f64 avg, win_sum | u64 down, up | hist[64].
 */
#define POL_MAGIC "SFPPOL01"
#define POL_BW_BYTES (6 * 4 + 2 * 8 + 2 * 8 + SFP_BITWAVE_HISTORY)

size_t sfp_policy_state_size(const sfp_policy *p)
{
    if (!p)
        return 0;
    return 8 + 4 + 4 + 8 + 16 * p->n + POL_BW_BYTES;
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

int sfp_policy_state_save(const sfp_policy *p, void *buf, size_t cap)
{
    RETURN_IF(!p || !buf, SFP_EINVAL);
    RETURN_IF(cap < sfp_policy_state_size(p), SFP_ENOSPC);
    unsigned char *w = buf;
    memcpy(w, POL_MAGIC, 8);
    w += 8;
    put_u32(&w, (uint32_t)p->cfg.kind);
    put_u32(&w, 0);
    put_u64(&w, p->n);
    for (size_t t = 0; t < p->n; t++)
        put_f64(&w, p->wn[t]);
    for (size_t t = 0; t < p->n; t++)
        put_f64(&w, p->we[t]);
    put_u32(&w, p->bw.m);
    put_u32(&w, p->bw.e);
    put_u32(&w, (uint32_t)p->bw.have_avg);
    put_u32(&w, p->bw.win_n);
    put_u32(&w, p->bw.hist_n);
    put_u32(&w, 0);
    put_f64(&w, p->bw.avg);
    put_f64(&w, p->bw.win_sum);
    put_u64(&w, p->bw.decisions_down);
    put_u64(&w, p->bw.decisions_up);
    memcpy(w, p->bw.hist, SFP_BITWAVE_HISTORY);
    return 0;
}

int sfp_policy_state_load(sfp_policy *p, const void *buf, size_t len)
{
    RETURN_IF(!p || !buf, SFP_EINVAL);
    RETURN_IF(len < sfp_policy_state_size(p), SFP_ETRUNC);
    const unsigned char *r = buf;
    RETURN_IF(memcmp(r, POL_MAGIC, 8) != 0, SFP_EMAGIC);
    r += 8;
    RETURN_IF(get_u32(&r) != (uint32_t)p->cfg.kind, SFP_EHEADER);
    r += 4;
    RETURN_IF(get_u64(&r) != p->n, SFP_EHEADER);
    const sfp_qm_config *q = &p->cfg.qm;
    const unsigned char *wn = r, *we = r + 8 * p->n;
    for (size_t t = 0; t < p->n; t++) {
        const unsigned char *a = wn + 8 * t, *b = we + 8 * t;
        double n = get_f64(&a), e = get_f64(&b);
        RETURN_IF(!(n >= q->n_min && n <= q->n_max), SFP_EHEADER);
        RETURN_IF(!(e >= q->e_min && e <= q->e_max), SFP_EHEADER);
    }
    r += 16 * p->n;
    sfp_bitwave bw = p->bw;
    bw.m = get_u32(&r);
    bw.e = get_u32(&r);
    bw.have_avg = (int)get_u32(&r);
    bw.win_n = get_u32(&r);
    bw.hist_n = get_u32(&r);
    r += 4;
    bw.avg = get_f64(&r);
    bw.win_sum = get_f64(&r);
    bw.decisions_down = get_u64(&r);
    bw.decisions_up = get_u64(&r);
    memcpy(bw.hist, r, SFP_BITWAVE_HISTORY);
    if (p->cfg.kind == SFP_POLICY_BITWAVE) {
        RETURN_IF(bw.m < bw.cfg.m_min || bw.m > bw.cfg.m_max, SFP_EHEADER);
        RETURN_IF(bw.e < bw.cfg.e_min || bw.e > bw.cfg.e_max, SFP_EHEADER);
        RETURN_IF(bw.hist_n > SFP_BITWAVE_HISTORY, SFP_EHEADER);
        RETURN_IF(!isfinite(bw.avg) || !isfinite(bw.win_sum), SFP_EHEADER);
    }
    for (size_t t = 0; t < p->n; t++) {
        const unsigned char *a = wn + 8 * t, *b = we + 8 * t;
        p->wn[t] = get_f64(&a);
        p->we[t] = get_f64(&b);
    }
    p->bw = bw;
    return 0;
}
