/*
 * metrics_http.c - Prometheus /metrics over libmicrohttpd.
 *
 * A scrape parks a request on a list and wakes the loop; the loop renders
 * every parked request under the mutex (so a waiter that gives up can never
 * be written to after it left) and broadcasts. The async handle is unref'd:
 * the metrics endpoint never keeps the loop alive, it serves until the daemon
 * has drained and is stopped after uv_run returns.
 */
#include "edges/metrics/metrics_http.h"
#include "base/sfpd.h"
#include "sfpd_build.h"

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <microhttpd.h>

#define SCRAPE_TIMEOUT_S 5
#define MAX_CONNECTIONS 32

typedef struct scrape {
    struct scrape *next;
    bool done;
    char *text;   /* sfpd_malloc'd, owned by the waiter once done */
    size_t len;
} scrape;

struct sfpd_metrics {
    uv_loop_t *loop;
    sfpd_snapshot_source snap;
    struct MHD_Daemon *mhd;
    int port;
    uv_async_t *async;           /* own allocation: freed by its close callback */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    scrape *pending;             /* guarded by mu */
    bool closed;                 /* guarded by mu */
    bool draining;               /* guarded by mu */
};

/* ------------------------------------------------------------ rendering */

typedef struct obuf {
    char *buf;
    size_t len, cap;
    bool fail;
} obuf;

