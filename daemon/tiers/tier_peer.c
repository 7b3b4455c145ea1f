/*
 * tier_peer.c - the network tier: frames placed in the memory of peer sfpd
 * daemons over sfp.v1.Peer (docs/DAEMON.md "Network tier").
 *
 * Threads. reserve/release/job_open/job_close run on the loop and only do
 * bookkeeping; write/read/kill run on the pool and make blocking unary gRPC
 * calls, each on its own pluck completion queue with a deadline of
 * peer_timeout. The channel is shared (gRPC channels are thread safe).
 * Counters touched by pool threads are atomics.
 *
 * Placement. reserve picks the next peer (round robin) that is up, under
 * peer_max_bytes, and whose last advertised free capacity fits the frame;
 * otherwise -ENOSPC and the store tries the next tier. A write the peer
 * refuses (RESOURCE_EXHAUSTED) or that cannot reach it fails, and the store
 * again falls through. A failed call marks the peer down for RETRY_NS; the
 * first write after that asks Capacity before shipping a frame.
 *
 * No silent loss. With peer_write_through, every frame is also written to a
 * private disk tier (<spill_dir>/peer-wt) before it is shipped; a read that
 * cannot get the frame from the peer reads that copy. Without it, such a
 * read returns -ENOLINK, which the store reports as Status E_LOST. Frames
 * from a peer must pass sfp_frame_verify and carry the checksum recorded at
 * write time, so a peer can never hand back a wrong frame.
 *
 * Restart. A peer's frames belong to one instance of this daemon (random
 * id); a restarted daemon has a new instance and the peer drops the old
 * frames: the tier calls Capacity on every peer as soon as it starts (and
 * again each second until the peer answers), so that happens at once. The
 * write-through directory is emptied at start-up.
 *
 * Lease. A peer drops the frames of a node that makes no call for its
 * peer_lease (it says how long in every reply); while frames are on a
 * peer, the tier calls Capacity when a third of the lease has passed since
 * its last call that worked (tick(), from the store's timer; the call runs
 * on the pool).
 */
#include "rpc.h"
#include "core/held.h"
#include "core/status.h"
#include "tiers/tiers.h"
#include "base/secrets.h"
#include "base/sfpd.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <sfp/sfp.h>

#include "sfp/v1/sfp.pb-c.h"

#define MAX_PEERS 16u
#define MAX_ORPHANS (1u << 20) /* drops kept for a peer that is away */
#define RETRY_NS (UINT64_C(1000) * 1000 * 1000)

typedef struct peer {
    char addr[128];
    grpc_channel *ch;
    /* loop thread */
    uint64_t used, frames;
    /* any thread */
    _Atomic uint64_t down_until_ns;    /* 0: up                         */
    _Atomic bool need_probe;           /* ask Capacity before a frame   */
    _Atomic uint64_t advertised_free;  /* UINT64_MAX: not known          */
    _Atomic uint64_t probe_after_ns;   /* full: ask Capacity again then  */
    _Atomic int down_code;             /* status of the last failure     */
    _Atomic uint64_t bytes_sent, bytes_received, frames_sent, frames_received;
    _Atomic uint64_t failures, refusals, lost, rtt_ns;
    _Atomic uint64_t last_ok_ns;       /* last call that worked          */
    _Atomic uint64_t lease_ms;         /* the peer's lease, 0: none/unknown */
    _Atomic uint64_t renewals;
    /* loop thread */
    bool renewing;                     /* a renewal call is under way     */
    bool registered;                   /* this instance told the peer     */
    /* ids whose DropFrame could not be sent; flushed when the peer is back */
    pthread_mutex_t mu;
    uint64_t *orphans;
    size_t n_orphans, cap_orphans;
} peer;

typedef struct ptier {
    sfpd_tier base;
    uv_loop_t *loop;
    peer peers[MAX_PEERS];
    size_t n;
    size_t rr;
    uint64_t limit;           /* peer_max_bytes per peer       */
    int timeout_ms;
    char *token;
    size_t token_len;
    char node[SFPD_PEER_NODE_MAX + 1];
    uint64_t instance;
    uint64_t next_id;         /* loop thread */
    sfpd_tier *wt;            /* write-through disk tier or NULL */
} ptier;

typedef struct pjob {
    void *wt_state;
} pjob;

/* loc->handle of a frame in this tier. Written on the pool by write(),
 * read on the loop after the work item completed. */
