/* stats.c - per-thread counters summed on read. */
#include "base/stats.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct tblock {
    _Atomic uint64_t c[SFPD_C_COUNT];
    _Atomic uint64_t err[SFPD_STATUS_SLOTS];
    _Atomic uint64_t h[SFPD_H_COUNT][SFPD_HIST_BUCKETS];
    _Atomic uint64_t hsum[SFPD_H_COUNT];
    struct tblock *next;
} tblock;

static pthread_mutex_t blocks_mu = PTHREAD_MUTEX_INITIALIZER;
static tblock *blocks;
static _Thread_local tblock *mine;
/* Fallback when a block cannot be allocated: shared, still atomic. */
static tblock fallback;

static tblock *my_block(void)
{
    tblock *b = mine;
    if (b)
        return b;
    /* plain calloc: sfpd_malloc would recurse into the stats */
    b = calloc(1, sizeof(*b));
    if (!b)
        return &fallback;
    pthread_mutex_lock(&blocks_mu);
    b->next = blocks;
    blocks = b;
    pthread_mutex_unlock(&blocks_mu);
    mine = b;
    return b;
}

void sfpd_stat_inc(int counter, uint64_t v)
{
    if (counter < 0 || counter >= SFPD_C_COUNT)
        return;
    atomic_fetch_add_explicit(&my_block()->c[counter], v, memory_order_relaxed);
}

void sfpd_stat_error(int status)
{
    int slot = status > 0 && status < SFPD_STATUS_SLOTS - 1 ? status : SFPD_STATUS_SLOTS - 1;
    tblock *b = my_block();
    atomic_fetch_add_explicit(&b->err[slot], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->c[SFPD_C_ERRORS], 1, memory_order_relaxed);
}

void sfpd_stat_latency(int hist, uint64_t ns)
{
    uint64_t us = ns / 1000;
    int bucket = 0;
    tblock *b;

    if (hist < 0 || hist >= SFPD_H_COUNT)
        return;
    while (us && bucket < SFPD_HIST_BUCKETS - 1) {
        us >>= 1;
        bucket++;
    }
    b = my_block();
    atomic_fetch_add_explicit(&b->h[hist][bucket], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->hsum[hist], ns, memory_order_relaxed);
}

double sfpd_hist_quantile_us(const sfpd_hist *h, double q)
{
    uint64_t target, acc = 0;
    if (!h->count)
        return 0;
    target = (uint64_t)ceil(q * (double)h->count);
    if (target == 0)
        target = 1;
    for (int i = 0; i < SFPD_HIST_BUCKETS; i++) {
        acc += h->buckets[i];
        if (acc >= target)
            return i == 0 ? 1.0 : (double)(UINT64_C(1) << i);
    }
    return (double)(UINT64_C(1) << (SFPD_HIST_BUCKETS - 1));
}

static void add_block(sfpd_snapshot *s, tblock *b)
{
    for (int i = 0; i < SFPD_C_COUNT; i++)
        s->counters[i] += atomic_load_explicit(&b->c[i], memory_order_relaxed);
    for (int i = 0; i < SFPD_STATUS_SLOTS; i++)
        s->errors_by_status[i] += atomic_load_explicit(&b->err[i], memory_order_relaxed);
    for (int i = 0; i < SFPD_H_COUNT; i++) {
        for (int j = 0; j < SFPD_HIST_BUCKETS; j++) {
            uint64_t v = atomic_load_explicit(&b->h[i][j], memory_order_relaxed);
            s->hists[i].buckets[j] += v;
            s->hists[i].count += v;
        }
        s->hists[i].sum_ns += atomic_load_explicit(&b->hsum[i], memory_order_relaxed);
    }
}

void sfpd_snapshot_sum_counters(sfpd_snapshot *s)
{
    memset(s->counters, 0, sizeof(s->counters));
    memset(s->errors_by_status, 0, sizeof(s->errors_by_status));
    memset(s->hists, 0, sizeof(s->hists));
    pthread_mutex_lock(&blocks_mu);
    for (tblock *b = blocks; b; b = b->next)
        add_block(s, b);
    pthread_mutex_unlock(&blocks_mu);
    add_block(s, &fallback);
}

int sfpd_snapshot_tier(const sfpd_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_tiers; i++)
        if (strcmp(s->tiers[i].name, name) == 0)
            return (int)i;
    return -1;
}

void sfpd_snapshot_free(sfpd_snapshot **s)
{
    if (!s || !*s)
        return;
    /* the counted allocator (base/sfpd.c) made these; it sits above the
     * stats, which count its failures, so plain free() here (what
     * sfpd_free is) */
    free((*s)->jobs);
    free((*s)->peers);
    free((*s)->peer_clients);
    free(*s);
    *s = NULL;
}

const char *sfpd_counter_name(int counter)
{
    static const char *const names[] = {
#define SFPD__C_NAME(id, name, unit, help) name,
        SFPD_COUNTERS(SFPD__C_NAME)
#undef SFPD__C_NAME
    };
    return counter >= 0 && counter < SFPD_C_COUNT ? names[counter] : "?";
}

static const char *const hist_names[] = {
#define SFPD__H_NAME(id, name, help) name,
    SFPD_HISTOGRAMS(SFPD__H_NAME)
#undef SFPD__H_NAME
};

void sfpd_print_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

