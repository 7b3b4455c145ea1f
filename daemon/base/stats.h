/*
 * stats.h - sfpd statistics model.
 *
 * Counters and latency histograms are kept per thread (the loop thread and
 * each pool thread get their own block on first use, no locks on the hot
 * path) and summed on read into a snapshot. Gauges (bytes per tier, frames,
 * jobs, connections) are owned by the loop thread and copied into the same
 * snapshot. sfpd_snapshot is the one structure that every reporter reads:
 * the SIGUSR1 dump, the IPC Stats reply, gRPC and Prometheus; the
 * composition root (daemon.c) hands them a sfpd_snapshot_source. What
 * comes in several (tiers, jobs, peers) is an array labelled by name.
 */
#ifndef SFPD_BASE_STATS_H
#define SFPD_BASE_STATS_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

/* X(ID, name, unit, help). Counters only go up. */
#define SFPD_COUNTERS(X)                                                         \
    X(PUTS,            "puts",               "requests", "Put requests completed ok") \
    X(GETS,            "gets",               "requests", "Get requests completed ok") \
    X(DROPS,           "drops",              "requests", "keys dropped (Drop, Get+drop, EndJob excluded)") \
    X(ENCODES,         "encodes",            "requests", "Encode requests completed ok") \
    X(DECODES,         "decodes",            "requests", "Decode requests completed ok") \
    X(BYTES_IN,        "bytes_in",           "bytes",    "uncompressed tensor bytes received by Put") \
    X(BYTES_STORED_IN, "bytes_stored_in",    "bytes",    "frame bytes produced by Put") \
    X(VALUES_IN,       "values_in",          "values",   "tensor elements received by Put") \
    X(BYTES_OUT,       "bytes_out",          "bytes",    "uncompressed tensor bytes returned by Get") \
    X(SPILLS,          "spills",             "frames",   "frames written to the disk tier") \
    X(SPILL_BYTES,     "spill_bytes",        "bytes",    "frame bytes written to the disk tier") \
    X(SPILL_CLEAN,     "spill_clean",        "frames",   "evictions that needed no write (disk copy kept)") \
    X(DISK_READS,      "disk_reads",         "frames",   "frames read back from the disk tier") \
    X(DISK_READ_BYTES, "disk_read_bytes",    "bytes",    "frame bytes read back from the disk tier") \
    X(DRAM_HITS,       "dram_hits",          "requests", "Gets served from DRAM, frame never left DRAM") \
    X(PREFETCH_ISSUED, "prefetch_issued",    "frames",   "prefetch reads started") \
    X(PREFETCH_HITS,   "prefetch_hits",      "requests", "Gets of a spilled frame served from DRAM thanks to prefetch") \
    X(PREFETCH_MISSES, "prefetch_misses",    "requests", "Gets that had to read their frame from disk") \
    X(PREFETCH_WASTED, "prefetch_wasted",    "frames",   "prefetched frames dropped or evicted unused") \
    X(CORRUPT,         "corrupt_frames",     "frames",   "frames that failed their checksum on read back") \
    X(ERRORS,          "errors",             "replies",  "error replies sent (all codes)") \
    X(CONN_ACCEPTED,   "connections_accepted", "connections", "connections accepted") \
    X(CONN_REJECTED,   "connections_rejected", "connections", "connections refused (credentials, limits)") \
    X(PROTOCOL_ERRORS, "protocol_errors",    "events",   "malformed messages and framing violations") \
    X(ALLOC_FAILS,     "alloc_fails",        "events",   "failed allocations") \
    X(JOBS_ENDED,      "jobs_ended",         "jobs",     "jobs ended, once each: at their first EndJob, or at the end of their grace period if they held stashes") \
    X(JOBS_READOPTED,  "jobs_readopted",     "jobs",     "jobs whose spill files were re-adopted after a restart") \
    X(FRAMES_READOPTED,"frames_readopted",   "frames",   "spilled frames recovered at start-up") \
    X(FRAMES_PUT,      "frames_put",         "requests", "PutFrame requests completed ok (also counted in puts)") \
    X(FRAMES_REFUSED,  "frames_refused",     "frames",   "PutFrame frames that failed verification (E_CODEC)") \
    X(IO_OPS,          "io_ops",             "ops",      "tier I/O handed to the pool: spill writes, prefetch reads, dead-record marks") \
    X(IO_BATCHES,      "io_batches",         "batches",  "pool jobs that carried them (a spill write or prefetch read alone, a loop turn's dead-record marks together, up to 64)")

