/*
 * tier_disk.c - the spill tier: per-job directories of append-only segment
 * files in the spill directory.
 *
 *   <spill_dir>/<owner uid>-<hex job id>/seg-<8 hex>.sfs
 *
 * A job id whose hex form would make the directory name longer than
 * NAME_MAX (255; ids over about 120 bytes) is written in unpadded base64url
 * instead, after an underscore: <owner uid>_<base64url job id>. Both forms
 * use only [0-9a-zA-Z_-], so no job id can name a path outside the spill
 * directory.
 *
 * A segment is a sequence of 8-byte aligned records:
 *   0  magic "SFPDREC1"       8
 *   8  u32 version (1)        12 u32 flags (bit 0: dead)
 *   16 u64 frame length       24 u64 step
 *   32 u64 sequence           40 u32 rank
 *   44 u16 name length        46 u16 zero
 *   48 u64 frame checksum     56 u64 header checksum: XXH3-64 of bytes
 *                                [0,12) + [16,56) + [64,80) + name (flags
 *                                excluded so a record can be killed in place)
 *   64 u64 element count      72 u32 dtype
 *   76 u8 mbits, u8 ebits, u8 coder, u8 zero
 *   80 name, zero padded to 8; the frame (which carries its own XXH3
 *   trailer, verified on every read back); zero padding to 8.
 *
 * Offsets are reserved on the loop thread, so concurrent pool writes never
 * overlap. Data is not fsync'ed: spill files are a cache that survives a
 * daemon restart, not a machine crash.
 *
 * Fault injection (test builds only: compiled with -DSFPD_FAULT_INJECTION,
 * i.e. tests/daemon/sfpd-faults, never the installed sfpd): the environment
 * variable SFPD_FAULT_DISK="OP:N[+][:ERRNO],..." makes the N-th call of OP
 * (counted from start-up, 1-based; with "+" that call and every later one)
 * fail with ERRNO (EIO, ENOSPC, EFBIG or EDQUOT; default EIO). OP is
 * "write" (a record write), "read" (a frame read back) or "open" (creating
 * or opening a segment file). There is no fsync to fail (see above).
 */
#include "tiers/tiers.h"
#include "base/stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>
#include <xxhash.h>

#define REC_MAGIC "SFPDREC1"
#define REC_HDR 80u
#define REC_DEAD 1u

typedef struct djob djob;
typedef struct disk disk;

typedef struct dseg {
    djob *job;
    uint32_t id;
    int fd;                /* -1 until the first write/read opens it */
    pthread_mutex_t mu;    /* guards fd opening on the pool          */
    uint64_t size;         /* reserved end                           */
    uint64_t live;         /* records reserved and not released      */
    bool sealed;           /* no more reservations                   */
    sfpd_list link;
    char path[];
} dseg;

struct djob {
    disk *d;
    char *dir;
    uint32_t owner;
    uint32_t next_id;
    dseg *cur;
    sfpd_list segs;
    pthread_mutex_t mu;    /* guards mkdir on the pool */
    bool dir_made;
    bool closed;
    bool delete_dir;       /* closed with delete: rmdir once unlinks are done */
    uint32_t unlinks;      /* unlink work items in flight for this job        */
    sfpd_list link;
};

struct disk {
    sfpd_tier base;
    uv_loop_t *loop;
    char *dir;
    uint64_t used;
    uint64_t segment_size;
    bool counted;          /* the spill tier: its I/O is the spills, disk_* stats */
    sfpd_list jobs;
};

static uint64_t pad8(uint64_t v) { return (v + 7) & ~UINT64_C(7); }

/* ------------------------------------------------------- fault injection */

enum { FAULT_OPEN, FAULT_WRITE, FAULT_READ, FAULT_OPS };

#ifdef SFPD_FAULT_INJECTION
#include <stdatomic.h>

static const char *const fault_names[FAULT_OPS] = {"open", "write", "read"};
static struct {
    atomic_ullong calls;
    unsigned long long at; /* 0: never */
    bool onward;
    int err;
} faults[FAULT_OPS];

