/*
 * train_epoch.c - the training steps of one epoch: batch, forward and
 * backward through the stash, gradient reduce-scatter, weight bitlength
 * gradients, one allreduce of the step's figures (and of rank 0's view of
 * the operator policy in sfpd), policy update, optimizer, weight publish.
 */
#include <math.h>
#include <string.h>
#include <sys/resource.h>

#include "train.h"
#include "watchdog.h"
#include "wire.h"

/*
 * The step's allreduce vector, T tensors:
 *   [0, T) gn, [T, 2T) ge, [2T, 3T) frame bytes, 3T loss sum, 3T+1 correct,
 *   3T+2 values, 3T+3 zeros, [3T+4, 3T+4+NC*T) bytes per coder,
 *   [NZ, NZ+T) zeros per tensor, [NV, NV+T) values per tensor,
 *   [NO, NO+NOVR) rank 0's operator policy, [NB, NB+nbuf) the running
 *   statistics (averaged: every rank ends the step with the same).
 */
#define NOVR 10 /* doubles of an sfpw_override */
#define RED_NZ(T) (3 * (T) + 4 + SFPW_NCODERS * (T))
#define RED_NV(T) (RED_NZ(T) + (T))
#define RED_NO(T) (RED_NV(T) + (T))
#define RED_NB(T) (RED_NO(T) + NOVR)

size_t sfpt_red_size(int T, size_t nbuf)
{
    return (size_t)RED_NB(T) + nbuf;
}

/* ------------------------------------------------------- operator policy */

static void ovr_pack(const sfpw_override *v, double *d)
{
    d[0] = (double)v->generation;
    d[1] = v->min_k;
    d[2] = v->max_k;
    d[3] = v->min_e;
    d[4] = v->max_e;
    d[5] = v->pin;
    d[6] = v->pin_k;
    d[7] = v->pin_e;
    d[8] = v->coder;
    d[9] = v->freeze;
}

static void ovr_unpack(const double *d, sfpw_override *v)
{
    v->generation = (uint64_t)d[0];
    v->min_k = (unsigned)d[1];
    v->max_k = (unsigned)d[2];
    v->min_e = (unsigned)d[3];
    v->max_e = (unsigned)d[4];
    v->pin = d[5] != 0;
    v->pin_k = (unsigned)d[6];
    v->pin_e = (unsigned)d[7];
    v->coder = (int)d[8];
    v->freeze = d[9] != 0;
}

/* Widths after the operator's bounds or pins (v NULL or generation 0: as is). */
void sfpt_override_apply(const sfpw_override *v, sfp_width *w, int T)
{
    if (!v || !v->generation)
        return;
    for (int t = 0; t < T; t++) {
        if (v->pin) {
            w[t].k = v->pin_k;
            w[t].e = v->pin_e;
            continue;
        }
        if (w[t].k < v->min_k)
            w[t].k = v->min_k;
        if (w[t].k > v->max_k)
            w[t].k = v->max_k;
        if (w[t].e < v->min_e)
            w[t].e = v->min_e;
        if (w[t].e > v->max_e)
            w[t].e = v->max_e;
    }
}

static void ovr_say(const sfpw_override *v, uint64_t step)
{
    if (v->pin)
        say("sfpd policy generation %llu from step %llu: widths pinned at k=%u e=%u",
            (unsigned long long)v->generation, (unsigned long long)step, v->pin_k, v->pin_e);
    else
        say("sfpd policy generation %llu from step %llu: mantissa bits %u..%u, exponent bits %u..%u",
            (unsigned long long)v->generation, (unsigned long long)step, v->min_k, v->max_k,
            v->min_e, v->max_e);
    say(", coder %s%s\n", v->coder >= 0 ? sfp_coder_name((sfp_coder)v->coder) : "as configured",
        v->freeze ? ", widths frozen" : "");
}