enum {
#define SFPD__C_ENUM(id, name, unit, help) SFPD_C_##id,
    SFPD_COUNTERS(SFPD__C_ENUM)
#undef SFPD__C_ENUM
    SFPD_C_COUNT
};

/* Latency histograms: bucket i counts latencies in [2^(i-1), 2^i) us. */
#define SFPD_HISTOGRAMS(X)                                  \
    X(PUT,    "put_latency",    "Put, receipt to reply")    \
    X(GET,    "get_latency",    "Get, receipt to reply")    \
    X(ENCODE, "encode_latency", "frame encode on the pool") \
    X(DECODE, "decode_latency", "frame decode on the pool") \
    X(DISK_WRITE, "disk_write_latency", "spill write")     \
    X(DISK_READ,  "disk_read_latency",  "spill read + verify")

enum {
#define SFPD__H_ENUM(id, name, help) SFPD_H_##id,
    SFPD_HISTOGRAMS(SFPD__H_ENUM)
#undef SFPD__H_ENUM
    SFPD_H_COUNT
};
#define SFPD_HIST_BUCKETS 32

/* Error replies by status code (ipc.proto Status), last slot = other. */
#define SFPD_STATUS_SLOTS 21

/* Thread safe, lock free: adds to the calling thread's block. */
void sfpd_stat_inc(int counter, uint64_t v);
void sfpd_stat_latency(int hist, uint64_t ns);
void sfpd_stat_error(int status);

typedef struct sfpd_hist {
    uint64_t buckets[SFPD_HIST_BUCKETS];
    uint64_t count;
    uint64_t sum_ns;
} sfpd_hist;

/* Value at quantile q (0..1) as the upper edge of its bucket, in us. */
double sfpd_hist_quantile_us(const sfpd_hist *h, double q);

/* Tiers in a snapshot: DRAM and up to four below it (core/tier.h). */
#define SFPD_MAX_TIERS 5

/* What a job keeps in one tier. */
typedef struct sfpd_tier_use {
    uint64_t bytes, frames;
} sfpd_tier_use;

typedef struct sfpd_job_snapshot {
    char job_id[129];
    uint32_t uid;
    uint32_t connections;
    uint32_t ranks;         /* distinct ranks seen                        */
    int orphaned;           /* in its grace period, no connection         */
    uint64_t bytes_in;      /* uncompressed bytes currently stored        */
    uint64_t bytes_stored;  /* frame bytes currently stored (all tiers)   */
    uint64_t values;        /* elements currently stored                  */
    uint64_t dram_high_water;
    uint64_t frames;
    /* per tier, in the order (and with the names) of sfpd_snapshot.tiers */
    sfpd_tier_use tiers[SFPD_MAX_TIERS];
} sfpd_job_snapshot;

/* A peer this daemon spills to (network tier, client side). */
typedef struct sfpd_peer_snapshot {
    char address[128];
    int up;
    uint64_t bytes_sent, bytes_received;     /* frame bytes Put / fetched back */
    uint64_t frames_sent, frames_received;
    uint64_t held_bytes, held_frames;        /* placed there now             */
    double rtt_seconds;                      /* smoothed call round trip     */
    uint64_t failures, refusals, lost_frames;
    uint64_t limit_bytes, advertised_free;
    double lease_seconds;                    /* the peer's, 0: none/unknown */
    uint64_t lease_renewals;
} sfpd_peer_snapshot;

/* A daemon whose frames this daemon holds (Peer service, serving side). */
typedef struct sfpd_peer_client_snapshot {
    char node[256];
    uint64_t held_bytes, held_frames;
    uint64_t bytes_received, bytes_sent, refusals, limit_bytes;
} sfpd_peer_client_snapshot;

