/* train_ckpt.c - sfp-train's --resume (at setup) and --save (every epoch). */
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "train.h"
#include "watchdog.h"

int sfpt_resume(sfpt *r)
{
    sfpt_opts *o = &r->o;
    const sfpw_model *m = &r->model;
    sfpw_ckpt *ck = &r->ck;
    int rc = sfpw_ckpt_load(o->resume, ck);
    if (rc) {
        err("--resume %s: %s\n", o->resume, sfpw_ckpt_strerror(rc));
        return -1;
    }
    if (strcmp(ck->model, m->name) || ck->nparams != m->nparams ||
        (ck->model_hash && ck->model_hash != m->hash) || ck->nbuffers != m->nbuffers ||
        ck->policy != (uint32_t)o->policy || ck->optimizer != (uint32_t)o->opt.kind ||
        ck->batch != (uint64_t)o->batch || ck->seed != o->seed) {
        err("--resume %s: checkpoint was written by a different setup "
            "(model %s, policy %s, batch %llu, seed %llu)\n", o->resume, ck->model,
            sfp_policy_kind_name((sfp_policy_kind)ck->policy),
            (unsigned long long)ck->batch, (unsigned long long)ck->seed);
        return -1;
    }
    rc = sfp_policy_state_load(r->pol, ck->policy_state, ck->policy_len);
    if (rc) {
        err("--resume %s: policy state: %s\n", o->resume, sfp_strerror(rc));
        return -1;
    }
    sfpw_dist_set_master(r->dist, ck->master);
    sfpw_dist_set_state(r->dist, ck->s1, ck->s2);
    if (m->nbuffers)
        memcpy(sfpw_net_buffers(r->net), ck->buffers, m->nbuffers * sizeof(float));
    if (ck->resid_ranks && o->grad_mode != SFPT_GRAD_EXACT) {
        if (ck->resid_ranks != (uint64_t)r->nranks)
            say("--resume %s: gradient residuals of %llu ranks, this run has %d: error "
                "feedback starts from zero\n", o->resume, (unsigned long long)ck->resid_ranks,
                r->nranks);
        else if (sfpw_dist_set_residual(r->dist, ck->resid + (size_t)sfpt_rank * m->nparams)) {
            err("out of memory\n");
            return -1;
        }
    }
    r->step = ck->step;
    r->first_epoch = (int)ck->next_epoch;
    for (int e = 0; e < r->first_epoch; e++)
        o->opt.lr *= (float)o->lr_decay;
    say("resumed from %s at epoch %d (step %llu)\n", o->resume, r->first_epoch + 1,
        (unsigned long long)r->step);
    return 0;
}

/* Gathers the master weights and the optimizer state on rank 0, which
 * writes the checkpoint; a failure on any rank fails every rank. */
int sfpt_save(sfpt *r, int epoch)
{
    const sfpt_opts *o = &r->o;
    const sfpw_model *m = &r->model;
    int rc;
    sfpw_watchdog_beat("saving a checkpoint", r->step);
    if ((rc = sfpw_dist_gather(r->dist, 0, r->full)) ||
        (rc = sfpw_dist_gather(r->dist, 1, r->full2))) {
        err("gathering the checkpoint failed\n");
        return -1;
    }
    float *s2full = sfpt_rank == 0 ? malloc(m->nparams * sizeof(float)) : NULL;
    if (sfpt_rank == 0 && !s2full) {
        err("out of memory\n");
        return -1;
    }
    rc = sfpw_dist_gather(r->dist, 2, s2full);
    /* every rank's error-feedback residual, in rank order, when all have one */
    const float *res = sfpw_dist_residual(r->dist);
    int have = res != NULL, all = 0;
    float *rall = NULL;
    MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all) {
        int ok = sfpt_rank != 0 || (rall = malloc((size_t)r->nranks * m->nparams *
                                                  sizeof(float))) != NULL, allok = 0;
        MPI_Allreduce(&ok, &allok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (!allok || MPI_Gather(res, (int)m->nparams, MPI_FLOAT, rall, (int)m->nparams,
                                 MPI_FLOAT, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
            err("gathering the gradient residuals failed\n");
            free(rall);
            free(s2full);
            return -1;
        }
    }
    if (sfpt_rank == 0 && !rc) {
        sfpw_ckpt c;
        memset(&c, 0, sizeof c);
        snprintf(c.model, sizeof c.model, "%s", m->name);
        c.model_hash = m->hash;
        c.nbuffers = m->nbuffers;
        c.buffers = sfpw_net_buffers(r->net);
        c.policy = (uint32_t)o->policy;
        c.optimizer = (uint32_t)o->opt.kind;
        c.nparams = m->nparams;
        c.next_epoch = (uint64_t)epoch + 1;
        c.step = r->step;
        c.seed = o->seed;
        c.batch = (uint64_t)o->batch;
        c.master = r->full;
        c.s1 = r->full2;
        c.s2 = s2full;
        sfp_policy_state_save(r->pol, r->pstate, r->pstate_len);
        c.policy_state = r->pstate;
        c.policy_len = r->pstate_len;
        c.resid = rall;
        c.resid_ranks = rall ? (uint64_t)r->nranks : 0;
        rc = sfpw_ckpt_save(o->save, &c);
        if (rc)
            err("--save %s: %s\n", o->save, sfpw_ckpt_strerror(rc));
    }
    free(s2full);
    free(rall);
    int bad = rc != 0, anybad = 0;
    MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return anybad ? -1 : 0;
}
