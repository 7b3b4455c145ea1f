/* checkpoint.c - see checkpoint.h. Little-endian hosts only (checked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"

#define CKPT_MAGIC1 "SFPCKPT1"
#define CKPT_MAGIC2 "SFPCKPT2"
#define CKPT_MAGIC "SFPCKPT3"
#define CKPT_MAX_PARAMS (1ull << 32)
#define CKPT_MAX_POLICY (1ull << 24)
#define CKPT_MAX_RANKS (1ull << 16)

const char *sfpw_ckpt_strerror(int err)
{
    switch (err) {
    case SFPW_CKPT_EIO: return "checkpoint: I/O error";
    case SFPW_CKPT_EFORMAT: return "checkpoint: not a valid sfp-train checkpoint";
    case SFPW_CKPT_ENOMEM: return "checkpoint: out of memory";
    default: return "checkpoint: unknown error";
    }
}

typedef struct hdr1 {
    char magic[8];
    char model[16];
    uint32_t policy, optimizer;
    uint64_t nparams, next_epoch, step, seed, batch, policy_len;
} hdr1;

typedef struct hdr2 {
    char magic[8];
    char model[32];
    uint64_t model_hash;
    uint32_t policy, optimizer;
    uint64_t nparams, next_epoch, step, seed, batch, policy_len, nbuffers;
} hdr2;

/* version 3: hdr2, then the ranks of the residual section */
typedef struct hdr {
    char magic[8];
    char model[32];
    uint64_t model_hash;
    uint32_t policy, optimizer;
    uint64_t nparams, next_epoch, step, seed, batch, policy_len, nbuffers;
    uint64_t resid_ranks;
} hdr;

static int wr(FILE *f, const void *p, size_t n, uint64_t *h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
    return fwrite(p, 1, n, f) == n ? 0 : SFPW_CKPT_EIO;
}

int sfpw_ckpt_save(const char *path, const sfpw_ckpt *c)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return SFPW_CKPT_EIO;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return SFPW_CKPT_EIO;
    hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    memcpy(h.model, c->model, sizeof h.model);
    h.policy = c->policy;
    h.optimizer = c->optimizer;
    h.nparams = c->nparams;
    h.next_epoch = c->next_epoch;
    h.step = c->step;
    h.seed = c->seed;
    h.batch = c->batch;
    h.policy_len = c->policy_len;
    h.model_hash = c->model_hash;
    h.nbuffers = c->nbuffers;
    h.resid_ranks = c->resid ? c->resid_ranks : 0;
    uint64_t hash = 0xcbf29ce484222325ull;
    size_t pb = c->nparams * sizeof(float);
    int rc = wr(f, &h, sizeof h, &hash);
    if (!rc) rc = wr(f, c->master, pb, &hash);
    if (!rc) rc = wr(f, c->s1, pb, &hash);
    if (!rc) rc = wr(f, c->s2, pb, &hash);
    if (!rc && c->nbuffers) rc = wr(f, c->buffers, c->nbuffers * sizeof(float), &hash);
    if (!rc && c->policy_len) rc = wr(f, c->policy_state, c->policy_len, &hash);
    if (!rc && h.resid_ranks) rc = wr(f, c->resid, h.resid_ranks * pb, &hash);
    if (!rc && fwrite(&hash, 8, 1, f) != 1)
        rc = SFPW_CKPT_EIO;
    if (fflush(f) != 0)
        rc = SFPW_CKPT_EIO;
    if (fclose(f) != 0)
        rc = SFPW_CKPT_EIO;
    if (!rc && rename(tmp, path) != 0)
        rc = SFPW_CKPT_EIO;
    if (rc)
        remove(tmp);
    return rc;
}

void sfpw_ckpt_free(sfpw_ckpt *c)
{
    if (!c)
        return;
    free(c->master);
    free(c->s1);
    free(c->s2);
    free(c->buffers);
    free(c->policy_state);
    free(c->resid);
    c->master = c->s1 = c->s2 = c->buffers = c->resid = NULL;
    c->policy_state = NULL;
}

static int rd(FILE *f, void *p, size_t n, uint64_t *h)
{
    if (fread(p, 1, n, f) != n)
        return SFPW_CKPT_EFORMAT;
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ull;
    }
    return 0;
}

