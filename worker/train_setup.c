/*
 * train_setup.c - everything before sfp-train's first step: data, width
 * policy, engine and shards, the stash (in-process or sfpd), the buffers of
 * the step, the start banner and the first weight publish.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>
#ifdef SFPW_HAVE_DAEMON
#include <sfp/client.h>
#endif

#include "train.h"
#include "wire.h"

const char *sfpt_stash_err(const sfpt *r, int rc)
{
    return r->stash ? r->stash->ops->strerror(r->stash, rc) : sfp_strerror(rc);
}

/* --model or --model-file; -1 after --print-model, 2 on a usage error. */
static int load_model(sfpt *r)
{
    const sfpt_opts *o = &r->o;
    char why[512];
    if (o->model_file) {
        if (sfpw_model_load(&r->model, o->model_file, why, sizeof why)) {
            err("--model-file %s\n", why);
            return 2;
        }
    } else if (sfpw_model_build(&r->model, o->model)) {
        char names[128] = "";
        size_t k = 0;
        for (int i = 0; sfpw_model_builtin_names[i] && k < sizeof names; i++)
            k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? "|" : "",
                                  sfpw_model_builtin_names[i]);
        err("unknown model '%s' (%s, or --model-file FILE)\n", o->model, names);
        return 2;
    }
    const sfpw_model *m = &r->model;
    if (o->print_model) {
        if (sfpt_rank == 0) {
            if (!o->model_file)
                fputs(sfpw_model_builtin_text(o->model), stdout);
            sfpw_model_print(m, stdout);
        }
        return -1;
    }
    if (m->in_dim != SFPW_DATA_IMAGE || m->classes != SFPW_DATA_CLASSES) {
        char sh[64];
        err("model %s: input %s and %d classes; the data has %d values per image "
            "(1x28x28) and %d classes\n", m->name, sfpw_shape_str(&m->in_shape, sh, sizeof sh),
            m->classes, SFPW_DATA_IMAGE, SFPW_DATA_CLASSES);
        return 2;
    }
    return 0;
}

static int load_data(sfpt *r)
{
    const sfpt_opts *o = &r->o;
    int rc;
    if (o->synthetic) {
        rc = sfpw_data_synthetic(&r->train, &r->test, o->synth_train, o->synth_test, o->seed);
        if (rc) {
            err("synthetic data: %s\n", sfpw_data_strerror(rc));
            return -1;
        }
    } else {
        char bad[4096] = "";
        rc = sfpw_data_load(&r->train, &r->test, o->data_dir, o->train_limit,
                            o->test_limit, bad, sizeof bad);
        if (rc) {
            err("cannot load Fashion-MNIST: %s: %s\n"
                "  (install the Debian package dataset-fashion-mnist, pass --data DIR,\n"
                "   or use --synthetic for a run without data)\n",
                bad, sfpw_data_strerror(rc));
            return -1;
        }
    }
    if (r->train.n < (size_t)o->batch) {
        err("training set (%zu) smaller than the batch (%d)\n", r->train.n, o->batch);
        return -1;
    }
    return 0;
}

/* The width policy over the model's tensors, from the library's defaults
 * for the kind and the options given. */

/* Activations whose only use in the backward pass is a linear layer's
 * weight gradient (dW = x^T dy) or a ReLU / pooling mask: the network
 * input, ReLU and pooling outputs, convolution / dense outputs, norm, GELU
 * and attention outputs (read by the next dense or convolution). The
 * others are read by nonlinear backward passes (BatchNorm and LayerNorm
 * recompute x-hat from them, GELU, softmax, the Q/K/V products) or are
 * residual sums and tokens. */
