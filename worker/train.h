/*
 * train.h - the parts of sfp-train (not a library interface).
 *
 *   train_options.c  the option table: parsing, --help, --print-options
 *   train_setup.c    data, width policy, engine, shards, stash, start banner
 *   train_ckpt.c     --resume and --save
 *   train_epoch.c    one epoch of training steps, the operator policy
 *   train_eval.c     evaluation on the test set
 *   train_report.c   the per-epoch lines and the JSON report
 *   train.c          main(): the order of the parts above
 *
 * Every part works on one sfpt (the run's state). Functions return 0 or a
 * code already reported on stderr (err()).
 */
#ifndef SFPT_TRAIN_H
#define SFPT_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sfp/policy.h>
#include <sfp/sfp.h>

#include "checkpoint.h"
#include "data.h"
#include "dist.h"
#include "net.h"
#include "stash.h"

extern int sfpt_rank;

#define say(...) do { if (sfpt_rank == 0) fprintf(stdout, __VA_ARGS__); } while (0)
#define err(...) do { fprintf(stderr, "sfp-train[%d]: ", sfpt_rank); fprintf(stderr, __VA_ARGS__); } while (0)

/* --grad-container policy: floors of the gradient widths */
#define SFPT_GRAD_K_MIN 2u
#define SFPT_GRAD_E_MIN 4u

/* QM/QE: the activations' mantissa floor when --n-min-act is not given
 * (--n-min when that is higher); 3 since 2026-12-07 (docs/RESULTS.md "The
 * activation floor is 3 mantissa bits") */
#define SFPT_N_MIN_ACT 3.0
/* BitWave: the activations' mantissa floor (docs/RESULTS.md "BitWave's
 * activations keep 3 mantissa bits") */
#define SFPT_BW_M_MIN_ACT 3.0

/* ---------------------------------------------------------------- options */

/* The settings of a run; filled from the option table (train_options.c). */
typedef struct sfpt_opts {
    const char *model, *model_file, *data_dir, *report, *save, *resume;
    int print_model;
    int policy;                /* sfp_policy_kind */
    int coder;                 /* sfp_coder       */
    int weight_coder;          /* sfp_coder or SFP_CODER_AUTO; -1: as coder */
    int zmap;                  /* SFP_ZMAP_*      */
    int gecko;                 /* coder == gecko  */
    int synthetic, check_replicas, progress, quiet, timing;
    int epochs, batch;
    size_t train_limit, test_limit, synth_train, synth_test;
    size_t precise_bn;         /* training images for the statistics (0: off) */
    double step_timeout;       /* seconds without progress before exit 4 (0: off) */
    uint64_t seed;
    int optimizer;             /* sfpw_opt_kind   */
    double lr, lr_decay, momentum, weight_decay;
    int rounding;              /* sfp_rounding    */
    unsigned gecko_group;
    size_t sample;
    long warmup;               /* -1: 1% of the steps */
    sfp_policy_config pol;     /* the policy fields given on the command
                                * line (sfpt_opts_apply_policy)          */
    int stop_after;            /* testing: stop after this many epochs of this run */
    int impl;                  /* sfp_impl        */
    int qm_grad;               /* 1: first-order only, 2: first + second order */
    int qm_rule;               /* sfp_qm_rule     */
    double e_min, e_min_act;   /* exponent floors: weights/biases, activations */
    double n_min_act;          /* mantissa floor of activations (-1: the
                                * default, SFPT_N_MIN_ACT or --n-min) */
    double n_min_act_linear;   /* floor of activations only linear layers
                                * read (-1: n_min_act)                    */
    double bw_m_min_act;       /* BitWave: activations' mantissa floor (-1:
                                * SFPT_BW_M_MIN_ACT or --bw-m-min)        */
    double bw_min_share;       /* BitWave: tensors under this share of the
                                * step's values keep bw_m_min_act          */
    int calib_target;          /* sfp_qm_config.calib_target */
    int weight_anchor;         /* 1: sfpw_dist_anchor_by_error */
    double n_min_param;        /* mantissa floor of norm scales, class token,
                                * positions (SFPW_TENSOR_PARAM)              */
    double n_min_bias;         /* mantissa floor of biases (-1: --n-min)     */
    int measure_coders;
    const char *daemon, *job;  /* sfpd socket (NULL: in-process stash) */
    int on_loss;               /* sfpw_on_loss                         */
    int stash_codec;           /* SFPW_CODEC_* as given (--stash-codec) */
    int daemon_timeout_ms, daemon_encode;
    double weight_cost;        /* regularizer weight of a weight value vs an activation value */
    size_t daemon_shm;         /* bytes */
    const char *grad_container;/* off|policy|M,E as given               */
    int grad_mode;             /* SFPT_GRAD_*                           */
    unsigned grad_k, grad_e;   /* SFPT_GRAD_FIXED: the widths           */
    const char *wire_if;       /* interface whose counters are read (NULL: none) */
    int help, print_options;
    uint64_t given[2];         /* bit i: option row i was on the command line */
    sfpw_opt_config opt;       /* derived from the fields above          */
} sfpt_opts;

