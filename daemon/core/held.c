/* held.c - frames held for other daemons (see held.h). */
#include "core/held.h"
#include "core/status.h"
#include "base/config.h"
#include "base/sfpd.h"
#include "base/stats.h"

#include <stdio.h>
#include <string.h>

#include <sfp/sfp.h>

typedef struct frame_rec {
    uint64_t id;
    uint8_t *data;
    size_t len;
    struct frame_rec *next;
} frame_rec;

typedef struct node {
    char name[SFPD_PEER_NODE_MAX + 1];
    uint64_t instance;
    frame_rec **tab;
    size_t tab_size, n;
    uint64_t bytes;
    uint64_t bytes_received, bytes_sent, refusals;
    uint64_t last_call_ns;       /* the lease runs from here */
    sfpd_list link;
} node;

struct sfpd_held {
    uint64_t node_limit;         /* peer_serve_max_bytes (0: none)       */
    uint64_t budget;             /* peer_serve_budget (0: none)          */
    uint64_t bytes, frames, high_water;
    uint64_t lease_ns;           /* peer_lease (0: none)                 */
    uint64_t leases_expired, expired_frames, expired_bytes;
    sfpd_list nodes;
    uint32_t n_nodes;
};

static uint64_t id_hash(uint64_t id)
{
    id ^= id >> 33;
    id *= UINT64_C(0xff51afd7ed558ccd);
    id ^= id >> 33;
    return id;
}

static frame_rec *node_find(const node *n, uint64_t id, frame_rec ***pp)
{
    frame_rec **p;
    if (!n->tab_size)
        return NULL;
    p = &n->tab[id_hash(id) & (n->tab_size - 1)];
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    if (pp)
        *pp = p;
    return *p;
}

static void rec_free(sfpd_held *h, node *n, frame_rec *f)
{
    n->bytes -= f->len;
    n->n--;
    h->bytes -= f->len;
    h->frames--;
    sfpd_free(f->data);
    sfpd_free(f);
}

/* Unlinks and frees frame id of n if held; 1 if it was. */
static int drop_one(sfpd_held *h, node *n, uint64_t id)
{
    frame_rec **pp = NULL, *f = node_find(n, id, &pp);
    if (!f)
        return 0;
    *pp = f->next;
    rec_free(h, n, f);
    return 1;
}

static void node_clear(sfpd_held *h, node *n)
{
    for (size_t i = 0; i < n->tab_size; i++) {
        while (n->tab[i]) {
            frame_rec *f = n->tab[i];
            n->tab[i] = f->next;
            rec_free(h, n, f);
        }
    }
}

static int node_grow(node *n)
{
    size_t sz = n->tab_size ? n->tab_size * 2 : 256;
    frame_rec **t = sfpd_calloc(sz, sizeof(*t));
    if (!t)
        return SFPD_E_NO_MEMORY;
    for (size_t i = 0; i < n->tab_size; i++) {
        frame_rec *f = n->tab[i];
        while (f) {
            frame_rec *next = f->next;
            size_t b = id_hash(f->id) & (sz - 1);
            f->next = t[b];
            t[b] = f;
            f = next;
        }
    }
    sfpd_free(n->tab);
    n->tab = t;
    n->tab_size = sz;
    return 0;
}

static void node_free(sfpd_held *h, node *n)
{
    node_clear(h, n);
    sfpd_free(n->tab);
    sfpd_list_remove(&n->link);
    h->n_nodes--;
    sfpd_free(n);
}

/*
 * The record of (name, instance). With create, a new node is made and a
 * new instance of a known node replaces the old one (its frames are
 * dropped: the client restarted and lost its index). NULL if unknown, or
 * *err with create (SFPD_E_LIMIT, SFPD_E_NO_MEMORY).
 */
