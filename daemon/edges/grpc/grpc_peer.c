/*
 * grpc_peer.c - serving side of sfp.v1.Peer (see peer.h).
 *
 * The frames of each client node live in this daemon's memory, in a hash
 * table keyed by the client's frame id, up to peer_serve_max_bytes per
 * node. Everything runs on the loop thread (grpc_server.c dispatches here
 * after the call's message has arrived), so no lock is needed.
 *
 * Untrusted input: the token is checked before the message is read; the
 * node name is bounded; a frame must pass sfp_frame_verify (header and
 * XXH3 checksum) before it is kept; sizes are bounded by the gRPC receive
 * limit (SFPD_PEER_MAX_MESSAGE) and the per-node limit; at most MAX_NODES
 * client nodes are tracked.
 */
#include "rpc.h"
#include "edges/grpc/grpc_req.h"
#include "edges/grpc/peer.h"
#include "base/sfpd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <sfp/sfp.h>

#include "sfp/v1/sfp.pb-c.h"

#define MAX_NODES 64u

/* ----------------------------------------------------------- storage */

typedef struct held {
    uint64_t id;
    uint8_t *data;
    size_t len;
    struct held *next;
} held;

typedef struct pnode {
    char name[SFPD_PEER_NODE_MAX + 1];
    uint64_t instance;
    held **tab;
    size_t tab_size, n;
    uint64_t bytes;
    uint64_t bytes_received, bytes_sent, refusals;
    sfpd_list link;
} pnode;

struct sfpd_peer_srv {
    char *token;
    size_t token_len;
    uint64_t limit;
    sfpd_list nodes;
    uint32_t n_nodes;
};

/* The one serving instance of the process, for snapshots (loop thread). */
static sfpd_peer_srv *g_srv;

static uint64_t id_hash(uint64_t id)
{
    id ^= id >> 33;
    id *= UINT64_C(0xff51afd7ed558ccd);
    id ^= id >> 33;
    return id;
}

static held *node_find(const pnode *n, uint64_t id, held ***pp)
{
    held **p;
    if (!n->tab_size)
        return NULL;
    p = &n->tab[id_hash(id) & (n->tab_size - 1)];
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    if (pp)
        *pp = p;
    return *p;
}

static void held_free(pnode *n, held *h)
{
    n->bytes -= h->len;
    n->n--;
    sfpd_free(h->data);
    sfpd_free(h);
}

static void node_clear(pnode *n)
{
    for (size_t i = 0; i < n->tab_size; i++) {
        while (n->tab[i]) {
            held *h = n->tab[i];
            n->tab[i] = h->next;
            held_free(n, h);
        }
    }
}

static int node_grow(pnode *n)
{
    size_t sz = n->tab_size ? n->tab_size * 2 : 256;
    held **t = sfpd_calloc(sz, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < n->tab_size; i++) {
        held *h = n->tab[i];
        while (h) {
            held *next = h->next;
            size_t b = id_hash(h->id) & (sz - 1);
            h->next = t[b];
            t[b] = h;
            h = next;
        }
    }
    sfpd_free(n->tab);
    n->tab = t;
    n->tab_size = sz;
    return 0;
}

static void node_free(sfpd_peer_srv *p, pnode *n)
{
    node_clear(n);
    sfpd_free(n->tab);
    sfpd_list_remove(&n->link);
    p->n_nodes--;
    sfpd_free(n);
}

/* 1..255 printable ASCII bytes (the name goes into logs and labels). */
static bool node_name_ok(const char *s)
{
    size_t l = strlen(s);
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return l > 0 && l <= SFPD_PEER_NODE_MAX;
}

/*
 * The node record of (name, instance). With create, a new node is made and
 * a new instance of a known node replaces the old one (its frames are
 * dropped: the client restarted and lost its index). NULL if unknown (or
 * too many nodes / out of memory with create; *why says which).
 */
static pnode *node_get(sfpd_peer_srv *p, const char *name, uint64_t instance, bool create,
                       const char **why)
{
    pnode *n = NULL;
    *why = "no frames held for this client";
    for (sfpd_list *l = p->nodes.next; l != &p->nodes; l = l->next) {
        pnode *c = sfpd_container_of(l, pnode, link);
        if (strcmp(c->name, name) == 0) {
            n = c;
            break;
        }
    }
    if (n && n->instance == instance)
        return n;
    if (!create)
        return NULL;
    if (n) {
        sfpd_info("peer: node %s restarted: dropping %zu frames (%llu bytes) of its last instance",
                  n->name, n->n, (unsigned long long)n->bytes);
        node_clear(n);
        n->instance = instance;
        return n;
    }
    if (p->n_nodes >= MAX_NODES) {
        *why = "too many peer nodes";
        return NULL;
    }
    if (!(n = sfpd_calloc(1, sizeof(*n)))) {
        *why = "out of memory";
        return NULL;
    }
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->instance = instance;
    sfpd_list_push_back(&p->nodes, &n->link);
    p->n_nodes++;
    sfpd_info("peer: holding frames for node %s", n->name);
    return n;
}

