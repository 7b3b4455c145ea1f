/*
 * store.c - jobs, index, DRAM tier, spill, prefetch.
 *
 * Next-use order. Within a job, stashes are consumed last-in-first-out in
 * backward, so the farthest next use is the oldest stash that has not been
 * read yet; a stash that has been read (Get) is not needed again this step
 * and is the best victim of all. Each job keeps its DRAM-resident entries in
 * one list, head = evict first: read entries, then unread ones by ascending
 * put sequence. Under global pressure the victim is the best head among the
 * jobs (read first, then the lowest sequence).
 *
 * Budget. dram_bytes counts frames in DRAM plus reservations for prefetch
 * reads in flight; it exceeds dram_budget (or a job's share) only by frames
 * on their way to a lower tier, at most spill_write_behind bytes. A Put
 * whose frame does not fit starts spills of victims; once they will free
 * its room it is admitted at once while the frames being written stay
 * within spill_write_behind (its frame is in memory either way, and the
 * connection, served in order, goes on to the Gets behind it), else it
 * waits in a FIFO until they complete; if nothing can be evicted, the frame
 * itself goes to the first lower tier that takes it.
 * Frames being encoded or read on the pool are staging memory of the
 * requests in flight, outside the tier budget (docs/DAEMON.md).
 *
 * Prefetch. After a Prefetch hint, or on the first Get that follows a Put of
 * the job (backward has begun), the job walks its entries from the newest
 * unread one towards older ones and reads spilled frames back until depth
 * entries are resident ahead of the reader, using free budget only (and
 * evicting already-read entries). Every Get and Drop pumps it again.
 */
#include "core/store.h"
#include "core/held.h"
#include "core/status.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>


/* ------------------------------------------------------------------ shm */

int sfpd_shm_map(int fd, uint64_t max, sfpd_shm **out, const char **why)
{
    struct stat sb;
    int seals;
    sfpd_shm *s;
    void *p;

    /* A client that could shrink the region would make our reads fault. */
    seals = fcntl(fd, F_GET_SEALS);
    *why = "shared memory must be a memfd sealed against shrinking";
    if (seals < 0 || !(seals & F_SEAL_SHRINK))
        return SFPD_E_NO_SHM;
    *why = "cannot map the shared memory";
    if (fstat(fd, &sb) < 0)
        return SFPD_E_NO_SHM;
    if (sb.st_size <= 0 || (uint64_t)sb.st_size > max) {
        *why = sb.st_size > 0 ? "shared memory larger than max_shm" : "cannot map the shared memory";
        return SFPD_E_NO_SHM;
    }
    p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return SFPD_E_NO_SHM;
    s = sfpd_calloc(1, sizeof(*s));
    if (!s) {
        munmap(p, (size_t)sb.st_size);
        *why = "out of memory";
        return SFPD_E_NO_MEMORY;
    }
    s->base = p;
    s->size = (uint64_t)sb.st_size;
    s->refs = 1;
    *out = s;
    return 0;
}

sfpd_shm *sfpd_shm_ref(sfpd_shm *s)
{
    if (s)
        s->refs++;
    return s;
}

void sfpd_shm_unref(sfpd_shm **ps)
{
    sfpd_shm *s = *ps;
    if (!s)
        return;
    *ps = NULL;
    if (--s->refs > 0)
        return;
    munmap(s->base, (size_t)s->size);
    sfpd_free(s);
}

/* ---------------------------------------------------------------- types */

/* PutFrame and GetFrame of frames up to this size verify and copy on the
 * loop thread: a pool round trip (two thread wake-ups, which preempt a
 * training rank when the node has no spare core) costs more than the
 * work, a checksum and a copy of at most 1 MiB (tens of microseconds). */
#define INLINE_FRAME_MAX ((uint64_t)1 << 20)

typedef struct entry entry;
typedef struct put_op put_op;
typedef struct get_op get_op;

struct entry {
    sfpd_job *job;
    sfpd_key key;
    uint64_t hash;
    entry *hnext;
    uint64_t seq;
    sfpd_list all;       /* job->all, ascending seq                      */
    sfpd_list dram_link; /* job->dram while dram != NULL                 */
    uint32_t dtype;
    uint8_t mbits, ebits, coder;
    uint64_t count, raw_bytes;
    uint64_t frame_len, checksum;
    void *dram;          /* frame in DRAM (owned) or NULL                */
    sfpd_loc loc;        /* lower-tier copy if in_lower                  */
    uint8_t lt;          /* index in st->lower of that copy              */
    bool in_lower;       /* has a copy in a lower tier (st->lower[lt])  */
    bool spilling;       /* write in flight                              */
    bool loading;        /* prefetch read in flight (bytes reserved)     */
    bool dropped;        /* out of the index; freed when idle            */
    bool consumed;       /* read at least once                           */
    bool prefetched;     /* DRAM copy came from a prefetch               */
    bool corrupt;
    bool spill_failed;   /* its spill write failed: not a victim again   */
    bool load_failed;    /* a prefetch read failed: not prefetched again */
    uint32_t pins;       /* Gets in flight                               */
    sfpd_list waiters;   /* get_ops waiting for a load                   */
};

struct sfpd_job {
    sfpd_store *st;
    char id[SFPD_JOB_ID_MAX + 1];
    uint32_t uid;
    uint32_t conns;
    uint64_t orphan_deadline_ns; /* valid when conns == 0 */
    sfpd_list all, dram;
    uint64_t dram_bytes, dram_hwm, spilling_bytes;
    uint64_t stored_bytes, raw_bytes, values, frames, dram_frames;
    uint64_t lt_bytes[SFPD_MAX_LOWER], lt_frames[SFPD_MAX_LOWER];
    void *tier_state[SFPD_MAX_LOWER];
    uint32_t io_inflight;
    struct grave { unsigned ti; void *state; } *graves; /* ended incarnations */
    size_t n_graves;             /* closed once the job's I/O drains  */
    bool free_pending;           /* grace expired while I/O      */
    bool held_data;              /* ever stored a stash           */
    bool ended;                  /* counted in jobs_ended         */
    bool prefetch_active;
    bool last_was_put;
    unsigned prefetch_depth;
    uint32_t ranks[64];
    uint32_t n_ranks;
    sfpd_list link;
};

_Static_assert(1 + SFPD_MAX_LOWER <= SFPD_MAX_TIERS, "a snapshot holds every tier");

struct sfpd_store {
    uv_loop_t *loop;
    sfpd_held *held;             /* frames held for peers, NULL unless peering */
    sfpd_tier *lower[SFPD_MAX_LOWER]; /* below DRAM, in tier_order       */
    unsigned n_lower;
    uint64_t dram_budget, job_dram_budget, job_quota, max_tensor;
    uint64_t write_behind;       /* spill_write_behind                  */
    unsigned prefetch_depth;
    uint64_t grace_ns;
    entry **tab;
    size_t tab_size, n_entries;
    sfpd_list jobs;
    uint64_t seq;
    uint64_t dram_bytes, dram_hwm, spilling_bytes, dram_frames;
    uint64_t stored_bytes, raw_bytes, values;
    sfpd_list admit_wait;
    uint32_t inflight;
    uv_timer_t sweep;
    uv_check_t io_flush;         /* hands io_pending to the pool       */
    sfpd_list io_pending;        /* tier I/O of this loop turn         */
    bool io_flushing;
    bool shutting_down, sweep_closed, io_flush_closed;
    void (*shutdown_cb)(void *);
    void *shutdown_arg;
    uint64_t start_ns;
};

struct put_op {
    uv_work_t w;
    sfpd_store *st;
    sfpd_job *job;
    sfpd_key key;
    sfpd_shm *shm;
    uint64_t off, len, count;
    sfp_params params;
    void *frame;
    size_t frame_len;
    int codec_err;
    bool frame_in;       /* PutFrame: [off, off+in_len) of shm is a frame */
    uint64_t in_len;
    uint64_t t0;
    sfpd_loc loc;        /* direct-to-lower-tier path */
    unsigned ti;         /* its tier (index in st->lower) */
    int io_err;
    sfpd_list wait_link;
    sfpd_done_fn done;
    void *arg;
};

struct get_op {
    uv_work_t w;
    sfpd_store *st;
    entry *e;
    sfpd_shm *shm;
    uint64_t off, cap;
    bool drop, from_lower, hit;
    bool frame_out;      /* GetFrame: copy the verified frame, no decode */
    int codec_err, io_err;
    size_t n;
    uint64_t t0;
    sfpd_list wait_link;
    sfpd_done_fn done;
    void *arg;
};

static void entry_maybe_free(entry *e);
static void run_admissions(sfpd_store *st);
static void pump_prefetch(sfpd_job *job);
static void pump_all(sfpd_store *st);
static void job_io_done(sfpd_job *job);
static void check_shutdown(sfpd_store *st);

static uint64_t job_cap(const sfpd_store *st)
{
    if (st->job_dram_budget && st->job_dram_budget < st->dram_budget)
        return st->job_dram_budget;
    return st->dram_budget;
}

static void dram_add(sfpd_job *job, uint64_t n)
{
    sfpd_store *st = job->st;
    st->dram_bytes += n;
    job->dram_bytes += n;
    if (st->dram_bytes > st->dram_hwm)
        st->dram_hwm = st->dram_bytes;
    if (job->dram_bytes > job->dram_hwm)
        job->dram_hwm = job->dram_bytes;
}

static void dram_sub(sfpd_job *job, uint64_t n)
{
    job->st->dram_bytes -= n;
    job->dram_bytes -= n;
}

/* --------------------------------------------------------------- index */

