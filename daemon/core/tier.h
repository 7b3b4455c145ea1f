/*
 * tier.h - what a storage tier below DRAM is to the store. The tiers
 * themselves live in daemon/tiers/ (disk, the network tier over peer sfpd
 * daemons); the composition root hands the store their registry (a table
 * of sfpd_tier_kind) and the store builds, from tier_order, an ordered list
 * of lower tiers it knows only through this interface.
 *
 * The store keeps every frame's metadata and its DRAM copy; a lower tier
 * keeps byte copies of frames it is handed, addressed by an opaque
 * sfpd_loc. The split between loop-thread and pool-thread calls is what lets
 * a network tier slot in: reserve/release/job bookkeeping are cheap and run
 * on the loop; write/read/kill may block and run on the thread pool only.
 * A tier counts its own I/O in the stats it owns (e.g. the disk tier's
 * spills and disk reads).
 *
 * Ownership: the tier never keeps a pointer to frame memory after write()
 * returns; read() fills a buffer the caller owns.
 */
#ifndef SFPD_CORE_TIER_H
#define SFPD_CORE_TIER_H

#include "base/config.h"
#include "base/sfpd.h"
#include "base/stats.h"

struct uv_loop_s;
typedef struct sfpd_tier sfpd_tier;

/* Tiers below DRAM a store can stack. */
#define SFPD_MAX_LOWER 4u

/* A frame's place in a tier. handle is tier private (a segment, a peer). */
typedef struct sfpd_loc {
    void *handle;
    uint64_t off;       /* where the record starts                  */
    uint64_t rec_len;   /* bytes the record occupies in the tier    */
    uint32_t data_off;  /* frame bytes start at off + data_off      */
    uint64_t frame_len;
} sfpd_loc;

/* What a tier records next to a frame so it can be re-adopted. */
typedef struct sfpd_rec_meta {
    const sfpd_key *key;
    uint64_t seq;
    uint64_t frame_checksum;
    uint64_t count;          /* elements of the tensor */
    uint32_t dtype;
    uint8_t mbits, ebits, coder;
} sfpd_rec_meta;

/* Callback for each live record found by adopt(). Return 0 to keep it. */
typedef int (*sfpd_adopt_fn)(void *arg, const char *job_id, uint32_t owner_uid,
                             void *job_state, const sfpd_rec_meta *meta,
                             const sfpd_loc *loc);

typedef struct sfpd_tier_ops {
    const char *name;
    /* loop: the tier's state for one job (*job_state; NULL is allowed). */
    int (*job_open)(sfpd_tier *t, const char *job_id, uint32_t owner_uid, void **job_state);
    /* loop: forget a job; its data is deleted asynchronously. */
    void (*job_close)(sfpd_tier *t, void *job_state, bool delete_data);
    /* loop: reserve room for a record; fills loc. -ENOSPC when over budget. */
    int (*reserve)(sfpd_tier *t, void *job_state, const sfpd_key *key, uint64_t frame_len, sfpd_loc *loc);
    /* loop: the record at loc is gone (dropped, or its write failed). */
    void (*release)(sfpd_tier *t, const sfpd_loc *loc, bool written);
    /* pool: write a reserved record; 0 or -errno. */
    int (*write)(sfpd_tier *t, const sfpd_loc *loc, const sfpd_rec_meta *meta, const void *frame);
    /* pool: read loc's frame bytes into buf[0..loc->frame_len); 0 or -errno:
     * -ENOLINK when the tier no longer has the frame or cannot be reached
     * (the store answers E_LOST, never guesses), -EBADMSG when what came
     * back is not the frame that was written (E_CORRUPT). */
    int (*read)(sfpd_tier *t, const sfpd_loc *loc, void *buf);
    /* pool: mark the record dead so it is not re-adopted; 0 or -errno. */
    int (*kill)(sfpd_tier *t, const sfpd_loc *loc);
    /* loop, start-up only: report every live record; may block. */
    int (*adopt)(sfpd_tier *t, sfpd_adopt_fn fn, void *arg);
    /* loop: bytes used (incl. dead records awaiting deletion) */
    uint64_t (*used)(const sfpd_tier *t);
    /* loop, optional: apply the live options (SIGHUP) */
    void (*configure)(sfpd_tier *t, const sfpd_config *cfg);
    /* loop, optional: called every 100 ms by the store's timer (not while
     * it shuts down); the tier may start pool work of its own from here
     * (e.g. the network tier's lease renewals) */
    void (*tick)(sfpd_tier *t);
    /* loop, optional: the tier's own detail in a snapshot (e.g. s->peers);
     * 0 or SFPD_E_NO_MEMORY */
    int (*fill_snapshot)(const sfpd_tier *t, sfpd_snapshot *s);
    void (*destroy)(sfpd_tier *t);
} sfpd_tier_ops;

struct sfpd_tier {
    const sfpd_tier_ops *ops;
    uint64_t budget;     /* bytes; 0: unlimited (the tier's configure sets it) */
    uint64_t frames;     /* live records, maintained by the store */
    uint64_t frame_bytes;/* their frame bytes, maintained by the store */
    uint64_t high_water; /* of used() */
};

/*
 * A row of the tier registry (tiers/registry.c): the word of tier_order and
 * the constructor. unused, if set, runs at start-up for a kind tier_order
 * leaves out (e.g. to warn that options of that tier go unused).
 */
typedef struct sfpd_tier_kind {
    const char *name;
    int (*create)(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_tier **out);
    void (*unused)(const sfpd_config *cfg);
} sfpd_tier_kind;


#endif /* SFPD_CORE_TIER_H */
