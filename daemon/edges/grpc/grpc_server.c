/*
 * grpc_server.c - the sfp.v1 gRPC API and grpc.health.v1 on the C core.
 *
 * See grpc_server.h for the threading model. The pitfalls of
 * reference/grpc-core-notes.md §6 are handled here as follows:
 *  1. every status batch is preceded by SEND_INITIAL_METADATA (md_sent);
 *  2. a request slot that completes with success==0 has no call to unref;
 *  3. a call is freed in exactly one place, call_maybe_finish();
 *  4. GRPC_ARG_ALLOW_REUSEPORT is 0, so a second daemon cannot share a port;
 *  6. only generic requests are armed, so unknown methods get UNIMPLEMENTED;
 *  7. the CQ is shut down only when the shutdown tag has arrived AND no call
 *     or request slot is left.
 */
#include "edges/grpc/grpc_server.h"
#include "edges/grpc/grpc_req.h"
#include "base/secrets.h"
#include "base/sfpd.h"
#include "base/stats_msg.h"
#include "core/status.h"
#include "rpc.h"
#include "sfpd_build.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "sfp/v1/sfp.pb-c.h"

#define N_REQUEST_SLOTS 16
#define MAX_RECV_MESSAGE (64 * 1024)       /* our requests are tiny      */
#define MAX_SEND_MESSAGE (64 * 1024 * 1024) /* big listings              */
#define LIST_DEFAULT 10000u
#define LIST_MAX 100000u
#define HANDSHAKE_TIMEOUT_MS 10000
#define MAX_IDLE_MS (5 * 60 * 1000)

/* What a completion-queue tag points at. */
enum tag_op { OP_REQUEST, OP_CLOSE, OP_RECV, OP_SEND, OP_STATUS, OP_SHUTDOWN };
typedef struct gtag {
    enum tag_op op;
    void *owner;
} gtag;

typedef struct ev {
    gtag *tag;  /* NULL: the queue is shut down */
    int success;
} ev;

typedef struct request_slot {
    sfpd_grpc *g;
    gtag tag;
    bool armed;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
} request_slot;

typedef struct gcall {
    sfpd_grpc *g;
    grpc_call *call;
    sfpd_grpc_method method;     /* SFPD_M_COUNT: unknown path       */
    gtag t_close, t_recv, t_send, t_status;
    int cancelled;               /* written by RECV_CLOSE_ON_SERVER       */
    grpc_byte_buffer *recv_bb;   /* written by RECV_MESSAGE               */
    grpc_byte_buffer *send_bb;   /* owned until its batch completes       */
    bool close_pending, recv_pending, send_pending, status_pending;
    bool close_done, status_started, md_sent, ending;
    /* WatchStats */
    uv_timer_t timer;
    bool timer_init, timer_closed;
    uint64_t interval_ms;
    uint32_t remaining;          /* 0: unbounded */
    char job[SFPD_JOB_ID_MAX + 1];
    sfpd_list link;
} gcall;

struct sfpd_grpc {
    uv_loop_t *loop;
    sfpd_grpc_ctx ctx;           /* what the handlers work with     */
    grpc_server *server;
    grpc_completion_queue *cq;
    int port;
    uint32_t max_calls;
    double grace;
    pthread_t thread;
    bool thread_started, thread_done;
    /* CQ thread -> loop */
    uv_async_t *async;           /* own allocation: freed by its close callback */
    pthread_mutex_t mu;
    ev *q;
    size_t qn, qcap;
    /* loop-thread state */
    request_slot slots[N_REQUEST_SLOTS];
    sfpd_list calls;
    uint32_t n_calls;
    bool draining, shutdown_started, shutdown_tag_done, cq_shutdown;
    bool grace_over, daemon_drained;
    gtag shutdown_tag;
    uv_timer_t grace_timer;
    bool grace_init;
    /* admin_token_file: SetPolicy/EndJob need "authorization: Bearer <t>" */
    char *admin_token; /* NULL: no check */
    size_t admin_token_len;
    /* peer_token_file: the Peer methods need "sfp-peer-token: <t>" */
    char *peer_token;  /* NULL: no Peer service */
    size_t peer_token_len;
};

static void call_maybe_finish(gcall *c);
static void arm_slot(request_slot *s);
static void maybe_shutdown_cq(sfpd_grpc *g);

/* ------------------------------------------------------------- logging */

static void grpc_log_cb(gpr_log_func_args *a)
{
    int level = a->severity == GPR_LOG_SEVERITY_ERROR ? SFPD_LOG_WARN : SFPD_LOG_DEBUG;
    sfpd_log(level, "grpc: %s", a->message);
}

/* --------------------------------------------------------- byte buffers */

/* ------------------------------------------------------------- batches */

static bool start_batch(gcall *c, grpc_op *ops, size_t n, gtag *tag)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        sfpd_warn("grpc: start_batch: error %d", (int)e);
        return false;
    }
    return true;
}

/*
 * Ends the call with status and an optional last message (bb, consumed).
 * Exactly once per call; later requests are ignored.
 */
static void call_end(gcall *c, grpc_status_code code, const char *msg, grpc_byte_buffer *bb)
{
    grpc_op ops[3];
    size_t n = 0;
    grpc_slice details;

    if (c->status_started) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;
    }
    c->status_started = true;
    memset(ops, 0, sizeof(ops));
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n].data.send_initial_metadata.count = 0;
        n++;
        c->md_sent = true;
    }
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        n++;
        c->send_bb = bb;
    }
    details = grpc_slice_from_static_string(msg ? msg : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details = &details;
    n++;
    if (start_batch(c, ops, n, &c->t_status)) {
        c->status_pending = true;
    } else if (c->send_bb) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
    }
}

/* Sends one stream message (bb consumed); false if it could not start. */
static bool call_send(gcall *c, grpc_byte_buffer *bb)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    c->send_bb = bb;
    if (!start_batch(c, &op, 1, &c->t_send)) {
        grpc_byte_buffer_destroy(bb);
        c->send_bb = NULL;
        return false;
    }
    c->send_pending = true;
    return true;
}

/* ------------------------------------------------------------ snapshots */

static const char *const hist_names[] = {
#define SFPD__GH_NAME(id, name, help) name,
    SFPD_HISTOGRAMS(SFPD__GH_NAME)
#undef SFPD__GH_NAME
};