static int tab_grow(sfpd_store *st)
{
    size_t n = st->tab_size ? st->tab_size * 2 : 1024;
    entry **t = sfpd_calloc(n, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < st->tab_size; i++) {
        entry *e = st->tab[i];
        while (e) {
            entry *next = e->hnext;
            size_t b = e->hash & (n - 1);
            e->hnext = t[b];
            t[b] = e;
            e = next;
        }
    }
    sfpd_free(st->tab);
    st->tab = t;
    st->tab_size = n;
    return 0;
}

static entry *lookup(sfpd_store *st, const sfpd_job *job, const sfpd_key *key)
{
    uint64_t h = sfpd_key_hash(key, job);
    if (!st->tab_size)
        return NULL;
    for (entry *e = st->tab[h & (st->tab_size - 1)]; e; e = e->hnext)
        if (e->hash == h && e->job == job && sfpd_key_equal(&e->key, key))
            return e;
    return NULL;
}

static void index_remove(entry *e)
{
    sfpd_store *st = e->job->st;
    entry **pp = &st->tab[e->hash & (st->tab_size - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    st->n_entries--;
}

static void drop_entry(entry *e);

/* Files a new entry (replacing an older one with the same key). */
static int index_insert(sfpd_store *st, entry *e)
{
    entry *old = lookup(st, e->job, &e->key);
    size_t b;
    sfpd_job *job = e->job;

    if (old)
        drop_entry(old);
    if (st->n_entries + 1 > st->tab_size && tab_grow(st) < 0 && !st->tab_size)
        return -ENOMEM;
    e->hash = sfpd_key_hash(&e->key, e->job);
    b = e->hash & (st->tab_size - 1);
    e->hnext = st->tab[b];
    st->tab[b] = e;
    st->n_entries++;
    e->seq = ++st->seq;
    sfpd_list_push_back(&job->all, &e->all);
    job->held_data = true;
    job->frames++;
    job->stored_bytes += e->frame_len;
    job->raw_bytes += e->raw_bytes;
    job->values += e->count;
    st->stored_bytes += e->frame_len;
    st->raw_bytes += e->raw_bytes;
    st->values += e->count;
    return 0;
}

static entry *entry_new(sfpd_job *job, const sfpd_key *key)
{
    entry *e = sfpd_calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->job = job;
    e->key = *key;
    sfpd_list_init(&e->all);
    sfpd_list_init(&e->dram_link);
    sfpd_list_init(&e->waiters);
    return e;
}

/* Puts e's DRAM copy into the job's eviction list at its place. */
static void dram_list_insert(entry *e)
{
    sfpd_job *job = e->job;
    sfpd_list *pos = job->dram.prev;
    while (pos != &job->dram) {
        entry *o = sfpd_container_of(pos, entry, dram_link);
        if (o->consumed || o->seq < e->seq)
            break;
        pos = pos->prev;
    }
    sfpd_list_insert_after(pos, &e->dram_link);
    job->dram_frames++;
    job->st->dram_frames++;
}

static void dram_release(entry *e)
{
    sfpd_job *job = e->job;
    if (!e->dram)
        return;
    sfpd_list_remove(&e->dram_link);
    sfpd_free(e->dram);
    e->dram = NULL;
    dram_sub(job, e->frame_len);
    job->dram_frames--;
    job->st->dram_frames--;
}

static bool entry_idle(const entry *e)
{
    return e->pins == 0 && !e->spilling && !e->loading;
}

/* ------------------------------------------------------ lower-tier ops */

static int tier_job_state(sfpd_job *job, unsigned ti)
{
    sfpd_store *st = job->st;
    if (job->tier_state[ti])
        return 0;
    return st->lower[ti]->ops->job_open(st->lower[ti], job->id, job->uid, &job->tier_state[ti]);
}

/* Counts a record of e placed in lower tier ti (or no longer: sign -1). */
static void lower_count(entry *e, unsigned ti, int sign)
{
    sfpd_job *job = e->job;
    sfpd_tier *t = job->st->lower[ti];
    if (sign > 0) {
        job->lt_bytes[ti] += e->frame_len;
        job->lt_frames[ti]++;
        t->frames++;
        t->frame_bytes += e->frame_len;
    } else {
        job->lt_bytes[ti] -= e->frame_len;
        job->lt_frames[ti]--;
        t->frames--;
        t->frame_bytes -= e->frame_len;
    }
}

/* ------------------------------------------------------- batched I/O */

/*
 * Tier I/O (spill writes, prefetch reads, dead-record marks) goes to the
 * libuv pool as io_ops. Each hand-off is two thread wake-ups (the pool's
 * condition variable, the loop's eventfd), which on a node whose cores all
 * run training ranks preempt a rank. What nothing waits for, the marks of
 * dropped records (one per spilled frame a rank reads back, every step),
 * waits for the end of the loop turn and goes in one pool job with the
 * turn's other marks (a check handle). Spill writes and prefetch reads go
 * at once, each in a job of its own: batched, the turn's writes completed
 * together after the last of them, the room they free came later, and
 * prefetch fell behind the Gets (tests/offload/codec.sh, 2 ranks, budget
 * 96K: 2-5 prefetch hits of 192 spilled frames against 34-44 unbatched).
 * A batch holds at most IO_BATCH_OPS ops.
 */
#define IO_BATCH_OPS 64

typedef struct io_op io_op;
struct io_op {
    sfpd_list link;
    void (*run)(io_op *);  /* on a pool thread                         */
    void (*done)(io_op *); /* on the loop; frees the op                 */
    int err;               /* run's result; -EIO when it never ran      */
};

typedef struct io_batch {
    uv_work_t w;
    sfpd_list ops;
} io_batch;

static void io_batch_run(uv_work_t *w)
{
    io_batch *b = (io_batch *)w;
    for (sfpd_list *p = b->ops.next; p != &b->ops; p = p->next) {
        io_op *op = sfpd_container_of(p, io_op, link);
        op->run(op);
    }
}

/* Completes the ops of list in order; each done may free its job (after
 * the last op of that job) or end the shutdown (after the store's last). */
static void io_complete(sfpd_list *list)
{
    while (!sfpd_list_empty(list)) {
        io_op *op = sfpd_container_of(list->next, io_op, link);
        sfpd_list_remove(&op->link);
        op->done(op);
    }
}

static void io_batch_done(uv_work_t *w, int status)
{
    io_batch *b = (io_batch *)w;

    (void)status;
    io_complete(&b->ops);
    sfpd_free(b);
}

/* Queues the first ops of list (up to the batch limits) as one pool job;
 * those ops fail with -EIO if it cannot be queued. */
static void io_queue_batch(sfpd_store *st, sfpd_list *list)
{
    io_batch *b = sfpd_calloc(1, sizeof(*b));
    sfpd_list local, *ops = b ? &b->ops : &local;
    unsigned n = 0;

    sfpd_list_init(ops);
    while (!sfpd_list_empty(list) && n < IO_BATCH_OPS) {
        sfpd_list *p = list->next;
        sfpd_list_remove(p);
        sfpd_list_push_back(ops, p);
        n++;
    }
    if (b && uv_queue_work(st->loop, &b->w, io_batch_run, io_batch_done) == 0) {
        sfpd_stat_inc(SFPD_C_IO_OPS, n);
        sfpd_stat_inc(SFPD_C_IO_BATCHES, 1);
        return;
    }
    for (sfpd_list *p = ops->next; p != ops; p = p->next)
        sfpd_container_of(p, io_op, link)->err = -EIO;
    io_complete(ops);
    sfpd_free(b);
}

/* Queues every pending op; a failed op's done may queue another (a spill
 * to the next tier), which goes out in the same call. */
static void io_flush(sfpd_store *st)
{
    st->io_flushing = true;
    while (!sfpd_list_empty(&st->io_pending))
        io_queue_batch(st, &st->io_pending);
    st->io_flushing = false;
}

static void io_flush_cb(uv_check_t *h)
{
    uv_check_stop(h);
    io_flush(h->data);
}

/* Hands op to the pool: at the end of this loop turn with the turn's other
 * ops, or at once in a job of its own when now is set or the store is
 * shutting down (its check handle is closed then). */
static void io_submit(sfpd_store *st, io_op *op, void (*run)(io_op *), void (*done)(io_op *),
                      bool now)
{
    op->run = run;
    op->done = done;
    op->err = 0;
    if (now) {
        sfpd_list one;
        sfpd_list_init(&one);
        sfpd_list_push_back(&one, &op->link);
        io_queue_batch(st, &one);
        return;
    }
    sfpd_list_push_back(&st->io_pending, &op->link);
    if (st->io_flushing)
        return;
    if (st->shutting_down)
        io_flush(st);
    else
        uv_check_start(&st->io_flush, io_flush_cb);
}

typedef struct kill_op {
    io_op io;
    sfpd_store *st;
    sfpd_job *job;
    sfpd_loc loc;
    unsigned ti;
} kill_op;

static void kill_run(io_op *op)
{
    kill_op *k = (kill_op *)op;
    sfpd_tier *t = k->st->lower[k->ti];
    int r = t->ops->kill(t, &k->loc);
    if (r < 0)
        sfpd_warn("%s: cannot mark a dropped record dead: %s", t->ops->name, strerror(-r));
}

static void kill_done(io_op *op)
{
    kill_op *k = (kill_op *)op;
    sfpd_store *st = k->st;
    st->lower[k->ti]->ops->release(st->lower[k->ti], &k->loc, true);
    st->inflight--;
    job_io_done(k->job);
    sfpd_free(k);
    check_shutdown(st);
}

/* Forgets e's lower-tier copy; marks the record dead on the pool first. */
static void lower_forget(entry *e)
{
    sfpd_store *st = e->job->st;
    sfpd_job *job = e->job;
    kill_op *k;

    if (!e->in_lower)
        return;
    e->in_lower = false;
    lower_count(e, e->lt, -1);
    k = sfpd_calloc(1, sizeof(*k));
    if (k && !st->shutting_down) {
        k->st = st;
        k->job = job;
        k->loc = e->loc;
        k->ti = e->lt;
        st->inflight++;
        job->io_inflight++;
        io_submit(st, &k->io, kill_run, kill_done, false);
        return;
    }
    sfpd_free(k);
    st->lower[e->lt]->ops->release(st->lower[e->lt], &e->loc, true);
}

/* ---------------------------------------------------------- entry life */

static void drop_entry(entry *e)
{
    sfpd_job *job = e->job;
    sfpd_store *st = job->st;

    if (e->dropped)
        return;
    e->dropped = true;
    index_remove(e);
    sfpd_list_remove(&e->all);
    job->frames--;
    job->stored_bytes -= e->frame_len;
    job->raw_bytes -= e->raw_bytes;
    job->values -= e->count;
    st->stored_bytes -= e->frame_len;
    st->raw_bytes -= e->raw_bytes;
    st->values -= e->count;
    if (e->prefetched && !e->consumed && e->dram)
        sfpd_stat_inc(SFPD_C_PREFETCH_WASTED, 1);
    entry_maybe_free(e);
}

static void entry_maybe_free(entry *e)
{
    if (!e->dropped || !entry_idle(e))
        return;
    dram_release(e);
    lower_forget(e);
    sfpd_free(e);
}

/* ------------------------------------------------------------- spilling */

typedef struct spill_op {
    io_op io;            /* io.err: the write's result */
    entry *e;
    sfpd_loc loc;
    unsigned ti;
} spill_op;

static int spill_from(entry *e, unsigned first);

static void spill_run(io_op *op)
{
    spill_op *s = (spill_op *)op;
    entry *e = s->e;
    sfpd_store *st = e->job->st;
    sfpd_tier *t = st->lower[s->ti];
    sfpd_rec_meta m = {
        .key = &e->key, .seq = e->seq, .frame_checksum = e->checksum,
        .count = e->count, .dtype = e->dtype, .mbits = e->mbits, .ebits = e->ebits,
        .coder = e->coder,
    };
    s->io.err = t->ops->write(t, &s->loc, &m, e->dram);
}

static void spill_done(io_op *op)
{
    spill_op *s = (spill_op *)op;
    entry *e = s->e;
    sfpd_job *job = e->job;
    sfpd_store *st = job->st;

    e->spilling = false;
    st->spilling_bytes -= e->frame_len;
    job->spilling_bytes -= e->frame_len;
    st->inflight--;
    if (s->io.err == 0) {
        e->loc = s->loc;
        e->lt = (uint8_t)s->ti;
        e->in_lower = true;
        lower_count(e, s->ti, 1);
        if (e->pins == 0)
            dram_release(e);
    } else {
        st->lower[s->ti]->ops->release(st->lower[s->ti], &s->loc, false);
        /* a peer that refused or is unreachable: the next tier takes it */
        if (s->ti + 1 < st->n_lower && !e->dropped && !st->shutting_down &&
            spill_from(e, s->ti + 1) == 0) {
            sfpd_debug("spill of job %s tensor %s to %s failed (%s): next tier", job->id,
                       e->key.name, st->lower[s->ti]->ops->name, strerror(-s->io.err));
        } else {
            /* the frame stays in DRAM; never picked again, so a broken tier
             * cannot make admission spin: waiting Puts fail with the code */
            sfpd_err("spill of job %s tensor %s failed: %s", job->id, e->key.name, strerror(-s->io.err));
            e->spill_failed = true;
        }
    }
    sfpd_free(s);
    entry_maybe_free(e);
    job_io_done(job);
    run_admissions(st);
    pump_all(st);
    check_shutdown(st);
}

/*
 * Reserves room for a frame of len bytes in the first lower tier, from
 * index first on, that has it; *ti says which. -ENOSPC (or the last
 * error) when none has.
 */
static int lower_reserve(sfpd_job *job, const sfpd_key *key, uint64_t len, unsigned first,
                         unsigned *ti, sfpd_loc *loc)
{
    sfpd_store *st = job->st;
    int r = -ENOSPC;
    for (unsigned i = first; i < st->n_lower; i++) {
        sfpd_tier *t = st->lower[i];
        if ((r = tier_job_state(job, i)) < 0)
            continue;
        if ((r = t->ops->reserve(t, job->tier_state[i], key, len, loc)) == 0) {
            *ti = i;
            return 0;
        }
    }
    return r;
}

/*
 * Evicts e from DRAM: at once if a lower-tier copy exists, else by a write on
 * the pool (to the first tier of tier_order that takes it; a failed write
 * falls through to the next). Returns 0 if bytes were freed or will be,
 * -errno if not possible.
 */
static int spill(entry *e)
{
    if (e->in_lower) {
        if (e->prefetched && !e->consumed)
            sfpd_stat_inc(SFPD_C_PREFETCH_WASTED, 1);
        e->prefetched = false;
        dram_release(e);
        sfpd_stat_inc(SFPD_C_SPILL_CLEAN, 1);
        return 0;
    }
    return spill_from(e, 0);
}

/* Writes e's frame to the first lower tier from index first that takes it. */
static int spill_from(entry *e, unsigned first)
{
    sfpd_job *job = e->job;
    sfpd_store *st = job->st;
    spill_op *s;
    int r;

    s = sfpd_calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    r = lower_reserve(job, &e->key, e->frame_len, first, &s->ti, &s->loc);
    if (r < 0) {
        sfpd_free(s);
        return r;
    }
    s->e = e;
    e->spilling = true;
    st->spilling_bytes += e->frame_len;
    job->spilling_bytes += e->frame_len;
    st->inflight++;
    job->io_inflight++;
    io_submit(st, &s->io, spill_run, spill_done, true);
    return 0;
}

static bool evictable(const entry *e)
{
    return e->dram && !e->spilling && e->pins == 0 && !e->dropped &&
           (!e->spill_failed || e->in_lower);
}

static entry *job_victim(sfpd_job *job, bool consumed_only)
{
    for (sfpd_list *p = job->dram.next; p != &job->dram; p = p->next) {
        entry *e = sfpd_container_of(p, entry, dram_link);
        if (consumed_only && !e->consumed)
            return NULL;
        if (evictable(e))
            return e;
    }
    return NULL;
}

static entry *global_victim(sfpd_store *st)
{
    entry *best = NULL;
    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next) {
        entry *e = job_victim(sfpd_container_of(p, sfpd_job, link), false);
        if (!e)
            continue;
        if (!best || (e->consumed && !best->consumed) ||
            (e->consumed == best->consumed && e->seq < best->seq))
            best = e;
    }
    return best;
}

static int spill_error_status(int err)
{
    return err == -ENOSPC || err == -EDQUOT || err == -EFBIG ? SFPD_E_DISK_FULL
           : err == -ENOMEM                                   ? SFPD_E_NO_MEMORY
                                                              : SFPD_E_IO;
}

/* ----------------------------------------------------------------- put */

static void put_finish(put_op *op, int status, const char *msg, int tier)
{
    sfpd_result r = {0};
    sfpd_store *st = op->st;

    r.status = status;
    r.msg = msg;
    r.codec_err = op->codec_err;
    r.stored_bytes = op->frame_len;
    r.tier = tier;
    if (status == 0) {
        sfpd_stat_inc(SFPD_C_PUTS, 1);
        if (op->frame_in)
            sfpd_stat_inc(SFPD_C_FRAMES_PUT, 1);
        sfpd_stat_inc(SFPD_C_BYTES_IN, op->len);
        sfpd_stat_inc(SFPD_C_VALUES_IN, op->count);
        sfpd_stat_inc(SFPD_C_BYTES_STORED_IN, op->frame_len);
    }
    sfpd_stat_latency(SFPD_H_PUT, sfpd_now_ns() - op->t0);
    sfpd_free(op->frame);
    op->frame = NULL;
    sfpd_shm_unref(&op->shm);
    job_io_done(op->job);
    op->done(op->arg, &r);
    sfpd_free(op);
    (void)st;
}

static entry *entry_from_put(put_op *op)
{
    entry *e = entry_new(op->job, &op->key);
    sfp_frame_info info;
    if (!e)
        return NULL;
    e->dtype = op->params.dtype;
    e->mbits = (uint8_t)op->params.mbits;
    e->ebits = (uint8_t)op->params.ebits;
    e->coder = (uint8_t)op->params.coder;
    e->count = op->count;
    e->raw_bytes = op->len;
    e->frame_len = op->frame_len;
    if (sfp_frame_parse(op->frame, op->frame_len, &info) == 0)
        e->checksum = info.checksum;
    return e;
}

static void direct_write_run(uv_work_t *w)
{
    put_op *op = (put_op *)w;
    sfpd_store *st = op->st;
    sfp_frame_info info;
    sfpd_rec_meta m = {
        .key = &op->key, .seq = 0, .count = op->count, .dtype = op->params.dtype,
        .mbits = (uint8_t)op->params.mbits, .ebits = (uint8_t)op->params.ebits,
        .coder = (uint8_t)op->params.coder,
    };
    m.seq = st->seq + 1; /* approximate; only orders duplicates at re-adoption */
    if (sfp_frame_parse(op->frame, op->frame_len, &info) == 0)
        m.frame_checksum = info.checksum;
    op->io_err = st->lower[op->ti]->ops->write(st->lower[op->ti], &op->loc, &m, op->frame);
}

static void put_direct_from(put_op *op, unsigned first);

static void direct_write_done(uv_work_t *w, int status)
{
    put_op *op = (put_op *)w;
    sfpd_store *st = op->st;
    sfpd_job *job = op->job;
    entry *e;
    sfpd_tier *t = st->lower[op->ti];

    (void)status;
    st->inflight--;
    if (op->io_err == 0 && job->free_pending) {
        t->ops->release(t, &op->loc, true);
        put_finish(op, SFPD_E_NOT_FOUND, "job ended during the Put", SFPD_PUT_LOWER);
        check_shutdown(st);
        return;
    }
    if (op->io_err < 0) {
        t->ops->release(t, &op->loc, false);
        if (op->ti + 1 < st->n_lower && !st->shutting_down) {
            /* a peer that refused or is unreachable: the next tier */
            put_direct_from(op, op->ti + 1);
            check_shutdown(st);
            return;
        }
        sfpd_err("direct spill of job %s tensor %s failed: %s", job->id, op->key.name,
                 strerror(-op->io_err));
        put_finish(op, spill_error_status(op->io_err), "spill write failed", SFPD_PUT_LOWER);
        check_shutdown(st);
        return;
    }
    e = entry_from_put(op);
    if (!e || index_insert(st, e) < 0) {
        sfpd_free(e);
        t->ops->release(t, &op->loc, true);
        put_finish(op, SFPD_E_NO_MEMORY, "out of memory", SFPD_PUT_LOWER);
        check_shutdown(st);
        return;
    }
    e->loc = op->loc;
    e->lt = (uint8_t)op->ti;
    e->in_lower = true;
    lower_count(e, op->ti, 1);
    job->last_was_put = true;
    job->prefetch_active = false; /* forward: no reading back until a Get */
    put_finish(op, 0, NULL, SFPD_PUT_LOWER);
    check_shutdown(st);
}

static void put_direct_from(put_op *op, unsigned first)
{
    sfpd_store *st = op->st;
    int r;

    if ((r = lower_reserve(op->job, &op->key, op->frame_len, first, &op->ti, &op->loc)) < 0) {
        put_finish(op, spill_error_status(r),
                   r == -ENOSPC ? "DRAM full and no lower tier has room" : "cannot reserve room in a lower tier", SFPD_PUT_LOWER);
        return;
    }
    op->io_err = 0;
    if (uv_queue_work(st->loop, &op->w, direct_write_run, direct_write_done) != 0) {
        st->lower[op->ti]->ops->release(st->lower[op->ti], &op->loc, false);
        put_finish(op, SFPD_E_INTERNAL, "cannot queue work", SFPD_PUT_LOWER);
        return;
    }
    st->inflight++; /* the job reference of the put op covers this write */
}

static void put_direct_lower(put_op *op)
{
    put_direct_from(op, 0);
}

static void put_install(put_op *op)
{
    sfpd_store *st = op->st;
    sfpd_job *job = op->job;
    entry *e = entry_from_put(op);

    if (!e || index_insert(st, e) < 0) {
        sfpd_free(e);
        put_finish(op, SFPD_E_NO_MEMORY, "out of memory", SFPD_PUT_DRAM);
        return;
    }
    e->dram = op->frame;
    op->frame = NULL;
    dram_add(job, e->frame_len);
    dram_list_insert(e);
    job->last_was_put = true;
    job->prefetch_active = false; /* forward: no reading back until a Get */
    put_finish(op, 0, NULL, SFPD_PUT_DRAM);
}

enum { ADMIT_DONE, ADMIT_WAIT };

static bool fits(const sfpd_store *st, const sfpd_job *job, uint64_t need, bool after_spills)
{
    uint64_t g = st->dram_bytes - (after_spills ? st->spilling_bytes : 0);
    uint64_t j = job->dram_bytes - (after_spills ? job->spilling_bytes : 0);
    return g + need <= st->dram_budget && j + need <= job_cap(st);
}

static int admit_try(put_op *op)
{
    sfpd_store *st = op->st;
    sfpd_job *job = op->job;
    uint64_t need = op->frame_len;

    if (job->free_pending) {
        put_finish(op, SFPD_E_NOT_FOUND, "job ended during the Put", SFPD_PUT_DRAM);
        return ADMIT_DONE;
    }
    if (need > job_cap(st)) {
        put_direct_lower(op);
        return ADMIT_DONE;
    }
    while (!fits(st, job, need, false)) {
        entry *v;
        if (fits(st, job, need, true)) {
            /* its room is on its way to a lower tier */
            if (st->spilling_bytes > st->write_behind)
                return ADMIT_WAIT;
            put_install(op);
            return ADMIT_DONE;
        }
        if (job->dram_bytes - job->spilling_bytes + need > job_cap(st))
            v = job_victim(job, false);
        else
            v = global_victim(st);
        if (!v || spill(v) < 0)
            break;
    }
    if (fits(st, job, need, false)) {
        put_install(op);
        return ADMIT_DONE;
    }
    if (st->spilling_bytes > 0)
        return ADMIT_WAIT;
    put_direct_lower(op);
    return ADMIT_DONE;
}

static void run_admissions(sfpd_store *st)
{
    while (!sfpd_list_empty(&st->admit_wait)) {
        put_op *op = sfpd_container_of(st->admit_wait.next, put_op, wait_link);
        sfpd_list_remove(&op->wait_link);
        if (admit_try(op) == ADMIT_WAIT) {
            sfpd_list_insert_after(&st->admit_wait, &op->wait_link);
            break;
        }
    }
}

/*
 * PutFrame: the client's frame is untrusted. A private copy (the client
 * could rewrite the shared memory meanwhile) is verified like a frame read
 * back from a tier (header, every size, checksum) before it becomes an
 * entry; what it declares fills the entry as a Put's parameters would.
 */
static void frame_in_run(uv_work_t *w)
{
    put_op *op = (put_op *)w;
    sfp_frame_info info;
    size_t es;
    int r;

    op->frame = sfpd_malloc(op->in_len ? op->in_len : 1);
    if (!op->frame) {
        op->codec_err = SFP_ENOMEM;
        return;
    }
    memcpy(op->frame, op->shm->base + op->off, op->in_len);
    r = sfp_frame_verify(op->frame, (size_t)op->in_len, &info);
    if (r != 0) {
        op->codec_err = r;
        return;
    }
    es = sfp_dtype_size(info.dtype);
    if (info.frame_bytes != op->in_len || es == 0 || info.count == 0) {
        op->codec_err = SFP_EHEADER;
        return;
    }
    if (info.count > SFP_FRAME_MAX_COUNT) {
        op->codec_err = SFP_EHEADER;
        return;
    }
    op->frame_len = (size_t)op->in_len;
    op->count = info.count;
    op->len = info.count * es;
    sfp_params_default(&op->params);
    op->params.dtype = info.dtype;
    op->params.mbits = info.mbits;
    op->params.ebits = info.ebits;
    op->params.coder = info.coder;
}

static void encode_run(uv_work_t *w)
{
    put_op *op = (put_op *)w;
    size_t bound;
    if (op->frame_in) {
        frame_in_run(w);
        return;
    }
    bound = sfp_frame_bound((size_t)op->count, &op->params);
    uint64_t t0 = sfpd_now_ns();
    void *f;
    int r;

    if (bound == 0) {
        op->codec_err = SFP_EINVAL;
        return;
    }
    op->frame = sfpd_malloc(bound);
    if (!op->frame) {
        op->codec_err = SFP_ENOMEM;
        return;
    }
    r = sfp_encode(op->shm->base + op->off, (size_t)op->count, &op->params, op->frame, bound,
                   &op->frame_len, NULL);
    if (r != 0) {
        op->codec_err = r;
        return;
    }
    /* give back the slack of the bound: DRAM accounting is by frame size */
    if (op->frame_len < bound && (f = sfpd_realloc(op->frame, op->frame_len)))
        op->frame = f;
    sfpd_stat_latency(SFPD_H_ENCODE, sfpd_now_ns() - t0);
}

static void encode_done(uv_work_t *w, int status)
{
    put_op *op = (put_op *)w;
    sfpd_store *st = op->st;
    sfpd_job *job = op->job;

    (void)status;
    st->inflight--;
    sfpd_shm_unref(&op->shm);
    if (op->frame_in && !op->codec_err && op->len > st->max_tensor) {
        put_finish(op, SFPD_E_TOO_LARGE, "frame decodes to more than max_tensor bytes",
                   SFPD_PUT_DRAM);
    } else if (op->codec_err) {
        if (op->frame_in && op->codec_err != SFP_ENOMEM) {
            sfpd_stat_inc(SFPD_C_FRAMES_REFUSED, 1);
            sfpd_warn("job %s tensor %s: PutFrame refused: %s", job->id, op->key.name,
                      sfp_strerror(op->codec_err));
        }
        put_finish(op, op->codec_err == SFP_ENOMEM ? SFPD_E_NO_MEMORY : SFPD_E_CODEC,
                   sfp_strerror(op->codec_err), SFPD_PUT_DRAM);
    } else if (job->free_pending) {
        put_finish(op, SFPD_E_NOT_FOUND, "job ended during the Put", SFPD_PUT_DRAM);
    } else if (st->job_quota && job->stored_bytes + op->frame_len > st->job_quota) {
        put_finish(op, SFPD_E_QUOTA, "job quota exceeded", SFPD_PUT_DRAM);
    } else if (admit_try(op) == ADMIT_WAIT) {
        sfpd_list_push_back(&st->admit_wait, &op->wait_link);
    }
    check_shutdown(st);
}

static int put_start(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                     uint64_t off, uint64_t len, uint64_t count, const sfp_params *p,
                     bool frame_in, sfpd_done_fn done, void *arg)
{
    put_op *op;

    if (st->shutting_down)
        return SFPD_E_SHUTTING_DOWN;
    if (!shm)
        return SFPD_E_NO_SHM;
    if (!sfpd_range_ok(shm->size, off, len))
        return SFPD_E_RANGE;
    if (len > st->max_tensor)
        return SFPD_E_TOO_LARGE;
    if (st->job_quota && job->stored_bytes >= st->job_quota)
        return SFPD_E_QUOTA;
    op = sfpd_calloc(1, sizeof(*op));
    if (!op)
        return SFPD_E_NO_MEMORY;
    op->st = st;
    op->job = job;
    op->key = *key;
    op->shm = sfpd_shm_ref(shm);
    op->off = off;
    op->len = len;
    op->count = count;
    if (p)
        op->params = *p;
    op->frame_in = frame_in;
    op->in_len = len;
    op->done = done;
    op->arg = arg;
    op->t0 = sfpd_now_ns();
    sfpd_list_init(&op->wait_link);
    if (frame_in && len <= INLINE_FRAME_MAX) {
        /* done() runs before this returns */
        st->inflight++;
        job->io_inflight++;
        encode_run(&op->w);
        encode_done(&op->w, 0);
        return 0;
    }
    if (uv_queue_work(st->loop, &op->w, encode_run, encode_done) != 0) {
        sfpd_shm_unref(&op->shm);
        sfpd_free(op);
        return SFPD_E_INTERNAL;
    }
    st->inflight++;
    job->io_inflight++;
    return 0;
}

int sfpd_store_put(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                   uint64_t off, uint64_t len, uint64_t count, const sfp_params *p,
                   sfpd_done_fn done, void *arg)
{
    return put_start(st, job, key, shm, off, len, count, p, false, done, arg);
}

int sfpd_store_put_frame(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                         uint64_t off, uint64_t len, sfpd_done_fn done, void *arg)
{
    return put_start(st, job, key, shm, off, len, 0, NULL, true, done, arg);
}

/* ----------------------------------------------------------------- get */

static void decode_run(uv_work_t *w)
{
    get_op *op = (get_op *)w;
    entry *e = op->e;
    sfpd_store *st = e->job->st;
    const void *frame = e->dram;
    void *buf = NULL;
    uint64_t t0 = sfpd_now_ns();
    int r;

    if (op->from_lower) {
        buf = sfpd_malloc(e->frame_len);
        if (!buf) {
            op->io_err = -ENOMEM;
            return;
        }
        r = st->lower[e->lt]->ops->read(st->lower[e->lt], &e->loc, buf);
        if (r < 0) {
            op->io_err = r;
            sfpd_free(buf);
            return;
        }
        frame = buf;
        t0 = sfpd_now_ns();
    }
    if (op->frame_out) {
        /* GetFrame: the frame as stored, decoded by the client. A frame in
         * DRAM was verified on its way in (PutFrame's private copy, a read
         * back by load_run) or written by sfp_encode here; one read from a
         * tier for this Get is verified now (never returned as data if it
         * fails). */
        r = op->from_lower ? sfp_frame_verify(frame, (size_t)e->frame_len, NULL) : 0;
        if (r != 0)
            op->codec_err = r;
        else
            memcpy(op->shm->base + op->off, frame, (size_t)e->frame_len);
        op->n = (size_t)e->count;
        sfpd_free(buf);
        return;
    }
    /* sfp_decode verifies header and checksum before touching the payload */
    r = sfp_decode(frame, (size_t)e->frame_len, op->shm->base + op->off, (size_t)op->cap, &op->n);
    if (r != 0)
        op->codec_err = r;
    sfpd_stat_latency(SFPD_H_DECODE, sfpd_now_ns() - t0);
    sfpd_free(buf);
}

static void get_complete(get_op *op, int status, const char *msg)
{
    entry *e = op->e;
    sfpd_job *job = e->job;
    sfpd_store *st = job->st;
    sfpd_result r = {0};

    r.status = status;
    r.msg = msg;
    r.codec_err = op->codec_err;
    r.hit = op->hit;
    if (status == 0) {
        r.count = op->n;
        r.length = op->frame_out ? e->frame_len : e->raw_bytes;
        r.dtype = e->dtype;
        sfpd_stat_inc(SFPD_C_GETS, 1);
        sfpd_stat_inc(SFPD_C_BYTES_OUT, e->raw_bytes);
        if (!e->consumed && e->dram && !e->dropped) {
            /* read once: now the best victim */
            e->consumed = true;
            sfpd_list_remove(&e->dram_link);
            sfpd_list_insert_after(&job->dram, &e->dram_link);
        }
        e->consumed = true;
    }
    sfpd_stat_latency(SFPD_H_GET, sfpd_now_ns() - op->t0);
    e->pins--;
    if (status == 0 && op->drop && !e->dropped) {
        drop_entry(e); /* may free e */
        sfpd_stat_inc(SFPD_C_DROPS, 1);
    } else {
        entry_maybe_free(e);
    }
    sfpd_shm_unref(&op->shm);
    op->done(op->arg, &r);
    sfpd_free(op);
    pump_prefetch(job);
    job_io_done(job); /* may free job */
    run_admissions(st);
}

static void decode_done(uv_work_t *w, int status)
{
    get_op *op = (get_op *)w;
    entry *e = op->e;
    sfpd_store *st = e->job->st;

    (void)status;
    st->inflight--;
    if (op->io_err == -ENOLINK) {
        /* the tier that held it (a peer) is unreachable or lost it: never guess */
        sfpd_err("job %s rank %u step %llu tensor %s: frame lost with its %s", e->job->id,
                 e->key.rank, (unsigned long long)e->key.step, e->key.name,
                 st->lower[e->lt]->ops->name);
        get_complete(op, SFPD_E_LOST, "frame lost: the tier that held it is unreachable or lost it");
    } else if (op->io_err == -EBADMSG) {
        get_complete(op, SFPD_E_CORRUPT, "frame from a lower tier failed verification");
    } else if (op->io_err) {
        sfpd_err("job %s tensor %s: spill read failed: %s", e->job->id, e->key.name,
                 strerror(-op->io_err));
        get_complete(op, op->io_err == -ENOMEM ? SFPD_E_NO_MEMORY : SFPD_E_IO, "spill read failed");
    } else if (op->codec_err == SFP_ECHECKSUM || (op->from_lower && op->codec_err &&
                                                   op->codec_err != SFP_ENOSPC)) {
        if (!e->corrupt) {
            e->corrupt = true;
            sfpd_stat_inc(SFPD_C_CORRUPT, 1);
            sfpd_err("job %s rank %u step %llu tensor %s: stored frame is corrupt (%s)%s",
                     e->job->id, e->key.rank, (unsigned long long)e->key.step, e->key.name,
                     sfp_strerror(op->codec_err), op->from_lower ? " in a lower tier" : "");
        }
        get_complete(op, SFPD_E_CORRUPT, "stored frame failed verification");
    } else if (op->codec_err) {
        get_complete(op, op->codec_err == SFP_ENOSPC ? SFPD_E_RANGE : SFPD_E_CODEC,
                     sfp_strerror(op->codec_err));
    } else {
        get_complete(op, 0, NULL);
    }
    check_shutdown(st);
}

/* inline_ok: a GetFrame of a DRAM frame may complete here, on the loop
 * thread (only where nothing touches the entry afterwards). */
static void get_start(get_op *op, bool inline_ok)
{
    entry *e = op->e;
    sfpd_store *st = e->job->st;

    op->from_lower = e->dram == NULL;
    if (inline_ok && op->frame_out && !op->from_lower && e->frame_len <= INLINE_FRAME_MAX) {
        st->inflight++;
        decode_run(&op->w);
        decode_done(&op->w, 0);
        return;
    }
    if (uv_queue_work(st->loop, &op->w, decode_run, decode_done) != 0) {
        get_complete(op, SFPD_E_INTERNAL, "cannot queue work");
        return;
    }
    st->inflight++;
}

static int get_begin(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                     uint64_t off, uint64_t cap, bool drop, bool frame_out, sfpd_done_fn done,
                     void *arg)
{
    entry *e;
    get_op *op;

    if (st->shutting_down)
        return SFPD_E_SHUTTING_DOWN;
    if (!shm)
        return SFPD_E_NO_SHM;
    e = lookup(st, job, key);
    if (!e)
        return SFPD_E_NOT_FOUND;
    if (e->corrupt)
        return SFPD_E_CORRUPT;
    if (!sfpd_range_ok(shm->size, off, cap))
        return SFPD_E_RANGE;
    if (cap < (frame_out ? e->frame_len : e->raw_bytes))
        return SFPD_E_RANGE;
    op = sfpd_calloc(1, sizeof(*op));
    if (!op)
        return SFPD_E_NO_MEMORY;
    op->st = st;
    op->e = e;
    op->shm = sfpd_shm_ref(shm);
    op->off = off;
    op->cap = cap;
    op->drop = drop;
    op->frame_out = frame_out;
    op->done = done;
    op->arg = arg;
    op->t0 = sfpd_now_ns();
    sfpd_list_init(&op->wait_link);
    e->pins++;
    job->io_inflight++;

    if (job->last_was_put || !job->prefetch_active) {
        /* first Get after Puts: backward has begun */
        job->prefetch_active = true;
        job->prefetch_depth = 0;
    }
    job->last_was_put = false;

    if (e->dram) {
        op->hit = true;
        sfpd_stat_inc(e->prefetched ? SFPD_C_PREFETCH_HITS : SFPD_C_DRAM_HITS, 1);
        get_start(op, true);
    } else if (e->loading) {
        op->hit = true;
        sfpd_stat_inc(SFPD_C_PREFETCH_HITS, 1);
        sfpd_list_push_back(&e->waiters, &op->wait_link);
    } else {
        sfpd_stat_inc(SFPD_C_PREFETCH_MISSES, 1);
        get_start(op, true);
    }
    pump_prefetch(job);
    return 0;
}

int sfpd_store_get(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                   uint64_t off, uint64_t cap, bool drop, sfpd_done_fn done, void *arg)
{
    return get_begin(st, job, key, shm, off, cap, drop, false, done, arg);
}

int sfpd_store_get_frame(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                         uint64_t off, uint64_t cap, bool drop, sfpd_done_fn done, void *arg)
{
    return get_begin(st, job, key, shm, off, cap, drop, true, done, arg);
}

int sfpd_store_drop(sfpd_store *st, sfpd_job *job, const sfpd_key *key)
{
    entry *e = lookup(st, job, key);
    if (!e)
        return SFPD_E_NOT_FOUND;
    drop_entry(e);
    sfpd_stat_inc(SFPD_C_DROPS, 1);
    pump_prefetch(job);
    run_admissions(st);
    return 0;
}

/* ------------------------------------------------------------ prefetch */

typedef struct load_op {
    io_op io;            /* io.err: the read's result */
    entry *e;
    void *buf;
} load_op;

static void load_run(io_op *op)
{
    load_op *l = (load_op *)op;
    entry *e = l->e;
    sfpd_store *st = e->job->st;
    int r;

    l->buf = sfpd_malloc(e->frame_len);
    if (!l->buf) {
        l->io.err = -ENOMEM;
        return;
    }
    r = st->lower[e->lt]->ops->read(st->lower[e->lt], &e->loc, l->buf);
    if (r == 0 && sfp_frame_verify(l->buf, (size_t)e->frame_len, NULL) != 0)
        r = -EBADMSG;
    if (r < 0) {
        sfpd_free(l->buf);
        l->buf = NULL;
        l->io.err = r;
    }
}

static void load_done(io_op *op)
{
    load_op *l = (load_op *)op;
    entry *e = l->e;
    sfpd_job *job = e->job;
    sfpd_store *st = job->st;
    sfpd_list waiters;

    st->inflight--;
    e->loading = false;
    dram_sub(job, e->frame_len); /* the reservation; re-added if kept */
    if (l->io.err == 0 && !e->dropped) {
        e->dram = l->buf;
        l->buf = NULL;
        e->prefetched = true;
        dram_add(job, e->frame_len);
        dram_list_insert(e);
    } else if (l->io.err == -EBADMSG) {
        e->corrupt = true;
        sfpd_stat_inc(SFPD_C_CORRUPT, 1);
        sfpd_err("job %s rank %u step %llu tensor %s: spilled frame failed its checksum",
                 job->id, e->key.rank, (unsigned long long)e->key.step, e->key.name);
    } else if (l->io.err) {
        e->load_failed = true; /* a Get still tries (and reports) the read */
        sfpd_warn("job %s tensor %s: prefetch read failed: %s", job->id, e->key.name,
                  strerror(-l->io.err));
    }
    sfpd_free(l->buf);
    sfpd_free(l);
    /* waiters go on: from DRAM now, or from the tier (which reports the error) */
    sfpd_list_init(&waiters);
    while (!sfpd_list_empty(&e->waiters)) {
        sfpd_list *p = e->waiters.next;
        sfpd_list_remove(p);
        sfpd_list_push_back(&waiters, p);
    }
    while (!sfpd_list_empty(&waiters)) {
        get_op *g = sfpd_container_of(waiters.next, get_op, wait_link);
        sfpd_list_remove(&g->wait_link);
        if (e->corrupt) {
            get_complete(g, SFPD_E_CORRUPT, "stored frame failed verification");
        } else {
            get_start(g, false); /* e is used below */
        }
    }
    entry_maybe_free(e);
    pump_prefetch(job);
    job_io_done(job); /* may free job */
    run_admissions(st);
    check_shutdown(st);
}

static int load(entry *e)
{
    sfpd_job *job = e->job;
    sfpd_store *st = job->st;
    load_op *l = sfpd_calloc(1, sizeof(*l));

    if (!l)
        return -ENOMEM;
    l->e = e;
    e->loading = true;
    dram_add(job, e->frame_len);
    st->inflight++;
    job->io_inflight++;
    sfpd_stat_inc(SFPD_C_PREFETCH_ISSUED, 1);
    io_submit(st, &l->io, load_run, load_done, true);
    return 0;
}

static void pump_prefetch(sfpd_job *job)
{
    sfpd_store *st = job->st;
    unsigned depth = job->prefetch_depth ? job->prefetch_depth : st->prefetch_depth;
    unsigned ahead = 0;

    if (!job->prefetch_active || depth == 0 || st->shutting_down || job->free_pending ||
        !sfpd_list_empty(&st->admit_wait))
        return;
    for (sfpd_list *p = job->all.prev; p != &job->all && ahead < depth; p = p->prev) {
        entry *e = sfpd_container_of(p, entry, all);
        if (e->consumed || e->corrupt)
            continue;
        ahead++;
        if (e->dram || e->loading || e->pins || !e->in_lower || e->load_failed)
            continue;
        /* room: free budget, else evict stashes already read */
        while (!fits(st, job, e->frame_len, false)) {
            entry *v;
            if (fits(st, job, e->frame_len, true))
                return; /* spills under way make room; spill_done pumps again */
            v = job_victim(job, true);
            if (!v || spill(v) < 0)
                return;
        }
        if (load(e) < 0)
            return;
    }
}

static void pump_all(sfpd_store *st)
{
    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next)
        pump_prefetch(sfpd_container_of(p, sfpd_job, link));
}