typedef struct prec {
    uint32_t peer;
    uint64_t id;
    uint64_t checksum;
    bool on_peer;
    bool has_wt, wt_written;
    sfpd_loc wt;
} prec;

static uint64_t now_ns(void) { return sfpd_now_ns(); }

static bool peer_up(const peer *p)
{
    uint64_t d = atomic_load(&p->down_until_ns);
    return d == 0 || now_ns() >= d;
}

static void mark_down(peer *p, const char *why, grpc_status_code code)
{
    uint64_t was = atomic_exchange(&p->down_until_ns, now_ns() + RETRY_NS);
    int last = atomic_exchange(&p->down_code, (int)code);
    atomic_store(&p->need_probe, true);
    atomic_fetch_add(&p->failures, 1);
    if (was == 0 || last != (int)code) /* once per outage and cause */
        sfpd_warn("peer %s: %s (gRPC status %d); using the next tier", p->addr, why, (int)code);
}

static void mark_up(peer *p)
{
    atomic_store(&p->down_code, 0);
    if (atomic_exchange(&p->down_until_ns, 0) != 0)
        sfpd_info("peer %s: reachable again", p->addr);
}

/* ------------------------------------------------------------- calls */

/*
 * One blocking unary call (pool thread) with the peer token, on a private
 * completion queue with a deadline of peer_timeout. *resp is the reply when
 * the status is OK (caller frees). Returns the gRPC status (a transport
 * failure gives UNAVAILABLE or DEADLINE_EXCEEDED).
 */
static grpc_status_code call(ptier *t, peer *p, const char *method, const ProtobufCMessage *req,
                             const ProtobufCMessageDescriptor *rdesc, ProtobufCMessage **resp)
{
    grpc_metadata md;
    sfp_rpc_call c = {
        .method = method, .md = &md, .n_md = 1, .req = req, .reply_desc = rdesc,
        .deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                 gpr_time_from_millis(t->timeout_ms, GPR_TIMESPAN)),
    };
    grpc_status_code status;
    uint64_t t0 = now_ns();

    memset(&md, 0, sizeof(md));
    md.key = grpc_slice_from_static_string(SFPD_PEER_TOKEN_MD);
    md.value = grpc_slice_from_static_string(t->token);
    status = sfp_rpc_unary(p->ch, NULL, &c);
    if (status == GRPC_STATUS_OK)
        atomic_store(&p->last_ok_ns, now_ns());
    *resp = c.reply;
    c.reply = NULL;
    sfp_rpc_call_clear(&c);
    /* smoothed round trip: 7/8 old + 1/8 new */
    {
        uint64_t dt = now_ns() - t0, old = atomic_load(&p->rtt_ns);
        atomic_store(&p->rtt_ns, old ? (old * 7 + dt) / 8 : dt);
    }
    return status;
}

/* The lease a peer's reply announced (seconds, 0: none). */
static void note_lease(peer *p, double lease_seconds)
{
    atomic_store(&p->lease_ms, isfinite(lease_seconds) && lease_seconds > 0
                                   ? (uint64_t)(lease_seconds * 1000 + 0.5) : 0);
}

/* Transport-level failures make the peer "down" for a while. */
static bool is_unreachable(grpc_status_code s)
{
    return s == GRPC_STATUS_UNAVAILABLE || s == GRPC_STATUS_DEADLINE_EXCEEDED ||
           s == GRPC_STATUS_UNAUTHENTICATED || s == GRPC_STATUS_PERMISSION_DENIED ||
           s == GRPC_STATUS_UNIMPLEMENTED || s == GRPC_STATUS_INTERNAL ||
           s == GRPC_STATUS_CANCELLED || s == GRPC_STATUS_UNKNOWN;
}

static const char *why_down(grpc_status_code s)
{
    switch (s) {
    case GRPC_STATUS_UNAUTHENTICATED: return "refused our token";
    case GRPC_STATUS_UNIMPLEMENTED: return "does not serve Peer (peering off?)";
    case GRPC_STATUS_DEADLINE_EXCEEDED: return "did not answer within peer_timeout";
    default: return "unreachable";
    }
}