static node *node_get(sfpd_held *h, const char *name, uint64_t instance, bool create, int *err)
{
    node *n = NULL;
    *err = SFPD_E_NOT_FOUND;
    for (sfpd_list *l = h->nodes.next; l != &h->nodes; l = l->next) {
        node *c = sfpd_container_of(l, node, link);
        if (strcmp(c->name, name) == 0) {
            n = c;
            break;
        }
    }
    if (n && n->instance == instance) {
        n->last_call_ns = sfpd_now_ns(); /* any call of the node renews its lease */
        return n;
    }
    if (!create)
        return NULL;
    if (n) {
        sfpd_info("peer: node %s restarted: dropping %zu frames (%llu bytes) of its last instance",
                  n->name, n->n, (unsigned long long)n->bytes);
        node_clear(h, n);
        n->instance = instance;
        n->last_call_ns = sfpd_now_ns();
        return n;
    }
    if (h->n_nodes >= SFPD_HELD_MAX_NODES) {
        *err = SFPD_E_LIMIT;
        return NULL;
    }
    if (!(n = sfpd_calloc(1, sizeof(*n)))) {
        *err = SFPD_E_NO_MEMORY;
        return NULL;
    }
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->instance = instance;
    n->last_call_ns = sfpd_now_ns();
    sfpd_list_push_back(&h->nodes, &n->link);
    h->n_nodes++;
    sfpd_info("peer: holding frames for node %s", n->name);
    return n;
}

/* Bytes n may still place: the node's limit and the budget, whichever is
 * nearer. */
static uint64_t free_bytes(const sfpd_held *h, const node *n)
{
    uint64_t f = UINT64_MAX;
    if (h->node_limit)
        f = n->bytes >= h->node_limit ? 0 : h->node_limit - n->bytes;
    if (h->budget) {
        uint64_t b = h->bytes >= h->budget ? 0 : h->budget - h->bytes;
        if (b < f)
            f = b;
    }
    return f;
}

static void room_of(const sfpd_held *h, const node *n, sfpd_held_room *r)
{
    r->free_bytes = free_bytes(h, n);
    r->held_bytes = n->bytes;
    r->held_frames = n->n;
    r->limit_bytes = h->node_limit;
    r->lease_seconds = (double)h->lease_ns / 1e9;
}

/* ------------------------------------------------------------ requests */

int sfpd_held_put(sfpd_held *h, const char *name, uint64_t instance, uint64_t id,
                  const void *frame, size_t len, sfpd_held_room *room)
{
    node *n;
    frame_rec *f = NULL;
    int err;

    if (!sfpd_peer_node_ok(name))
        return SFPD_E_INVALID;
    if (len == 0 || len > SFPD_PEER_MAX_FRAME || sfp_frame_verify(frame, len, NULL) != 0)
        return SFPD_E_CORRUPT;
    if (!(n = node_get(h, name, instance, true, &err)))
        return err;
    /* a frame id re-used by the client replaces the old frame */
    drop_one(h, n, id);
    if ((h->node_limit && n->bytes + len > h->node_limit) ||
        (h->budget && h->bytes + len > h->budget)) {
        n->refusals++;
        return SFPD_E_QUOTA;
    }
    if ((n->n + 1 > n->tab_size && node_grow(n) < 0 && !n->tab_size) ||
        !(f = sfpd_calloc(1, sizeof(*f))) || !(f->data = sfpd_malloc(len))) {
        sfpd_free(f);
        return SFPD_E_NO_MEMORY;
    }
    memcpy(f->data, frame, len);
    f->len = len;
    f->id = id;
    {
        frame_rec **pp = &n->tab[id_hash(id) & (n->tab_size - 1)];
        f->next = *pp;
        *pp = f;
    }
    n->n++;
    n->bytes += len;
    n->bytes_received += len;
    h->frames++;
    h->bytes += len;
    if (h->bytes > h->high_water)
        h->high_water = h->bytes;
    room_of(h, n, room);
    return 0;
}

int sfpd_held_get(sfpd_held *h, const char *name, uint64_t instance, uint64_t id,
                  const void **frame, size_t *len)
{
    int err;
    node *n = node_get(h, name, instance, false, &err);
    frame_rec *f = n ? node_find(n, id, NULL) : NULL;

    if (!f)
        return SFPD_E_NOT_FOUND;
    /* verified again on the way out: memory here is not trusted either */
    if (sfp_frame_verify(f->data, f->len, NULL) != 0) {
        sfpd_err("peer: a frame held for node %s failed its checksum", n->name);
        return SFPD_E_CORRUPT;
    }
    n->bytes_sent += f->len;
    *frame = f->data;
    *len = f->len;
    return 0;
}

void sfpd_held_drop(sfpd_held *h, const char *name, uint64_t instance, const uint64_t *ids,
                    size_t n_ids, bool all, uint64_t *dropped, sfpd_held_room *room)
{
    int err;
    node *n = node_get(h, name, instance, false, &err);

    *dropped = 0;
    room->free_bytes = h->node_limit ? h->node_limit : UINT64_MAX;
    room->held_bytes = room->held_frames = 0;
    room->limit_bytes = h->node_limit;
    room->lease_seconds = (double)h->lease_ns / 1e9;
    if (!n)
        return;
    if (all) {
        *dropped = n->n;
        node_free(h, n);
        return;
    }
    for (size_t i = 0; i < n_ids; i++)
        *dropped += (uint64_t)drop_one(h, n, ids[i]);
    room_of(h, n, room);
}

