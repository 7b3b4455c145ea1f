/* net.c - the forward/backward engine; see net.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layer.h"
#include "net.h"

double sfpw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double sfpw_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One scratch buffer per process: measurement only, single-threaded. */
static unsigned char *measure_buf;
static size_t measure_cap;

int sfpw_measure_frame(const float *x, size_t n, const sfp_params *p,
                       sfp_coder c, size_t *len)
{
    sfp_params q = *p;
    q.coder = c;
    size_t need = sfp_frame_bound(n, &q);
    if (!need)
        return SFP_EINVAL;
    if (need > measure_cap) {
        unsigned char *nb = realloc(measure_buf, need);
        if (!nb)
            return SFP_ENOMEM;
        measure_buf = nb;
        measure_cap = need;
    }
    return sfp_encode(x, n, &q, measure_buf, measure_cap, len, NULL);
}

/* ------------------------------------------------------------------ state */

#define SAMPLE_MAX 16384
#define ALIGN 64

struct sfpw_net {
    const sfpw_model *m;
    int max_rows, L;
    int release;
    float momentum;               /* running statistics (0: the layer's)  */
    /* per value: forward buffer, buffer read in backward, gradient */
    float *fwd[SFPW_MAX_VALUES], *bwd[SFPW_MAX_VALUES], *grad[SFPW_MAX_VALUES];
    unsigned char bwd_read[SFPW_MAX_VALUES];   /* some backward reads it */
    float *slot_f[SFPW_MAX_LAYERS][SFPW_MAX_SLOTS];
    float *slot_b[SFPW_MAX_LAYERS][SFPW_MAX_SLOTS];
    unsigned char *arena;
    size_t arena_size;
    int foreign;                  /* arena belongs to an allocator       */
    size_t keep_size, release_size, stashed_bytes;
    float *scratch;
    float *W, *G, *buf;
    /* width-gradient samples per stashed tensor */
    int samp_rows[SFPW_MAX_TENSORS];
    float *samp_dn[SFPW_MAX_TENSORS], *samp_de[SFPW_MAX_TENSORS];
    float *samp_sn[SFPW_MAX_TENSORS], *samp_se[SFPW_MAX_TENSORS];
    size_t samp_cap[SFPW_MAX_TENSORS];
    float *samp_x, *samp_q;
    size_t samp_xcap;
    /* --coder auto on stashes: each tensor's coder */
    sfpw_pick pick[SFPW_MAX_TENSORS];
    /* the pass in progress */
    const sfpw_pass *ps;
    sfpw_pass_out *po;
    int rows, layer;
    int rc;
    unsigned char fetched[SFPW_MAX_VALUES], written[SFPW_MAX_VALUES];
    unsigned char slots_fetched[SFPW_MAX_LAYERS];
    double t_fwd[SFPW_MAX_LAYERS], t_bwd[SFPW_MAX_LAYERS]; /* seconds, all passes */
};

static int bwd_time(const sfpw_net *n, int layer)
{
    return 2 * n->L - layer;
}

