/*
 * sfp/client.h - libsfpclient: the worker side of the sfpd IPC.
 *
 * A connection belongs to one job and one rank. It owns a shared-memory
 * region (a sealed memfd handed to sfpd with Hello): tensors and frames move
 * through it, only small messages go over the Unix socket.
 *
 * Every call is bounded by the connection's timeout: a dead or wedged daemon
 * yields SFPC_ETIMEDOUT or SFPC_EDISCONNECTED, never a hang. After either, the
 * connection is unusable (close it and fall back or reconnect).
 *
 * Not thread safe: use one connection per thread.
 * Errors: negative SFPC_E* codes; sfpc_strerror() names them.
 */
#ifndef SFP_CLIENT_H
#define SFP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sfp/sfp.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * X(name, value, message). Every code lies in [SFPC_ERROR_MIN,
 * SFPC_ERROR_MAX], below libsfp's range (sfp.h: SFP_ERROR_MIN..-1), so an
 * SFPC_E* value never equals an SFP_E* value of another meaning: local
 * errors are -1001..-1099, and daemon IPC Status s arrives as
 * SFPC_STATUS_BASE - s (-1101..-1119, docs/PROTOCOL.md).
 *
 * These values replaced -1..-8 and -101..-119, which overlapped SFP_E*:
 * callers that compare with the names are unaffected, stored numbers are.
 */
#define SFPC_ERROR_MAX (-1000)
#define SFPC_ERROR_MIN (-1999)
#define SFPC_STATUS_BASE (-1100)
#define SFPC_ERRORS(X)                                                        \
    X(EINVAL,        -1001, "invalid argument")                               \
    X(ENOMEM,        -1002, "out of memory")                                  \
    X(ECONNECT,      -1003, "cannot connect to sfpd")                         \
    X(ETIMEDOUT,     -1004, "sfpd did not answer in time")                    \
    X(EDISCONNECTED, -1005, "connection to sfpd lost")                        \
    X(EPROTO,        -1006, "malformed reply from sfpd")                      \
    X(ESHMSIZE,      -1007, "data does not fit the shared memory")           \
    X(ESYS,          -1008, "system call failed (see errno)")                 \
    X(EREQUEST,      -1101, "sfpd: invalid request")                          \
    X(ENOTFOUND,     -1102, "sfpd: key not found")                            \
    X(EVERSION,      -1103, "sfpd: unsupported protocol version")             \
    X(EUNKNOWN,      -1104, "sfpd: unknown request type")                     \
    X(EPERM,         -1105, "sfpd: permission denied")                        \
    X(EQUOTA,        -1106, "sfpd: job quota exceeded")                       \
    X(EDNOMEM,       -1107, "sfpd: daemon out of memory")                     \
    X(EDISKFULL,     -1108, "sfpd: spill tier full")                          \
    X(EIO,           -1109, "sfpd: spill tier I/O error")                     \
    X(ECORRUPT,      -1110, "sfpd: stored frame is corrupt")                  \
    X(ERANGE,        -1111, "sfpd: offset or size outside the shared memory") \
    X(EBUSY,         -1112, "sfpd: too many connections")                     \
    X(ESHUTDOWN,     -1113, "sfpd: shutting down")                            \
    X(ECODEC,        -1114, "sfpd: codec error")                              \
    X(ENOSHM,        -1115, "sfpd: no usable shared memory")                  \
    X(ETOOLARGE,     -1116, "sfpd: message or tensor too large")              \
    X(EHELLO,        -1117, "sfpd: Hello required")                           \
    X(EINTERNAL,     -1118, "sfpd: internal error")                           \
    X(ELOST,         -1119, "sfpd: frame lost with an unreachable peer")

enum {
    SFPC_OK = 0,
#define SFPC__ERR_ENUM(name, value, msg) SFPC_##name = value,
    SFPC_ERRORS(SFPC__ERR_ENUM)
#undef SFPC__ERR_ENUM
};

/* Message of an SFPC_E* code, or of an SFP_E* code (the ranges are
 * disjoint); never NULL. */
const char *sfpc_strerror(int err);
/* Name of an SFPC_E* code ("SFPC_ETIMEDOUT") or of an SFP_E* code
 * ("SFP_EINVAL"); "SFPC_?" if unknown. */
