/* dist.c - see dist.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sfp/policy.h>

#include "binade.h"
#include "dist.h"
#include "hot.h"

typedef struct seg {
    int tensor;
    size_t off; /* global offset in the flat vector */
    size_t n;
} seg;

/*
 * A piece's coder under SFP_CODER_AUTO (weight pieces, and gradient pieces
 * for other ranks): an sfpw_pick (net.h) keyed to the piece's mantissa and
 * exponent widths, forgotten by sfpw_dist_coder_step(.., fresh). A check
 * is libsfp's auto request (both coders, the smaller frame); in between the
 * piece is encoded once, with the pick. The checks depend on the step only,
 * so a run resumed at an epoch codes (and, through the footprint, learns)
 * as the uninterrupted one.
 */

struct sfpw_dist {
    MPI_Comm comm;
    int rank, size;
    const sfpw_model *m;
    size_t *off, *len; /* shard of each rank                  */
    int *counts, *displs;
    float *master, *s1, *s2, *g;
    seg *segs;          /* segments of every rank, rank-major */
    sfpw_pick *picks;   /* per segment: mine (weights), others' (gradients) */
    uint64_t pick_step; /* sfpw_dist_coder_step                */
    int *seg_first;     /* index of rank r's first segment     */
    unsigned char *sbuf, *rbuf;
    size_t scap, rcap;
    int *bcounts, *bdispls;
    int anchor[SFPW_MAX_TENSORS];
    int anchor_by_error;   /* sfpw_dist_anchor_by_error            */
    uint64_t *anchor_acc;  /* its per-binade sums, once allocated   */
    float *scratch;     /* 3 * SCRATCH floats                 */
    int measure;
    sfpw_encode_fn enc;
    void *enc_ctx;
    sfpw_exchange last;
    /* gradient containers: error-feedback residual and the quantized sum
     * input of every piece sent (full vector, allocated on first use) */
    float *resid, *gx;
    unsigned char *gsbuf, *grbuf;
    size_t gscap, grcap;
    int *gscounts, *gsdispls, *grcounts, *grdispls;
    sfpw_grad_exchange glast;
    double coder_bytes[SFPW_NCODERS][SFPW_MAX_TENSORS];
};

void sfpw_dist_measure_coders(sfpw_dist *d, int on)
{
    d->measure = on;
}

void sfpw_dist_anchor_by_error(sfpw_dist *d, int on)
{
    d->anchor_by_error = on;
}

void sfpw_dist_coder_step(sfpw_dist *d, uint64_t step, int fresh)
{
    d->pick_step = step;
    if (fresh)
        memset(d->picks, 0, (size_t)d->size * SFPW_MAX_TENSORS * sizeof(sfpw_pick));
}

/* A piece's pick holds for its mantissa and exponent widths. */
static unsigned pick_key(const sfp_params *p)
{
    return p->mbits << 8 | p->ebits;
}

/* For piece s under SFP_CODER_AUTO: sets p's coder to the piece's pick and
 * returns 0, or leaves auto (both coders tried) and returns 1 when the
 * piece is due for a check. Other coders: 0, p unchanged. */
static int pick_coder(sfpw_dist *d, int s, sfp_params *p)
{
    const sfpw_pick *pk = &d->picks[s];
    if (p->coder != SFP_CODER_AUTO)
        return 0;
    if (sfpw_pick_due(pk, d->pick_step, pick_key(p)))
        return 1;
    p->coder = sfpw_pick_coder(pk, SFP_CODER_GECKO);
    return 0;
}

/* After a check of piece s: its frame's coder is the pick until the next
 * multiple of SFPW_PICK_STEPS steps. */
static void picked(sfpw_dist *d, int s, const sfp_params *p, const void *frame, size_t len)
{
    sfp_frame_info fi;
    if (sfp_frame_parse(frame, len, &fi) == 0)
        sfpw_pick_set(&d->picks[s], (sfp_coder)fi.coder, d->pick_step, pick_key(p));
}

void sfpw_dist_set_encoder(sfpw_dist *d, sfpw_encode_fn fn, void *ctx)
{
    d->enc = fn;
    d->enc_ctx = ctx;
}

void sfpw_dist_last_exchange(const sfpw_dist *d, sfpw_exchange *x)
{
    *x = d->last;
}

