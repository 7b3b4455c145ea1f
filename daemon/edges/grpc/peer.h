/*
 * peer.h - the network tier (docs/DAEMON.md "Network tier").
 *
 * Two halves, both over the sfp.v1.Peer gRPC service (proto/sfp/v1):
 *  - grpc_peer.c serves Peer on the daemon's gRPC server when the option
 *    peering is 1: it holds frames of other daemons in its own memory, up
 *    to peer_serve_max_bytes per client node. Loop thread only; the gRPC
 *    server (grpc_server.c) calls it through the hooks below.
 *  - tier_peer.c is a lower tier (tier.h) that places frames on the
 *    daemons listed in peers. Its blocking gRPC client calls run only in
 *    the tier's pool-thread operations (write/read/kill), each with a
 *    deadline of peer_timeout, so the libuv loop never waits for a peer.
 *
 * Authentication: every Peer call carries the metadata SFPD_PEER_TOKEN_MD
 * with the shared secret read from peer_token_file; the server compares it
 * in constant time and answers UNAUTHENTICATED before reading the message.
 */
#ifndef SFPD_PEER_H
#define SFPD_PEER_H

#include "base/config.h"
#include "base/stats.h"
#include "core/tier.h"

#include <grpc/grpc.h>

#define SFPD_PEER_TOKEN_MD "sfp-peer-token"
/* Largest frame placed on a peer; larger ones go to the next tier. */
#define SFPD_PEER_MAX_FRAME (UINT64_C(64) << 20)
/* gRPC message limit that fits one frame and its envelope. */
#define SFPD_PEER_MAX_MESSAGE ((int)(SFPD_PEER_MAX_FRAME + 64 * 1024))
#define SFPD_PEER_NODE_MAX 255u

/* ------------------------------------------------------- serving side */

typedef struct sfpd_peer_srv sfpd_peer_srv;

/* *out = NULL and 0 when cfg->peering is 0. -errno (logged) on a bad
 * configuration, e.g. peering without a usable peer_token_file. */
int sfpd_peer_srv_create(const sfpd_config *cfg, sfpd_peer_srv **out);
void sfpd_peer_srv_destroy(sfpd_peer_srv **p);
/* Index of a Peer method path, or -1. */
int sfpd_peer_method(grpc_slice method);
/* Whether the initial metadata carries the right token (constant time). */
bool sfpd_peer_authorized(const sfpd_peer_srv *p, const grpc_metadata_array *md);
/* Serves one request (req not consumed). Sets the status, a static detail
 * (or NULL) and the reply (owned by the caller, NULL on error). */
void sfpd_peer_handle(sfpd_peer_srv *p, int method, grpc_byte_buffer *req,
                      grpc_status_code *code, const char **msg, grpc_byte_buffer **resp);
/* Adds the serving side's per-client stats to s (loop thread; no-op when
 * no Peer service runs in this process). 0 or -ENOMEM. */
int sfpd_peer_srv_fill_snapshot(sfpd_snapshot *s);
/* Points m's peers and peer_clients at arrays built from s (they borrow
 * s's strings); returns what sfpd_peer_stats_free releases after packing. */
struct Sfp__V1__StatsSnapshot;
void *sfpd_peer_stats_fill(const sfpd_snapshot *s, struct Sfp__V1__StatsSnapshot *m);
void sfpd_peer_stats_free(void *pk);

/* ---------------------------------------------------------- tier side */

/* Network tier over cfg->peers (must not be empty). */
int sfpd_tier_peer_create(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_tier **out);
/* Per-peer client stats into s->peers. 0 or -ENOMEM. */
int sfpd_tier_peer_fill_snapshot(const sfpd_tier *t, sfpd_snapshot *s);

#endif /* SFPD_PEER_H */