/* Remembers a drop that could not be sent (any thread). */
static void add_orphan(peer *p, uint64_t id)
{
    pthread_mutex_lock(&p->mu);
    if (p->n_orphans == p->cap_orphans && p->cap_orphans < MAX_ORPHANS) {
        size_t cap = p->cap_orphans ? p->cap_orphans * 2 : 256;
        uint64_t *o = sfpd_realloc(p->orphans, cap * sizeof(*o));
        if (o) {
            p->orphans = o;
            p->cap_orphans = cap;
        }
    }
    if (p->n_orphans < p->cap_orphans)
        p->orphans[p->n_orphans++] = id;
    /* else: that frame stays on the peer until this daemon's next instance */
    pthread_mutex_unlock(&p->mu);
}

/* Sends the remembered drops in one DropFrame (pool thread). */
static void flush_orphans(ptier *t, peer *p)
{
    Sfp__V1__DropFrameRequest q = SFP__V1__DROP_FRAME_REQUEST__INIT;
    ProtobufCMessage *m;
    uint64_t *ids;
    size_t n;

    pthread_mutex_lock(&p->mu);
    ids = p->orphans;
    n = p->n_orphans;
    p->orphans = NULL;
    p->n_orphans = p->cap_orphans = 0;
    pthread_mutex_unlock(&p->mu);
    if (!n) {
        sfpd_free(ids);
        return;
    }
    q.node = t->node;
    q.instance = t->instance;
    q.frame_id = ids[0];
    q.n_more_frame_ids = n - 1;
    q.more_frame_ids = ids + 1;
    if (call(t, p, "/sfp.v1.Peer/DropFrame", &q.base, &sfp__v1__drop_frame_response__descriptor, &m) ==
        GRPC_STATUS_OK) {
        atomic_store(&p->advertised_free, ((Sfp__V1__DropFrameResponse *)m)->free_bytes);
        protobuf_c_message_free_unpacked(m, NULL);
        sfpd_info("peer %s: %zu drops sent after it came back", p->addr, n);
    } else {
        for (size_t i = 0; i < n; i++)
            add_orphan(p, ids[i]);
    }
    sfpd_free(ids);
}

/* Capacity probe after start or a failure: 0 if the peer takes need bytes. */
static int probe(ptier *t, peer *p, uint64_t need)
{
    Sfp__V1__CapacityRequest q = SFP__V1__CAPACITY_REQUEST__INIT;
    ProtobufCMessage *m;
    grpc_status_code s;

    q.node = t->node;
    q.instance = t->instance;
    s = call(t, p, "/sfp.v1.Peer/Capacity", &q.base, &sfp__v1__capacity_response__descriptor, &m);
    if (s != GRPC_STATUS_OK) {
        if (is_unreachable(s))
            mark_down(p, why_down(s), s);
        else
            atomic_fetch_add(&p->failures, 1);
        return s == GRPC_STATUS_RESOURCE_EXHAUSTED ? -ENOSPC : -EHOSTUNREACH;
    }
    atomic_store(&p->advertised_free, ((Sfp__V1__CapacityResponse *)m)->free_bytes);
    note_lease(p, ((Sfp__V1__CapacityResponse *)m)->lease_seconds);
    protobuf_c_message_free_unpacked(m, NULL);
    atomic_store(&p->probe_after_ns, now_ns() + RETRY_NS);
    atomic_store(&p->need_probe, false);
    mark_up(p);
    flush_orphans(t, p);
    return atomic_load(&p->advertised_free) >= need ? 0 : -ENOSPC;
}

/* ------------------------------------------------------------ tier ops */

static int pt_job_open(sfpd_tier *tt, const char *job_id, uint32_t owner, void **state)
{
    ptier *t = (ptier *)tt;
    pjob *j = sfpd_calloc(1, sizeof(*j));
    int r;
    if (!j)
        return -ENOMEM;
    if (t->wt && (r = t->wt->ops->job_open(t->wt, job_id, owner, &j->wt_state)) < 0) {
        sfpd_free(j);
        return r;
    }
    *state = j;
    return 0;
}

static void pt_job_close(sfpd_tier *tt, void *state, bool delete_data)
{
    ptier *t = (ptier *)tt;
    pjob *j = state;
    if (!j)
        return;
    if (t->wt && j->wt_state)
        t->wt->ops->job_close(t->wt, j->wt_state, delete_data);
    sfpd_free(j);
}