/* Parses SFPD_FAULT_DISK once, on the loop thread at start-up. */
static void fault_setup(void)
{
    const char *v = getenv("SFPD_FAULT_DISK");
    char buf[256], *save = NULL;
    if (!v || !v[0])
        return;
    snprintf(buf, sizeof(buf), "%s", v);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char op[16], rest[64] = "";
        unsigned long long n = 0;
        int i, used = 0;
        if (sscanf(t, "%15[a-z]:%llu%n", op, &n, &used) < 2 || n == 0) {
            sfpd_warn("SFPD_FAULT_DISK: ignoring \"%s\"", t);
            continue;
        }
        snprintf(rest, sizeof(rest), "%s", t + used);
        for (i = 0; i < FAULT_OPS && strcmp(op, fault_names[i]) != 0; i++)
            ;
        if (i == FAULT_OPS) {
            sfpd_warn("SFPD_FAULT_DISK: unknown operation \"%s\"", op);
            continue;
        }
        faults[i].at = n;
        faults[i].onward = rest[0] == '+';
        faults[i].err = EIO;
        {
            const char *e = strchr(rest, ':');
            if (e && strcmp(e + 1, "ENOSPC") == 0)
                faults[i].err = ENOSPC;
            else if (e && strcmp(e + 1, "EFBIG") == 0)
                faults[i].err = EFBIG;
            else if (e && strcmp(e + 1, "EDQUOT") == 0)
                faults[i].err = EDQUOT;
        }
        sfpd_warn("test build: disk %s call %llu%s will fail with %s", op, n,
                  faults[i].onward ? " and every later one" : "", strerror(faults[i].err));
    }
}

/* 0, or the injected -errno for this call of op (any thread). */
static int fault_hit(int op)
{
    unsigned long long n;
    if (!faults[op].at)
        return 0;
    n = atomic_fetch_add(&faults[op].calls, 1) + 1;
    if (n == faults[op].at || (faults[op].onward && n > faults[op].at))
        return -faults[op].err;
    return 0;
}
#else
static void fault_setup(void) {}
static int fault_hit(int op) { (void)op; return 0; }
#endif

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t hdr_checksum(const uint8_t *hdr, const char *name, size_t name_len)
{
    uint8_t buf[12 + 40 + 16 + SFPD_TENSOR_NAME_MAX];
    memcpy(buf, hdr, 12);
    memcpy(buf + 12, hdr + 16, 40);
    memcpy(buf + 52, hdr + 64, 16);
    memcpy(buf + 68, name, name_len);
    return XXH3_64bits(buf, 68 + name_len);
}

/* ------------------------------------------------------------ segments */

static dseg *seg_new(djob *j, uint32_t id)
{
    size_t n = strlen(j->dir) + 32;
    dseg *s = sfpd_calloc(1, sizeof(*s) + n);
    if (!s)
        return NULL;
    s->job = j;
    s->id = id;
    s->fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->path, n, "%s/seg-%08x.sfs", j->dir, id);
    sfpd_list_push_back(&j->segs, &s->link);
    return s;
}

/* Files to close and remove on the pool, in order, then a directory. */
typedef struct unlink_work {
    uv_work_t w;
    djob *owner;     /* counted in owner->unlinks, or NULL */
    size_t n, cap;
    int *fds;
    char **paths;
    char *rmdir;     /* directory to remove after, or NULL */
} unlink_work;

static void unlink_run(uv_work_t *w)
{
    unlink_work *u = (unlink_work *)w;
    for (size_t i = 0; i < u->n; i++) {
        if (u->fds[i] >= 0)
            close(u->fds[i]);
        if (u->paths[i] && unlink(u->paths[i]) < 0 && errno != ENOENT)
            sfpd_warn("disk: cannot remove %s: %s", u->paths[i], strerror(errno));
    }
    if (u->rmdir && rmdir(u->rmdir) < 0 && errno != ENOENT)
        sfpd_warn("disk: cannot remove %s: %s", u->rmdir, strerror(errno));
}

static void job_release(djob *j);

