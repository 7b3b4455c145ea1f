/*
 * train_eval.c - test accuracy after an epoch: the weights are published
 * with conservative widths (ceil n, ceil e, within the operator's bounds),
 * every rank evaluates its slice of the test set, then the training weights
 * are published again.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"
#include "watchdog.h"

/* Correct predictions of this rank's slice of the test set, published
 * weights, current running statistics: into *tc (summed over ranks). */
static int test_pass(sfpt *r, const sfpw_pass *ep, double *tc)
{
    const sfpw_dataset *test = &r->test;
    const size_t in_dim = r->model.in_dim;
    size_t t0 = test->n * sfpt_rank / r->nranks, t1 = test->n * (sfpt_rank + 1) / r->nranks;
    uint64_t correct = 0;
    for (size_t i = t0; i < t1; i += (size_t)r->max_rows) {
        sfpw_watchdog_beat("evaluation", r->step);
        int nr = (int)(t1 - i < (size_t)r->max_rows ? t1 - i : (size_t)r->max_rows);
        int rc = sfpw_net_eval(r->net, ep, test->x + i * in_dim, test->y + i, nr, &correct);
        if (rc) {
            err("evaluation: %s\n", sfp_strerror(rc));
            return rc;
        }
    }
    *tc = (double)correct;
    sfpw_dist_allreduce_sum(r->dist, tc, 1);
    return 0;
}

/* --precise-bn N: the running statistics recomputed with the evaluated
 * weights, as the equal average of the batch statistics of the first N
 * training images (in file order, global batches split over the ranks as
 * in training, then averaged over the ranks), like PyTorch's momentum=None
 * and bench/torch_reference.py --precise-bn. The running statistics of a
 * short run lag the weights (momentum 0.1): on resnet this costs up to
 * several points of test accuracy, differently from run to run
 * (docs/RESULTS.md). Training goes on with its own statistics (restored by
 * the caller). */
static int precise_stats(sfpt *r, const sfpw_pass *ep)
{
    const sfpt_opts *o = &r->o;
    const size_t nb = r->model.nbuffers, in_dim = r->model.in_dim;
    size_t n = o->precise_bn < r->train.n ? o->precise_bn : r->train.n;
    size_t batches = n / (size_t)o->batch ? n / (size_t)o->batch : 1;
    float *buf = sfpw_net_buffers(r->net);
    int rc = 0;
    for (size_t b = 0; b < batches && !rc; b++) {
        size_t first = b * (size_t)o->batch + (size_t)r->r0;
        int rows = r->rows;
        if (first >= r->train.n)
            break;
        if (first + (size_t)rows > r->train.n)
            rows = (int)(r->train.n - first);
        sfpw_watchdog_beat("recomputing BatchNorm statistics", r->step);
        sfpw_net_set_momentum(r->net, 1.0f / (float)(b + 1));
        rc = sfpw_net_run(r->net, ep, r->train.x + first * in_dim, rows);
    }
    sfpw_net_set_momentum(r->net, 0);
    if (rc) {
        err("recomputing the running statistics: %s\n", sfp_strerror(rc));
        return rc;
    }
    double *avg = malloc(sizeof(double) * (nb ? nb : 1));
    if (!avg) {
        err("out of memory\n");
        return SFP_ENOMEM;
    }
    for (size_t i = 0; i < nb; i++)
        avg[i] = buf[i];
    if ((rc = sfpw_dist_allreduce_sum(r->dist, avg, (int)nb)))
        err("allreduce failed\n");
    for (size_t i = 0; !rc && i < nb; i++)
        buf[i] = (float)(avg[i] / r->nranks);
    free(avg);
    return rc;
}

int sfpt_evaluate(sfpt *r, sfpt_epoch *R)
{
    const sfpw_model *m = &r->model;
    const int T = m->ntensors;
    int rc;
    for (int t = 0; t < T; t++) {
        r->ewidth[t] = r->width[t];
        double n, e;
        sfp_policy_get(r->pol, t, &n, &e);
        if (r->quant) {
            r->ewidth[t].k = (unsigned)ceil(n - 1e-9);
            r->ewidth[t].e = (unsigned)ceil(e - 1e-9);
        }
    }
    if (r->quant)
        sfpt_override_apply(&r->ovr, r->ewidth, T);
    sfpw_dist_coder_step(r->dist, r->step, 0);
    if ((rc = sfpt_publish(r, r->ewidth, NULL))) {
        err("publishing eval weights: %s\n", sfpt_stash_err(r, rc));
        return rc;
    }
    sfpw_pass ep;
    memset(&ep, 0, sizeof ep);
    ep.quantize = r->quant;
    ep.width = r->ewidth;
    ep.base = r->base;
    double tc, tp = -1;
    if ((rc = test_pass(r, &ep, &tc)))
        return rc;
    if (r->o.precise_bn && m->nbuffers) {
        const size_t nb = m->nbuffers;
        float *buf = sfpw_net_buffers(r->net), *keep = malloc(sizeof(float) * nb);
        if (!keep) {
            err("out of memory\n");
            return SFP_ENOMEM;
        }
        memcpy(keep, buf, sizeof(float) * nb);
        if (!(rc = precise_stats(r, &ep)))
            rc = test_pass(r, &ep, &tp);
        memcpy(buf, keep, sizeof(float) * nb);
        free(keep);
        if (rc)
            return rc;
    }
    if ((rc = sfpt_publish(r, r->width, r->wbytes)) ||
        (r->measure && (rc = sfpw_dist_coder_bytes(r->dist, &r->wcb[0][0])))) {
        err("publishing weights: %s\n", sfpt_stash_err(r, rc));
        return rc;
    }
    R->test_acc = 100.0 * tc / r->test.n;
    R->test_acc_pbn = tp >= 0 ? 100.0 * tp / r->test.n : -1;
    return 0;
}
