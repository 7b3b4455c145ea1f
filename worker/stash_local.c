/*
 * stash_local.c - in-process stash: one libsfp frame per key in a small
 * table (a training step keeps a handful of keys live). A put encodes into
 * one scratch buffer (the frame bound of the largest tensor) and keeps a
 * copy of the frame's real size, so the memory held is what the frames
 * take (plus at most a quarter of headroom). Buffers are kept across steps
 * and only grow, and a tensor gets back its buffer of the step before, so
 * steady state does no allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "stash.h"

typedef struct slot {
    int used;
    sfpw_stash_key key;
    size_t n;        /* values                   */
    int raw;         /* raw FP32, no frame       */
    size_t len;      /* bytes used in buf        */
    size_t cap;
    unsigned char *buf;
} slot;

typedef struct local {
    sfpw_stash base;
    size_t nslots;
    slot *slots;
    unsigned char *scratch;  /* encode target */
    size_t scratch_cap;
    size_t held, peak;       /* bytes of slot buffers: now, largest */
} local;

static int key_eq(const sfpw_stash_key *a, const sfpw_stash_key *b)
{
    return a->job == b->job && a->rank == b->rank && a->step == b->step &&
           a->tensor == b->tensor;
}

static slot *find(local *l, const sfpw_stash_key *k)
{
    for (size_t i = 0; i < l->nslots; i++)
        if (l->slots[i].used && key_eq(&l->slots[i].key, k))
            return &l->slots[i];
    return NULL;
}

/*
 * A slot for key. A tensor gets back the slot it had in the step before
 * (same tensor id), whose buffer already fits its frames: a step's puts
 * then neither grow nor move a buffer, and touch no fresh page (taking
 * the largest free buffer instead handed each step's tensors different
 * buffers, which grew and moved for many steps). Another tensor takes the
 * unused slot with the largest buffer, or a new one.
 */
static slot *free_slot(local *l, const sfpw_stash_key *key)
{
    slot *best = NULL;
    for (size_t i = 0; i < l->nslots; i++) {
        slot *s = &l->slots[i];
        if (s->used)
            continue;
        if (s->buf && s->key.tensor == key->tensor && s->key.rank == key->rank &&
            s->key.job == key->job)
            return s;
        if (!best || s->cap > best->cap)
            best = s;
    }
    if (best)
        return best;
    size_t nn = l->nslots ? 2 * l->nslots : 16;
    slot *ns = realloc(l->slots, nn * sizeof *ns);
    if (!ns)
        return NULL;
    memset(ns + l->nslots, 0, (nn - l->nslots) * sizeof *ns);
    l->slots = ns;
    best = &ns[l->nslots];
    l->nslots = nn;
    return best;
}

/* Grows s to hold need bytes (at most bound: the frame bound). A frame's
 * size moves from step to step with its zeros and widths, so a slot grows
 * with a quarter of headroom: growing by exactly what each put needs made
 * the first epoch realloc (and fault in fresh pages) every few steps. */
static int reserve(local *l, slot *s, size_t need, size_t bound)
{
    if (s->cap >= need)
        return 0;
    if (need + need / 4 < bound)
        need += need / 4;
    else if (bound > need)
        need = bound;
    unsigned char *nb = realloc(s->buf, need);
    if (!nb)
        return SFP_ENOMEM;
    l->held += need - s->cap;
    if (l->held > l->peak)
        l->peak = l->held;
    s->buf = nb;
    s->cap = need;
    return 0;
}

