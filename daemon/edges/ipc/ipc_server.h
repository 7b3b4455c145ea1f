/*
 * server.h - sfpd's loop: listener, connections, request dispatch, signals,
 * systemd notification.
 */
#ifndef SFPD_SERVER_H
#define SFPD_SERVER_H

#include "base/config.h"
#include "base/stats.h"

typedef struct sfpd_server sfpd_server;

/*
 * Runs the daemon until SIGTERM/SIGINT drains it. cfg is owned by the
 * server from here on (replaced on SIGHUP); argc/argv are kept for reloads.
 * Returns the process exit code.
 */
int sfpd_server_run(sfpd_config *cfg, int argc, char **argv);

/*
 * Takes a full snapshot (counters summed over threads, gauges, tiers, jobs).
 * Loop thread only: a gRPC or HTTP thread hops onto the loop (uv_async_send)
 * and calls this there. *out is owned by the caller (sfpd_snapshot_free).
 */
int sfpd_server_snapshot(sfpd_server *srv, sfpd_snapshot **out);

/* The loop sfpd runs on (to add handles, e.g. a uv_async for gRPC events). */
struct uv_loop_s *sfpd_server_loop(sfpd_server *srv);
/* The store, for per-tensor listings and EndJob by id (loop thread only). */
struct sfpd_store *sfpd_server_store(sfpd_server *srv);
/* True once SIGTERM started draining (health: NOT_SERVING). */
int sfpd_server_draining(const sfpd_server *srv);

#endif /* SFPD_SERVER_H */
