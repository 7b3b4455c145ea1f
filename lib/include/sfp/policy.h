/*
 * policy.h - width policies: which container (k mantissa bits, e exponent
 * bits) each tensor gets at each training step.
 *
 *  - fp32:    no quantization; every tensor reports (23, 8).
 *  - qm/qmqe: Quantum Mantissa / Quantum Exponent. Every tensor t owns a
 *             learnable fractional mantissa width n_t (and, for qmqe, an
 *             exponent width e_t). Each step the container width is drawn
 *             once per tensor: floor(n) + Bernoulli(n - floor(n)), so the
 *             expected stored width is n exactly. The widths descend along
 *               dL/dn_t = sum_i g_i (Q(x_i, hi) - Q(x_i, lo)) + gamma * lambda_t
 *             where g_i = dL/dx^_i, (lo, hi) is the bracket returned by
 *             sfp_policy_choose() and lambda_t = |t| / sum_u |u| weights the
 *             regularizer by footprint (method-spec §4). Two rules move them
 *             (docs/TRAINING.md has the equations):
 *             SFP_QM_RULE_ADAPTIVE (default): gamma = bit_cost % of the loss
 *             (EMA), so the knob is a relative loss per bit of footprint and
 *             means the same on every model; the widths start from a
 *             calibration (the first steps sweep the gradient brackets and
 *             solve each tensor's balance) and move by Adam, so every tensor
 *             moves at the same pace in bits per step whatever the scale of
 *             its gradient;
 *             SFP_QM_RULE_SGD: a fixed gamma (loss per bit), plain SGD with a
 *             per-step clip, warm-up with gamma 0 (method-spec §4.5).
 *  - bitwave: one network-wide (k, e), moved by a controller that watches
 *             the training loss (method-spec §5.2).
 *
 * The caller computes the bitlength gradients (it owns the tensors); the
 * policy only keeps state. Pure C: no I/O, no threads, no global state.
 * Every decision is a pure function of (config seed, step, tensor, state), so
 * ranks that feed the same gradients and losses make the same choices.
 * Functions return 0 or a negative SFP_E* code (sfp.h).
 */
#ifndef SFP_POLICY_H
#define SFP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <sfp/sfp.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sfp_policy_kind {
    SFP_POLICY_FP32 = 0,
    SFP_POLICY_QM = 1,      /* learned mantissa widths, exponent fixed      */
    SFP_POLICY_QMQE = 2,    /* learned mantissa and exponent widths         */
    SFP_POLICY_BITWAVE = 3, /* loss-driven network-wide widths              */
} sfp_policy_kind;

/* Name ("fp32", "qm", "qmqe", "bitwave") of a kind; "?" if unknown. */
SFP_API const char *sfp_policy_kind_name(sfp_policy_kind kind);
/* Parses a kind name; returns 0 and writes *kind, or SFP_EINVAL. */
SFP_API int sfp_policy_kind_parse(const char *name, sfp_policy_kind *kind);

/*
 * Widths of one tensor for one step. k/e are the container to use; the
 * brackets (k_lo < k_hi, e_lo < e_hi, both inside the bounds) are the two
 * neighbouring widths whose difference defines the bitlength gradient.
 */
typedef struct sfp_width {
    unsigned k, e;
    unsigned k_lo, k_hi;
    unsigned e_lo, e_hi;
} sfp_width;

/* ------------------------------------------------------ Quantum Mantissa */

typedef enum sfp_qm_rule {
    SFP_QM_RULE_ADAPTIVE = 0, /* calibrated start, loss-relative cost, Adam */
    SFP_QM_RULE_SGD = 1,      /* fixed gamma, clipped SGD (method-spec §4.5) */
} sfp_qm_rule;

/* Name ("adaptive", "sgd") of a rule; "?" if unknown. */
SFP_API const char *sfp_qm_rule_name(sfp_qm_rule rule);
/* Parses a rule name; returns 0 and writes *rule, or SFP_EINVAL. */
SFP_API int sfp_qm_rule_parse(const char *name, sfp_qm_rule *rule);

