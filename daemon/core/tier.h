/*
 * tier.h - lower storage tiers below DRAM: disk (tier_disk.c) and peer sfpd
 * daemons over gRPC (tier_peer.c), stacked in the order of tier_order.
 *
 * The store keeps every frame's metadata and its DRAM copy; a lower tier
 * keeps byte copies of frames it is handed, addressed by an opaque
 * sfpd_loc. The split between loop-thread and pool-thread calls is what lets
 * a network tier slot in: reserve/release/job bookkeeping are cheap and run
 * on the loop; write/read/kill may block and run on the thread pool only.
 *
 * Ownership: the tier never keeps a pointer to frame memory after write()
 * returns; read() fills a buffer the caller owns.
 */
#ifndef SFPD_TIER_H
#define SFPD_TIER_H

#include "base/sfpd.h"

typedef struct sfpd_tier sfpd_tier;

/* Tiers below DRAM a store can stack (disk and the network tier). */
#define SFPD_MAX_LOWER 2u

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
    /* loop: per-job state; job_tag names the job in the tier (stable). */
    int (*job_open)(sfpd_tier *t, const char *job_id, uint32_t owner_uid, void **job_state);
    /* loop: forget a job; its data is deleted asynchronously. */
    void (*job_close)(sfpd_tier *t, void *job_state, bool delete_data);
    /* loop: reserve room for a record; fills loc. -ENOSPC when over budget. */
    int (*reserve)(sfpd_tier *t, void *job_state, const sfpd_key *key, uint64_t frame_len, sfpd_loc *loc);
    /* loop: the record at loc is gone (dropped, or its write failed). */
    void (*release)(sfpd_tier *t, const sfpd_loc *loc, bool written);
    /* pool: write a reserved record; 0 or -errno. */
    int (*write)(sfpd_tier *t, const sfpd_loc *loc, const sfpd_rec_meta *meta, const void *frame);
    /* pool: read loc's frame bytes into buf[0..loc->frame_len); 0 or -errno. */
    int (*read)(sfpd_tier *t, const sfpd_loc *loc, void *buf);
    /* pool: mark the record dead so it is not re-adopted; 0 or -errno. */
    int (*kill)(sfpd_tier *t, const sfpd_loc *loc);
    /* loop, start-up only: report every live record; may block. */
    int (*adopt)(sfpd_tier *t, sfpd_adopt_fn fn, void *arg);
    /* loop: bytes used (incl. dead records awaiting deletion) */
    uint64_t (*used)(const sfpd_tier *t);
    void (*destroy)(sfpd_tier *t);
} sfpd_tier_ops;

struct sfpd_tier {
    const sfpd_tier_ops *ops;
    uint64_t budget;     /* 0: unlimited (live-changeable) */
    uint64_t segment_size;
    uint64_t frames;     /* live records, maintained by the store */
    uint64_t high_water;
};


#endif /* SFPD_TIER_H */