static int pt_reserve(sfpd_tier *tt, void *state, const sfpd_key *key, uint64_t frame_len,
                      sfpd_loc *loc)
{
    ptier *t = (ptier *)tt;
    pjob *j = state;
    prec *r;
    size_t pick = t->n;

    if (!j || frame_len > SFPD_PEER_MAX_FRAME)
        return -ENOSPC;
    if (tt->budget && tt->ops->used(tt) + frame_len > tt->budget)
        return -ENOSPC;
    for (size_t k = 0; k < t->n; k++) {
        size_t i = (t->rr + k) % t->n;
        peer *p = &t->peers[i];
        if (!peer_up(p))
            continue;
        if (t->limit && p->used + frame_len > t->limit)
            continue;
        if (!atomic_load(&p->need_probe) && atomic_load(&p->advertised_free) < frame_len) {
            /* the peer said it is full: ask its capacity again once a second */
            if (now_ns() < atomic_load(&p->probe_after_ns))
                continue;
            atomic_store(&p->need_probe, true);
        }
        pick = i;
        break;
    }
    if (pick == t->n)
        return -ENOSPC;
    t->rr = (pick + 1) % t->n;
    if (!(r = sfpd_calloc(1, sizeof(*r))))
        return -ENOMEM;
    r->peer = (uint32_t)pick;
    r->id = ++t->next_id;
    if (t->wt) {
        int e = t->wt->ops->reserve(t->wt, j->wt_state, key, frame_len, &r->wt);
        if (e < 0) {
            sfpd_free(r);
            return e == -ENOMEM ? e : -ENOSPC;
        }
        r->has_wt = true;
    }
    memset(loc, 0, sizeof(*loc));
    loc->handle = r;
    loc->rec_len = frame_len;
    loc->frame_len = frame_len;
    t->peers[pick].used += frame_len;
    t->peers[pick].frames++;
    if (tt->ops->used(tt) > tt->high_water)
        tt->high_water = tt->ops->used(tt);
    return 0;
}

static void pt_release(sfpd_tier *tt, const sfpd_loc *loc, bool written)
{
    ptier *t = (ptier *)tt;
    prec *r = loc->handle;
    peer *p;
    (void)written;
    if (!r)
        return;
    p = &t->peers[r->peer];
    p->used -= loc->frame_len;
    p->frames--;
    if (r->has_wt)
        t->wt->ops->release(t->wt, &r->wt, r->wt_written);
    sfpd_free(r);
}

static int pt_write(sfpd_tier *tt, const sfpd_loc *loc, const sfpd_rec_meta *meta, const void *frame)
{
    ptier *t = (ptier *)tt;
    prec *r = loc->handle;
    peer *p = &t->peers[r->peer];
    Sfp__V1__PutFrameRequest q = SFP__V1__PUT_FRAME_REQUEST__INIT;
    ProtobufCMessage *m;
    sfp_frame_info info;
    grpc_status_code s;
    int e;

    /* never ship a frame that is already bad; remember its checksum */
    if (sfp_frame_verify(frame, (size_t)loc->frame_len, &info) != 0)
        return -EBADMSG;
    r->checksum = info.checksum;
    (void)meta;
    if (r->has_wt) {
        if ((e = t->wt->ops->write(t->wt, &r->wt, meta, frame)) < 0)
            return e;
        r->wt_written = true;
    }
    if (!peer_up(p)) {
        e = -EHOSTUNREACH;
        goto fail;
    }
    if (atomic_load(&p->need_probe) && (e = probe(t, p, loc->frame_len)) < 0)
        goto fail;
    q.node = t->node;
    q.instance = t->instance;
    q.frame_id = r->id;
    q.frame.data = (uint8_t *)frame;
    q.frame.len = (size_t)loc->frame_len;
    s = call(t, p, "/sfp.v1.Peer/PutFrame", &q.base, &sfp__v1__put_frame_response__descriptor, &m);
    if (s == GRPC_STATUS_OK) {
        atomic_store(&p->advertised_free, ((Sfp__V1__PutFrameResponse *)m)->free_bytes);
        note_lease(p, ((Sfp__V1__PutFrameResponse *)m)->lease_seconds);
        protobuf_c_message_free_unpacked(m, NULL);
        atomic_fetch_add(&p->bytes_sent, loc->frame_len);
        atomic_fetch_add(&p->frames_sent, 1);
        r->on_peer = true;
        return 0;
    }
    if (s == GRPC_STATUS_RESOURCE_EXHAUSTED) {
        atomic_fetch_add(&p->refusals, 1);
        atomic_store(&p->advertised_free, 0);
        atomic_store(&p->probe_after_ns, now_ns() + RETRY_NS);
        e = -ENOSPC;
    } else {
        if (is_unreachable(s))
            mark_down(p, why_down(s), s);
        else
            atomic_fetch_add(&p->failures, 1);
        e = -EHOSTUNREACH;
    }
fail:
    if (r->wt_written && t->wt->ops->kill(t->wt, &r->wt) < 0)
        sfpd_warn("peer: cannot mark a write-through record dead");
    return e;
}