/* A new operator policy from the step's allreduce takes effect next step. */
static void ovr_take(sfpt *r, const double *d)
{
    sfpw_override v;
    ovr_unpack(d, &v);
    if (!v.generation || v.generation == r->ovr.generation)
        return;
    r->ovr = v;
    if (r->quant)
        ovr_say(&r->ovr, r->step + 1);
    else
        say("sfpd policy generation %llu ignored: policy fp32\n",
            (unsigned long long)r->ovr.generation);
    r->base.coder = r->ovr.coder >= 0 ? (sfp_coder)r->ovr.coder : (sfp_coder)r->o.coder;
}

/* ------------------------------------------------------------------- step */

/* What the epoch adds up over its steps (global figures). */
typedef struct acc {
    double loss_sum, correct, act_b, act_v, w_b, w_v;
    double cact[SFPW_NCODERS], cw[SFPW_NCODERS];
} acc;

/* Forward and backward of this rank's rows; a stash that lost the step's
 * tensors (daemon gone, now in-process) asks for the step to run again. */
static int pass(sfpt *r, sfpw_pass_out *po)
{
    const sfpt_opts *o = &r->o;
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    ps.quantize = r->quant;
    ps.stash = r->quant;
    ps.want_grad = r->want_grad;
    ps.width = r->width;
    ps.base = r->base;
    ps.st = r->stash;
    ps.key.rank = (uint32_t)sfpt_rank;
    ps.key.step = r->step;
    ps.sample_budget = o->sample;
    ps.measure_coders = r->measure;
    ps.fisher = o->qm_grad == 2 ? (double)o->batch : 0.0;
    int rc;
    for (int attempt = 0;; attempt++) {
        memset(po, 0, sizeof *po);
        rc = sfpw_net_forward(r->net, &ps, r->xb, r->yb, r->rows, 1.0f / o->batch, po);
        if (!rc)
            rc = sfpw_net_backward(r->net, &ps, r->rows, po);
        if (rc != SFPW_STASH_ERETRY || attempt == 2)
            break;
        r->retries++;
    }
    if (rc)
        err("step %llu: %s\n", (unsigned long long)r->step, sfpt_stash_err(r, rc));
    return rc;
}

/* The step's figures into r->red (summed over the ranks by the caller). */
static void pack_figures(sfpt *r, const sfpw_pass_out *po)
{
    const int T = r->model.ntensors, NZ = RED_NZ(T), NO = RED_NO(T);
    double *red = r->red;
    for (int t = 0; t < T; t++) {
        red[t] = po->gn[t];
        red[T + t] = po->ge[t];
        red[2 * T + t] = po->bytes[t];
    }
    red[3 * T] = po->loss_sum;
    red[3 * T + 1] = (double)po->correct;
    red[3 * T + 2] = 0;
    red[3 * T + 3] = 0;
    for (int t = 0; t < T; t++) {
        red[3 * T + 2] += po->values[t];
        red[3 * T + 3] += po->zeros[t];
    }
    for (int t = 0; t < T; t++) {
        red[NZ + t] = po->zeros[t];
        red[RED_NV(T) + t] = po->values[t];
    }
    const float *buf = sfpw_net_buffers(r->net);
    for (size_t i = 0; i < r->model.nbuffers; i++)
        red[RED_NB(T) + i] = buf[i];
    for (int c = 0; c < SFPW_NCODERS; c++)
        for (int t = 0; t < T; t++)
            red[3 * T + 4 + c * T + t] = po->coder_bytes[c][t];
    /* sfpd tells rank 0; the sum hands rank 0's view to all */
    sfpw_override v;
    memset(&v, 0, sizeof v);
    if (sfpt_rank != 0 || !sfpw_stash_daemon_policy(r->stash, &v))
        memset(&v, 0, sizeof v);
    ovr_pack(&v, red + NO);
}

/* Per-tensor accounting of the summed figures (activations global,
 * weights once). */
/* Adds the step to the epoch's figures; returns the step's stored bits per
 * value (all stash frames of all ranks and the weight frames). */