/*
 * The StatsSnapshot message of s (jobs filtered by job if not empty),
 * packed. Every array of the snapshot maps to a repeated field here, in
 * one place; the arrays the message points into live in one allocation.
 * Returns a byte buffer owned by the caller, or NULL.
 */
static grpc_byte_buffer *pack_snapshot(const sfpd_snapshot *s, const char *job, bool draining)
{
    Sfp__V1__StatsSnapshot m = SFP__V1__STATS_SNAPSHOT__INIT;
    Sfp__V1__TierStats tiers[SFPD_MAX_TIERS], *tierp[SFPD_MAX_TIERS];
    Sfp__V1__LatencyStats lat[SFPD_H_COUNT], *latp[SFPD_H_COUNT];
    Sfp__V1__StatsSnapshot__CountersEntry ce[SFPD_C_COUNT], *cep[SFPD_C_COUNT];
    Sfp__V1__PeerServeStats serve = SFP__V1__PEER_SERVE_STATS__INIT;
    char lat_names[SFPD_H_COUNT][32];
    const size_t nt = s->n_tiers;
    const int t_dram = sfpd_snapshot_tier(s, "dram"), t_disk = sfpd_snapshot_tier(s, "disk"),
              t_peer = sfpd_snapshot_tier(s, "peer");
    struct {
        Sfp__V1__JobStats *jobs, **jobp;
        Sfp__V1__JobTierStats *jt, **jtp;
        Sfp__V1__PeerStats *ps, **psp;
        Sfp__V1__PeerClientStats *pc, **pcp;
    } a = {0};
    grpc_byte_buffer *bb = NULL;
    size_t nj = 0;

    /* puts, gets, drops, spills, prefetch_hits/misses, errors,
     * corrupt_frames; bytes_in too, which the gauge below replaces */
    sfpd_snapshot_fill_counters(s, &m.base);
    m.bytes_in = s->bytes_in;
    m.bytes_stored = s->bytes_stored;
    m.compression_ratio = s->compression_ratio;
    m.bits_per_value = s->bits_per_value;
    m.uptime_seconds = s->uptime_seconds;
    m.bytes_in_total = s->counters[SFPD_C_BYTES_IN];
    m.bytes_out_total = s->counters[SFPD_C_BYTES_OUT];
    m.values_held = s->values;
    m.connections = s->connections;
    m.inflight = s->inflight;
    m.taken_unix_nanos = s->taken_unix_ns;
    m.daemon_version = (char *)SFP_VERSION_STRING;
    m.draining = draining;

    for (size_t i = 0; i < nt; i++) {
        sfp__v1__tier_stats__init(&tiers[i]);
        tiers[i].name = (char *)s->tiers[i].name;
        tiers[i].bytes = s->tiers[i].bytes;
        tiers[i].used_bytes = s->tiers[i].used_bytes;
        tiers[i].budget_bytes = s->tiers[i].budget_bytes;
        tiers[i].frames = s->tiers[i].frames;
        tiers[i].high_water_bytes = s->tiers[i].high_water;
        tierp[i] = &tiers[i];
    }
    m.n_tiers = nt;
    m.tiers = tierp;

    if (s->n_jobs && (!(a.jobs = sfpd_calloc(s->n_jobs, sizeof(*a.jobs))) ||
                      !(a.jobp = sfpd_calloc(s->n_jobs, sizeof(*a.jobp))) ||
                      !(a.jt = sfpd_calloc(s->n_jobs * nt, sizeof(*a.jt))) ||
                      !(a.jtp = sfpd_calloc(s->n_jobs * nt, sizeof(*a.jtp)))))
        goto out;
    for (size_t i = 0; i < s->n_jobs; i++) {
        const sfpd_job_snapshot *j = &s->jobs[i];
        Sfp__V1__JobStats *o = &a.jobs[nj];
        if (job && job[0] && strcmp(job, j->job_id) != 0)
            continue;
        sfp__v1__job_stats__init(o);
        o->job_id = (char *)j->job_id;
        o->ranks = j->ranks;
        o->bytes_in = j->bytes_in;
        o->bytes_stored = j->bytes_stored;
        o->compression_ratio = j->bytes_stored ? (double)j->bytes_in / (double)j->bytes_stored : 0;
        o->uid = j->uid;
        o->connections = j->connections;
        o->orphaned = j->orphaned != 0;
        o->frames = j->frames;
        o->values = j->values;
        for (size_t t = 0; t < nt; t++) {
            Sfp__V1__JobTierStats *x = &a.jt[nj * nt + t];
            sfp__v1__job_tier_stats__init(x);
            x->name = (char *)s->tiers[t].name;
            x->bytes = j->tiers[t].bytes;
            x->frames = j->tiers[t].frames;
            a.jtp[nj * nt + t] = x;
        }
        o->n_tiers = nt;
        o->tiers = &a.jtp[nj * nt];
        /* the fields before JobStats.tiers existed */
        o->dram_bytes = t_dram >= 0 ? j->tiers[t_dram].bytes : 0;
        o->disk_bytes = t_disk >= 0 ? j->tiers[t_disk].bytes : 0;
        o->peer_bytes = t_peer >= 0 ? j->tiers[t_peer].bytes : 0;
        a.jobp[nj++] = o;
    }
    m.n_jobs = nj;
    m.jobs = a.jobp;

    for (int i = 0; i < SFPD_H_COUNT; i++) {
        const sfpd_hist *h = &s->hists[i];
        const char *nm = hist_names[i];
        size_t l = strlen(nm);
        if (l > 8 && strcmp(nm + l - 8, "_latency") == 0)
            l -= 8;
        snprintf(lat_names[i], sizeof(lat_names[i]), "%.*s", (int)l, nm);
        sfp__v1__latency_stats__init(&lat[i]);
        lat[i].name = lat_names[i];
        lat[i].count = h->count;
        lat[i].sum_seconds = (double)h->sum_ns / 1e9;
        lat[i].p50_seconds = sfpd_hist_quantile_us(h, 0.5) / 1e6;
        lat[i].p99_seconds = sfpd_hist_quantile_us(h, 0.99) / 1e6;
        latp[i] = &lat[i];
    }
    m.n_latencies = SFPD_H_COUNT;
    m.latencies = latp;

    for (int i = 0; i < SFPD_C_COUNT; i++) {
        sfp__v1__stats_snapshot__counters_entry__init(&ce[i]);
        ce[i].key = (char *)sfpd_counter_name(i);
        ce[i].value = s->counters[i];
        cep[i] = &ce[i];
    }
    m.n_counters = SFPD_C_COUNT;
    m.counters = cep;

    /* network tier: the peers this daemon spills to */
    if (s->n_peers && (!(a.ps = sfpd_calloc(s->n_peers, sizeof(*a.ps))) ||
                       !(a.psp = sfpd_calloc(s->n_peers, sizeof(*a.psp)))))
        goto out;
    for (size_t i = 0; i < s->n_peers; i++) {
        const sfpd_peer_snapshot *p = &s->peers[i];
        Sfp__V1__PeerStats *o = &a.ps[i];
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
        o->lease_seconds = p->lease_seconds;
        o->lease_renewals = p->lease_renewals;
        a.psp[i] = o;
    }
    m.n_peers = s->n_peers;
    m.peers = a.psp;
    /* and the daemons whose frames it holds */
    if (s->n_peer_clients && (!(a.pc = sfpd_calloc(s->n_peer_clients, sizeof(*a.pc))) ||
                              !(a.pcp = sfpd_calloc(s->n_peer_clients, sizeof(*a.pcp)))))
        goto out;
    for (size_t i = 0; i < s->n_peer_clients; i++) {
        const sfpd_peer_client_snapshot *p = &s->peer_clients[i];
        Sfp__V1__PeerClientStats *o = &a.pc[i];
        sfp__v1__peer_client_stats__init(o);
        o->node = (char *)p->node;
        o->held_bytes = p->held_bytes;
        o->held_frames = p->held_frames;
        o->bytes_received = p->bytes_received;
        o->bytes_sent = p->bytes_sent;
        o->refusals = p->refusals;
        o->limit_bytes = p->limit_bytes;
        a.pcp[i] = o;
    }
    m.n_peer_clients = s->n_peer_clients;
    m.peer_clients = a.pcp;
    if (s->held.on) {
        serve.bytes = s->held.bytes;
        serve.frames = s->held.frames;
        serve.budget_bytes = s->held.budget_bytes;
        serve.high_water_bytes = s->held.high_water;
        serve.lease_seconds = s->held.lease_seconds;
        serve.leases_expired = s->held.leases_expired;
        serve.expired_frames = s->held.expired_frames;
        serve.expired_bytes = s->held.expired_bytes;
        m.peer_serve = &serve;
    }

    bb = sfp_rpc_pack(&m.base);
out:
    sfpd_free(a.jobs);
    sfpd_free(a.jobp);
    sfpd_free(a.jt);
    sfpd_free(a.jtp);
    sfpd_free(a.ps);
    sfpd_free(a.psp);
    sfpd_free(a.pc);
    sfpd_free(a.pcp);
    return bb;
}

