/*
 * store.h - the stash store: jobs, the key index, the DRAM tier with its
 * global and per-job budgets, spill to lower tiers by farthest next use,
 * prefetch in backward order.
 *
 * Loop thread only. Every call returns 0 or a negative SFPD_E_* code
 * (core/status.h), unless it says otherwise. Put and Get are asynchronous:
 * they return 0 when the work has started and later call done() exactly
 * once on the loop thread; an error return means done() will not be called.
 * PutFrame and GetFrame of a DRAM frame up to 1 MiB do their work on the
 * loop thread and call done() before they return 0.
 */
#ifndef SFPD_STORE_H
#define SFPD_STORE_H

#include <sfp/sfp.h>
#include "base/config.h"
#include "core/status.h"
#include "base/sfpd.h"
#include "base/stats.h"
#include "core/tier.h"

struct uv_loop_s;
typedef struct sfpd_store sfpd_store;
typedef struct sfpd_job sfpd_job;

/*
 * A client's shared-memory region, mapped in the daemon. Reference counted
 * on the loop thread: every work item that touches it holds a reference,
 * so a closing connection never unmaps memory a pool thread still reads.
 */
typedef struct sfpd_shm {
    uint8_t *base;
    uint64_t size;
    int refs;
} sfpd_shm;

/* Maps fd (not consumed) after checking it is a memfd sealed against
 * shrinking and at most max bytes. SFPD_E_NO_SHM (or SFPD_E_NO_MEMORY)
 * with *why a static reason. */
int sfpd_shm_map(int fd, uint64_t max, sfpd_shm **out, const char **why);
sfpd_shm *sfpd_shm_ref(sfpd_shm *s);
void sfpd_shm_unref(sfpd_shm **s);

typedef struct sfpd_result {
    int status;         /* 0 or SFPD_E_*                       */
    int codec_err;      /* libsfp error when relevant          */
    const char *msg;    /* static detail or NULL               */
    uint64_t stored_bytes;
    int tier;           /* Put: SFPD_PUT_DRAM or SFPD_PUT_LOWER    */
    uint64_t count, length;
    uint32_t dtype;
    bool hit;
} sfpd_result;

/* Where a Put's frame went (sfpd_result.tier; the IPC PutReply.tier). */
enum { SFPD_PUT_DRAM = 0, SFPD_PUT_LOWER = 1 };

typedef void (*sfpd_done_fn)(void *arg, const sfpd_result *r);

/*
 * Builds the store and its lower tiers: tier_order names them (after
 * "dram"), kinds[0..n_kinds) is the registry they are made from
 * (tiers/registry.c, handed in by the composition root). Logs why it
 * fails: SFPD_E_INVALID (tier_order), SFPD_E_IO (a tier cannot start),
 * SFPD_E_NO_MEMORY.
 */
int sfpd_store_create(struct uv_loop_s *loop, const sfpd_config *cfg, const sfpd_tier_kind *kinds,
                      size_t n_kinds, sfpd_store **out);
/* Applies live limits (budgets, quota, prefetch depth, grace). */
void sfpd_store_configure(sfpd_store *st, const sfpd_config *cfg);
/* Start-up: re-adopts what the lower tiers kept (the disk tier's spill
 * files); their jobs wait grace_period for a Hello. SFPD_E_IO (logged) if
 * a tier's scan failed; what was found is kept either way. */
int sfpd_store_adopt(sfpd_store *st);

/* Attaches a connection to a job (created if new). SFPD_E_PERMISSION if
 * the job belongs to another uid and uid is not 0. */
int sfpd_store_job_attach(sfpd_store *st, const char *job_id, uint32_t uid, uint32_t rank,
                          sfpd_job **out);
void sfpd_store_job_detach(sfpd_store *st, sfpd_job *job);
/* EndJob: frees every stash of the job, in all tiers. */
void sfpd_store_job_end(sfpd_store *st, sfpd_job *job);
void sfpd_store_job_snapshot(const sfpd_job *job, sfpd_job_snapshot *out);

int sfpd_store_put(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                   uint64_t off, uint64_t len, uint64_t count, const sfp_params *p,
                   sfpd_done_fn done, void *arg);
int sfpd_store_get(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                   uint64_t off, uint64_t cap, bool drop, sfpd_done_fn done, void *arg);
/*
 * PutFrame: stores a frame the client encoded, [off, off+len) of shm, under
 * key after verifying a private copy of it (header, sizes, checksum):
 * SFPD_E_CODEC (codec_err says why) for a frame that fails, SFPD_E_TOO_LARGE
 * for one over max_tensor (its bytes or what it decodes to). The entry is
 * like a Put's: budgets, spills, prefetch and stats treat both alike.
 */
int sfpd_store_put_frame(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                         uint64_t off, uint64_t len, sfpd_done_fn done, void *arg);
/* GetFrame: the stored frame, verified, copied to [off, off+cap) of shm
 * (result: length = frame bytes, count = elements it decodes to). */
int sfpd_store_get_frame(sfpd_store *st, sfpd_job *job, const sfpd_key *key, sfpd_shm *shm,
                         uint64_t off, uint64_t cap, bool drop, sfpd_done_fn done, void *arg);
int sfpd_store_drop(sfpd_store *st, sfpd_job *job, const sfpd_key *key);
/* Prefetch hint: keep depth (0: configured) stashes ahead in DRAM. */
void sfpd_store_prefetch(sfpd_store *st, sfpd_job *job, unsigned depth);

/* Fills gauges, tiers and jobs of a snapshot (counters: stats.c). */
int sfpd_store_fill_snapshot(sfpd_store *st, sfpd_snapshot *s);
uint32_t sfpd_store_inflight(const sfpd_store *st);
/* The frames this daemon holds for peers (NULL unless peering = 1). */
struct sfpd_held *sfpd_store_held(sfpd_store *st);

/* --- reporters (gRPC, metrics); loop thread only --- */
/*
 * Lists the stashes of job_id (NULL or "": every job), oldest first, at most
 * max of them into *out (caller frees with sfpd_free; NULL when none) and
 * their number into *n; *total counts every match. 0 or SFPD_E_NO_MEMORY.
 */
int sfpd_store_list_tensors(sfpd_store *st, const char *job_id, size_t max,
                            sfpd_tensor_snapshot **out, size_t *n, uint64_t *total);
/* EndJob by id (admin path): frees every stash of the job. Reports what was
 * freed. SFPD_E_NOT_FOUND if no such job. */
int sfpd_store_end_job_id(sfpd_store *st, const char *job_id, uint64_t *frames,
                          uint64_t *bytes);

/* Stops timers and calls cb once no pool work of the store is left. */
void sfpd_store_shutdown(sfpd_store *st, void (*cb)(void *), void *arg);
/* After shutdown's callback: frees everything; spill files stay on disk. */
void sfpd_store_destroy(sfpd_store **st);

#endif /* SFPD_STORE_H */
