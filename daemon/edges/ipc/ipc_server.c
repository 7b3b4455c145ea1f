/*
 * ipc_server.c - the worker edge: listener, connections, request dispatch.
 *
 * Sockets are driven with uv_poll and plain recvmsg/send, because the
 * shared-memory fd arrives as SCM_RIGHTS ancillary data with Hello and
 * libuv's stream API only hands over socket fds. Each connection processes
 * one request at a time (replies come back in request order; clients may
 * pipeline); connections run concurrently. Nothing here blocks: encode,
 * decode and disk I/O run on the libuv pool.
 */
#include "edges/ipc/ipc_server.h"
#include "edges/ipc/ipc.h"
#include "base/sfpd.h"
#include "base/stats_msg.h"
#include "core/status.h"
#include "sfpd_build.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define ST(x) SFP__IPC__V1__STATUS__##x
#define MAX_PROTOCOL_ERRORS 16
#define WBUF_HIGH (1u << 20)
typedef struct conn conn;

struct sfpd_ipc_server {
    uv_loop_t *loop;
    const sfpd_config *cfg;
    sfpd_store *store;
    const sfpd_policies *policies;
    sfpd_snapshot_source snap;
    int listen_fd;
    uv_poll_t listen_poll;
    bool listening;
    uv_timer_t tick, drain_timer, accept_retry;
    sfpd_list conns;
    uint32_t n_conns;
    uint32_t inflight; /* server-level pool work (Encode/Decode) */
    bool draining, drained;
    void (*drained_cb)(void *);
    void *drained_arg;
    uid_t self_uid;
};

struct conn {
    sfpd_ipc_server *srv;
    int fd;
    uv_poll_t poll;
    int events;
    bool dead;          /* fd closed or closing; no more I/O           */
    bool closing;       /* read no more; close once idle and flushed   */
    bool busy;          /* a request is in flight                      */
    bool dispatching;   /* inside dispatch(): a request may complete
                         * before the store call returns              */
    bool processing;    /* inside conn_process(): replies wait in wbuf
                         * and go out in one send at its end           */
    int deny_status;    /* non-zero: answer the first request with it  */
    int refs;           /* 1 for the socket + 1 per request in flight  */
    uint32_t uid, gid;
    int32_t pid;
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    int pending_fd;     /* fd received with the bytes not yet parsed   */
    sfpd_job *job;
    uint32_t rank;
    sfpd_shm *shm;
    uint64_t req_id;
    int req_type;
    unsigned protocol_errors;
    uint64_t partial_since;
    sfpd_list link;
    char job_id[SFPD_JOB_ID_MAX + 1]; /* from Hello */
    uint64_t opened_ns;
};

static void conn_process(conn *c);
static void conn_update_poll(conn *c);
static void conn_close(conn *c);
static void maybe_finish_drain(sfpd_ipc_server *srv);

/* -------------------------------------------------------------- replies */

static void conn_unref(conn *c)
{
    if (--c->refs > 0)
        return;
    sfpd_free(c->rbuf);
    sfpd_free(c->wbuf);
    sfpd_free(c);
}

static void conn_flush(conn *c)
{
    while (!c->dead && c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            sfpd_debug("conn pid %d: send: %s", c->pid, strerror(errno));
            conn_close(c);
            return;
        }
        c->woff += (size_t)n;
    }
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (!c->dead && c->closing && !c->busy && c->wlen == 0)
        conn_close(c);
    else if (!c->dead)
        conn_update_poll(c);
}

static void conn_send(conn *c, const sfpd_response *r)
{
    uint8_t *b;
    size_t n;

    if (c->dead)
        return;
    if (sfpd_ipc_encode(r, &b, &n) < 0) {
        conn_close(c);
        return;
    }
    if (c->wlen + n > c->wcap) {
        size_t cap = c->wcap ? c->wcap : 4096;
        uint8_t *g;
        while (cap < c->wlen + n)
            cap *= 2;
        g = sfpd_realloc(c->wbuf, cap);
        if (!g) {
            sfpd_free(b);
            conn_close(c);
            return;
        }
        c->wbuf = g;
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, b, n);
    c->wlen += n;
    sfpd_free(b);
    if (!c->processing)
        conn_flush(c);
}

/* The IPC Status of a core status (core/status.h): the one place the two
 * meet. */
static int ipc_status(int core)
{
    static const int map[SFPD_E_COUNT + 1] = {
        [-SFPD_E_INVALID] = ST(E_INVALID),       [-SFPD_E_NOT_FOUND] = ST(E_NOT_FOUND),
        [-SFPD_E_PERMISSION] = ST(E_PERMISSION), [-SFPD_E_QUOTA] = ST(E_QUOTA),
        [-SFPD_E_NO_MEMORY] = ST(E_NO_MEMORY),   [-SFPD_E_DISK_FULL] = ST(E_DISK_FULL),
        [-SFPD_E_IO] = ST(E_IO),                 [-SFPD_E_CORRUPT] = ST(E_CORRUPT),
        [-SFPD_E_RANGE] = ST(E_RANGE),           [-SFPD_E_SHUTTING_DOWN] = ST(E_SHUTTING_DOWN),
        [-SFPD_E_CODEC] = ST(E_CODEC),           [-SFPD_E_NO_SHM] = ST(E_NO_SHM),
        [-SFPD_E_TOO_LARGE] = ST(E_TOO_LARGE),   [-SFPD_E_INTERNAL] = ST(E_INTERNAL),
        [-SFPD_E_LOST] = ST(E_LOST),             [-SFPD_E_LIMIT] = ST(E_BUSY),
    };
    if (core == 0)
        return 0;
    return core < 0 && -core <= SFPD_E_COUNT && map[-core] ? map[-core] : ST(E_INTERNAL);
}

