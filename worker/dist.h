/*
 * dist.h - data parallelism over MPI with a sharded optimizer.
 *
 * The flat parameter vector is cut into one contiguous shard per rank.
 * Per step: gradients are reduce-scattered (FP32 sum), each rank updates its
 * shard of the FP32 master weights and optimizer state, quantizes the shard
 * (one frame per tensor piece, anchored at the whole tensor's largest
 * exponent so the result does not depend on the number of ranks), and the
 * frames are exchanged with MPI_Allgatherv; every rank decodes the same
 * frames, so all ranks hold bit-identical working weights.
 */
#ifndef SFPW_DIST_H
#define SFPW_DIST_H

#include <mpi.h>

#include <sfp/policy.h>
#include <sfp/sfp.h>

#include "net.h"

typedef struct sfpw_dist sfpw_dist;

int sfpw_dist_create(sfpw_dist **out, MPI_Comm comm, const sfpw_model *m);
void sfpw_dist_destroy(sfpw_dist **d);

int sfpw_dist_size(const sfpw_dist *d);

/* Sets the master shard from a full parameter vector and zeroes the state. */
void sfpw_dist_set_master(sfpw_dist *d, const float *full);
/* Sets the optimizer state shards from full vectors (NULL: zero). */
void sfpw_dist_set_state(sfpw_dist *d, const float *s1, const float *s2);

/* Sum-reduce-scatters the full gradient G into this rank's shard. */
int sfpw_dist_reduce_grads(sfpw_dist *d, const float *G);

/*
 * The same in gradient containers: every piece of G that another rank owns
 * (one per tensor piece of that rank's shard) is added to this rank's
 * error-feedback residual, quantized and encoded with width[tensor] (the
 * piece's own anchor, base's coder and rounding), and the frames are
 * exchanged with MPI_Alltoallv; the residual keeps what the frame lost, so
 * it is sent in later steps. The owner decodes the frames and sums the
 * contributions in FP32 in rank order (its own exact), so the result is the
 * same on every transport. width NULL or a single rank: the exact FP32
 * reduce-scatter.
 */
int sfpw_dist_reduce_grads_q(sfpw_dist *d, const float *G,
                             const sfp_width *width, const sfp_params *base);

/* What the last reduce-scatter sent from this rank: sent = bytes to the
 * other ranks (frames and their 8-byte length prefixes; FP32 for the exact
 * one), fp32 = the same values as FP32, pieces = frames sent. */
typedef struct sfpw_grad_exchange {
    double sent, fp32;
    unsigned pieces;
    unsigned checks; /* pieces encoded with both coders (auto coder) */
} sfpw_grad_exchange;
void sfpw_dist_last_grad_exchange(const sfpw_dist *d, sfpw_grad_exchange *x);

/*
 * Adds this rank's share of the weight bitlength gradients (tensor-indexed)
 * for the widths that produced the current working weights; estimated on
 * up to `budget` values per tensor piece; fisher > 0 adds the second-order
 * term with curvature fisher * g^2 (see model.h). Call after reduce_grads
 * and before update.
 */
int sfpw_dist_weight_grads(sfpw_dist *d, const sfp_width *width,
                           const sfp_params *base, double *gn, double *ge,
                           uint64_t seed, uint64_t step, size_t budget,
                           double fisher);

/* Optimizer step on the shard (t: 1-based step count). */
void sfpw_dist_update(sfpw_dist *d, const sfpw_opt_config *c, uint64_t t);

/*
 * Publishes the master weights into W (full vector on every rank): width ==
 * NULL sends raw FP32; otherwise every tensor piece is quantized and encoded
 * with its width and the frames are all-gathered and decoded. On success
 * bytes[t] (tensor-indexed, may be NULL) is the size of tensor t's frames,
 * summed over its pieces.
 */
/*
 * The step the next publishes are for, which decides when the weight pieces
 * of an SFP_CODER_AUTO base try both coders again (every 100 steps, on a
 * width change); fresh: try them at the next publish (an epoch's last step,
 * a start or a resume).
 */
void sfpw_dist_coder_step(sfpw_dist *d, uint64_t step, int fresh);

int sfpw_dist_publish(sfpw_dist *d, const sfp_width *width,
                      const sfp_params *base, float *W, double *bytes);

/*
 * Where this rank's weight frames are encoded. fn returns 0 with the frame
 * in dst (*len bytes; it must be byte-identical to sfp_encode's),
 * SFPW_ENCODE_IN_PROCESS to have the piece encoded in-process, or a
 * negative error that fails the publish. Default (fn NULL): in-process.
 * (SFPW_ENCODE_IN_PROCESS: stash.h.)
 */
typedef int (*sfpw_encode_fn)(void *ctx, const float *src, size_t n,
                              const sfp_params *p, void *dst, size_t cap,
                              size_t *len);
void sfpw_dist_set_encoder(sfpw_dist *d, sfpw_encode_fn fn, void *ctx);

/* What the last publish moved: exchanged = frame bytes all-gathered (every
 * rank's pieces, length prefixes included), fp32 = the same weights as FP32;
 * remote = pieces of this rank encoded by the encoder above (not in-process). */
typedef struct sfpw_exchange {
    double exchanged, fp32;
    unsigned remote, local;
    unsigned checks; /* my pieces encoded with both coders (auto coder) */
} sfpw_exchange;
void sfpw_dist_last_exchange(const sfpw_dist *d, sfpw_exchange *x);

/* Gathers the full master weights / optimizer state on rank 0 (full may be
 * NULL elsewhere). which: 0 master, 1 s1, 2 s2. */
int sfpw_dist_gather(sfpw_dist *d, int which, float *full);
/* This rank's error-feedback residual of the gradient containers (nparams
 * values; NULL before the first exchange in containers): checkpoints. */
const float *sfpw_dist_residual(const sfpw_dist *d);
/* Sets it (--resume); 0 or SFP_ENOMEM. */
int sfpw_dist_set_residual(sfpw_dist *d, const float *resid);

/*
 * Measurement: with on, every publish also encodes each weight piece with
 * every coder; sfpw_dist_coder_bytes() then gives [SFPW_NCODERS][
 * SFPW_MAX_TENSORS] frame bytes of the last publish, summed over ranks
 * (collective).
 */
void sfpw_dist_measure_coders(sfpw_dist *d, int on);
/* on: each weight tensor of at most 4 exponent bits is anchored where the
 * modelled squared error of its values is smallest, up to 3 binades below
 * its largest magnitude (values above saturate); off (default): at the
 * largest magnitude. */
void sfpw_dist_anchor_by_error(sfpw_dist *d, int on);
int sfpw_dist_coder_bytes(sfpw_dist *d, double *out);

int sfpw_dist_allreduce_sum(sfpw_dist *d, double *v, int n);

/* 1 if W is bit-identical on every rank, 0 if not; *hash gets W's hash. */
int sfpw_dist_check_identical(sfpw_dist *d, const float *W, size_t n,
                              uint64_t *hash);

uint64_t sfpw_hash(const void *data, size_t len);

#endif
