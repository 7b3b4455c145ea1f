/*
 * ipc_server.h - the worker edge of sfpd: the Unix socket, its connections
 * and the dispatch of IPC requests (docs/PROTOCOL.md) to the core.
 *
 * Loop thread only. Each connection processes one request at a time (in
 * order; clients may pipeline) and connections proceed concurrently.
 *
 * Life cycle: start (binds and listens) -> drain (stops accepting, lets the
 * requests in flight finish, closes the connections, calls back once none is
 * left) -> close (after the drain's callback: closes the server's loop
 * handles) -> destroy (after uv_run returned).
 */
#ifndef SFPD_EDGES_IPC_SERVER_H
#define SFPD_EDGES_IPC_SERVER_H

#include <stdint.h>

#include "base/config.h"
#include "base/stats.h"
#include "core/policy.h"
#include "core/store.h"

struct uv_loop_s;
typedef struct sfpd_ipc_server sfpd_ipc_server;

/*
 * Binds and listens on cfg->socket. cfg (read live: limits and allow lists
 * change on reload), store, policies and the snapshot source must outlive
 * the server. On failure logs why and returns a negative errno.
 */
int sfpd_ipc_server_start(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_store *store,
                          const sfpd_policies *policies, sfpd_snapshot_source snap,
                          sfpd_ipc_server **out);

/* Connections open and requests in flight (Encode/Decode on the pool). */
void sfpd_ipc_server_counts(const sfpd_ipc_server *s, uint32_t *conns, uint32_t *inflight);

/* Adds the edge's part of a snapshot: connections, requests in flight and
 * the names of the IPC status codes that label errors_by_status. */
void sfpd_ipc_server_fill_snapshot(const sfpd_ipc_server *s, sfpd_snapshot *snap);

/*
 * Starts the drain (idempotent): no new connections (the socket file goes),
 * every connection finishes its request in flight and is closed; after
 * 10 s the stragglers are closed. done(arg) runs once, when no connection
 * and no request of the server is left (possibly before this returns).
 */
void sfpd_ipc_server_drain(sfpd_ipc_server *s, void (*done)(void *), void *arg);

/* After the drain's callback: closes the server's loop handles. */
void sfpd_ipc_server_close(sfpd_ipc_server *s);

/* After uv_run returned. Accepts NULL; sets *s to NULL. */
void sfpd_ipc_server_destroy(sfpd_ipc_server **s);

#endif /* SFPD_EDGES_IPC_SERVER_H */
