/* client.c - libsfpclient: blocking calls with deadlines over the sfpd socket. */
#include <sfp/client.h>

#include "sfp/ipc/v1/ipc.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1u
#define MAX_REPLY (64u << 20)
#define MAX_ASYNC 4096u

typedef Sfp__Ipc__V1__Request req_t;
typedef Sfp__Ipc__V1__Response resp_t;

struct sfpc {
    int fd;
    bool broken;
    int timeout_ms;
    uint8_t *shm;
    size_t shm_size;
    uint64_t next_id;
    uint64_t async_ids[MAX_ASYNC]; /* ring of outstanding async request ids */
    void *async_info[MAX_ASYNC];   /* where to report each one, or NULL    */
    bool async_get[MAX_ASYNC];     /* a GetFrame (sfpc_pending) or a put   */
    unsigned async_head, async_n;
    int async_err;
    bool corked;                   /* requests wait in cork[] (sfpc_cork)  */
    uint8_t *cork;
    size_t cork_len, cork_cap;
    char msg[256];
};

/* A corked batch is written out once it holds this many bytes. */
#define CORK_MAX ((size_t)64 << 10)

#define SFPC__ERR_IN_RANGE(name, value, msg)                                   \
    _Static_assert((value) >= SFPC_ERROR_MIN && (value) <= SFPC_ERROR_MAX,     \
                   "SFPC_" #name " outside the client's range");
SFPC_ERRORS(SFPC__ERR_IN_RANGE)
#undef SFPC__ERR_IN_RANGE
_Static_assert(SFPC_ERROR_MAX < SFP_ERROR_MIN, "client and libsfp error ranges overlap");

const char *sfpc_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
#define SFPC__ERR_MSG(name, value, text) case value: return text;
        SFPC_ERRORS(SFPC__ERR_MSG)
#undef SFPC__ERR_MSG
    default:
        return err < 0 && err >= SFP_ERROR_MIN ? sfp_strerror(err) : "unknown error";
    }
}

const char *sfpc_strerror_name(int err)
{
    switch (err) {
    case 0:
        return "SFPC_OK";
#define SFPC__ERR_NAME(name, value, text) case value: return "SFPC_" #name;
        SFPC_ERRORS(SFPC__ERR_NAME)
#undef SFPC__ERR_NAME
    default:
        return err < 0 && err >= SFP_ERROR_MIN ? sfp_strerror_name(err) : "SFPC_?";
    }
}

void sfpc_options_default(sfpc_options *o)
{
    memset(o, 0, sizeof(*o));
    o->shm_size = 64u << 20;
    o->timeout_ms = 30000;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(sfpc *c, int err)
{
    if (err == SFPC_ETIMEDOUT || err == SFPC_EDISCONNECTED || err == SFPC_EPROTO)
        c->broken = true;
    return err;
}

/* Waits for events on fd until deadline; 0 ready, or an SFPC error. */
static int wait_fd(sfpc *c, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = c->fd, .events = events};
        int64_t left = deadline - now_ms();
        int r;
        if (left <= 0)
            return fail(c, SFPC_ETIMEDOUT);
        r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return fail(c, SFPC_EDISCONNECTED);
        }
        if (r == 0)
            continue;
        if (p.revents & events)
            return 0;
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
            return fail(c, SFPC_EDISCONNECTED);
    }
}

static int send_all(sfpc *c, const uint8_t *buf, size_t len, int pass_fd, int64_t deadline)
{
    while (len) {
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = {(void *)buf, len};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;
        if (pass_fd >= 0) {
            memset(&cm, 0, sizeof(cm));
            m.msg_control = cm.b;
            m.msg_controllen = sizeof(cm.b);
            CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
            CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
            CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &pass_fd, sizeof(int));
        }
        n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            int r;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return fail(c, SFPC_EDISCONNECTED);
            if ((r = wait_fd(c, POLLOUT, deadline)) < 0)
                return r;
            continue;
        }
        pass_fd = -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int recv_all(sfpc *c, uint8_t *buf, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
        if (n < 0) {
            int r;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return fail(c, SFPC_EDISCONNECTED);
            if ((r = wait_fd(c, POLLIN, deadline)) < 0)
                return r;
            continue;
        }
        if (n == 0)
            return fail(c, SFPC_EDISCONNECTED);
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes the corked requests out. */
static int cork_send(sfpc *c, int64_t deadline)
{
    size_t n = c->cork_len;
    c->cork_len = 0;
    return n ? send_all(c, c->cork, n, -1, deadline) : 0;
}

/* Room for n more corked bytes; 0, or -1 when the batch must go first. */
static int cork_room(sfpc *c, size_t n)
{
    size_t cap = c->cork_cap ? c->cork_cap : 4096;
    uint8_t *g;
    if (c->cork_len + n > CORK_MAX)
        return -1;
    while (cap < c->cork_len + n)
        cap *= 2;
    if (cap == c->cork_cap)
        return 0;
    if (!(g = realloc(c->cork, cap)))
        return -1;
    c->cork = g;
    c->cork_cap = cap;
    return 0;
}

/* Writes request rq (n bytes packed) at b behind its 4-byte length. */
static void put_request(uint8_t *b, const req_t *rq, size_t n)
{
    b[0] = (uint8_t)n;
    b[1] = (uint8_t)(n >> 8);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 24);
    sfp__ipc__v1__request__pack(rq, b + 4);
}