int sfpw_dist_coder_bytes(sfpw_dist *d, double *out)
{
    /* my pieces only; summed over ranks here */
    memcpy(out, d->coder_bytes, sizeof d->coder_bytes);
    if (d->size == 1)
        return 0;
    return MPI_Allreduce(MPI_IN_PLACE, out, SFPW_NCODERS * SFPW_MAX_TENSORS,
                         MPI_DOUBLE, MPI_SUM, d->comm) == MPI_SUCCESS ? 0 : SFP_EINVAL;
}

#define SCRATCH 16384

uint64_t sfpw_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void sfpw_dist_destroy(sfpw_dist **pd)
{
    if (!pd || !*pd)
        return;
    sfpw_dist *d = *pd;
    free(d->off);
    free(d->len);
    free(d->counts);
    free(d->displs);
    free(d->master);
    free(d->s1);
    free(d->s2);
    free(d->g);
    free(d->segs);
    free(d->picks);
    free(d->seg_first);
    free(d->sbuf);
    free(d->rbuf);
    free(d->bcounts);
    free(d->bdispls);
    free(d->scratch);
    free(d->anchor_acc);
    free(d->resid);
    free(d->gx);
    free(d->gsbuf);
    free(d->grbuf);
    free(d->gscounts);
    free(d->gsdispls);
    free(d->grcounts);
    free(d->grdispls);
    free(d);
    *pd = NULL;
}

int sfpw_dist_create(sfpw_dist **out, MPI_Comm comm, const sfpw_model *m)
{
    sfpw_dist *d = calloc(1, sizeof *d);
    if (!d)
        return SFP_ENOMEM;
    d->comm = comm;
    d->m = m;
    MPI_Comm_rank(comm, &d->rank);
    MPI_Comm_size(comm, &d->size);
    int N = d->size;
    d->off = calloc(N + 1, sizeof(size_t));
    d->len = calloc(N, sizeof(size_t));
    d->counts = calloc(N, sizeof(int));
    d->displs = calloc(N, sizeof(int));
    d->bcounts = calloc(N, sizeof(int));
    d->bdispls = calloc(N, sizeof(int));
    d->seg_first = calloc(N + 1, sizeof(int));
    d->segs = calloc((size_t)N * SFPW_MAX_TENSORS, sizeof(seg));
    d->picks = calloc((size_t)N * SFPW_MAX_TENSORS, sizeof(sfpw_pick));
    d->scratch = malloc(3 * SCRATCH * sizeof(float));
    if (!d->off || !d->len || !d->counts || !d->displs || !d->bcounts ||
        !d->bdispls || !d->seg_first || !d->segs || !d->picks || !d->scratch)
        goto fail;
    /* shards: contiguous, multiples of 16 values except the last */
    size_t P = m->nparams;
    for (int r = 0; r <= N; r++) {
        size_t o = (size_t)((double)P * r / N);
        o = r == N ? P : (o / 16) * 16;
        d->off[r] = o;
    }
    int ns = 0;
    for (int r = 0; r < N; r++) {
        d->len[r] = d->off[r + 1] - d->off[r];
        d->counts[r] = (int)d->len[r];
        d->displs[r] = (int)d->off[r];
        d->seg_first[r] = ns;
        for (int t = 0; t < m->ntensors; t++) {
            const sfpw_tensor *T = &m->tensors[t];
            if (!sfpw_tensor_is_param(T->kind))
                continue;
            size_t a = T->off > d->off[r] ? T->off : d->off[r];
            size_t b = T->off + T->n < d->off[r + 1] ? T->off + T->n : d->off[r + 1];
            if (a < b)
                d->segs[ns++] = (seg){ t, a, b - a };
        }
    }
    d->seg_first[N] = ns;
    size_t mine = d->len[d->rank] ? d->len[d->rank] : 1;
    d->master = calloc(mine, sizeof(float));
    d->s1 = calloc(mine, sizeof(float));
    d->s2 = calloc(mine, sizeof(float));
    d->g = calloc(mine, sizeof(float));
    if (!d->master || !d->s1 || !d->s2 || !d->g)
        goto fail;
    *out = d;
    return 0;
fail:
    sfpw_dist_destroy(&d);
    return SFP_ENOMEM;
}

int sfpw_dist_size(const sfpw_dist *d)
{
    return d->size;
}

void sfpw_dist_set_master(sfpw_dist *d, const float *full)
{
    memcpy(d->master, full + d->off[d->rank], d->len[d->rank] * sizeof(float));
}