static int put_frame(sfpw_stash *st, const sfpw_stash_key *key, const float *data,
                     size_t n, const sfp_params *p, size_t *frame_bytes,
                     sfp_qstats *stats, float *qout)
{
    local *l = st->impl;
    if (find(l, key))
        return SFPW_STASH_EDUP;
    slot *s = free_slot(l, key);
    if (!s)
        return SFP_ENOMEM;
    size_t len = n * sizeof(float);
    int rc;
    if (p) {
        size_t bound = sfp_frame_bound(n, p);
        if (bound == 0)
            return SFP_EINVAL;
        if (bound > l->scratch_cap) {
            unsigned char *nb = realloc(l->scratch, bound);
            if (!nb)
                return SFP_ENOMEM;
            l->scratch = nb;
            l->scratch_cap = bound;
        }
        if ((rc = sfp_encode_q(data, n, p, l->scratch, l->scratch_cap, &len, stats, qout)) ||
            (rc = reserve(l, s, len, bound)))
            return rc;
        memcpy(s->buf, l->scratch, len);
    } else {
        if ((rc = reserve(l, s, len, len)))
            return rc;
        memcpy(s->buf, data, len);
    }
    s->used = 1;
    s->key = *key;
    s->n = n;
    s->raw = p == NULL;
    s->len = len;
    if (frame_bytes)
        *frame_bytes = len;
    return 0;
}

static int l_put(sfpw_stash *st, const sfpw_stash_key *key, const float *data,
                 size_t n, const sfp_params *p, size_t *frame_bytes,
                 sfp_qstats *stats)
{
    return put_frame(st, key, data, n, p, frame_bytes, stats, NULL);
}

static int l_put_q(sfpw_stash *st, const sfpw_stash_key *key, float *data, size_t n,
                   const sfp_params *p, size_t *frame_bytes, sfp_qstats *stats)
{
    return put_frame(st, key, data, n, p, frame_bytes, stats, data);
}

static int l_get(sfpw_stash *st, const sfpw_stash_key *key, float *dst,
                 size_t n)
{
    local *l = st->impl;
    slot *s = find(l, key);
    if (!s)
        return SFPW_STASH_ENOKEY;
    if (s->n != n)
        return SFPW_STASH_ESIZE;
    if (s->raw) {
        memcpy(dst, s->buf, n * sizeof(float));
        return 0;
    }
    size_t got = 0;
    int rc = sfp_decode(s->buf, s->len, dst, n * sizeof(float), &got);
    if (rc)
        return rc;
    return got == n ? 0 : SFPW_STASH_ESIZE;
}

static int l_prefetch(sfpw_stash *st, const sfpw_stash_key *key)
{
    (void)st;
    (void)key;
    return 0;
}

static int l_drop(sfpw_stash *st, const sfpw_stash_key *key)
{
    slot *s = find(st->impl, key);
    if (s)
        s->used = 0;
    return 0;
}

const char *sfpw_stash_errstr(int err)
{
    switch (err) {
    case SFPW_STASH_ENOKEY: return "stash: no such key";
    case SFPW_STASH_EDUP: return "stash: key already stored";
    case SFPW_STASH_ESIZE: return "stash: size mismatch";
    case SFPW_STASH_ERETRY: return "stash: lost, step must run again";
    case SFPW_STASH_EDAEMON: return "stash: sfpd lost";
    default: return sfp_strerror(err);
    }
}

static const char *l_strerror(sfpw_stash *st, int err)
{
    (void)st;
    return sfpw_stash_errstr(err);
}

static void l_close(sfpw_stash *st)
{
    local *l = st->impl;
    for (size_t i = 0; i < l->nslots; i++)
        free(l->slots[i].buf);
    free(l->slots);
    free(l->scratch);
    free(l);
}

static size_t l_held_peak(sfpw_stash *st)
{
    local *l = st->impl;
    return l->peak + l->scratch_cap;
}

static const sfpw_stash_ops local_ops = {
    .name = "in-process",
    .put = l_put,
    .put_q = l_put_q,
    .get = l_get,
    .prefetch = l_prefetch,
    .drop = l_drop,
    .strerror = l_strerror,
    .close = l_close,
    .held_peak = l_held_peak,
};

int sfpw_stash_local_open(sfpw_stash **out)
{
    local *l = calloc(1, sizeof *l);
    if (!l)
        return SFP_ENOMEM;
    l->base.ops = &local_ops;
    l->base.impl = l;
    *out = &l->base;
    return 0;
}