static int read_by_linear_only(sfpw_role role)
{
    switch (role) {
    case SFPW_ROLE_INPUT:
    case SFPW_ROLE_RELU:
    case SFPW_ROLE_POOLED:
    case SFPW_ROLE_LINEAR:
    case SFPW_ROLE_NORM_OUT:
    case SFPW_ROLE_GELU_OUT:
    case SFPW_ROLE_ATTN_OUT:
        return 1;
    default:
        return 0;
    }
}
static int make_policy(sfpt *r)
{
    const sfpt_opts *o = &r->o;
    const sfpw_model *m = &r->model;
    uint64_t numel[SFPW_MAX_TENSORS];
    /* the regularizer's weights: values per step (statistics: none, they
     * are never quantized) */
    for (int t = 0; t < m->ntensors; t++)
        numel[t] = m->tensors[t].kind == SFPW_TENSOR_ACT
                       ? (uint64_t)m->tensors[t].n * o->batch
                   : sfpw_tensor_is_raw(m->tensors[t].kind)
                       ? 0
                       : (uint64_t)llround(m->tensors[t].n * o->weight_cost);
    const uint64_t total_steps = r->steps_per_epoch * o->epochs;
    sfp_policy_config pc;
    sfp_policy_config_default(&pc, (sfp_policy_kind)o->policy);
    pc.seed = o->seed;
    uint64_t warm = o->warmup >= 0 ? (uint64_t)o->warmup : total_steps / 100;
    pc.qm.warmup = warm;
    pc.bw.warmup = warm;
    sfpt_opts_apply_policy(o, &pc);
    pc.qm.rule = (sfp_qm_rule)o->qm_rule;
    pc.qm.calib_target = o->calib_target;
    /* a bit cost given alone is a fixed one; with --target-bits it is the
     * starting point */
    if (sfpt_opts_given(o, "bit-cost") && !sfpt_opts_given(o, "target-bits"))
        pc.qm.target_bits = 0;
    if (o->warmup >= 0)
        pc.qm.calib_steps = (uint64_t)o->warmup;
    /* one floor per kind of tensor, set below; the config holds the lower */
    pc.qm.e_min = o->e_min < o->e_min_act ? o->e_min : o->e_min_act;
    if (o->weight_cost != 1.0) {
        /* The regularizer weighs tensor t by numel[t] / sum(numel): scale
         * gamma so that an activation value keeps its pull and only the
         * weights' grows by --weight-cost. */
        double t0 = 0, t1 = 0;
        for (int t = 0; t < m->ntensors; t++) {
            t1 += (double)numel[t];
            t0 += !sfpw_tensor_is_param(m->tensors[t].kind) ? (double)numel[t]
                                                            : (double)m->tensors[t].n;
        }
        pc.qm.gamma *= t1 / t0;
        pc.qm.bit_cost *= t1 / t0;
    }
    if (pc.bw.m_init < pc.bw.m_min)
        pc.bw.m_init = pc.bw.m_min;
    r->gamma = pc.qm.gamma;
    r->qm_lr = pc.qm.rule == SFP_QM_RULE_SGD ? pc.qm.lr : pc.qm.step;
    r->bit_cost = pc.qm.bit_cost;
    r->n_min = pc.qm.n_min;
    r->target_bits = pc.qm.rule == SFP_QM_RULE_ADAPTIVE ? pc.qm.target_bits : 0;
    int rc = sfp_policy_create(&r->pol, &pc, (size_t)m->ntensors, numel);
    /* Activations keep SFPT_N_MIN_ACT mantissa bits unless told otherwise:
     * the bitlength gradient sees what rounding a stash costs the loss at
     * fixed weights, not what it costs the weight gradients computed from
     * it, and left BatchNorm-branch and transformer activations at 0 bits
     * (docs/RESULTS.md "What holds resnet and vit back").
     * Norm scales, the class token and positions get a mantissa floor of
     * their own: their widths' task gradient is about 0 (rounding a scale
     * near 1 to a power of two costs nothing at first), so the regularizer
     * took them to 0 mantissa bits, where a scale can only move by
     * factors of two and training can no longer change it; they are a few
     * hundredths of the weights (docs/TRAINING.md). */
    r->n_min_act = o->n_min_act >= 0 ? o->n_min_act : pc.qm.n_min;
    if (o->n_min_act < 0 && pc.qm.n_min < SFPT_N_MIN_ACT && SFPT_N_MIN_ACT < pc.qm.n_max)
        r->n_min_act = SFPT_N_MIN_ACT;
    r->n_min_act_linear = o->n_min_act_linear >= 0 ? o->n_min_act_linear : r->n_min_act;
    /* BitWave: the activations keep SFPT_BW_M_MIN_ACT mantissa bits while
     * the network's widths go lower (the weights follow them): the loss
     * that drives the controller does not see what coarse stashes cost
     * the weight gradients (docs/RESULTS.md) */
    r->bw_m_min = pc.bw.m_min;
    r->bw_e_min = pc.bw.e_min;
    double bf = o->bw_m_min_act >= 0 ? o->bw_m_min_act : SFPT_BW_M_MIN_ACT;
    if (bf < pc.bw.m_min)
        bf = pc.bw.m_min;
    if (bf > pc.bw.m_max)
        bf = pc.bw.m_max;
    r->bw_m_min_act = (unsigned)bf;
    /* BitWave: a weight, bias or norm parameter that holds less than
     * --bw-min-share of the values stored per step keeps the activations'
     * floor too: a mantissa bit of a tensor of share s is worth at most s
     * of a bit per stored value, and on resnet and vit (every weight tensor
     * under 0.2 %) the weights at 2 bits cost accuracy that the footprint
     * does not notice (docs/TRAINING.md "BitWave") */
    uint64_t numel_sum = 0;
    for (int t = 0; t < m->ntensors; t++)
        numel_sum += numel[t];
    /* one pass sets every tensor's floors: QM/QE's per kind, BitWave's on
     * the activations and the small tensors */
    for (int t = 0; !rc && t < m->ntensors; t++) {
        const int kind = m->tensors[t].kind;
        double nf, ef;
        if (sfp_policy_wants_gradients(r->pol)) {
            nf = pc.qm.n_min;
            if (kind == SFPW_TENSOR_PARAM && o->n_min_param > nf)
                nf = o->n_min_param;
            if (kind == SFPW_TENSOR_BIAS && o->n_min_bias > nf)
                nf = o->n_min_bias;
            if (kind == SFPW_TENSOR_ACT)
                nf = read_by_linear_only(m->tensors[t].role) ? r->n_min_act_linear
                                                             : r->n_min_act;
            ef = kind == SFPW_TENSOR_ACT ? o->e_min_act : o->e_min;
        } else if (o->policy == SFP_POLICY_BITWAVE && kind == SFPW_TENSOR_ACT) {
            nf = bf;
            ef = pc.bw.e_min;
        } else if (o->policy == SFP_POLICY_BITWAVE && numel[t]) {
            /* a small tensor: the activations' floor; a bias: --n-min-bias */
            const int small = (double)numel[t] < o->bw_min_share * (double)numel_sum;
            const int bias_floor = kind == SFPW_TENSOR_BIAS && o->n_min_bias >= 0;
            if (!small && !bias_floor)
                continue;
            nf = small ? bf : 0;
            if (bias_floor && ceil(o->n_min_bias) > nf)
                nf = ceil(o->n_min_bias);
            if (nf < pc.bw.m_min)
                nf = pc.bw.m_min;
            if (nf > pc.bw.m_max)
                nf = pc.bw.m_max;
            ef = pc.bw.e_min;
        } else {
            continue;
        }
        rc = sfp_policy_set_floor(r->pol, (size_t)t, nf, ef);
    }
    if (rc) {
        err("policy: %s (check the width bounds)\n", sfp_strerror(rc));
        return -1;
    }
    r->quant = o->policy != SFP_POLICY_FP32;
    r->want_grad = sfp_policy_wants_gradients(r->pol);
    sfp_params_default(&r->base);
    r->base.rounding = (sfp_rounding)o->rounding;
    r->base.coder = (sfp_coder)o->coder;
    r->base.zmap = (unsigned)o->zmap;
    if (o->gecko_group)
        r->base.gecko_group = o->gecko_group;
    r->base.seed = o->seed;
    return 0;
}