void sfpw_dist_set_state(sfpw_dist *d, const float *s1, const float *s2)
{
    size_t o = d->off[d->rank], n = d->len[d->rank];
    if (s1)
        memcpy(d->s1, s1 + o, n * sizeof(float));
    else
        memset(d->s1, 0, n * sizeof(float));
    if (s2)
        memcpy(d->s2, s2 + o, n * sizeof(float));
    else
        memset(d->s2, 0, n * sizeof(float));
}

static int mpi_err(int rc)
{
    return rc == MPI_SUCCESS ? 0 : SFP_EINVAL;
}

static int reserve(unsigned char **buf, size_t *cap, size_t need);
static void put_u64(unsigned char *p, uint64_t v);
static uint64_t get_u64(const unsigned char *p);

int sfpw_dist_reduce_grads(sfpw_dist *d, const float *G)
{
    const double others = (double)(d->m->nparams - d->len[d->rank]);
    d->glast.sent = d->glast.fp32 = 4.0 * others;
    d->glast.pieces = d->glast.checks = 0;
    if (d->size == 1) {
        memcpy(d->g, G, d->len[0] * sizeof(float));
        return 0;
    }
    return mpi_err(MPI_Reduce_scatter(G, d->g, d->counts, MPI_FLOAT, MPI_SUM,
                                      d->comm));
}

void sfpw_dist_last_grad_exchange(const sfpw_dist *d, sfpw_grad_exchange *x)
{
    *x = d->glast;
}

static int grad_buffers(sfpw_dist *d)
{
    if (d->resid)
        return 0;
    int N = d->size;
    size_t P = d->m->nparams ? d->m->nparams : 1;
    d->gscounts = calloc(N, sizeof(int));
    d->gsdispls = calloc(N, sizeof(int));
    d->grcounts = calloc(N, sizeof(int));
    d->grdispls = calloc(N, sizeof(int));
    d->gx = malloc(P * sizeof(float));
    d->resid = calloc(P, sizeof(float)); /* last: marks the set as complete */
    if (!d->gscounts || !d->gsdispls || !d->grcounts || !d->grdispls ||
        !d->gx || !d->resid) {
        free(d->resid);
        d->resid = NULL;
        return SFP_ENOMEM;
    }
    return 0;
}

const float *sfpw_dist_residual(const sfpw_dist *d)
{
    return d->resid;
}

int sfpw_dist_set_residual(sfpw_dist *d, const float *resid)
{
    int rc = grad_buffers(d);
    if (!rc)
        memcpy(d->resid, resid, d->m->nparams * sizeof(float));
    return rc;
}

static sfp_params grad_params(const sfp_params *base, const sfp_width *w)
{
    sfp_params p = *base;
    p.mbits = w->k;
    p.ebits = w->e;
    p.anchor = -1; /* each piece its own: frames describe themselves */
    return p;
}

