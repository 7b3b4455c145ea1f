/* train_report.c - sfp-train's per-epoch lines, final line and JSON report
 * (docs/TRAINING.md describes both). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "train.h"

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* Bytes per step between the ranks (gradients sent + every rank's weight
 * frames to the N-1 others) and what a ring FP32 allreduce of the gradients
 * sends, both summed over the ranks. */
static void traffic(const sfpt *r, const sfpt_epoch *ep, double *between, double *fp32)
{
    double n = r->nranks, st = ep->steps ? (double)ep->steps : 1;
    *between = ep->g_sent / st + (n - 1) * ep->x_bytes / st;
    *fp32 = 2 * (n - 1) * 4.0 * (double)r->model.nparams;
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

typedef struct run_info {
    const char *stash;      /* stash implementation name         */
    const char *job;        /* sfpd job id, or NULL               */
    int daemon_lost;        /* 1 if any rank lost sfpd            */
    double retries;         /* steps run again, summed over ranks */
    double remote, local;   /* weight pieces encoded by sfpd / in-process */
} run_info;

/* Minor faults per step and rank after the epoch's first SFPT_FAULT_WARM
 * steps (the steady state of a step). */
static double steady_faults(const sfpt *r, const sfpt_epoch *ep)
{
    uint64_t n = ep->steps > SFPT_FAULT_WARM ? ep->steps - SFPT_FAULT_WARM : 0;
    return n ? ep->faults_steady / (double)n / r->nranks : 0;
}

static int write_report(const char *path, const sfpt *r, int identical,
                        uint64_t whash, const run_info *ri, const double *mem)
{
    const sfpt_opts *o = &r->o;
    const sfpw_model *m = &r->model;
    const sfpt_epoch *rec = r->recs;
    const int nranks = r->nranks, nrec = r->nrec;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "{\n  \"schema\": \"sfp-train-report/1\",\n");
    fprintf(f, "  \"sfp_version\": ");
    json_str(f, sfp_version());
    fprintf(f, ",\n  \"settings\": {\"model\": ");
    json_str(f, m->name);
    fprintf(f, ", \"policy\": \"%s\", \"gecko\": %s, \"coder\": \"%s\", \"weight_coder\": \"%s\", "
               "\"zmap\": \"%s\", "
               "\"epochs\": %d, \"batch\": %d, "
               "\"ranks\": %d, \"optimizer\": \"%s\", \"lr\": %g, \"lr_decay\": %g, "
               "\"momentum\": %g, \"weight_decay\": %g, \"seed\": %llu, \"data\": ",
            sfp_policy_kind_name((sfp_policy_kind)o->policy), o->gecko ? "true" : "false",
            sfp_coder_name((sfp_coder)o->coder),
            sfp_coder_name((sfp_coder)(o->weight_coder >= 0 ? o->weight_coder : o->coder)),
            sfp_zmap_name((unsigned)o->zmap), o->epochs, o->batch, nranks,
            o->opt.kind == SFPW_OPT_ADAM ? "adam" : "sgd", o->opt.lr,
            (float)o->lr_decay, o->opt.momentum, o->opt.weight_decay,
            (unsigned long long)o->seed);
    if (o->synthetic)
        json_str(f, "synthetic");
    else
        json_str(f, o->data_dir);
    fprintf(f, ", \"train_limit\": %zu, \"test_limit\": %zu, \"precise_bn\": %zu, \"stash\": ",
            o->train_limit, o->test_limit, o->precise_bn);
    json_str(f, ri->stash);
    fprintf(f, ", \"qm_rule\": \"%s\", \"target_bits\": %g, \"bit_cost\": %g, \"gamma\": %g, \"weight_cost\": %g, "
               "\"qm_lr\": %g, \"sample\": %zu, \"qm_grad\": \"%s\", \"n_min\": %g, "
               "\"e_min\": %g, \"e_min_act\": %g, \"n_min_act\": %g, \"n_min_act_linear\": %g, "
               "\"n_min_param\": %g, \"n_min_bias\": %g, \"bw_m_min\": %u, \"bw_e_min\": %u, \"bw_m_min_act\": %u, "
               "\"bw_min_share\": %g, \"calib_target\": %s, \"weight_anchor\": \"%s\", \"grad_container\": ",
            sfp_qm_rule_name((sfp_qm_rule)o->qm_rule), r->target_bits, r->bit_cost, r->gamma,
            o->weight_cost,
            r->qm_lr, o->sample, o->qm_grad == 2 ? "second" : "first", r->n_min, o->e_min,
            o->e_min_act, r->n_min_act, r->n_min_act_linear, o->n_min_param,
            o->n_min_bias >= 0 ? o->n_min_bias : r->n_min, r->bw_m_min,
            r->bw_e_min, r->bw_m_min_act, o->bw_min_share, o->calib_target ? "true" : "false",
            o->weight_anchor ? "error" : "max");
    json_str(f, o->grad_container);
    fprintf(f, ", \"wire_if\": ");
    json_str(f, o->wire_if ? o->wire_if : "");
    fprintf(f, ", \"stash_codec\": \"%s\", \"stash_codec_option\": \"%s\", "
               "\"node_ranks\": %d, \"node_cores\": %d",
            !r->stash_codec ? "none" : r->stash_codec == SFPW_CODEC_RANK ? "rank" : "daemon",
            o->stash_codec == SFPW_CODEC_RANK     ? "rank"
            : o->stash_codec == SFPW_CODEC_DAEMON ? "daemon"
                                                  : "auto",
            r->node_ranks, r->node_cores);
    fprintf(f, "},\n");
    fprintf(f, "  \"daemon\": {\"used\": %s, \"socket\": ", o->daemon ? "true" : "false");
    json_str(f, o->daemon ? o->daemon : "");
    fprintf(f, ", \"job\": ");
    json_str(f, ri->job ? ri->job : "");
    fprintf(f, ", \"on_loss\": \"%s\", \"lost\": %s, \"steps_rerun\": %.0f, "
               "\"weight_pieces_encoded_by_sfpd\": %.0f, \"weight_pieces_encoded_in_process\": %.0f},\n",
            o->on_loss == SFPW_ON_LOSS_FAIL ? "fail" : "fallback",
            ri->daemon_lost ? "true" : "false", ri->retries, ri->remote, ri->local);
    /* per rank: VmHWM, the engine's arena, the stash's peak (sfpt_memory) */
    size_t keep, rel, stashed;
    sfpw_net_sizes(r->net, &keep, &rel, &stashed);
    fprintf(f, "  \"memory\": {\"activation_fp32_bytes_per_step\": %zu, "
               "\"arena_bytes\": %zu, \"arena_mode\": \"%s\", \"ranks\": [",
            stashed, (size_t)mem[1], (size_t)mem[1] == rel && rel != keep ? "release" : "keep");
    for (int i = 0; i < nranks; i++) {
        const double *q = mem + 3 * i;
        fprintf(f, "%s\n    {\"rank\": %d, \"vmhwm_bytes\": %.0f, \"arena_bytes\": %.0f, "
                   "\"stash_bytes\": %.0f, \"stash_share\": %.4f}", i ? "," : "", i, q[0],
                q[1], q[2], q[0] > 0 ? q[2] / q[0] : 0);
    }
    fprintf(f, "\n  ]},\n");
    fprintf(f, "  \"tensors\": [");
    for (int t = 0; t < m->ntensors; t++) {
        const sfpw_tensor *T = &m->tensors[t];
        fprintf(f, "%s\n    {\"name\": ", t ? "," : "");
        json_str(f, T->name);
        static const char *const kinds[] = { "activation", "weight", "bias", "param", "stats",
                                             "codes", "recomputed" };
        fprintf(f, ", \"kind\": \"%s\", \"role\": \"%s\", \"values\": %zu",
                kinds[T->kind], sfpw_role_name(T->role), T->n);
        if (T->fixed)
            fprintf(f, ", \"values_per_step\": %zu", T->fixed);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"epochs\": [");
    for (int i = 0; i < nrec; i++) {
        const sfpt_epoch *ep = &rec[i];
        fprintf(f, "%s\n    {\"epoch\": %d, \"loss\": %.6f, \"train_acc\": %.4f, "
                   "\"test_acc\": %.4f, \"act_bits\": %.4f, \"weight_bits\": %.4f, "
                   "\"footprint_ratio\": %.4f, \"seconds\": %.3f, \"steps\": %llu, "
                   "\"step_ms\": %.4f, \"cpu_ms_per_step\": %.4f,\n     \"time_ms_per_step\": {\"compute\": %.4f, "
                   "\"quantize\": %.4f, \"stash\": %.4f, \"comm\": %.4f, "
                   "\"optimizer\": %.4f, \"weights\": %.4f}",
                i ? "," : "", ep->epoch, ep->loss, ep->train_acc, ep->test_acc,
                ep->act_bits, ep->weight_bits, ep->ratio, ep->seconds,
                (unsigned long long)ep->steps, ep->step_ms, ep->cpu_ms,
                1e3 * ep->t_compute / ep->steps, 1e3 * ep->t_quant / ep->steps,
                1e3 * ep->t_stash / ep->steps, 1e3 * ep->t_comm / ep->steps,
                1e3 * ep->t_opt / ep->steps, 1e3 * ep->t_publish / ep->steps);
        if (ep->test_acc_pbn >= 0)
            fprintf(f, ", \"test_acc_precise_bn\": %.4f", ep->test_acc_pbn);
        fprintf(f, ",\n     \"minor_faults_per_step\": %.2f, \"steady_minor_faults_per_step\": %.3f",
                ep->faults / ep->steps / r->nranks, steady_faults(r, ep));
        fprintf(f, ",\n     \"sfpd_policy_generation\": %llu, \"bit_cost\": %g",
                (unsigned long long)ep->policy_generation, ep->bit_cost);
        fprintf(f, ",\n     \"weight_exchange\": {\"bytes_per_step\": %.1f, "
                   "\"fp32_bytes_per_step\": %.1f, \"ratio\": %.4f}",
                ep->x_bytes / ep->steps, ep->x_fp32 / ep->steps,
                ep->x_bytes > 0 ? ep->x_fp32 / ep->x_bytes : 0);
        double st = ep->steps ? (double)ep->steps : 1, between, fp32;
        traffic(r, ep, &between, &fp32);
        fprintf(f, ",\n     \"grad_exchange\": {\"bytes_per_step\": %.1f, "
                   "\"fp32_bytes_per_step\": %.1f, \"ratio\": %.4f}",
                ep->g_sent / st, ep->g_fp32 / st, ratio(ep->g_fp32, ep->g_sent));
        fprintf(f, ",\n     \"traffic\": {\"between_ranks_bytes_per_step\": %.1f, "
                   "\"fp32_allreduce_bytes_per_step\": %.1f, \"ratio\": %.4f, \"wire\": ",
                between, fp32, ratio(fp32, between));
        if (ep->wire_nodes > 0)
            fprintf(f, "{\"interface\": \"%s\", \"nodes\": %.0f, \"tx_bytes_per_step\": %.1f, "
                       "\"rx_bytes_per_step\": %.1f, \"fp32_allreduce_ratio\": %.4f}}",
                    o->wire_if, ep->wire_nodes, ep->wire_tx / st, ep->wire_rx / st,
                    ratio(fp32, ep->wire_tx / st));
        else
            fprintf(f, "null}");
        if (ep->measured) {

            fprintf(f, ",\n     \"coders\": {");
            for (int c = 0; c < SFPW_NCODERS; c++)
                fprintf(f, "%s\"%s\": {\"footprint_ratio\": %.4f, \"act_bits\": %.4f, "
                           "\"weight_bits\": %.4f}", c ? ", " : "", sfp_coder_name((sfp_coder)c), ep->c_ratio[c],
                        ep->c_act_bits[c], ep->c_w_bits[c]);
            fprintf(f, "}");
        }
        fprintf(f, ",\n     \"tensors\": [");
        for (int t = 0; t < m->ntensors; t++) {
            const sfpt_tensor_epoch *te = &ep->t[t];
            double ts = ep->steps ? (double)ep->steps : 1;
            fprintf(f, "%s\n       {\"name\": ", t ? "," : "");
            json_str(f, m->tensors[t].name);
            fprintf(f, ", \"n\": %.4f, \"e\": %.4f, \"k_mean\": %.4f, \"e_mean\": %.4f, "
                       "\"bits_per_value\": %.4f, \"zero_fraction\": %.4f}",
                    te->n, te->e, te->k_sum / ts, te->e_sum / ts,
                    te->values ? 8 * te->bytes / te->values : 0,
                    te->values ? te->zeros / te->values : 0);
        }
        fprintf(f, "]}");
    }
    const sfpt_epoch *last = nrec ? &rec[nrec - 1] : NULL;
    fprintf(f, "\n  ],\n  \"final\": {");
    if (last)
        fprintf(f, "\"loss\": %.6f, \"train_acc\": %.4f, \"test_acc\": %.4f, "
                   "\"act_bits\": %.4f, \"weight_bits\": %.4f, \"footprint_ratio\": %.4f, "
                   "\"step_ms\": %.4f, ",
                last->loss, last->train_acc, last->test_acc, last->act_bits,
                last->weight_bits, last->ratio, last->step_ms);
    if (last && last->test_acc_pbn >= 0)
        fprintf(f, "\"test_acc_precise_bn\": %.4f, ", last->test_acc_pbn);
    double total = 0;
    for (int i = 0; i < nrec; i++)
        total += rec[i].seconds;
    fprintf(f, "\"seconds\": %.3f, \"replicas_identical\": %s, \"weights_hash\": \"%016llx\"}\n}\n",
            total, identical ? "true" : "false", (unsigned long long)whash);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

void sfpt_report_epoch(sfpt *r, sfpt_epoch *R)
{
    const sfpt_opts *o = &r->o;
    const sfpw_model *m = &r->model;
    const int T = m->ntensors;
    R->seconds = sfpw_now() - R->t_start;
    for (int t = 0; t < T; t++) {
        sfp_policy_get(r->pol, t, &R->t[t].n, &R->t[t].e);
        if (sfpw_tensor_is_raw(m->tensors[t].kind)) { /* stored as FP32 */
            R->t[t].n = 23;
            R->t[t].e = 8;
        }
    }
    R->bit_cost = sfp_policy_bit_cost(r->pol);
    say("epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  bits/value act %.2f w %.2f  "
        "footprint %.2fx  time %.1fs (%.2f ms/step)\n",
        R->epoch, o->epochs, R->loss, R->train_acc, R->test_acc, R->act_bits,
        R->weight_bits, R->ratio, R->seconds, R->step_ms);
    if (R->test_acc_pbn >= 0)
        say("  test with precise BN (statistics of %zu training images): %.2f%%\n",
            o->precise_bn, R->test_acc_pbn);
    if (R->measured)
        say("  footprint by coder: plain %.2fx (act %.2f w %.2f)  gecko %.2fx (act %.2f w %.2f)  "
            "rans %.2fx (act %.2f w %.2f)\n", R->c_ratio[0], R->c_act_bits[0], R->c_w_bits[0],
            R->c_ratio[1], R->c_act_bits[1], R->c_w_bits[1], R->c_ratio[2],
            R->c_act_bits[2], R->c_w_bits[2]);
    if (R->steps)
        say("  weight exchange: %.1f KiB/step all-gathered vs %.1f KiB as FP32 (%.2fx fewer bytes)\n",
            R->x_bytes / R->steps / 1024, R->x_fp32 / R->steps / 1024,
            R->x_bytes > 0 ? R->x_fp32 / R->x_bytes : 0);
    if (R->steps && r->nranks > 1) {
        double st = (double)R->steps, between, fp32;
        traffic(r, R, &between, &fp32);
        if (o->grad_mode != SFPT_GRAD_EXACT)
            say("  gradient exchange: %.1f KiB/step sent in containers (%s) vs %.1f KiB as FP32 "
                "(%.2fx fewer bytes)\n", R->g_sent / st / 1024, o->grad_container,
                R->g_fp32 / st / 1024, ratio(R->g_fp32, R->g_sent));
        say("  between ranks: %.1f KiB/step vs %.1f KiB for an FP32 allreduce (%.2fx fewer)",
            between / 1024, fp32 / 1024, ratio(fp32, between));
        if (R->wire_nodes > 0)
            say("; on the wire (%s, %.0f node%s): %.1f KiB/step sent",
                o->wire_if, R->wire_nodes, R->wire_nodes == 1 ? "" : "s", R->wire_tx / st / 1024);
        say("\n");
    }
    if (o->timing)
        say("  ms/step: compute %.3f  quantize %.3f  stash %.3f  comm %.3f  optimizer %.3f  weights %.3f\n",
            1e3 * R->t_compute / R->steps, 1e3 * R->t_quant / R->steps,
            1e3 * R->t_stash / R->steps, 1e3 * R->t_comm / R->steps,
            1e3 * R->t_opt / R->steps, 1e3 * R->t_publish / R->steps);
    if (o->timing && R->steps)
        say("  minor page faults per step and rank: %.1f (after the epoch's first %d steps: %.2f)\n",
            R->faults / R->steps / r->nranks, SFPT_FAULT_WARM, steady_faults(r, R));
    if (!o->quiet && r->quant) {
        if (R->bit_cost > 0)
            say("  bit cost in force %.3g %%\n", R->bit_cost);
        say("  widths (n, e):");
        for (int t = 0; t < T; t++)
            if (m->tensors[t].kind != SFPW_TENSOR_BIAS && !sfpw_tensor_is_raw(m->tensors[t].kind))
                say(" %s %.2f,%.2f", m->tensors[t].name, R->t[t].n, R->t[t].e);
        say("\n");
    }
    fflush(stdout);
}

/* Peak resident memory of this process (VmHWM), bytes; 0 if unknown. */
static double vmhwm(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtod(line + 6, NULL);
    if (f)
        fclose(f);
    return kb * 1024;
}

/* Every rank's (VmHWM, arena, stash peak), 3 doubles per rank, gathered
 * on every rank (malloc'd) and printed by rank 0; NULL: out of memory. */
static double *sfpt_memory(sfpt *r)
{
    double mine[3], *all = calloc((size_t)3 * r->nranks, sizeof(double));
    size_t keep, rel;
    sfpw_net_sizes(r->net, &keep, &rel, NULL);
    mine[0] = vmhwm();
    mine[1] = (double)sfpw_net_arena_bytes(r->net);
    mine[2] = r->stash->ops->held_peak ? (double)r->stash->ops->held_peak(r->stash) : 0;
    if (!all)
        return NULL;
    MPI_Allgather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, MPI_COMM_WORLD);
    if (!r->o.quiet || r->o.report)
        for (int i = 0; i < r->nranks; i++)
            say("memory: rank %d peak RSS %.1f MiB (step buffers %.1f MiB, stash %.1f MiB)\n",
                i, all[3 * i] / 1048576, all[3 * i + 1] / 1048576, all[3 * i + 2] / 1048576);
    return all;
}

