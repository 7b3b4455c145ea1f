/*
 * train.c - sfp-train: Fashion-MNIST training with adaptive floating-point
 * containers (QM/QE, BitWave, Gecko), data parallel over MPI.
 * docs/TRAINING.md describes the flags, the output and the report.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>
#ifdef SFPW_HAVE_DAEMON
#include <sfp/client.h>
#endif

#include <sfp/policy.h>
#include <sfp/sfp.h>

#include "checkpoint.h"
#include "data.h"
#include "dist.h"
#include "model.h"
#include "stash.h"

typedef struct opts {
    const char *model, *data_dir, *report, *save, *resume;
    sfp_policy_kind policy;
    int gecko, synthetic, check_replicas, progress, quiet, timing;
    int epochs, batch;
    size_t train_limit, test_limit, synth_train, synth_test;
    uint64_t seed;
    sfpw_opt_config opt;
    float lr_decay;
    int lr_set, wd_set;
    sfp_rounding rounding;
    unsigned gecko_group;
    size_t sample;
    double gamma, qm_lr, n_init, e_init, e_min, e_min_act, n_min, max_step, bit_cost;
    sfp_qm_rule qm_rule;
    long warmup;
    int gamma_set, qm_lr_set, n_init_set, e_init_set, n_min_set,
        max_step_set;
    unsigned bw_period, bw_m_init, bw_e_min, bw_m_min;
    double bw_tau;
    int bw_period_set, bw_tau_set, bw_m_init_set, bw_e_min_set, bw_m_min_set;
    int stop_after; /* testing: stop after this many epochs of this run */
    sfp_impl impl;
    int qm_grad; /* 1: first-order only, 2: first + second order */
    sfp_coder coder;
    int measure_coders;
    const char *daemon, *job;  /* sfpd socket (NULL: in-process stash) */
    int on_loss;               /* sfpw_on_loss                         */
    int daemon_timeout_ms, daemon_encode;
    double weight_cost;        /* regularizer weight of a weight value vs an activation value */
    size_t daemon_shm;
} opts;

static int g_rank;

/* Default of --bit-cost (relative loss per bit of footprint): docs/TRAINING.md */
#define SFPW_BIT_COST 0.01

#define say(...) do { if (g_rank == 0) fprintf(stdout, __VA_ARGS__); } while (0)
#define err(...) do { fprintf(stderr, "sfp-train[%d]: ", g_rank); fprintf(stderr, __VA_ARGS__); } while (0)

static void usage(FILE *f)
{
    fprintf(f,
"usage: [mpirun -np N] sfp-train [options]\n"
"  --model mlp|cnn         model (default mlp)\n"
"  --policy P              fp32|qm|qmqe|bitwave (default qmqe)\n"
"  --gecko                 Gecko-code the exponents of every frame (= --coder gecko)\n"
"  --coder C               exponent coder of the frames: plain|gecko|rans (default plain)\n"
"  --epochs N              epochs (default 5)\n"
"  --batch N               global minibatch, split across ranks (default 128)\n"
"  --optimizer sgd|adam    (default adam)\n"
"  --lr F                  learning rate (default adam 1e-3, sgd 0.05)\n"
"  --lr-decay F            multiply the learning rate by F after every epoch (default 1)\n"
"  --momentum F            SGD momentum (default 0.9)\n"
"  --weight-decay F        L2 (sgd) / decoupled (adam) decay of weights (default 5e-4 sgd, 1e-4 adam)\n"
"  --seed N                seed of init, shuffling and width draws (default 1)\n"
"  --data DIR              Fashion-MNIST IDX directory (default %s)\n"
"  --train-limit N         use the first N training images (tuning)\n"
"  --test-limit N          use the first N test images\n"
"  --synthetic[=N]         synthetic data, N training images (default 4096), no files needed\n"
"  --rounding M            rne|trunc|stochastic mantissa rounding (default rne)\n"
"  --gecko-group N         Gecko group size 8|16|32|64 (default: library default)\n"
"  --bit-cost P            QM/QE: one bit per value of footprint is worth P %% of the\n"
"                          training loss (default %.3g); larger: smaller containers\n"
"  --qm-rule adaptive|sgd  width learning: calibrated start + Adam on a loss-relative\n"
"                          cost (default), or fixed-gamma clipped SGD (method-spec 4.5)\n"
"  --gamma F               sgd rule: regularizer strength, loss per bit (default %.3g)\n"
"  --qm-lr F               width step: adaptive: Adam step in bits (default %.3g);\n"
"                          sgd: bits per unit gradient (default 1)\n"
"  --qm-max-step F         sgd rule: largest width change per step in bits (default %.3g)\n"
"  --n-init F, --e-init F  initial mantissa / exponent widths\n"
"  --n-min F               lower bound of the learned mantissa widths (default 0)\n"
"  --e-min F, --e-min-act F  lower bounds of the learned exponent widths of weights\n"
"                          and biases (default 2) and of activations (default 3)\n"
"  --warmup N              steps before the regularizer / BitWave starts (default 1%% of\n"
"                          steps); adaptive QM/QE: calibration steps (default 2 sweeps)\n"
"  --bw-period N, --bw-tau F, --bw-m-init N, --bw-m-min N, --bw-e-min N   BitWave controller\n"
"  --sample N              values per tensor for the bitlength gradient (default 4096)\n"
"  --qm-grad first|second  bitlength gradient: first order (method-spec 4.4) or\n"
"                          first + second order (Gauss-Newton curvature; default)\n"
"  --daemon PATH           stash activations in sfpd at this socket and encode the\n"
"                          weight shards there (default: $SFP_SOCKET if set, else in-process)\n"
"  --no-daemon             in-process stash even if $SFP_SOCKET is set\n"
"  --job ID                sfpd job id shared by the ranks (default: generated by rank 0)\n"
"  --on-daemon-loss M      fallback (default: go on with the in-process stash, the\n"
"                          interrupted step runs again) | fail (exit non-zero)\n"
"  --daemon-timeout MS     bound of every sfpd call (default 5000)\n"
"  --daemon-shm MIB        shared memory per rank (default: fits one step's stashes)\n"
"  --no-daemon-encode      with --daemon, still encode the weight shards in-process\n"
"  --weight-cost F          QM/QE: a weight value costs F activation values in the\n"
"                          regularizer (default 1: memory footprint; raise it to trade\n"
"                          accuracy for fewer bytes in the weight exchange)\n"
"  --report FILE.json      write the run report\n"
"  --save FILE             checkpoint after every epoch\n"
"  --resume FILE           continue from a checkpoint\n"
"  --check-replicas        exit 3 unless all ranks end with identical weights\n"
"  --timing                print where the step time goes, per epoch\n"
"  --measure-coders        also encode every frame with plain, gecko and rans and report\n"
"                          each footprint (values do not depend on the coder; slower)\n"
"  --impl auto|c|avx2      libsfp kernels (default auto)\n"
"  --progress / --no-progress   progress line (default: when stderr is a terminal)\n"
"  --quiet                 only the per-epoch lines\n"
"  --help\n", SFPW_DATA_DEFAULT_DIR, 100 * SFPW_BIT_COST, 0.02, 0.02, 0.01);
}