static size_t al(size_t b)
{
    return (b + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

/* -------------------------------------------------------------- the plan */

typedef struct blk {
    size_t size, off;
    int t0, t1;
    float **ptr;
} blk;

static int by_size(const void *a, const void *b)
{
    const blk *x = a, *y = b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : (x->t0 > y->t0) - (x->t0 < y->t0);
}

static int by_off(const void *a, const void *b)
{
    const blk *const *x = a, *const *y = b;
    return ((*x)->off > (*y)->off) - ((*x)->off < (*y)->off);
}

/* First fit of blocks (largest first) into one arena: returns its size. */
static size_t place_blocks(blk *b, int nb)
{
    qsort(b, (size_t)nb, sizeof *b, by_size);
    blk **live = malloc(sizeof(blk *) * (size_t)(nb ? nb : 1));
    size_t total = 0;
    if (!live)
        return 0;
    for (int i = 0; i < nb; i++) {
        int k = 0;
        for (int j = 0; j < i; j++)
            if (b[j].t0 <= b[i].t1 && b[i].t0 <= b[j].t1)
                live[k++] = &b[j];
        qsort(live, (size_t)k, sizeof *live, by_off);
        size_t off = 0;
        for (int j = 0; j < k; j++) {
            if (live[j]->off >= off + b[i].size)
                break;
            if (live[j]->off + live[j]->size > off)
                off = live[j]->off + live[j]->size;
        }
        b[i].off = off;
        if (off + b[i].size > total)
            total = off + b[i].size;
    }
    free(live);
    return total;
}

/* The first and last backward times at which value v is read (by its
 * readers' backward; *last -1 if none), not counting recomputations. */
static void value_reads(const sfpw_net *n, int v, int *first, int *last)
{
    const sfpw_model *m = n->m;
    int bfirst = 2 * n->L + 2, blast = -1;
    for (int i = 0; i < n->L; i++) {
        const sfpw_layer *l = &m->layers[i];
        for (int j = 0; j < l->nin; j++)
            if (l->in[j] == v && (l->needs & (SFPW_NEEDS_IN0 << j))) {
                int t = bwd_time(n, i);
                bfirst = t < bfirst ? t : bfirst;
                blast = t > blast ? t : blast;
            }
    }
    if (m->values[v].producer >= 0 && sfpw_layer_reads_out(&m->layers[m->values[v].producer])) {
        int t = bwd_time(n, m->values[v].producer);
        bfirst = t < bfirst ? t : bfirst;
        blast = t > blast ? t : blast;
    }
    *first = bfirst;
    *last = blast;
}

/* Layer i's output is recomputed in backward (from its inputs and slots),
 * stood for by a tensor or rebuilt for a reader's recomputation. */
static int recomputed(const sfpw_model *m, int i)
{
    const sfpw_value *v = &m->values[m->layers[i].out];
    return v->rebuilt || (v->tensor >= 0 && m->tensors[v->tensor].kind == SFPW_TENSOR_RECOMP);
}

/*
 * need[i]: when layer i's inputs and slots must be back in backward: its
 * own backward, or earlier when its output is recomputed, at the first
 * read of that output (by a reader's backward or by the recomputation of
 * a reader's output). Readers come later in the model, so from the end.
 */
static void bwd_need(const sfpw_net *n, int *need)
{
    const sfpw_model *m = n->m;
    for (int i = n->L - 1; i >= 0; i--) {
        const int out = m->layers[i].out;
        int first = bwd_time(n, i), rf, rl;
        if (recomputed(m, i)) {
            value_reads(n, out, &rf, &rl);
            for (int k = i + 1; k < n->L; k++)
                for (int j = 0; j < m->layers[k].nin; j++)
                    if (m->layers[k].in[j] == out && recomputed(m, k) && need[k] < rf)
                        rf = need[k];
            first = rf < first ? rf : first;
        }
        need[i] = first;
    }
}

/*
 * The blocks of one step and their lifetimes: forward of layer i at time i,
 * the loss at L, backward of layer i at 2L - i, the end at 2L + 1. Writes
 * into b (room for 3 * nvalues + 2 * nlayers * SFPW_MAX_SLOTS blocks).
 */
static int plan_blocks(sfpw_net *n, int release, blk *b)
{
    const sfpw_model *m = n->m;
    const int L = n->L;
    const size_t R = (size_t)n->max_rows;
    int nb = 0, need[SFPW_MAX_LAYERS];
    bwd_need(n, need);
    for (int v = 0; v < m->nvalues; v++) {
        const sfpw_value *val = &m->values[v];
        int prod = val->producer < 0 ? 0 : val->producer;
        int flast = prod, glo = 2 * L + 1, bfirst, blast;
        int maxcons = -1;
        value_reads(n, v, &bfirst, &blast);
        for (int i = 0; i < L; i++) {
            const sfpw_layer *l = &m->layers[i];
            for (int j = 0; j < l->nin; j++) {
                if (l->in[j] != v)
                    continue;
                if (i > flast)
                    flast = i;
                if (i > maxcons)
                    maxcons = i;
                /* an input of a recomputed output is read when it is */
                if (!((l->needs & (SFPW_NEEDS_IN0 << j)) || recomputed(m, i)))
                    continue;
                bfirst = need[i] < bfirst ? need[i] : bfirst;
                blast = need[i] > blast ? need[i] : blast;
            }
        }
        if (v == m->output)
            flast = L;
        n->bwd_read[v] = blast >= 0;
        size_t bytes = al(sizeof(float) * R * val->n);
        if (blast >= 0 && release && (val->tensor >= 0 || val->rebuilt)) {
            b[nb++] = (blk){ bytes, 0, prod, flast, &n->fwd[v] };
            b[nb++] = (blk){ bytes, 0, bfirst, blast, &n->bwd[v] };
        } else {
            b[nb++] = (blk){ bytes, 0, prod, blast > flast ? blast : flast, &n->fwd[v] };
        }
        /* the gradient: from the backward of the last consumer (the loss
         * for the output) to the producer's backward (the end for the input) */
        glo = v == m->output ? L : bwd_time(n, maxcons < 0 ? 0 : maxcons);
        int ghi = val->producer < 0 ? 2 * L + 1 : bwd_time(n, val->producer);
        if (maxcons >= 0 || v == m->output)
            b[nb++] = (blk){ bytes, 0, glo, ghi, &n->grad[v] };
    }
    for (int i = 0; i < L; i++) {
        const sfpw_layer *l = &m->layers[i];
        for (int s = 0; s < l->nslots; s++) {
            size_t bytes = al(sizeof(float) * (R * l->slot_n[s] + l->slot_fixed[s]));
            if (release) {
                b[nb++] = (blk){ bytes, 0, i, i, &n->slot_f[i][s] };
                b[nb++] = (blk){ bytes, 0, need[i], bwd_time(n, i), &n->slot_b[i][s] };
            } else {
                b[nb++] = (blk){ bytes, 0, i, bwd_time(n, i), &n->slot_f[i][s] };
            }
        }
    }
    return nb;
}

static size_t plan_size(sfpw_net *n, int release, blk *b)
{
    int nb = plan_blocks(n, release, b);
    return place_blocks(b, nb);
}

/* Plans the arena for the mode and points every buffer into base. */
static void plan_apply(sfpw_net *n, int release, unsigned char *base, blk *b)
{
    int nb = plan_blocks(n, release, b);
    place_blocks(b, nb);
    memset(n->fwd, 0, sizeof n->fwd);
    memset(n->bwd, 0, sizeof n->bwd);
    memset(n->grad, 0, sizeof n->grad);
    memset(n->slot_f, 0, sizeof n->slot_f);
    memset(n->slot_b, 0, sizeof n->slot_b);
    for (int i = 0; i < nb; i++)
        *b[i].ptr = (float *)(void *)(base + b[i].off);
    for (int v = 0; v < n->m->nvalues; v++)
        if (!n->bwd[v])
            n->bwd[v] = n->fwd[v];
    for (int i = 0; i < n->L; i++)
        for (int s = 0; s < SFPW_MAX_SLOTS; s++)
            if (!n->slot_b[i][s])
                n->slot_b[i][s] = n->slot_f[i][s];
    n->release = release;
}

static blk *plan_scratch(const sfpw_model *m)
{
    return malloc(sizeof(blk) * (size_t)(3 * m->nvalues + 2 * m->nlayers * SFPW_MAX_SLOTS + 1));
}

/* ------------------------------------------------------------- lifecycle */

void sfpw_net_destroy(sfpw_net **pn)
{
    if (!pn || !*pn)
        return;
    sfpw_net *n = *pn;
    if (!n->foreign)
        free(n->arena);
    for (int t = 0; t < SFPW_MAX_TENSORS; t++) {
        free(n->samp_dn[t]);
        free(n->samp_de[t]);
        free(n->samp_sn[t]);
        free(n->samp_se[t]);
    }
    free(n->scratch);
    free(n->W);
    free(n->G);
    free(n->buf);
    free(n->samp_x);
    free(n->samp_q);
    free(n);
    *pn = NULL;
}

static int alloc_arena(sfpw_net *n, int release)
{
    blk *b = plan_scratch(n->m);
    if (!b)
        return SFP_ENOMEM;
    size_t size = release ? n->release_size : n->keep_size;
    unsigned char *a = aligned_alloc(ALIGN, size ? size : ALIGN);
    if (!a) {
        free(b);
        return SFP_ENOMEM;
    }
    if (!n->foreign)
        free(n->arena);
    n->arena = a;
    n->arena_size = size;
    n->foreign = 0;
    plan_apply(n, release, a, b);
    free(b);
    return 0;
}

int sfpw_net_create(sfpw_net **out, const sfpw_model *m, int max_rows)
{
    if (max_rows <= 0 || m->nlayers <= 0)
        return SFP_EINVAL;
    sfpw_net *n = calloc(1, sizeof *n);
    if (!n)
        return SFP_ENOMEM;
    n->m = m;
    n->max_rows = max_rows;
    n->L = m->nlayers;
    size_t scratch = 1;
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        size_t s = l->scratch * (size_t)max_rows + l->scratch_fixed;
        scratch = s > scratch ? s : scratch;
    }
    for (int t = 0; t < m->ntensors; t++)
        if (m->tensors[t].kind == SFPW_TENSOR_ACT)
            n->stashed_bytes += sizeof(float) * m->tensors[t].n * (size_t)max_rows;
    blk *b = plan_scratch(m);
    n->scratch = malloc(sizeof(float) * scratch);
    n->W = calloc(m->nparams ? m->nparams : 1, sizeof(float));
    n->G = calloc(m->nparams ? m->nparams : 1, sizeof(float));
    n->buf = calloc(m->nbuffers ? m->nbuffers : 1, sizeof(float));
    if (!b || !n->scratch || !n->W || !n->G || !n->buf) {
        free(b);
        goto fail;
    }
    n->keep_size = plan_size(n, 0, b);
    n->release_size = plan_size(n, 1, b);
    free(b);
    if (alloc_arena(n, 0))
        goto fail;
    *out = n;
    return 0;
fail:
    sfpw_net_destroy(&n);
    return SFP_ENOMEM;
}

int sfpw_net_set_release(sfpw_net *n)
{
    return n->release ? 0 : alloc_arena(n, 1);
}

int sfpw_net_place(sfpw_net *n, void *(*alloc)(void *ctx, size_t bytes), void *ctx)
{
    if (n->foreign)
        return 1;
    unsigned char *blk0 = alloc(ctx, n->keep_size ? n->keep_size : ALIGN);
    if (!blk0)
        return 0;
    blk *b = plan_scratch(n->m);
    if (!b)
        return 0;
    free(n->arena);
    n->arena = blk0;
    n->arena_size = n->keep_size;
    n->foreign = 1;
    plan_apply(n, 0, blk0, b);
    free(b);
    return 1;
}

void sfpw_net_sizes(const sfpw_net *n, size_t *keep, size_t *release, size_t *stashed)
{
    if (keep)
        *keep = n->keep_size;
    if (release)
        *release = n->release_size;
    if (stashed)
        *stashed = n->stashed_bytes;
}

size_t sfpw_net_arena_bytes(const sfpw_net *n)
{
    return n->arena_size;
}

float *sfpw_net_weights(sfpw_net *n)
{
    return n->W;
}

float *sfpw_net_grads(sfpw_net *n)
{
    return n->G;
}

float *sfpw_net_buffers(sfpw_net *n)
{
    return n->m->nbuffers ? n->buf : NULL;
}

float *sfpw_net_value(sfpw_net *n, int v, int grad)
{
    if (v < 0 || v >= n->m->nvalues)
        return NULL;
    return grad ? n->grad[v] : n->fwd[v];
}

void sfpw_net_profile(const sfpw_net *n, FILE *f)
{
    double tot = 0;
    for (int i = 0; i < n->L; i++)
        tot += n->t_fwd[i] + n->t_bwd[i];
    fprintf(f, "  %-10s %9s %9s %6s\n", "kind", "fwd s", "bwd s", "share");
    for (int k = 0; sfpw_layer_kinds[k]; k++) {
        double tf = 0, tb = 0;
        int seen = 0;
        for (int i = 0; i < n->L; i++)
            if (n->m->layers[i].ops == sfpw_layer_kinds[k]) {
                tf += n->t_fwd[i];
                tb += n->t_bwd[i];
                seen = 1;
            }
        if (seen)
            fprintf(f, "  %-10s %9.3f %9.3f %5.1f%%\n", sfpw_layer_kinds[k]->kind, tf, tb,
                    tot > 0 ? 100 * (tf + tb) / tot : 0);
    }
}

/* ------------------------------------------------------- stashed tensors */

/*
 * Over cnt values, with the anchor forced to the step's:
 *   d  = Q(x; k1, e1) - Q(x; k0, e0)                 (first-order term)
 *   sq = ((Q(x; k1, e1) - x)^2 - (Q(x; k0, e0) - x)^2) / 2  (second-order)
 */
static int width_diff(const float *x, float *d, float *sq, float *tmp,
                      size_t cnt, const sfp_params *base, unsigned k0,
                      unsigned e0, unsigned k1, unsigned e1, int anchor)
{
    sfp_params p = *base;
    p.anchor = anchor;
    p.mbits = k1;
    p.ebits = e1;
    int rc = sfp_quantize(d, x, cnt, &p, NULL);
    if (rc)
        return rc;
    p.mbits = k0;
    p.ebits = e0;
    rc = sfp_quantize(tmp, x, cnt, &p, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < cnt; i++) {
        float hi = d[i] - x[i], lo = tmp[i] - x[i];
        sq[i] = 0.5f * (hi * hi - lo * lo);
        d[i] -= tmp[i];
    }
    return 0;
}

/*
 * What the encoder would report (zeros, anchor) for values already on their
 * grid, for stashes that return before encoding: one pass over the bits,
 * cheaper than libsfp's statistics scan. The anchor of on-grid values is
 * the exponent field of the largest magnitude. Returns 1 when that does not
 * hold (all zeros, or a subnormal largest value): ask libsfp then.
 */
static int grid_stats(const float *a, size_t n, sfp_qstats *st)
{
    const uint32_t *u = (const uint32_t *)(const void *)a;
    uint32_t mx = 0;
    uint64_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t m = u[i] & 0x7fffffffu;
        mx = m > mx ? m : mx;
        zeros += m == 0;
    }
    if ((mx >> 23) == 0)
        return 1;
    memset(st, 0, sizeof *st);
    st->count = n;
    st->zeros = zeros;
    st->anchor = (int)(mx >> 23);
    return 0;
}