void sfpd_store_prefetch(sfpd_store *st, sfpd_job *job, unsigned depth)
{
    job->prefetch_active = true;
    job->prefetch_depth = depth;
    job->last_was_put = false; /* the hint marks the start of backward */
    pump_prefetch(job);
    (void)st;
}

/* ----------------------------------------------------------------- jobs */

static void job_drop_all(sfpd_job *job)
{
    while (!sfpd_list_empty(&job->all))
        drop_entry(sfpd_container_of(job->all.next, entry, all));
}

static void close_graves(sfpd_job *job, bool delete_data)
{
    sfpd_store *st = job->st;
    for (size_t i = 0; i < job->n_graves; i++)
        st->lower[job->graves[i].ti]->ops->job_close(st->lower[job->graves[i].ti],
                                                     job->graves[i].state, delete_data);
    sfpd_free(job->graves);
    job->graves = NULL;
    job->n_graves = 0;
}

static void job_free(sfpd_job *job)
{
    sfpd_store *st = job->st;
    if (!sfpd_list_empty(&job->all)) /* cannot happen: Puts check free_pending */
        sfpd_err("job %s freed with %llu stashes left", job->id, (unsigned long long)job->frames);
    close_graves(job, !st->shutting_down);
    sfpd_list_remove(&job->link);
    for (unsigned i = 0; i < st->n_lower; i++)
        if (job->tier_state[i])
            st->lower[i]->ops->job_close(st->lower[i], job->tier_state[i], !st->shutting_down);
    sfpd_free(job);
}