static int send_request(sfpc *c, req_t *rq, int pass_fd, int64_t deadline)
{
    size_t n = sfp__ipc__v1__request__get_packed_size(rq);
    uint8_t small[512], *b;
    int r;
    if (c->corked && pass_fd < 0 && n + 4 <= CORK_MAX) {
        if (cork_room(c, n + 4) < 0) {
            /* full (or no memory): the batch so far goes out first */
            if ((r = cork_send(c, deadline)) < 0)
                return r;
            if (cork_room(c, n + 4) < 0)
                return SFPC_ENOMEM;
        }
        put_request(c->cork + c->cork_len, rq, n);
        c->cork_len += n + 4;
        return 0;
    }
    if ((r = cork_send(c, deadline)) < 0)
        return r;
    b = n + 4 <= sizeof(small) ? small : malloc(n + 4);
    if (!b)
        return SFPC_ENOMEM;
    put_request(b, rq, n);
    r = send_all(c, b, n + 4, pass_fd, deadline);
    if (b != small)
        free(b);
    return r;
}

/* Daemon Status n maps to SFPC error SFPC_STATUS_BASE - n; codes this
 * client does not know are a protocol error. */
static int status_err(int status)
{
    if (status == 0)
        return 0;
    if (status < 0 || status > 99)
        return SFPC_EPROTO;
    switch (SFPC_STATUS_BASE - status) {
#define SFPC__ERR_CASE(name, value, msg) case value: return value;
        SFPC_ERRORS(SFPC__ERR_CASE)
#undef SFPC__ERR_CASE
    default:
        return SFPC_EPROTO;
    }
}

/* The daemon Status an error mirrors, or -1 for local errors. */
static int err_status(int err)
{
    int s = SFPC_STATUS_BASE - err;
    return s > 0 && s <= 99 && status_err(s) == err ? s : -1;
}

const char *sfpc_status_name(int err)
{
    const ProtobufCEnumValue *v;
    int s = err_status(err);
    if (s < 0)
        return NULL;
    v = protobuf_c_enum_descriptor_get_value(&sfp__ipc__v1__status__descriptor, s);
    return v ? v->name : NULL;
}

static int read_response(sfpc *c, resp_t **out, int64_t deadline)
{
    uint8_t hdr[4], *b;
    uint32_t n;
    resp_t *r;
    int e;

    /* a reply is awaited: the corked requests go first */
    if ((e = cork_send(c, deadline)) < 0)
        return e;
    if ((e = recv_all(c, hdr, 4, deadline)) < 0)
        return e;
    n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
    if (n > MAX_REPLY)
        return fail(c, SFPC_EPROTO);
    b = malloc(n ? n : 1);
    if (!b)
        return fail(c, SFPC_ENOMEM);
    if ((e = recv_all(c, b, n, deadline)) < 0) {
        free(b);
        return e;
    }
    r = sfp__ipc__v1__response__unpack(NULL, n, b);
    free(b);
    if (!r)
        return fail(c, SFPC_EPROTO);
    *out = r;
    return 0;
}

/* Files r, the reply to the oldest asynchronous request, where that
 * request wanted it; frees r. 0, or SFPC_EPROTO for a reply that does not fit. */