/* Sample buffers of tensor t for up to budget values (at least one row). */
static int samples_ready(sfpw_net *n, int t, size_t budget)
{
    size_t dim = n->m->tensors[t].n;
    size_t cap = dim > budget ? dim : budget;
    if (n->samp_cap[t] >= cap)
        return 0;
    free(n->samp_dn[t]);
    free(n->samp_de[t]);
    free(n->samp_sn[t]);
    free(n->samp_se[t]);
    n->samp_cap[t] = 0;
    n->samp_dn[t] = malloc(sizeof(float) * cap);
    n->samp_de[t] = malloc(sizeof(float) * cap);
    n->samp_sn[t] = malloc(sizeof(float) * cap);
    n->samp_se[t] = malloc(sizeof(float) * cap);
    if (cap > n->samp_xcap) {
        free(n->samp_x);
        free(n->samp_q);
        n->samp_x = malloc(sizeof(float) * cap);
        n->samp_q = malloc(sizeof(float) * cap);
        n->samp_xcap = cap;
    }
    if (!n->samp_dn[t] || !n->samp_de[t] || !n->samp_sn[t] || !n->samp_se[t] ||
        !n->samp_x || !n->samp_q)
        return SFP_ENOMEM;
    n->samp_cap[t] = cap;
    return 0;
}