/* ------------------------------------------------------------- WatchStats */

static void watch_timer_closed(uv_handle_t *h)
{
    gcall *c = h->data;
    c->timer_closed = true;
    call_maybe_finish(c);
}

/* Stops producing and ends the stream (once any send in flight is back). */
static void watch_stop(gcall *c, grpc_status_code code, const char *msg)
{
    c->ending = true;
    if (c->timer_init && !uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, watch_timer_closed);
    if (!c->send_pending)
        call_end(c, code, msg, NULL);
}

static void watch_tick(uv_timer_t *t)
{
    gcall *c = t->data;
    sfpd_snapshot *s = NULL;
    grpc_byte_buffer *bb;
    bool last;

    if (c->ending || c->send_pending)
        return; /* slow reader: skip this tick (back-pressure) */
    if (c->g->ctx.snap.take(c->g->ctx.snap.arg, &s) < 0) {
        watch_stop(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    bb = pack_snapshot(s, c->job, c->g->draining);
    sfpd_snapshot_free(&s);
    if (!bb) {
        watch_stop(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    last = c->remaining == 1;
    if (c->remaining)
        c->remaining--;
    if (last) {
        c->ending = true;
        uv_close((uv_handle_t *)&c->timer, watch_timer_closed);
        call_end(c, GRPC_STATUS_OK, NULL, bb);
        return;
    }
    if (!call_send(c, bb))
        watch_stop(c, GRPC_STATUS_INTERNAL, "send failed");
}

/* WatchStats: the request is checked (grpc_req.c); a stream of snapshots. */
static void start_watch_stats(gcall *c, const void *req)
{
    const Sfp__V1__WatchStatsRequest *r = req;
    c->interval_ms = sfpd_grpc_watch_interval_ms(r->interval_seconds);
    c->remaining = r->count;
    snprintf(c->job, sizeof(c->job), "%s", r->job_id);
    if (uv_timer_init(c->g->loop, &c->timer) != 0) {
        call_end(c, GRPC_STATUS_INTERNAL, "timer", NULL);
        return;
    }
    c->timer_init = true;
    c->timer.data = c;
    uv_timer_start(&c->timer, watch_tick, 0, c->interval_ms);
}

/* --------------------------------------------------------------- handlers */

grpc_status_code sfpd_grpc_status_of(int e)
{
    switch (e) {
    case 0: return GRPC_STATUS_OK;
    case SFPD_E_INVALID: return GRPC_STATUS_INVALID_ARGUMENT;
    case SFPD_E_NOT_FOUND: return GRPC_STATUS_NOT_FOUND;
    case SFPD_E_PERMISSION: return GRPC_STATUS_PERMISSION_DENIED;
    case SFPD_E_QUOTA: case SFPD_E_LIMIT: case SFPD_E_NO_MEMORY: case SFPD_E_DISK_FULL:
    case SFPD_E_TOO_LARGE: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case SFPD_E_CORRUPT: case SFPD_E_LOST: return GRPC_STATUS_DATA_LOSS;
    case SFPD_E_SHUTTING_DOWN: return GRPC_STATUS_UNAVAILABLE;
    default: return GRPC_STATUS_INTERNAL;
    }
}

grpc_status_code sfpd_grpc_reply(const ProtobufCMessage *m, grpc_byte_buffer **reply, const char **msg)
{
    if ((*reply = sfp_rpc_pack(m)))
        return GRPC_STATUS_OK;
    *msg = "out of memory";
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
}

grpc_status_code sfpd_grpc_do_get_stats(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                        const char **msg)
{
    const Sfp__V1__GetStatsRequest *r = req;
    sfpd_snapshot *s = NULL;

    if (ctx->snap.take(ctx->snap.arg, &s) < 0) {
        *msg = "out of memory";
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    *reply = pack_snapshot(s, r->job_id, ctx->draining);
    sfpd_snapshot_free(&s);
    if (*reply)
        return GRPC_STATUS_OK;
    *msg = "out of memory";
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
}

grpc_status_code sfpd_grpc_do_list_tensors(sfpd_grpc_ctx *ctx, const void *req,
                                           grpc_byte_buffer **reply, const char **msg)
{
    const Sfp__V1__ListTensorsRequest *r = req;
    Sfp__V1__ListTensorsResponse m = SFP__V1__LIST_TENSORS_RESPONSE__INIT;
    sfpd_tensor_snapshot *v = NULL;
    Sfp__V1__TensorInfo *ti = NULL, **tip = NULL;
    size_t n = 0, limit = r->limit ? r->limit : LIST_DEFAULT;
    uint64_t total = 0;
    grpc_status_code st = GRPC_STATUS_RESOURCE_EXHAUSTED;

    *msg = "out of memory";
    if (limit > LIST_MAX)
        limit = LIST_MAX;
    if (sfpd_store_list_tensors(ctx->store, r->job_id, limit, &v, &n, &total) < 0)
        goto out;
    if (n && (!(ti = sfpd_calloc(n, sizeof(*ti))) || !(tip = sfpd_calloc(n, sizeof(*tip)))))
        goto out;
    for (size_t i = 0; i < n; i++) {
        sfp__v1__tensor_info__init(&ti[i]);
        ti[i].job_id = v[i].job_id;
        ti[i].rank = v[i].rank;
        ti[i].tensor = v[i].name;
        ti[i].step = v[i].step;
        ti[i].dtype = (char *)sfp_dtype_name((sfp_dtype)v[i].dtype);
        ti[i].count = v[i].count;
        ti[i].mantissa_bits = v[i].mbits;
        ti[i].exponent_bits = v[i].ebits;
        ti[i].coder = (char *)sfp_coder_name((sfp_coder)v[i].coder);
        ti[i].bytes_in = v[i].raw_bytes;
        ti[i].stored_bytes = v[i].frame_bytes;
        ti[i].tier = (char *)v[i].tier;
        tip[i] = &ti[i];
    }
    m.n_tensors = n;
    m.tensors = tip;
    m.total = total;
    m.truncated = total > n;
    st = sfpd_grpc_reply(&m.base, reply, msg);
out:
    sfpd_free(tip);
    sfpd_free(ti);
    sfpd_free(v);
    return st;
}

grpc_status_code sfpd_grpc_do_get_policy(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                         const char **msg)
{
    const Sfp__V1__GetPolicyRequest *r = req;
    Sfp__V1__GetPolicyResponse m = SFP__V1__GET_POLICY_RESPONSE__INIT;
    Sfp__V1__Policy p;
    sfpd_policy pol;

    m.is_default = !sfpd_policy_get(ctx->policies, r->job_id, &pol);
    sfpd_grpc_policy_to_proto(&pol, &p);
    m.job_id = r->job_id;
    m.policy = &p;
    return sfpd_grpc_reply(&m.base, reply, msg);
}

grpc_status_code sfpd_grpc_do_set_policy(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                         const char **msg)
{
    const Sfp__V1__SetPolicyRequest *r = req;
    Sfp__V1__SetPolicyResponse m = SFP__V1__SET_POLICY_RESPONSE__INIT;
    Sfp__V1__Policy out, empty = SFP__V1__POLICY__INIT;
    sfpd_policy in, stored;
    int e;

    if ((*msg = sfpd_grpc_policy_from_proto(r->policy ? r->policy : &empty, &in)))
        return GRPC_STATUS_INVALID_ARGUMENT;
    if ((e = sfpd_policy_set(ctx->policies, r->job_id, &in, &stored)) < 0) {
        *msg = e == SFPD_E_LIMIT ? "too many job policies" : sfpd_strerror(e);
        return sfpd_grpc_status_of(e);
    }
    sfpd_info("grpc: SetPolicy job %s generation %llu", r->job_id,
              (unsigned long long)stored.generation);
    sfpd_grpc_policy_to_proto(&stored, &out);
    m.job_id = r->job_id;
    m.policy = &out;
    return sfpd_grpc_reply(&m.base, reply, msg);
}

grpc_status_code sfpd_grpc_do_end_job(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                      const char **msg)
{
    const Sfp__V1__EndJobRequest *r = req;
    Sfp__V1__EndJobResponse m = SFP__V1__END_JOB_RESPONSE__INIT;
    uint64_t frames = 0, bytes = 0;

    if (sfpd_store_end_job_id(ctx->store, r->job_id, &frames, &bytes) < 0) {
        *msg = "no such job";
        return GRPC_STATUS_NOT_FOUND;
    }
    sfpd_info("grpc: EndJob %s: %llu frames, %llu bytes freed", r->job_id,
              (unsigned long long)frames, (unsigned long long)bytes);
    m.job_id = r->job_id;
    m.frames_freed = frames;
    m.bytes_freed = bytes;
    return sfpd_grpc_reply(&m.base, reply, msg);
}

grpc_status_code sfpd_grpc_do_health_check(sfpd_grpc_ctx *ctx, const void *req,
                                           grpc_byte_buffer **reply, const char **msg)
{
    const Grpc__Health__V1__HealthCheckRequest *r = req;
    Grpc__Health__V1__HealthCheckResponse m = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    if (r->service[0] && strcmp(r->service, "sfp.v1.Stats") != 0 &&
        strcmp(r->service, "sfp.v1.Control") != 0) {
        *msg = "unknown service";
        return GRPC_STATUS_NOT_FOUND;
    }
    m.status = ctx->draining ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                             : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    return sfpd_grpc_reply(&m.base, reply, msg);
}

/* ---------------------------------------------------------------- dispatch */

typedef grpc_status_code (*unary_fn)(sfpd_grpc_ctx *, const void *, grpc_byte_buffer **, const char **);
typedef void (*stream_fn)(gcall *c, const void *req);

/* The handlers of grpc_methods.h's rows. */
static const struct {
    unary_fn unary;
    stream_fn stream;
} handlers[SFPD_M_COUNT] = {
#define SFPD__HANDLER_UNARY(name) .unary = sfpd_grpc_do_##name
#define SFPD__HANDLER_STREAM(name) .stream = start_##name
#define SFPD__HANDLER(id, path, req, auth, kind, name) [SFPD_M_##id] = {SFPD__HANDLER_##kind(name)},
    SFPD_GRPC_METHODS(SFPD__HANDLER)
#undef SFPD__HANDLER
#undef SFPD__HANDLER_UNARY
#undef SFPD__HANDLER_STREAM
};

/* Decodes and checks the request bytes of method m (grpc_req.c). */
static ProtobufCMessage *decode_request(sfpd_grpc_method m, const uint8_t *data, size_t len,
                                        const char **why)
{
    ProtobufCMessage *msg = NULL;
    if (sfpd_grpc_req_decode(m, data, len, &msg, why) < 0)
        return NULL;
    return msg;
}

grpc_status_code sfpd_grpc_serve_unary(sfpd_grpc_ctx *ctx, sfpd_grpc_method m, const uint8_t *data,
                                       size_t len, grpc_byte_buffer **reply, const char **msg)
{
    ProtobufCMessage *req;
    grpc_status_code st;

    *reply = NULL;
    *msg = NULL;
    if ((unsigned)m >= SFPD_M_COUNT || !handlers[m].unary ||
        (sfpd_grpc_method_auth(m) == SFPD_AUTH_PEER && !ctx->held)) {
        *msg = "unknown method";
        return GRPC_STATUS_UNIMPLEMENTED;
    }
    if (!(req = decode_request(m, data, len, msg)))
        return GRPC_STATUS_INVALID_ARGUMENT;
    st = handlers[m].unary(ctx, req, reply, msg);
    protobuf_c_message_free_unpacked(req, NULL);
    if (st != GRPC_STATUS_OK && *reply) {
        grpc_byte_buffer_destroy(*reply);
        *reply = NULL;
    }
    return st;
}

/* The request message of c has arrived (or not: bb NULL). */
static void on_request_message(gcall *c, int success)
{
    grpc_byte_buffer *bb = c->recv_bb;
    grpc_byte_buffer *reply = NULL;
    grpc_byte_buffer_reader r;
    grpc_status_code st;
    const char *why = NULL;
    grpc_slice s;

    c->recv_bb = NULL;
    if (!success || !bb) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        call_end(c, success ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_CANCELLED,
                 success ? "request message missing" : "call failed", NULL);
        return;
    }
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        grpc_byte_buffer_destroy(bb);
        call_end(c, GRPC_STATUS_INVALID_ARGUMENT, "malformed request message", NULL);
        return;
    }
    s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    grpc_byte_buffer_destroy(bb);
    c->g->ctx.draining = c->g->draining;
    if (handlers[c->method].stream) {
        ProtobufCMessage *msg = decode_request(c->method, GRPC_SLICE_START_PTR(s),
                                               GRPC_SLICE_LENGTH(s), &why);
        grpc_slice_unref(s);
        if (!msg) {
            call_end(c, GRPC_STATUS_INVALID_ARGUMENT, why, NULL);
            return;
        }
        handlers[c->method].stream(c, msg);
        protobuf_c_message_free_unpacked(msg, NULL);
        return;
    }
    st = sfpd_grpc_serve_unary(&c->g->ctx, c->method, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s),
                               &reply, &why);
    grpc_slice_unref(s);
    call_end(c, st, why, reply);
}

/* ------------------------------------------------------------------ calls */

/* The one place a call is freed (notes §6.3). */
static void call_maybe_finish(gcall *c)
{
    sfpd_grpc *g = c->g;
    if (!c->close_done || !c->status_started || c->status_pending || c->recv_pending ||
        c->send_pending || c->close_pending)
        return;
    if (c->timer_init && !c->timer_closed) {
        if (!uv_is_closing((uv_handle_t *)&c->timer))
            uv_close((uv_handle_t *)&c->timer, watch_timer_closed);
        return;
    }
    if (c->send_bb)
        grpc_byte_buffer_destroy(c->send_bb);
    if (c->recv_bb)
        grpc_byte_buffer_destroy(c->recv_bb);
    grpc_call_unref(c->call);
    sfpd_list_remove(&c->link);
    g->n_calls--;
    sfpd_free(c);
    maybe_shutdown_cq(g);
}

/*
 * The admin credential (option admin_token_file) of a call's metadata:
 * GRPC_STATUS_OK when no token is configured or the call carries exactly
 * one "authorization: Bearer <token>" that matches (constant-time compare);
 * UNAUTHENTICATED without one, PERMISSION_DENIED with a wrong one.
 */
static grpc_status_code admin_check(const sfpd_grpc *g, const grpc_metadata_array *md,
                                    const char **why)
{
    const grpc_slice *val = NULL;
    size_t n = 0;

    if (!g->admin_token)
        return GRPC_STATUS_OK;
    for (size_t i = 0; i < md->count; i++)
        if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") == 0) {
            val = &md->metadata[i].value;
            n++;
        }
    if (n == 0) {
        *why = "this call needs the admin token (authorization: Bearer ...)";
        return GRPC_STATUS_UNAUTHENTICATED;
    }
    if (n > 1 || !sfpd_grpc_bearer_ok((const char *)GRPC_SLICE_START_PTR(*val),
                                      GRPC_SLICE_LENGTH(*val), g->admin_token,
                                      g->admin_token_len)) {
        sfpd_warn("grpc: admin call refused: wrong admin token");
        *why = "admin token rejected";
        return GRPC_STATUS_PERMISSION_DENIED;
    }
    return GRPC_STATUS_OK;
}

/* Whether the metadata carries the peer token (constant time). */
static bool peer_authorized(const sfpd_grpc *g, const grpc_metadata_array *md)
{
    bool ok = false;
    if (!g->peer_token)
        return false;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *m = &md->metadata[i];
        if (grpc_slice_str_cmp(m->key, SFPD_PEER_TOKEN_MD) != 0)
            continue;
        ok |= sfpd_secret_eq(GRPC_SLICE_START_PTR(m->value), GRPC_SLICE_LENGTH(m->value),
                             g->peer_token, g->peer_token_len);
    }
    return ok;
}