/* Called whenever a job's pool work finishes. */
static void job_io_done(sfpd_job *job)
{
    job->io_inflight--;
    if (job->io_inflight)
        return;
    if (job->free_pending) {
        job_free(job);
        return;
    }
    close_graves(job, true);
}

static sfpd_job *job_find(sfpd_store *st, const char *id)
{
    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next) {
        sfpd_job *j = sfpd_container_of(p, sfpd_job, link);
        if (!j->free_pending && strcmp(j->id, id) == 0)
            return j;
    }
    return NULL;
}

static sfpd_job *job_new(sfpd_store *st, const char *id, uint32_t uid)
{
    sfpd_job *j = sfpd_calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->st = st;
    snprintf(j->id, sizeof(j->id), "%s", id);
    j->uid = uid;
    sfpd_list_init(&j->all);
    sfpd_list_init(&j->dram);
    sfpd_list_push_back(&st->jobs, &j->link);
    return j;
}

int sfpd_store_job_attach(sfpd_store *st, const char *job_id, uint32_t uid, uint32_t rank,
                          sfpd_job **out)
{
    sfpd_job *j = job_find(st, job_id);
    bool seen = false;

    if (st->shutting_down)
        return SFPD_E_SHUTTING_DOWN;
    if (j && j->uid != uid && uid != 0)
        return SFPD_E_PERMISSION;
    if (!j && !(j = job_new(st, job_id, uid)))
        return SFPD_E_NO_MEMORY;
    if (j->conns == 0 && j->orphan_deadline_ns)
        sfpd_info("job %s re-attached (%llu frames kept)", j->id, (unsigned long long)j->frames);
    j->conns++;
    j->orphan_deadline_ns = 0;
    for (uint32_t i = 0; i < j->n_ranks; i++)
        seen |= j->ranks[i] == rank;
    if (!seen && j->n_ranks < SFPD_ARRAY_SIZE(j->ranks))
        j->ranks[j->n_ranks++] = rank;
    *out = j;
    return 0;
}