static void reply_status(conn *c, uint64_t id, int status, const char *msg, int codec_err)
{
    sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
    r.id = id;
    r.status = (Sfp__Ipc__V1__Status)status;
    r.message = (char *)(msg ? msg : "");
    r.codec_error = codec_err;
    if (status != 0) {
        sfpd_stat_error(status);
        sfpd_debug("conn pid %d: request %llu: %s: %s", c->pid, (unsigned long long)id,
                   sfpd_status_name(status), msg ? msg : "");
    }
    conn_send(c, &r);
}

/* Called when an asynchronous request of c is over (reply already queued). */
static void request_done(conn *c)
{
    sfpd_ipc_server *srv = c->srv;
    c->busy = false;
    if (c->dispatching) {
        /* completed within dispatch(): conn_process() reads on */
        conn_unref(c);
        return;
    }
    if (!c->dead) {
        conn_flush(c);
        if (!c->dead)
            conn_process(c);
    }
    conn_unref(c);
    maybe_finish_drain(srv);
}

/* ----------------------------------------------------------- put / get */

static void put_done(void *arg, const sfpd_result *res)
{
    conn *c = arg;
    if (res->status) {
        reply_status(c, c->req_id, ipc_status(res->status), res->msg, res->codec_err);
    } else {
        sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
        Sfp__Ipc__V1__PutReply pr = SFP__IPC__V1__PUT_REPLY__INIT;
        sfpd_policy pol;
        sfpd_policy_get(c->srv->policies, c->job_id, &pol);
        pr.stored_bytes = res->stored_bytes;
        pr.tier = (uint32_t)res->tier;
        pr.policy_generation = pol.generation;
        r.id = c->req_id;
        r.body_case = SFP__IPC__V1__RESPONSE__BODY_PUT;
        r.put = &pr;
        conn_send(c, &r);
    }
    request_done(c);
}

/* The reply of a Get (values) or a GetFrame (the frame as stored). */
static void reply_get(conn *c, const sfpd_result *res, int frame)
{
    if (res->status) {
        reply_status(c, c->req_id, ipc_status(res->status), res->msg, res->codec_err);
    } else {
        sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
        Sfp__Ipc__V1__GetReply gr = SFP__IPC__V1__GET_REPLY__INIT;
        Sfp__Ipc__V1__GetFrameReply fr = SFP__IPC__V1__GET_FRAME_REPLY__INIT;
        r.id = c->req_id;
        if (frame) {
            fr.frame_length = res->length;
            fr.count = res->count;
            fr.dtype = res->dtype;
            fr.prefetch_hit = res->hit;
            r.body_case = SFP__IPC__V1__RESPONSE__BODY_GET_FRAME;
            r.get_frame = &fr;
        } else {
            gr.count = res->count;
            gr.length = res->length;
            gr.dtype = res->dtype;
            gr.prefetch_hit = res->hit;
            r.body_case = SFP__IPC__V1__RESPONSE__BODY_GET;
            r.get = &gr;
        }
        conn_send(c, &r);
    }
    request_done(c);
}

static void get_done(void *arg, const sfpd_result *res)
{
    reply_get(arg, res, 0);
}

static void get_frame_done(void *arg, const sfpd_result *res)
{
    reply_get(arg, res, 1);
}

/* ------------------------------------------------------ encode / decode */

typedef struct codec_op {
    uv_work_t w;
    conn *c;
    sfpd_shm *shm;
    bool encode;
    uint64_t off, len, count, out_off, out_cap;
    sfp_params params;
    size_t out_len, n;
    int err;
    sfp_dtype dtype;
} codec_op;

static void codec_run(uv_work_t *w)
{
    codec_op *op = (codec_op *)w;
    uint64_t t0 = sfpd_now_ns();
    if (op->encode) {
        op->err = sfp_encode(op->shm->base + op->off, (size_t)op->count, &op->params,
                             op->shm->base + op->out_off, (size_t)op->out_cap, &op->out_len, NULL);
        sfpd_stat_latency(SFPD_H_ENCODE, sfpd_now_ns() - t0);
    } else {
        /* private copy: the client could rewrite the frame while we decode */
        void *copy = sfpd_malloc(op->len);
        sfp_frame_info info;
        if (!copy) {
            op->err = SFP_ENOMEM;
            return;
        }
        memcpy(copy, op->shm->base + op->off, op->len);
        op->err = sfp_decode(copy, (size_t)op->len, op->shm->base + op->out_off,
                             (size_t)op->out_cap, &op->n);
        if (op->err == 0 && sfp_frame_parse(copy, (size_t)op->len, &info) == 0)
            op->dtype = info.dtype;
        sfpd_free(copy);
        sfpd_stat_latency(SFPD_H_DECODE, sfpd_now_ns() - t0);
    }
}