int sfpw_dist_reduce_grads_q(sfpw_dist *d, const float *G,
                             const sfp_width *width, const sfp_params *base)
{
    if (d->size == 1 || !width)
        return sfpw_dist_reduce_grads(d, G);
    int rc, N = d->size, me = d->rank;
    if ((rc = grad_buffers(d)))
        return rc;
    /* what goes to every other rank: its pieces of G + residual, one frame
     * per tensor piece, [u64 length | frame] each */
    size_t need = 0;
    for (int r = 0; r < N; r++) {
        if (r == me)
            continue;
        for (int s = d->seg_first[r]; s < d->seg_first[r + 1]; s++) {
            sfp_params p = grad_params(base, &width[d->segs[s].tensor]);
            size_t bnd = sfp_frame_bound(d->segs[s].n, &p);
            if (!bnd)
                return SFP_EINVAL;
            need += 8 + bnd;
        }
    }
    if ((rc = reserve(&d->gsbuf, &d->gscap, need ? need : 1)))
        return rc;
    size_t pos = 0;
    d->glast.pieces = d->glast.checks = 0;
    d->glast.fp32 = 0;
    for (int r = 0; r < N; r++) {
        d->gsdispls[r] = (int)pos;
        if (r == me) {
            d->gscounts[r] = 0;
            continue;
        }
        for (int s = d->seg_first[r]; s < d->seg_first[r + 1]; s++) {
            const seg *sg = &d->segs[s];
            sfp_params p = grad_params(base, &width[sg->tensor]);
            float *x = d->gx + sg->off, *e = d->resid + sg->off;
            const float *g = G + sg->off;
            for (size_t i = 0; i < sg->n; i++)
                x[i] = g[i] + e[i];
            size_t len = 0;
            /* other ranks' pieces: their picks are not used by publish */
            const int check = pick_coder(d, s, &p);
            /* the residual of error feedback: what the frame loses */
            if ((rc = sfp_encode_q(x, sg->n, &p, d->gsbuf + pos + 8,
                                   d->gscap - pos - 8, &len, NULL, e)))
                return rc;
            if (check) {
                picked(d, s, &p, d->gsbuf + pos + 8, len);
                d->glast.checks++;
            }
            for (size_t i = 0; i < sg->n; i++)
                e[i] = x[i] - e[i];
            put_u64(d->gsbuf + pos, len);
            pos += 8 + len;
            d->glast.pieces++;
            d->glast.fp32 += 4.0 * (double)sg->n;
        }
        if (pos > (size_t)INT32_MAX)
            return SFP_EOVERFLOW;
        d->gscounts[r] = (int)(pos - (size_t)d->gsdispls[r]);
    }
    d->glast.sent = (double)pos;
    if ((rc = mpi_err(MPI_Alltoall(d->gscounts, 1, MPI_INT, d->grcounts, 1,
                                   MPI_INT, d->comm))))
        return rc;
    size_t total = 0;
    for (int r = 0; r < N; r++) {
        d->grdispls[r] = (int)total;
        total += (size_t)d->grcounts[r];
        if (total > (size_t)INT32_MAX)
            return SFP_EOVERFLOW;
    }
    if ((rc = reserve(&d->grbuf, &d->grcap, total ? total : 1)) ||
        (rc = mpi_err(MPI_Alltoallv(d->gsbuf, d->gscounts, d->gsdispls,
                                    MPI_BYTE, d->grbuf, d->grcounts,
                                    d->grdispls, MPI_BYTE, d->comm))))
        return rc;
    /* my shard: the sum over ranks in rank order, in FP32 (my own
     * contribution exact, it never leaves this rank) */
    const size_t my = d->off[me];
    memset(d->g, 0, d->len[me] * sizeof(float));
    for (int r = 0; r < N; r++) {
        if (r == me) {
            for (size_t i = 0; i < d->len[me]; i++)
                d->g[i] += G[my + i];
            continue;
        }
        const unsigned char *p = d->grbuf + d->grdispls[r];
        size_t left = (size_t)d->grcounts[r];
        for (int s = d->seg_first[me]; s < d->seg_first[me + 1]; s++) {
            const seg *sg = &d->segs[s];
            if (left < 8)
                return SFP_ETRUNC;
            uint64_t len = get_u64(p);
            if (len > left - 8)
                return SFP_ETRUNC;
            float *dst = d->g + (sg->off - my);
            /* gx over my own shard is free: my sends use the others' */
            float *out = d->gx + sg->off;
            size_t got = 0;
            if ((rc = sfp_decode(p + 8, len, out, sg->n * sizeof(float), &got)))
                return rc;
            if (got != sg->n)
                return SFP_ECORRUPT;
            for (size_t i = 0; i < sg->n; i++)
                dst[i] += out[i];
            p += 8 + len;
            left -= 8 + len;
        }
        if (left != 0)
            return SFP_ECORRUPT;
    }
    return 0;
}

int sfpw_dist_weight_grads(sfpw_dist *d, const sfp_width *width,
                           const sfp_params *base, double *gn, double *ge,
                           uint64_t seed, uint64_t step, size_t budget,
                           double fisher)
{
    if (budget == 0 || budget > SCRATCH)
        budget = SCRATCH;
    const size_t my = d->off[d->rank];
    float *a = d->scratch, *b = a + SCRATCH;
    for (int s = d->seg_first[d->rank]; s < d->seg_first[d->rank + 1]; s++) {
        const seg *sg = &d->segs[s];
        const sfp_width *w = &width[sg->tensor];
        size_t c = sg->n < budget ? sg->n : budget;
        size_t start = 0;
        if (sg->n > c)
            start = (size_t)(sfp_policy_uniform(seed ^ 0x77, step, (uint64_t)s) * (sg->n - c + 1));
        const float *x = d->master + (sg->off - my) + start;
        const float *g = d->g + (sg->off - my) + start;
        double scale = (double)sg->n / c;
        sfp_params p = *base;
        p.anchor = d->anchor[sg->tensor];
        for (int which = 0; which < 2; which++) {
            sfp_params hi = p, lo = p;
            if (which == 0) {
                hi.mbits = w->k_hi;
                lo.mbits = w->k_lo;
                hi.ebits = lo.ebits = w->e;
            } else {
                hi.mbits = lo.mbits = w->k;
                hi.ebits = w->e_hi;
                lo.ebits = w->e_lo;
            }
            int rc = sfp_quantize(a, x, c, &hi, NULL);
            if (!rc)
                rc = sfp_quantize(b, x, c, &lo, NULL);
            if (rc)
                return rc;
            double acc = 0, acc2 = 0;
            for (size_t i = 0; i < c; i++) {
                double dh = (double)a[i] - x[i], dl = (double)b[i] - x[i];
                acc += (double)g[i] * (a[i] - b[i]);
                acc2 += (double)g[i] * g[i] * 0.5 * (dh * dh - dl * dl);
            }
            (which == 0 ? gn : ge)[sg->tensor] += scale * (acc + fisher * acc2);
        }
    }
    return 0;
}