/* jobs_ended counts a job once: at its first EndJob, or when its grace
 * period expires if it held stashes and no EndJob came. */
static void count_ended(sfpd_job *job)
{
    if (job->ended || !job->held_data)
        return;
    job->ended = true;
    sfpd_stat_inc(SFPD_C_JOBS_ENDED, 1);
}

static void job_expire(sfpd_job *job)
{
    sfpd_info("job %s: no connection for its grace period, freeing %llu frames",
              job->id, (unsigned long long)job->frames);
    job_drop_all(job);
    count_ended(job);
    if (job->io_inflight)
        job->free_pending = true;
    else
        job_free(job);
}

void sfpd_store_job_detach(sfpd_store *st, sfpd_job *job)
{
    if (!job || job->conns == 0)
        return;
    if (--job->conns == 0) {
        job->orphan_deadline_ns = sfpd_now_ns() + st->grace_ns;
        if (job->orphan_deadline_ns == 0)
            job->orphan_deadline_ns = 1;
        job->prefetch_active = false;
    }
}

void sfpd_store_job_end(sfpd_store *st, sfpd_job *job)
{
    job_drop_all(job);
    job->prefetch_active = false;
    job->last_was_put = false;
    job->held_data = true; /* an EndJob ends the job, data or not */
    count_ended(job);
    for (unsigned i = 0; i < st->n_lower; i++) {
        if (job->io_inflight && job->tier_state[i]) {
            /* pool work still uses the old segments: retire them when it is done;
             * new spills of the job go to a fresh tier state */
            struct grave *g = sfpd_realloc(job->graves, (job->n_graves + 1) * sizeof(*g));
            if (g) {
                job->graves = g;
                job->graves[job->n_graves].ti = i;
                job->graves[job->n_graves++].state = job->tier_state[i];
                job->tier_state[i] = NULL;
            }
            /* out of memory: keep using the old state; its files go with the job */
        } else if (job->tier_state[i]) {
            st->lower[i]->ops->job_close(st->lower[i], job->tier_state[i], true);
            job->tier_state[i] = NULL;
        }
    }
    run_admissions(st);
}