static void codec_done(uv_work_t *w, int status)
{
    codec_op *op = (codec_op *)w;
    conn *c = op->c;
    (void)status;
    c->srv->inflight--;
    if (op->err) {
        reply_status(c, c->req_id,
                     op->err == SFP_ENOMEM ? ST(E_NO_MEMORY) : ST(E_CODEC), sfp_strerror(op->err), op->err);
    } else {
        sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
        Sfp__Ipc__V1__EncodeReply er = SFP__IPC__V1__ENCODE_REPLY__INIT;
        Sfp__Ipc__V1__DecodeReply dr = SFP__IPC__V1__DECODE_REPLY__INIT;
        r.id = c->req_id;
        if (op->encode) {
            er.frame_length = op->out_len;
            r.body_case = SFP__IPC__V1__RESPONSE__BODY_ENCODE;
            r.encode = &er;
            sfpd_stat_inc(SFPD_C_ENCODES, 1);
        } else {
            dr.count = op->n;
            dr.dtype = op->dtype;
            dr.length = op->n * sfp_dtype_size(op->dtype);
            r.body_case = SFP__IPC__V1__RESPONSE__BODY_DECODE;
            r.decode = &dr;
            sfpd_stat_inc(SFPD_C_DECODES, 1);
        }
        conn_send(c, &r);
    }
    sfpd_shm_unref(&op->shm);
    sfpd_free(op);
    request_done(c);
}

static bool overlap(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
    return a < b + bl && b < a + al;
}

static int start_codec(conn *c, const sfpd_request *req)
{
    codec_op *op;
    uint64_t max_tensor = c->srv->cfg->max_tensor;

    if (!c->shm)
        return SFPD_E_NO_SHM;
    op = sfpd_calloc(1, sizeof(*op));
    if (!op)
        return SFPD_E_NO_MEMORY;
    if (req->body_case == SFP__IPC__V1__REQUEST__BODY_ENCODE) {
        const Sfp__Ipc__V1__Encode *e = req->encode;
        op->encode = true;
        op->off = e->offset, op->len = e->length, op->count = e->count;
        op->out_off = e->out_offset, op->out_cap = e->out_capacity;
        if (sfpd_ipc_params(e->params, &op->params) < 0) {
            sfpd_free(op);
            return SFPD_E_INVALID;
        }
    } else {
        const Sfp__Ipc__V1__Decode *d = req->decode;
        op->off = d->offset, op->len = d->length;
        op->out_off = d->out_offset, op->out_cap = d->out_capacity;
    }
    if (!sfpd_range_ok(c->shm->size, op->off, op->len) ||
        !sfpd_range_ok(c->shm->size, op->out_off, op->out_cap)) {
        sfpd_free(op);
        return SFPD_E_RANGE;
    }
    if (overlap(op->off, op->len, op->out_off, op->out_cap)) {
        sfpd_free(op);
        return SFPD_E_INVALID;
    }
    if (op->len > max_tensor + (max_tensor >> 2) || op->out_cap > UINT64_C(1) << 44) {
        sfpd_free(op);
        return SFPD_E_TOO_LARGE;
    }
    op->c = c;
    op->shm = sfpd_shm_ref(c->shm);
    if (uv_queue_work(c->srv->loop, &op->w, codec_run, codec_done) != 0) {
        sfpd_shm_unref(&op->shm);
        sfpd_free(op);
        return SFPD_E_INTERNAL;
    }
    c->srv->inflight++;
    return 0;
}

/* ---------------------------------------------------------------- stats */

/* per-tensor lines of the IPC stats text (the job's own stashes only) */
static void tensor_lines(sfpd_store *st, const char *job_id, FILE *f)
{
    sfpd_tensor_snapshot *v = NULL;
    size_t n = 0;
    uint64_t total = 0;
    if (sfpd_store_list_tensors(st, job_id, 4096, &v, &n, &total) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        fputs("tensor{job=\"", f);
        sfpd_print_label(f, v[i].job_id);
        fprintf(f, "\",rank=\"%u\",step=\"%llu\",tensor=\"", v[i].rank, (unsigned long long)v[i].step);
        sfpd_print_label(f, v[i].name);
        fprintf(f, "\"} dtype=%u count=%llu mbits=%u ebits=%u coder=%u stored_bytes=%llu tier=%s\n",
                v[i].dtype, (unsigned long long)v[i].count, v[i].mbits, v[i].ebits, v[i].coder,
                (unsigned long long)v[i].frame_bytes, v[i].tier);
    }
    sfpd_free(v);
}