typedef struct sfp_qm_config {
    double n_init, n_min, n_max; /* mantissa width: start and bounds (0..23) */
    double e_init, e_min, e_max; /* exponent width: start and bounds (1..8)  */
    sfp_qm_rule rule;
    /* SGD rule */
    double lr;        /* learning rate of the widths (bits per unit grad)     */
    double max_step;  /* largest change of a width in one step (bits), both
                         rules                                                */
    double gamma;     /* regularizer strength (loss per bit per value)        */
    uint64_t warmup;  /* steps during which gamma is 0                        */
    /* adaptive rule */
    double bit_cost;  /* percent of the loss that one bit per value of
                         footprint is worth: gamma = bit_cost / 100 * loss
                         EMA                                                  */
    double step;      /* Adam step size (bits per step)                       */
    double beta1, beta2;  /* Adam moment decays                               */
    double loss_beta; /* decay of the loss EMA                                */
    uint64_t calib_steps; /* calibration steps; 0: 2 sweeps of the brackets   */
    double target_bits;   /* > 0: move the bit cost so that the stored bits
                             per value fed to sfp_policy_observe_bits() meet
                             this target; 0: the bit cost stays fixed         */
    double bit_cost_min, bit_cost_max; /* bounds of the moving bit cost (%)  */
    double target_gain;   /* ln(bit cost) moves by gain * (bits / target - 1)
                             per step                                         */
    int calib_target;     /* 1: the end of the calibration solves for the bit
                             cost at which the calibrated widths meet
                             target_bits (from the bits measured during the
                             calibration); 0: the calibration balances at
                             bit_cost and only the controller moves it      */
    int learn_e;      /* 0: QM (e stays e_init), 1: QM+QE                     */
} sfp_qm_config;

/* Defaults measured on Fashion-MNIST (docs/RESULTS.md). */
SFP_API void sfp_qm_config_default(sfp_qm_config *c, int learn_e);

/*
 * Resolves a fractional width w in [lo, hi] (lo < hi integers) with the
 * uniform draw u in [0, 1): returns floor(w) + (u < w - floor(w)) in *out and
 * the gradient bracket in *blo and *bhi (floor, floor+1; at the upper bound
 * hi-1, hi). Returns SFP_EINVAL on bad bounds or a non-finite w.
 */
SFP_API int sfp_qm_sample(double w, unsigned lo, unsigned hi, double u,
                          unsigned *out, unsigned *blo, unsigned *bhi);

/* ------------------------------------------------------------- BitWave */

typedef struct sfp_bitwave_config {
    unsigned m_init, m_min, m_max; /* mantissa bits                          */
    unsigned e_init, e_min, e_max; /* exponent bits (e_min == e_max: BitChop) */
    double beta;      /* loss EMA factor                                    */
    double tau;       /* relative threshold                                 */
    unsigned period;  /* decide every `period` steps                        */
    uint64_t warmup;  /* steps before the first decision                    */
} sfp_bitwave_config;

SFP_API void sfp_bitwave_config_default(sfp_bitwave_config *c);

#define SFP_BITWAVE_HISTORY 64

/* Controller state; treat as read-only outside sfp_bitwave_*. */
typedef struct sfp_bitwave {
    sfp_bitwave_config cfg;
    unsigned m, e;       /* current widths                                 */
    double avg;          /* loss EMA (valid if have_avg)                   */
    int have_avg;
    double win_sum;      /* sum of losses since the last decision          */
    unsigned win_n;
    unsigned hist_n;     /* decrements remembered (stack, 'm' or 'e')      */
    char hist[SFP_BITWAVE_HISTORY];
    uint64_t decisions_down, decisions_up;
} sfp_bitwave;

/* Initialises bw from c; SFP_EINVAL on inconsistent bounds. */
SFP_API int sfp_bitwave_init(sfp_bitwave *bw, const sfp_bitwave_config *c);
/*
 * Feeds the loss of step `step` (steps start at 0). Returns 0, or
 * SFP_EINVAL for a non-finite loss (state unchanged).
 */
SFP_API int sfp_bitwave_observe(sfp_bitwave *bw, uint64_t step, double loss);
/* Forgets the loss average (call on a learning-rate schedule step). */
SFP_API void sfp_bitwave_reset_average(sfp_bitwave *bw);

/* ------------------------------------------------------ unified policy */

typedef struct sfp_policy_config {
    sfp_policy_kind kind;
    uint64_t seed;          /* stream of the per-step width draws          */
    sfp_qm_config qm;       /* used by SFP_POLICY_QM and SFP_POLICY_QMQE   */
    sfp_bitwave_config bw;  /* used by SFP_POLICY_BITWAVE                  */
} sfp_policy_config;

SFP_API void sfp_policy_config_default(sfp_policy_config *c,
                                       sfp_policy_kind kind);

typedef struct sfp_policy sfp_policy;

/*
 * Creates a policy over ntensors tensors; numel[t] is the element count of
 * tensor t per step (it weights the regularizer). numel is copied.
 * On success *out owns a new policy; on failure *out is untouched.
 */