static void outf(obuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(obuf *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (o->fail)
        return;
    for (;;) {
        size_t room = o->cap - o->len;
        va_start(ap, fmt);
        n = vsnprintf(o->buf ? o->buf + o->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->fail = true;
            return;
        }
        if ((size_t)n < room) {
            o->len += (size_t)n;
            return;
        }
        {
            size_t cap = o->cap ? o->cap * 2 : 16384;
            char *b;
            while (cap - o->len <= (size_t)n)
                cap *= 2;
            b = sfpd_realloc(o->buf, cap);
            if (!b) {
                o->fail = true;
                return;
            }
            o->buf = b;
            o->cap = cap;
        }
    }
}

static void head(obuf *o, const char *name, const char *type, const char *help)
{
    outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label value escaping of the text format: backslash, quote, newline. */
static void label_value(obuf *o, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            outf(o, "\\\\");
        else if (*v == '"')
            outf(o, "\\\"");
        else if (*v == '\n')
            outf(o, "\\n");
        else
            outf(o, "%c", *v);
    }
}

static void job_gauge(obuf *o, const sfpd_snapshot *s, const char *name, const char *help,
                      double (*get)(const sfpd_job_snapshot *))
{
    head(o, name, "gauge", help);
    for (size_t i = 0; i < s->n_jobs; i++) {
        outf(o, "%s{job=\"", name);
        label_value(o, s->jobs[i].job_id);
        outf(o, "\"} %.17g\n", get(&s->jobs[i]));
    }
}

static double j_in(const sfpd_job_snapshot *j) { return (double)j->bytes_in; }
static double j_stored(const sfpd_job_snapshot *j) { return (double)j->bytes_stored; }
static double j_ratio(const sfpd_job_snapshot *j)
{
    return j->bytes_stored ? (double)j->bytes_in / (double)j->bytes_stored : 0;
}
static double j_frames(const sfpd_job_snapshot *j) { return (double)j->frames; }
static double j_ranks(const sfpd_job_snapshot *j) { return (double)j->ranks; }

/* Network tier: per-peer families (label peer), per-client ones (node). */
static void peer_metrics(obuf *o, const sfpd_snapshot *s)
{
    static const struct {
        const char *name, *type, *help;
    } pf[] = {
        {"sfp_peer_up", "gauge", "1 if the peer answered its last call."},
        {"sfp_peer_sent_bytes_total", "counter", "Frame bytes placed on the peer."},
        {"sfp_peer_received_bytes_total", "counter", "Frame bytes fetched back from the peer."},
        {"sfp_peer_sent_frames_total", "counter", "Frames placed on the peer."},
        {"sfp_peer_received_frames_total", "counter", "Frames fetched back from the peer."},
        {"sfp_peer_held_bytes", "gauge", "Frame bytes placed on the peer now."},
        {"sfp_peer_held_frames", "gauge", "Frames placed on the peer now."},
        {"sfp_peer_rtt_seconds", "gauge", "Smoothed round trip of calls to the peer."},
        {"sfp_peer_failures_total", "counter", "Calls to the peer that failed."},
        {"sfp_peer_refusals_total", "counter", "Frames the peer refused (full)."},
        {"sfp_peer_lost_frames_total", "counter", "Reads (Get or prefetch) that found a frame gone with the peer."},
        {"sfp_peer_lease_renewals_total", "counter", "Capacity calls that renewed the lease on the peer (or registered this instance)."},
        {"sfp_peer_lease_seconds", "gauge", "The peer's lease from its last reply (0: none or not known)."},
    };
    static const struct {
        const char *name, *type, *help;
    } cf[] = {
        {"sfp_peer_client_held_bytes", "gauge", "Frame bytes held for the client node."},
        {"sfp_peer_client_held_frames", "gauge", "Frames held for the client node."},
        {"sfp_peer_client_received_bytes_total", "counter", "Frame bytes accepted from the client node."},
        {"sfp_peer_client_sent_bytes_total", "counter", "Frame bytes returned to the client node."},
        {"sfp_peer_client_refusals_total", "counter", "Frames of the client node refused (peer_serve_max_bytes)."},
    };
    for (size_t k = 0; s->n_peers && k < SFPD_ARRAY_SIZE(pf); k++) {
        head(o, pf[k].name, pf[k].type, pf[k].help);
        for (size_t i = 0; i < s->n_peers; i++) {
            const sfpd_peer_snapshot *p = &s->peers[i];
            double v = k == 0 ? p->up : k == 1 ? (double)p->bytes_sent : k == 2 ? (double)p->bytes_received
                     : k == 3 ? (double)p->frames_sent : k == 4 ? (double)p->frames_received
                     : k == 5 ? (double)p->held_bytes : k == 6 ? (double)p->held_frames
                     : k == 7 ? p->rtt_seconds : k == 8 ? (double)p->failures
                     : k == 9 ? (double)p->refusals : k == 10 ? (double)p->lost_frames
                     : k == 11 ? (double)p->lease_renewals : p->lease_seconds;
            outf(o, "%s{peer=\"", pf[k].name);
            label_value(o, p->address);
            outf(o, "\"} %.17g\n", v);
        }
    }
    if (s->held.on) { /* frames held for all client nodes together */
        const struct {
            const char *name, *type, *help;
            double v;
        } hf[] = {
            {"sfp_peer_serve_bytes", "gauge", "Frame bytes held for all client nodes together.",
             (double)s->held.bytes},
            {"sfp_peer_serve_frames", "gauge", "Frames held for all client nodes together.",
             (double)s->held.frames},
            {"sfp_peer_serve_budget_bytes", "gauge", "peer_serve_budget (0: no total bound).",
             (double)s->held.budget_bytes},
            {"sfp_peer_serve_high_water_bytes", "gauge", "Most frame bytes held for client nodes at once.",
             (double)s->held.high_water},
            {"sfp_peer_serve_lease_seconds", "gauge",
             "peer_lease: a client node's frames go after this long without a call (0: never).",
             s->held.lease_seconds},
            {"sfp_peer_serve_leases_expired_total", "counter",
             "Client nodes whose lease ran out with frames held.", (double)s->held.leases_expired},
            {"sfp_peer_serve_expired_frames_total", "counter",
             "Frames dropped because their node's lease ran out.", (double)s->held.expired_frames},
            {"sfp_peer_serve_expired_bytes_total", "counter",
             "Frame bytes dropped because their node's lease ran out.", (double)s->held.expired_bytes},
        };
        for (size_t k = 0; k < SFPD_ARRAY_SIZE(hf); k++) {
            head(o, hf[k].name, hf[k].type, hf[k].help);
            outf(o, "%s %.17g\n", hf[k].name, hf[k].v);
        }
    }
    for (size_t k = 0; s->n_peer_clients && k < SFPD_ARRAY_SIZE(cf); k++) {
        head(o, cf[k].name, cf[k].type, cf[k].help);
        for (size_t i = 0; i < s->n_peer_clients; i++) {
            const sfpd_peer_client_snapshot *p = &s->peer_clients[i];
            uint64_t v = k == 0 ? p->held_bytes : k == 1 ? p->held_frames : k == 2 ? p->bytes_received
                       : k == 3 ? p->bytes_sent : p->refusals;
            outf(o, "%s{node=\"", cf[k].name);
            label_value(o, p->node);
            outf(o, "\"} %llu\n", (unsigned long long)v);
        }
    }
}
static double j_conns(const sfpd_job_snapshot *j) { return (double)j->connections; }

/*
 * Per job and tier, labelled by the tier's name: sfp_job_tier_bytes and
 * sfp_job_tier_frames {job, tier}. Also sfp_job_<tier>_bytes{job} for each
 * tier (dram, disk, peer, ...): the names dashboards used before the tier
 * label, made from the same numbers.
 */
static void job_tier_metrics(obuf *o, const sfpd_snapshot *s)
{
    char name[64], help[128];
    for (int k = 0; k < 2; k++) {
        head(o, k ? "sfp_job_tier_frames" : "sfp_job_tier_bytes", "gauge",
             k ? "Frames of the job in the tier." : "Frame bytes of the job in the tier.");
        for (size_t i = 0; i < s->n_jobs; i++) {
            for (size_t t = 0; t < s->n_tiers; t++) {
                outf(o, "%s{job=\"", k ? "sfp_job_tier_frames" : "sfp_job_tier_bytes");
                label_value(o, s->jobs[i].job_id);
                outf(o, "\",tier=\"");
                label_value(o, s->tiers[t].name);
                outf(o, "\"} %llu\n", (unsigned long long)(k ? s->jobs[i].tiers[t].frames
                                                          : s->jobs[i].tiers[t].bytes));
            }
        }
    }
    for (size_t t = 0; t < s->n_tiers; t++) {
        snprintf(name, sizeof(name), "sfp_job_%s_bytes", s->tiers[t].name);
        snprintf(help, sizeof(help), "Frame bytes of the job in tier %s (sfp_job_tier_bytes{tier=\"%s\"}).",
                 s->tiers[t].name, s->tiers[t].name);
        head(o, name, "gauge", help);
        for (size_t i = 0; i < s->n_jobs; i++) {
            outf(o, "%s{job=\"", name);
            label_value(o, s->jobs[i].job_id);
            outf(o, "\"} %llu\n", (unsigned long long)s->jobs[i].tiers[t].bytes);
        }
    }
}

static void process_metrics(obuf *o)
{
    long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
    unsigned long long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    struct rusage ru;
    struct rlimit rl;
    DIR *d;
    long fds = 0;

    if (f) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
            vsz = rss = 0;
        fclose(f);
    }
    head(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    outf(o, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)page);
    head(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    outf(o, "process_virtual_memory_bytes %llu\n", vsz * (unsigned long long)page);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 33)
    {
        /* What the allocator holds, over all its arenas: RSS also counts
         * freed memory glibc keeps (an arena opened for a busy gRPC thread
         * stays mapped), so a leak shows in the first figure, not in RSS. */
        struct mallinfo2 mi = mallinfo2();
        head(o, "sfp_heap_in_use_bytes", "gauge",
             "Bytes of malloc'd memory in use (allocated chunks and mmapped blocks).");
        outf(o, "sfp_heap_in_use_bytes %zu\n", mi.uordblks + mi.hblkhd);
        head(o, "sfp_heap_free_bytes", "gauge",
             "Bytes the allocator holds free and has not returned to the kernel.");
        outf(o, "sfp_heap_free_bytes %zu\n", mi.fordblks);
    }
#endif
    if ((d = opendir("/proc/self/fd"))) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        fds--; /* the directory stream itself */
    }
    head(o, "process_open_fds", "gauge", "Number of open file descriptors.");
    outf(o, "process_open_fds %ld\n", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        head(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        outf(o, "process_max_fds %.17g\n",
             rl.rlim_cur == RLIM_INFINITY ? 1e308 : (double)rl.rlim_cur);
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        head(o, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        outf(o, "process_cpu_seconds_total %.6f\n",
             (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    }
    /* start time: field 22 of /proc/self/stat, in ticks since boot */
    if ((f = fopen("/proc/self/stat", "r"))) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        char *p;
        fclose(f);
        buf[n] = 0;
        p = strrchr(buf, ')');
        if (p && ticks > 0) {
            unsigned long long start = 0;
            int field = 2;
            for (p++; *p && field < 22; p++)
                if (*p == ' ')
                    field++;
            if (sscanf(p, "%llu", &start) == 1) {
                struct timespec rt, bt;
                clock_gettime(CLOCK_REALTIME, &rt);
                clock_gettime(CLOCK_BOOTTIME, &bt);
                head(o, "process_start_time_seconds", "gauge",
                     "Start time of the process since unix epoch in seconds.");
                outf(o, "process_start_time_seconds %.2f\n",
                     ((double)rt.tv_sec + rt.tv_nsec / 1e9) - ((double)bt.tv_sec + bt.tv_nsec / 1e9) +
                         (double)start / (double)ticks);
            }
        }
    }
}

static const char *const hist_names[] = {
#define SFPD__MH_NAME(id, name, help) name,
    SFPD_HISTOGRAMS(SFPD__MH_NAME)
#undef SFPD__MH_NAME
};
static const char *const hist_help[] = {
#define SFPD__MH_HELP(id, name, help) help,
    SFPD_HISTOGRAMS(SFPD__MH_HELP)
#undef SFPD__MH_HELP
};
static const char *const counter_unit[] = {
#define SFPD__MC_UNIT(id, name, unit, help) unit,
    SFPD_COUNTERS(SFPD__MC_UNIT)
#undef SFPD__MC_UNIT
};
static const char *const counter_help[] = {
#define SFPD__MC_HELP(id, name, unit, help) help,
    SFPD_COUNTERS(SFPD__MC_HELP)
#undef SFPD__MC_HELP
};

char *sfpd_metrics_render(const sfpd_snapshot *s, bool draining, size_t *len)
{
    obuf o = {0};
    char name[128];

    head(&o, "sfp_build_info", "gauge", "sfpd version (value is always 1).");
    outf(&o, "sfp_build_info{version=\"%s\"} 1\n", SFP_VERSION_STRING);
    head(&o, "sfp_up", "gauge", "1 while sfpd serves, 0 while it drains after SIGTERM.");
    outf(&o, "sfp_up %d\n", draining ? 0 : 1);
    head(&o, "sfp_uptime_seconds", "gauge", "Seconds since sfpd started.");
    outf(&o, "sfp_uptime_seconds %.3f\n", s->uptime_seconds);

    /* counters: sfp_<name>[_bytes]_total, unit in the help text */
    for (int i = 0; i < SFPD_C_COUNT; i++) {
        const char *cn = sfpd_counter_name(i);
        char help[256];
        snprintf(name, sizeof(name), "sfp_%s_total", cn);
        snprintf(help, sizeof(help), "%s (%s).", counter_help[i], counter_unit[i]);
        head(&o, name, "counter", help);
        outf(&o, "%s %llu\n", name, (unsigned long long)s->counters[i]);
    }
    head(&o, "sfp_error_replies_total", "counter", "Error replies to workers by IPC status.");
    for (int i = 1; i < SFPD_STATUS_SLOTS; i++) {
        if (!s->status_names[i])
            continue;
        outf(&o, "sfp_error_replies_total{status=\"%s\"} %llu\n", s->status_names[i],
             (unsigned long long)s->errors_by_status[i]);
    }

    /* latency histograms; bucket i of sfpd_hist is [2^(i-1), 2^i) us */
    for (int h = 0; h < SFPD_H_COUNT; h++) {
        const sfpd_hist *hs = &s->hists[h];
        uint64_t acc = 0;
        char help[256];
        snprintf(name, sizeof(name), "sfp_%s_seconds", hist_names[h]);
        snprintf(help, sizeof(help), "Latency of %s.", hist_help[h]);
        head(&o, name, "histogram", help);
        for (int b = 0; b < SFPD_HIST_BUCKETS - 1; b++) {
            acc += hs->buckets[b];
            outf(&o, "%s_bucket{le=\"%.6g\"} %llu\n", name, (double)(UINT64_C(1) << b) / 1e6,
                 (unsigned long long)acc);
        }
        outf(&o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)hs->count);
        outf(&o, "%s_sum %.9f\n", name, (double)hs->sum_ns / 1e9);
        outf(&o, "%s_count %llu\n", name, (unsigned long long)hs->count);
    }

    head(&o, "sfp_held_uncompressed_bytes", "gauge", "Uncompressed bytes of the stashes held now.");
    outf(&o, "sfp_held_uncompressed_bytes %llu\n", (unsigned long long)s->bytes_in);
    head(&o, "sfp_held_stored_bytes", "gauge", "Frame bytes of the stashes held now, all tiers.");
    outf(&o, "sfp_held_stored_bytes %llu\n", (unsigned long long)s->bytes_stored);
    head(&o, "sfp_held_values", "gauge", "Elements of the stashes held now.");
    outf(&o, "sfp_held_values %llu\n", (unsigned long long)s->values);
    head(&o, "sfp_compression_ratio", "gauge", "Uncompressed over stored bytes of what is held (0 if empty).");
    outf(&o, "sfp_compression_ratio %.6f\n", s->compression_ratio);
    /* promtool wants base units: bytes, not bits */
    head(&o, "sfp_stored_bytes_per_value", "gauge",
         "Stored bytes per element of what is held, bits_per_value / 8 (0 if empty).");
    outf(&o, "sfp_stored_bytes_per_value %.6f\n", s->bits_per_value / 8);
    head(&o, "sfp_connections", "gauge", "Worker connections open.");
    outf(&o, "sfp_connections %u\n", s->connections);
    head(&o, "sfp_inflight_requests", "gauge", "Worker requests in flight.");
    outf(&o, "sfp_inflight_requests %u\n", s->inflight);
    head(&o, "sfp_jobs", "gauge", "Jobs known (attached or in their grace period).");
    outf(&o, "sfp_jobs %zu\n", s->n_jobs);

    {
        static const char *const tn[] = {"sfp_tier_bytes", "sfp_tier_used_bytes", "sfp_tier_budget_bytes",
                                         "sfp_tier_frames", "sfp_tier_high_water_bytes"};
        static const char *const th[] = {"Frame bytes held in the tier.",
                                         "Bytes the tier occupies for its frames (disk: records with headers).",
                                         "Byte budget of the tier, on its used bytes (0: unlimited).",
                                         "Frames held in the tier.",
                                         "Most used bytes the tier has occupied."};
        for (int k = 0; k < 5; k++) {
            head(&o, tn[k], "gauge", th[k]);
            for (size_t i = 0; i < s->n_tiers; i++) {
                const sfpd_tier_snapshot *t = &s->tiers[i];
                uint64_t v = k == 0 ? t->bytes : k == 1 ? t->used_bytes : k == 2 ? t->budget_bytes
                           : k == 3 ? t->frames : t->high_water;
                outf(&o, "%s{tier=\"", tn[k]);
                label_value(&o, t->name);
                outf(&o, "\"} %llu\n", (unsigned long long)v);
            }
        }
    }

    job_gauge(&o, s, "sfp_job_uncompressed_bytes", "Uncompressed bytes of the job's stashes held now.", j_in);
    job_gauge(&o, s, "sfp_job_stored_bytes", "Frame bytes of the job's stashes held now.", j_stored);
    job_gauge(&o, s, "sfp_job_compression_ratio", "Uncompressed over stored bytes of the job.", j_ratio);
    job_gauge(&o, s, "sfp_job_frames", "Frames of the job held now.", j_frames);
    job_gauge(&o, s, "sfp_job_ranks", "Distinct ranks of the job seen.", j_ranks);
    job_gauge(&o, s, "sfp_job_connections", "Worker connections of the job.", j_conns);
    job_tier_metrics(&o, s);
    peer_metrics(&o, s);

    process_metrics(&o);
    if (o.fail) {
        sfpd_free(o.buf);
        return NULL;
    }
    if (!o.buf) {
        o.buf = sfpd_malloc(1);
        if (!o.buf)
            return NULL;
        o.buf[0] = 0;
    }
    *len = o.len;
    return o.buf;
}

/* ------------------------------------------------------ loop-side scrape */

static void async_cb(uv_async_t *a)
{
    sfpd_metrics *m = a->data;
    pthread_mutex_lock(&m->mu);
    while (m->pending) {
        scrape *r = m->pending;
        sfpd_snapshot *s = NULL;
        m->pending = r->next;
        if (m->snap.take(m->snap.arg, &s) == 0) {
            r->text = sfpd_metrics_render(s, m->draining, &r->len);
            sfpd_snapshot_free(&s);
        }
        r->done = true;
    }
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* ----------------------------------------------------------- HTTP thread */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *type,
                               void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    enum MHD_Result ret;
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    static const char text_type[] = "text/plain; charset=utf-8";
    sfpd_metrics *m = cls;
    scrape r = {0};
    struct timespec until;
    char *body;

    (void)version;
    (void)upload_data;
    if (*upload_data_size) {
        *upload_data_size = 0; /* ignore any body */
        return MHD_YES;
    }
    (void)con_cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text_type, (void *)"GET only\n", 9,
                       MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/") == 0)
        return respond(conn, MHD_HTTP_OK, "text/html; charset=utf-8",
                       (void *)"<html><body><a href=\"/metrics\">/metrics</a></body></html>\n", 58,
                       MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/metrics") != 0)
        return respond(conn, MHD_HTTP_NOT_FOUND, text_type, (void *)"not found\n", 10,
                       MHD_RESPMEM_PERSISTENT);

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SCRAPE_TIMEOUT_S;
    pthread_mutex_lock(&m->mu);
    if (!m->closed) {
        r.next = m->pending;
        m->pending = &r;
        uv_async_send(m->async);
        while (!r.done && !m->closed)
            if (pthread_cond_timedwait(&m->cv, &m->mu, &until) == ETIMEDOUT)
                break;
        if (!r.done) {
            /* still parked: unlink it so the loop never writes to it */
            for (scrape **p = &m->pending; *p; p = &(*p)->next)
                if (*p == &r) {
                    *p = r.next;
                    break;
                }
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (!r.done || !r.text)
        return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text_type,
                       (void *)"sfpd is not answering\n", 22, MHD_RESPMEM_PERSISTENT);
    /* MHD frees with free(): hand it a plain malloc copy */
    body = malloc(r.len ? r.len : 1);
    if (!body) {
        sfpd_free(r.text);
        return MHD_NO;
    }
    memcpy(body, r.text, r.len);
    sfpd_free(r.text);
    return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, r.len,
                   MHD_RESPMEM_MUST_FREE);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    buf[strcspn(buf, "\n")] = 0;
    sfpd_debug("metrics: %s", buf);
}

/* ------------------------------------------------------------ life cycle */

/* Splits "host:port" / "[v6]:port" and resolves it. 0 or -EINVAL. */
static int resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[256];
    const char *port;
    struct addrinfo hints = {0}, *res = NULL;
    size_t hl;

    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hl = (size_t)(end - addr - 1);
        if (hl >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr + 1, hl);
        port = end + 2;
    } else {
        const char *c = strrchr(addr, ':');
        if (!c)
            return -EINVAL;
        hl = (size_t)(c - addr);
        if (hl >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr, hl);
        port = c + 1;
    }
    host[hl] = 0;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (!port[0] || getaddrinfo(hl ? host : NULL, port, &hints, &res) != 0 || !res)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sl = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void async_closed(uv_handle_t *h)
{
    sfpd_free(h);
}

int sfpd_metrics_start(uv_loop_t *loop, const sfpd_config *cfg, sfpd_snapshot_source snap,
                       sfpd_metrics **out)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    sfpd_metrics *m;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    *out = NULL;
    if (!cfg->metrics_listen || !cfg->metrics_listen[0]) {
        sfpd_info("metrics: disabled (metrics_listen is empty)");
        return 0;
    }
    if (resolve(cfg->metrics_listen, &ss, &sl) < 0) {
        sfpd_err("metrics: cannot parse metrics_listen '%s' (want host:port)", cfg->metrics_listen);
        return -EINVAL;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (!(m = sfpd_calloc(1, sizeof(*m))))
        return -ENOMEM;
    m->loop = loop;
    m->snap = snap;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    if (!(m->async = sfpd_malloc(sizeof(*m->async))) || uv_async_init(loop, m->async, async_cb) != 0) {
        sfpd_free(m->async);
        m->async = NULL;
        goto fail;
    }
    m->async->data = m;
    uv_unref((uv_handle_t *)m->async);
    m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, m,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                              MHD_OPTION_END);
    if (!m->mhd) {
        sfpd_err("metrics: cannot listen on %s (address invalid or in use)", cfg->metrics_listen);
        goto fail;
    }
    info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : 0;
    sfpd_info("metrics: listening on http://%s/metrics (port %d)", cfg->metrics_listen, m->port);
    *out = m;
    return 0;
fail:
    if (m->async)
        uv_close((uv_handle_t *)m->async, async_closed);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    sfpd_free(m);
    return -EADDRINUSE;
}

void sfpd_metrics_set_draining(sfpd_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->draining = true;
    pthread_mutex_unlock(&m->mu);
}

void sfpd_metrics_stop(sfpd_metrics **pm)
{
    sfpd_metrics *m = pm ? *pm : NULL;
    if (!m)
        return;
    *pm = NULL;
    pthread_mutex_lock(&m->mu);
    m->closed = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    /* joins the HTTP thread: after this nobody calls uv_async_send */
    MHD_stop_daemon(m->mhd);
    uv_close((uv_handle_t *)m->async, async_closed);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    sfpd_free(m);
}