static void unlink_done(uv_work_t *w, int status)
{
    unlink_work *u = (unlink_work *)w;
    djob *owner = u->owner;
    (void)status;
    for (size_t i = 0; i < u->n; i++)
        sfpd_free(u->paths[i]);
    sfpd_free(u->paths);
    sfpd_free(u->fds);
    sfpd_free(u->rmdir);
    sfpd_free(u);
    if (owner && --owner->unlinks == 0 && owner->closed)
        job_release(owner);
}

static void unlink_submit(disk *d, unlink_work *u)
{
    if (u->owner)
        u->owner->unlinks++;
    if (uv_queue_work(d->loop, &u->w, unlink_run, unlink_done) != 0) {
        unlink_run(&u->w);
        unlink_done(&u->w, 0);
    }
}

/* Adds fd/path to u; on allocation failure does the work right here. */
static void unlink_add(unlink_work *u, int fd, const char *path)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 8;
        int *f = sfpd_realloc(u->fds, cap * sizeof(*f));
        char **p;
        if (f)
            u->fds = f;
        p = f ? sfpd_realloc(u->paths, cap * sizeof(*p)) : NULL;
        if (p)
            u->paths = p;
        if (!f || !p) {
            if (fd >= 0)
                close(fd);
            unlink(path);
            return;
        }
        u->cap = cap;
    }
    u->fds[u->n] = fd;
    u->paths[u->n] = sfpd_strdup(path);
    u->n++;
}

/*
 * Frees a segment. With remove, its file goes away on the pool: through
 * batch if given (the caller submits it), else in a work item of its own.
 */
static void seg_free(dseg *s, bool remove, unlink_work *batch)
{
    disk *d = s->job->d;

    sfpd_list_remove(&s->link);
    if (s->job->cur == s)
        s->job->cur = NULL;
    d->used -= s->size;
    if (remove) {
        unlink_work *u = batch ? batch : sfpd_calloc(1, sizeof(*u));
        if (u) {
            unlink_add(u, s->fd, s->path);
            if (!batch) {
                u->owner = s->job;
                unlink_submit(d, u);
            }
        } else {
            if (s->fd >= 0)
                close(s->fd);
            unlink(s->path);
        }
    } else if (s->fd >= 0) {
        close(s->fd);
    }
    pthread_mutex_destroy(&s->mu);
    sfpd_free(s);
}

static void seg_maybe_free(dseg *s)
{
    if (s->live == 0 && (s->sealed || s->job->closed))
        seg_free(s, true, NULL);
}

/* ----------------------------------------------------------------- jobs */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of s[0..n) into out (4 * ceil(n / 3) + 1 bytes). */
static void b64_encode(const unsigned char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        size_t k = n - i < 3 ? n - i : 3;
        if (k > 1)
            v |= (uint32_t)s[i + 1] << 8;
        if (k > 2)
            v |= s[i + 2];
        for (size_t j = 0; j <= k; j++)
            out[o++] = b64url[(v >> (18 - 6 * j)) & 63];
    }
    out[o] = 0;
}

static char *job_dir(const disk *d, const char *job_id, uint32_t owner)
{
    size_t len = strlen(job_id);
    size_t n = strlen(d->dir) + 16 + 2 * len + 2;
    char *p = sfpd_malloc(n), *q;
    char uid[16];
    if (!p)
        return NULL;
    snprintf(uid, sizeof(uid), "%u", owner);
    if (strlen(uid) + 1 + 2 * len <= NAME_MAX) {
        q = p + snprintf(p, n, "%s/%s-", d->dir, uid);
        for (const unsigned char *s = (const unsigned char *)job_id; *s; s++)
            q += sprintf(q, "%02x", *s);
    } else {
        q = p + snprintf(p, n, "%s/%s_", d->dir, uid);
        b64_encode((const unsigned char *)job_id, len, q);
    }
    return p;
}