const char *sfpc_strerror_name(int err);
/*
 * For an error that carries a status of the daemon: that status's name in
 * the IPC protocol ("E_NOT_FOUND", docs/PROTOCOL.md); NULL for local errors.
 */
const char *sfpc_status_name(int err);

typedef struct sfpc sfpc;

typedef struct sfpc_options {
    const char *socket_path; /* NULL: $SFP_SOCKET, else /run/sfpd/sfpd.sock */
    const char *job_id;      /* required, 1..128 bytes of UTF-8 text without
                                control characters (sfp_text_check)         */
    uint32_t rank;
    size_t shm_size;         /* shared memory bytes (0: 64 MiB)             */
    int timeout_ms;          /* bound of every call (0: 30000)              */
    const char *client_name; /* shows up in the daemon's log (text, like job_id) */
} sfpc_options;

void sfpc_options_default(sfpc_options *o);

/* Connects and says Hello. On success *out is owned by the caller. */
int sfpc_connect(const sfpc_options *o, sfpc **out);
/* Closes the connection (sfpd keeps the job's data for its grace period). */
void sfpc_close(sfpc **c);

/* The shared-memory region: data placed here is never copied by the client. */
void *sfpc_shm(sfpc *c, size_t *size);
/* Last error text from the daemon (valid until the next call), or "". */
const char *sfpc_last_message(const sfpc *c);

typedef struct sfpc_key {
    uint32_t rank;
    uint64_t step;
    const char *tensor;      /* 1..255 bytes of text, like a job id */
} sfpc_key;

typedef struct sfpc_put_info {
    uint64_t stored_bytes;   /* frame size                    */
    int tier;                /* 0 DRAM, 1 a tier below it (disk, a peer, ...);
                                -1 not known yet (async) */
    uint64_t policy_generation; /* of the job's operator policy (0: none) */
} sfpc_put_info;

typedef struct sfpc_get_info {
    uint64_t count;          /* elements written              */
    uint64_t bytes;
    sfp_dtype dtype;
    int hit;                 /* frame was already in DRAM     */
} sfpc_get_info;

#define SFPC_ASYNC 1u        /* put: do not wait for the acknowledgement */
#define SFPC_GET_DROP 2u     /* get: drop the key once read               */

/*
 * Stashes count values of p->dtype. If data lies inside the shared memory it
 * is used in place, else it is copied there first. With SFPC_ASYNC (only for
 * data inside the shm) the call returns once the request is sent; the region
 * must stay untouched until sfpc_flush() or any later synchronous call
 * returns, which also reports the first asynchronous error. info may be NULL;
 * for an asynchronous put it is filled when the acknowledgement is read (at
 * the latest by sfpc_flush()) and must stay valid until then.
 */
int sfpc_put(sfpc *c, const sfpc_key *k, const void *data, size_t count,
             const sfp_params *p, unsigned flags, sfpc_put_info *info);

/* Waits for all asynchronous requests; returns the first error among them. */
int sfpc_flush(sfpc *c);

/*
 * Fetches a stash into dst (cap bytes). dst inside the shared memory is
 * written in place; elsewhere the data goes through the shm and is copied.
 */
int sfpc_get(sfpc *c, const sfpc_key *k, void *dst, size_t cap, unsigned flags,
             sfpc_get_info *info);
int sfpc_drop(sfpc *c, const sfpc_key *k);
/* Tells sfpd backward starts: keep depth stashes ahead in DRAM (0: default). */
int sfpc_prefetch(sfpc *c, unsigned depth);
/* The same; with SFPC_ASYNC it does not wait (an error shows at the next
 * sfpc_flush(), as an asynchronous put's does). */
int sfpc_prefetch_flags(sfpc *c, unsigned depth, unsigned flags);

/*
 * Corks the connection (on != 0): requests are kept in the client and
 * written together by the next call that waits for a reply (any synchronous
 * call, sfpc_wait(), sfpc_flush()) or by sfpc_cork(c, 0), which uncorks.
 * Batching a phase's asynchronous requests wakes sfpd once for all of them
 * instead of once each (a wake-up takes a core from a training rank when
 * ranks use every core). A request that passes a file descriptor is never
 * corked. 0, or an error of the write.
 */
