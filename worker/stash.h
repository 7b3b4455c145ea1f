/*
 * stash.h - where activations saved for the backward pass live.
 *
 * sfp-train talks to its stash only through this table of functions. The
 * in-process implementation (stash_local.c) encodes each tensor into a
 * libsfp frame on put and decodes it on get; the sfpd client implements the
 * same table over the Unix socket (offload issue). Keys are unique per rank
 * and step; a key is put once, got at most once and then dropped.
 *
 * Contract of every implementation:
 *  - put: data holds n FP32 values that already lie on the (p->mbits,
 *    p->ebits) grid; the stash copies or encodes them before returning (or
 *    before the next call that touches the same key), so the caller may
 *    reuse data. p == NULL stores raw FP32 (fp32 policy). On success
 *    *frame_bytes (may be NULL) is the stored size in bytes: the real frame
 *    size, which is what footprint figures count, and *stats (may be NULL;
 *    not written for raw puts) what the encoder saw (zeros, anchor).
 *  - get: writes exactly n values (n must match the put) into dst.
 *  - prefetch: a hint that key will be got soon; never fails the step.
 *  - drop: forgets key; dropping an unknown key is not an error.
 *  - close: frees everything; NULL allowed.
 * All return 0 or a negative code; errors are described by strerror.
 */
#ifndef SFPW_STASH_H
#define SFPW_STASH_H

#include <stddef.h>
#include <stdint.h>

#include <sfp/sfp.h>

typedef struct sfpw_stash_key {
    uint32_t job;    /* job id (0 in-process)           */
    uint32_t rank;   /* MPI rank                         */
    uint64_t step;   /* global training step             */
    uint32_t tensor; /* tensor id in the model's table   */
} sfpw_stash_key;

typedef struct sfpw_stash sfpw_stash;

typedef struct sfpw_stash_ops {
    const char *name;
    int (*put)(sfpw_stash *s, const sfpw_stash_key *key, const float *data,
               size_t n, const sfp_params *p, size_t *frame_bytes,
               sfp_qstats *stats);
    int (*get)(sfpw_stash *s, const sfpw_stash_key *key, float *dst, size_t n);
    int (*prefetch)(sfpw_stash *s, const sfpw_stash_key *key);
    int (*drop)(sfpw_stash *s, const sfpw_stash_key *key);
    const char *(*strerror)(sfpw_stash *s, int err);
    void (*close)(sfpw_stash *s);
} sfpw_stash_ops;

struct sfpw_stash {
    const sfpw_stash_ops *ops;
    void *impl;
};

/* Stash errors outside the SFP_E* range. */
enum {
    SFPW_STASH_ENOKEY = -201, /* get of a key that was never put (or dropped) */
    SFPW_STASH_EDUP = -202,   /* put of a key that is already stored          */
    SFPW_STASH_ESIZE = -203,  /* get with an n that differs from the put      */
};

/* In-process stash: frames in malloc'd memory. */
int sfpw_stash_local_open(sfpw_stash **out);

static inline void sfpw_stash_close(sfpw_stash **s)
{
    if (s && *s) {
        (*s)->ops->close(*s);
        *s = NULL;
    }
}

#endif