void sfpd_store_job_snapshot(const sfpd_job *j, sfpd_job_snapshot *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->job_id, sizeof(o->job_id), "%s", j->id);
    o->uid = j->uid;
    o->connections = j->conns;
    o->ranks = j->n_ranks;
    o->orphaned = j->conns == 0;
    o->bytes_in = j->raw_bytes;
    o->bytes_stored = j->stored_bytes;
    o->values = j->values;
    o->dram_high_water = j->dram_hwm;
    o->frames = j->frames;
    /* tier 0 is DRAM, then the lower tiers in tier_order (fill_snapshot) */
    o->tiers[0].bytes = j->dram_bytes;
    o->tiers[0].frames = j->dram_frames;
    for (unsigned i = 0; i < j->st->n_lower; i++) {
        o->tiers[1 + i].bytes = j->lt_bytes[i];
        o->tiers[1 + i].frames = j->lt_frames[i];
    }
}

static void sweep_cb(uv_timer_t *t)
{
    sfpd_store *st = t->data;
    uint64_t now = sfpd_now_ns();
    sfpd_list *p = st->jobs.next;
    sfpd_held_sweep(st->held, now);
    for (unsigned i = 0; i < st->n_lower; i++)
        if (st->lower[i]->ops->tick)
            st->lower[i]->ops->tick(st->lower[i]);
    while (p != &st->jobs) {
        sfpd_job *j = sfpd_container_of(p, sfpd_job, link);
        p = p->next;
        if (j->conns == 0 && !j->free_pending && j->orphan_deadline_ns &&
            now >= j->orphan_deadline_ns)
            job_expire(j);
    }
}