static void reply_stats(conn *c)
{
    sfpd_snapshot *s = NULL;
    sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
    Sfp__Ipc__V1__StatsReply sr = SFP__IPC__V1__STATS_REPLY__INIT;
    sfpd_job_snapshot js;
    char *text = NULL;
    int disk;

    if (c->srv->snap.take(c->srv->snap.arg, &s) < 0) {
        reply_status(c, c->req_id, ST(E_NO_MEMORY), "out of memory", 0);
        return;
    }
    sr.dram_bytes = s->tiers[0].bytes; /* tier 0 is always DRAM */
    sr.dram_high_water = s->tiers[0].high_water;
    sr.dram_budget = s->tiers[0].budget_bytes;
    /* a field of protocol version 1: the tier named "disk" (the text has
     * every tier) */
    sr.disk_bytes = (disk = sfpd_snapshot_tier(s, "disk")) >= 0 ? s->tiers[disk].bytes : 0;
    /* spills, prefetch_hits/misses, puts, gets, errors */
    sfpd_snapshot_fill_counters(s, &sr.base);
    sr.corrupt = s->counters[SFPD_C_CORRUPT];
    if (c->job) {
        sfpd_store_job_snapshot(c->job, &js);
        sr.job_bytes_in = js.bytes_in;
        sr.job_bytes_stored = js.bytes_stored;
        sr.job_frames = js.frames;
        sr.job_dram_high_water = js.dram_high_water;
    }
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            sfpd_snapshot_print(s, f);
            if (c->job)
                tensor_lines(c->srv->store, js.job_id, f);
            fclose(f);
            text = buf; /* malloc'd by open_memstream: freed with free() */
        }
    }
    sr.text = text ? text : (char *)"";
    r.id = c->req_id;
    r.body_case = SFP__IPC__V1__RESPONSE__BODY_STATS;
    r.stats = &sr;
    conn_send(c, &r);
    free(text);
    sfpd_snapshot_free(&s);
}

static void reply_policy(conn *c)
{
    sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
    Sfp__Ipc__V1__PolicyReply pr = SFP__IPC__V1__POLICY_REPLY__INIT;
    sfpd_policy p;

    sfpd_policy_resolved(c->srv->policies, c->job_id, &p);
    pr.generation = p.generation;
    pr.min_mantissa_bits = p.min_mbits;
    pr.max_mantissa_bits = p.max_mbits;
    pr.min_exponent_bits = p.min_ebits;
    pr.max_exponent_bits = p.max_ebits;
    pr.pin = p.pin;
    pr.pinned_mantissa_bits = p.pin_mbits;
    pr.pinned_exponent_bits = p.pin_ebits;
    pr.coder = p.coder;
    pr.freeze = p.freeze;
    r.id = c->req_id;
    r.body_case = SFP__IPC__V1__RESPONSE__BODY_POLICY;
    r.policy = &pr;
    conn_send(c, &r);
}

/* -------------------------------------------------------------- dispatch */

static int do_hello(conn *c, const Sfp__Ipc__V1__Hello *h)
{
    sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
    Sfp__Ipc__V1__HelloReply hr = SFP__IPC__V1__HELLO_REPLY__INIT;
    int st;

    if (c->job) {
        reply_status(c, c->req_id, ST(E_INVALID), "Hello already done", 0);
        return 0;
    }
    if (h->version != SFPD_PROTOCOL_VERSION) {
        reply_status(c, c->req_id, ST(E_VERSION), "unsupported protocol version (daemon speaks 1)", 0);
        c->closing = true;
        return 0;
    }
    if (c->pending_fd >= 0) {
        const char *why = NULL;
        int e = sfpd_shm_map(c->pending_fd, c->srv->cfg->max_shm, &c->shm, &why);
        close(c->pending_fd);
        c->pending_fd = -1;
        if (e < 0) {
            reply_status(c, c->req_id, ipc_status(e), why, 0);
            return 0;
        }
    } else if (h->shm_size) {
        reply_status(c, c->req_id, ST(E_NO_SHM), "shm_size set but no fd attached", 0);
        return 0;
    }
    st = sfpd_store_job_attach(c->srv->store, h->job_id, c->uid, h->rank, &c->job);
    if (st < 0) {
        sfpd_shm_unref(&c->shm);
        reply_status(c, c->req_id, ipc_status(st),
                     st == SFPD_E_PERMISSION ? "job belongs to another user" : "cannot attach job", 0);
        return 0;
    }
    c->rank = h->rank;
    snprintf(c->job_id, sizeof(c->job_id), "%s", h->job_id);
    sfpd_info("conn pid %d uid %u: job %s rank %u%s (%s)", c->pid, c->uid, c->job ? h->job_id : "",
              h->rank, c->shm ? " with shm" : "", h->client_name);
    hr.version = SFPD_PROTOCOL_VERSION;
    hr.daemon_version = (char *)SFP_VERSION_STRING;
    hr.max_message = c->srv->cfg->max_message;
    hr.max_tensor = c->srv->cfg->max_tensor;
    r.id = c->req_id;
    r.body_case = SFP__IPC__V1__RESPONSE__BODY_HELLO;
    r.hello = &hr;
    conn_send(c, &r);
    return 0;
}