int sfpw_ckpt_load(const char *path, sfpw_ckpt *c)
{
    sfpw_ckpt t;
    memset(&t, 0, sizeof t);
    FILE *f = fopen(path, "rb");
    if (!f)
        return SFPW_CKPT_EIO;
    hdr h;
    memset(&h, 0, sizeof h);
    uint64_t hash = 0xcbf29ce484222325ull, stored;
    int rc = rd(f, h.magic, 8, &hash);
    if (rc)
        goto fail;
    if (!memcmp(h.magic, CKPT_MAGIC1, 8)) {
        hdr1 h1;
        rc = rd(f, (char *)&h1 + 8, sizeof h1 - 8, &hash);
        memcpy(h.model, h1.model, sizeof h1.model);
        h.policy = h1.policy;
        h.optimizer = h1.optimizer;
        h.nparams = h1.nparams;
        h.next_epoch = h1.next_epoch;
        h.step = h1.step;
        h.seed = h1.seed;
        h.batch = h1.batch;
        h.policy_len = h1.policy_len;
    } else if (!memcmp(h.magic, CKPT_MAGIC2, 8)) {
        rc = rd(f, (char *)&h + 8, sizeof(hdr2) - 8, &hash);
    } else {
        rc = rd(f, (char *)&h + 8, sizeof h - 8, &hash);
    }
    if (rc)
        goto fail;
    rc = SFPW_CKPT_EFORMAT;
    if ((memcmp(h.magic, CKPT_MAGIC, 8) != 0 && memcmp(h.magic, CKPT_MAGIC2, 8) != 0 &&
         memcmp(h.magic, CKPT_MAGIC1, 8) != 0) ||
        h.nparams == 0 || h.nparams > CKPT_MAX_PARAMS || h.policy_len > CKPT_MAX_POLICY ||
        h.nbuffers > CKPT_MAX_PARAMS || memchr(h.model, 0, sizeof h.model) == NULL ||
        h.resid_ranks > CKPT_MAX_RANKS || h.resid_ranks * h.nparams > CKPT_MAX_PARAMS)
        goto fail;
    /* the sizes the header declares must be the file's before anything is
     * allocated: a few bytes must not make us allocate gigabytes */
    uint64_t head = !memcmp(h.magic, CKPT_MAGIC1, 8) ? sizeof(hdr1)
                    : !memcmp(h.magic, CKPT_MAGIC2, 8) ? sizeof(hdr2) : sizeof(hdr);
    uint64_t want = head + 4 * h.nparams * (3 + h.resid_ranks) + 4 * h.nbuffers +
                    h.policy_len + 8;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != want)
        goto fail;
    size_t pb = h.nparams * sizeof(float);
    t.master = malloc(pb);
    t.s1 = malloc(pb);
    t.s2 = malloc(pb);
    t.policy_state = malloc(h.policy_len ? h.policy_len : 1);
    t.buffers = malloc(h.nbuffers ? h.nbuffers * sizeof(float) : 1);
    t.resid = h.resid_ranks ? malloc(h.resid_ranks * pb) : NULL;
    if (!t.master || !t.s1 || !t.s2 || !t.policy_state || !t.buffers ||
        (h.resid_ranks && !t.resid)) {
        rc = SFPW_CKPT_ENOMEM;
        goto fail;
    }
    if ((rc = rd(f, t.master, pb, &hash)) || (rc = rd(f, t.s1, pb, &hash)) ||
        (rc = rd(f, t.s2, pb, &hash)) ||
        (h.nbuffers && (rc = rd(f, t.buffers, h.nbuffers * sizeof(float), &hash))) ||
        (h.policy_len && (rc = rd(f, t.policy_state, h.policy_len, &hash))) ||
        (h.resid_ranks && (rc = rd(f, t.resid, h.resid_ranks * pb, &hash))))
        goto fail;
    rc = SFPW_CKPT_EFORMAT;
    if (fread(&stored, 8, 1, f) != 1 || stored != hash || fgetc(f) != EOF)
        goto fail;
    fclose(f);
    memcpy(t.model, h.model, sizeof t.model);
    t.policy = h.policy;
    t.optimizer = h.optimizer;
    t.nparams = h.nparams;
    t.next_epoch = h.next_epoch;
    t.step = h.step;
    t.seed = h.seed;
    t.batch = h.batch;
    t.policy_len = h.policy_len;
    t.model_hash = h.model_hash;
    t.nbuffers = h.nbuffers;
    t.resid_ranks = h.resid_ranks;
    *c = t;
    return 0;
fail:
    fclose(f);
    sfpw_ckpt_free(&t);
    return rc;
}