static djob *job_new(disk *d, const char *job_id, uint32_t owner)
{
    djob *j = sfpd_calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->dir = job_dir(d, job_id, owner);
    if (!j->dir) {
        sfpd_free(j);
        return NULL;
    }
    j->d = d;
    j->owner = owner;
    /* distinct from any earlier incarnation of the same job directory */
    j->next_id = (uint32_t)(sfpd_now_ns() / 1000);
    sfpd_list_init(&j->segs);
    pthread_mutex_init(&j->mu, NULL);
    sfpd_list_push_back(&d->jobs, &j->link);
    return j;
}

static int disk_job_open(sfpd_tier *t, const char *job_id, uint32_t owner, void **state)
{
    disk *d = (disk *)t;
    djob *j = job_new(d, job_id, owner);
    if (!j)
        return -ENOMEM;
    *state = j;
    return 0;
}

/*
 * Frees a closed job once no unlink of its segments is in flight; with
 * delete_dir, its directory is removed after them (rmdir of a directory
 * whose files are still being unlinked would fail).
 */
static void job_release(djob *j)
{
    if (j->delete_dir && j->dir) {
        unlink_work *u = sfpd_calloc(1, sizeof(*u));
        if (u) {
            u->rmdir = j->dir;
            j->dir = NULL;
            unlink_submit(j->d, u);
        }
    }
    pthread_mutex_destroy(&j->mu);
    sfpd_free(j->dir);
    sfpd_free(j);
}

static void disk_job_close(sfpd_tier *t, void *state, bool delete_data)
{
    disk *d = (disk *)t;
    djob *j = state;
    unlink_work *batch = NULL;

    if (!j)
        return;
    j->closed = true;
    j->delete_dir = delete_data;
    /* one work item removes the remaining files; the directory goes after */
    if (delete_data && (batch = sfpd_calloc(1, sizeof(*batch))))
        batch->owner = j;
    while (!sfpd_list_empty(&j->segs)) {
        dseg *s = sfpd_container_of(j->segs.next, dseg, link);
        seg_free(s, delete_data, batch);
    }
    sfpd_list_remove(&j->link);
    j->unlinks++; /* hold: a synchronous fallback must not free j under us */
    if (batch)
        unlink_submit(d, batch);
    if (--j->unlinks == 0)
        job_release(j);
}

/* --------------------------------------------------------------- records */

static int disk_reserve(sfpd_tier *t, void *state, const sfpd_key *key, uint64_t frame_len, sfpd_loc *loc)
{
    disk *d = (disk *)t;
    djob *j = state;
    uint64_t data_off = REC_HDR + pad8(key->name_len);
    uint64_t rec = pad8(data_off + frame_len);
    dseg *s;

    if (!j || j->closed)
        return -EINVAL;
    if (t->budget && d->used + rec > t->budget)
        return -ENOSPC;
    s = j->cur;
    if (s && s->size > 0 && s->size + rec > d->segment_size) {
        s->sealed = true;
        j->cur = NULL;
        seg_maybe_free(s);
        s = NULL;
    }
    if (!s) {
        s = seg_new(j, j->next_id++);
        if (!s)
            return -ENOMEM;
        j->cur = s;
    }
    loc->handle = s;
    loc->off = s->size;
    loc->rec_len = rec;
    loc->data_off = (uint32_t)data_off;
    loc->frame_len = frame_len;
    s->size += rec;
    s->live++;
    d->used += rec;
    if (d->used > t->high_water)
        t->high_water = d->used;
    return 0;
}

static void disk_release(sfpd_tier *t, const sfpd_loc *loc, bool written)
{
    dseg *s = loc->handle;
    (void)t;
    (void)written;
    if (!s)
        return;
    s->live--;
    if (!written && s == s->job->cur) {
        /* a failed write leaves a hole: never append after it */
        s->sealed = true;
        s->job->cur = NULL;
    }
    seg_maybe_free(s);
}