/* How the reduce-scatter carries the gradients (--grad-container). */
enum { SFPT_GRAD_EXACT = 0, SFPT_GRAD_POLICY = 1, SFPT_GRAD_FIXED = 2 };

/* 0 ok, 1 --help / --print-options done (exit 0), -1 usage error (reported). */
int sfpt_opts_parse(int argc, char **argv, sfpt_opts *o);
/* Whether the option row `name` was on the command line. */
int sfpt_opts_given(const sfpt_opts *o, const char *name);
/* Overrides the fields of pc that were given on the command line. */
void sfpt_opts_apply_policy(const sfpt_opts *o, sfp_policy_config *pc);
void sfpt_opts_help(FILE *f);
/* One line per option: flag, argument, default, meaning (tab-separated). */
void sfpt_opts_print(FILE *f);

/* ----------------------------------------------------------------- report */

typedef struct sfpt_tensor_epoch {
    double n, e;          /* learned / controller widths at epoch end */
    double k_sum, e_sum;  /* sum of used widths over steps            */
    double bytes, values, zeros;
} sfpt_tensor_epoch;

#define SFPT_FAULT_WARM 2

typedef struct sfpt_epoch {
    int epoch;
    double t_start;             /* sfpw_now() at the epoch's start */
    double loss, train_acc, test_acc, act_bits, weight_bits, ratio, seconds;
    double test_acc_pbn;        /* with --precise-bn statistics (-1: off) */
    double step_ms;
    double cpu_ms;              /* process CPU time per training step (all threads) */
    uint64_t policy_generation; /* sfpd operator policy in force at the end (0: none) */
    double bit_cost;            /* QM/QE adaptive rule: bit cost in force at the end (%) */
    double x_bytes, x_fp32;     /* weight exchange: frame and FP32 bytes, summed over steps */
    /* summed over steps, then over ranks at the epoch's end: gradient
     * bytes sent between ranks and their FP32 size; bytes through the
     * nodes' links during the steps (--wire-if, node leaders only) */
    double g_sent, g_fp32, wire_tx, wire_rx, wire_nodes;
    double t_compute, t_quant, t_stash, t_comm, t_opt, t_publish;
    /* minor page faults of the process during the steps, summed over the
     * ranks: all steps, and the steps after the epoch's first
     * SFPT_FAULT_WARM (steady state) */
    double faults, faults_steady;
    uint64_t steps;
    int measured;
    double c_act_bits[SFPW_NCODERS], c_w_bits[SFPW_NCODERS], c_ratio[SFPW_NCODERS];
    sfpt_tensor_epoch t[SFPW_MAX_TENSORS];
} sfpt_epoch;