/* Handles one decoded request. Returns 1 if it went asynchronous. */
static int dispatch(conn *c, sfpd_request *req)
{
    sfpd_ipc_server *srv = c->srv;
    sfpd_key key;
    sfp_params p;
    int st = 0;

    c->req_id = req->id;
    c->req_type = req->body_case;
    if (c->deny_status) {
        reply_status(c, req->id, c->deny_status,
                     c->deny_status == ST(E_PERMISSION) ? "peer credentials not allowed"
                                                        : "too many connections", 0);
        c->closing = true;
        return 0;
    }
    if (srv->draining) {
        reply_status(c, req->id, ST(E_SHUTTING_DOWN), "daemon is shutting down", 0);
        return 0;
    }
    if (req->body_case == SFP__IPC__V1__REQUEST__BODY_HELLO)
        return do_hello(c, req->hello);
    if (!c->job) {
        reply_status(c, req->id, ST(E_HELLO_REQUIRED), "first request must be Hello", 0);
        return 0;
    }
    switch (req->body_case) {
    case SFP__IPC__V1__REQUEST__BODY_PUT:
        sfpd_ipc_key(req->put->key, &key);
        sfpd_ipc_params(req->put->params, &p);
        c->refs++;
        c->busy = true;
        st = sfpd_store_put(srv->store, c->job, &key, c->shm, req->put->offset, req->put->length,
                            req->put->count, &p, put_done, c);
        if (st == 0)
            return 1;
        c->refs--;
        c->busy = false;
        break;
    case SFP__IPC__V1__REQUEST__BODY_GET:
        sfpd_ipc_key(req->get->key, &key);
        c->refs++;
        c->busy = true;
        st = sfpd_store_get(srv->store, c->job, &key, c->shm, req->get->offset, req->get->capacity,
                            req->get->drop, get_done, c);
        if (st == 0)
            return 1;
        c->refs--;
        c->busy = false;
        break;
    case SFP__IPC__V1__REQUEST__BODY_PUT_FRAME:
        sfpd_ipc_key(req->put_frame->key, &key);
        c->refs++;
        c->busy = c->dispatching = true;
        st = sfpd_store_put_frame(srv->store, c->job, &key, c->shm, req->put_frame->offset,
                                  req->put_frame->length, put_done, c);
        c->dispatching = false;
        if (st == 0)
            return 1;
        c->refs--;
        c->busy = false;
        break;
    case SFP__IPC__V1__REQUEST__BODY_GET_FRAME:
        sfpd_ipc_key(req->get_frame->key, &key);
        c->refs++;
        c->busy = c->dispatching = true;
        st = sfpd_store_get_frame(srv->store, c->job, &key, c->shm, req->get_frame->offset,
                                  req->get_frame->capacity, req->get_frame->drop, get_frame_done, c);
        c->dispatching = false;
        if (st == 0)
            return 1;
        c->refs--;
        c->busy = false;
        break;
    case SFP__IPC__V1__REQUEST__BODY_DROP:
        sfpd_ipc_key(req->drop->key, &key);
        st = sfpd_store_drop(srv->store, c->job, &key);
        break;
    case SFP__IPC__V1__REQUEST__BODY_PREFETCH:
        sfpd_store_prefetch(srv->store, c->job, req->prefetch->depth);
        break;
    case SFP__IPC__V1__REQUEST__BODY_ENCODE:
    case SFP__IPC__V1__REQUEST__BODY_DECODE:
        c->refs++;
        c->busy = true;
        st = start_codec(c, req);
        if (st == 0)
            return 1;
        c->refs--;
        c->busy = false;
        break;
    case SFP__IPC__V1__REQUEST__BODY_END_JOB:
        sfpd_info("EndJob from pid %d uid %u", c->pid, c->uid);
        sfpd_store_job_end(srv->store, c->job);
        break;
    case SFP__IPC__V1__REQUEST__BODY_STATS:
        reply_stats(c);
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_POLICY:
        reply_policy(c);
        return 0;

    default:
        reply_status(c, req->id, ST(E_UNKNOWN_TYPE), sfpd_status_name(ST(E_UNKNOWN_TYPE)), 0);
        return 0;
    }
    if (st < 0) {
        const char *msg = sfpd_status_name(ipc_status(st));
        if (st == SFPD_E_RANGE)
            msg = "offset/length outside the shared memory or capacity too small";
        reply_status(c, req->id, ipc_status(st), msg, 0);
    } else {
        sfpd_response r = SFP__IPC__V1__RESPONSE__INIT;
        r.id = req->id;
        conn_send(c, &r);
    }
    return 0;
}