static int file_async(sfpc *c, resp_t *r)
{
    unsigned h = c->async_head;
    int st = status_err(r->status);
    if (c->async_get[h]) {
        sfpc_pending *pg = c->async_info[h];
        if (!st && (!r->get_frame || r->get_frame->frame_length > pg->cap)) {
            sfp__ipc__v1__response__free_unpacked(r, NULL);
            return fail(c, SFPC_EPROTO);
        }
        pg->status = st;
        if (st) {
            snprintf(c->msg, sizeof(c->msg), "%s", r->message ? r->message : "");
        } else {
            pg->info.bytes = r->get_frame->frame_length;
            pg->info.count = r->get_frame->count;
            pg->info.dtype = (sfp_dtype)r->get_frame->dtype;
            pg->info.hit = r->get_frame->prefetch_hit;
        }
        pg->done = 1;
    } else {
        sfpc_put_info *info = c->async_info[h];
        if (st && !c->async_err) {
            c->async_err = st;
            snprintf(c->msg, sizeof(c->msg), "%s", r->message ? r->message : "");
        }
        if (info && !st && r->put) {
            info->stored_bytes = r->put->stored_bytes;
            info->tier = (int)r->put->tier;
            info->policy_generation = r->put->policy_generation;
        }
    }
    c->async_head = (h + 1) % MAX_ASYNC;
    c->async_n--;
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return 0;
}

/* Reads replies until the one for id; replies of async requests come first.
 * id 0: until no asynchronous request is left. */
static int await(sfpc *c, uint64_t id, resp_t **out, int64_t deadline)
{
    for (;;) {
        resp_t *r = NULL;
        int e = read_response(c, &r, deadline);
        if (e < 0)
            return e;
        if (c->async_n && r->id == c->async_ids[c->async_head]) {
            if ((e = file_async(c, r)) < 0)
                return e;
            if (id == 0 && c->async_n == 0)
                return 0;
            continue;
        }
        if (r->id != id) {
            /* error replies to unparseable requests carry id 0 */
            sfp__ipc__v1__response__free_unpacked(r, NULL);
            return fail(c, SFPC_EPROTO);
        }
        *out = r;
        return 0;
    }
}

/* Reads the reply to the oldest asynchronous request. */
static int await_one(sfpc *c, int64_t deadline)
{
    resp_t *r = NULL;
    int e = read_response(c, &r, deadline);
    if (e < 0)
        return e;
    if (!c->async_n || r->id != c->async_ids[c->async_head]) {
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        return fail(c, SFPC_EPROTO);
    }
    return file_async(c, r);
}

/* Sends rq and waits for its reply; returns 0 with *out, or an error. */
static int call(sfpc *c, req_t *rq, resp_t **out)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    resp_t *r = NULL;
    int e;

    if (c->broken)
        return SFPC_EDISCONNECTED;
    c->msg[0] = 0;
    rq->id = ++c->next_id;
    if ((e = send_request(c, rq, -1, deadline)) < 0)
        return e;
    if ((e = await(c, rq->id, &r, deadline)) < 0)
        return e;
    e = status_err(r->status);
    if (e) {
        snprintf(c->msg, sizeof(c->msg), "%s", r->message ? r->message : "");
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        return e;
    }
    *out = r;
    return 0;
}

int sfpc_flush(sfpc *c)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    int e;
    if (c->broken)
        return SFPC_EDISCONNECTED;
    if (c->async_n) {
        resp_t *unused = NULL;
        if ((e = await(c, 0, &unused, deadline)) < 0)
            return e;
    }
    e = c->async_err;
    c->async_err = 0;
    return e;
}