static sfpw_stash_key key_of(const sfpw_pass *ps, int t)
{
    sfpw_stash_key key = ps->key;
    key.tensor = (uint32_t)t;
    return key;
}

/*
 * A tensor stashed as is (no widths): cnt floats at a, counted as values
 * values (statistics: the floats themselves; a layer's codes: the input
 * values they stand for).
 */
static int raw_produced(sfpw_net *n, int t, float *a, size_t cnt, double values)
{
    const sfpw_pass *ps = n->ps;
    sfpw_pass_out *out = n->po;
    if (!ps->stash) {
        out->bytes[t] += (double)cnt * sizeof(float);
        out->values[t] += values;
        return 0;
    }
    double t0 = sfpw_now();
    sfpw_stash_key key = key_of(ps, t);
    size_t bytes = 0;
    int rc = ps->st->ops->put(ps->st, &key, a, cnt, NULL, &bytes, NULL);
    if (rc)
        return rc;
    out->bytes[t] += (double)bytes;
    for (int c = 0; ps->measure_coders && c < SFPW_NCODERS; c++)
        out->coder_bytes[c][t] += (double)bytes;
    out->values[t] += values;
    out->t_stash += sfpw_now() - t0;
    return 0;
}

/*
 * --coder auto on stashes: when tensor t's pick is due (sfpw_pick: the
 * first stash after a reset, every multiple of SFPW_PICK_STEPS steps, a new
 * exponent width; the mantissa width, which QM draws afresh every step,
 * leaves it), t's values (a, on their grid, just stashed) are coded with
 * Gecko and with rANS and the smaller frame's coder is t's until the next
 * check. libsfp's auto request would code both on every put; activations
 * keep their character from step to step, so a check now and then finds
 * the same.
 */

