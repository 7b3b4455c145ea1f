/*
 * train_eval.c - test accuracy after an epoch: the weights are published
 * with conservative widths (ceil n, ceil e, within the operator's bounds),
 * every rank evaluates its slice of the test set, then the training weights
 * are published again.
 */
#include <math.h>
#include <string.h>

#include "train.h"

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
    if ((rc = sfpw_dist_publish(r->dist, r->quant ? r->ewidth : NULL, &r->base,
                                sfpw_net_weights(r->net), NULL))) {
        err("publishing eval weights: %s\n", sfpt_stash_err(r, rc));
        return rc;
    }
    const sfpw_dataset *test = &r->test;
    size_t t0 = test->n * sfpt_rank / r->nranks, t1 = test->n * (sfpt_rank + 1) / r->nranks;
    uint64_t tcorrect = 0;
    sfpw_pass ep;
    memset(&ep, 0, sizeof ep);
    ep.quantize = r->quant;
    ep.width = r->ewidth;
    ep.base = r->base;
    for (size_t i = t0; i < t1; i += (size_t)r->max_rows) {
        int nr = (int)(t1 - i < (size_t)r->max_rows ? t1 - i : (size_t)r->max_rows);
        if ((rc = sfpw_net_eval(r->net, &ep, test->x + i * m->in_dim, test->y + i,
                                nr, &tcorrect))) {
            err("evaluation: %s\n", sfp_strerror(rc));
            return rc;
        }
    }
    double tc = (double)tcorrect;
    sfpw_dist_allreduce_sum(r->dist, &tc, 1);
    if ((rc = sfpw_dist_publish(r->dist, r->quant ? r->width : NULL, &r->base,
                                sfpw_net_weights(r->net), r->wbytes)) ||
        (r->measure && (rc = sfpw_dist_coder_bytes(r->dist, &r->wcb[0][0])))) {
        err("publishing weights: %s\n", sfpt_stash_err(r, rc));
        return rc;
    }
    R->test_acc = 100.0 * tc / test->n;
    return 0;
}