/* --------------------------------------------------------------- adopt */

/* Where adopt() records go: the store and the tier that found them. */
typedef struct adopt_ctx {
    sfpd_store *st;
    unsigned ti;
} adopt_ctx;

static int adopt_cb(void *arg, const char *job_id, uint32_t owner, void *job_state,
                    const sfpd_rec_meta *m, const sfpd_loc *loc)
{
    const adopt_ctx *ac = arg;
    sfpd_store *st = ac->st;
    sfpd_job *j = job_find(st, job_id);
    entry *e, *old;

    if (j && j->uid != owner)
        return -1;
    /* names from files of older versions may not be text: never adopt them
     * (no Hello can name them any more); their records are dropped */
    if (sfp_text_check(job_id, strlen(job_id)) != 0 ||
        sfp_text_check(m->key->name, m->key->name_len) != 0) {
        sfpd_warn("re-adoption: a stash whose job id or tensor name is not text is dropped");
        return -1;
    }
    if (!j) {
        j = job_new(st, job_id, owner);
        if (!j)
            return -1;
        j->orphan_deadline_ns = sfpd_now_ns() + st->grace_ns;
        sfpd_stat_inc(SFPD_C_JOBS_READOPTED, 1);
    }
    if (sfp_dtype_size((sfp_dtype)m->dtype) == 0)
        return -1;
    if (m->count == 0 || m->count > SFP_FRAME_MAX_COUNT)
        return -1;
    old = lookup(st, j, m->key);
    if (old && old->seq > m->seq)
        return -1; /* an older copy of a replaced key */
    e = entry_new(j, m->key);
    if (!e)
        return -1;
    e->dtype = m->dtype;
    e->mbits = m->mbits;
    e->ebits = m->ebits;
    e->coder = m->coder;
    e->count = m->count;
    e->raw_bytes = m->count * sfp_dtype_size((sfp_dtype)m->dtype);
    e->frame_len = loc->frame_len;
    e->checksum = m->frame_checksum;
    if (index_insert(st, e) < 0) {
        sfpd_free(e);
        return -1;
    }
    if (m->seq > st->seq)
        st->seq = m->seq;
    e->seq = m->seq;
    /* keep the job list in seq order: adoption order is arbitrary */
    sfpd_list_remove(&e->all);
    {
        sfpd_list *pos = j->all.prev;
        while (pos != &j->all && sfpd_container_of(pos, entry, all)->seq > e->seq)
            pos = pos->prev;
        sfpd_list_insert_after(pos, &e->all);
    }
    e->loc = *loc;
    e->in_lower = true;
    if (!j->tier_state[ac->ti])
        j->tier_state[ac->ti] = job_state; /* only once a record is really kept */
    e->lt = (uint8_t)ac->ti;
    lower_count(e, ac->ti, 1);
    sfpd_stat_inc(SFPD_C_FRAMES_READOPTED, 1);
    return 0;
}

int sfpd_store_adopt(sfpd_store *st)
{
    int r = 0;
    for (unsigned i = 0; i < st->n_lower; i++) {
        adopt_ctx ac = {st, i};
        int e = st->lower[i]->ops->adopt(st->lower[i], adopt_cb, &ac);
        if (e < 0) {
            sfpd_warn("%s: re-adoption scan failed: %s", st->lower[i]->ops->name, strerror(-e));
            r = SFPD_E_IO;
        }
    }
    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next) {
        sfpd_job *j = sfpd_container_of(p, sfpd_job, link);
        sfpd_info("re-adopted job %s (uid %u): %llu stored frames, %llu bytes; waiting %.0f s for it",
                  j->id, j->uid, (unsigned long long)j->frames, (unsigned long long)j->stored_bytes,
                  (double)st->grace_ns / 1e9);
    }
    return r;
}

/* ----------------------------------------------------------- lifecycle */

void sfpd_store_configure(sfpd_store *st, const sfpd_config *c)
{
    st->dram_budget = c->dram_budget;
    st->job_dram_budget = c->job_dram_budget;
    st->write_behind = c->spill_write_behind;
    st->job_quota = c->job_quota;
    st->max_tensor = c->max_tensor;
    st->prefetch_depth = (unsigned)c->prefetch_depth;
    st->grace_ns = (uint64_t)(c->grace_period * 1e9);
    sfpd_held_configure(st->held, c);
    for (unsigned i = 0; i < st->n_lower; i++)
        if (st->lower[i]->ops->configure)
            st->lower[i]->ops->configure(st->lower[i], c);
    /* a smaller budget: evict down to it now, not at the next Put */
    while (st->dram_bytes - st->spilling_bytes > st->dram_budget) {
        entry *v = global_victim(st);
        if (!v || spill(v) < 0)
            break;
    }
    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next) {
        sfpd_job *j = sfpd_container_of(p, sfpd_job, link);
        while (j->dram_bytes - j->spilling_bytes > job_cap(st)) {
            entry *v = job_victim(j, false);
            if (!v || spill(v) < 0)
                break;
        }
    }
    run_admissions(st);
}

static void destroy_tiers(sfpd_store *st)
{
    for (unsigned i = 0; i < st->n_lower; i++)
        st->lower[i]->ops->destroy(st->lower[i]);
    st->n_lower = 0;
}

/* The tier_order words the registry knows, for messages. */
static void kind_names(const sfpd_tier_kind *kinds, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", kinds[i].name);
}

/*
 * tier_order: "dram" first, then lower tiers of the registry, each at most
 * once, in the order frames go down. Builds them into st->lower.
 */
