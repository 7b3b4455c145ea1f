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
    /*
     * Optional (NULL: the caller quantizes, then calls put). put of values
     * not yet on the grid: quantizes data in place to (p->mbits, p->ebits)
     * while encoding it (one pass over the values; the same frame and
     * values as sfp_quantize followed by put).
     */
    int (*put_q)(sfpw_stash *s, const sfpw_stash_key *key, float *data, size_t n,
                 const sfp_params *p, size_t *frame_bytes, sfp_qstats *stats);
    int (*get)(sfpw_stash *s, const sfpw_stash_key *key, float *dst, size_t n);
    int (*prefetch)(sfpw_stash *s, const sfpw_stash_key *key);
    int (*drop)(sfpw_stash *s, const sfpw_stash_key *key);
    const char *(*strerror)(sfpw_stash *s, int err);
    void (*close)(sfpw_stash *s);
    /*
     * Optional (NULL: nothing to do). The backward pass of key->step starts:
     * every put of the step is completed; for puts that could not report
     * their size (SFPW_STASH_DEFERRED), each tensor's frame bytes are added
     * to bytes[tensor]. Also the moment to hint a backward-order prefetch.
     */
    int (*backward)(sfpw_stash *s, const sfpw_stash_key *key, double *bytes);
    /*
     * Optional (NULL: none). bytes of memory the stash can put and get
     * without copying (e.g. its shared memory with sfpd), for the buffers
     * that hold stashed tensors; NULL when it has no room. Valid until close.
     */
    void *(*alloc)(sfpw_stash *s, size_t bytes);
    /*
     * Optional (NULL: 0). Peak bytes of memory the stash held in this
     * process so far: frames (in-process) or the shared memory it touched
     * (sfpd), for the report's memory figures.
     */
    size_t (*held_peak)(sfpw_stash *s);
    unsigned flags;
} sfpw_stash_ops;


/* flags: put returns before the tensor is encoded; it reports neither
 * frame_bytes (0) nor stats (untouched): sizes come with backward(). */
#define SFPW_STASH_DEFERRED 1u

struct sfpw_stash {
    const sfpw_stash_ops *ops;
    void *impl;
};

/* Stash errors outside the SFP_E* range. */
enum {
    SFPW_STASH_ENOKEY = -201, /* get of a key that was never put (or dropped) */
    SFPW_STASH_EDUP = -202,   /* put of a key that is already stored          */
    SFPW_STASH_ESIZE = -203,  /* get with an n that differs from the put      */
    SFPW_STASH_ERETRY = -204, /* the daemon was lost and the stash fell back
                               * to in-process: this step's stashes are gone,
                               * run the step again (same keys)             */
    SFPW_STASH_EDAEMON = -205,/* the daemon was lost and fallback is off    */
};

/* What a weight encoder (dist.h, sfpw_encode_fn) returns when the piece
 * must be encoded in-process instead: not an error. */
#define SFPW_ENCODE_IN_PROCESS 1

/* Text of a stash or libsfp error code (what every strerror falls back to). */
const char *sfpw_stash_errstr(int err);

/* In-process stash: frames in malloc'd memory. */
int sfpw_stash_local_open(sfpw_stash **out);

/*
 * A width policy an operator set for the job in sfpd (gRPC
 * Control.SetPolicy / sfpctl policy set): bounds on the widths, or pinned
 * widths, a coder, and whether the widths stop learning.
 */
typedef struct sfpw_override {
    uint64_t generation;     /* 0: none */
    unsigned min_k, max_k, min_e, max_e;
    int pin;
    unsigned pin_k, pin_e;
    int coder;               /* -1: the run's own, else an sfp_coder */
    int freeze;
} sfpw_override;

/* sfpd stash (stash_daemon.c, built when libsfpclient is). */
typedef enum sfpw_on_loss {
    SFPW_ON_LOSS_FALLBACK = 0, /* switch to the in-process stash, redo the step */
    SFPW_ON_LOSS_FAIL = 1,     /* every later call fails with EDAEMON          */
} sfpw_on_loss;

typedef struct sfpw_daemon_config {
    const char *socket_path;   /* NULL: $SFP_SOCKET, else the default socket */
    const char *job_id;        /* shared by all ranks of the run             */
    uint32_t rank;
    size_t shm_size;           /* bytes of shared memory (0: 64 MiB)         */
    int timeout_ms;            /* bound of every daemon call                 */
    sfpw_on_loss on_loss;
    void (*log)(const char *msg); /* told once when the daemon is lost       */
    int rank_codec;            /* 1: the rank encodes and decodes the frames
                                * itself (PutFrame/GetFrame; --stash-codec
                                * rank), 0: sfpd does (Put/Get)             */
} sfpw_daemon_config;

/* --stash-codec: where the stash's frames are encoded and decoded. */
enum { SFPW_CODEC_AUTO = 0, SFPW_CODEC_RANK = 1, SFPW_CODEC_DAEMON = 2 };

#ifdef SFPW_HAVE_DAEMON
int sfpw_stash_daemon_open(sfpw_stash **out, const sfpw_daemon_config *cfg);

/*
 * Weight encoding through the daemon that backs a daemon stash (the frames
 * are byte-identical to sfp_encode's). Returns 0, a libsfp error for bad
 * input, SFPW_STASH_EDAEMON if the daemon is lost and fallback is off, or
 * SFPW_ENCODE_IN_PROCESS (dist.h) when the daemon is not (or no longer)
 * usable and the caller must encode in-process.
 */
int sfpw_stash_daemon_encode(sfpw_stash *s, const float *src, size_t n,
                             const sfp_params *p, void *dst, size_t cap,
                             size_t *len);
/* 1 while the stash is backed by a live daemon. */
int sfpw_stash_daemon_alive(const sfpw_stash *s);
/* Frees the job's data in sfpd (call once per run, after every rank is done). */
int sfpw_stash_daemon_end_job(sfpw_stash *s);
/*
 * The job's operator policy in sfpd. Puts report its generation; sfpd is
 * asked for the policy itself only when that generation moved. Returns 1
 * with *out when a policy is set, 0 when none is (or the daemon is gone).
 */
int sfpw_stash_daemon_policy(sfpw_stash *s, sfpw_override *out);
#else
static inline int sfpw_stash_daemon_policy(sfpw_stash *s, sfpw_override *out)
{
    (void)s;
    (void)out;
    return 0;
}

static inline int sfpw_stash_daemon_alive(const sfpw_stash *s) { (void)s; return 0; }
static inline int sfpw_stash_daemon_end_job(sfpw_stash *s) { (void)s; return 0; }
#endif


static inline void sfpw_stash_close(sfpw_stash **s)
{
    if (s && *s) {
        (*s)->ops->close(*s);
        *s = NULL;
    }
}

#endif
