/*
 * held.h - frames this daemon holds for other daemons (the serving side of
 * the network tier, docs/DAEMON.md "Network tier"), and the limits of the
 * sfp.v1.Peer protocol both sides share.
 */
#ifndef SFPD_CORE_HELD_H
#define SFPD_CORE_HELD_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Metadata key of the shared secret on every Peer call. */
#define SFPD_PEER_TOKEN_MD "sfp-peer-token"
/* Largest frame placed on a peer; larger ones go to the next tier. */
#define SFPD_PEER_MAX_FRAME (UINT64_C(64) << 20)
/* gRPC message limit that fits one frame and its envelope. */
#define SFPD_PEER_MAX_MESSAGE ((int)(SFPD_PEER_MAX_FRAME + 64 * 1024))
/* A client node's name: 1..255 printable ASCII bytes without '"' or '\'
 * (it goes into logs and metric labels). */
#define SFPD_PEER_NODE_MAX 255u

static inline bool sfpd_peer_node_ok(const char *s)
{
    size_t l = s ? strlen(s) : 0;
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return l > 0 && l <= SFPD_PEER_NODE_MAX;
}

/* ------------------------------------------------------------ the store */

/*
 * The frames of each client node live in this daemon's memory, in a hash
 * table per node keyed by the client's frame id. Budgets: at most
 * peer_serve_max_bytes per node, peer_serve_budget for all nodes together
 * (0: no total bound beyond the per-node one) and SFPD_HELD_MAX_NODES
 * nodes. Frames must pass sfp_frame_verify on the way in and again on the
 * way out. A node names itself with a random instance at each start: a new
 * instance of a known node replaces the old one, whose frames are dropped
 * (frames on peers are never re-adopted by a restarted client). Every
 * call of a node renews its lease; the frames of a node that makes no call
 * for peer_lease seconds are dropped (sfpd_held_sweep). Loop thread only.
 * Every call returns 0 or a negative SFPD_E_* (core/status.h).
 */

struct sfpd_config;
struct sfpd_snapshot;
typedef struct sfpd_held sfpd_held;

#define SFPD_HELD_MAX_NODES 64u

/* *out = NULL and 0 when cfg->peering is 0. */
int sfpd_held_create(const struct sfpd_config *cfg, sfpd_held **out);
/* Live options (peer_serve_budget, peer_lease). Accepts NULL. */
void sfpd_held_configure(sfpd_held *h, const struct sfpd_config *cfg);
/* Drops the frames of every node whose lease has run out. Accepts NULL. */
void sfpd_held_sweep(sfpd_held *h, uint64_t now_ns);
/* Accepts NULL; sets *h to NULL. */
void sfpd_held_destroy(sfpd_held **h);

/* What a client may still place here, and what it holds (for replies). */
typedef struct sfpd_held_room {
    uint64_t free_bytes, held_bytes, held_frames, limit_bytes;
    double lease_seconds;
} sfpd_held_room;

/*
 * Keeps a copy of frame[0..len) as frame id of (node, instance); a frame
 * id used again replaces the old frame. SFPD_E_INVALID (node name),
 * SFPD_E_CORRUPT (not a frame that verifies, or larger than
 * SFPD_PEER_MAX_FRAME), SFPD_E_QUOTA (over the node's limit or the
 * budget: a refusal), SFPD_E_LIMIT (too many nodes), SFPD_E_NO_MEMORY.
 * *room is filled on success.
 */
int sfpd_held_put(sfpd_held *h, const char *node, uint64_t instance, uint64_t id,
                  const void *frame, size_t len, sfpd_held_room *room);

/* The frame: *frame stays valid until the next call on h. SFPD_E_NOT_FOUND
 * (unknown node, instance or id), SFPD_E_CORRUPT (failed verification). */
int sfpd_held_get(sfpd_held *h, const char *node, uint64_t instance, uint64_t id,
                  const void **frame, size_t *len);

/* Drops the frames ids[0..n) of (node, instance), or all of them and the
 * node record with all; counts what went in *dropped. Unknown ids, nodes
 * and instances are no-ops. */
void sfpd_held_drop(sfpd_held *h, const char *node, uint64_t instance, const uint64_t *ids,
                    size_t n, bool all, uint64_t *dropped, sfpd_held_room *room);

/* Registers (node, instance) like a put does and reports its room.
 * SFPD_E_INVALID, SFPD_E_LIMIT, SFPD_E_NO_MEMORY. */
int sfpd_held_capacity(sfpd_held *h, const char *node, uint64_t instance, sfpd_held_room *room);

/* The per-node figures and the totals into s->peer_clients / s->held. */
int sfpd_held_fill_snapshot(const sfpd_held *h, struct sfpd_snapshot *s);

#endif /* SFPD_CORE_HELD_H */