static double account(sfpt *r, sfpt_epoch *R, acc *a)
{
    const sfpw_model *m = &r->model;
    const int T = m->ntensors, NZ = RED_NZ(T);
    const double *red = r->red;
    double bytes = 0, values = 0;
    for (int t = 0; t < T; t++) {
        sfpt_tensor_epoch *te = &R->t[t];
        const int raw = sfpw_tensor_is_raw(m->tensors[t].kind) || !r->quant;
        te->k_sum += raw ? 23 : r->width[t].k; /* statistics are stored as FP32 */
        te->e_sum += raw ? 8 : r->width[t].e;
        if (sfpw_tensor_is_stashed(m->tensors[t].kind)) {
            double vals = red[RED_NV(T) + t];
            te->bytes += red[2 * T + t];
            te->values += vals;
            te->zeros += red[NZ + t];
            a->act_b += red[2 * T + t];
            a->act_v += vals;
            bytes += red[2 * T + t];
            values += vals;
            for (int c = 0; c < SFPW_NCODERS; c++)
                a->cact[c] += red[3 * T + 4 + c * T + t];
        } else {
            te->bytes += r->wbytes[t];
            te->values += (double)m->tensors[t].n;
            a->w_b += r->wbytes[t];
            a->w_v += (double)m->tensors[t].n;
            bytes += r->wbytes[t];
            values += (double)m->tensors[t].n;
            for (int c = 0; c < SFPW_NCODERS; c++)
                a->cw[c] += r->wcb[c][t];
        }
    }
    a->loss_sum += red[3 * T];
    a->correct += red[3 * T + 1];
    return values > 0 ? 8 * bytes / values : 0;
}

/* Minor page faults of the whole process (every thread) so far. */
static double minor_faults(void)
{
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? (double)u.ru_minflt : 0;
}

