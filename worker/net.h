/*
 * net.h - the forward/backward engine over a model graph (model.h) that
 * puts every stashed tensor through its container.
 *
 * Memory: the values, gradients and internal tensors of a step live in one
 * arena, planned once from their lifetimes over the step (forward in layer
 * order, the loss, backward in reverse). With a stash that encodes on put
 * (SFPW_NET_RELEASE), a stashed tensor's FP32 buffer is free from its last
 * forward use until backward gets it back; otherwise (FP32 training, or a
 * stash that reads the buffer later in place) it stays until backward.
 */
#ifndef SFPW_NET_H
#define SFPW_NET_H

#include <stdio.h>

#include <sfp/policy.h>
#include <sfp/sfp.h>

#include "model.h"
#include "stash.h"

/*
 * Frame size of n on-grid values p would produce with coder c (encoded into
 * a scratch buffer that grows as needed). For --measure-coders.
 */
int sfpw_measure_frame(const float *x, size_t n, const sfp_params *p,
                       sfp_coder c, size_t *len);

/* Settings of one forward/backward pass. */
typedef struct sfpw_pass {
    int quantize;             /* put stashed tensors on their grid        */
    int stash;                /* go through the stash (training)          */
    int want_grad;            /* compute bitlength gradients (QM/QE)      */
    const sfp_width *width;   /* per tensor (model table order)           */
    sfp_params base;          /* coder, rounding, Gecko group             */
    sfpw_stash *st;
    sfpw_stash_key key;       /* .tensor is filled per tensor             */
    size_t sample_budget;     /* values per tensor for the width gradient */
    int measure_coders;       /* also encode every stash with each coder
                                 (plain, gecko, rans) and count its size   */
    double fisher;            /* > 0: add the second-order term with the
                                 Gauss-Newton curvature fisher * g^2 (the
                                 global batch size); 0: first order only   */
    int input_grad;           /* backward also computes dL/d(image) for
                                 every row (sfpw_net_value(n, 0, 1)): tests */
} sfpw_pass;

/* What a pass measured, per tensor (stashed tensors only). */
typedef struct sfpw_pass_out {
    double gn[SFPW_MAX_TENSORS], ge[SFPW_MAX_TENSORS]; /* bitlength grads */
    double bytes[SFPW_MAX_TENSORS];   /* stored (frame) bytes            */
    double values[SFPW_MAX_TENSORS];  /* values stored                   */
    double zeros[SFPW_MAX_TENSORS];
    double loss_sum;
    uint64_t correct;
    double coder_bytes[SFPW_NCODERS][SFPW_MAX_TENSORS]; /* measure_coders */
    double t_compute, t_quant, t_stash; /* seconds                       */
} sfpw_pass_out;

typedef struct sfpw_net sfpw_net;

/* Buffers for up to max_rows images; planned for FP32 (keep) mode. */
int sfpw_net_create(sfpw_net **out, const sfpw_model *m, int max_rows);
void sfpw_net_destroy(sfpw_net **n);
/* --coder auto (stashes): forgets every tensor's coder, which the next
 * stash of each tensor chooses again (sfp-train: at every epoch's start). */
void sfpw_net_coder_reset(sfpw_net *n);

/*
 * An auto coder's pick for one stashed tensor (net.c) or one weight or
 * gradient piece (dist.c). At a check both coders are tried and the
 * smaller frame's coder is kept until the next check, which is due at the
 * first use (after a reset), at every multiple of SFPW_PICK_STEPS steps
 * (keyed to the step: a run resumed at an epoch checks as the
 * uninterrupted one) and when the widths the pick was made for (key, the
 * caller's choice) change.
 */
#define SFPW_PICK_STEPS 100

typedef struct sfpw_pick {
    unsigned char coder; /* 1 + sfp_coder; 0: none yet */
    unsigned key;        /* the widths it was picked for */
    uint64_t next;       /* step of the next check */
} sfpw_pick;

static inline int sfpw_pick_due(const sfpw_pick *pk, uint64_t step, unsigned key)
{
    return !pk->coder || step >= pk->next || pk->key != key;
}