void sfpd_snapshot_print(const sfpd_snapshot *s, FILE *f)
{
    fprintf(f, "uptime_seconds %.3f\n", s->uptime_seconds);
    for (int i = 0; i < SFPD_C_COUNT; i++)
        fprintf(f, "%s %llu\n", sfpd_counter_name(i), (unsigned long long)s->counters[i]);
    for (int i = 1; i < SFPD_STATUS_SLOTS; i++)
        if (s->errors_by_status[i])
            fprintf(f, "errors_by_status{status=\"%d\"} %llu\n", i,
                    (unsigned long long)s->errors_by_status[i]);
    for (int i = 0; i < SFPD_H_COUNT; i++) {
        const sfpd_hist *h = &s->hists[i];
        fprintf(f, "%s_count %llu\n", hist_names[i], (unsigned long long)h->count);
        fprintf(f, "%s_p50_us %.0f\n", hist_names[i], sfpd_hist_quantile_us(h, 0.5));
        fprintf(f, "%s_p99_us %.0f\n", hist_names[i], sfpd_hist_quantile_us(h, 0.99));
    }
    fprintf(f, "bytes_in_stored %llu\n", (unsigned long long)s->bytes_in);
    fprintf(f, "bytes_stored %llu\n", (unsigned long long)s->bytes_stored);
    fprintf(f, "values_stored %llu\n", (unsigned long long)s->values);
    fprintf(f, "compression_ratio %.3f\n", s->compression_ratio);
    fprintf(f, "bits_per_value %.3f\n", s->bits_per_value);
    fprintf(f, "connections %u\n", s->connections);
    fprintf(f, "inflight %u\n", s->inflight);
    for (size_t i = 0; i < s->n_tiers; i++) {
        const sfpd_tier_snapshot *t = &s->tiers[i];
        fprintf(f, "tier_bytes{tier=\"%s\"} %llu\n", t->name, (unsigned long long)t->bytes);
        fprintf(f, "tier_used_bytes{tier=\"%s\"} %llu\n", t->name, (unsigned long long)t->used_bytes);
        fprintf(f, "tier_budget_bytes{tier=\"%s\"} %llu\n", t->name, (unsigned long long)t->budget_bytes);
        fprintf(f, "tier_frames{tier=\"%s\"} %llu\n", t->name, (unsigned long long)t->frames);
        fprintf(f, "tier_high_water_bytes{tier=\"%s\"} %llu\n", t->name, (unsigned long long)t->high_water);
    }
    for (size_t i = 0; i < s->n_jobs; i++) {
        const sfpd_job_snapshot *j = &s->jobs[i];
        fputs("job{job=\"", f);
        sfpd_print_label(f, j->job_id);
        fprintf(f, "\"} uid=%u connections=%u ranks=%u orphaned=%d bytes_in=%llu bytes_stored=%llu",
                j->uid, j->connections, j->ranks, j->orphaned,
                (unsigned long long)j->bytes_in, (unsigned long long)j->bytes_stored);
        for (size_t t = 0; t < s->n_tiers; t++) /* <tier>_bytes=, labelled by tier name */
            fprintf(f, " %s_bytes=%llu", s->tiers[t].name, (unsigned long long)j->tiers[t].bytes);
        fprintf(f, " dram_high_water=%llu frames=%llu\n", (unsigned long long)j->dram_high_water,
                (unsigned long long)j->frames);
    }
    for (size_t i = 0; i < s->n_peers; i++) {
        const sfpd_peer_snapshot *p = &s->peers[i];
        fprintf(f, "peer{peer=\"%s\"} up=%d bytes_sent=%llu bytes_received=%llu frames_sent=%llu "
                   "frames_received=%llu held_bytes=%llu held_frames=%llu rtt_us=%.0f failures=%llu "
                   "refusals=%llu lost_frames=%llu limit_bytes=%llu lease_renewals=%llu lease_ms=%.0f\n",
                p->address, p->up, (unsigned long long)p->bytes_sent,
                (unsigned long long)p->bytes_received, (unsigned long long)p->frames_sent,
                (unsigned long long)p->frames_received, (unsigned long long)p->held_bytes,
                (unsigned long long)p->held_frames, p->rtt_seconds * 1e6,
                (unsigned long long)p->failures, (unsigned long long)p->refusals,
                (unsigned long long)p->lost_frames, (unsigned long long)p->limit_bytes,
                (unsigned long long)p->lease_renewals, p->lease_seconds * 1e3);
    }
    for (size_t i = 0; i < s->n_peer_clients; i++) {
        const sfpd_peer_client_snapshot *p = &s->peer_clients[i];
        fprintf(f, "peer_client{node=\"%s\"} held_bytes=%llu held_frames=%llu bytes_received=%llu "
                   "bytes_sent=%llu refusals=%llu limit_bytes=%llu\n",
                p->node, (unsigned long long)p->held_bytes, (unsigned long long)p->held_frames,
                (unsigned long long)p->bytes_received, (unsigned long long)p->bytes_sent,
                (unsigned long long)p->refusals, (unsigned long long)p->limit_bytes);
    }
    if (s->held.on)
        fprintf(f, "peer_serve bytes=%llu frames=%llu budget_bytes=%llu high_water=%llu lease_ms=%.0f "
                   "leases_expired=%llu expired_frames=%llu expired_bytes=%llu\n",
                (unsigned long long)s->held.bytes, (unsigned long long)s->held.frames,
                (unsigned long long)s->held.budget_bytes, (unsigned long long)s->held.high_water,
                s->held.lease_seconds * 1e3, (unsigned long long)s->held.leases_expired,
                (unsigned long long)s->held.expired_frames, (unsigned long long)s->held.expired_bytes);
}

void sfpd_stats_shutdown(void)
{
    pthread_mutex_lock(&blocks_mu);
    while (blocks) {
        tblock *b = blocks;
        blocks = b->next;
        free(b);
    }
    pthread_mutex_unlock(&blocks_mu);
    mine = NULL;
}
