/*
 * grpc_server.h - sfpd's gRPC API (proto/sfp/v1/sfp.proto) and the standard
 * grpc.health.v1.Health/Check, on the gRPC C core.
 *
 * Threading: one dedicated thread blocks in grpc_completion_queue_next and
 * only queues (tag, success) pairs and wakes the loop with uv_async_send.
 * Everything else - accepting calls, decoding, snapshots, every
 * grpc_call_start_batch, WatchStats timers, shutdown - runs on the libuv
 * loop thread that owns the daemon's state, so snapshots are taken exactly
 * where sfpd_server_snapshot() requires and no call state needs a lock.
 *
 * Life cycle, all on the loop thread:
 *   sfpd_grpc_start()   binds and starts serving; health is SERVING from the
 *                       moment the loop runs (the daemon is ready then).
 *   sfpd_grpc_drain()   SIGTERM: health turns NOT_SERVING at once; stats
 *                       stay available while the daemon drains its workers.
 *   sfpd_grpc_daemon_drained()
 *                       the daemon's own drain is over. Once that has
 *                       happened AND grpc_drain_grace seconds have passed
 *                       since SIGTERM, the server shuts down, cancelling open
 *                       calls (streams end with UNAVAILABLE), and closes its
 *                       loop handles so uv_run can return.
 *   sfpd_grpc_destroy() after uv_run returned: joins and frees.
 */
#ifndef SFPD_GRPC_SERVER_H
#define SFPD_GRPC_SERVER_H

#include "base/config.h"
#include "edges/ipc/ipc_server.h"

struct uv_loop_s;
struct sfpd_store;
typedef struct sfpd_grpc sfpd_grpc;

/*
 * Starts the gRPC server on cfg->grpc_listen (an empty address: *out = NULL,
 * returns 0). srv and store must outlive the server. On success *out is
 * owned by the caller (sfpd_grpc_destroy after the loop has stopped). On
 * failure (bad address, port in use) logs why, leaves nothing running and
 * returns a negative errno.
 */
int sfpd_grpc_start(struct uv_loop_s *loop, sfpd_server *srv, struct sfpd_store *store,
                    const sfpd_config *cfg, sfpd_grpc **out);

/* The port actually bound (useful with port 0), 0 for unix: or disabled. */
int sfpd_grpc_port(const sfpd_grpc *g);

/* Starts the drain described above; idempotent, NULL is a no-op. */
void sfpd_grpc_drain(sfpd_grpc *g);

/* The daemon has drained (store down); idempotent, NULL is a no-op. Also
 * valid without a prior sfpd_grpc_drain (start-up failure): shuts down. */
void sfpd_grpc_daemon_drained(sfpd_grpc *g);

/* After uv_run returned. Accepts NULL; sets *g to NULL. */
void sfpd_grpc_destroy(sfpd_grpc **g);

/* A job's policy from Control.SetPolicy, with the bounds resolved. */
typedef struct sfpd_job_policy {
    uint64_t generation;         /* 0: none set */
    uint32_t min_mbits, max_mbits, min_ebits, max_ebits;
    bool pin;
    uint32_t pin_mbits, pin_ebits;
    int coder;                   /* -1: the worker's choice, else sfp_coder */
    bool freeze;
} sfpd_job_policy;

/* Loop thread only. Fills *out (generation 0 if none, or g is NULL). */
void sfpd_grpc_job_policy(const sfpd_grpc *g, const char *job_id, sfpd_job_policy *out);


#endif /* SFPD_GRPC_SERVER_H */