int sfpc_cork(sfpc *c, int on);

/* Stateless codec on the daemon's pool (weight exchange). Same frames as libsfp. */
int sfpc_encode(sfpc *c, const void *src, size_t count, const sfp_params *p,
                void *dst, size_t cap, size_t *frame_len);
int sfpc_decode(sfpc *c, const void *frame, size_t len, void *dst, size_t cap,
                size_t *count);

/*
 * Frame-level stash: the caller encodes (libsfp, sfp_encode) and decodes
 * itself; sfpd verifies and stores the frame like one of its own Puts
 * (budgets, spills, prefetch and stats alike).
 *
 * sfpc_put_frame stores frame[0..len) under k: in the shm it is used in
 * place (SFPC_ASYNC allowed, as for sfpc_put), elsewhere copied there
 * first. A frame that fails sfpd's verification (header, sizes, checksum)
 * is refused with SFPC_ECODEC (nothing is stored, what was stored stays);
 * one larger than the daemon's max_tensor (bytes or decoded size) with
 * SFPC_ETOOLARGE.
 *
 * sfpc_get_frame writes the stored frame (verified by sfpd) to dst, cap
 * bytes; info->bytes is the frame's length, info->count and info->dtype
 * what it decodes to. SFPC_ERANGE if cap is smaller than the frame.
 */
int sfpc_put_frame(sfpc *c, const sfpc_key *k, const void *frame, size_t len, unsigned flags,
                   sfpc_put_info *info);
int sfpc_get_frame(sfpc *c, const sfpc_key *k, void *dst, size_t cap, unsigned flags,
                   sfpc_get_info *info);

/* An asynchronous GetFrame: filled when its reply is read. */
typedef struct sfpc_pending {
    int done;                /* 1 once the reply was read          */
    int status;              /* then 0 or the SFPC_E* of the reply */
    sfpc_get_info info;      /* on success                         */
    size_t cap;
} sfpc_pending;

/*
 * Sends a GetFrame into dst (inside the shm) and returns at once; p must
 * stay valid until sfpc_wait(p), sfpc_flush() or another call that reads
 * its reply. Replies come in request order: later synchronous calls read
 * it first. Do not touch dst before p->done.
 */
int sfpc_get_frame_async(sfpc *c, const sfpc_key *k, void *dst, size_t cap, unsigned flags,
                         sfpc_pending *p);
/* Waits for p's reply; returns p->status (or the connection's error). */
int sfpc_wait(sfpc *c, sfpc_pending *p);

/* Frees every stash of the job in sfpd. */
int sfpc_end_job(sfpc *c);

/*
 * The width policy an operator set for this job (gRPC Control.SetPolicy,
 * `sfpctl policy set`). Puts report its generation (sfpc_put_info); ask
 * when it changes. Bounds are resolved (no bound: 0..23 mantissa, 1..8
 * exponent bits); coder -1 leaves the choice to the worker.
 */
typedef struct sfpc_policy {
    uint64_t generation;     /* 0: none set */
    unsigned min_mbits, max_mbits, min_ebits, max_ebits;
    int pin;                 /* every tensor uses pin_mbits, pin_ebits */
    unsigned pin_mbits, pin_ebits;
    int coder;               /* -1 or an sfp_coder */
    int freeze;              /* stop learning the widths */
} sfpc_policy;

int sfpc_policy_get(sfpc *c, sfpc_policy *out);


typedef struct sfpc_stats {
    uint64_t dram_bytes, dram_high_water, dram_budget, disk_bytes;
    uint64_t spills, prefetch_hits, prefetch_misses, puts, gets, errors, corrupt;
    uint64_t job_bytes_in, job_bytes_stored, job_frames, job_dram_high_water;
    char *text;              /* full snapshot; free with sfpc_stats_free */
} sfpc_stats;

int sfpc_stats_get(sfpc *c, sfpc_stats *out);
void sfpc_stats_free(sfpc_stats *s);

#ifdef __cplusplus
}
#endif

#endif /* SFP_CLIENT_H */