/* ------------------------------------------------------------------ stash */

#define SHM_DEFAULT_MAX ((size_t)256 << 20)

static void daemon_log(const char *msg)
{
    err("%s\n", msg);
    fflush(stderr);
}

#ifdef SFPW_HAVE_DAEMON
static int encode_via_daemon(void *ctx, const float *src, size_t n,
                             const sfp_params *p, void *dst, size_t cap,
                             size_t *len)
{
    return sfpw_stash_daemon_encode(ctx, src, n, p, dst, cap, len);
}
#endif

/*
 * --stash-codec auto: the rank does the codec work. Measured with and
 * without a core to spare for sfpd (docs/BENCHMARKS.md "Who encodes"):
 * when sfpd encodes, the rank still quantizes in a pass of its own (for
 * the statistics and gradient samples the encode would give it) and sends
 * its weight pieces to sfpd's Encode, which costs it more than the codec
 * work handed over (one rank on 2 cores: cnn +7.5 % over in-process against
 * +0.9 % with the rank codec, mlp +28 % against +4 %, resnet +10 % against
 * +5 %). The node's ranks (MPI's shared-memory split) and online cores are
 * recorded for the report.
 */
static int choose_codec(sfpt *r)
{
    const sfpt_opts *o = &r->o;
    MPI_Comm node;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    r->node_ranks = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_size(node, &r->node_ranks);
        MPI_Comm_free(&node);
    }
    r->node_cores = cores > 0 ? (int)cores : 1;
    return o->stash_codec != SFPW_CODEC_AUTO ? o->stash_codec : SFPW_CODEC_RANK;
}