/* Steps s of the epoch (global step r->step): 0 or an error (reported). */
static int step(sfpt *r, uint64_t s, sfpt_epoch *R, acc *a)
{
    const sfpt_opts *o = &r->o;
    const sfpw_model *m = &r->model;
    const int T = m->ntensors;
    const double f0 = minor_faults();
    int rc;
    sfpw_watchdog_beat("a training step", r->step);
    for (int i = 0; i < r->rows; i++) {
        uint32_t id = r->perm[s * o->batch + r->r0 + i];
        memcpy(r->xb + (size_t)i * m->in_dim, r->train.x + (size_t)id * m->in_dim,
               sizeof(float) * m->in_dim);
        r->yb[i] = r->train.y[id];
    }
    uint64_t rx0 = 0, tx0 = 0;
    int wire = r->wire_leader && !sfpw_wire_read(o->wire_if, &rx0, &tx0);
    sfpw_pass_out po;
    if ((rc = pass(r, &po)))
        return rc;
    double tc = sfpw_now();
    const sfp_width *gw = o->grad_mode == SFPT_GRAD_FIXED ? r->gwidth : NULL;
    if (o->grad_mode == SFPT_GRAD_POLICY) {
        /* the weights' widths of the step, at least SFPT_GRAD_K_MIN /
         * SFPT_GRAD_E_MIN: the adaptive rule takes large weight tensors to
         * 0 mantissa and 2 exponent bits (powers of two, small weights
         * flushed), too coarse for their gradients (docs/TRAINING.md) */
        for (int t = 0; t < T; t++) {
            r->gwidth[t] = r->width[t];
            if (r->gwidth[t].e < SFPT_GRAD_E_MIN)
                r->gwidth[t].e = SFPT_GRAD_E_MIN;
            if (r->gwidth[t].k < SFPT_GRAD_K_MIN)
                r->gwidth[t].k = SFPT_GRAD_K_MIN;
        }
        gw = r->gwidth;
    }
    if ((rc = sfpw_dist_reduce_grads_q(r->dist, sfpw_net_grads(r->net), gw, &r->base))) {
        err("reduce-scatter failed: %s\n", rc < 0 && rc >= SFP_ERROR_MIN ? sfp_strerror(rc) : "MPI error");
        return rc;
    }
    double tq = sfpw_now();
    if (r->want_grad &&
        (rc = sfpw_dist_weight_grads(r->dist, r->width, &r->base, po.gn, po.ge,
                                     o->seed, r->step, o->sample,
                                     o->qm_grad == 2 ? (double)o->batch : 0.0))) {
        err("weight width gradients: %s\n", sfp_strerror(rc));
        return rc;
    }
    double tr = sfpw_now();
    pack_figures(r, &po);
    if ((rc = sfpw_dist_allreduce_sum(r->dist, r->red,
                                      (int)sfpt_red_size(T, m->nbuffers)))) {
        err("allreduce failed\n");
        return rc;
    }
    float *buf = sfpw_net_buffers(r->net);
    for (size_t i = 0; i < m->nbuffers; i++)
        buf[i] = (float)(r->red[RED_NB(T) + i] / r->nranks);
    double tcomm = sfpw_now();
    double loss = r->red[3 * T] / o->batch;
    if (!isfinite(loss)) {
        err("step %llu: loss is not finite; stopping\n", (unsigned long long)r->step);
        return SFP_ENONFINITE;
    }
    double bits = account(r, R, a);
    ovr_take(r, r->red + RED_NO(T));
    int was_calibrated = sfp_policy_calibrated(r->pol);
    if (!r->ovr.freeze && r->quant &&
        (rc = sfp_policy_observe_bits(r->pol, r->step, bits))) {
        err("policy: %s\n", sfp_strerror(rc));
        return rc;
    }
    if (!r->ovr.freeze &&
        (rc = sfp_policy_update(r->pol, r->step, loss, r->red, r->red + T))) {
        err("policy update: %s\n", sfp_strerror(rc));
        return rc;
    }
    if (!o->quiet && was_calibrated == 0 && sfp_policy_calibrated(r->pol) == 1) {
        say("calibrated widths after %llu steps (n, e):", (unsigned long long)r->step + 1);
        for (int t = 0; t < T; t++) {
            double n, e;
            sfp_policy_get(r->pol, (size_t)t, &n, &e);
            if (r->model.tensors[t].kind != SFPW_TENSOR_BIAS)
                say(" %s %.2f,%.2f", r->model.tensors[t].name, n, e);
        }
        say("\n");
    }
    double t_opt0 = sfpw_now();
    sfpw_dist_update(r->dist, &o->opt, r->step + 1);
    double t_pub0 = sfpw_now();
    /* the weights of the next step; an epoch's last publish (which its
     * evaluation and a resume start from) tries both coders afresh */
    sfpw_dist_coder_step(r->dist, r->step + 1, s + 1 == r->steps_per_epoch);
    if (!(rc = sfp_policy_choose(r->pol, r->step + 1, r->width)))
        sfpt_override_apply(&r->ovr, r->width, T);
    if (rc ||
        (rc = sfpt_publish(r, r->width, r->wbytes)) ||
        (r->measure && (rc = sfpw_dist_coder_bytes(r->dist, &r->wcb[0][0])))) {
        err("publishing weights: %s\n", sfpt_stash_err(r, rc));
        return rc;
    }
    double t_end = sfpw_now();
    uint64_t rx1, tx1;
    if (wire && !sfpw_wire_read(o->wire_if, &rx1, &tx1)) {
        R->wire_rx += (double)(rx1 - rx0);
        R->wire_tx += (double)(tx1 - tx0);
    } else if (r->wire_leader) {
        err("--wire-if %s: counters unreadable; no longer counted\n", o->wire_if);
        r->wire_leader = 0;
    }
    sfpw_grad_exchange gx;
    sfpw_dist_last_grad_exchange(r->dist, &gx);
    R->g_sent += gx.sent;
    R->g_fp32 += gx.fp32;
    sfpw_exchange xc;
    sfpw_dist_last_exchange(r->dist, &xc);
    R->x_bytes += xc.exchanged;
    R->x_fp32 += xc.fp32;
    r->pieces_remote += xc.remote;
    r->pieces_local += xc.local;
    R->t_compute += po.t_compute;
    R->t_quant += po.t_quant + (tr - tq);
    R->t_stash += po.t_stash;
    R->t_comm += (tq - tc) + (tcomm - tr);
    R->t_opt += t_pub0 - t_opt0;
    R->t_publish += t_end - t_pub0;
    R->steps++;
    double df = minor_faults() - f0;
    R->faults += df;
    if (s >= SFPT_FAULT_WARM)
        R->faults_steady += df;
    if (o->progress && sfpt_rank == 0 && (s % 10 == 9 || s + 1 == r->steps_per_epoch)) {
        fprintf(stderr, "\r  epoch %d  %5.1f%%  loss %.4f  ", R->epoch,
                100.0 * (s + 1) / r->steps_per_epoch, a->loss_sum / ((s + 1) * o->batch));
        fflush(stderr);
    }
    return 0;
}