/* Fetches r's frame from its peer into buf: 0, -ENOLINK (not there or not
 * reachable) or -EBADMSG (what came back is not the frame we placed). */
static int fetch(ptier *t, const sfpd_loc *loc, prec *r, void *buf)
{
    peer *p = &t->peers[r->peer];
    Sfp__V1__GetFrameRequest q = SFP__V1__GET_FRAME_REQUEST__INIT;
    Sfp__V1__GetFrameResponse *g;
    ProtobufCMessage *m;
    sfp_frame_info info;
    grpc_status_code s;
    int e = 0;

    if (!r->on_peer || !peer_up(p))
        return -ENOLINK;
    q.node = t->node;
    q.instance = t->instance;
    q.frame_id = r->id;
    s = call(t, p, "/sfp.v1.Peer/GetFrame", &q.base, &sfp__v1__get_frame_response__descriptor, &m);
    if (s != GRPC_STATUS_OK) {
        if (is_unreachable(s))
            mark_down(p, why_down(s), s);
        else
            atomic_fetch_add(&p->failures, 1);
        return -ENOLINK;
    }
    g = (Sfp__V1__GetFrameResponse *)m;
    if (g->frame.len != loc->frame_len || sfp_frame_verify(g->frame.data, g->frame.len, &info) != 0 ||
        info.checksum != r->checksum) {
        sfpd_err("peer %s: frame %llu came back different from what was placed", p->addr,
                 (unsigned long long)r->id);
        atomic_fetch_add(&p->failures, 1);
        e = -EBADMSG;
    } else {
        memcpy(buf, g->frame.data, g->frame.len);
        atomic_fetch_add(&p->bytes_received, g->frame.len);
        atomic_fetch_add(&p->frames_received, 1);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return e;
}

static int pt_read(sfpd_tier *tt, const sfpd_loc *loc, void *buf)
{
    ptier *t = (ptier *)tt;
    prec *r = loc->handle;
    int e = fetch(t, loc, r, buf);

    if (e == 0)
        return 0;
    if (r->wt_written) {
        int w = t->wt->ops->read(t->wt, &r->wt, buf);
        if (w == 0) {
            sfpd_stat_inc(SFPD_C_DISK_READS, 1);
            sfpd_stat_inc(SFPD_C_DISK_READ_BYTES, loc->frame_len);
        }
        return w;
    }
    if (e == -ENOLINK)
        atomic_fetch_add(&t->peers[r->peer].lost, 1);
    return e;
}

static int pt_kill(sfpd_tier *tt, const sfpd_loc *loc)
{
    ptier *t = (ptier *)tt;
    prec *r = loc->handle;
    peer *p = &t->peers[r->peer];
    int e = 0;

    if (r->on_peer && !peer_up(p)) {
        add_orphan(p, r->id);
    } else if (r->on_peer) {
        Sfp__V1__DropFrameRequest q = SFP__V1__DROP_FRAME_REQUEST__INIT;
        ProtobufCMessage *m;
        grpc_status_code s;
        q.node = t->node;
        q.instance = t->instance;
        q.frame_id = r->id;
        s = call(t, p, "/sfp.v1.Peer/DropFrame", &q.base, &sfp__v1__drop_frame_response__descriptor, &m);
        if (s == GRPC_STATUS_OK) {
            atomic_store(&p->advertised_free, ((Sfp__V1__DropFrameResponse *)m)->free_bytes);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            /* sent again once the peer answers a Capacity probe */
            add_orphan(p, r->id);
            if (is_unreachable(s))
                mark_down(p, why_down(s), s);
        }
    }
    if (r->wt_written)
        e = t->wt->ops->kill(t->wt, &r->wt);
    return e;
}

typedef struct renew_op {
    uv_work_t w;
    ptier *t;
    size_t i;
    int rc;
} renew_op;

static void renew_run(uv_work_t *w)
{
    renew_op *r = (renew_op *)w;
    r->rc = probe(r->t, &r->t->peers[r->i], 0);
}

static void renew_done(uv_work_t *w, int status)
{
    renew_op *r = (renew_op *)w;
    peer *p = &r->t->peers[r->i];
    (void)status;
    p->renewing = false;
    if (r->rc == 0 || r->rc == -ENOSPC) { /* it answered: lease renewed */
        p->registered = true;
        atomic_fetch_add(&p->renewals, 1);
    }
    sfpd_free(r);
}

/*
 * Loop, every 100 ms: a Capacity call to each peer this instance has not
 * yet registered with (the peer drops the frames of our earlier instance),
 * and to each peer holding our frames once a third of its lease has passed
 * since the last call that worked. One call per peer at a time, and none to
 * a peer that is down until its retry time.
 */
static void pt_tick(sfpd_tier *tt)
{
    ptier *t = (ptier *)tt;
    uint64_t now = now_ns();
    for (size_t i = 0; i < t->n; i++) {
        peer *p = &t->peers[i];
        uint64_t lease = atomic_load(&p->lease_ms) * 1000000u;
        renew_op *r;
        if (p->renewing || !peer_up(p))
            continue;
        if (p->registered && (!p->frames || !lease || now - atomic_load(&p->last_ok_ns) < lease / 3))
            continue;
        if (!(r = sfpd_calloc(1, sizeof(*r))))
            return;
        r->t = t;
        r->i = i;
        if (uv_queue_work(t->loop, &r->w, renew_run, renew_done) != 0) {
            sfpd_free(r);
            return;
        }
        p->renewing = true;
    }
}

static int pt_adopt(sfpd_tier *tt, sfpd_adopt_fn fn, void *arg)
{
    (void)tt;
    (void)fn;
    (void)arg;
    return 0; /* frames on peers belong to one instance: nothing to adopt */
}

static uint64_t pt_used(const sfpd_tier *tt)
{
    const ptier *t = (const ptier *)tt;
    uint64_t u = 0;
    for (size_t i = 0; i < t->n; i++)
        u += t->peers[i].used;
    return u;
}

static void pt_destroy(sfpd_tier *tt)
{
    ptier *t = (ptier *)tt;
    if (!t)
        return;
    /* after the loop stopped: tell reachable peers to forget this instance */
    for (size_t i = 0; i < t->n; i++) {
        peer *p = &t->peers[i];
        if (p->ch && p->frames_sent && peer_up(p)) {
            Sfp__V1__DropFrameRequest q = SFP__V1__DROP_FRAME_REQUEST__INIT;
            ProtobufCMessage *m;
            int saved = t->timeout_ms;
            q.node = t->node;
            q.instance = t->instance;
            q.all = true;
            t->timeout_ms = saved < 1000 ? saved : 1000;
            if (call(t, p, "/sfp.v1.Peer/DropFrame", &q.base, &sfp__v1__drop_frame_response__descriptor,
                     &m) == GRPC_STATUS_OK)
                protobuf_c_message_free_unpacked(m, NULL);
            t->timeout_ms = saved;
        }
        if (p->ch)
            grpc_channel_destroy(p->ch);
        sfpd_free(p->orphans);
        pthread_mutex_destroy(&p->mu);
    }
    if (t->wt)
        t->wt->ops->destroy(t->wt);
    sfpd_free_secret(t->token, t->token_len);
    sfpd_free(t);
    grpc_shutdown();
}

static int pt_fill_snapshot(const sfpd_tier *tt, sfpd_snapshot *s);

static const sfpd_tier_ops peer_ops = {
    .name = "peer",
    .job_open = pt_job_open,
    .job_close = pt_job_close,
    .reserve = pt_reserve,
    .release = pt_release,
    .write = pt_write,
    .read = pt_read,
    .kill = pt_kill,
    .adopt = pt_adopt,
    .used = pt_used,
    .tick = pt_tick,
    .fill_snapshot = pt_fill_snapshot,
    .destroy = pt_destroy,
};

/* ---------------------------------------------------------- creation */

/*
 * Channel credentials to the peers. When this daemon serves gRPC with TLS
 * (grpc_tls_cert/grpc_tls_key), it talks TLS to its peers too: it checks
 * their server certificates against grpc_tls_client_ca (the cluster CA;
 * empty: the system roots) and presents its own certificate, which peers
 * that require client certificates verify. Otherwise plaintext.
 */
static grpc_channel_credentials *peer_credentials(const sfpd_config *cfg, bool *tls)
{
    grpc_ssl_pem_key_cert_pair pair;
    grpc_channel_credentials *c = NULL;
    char *cert = NULL, *key = NULL, *ca = NULL;
    size_t cert_n = 0, key_n = 0, ca_n = 0;

    *tls = false;
    if (!cfg->grpc_tls_cert || !cfg->grpc_tls_cert[0] || !cfg->grpc_tls_key || !cfg->grpc_tls_key[0])
        return grpc_insecure_credentials_create();
    if (sfpd_load_pem("grpc_tls_cert", cfg->grpc_tls_cert, false, &cert, &cert_n) == 0 &&
        sfpd_load_pem("grpc_tls_key", cfg->grpc_tls_key, true, &key, &key_n) == 0 &&
        (!cfg->grpc_tls_client_ca || !cfg->grpc_tls_client_ca[0] ||
         sfpd_load_pem("grpc_tls_client_ca", cfg->grpc_tls_client_ca, false, &ca, &ca_n) == 0)) {
        pair.cert_chain = cert;
        pair.private_key = key;
        c = grpc_ssl_credentials_create(ca, &pair, NULL, NULL); /* keeps copies */
    }
    sfpd_free_secret(cert, cert_n);
    sfpd_free_secret(key, key_n);
    sfpd_free_secret(ca, ca_n);
    *tls = c != NULL;
    return c;
}

static int reject_all(void *arg, const char *job_id, uint32_t owner, void *job_state,
                      const sfpd_rec_meta *meta, const sfpd_loc *loc)
{
    (void)arg, (void)job_id, (void)owner, (void)job_state, (void)meta, (void)loc;
    return -1;
}

int sfpd_tier_peer_create(uv_loop_t *loop, const sfpd_config *cfg, sfpd_tier **out)
{
    ptier *t = sfpd_calloc(1, sizeof(*t));
    grpc_arg args[7];
    grpc_channel_args cargs;
    char *list = NULL, *save = NULL;
    bool tls = false;
    int r = 0;

    if (!t)
        return -ENOMEM;
    grpc_init();
    t->base.ops = &peer_ops;
    t->loop = loop;
    t->limit = cfg->peer_max_bytes;
    t->timeout_ms = (int)(cfg->peer_timeout * 1000 + 0.5);
    if (t->timeout_ms < 10)
        t->timeout_ms = 10;
    if ((r = sfpd_load_token("peer_token_file", cfg->peer_token_file, 1, &t->token,
                             &t->token_len)) < 0)
        goto fail;
    if (cfg->peer_node_name && cfg->peer_node_name[0]) {
        snprintf(t->node, sizeof(t->node), "%s", cfg->peer_node_name);
    } else {
        char host[128] = "localhost";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = 0;
        snprintf(t->node, sizeof(t->node), "%s:%s", host, cfg->spill_dir);
    }
    if (getrandom(&t->instance, sizeof(t->instance), 0) != (ssize_t)sizeof(t->instance))
        t->instance = now_ns() ^ ((uint64_t)getpid() << 32);

    args[0] = sfp_rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, SFPD_PEER_MAX_MESSAGE);
    args[1] = sfp_rpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, SFPD_PEER_MAX_MESSAGE);
    args[2] = sfp_rpc_int_arg(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    /* gRPC core takes this as the connect timeout (TCP + TLS handshakes):
     * keep it generous; refused connects still retry after 0.1-1 s */
    args[3] = sfp_rpc_int_arg(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10000);
    args[4] = sfp_rpc_int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    /* a frame (about 1 MiB) fits the receive window at once */
    args[5] = sfp_rpc_int_arg(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
    args[6] = sfp_rpc_int_arg(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 4 << 20);
    cargs.num_args = SFPD_ARRAY_SIZE(args);
    cargs.args = args;

    if (!(list = sfpd_strdup(cfg->peers ? cfg->peers : ""))) {
        r = -ENOMEM;
        goto fail;
    }
    for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        peer *p;
        grpc_channel_credentials *creds;
        if (t->n == MAX_PEERS) {
            sfpd_err("peer: at most %u peers", MAX_PEERS);
            r = -EINVAL;
            goto fail;
        }
        if (strlen(tok) >= sizeof(t->peers[0].addr) || !strchr(tok, ':')) {
            sfpd_err("peer: bad peer address '%s' (host:port)", tok);
            r = -EINVAL;
            goto fail;
        }
        p = &t->peers[t->n++];
        pthread_mutex_init(&p->mu, NULL);
        snprintf(p->addr, sizeof(p->addr), "%s", tok);
        atomic_store(&p->advertised_free, UINT64_MAX);
        atomic_store(&p->need_probe, true);
        if (!(creds = peer_credentials(cfg, &tls))) {
            sfpd_err("peer: cannot make the TLS credentials for the peer channels");
            r = -EINVAL;
            goto fail;
        }
        p->ch = grpc_channel_create(p->addr, creds, &cargs);
        grpc_channel_credentials_release(creds);
        if (!p->ch) {
            sfpd_err("peer: cannot make a channel to %s", p->addr);
            r = -EINVAL;
            goto fail;
        }
        /* start connecting now (non-blocking): the first spill should not
         * pay for the TCP and HTTP/2 handshakes within its deadline */
        grpc_channel_check_connectivity_state(p->ch, 1);
    }
    if (t->n == 0) {
        sfpd_err("peer: the option peers lists no peer");
        r = -EINVAL;
        goto fail;
    }
    if (cfg->peer_write_through) {
        size_t n = strlen(cfg->spill_dir) + 16;
        char *dir = sfpd_malloc(n);
        if (!dir) {
            r = -ENOMEM;
            goto fail;
        }
        snprintf(dir, n, "%s/peer-wt", cfg->spill_dir);
        r = sfpd_tier_disk_open(loop, dir, cfg->disk_budget, cfg->segment_size, false, &t->wt);
        if (r < 0)
            sfpd_err("peer: cannot use the write-through directory %s: %s", dir, strerror(-r));
        sfpd_free(dir);
        if (r < 0)
            goto fail;
        /* copies of an earlier run are worthless: its peer frames are gone */
        t->wt->ops->adopt(t->wt, reject_all, NULL);
    }
    sfpd_free(list);
    sfpd_info("peer: network tier over %zu peer(s) as node %s, %s%s", t->n, t->node,
              tls ? "TLS" : "plaintext", t->wt ? ", with write-through copies" : "");
    *out = &t->base;
    return 0;

fail:
    sfpd_free(list);
    for (size_t i = 0; i < t->n; i++) {
        if (t->peers[i].ch)
            grpc_channel_destroy(t->peers[i].ch);
        pthread_mutex_destroy(&t->peers[i].mu);
    }
    if (t->wt)
        t->wt->ops->destroy(t->wt);
    sfpd_free_secret(t->token, t->token_len);
    sfpd_free(t);
    grpc_shutdown();
    return r;
}