int sfpt_report_final(sfpt *r)
{
    const sfpt_opts *o = &r->o;
    /* the run's totals over ranks, then free the job's data in sfpd */
    double tot[4] = { r->retries, r->pieces_remote, r->pieces_local, 0 };
    tot[3] = o->daemon && !sfpw_stash_daemon_alive(r->stash);
    sfpw_dist_allreduce_sum(r->dist, tot, 4);
    if (r->job[0]) {
        MPI_Barrier(MPI_COMM_WORLD);
        if (sfpt_rank == 0 && sfpw_stash_daemon_alive(r->stash) &&
            sfpw_stash_daemon_end_job(r->stash))
            err("sfpd: ending job %s failed\n", r->job);
        say("sfpd: %s; %.0f step%s run again; weight pieces encoded by sfpd %.0f, in-process %.0f\n",
            tot[3] > 0 ? "LOST during the run (continued in-process)" : "served the whole run",
            tot[0], tot[0] == 1 ? "" : "s", tot[1], tot[2]);
    }
    run_info ri = { r->stash->ops->name, r->job[0] ? r->job : NULL, tot[3] > 0, tot[0],
                    tot[1], tot[2] };
    double *mem = sfpt_memory(r);
    if (!mem) {
        err("out of memory\n");
        return 1;
    }
    uint64_t h;
    int same = sfpw_dist_check_identical(r->dist, sfpw_net_weights(r->net),
                                         r->model.nparams, &h);
    say("final: working weights %s across %d rank%s (hash %016llx)\n",
        same ? "identical" : "DIFFER", r->nranks, r->nranks > 1 ? "s" : "",
        (unsigned long long)h);
    int bad = o->report && sfpt_rank == 0 && write_report(o->report, r, same, h, &ri, mem);
    free(mem);
    if (bad) {
        err("--report %s: cannot write\n", o->report);
        return 1;
    }
    return (o->check_replicas && !same) ? 3 : 0;
}