static uint64_t node_free_bytes(const sfpd_peer_srv *p, const pnode *n)
{
    if (!p->limit)
        return UINT64_MAX;
    return n->bytes >= p->limit ? 0 : p->limit - n->bytes;
}

/* ------------------------------------------------------------ service */

enum { PM_PUT, PM_GET, PM_DROP, PM_CAPACITY, PM_COUNT };

static const char *const pm_paths[PM_COUNT] = {
    "/sfp.v1.Peer/PutFrame",
    "/sfp.v1.Peer/GetFrame",
    "/sfp.v1.Peer/DropFrame",
    "/sfp.v1.Peer/Capacity",
};

static const ProtobufCMessageDescriptor *const pm_desc[PM_COUNT] = {
    &sfp__v1__put_frame_request__descriptor,
    &sfp__v1__get_frame_request__descriptor,
    &sfp__v1__drop_frame_request__descriptor,
    &sfp__v1__capacity_request__descriptor,
};

int sfpd_peer_method(grpc_slice method)
{
    for (int i = 0; i < PM_COUNT; i++)
        if (grpc_slice_str_cmp(method, pm_paths[i]) == 0)
            return i;
    return -1;
}

bool sfpd_peer_authorized(const sfpd_peer_srv *p, const grpc_metadata_array *md)
{
    bool ok = false;
    if (!p || !md)
        return false;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *m = &md->metadata[i];
        if (grpc_slice_str_cmp(m->key, SFPD_PEER_TOKEN_MD) != 0)
            continue;
        ok |= sfpd_secret_eq(GRPC_SLICE_START_PTR(m->value), GRPC_SLICE_LENGTH(m->value),
                             p->token, p->token_len);
    }
    return ok;
}

static void do_put(sfpd_peer_srv *p, const Sfp__V1__PutFrameRequest *r, grpc_status_code *code,
                   const char **msg, grpc_byte_buffer **resp)
{
    Sfp__V1__PutFrameResponse m = SFP__V1__PUT_FRAME_RESPONSE__INIT;
    const char *why;
    pnode *n;
    held *h, **pp = NULL;

    if (!node_name_ok(r->node)) {
        *code = GRPC_STATUS_INVALID_ARGUMENT;
        *msg = "node must be 1..255 printable bytes";
        return;
    }
    if (r->frame.len == 0 || r->frame.len > SFPD_PEER_MAX_FRAME ||
        sfp_frame_verify(r->frame.data, r->frame.len, NULL) != 0) {
        *code = GRPC_STATUS_DATA_LOSS;
        *msg = "frame failed verification";
        return;
    }
    if (!(n = node_get(p, r->node, r->instance, true, &why))) {
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        *msg = why;
        return;
    }
    /* a frame id re-used by the client replaces the old frame */
    if ((h = node_find(n, r->frame_id, &pp))) {
        *pp = h->next;
        held_free(n, h);
    }
    if (p->limit && n->bytes + r->frame.len > p->limit) {
        n->refusals++;
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        *msg = "over peer_serve_max_bytes";
        return;
    }
    if ((n->n + 1 > n->tab_size && node_grow(n) < 0 && !n->tab_size) ||
        !(h = sfpd_calloc(1, sizeof(*h))) || !(h->data = sfpd_malloc(r->frame.len))) {
        if (h)
            sfpd_free(h);
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        *msg = "out of memory";
        return;
    }
    memcpy(h->data, r->frame.data, r->frame.len);
    h->len = r->frame.len;
    h->id = r->frame_id;
    pp = &n->tab[id_hash(h->id) & (n->tab_size - 1)];
    h->next = *pp;
    *pp = h;
    n->n++;
    n->bytes += h->len;
    n->bytes_received += h->len;
    m.free_bytes = node_free_bytes(p, n);
    m.held_bytes = n->bytes;
    *code = GRPC_STATUS_OK;
    *resp = sfp_rpc_pack(&m.base);
}