/* A new call arrived in slot s; takes over its call. */
static void call_accept(request_slot *s)
{
    sfpd_grpc *g = s->g;
    sfpd_grpc_method m = sfpd_grpc_method_find((const char *)GRPC_SLICE_START_PTR(s->details.method),
                                               GRPC_SLICE_LENGTH(s->details.method));
    sfpd_grpc_auth auth = sfpd_grpc_method_auth(m);
    grpc_op ops[2];
    gcall *c;
    grpc_status_code admin_code;
    const char *admin_why = NULL;

    if (auth == SFPD_AUTH_PEER && !g->ctx.held)
        m = SFPD_M_COUNT; /* no Peer service without peering = 1 */
    c = sfpd_calloc(1, sizeof(*c));
    if (!c) {
        /* cannot track it: cancel and let gRPC clean up */
        grpc_call_cancel_with_status(s->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
        grpc_call_unref(s->call);
        s->call = NULL;
        return;
    }
    c->g = g;
    c->call = s->call;
    s->call = NULL;
    c->method = m;
    c->t_close = (gtag){OP_CLOSE, c};
    c->t_recv = (gtag){OP_RECV, c};
    c->t_send = (gtag){OP_SEND, c};
    c->t_status = (gtag){OP_STATUS, c};
    sfpd_list_push_back(&g->calls, &c->link);
    g->n_calls++;

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[0].data.recv_close_on_server.cancelled = &c->cancelled;
    if (start_batch(c, ops, 1, &c->t_close))
        c->close_pending = true;
    else
        c->close_done = true;

    if (m == SFPD_M_COUNT) {
        call_end(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method", NULL);
    } else if (auth == SFPD_AUTH_PEER && !peer_authorized(g, &s->md)) {
        /* before the (possibly large) message is read */
        call_end(c, GRPC_STATUS_UNAUTHENTICATED, "missing or wrong peer token", NULL);
    } else if (auth == SFPD_AUTH_ADMIN &&
               (admin_code = admin_check(g, &s->md, &admin_why)) != GRPC_STATUS_OK) {
        call_end(c, admin_code, admin_why, NULL);
    } else if (g->n_calls > g->max_calls) {
        call_end(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many gRPC calls (grpc_max_calls)", NULL);
    } else if (g->shutdown_started) {
        call_end(c, GRPC_STATUS_UNAVAILABLE, "sfpd is shutting down", NULL);
    } else {
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_RECV_MESSAGE;
        ops[1].data.recv_message.recv_message = &c->recv_bb;
        c->md_sent = true;
        if (start_batch(c, ops, 2, &c->t_recv))
            c->recv_pending = true;
        else
            call_end(c, GRPC_STATUS_INTERNAL, "start_batch failed", NULL);
    }
    call_maybe_finish(c);
}

static void on_call_event(gtag *t, int success)
{
    gcall *c = t->owner;
    switch (t->op) {
    case OP_CLOSE:
        c->close_pending = false;
        c->close_done = true;
        if (c->cancelled && c->timer_init)
            watch_stop(c, GRPC_STATUS_CANCELLED, "cancelled");
        break;
    case OP_RECV:
        c->recv_pending = false;
        on_request_message(c, success);
        break;
    case OP_SEND:
        c->send_pending = false;
        if (c->send_bb) {
            grpc_byte_buffer_destroy(c->send_bb);
            c->send_bb = NULL;
        }
        if (!success)
            watch_stop(c, GRPC_STATUS_UNAVAILABLE, "send failed");
        else if (c->ending)
            call_end(c, GRPC_STATUS_CANCELLED, "cancelled", NULL);
        break;
    case OP_STATUS:
        c->status_pending = false;
        if (c->send_bb) {
            grpc_byte_buffer_destroy(c->send_bb);
            c->send_bb = NULL;
        }
        break;
    default:
        break;
    }
    call_maybe_finish(c);
}

/* -------------------------------------------------------------- requests */

static void arm_slot(request_slot *s)
{
    sfpd_grpc *g = s->g;
    grpc_call_error e;
    if (g->shutdown_started || s->armed)
        return;
    s->call = NULL;
    grpc_call_details_init(&s->details);
    grpc_metadata_array_init(&s->md);
    e = grpc_server_request_call(g->server, &s->call, &s->details, &s->md, g->cq, g->cq, &s->tag);
    if (e != GRPC_CALL_OK) {
        sfpd_err("grpc: request_call: error %d", (int)e);
        grpc_call_details_destroy(&s->details);
        grpc_metadata_array_destroy(&s->md);
        return;
    }
    s->armed = true;
}

static void on_request_event(request_slot *s, int success)
{
    sfpd_grpc *g = s->g;
    s->armed = false;
    if (success && s->call)
        call_accept(s); /* notes §6.2: only a successful slot has a call */
    grpc_call_details_destroy(&s->details);
    grpc_metadata_array_destroy(&s->md);
    arm_slot(s);
    maybe_shutdown_cq(g);
}

/* ------------------------------------------------------------- shutdown */

static void maybe_shutdown_cq(sfpd_grpc *g)
{
    if (!g->shutdown_started || !g->shutdown_tag_done || g->cq_shutdown || g->n_calls)
        return;
    for (size_t i = 0; i < N_REQUEST_SLOTS; i++)
        if (g->slots[i].armed)
            return;
    g->cq_shutdown = true;
    grpc_completion_queue_shutdown(g->cq); /* notes §6.7 */
}

static void begin_shutdown(sfpd_grpc *g)
{
    if (g->shutdown_started)
        return;
    g->shutdown_started = true;
    sfpd_info("grpc: shutting down (%u calls open)", g->n_calls);
    grpc_server_shutdown_and_notify(g->server, g->cq, &g->shutdown_tag);
    grpc_server_cancel_all_calls(g->server);
}

static void grace_closed(uv_handle_t *h)
{
    (void)h;
}

static void grace_cb(uv_timer_t *t)
{
    sfpd_grpc *g = t->data;
    uv_close((uv_handle_t *)t, grace_closed);
    g->grace_over = true;
    if (g->daemon_drained)
        begin_shutdown(g);
}

void sfpd_grpc_drain(sfpd_grpc *g)
{
    if (!g || g->draining)
        return;
    g->draining = true;
    sfpd_info("grpc: health NOT_SERVING; shutting down after the drain, at least %.2f s from now",
              g->grace);
    if (g->grace > 0 && uv_timer_init(g->loop, &g->grace_timer) == 0) {
        g->grace_init = true;
        g->grace_timer.data = g;
        uv_timer_start(&g->grace_timer, grace_cb, (uint64_t)(g->grace * 1000), 0);
    } else {
        g->grace_over = true;
    }
}

void sfpd_grpc_daemon_drained(sfpd_grpc *g)
{
    if (!g || g->daemon_drained)
        return;
    g->daemon_drained = true;
    if (!g->draining) {
        /* no SIGTERM seen (start-up failure): stop now */
        g->draining = true;
        g->grace_over = true;
    }
    if (g->grace_over)
        begin_shutdown(g);
}

/* ------------------------------------------------------------ CQ thread */

static void *cq_main(void *arg)
{
    sfpd_grpc *g = arg;
    for (;;) {
        grpc_event e = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        bool down = e.type == GRPC_QUEUE_SHUTDOWN;
        if (e.type == GRPC_QUEUE_TIMEOUT)
            continue;
        pthread_mutex_lock(&g->mu);
        while (g->qn == g->qcap) {
            size_t cap = g->qcap ? g->qcap * 2 : 64;
            ev *q = realloc(g->q, cap * sizeof(*q));
            if (q) {
                g->q = q;
                g->qcap = cap;
            } else {
                /* never drop an event: a call would never finish */
                pthread_mutex_unlock(&g->mu);
                usleep(1000);
                pthread_mutex_lock(&g->mu);
            }
        }
        g->q[g->qn].tag = down ? NULL : e.tag;
        g->q[g->qn].success = e.success;
        g->qn++;
        pthread_mutex_unlock(&g->mu);
        uv_async_send(g->async);
        if (down)
            break;
    }
    return NULL;
}

static void async_closed(uv_handle_t *h)
{
    sfpd_free(h);
}

/* Loop thread: takes every queued event and dispatches it. */
static void async_cb(uv_async_t *a)
{
    sfpd_grpc *g = a->data;
    ev local[256];
    for (;;) {
        size_t n;
        bool down = false;
        pthread_mutex_lock(&g->mu);
        n = g->qn < SFPD_ARRAY_SIZE(local) ? g->qn : SFPD_ARRAY_SIZE(local);
        memcpy(local, g->q, n * sizeof(*local));
        memmove(g->q, g->q + n, (g->qn - n) * sizeof(*local));
        g->qn -= n;
        pthread_mutex_unlock(&g->mu);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            gtag *t = local[i].tag;
            if (!t) {
                down = true;
                continue;
            }
            if (t->op == OP_REQUEST)
                on_request_event(t->owner, local[i].success);
            else if (t->op == OP_SHUTDOWN) {
                g->shutdown_tag_done = true;
                maybe_shutdown_cq(g);
            } else
                on_call_event(t, local[i].success);
        }
        if (down) {
            pthread_join(g->thread, NULL);
            g->thread_started = false;
            g->thread_done = true;
            uv_close((uv_handle_t *)g->async, async_closed);
            g->async = NULL;
            sfpd_info("grpc: stopped");
            return;
        }
    }
}

/* ----------------------------------------------------------- life cycle */

static void free_admin_token(sfpd_grpc *g)
{
    sfpd_free_secret(g->admin_token, g->admin_token_len);
    g->admin_token = NULL;
    sfpd_free_secret(g->peer_token, g->peer_token_len);
    g->peer_token = NULL;
}

static void release_core(sfpd_grpc *g)
{
    if (g->server)
        grpc_server_destroy(g->server);
    if (g->cq) {
        if (!g->cq_shutdown) {
            grpc_completion_queue_shutdown(g->cq);
            while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
                   GRPC_QUEUE_SHUTDOWN)
                ;
        }
        grpc_completion_queue_destroy(g->cq);
    }
    g->server = NULL;
    g->cq = NULL;
}

#define ADMIN_TOKEN_MIN 16

/* Option admin_token_file: the token is the file's first line. */
static int load_admin_token(sfpd_grpc *g, const sfpd_config *cfg)
{
    int r;

    if (!cfg->admin_token_file[0])
        return 0;
    if ((r = sfpd_load_token("admin_token_file", cfg->admin_token_file, ADMIN_TOKEN_MIN,
                             &g->admin_token, &g->admin_token_len)) < 0)
        return r;
    if (!cfg->grpc_tls_cert[0] && strncmp(cfg->grpc_listen, "127.", 4) != 0 &&
        strncmp(cfg->grpc_listen, "[::1]", 5) != 0 && strncmp(cfg->grpc_listen, "localhost:", 10) != 0 &&
        strncmp(cfg->grpc_listen, "unix:", 5) != 0)
        sfpd_warn("grpc: the admin token travels in clear text: %s is not loopback and TLS is off",
                  cfg->grpc_listen);
    sfpd_info("grpc: SetPolicy and EndJob require the admin token");
    return 0;
}

/* Plaintext, or TLS with grpc_tls_cert/key (and client certificates
 * required and verified against grpc_tls_client_ca when it is set). */
static int server_credentials(const sfpd_config *cfg, grpc_server_credentials **out)
{
    char *cert = NULL, *key = NULL, *ca = NULL;
    size_t cert_n = 0, key_n = 0, ca_n = 0;
    grpc_ssl_pem_key_cert_pair pair;
    int r;

    *out = NULL;
    if (!cfg->grpc_tls_cert[0] && !cfg->grpc_tls_key[0] && !cfg->grpc_tls_client_ca[0]) {
        *out = grpc_insecure_server_credentials_create();
        return *out ? 0 : -ENOMEM;
    }
    if (!cfg->grpc_tls_cert[0] || !cfg->grpc_tls_key[0]) {
        sfpd_err("grpc: TLS needs both grpc_tls_cert and grpc_tls_key%s",
                 cfg->grpc_tls_client_ca[0] ? " (grpc_tls_client_ca alone is not enough)" : "");
        return -EINVAL;
    }
    if ((r = sfpd_load_pem("grpc_tls_cert", cfg->grpc_tls_cert, false, &cert, &cert_n)) < 0 ||
        (r = sfpd_load_pem("grpc_tls_key", cfg->grpc_tls_key, true, &key, &key_n)) < 0 ||
        (cfg->grpc_tls_client_ca[0] &&
         (r = sfpd_load_pem("grpc_tls_client_ca", cfg->grpc_tls_client_ca, false, &ca, &ca_n)) < 0))
        goto out;
    pair.private_key = key;
    pair.cert_chain = cert;
    /* the credentials keep their own copies of the PEM texts */
    *out = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1,
        ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    r = *out ? 0 : -EINVAL;
    if (*out)
        sfpd_info("grpc: TLS on, client certificates %s", ca ? "required and verified" : "not requested");
    else
        sfpd_err("grpc: TLS credentials could not be created from %s / %s", cfg->grpc_tls_cert,
                 cfg->grpc_tls_key);
out:
    sfpd_free_secret(key, key_n);
    sfpd_free_secret(cert, cert_n);
    sfpd_free_secret(ca, ca_n);
    return r;
}

int sfpd_grpc_start(uv_loop_t *loop, const sfpd_config *cfg, sfpd_store *store,
                    sfpd_policies *policies, sfpd_snapshot_source snap, sfpd_grpc **out)
{
    sfpd_grpc *g;
    grpc_arg args[5];
    grpc_channel_args cargs;
    grpc_server_credentials *creds;
    int r;

    *out = NULL;
    if (!cfg->grpc_listen || !cfg->grpc_listen[0]) {
        sfpd_info("grpc: disabled (grpc_listen is empty)");
        return 0;
    }
    if (!(g = sfpd_calloc(1, sizeof(*g))))
        return -ENOMEM;
    g->loop = loop;
    g->ctx.store = store;
    g->ctx.policies = policies;
    g->ctx.held = sfpd_store_held(store);
    g->ctx.snap = snap;
    g->max_calls = (uint32_t)cfg->grpc_max_calls;
    g->grace = cfg->grpc_drain_grace;
    g->shutdown_tag = (gtag){OP_SHUTDOWN, g};
    sfpd_list_init(&g->calls);
    pthread_mutex_init(&g->mu, NULL);

    gpr_set_log_function(grpc_log_cb);
    grpc_init();
    g->cq = grpc_completion_queue_create_for_next(NULL);
    args[0] = sfp_rpc_int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0);
    args[1] = sfp_rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, MAX_RECV_MESSAGE);
    if (g->ctx.held && (r = sfpd_load_token("peer_token_file", cfg->peer_token_file, 1,
                                            &g->peer_token, &g->peer_token_len)) < 0)
        goto fail_peer;
    if (g->ctx.held) /* frames arrive in PutFrame */
        args[1].value.integer = SFPD_PEER_MAX_MESSAGE;
    args[2] = sfp_rpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, MAX_SEND_MESSAGE);
    /* connections that never finish the HTTP/2 handshake, or sit idle
     * without a call, are closed instead of piling up */
    args[3] = sfp_rpc_int_arg(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS);
    args[4] = sfp_rpc_int_arg(GRPC_ARG_MAX_CONNECTION_IDLE_MS, MAX_IDLE_MS);
    cargs.num_args = SFPD_ARRAY_SIZE(args);
    cargs.args = args;
    g->server = grpc_server_create(&cargs, NULL);
    grpc_server_register_completion_queue(g->server, g->cq, NULL);
    if ((r = load_admin_token(g, cfg)) < 0 || (r = server_credentials(cfg, &creds)) < 0)
        goto fail;
    g->port = grpc_server_add_http2_port(g->server, cfg->grpc_listen, creds);
    grpc_server_credentials_release(creds);
    if (g->port == 0) {
        sfpd_err("grpc: cannot listen on %s (address invalid or in use%s)", cfg->grpc_listen,
                 cfg->grpc_tls_cert[0] ? ", or TLS certificate/key unusable" : "");
        r = -EADDRINUSE;
        goto fail;
    }
    if (strncmp(cfg->grpc_listen, "unix:", 5) == 0)
        g->port = 0;
    if (!(g->async = sfpd_malloc(sizeof(*g->async))) || uv_async_init(loop, g->async, async_cb) != 0) {
        sfpd_free(g->async);
        g->async = NULL;
        r = -ENOMEM;
        goto fail;
    }
    g->async->data = g;
    grpc_server_start(g->server);
    if (pthread_create(&g->thread, NULL, cq_main, g) != 0) {
        r = -EAGAIN;
        g->shutdown_started = true;
        grpc_server_shutdown_and_notify(g->server, g->cq, &g->shutdown_tag);
        grpc_server_cancel_all_calls(g->server);
        while (grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).tag !=
               &g->shutdown_tag)
            ;
        goto fail;
    }
    g->thread_started = true;
    pthread_setname_np(g->thread, "sfpd-grpc-cq");
    for (size_t i = 0; i < N_REQUEST_SLOTS; i++) {
        g->slots[i].g = g;
        g->slots[i].tag = (gtag){OP_REQUEST, &g->slots[i]};
        arm_slot(&g->slots[i]);
    }
    if (g->port)
        sfpd_info("grpc: listening on %s (port %d)", cfg->grpc_listen, g->port);
    else
        sfpd_info("grpc: listening on %s", cfg->grpc_listen);
    *out = g;
    return 0;

fail:
    if (g->async)
        uv_close((uv_handle_t *)g->async, async_closed);
fail_peer:
    release_core(g);
    grpc_shutdown();
    pthread_mutex_destroy(&g->mu);
    free_admin_token(g);
    sfpd_free(g);
    return r;
}

void sfpd_grpc_destroy(sfpd_grpc **pg)
{
    sfpd_grpc *g = pg ? *pg : NULL;
    if (!g)
        return;
    *pg = NULL;
    if (g->thread_started) {
        /* the loop stopped before the drain finished: finish it here */
        sfpd_warn("grpc: destroyed before its drain finished");
        begin_shutdown(g);
        if (!g->cq_shutdown) {
            g->cq_shutdown = true;
            grpc_completion_queue_shutdown(g->cq);
        }
        pthread_join(g->thread, NULL);
    }
    release_core(g);
    free(g->q);
    pthread_mutex_destroy(&g->mu);
    grpc_shutdown();
    free_admin_token(g);
    sfpd_free(g);
}