static void conn_process(conn *c)
{
    sfpd_ipc_server *srv = c->srv;
    size_t off = 0;

    /* The replies of the requests handled here go out together: a rank
     * sends a step's PutFrames (or GetFrames) in one write, and one send
     * (one wake-up of the rank) per reply cost sfpd more than the requests
     * themselves. */
    c->processing = true;
    for (;;) {
        size_t msg_len = 0;
        sfpd_request *req = NULL;
        uint64_t id = 0;
        const char *why = NULL;
        bool hello = false;
        int r;
        if (!c->dead && c->wlen >= WBUF_HIGH)
            conn_flush(c); /* a long pipeline: replies out before more */
        if (c->dead || c->busy || c->closing || c->wlen >= WBUF_HIGH)
            break;
        r = sfpd_ipc_frame(c->rbuf + off, c->rlen - off, (size_t)srv->cfg->max_message, &msg_len);
        if (r == 0)
            break;
        if (r < 0) {
            sfpd_stat_inc(SFPD_C_PROTOCOL_ERRORS, 1);
            sfpd_warn("conn pid %d: message length over max_message; closing", c->pid);
            reply_status(c, 0, ST(E_TOO_LARGE), "message larger than max_message", 0);
            c->closing = true;
            off = c->rlen;
            break;
        }
        r = sfpd_ipc_decode(c->rbuf + off + SFPD_IPC_PREFIX, msg_len, &req, &id, &hello, &why);
        off += SFPD_IPC_PREFIX + msg_len;
        if (r == -ST(E_UNKNOWN_TYPE) && !c->job && !c->deny_status && !hello) {
            /* before Hello, a request of no (or no known) type is just one
             * more request that is not Hello */
            if (c->pending_fd >= 0) {
                close(c->pending_fd); /* an fd only makes sense with Hello */
                c->pending_fd = -1;
            }
            reply_status(c, id, ST(E_HELLO_REQUIRED), "first request must be Hello", 0);
            continue;
        }
        if (r < 0) {
            sfpd_stat_inc(SFPD_C_PROTOCOL_ERRORS, 1);
            reply_status(c, id, -r, why, 0);
            if (++c->protocol_errors >= MAX_PROTOCOL_ERRORS) {
                sfpd_warn("conn pid %d: too many malformed messages; closing", c->pid);
                c->closing = true;
            }
            continue;
        }
        if (c->pending_fd >= 0 && req->body_case != SFP__IPC__V1__REQUEST__BODY_HELLO) {
            close(c->pending_fd); /* an fd only makes sense with Hello */
            c->pending_fd = -1;
        }
        dispatch(c, req);
        sfpd_ipc_request_free(req);
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
        c->partial_since = 0; /* progress: the stall clock restarts */
    }
    if (!c->rlen)
        c->partial_since = 0;
    else if (!c->partial_since)
        c->partial_since = sfpd_now_ns();
    c->processing = false;
    if (!c->dead && c->wlen > c->woff)
        conn_flush(c); /* may close a closing conn once flushed */
    if (!c->dead) {
        if (c->closing && !c->busy && c->wlen == 0)
            conn_close(c);
        else
            conn_update_poll(c);
    }
}

/* ------------------------------------------------------------ socket I/O */

static size_t rbuf_limit(const conn *c)
{
    return SFPD_IPC_PREFIX + (size_t)c->srv->cfg->max_message;
}

static void conn_read(conn *c)
{
    for (;;) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int) * 4)];
        } cm;
        struct msghdr m = {0};
        struct iovec iov;
        ssize_t n;
        size_t want = rbuf_limit(c);

        if (c->rlen >= want)
            break;
        if (c->rcap < want) {
            size_t cap = c->rcap ? c->rcap : 4096;
            uint8_t *g;
            while (cap < c->rlen + 4096 && cap < want)
                cap *= 2;
            if (cap > want)
                cap = want;
            if (cap > c->rcap) {
                g = sfpd_realloc(c->rbuf, cap);
                if (!g) {
                    conn_close(c);
                    return;
                }
                c->rbuf = g;
                c->rcap = cap;
            }
        }
        if (c->rlen == c->rcap) {
            size_t cap = c->rcap * 2 > want ? want : c->rcap * 2;
            uint8_t *g = sfpd_realloc(c->rbuf, cap);
            if (!g) {
                conn_close(c);
                return;
            }
            c->rbuf = g;
            c->rcap = cap;
        }
        iov.iov_base = c->rbuf + c->rlen;
        iov.iov_len = c->rcap - c->rlen;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = cm.buf;
        m.msg_controllen = sizeof(cm.buf);
        n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(c);
            return;
        }
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                if (c->pending_fd < 0 && !c->job)
                    c->pending_fd = fd;
                else
                    close(fd);
            }
        }
        if (n == 0) {
            /* peer closed: finish what is in flight, then go */
            c->closing = true;
            if (!c->busy)
                conn_close(c);
            return;
        }
        c->rlen += (size_t)n;
        if (c->rlen >= SFPD_IPC_PREFIX)
            break; /* process before reading more */
    }
    conn_process(c);
}

static void conn_poll_cb(uv_poll_t *h, int status, int events)
{
    conn *c = h->data;
    if (c->dead)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (events & UV_WRITABLE)
        conn_flush(c);
    if (!c->dead && (events & UV_READABLE))
        conn_read(c);
    else if (!c->dead && (events & UV_WRITABLE) && c->rlen && !c->busy && c->wlen < WBUF_HIGH)
        conn_process(c); /* requests held back while the replies were full */
    if (!c->dead && (events & UV_DISCONNECT) && !(events & UV_READABLE)) {
        c->closing = true;
        if (!c->busy)
            conn_close(c);
    }
}

static void conn_update_poll(conn *c)
{
    int ev = 0;
    if (c->dead)
        return;
    if (!c->closing && c->rlen < rbuf_limit(c) && c->wlen < WBUF_HIGH)
        ev |= UV_READABLE;
    if (c->wlen > c->woff)
        ev |= UV_WRITABLE;
    if (ev != c->events) {
        c->events = ev;
        if (ev)
            uv_poll_start(&c->poll, ev, conn_poll_cb);
        else
            uv_poll_stop(&c->poll);
    }
}

static void conn_closed_cb(uv_handle_t *h)
{
    conn *c = h->data;
    sfpd_ipc_server *srv = c->srv;
    close(c->fd);
    c->fd = -1;
    conn_unref(c);
    maybe_finish_drain(srv);
}