static void do_get(sfpd_peer_srv *p, const Sfp__V1__GetFrameRequest *r, grpc_status_code *code,
                   const char **msg, grpc_byte_buffer **resp)
{
    Sfp__V1__GetFrameResponse m = SFP__V1__GET_FRAME_RESPONSE__INIT;
    const char *why;
    pnode *n = node_get(p, r->node, r->instance, false, &why);
    held *h = n ? node_find(n, r->frame_id, NULL) : NULL;

    if (!h) {
        *code = GRPC_STATUS_NOT_FOUND;
        *msg = "frame not held";
        return;
    }
    /* verified again on the way out: memory here is not trusted either */
    if (sfp_frame_verify(h->data, h->len, NULL) != 0) {
        sfpd_err("peer: a frame held for node %s failed its checksum", n->name);
        *code = GRPC_STATUS_DATA_LOSS;
        *msg = "held frame failed verification";
        return;
    }
    m.frame.data = h->data;
    m.frame.len = h->len;
    n->bytes_sent += h->len;
    *code = GRPC_STATUS_OK;
    *resp = sfp_rpc_pack(&m.base);
}

static void do_drop(sfpd_peer_srv *p, const Sfp__V1__DropFrameRequest *r, grpc_status_code *code,
                    grpc_byte_buffer **resp)
{
    Sfp__V1__DropFrameResponse m = SFP__V1__DROP_FRAME_RESPONSE__INIT;
    const char *why;
    pnode *n = node_get(p, r->node, r->instance, false, &why);
    held *h, **pp = NULL;

    m.free_bytes = p->limit ? p->limit : UINT64_MAX;
    if (n && r->all) {
        m.frames_dropped = n->n;
        node_free(p, n);
    } else if (n) {
        for (size_t i = 0; i <= r->n_more_frame_ids; i++) {
            uint64_t id = i == 0 ? r->frame_id : r->more_frame_ids[i - 1];
            if ((h = node_find(n, id, &pp))) {
                *pp = h->next;
                held_free(n, h);
                m.frames_dropped++;
            }
        }
    }
    if (n && !r->all)
        m.free_bytes = node_free_bytes(p, n);
    *code = GRPC_STATUS_OK;
    *resp = sfp_rpc_pack(&m.base);
}

static void do_capacity(sfpd_peer_srv *p, const Sfp__V1__CapacityRequest *r,
                        grpc_status_code *code, const char **msg, grpc_byte_buffer **resp)
{
    Sfp__V1__CapacityResponse m = SFP__V1__CAPACITY_RESPONSE__INIT;
    const char *why;
    pnode *n;

    if (!node_name_ok(r->node)) {
        *code = GRPC_STATUS_INVALID_ARGUMENT;
        *msg = "node must be 1..255 printable bytes";
        return;
    }
    if (!(n = node_get(p, r->node, r->instance, true, &why))) {
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        *msg = why;
        return;
    }
    m.free_bytes = node_free_bytes(p, n);
    m.held_bytes = n->bytes;
    m.held_frames = n->n;
    m.limit_bytes = p->limit;
    *code = GRPC_STATUS_OK;
    *resp = sfp_rpc_pack(&m.base);
}