SFP_API int sfp_policy_create(sfp_policy **out, const sfp_policy_config *c,
                              size_t ntensors, const uint64_t *numel);
/* Frees *p (NULL allowed) and sets it to NULL. */
SFP_API void sfp_policy_destroy(sfp_policy **p);

SFP_API sfp_policy_kind sfp_policy_kind_of(const sfp_policy *p);
SFP_API size_t sfp_policy_ntensors(const sfp_policy *p);

/* Whether the policy consumes bitlength gradients (qm, qmqe). */
SFP_API int sfp_policy_wants_gradients(const sfp_policy *p);

/*
 * Widths of every tensor for step `step`: writes out[0..ntensors). Does not
 * change the state, so calling it twice for one step gives the same answer.
 */
SFP_API int sfp_policy_choose(const sfp_policy *p, uint64_t step,
                              sfp_width *out);

/*
 * Ends step `step`: loss is the (global) minibatch loss; grad_n/grad_e are
 * the task bitlength gradients sum_i g_i (Q(x_i,hi) - Q(x_i,lo)) per tensor
 * for the brackets that sfp_policy_choose() returned (ignored, and may be
 * NULL, for fp32/bitwave; grad_e may be NULL for qm). The regularizer is
 * added here. SFP_EINVAL on non-finite inputs (state unchanged).
 */
SFP_API int sfp_policy_update(sfp_policy *p, uint64_t step, double loss,
                              const double *grad_n, const double *grad_e);

/*
 * QM/QE: raises the lower bounds of tensor t's widths to n_min / e_min
 * (within the config's bounds; a width below them is raised). Call before
 * the first update. BitWave: tensor t keeps at least n_min mantissa and
 * e_min exponent bits (whole numbers within m_min..m_max, e_min..e_max)
 * while the controller's network-wide widths go lower. SFP_EINVAL for fp32
 * or bounds outside the config.
 */
SFP_API int sfp_policy_set_floor(sfp_policy *p, size_t t, double n_min,
                                 double e_min);

/*
 * Current (continuous) widths of tensor t: the learned n/e for qm/qmqe, the
 * controller's (m, e) for bitwave (or the tensor's floors if higher), (23, 8)
 * for fp32.
 */
SFP_API int sfp_policy_get(const sfp_policy *p, size_t t, double *n,
                           double *e);

/*
 * Adaptive QM/QE rule: 1 once the calibration has set the widths, 0 while it
 * runs; -1 for other kinds and rules.
 */
SFP_API int sfp_policy_calibrated(const sfp_policy *p);

/*
 * Adaptive QM/QE rule with a footprint target (target_bits > 0): bits is
 * the stored bits per value of step `step`, measured from the real frames
 * (every stash and weight frame of the step, headers included); call it
 * before sfp_policy_update() of that step. After the calibration, an
 * average of these (over ~20 steps) steers the bit cost: up while the
 * footprint is above the target, down while below, within [bit_cost_min,
 * bit_cost_max]. No effect for other kinds and rules or without a target.
 * SFP_EINVAL for a non-finite or negative bits (state unchanged).
 */
SFP_API int sfp_policy_observe_bits(sfp_policy *p, uint64_t step, double bits);

/* The bit cost in force (%): the config's, or the moving one with a target;
 * 0 for other kinds and rules. */
SFP_API double sfp_policy_bit_cost(const sfp_policy *p);

/* Footprint-weighted mean of n + e over the tensors (R of method-spec §4.5). */
SFP_API double sfp_policy_regularizer(const sfp_policy *p);

/* The BitWave controller of a bitwave policy, NULL otherwise. */
SFP_API const sfp_bitwave *sfp_policy_bitwave(const sfp_policy *p);

/*
 * Checkpointing: a versioned, little-endian byte image of the mutable state.
 * sfp_policy_state_size() gives the exact size; save fails with SFP_ENOSPC
 * if cap is smaller; load validates kind, tensor count and ranges
 * (SFP_EHEADER/SFP_ETRUNC) and leaves p unchanged on failure.
 */
SFP_API size_t sfp_policy_state_size(const sfp_policy *p);
SFP_API int sfp_policy_state_save(const sfp_policy *p, void *buf, size_t cap);
SFP_API int sfp_policy_state_load(sfp_policy *p, const void *buf, size_t len);

/* Uniform double in [0,1), a pure function of (seed, a, b). */
SFP_API double sfp_policy_uniform(uint64_t seed, uint64_t a, uint64_t b);

#ifdef __cplusplus
}
#endif

#endif /* SFP_POLICY_H */