/*
 * Opens the stash: sfpd when o->daemon is set (job id agreed on by all
 * ranks), else in-process. A daemon that cannot be reached at start is a
 * daemon loss: fallback continues in-process, fail stops.
 */
static int open_stash(sfpt *r)
{
    const sfpt_opts *o = &r->o;
    r->job[0] = 0;
    if (!o->daemon)
        return sfpw_stash_local_open(&r->stash) ? -1 : 0;
#ifndef SFPW_HAVE_DAEMON
    (void)daemon_log;
    err("--daemon: this sfp-train was built without libsfpclient\n");
    return -1;
#else
    const sfpw_model *m = &r->model;
    char buf[160] = "";
    if (o->job) {
        snprintf(buf, sizeof buf, "%s", o->job);
    } else if (sfpt_rank == 0) {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = 0;
        snprintf(buf, sizeof buf, "sfp-train-%s-%ld-%ld", host, (long)getpid(),
                 (long)time(NULL));
    }
    MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, MPI_COMM_WORLD);
    buf[sizeof buf - 1] = 0;
    snprintf(r->job, sizeof r->job, "%s", buf);
    r->stash_codec = choose_codec(r);
    say("stash codec: %s (%s; %d rank%s on this node, %d online core%s)\n",
        r->stash_codec == SFPW_CODEC_RANK ? "rank (the ranks encode and decode; sfpd stores frames)"
                                          : "daemon (sfpd encodes and decodes)",
        o->stash_codec == SFPW_CODEC_AUTO ? "auto" : "--stash-codec", r->node_ranks,
        r->node_ranks == 1 ? "" : "s", r->node_cores, r->node_cores == 1 ? "" : "s");

    /* the engine's arena (keep mode: every stashed tensor has its own
     * place, so puts and gets copy nothing) plus room to encode a shard; if
     * that exceeds SHM_DEFAULT_MAX the arena stays private (release mode)
     * and puts copy into a ring of two of the largest stashed tensors
     * (sfpd reads a put before the ring comes round) */
    size_t keep, largest = 0, shard = m->nparams / sfpw_dist_size(r->dist) + 64;
    sfpw_net_sizes(r->net, &keep, NULL, NULL);
    for (int t = 0; t < m->ntensors; t++)
        if (sfpw_tensor_is_stashed(m->tensors[t].kind)) {
            size_t b = sizeof(float) * (m->tensors[t].n * (size_t)r->max_rows + m->tensors[t].fixed);
            largest = b > largest ? b : largest;
        }
    size_t enc = 2 * shard * sizeof(float) + 65536;
    size_t shm = keep + keep / 3 + enc + (1u << 20); /* alloc takes up to 3/4 */
    if (shm > SHM_DEFAULT_MAX)
        shm = 2 * largest + enc + (1u << 20);
    shm = (shm + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);

    sfpw_daemon_config dc;
    memset(&dc, 0, sizeof dc);
    dc.socket_path = o->daemon;
    dc.job_id = r->job;
    dc.rank = (uint32_t)sfpt_rank;
    dc.shm_size = o->daemon_shm ? o->daemon_shm : shm;
    dc.timeout_ms = o->daemon_timeout_ms;
    dc.on_loss = (sfpw_on_loss)o->on_loss;
    dc.log = daemon_log;
    dc.rank_codec = r->stash_codec == SFPW_CODEC_RANK;
    int rc = sfpw_stash_daemon_open(&r->stash, &dc);
    if (rc) {
        err("cannot use sfpd at %s: %s\n", o->daemon,
            sfpc_strerror(rc)); /* SFPC_E* or SFP_E*: disjoint ranges */
        if (o->on_loss == SFPW_ON_LOSS_FAIL)
            return -1;
        err("continuing with the in-process stash (--on-daemon-loss=fallback)\n");
        return sfpw_stash_local_open(&r->stash) ? -1 : 0;
    }
    /* with the rank codec the weight pieces are encoded in the ranks too */
    if (o->daemon_encode && !dc.rank_codec)
        sfpw_dist_set_encoder(r->dist, encode_via_daemon, r->stash);
    return 0;