int sfpt_epoch_train(sfpt *r, int epoch, sfpt_epoch *R)
{
    const sfpt_opts *o = &r->o;
    memset(R, 0, sizeof *R);
    R->epoch = epoch + 1;
    sfpw_rng sh;
    sfpw_rng_seed(&sh, o->seed, 0x5aff1e00ull + (uint64_t)epoch);
    for (size_t i = 0; i < r->train.n; i++)
        r->perm[i] = (uint32_t)i;
    sfpw_rng_shuffle(&sh, r->perm, r->train.n);
    double t_epoch = sfpw_now(), c_epoch = sfpw_cpu_now();
    acc a;
    memset(&a, 0, sizeof a);
    /* --coder auto: every tensor's coder is chosen afresh in an epoch's
     * first step, so a run resumed from a checkpoint codes as it would have */
    sfpw_net_coder_reset(r->net);
    for (uint64_t s = 0; s < r->steps_per_epoch; s++, r->step++) {
        int rc = step(r, s, R, &a);
        if (rc)
            return rc;
    }
    if (o->progress && sfpt_rank == 0)
        fprintf(stderr, "\r%60s\r", "");
    double train_secs = sfpw_now() - t_epoch;
    R->cpu_ms = 1e3 * (sfpw_cpu_now() - c_epoch) / r->steps_per_epoch;
    /* the epoch's traffic, over all ranks (nodes: leaders that counted
     * every step) */
    double v[7] = { R->g_sent, R->g_fp32, R->wire_tx, R->wire_rx, r->wire_leader,
                     R->faults, R->faults_steady };
    if (sfpw_dist_allreduce_sum(r->dist, v, 7)) {
        err("allreduce failed\n");
        return 1;
    }
    R->g_sent = v[0];
    R->g_fp32 = v[1];
    R->wire_tx = v[2];
    R->wire_rx = v[3];
    R->wire_nodes = v[4];
    R->faults = v[5];
    R->faults_steady = v[6];

    double n_img = (double)r->steps_per_epoch * o->batch;
    R->t_start = t_epoch;
    R->loss = a.loss_sum / n_img;
    R->train_acc = 100.0 * a.correct / n_img;
    R->act_bits = a.act_v ? 8 * a.act_b / a.act_v : 0;
    R->weight_bits = a.w_v ? 8 * a.w_b / a.w_v : 0;
    R->ratio = (a.act_b + a.w_b) > 0 ? 4.0 * (a.act_v + a.w_v) / (a.act_b + a.w_b) : 0;
    R->step_ms = 1e3 * train_secs / r->steps_per_epoch;
    R->policy_generation = r->ovr.generation;
    if (r->measure) {
        R->measured = 1;
        for (int c = 0; c < SFPW_NCODERS; c++) {
            R->c_act_bits[c] = a.act_v ? 8 * a.cact[c] / a.act_v : 0;
            R->c_w_bits[c] = a.w_v ? 8 * a.cw[c] / a.w_v : 0;
            R->c_ratio[c] = a.cact[c] + a.cw[c] > 0 ? 4.0 * (a.act_v + a.w_v) / (a.cact[c] + a.cw[c]) : 0;
        }
    }
    return 0;
}