static int make_tiers(sfpd_store *st, const sfpd_config *cfg, const sfpd_tier_kind *kinds, size_t n_kinds)
{
    char buf[256], names[128];
    char *save = NULL;
    bool used[16] = {false};
    unsigned k = 0;
    const char *order = cfg->tier_order && cfg->tier_order[0] ? cfg->tier_order : "dram,disk";

    if (strlen(order) >= sizeof(buf) || n_kinds > SFPD_ARRAY_SIZE(used))
        goto bad;
    snprintf(buf, sizeof(buf), "%s", order);
    for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save), k++) {
        size_t i;
        int r;
        if (k == 0) {
            if (strcmp(t, "dram") != 0)
                goto bad;
            continue;
        }
        for (i = 0; i < n_kinds && strcmp(t, kinds[i].name) != 0; i++)
            ;
        if (i == n_kinds || used[i] || st->n_lower == SFPD_MAX_LOWER)
            goto bad;
        used[i] = true;
        if ((r = kinds[i].create(st->loop, cfg, &st->lower[st->n_lower])) < 0)
            return r == -ENOMEM ? SFPD_E_NO_MEMORY : r == -EINVAL ? SFPD_E_INVALID : SFPD_E_IO;
        st->n_lower++;
    }
    if (st->n_lower == 0)
        goto bad;
    for (size_t i = 0; i < n_kinds; i++)
        if (!used[i] && kinds[i].unused)
            kinds[i].unused(cfg);
    return 0;
bad:
    kind_names(kinds, n_kinds, names, sizeof(names));
    sfpd_err("tier_order '%s': expected dram, then one or more of %s (each at most once, "
             "at most %u)", order, names, SFPD_MAX_LOWER);
    return SFPD_E_INVALID;
}

int sfpd_store_create(uv_loop_t *loop, const sfpd_config *cfg, const sfpd_tier_kind *kinds,
                      size_t n_kinds, sfpd_store **out)
{
    sfpd_store *st = sfpd_calloc(1, sizeof(*st));
    int r;

    if (!st)
        return SFPD_E_NO_MEMORY;
    st->loop = loop;
    sfpd_list_init(&st->jobs);
    sfpd_list_init(&st->admit_wait);
    st->start_ns = sfpd_now_ns();
    if ((r = make_tiers(st, cfg, kinds, n_kinds)) < 0 ||
        (r = tab_grow(st) < 0 ? SFPD_E_NO_MEMORY : 0) < 0 ||
        (r = sfpd_held_create(cfg, &st->held)) < 0) {
        destroy_tiers(st);
        sfpd_free(st->tab);
        sfpd_free(st);
        return r;
    }
    sfpd_store_configure(st, cfg);
    uv_timer_init(loop, &st->sweep);
    st->sweep.data = st;
    uv_timer_start(&st->sweep, sweep_cb, 100, 100);
    sfpd_list_init(&st->io_pending);
    uv_check_init(loop, &st->io_flush);
    st->io_flush.data = st;
    *out = st;
    return 0;
}

uint32_t sfpd_store_inflight(const sfpd_store *st) { return st->inflight; }

static void check_shutdown(sfpd_store *st)
{
    void (*cb)(void *);
    if (!st->shutting_down || st->inflight || !st->sweep_closed || !st->io_flush_closed ||
        !st->shutdown_cb)
        return;
    cb = st->shutdown_cb;
    st->shutdown_cb = NULL;
    cb(st->shutdown_arg);
}

static void sweep_closed(uv_handle_t *h)
{
    sfpd_store *st = h->data;
    st->sweep_closed = true;
    check_shutdown(st);
}

static void io_flush_closed(uv_handle_t *h)
{
    sfpd_store *st = h->data;
    st->io_flush_closed = true;
    check_shutdown(st);
}

void sfpd_store_shutdown(sfpd_store *st, void (*cb)(void *), void *arg)
{
    st->shutting_down = true;
    st->shutdown_cb = cb;
    st->shutdown_arg = arg;
    io_flush(st); /* from now on io_submit queues at once */
    uv_close((uv_handle_t *)&st->io_flush, io_flush_closed);
    uv_close((uv_handle_t *)&st->sweep, sweep_closed);
}

void sfpd_store_destroy(sfpd_store **pst)
{
    sfpd_store *st = *pst;
    if (!st)
        return;
    *pst = NULL;
    /* shutting_down: lower_forget and job_free keep what the tiers hold for re-adoption */
    for (size_t i = 0; i < st->tab_size; i++) {
        entry *e = st->tab[i];
        while (e) {
            entry *next = e->hnext;
            /* lower-tier copies stay: job_close(.., false) below keeps them */
            if (e->dram)
                sfpd_free(e->dram);
            sfpd_free(e);
            e = next;
        }
    }
    while (!sfpd_list_empty(&st->jobs)) {
        sfpd_job *j = sfpd_container_of(st->jobs.next, sfpd_job, link);
        sfpd_list_remove(&j->link);
        close_graves(j, false);
        for (unsigned i = 0; i < st->n_lower; i++)
            if (j->tier_state[i])
                st->lower[i]->ops->job_close(st->lower[i], j->tier_state[i], false);
        sfpd_free(j);
    }
    destroy_tiers(st);
    sfpd_held_destroy(&st->held);
    sfpd_free(st->tab);
    sfpd_free(st);
}

sfpd_held *sfpd_store_held(sfpd_store *st) { return st->held; }

static void tier_snapshot(sfpd_tier_snapshot *o, const char *name, uint64_t bytes, uint64_t used,
                          uint64_t budget, uint64_t frames, uint64_t high_water)
{
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->bytes = bytes;
    o->used_bytes = used;
    o->budget_bytes = budget;
    o->frames = frames;
    o->high_water = high_water;
}

int sfpd_store_fill_snapshot(sfpd_store *st, sfpd_snapshot *s)
{
    size_t n = 0;
    s->uptime_seconds = (double)(sfpd_now_ns() - st->start_ns) / 1e9;
    s->bytes_in = st->raw_bytes;
    s->bytes_stored = st->stored_bytes;
    s->values = st->values;
    s->compression_ratio = st->stored_bytes ? (double)st->raw_bytes / (double)st->stored_bytes : 0;
    s->bits_per_value = st->values ? 8.0 * (double)st->stored_bytes / (double)st->values : 0;
    s->inflight = st->inflight;
    /* DRAM, then the lower tiers in tier_order */
    tier_snapshot(&s->tiers[0], "dram", st->dram_bytes, st->dram_bytes, st->dram_budget,
                  st->dram_frames, st->dram_hwm);
    for (unsigned i = 0; i < st->n_lower; i++) {
        sfpd_tier *t = st->lower[i];
        tier_snapshot(&s->tiers[1 + i], t->ops->name, t->frame_bytes, t->ops->used(t), t->budget,
                      t->frames, t->high_water);
        if (t->ops->fill_snapshot && t->ops->fill_snapshot(t, s) < 0)
            return SFPD_E_NO_MEMORY;
    }
    s->n_tiers = 1 + st->n_lower;
    if (sfpd_held_fill_snapshot(st->held, s) < 0)
        return SFPD_E_NO_MEMORY;
    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next)
        n++;
    s->n_jobs = 0;
    s->jobs = n ? sfpd_calloc(n, sizeof(*s->jobs)) : NULL;
    if (n && !s->jobs)
        return SFPD_E_NO_MEMORY;
    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next)
        sfpd_store_job_snapshot(sfpd_container_of(p, sfpd_job, link), &s->jobs[s->n_jobs++]);
    return 0;
}

/* ------------------------------------------------------------ reporters */

int sfpd_store_list_tensors(sfpd_store *st, const char *job_id, size_t max,
                            sfpd_tensor_snapshot **out, size_t *n, uint64_t *total)
{
    sfpd_tensor_snapshot *v = NULL;
    uint64_t matches = 0;
    size_t k = 0;

    for (sfpd_list *p = st->jobs.next; p != &st->jobs; p = p->next) {
        sfpd_job *j = sfpd_container_of(p, sfpd_job, link);
        if (job_id && job_id[0] && strcmp(j->id, job_id) != 0)
            continue;
        matches += j->frames;
    }
    k = matches < max ? (size_t)matches : max;
    if (k && !(v = sfpd_calloc(k, sizeof(*v))))
        return SFPD_E_NO_MEMORY;
    k = 0;
    for (sfpd_list *p = st->jobs.next; p != &st->jobs && k < max; p = p->next) {
        sfpd_job *j = sfpd_container_of(p, sfpd_job, link);
        if (job_id && job_id[0] && strcmp(j->id, job_id) != 0)
            continue;
        for (sfpd_list *q = j->all.next; q != &j->all && k < max; q = q->next) {
            const entry *e = sfpd_container_of(q, entry, all);
            sfpd_tensor_snapshot *t = &v[k++];
            snprintf(t->job_id, sizeof(t->job_id), "%s", j->id);
            snprintf(t->name, sizeof(t->name), "%s", e->key.name);
            t->rank = e->key.rank;
            t->step = e->key.step;
            t->dtype = e->dtype;
            t->mbits = e->mbits;
            t->ebits = e->ebits;
            t->coder = e->coder;
            t->count = e->count;
            t->raw_bytes = e->raw_bytes;
            t->frame_bytes = e->frame_len;
            t->tier = e->dram || !e->in_lower ? "dram" : st->lower[e->lt]->ops->name;
        }
    }
    *out = v;
    *n = k;
    *total = matches;
    return 0;
}

int sfpd_store_end_job_id(sfpd_store *st, const char *job_id, uint64_t *frames,
                          uint64_t *bytes)
{
    sfpd_job *j = job_find(st, job_id);
    if (!j)
        return SFPD_E_NOT_FOUND;
    *frames = j->frames;
    *bytes = j->stored_bytes;
    sfpd_store_job_end(st, j);
    return 0;
}
