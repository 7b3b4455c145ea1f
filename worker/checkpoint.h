/*
 * checkpoint.h - sfp-train checkpoints: FP32 master weights, optimizer state,
 * running statistics, policy state and the position in training, written
 * atomically (temp file + rename) and checked (magic, version, sizes,
 * FNV-1a hash) on load. Version 2 adds the model's graph hash and the
 * running statistics, version 3 every rank's error-feedback residual of the
 * gradient containers; version 1 and 2 files still load (no residual).
 */
#ifndef SFPW_CHECKPOINT_H
#define SFPW_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sfpw_ckpt {
    char model[32];
    uint64_t model_hash; /* sfpw_model.hash (0 in version 1 files) */
    uint32_t policy;     /* sfp_policy_kind */
    uint32_t optimizer;  /* sfpw_opt_kind   */
    uint64_t nparams;
    uint64_t next_epoch; /* first epoch still to run (0-based) */
    uint64_t step;       /* global steps done                  */
    uint64_t seed;
    uint64_t batch;
    float *master, *s1, *s2;   /* nparams each                  */
    uint64_t nbuffers;
    float *buffers;            /* running statistics, nbuffers  */
    unsigned char *policy_state;
    uint64_t policy_len;
    uint64_t resid_ranks;      /* ranks with a residual (0: none)   */
    float *resid;              /* resid_ranks x nparams, rank order */
} sfpw_ckpt;

enum {
    SFPW_CKPT_EIO = -301,
    SFPW_CKPT_EFORMAT = -302,
    SFPW_CKPT_ENOMEM = -303,
};

const char *sfpw_ckpt_strerror(int err);
int sfpw_ckpt_save(const char *path, const sfpw_ckpt *c);
/* On success c owns malloc'd arrays (free with sfpw_ckpt_free). */
int sfpw_ckpt_load(const char *path, sfpw_ckpt *c);
void sfpw_ckpt_free(sfpw_ckpt *c);

#endif
