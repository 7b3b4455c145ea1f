/*
 * test_load: 8 concurrent clients (threads, one libsfpclient connection
 * each, 4 jobs of 2 ranks) put, get and drop tensors of mixed sizes (4 KiB
 * to 16 MiB, log-uniform; lossless, Gecko and plain lossy parameters) against one
 * sfpd for a bounded time. Every call must succeed, every Get must be
 * bit-exact, the DRAM tier must stay within its budget (sampled during the
 * run and by its high-water mark), and sfpd's resident memory must stay
 * bounded after warm-up (VmRSS/RssAnon from /proc/PID/status). Prints p50/p99
 * latency per call type and throughput (docs/BENCHMARKS.md, "Load").
 *
 *   test_daemon_load SFPD [SECONDS]     (or $SFPD_LOAD_SECONDS; default 4)
 */
#include "common.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#define NCLIENTS 8
#define MAX_BYTES (16u << 20)
#define MIN_BYTES (4u << 10)
#define POOL_VALUES (MAX_BYTES / 4)
#define LIVE_MAX 4
#define NPARAMS 3
#define DRAM_BUDGET (32ull << 20)
#define WRITE_BEHIND (4ull << 20) /* --spill-write-behind */

static th_daemon d;
static float *pool[NPARAMS]; /* on-grid values for each parameter set */
static sfp_params params[NPARAMS];
static double t_end;
static atomic_int failed;

typedef struct lat {
    double *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, double s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->v = realloc(l->v, l->cap * sizeof(double));
    }
    l->v[l->n++] = s;
}

enum { OP_PUT, OP_GET, OP_DROP, OP_N };
static const char *const op_names[OP_N] = {"put", "get", "drop"};

typedef struct live_key {
    uint64_t step;
    int pset;
    size_t off, count;
} live_key;

typedef struct client {
    int idx;
    pthread_t t;
    lat lat[OP_N];
    uint64_t bytes[OP_N], ops[OP_N];
    uint64_t spilled_puts, hits, misses;
    char err[256];
} client;

static client clients[NCLIENTS];

static void cfail(client *c, const char *fmt, const char *a, int e)
{
    snprintf(c->err, sizeof(c->err), fmt, a, e);
    atomic_store(&failed, 1);
}