static void conn_close(conn *c)
{
    sfpd_ipc_server *srv = c->srv;
    if (c->dead)
        return;
    c->dead = true;
    sfpd_list_remove(&c->link);
    srv->n_conns--;
    if (c->pending_fd >= 0) {
        close(c->pending_fd);
        c->pending_fd = -1;
    }
    if (c->job) {
        sfpd_store_job_detach(srv->store, c->job);
        c->job = NULL;
    }
    /* work in flight holds its own shm reference */
    sfpd_shm_unref(&c->shm);
    sfpd_debug("conn pid %d closed", c->pid);
    uv_close((uv_handle_t *)&c->poll, conn_closed_cb);
}

static bool peer_allowed(const sfpd_ipc_server *srv, uint32_t uid, uint32_t gid)
{
    const sfpd_config *cfg = srv->cfg;
    if (uid == 0 || uid == srv->self_uid)
        return true;
    for (size_t i = 0; i < cfg->n_uids; i++)
        if (cfg->uids[i] == uid)
            return true;
    for (size_t i = 0; i < cfg->n_gids; i++)
        if (cfg->gids[i] == gid)
            return true;
    return false;
}

static void listen_cb(uv_poll_t *h, int status, int events);

static void accept_retry_cb(uv_timer_t *t)
{
    sfpd_ipc_server *srv = t->data;
    if (srv->listening)
        uv_poll_start(&srv->listen_poll, UV_READABLE, listen_cb);
}

static void listen_cb(uv_poll_t *h, int status, int events)
{
    sfpd_ipc_server *srv = h->data;
    (void)events;
    if (status < 0)
        return;
    for (;;) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        conn *c;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of fds: pause accepting instead of spinning on a
                 * listener that stays readable */
                sfpd_warn("accept: %s; pausing accepts for 100 ms", strerror(errno));
                uv_poll_stop(&srv->listen_poll);
                uv_timer_start(&srv->accept_retry, accept_retry_cb, 100, 0);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                sfpd_warn("accept: %s", strerror(errno));
            }
            return;
        }
        c = sfpd_calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->srv = srv;
        c->fd = fd;
        c->refs = 1;
        c->pending_fd = -1;
        c->opened_ns = sfpd_now_ns();
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            cred.uid = (uid_t)-1;
            cred.gid = (gid_t)-1;
            cred.pid = 0;
        }
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        if (!peer_allowed(srv, c->uid, c->gid)) {
            sfpd_warn("refusing pid %d uid %u gid %u: not in the allow list", c->pid, c->uid, c->gid);
            c->deny_status = ST(E_PERMISSION);
            sfpd_stat_inc(SFPD_C_CONN_REJECTED, 1);
        } else if (srv->n_conns >= srv->cfg->max_connections) {
            sfpd_warn("refusing pid %d: max_connections reached", c->pid);
            c->deny_status = ST(E_BUSY);
            sfpd_stat_inc(SFPD_C_CONN_REJECTED, 1);
        } else {
            sfpd_stat_inc(SFPD_C_CONN_ACCEPTED, 1);
        }
        if (uv_poll_init(srv->loop, &c->poll, fd) != 0) {
            close(fd);
            sfpd_free(c);
            continue;
        }
        c->poll.data = c;
        sfpd_list_push_back(&srv->conns, &c->link);
        srv->n_conns++;
        conn_update_poll(c);
    }
}

/* ------------------------------------------------------------ lifecycle */

#define DRAIN_TIMEOUT_MS 10000

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void maybe_finish_drain(sfpd_ipc_server *srv)
{
    if (!srv->draining || srv->drained || srv->n_conns || srv->inflight ||
        !sfpd_list_empty(&srv->conns))
        return;
    srv->drained = true;
    uv_timer_stop(&srv->drain_timer);
    srv->drained_cb(srv->drained_arg);
}

static void drain_timeout_cb(uv_timer_t *t)
{
    sfpd_ipc_server *srv = t->data;
    sfpd_warn("drain: %u connections still busy after %d ms; closing them", srv->n_conns,
              DRAIN_TIMEOUT_MS);
    while (!sfpd_list_empty(&srv->conns))
        conn_close(sfpd_container_of(srv->conns.next, conn, link));
    maybe_finish_drain(srv);
}

void sfpd_ipc_server_drain(sfpd_ipc_server *srv, void (*done)(void *), void *arg)
{
    sfpd_list *p;
    if (srv->draining)
        return;
    srv->draining = true;
    srv->drained_cb = done;
    srv->drained_arg = arg;
    if (srv->listening) {
        srv->listening = false;
        uv_close((uv_handle_t *)&srv->listen_poll, NULL);
        close(srv->listen_fd);
        srv->listen_fd = -1;
        unlink(srv->cfg->socket);
    }
    p = srv->conns.next;
    while (p != &srv->conns) {
        conn *c = sfpd_container_of(p, conn, link);
        p = p->next;
        c->closing = true;
        if (!c->busy)
            conn_flush(c); /* closes once flushed */
        else
            conn_update_poll(c);
    }
    uv_timer_start(&srv->drain_timer, drain_timeout_cb, DRAIN_TIMEOUT_MS, 0);
    maybe_finish_drain(srv);
}

