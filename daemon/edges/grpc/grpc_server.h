/*
 * grpc_server.h - sfpd's gRPC API (proto/sfp/v1/sfp.proto) and the standard
 * grpc.health.v1.Health/Check, on the gRPC C core.
 *
 * Threading: one dedicated thread blocks in grpc_completion_queue_next and
 * only queues (tag, success) pairs and wakes the loop with uv_async_send.
 * Everything else - accepting calls, decoding, snapshots, every
 * grpc_call_start_batch, WatchStats timers, shutdown - runs on the libuv
 * loop thread that owns the daemon's state, so snapshots are taken where
 * the snapshot source requires and no call state needs a lock.
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
#ifndef SFPD_EDGES_GRPC_SERVER_H
#define SFPD_EDGES_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "base/config.h"
#include "base/stats.h"
#include "core/held.h"
#include "core/policy.h"
#include "core/store.h"
#include "edges/grpc/grpc_methods.h"

struct uv_loop_s;
typedef struct sfpd_grpc sfpd_grpc;

/*
 * Starts the gRPC server on cfg->grpc_listen (an empty address: *out = NULL,
 * returns 0). store, policies and the snapshot source must outlive the
 * server; the Peer service is served when the store holds frames for peers
 * (sfpd_store_held, peering = 1). On success *out is owned by the caller
 * (sfpd_grpc_destroy after the loop has stopped). On failure (bad address,
 * port in use) logs why, leaves nothing running and returns a negative
 * errno.
 */
int sfpd_grpc_start(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_store *store,
                    sfpd_policies *policies, sfpd_snapshot_source snap, sfpd_grpc **out);

/* Starts the drain described above; idempotent, NULL is a no-op. */
void sfpd_grpc_drain(sfpd_grpc *g);

/* The daemon has drained (store down); idempotent, NULL is a no-op. Also
 * valid without a prior sfpd_grpc_drain (start-up failure): shuts down. */
void sfpd_grpc_daemon_drained(sfpd_grpc *g);

/* After uv_run returned. Accepts NULL; sets *g to NULL. */
void sfpd_grpc_destroy(sfpd_grpc **g);

/* ------------------------------------------------------------ handlers */

/* What a unary handler works with. */
typedef struct sfpd_grpc_ctx {
    sfpd_store *store;
    sfpd_policies *policies;
    sfpd_held *held;             /* frames held for peers; NULL: no Peer service */
    sfpd_snapshot_source snap;
    bool draining;               /* health NOT_SERVING */
} sfpd_grpc_ctx;

/*
 * A unary handler gets the decoded, checked request of its method and
 * returns a status: GRPC_STATUS_OK with *reply (packed, owned by the
 * caller), or another status with *msg (static text or NULL). One per
 * UNARY row of grpc_methods.h, named sfpd_grpc_do_<name> (grpc_server.c;
 * the Peer rows in grpc_peer.c).
 */
#define SFPD__UNARY_PROTO_UNARY(name)                                                          \
    grpc_status_code sfpd_grpc_do_##name(sfpd_grpc_ctx *ctx, const void *req,                 \
                                         grpc_byte_buffer **reply, const char **msg);
#define SFPD__UNARY_PROTO_STREAM(name)
#define SFPD__UNARY_PROTO(id, path, req, auth, kind, name) SFPD__UNARY_PROTO_##kind(name)
SFPD_GRPC_METHODS(SFPD__UNARY_PROTO)
#undef SFPD__UNARY_PROTO

/* For handlers: OK with m packed into *reply, or RESOURCE_EXHAUSTED. */
grpc_status_code sfpd_grpc_reply(const ProtobufCMessage *m, grpc_byte_buffer **reply, const char **msg);

/* A core status as a gRPC status. */
grpc_status_code sfpd_grpc_status_of(int core_status);

/*
 * What the server does with a unary call's request bytes once they have
 * arrived: decode and check (grpc_req.c), then the method's handler.
 * Exposed for the tests and fuzz targets, which run it without a
 * transport. Same returns as a handler.
 */
grpc_status_code sfpd_grpc_serve_unary(sfpd_grpc_ctx *ctx, sfpd_grpc_method m, const uint8_t *data,
                                       size_t len, grpc_byte_buffer **reply, const char **msg);

#endif /* SFPD_EDGES_GRPC_SERVER_H */