static void *client_main(void *arg)
{
    client *cl = arg;
    char job[32];
    sfpc *c;
    size_t shm_size;
    uint8_t *shm, *in_slot, *out_slot;
    live_key live[LIVE_MAX];
    int nlive = 0;
    uint64_t rng = 1000 + (uint64_t)cl->idx, step = 0;
    sfpc_options o;
    int e;

    snprintf(job, sizeof(job), "load-%d", cl->idx / 2);
    sfpc_options_default(&o);
    o.socket_path = d.socket;
    o.job_id = job;
    o.rank = (uint32_t)(cl->idx % 2);
    o.shm_size = 2 * (size_t)MAX_BYTES;
    o.timeout_ms = 60000;
    o.client_name = "test_load";
    if ((e = sfpc_connect(&o, &c)) != 0) {
        cfail(cl, "connect %s: %d", job, e);
        return NULL;
    }
    shm = sfpc_shm(c, &shm_size);
    in_slot = shm;
    out_slot = shm + MAX_BYTES;

    while (th_now() < t_end && !atomic_load(&failed)) {
        uint64_t r = th_rand(&rng);
        unsigned what = (unsigned)(r % 100);
        double t0;
        if (nlive == 0 || (nlive < LIVE_MAX && what < 45)) {
            /* Put a new tensor: log-uniform size, random slice of a pool */
            live_key *k = &live[nlive];
            double u = (double)(th_rand(&rng) >> 11) / 9007199254740992.0;
            size_t bytes = (size_t)(MIN_BYTES * pow((double)MAX_BYTES / MIN_BYTES, u));
            sfpc_key key;
            char name[32];
            sfpc_put_info pi;
            k->count = bytes / 4;
            k->pset = (int)(th_rand(&rng) % NPARAMS);
            k->off = (size_t)(th_rand(&rng) % (POOL_VALUES - k->count + 1));
            k->step = step++;
            snprintf(name, sizeof(name), "t%d", cl->idx);
            key = (sfpc_key){.rank = o.rank, .step = k->step, .tensor = name};
            memcpy(in_slot, pool[k->pset] + k->off, k->count * 4);
            t0 = th_now();
            e = sfpc_put(c, &key, in_slot, k->count, &params[k->pset], 0, &pi);
            lat_add(&cl->lat[OP_PUT], th_now() - t0);
            if (e) {
                cfail(cl, "put: %s (%d)", sfpc_last_message(c), e);
                break;
            }
            cl->ops[OP_PUT]++;
            cl->bytes[OP_PUT] += k->count * 4;
            cl->spilled_puts += pi.tier == 1;
            nlive++;
        } else if (what < 85) {
            /* Get a live tensor; half the time with drop */
            int i = (int)(th_rand(&rng) % (uint64_t)nlive);
            live_key *k = &live[i];
            bool drop = th_rand(&rng) & 1;
            char name[32];
            sfpc_key key;
            sfpc_get_info gi;
            snprintf(name, sizeof(name), "t%d", cl->idx);
            key = (sfpc_key){.rank = o.rank, .step = k->step, .tensor = name};
            memset(out_slot, 0xA5, 64);
            t0 = th_now();
            e = sfpc_get(c, &key, out_slot, MAX_BYTES, drop ? SFPC_GET_DROP : 0, &gi);
            lat_add(&cl->lat[OP_GET], th_now() - t0);
            if (e) {
                cfail(cl, "get: %s (%d)", sfpc_last_message(c), e);
                break;
            }
            if (gi.count != k->count || memcmp(out_slot, pool[k->pset] + k->off, k->count * 4) != 0) {
                cfail(cl, "get %s: data not bit-exact (%d)", job, (int)k->count);
                break;
            }
            cl->ops[OP_GET]++;
            cl->bytes[OP_GET] += k->count * 4;
            cl->hits += gi.hit != 0;
            cl->misses += gi.hit == 0;
            if (drop)
                live[i] = live[--nlive];
        } else {
            int i = (int)(th_rand(&rng) % (uint64_t)nlive);
            char name[32];
            sfpc_key key;
            snprintf(name, sizeof(name), "t%d", cl->idx);
            key = (sfpc_key){.rank = o.rank, .step = live[i].step, .tensor = name};
            t0 = th_now();
            e = sfpc_drop(c, &key);
            lat_add(&cl->lat[OP_DROP], th_now() - t0);
            if (e) {
                cfail(cl, "drop: %s (%d)", sfpc_last_message(c), e);
                break;
            }
            cl->ops[OP_DROP]++;
            live[i] = live[--nlive];
        }
    }
    sfpc_close(&c);
    return NULL;
}

/* ------------------------------------------------------------ monitor */

typedef struct mem_sample {
    double t;
    long rss_kb, anon_kb, shmem_kb;
} mem_sample;

static mem_sample samples[20000];
static size_t nsamples;
static uint64_t dram_max_seen;
static atomic_int monitor_stop;

static int read_status(pid_t pid, mem_sample *s)
{
    char path[64], line[256];
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    s->rss_kb = s->anon_kb = s->shmem_kb = -1;
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "VmRSS: %ld", &s->rss_kb);
        sscanf(line, "RssAnon: %ld", &s->anon_kb);
        sscanf(line, "RssShmem: %ld", &s->shmem_kb);
    }
    fclose(f);
    return s->rss_kb >= 0 ? 0 : -1;
}