/* ------------------------------------------------------------- run state */

typedef struct sfpt {
    sfpt_opts o;
    int nranks;
    sfpw_model model;
    sfpw_dataset train, test;
    sfpw_net *net;
    sfpw_dist *dist;
    sfpw_stash *stash;
    sfp_policy *pol;
    sfp_params base;
    int quant, want_grad, measure;
    int max_rows, r0, rows;       /* this rank's rows of the global batch */
    uint64_t steps_per_epoch, step;
    int first_epoch, epochs_run, nrec;
    sfpt_epoch *recs;             /* o.epochs                              */
    float *full, *full2;          /* nparams: checkpoint gathers           */
    uint32_t *perm;
    unsigned char *pstate;        /* policy state image (checkpoints)      */
    size_t pstate_len;
    sfpw_ckpt ck;
    float *xb;                    /* max_rows images                       */
    uint8_t *yb;
    double *red;                  /* the step's allreduce vector           */
    sfp_width width[SFPW_MAX_TENSORS], ewidth[SFPW_MAX_TENSORS];
    double wbytes[SFPW_MAX_TENSORS];
    double wcb[SFPW_NCODERS][SFPW_MAX_TENSORS];
    sfpw_override ovr;            /* operator policy, applied by every rank */
    double gamma, qm_lr;          /* in force (gamma after --weight-cost)  */
    double bit_cost;              /* in force (after --weight-cost), %     */
    double n_min;                 /* mantissa floor in force               */
    double n_min_act;             /* activations' mantissa floor in force  */
    double n_min_act_linear;      /* ... of those only linear layers read  */
    unsigned bw_m_min, bw_e_min;  /* BitWave: network-wide floors in force */
    unsigned bw_m_min_act;        /* BitWave: activations' mantissa floor  */
    double target_bits;           /* footprint target in force (0: none)   */
    char job[160];
    int stash_codec;              /* SFPW_CODEC_RANK or _DAEMON with sfpd, else 0 */
    int node_ranks, node_cores;   /* what --stash-codec auto saw on this node */
    double retries, pieces_remote, pieces_local;
    sfp_width gwidth[SFPW_MAX_TENSORS]; /* SFPT_GRAD_FIXED               */
    int wire_leader;              /* this rank reads the node's counters   */
} sfpt;

/* train_setup.c: everything before the first step (and its undoing):
 * 0, 1 (runtime error), 2 (usage error), -1 (--print-model done). */
int sfpt_setup(sfpt *r);
void sfpt_teardown(sfpt *r);
const char *sfpt_stash_err(const sfpt *r, int rc);

/* Quantizes, encodes and all-gathers the working weights (sfpw_dist_publish)
 * at widths w (ignored unless the policy quantizes), with --weight-coder's
 * coder unless an operator policy set the coder of every frame; bytes: the
 * per-tensor frame bytes, or NULL. */
int sfpt_publish(sfpt *r, const sfp_width *w, double *bytes);

/* train_ckpt.c */
int sfpt_resume(sfpt *r);
int sfpt_save(sfpt *r, int epoch);

/* train_epoch.c: the training steps of one epoch into R. */
int sfpt_epoch_train(sfpt *r, int epoch, sfpt_epoch *R);
/* Doubles in the step's allreduce vector (r->red) for T tensors and nbuf
 * running statistics. */
size_t sfpt_red_size(int T, size_t nbuf);
void sfpt_override_apply(const sfpw_override *v, sfp_width *w, int T);

/* train_eval.c: test accuracy with conservative widths into R->test_acc. */
int sfpt_evaluate(sfpt *r, sfpt_epoch *R);

/* train_report.c */
void sfpt_report_epoch(sfpt *r, sfpt_epoch *R);
/* The run's totals, the final line and --report; 0, 3 (replicas differ
 * under --check-replicas) or 1. */
int sfpt_report_final(sfpt *r);

#endif