void sfpw_net_coder_reset(sfpw_net *n)
{
    memset(n->pick, 0, sizeof n->pick);
}

static int pick_coder(sfpw_net *n, int t, const float *a, size_t cnt, const sfp_params *p)
{
    size_t lg = 0, lr = 0;
    int rc;
    if ((rc = sfpw_measure_frame(a, cnt, p, SFP_CODER_GECKO, &lg)) ||
        (rc = sfpw_measure_frame(a, cnt, p, SFP_CODER_RANS, &lr)))
        return rc;
    sfpw_pick_set(&n->pick[t], lr < lg ? SFP_CODER_RANS : SFP_CODER_GECKO, n->ps->key.step,
                  p->ebits);
    return 0;
}

/*
 * Puts stashed tensor t (rows x dim values in a, dim = its values per
 * image) on its grid, prepares its width-gradient sample and stashes it.
 */
static int act_produced(sfpw_net *n, int t, float *a, int rows)
{
    const sfpw_pass *ps = n->ps;
    sfpw_pass_out *out = n->po;
    const sfpw_model *m = n->m;
    const sfpw_tensor *T = &m->tensors[t];
    if (T->kind == SFPW_TENSOR_STATS) {
        const size_t cnt = (size_t)rows * T->n + T->fixed;
        return raw_produced(n, t, a, cnt, (double)cnt);
    }
    if (T->kind == SFPW_TENSOR_RECOMP) { /* rebuilt in backward: nothing stored */
        out->values[t] += (double)rows * T->n;
        return 0;
    }
    if (T->kind == SFPW_TENSOR_CODES) /* rows x the slot's words, for rows x n values */
        return raw_produced(n, t, a, (size_t)rows * m->layers[T->layer].slot_n[T->slot],
                            (double)rows * T->n);
    const size_t dim = T->n, cnt = (size_t)rows * dim;
    if (!ps->quantize) {
        out->bytes[t] += (double)cnt * sizeof(float);
        out->values[t] += (double)cnt;
        return 0;
    }
    double t0 = sfpw_now();
    const sfp_width *w = &ps->width[t];
    int srows = 0, rc;
    if (ps->want_grad) {
        size_t budget = ps->sample_budget ? ps->sample_budget : 4096;
        if (budget > SAMPLE_MAX && budget > dim)
            budget = dim > SAMPLE_MAX ? dim : SAMPLE_MAX;
        if ((rc = samples_ready(n, t, budget)))
            return rc;
        srows = (int)(budget / dim);
        if (srows < 1)
            srows = 1;
        if (srows > rows)
            srows = rows;
        memcpy(n->samp_x, a, sizeof(float) * srows * dim);
    }
    n->samp_rows[t] = srows;
    sfp_params p = ps->base;
    p.mbits = w->k;
    p.ebits = w->e;
    p.anchor = -1;
    if (T->value >= 0 && m->values[T->value].producer >= 0) {
        const sfpw_layer *l = &m->layers[m->values[T->value].producer];
        int tin = l->ops->subset ? m->values[l->in[0]].tensor : -1;
        if (tin >= 0) {
            /* A max-pool output is a subset of its on-grid input: same
             * anchor, same grid. Storing it with more bits than its
             * producer's only stores zero bits, so cap the container there
             * (lossless). */
            const sfp_width *pw = &ps->width[tin];
            if (pw->k < p.mbits)
                p.mbits = pw->k;
            if (pw->e < p.ebits)
                p.ebits = pw->e;
        }
    }
    /* --coder auto: the tensor's last pick (Gecko before the first) */
    const int pick = ps->stash && ps->base.coder == SFP_CODER_AUTO;
    if (pick)
        p.coder = sfpw_pick_coder(&n->pick[t], SFP_CODER_GECKO);
    /* Statistics (zeros, anchor) come from the encoder when stashing: the
     * in-place quantization then takes libsfp's faster no-statistics scan. */
    sfp_qstats st;
    memset(&st, 0, sizeof st);
    const int deferred = ps->stash && (ps->st->ops->flags & SFPW_STASH_DEFERRED);
    /* a stash that encodes in the caller's thread quantizes while encoding
     * (one pass over the tensor instead of two) */
    const int fold = ps->stash && !deferred && ps->st->ops->put_q;
    rc = fold ? 0 : sfp_quantize(a, a, cnt, &p, (!ps->stash && ps->want_grad) ? &st : NULL);
    if (!rc && deferred && grid_stats(a, cnt, &st))
        rc = sfp_quantize(a, a, cnt, &p, &st); /* on-grid values: unchanged */
    if (rc)
        return rc;
    double t1 = sfpw_now();
    out->t_quant += t1 - t0;
    if (ps->stash) {
        sfpw_stash_key key = key_of(ps, t);
        size_t bytes = 0;
        rc = fold ? ps->st->ops->put_q(ps->st, &key, a, cnt, &p, &bytes, &st)
                  : ps->st->ops->put(ps->st, &key, a, cnt, &p, &bytes, &st);
        if (rc)
            return rc;
        out->bytes[t] += (double)bytes;
        for (int c = 0; ps->measure_coders && c < SFPW_NCODERS; c++) {
            size_t len;
            if ((rc = sfpw_measure_frame(a, cnt, &p, (sfp_coder)c, &len)))
                return rc;
            out->coder_bytes[c][t] += (double)len;
        }
        if (pick && sfpw_pick_due(&n->pick[t], ps->key.step, p.ebits) &&
            (rc = pick_coder(n, t, a, cnt, &p)))
            return rc;
        out->t_stash += sfpw_now() - t1;
    } else {
        out->bytes[t] += (double)cnt * sizeof(float);
    }
    out->zeros[t] += (double)st.zeros;
    if (srows) {
        /* bitlength-gradient samples, anchored like the stored tensor */
        double t2 = sfpw_now();
        size_t sc = (size_t)srows * dim;
        rc = width_diff(n->samp_x, n->samp_dn[t], n->samp_sn[t], n->samp_q, sc,
                        &p, w->k_lo, w->e, w->k_hi, w->e, st.anchor);
        if (!rc)
            rc = width_diff(n->samp_x, n->samp_de[t], n->samp_se[t], n->samp_q,
                            sc, &p, w->k, w->e_lo, w->k, w->e_hi, st.anchor);
        if (rc)
            return rc;
        out->t_quant += sfpw_now() - t2;
    }
    out->values[t] += (double)cnt;
    return 0;
}