typedef struct sfpd_tier_snapshot {
    char name[16];           /* "dram", then the tier_order words */
    uint64_t bytes;          /* frame bytes the tier holds (DRAM: with the
                                reservations of prefetch reads in flight) */
    uint64_t used_bytes;     /* what it occupies for them, what budget_bytes
                                limits (disk: records, see docs)           */
    uint64_t budget_bytes, frames;
    uint64_t high_water;     /* of used_bytes                               */
} sfpd_tier_snapshot;

/* One stash, for per-tensor listings (gRPC ListTensors only, never
 * Prometheus labels). Filled by sfpd_store_list_tensors(). */
typedef struct sfpd_tensor_snapshot {
    char job_id[129];
    char name[256];
    uint32_t rank;
    uint64_t step;
    uint32_t dtype;          /* sfp_dtype                     */
    uint8_t mbits, ebits;
    uint8_t coder;           /* sfp_coder                     */
    uint64_t count;          /* elements                      */
    uint64_t raw_bytes;      /* uncompressed bytes            */
    uint64_t frame_bytes;    /* stored frame bytes            */
    const char *tier;        /* name of the tier it is read from (static) */
} sfpd_tensor_snapshot;

/*
 * A consistent-enough copy of everything sfpd reports. Counters are summed
 * over threads without stopping them, so two counters can be off by the
 * requests in flight; gauges are exact (taken on the loop thread).
 * Owned by the caller; free with sfpd_snapshot_free().
 */
typedef struct sfpd_snapshot {
    uint64_t taken_unix_ns;
    double uptime_seconds;
    uint64_t counters[SFPD_C_COUNT];
    uint64_t errors_by_status[SFPD_STATUS_SLOTS];
    /* label of each slot (the IPC status name, static text), filled by the
     * IPC edge; NULL: a slot no status uses */
    const char *status_names[SFPD_STATUS_SLOTS];
    sfpd_hist hists[SFPD_H_COUNT];
    /* gauges */
    uint64_t bytes_in;       /* uncompressed bytes currently stored */
    uint64_t bytes_stored;   /* frame bytes currently stored        */
    uint64_t values;         /* elements currently stored           */
    double compression_ratio;/* bytes_in / bytes_stored, 0 if empty */
    double bits_per_value;   /* 8 * bytes_stored / values           */
    uint32_t connections;
    uint32_t inflight;
    size_t n_tiers;
    sfpd_tier_snapshot tiers[SFPD_MAX_TIERS]; /* DRAM first, then tier_order */
    size_t n_jobs;
    sfpd_job_snapshot *jobs;
    /* network tier (owned, freed by sfpd_snapshot_free) */
    size_t n_peers;
    sfpd_peer_snapshot *peers;
    size_t n_peer_clients;
    sfpd_peer_client_snapshot *peer_clients;
    /* frames held for other daemons, all nodes together (Peer service) */
    struct {
        int on;                  /* peering = 1 */
        uint64_t bytes, frames, budget_bytes, high_water;
        double lease_seconds;    /* peer_lease (0: none) */
        uint64_t leases_expired, expired_frames, expired_bytes;
    } held;
} sfpd_snapshot;

/*
 * Where a reporter gets snapshots: take() fills *out (owned by the caller,
 * sfpd_snapshot_free) and returns 0 or a negative code. Loop thread only:
 * a reporter on another thread hops onto the loop first. The composition
 * root (daemon.c) provides it; the edges only call it.
 */
typedef struct sfpd_snapshot_source {
    int (*take)(void *arg, sfpd_snapshot **out);
    void *arg;
} sfpd_snapshot_source;

void sfpd_snapshot_sum_counters(sfpd_snapshot *s);
/* Index of the tier called name in s->tiers, or -1. */
int sfpd_snapshot_tier(const sfpd_snapshot *s, const char *name);
void sfpd_snapshot_free(sfpd_snapshot **s);
/* "name value" lines; per-job lines as job{job="id"} field=value ...;
 * names inside quotes are escaped as Prometheus label values are (\\ \"). */
void sfpd_snapshot_print(const sfpd_snapshot *s, FILE *f);
/* s with backslash, quote and newline escaped (a label value's escaping). */
void sfpd_print_label(FILE *f, const char *s);

const char *sfpd_counter_name(int counter);
/* Frees every per-thread block; only at exit, after the pool is idle. */
void sfpd_stats_shutdown(void);

#endif /* SFPD_BASE_STATS_H */