int sfpc_connect(const sfpc_options *o, sfpc **out)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    const char *path;
    sfpc *c;
    int memfd = -1, e;
    int64_t deadline;
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Hello h = SFP__IPC__V1__HELLO__INIT;
    resp_t *r = NULL;

    if (!o || !o->job_id || !o->job_id[0] || strlen(o->job_id) > 128 ||
        sfp_text_check(o->job_id, strlen(o->job_id)) != 0 ||
        (o->client_name && sfp_text_check(o->client_name, strlen(o->client_name)) != 0))
        return SFPC_EINVAL;
    path = o->socket_path ? o->socket_path : getenv("SFP_SOCKET");
    if (!path || !path[0])
        path = "/run/sfpd/sfpd.sock";
    if (strlen(path) >= sizeof(addr.sun_path))
        return SFPC_EINVAL;
    strcpy(addr.sun_path, path);
    c = calloc(1, sizeof(*c));
    if (!c)
        return SFPC_ENOMEM;
    c->fd = -1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    c->shm_size = o->shm_size ? o->shm_size : (64u << 20);
    deadline = now_ms() + c->timeout_ms;

    memfd = memfd_create("sfpc-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0 || ftruncate(memfd, (off_t)c->shm_size) < 0 ||
        fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        e = SFPC_ESYS;
        goto fail;
    }
    c->shm = mmap(NULL, c->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (c->shm == MAP_FAILED) {
        c->shm = NULL;
        e = SFPC_ESYS;
        goto fail;
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        e = SFPC_ESYS;
        goto fail;
    }
    while (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && now_ms() < deadline) {
            usleep(1000); /* backlog full: retry within the deadline */
            continue;
        }
        if (errno == EINPROGRESS) {
            if ((e = wait_fd(c, POLLOUT, deadline)) < 0)
                goto fail;
            break;
        }
        snprintf(c->msg, sizeof(c->msg), "%s: %s", path, strerror(errno));
        e = SFPC_ECONNECT;
        goto fail;
    }
    h.version = PROTOCOL_VERSION;
    h.job_id = (char *)o->job_id;
    h.rank = o->rank;
    h.client_name = (char *)(o->client_name ? o->client_name : "libsfpclient");
    h.shm_size = c->shm_size;
    rq.id = ++c->next_id;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_HELLO;
    rq.hello = &h;
    if ((e = send_request(c, &rq, memfd, deadline)) < 0)
        goto fail;
    close(memfd); /* the daemon has its own reference now */
    memfd = -1;
    if ((e = await(c, rq.id, &r, deadline)) < 0)
        goto fail;
    e = status_err(r->status);
    if (e) {
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        goto fail;
    }
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    *out = c;
    return 0;
fail:
    if (memfd >= 0)
        close(memfd);
    sfpc_close(&c);
    return e;
}

void sfpc_close(sfpc **pc)
{
    sfpc *c = pc ? *pc : NULL;
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    if (c->shm)
        munmap(c->shm, c->shm_size);
    free(c->cork);
    free(c);
    *pc = NULL;
}

int sfpc_cork(sfpc *c, int on)
{
    int e;
    if (!c)
        return SFPC_EINVAL;
    if (!on) {
        c->corked = false;
        if (c->broken)
            return SFPC_EDISCONNECTED;
        if ((e = cork_send(c, now_ms() + c->timeout_ms)) < 0)
            return e;
        return 0;
    }
    c->corked = !c->broken;
    return c->broken ? SFPC_EDISCONNECTED : 0;
}

void *sfpc_shm(sfpc *c, size_t *size)
{
    if (size)
        *size = c->shm_size;
    return c->shm;
}

const char *sfpc_last_message(const sfpc *c) { return c ? c->msg : ""; }

static bool in_shm(const sfpc *c, const void *p, size_t len)
{
    const uint8_t *b = p;
    return b >= c->shm && b <= c->shm + c->shm_size && len <= (size_t)(c->shm + c->shm_size - b);
}

static void fill_params(Sfp__Ipc__V1__Params *pp, const sfp_params *p)
{
    pp->dtype = (uint32_t)p->dtype;
    pp->mbits = p->mbits;
    pp->ebits = p->ebits;
    pp->rounding = (uint32_t)p->rounding;
    pp->seed = p->seed;
    pp->anchor = p->anchor;
    pp->coder = (uint32_t)p->coder;
    pp->gecko_group = p->gecko_group;
    pp->zmap = p->zmap;
}

static int fill_key(Sfp__Ipc__V1__Key *kk, const sfpc_key *k)
{
    if (!k || !k->tensor || !k->tensor[0] || strlen(k->tensor) > 255 ||
        sfp_text_check(k->tensor, strlen(k->tensor)) != 0)
        return SFPC_EINVAL;
    kk->rank = k->rank;
    kk->step = k->step;
    kk->tensor = (char *)k->tensor;
    return 0;
}

/* Sends rq without waiting; its reply is read (and reported to info) by a
 * later call. */