static double dot_f(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double dot_sq(const float *g, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i] * b[i];
    return s;
}

/* g = dL/d(stashed tensor t), rows x n: its bitlength gradients. */
static void width_grad(sfpw_net *n, int t, const float *g)
{
    const sfpw_pass *ps = n->ps;
    if (t < 0 || !ps->want_grad || !ps->quantize || n->samp_rows[t] <= 0 ||
        n->m->tensors[t].kind != SFPW_TENSOR_ACT)
        return;
    sfpw_pass_out *out = n->po;
    size_t sc = (size_t)n->samp_rows[t] * n->m->tensors[t].n;
    double scale = (double)n->rows / n->samp_rows[t];
    out->gn[t] += scale * dot_f(g, n->samp_dn[t], sc);
    out->ge[t] += scale * dot_f(g, n->samp_de[t], sc);
    if (ps->fisher > 0) {
        out->gn[t] += scale * ps->fisher * dot_sq(g, n->samp_sn[t], sc);
        out->ge[t] += scale * ps->fisher * dot_sq(g, n->samp_se[t], sc);
    }
}

/* Gets stashed tensor t (cnt values) into dst and drops it. */
static int fetch(sfpw_net *n, int t, float *dst, size_t cnt)
{
    const sfpw_pass *ps = n->ps;
    double t0 = sfpw_now();
    sfpw_stash_key key = key_of(ps, t);
    int rc = ps->st->ops->get(ps->st, &key, dst, cnt);
    if (!rc)
        ps->st->ops->drop(ps->st, &key);
    n->po->t_stash += sfpw_now() - t0;
    return rc;
}

/* ----------------------------------------------------------------- hooks */

static int hook_slot_ready(sfpw_run *c, int i)
{
    sfpw_net *n = c->engine;
    const sfpw_layer *l = &n->m->layers[n->layer];
    int t = l->slot_tensor[i];
    if (t < 0)
        return 0;
    return act_produced(n, t, c->slot[i], c->rows);
}

static void hook_slot_grad(sfpw_run *c, int i, const float *g)
{
    sfpw_net *n = c->engine;
    width_grad(n, n->m->layers[n->layer].slot_tensor[i], g);
}

static void run_init(sfpw_net *n, const sfpw_layer *l, sfpw_run *c, int rows)
{
    memset(c, 0, sizeof *c);
    c->rows = rows;
    c->W = l->w_n ? n->W + l->w_off : NULL;
    c->b = l->b_n ? n->W + l->b_off : NULL;
    c->buf = l->nbuf ? n->buf + l->buf_off : NULL;
    c->momentum = n->momentum;
    c->scratch = n->scratch;
    c->slot_ready = hook_slot_ready;
    c->slot_grad = hook_slot_grad;
    c->engine = n;
}

/* --------------------------------------------------------------- forward */