#endif
}

int sfpt_publish(sfpt *r, const sfp_width *w, double *bytes)
{
    sfp_params p = r->base;
    if (r->o.weight_coder >= 0 && !(r->ovr.generation && r->ovr.coder >= 0))
        p.coder = (sfp_coder)r->o.weight_coder;
    return sfpw_dist_publish(r->dist, r->quant ? w : NULL, &p, sfpw_net_weights(r->net), bytes);
}

static void *stash_alloc(void *ctx, size_t bytes)
{
    sfpw_stash *st = ctx;
    return st->ops->alloc(st, bytes);
}

/* ------------------------------------------------------------------ setup */

/* The gradient containers' widths, and which rank of each node reads the
 * node's link counters (the first of the ranks sharing its memory). */
static int exchange_setup(sfpt *r)
{
    const sfpt_opts *o = &r->o;
    if (o->grad_mode == SFPT_GRAD_POLICY && !r->quant) {
        err("--grad-container policy: policy fp32 chooses no widths (give M,E)\n");
        return 2;
    }
    memset(r->gwidth, 0, sizeof r->gwidth);
    for (int t = 0; t < r->model.ntensors; t++) {
        r->gwidth[t].k = o->grad_k;
        r->gwidth[t].e = o->grad_e;
    }
    if (!o->wire_if)
        return 0;
    MPI_Comm node;
    int nr = 0, bad = 0, any = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0,
                            MPI_INFO_NULL, &node) != MPI_SUCCESS) {
        err("--wire-if: cannot group the ranks by node\n");
        return 1;
    }
    MPI_Comm_rank(node, &nr);
    MPI_Comm_free(&node);
    r->wire_leader = nr == 0;
    uint64_t rx, tx;
    if (r->wire_leader && sfpw_wire_read(o->wire_if, &rx, &tx)) {
        err("--wire-if %s: no such interface in this node's /proc/net/dev\n", o->wire_if);
        bad = 1;
    }
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any ? 2 : 0;
}

static void banner(const sfpt *r)
{
    const sfpt_opts *o = &r->o;
    say("sfp-train %s: %d rank%s, policy %s%s%s, %s batch %d, %s lr %g, seed %llu\n",
        sfp_version(), r->nranks, r->nranks > 1 ? "s" : "",
        sfp_policy_kind_name((sfp_policy_kind)o->policy), o->coder == SFP_CODER_PLAIN ? "" : "+",
        o->coder == SFP_CODER_PLAIN ? "" : sfp_coder_name((sfp_coder)o->coder),
        o->synthetic ? "synthetic" : "fashion-mnist", o->batch,
        o->opt.kind == SFPW_OPT_ADAM ? "adam" : "sgd", o->opt.lr,
        (unsigned long long)o->seed);
    if (o->weight_coder >= 0 && o->weight_coder != o->coder)
        say("weight pieces: coder %s\n", sfp_coder_name((sfp_coder)o->weight_coder));
    say("data: %zu train / %zu test images; %llu steps per epoch; stash %s\n",
        r->train.n, r->test.n, (unsigned long long)r->steps_per_epoch,
        r->stash->ops->name);
    if (r->job[0])
        say("sfpd: socket %s, job %s, weight shards encoded by %s, on loss: %s\n",
            o->daemon, r->job, o->daemon_encode ? "sfpd" : "the ranks",
            o->on_loss == SFPW_ON_LOSS_FAIL ? "fail" : "fallback");
    if (sfpt_rank == 0)
        sfpw_model_print(&r->model, stdout);
    fflush(stdout);
}

