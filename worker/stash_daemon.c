/*
 * stash_daemon.c - the stash through sfpd (libsfpclient).
 *
 * A put copies the tensor into the connection's shared memory and sends an
 * asynchronous Put: the rank goes on with the forward pass while sfpd
 * encodes. The shared memory is used as a bump allocator that restarts at
 * the beginning of every backward pass, when all puts of the step have been
 * acknowledged (backward() waits for them, collects the stored sizes and asks
 * sfpd to prefetch in backward order). A get decodes in sfpd and drops the
 * key in the same request (every stash is read exactly once).
 *
 * A frame sfpd cannot give back while it keeps serving (E_LOST: it was on a
 * peer sfpd that died or is unreachable; E_CORRUPT: it failed its checksum)
 * costs the step, not the daemon: the get returns SFPW_STASH_ERETRY and the
 * step runs again through sfpd (its puts replace the step's keys). A second
 * such loss in the same step counts as a daemon loss.
 *
 * With cfg.rank_codec (--stash-codec rank) the rank does the codec work
 * itself, as the in-process stash does: a put encodes the tensor with
 * libsfp straight into the put ring and sends the finished frame
 * (asynchronous PutFrame, corked: the step's puts stay in the client
 * until backward(); sizes and statistics are known at once, so the put is
 * not deferred); a get asks for the frame (GetFrame, dropping the key) and
 * decodes it in the rank. backward() sends, in one write, the step's
 * puts, the Prefetch and the GetFrames: when the ring did not wrap in the
 * step (allg), the GetFrame of every tensor, each into the place its frame
 * was put from (sfpd serves a connection in order: it has read a put
 * before a get writes there), so sfpd wakes once per step; it waits for
 * the first (the puts' acknowledgements come before it) and every get
 * waits for its own. When the ring wrapped, one read ahead: backward()
 * sends the GetFrame of the step's last put, the hint prefetch() of the
 * next layer's tensor sends its GetFrame ahead, and every get sends the
 * GetFrame of the tensor put just before its own (backward reads in
 * reverse put order) before it decodes, in two slots at the start of the
 * ring (free during backward: every put was acknowledged).
 * sfpd verifies every frame before storing it and before returning it; a
 * frame the rank cannot decode counts like one sfpd could not return.
 *
 * Daemon loss: any other failed daemon call (dead socket, timeout, an error
 * reply) loses the step's stashes held by sfpd. With SFPW_ON_LOSS_FALLBACK the
 * stash switches for good to an in-process stash and the call returns
 * SFPW_STASH_ERETRY: the caller runs the step again. With
 * SFPW_ON_LOSS_FAIL that call and every later one return
 * SFPW_STASH_EDAEMON. A get never returns data that sfpd did not verify.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sfp/client.h>

#include "stash.h"

typedef struct pending {
    uint32_t tensor;
    size_t flen;        /* rank codec: the frame's bytes           */
    size_t off;         /* rank codec: where in the shm it was put */
    sfpc_put_info info; /* filled by the client when the ack is read */
} pending;

/* Rank codec: a GetFrame sent ahead (prefetch) or none. */
typedef struct ahead {
    int live;           /* sent and not yet consumed by a get      */
    sfpw_stash_key key;
    sfpc_pending p;
} ahead;

typedef struct dstash {
    sfpw_stash base;
    sfpw_daemon_config cfg;
    char job[160];
    sfpc *c;               /* NULL once lost                       */
    sfpw_stash *local;     /* the fallback, opened on loss         */
    int lost;              /* 1 after the daemon was lost          */
    int last_err;          /* daemon error that caused the loss    */
    char last_msg[256];
    unsigned char *shm;
    size_t shm_size;
    size_t act_end;        /* [0, act_end): handed out by alloc() */
    size_t pos;            /* bump allocator of the put ring in [act_end, size) */
    size_t pos_peak;       /* largest pos: the shared memory touched */
    pending *pend;         /* async puts of the current step       */
    size_t npend, cpend;
    uint64_t policy_seen;  /* newest policy generation puts reported */
    int frame_lost;        /* a frame of step frame_lost_step was lost */
    uint64_t frame_lost_step;
    sfpw_override policy;  /* the last one fetched                 */
    size_t *flen;          /* rank codec: frame bytes of each tensor's last put */
    size_t nflen;
    size_t slot;           /* rank codec: bytes of a get slot (largest frame of
                            * the step), 0 before the first backward        */
    ahead ahead[2];        /* rank codec: the read ahead in get slot i     */
    uint32_t *order;       /* rank codec: tensors of the step in put order */
    unsigned char *got;    /* ... and which of them were got               */
    size_t *at, *alen;     /* ... where each frame was put, its bytes      */
    sfpc_pending *gp;      /* ... the GetFrame of each (allg)              */
    int allg;              /* this step's GetFrames all sent at backward() */
    int wrapped;           /* the ring restarted since the step's first put */
    size_t norder, corder;
    uint64_t order_step;
} dstash;