static int run_forward(sfpw_net *n, const sfpw_pass *ps, const float *x,
                       int rows, int train, sfpw_pass_out *out)
{
    const sfpw_model *m = n->m;
    if (rows <= 0 || rows > n->max_rows)
        return SFP_EINVAL;
    n->ps = ps;
    n->po = out;
    n->rows = rows;
    memset(n->samp_rows, 0, sizeof n->samp_rows);
    memcpy(n->fwd[0], x, sizeof(float) * rows * m->in_dim);
    int rc = 0;
    if (m->values[0].tensor >= 0 && (rc = act_produced(n, m->values[0].tensor, n->fwd[0], rows)))
        return rc;
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        sfpw_run c;
        run_init(n, l, &c, rows);
        c.train = train;
        for (int j = 0; j < l->nin; j++)
            c.x[j] = n->fwd[l->in[j]];
        c.y = n->fwd[l->out];
        for (int s = 0; s < l->nslots; s++)
            c.slot[s] = n->slot_f[i][s];
        n->layer = i;
        double t0 = sfpw_now();
        rc = l->ops->forward(l, &c);
        if (rc)
            return rc;
        if (l->relu && !l->ops->fuses_relu)
            sfpw_relu_fwd(c.y, (size_t)rows * m->values[l->out].n);
        double dt = sfpw_now() - t0;
        out->t_compute += dt;
        n->t_fwd[i] += dt;
        /* the time of the slots' hooks is theirs, not compute's */
        int t = m->values[l->out].tensor;
        if (t >= 0 && (rc = act_produced(n, t, c.y, rows)))
            return rc;
    }
    return 0;
}

int sfpw_net_forward(sfpw_net *n, const sfpw_pass *ps, const float *x,
                     const uint8_t *y, int rows, float loss_scale,
                     sfpw_pass_out *out)
{
    int rc = run_forward(n, ps, x, rows, 1, out);
    if (rc)
        return rc;
    const sfpw_model *m = n->m;
    out->loss_sum += sfpw_softmax_xent(n->fwd[m->output], y, n->grad[m->output], rows,
                                       m->classes, loss_scale, &out->correct);
    return 0;
}

int sfpw_net_eval(sfpw_net *n, const sfpw_pass *ps, const float *x,
                  const uint8_t *y, int rows, uint64_t *correct)
{
    sfpw_pass_out tmp;
    memset(&tmp, 0, sizeof tmp);
    sfpw_pass p = *ps;
    p.stash = 0;
    p.want_grad = 0;
    int rc = run_forward(n, &p, x, rows, 0, &tmp);
    if (rc)
        return rc;
    *correct += sfpw_count_correct(n->fwd[n->m->output], y, rows, n->m->classes);
    return 0;
}

void sfpw_net_set_momentum(sfpw_net *n, float momentum)
{
    n->momentum = momentum > 0 && momentum <= 1 ? momentum : 0;
}

int sfpw_net_run(sfpw_net *n, const sfpw_pass *ps, const float *x, int rows)
{
    sfpw_pass_out tmp;
    memset(&tmp, 0, sizeof tmp);
    sfpw_pass p = *ps;
    p.stash = 0;
    p.want_grad = 0;
    return run_forward(n, &p, x, rows, 1, &tmp);
}

/* -------------------------------------------------------------- backward */

static int fetch_value(sfpw_net *n, int v);

/* Layer i's inputs back for backward, and a run of it over their and its
 * slots' backward buffers (to rebuild what its forward computed). */
static int rebuild_init(sfpw_net *n, int i, sfpw_run *c)
{
    const sfpw_layer *l = &n->m->layers[i];
    int rc;
    for (int j = 0; j < l->nin; j++)
        if ((rc = fetch_value(n, l->in[j])))
            return rc;
    run_init(n, l, c, n->rows);
    c->train = 1;
    for (int j = 0; j < l->nin; j++)
        c->x[j] = n->bwd[l->in[j]];
    for (int s = 0; s < l->nslots; s++)
        c->slot[s] = n->slot_b[i][s];
    return 0;
}

/* Brings layer i's stashed slots back and rebuilds its recomputed ones
 * (from its inputs, which its backward reads anyway; once per step). */
static int fetch_slots(sfpw_net *n, int i)
{
    const sfpw_model *m = n->m;
    const sfpw_layer *l = &m->layers[i];
    int rc, rebuild = 0;
    if (n->slots_fetched[i])
        return 0;
    for (int s = 0; s < l->nslots; s++) {
        int t = l->slot_tensor[s];
        if (t >= 0 && m->tensors[t].kind == SFPW_TENSOR_RECOMP)
            rebuild = 1;
        else if (t >= 0 && (rc = fetch(n, t, n->slot_b[i][s],
                                       (size_t)n->rows * l->slot_n[s] + l->slot_fixed[s])))
            return rc;
    }
    if (rebuild) {
        sfpw_run c;
        if ((rc = rebuild_init(n, i, &c)))
            return rc;
        double t0 = sfpw_now();
        for (int s = 0; s < l->nslots; s++) {
            int t = l->slot_tensor[s];
            if (t >= 0 && m->tensors[t].kind == SFPW_TENSOR_RECOMP)
                l->ops->recompute_slot(l, &c, s);
        }
        double dt = sfpw_now() - t0;
        n->po->t_compute += dt;
        n->t_bwd[i] += dt;
    }
    n->slots_fetched[i] = 1;
    return 0;
}

/*
 * Rebuilds recomputed value v into its backward buffer: its producer's
 * inputs and slots come back from the stash (where its own backward would
 * have fetched them) and its kind's recompute writes what forward wrote.
 */
static int recompute_value(sfpw_net *n, int v)
{
    const sfpw_model *m = n->m;
    const int i = m->values[v].producer;
    const sfpw_layer *l = &m->layers[i];
    sfpw_run c;
    int rc = rebuild_init(n, i, &c);
    if (rc || (rc = fetch_slots(n, i)))
        return rc;
    double t0 = sfpw_now();
    c.y = n->bwd[v];
    l->ops->recompute(l, &c);
    if (l->relu && !l->ops->fuses_relu)
        sfpw_relu_fwd(c.y, (size_t)n->rows * m->values[v].n);
    double dt = sfpw_now() - t0;
    n->po->t_compute += dt;
    n->t_bwd[i] += dt;
    return 0;
}