enum {
    O_MODEL = 256, O_POLICY, O_GECKO, O_EPOCHS, O_BATCH, O_OPT, O_LR, O_LRDECAY,
    O_MOM, O_WD, O_SEED, O_DATA, O_TRAINLIM, O_TESTLIM, O_SYNTH, O_ROUND,
    O_GGROUP, O_GAMMA, O_QMLR, O_QMSTEP, O_NINIT, O_EINIT, O_NMIN, O_EMIN,
    O_WARMUP, O_BWP, O_BWT, O_BWM, O_BWE, O_SAMPLE, O_REPORT, O_SAVE,
    O_RESUME, O_CHECK, O_TIMING, O_PROG, O_NOPROG, O_QUIET, O_HELP, O_STOP,
    O_IMPL, O_QMGRAD, O_CODER, O_BWMMIN, O_MEASURE, O_DAEMON, O_NODAEMON,
    O_JOB, O_ONLOSS, O_DTIMEOUT, O_DSHM, O_NODENC, O_WCOST, O_BITCOST,
    O_QMRULE, O_EMINACT,
};

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option lo[] = {
        { "model", 1, 0, O_MODEL }, { "policy", 1, 0, O_POLICY },
        { "gecko", 0, 0, O_GECKO }, { "epochs", 1, 0, O_EPOCHS },
        { "batch", 1, 0, O_BATCH }, { "optimizer", 1, 0, O_OPT },
        { "lr", 1, 0, O_LR }, { "lr-decay", 1, 0, O_LRDECAY },
        { "momentum", 1, 0, O_MOM }, { "weight-decay", 1, 0, O_WD },
        { "seed", 1, 0, O_SEED }, { "data", 1, 0, O_DATA },
        { "train-limit", 1, 0, O_TRAINLIM }, { "test-limit", 1, 0, O_TESTLIM },
        { "synthetic", 2, 0, O_SYNTH }, { "rounding", 1, 0, O_ROUND },
        { "gecko-group", 1, 0, O_GGROUP }, { "gamma", 1, 0, O_GAMMA },
        { "qm-lr", 1, 0, O_QMLR }, { "qm-max-step", 1, 0, O_QMSTEP },
        { "n-init", 1, 0, O_NINIT }, { "e-init", 1, 0, O_EINIT },
        { "n-min", 1, 0, O_NMIN }, { "e-min", 1, 0, O_EMIN },
        { "warmup", 1, 0, O_WARMUP }, { "bw-period", 1, 0, O_BWP },
        { "bw-tau", 1, 0, O_BWT }, { "bw-m-init", 1, 0, O_BWM },
        { "bw-e-min", 1, 0, O_BWE }, { "sample", 1, 0, O_SAMPLE },
        { "report", 1, 0, O_REPORT }, { "save", 1, 0, O_SAVE },
        { "resume", 1, 0, O_RESUME }, { "check-replicas", 0, 0, O_CHECK },
        { "timing", 0, 0, O_TIMING }, { "progress", 0, 0, O_PROG },
        { "no-progress", 0, 0, O_NOPROG }, { "quiet", 0, 0, O_QUIET },
        { "help", 0, 0, O_HELP }, { "stop-after", 1, 0, O_STOP },
        { "impl", 1, 0, O_IMPL }, { "qm-grad", 1, 0, O_QMGRAD },
        { "coder", 1, 0, O_CODER }, { "bw-m-min", 1, 0, O_BWMMIN },
        { "measure-coders", 0, 0, O_MEASURE },
        { "daemon", 1, 0, O_DAEMON }, { "no-daemon", 0, 0, O_NODAEMON },
        { "job", 1, 0, O_JOB }, { "on-daemon-loss", 1, 0, O_ONLOSS },
        { "daemon-timeout", 1, 0, O_DTIMEOUT }, { "daemon-shm", 1, 0, O_DSHM },
        { "no-daemon-encode", 0, 0, O_NODENC }, { "weight-cost", 1, 0, O_WCOST },
        { "bit-cost", 1, 0, O_BITCOST }, { "qm-rule", 1, 0, O_QMRULE },
        { "e-min-act", 1, 0, O_EMINACT },
        { 0, 0, 0, 0 },
    };
    memset(o, 0, sizeof *o);
    o->model = "mlp";
    o->data_dir = SFPW_DATA_DEFAULT_DIR;
    o->policy = SFP_POLICY_QMQE;
    o->epochs = 5;
    o->batch = 128;
    o->seed = 1;
    o->opt.kind = SFPW_OPT_ADAM;
    o->opt.momentum = 0.9f;
    o->opt.beta1 = 0.9f;
    o->opt.beta2 = 0.999f;
    o->opt.eps = 1e-8f;
    o->lr_decay = 1.0f;
    o->progress = isatty(STDERR_FILENO);
    o->synth_train = 4096;
    o->synth_test = 1024;
    o->warmup = -1;
    o->rounding = SFP_ROUND_RNE;
    o->qm_grad = 2;
    o->daemon = getenv("SFP_SOCKET");
    if (o->daemon && !o->daemon[0])
        o->daemon = NULL;
    o->on_loss = SFPW_ON_LOSS_FALLBACK;
    o->daemon_timeout_ms = 5000;
    o->daemon_encode = 1;
    o->weight_cost = 1.0;
    o->bit_cost = SFPW_BIT_COST;
    o->e_min = 2;
    o->e_min_act = 3;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        const char *a = optarg;