static int send_async(sfpc *c, req_t *rq, void *info, bool get)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    unsigned slot;
    int e;
    if (c->async_n == MAX_ASYNC) {
        /* the oldest is read first: waiting for all is the bound */
        resp_t *unused = NULL;
        if ((e = await(c, 0, &unused, deadline)) < 0)
            return e;
    }
    rq->id = ++c->next_id;
    if ((e = send_request(c, rq, -1, deadline)) < 0)
        return e;
    slot = (c->async_head + c->async_n) % MAX_ASYNC;
    c->async_ids[slot] = rq->id;
    c->async_info[slot] = info;
    c->async_get[slot] = get;
    c->async_n++;
    return 0;
}

/* Bytes a put reads: used in place inside the shm, else copied to its
 * start (synchronous puts only). */
static int place(sfpc *c, const void **data, size_t len, unsigned flags)
{
    int e;
    if (in_shm(c, *data, len))
        return 0;
    if (flags & SFPC_ASYNC)
        return SFPC_EINVAL;
    if (len > c->shm_size)
        return SFPC_ESHMSIZE;
    if ((e = sfpc_flush(c)) < 0)
        return e;
    memcpy(c->shm, *data, len);
    *data = c->shm;
    return 0;
}

/* Sends a Put or PutFrame; waits for its PutReply unless SFPC_ASYNC. */
static int put_send(sfpc *c, req_t *rq, unsigned flags, sfpc_put_info *info)
{
    resp_t *r = NULL;
    int e;
    if (flags & SFPC_ASYNC) {
        if (info) {
            info->stored_bytes = info->policy_generation = 0;
            info->tier = -1;
        }
        return send_async(c, rq, info, false);
    }
    if ((e = call(c, rq, &r)) < 0)
        return e;
    if (info) {
        info->stored_bytes = r->put ? r->put->stored_bytes : 0;
        info->tier = r->put ? (int)r->put->tier : 0;
        info->policy_generation = r->put ? r->put->policy_generation : 0;
    }
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return c->async_err ? sfpc_flush(c) : 0;
}

int sfpc_put(sfpc *c, const sfpc_key *k, const void *data, size_t count,
             const sfp_params *p, unsigned flags, sfpc_put_info *info)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Put put = SFP__IPC__V1__PUT__INIT;
    Sfp__Ipc__V1__Key key = SFP__IPC__V1__KEY__INIT;
    Sfp__Ipc__V1__Params params = SFP__IPC__V1__PARAMS__INIT;
    size_t es, len;
    int e;

    if (!c || !p || !data || (e = fill_key(&key, k)) < 0 || !(es = sfp_dtype_size(p->dtype)))
        return SFPC_EINVAL;
    if (c->broken)
        return SFPC_EDISCONNECTED;
    if (count > SIZE_MAX / es)
        return SFPC_EINVAL;
    len = count * es;
    if ((e = place(c, &data, len, flags)) < 0)
        return e;
    fill_params(&params, p);
    put.key = &key;
    put.offset = (uint64_t)((const uint8_t *)data - c->shm);
    put.length = len;
    put.count = count;
    put.params = &params;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT;
    rq.put = &put;
    return put_send(c, &rq, flags, info);
}

/* Where a get writes: dst in place inside the shm, else the start of the
 * shm (copied out after the reply). */
static int get_target(sfpc *c, const void *dst, size_t *cap, bool *direct)
{
    int e;
    *direct = in_shm(c, dst, *cap);
    if (*direct)
        return 0;
    if ((e = sfpc_flush(c)) < 0)
        return e;
    if (*cap > c->shm_size)
        *cap = c->shm_size;
    return 0;
}

/*
 * The end of a Get or GetFrame: the reply had its body (ok) of len bytes,
 * which sfpd wrote at the shm's start unless dst lies in it (direct); frees r.
 */
static int got(sfpc *c, resp_t *r, int ok, uint64_t len, uint64_t count, int dtype, int hit,
               void *dst, size_t cap, bool direct, sfpc_get_info *info)
{
    if (!ok || len > cap) {
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        return fail(c, SFPC_EPROTO);
    }
    if (!direct)
        memcpy(dst, c->shm, len);
    if (info) {
        info->count = count;
        info->bytes = len;
        info->dtype = (sfp_dtype)dtype;
        info->hit = hit;
    }
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return 0;
}