void sfpd_peer_handle(sfpd_peer_srv *p, int method, grpc_byte_buffer *req,
                      grpc_status_code *code, const char **msg, grpc_byte_buffer **resp)
{
    ProtobufCMessage *m;

    *code = GRPC_STATUS_INTERNAL;
    *msg = NULL;
    *resp = NULL;
    if (!p || method < 0 || method >= PM_COUNT) {
        *code = GRPC_STATUS_UNIMPLEMENTED;
        return;
    }
    m = sfp_rpc_unpack(req, pm_desc[method]);
    if (!m) {
        *code = GRPC_STATUS_INVALID_ARGUMENT;
        *msg = "malformed request message";
        return;
    }
    switch (method) {
    case PM_PUT: do_put(p, (void *)m, code, msg, resp); break;
    case PM_GET: do_get(p, (void *)m, code, msg, resp); break;
    case PM_DROP: do_drop(p, (void *)m, code, resp); break;
    case PM_CAPACITY: do_capacity(p, (void *)m, code, msg, resp); break;
    default: break;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    if (*code == GRPC_STATUS_OK && !*resp) {
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        *msg = "out of memory";
    }
}

/* -------------------------------------------------------- life cycle */

int sfpd_peer_srv_create(const sfpd_config *cfg, sfpd_peer_srv **out)
{
    sfpd_peer_srv *p;
    int r;

    *out = NULL;
    if (!cfg->peering)
        return 0;
    if (!(p = sfpd_calloc(1, sizeof(*p))))
        return -ENOMEM;
    if ((r = sfpd_load_token("peer_token_file", cfg->peer_token_file, 1, &p->token,
                             &p->token_len)) < 0) {
        sfpd_free(p);
        return r;
    }
    p->limit = cfg->peer_serve_max_bytes;
    sfpd_list_init(&p->nodes);
    g_srv = p;
    sfpd_info("peer: serving sfp.v1.Peer, up to %llu bytes per node",
              (unsigned long long)p->limit);
    *out = p;
    return 0;
}

void sfpd_peer_srv_destroy(sfpd_peer_srv **pp)
{
    sfpd_peer_srv *p = pp ? *pp : NULL;
    if (!p)
        return;
    *pp = NULL;
    if (g_srv == p)
        g_srv = NULL;
    while (!sfpd_list_empty(&p->nodes))
        node_free(p, sfpd_container_of(p->nodes.next, pnode, link));
    sfpd_free_secret(p->token, p->token_len);
    sfpd_free(p);
}

int sfpd_peer_srv_fill_snapshot(sfpd_snapshot *s)
{
    sfpd_peer_srv *p = g_srv;
    size_t k = 0;
    if (!p || !p->n_nodes)
        return 0;
    s->peer_clients = sfpd_calloc(p->n_nodes, sizeof(*s->peer_clients));
    if (!s->peer_clients)
        return -ENOMEM;
    for (sfpd_list *l = p->nodes.next; l != &p->nodes && k < p->n_nodes; l = l->next) {
        const pnode *n = sfpd_container_of(l, pnode, link);
        sfpd_peer_client_snapshot *o = &s->peer_clients[k++];
        snprintf(o->node, sizeof(o->node), "%s", n->name);
        o->held_bytes = n->bytes;
        o->held_frames = n->n;
        o->bytes_received = n->bytes_received;
        o->bytes_sent = n->bytes_sent;
        o->refusals = n->refusals;
        o->limit_bytes = p->limit;
    }
    s->n_peer_clients = k;
    return 0;
}

/* ------------------------------------------------ StatsSnapshot fields */

typedef struct peer_pack {
    Sfp__V1__PeerStats *ps;
    Sfp__V1__PeerStats **psp;
    Sfp__V1__PeerClientStats *pc;
    Sfp__V1__PeerClientStats **pcp;
} peer_pack;

void *sfpd_peer_stats_fill(const sfpd_snapshot *s, Sfp__V1__StatsSnapshot *m)
{
    peer_pack *k = sfpd_calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    if (s->n_peers && (k->ps = sfpd_calloc(s->n_peers, sizeof(*k->ps))) &&
        (k->psp = sfpd_calloc(s->n_peers, sizeof(*k->psp)))) {
        for (size_t i = 0; i < s->n_peers; i++) {
            const sfpd_peer_snapshot *p = &s->peers[i];
            Sfp__V1__PeerStats *o = &k->ps[i];
            sfp__v1__peer_stats__init(o);
            o->address = (char *)p->address;
            o->up = p->up != 0;
            o->bytes_sent = p->bytes_sent;
            o->bytes_received = p->bytes_received;
            o->held_bytes = p->held_bytes;
            o->held_frames = p->held_frames;
            o->frames_sent = p->frames_sent;
            o->frames_received = p->frames_received;
            o->rtt_seconds = p->rtt_seconds;
            o->failures = p->failures;
            o->refusals = p->refusals;
            o->lost_frames = p->lost_frames;
            o->limit_bytes = p->limit_bytes;
            o->advertised_free_bytes = p->advertised_free;
            k->psp[i] = o;
        }
        m->n_peers = s->n_peers;
        m->peers = k->psp;
    }
    if (s->n_peer_clients && (k->pc = sfpd_calloc(s->n_peer_clients, sizeof(*k->pc))) &&
        (k->pcp = sfpd_calloc(s->n_peer_clients, sizeof(*k->pcp)))) {
        for (size_t i = 0; i < s->n_peer_clients; i++) {
            const sfpd_peer_client_snapshot *p = &s->peer_clients[i];
            Sfp__V1__PeerClientStats *o = &k->pc[i];
            sfp__v1__peer_client_stats__init(o);
            o->node = (char *)p->node;
            o->held_bytes = p->held_bytes;
            o->held_frames = p->held_frames;
            o->bytes_received = p->bytes_received;
            o->bytes_sent = p->bytes_sent;
            o->refusals = p->refusals;
            o->limit_bytes = p->limit_bytes;
            k->pcp[i] = o;
        }
        m->n_peer_clients = s->n_peer_clients;
        m->peer_clients = k->pcp;
    }
    return k;
}

void sfpd_peer_stats_free(void *pk)
{
    peer_pack *k = pk;
    if (!k)
        return;
    sfpd_free(k->ps);
    sfpd_free(k->psp);
    sfpd_free(k->pc);
    sfpd_free(k->pcp);
    sfpd_free(k);
}