int sfpt_setup(sfpt *r)
{
    sfpt_opts *o = &r->o;
    const sfpw_model *m = &r->model;
    int rc;
    MPI_Comm_size(MPI_COMM_WORLD, &r->nranks);
    if (o->impl != SFP_IMPL_AUTO && (rc = sfp_set_impl((sfp_impl)o->impl))) {
        err("--impl: %s\n", sfp_strerror(rc));
        return 2;
    }
    if ((rc = load_model(r)))
        return rc;
    if (o->batch < r->nranks) {
        err("--batch %d is smaller than the number of ranks %d\n", o->batch, r->nranks);
        return 2;
    }
    if (load_data(r))
        return 1;
    r->steps_per_epoch = r->train.n / o->batch;
    if (make_policy(r))
        return 1;

    /* engine, shards, stash */
    r->max_rows = (o->batch + r->nranks - 1) / r->nranks;
    r->r0 = (int)((int64_t)o->batch * sfpt_rank / r->nranks);
    r->rows = (int)((int64_t)o->batch * (sfpt_rank + 1) / r->nranks) - r->r0;
    if ((rc = sfpw_net_create(&r->net, m, r->max_rows)) ||
        (rc = sfpw_dist_create(&r->dist, MPI_COMM_WORLD, m))) {
        err("setup: %s\n", sfp_strerror(rc));
        return 1;
    }
    if ((rc = exchange_setup(r)))
        return rc;
    if (open_stash(r))
        return 1;
    if (r->quant) {
        /* a stash with memory of its own (sfpd's shared memory) holds the
         * whole arena: puts and gets copy nothing; otherwise a stashed
         * tensor's FP32 buffer is free between its put and its get */
        int placed = r->stash->ops->alloc && sfpw_net_place(r->net, stash_alloc, r->stash);
        if (!placed && (rc = sfpw_net_set_release(r->net))) {
            err("setup: %s\n", sfp_strerror(rc));
            return 1;
        }
        if (!placed && r->stash->ops->alloc)
            say("note: the step's buffers do not fit the shared memory; stashed tensors "
                "are copied into it (--daemon-shm)\n");
    }
    if (m->nbuffers)
        sfpw_model_init_buffers(m, sfpw_net_buffers(r->net));
    r->full = malloc(m->nparams * sizeof(float));
    r->full2 = malloc(m->nparams * sizeof(float));
    r->perm = malloc(r->train.n * sizeof(uint32_t));
    r->recs = calloc((size_t)o->epochs, sizeof *r->recs);
    r->pstate_len = sfp_policy_state_size(r->pol);
    r->pstate = malloc(r->pstate_len);
    r->xb = malloc(sizeof(float) * (size_t)r->max_rows * m->in_dim);
    r->yb = malloc((size_t)r->max_rows);
    r->red = malloc(sizeof(double) * sfpt_red_size(m->ntensors, m->nbuffers));
    if (!r->full || !r->full2 || !r->perm || !r->recs || !r->pstate || !r->xb ||
        !r->yb || !r->red) {
        err("out of memory\n");
        return 1;
    }

    if (o->resume) {
        if (sfpt_resume(r))
            return 1;
    } else {
        sfpw_model_init_params(m, r->full, o->seed);
        sfpw_dist_set_master(r->dist, r->full);
        sfpw_dist_set_state(r->dist, NULL, NULL);
    }
    if (!o->quiet)
        banner(r);

    r->measure = o->measure_coders && r->quant;
    sfpw_dist_measure_coders(r->dist, r->measure);
    sfpw_dist_anchor_by_error(r->dist, r->o.weight_anchor);
    sfpw_dist_coder_step(r->dist, r->step, 1);
    if ((rc = sfp_policy_choose(r->pol, r->step, r->width)) ||
        (rc = sfpt_publish(r, r->width, r->wbytes)) ||
        (r->measure && (rc = sfpw_dist_coder_bytes(r->dist, &r->wcb[0][0])))) {
        err("publishing weights: %s\n", sfpt_stash_err(r, rc));
        return 1;
    }
    return 0;
}

void sfpt_teardown(sfpt *r)
{
    free(r->xb);
    free(r->yb);
    free(r->red);
    sfpw_ckpt_free(&r->ck);
    free(r->pstate);
    free(r->recs);
    free(r->perm);
    free(r->full);
    free(r->full2);
    sfp_policy_destroy(&r->pol);
    sfpw_stash_close(&r->stash);
    sfpw_dist_destroy(&r->dist);
    sfpw_net_destroy(&r->net);
    sfpw_dataset_free(&r->train);
    sfpw_dataset_free(&r->test);
}