void sfpw_dist_update(sfpw_dist *d, const sfpw_opt_config *c, uint64_t t)
{
    const size_t my = d->off[d->rank];
    for (int s = d->seg_first[d->rank]; s < d->seg_first[d->rank + 1]; s++) {
        const seg *sg = &d->segs[s];
        size_t o = sg->off - my;
        int decay = d->m->tensors[sg->tensor].kind == SFPW_TENSOR_WEIGHT;
        sfpw_opt_update(c, d->master + o, d->g + o, d->s1 + o, d->s2 + o,
                        sg->n, t, decay);
    }
}

static int reserve(unsigned char **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    unsigned char *nb = realloc(*buf, need);
    if (!nb)
        return SFP_ENOMEM;
    *buf = nb;
    *cap = need;
    return 0;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The largest |x[i]| and v (>= 0), NaN left out. On the bit patterns (the
 * magnitudes of non-NaN floats order as integers) in 16 lanes, which
 * vectorizes: a float compare chain was 7 % of an MLP step. */
SFPW_HOT static float abs_max(const float *x, size_t n, float v)
{
    int32_t lane[16], m;
    memcpy(&m, &v, sizeof m);
    for (int j = 0; j < 16; j++)
        lane[j] = m;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            int32_t b;
            memcpy(&b, x + i + j, sizeof b);
            b &= 0x7fffffff;
            b = b > 0x7f800000 ? 0 : b;
            lane[j] = b > lane[j] ? b : lane[j];
        }
    for (; i < n; i++) {
        int32_t b;
        memcpy(&b, x + i, sizeof b);
        b &= 0x7fffffff;
        b = b > 0x7f800000 ? 0 : b;
        m = b > m ? b : m;
    }
    for (int j = 0; j < 16; j++)
        m = lane[j] > m ? lane[j] : m;
    memcpy(&v, &m, sizeof v);
    return v;
}


/*
 * Anchor by error (sfpw_dist_anchor_by_error). With e exponent bits the
 * window keeps 2^e - 1 binades [A - 2^e + 2, A]; anchored at the largest
 * magnitude (A = Amax) a narrow window spends its top binade on a few
 * outliers and flushes the bulk's small values to zero. Lowering A by up
 * to ANCHOR_DROP binades saturates the values above it to (2 - 2^-k) 2^A
 * and keeps that many more binades at the bottom. The squared error of each
 * candidate is modelled from per-binade sums over the whole tensor (every
 * rank's piece): n_E, S1_E = sum |x|, S2_E = sum x^2 of binade E:
 *   saturated (E > A):  S2_E - 2 s S1_E + n_E s^2,  s = (2 - 2^-k) 2^A
 *   kept (lo <= E <= A): n_E 4^(E - k) / 12        (round to nearest)
 *   flushed (E < lo):    S2_E
 * and the smallest wins (ties: the higher A). Only for e <= ANCHOR_E_MAX:
 * wider windows lose nothing to either end on real tensors.
 */
#define ANCHOR_DROP 3
#define ANCHOR_E_MAX 4
#define ANCHOR_BINS (ANCHOR_DROP + (1 << ANCHOR_E_MAX) + 1)

/* The anchor (biased) among amax .. amax - ANCHOR_DROP with the smallest
 * modelled squared error for k mantissa and e exponent bits. */