/* Value v back for backward: from the stash, or recomputed. */
static int fetch_value(sfpw_net *n, int v)
{
    const sfpw_model *m = n->m;
    int t = m->values[v].tensor, rc;
    if (n->fetched[v] || (t < 0 && !m->values[v].rebuilt))
        return 0;
    if (t < 0 || m->tensors[t].kind == SFPW_TENSOR_RECOMP)
        rc = recompute_value(n, v);
    else
        rc = fetch(n, t, n->bwd[v], (size_t)n->rows * m->values[v].n);
    if (!rc)
        n->fetched[v] = 1;
    return rc;
}

/* Brings what layer i's backward reads back from the stash. */
static int fetch_layer(sfpw_net *n, int i)
{
    const sfpw_layer *l = &n->m->layers[i];
    int rc;
    for (int j = 0; j < l->nin; j++)
        if ((l->needs & (SFPW_NEEDS_IN0 << j)) && (rc = fetch_value(n, l->in[j])))
            return rc;
    if (sfpw_layer_reads_out(l) && (rc = fetch_value(n, l->out)))
        return rc;
    return fetch_slots(n, i);
}

/* The stashed tensor that fetching value v gets first (-1 if none). */
static int first_get(const sfpw_net *n, int v)
{
    const sfpw_model *m = n->m;
    int t = m->values[v].tensor;
    if ((t < 0 && !m->values[v].rebuilt) || n->fetched[v])
        return -1;
    if (t >= 0 && m->tensors[t].kind != SFPW_TENSOR_RECOMP)
        return t;
    const sfpw_layer *l = &m->layers[m->values[v].producer];
    return l->nin ? first_get(n, l->in[0]) : -1;
}

int sfpw_net_backward(sfpw_net *n, const sfpw_pass *ps, int rows,
                      sfpw_pass_out *out)
{
    const sfpw_model *m = n->m;
    int rc = 0;
    if (rows != n->rows || (n->release && !ps->stash))
        return SFP_EINVAL;
    n->ps = ps;
    n->po = out;
    memset(n->G, 0, sizeof(float) * m->nparams);
    memset(n->fetched, 0, sizeof n->fetched);
    memset(n->slots_fetched, 0, sizeof n->slots_fetched);
    memset(n->written, 0, sizeof n->written);
    n->written[m->output] = 1;
    if (ps->stash && ps->st->ops->backward) {
        double t0 = sfpw_now();
        sfpw_stash_key key = ps->key;
        if ((rc = ps->st->ops->backward(ps->st, &key, out->bytes)))
            return rc;
        out->t_stash += sfpw_now() - t0;
    }
    const int tin = m->values[0].tensor;
    const int in_rows = ps->input_grad ? rows
                        : ps->want_grad && ps->quantize && tin >= 0 ? n->samp_rows[tin] : 0;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        const sfpw_layer *l = &m->layers[i];
        const int vo = l->out;
        /* the output's gradient is complete: its width gradient first */
        width_grad(n, m->values[vo].tensor, n->grad[vo]);
        if (ps->stash && (rc = fetch_layer(n, i)))
            return rc;
        if (ps->stash && i > 0) {
            /* hint: the next layer's first stashed input */
            const sfpw_layer *nl = &m->layers[i - 1];
            int t = nl->nin ? first_get(n, nl->in[0]) : -1;
            if (t >= 0) {
                sfpw_stash_key key = key_of(ps, t);
                ps->st->ops->prefetch(ps->st, &key);
            }
        }
        double t0 = sfpw_now();
        sfpw_run c;
        run_init(n, l, &c, rows);
        c.train = 1;
        n->layer = i;
        if (l->relu && !l->relu_masked) /* else its reader applied the mask */
            sfpw_relu_bwd(n->bwd[vo], n->grad[vo], (size_t)rows * m->values[vo].n);
        c.dy = n->grad[vo];
        c.y = n->bwd[vo];
        c.dW = l->w_n ? n->G + l->w_off : NULL;
        c.db = l->b_n ? n->G + l->b_off : NULL;
        for (int j = 0; j < l->nin; j++) {
            int v = l->in[j];
            c.x[j] = n->bwd[v];
            int dr = v == 0 ? in_rows : rows;
            if (dr > 0) {
                c.dx[j] = n->grad[v];
                c.dx_rows[j] = dr;
                c.dx_add[j] = n->written[v];
                n->written[v] = 1;
            }
        }
        for (int s = 0; s < l->nslots; s++)
            c.slot[s] = n->slot_b[i][s];
        l->ops->backward(l, &c);
        double dt = sfpw_now() - t0;
        out->t_compute += dt;
        n->t_bwd[i] += dt;
    }
    if (in_rows > 0)
        width_grad(n, tin, n->grad[0]); /* the image's, on its sampled rows */
    if (in_rows > 0 && !n->written[0])
        memset(n->grad[0], 0, sizeof(float) * rows * m->in_dim); /* reads nothing */
    return 0;
}