int sfpc_get(sfpc *c, const sfpc_key *k, void *dst, size_t cap, unsigned flags,
             sfpc_get_info *info)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Get get = SFP__IPC__V1__GET__INIT;
    Sfp__Ipc__V1__Key key = SFP__IPC__V1__KEY__INIT;
    resp_t *r = NULL;
    bool direct;
    int e;

    if (!c || !dst || (e = fill_key(&key, k)) < 0)
        return SFPC_EINVAL;
    if ((e = get_target(c, dst, &cap, &direct)) < 0)
        return e;
    get.key = &key;
    get.offset = direct ? (uint64_t)((uint8_t *)dst - c->shm) : 0;
    get.capacity = cap;
    get.drop = (flags & SFPC_GET_DROP) != 0;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_GET;
    rq.get = &get;
    if ((e = call(c, &rq, &r)) < 0)
        return e;
    if (!r->get)
        return got(c, r, 0, 0, 0, 0, 0, dst, cap, direct, info);
    return got(c, r, 1, r->get->length, r->get->count, r->get->dtype, r->get->prefetch_hit,
               dst, cap, direct, info);
}

int sfpc_put_frame(sfpc *c, const sfpc_key *k, const void *frame, size_t len, unsigned flags,
                   sfpc_put_info *info)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__PutFrame pf = SFP__IPC__V1__PUT_FRAME__INIT;
    Sfp__Ipc__V1__Key key = SFP__IPC__V1__KEY__INIT;
    int e;

    if (!c || !frame || !len || (e = fill_key(&key, k)) < 0)
        return SFPC_EINVAL;
    if (c->broken)
        return SFPC_EDISCONNECTED;
    if ((e = place(c, &frame, len, flags)) < 0)
        return e;
    pf.key = &key;
    pf.offset = (uint64_t)((const uint8_t *)frame - c->shm);
    pf.length = len;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT_FRAME;
    rq.put_frame = &pf;
    return put_send(c, &rq, flags, info);
}

static void get_frame_req(Sfp__Ipc__V1__GetFrame *gf, Sfp__Ipc__V1__Key *key, uint64_t off,
                          size_t cap, unsigned flags, req_t *rq)
{
    gf->key = key;
    gf->offset = off;
    gf->capacity = cap;
    gf->drop = (flags & SFPC_GET_DROP) != 0;
    rq->body_case = SFP__IPC__V1__REQUEST__BODY_GET_FRAME;
    rq->get_frame = gf;
}

int sfpc_get_frame(sfpc *c, const sfpc_key *k, void *dst, size_t cap, unsigned flags,
                   sfpc_get_info *info)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__GetFrame gf = SFP__IPC__V1__GET_FRAME__INIT;
    Sfp__Ipc__V1__Key key = SFP__IPC__V1__KEY__INIT;
    resp_t *r = NULL;
    bool direct;
    int e;

    if (!c || !dst || (e = fill_key(&key, k)) < 0)
        return SFPC_EINVAL;
    if ((e = get_target(c, dst, &cap, &direct)) < 0)
        return e;
    get_frame_req(&gf, &key, direct ? (uint64_t)((uint8_t *)dst - c->shm) : 0, cap, flags, &rq);
    if ((e = call(c, &rq, &r)) < 0)
        return e;
    const Sfp__Ipc__V1__GetFrameReply *g = r->get_frame;
    if (!g)
        return got(c, r, 0, 0, 0, 0, 0, dst, cap, direct, info);
    return got(c, r, 1, g->frame_length, g->count, g->dtype, g->prefetch_hit, dst, cap, direct,
               info);
}

int sfpc_get_frame_async(sfpc *c, const sfpc_key *k, void *dst, size_t cap, unsigned flags,
                         sfpc_pending *p)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__GetFrame gf = SFP__IPC__V1__GET_FRAME__INIT;
    Sfp__Ipc__V1__Key key = SFP__IPC__V1__KEY__INIT;
    int e;

    if (!c || !dst || !p || (e = fill_key(&key, k)) < 0 || !in_shm(c, dst, cap))
        return SFPC_EINVAL;
    if (c->broken)
        return SFPC_EDISCONNECTED;
    memset(p, 0, sizeof(*p));
    p->cap = cap;
    get_frame_req(&gf, &key, (uint64_t)((uint8_t *)dst - c->shm), cap, flags, &rq);
    return send_async(c, &rq, p, true);
}