/* The coder picked, or dflt before the first check. */
static inline sfp_coder sfpw_pick_coder(const sfpw_pick *pk, sfp_coder dflt)
{
    return pk->coder ? (sfp_coder)(pk->coder - 1) : dflt;
}

/* Records a check at step: coder until the next multiple of
 * SFPW_PICK_STEPS or a new key. */
static inline void sfpw_pick_set(sfpw_pick *pk, sfp_coder coder, uint64_t step, unsigned key)
{
    pk->coder = (unsigned char)(coder + 1);
    pk->key = key;
    pk->next = (step / SFPW_PICK_STEPS + 1) * SFPW_PICK_STEPS;
}

/*
 * Release mode: stashed tensors leave the arena between their put and get
 * (the stash must copy or encode on put). Training passes then need
 * pass->stash. Call before the first pass; SFP_ENOMEM if the new arena
 * cannot be allocated.
 */
int sfpw_net_set_release(sfpw_net *n);
/*
 * Moves the arena (keep mode) into one block from alloc(ctx, bytes), e.g. a
 * stash's shared memory so that puts and gets copy nothing. When alloc
 * returns NULL the arena stays where it is (returns 0 then, 1 when moved).
 * The block belongs to the allocator and must outlive the net's use of it.
 */
int sfpw_net_place(sfpw_net *n, void *(*alloc)(void *ctx, size_t bytes), void *ctx);
/* Bytes of the arena in keep and release mode, and of FP32 stashed
 * tensors of one step (rows = max_rows). */
void sfpw_net_sizes(const sfpw_net *n, size_t *keep, size_t *release,
                    size_t *stashed);

/* Bytes of the arena in use now. */
size_t sfpw_net_arena_bytes(const sfpw_net *n);

/* Working (quantized) weights [nparams], gradients [nparams], running
 * statistics [nbuffers] (NULL when the model has none). */
float *sfpw_net_weights(sfpw_net *n);
float *sfpw_net_grads(sfpw_net *n);
float *sfpw_net_buffers(sfpw_net *n);

/*
 * Forward over rows images x[rows, in_dim] with labels y (training mode:
 * batch statistics). Accumulates the summed loss and correct count into
 * out. With pass->stash, stashed tensors are put under pass->key.
 * loss_scale: dlogits multiplier (1 / global batch).
 */
int sfpw_net_forward(sfpw_net *n, const sfpw_pass *pass, const float *x,
                     const uint8_t *y, int rows, float loss_scale,
                     sfpw_pass_out *out);
/*
 * Backward of the last forward: zeroes and fills the gradients, gets and
 * drops the stashed tensors, accumulates the bitlength gradients.
 */
int sfpw_net_backward(sfpw_net *n, const sfpw_pass *pass, int rows,
                      sfpw_pass_out *out);
/* Forward only (evaluation: running statistics): adds correct predictions
 * to *correct. */
int sfpw_net_eval(sfpw_net *n, const sfpw_pass *pass, const float *x,
                  const uint8_t *y, int rows, uint64_t *correct);
/* Forward only, training mode, no stash: the logits (rows x classes) stay
 * readable through sfpw_net_value until the next pass; updates the running
 * statistics. For tests and for recomputing the statistics (precise BN). */
int sfpw_net_run(sfpw_net *n, const sfpw_pass *pass, const float *x, int rows);
/* The weight of a batch in the running statistics' update, in (0, 1]
 * (1/(k+1) for the k-th batch from 0 gives their equal average); 0 restores
 * each layer's own (BatchNorm: 0.1). */
void sfpw_net_set_momentum(sfpw_net *n, float momentum);
/* The buffer of value v after a forward (keep mode), or its gradient after
 * a backward (grad = 1; NULL when not kept). For tests. */
float *sfpw_net_value(sfpw_net *n, int v, int grad);

/* Time spent in each layer kind's forward and backward since the net was
 * created (the relu of act=relu included), one line per kind. */
void sfpw_net_profile(const sfpw_net *n, FILE *f);

double sfpw_now(void);
/* CPU time of the process (all threads), seconds */
double sfpw_cpu_now(void);

#endif