static int anchor_pick(const double *acc, int amax, int k, int e)
{
    const int span = (1 << e) - 2; /* A - lo */
    double best = 0;
    int pick = amax;
    for (int A = amax; A >= amax - ANCHOR_DROP && A - span >= 1; A--) {
        const double s = (2.0 - ldexp(1.0, -k)) * ldexp(1.0, A - 127);
        double err = 0;
        for (int j = 0; j < ANCHOR_BINS; j++) {
            const int E = amax - j;
            const double n = acc[3 * j], s1 = acc[3 * j + 1], s2 = acc[3 * j + 2];
            if (n == 0)
                continue;
            if (E > A)
                err += s2 - 2 * s * s1 + n * s * s;
            else if (E >= A - span)
                err += n * ldexp(1.0, 2 * (E - 127 - k)) / 12;
            else
                err += s2;
        }
        if (A == amax || err < best * (1 - 1e-9)) {
            best = err;
            pick = A;
        }
    }
    return pick;
}

/* Lowers d->anchor[t] of the weight tensors with e <= ANCHOR_E_MAX where
 * the modelled error says so. Each rank's exact integer sums (binade.h) go
 * in one MPI_UINT64_T sum, ANCHOR_WORDS a tensor: n of every bin, the sums
 * of m of the saturating bins, and the sums of m^2 split at bit 32 (each
 * rank's low part below 2^32, so every total fits 64 bits for the 2^40
 * values a tensor may have); the doubles of the model come from the
 * totals, rounded once. */
#define ANCHOR_S1 SFPW_BINS                   /* after the counts   */
#define ANCHOR_S2 (SFPW_BINS + SFPW_BINS_SAT) /* hi, lo of each bin */
#define ANCHOR_WORDS (ANCHOR_S2 + 2 * SFPW_BINS)

static int anchors_by_error(sfpw_dist *d, const sfp_width *width)
{
    _Static_assert(ANCHOR_BINS == SFPW_BINS, "the model's bins are binade.h's");
    const sfpw_model *m = d->m;
    const size_t my = d->off[d->rank];
    const size_t len = (size_t)m->ntensors * ANCHOR_WORDS;
    int rc = 0;
    if (!d->anchor_acc && !(d->anchor_acc = malloc(len * sizeof(uint64_t))))
        return SFP_ENOMEM;
    uint64_t *acc = d->anchor_acc;
    memset(acc, 0, len * sizeof(uint64_t));
    for (int s = d->seg_first[d->rank]; s < d->seg_first[d->rank + 1]; s++) {
        const seg *sg = &d->segs[s];
        const int t = sg->tensor;
        if (d->anchor[t] < 0 || width[t].e > ANCHOR_E_MAX)
            continue;
        sfpw_bins b;
        memset(&b, 0, sizeof b);
        sfpw_bins_add(&b, d->master + (sg->off - my), sg->n, d->anchor[t],
                      (1 << width[t].e) - 1);
        uint64_t *w = acc + (size_t)t * ANCHOR_WORDS;
        for (int j = 0; j < SFPW_BINS; j++) {
            w[j] += b.n[j];
            w[ANCHOR_S2 + 2 * j] += (uint64_t)(b.s2[j] >> 32);
            w[ANCHOR_S2 + 2 * j + 1] += (uint64_t)b.s2[j] & 0xffffffffu;
        }
        for (int j = 0; j < SFPW_BINS_SAT; j++)
            w[ANCHOR_S1 + j] += b.s1[j];
    }
    if (d->size > 1)
        rc = mpi_err(MPI_Allreduce(MPI_IN_PLACE, acc, (int)len, MPI_UINT64_T, MPI_SUM,
                                   d->comm));
    for (int t = 0; !rc && t < m->ntensors; t++) {
        if (!sfpw_tensor_is_param(m->tensors[t].kind) || d->anchor[t] < 0 ||
            width[t].e > ANCHOR_E_MAX)
            continue;
        const uint64_t *w = acc + (size_t)t * ANCHOR_WORDS;
        double sums[3 * ANCHOR_BINS];
        for (int j = 0; j < SFPW_BINS; j++) {
            const int sh = d->anchor[t] - j - 150; /* |x| = m 2^sh */
            const unsigned __int128 q2 =
                ((unsigned __int128)w[ANCHOR_S2 + 2 * j] << 32) + w[ANCHOR_S2 + 2 * j + 1];
            sums[3 * j] = (double)w[j];
            sums[3 * j + 1] = j < SFPW_BINS_SAT ? ldexp((double)w[ANCHOR_S1 + j], sh) : 0;
            sums[3 * j + 2] = ldexp((double)q2, 2 * sh);
        }
        d->anchor[t] = anchor_pick(sums, d->anchor[t], width[t].k, width[t].e);
    }
    return rc;
}