static int open_seg(dseg *s, bool create)
{
    djob *j = s->job;
    int r = 0;

    pthread_mutex_lock(&s->mu);
    if (s->fd >= 0)
        goto out;
    if ((r = fault_hit(FAULT_OPEN)) < 0)
        goto out;
    if (create) {
        pthread_mutex_lock(&j->mu);
        if (!j->dir_made) {
            if (mkdir(j->dir, 0700) < 0 && errno != EEXIST)
                r = -errno;
            else
                j->dir_made = true;
        }
        pthread_mutex_unlock(&j->mu);
        if (r < 0)
            goto out;
    }
    s->fd = open(s->path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (s->fd < 0)
        r = -errno;
out:
    pthread_mutex_unlock(&s->mu);
    return r;
}

static int full_pwritev(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* file shorter than the record: treat as I/O error */
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int write_record(const sfpd_loc *loc, const sfpd_rec_meta *m, const void *frame);

static int disk_write(sfpd_tier *t, const sfpd_loc *loc, const sfpd_rec_meta *m, const void *frame)
{
    disk *d = (disk *)t;
    uint64_t t0 = sfpd_now_ns();
    int r = write_record(loc, m, frame);
    if (d->counted) {
        sfpd_stat_latency(SFPD_H_DISK_WRITE, sfpd_now_ns() - t0);
        if (r == 0) {
            sfpd_stat_inc(SFPD_C_SPILLS, 1);
            sfpd_stat_inc(SFPD_C_SPILL_BYTES, loc->frame_len);
        }
    }
    return r;
}

static int write_record(const sfpd_loc *loc, const sfpd_rec_meta *m, const void *frame)
{
    dseg *s = loc->handle;
    uint8_t hdr[REC_HDR + SFPD_TENSOR_NAME_MAX + 8] = {0};
    static const uint8_t zeros[8];
    struct iovec iov[3];
    uint64_t name_pad = pad8(m->key->name_len);
    uint64_t tail = loc->rec_len - loc->data_off - loc->frame_len;
    int r;

    if ((r = open_seg(s, true)) < 0)
        return r;
    if ((r = fault_hit(FAULT_WRITE)) < 0)
        return r;
    memcpy(hdr, REC_MAGIC, 8);
    put32(hdr + 8, 1);
    put32(hdr + 12, 0);
    put64(hdr + 16, loc->frame_len);
    put64(hdr + 24, m->key->step);
    put64(hdr + 32, m->seq);
    put32(hdr + 40, m->key->rank);
    hdr[44] = (uint8_t)m->key->name_len;
    hdr[45] = (uint8_t)(m->key->name_len >> 8);
    put64(hdr + 48, m->frame_checksum);
    put64(hdr + 64, m->count);
    put32(hdr + 72, m->dtype);
    hdr[76] = m->mbits;
    hdr[77] = m->ebits;
    hdr[78] = m->coder;
    memcpy(hdr + REC_HDR, m->key->name, m->key->name_len);
    put64(hdr + 56, hdr_checksum(hdr, m->key->name, m->key->name_len));
    iov[0].iov_base = hdr;
    iov[0].iov_len = REC_HDR + name_pad;
    iov[1].iov_base = (void *)frame;
    iov[1].iov_len = loc->frame_len;
    iov[2].iov_base = (void *)zeros;
    iov[2].iov_len = tail;
    return full_pwritev(s->fd, iov, tail ? 3 : 2, loc->off);
}

static int disk_read(sfpd_tier *t, const sfpd_loc *loc, void *buf)
{
    disk *d = (disk *)t;
    dseg *s = loc->handle;
    uint64_t t0 = sfpd_now_ns();
    int r;
    if ((r = open_seg(s, false)) == 0 && (r = fault_hit(FAULT_READ)) == 0)
        r = full_pread(s->fd, buf, loc->frame_len, loc->off + loc->data_off);
    if (d->counted) {
        sfpd_stat_latency(SFPD_H_DISK_READ, sfpd_now_ns() - t0);
        if (r == 0) {
            sfpd_stat_inc(SFPD_C_DISK_READS, 1);
            sfpd_stat_inc(SFPD_C_DISK_READ_BYTES, loc->frame_len);
        }
    }
    return r;
}

static int disk_kill(sfpd_tier *t, const sfpd_loc *loc)
{
    dseg *s = loc->handle;
    uint8_t flags[4];
    struct iovec iov = {flags, 4};
    int r;
    (void)t;
    if ((r = open_seg(s, false)) < 0)
        return r;
    put32(flags, REC_DEAD);
    return full_pwritev(s->fd, &iov, 1, loc->off + 12);
}

/* ---------------------------------------------------------------- adopt */

static int unhex(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    if (n == 0 || n % 2 || n / 2 >= cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1 || v == 0)
            return -1;
        out[i] = (char)v;
    }
    out[n / 2] = 0;
    return 0;
}

/* Inverse of b64_encode; only canonical encodings of NUL-free ids pass. */
static int unb64(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s), o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    char check[4 * (SFPD_JOB_ID_MAX / 3 + 1) + 1];
    if (n == 0 || n % 4 == 1 || n > sizeof(check) - 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(b64url, s[i]);
        if (!s[i] || !c)
            return -1;
        acc = acc << 6 | (uint32_t)(c - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap || ((acc >> bits) & 0xff) == 0)
                return -1;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = 0;
    b64_encode((const unsigned char *)out, o, check);
    return strcmp(check, s) == 0 ? 0 : -1;
}

static void adopt_segment(disk *d, djob *j, uint32_t id, const char *job_id,
                          sfpd_adopt_fn fn, void *arg)
{
    dseg *s = seg_new(j, id);
    struct stat st;
    uint64_t off = 0, kept = 0, resyncs = 0;

    if (!s)
        return;
    s->sealed = true;
    s->fd = open(s->path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0 || fstat(s->fd, &st) < 0) {
        sfpd_warn("disk: cannot open %s: %s", s->path, strerror(errno));
        seg_free(s, false, NULL);
        return;
    }
    s->size = (uint64_t)st.st_size;
    d->used += s->size;
    while (off + REC_HDR <= s->size) {
        uint8_t hdr[REC_HDR];
        char name[SFPD_TENSOR_NAME_MAX + 1];
        uint64_t flen, data_off, rec;
        uint16_t nlen;
        sfpd_key key;
        sfpd_loc loc;

        if (full_pread(s->fd, hdr, REC_HDR, off) < 0)
            break;
        nlen = (uint16_t)(hdr[44] | hdr[45] << 8);
        flen = get64(hdr + 16);
        if (memcmp(hdr, REC_MAGIC, 8) != 0 || get32(hdr + 8) != 1 || nlen == 0 ||
            nlen > SFPD_TENSOR_NAME_MAX || flen > s->size ||
            full_pread(s->fd, name, nlen, off + REC_HDR) < 0 ||
            hdr_checksum(hdr, name, nlen) != get64(hdr + 56)) {
            /* damaged or hole: look for the next record at 8-byte steps */
            off += 8;
            resyncs++;
            continue;
        }
        data_off = REC_HDR + pad8(nlen);
        rec = pad8(data_off + flen);
        if (off + data_off + flen > s->size)
            break;
        if (!(get32(hdr + 12) & REC_DEAD)) {
            sfpd_rec_meta meta;
            memset(&key, 0, sizeof(key));
            key.rank = get32(hdr + 40);
            key.step = get64(hdr + 24);
            key.name_len = nlen;
            memcpy(key.name, name, nlen);
            meta.key = &key;
            meta.seq = get64(hdr + 32);
            meta.frame_checksum = get64(hdr + 48);
            meta.count = get64(hdr + 64);
            meta.dtype = get32(hdr + 72);
            meta.mbits = hdr[76];
            meta.ebits = hdr[77];
            meta.coder = hdr[78];
            loc.handle = s;
            loc.off = off;
            loc.rec_len = rec;
            loc.data_off = (uint32_t)data_off;
            loc.frame_len = flen;
            s->live++;
            if (fn(arg, job_id, j->owner, j, &meta, &loc) != 0)
                s->live--;
            else
                kept++;
        }
        off += rec;
    }
    if (resyncs)
        sfpd_warn("disk: %s: skipped %llu damaged 8-byte units", s->path, (unsigned long long)resyncs);
    if (s->live == 0)
        seg_free(s, true, NULL);
    (void)kept;
}

static int disk_adopt(sfpd_tier *t, sfpd_adopt_fn fn, void *arg)
{
    disk *d = (disk *)t;
    DIR *top = opendir(d->dir);
    struct dirent *e;

    if (!top)
        return -errno;
    while ((e = readdir(top))) {
        char job_id[SFPD_JOB_ID_MAX + 1];
        unsigned owner;
        int n = 0;
        djob *j;
        DIR *jd;
        struct dirent *f;

        if (sscanf(e->d_name, "%u%n", &owner, &n) != 1 || n == 0 ||
            (e->d_name[n] == '-' ? unhex(e->d_name + n + 1, job_id, sizeof(job_id))
             : e->d_name[n] == '_' ? unb64(e->d_name + n + 1, job_id, sizeof(job_id))
                                   : -1) < 0)
            continue;
        j = job_new(d, job_id, owner);
        if (!j)
            break;
        if (strcmp(j->dir + strlen(d->dir) + 1, e->d_name) != 0) {
            /* not the canonical name of its id: not ours, leave it alone */
            sfpd_list_remove(&j->link);
            job_release(j);
            continue;
        }
        j->dir_made = true;
        jd = opendir(j->dir);
        if (jd) {
            while ((f = readdir(jd))) {
                unsigned id;
                char tail[8];
                if (sscanf(f->d_name, "seg-%8x.sf%1s", &id, tail) == 2 && strcmp(tail, "s") == 0) {
                    adopt_segment(d, j, id, job_id, fn, arg);
                    if (id + 1 > j->next_id)
                        j->next_id = id + 1;
                }
            }
            closedir(jd);
        }
        if (sfpd_list_empty(&j->segs)) {
            /* nothing live: the directory goes once its dead segments are
             * unlinked (those unlinks may still be queued) */
            j->closed = true;
            j->delete_dir = true;
            sfpd_list_remove(&j->link);
            if (j->unlinks == 0)
                job_release(j);
        }
    }
    closedir(top);
    return 0;
}

static uint64_t disk_used(const sfpd_tier *t) { return ((const disk *)t)->used; }

static void disk_configure(sfpd_tier *t, const sfpd_config *cfg)
{
    t->budget = cfg->disk_budget;
    ((disk *)t)->segment_size = cfg->segment_size;
}

static void disk_destroy(sfpd_tier *t)
{
    disk *d = (disk *)t;
    if (!d)
        return;
    while (!sfpd_list_empty(&d->jobs))
        disk_job_close(t, sfpd_container_of(d->jobs.next, djob, link), false);
    sfpd_free(d->dir);
    sfpd_free(d);
}

static const sfpd_tier_ops disk_ops = {
    .name = "disk",
    .job_open = disk_job_open,
    .job_close = disk_job_close,
    .reserve = disk_reserve,
    .release = disk_release,
    .write = disk_write,
    .read = disk_read,
    .kill = disk_kill,
    .adopt = disk_adopt,
    .used = disk_used,
    .configure = disk_configure,
    .destroy = disk_destroy,
};

int sfpd_tier_disk_open(uv_loop_t *loop, const char *dir, uint64_t budget, uint64_t segment_size,
                        bool counted, sfpd_tier **out)
{
    disk *d = sfpd_calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->dir = sfpd_strdup(dir);
    if (!d->dir) {
        sfpd_free(d);
        return -ENOMEM;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int r = -errno;
        sfpd_free(d->dir);
        sfpd_free(d);
        return r;
    }
    fault_setup();
    d->loop = loop;
    d->base.ops = &disk_ops;
    d->base.budget = budget;
    d->segment_size = segment_size;
    d->counted = counted;
    sfpd_list_init(&d->jobs);
    *out = &d->base;
    return 0;
}

int sfpd_tier_disk_create(uv_loop_t *loop, const sfpd_config *cfg, sfpd_tier **out)
{
    int r = sfpd_tier_disk_open(loop, cfg->spill_dir, cfg->disk_budget, cfg->segment_size, true, out);
    if (r < 0)
        sfpd_err("cannot open spill directory %s: %s", cfg->spill_dir, strerror(-r));
    return r;
}