int sfpc_wait(sfpc *c, sfpc_pending *p)
{
    int64_t deadline = now_ms() + c->timeout_ms;
    if (!c || !p)
        return SFPC_EINVAL;
    while (!p->done) {
        int e;
        if (c->broken)
            return SFPC_EDISCONNECTED;
        if (!c->async_n)
            return SFPC_EINVAL; /* not in flight on this connection */
        /* the head's reply: await() files it and returns at id 0 only
         * when nothing is left, so read one reply at a time */
        if ((e = await_one(c, deadline)) < 0)
            return e;
    }
    return p->status;
}

static int simple(sfpc *c, req_t *rq)
{
    resp_t *r = NULL;
    int e = call(c, rq, &r);
    if (e < 0)
        return e;
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return 0;
}

int sfpc_drop(sfpc *c, const sfpc_key *k)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Drop d = SFP__IPC__V1__DROP__INIT;
    Sfp__Ipc__V1__Key key = SFP__IPC__V1__KEY__INIT;
    int e;
    if (!c || (e = fill_key(&key, k)) < 0)
        return SFPC_EINVAL;
    d.key = &key;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_DROP;
    rq.drop = &d;
    return simple(c, &rq);
}

int sfpc_prefetch(sfpc *c, unsigned depth)
{
    return sfpc_prefetch_flags(c, depth, 0);
}

int sfpc_prefetch_flags(sfpc *c, unsigned depth, unsigned flags)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Prefetch p = SFP__IPC__V1__PREFETCH__INIT;
    if (!c)
        return SFPC_EINVAL;
    if (c->broken)
        return SFPC_EDISCONNECTED;
    p.depth = depth;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_PREFETCH;
    rq.prefetch = &p;
    /* asynchronous: an error shows at the next sfpc_flush, as a put's */
    return flags & SFPC_ASYNC ? send_async(c, &rq, NULL, false) : simple(c, &rq);
}

int sfpc_end_job(sfpc *c)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__EndJob ej = SFP__IPC__V1__END_JOB__INIT;
    if (!c)
        return SFPC_EINVAL;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_END_JOB;
    rq.end_job = &ej;
    return simple(c, &rq);
}

int sfpc_policy_get(sfpc *c, sfpc_policy *out)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__PolicyRequest pq = SFP__IPC__V1__POLICY_REQUEST__INIT;
    const Sfp__Ipc__V1__PolicyReply *p;
    resp_t *r = NULL;
    int e;

    if (!c || !out)
        return SFPC_EINVAL;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_POLICY;
    rq.policy = &pq;
    if ((e = call(c, &rq, &r)) < 0)
        return e;
    p = r->policy;
    if (!p || p->max_mantissa_bits > 23 || p->min_mantissa_bits > p->max_mantissa_bits ||
        p->min_exponent_bits < 1 || p->max_exponent_bits > 8 ||
        p->min_exponent_bits > p->max_exponent_bits ||
        (p->pin && (p->pinned_mantissa_bits > 23 || p->pinned_exponent_bits < 1 ||
                    p->pinned_exponent_bits > 8)) ||
        p->coder < -1 || p->coder >= SFP_CODER_COUNT) {
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        return fail(c, SFPC_EPROTO);
    }
    out->generation = p->generation;
    out->min_mbits = p->min_mantissa_bits;
    out->max_mbits = p->max_mantissa_bits;
    out->min_ebits = p->min_exponent_bits;
    out->max_ebits = p->max_exponent_bits;
    out->pin = p->pin;
    out->pin_mbits = p->pinned_mantissa_bits;
    out->pin_ebits = p->pinned_exponent_bits;
    out->coder = p->coder;
    out->freeze = p->freeze;
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return 0;
}

static size_t align64(size_t v) { return (v + 63) & ~(size_t)63; }


/*
 * Places a stateless codec request in the shared memory: the input [src,
 * src+len) is used in place or copied to offset 0, the output goes to dst
 * in place or right after the input (then copied out by the caller).
 */
typedef struct staging {
    size_t in_off, out_off, out_cap;
    bool dst_in;
} staging;

static int stage(sfpc *c, const void *src, size_t len, void *dst, size_t cap, staging *sg)
{
    bool src_in = in_shm(c, src, len);
    sg->dst_in = in_shm(c, dst, cap);
    sg->in_off = src_in ? (size_t)((const uint8_t *)src - c->shm) : 0;
    if (!src_in) {
        if (len > c->shm_size)
            return SFPC_ESHMSIZE;
        memcpy(c->shm, src, len);
    }
    if (sg->dst_in) {
        sg->out_off = (size_t)((uint8_t *)dst - c->shm);
        sg->out_cap = cap;
    } else {
        sg->out_off = align64(sg->in_off + len);
        if (sg->out_off >= c->shm_size)
            return SFPC_ESHMSIZE;
        sg->out_cap = cap < c->shm_size - sg->out_off ? cap : c->shm_size - sg->out_off;
    }
    return 0;
}