static const sfpw_stash_ops daemon_ops, frame_ops;

static int is_daemon(const sfpw_stash *st)
{
    return st && (st->ops == &daemon_ops || st->ops == &frame_ops);
}

static void make_key(const dstash *d, const sfpw_stash_key *key, sfpc_key *k,
                     char *name, size_t cap)
{
    snprintf(name, cap, "t%u", key->tensor);
    k->rank = d->cfg.rank;
    k->step = key->step;
    k->tensor = name;
}

/*
 * Called with the error of a failed daemon call. Returns what the stash call
 * must return: ERETRY after falling back, EDAEMON when fallback is off or
 * impossible. rerun: whether the caller runs its step again after ERETRY
 * (the stash calls of a step do; a weight encode or the end of the job do
 * not), which the log line says as it is.
 */
static int lose(dstash *d, int err, const char *what, int rerun)
{
    if (!d->lost) {
        char msg[512];
        const char *dm = d->c ? sfpc_last_message(d->c) : "";
        d->last_err = err;
        snprintf(d->last_msg, sizeof d->last_msg, "%s: %s%s%s", what,
                 sfpc_strerror(err), dm[0] ? ": " : "", dm);
        snprintf(msg, sizeof msg, "sfpd lost (%s); %s", d->last_msg,
                 d->cfg.on_loss != SFPW_ON_LOSS_FALLBACK
                     ? "stopping (--on-daemon-loss=fail)"
                 : rerun ? "continuing with the in-process stash (this step runs again)"
                         : "continuing in-process (nothing runs again)");
        if (d->cfg.log)
            d->cfg.log(msg);
        d->lost = 1;
        /* sfpd may still hold requests that read or write the shared
         * memory (a daemon that stopped answering can wake up): swap our
         * view of it for private memory, so that nothing it does reaches
         * the rank any more. Buffers from alloc() stay valid (zeroed). The
         * connection is closed with the stash. Should mmap fail, the
         * daemon's mapping stays; the stash stops using it either way. */
        if (d->shm)
            (void)mmap(d->shm, d->shm_size, PROT_READ | PROT_WRITE,
                       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        d->npend = 0;
        d->ahead[0].live = d->ahead[1].live = 0;
        if (d->cfg.on_loss == SFPW_ON_LOSS_FALLBACK &&
            sfpw_stash_local_open(&d->local) != 0)
            d->local = NULL;
    }
    return d->local ? SFPW_STASH_ERETRY : SFPW_STASH_EDAEMON;
}

/* Lossless plain F32: how raw (statistics) tensors are stored. */
static const sfp_params *raw_params(sfp_params *raw)
{
    sfp_params_default(raw);
    raw->dtype = SFP_DTYPE_F32;
    raw->mbits = 23;
    raw->ebits = 8;
    raw->coder = SFP_CODER_PLAIN;
    return raw;
}

/* Room for one more pending put. */
static int pend_reserve(dstash *d)
{
    if (d->npend < d->cpend)
        return 0;
    size_t nc = d->cpend ? 2 * d->cpend : 64;
    pending *np = realloc(d->pend, nc * sizeof *np);
    if (!np)
        return SFP_ENOMEM;
    d->pend = np;
    d->cpend = nc;
    return 0;
}

/* Waits for every put of the step to be taken, then restarts the ring. */
static int ring_restart(dstash *d)
{
    int rc;
    if ((rc = sfpc_flush(d->c)) < 0)
        return lose(d, rc, "put", 1);
    d->pos = d->act_end;
    d->wrapped = 1;
    return 0;
}

static int d_put(sfpw_stash *st, const sfpw_stash_key *key, const float *data,
                 size_t n, const sfp_params *p, size_t *frame_bytes,
                 sfp_qstats *stats)
{
    dstash *d = st->impl;
    if (d->lost)
        return d->local ? d->local->ops->put(d->local, key, data, n, p, frame_bytes, stats)
                        : SFPW_STASH_EDAEMON;
    sfp_params raw;
    if (!p)
        p = raw_params(&raw);
    if (n > (SIZE_MAX - 63) / sizeof(float))
        return SFP_EINVAL;
    size_t len = n * sizeof(float), need = (len + 63) & ~(size_t)63;
    const unsigned char *src = (const unsigned char *)data;
    int rc, in_place = src >= d->shm && src < d->shm + d->act_end &&
                       len <= (size_t)(d->shm + d->act_end - src);
    if (!in_place && need > d->shm_size - d->act_end)
        return SFP_EOVERFLOW;
    /* the step's tensors outgrew the ring: start over once sfpd read them */
    if (!in_place && d->pos + need > d->shm_size && (rc = ring_restart(d)))
        return rc;
    if ((rc = pend_reserve(d)))
        return rc;
    unsigned char *slot = (unsigned char *)data;
    if (!in_place) {
        slot = d->shm + d->pos;
        memcpy(slot, data, len);
    }
    char name[32];
    sfpc_key k;
    make_key(d, key, &k, name, sizeof name);
    pending *pe = &d->pend[d->npend];
    pe->tensor = key->tensor;
    if ((rc = sfpc_put(d->c, &k, slot, n, p, SFPC_ASYNC, &pe->info)) < 0)
        return lose(d, rc, "put", 1);
    d->npend++;
    if (!in_place)
        d->pos += need;
    if (d->pos > d->pos_peak)
        d->pos_peak = d->pos;
    if (frame_bytes)
        *frame_bytes = 0;
    (void)stats;
    return 0;
}

static void send_ahead(dstash *d, const sfpw_stash_key *key, int i);

/* Rank codec: the step's put order, which backward reads in reverse. */
static int keep_order(dstash *d, uint64_t step)
{
    /* no GetFrame of an earlier step is in flight here (the step's first
     * put settled them), so gp may move */
    if (d->npend > d->corder) {
        size_t n = d->npend;
        uint32_t *o = realloc(d->order, n * sizeof *o);
        if (o)
            d->order = o;
        unsigned char *g = o ? realloc(d->got, n) : NULL;
        if (g)
            d->got = g;
        size_t *a = g ? realloc(d->at, n * sizeof *a) : NULL;
        if (a)
            d->at = a;
        size_t *l = a ? realloc(d->alen, n * sizeof *l) : NULL;
        if (l)
            d->alen = l;
        sfpc_pending *p = l ? realloc(d->gp, n * sizeof *p) : NULL;
        if (!p)
            return SFP_ENOMEM;
        d->gp = p;
        d->corder = n;
    }
    for (size_t i = 0; i < d->npend; i++) {
        d->order[i] = d->pend[i].tensor;
        d->at[i] = d->pend[i].off;
        d->alen[i] = d->pend[i].flen;
    }
    memset(d->got, 0, d->npend);
    d->norder = d->npend;
    d->order_step = step;
    return 0;
}

/* The newest policy generation the step's acknowledged puts reported. */
static void note_policy(dstash *d)
{
    for (size_t i = 0; i < d->npend; i++)
        if (d->pend[i].info.policy_generation > d->policy_seen)
            d->policy_seen = d->pend[i].info.policy_generation;
}

static int d_backward(sfpw_stash *st, const sfpw_stash_key *key, double *bytes)
{
    dstash *d = st->impl;
    int rc;
    (void)key;
    if (d->lost)
        return d->local ? 0 : SFPW_STASH_EDAEMON;
    if ((rc = sfpc_flush(d->c)) < 0)
        return lose(d, rc, "put (acknowledgement)", 1);
    for (size_t i = 0; bytes && i < d->npend; i++)
        bytes[d->pend[i].tensor] += (double)d->pend[i].info.stored_bytes;
    note_policy(d);
    d->npend = 0;
    d->pos = d->act_end;
    if ((rc = sfpc_prefetch(d->c, 0)) < 0)
        return lose(d, rc, "prefetch", 1);
    return 0;
}

/*
 * Rank codec. One write: the step's corked puts, the prefetch hint and the
 * GetFrames (sfpd serves a connection in order, so every put's frame is out
 * of the ring before a get writes to it). When the ring did not wrap in
 * this step, every frame comes back where it was put, all GetFrames go at
 * once (sfpd wakes once for the step's reads) and the rank waits for the
 * first only; else one read ahead in the two get slots. The puts told
 * their sizes (bytes is not touched).
 */
static int f_backward(sfpw_stash *st, const sfpw_stash_key *key, double *bytes)
{
    dstash *d = st->impl;
    int rc;
    (void)bytes;
    if (d->lost || !d->npend) {
        /* nothing put in this step: nothing to read back (d_backward's
         * flush takes any reply still due) */
        d->allg = 0;
        d->norder = 0;
        return d_backward(st, key, NULL);
    }
    size_t big = 0;
    for (size_t i = 0; i < d->npend; i++)
        big = d->pend[i].flen > big ? d->pend[i].flen : big;
    if ((rc = keep_order(d, key->step)))
        return rc;
    d->slot = (big + 63) & ~(size_t)63;
    if ((rc = sfpc_prefetch_flags(d->c, 0, SFPC_ASYNC)) < 0)
        return lose(d, rc, "prefetch", 1);
    d->allg = !d->wrapped;
    for (size_t i = d->norder; d->allg && i-- > 0;) {
        char name[32];
        sfpc_key k;
        sfpw_stash_key sk = *key;
        sk.tensor = d->order[i];
        make_key(d, &sk, &k, name, sizeof name);
        if ((rc = sfpc_get_frame_async(d->c, &k, d->shm + d->at[i], d->alen[i], SFPC_GET_DROP,
                                       &d->gp[i])) < 0)
            return lose(d, rc, "get", 1);
    }
    if (!d->allg) {
        sfpw_stash_key k = *key;
        k.tensor = d->order[d->norder - 1];
        send_ahead(d, &k, 0);
    }
    if ((rc = sfpc_cork(d->c, 0)) < 0)
        return lose(d, rc, "put", 1);
    /* the puts' acknowledgements come before any get's reply; a get's own
     * failure shows at that get */
    if (d->allg) {
        rc = sfpc_wait(d->c, &d->gp[d->norder - 1]);
        if (rc < 0 && rc != SFPC_ENOTFOUND && rc != SFPC_ELOST && rc != SFPC_ECORRUPT)
            return lose(d, rc, "put (acknowledgement)", 1);
    } else if ((rc = sfpc_flush(d->c)) < 0) {
        return lose(d, rc, "put (acknowledgement)", 1);
    }
    for (size_t i = 0; i < d->npend; i++) {
        if (d->pend[i].info.stored_bytes != d->pend[i].flen) {
            /* a put failed: its error is the connection's */
            rc = sfpc_flush(d->c);
            return lose(d, rc < 0 ? rc : SFPC_EPROTO, "put (acknowledgement)", 1);
        }
    }
    note_policy(d);
    d->npend = 0;
    d->pos = d->act_end;
    d->wrapped = 0;
    return 0;
}

/*
 * A frame sfpd could not give back (E_LOST, E_CORRUPT) or the rank could
 * not decode: the step runs again through sfpd; a second one in the same
 * step is a daemon loss.
 */
static int frame_failed(dstash *d, const sfpw_stash_key *key, int rc, const char *detail)
{
    char msg[512];
    if (d->frame_lost && d->frame_lost_step == key->step)
        return lose(d, rc, "get", 1);
    d->frame_lost = 1;
    d->frame_lost_step = key->step;
    snprintf(msg, sizeof msg, "sfpd could not return step %llu tensor %u (%s%s%s); "
             "running the step again through sfpd",
             (unsigned long long)key->step, key->tensor, sfpc_strerror(rc),
             detail[0] ? ": " : "", detail);
    if (d->cfg.log)
        d->cfg.log(msg);
    return SFPW_STASH_ERETRY;
}

static int d_get(sfpw_stash *st, const sfpw_stash_key *key, float *dst, size_t n)
{
    dstash *d = st->impl;
    if (d->lost)
        return d->local ? d->local->ops->get(d->local, key, dst, n) : SFPW_STASH_EDAEMON;
    char name[32];
    sfpc_key k;
    sfpc_get_info gi;
    make_key(d, key, &k, name, sizeof name);
    int rc = sfpc_get(d->c, &k, dst, n * sizeof(float), SFPC_GET_DROP, &gi);
    if (rc == SFPC_ELOST || rc == SFPC_ECORRUPT)
        return frame_failed(d, key, rc, sfpc_last_message(d->c));
    if (rc < 0)
        return lose(d, rc, "get", 1);
    if (gi.count != n || gi.dtype != SFP_DTYPE_F32)
        return lose(d, SFPC_EPROTO, "get (size or type differs from the put)", 1);
    return 0;
}

/* ------------------------------------------------------ rank codec */

static int key_same(const sfpw_stash_key *a, const sfpw_stash_key *b)
{
    return a->job == b->job && a->rank == b->rank && a->step == b->step && a->tensor == b->tensor;
}

static int note_flen(dstash *d, uint32_t tensor, size_t len)
{
    if (tensor >= d->nflen) {
        size_t nn = tensor + 16;
        size_t *nf = realloc(d->flen, nn * sizeof *nf);
        if (!nf)
            return SFP_ENOMEM;
        memset(nf + d->nflen, 0, (nn - d->nflen) * sizeof *nf);
        d->flen = nf;
        d->nflen = nn;
    }
    d->flen[tensor] = len;
    return 0;
}

/* Reads (and forgets) a GetFrame sent ahead that no get took: before the
 * ring is written again. 0 or the stash error. */
static int settle_ahead(dstash *d)
{
    for (int i = 0; i < 2; i++) {
        if (!d->ahead[i].live)
            continue;
        d->ahead[i].live = 0;
        int rc = sfpc_wait(d->c, &d->ahead[i].p);
        if (rc < 0 && rc != SFPC_ENOTFOUND && rc != SFPC_ELOST && rc != SFPC_ECORRUPT)
            return lose(d, rc, "get", 1);
    }
    return 0;
}

/* put, or with qout (== data) put_q: the values quantized in place while
 * they are encoded, as the in-process stash does */
static int f_put_frame(sfpw_stash *st, const sfpw_stash_key *key, const float *data,
                       size_t n, const sfp_params *p, size_t *frame_bytes,
                       sfp_qstats *stats, float *qout)
{
    dstash *d = st->impl;
    if (d->lost) {
        if (!d->local)
            return SFPW_STASH_EDAEMON;
        return qout ? d->local->ops->put_q(d->local, key, qout, n, p, frame_bytes, stats)
                    : d->local->ops->put(d->local, key, data, n, p, frame_bytes, stats);
    }
    sfp_params raw;
    if (!p)
        p = raw_params(&raw); /* statistics: stored exactly */
    size_t bound = sfp_frame_bound(n, p), len = 0;
    int rc;
    if (!bound)
        return SFP_EINVAL;
    if (bound > d->shm_size - d->act_end)
        return SFP_EOVERFLOW;
    if ((rc = settle_ahead(d)))
        return rc;
    if (!d->npend && d->allg) {
        /* GetFrames of the last step no get took: read before the ring
         * is written again */
        d->allg = 0;
        if ((rc = sfpc_flush(d->c)) < 0)
            return lose(d, rc, "get", 1);
    }
    if (!d->npend)
        d->wrapped = 0;
    if (d->pos + bound > d->shm_size && (rc = ring_restart(d)))
        return rc;
    if ((rc = pend_reserve(d)))
        return rc;
    if ((rc = note_flen(d, key->tensor, 0)))
        return rc;
    /* the step's puts travel together at backward() (one sfpd wake-up) */
    if (!d->npend && (rc = sfpc_cork(d->c, 1)) < 0)
        return lose(d, rc, "put", 1);
    /* exactly the in-process stash's frame (stash_local.c) */
    if ((rc = sfp_encode_q(data, n, p, d->shm + d->pos, bound, &len, p == &raw ? NULL : stats,
                           p == &raw ? NULL : qout)))
        return rc;
    char name[32];
    sfpc_key k;
    make_key(d, key, &k, name, sizeof name);
    pending *pe = &d->pend[d->npend];
    pe->tensor = key->tensor;
    pe->flen = len;
    pe->off = d->pos;
    if ((rc = sfpc_put_frame(d->c, &k, d->shm + d->pos, len, SFPC_ASYNC, &pe->info)) < 0)
        return lose(d, rc, "put", 1);
    d->npend++;
    d->flen[key->tensor] = len;
    d->pos += (len + 63) & ~(size_t)63;
    if (d->pos > d->pos_peak)
        d->pos_peak = d->pos;
    if (frame_bytes)
        *frame_bytes = len;
    return 0;
}

static int f_put(sfpw_stash *st, const sfpw_stash_key *key, const float *data,
                 size_t n, const sfp_params *p, size_t *frame_bytes,
                 sfp_qstats *stats)
{
    return f_put_frame(st, key, data, n, p, frame_bytes, stats, NULL);
}

static int f_put_q(sfpw_stash *st, const sfpw_stash_key *key, float *data, size_t n,
                   const sfp_params *p, size_t *frame_bytes, sfp_qstats *stats)
{
    return f_put_frame(st, key, data, n, p, frame_bytes, stats, data);
}

/* Room of get slot i: [off, off + cap). 0 if the ring has no such slot. */
static size_t slot_of(const dstash *d, int i, size_t *off)
{
    size_t room = d->shm_size - d->act_end, s = d->slot && d->slot <= room ? d->slot : room;
    *off = d->act_end + (size_t)i * s;
    return (size_t)(i + 1) * s <= room ? s : 0;
}

/* Sends the GetFrame of key ahead into get slot i (free); a failure shows
 * again at the get of key, which handles it. */
static void send_ahead(dstash *d, const sfpw_stash_key *key, int i)
{
    size_t off, cap = slot_of(d, i, &off);
    char name[32];
    sfpc_key k;
    if (!slot_of(d, 1, &(size_t){0}) || d->ahead[0].live || d->ahead[1].live)
        return; /* one read ahead at a time, and only with two slots */
    make_key(d, key, &k, name, sizeof name);
    if (key->tensor < d->nflen && d->flen[key->tensor] && d->flen[key->tensor] <= cap)
        cap = d->flen[key->tensor];
    if (sfpc_get_frame_async(d->c, &k, d->shm + off, cap, SFPC_GET_DROP, &d->ahead[i].p) == 0) {
        d->ahead[i].live = 1;
        d->ahead[i].key = *key;
    }
}

static int f_prefetch(sfpw_stash *st, const sfpw_stash_key *key)
{
    dstash *d = st->impl;
    if (!d->lost && !d->allg) /* allg: every GetFrame is on its way */
        send_ahead(d, key, 1);
    return 0;
}

/* Marks key got; returns the tensor put last before it that is not got
 * yet (what backward reads next), or -1. */
static long next_in_order(dstash *d, const sfpw_stash_key *key)
{
    size_t i = d->norder;
    if (d->order_step != key->step)
        return -1;
    while (i > 0 && d->order[i - 1] != key->tensor)
        i--;
    if (i == 0)
        return -1;
    d->got[--i] = 1;
    while (i > 0 && d->got[i - 1])
        i--;
    return i > 0 ? (long)d->order[i - 1] : -1;
}

/* allg: the index in the step's order of key's GetFrame not yet taken,
 * or -1 (then key is read as without allg). */
static long allg_index(const dstash *d, const sfpw_stash_key *key)
{
    if (!d->allg || d->order_step != key->step)
        return -1;
    for (size_t i = d->norder; i-- > 0;)
        if (d->order[i] == key->tensor)
            return d->got[i] ? -1 : (long)i;
    return -1;
}

static int f_get(sfpw_stash *st, const sfpw_stash_key *key, float *dst, size_t n)
{
    dstash *d = st->impl;
    if (d->lost)
        return d->local ? d->local->ops->get(d->local, key, dst, n) : SFPW_STASH_EDAEMON;
    sfpc_get_info gi;
    size_t off, got = 0;
    int rc, cur = -1;
    long ai = allg_index(d, key);
    if (ai >= 0) {
        /* sent at backward(), into the place it was put from */
        d->got[ai] = 1;
        rc = sfpc_wait(d->c, &d->gp[ai]);
        gi = d->gp[ai].info;
        off = d->at[ai];
    }
    for (int i = 0; ai < 0 && i < 2; i++)
        if (d->ahead[i].live && key_same(&d->ahead[i].key, key)) {
            cur = i;
            d->ahead[i].live = 0;
            rc = sfpc_wait(d->c, &d->ahead[i].p);
            gi = d->ahead[i].p.info;
            slot_of(d, i, &off);
        }
    if (ai < 0 && cur < 0) {
        char name[32];
        sfpc_key k;
        cur = d->ahead[0].live ? 1 : 0; /* at most one read ahead is live */
        size_t cap = slot_of(d, cur, &off);
        make_key(d, key, &k, name, sizeof name);
        rc = sfpc_get_frame(d->c, &k, d->shm + off, cap, SFPC_GET_DROP, &gi);
    }
    if (rc == SFPC_ELOST || rc == SFPC_ECORRUPT)
        return frame_failed(d, key, rc, sfpc_last_message(d->c));
    if (rc < 0)
        return lose(d, rc, "get", 1);
    if (gi.count != n || gi.dtype != SFP_DTYPE_F32)
        return lose(d, SFPC_EPROTO, "get (size or type differs from the put)", 1);
    /* the next frame backward reads is copied out by sfpd while this one
     * decodes (and while the layer's backward runs) */
    long next = ai < 0 ? next_in_order(d, key) : -1;
    if (next >= 0) {
        sfpw_stash_key nk = *key;
        nk.tensor = (uint32_t)next;
        send_ahead(d, &nk, 1 - cur);
    }
    rc = sfp_decode(d->shm + off, (size_t)gi.bytes, dst, n * sizeof(float), &got);
    if (rc || got != n)
        return frame_failed(d, key, rc ? rc : SFPW_STASH_ESIZE, "the rank could not decode the frame");
    return 0;
}

static int d_prefetch(sfpw_stash *st, const sfpw_stash_key *key)
{
    /* sfpd prefetches the whole backward order after backward() */
    (void)st;
    (void)key;
    return 0;
}

static int d_drop(sfpw_stash *st, const sfpw_stash_key *key)
{
    dstash *d = st->impl;
    /* gets already dropped their key in sfpd */
    if (d->lost && d->local)
        return d->local->ops->drop(d->local, key);
    return 0;
}

static const char *d_strerror(sfpw_stash *st, int err)
{
    dstash *d = st->impl;
    if (err == SFPW_STASH_EDAEMON && d->last_msg[0])
        return d->last_msg; /* which call failed, and how */
    return sfpw_stash_errstr(err);
}

static void d_close(sfpw_stash *st)
{
    dstash *d = st->impl;
    if (d->c && !d->lost)
        sfpc_flush(d->c);
    sfpc_close(&d->c);

    sfpw_stash_close(&d->local);
    free(d->pend);
    free(d->flen);
    free(d->order);
    free(d->got);
    free(d->at);
    free(d->alen);
    free(d->gp);
    free(d);
}

/* One block at the start of the shared memory, before the put ring; puts
 * and gets of tensors inside it copy nothing. */
static void *d_alloc(sfpw_stash *st, size_t bytes)
{
    dstash *d = st->impl;
    size_t need = (bytes + 63) & ~(size_t)63;
    if (d->lost || d->act_end || need > d->shm_size / 2 + d->shm_size / 4)
        return NULL;
    d->act_end = need;
    d->pos = need;
    return d->shm;
}

static size_t d_held_peak(sfpw_stash *st)
{
    dstash *d = st->impl;
    return d->pos_peak > d->act_end ? d->pos_peak : d->act_end;
}

static const sfpw_stash_ops daemon_ops = {
    .name = "sfpd",
    .put = d_put,
    .get = d_get,
    .prefetch = d_prefetch,
    .drop = d_drop,
    .strerror = d_strerror,
    .close = d_close,
    .backward = d_backward,
    .alloc = d_alloc,
    .held_peak = d_held_peak,

    .flags = SFPW_STASH_DEFERRED,
};

/* --stash-codec rank: the rank encodes and decodes, sfpd stores frames.
 * The arena stays private (as in-process): the ring holds frames only. */
static const sfpw_stash_ops frame_ops = {
    .name = "sfpd",
    .put = f_put,
    .put_q = f_put_q,
    .get = f_get,
    .prefetch = f_prefetch,
    .drop = d_drop,
    .strerror = d_strerror,
    .close = d_close,
    .backward = f_backward,
    .held_peak = d_held_peak,
};

int sfpw_stash_daemon_open(sfpw_stash **out, const sfpw_daemon_config *cfg)
{
    if (!cfg || !cfg->job_id || !cfg->job_id[0] || strlen(cfg->job_id) >= 160)
        return SFP_EINVAL;
    dstash *d = calloc(1, sizeof *d);
    if (!d)
        return SFP_ENOMEM;
    d->cfg = *cfg;
    snprintf(d->job, sizeof d->job, "%s", cfg->job_id);
    d->cfg.job_id = d->job;
    sfpc_options o;
    sfpc_options_default(&o);
    o.socket_path = cfg->socket_path;
    o.job_id = d->job;
    o.rank = cfg->rank;
    if (cfg->shm_size)
        o.shm_size = cfg->shm_size;
    if (cfg->timeout_ms > 0)
        o.timeout_ms = cfg->timeout_ms;
    o.client_name = "sfp-train";
    int rc = sfpc_connect(&o, &d->c);
    if (rc < 0) {
        snprintf(d->last_msg, sizeof d->last_msg, "connect: %s", sfpc_strerror(rc));
        free(d);
        return rc;
    }
    d->shm = sfpc_shm(d->c, &d->shm_size);
    d->base.ops = cfg->rank_codec ? &frame_ops : &daemon_ops;
    d->base.impl = d;
    *out = &d->base;
    return 0;
}

int sfpw_stash_daemon_encode(sfpw_stash *st, const float *src, size_t n,
                             const sfp_params *p, void *dst, size_t cap,
                             size_t *len)
{
    if (!is_daemon(st))
        return SFPW_ENCODE_IN_PROCESS;
    dstash *d = st->impl;
    if (d->lost)
        return d->local ? SFPW_ENCODE_IN_PROCESS : SFPW_STASH_EDAEMON;
    /* stage in the put ring (empty between steps): [values | frame] */
    size_t fl = 0, in = n * sizeof(float), in_al = (in + 63) & ~(size_t)63;
    size_t bound = sfp_frame_bound(n, p);
    int rc;
    if (!bound || n > SIZE_MAX / sizeof(float) / 2 ||
        in_al + bound > d->shm_size - d->act_end)
        return SFPW_ENCODE_IN_PROCESS; /* does not fit: encode in-process */
    if (d->npend && (rc = sfpc_flush(d->c)) < 0) {
        rc = lose(d, rc, "put (acknowledgement)", 0); /* the encoder does not rerun the step */
        return rc == SFPW_STASH_ERETRY ? SFPW_ENCODE_IN_PROCESS : rc;
    }
    d->npend = 0;
    d->pos = d->act_end;
    unsigned char *in_p = d->shm + d->act_end, *out_p = in_p + in_al;
    memcpy(in_p, src, in);
    rc = sfpc_encode(d->c, in_p, n, p, out_p, bound, &fl);
    if (rc == SFPC_EINVAL)
        return SFPW_ENCODE_IN_PROCESS; /* not the daemon's fault: encode in-process */
    if (rc < 0) {
        rc = lose(d, rc, "encode", 0);
        return rc == SFPW_STASH_ERETRY ? SFPW_ENCODE_IN_PROCESS : rc;
    }
    if (fl > cap || fl > bound)
        return SFPW_ENCODE_IN_PROCESS;
    if (d->act_end + in_al + fl > d->pos_peak)
        d->pos_peak = d->act_end + in_al + fl;
    memcpy(dst, out_p, fl);
    *len = fl;
    return 0;
}

int sfpw_stash_daemon_policy(sfpw_stash *st, sfpw_override *out)
{
    if (!sfpw_stash_daemon_alive(st))
        return 0;
    dstash *d = st->impl;
    if (d->policy_seen > d->policy.generation) {
        sfpc_policy p;
        int rc = sfpc_policy_get(d->c, &p);
        if (rc < 0) {
            /* the next stash call sees the same failure and handles it */
            return d->policy.generation ? (*out = d->policy, 1) : 0;
        }
        d->policy.generation = p.generation;
        d->policy.min_k = p.min_mbits;
        d->policy.max_k = p.max_mbits;
        d->policy.min_e = p.min_ebits;
        d->policy.max_e = p.max_ebits;
        d->policy.pin = p.pin;
        d->policy.pin_k = p.pin_mbits;
        d->policy.pin_e = p.pin_ebits;
        d->policy.coder = p.coder;
        d->policy.freeze = p.freeze;
        d->policy_seen = p.generation;
    }
    if (!d->policy.generation)
        return 0;
    *out = d->policy;
    return 1;
}

int sfpw_stash_daemon_alive(const sfpw_stash *st)

{
    return is_daemon(st) && !((const dstash *)st->impl)->lost;
}

int sfpw_stash_daemon_end_job(sfpw_stash *st)
{
    if (!sfpw_stash_daemon_alive(st))
        return 0;
    dstash *d = st->impl;
    int rc = sfpc_end_job(d->c);
    return rc < 0 ? lose(d, rc, "end job", 0) : 0;
}
