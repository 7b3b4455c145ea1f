/* checkpoint.c - see checkpoint.h. Little-endian hosts only (checked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

#define CKPT_MAGIC "SFPCKPT1"
#define CKPT_MAX_PARAMS (1ull << 32)
#define CKPT_MAX_POLICY (1ull << 24)

const char *sfpw_ckpt_strerror(int err)
{
    switch (err) {
    case SFPW_CKPT_EIO: return "checkpoint: I/O error";
    case SFPW_CKPT_EFORMAT: return "checkpoint: not a valid sfp-train checkpoint";
    case SFPW_CKPT_ENOMEM: return "checkpoint: out of memory";
    default: return "checkpoint: unknown error";
    }
}

typedef struct hdr {
    char magic[8];
    char model[16];
    uint32_t policy, optimizer;
    uint64_t nparams, next_epoch, step, seed, batch, policy_len;
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
    uint64_t hash = 0xcbf29ce484222325ull;
    size_t pb = c->nparams * sizeof(float);
    int rc = wr(f, &h, sizeof h, &hash);
    if (!rc) rc = wr(f, c->master, pb, &hash);
    if (!rc) rc = wr(f, c->s1, pb, &hash);
    if (!rc) rc = wr(f, c->s2, pb, &hash);
    if (!rc && c->policy_len) rc = wr(f, c->policy_state, c->policy_len, &hash);
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
    free(c->policy_state);
    c->master = c->s1 = c->s2 = NULL;
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
    uint64_t hash = 0xcbf29ce484222325ull, stored;
    int rc = rd(f, &h, sizeof h, &hash);
    if (rc)
        goto fail;
    rc = SFPW_CKPT_EFORMAT;
    if (memcmp(h.magic, CKPT_MAGIC, 8) != 0 || h.nparams == 0 ||
        h.nparams > CKPT_MAX_PARAMS || h.policy_len > CKPT_MAX_POLICY ||
        memchr(h.model, 0, sizeof h.model) == NULL)
        goto fail;
    size_t pb = h.nparams * sizeof(float);
    t.master = malloc(pb);
    t.s1 = malloc(pb);
    t.s2 = malloc(pb);
    t.policy_state = malloc(h.policy_len ? h.policy_len : 1);
    if (!t.master || !t.s1 || !t.s2 || !t.policy_state) {
        rc = SFPW_CKPT_ENOMEM;
        goto fail;
    }
    if ((rc = rd(f, t.master, pb, &hash)) || (rc = rd(f, t.s1, pb, &hash)) ||
        (rc = rd(f, t.s2, pb, &hash)) ||
        (h.policy_len && (rc = rd(f, t.policy_state, h.policy_len, &hash))))
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
    *c = t;
    return 0;
fail:
    fclose(f);
    sfpw_ckpt_free(&t);
    return rc;
}