int sfpc_encode(sfpc *c, const void *src, size_t count, const sfp_params *p,
                void *dst, size_t cap, size_t *frame_len)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Encode en = SFP__IPC__V1__ENCODE__INIT;
    Sfp__Ipc__V1__Params params = SFP__IPC__V1__PARAMS__INIT;
    size_t es, len;
    staging sg;
    resp_t *r = NULL;
    int e;

    if (!c || !src || !dst || !p || !(es = sfp_dtype_size(p->dtype)) || count > SIZE_MAX / es)
        return SFPC_EINVAL;
    if ((e = sfpc_flush(c)) < 0)
        return e;
    len = count * es;
    if ((e = stage(c, src, len, dst, cap, &sg)) < 0)
        return e;
    fill_params(&params, p);
    en.offset = sg.in_off;
    en.length = len;
    en.count = count;
    en.params = &params;
    en.out_offset = sg.out_off;
    en.out_capacity = sg.out_cap;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_ENCODE;
    rq.encode = &en;
    if ((e = call(c, &rq, &r)) < 0)
        return e;
    if (!r->encode || r->encode->frame_length > sg.out_cap) {
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        return fail(c, SFPC_EPROTO);
    }
    if (!sg.dst_in)
        memcpy(dst, c->shm + sg.out_off, r->encode->frame_length);
    if (frame_len)
        *frame_len = r->encode->frame_length;
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return 0;
}

int sfpc_decode(sfpc *c, const void *frame, size_t len, void *dst, size_t cap, size_t *count)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Decode de = SFP__IPC__V1__DECODE__INIT;
    staging sg;
    resp_t *r = NULL;
    int e;

    if (!c || !frame || !dst)
        return SFPC_EINVAL;
    if ((e = sfpc_flush(c)) < 0)
        return e;
    if ((e = stage(c, frame, len, dst, cap, &sg)) < 0)
        return e;
    de.offset = sg.in_off;
    de.length = len;
    de.out_offset = sg.out_off;
    de.out_capacity = sg.out_cap;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_DECODE;
    rq.decode = &de;
    if ((e = call(c, &rq, &r)) < 0)
        return e;
    if (!r->decode || r->decode->length > sg.out_cap) {
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        return fail(c, SFPC_EPROTO);
    }
    if (!sg.dst_in)
        memcpy(dst, c->shm + sg.out_off, r->decode->length);
    if (count)
        *count = r->decode->count;
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return 0;
}

int sfpc_stats_get(sfpc *c, sfpc_stats *out)
{
    req_t rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__StatsRequest sr = SFP__IPC__V1__STATS_REQUEST__INIT;
    resp_t *r = NULL;
    const Sfp__Ipc__V1__StatsReply *s;
    int e;

    if (!c || !out)
        return SFPC_EINVAL;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_STATS;
    rq.stats = &sr;
    if ((e = call(c, &rq, &r)) < 0)
        return e;
    s = r->stats;
    if (!s) {
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        return fail(c, SFPC_EPROTO);
    }
    memset(out, 0, sizeof(*out));
    out->dram_bytes = s->dram_bytes;
    out->dram_high_water = s->dram_high_water;
    out->dram_budget = s->dram_budget;
    out->disk_bytes = s->disk_bytes;
    out->spills = s->spills;
    out->prefetch_hits = s->prefetch_hits;
    out->prefetch_misses = s->prefetch_misses;
    out->puts = s->puts;
    out->gets = s->gets;
    out->errors = s->errors;
    out->corrupt = s->corrupt;
    out->job_bytes_in = s->job_bytes_in;
    out->job_bytes_stored = s->job_bytes_stored;
    out->job_frames = s->job_frames;
    out->job_dram_high_water = s->job_dram_high_water;
    out->text = s->text ? strdup(s->text) : NULL;
    sfp__ipc__v1__response__free_unpacked(r, NULL);
    return 0;
}

void sfpc_stats_free(sfpc_stats *s)
{
    if (s) {
        free(s->text);
        s->text = NULL;
    }
}