void sfpd_ipc_server_counts(const sfpd_ipc_server *srv, uint32_t *conns, uint32_t *inflight)
{
    *conns = srv->n_conns;
    *inflight = srv->inflight;
}

void sfpd_ipc_server_fill_snapshot(const sfpd_ipc_server *srv, sfpd_snapshot *s)
{
    s->connections = srv->n_conns;
    s->inflight += srv->inflight;
    for (int i = 1; i < SFPD_STATUS_SLOTS; i++) {
        const char *n = i == SFPD_STATUS_SLOTS - 1 ? "OTHER" : sfpd_status_name(i);
        s->status_names[i] = strcmp(n, "?") != 0 ? n : NULL;
    }
}

static void tick_cb(uv_timer_t *t)
{
    sfpd_ipc_server *srv = t->data;
    uint64_t now = sfpd_now_ns();
    uint64_t limit = (uint64_t)(srv->cfg->io_timeout * 1e9);
    sfpd_list *p = srv->conns.next;

    while (p != &srv->conns) {
        conn *c = sfpd_container_of(p, conn, link);
        p = p->next;
        if (limit && !c->busy && c->partial_since && now - c->partial_since > limit) {
            sfpd_warn("conn pid %d: message incomplete for %.0f s; closing", c->pid,
                      srv->cfg->io_timeout);
            sfpd_stat_inc(SFPD_C_PROTOCOL_ERRORS, 1);
            conn_close(c);
        } else if (limit && !c->job && !c->busy && !c->dead && now - c->opened_ns > limit) {
            /* a connection holds a slot of max_connections: one that has
             * not said Hello (or was refused) within io_timeout goes */
            sfpd_warn("conn pid %d uid %u: no Hello within %.0f s; closing", c->pid, c->uid,
                      srv->cfg->io_timeout);
            sfpd_stat_inc(SFPD_C_PROTOCOL_ERRORS, 1);
            conn_close(c);
        }
    }
}


static int make_parent_dir(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    char *slash;
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int listen_socket(sfpd_ipc_server *srv)
{
    const sfpd_config *cfg = srv->cfg;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd, r;

    if (strlen(cfg->socket) >= sizeof(addr.sun_path)) {
        sfpd_err("socket path too long: %s", cfg->socket);
        return -ENAMETOOLONG;
    }
    if ((r = make_parent_dir(cfg->socket)) < 0) {
        sfpd_err("cannot create the directory of %s: %s", cfg->socket, strerror(-r));
        return r;
    }
    strcpy(addr.sun_path, cfg->socket);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* we hold the lock, so a socket file left here is stale */
    unlink(cfg->socket);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        r = -errno;
        sfpd_err("bind %s: %s", cfg->socket, strerror(errno));
        close(fd);
        return r;
    }
    if (cfg->socket_group[0]) {
        struct group *g = getgrnam(cfg->socket_group);
        char *end;
        long gid = g ? (long)g->gr_gid : strtol(cfg->socket_group, &end, 10);
        if ((!g && *end) || chown(cfg->socket, (uid_t)-1, (gid_t)gid) < 0)
            sfpd_warn("cannot give %s to group %s: %s", cfg->socket, cfg->socket_group,
                      g || !*end ? strerror(errno) : "no such group");
    }
    if (chmod(cfg->socket, (mode_t)cfg->socket_mode) < 0)
        sfpd_warn("chmod %s: %s", cfg->socket, strerror(errno));
    if (listen(fd, 128) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    srv->listen_fd = fd;
    return 0;
}

int sfpd_ipc_server_start(uv_loop_t *loop, const sfpd_config *cfg, sfpd_store *store,
                          const sfpd_policies *policies, sfpd_snapshot_source snap,
                          sfpd_ipc_server **out)
{
    sfpd_ipc_server *srv = sfpd_calloc(1, sizeof(*srv));
    int r;

    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->cfg = cfg;
    srv->store = store;
    srv->policies = policies;
    srv->snap = snap;
    srv->listen_fd = -1;
    srv->self_uid = geteuid();
    sfpd_list_init(&srv->conns);
    if ((r = listen_socket(srv)) < 0) {
        sfpd_free(srv);
        return r;
    }
    uv_poll_init(loop, &srv->listen_poll, srv->listen_fd);
    srv->listen_poll.data = srv;
    uv_poll_start(&srv->listen_poll, UV_READABLE, listen_cb);
    srv->listening = true;
    uv_timer_init(loop, &srv->tick);
    srv->tick.data = srv;
    uv_timer_start(&srv->tick, tick_cb, 1000, 1000);
    uv_timer_init(loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    uv_timer_init(loop, &srv->accept_retry);
    srv->accept_retry.data = srv;
    *out = srv;
    return 0;
}

void sfpd_ipc_server_close(sfpd_ipc_server *srv)
{
    if (!srv)
        return;
    close_handle((uv_handle_t *)&srv->tick);
    close_handle((uv_handle_t *)&srv->drain_timer);
    close_handle((uv_handle_t *)&srv->accept_retry);
}

void sfpd_ipc_server_destroy(sfpd_ipc_server **psrv)
{
    sfpd_ipc_server *srv = psrv ? *psrv : NULL;
    if (!srv)
        return;
    *psrv = NULL;
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
        unlink(srv->cfg->socket);
    }
    sfpd_free(srv);
}