static int pt_fill_snapshot(const sfpd_tier *tt, sfpd_snapshot *s)
{
    const ptier *t = (const ptier *)tt;
    if (!t || !t->n)
        return 0;
    s->peers = sfpd_calloc(t->n, sizeof(*s->peers));
    if (!s->peers)
        return SFPD_E_NO_MEMORY;
    for (size_t i = 0; i < t->n; i++) {
        const peer *p = &t->peers[i];
        sfpd_peer_snapshot *o = &s->peers[i];
        uint64_t adv = atomic_load(&p->advertised_free);
        snprintf(o->address, sizeof(o->address), "%s", p->addr);
        o->up = peer_up(p) && atomic_load(&p->down_until_ns) == 0;
        o->bytes_sent = atomic_load(&p->bytes_sent);
        o->bytes_received = atomic_load(&p->bytes_received);
        o->frames_sent = atomic_load(&p->frames_sent);
        o->frames_received = atomic_load(&p->frames_received);
        o->held_bytes = p->used;
        o->held_frames = p->frames;
        o->rtt_seconds = (double)atomic_load(&p->rtt_ns) / 1e9;
        o->failures = atomic_load(&p->failures);
        o->refusals = atomic_load(&p->refusals);
        o->lost_frames = atomic_load(&p->lost);
        o->limit_bytes = t->limit;
        o->advertised_free = adv == UINT64_MAX ? 0 : adv;
        o->lease_seconds = (double)atomic_load(&p->lease_ms) / 1e3;
        o->lease_renewals = atomic_load(&p->renewals);
    }
    s->n_peers = t->n;
    return 0;
}

void sfpd_tier_peer_unused(const sfpd_config *cfg)
{
    if (cfg->peers && cfg->peers[0])
        sfpd_warn("peers is set but tier_order (%s) has no peer tier: not used", cfg->tier_order);
}