int sfpw_dist_publish(sfpw_dist *d, const sfp_width *width,
                      const sfp_params *base, float *W, double *bytes)
{
    const sfpw_model *m = d->m;
    const size_t my = d->off[d->rank];
    int rc;
    if (bytes)
        for (int t = 0; t < m->ntensors; t++)
            bytes[t] = 0;
    if (!width) {
        if (d->size == 1)
            memcpy(W, d->master, d->len[0] * sizeof(float));
        else if ((rc = mpi_err(MPI_Allgatherv(d->master, d->counts[d->rank],
                                              MPI_FLOAT, W, d->counts,
                                              d->displs, MPI_FLOAT, d->comm))))
            return rc;
        if (bytes)
            for (int t = 0; t < m->ntensors; t++)
                if (sfpw_tensor_is_param(m->tensors[t].kind))
                    bytes[t] = (double)m->tensors[t].n * sizeof(float);
        d->last.fp32 = d->last.exchanged = (double)m->nparams * sizeof(float);
        d->last.remote = d->last.local = d->last.checks = 0;
        return 0;
    }
    /* anchors: largest magnitude of each whole tensor, rounded to k bits */
    float mx[SFPW_MAX_TENSORS] = { 0 };
    for (int s = d->seg_first[d->rank]; s < d->seg_first[d->rank + 1]; s++) {
        const seg *sg = &d->segs[s];
        mx[sg->tensor] = abs_max(d->master + (sg->off - my), sg->n, mx[sg->tensor]);
    }
    if (d->size > 1 &&
        (rc = mpi_err(MPI_Allreduce(MPI_IN_PLACE, mx, m->ntensors, MPI_FLOAT,
                                    MPI_MAX, d->comm))))
        return rc;
    for (int t = 0; t < m->ntensors; t++) {
        if (!sfpw_tensor_is_param(m->tensors[t].kind))
            continue;
        if (!(mx[t] > 0)) {
            /* all zeros on every rank: any piece's own anchor gives the
             * same (empty) grid, and a forced anchor 0 is not a valid one */
            d->anchor[t] = -1;
            continue;
        }
        sfp_params p = *base;
        p.mbits = width[t].k;
        p.ebits = width[t].e;
        p.anchor = -1;
        float q;
        sfp_qstats st;
        if ((rc = sfp_quantize(&q, &mx[t], 1, &p, &st)))
            return rc;
        d->anchor[t] = st.anchor;
    }
    if (d->anchor_by_error && (rc = anchors_by_error(d, width)))
        return rc;
    if (d->measure) {
        memset(d->coder_bytes, 0, sizeof d->coder_bytes);
        for (int s = d->seg_first[d->rank]; s < d->seg_first[d->rank + 1]; s++) {
            const seg *sg = &d->segs[s];
            sfp_params p = *base;
            p.mbits = width[sg->tensor].k;
            p.ebits = width[sg->tensor].e;
            p.anchor = d->anchor[sg->tensor];
            for (int c = 0; c < SFPW_NCODERS; c++) {
                size_t len;
                if ((rc = sfpw_measure_frame(d->master + (sg->off - my), sg->n,
                                             &p, (sfp_coder)c, &len)))
                    return rc;
                d->coder_bytes[c][sg->tensor] += (double)len;
            }
        }
    }
    d->last.remote = d->last.local = d->last.checks = 0;
    /* encode my pieces: [u64 length | frame] each */
    size_t need = 0;
    for (int s = d->seg_first[d->rank]; s < d->seg_first[d->rank + 1]; s++) {
        const seg *sg = &d->segs[s];
        sfp_params p = *base;
        p.mbits = width[sg->tensor].k;
        p.ebits = width[sg->tensor].e;
        p.anchor = d->anchor[sg->tensor];
        size_t bnd = sfp_frame_bound(sg->n, &p);
        if (!bnd)
            return SFP_EINVAL;
        need += 8 + bnd;
    }
    if ((rc = reserve(&d->sbuf, &d->scap, need ? need : 1)))
        return rc;
    size_t pos = 0;
    for (int s = d->seg_first[d->rank]; s < d->seg_first[d->rank + 1]; s++) {
        const seg *sg = &d->segs[s];
        sfp_params p = *base;
        p.mbits = width[sg->tensor].k;
        p.ebits = width[sg->tensor].e;
        p.anchor = d->anchor[sg->tensor];
        size_t len = 0;
        const float *src = d->master + (sg->off - my);
        unsigned char *frame = d->sbuf + pos + 8;
        const int check = pick_coder(d, s, &p);
        rc = d->enc ? d->enc(d->enc_ctx, src, sg->n, &p, frame,
                             d->scap - pos - 8, &len) : 1;
        if (rc == 0) {
            /* encoded elsewhere: my working copy is what the frame decodes
             * to, like every other rank's */
            size_t got = 0;
            if (len > d->scap - pos - 8)
                return SFP_ETRUNC;
            rc = sfp_decode(frame, len, W + sg->off, sg->n * sizeof(float), &got);
            if (!rc && got != sg->n)
                rc = SFP_ECORRUPT;
            d->last.remote++;
        } else if (rc == SFPW_ENCODE_IN_PROCESS) {
            /* The working copy of my own pieces comes out of the encoder
             * (the values its frame decodes to, bit for bit). */
            rc = sfp_encode_q(src, sg->n, &p, frame, d->scap - pos - 8, &len,
                              NULL, W + sg->off);
            d->last.local++;
        }
        if (rc)
            return rc;
        if (check) {
            picked(d, s, &p, frame, len);
            d->last.checks++;
        }
        put_u64(d->sbuf + pos, len);
        pos += 8 + len;
    }
    if (pos > (size_t)INT32_MAX)
        return SFP_EOVERFLOW;
    unsigned char *rb;
    d->last.fp32 = (double)m->nparams * sizeof(float);
    d->last.exchanged = (double)pos;
    if (d->size == 1) {
        rb = d->sbuf;
        d->bcounts[0] = (int)pos;
        d->bdispls[0] = 0;
    } else {
        int mine = (int)pos;
        if ((rc = mpi_err(MPI_Allgather(&mine, 1, MPI_INT, d->bcounts, 1,
                                        MPI_INT, d->comm))))
            return rc;
        size_t total = 0;
        for (int r = 0; r < d->size; r++) {
            d->bdispls[r] = (int)total;
            total += (size_t)d->bcounts[r];
        }
        if (total > (size_t)INT32_MAX)
            return SFP_EOVERFLOW;
        d->last.exchanged = (double)total;
        if ((rc = reserve(&d->rbuf, &d->rcap, total ? total : 1)))
            return rc;
        if ((rc = mpi_err(MPI_Allgatherv(d->sbuf, mine, MPI_BYTE, d->rbuf,
                                         d->bcounts, d->bdispls, MPI_BYTE,
                                         d->comm))))
            return rc;
        rb = d->rbuf;
    }
    /* decode every rank's pieces */
    for (int r = 0; r < d->size; r++) {
        const unsigned char *p = rb + d->bdispls[r];
        size_t left = (size_t)d->bcounts[r];
        for (int s = d->seg_first[r]; s < d->seg_first[r + 1]; s++) {
            const seg *sg = &d->segs[s];
            if (left < 8)
                return SFP_ETRUNC;
            uint64_t len = get_u64(p);
            if (len > left - 8)
                return SFP_ETRUNC;
            if (r != d->rank) { /* my pieces are in W already */
                size_t got = 0;
                rc = sfp_decode(p + 8, len, W + sg->off, sg->n * sizeof(float), &got);
                if (rc)
                    return rc;
                if (got != sg->n)
                    return SFP_ECORRUPT;
            }
            if (bytes)
                bytes[sg->tensor] += (double)len;
            p += 8 + len;
            left -= 8 + len;
        }
    }
    return 0;
}

int sfpw_dist_gather(sfpw_dist *d, int which, float *full)
{
    const float *src = which == 0 ? d->master : which == 1 ? d->s1 : d->s2;
    if (d->size == 1) {
        memcpy(full, src, d->len[0] * sizeof(float));
        return 0;
    }
    return mpi_err(MPI_Gatherv(src, d->counts[d->rank], MPI_FLOAT, full,
                               d->counts, d->displs, MPI_FLOAT, 0, d->comm));
}

int sfpw_dist_allreduce_sum(sfpw_dist *d, double *v, int n)
{
    if (d->size == 1)
        return 0;
    return mpi_err(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM,
                                 d->comm));
}

int sfpw_dist_check_identical(sfpw_dist *d, const float *W, size_t n,
                              uint64_t *hash)
{
    uint64_t h = sfpw_hash(W, n * sizeof(float));
    *hash = h;
    if (d->size == 1)
        return 1;
    uint64_t *all = calloc(d->size, sizeof(uint64_t));
    if (!all)
        return 0;
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, d->comm);
    int same = 1;
    for (int r = 0; r < d->size; r++)
        same &= all[r] == h;
    free(all);
    int all_same = 0;
    MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, d->comm);
    return all_same;
}