#define NUM(lo_, hi_) do { if (parse_num(a, lo_, hi_, &v)) { err("bad value '%s' for --%s\n", a, lo[0].name ? argv[optind - 1] : ""); return -1; } } while (0)
        switch (c) {
        case O_MODEL: o->model = a; break;
        case O_POLICY:
            if (sfp_policy_kind_parse(a, &o->policy)) {
                err("unknown policy '%s' (fp32|qm|qmqe|bitwave)\n", a);
                return -1;
            }
            break;
        case O_GECKO: o->gecko = 1; o->coder = SFP_CODER_GECKO; break;
        case O_CODER:
            if (!strcmp(a, "plain")) o->coder = SFP_CODER_PLAIN;
            else if (!strcmp(a, "gecko")) o->coder = SFP_CODER_GECKO;
            else if (!strcmp(a, "rans")) o->coder = SFP_CODER_RANS;
            else { err("unknown coder '%s' (plain|gecko|rans)\n", a); return -1; }
            o->gecko = o->coder == SFP_CODER_GECKO;
            break;
        case O_EPOCHS: NUM(1, 10000); o->epochs = (int)v; break;
        case O_BATCH: NUM(1, 65536); o->batch = (int)v; break;
        case O_OPT:
            if (!strcmp(a, "sgd")) o->opt.kind = SFPW_OPT_SGD;
            else if (!strcmp(a, "adam")) o->opt.kind = SFPW_OPT_ADAM;
            else { err("unknown optimizer '%s'\n", a); return -1; }
            break;
        case O_LR: NUM(0, 100); o->opt.lr = (float)v; o->lr_set = 1; break;
        case O_LRDECAY: NUM(0, 1); o->lr_decay = (float)v; break;
        case O_MOM: NUM(0, 1); o->opt.momentum = (float)v; break;
        case O_WD: NUM(0, 1); o->opt.weight_decay = (float)v; o->wd_set = 1; break;
        case O_SEED: NUM(0, 1e18); o->seed = (uint64_t)v; break;
        case O_DATA: o->data_dir = a; break;
        case O_TRAINLIM: NUM(1, 1e9); o->train_limit = (size_t)v; break;
        case O_TESTLIM: NUM(1, 1e9); o->test_limit = (size_t)v; break;
        case O_SYNTH:
            o->synthetic = 1;
            if (a) { NUM(16, 1e7); o->synth_train = (size_t)v; o->synth_test = o->synth_train / 4; }
            break;
        case O_ROUND:
            if (!strcmp(a, "rne")) o->rounding = SFP_ROUND_RNE;
            else if (!strcmp(a, "trunc")) o->rounding = SFP_ROUND_TRUNC;
            else if (!strcmp(a, "stochastic")) o->rounding = SFP_ROUND_STOCHASTIC;
            else { err("unknown rounding '%s'\n", a); return -1; }
            break;
        case O_GGROUP: NUM(8, 64); o->gecko_group = (unsigned)v; break;
        case O_GAMMA: NUM(0, 1e6); o->gamma = v; o->gamma_set = 1; break;
        case O_BITCOST: NUM(0, 1e4); o->bit_cost = v / 100; break;
        case O_QMRULE:
            if (sfp_qm_rule_parse(a, &o->qm_rule)) {
                err("unknown --qm-rule '%s' (adaptive|sgd)\n", a);
                return -1;
            }
            break;
        case O_QMLR: NUM(0, 1e6); o->qm_lr = v; o->qm_lr_set = 1; break;
        case O_QMSTEP: NUM(1e-6, 23); o->max_step = v; o->max_step_set = 1; break;
        case O_NINIT: NUM(0, 23); o->n_init = v; o->n_init_set = 1; break;
        case O_EINIT: NUM(1, 8); o->e_init = v; o->e_init_set = 1; break;
        case O_NMIN: NUM(0, 22); o->n_min = v; o->n_min_set = 1; break;
        case O_EMIN: NUM(1, 8); o->e_min = v; break;
        case O_EMINACT: NUM(1, 8); o->e_min_act = v; break;
        case O_WARMUP: NUM(0, 1e12); o->warmup = (long)v; break;
        case O_BWP: NUM(1, 1e6); o->bw_period = (unsigned)v; o->bw_period_set = 1; break;
        case O_BWT: NUM(0, 10); o->bw_tau = v; o->bw_tau_set = 1; break;
        case O_BWM: NUM(0, 23); o->bw_m_init = (unsigned)v; o->bw_m_init_set = 1; break;
        case O_BWMMIN: NUM(0, 23); o->bw_m_min = (unsigned)v; o->bw_m_min_set = 1; break;
        case O_BWE: NUM(1, 8); o->bw_e_min = (unsigned)v; o->bw_e_min_set = 1; break;
        case O_SAMPLE: NUM(1, 1 << 20); o->sample = (size_t)v; break;
        case O_REPORT: o->report = a; break;
        case O_SAVE: o->save = a; break;
        case O_RESUME: o->resume = a; break;
        case O_CHECK: o->check_replicas = 1; break;
        case O_TIMING: o->timing = 1; break;
        case O_MEASURE: o->measure_coders = 1; break;
        case O_DAEMON: o->daemon = a; break;
        case O_NODAEMON: o->daemon = NULL; break;
        case O_JOB:
            if (!a[0] || strlen(a) > 128) { err("--job: 1 to 128 bytes\n"); return -1; }
            o->job = a;
            break;
        case O_ONLOSS:
            if (!strcmp(a, "fallback")) o->on_loss = SFPW_ON_LOSS_FALLBACK;
            else if (!strcmp(a, "fail")) o->on_loss = SFPW_ON_LOSS_FAIL;
            else { err("unknown --on-daemon-loss '%s' (fallback|fail)\n", a); return -1; }
            break;
        case O_DTIMEOUT: NUM(10, 3600000); o->daemon_timeout_ms = (int)v; break;
        case O_DSHM: NUM(1, 65536); o->daemon_shm = (size_t)v << 20; break;
        case O_NODENC: o->daemon_encode = 0; break;
        case O_WCOST: NUM(0.001, 1e6); o->weight_cost = v; break;
        case O_PROG: o->progress = 1; break;
        case O_NOPROG: o->progress = 0; break;
        case O_QUIET: o->quiet = 1; break;
        case O_STOP: NUM(1, 10000); o->stop_after = (int)v; break;
        case O_QMGRAD:
            if (!strcmp(a, "first")) o->qm_grad = 1;
            else if (!strcmp(a, "second")) o->qm_grad = 2;
            else { err("unknown --qm-grad '%s' (first|second)\n", a); return -1; }
            break;
        case O_IMPL:
            if (!strcmp(a, "auto")) o->impl = SFP_IMPL_AUTO;
            else if (!strcmp(a, "c")) o->impl = SFP_IMPL_C;
            else if (!strcmp(a, "avx2")) o->impl = SFP_IMPL_AVX2;
            else { err("unknown --impl '%s' (auto|c|avx2)\n", a); return -1; }
            break;
        case O_HELP: if (g_rank == 0) usage(stdout); return 1;
        default: if (g_rank == 0) usage(stderr); return -1;
        }