static void *monitor_main(void *arg)
{
    sfpc *c = tc_connect(&d, "load-monitor", 0, 0);
    double t0 = *(double *)arg;
    while (!atomic_load(&monitor_stop)) {
        sfpc_stats s;
        mem_sample m;
        if (sfpc_stats_get(c, &s) == 0) {
            if (s.dram_bytes > dram_max_seen)
                dram_max_seen = s.dram_bytes;
            sfpc_stats_free(&s);
        }
        if (nsamples < sizeof(samples) / sizeof(samples[0]) && read_status(d.pid, &m) == 0) {
            m.t = th_now() - t0;
            samples[nsamples++] = m;
        }
        usleep(100000);
    }
    sfpc_close(&c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double *v, size_t n, double q)
{
    size_t i;
    if (!n)
        return 0;
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

/* max of a field over samples with t in [a, b) */
static long max_anon(double a, double b)
{
    long m = 0;
    for (size_t i = 0; i < nsamples; i++)
        if (samples[i].t >= a && samples[i].t < b && samples[i].anon_kb > m)
            m = samples[i].anon_kb;
    return m;
}

static long max_rss(double a, double b)
{
    long m = 0;
    for (size_t i = 0; i < nsamples; i++)
        if (samples[i].t >= a && samples[i].t < b && samples[i].rss_kb > m)
            m = samples[i].rss_kb;
    return m;
}

int main(int argc, char **argv)
{
    double seconds = getenv("SFPD_LOAD_SECONDS") ? atof(getenv("SFPD_LOAD_SECONDS")) : 4;
    char budget[32];
    const char *args[] = {"--dram-budget", budget, "--prefetch-depth", "2", "--grace-period", "5",
                          "--max-tensor", "64M", "--spill-write-behind", "4M", NULL};
    pthread_t mon;
    double t0, elapsed;
    sfpc_stats st;
    sfpc *c;
    lat all[OP_N] = {{0}};
    uint64_t bytes[OP_N] = {0}, ops[OP_N] = {0}, spilled = 0, hits = 0, misses = 0;
    bool sanitized = false, wrapped = getenv("SFPD_WRAPPER") && getenv("SFPD_WRAPPER")[0];

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    sanitized = true;
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    sanitized = true;
#endif
#endif
    if (argc > 2)
        seconds = atof(argv[2]);
    if (seconds <= 0)
        seconds = 4;
    th_init(argc, argv, (unsigned)(seconds + 100));
    snprintf(budget, sizeof(budget), "%llu", DRAM_BUDGET);

    /* three parameter sets; the pools are on their grids (fixed anchor, so
     * any slice is too) */
    sfp_params_default(&params[0]); /* lossless F32, plain */
    sfp_params_default(&params[1]);
    params[1].mbits = 7, params[1].ebits = 6, params[1].anchor = 140, params[1].coder = SFP_CODER_GECKO;
    sfp_params_default(&params[2]);
    params[2].mbits = 10, params[2].ebits = 7, params[2].anchor = 140; /* plain: IPC refuses rANS */
    for (int i = 0; i < NPARAMS; i++) {
        pool[i] = malloc((size_t)POOL_VALUES * 4);
        tc_fill(pool[i], POOL_VALUES, &params[i], 500 + (uint64_t)i);
    }

    /* malloc arenas per thread would make RSS a measure of thread count */
    setenv("MALLOC_ARENA_MAX", "2", 1);
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    unsetenv("MALLOC_ARENA_MAX");

    t0 = th_now();
    t_end = t0 + seconds;
    pthread_create(&mon, NULL, monitor_main, &t0);
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i].idx = i;
        pthread_create(&clients[i].t, NULL, client_main, &clients[i]);
    }
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(clients[i].t, NULL);
    elapsed = th_now() - t0;
    for (int i = 0; i < NCLIENTS; i++)
        TH_CHECK(clients[i].err[0] == 0, "client %d: %s", i, clients[i].err);

    c = tc_connect(&d, "load-check", 0, 0);
    TH_CHECK(sfpc_stats_get(c, &st) == 0, "stats");
    atomic_store(&monitor_stop, 1);
    pthread_join(mon, NULL);

    for (int i = 0; i < NCLIENTS; i++) {
        for (int k = 0; k < OP_N; k++) {
            for (size_t j = 0; j < clients[i].lat[k].n; j++)
                lat_add(&all[k], clients[i].lat[k].v[j]);
            bytes[k] += clients[i].bytes[k];
            ops[k] += clients[i].ops[k];
            free(clients[i].lat[k].v);
        }
        spilled += clients[i].spilled_puts;
        hits += clients[i].hits;
        misses += clients[i].misses;
    }
    printf("load: %d clients (4 jobs x 2 ranks), tensors 4 KiB..16 MiB log-uniform, "
           "lossless, Gecko k7e6 and plain k10e7, DRAM budget %llu MiB, %.1f s\n",
           NCLIENTS, DRAM_BUDGET >> 20, elapsed);
    printf("  %-5s %8s %10s %10s %10s %12s\n", "call", "count", "p50 ms", "p99 ms", "max ms", "MiB/s");
    for (int k = 0; k < OP_N; k++) {
        qsort(all[k].v, all[k].n, sizeof(double), cmp_double);
        printf("  %-5s %8llu %10.2f %10.2f %10.2f %12.1f\n", op_names[k], (unsigned long long)all[k].n,
               1e3 * quantile(all[k].v, all[k].n, 0.5), 1e3 * quantile(all[k].v, all[k].n, 0.99),
               all[k].n ? 1e3 * all[k].v[all[k].n - 1] : 0.0, bytes[k] / 1048576.0 / elapsed);
        free(all[k].v);
    }
    printf("  total %.0f calls/s, %.1f MiB/s of tensor data (put+get), 0 errors, every Get bit-exact\n",
           (ops[0] + ops[1] + ops[2]) / elapsed, (bytes[0] + bytes[1]) / 1048576.0 / elapsed);
    printf("  puts straight to disk %llu, gets from DRAM %llu / from disk %llu, spills %llu, "
           "prefetch hits %llu misses %llu\n",
           (unsigned long long)spilled, (unsigned long long)hits, (unsigned long long)misses,
           (unsigned long long)st.spills, (unsigned long long)st.prefetch_hits,
           (unsigned long long)st.prefetch_misses);
    printf("  DRAM: budget %.1f MiB, high water %.1f MiB, max sampled %.1f MiB; disk now %.1f MiB\n",
           st.dram_budget / 1048576.0, st.dram_high_water / 1048576.0, dram_max_seen / 1048576.0,
           st.disk_bytes / 1048576.0);
    TH_CHECK(st.errors == 0, "daemon counted %llu errors", (unsigned long long)st.errors);
    TH_CHECK(st.corrupt == 0, "daemon counted %llu corrupt frames", (unsigned long long)st.corrupt);
    /* over the budget only by frames on their way to disk (the window) */
    TH_CHECK(st.dram_high_water <= DRAM_BUDGET + WRITE_BEHIND,
             "DRAM high water %llu over the budget + spill_write_behind",
             (unsigned long long)st.dram_high_water);
    TH_CHECK(dram_max_seen <= DRAM_BUDGET + WRITE_BEHIND,
             "DRAM bytes %llu over the budget + spill_write_behind", (unsigned long long)dram_max_seen);
    TH_CHECK(ops[OP_PUT] >= 8 && ops[OP_GET] >= 8, "too little work done (%llu puts, %llu gets)",
             (unsigned long long)ops[OP_PUT], (unsigned long long)ops[OP_GET]);
    sfpc_stats_free(&st);
    sfpc_close(&c);

    /* sfpd's memory: warm-up is the first third of the run */
    {
        double w = elapsed / 3;
        long warm = max_anon(0, w), mid = max_anon(w, 2 * w), last = max_anon(2 * w, elapsed + 10);
        long peak = max_anon(0, elapsed + 10);
        mem_sample end = samples[nsamples ? nsamples - 1 : 0];
        printf("  sfpd memory (%zu samples): RssAnon max %ld MiB in warm-up, %ld MiB in the middle third, "
               "%ld MiB in the last third; VmRSS max %ld MiB (incl. clients' shared memory, last %ld MiB of "
               "RssShmem)\n",
               nsamples, warm >> 10, mid >> 10, last >> 10, max_rss(0, elapsed + 10) >> 10,
               end.shmem_kb >> 10);
        if (sanitized || wrapped) {
            printf("  (sanitizer or wrapper: memory figures reported, not judged)\n");
        } else {
            /* DRAM frames + in-flight encode/decode buffers (a frame and a
             * copy per connection) + the process itself */
            long bound_kb = (long)((DRAM_BUDGET + (uint64_t)NCLIENTS * 3 * MAX_BYTES) >> 10) + 128 * 1024;
            TH_CHECK(peak <= bound_kb, "RssAnon %ld KiB over the bound %ld KiB", peak, bound_kb);
            /* no growth after warm-up; a short run may not have seen its
             * largest set of in-flight buffers in the middle third yet */
            long slack = 32 * 1024 + (elapsed < 60 ? (long)(((uint64_t)NCLIENTS * MAX_BYTES) >> 10) : 0);
            TH_CHECK(last <= mid + slack, "RssAnon grows after warm-up: %ld -> %ld KiB", mid, last);
        }
    }

    TH_CHECK(th_stop(&d, SIGTERM, 30) == 0, "daemon exit status %d", d.exit_status);
    th_cleanup(&d);
    for (int i = 0; i < NPARAMS; i++)
        free(pool[i]);
    printf("ok\n");
    return 0;
}