int sfpd_held_capacity(sfpd_held *h, const char *name, uint64_t instance, sfpd_held_room *room)
{
    int err;
    node *n;

    if (!sfpd_peer_node_ok(name))
        return SFPD_E_INVALID;
    if (!(n = node_get(h, name, instance, true, &err)))
        return err;
    room_of(h, n, room);
    return 0;
}

/* ----------------------------------------------------------- life cycle */

int sfpd_held_create(const sfpd_config *cfg, sfpd_held **out)
{
    sfpd_held *h;

    *out = NULL;
    if (!cfg->peering)
        return 0;
    if (!(h = sfpd_calloc(1, sizeof(*h))))
        return SFPD_E_NO_MEMORY;
    sfpd_list_init(&h->nodes);
    h->node_limit = cfg->peer_serve_max_bytes;
    sfpd_held_configure(h, cfg);
    sfpd_info("peer: serving sfp.v1.Peer, up to %llu bytes per node, %llu in all (0: no total "
              "bound), lease %.1f s (0: none)", (unsigned long long)h->node_limit,
              (unsigned long long)h->budget, (double)h->lease_ns / 1e9);
    *out = h;
    return 0;
}

void sfpd_held_configure(sfpd_held *h, const sfpd_config *cfg)
{
    if (!h)
        return;
    h->budget = cfg->peer_serve_budget;
    h->lease_ns = (uint64_t)(cfg->peer_lease * 1e9);
}

void sfpd_held_sweep(sfpd_held *h, uint64_t now_ns)
{
    sfpd_list *l;
    if (!h || !h->lease_ns)
        return;
    l = h->nodes.next;
    while (l != &h->nodes) {
        node *n = sfpd_container_of(l, node, link);
        l = l->next;
        if (now_ns - n->last_call_ns < h->lease_ns)
            continue;
        if (n->n) { /* a node that only registered holds nothing to count */
            sfpd_info("peer: lease of node %s ran out (no call for %.1f s): dropping %zu frames "
                      "(%llu bytes)", n->name, (double)(now_ns - n->last_call_ns) / 1e9, n->n,
                      (unsigned long long)n->bytes);
            h->leases_expired++;
            h->expired_frames += n->n;
            h->expired_bytes += n->bytes;
        }
        node_free(h, n);
    }
}

void sfpd_held_destroy(sfpd_held **ph)
{
    sfpd_held *h = ph ? *ph : NULL;
    if (!h)
        return;
    *ph = NULL;
    while (!sfpd_list_empty(&h->nodes))
        node_free(h, sfpd_container_of(h->nodes.next, node, link));
    sfpd_free(h);
}

int sfpd_held_fill_snapshot(const sfpd_held *h, sfpd_snapshot *s)
{
    size_t k = 0;
    if (!h)
        return 0;
    s->held.on = 1;
    s->held.bytes = h->bytes;
    s->held.frames = h->frames;
    s->held.budget_bytes = h->budget;
    s->held.high_water = h->high_water;
    s->held.lease_seconds = (double)h->lease_ns / 1e9;
    s->held.leases_expired = h->leases_expired;
    s->held.expired_frames = h->expired_frames;
    s->held.expired_bytes = h->expired_bytes;
    if (!h->n_nodes)
        return 0;
    s->peer_clients = sfpd_calloc(h->n_nodes, sizeof(*s->peer_clients));
    if (!s->peer_clients)
        return SFPD_E_NO_MEMORY;
    for (const sfpd_list *l = h->nodes.next; l != &h->nodes && k < h->n_nodes; l = l->next) {
        const node *n = sfpd_container_of(l, node, link);
        sfpd_peer_client_snapshot *o = &s->peer_clients[k++];
        snprintf(o->node, sizeof(o->node), "%s", n->name);
        o->held_bytes = n->bytes;
        o->held_frames = n->n;
        o->bytes_received = n->bytes_received;
        o->bytes_sent = n->bytes_sent;
        o->refusals = n->refusals;
        o->limit_bytes = h->node_limit;
    }
    s->n_peer_clients = k;
    return 0;
}