#undef NUM
    }
    if (optind < argc) {
        err("unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->lr_set)
        o->opt.lr = o->opt.kind == SFPW_OPT_ADAM ? 1e-3f : 0.05f;
    if (!o->wd_set)
        o->opt.weight_decay = o->opt.kind == SFPW_OPT_ADAM ? 1e-4f : 5e-4f;
    if (o->qm_rule == SFP_QM_RULE_ADAPTIVE && (o->gamma_set || o->max_step_set)) {
        err("--gamma and --qm-max-step belong to --qm-rule sgd; the adaptive rule's "
            "knob is --bit-cost\n");
        return -1;
    }
    return 0;
}

static int want_grad_kind(sfp_policy_kind k)
{
    return k == SFP_POLICY_QM || k == SFP_POLICY_QMQE;
}

/* ------------------------------------------------------------------ report */

typedef struct tensor_epoch {
    double n, e;          /* learned / controller widths at epoch end */
    double k_sum, e_sum;  /* sum of used widths over steps            */
    double bytes, values, zeros;
} tensor_epoch;

typedef struct epoch_rec {
    int epoch;
    double loss, train_acc, test_acc, act_bits, weight_bits, ratio, seconds;
    double step_ms;
    uint64_t policy_generation; /* sfpd operator policy in force at the end (0: none) */
    double x_bytes, x_fp32;
 /* weight exchange: frame and FP32 bytes, summed over steps */
    double t_compute, t_quant, t_stash, t_comm, t_opt, t_publish;
    uint64_t steps;
    int measured;
    double c_act_bits[SFPW_NCODERS], c_w_bits[SFPW_NCODERS], c_ratio[SFPW_NCODERS];
    tensor_epoch t[SFPW_MAX_TENSORS];
} epoch_rec;

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

typedef struct run_info {
    const char *stash;      /* stash implementation name         */
    const char *job;        /* sfpd job id, or NULL               */
    int daemon_lost;        /* 1 if any rank lost sfpd            */
    double retries;         /* steps run again, summed over ranks */
    double remote, local;   /* weight pieces encoded by sfpd / in-process */
} run_info;

static int write_report(const char *path, const opts *o, const sfpw_model *m,
                        int nranks, const epoch_rec *rec, int nrec,
                        int identical, uint64_t whash, const run_info *ri)
{
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
    fprintf(f, ", \"policy\": \"%s\", \"gecko\": %s, \"coder\": \"%s\", \"epochs\": %d, \"batch\": %d, "
               "\"ranks\": %d, \"optimizer\": \"%s\", \"lr\": %g, \"lr_decay\": %g, "
               "\"momentum\": %g, \"weight_decay\": %g, \"seed\": %llu, \"data\": ",
            sfp_policy_kind_name(o->policy), o->gecko ? "true" : "false",
            o->coder == SFP_CODER_RANS ? "rans" : o->coder == SFP_CODER_GECKO ? "gecko" : "plain",
            o->epochs, o->batch, nranks,
            o->opt.kind == SFPW_OPT_ADAM ? "adam" : "sgd", o->opt.lr,
            o->lr_decay, o->opt.momentum, o->opt.weight_decay,
            (unsigned long long)o->seed);
    if (o->synthetic)
        json_str(f, "synthetic");
    else
        json_str(f, o->data_dir);
    fprintf(f, ", \"train_limit\": %zu, \"test_limit\": %zu, \"stash\": ",
            o->train_limit, o->test_limit);
    json_str(f, ri->stash);
    fprintf(f, ", \"qm_rule\": \"%s\", \"bit_cost\": %g, \"gamma\": %g, \"weight_cost\": %g, "
               "\"qm_lr\": %g, \"sample\": %zu, \"qm_grad\": \"%s\", \"n_min\": %g, "
               "\"e_min\": %g, \"e_min_act\": %g},\n",
            sfp_qm_rule_name(o->qm_rule), 100 * o->bit_cost, o->gamma, o->weight_cost, o->qm_lr,
            o->sample, o->qm_grad == 2 ? "second" : "first", o->n_min, o->e_min, o->e_min_act);
    fprintf(f, "  \"daemon\": {\"used\": %s, \"socket\": ", o->daemon ? "true" : "false");
    json_str(f, o->daemon ? o->daemon : "");
    fprintf(f, ", \"job\": ");
    json_str(f, ri->job ? ri->job : "");
    fprintf(f, ", \"on_loss\": \"%s\", \"lost\": %s, \"steps_rerun\": %.0f, "
               "\"weight_pieces_encoded_by_sfpd\": %.0f, \"weight_pieces_encoded_in_process\": %.0f},\n",
            o->on_loss == SFPW_ON_LOSS_FAIL ? "fail" : "fallback",
            ri->daemon_lost ? "true" : "false", ri->retries, ri->remote, ri->local);
    fprintf(f, "  \"tensors\": [");
    for (int t = 0; t < m->ntensors; t++) {
        const sfpw_tensor *T = &m->tensors[t];
        fprintf(f, "%s\n    {\"name\": ", t ? "," : "");
        json_str(f, T->name);
        fprintf(f, ", \"kind\": \"%s\", \"values\": %zu}",
                T->kind == SFPW_TENSOR_ACT ? "activation" :
                T->kind == SFPW_TENSOR_WEIGHT ? "weight" : "bias", T->n);
    }
    fprintf(f, "\n  ],\n  \"epochs\": [");
    for (int i = 0; i < nrec; i++) {
        const epoch_rec *r = &rec[i];
        fprintf(f, "%s\n    {\"epoch\": %d, \"loss\": %.6f, \"train_acc\": %.4f, "
                   "\"test_acc\": %.4f, \"act_bits\": %.4f, \"weight_bits\": %.4f, "
                   "\"footprint_ratio\": %.4f, \"seconds\": %.3f, \"steps\": %llu, "
                   "\"step_ms\": %.4f,\n     \"time_ms_per_step\": {\"compute\": %.4f, "
                   "\"quantize\": %.4f, \"stash\": %.4f, \"comm\": %.4f, "
                   "\"optimizer\": %.4f, \"weights\": %.4f}",
                i ? "," : "", r->epoch, r->loss, r->train_acc, r->test_acc,
                r->act_bits, r->weight_bits, r->ratio, r->seconds,
                (unsigned long long)r->steps, r->step_ms,
                1e3 * r->t_compute / r->steps, 1e3 * r->t_quant / r->steps,
                1e3 * r->t_stash / r->steps, 1e3 * r->t_comm / r->steps,
                1e3 * r->t_opt / r->steps, 1e3 * r->t_publish / r->steps);
        fprintf(f, ",\n     \"sfpd_policy_generation\": %llu",
                (unsigned long long)r->policy_generation);
        fprintf(f, ",\n     \"weight_exchange\": {\"bytes_per_step\": %.1f, "
                   "\"fp32_bytes_per_step\": %.1f, \"ratio\": %.4f}",
                r->x_bytes / r->steps, r->x_fp32 / r->steps,
                r->x_bytes > 0 ? r->x_fp32 / r->x_bytes : 0);
        if (r->measured) {

            static const char *cn[SFPW_NCODERS] = { "plain", "gecko", "rans" };
            fprintf(f, ",\n     \"coders\": {");
            for (int c = 0; c < SFPW_NCODERS; c++)
                fprintf(f, "%s\"%s\": {\"footprint_ratio\": %.4f, \"act_bits\": %.4f, "
                           "\"weight_bits\": %.4f}", c ? ", " : "", cn[c], r->c_ratio[c],
                        r->c_act_bits[c], r->c_w_bits[c]);
            fprintf(f, "}");
        }
        fprintf(f, ",\n     \"tensors\": [");
        for (int t = 0; t < m->ntensors; t++) {
            const tensor_epoch *te = &r->t[t];
            double st = r->steps ? (double)r->steps : 1;
            fprintf(f, "%s\n       {\"name\": ", t ? "," : "");
            json_str(f, m->tensors[t].name);
            fprintf(f, ", \"n\": %.4f, \"e\": %.4f, \"k_mean\": %.4f, \"e_mean\": %.4f, "
                       "\"bits_per_value\": %.4f, \"zero_fraction\": %.4f}",
                    te->n, te->e, te->k_sum / st, te->e_sum / st,
                    te->values ? 8 * te->bytes / te->values : 0,
                    te->values ? te->zeros / te->values : 0);
        }
        fprintf(f, "]}");
    }
    const epoch_rec *last = nrec ? &rec[nrec - 1] : NULL;
    fprintf(f, "\n  ],\n  \"final\": {");
    if (last)
        fprintf(f, "\"loss\": %.6f, \"train_acc\": %.4f, \"test_acc\": %.4f, "
                   "\"act_bits\": %.4f, \"weight_bits\": %.4f, \"footprint_ratio\": %.4f, "
                   "\"step_ms\": %.4f, ",
                last->loss, last->train_acc, last->test_acc, last->act_bits,
                last->weight_bits, last->ratio, last->step_ms);
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

/* ------------------------------------------------------------------ stash */

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
 * Opens the stash: sfpd when o->daemon is set (job id agreed on by all
 * ranks), else in-process. A daemon that cannot be reached at start is a
 * daemon loss: fallback continues in-process, fail stops.
 */
static int open_stash(opts *o, const sfpw_model *m, int max_rows,
                      sfpw_dist *dist, sfpw_stash **out, char *job, size_t jcap)
{
    job[0] = 0;
    if (!o->daemon)
        return sfpw_stash_local_open(out) ? -1 : 0;
#ifndef SFPW_HAVE_DAEMON
    (void)m;
    (void)max_rows;
    (void)dist;
    (void)jcap;
    err("--daemon: this sfp-train was built without libsfpclient\n");
    return -1;
#else
    char buf[160] = "";
    if (o->job) {
        snprintf(buf, sizeof buf, "%s", o->job);
    } else if (g_rank == 0) {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = 0;
        snprintf(buf, sizeof buf, "sfp-train-%s-%ld-%ld", host, (long)getpid(),
                 (long)time(NULL));
    }
    MPI_Bcast(buf, sizeof buf, MPI_CHAR, 0, MPI_COMM_WORLD);
    buf[sizeof buf - 1] = 0;
    snprintf(job, jcap, "%s", buf);

    /* one step's stashes (64-byte aligned) plus room to encode a shard */
    size_t acts = 0, shard = m->nparams / sfpw_dist_size(dist) + 64;
    for (int t = 0; t < m->ntensors; t++)
        if (m->tensors[t].kind == SFPW_TENSOR_ACT)
            acts += ((size_t)m->tensors[t].n * max_rows * sizeof(float) + 63) & ~(size_t)63;
    /* the stashed activations live in the shared memory (no copies), the
     * rest is the put ring and the staging of weight encodes */
    size_t enc = 2 * shard * sizeof(float) + 65536;
    size_t shm = acts + enc + (1u << 20);
    shm = (shm + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);

    sfpw_daemon_config dc;
    memset(&dc, 0, sizeof dc);
    dc.socket_path = o->daemon;
    dc.job_id = job;
    dc.rank = (uint32_t)g_rank;
    dc.shm_size = o->daemon_shm ? o->daemon_shm : shm;
    dc.timeout_ms = o->daemon_timeout_ms;
    dc.on_loss = (sfpw_on_loss)o->on_loss;
    dc.log = daemon_log;
    int rc = sfpw_stash_daemon_open(out, &dc);
    if (rc) {
        err("cannot use sfpd at %s: %s\n", o->daemon,
            rc < 0 && rc > -200 ? sfpc_strerror(rc) : sfp_strerror(rc));
        if (o->on_loss == SFPW_ON_LOSS_FAIL)
            return -1;
        err("continuing with the in-process stash (--on-daemon-loss=fallback)\n");
        return sfpw_stash_local_open(out) ? -1 : 0;
    }
    if (o->daemon_encode)
        sfpw_dist_set_encoder(dist, encode_via_daemon, *out);
    return 0;
#endif
}

/* ------------------------------------------------------- operator policy */

#define NOVR 10 /* doubles of an sfpw_override in the step's allreduce */

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
static void ovr_apply(const sfpw_override *v, sfp_width *w, int T)
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
    static const char *cn[] = { "plain", "gecko", "rans" };
    if (v->pin)
        say("sfpd policy generation %llu from step %llu: widths pinned at k=%u e=%u",
            (unsigned long long)v->generation, (unsigned long long)step, v->pin_k, v->pin_e);
    else
        say("sfpd policy generation %llu from step %llu: mantissa bits %u..%u, exponent bits %u..%u",
            (unsigned long long)v->generation, (unsigned long long)step, v->min_k, v->max_k,
            v->min_e, v->max_e);
    say(", coder %s%s\n", v->coder >= 0 && v->coder <= 2 ? cn[v->coder] : "as configured",
        v->freeze ? ", widths frozen" : "");
}

static void *stash_alloc(void *ctx, size_t bytes)
{
    sfpw_stash *st = ctx;
    return st->ops->alloc(st, bytes);
}

static const char *stash_err(sfpw_stash *st, int rc)

{
    return st ? st->ops->strerror(st, rc) : sfp_strerror(rc);
}

/* -------------------------------------------------------------------- main */

static int run(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc > 0 ? 0 : 2;

    int nranks;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    int ret = 1;
    sfpw_model model;
    sfpw_dataset train = { 0 }, test = { 0 };
    sfpw_net *net = NULL;
    sfpw_dist *dist = NULL;
    sfpw_stash *stash = NULL;
    sfp_policy *pol = NULL;
    float *full = NULL, *full2 = NULL;
    uint32_t *perm = NULL;
    epoch_rec *recs = NULL;
    unsigned char *pstate = NULL;
    sfpw_ckpt ck;
    memset(&ck, 0, sizeof ck);
    char job[160] = "";
    double retries = 0, pieces_remote = 0, pieces_local = 0;

    if (o.impl != SFP_IMPL_AUTO && (rc = sfp_set_impl(o.impl))) {
        err("--impl: %s\n", sfp_strerror(rc));
        return 2;
    }
    if (sfpw_model_build(&model, o.model)) {
        err("unknown model '%s' (mlp|cnn)\n", o.model);
        return 2;
    }
    if (o.batch < nranks) {
        err("--batch %d is smaller than the number of ranks %d\n", o.batch, nranks);
        return 2;
    }

    /* data */
    if (o.synthetic) {
        rc = sfpw_data_synthetic(&train, &test, o.synth_train, o.synth_test, o.seed);
        if (rc) {
            err("synthetic data: %s\n", sfpw_data_strerror(rc));
            goto out;
        }
    } else {
        char bad[4096] = "";
        rc = sfpw_data_load(&train, &test, o.data_dir, o.train_limit,
                            o.test_limit, bad, sizeof bad);
        if (rc) {
            err("cannot load Fashion-MNIST: %s: %s\n"
                "  (install the Debian package dataset-fashion-mnist, pass --data DIR,\n"
                "   or use --synthetic for a run without data)\n",
                bad, sfpw_data_strerror(rc));
            goto out;
        }
    }
    if (train.n < (size_t)o.batch) {
        err("training set (%zu) smaller than the batch (%d)\n", train.n, o.batch);
        goto out;
    }

    /* policy */
    uint64_t numel[SFPW_MAX_TENSORS];
    for (int t = 0; t < model.ntensors; t++)
        numel[t] = model.tensors[t].kind == SFPW_TENSOR_ACT
                       ? (uint64_t)model.tensors[t].n * o.batch
                       : (uint64_t)llround(model.tensors[t].n * o.weight_cost);
    const uint64_t steps_per_epoch = train.n / o.batch;
    const uint64_t total_steps = steps_per_epoch * o.epochs;
    sfp_policy_config pc;
    sfp_policy_config_default(&pc, o.policy);
    pc.seed = o.seed;
    uint64_t warm = o.warmup >= 0 ? (uint64_t)o.warmup : total_steps / 100;
    pc.qm.warmup = warm;
    pc.bw.warmup = warm;
    pc.qm.rule = o.qm_rule;
    pc.qm.bit_cost = o.bit_cost;
    if (o.warmup >= 0)
        pc.qm.calib_steps = (uint64_t)o.warmup;
    if (o.gamma_set) pc.qm.gamma = o.gamma;
    if (o.weight_cost != 1.0) {
        /* The regularizer weighs tensor t by numel[t] / sum(numel): scale
         * gamma so that an activation value keeps its pull and only the
         * weights' grows by --weight-cost. */
        double t0 = 0, t1 = 0;
        for (int t = 0; t < model.ntensors; t++) {
            t1 += (double)numel[t];
            t0 += model.tensors[t].kind == SFPW_TENSOR_ACT ? (double)numel[t]
                                                            : (double)model.tensors[t].n;
        }
        pc.qm.gamma *= t1 / t0;
        pc.qm.bit_cost *= t1 / t0;
    }

    if (o.qm_lr_set && o.qm_rule == SFP_QM_RULE_SGD) pc.qm.lr = o.qm_lr;
    if (o.qm_lr_set && o.qm_rule == SFP_QM_RULE_ADAPTIVE) pc.qm.step = o.qm_lr;
    if (o.max_step_set) pc.qm.max_step = o.max_step;
    if (o.n_init_set) pc.qm.n_init = o.n_init;
    if (o.e_init_set) pc.qm.e_init = o.e_init;
    if (o.n_min_set) pc.qm.n_min = o.n_min;
    pc.qm.e_min = o.e_min < o.e_min_act ? o.e_min : o.e_min_act;
    if (o.bw_period_set) pc.bw.period = o.bw_period;
    if (o.bw_tau_set) pc.bw.tau = o.bw_tau;
    if (o.bw_m_init_set) pc.bw.m_init = o.bw_m_init;
    if (o.bw_e_min_set) pc.bw.e_min = o.bw_e_min;
    if (o.bw_m_min_set) pc.bw.m_min = o.bw_m_min;
    if (pc.bw.m_init < pc.bw.m_min)
        pc.bw.m_init = pc.bw.m_min;
    o.gamma = pc.qm.gamma;
    o.bit_cost = pc.qm.bit_cost;
    o.qm_lr = o.qm_rule == SFP_QM_RULE_SGD ? pc.qm.lr : pc.qm.step;
    if (!o.sample)
        o.sample = 4096;
    rc = sfp_policy_create(&pol, &pc, (size_t)model.ntensors, numel);
    if (rc) {
        err("policy: %s (check the width bounds)\n", sfp_strerror(rc));
        goto out;
    }
    for (int t = 0; rc == 0 && want_grad_kind(o.policy) && t < model.ntensors; t++)
        rc = sfp_policy_set_floor(pol, (size_t)t, pc.qm.n_min,
                                  model.tensors[t].kind == SFPW_TENSOR_ACT ? o.e_min_act
                                                                           : o.e_min);
    if (rc) {
        err("policy: %s (check the width bounds)\n", sfp_strerror(rc));
        goto out;
    }
    const int quant = o.policy != SFP_POLICY_FP32;
    const int want_grad = sfp_policy_wants_gradients(pol);

    sfp_params base;
    sfp_params_default(&base);
    base.rounding = o.rounding;
    base.coder = o.coder;
    if (o.gecko_group)
        base.gecko_group = o.gecko_group;
    base.seed = o.seed;

    /* engine, shards, stash */
    const int max_rows = (o.batch + nranks - 1) / nranks;
    if ((rc = sfpw_net_create(&net, &model, max_rows)) ||
        (rc = sfpw_dist_create(&dist, MPI_COMM_WORLD, &model))) {
        err("setup: %s\n", sfp_strerror(rc));
        goto out;
    }
    if (open_stash(&o, &model, max_rows, dist, &stash, job, sizeof job))
        goto out;
    if (stash->ops->alloc && !sfpw_net_place_acts(net, stash_alloc, stash))
        say("note: the stashed activations do not fit the shared memory; puts and gets copy\n");
    full = malloc(model.nparams * sizeof(float));
    full2 = malloc(model.nparams * sizeof(float));
    perm = malloc(train.n * sizeof(uint32_t));
    recs = calloc((size_t)o.epochs, sizeof *recs);
    size_t pstate_len = sfp_policy_state_size(pol);
    pstate = malloc(pstate_len);
    if (!full || !full2 || !perm || !recs || !pstate) {
        err("out of memory\n");
        goto out;
    }

    uint64_t step = 0;
    int first_epoch = 0;
    if (o.resume) {
        rc = sfpw_ckpt_load(o.resume, &ck);
        if (rc) {
            err("--resume %s: %s\n", o.resume, sfpw_ckpt_strerror(rc));
            goto out;
        }
        if (strcmp(ck.model, model.name) || ck.nparams != model.nparams ||
            ck.policy != (uint32_t)o.policy || ck.optimizer != (uint32_t)o.opt.kind ||
            ck.batch != (uint64_t)o.batch || ck.seed != o.seed) {
            err("--resume %s: checkpoint was written by a different setup "
                "(model %s, policy %s, batch %llu, seed %llu)\n", o.resume, ck.model,
                sfp_policy_kind_name((sfp_policy_kind)ck.policy),
                (unsigned long long)ck.batch, (unsigned long long)ck.seed);
            goto out;
        }
        rc = sfp_policy_state_load(pol, ck.policy_state, ck.policy_len);
        if (rc) {
            err("--resume %s: policy state: %s\n", o.resume, sfp_strerror(rc));
            goto out;
        }
        sfpw_dist_set_master(dist, ck.master);
        sfpw_dist_set_state(dist, ck.s1, ck.s2);
        step = ck.step;
        first_epoch = (int)ck.next_epoch;
        for (int e = 0; e < first_epoch; e++)
            o.opt.lr *= o.lr_decay;
        say("resumed from %s at epoch %d (step %llu)\n", o.resume, first_epoch + 1,
            (unsigned long long)step);
    } else {
        sfpw_model_init_params(&model, full, o.seed);
        sfpw_dist_set_master(dist, full);
        sfpw_dist_set_state(dist, NULL, NULL);
    }

    if (!o.quiet) {
        say("sfp-train %s: %d rank%s, policy %s%s, %s batch %d, %s lr %g, seed %llu\n",
            sfp_version(), nranks, nranks > 1 ? "s" : "", sfp_policy_kind_name(o.policy),
            o.coder == SFP_CODER_GECKO ? "+gecko" : o.coder == SFP_CODER_RANS ? "+rans" : "", o.synthetic ? "synthetic" : "fashion-mnist",
            o.batch, o.opt.kind == SFPW_OPT_ADAM ? "adam" : "sgd", o.opt.lr,
            (unsigned long long)o.seed);
        say("data: %zu train / %zu test images; %llu steps per epoch; stash %s\n",
            train.n, test.n, (unsigned long long)steps_per_epoch, stash->ops->name);
        if (job[0])
            say("sfpd: socket %s, job %s, weight shards encoded by %s, on loss: %s\n",
                o.daemon, job, o.daemon_encode ? "sfpd" : "the ranks",
                o.on_loss == SFPW_ON_LOSS_FAIL ? "fail" : "fallback");
        if (g_rank == 0)
            sfpw_model_print(&model, stdout);
        fflush(stdout);
    }

    sfp_width width[SFPW_MAX_TENSORS], ewidth[SFPW_MAX_TENSORS];
    double wbytes[SFPW_MAX_TENSORS];
    const int measure = o.measure_coders && quant;
    double wcb[SFPW_NCODERS][SFPW_MAX_TENSORS];
    memset(wcb, 0, sizeof wcb);
    sfpw_dist_measure_coders(dist, measure);
    if ((rc = sfp_policy_choose(pol, step, width)) ||
        (rc = sfpw_dist_publish(dist, quant ? width : NULL, &base,
                                sfpw_net_weights(net), wbytes)) ||
        (measure && (rc = sfpw_dist_coder_bytes(dist, &wcb[0][0])))) {
        err("publishing weights: %s\n", stash_err(stash, rc));
        goto out;
    }

    const int r0 = (int)((int64_t)o.batch * g_rank / nranks);
    const int rows = (int)((int64_t)o.batch * (g_rank + 1) / nranks) - r0;
    float *xb = malloc(sizeof(float) * (size_t)max_rows * model.in_dim);
    uint8_t *yb = malloc((size_t)max_rows);
    const int T = model.ntensors;
    const int NZ = 3 * T + 4 + SFPW_NCODERS * T; /* per-tensor zeros */
    const int NO = NZ + T;          /* rank 0's view of the operator policy */
    const int NR = NO + NOVR;
    sfpw_override ovr;              /* applied by every rank */
    memset(&ovr, 0, sizeof ovr);
    double *red = malloc(sizeof(double) * NR);
    if (!xb || !yb || !red) {
        free(xb);
        free(yb);
        free(red);
        err("out of memory\n");
        goto out;
    }

    int nrec = 0, epochs_run = 0;
    for (int epoch = first_epoch; epoch < o.epochs; epoch++) {
        epoch_rec *R = &recs[nrec];
        memset(R, 0, sizeof *R);
        R->epoch = epoch + 1;
        sfpw_rng sh;
        sfpw_rng_seed(&sh, o.seed, 0x5aff1e00ull + (uint64_t)epoch);
        for (size_t i = 0; i < train.n; i++)
            perm[i] = (uint32_t)i;
        sfpw_rng_shuffle(&sh, perm, train.n);
        double t_epoch = sfpw_now();
        double loss_sum = 0, correct = 0, act_b = 0, act_v = 0, w_b = 0, w_v = 0;
        double cact[SFPW_NCODERS] = { 0 }, cw[SFPW_NCODERS] = { 0 };

        for (uint64_t s = 0; s < steps_per_epoch; s++, step++) {
            for (int i = 0; i < rows; i++) {
                uint32_t id = perm[s * o.batch + r0 + i];
                memcpy(xb + (size_t)i * model.in_dim, train.x + (size_t)id * model.in_dim,
                       sizeof(float) * model.in_dim);
                yb[i] = train.y[id];
            }
            sfpw_pass ps;
            memset(&ps, 0, sizeof ps);
            ps.quantize = quant;
            ps.stash = quant;
            ps.want_grad = want_grad;
            ps.width = width;
            ps.base = base;
            ps.st = stash;
            ps.key.rank = (uint32_t)g_rank;
            ps.key.step = step;
            ps.sample_budget = o.sample;
            ps.measure_coders = measure;
            ps.fisher = o.qm_grad == 2 ? (double)o.batch : 0.0;
            sfpw_pass_out po;
            for (int attempt = 0;; attempt++) {
                /* a stash that lost the step's tensors (daemon gone, now
                 * in-process) asks for the step to run again */
                memset(&po, 0, sizeof po);
                rc = sfpw_net_forward(net, &ps, xb, yb, rows, 1.0f / o.batch, &po);
                if (!rc)
                    rc = sfpw_net_backward(net, &ps, rows, &po);
                if (rc != SFPW_STASH_ERETRY || attempt == 2)
                    break;
                retries++;
            }
            if (rc) {
                err("step %llu: %s\n", (unsigned long long)step, stash_err(stash, rc));
                goto out_loop;
            }
            double tc = sfpw_now();
            if ((rc = sfpw_dist_reduce_grads(dist, sfpw_net_grads(net)))) {
                err("reduce-scatter failed\n");
                goto out_loop;
            }
            double tq = sfpw_now();
            if (want_grad &&
                (rc = sfpw_dist_weight_grads(dist, width, &base, po.gn, po.ge,
                                             o.seed, step, o.sample,
                                             o.qm_grad == 2 ? (double)o.batch : 0.0))) {
                err("weight width gradients: %s\n", sfp_strerror(rc));
                goto out_loop;
            }
            double tr = sfpw_now();
            for (int t = 0; t < T; t++) {
                red[t] = po.gn[t];
                red[T + t] = po.ge[t];
                red[2 * T + t] = po.bytes[t];
            }
            red[3 * T] = po.loss_sum;
            red[3 * T + 1] = (double)po.correct;
            red[3 * T + 2] = 0;
            red[3 * T + 3] = 0;
            for (int t = 0; t < T; t++) {
                red[3 * T + 2] += po.values[t];
                red[3 * T + 3] += po.zeros[t];
            }
            for (int t = 0; t < T; t++)
                red[NZ + t] = po.zeros[t];
            for (int c = 0; c < SFPW_NCODERS; c++)
                for (int t = 0; t < T; t++)
                    red[3 * T + 4 + c * T + t] = po.coder_bytes[c][t];
            {
                /* sfpd tells rank 0; the sum hands rank 0's view to all */
                sfpw_override v;
                memset(&v, 0, sizeof v);
                if (g_rank != 0 || !sfpw_stash_daemon_policy(stash, &v))
                    memset(&v, 0, sizeof v);
                ovr_pack(&v, red + NO);
            }
            if ((rc = sfpw_dist_allreduce_sum(dist, red, NR))) {
                err("allreduce failed\n");
                goto out_loop;
            }
            double tcomm = sfpw_now();
            double loss = red[3 * T] / o.batch;
            if (!isfinite(loss)) {
                err("step %llu: loss is not finite; stopping\n", (unsigned long long)step);
                rc = SFP_ENONFINITE;
                goto out_loop;
            }
            /* per-tensor accounting (activations global, weights once) */
            for (int t = 0; t < T; t++) {
                tensor_epoch *te = &R->t[t];
                te->k_sum += width[t].k;
                te->e_sum += width[t].e;
                if (model.tensors[t].kind == SFPW_TENSOR_ACT) {
                    double vals = (double)model.tensors[t].n * o.batch;
                    te->bytes += red[2 * T + t];
                    te->values += vals;
                    te->zeros += red[NZ + t];
                    act_b += red[2 * T + t];
                    act_v += vals;
                    for (int c = 0; c < SFPW_NCODERS; c++)
                        cact[c] += red[3 * T + 4 + c * T + t];
                } else {
                    te->bytes += wbytes[t];
                    te->values += (double)model.tensors[t].n;
                    w_b += wbytes[t];
                    w_v += (double)model.tensors[t].n;
                    for (int c = 0; c < SFPW_NCODERS; c++)
                        cw[c] += wcb[c][t];
                }
            }
            loss_sum += red[3 * T];
            correct += red[3 * T + 1];
            {
                sfpw_override v;
                ovr_unpack(red + NO, &v);
                if (v.generation && v.generation != ovr.generation) {
                    ovr = v;
                    if (quant)
                        ovr_say(&ovr, step + 1);
                    else
                        say("sfpd policy generation %llu ignored: policy fp32\n",
                            (unsigned long long)ovr.generation);
                    base.coder = ovr.coder >= 0 ? (sfp_coder)ovr.coder : o.coder;
                }
            }
            int was_calibrated = sfp_policy_calibrated(pol);
            if (!ovr.freeze &&
                (rc = sfp_policy_update(pol, step, loss, red, red + T))) {
                err("policy update: %s\n", sfp_strerror(rc));
                goto out_loop;
            }
            if (!o.quiet && was_calibrated == 0 && sfp_policy_calibrated(pol) == 1) {
                say("calibrated widths after %llu steps (n, e):", (unsigned long long)step + 1);
                for (int t = 0; t < T; t++) {
                    double n, e;
                    sfp_policy_get(pol, t, &n, &e);
                    if (model.tensors[t].kind != SFPW_TENSOR_BIAS)
                        say(" %s %.2f,%.2f", model.tensors[t].name, n, e);
                }
                say("\n");
            }
            double t_opt0 = sfpw_now();
            sfpw_dist_update(dist, &o.opt, step + 1);
            double t_pub0 = sfpw_now();
            if (!(rc = sfp_policy_choose(pol, step + 1, width)))
                ovr_apply(&ovr, width, T);
            if (rc ||
                (rc = sfpw_dist_publish(dist, quant ? width : NULL, &base,
                                        sfpw_net_weights(net), wbytes)) ||
                (measure && (rc = sfpw_dist_coder_bytes(dist, &wcb[0][0])))) {
                err("publishing weights: %s\n", stash_err(stash, rc));
                goto out_loop;
            }
            double t_end = sfpw_now();
            sfpw_exchange xc;
            sfpw_dist_last_exchange(dist, &xc);
            R->x_bytes += xc.exchanged;
            R->x_fp32 += xc.fp32;
            pieces_remote += xc.remote;
            pieces_local += xc.local;
            R->t_compute += po.t_compute;
            R->t_quant += po.t_quant + (tr - tq);
            R->t_stash += po.t_stash;
            R->t_comm += (tq - tc) + (tcomm - tr);
            R->t_opt += t_pub0 - t_opt0;
            R->t_publish += t_end - t_pub0;
            R->steps++;
            if (o.progress && g_rank == 0 && (s % 10 == 9 || s + 1 == steps_per_epoch)) {
                fprintf(stderr, "\r  epoch %d  %5.1f%%  loss %.4f  ", epoch + 1,
                        100.0 * (s + 1) / steps_per_epoch, loss_sum / ((s + 1) * o.batch));
                fflush(stderr);
            }
        }
        if (o.progress && g_rank == 0)
            fprintf(stderr, "\r%60s\r", "");
        double train_secs = sfpw_now() - t_epoch;

        /* evaluation: conservative widths (ceil n, ceil e) */
        for (int t = 0; t < T; t++) {
            ewidth[t] = width[t];
            double n, e;
            sfp_policy_get(pol, t, &n, &e);
            if (quant) {
                ewidth[t].k = (unsigned)ceil(n - 1e-9);
                ewidth[t].e = (unsigned)ceil(e - 1e-9);
            }
        }
        if (quant)
            ovr_apply(&ovr, ewidth, T);
        if ((rc = sfpw_dist_publish(dist, quant ? ewidth : NULL, &base,
                                    sfpw_net_weights(net), NULL))) {
            err("publishing eval weights: %s\n", stash_err(stash, rc));
            goto out_loop;
        }
        size_t t0 = test.n * g_rank / nranks, t1 = test.n * (g_rank + 1) / nranks;
        uint64_t tcorrect = 0;
        sfpw_pass ep;
        memset(&ep, 0, sizeof ep);
        ep.quantize = quant;
        ep.width = ewidth;
        ep.base = base;
        for (size_t i = t0; i < t1; i += (size_t)max_rows) {
            int nr = (int)(t1 - i < (size_t)max_rows ? t1 - i : (size_t)max_rows);
            if ((rc = sfpw_net_eval(net, &ep, test.x + i * model.in_dim, test.y + i,
                                    nr, &tcorrect))) {
                err("evaluation: %s\n", sfp_strerror(rc));
                goto out_loop;
            }
        }
        double tc = (double)tcorrect;
        sfpw_dist_allreduce_sum(dist, &tc, 1);
        if ((rc = sfpw_dist_publish(dist, quant ? width : NULL, &base,
                                    sfpw_net_weights(net), wbytes)) ||
            (measure && (rc = sfpw_dist_coder_bytes(dist, &wcb[0][0])))) {
            err("publishing weights: %s\n", stash_err(stash, rc));
            goto out_loop;
        }
        double n_img = (double)steps_per_epoch * o.batch;
        R->loss = loss_sum / n_img;
        R->train_acc = 100.0 * correct / n_img;
        R->test_acc = 100.0 * tc / test.n;
        R->act_bits = act_v ? 8 * act_b / act_v : 0;
        R->weight_bits = w_v ? 8 * w_b / w_v : 0;
        R->ratio = (act_b + w_b) > 0 ? 4.0 * (act_v + w_v) / (act_b + w_b) : 0;
        R->seconds = sfpw_now() - t_epoch;
        R->step_ms = 1e3 * train_secs / steps_per_epoch;
        R->policy_generation = ovr.generation;
        for (int t = 0; t < T; t++)
            sfp_policy_get(pol, t, &R->t[t].n, &R->t[t].e);
        if (measure) {
            R->measured = 1;
            for (int c = 0; c < SFPW_NCODERS; c++) {
                R->c_act_bits[c] = act_v ? 8 * cact[c] / act_v : 0;
                R->c_w_bits[c] = w_v ? 8 * cw[c] / w_v : 0;
                R->c_ratio[c] = cact[c] + cw[c] > 0 ? 4.0 * (act_v + w_v) / (cact[c] + cw[c]) : 0;
            }
        }
        say("epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  bits/value act %.2f w %.2f  "
            "footprint %.2fx  time %.1fs (%.2f ms/step)\n",
            R->epoch, o.epochs, R->loss, R->train_acc, R->test_acc, R->act_bits,
            R->weight_bits, R->ratio, R->seconds, R->step_ms);
        if (measure)
            say("  footprint by coder: plain %.2fx (act %.2f w %.2f)  gecko %.2fx (act %.2f w %.2f)  "
                "rans %.2fx (act %.2f w %.2f)\n", R->c_ratio[0], R->c_act_bits[0], R->c_w_bits[0],
                R->c_ratio[1], R->c_act_bits[1], R->c_w_bits[1], R->c_ratio[2],
                R->c_act_bits[2], R->c_w_bits[2]);
        if (R->steps)
            say("  weight exchange: %.1f KiB/step all-gathered vs %.1f KiB as FP32 (%.2fx fewer bytes)\n",
                R->x_bytes / R->steps / 1024, R->x_fp32 / R->steps / 1024,
                R->x_bytes > 0 ? R->x_fp32 / R->x_bytes : 0);
        if (o.timing)
            say("  ms/step: compute %.3f  quantize %.3f  stash %.3f  comm %.3f  optimizer %.3f  weights %.3f\n",
                1e3 * R->t_compute / R->steps, 1e3 * R->t_quant / R->steps,
                1e3 * R->t_stash / R->steps, 1e3 * R->t_comm / R->steps,
                1e3 * R->t_opt / R->steps, 1e3 * R->t_publish / R->steps);
        if (!o.quiet && quant) {
            say("  widths (n, e):");
            for (int t = 0; t < T; t++)
                if (model.tensors[t].kind != SFPW_TENSOR_BIAS)
                    say(" %s %.2f,%.2f", model.tensors[t].name, R->t[t].n, R->t[t].e);
            say("\n");
        }
        fflush(stdout);
        nrec++;
        epochs_run++;
        o.opt.lr *= o.lr_decay;

        if (o.save) {
            if ((rc = sfpw_dist_gather(dist, 0, full)) ||
                (rc = sfpw_dist_gather(dist, 1, full2))) {
                err("gathering the checkpoint failed\n");
                goto out_loop;
            }
            float *s2full = g_rank == 0 ? malloc(model.nparams * sizeof(float)) : NULL;
            if (g_rank == 0 && !s2full) {
                err("out of memory\n");
                goto out_loop;
            }
            rc = sfpw_dist_gather(dist, 2, s2full);
            if (g_rank == 0 && !rc) {
                sfpw_ckpt c;
                memset(&c, 0, sizeof c);
                snprintf(c.model, sizeof c.model, "%s", model.name);
                c.policy = (uint32_t)o.policy;
                c.optimizer = (uint32_t)o.opt.kind;
                c.nparams = model.nparams;
                c.next_epoch = (uint64_t)epoch + 1;
                c.step = step;
                c.seed = o.seed;
                c.batch = (uint64_t)o.batch;
                c.master = full;
                c.s1 = full2;
                c.s2 = s2full;
                sfp_policy_state_save(pol, pstate, pstate_len);
                c.policy_state = pstate;
                c.policy_len = pstate_len;
                rc = sfpw_ckpt_save(o.save, &c);
                if (rc)
                    err("--save %s: %s\n", o.save, sfpw_ckpt_strerror(rc));
            }
            free(s2full);
            int bad = rc != 0, anybad = 0;
            MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
            if (anybad)
                goto out_loop;
        }
        if (o.stop_after && epochs_run >= o.stop_after)
            break;
    }

    {
        /* the run's totals over ranks, then free the job's data in sfpd */
        double tot[4] = { retries, pieces_remote, pieces_local, 0 };
        tot[3] = o.daemon && !sfpw_stash_daemon_alive(stash);
        sfpw_dist_allreduce_sum(dist, tot, 4);
        if (job[0]) {
            MPI_Barrier(MPI_COMM_WORLD);
            if (g_rank == 0 && sfpw_stash_daemon_alive(stash) &&
                sfpw_stash_daemon_end_job(stash))
                err("sfpd: ending job %s failed\n", job);
            say("sfpd: %s; %.0f step%s run again; weight pieces encoded by sfpd %.0f, in-process %.0f\n",
                tot[3] > 0 ? "LOST during the run (continued in-process)" : "served the whole run",
                tot[0], tot[0] == 1 ? "" : "s", tot[1], tot[2]);
        }
        run_info ri = { stash->ops->name, job[0] ? job : NULL, tot[3] > 0, tot[0], tot[1], tot[2] };
        uint64_t h;
        int same = sfpw_dist_check_identical(dist, sfpw_net_weights(net), model.nparams, &h);
        say("final: working weights %s across %d rank%s (hash %016llx)\n",
            same ? "identical" : "DIFFER", nranks, nranks > 1 ? "s" : "",
            (unsigned long long)h);
        if (o.report && g_rank == 0 &&
            write_report(o.report, &o, &model, nranks, recs, nrec, same, h, &ri)) {

            err("--report %s: cannot write\n", o.report);
            goto out_loop;
        }
        ret = (o.check_replicas && !same) ? 3 : 0;
    }
out_loop:
    free(xb);
    free(yb);
    free(red);
out:
    sfpw_ckpt_free(&ck);
    free(pstate);
    free(recs);
    free(perm);
    free(full);
    free(full2);
    sfp_policy_destroy(&pol);
    sfpw_stash_close(&stash);
    sfpw_dist_destroy(&dist);
    sfpw_net_destroy(&net);
    sfpw_dataset_free(&train);
    sfpw_dataset_free(&test);
    return ret;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    int ret = run(argc, argv);
    /* A failure on one rank must not leave the others blocked in a
     * collective: abort the job instead of finalizing. */
    int any = ret, nranks;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (ret != 0 && ret != 3 && nranks > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, ret);
    }
    (void)any;
    MPI_Finalize();
    return ret;
}
