/*
 * test_spill: DRAM budget of 1/4 of the data with a LIFO put/get pattern of
 * 64 tensors (bit-exact, high-water mark within budget, prefetch hit rate);
 * a corrupted spill file is detected and reported; a full disk tier is
 * reported with a code while stored data stays readable; a restarted sfpd
 * re-adopts the spill files of a job that comes back and deletes the rest
 * after the grace period.
 */
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define NT 64
#define NV (64 * 1024) /* values per tensor: 256 KiB of F32 */

static float *data[NT];

static void make_data(const sfp_params *p)
{
    for (int i = 0; i < NT; i++) {
        data[i] = malloc(NV * sizeof(float));
        tc_fill(data[i], NV, p, 77 + (uint64_t)i);
    }
}

static void name_of(char *buf, size_t n, int i) { snprintf(buf, n, "layer%02d.out", i); }

/* One training step: forward puts 0..63, backward gets 63..0 with drop. */
static void lifo_step(sfpc *c, const sfp_params *p, uint64_t step, bool hint, unsigned compute_us,
                      bool drop_on_get)
{
    size_t shm_size;
    uint8_t *shm = sfpc_shm(c, &shm_size);
    for (int i = 0; i < NT; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = step, .tensor = name};
        int e;
        name_of(name, sizeof(name), i);
        /* double-buffered slots in the shm: async put of slot i%2 */
        uint8_t *slot = shm + (size_t)(i % 2) * NV * 4;
        if (i >= 2)
            TH_CHECK(sfpc_flush(c) == 0, "flush");
        memcpy(slot, data[i], NV * 4);
        e = sfpc_put(c, &k, slot, NV, p, SFPC_ASYNC, NULL);
        TH_CHECK(e == 0, "put %d: %s", i, sfpc_strerror(e));
    }
    TH_CHECK(sfpc_flush(c) == 0, "flush");
    if (hint)
        TH_CHECK(sfpc_prefetch(c, 0) == 0, "prefetch hint");
    for (int i = NT - 1; i >= 0; i--) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = step, .tensor = name};
        uint8_t *dst = shm + 2 * (size_t)NV * 4;
        int e;
        name_of(name, sizeof(name), i);
        if (compute_us)
            usleep(compute_us); /* the backward kernel of layer i+1 */
        e = sfpc_get(c, &k, dst, NV * 4, drop_on_get ? SFPC_GET_DROP : 0, NULL);
        TH_CHECK(e == 0, "get %d: %s (%s)", i, sfpc_strerror(e), sfpc_last_message(c));
        TH_CHECK(memcmp(dst, data[i], NV * 4) == 0, "tensor %d not bit-exact", i);
    }
    for (int i = 0; i < NT && !drop_on_get; i++) {
        /* read stashes stay until the step ends: prefetch must evict them */
        char name[32];
        sfpc_key k = {.rank = 0, .step = step, .tensor = name};
        name_of(name, sizeof(name), i);
        TH_CHECK(sfpc_drop(c, &k) == 0, "drop %d", i);
    }
}

static uint64_t total_frames(const sfp_params *p)
{
    size_t cap = sfp_frame_bound(NV, p), len;
    uint8_t *f = malloc(cap);
    uint64_t sum = 0;
    for (int i = 0; i < NT; i++) {
        TH_CHECK(sfp_encode(data[i], NV, p, f, cap, &len, NULL) == 0, "encode");
        sum += len;
    }
    free(f);
    return sum;
}

/*
 * 3 LIFO steps of 64 frames under a DRAM budget of a quarter of them. With
 * behind (spill_write_behind) 0 a Put waits for the writes that make its
 * room and DRAM never exceeds the budget; else it is admitted while at most
 * an eighth of the frames are on their way to disk, and DRAM exceeds the
 * budget by at most that.
 */
static void lifo_budget(const sfp_params *p, bool prefetch, bool drop_on_get, bool hint,
                        bool behind)
{
    th_daemon d;
    char budget[32], window[32];
    uint64_t frames = total_frames(p), over = behind ? frames / 8 : 0;
    const char *args[] = {"--dram-budget", budget, "--prefetch-depth", prefetch ? "6" : "0",
                          "--spill-write-behind", window, NULL};
    sfpc_stats s;
    sfpc *c;
    double hit;

    snprintf(budget, sizeof(budget), "%llu", (unsigned long long)(frames / 4));
    snprintf(window, sizeof(window), "%llu", (unsigned long long)over);
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    c = tc_connect(&d, "lifo", 0, 3 * (size_t)NV * 4);
    for (uint64_t step = 0; step < 3; step++)
        lifo_step(c, p, step, prefetch && hint, 300, drop_on_get);
    TH_CHECK(sfpc_stats_get(c, &s) == 0, "stats");
    hit = s.prefetch_hits + s.prefetch_misses
              ? (double)s.prefetch_hits / (double)(s.prefetch_hits + s.prefetch_misses) : 0;
    printf("LIFO 64 x %u KiB, 3 steps, %s, prefetch %s%s: data %.1f MiB of frames, DRAM budget %.1f MiB, "
           "high water %.1f MiB (job %.1f MiB), spills %llu, spilled-frame Gets: %llu prefetch hits, "
           "%llu misses -> hit rate %.0f%%\n",
           NV * 4 / 1024, drop_on_get ? "Get+drop" : "Get, drop at step end", prefetch ? "on" : "off",
           prefetch ? (hint ? " (Prefetch hint)" : " (first Get, no hint)") : "", frames / 1048576.0, frames / 4 / 1048576.0,
           s.dram_high_water / 1048576.0, s.job_dram_high_water / 1048576.0,
           (unsigned long long)s.spills, (unsigned long long)s.prefetch_hits,
           (unsigned long long)s.prefetch_misses, 100 * hit);
    {
        /* every spill write is a tier op (the stats dump's counters) */
        unsigned long long ops = tc_stat(c, "io_ops"), batches = tc_stat(c, "io_batches");
        printf("  spill_write_behind %.1f MiB; tier I/O %llu ops in %llu pool jobs\n",
               over / 1048576.0, ops, batches);
        TH_CHECK(ops != ~0ull && ops >= s.spills && batches > 0 && batches <= ops,
                 "io_ops %llu / io_batches %llu do not count the %llu spills", ops, batches,
                 (unsigned long long)s.spills);
    }
    TH_CHECK(s.dram_high_water <= frames / 4 + over, "high water %llu over budget %llu + %llu",
             (unsigned long long)s.dram_high_water, (unsigned long long)(frames / 4),
             (unsigned long long)over);
    TH_CHECK(s.spills > 0, "nothing spilled");
    if (prefetch)
        TH_CHECK(hit >= 0.5, "prefetch hit rate %.2f too low", hit);
    TH_CHECK(s.errors == 0, "errors %llu", (unsigned long long)s.errors);
    sfpc_stats_free(&s);
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

/* Flips one byte inside the first frame of every segment file. */
static int corrupt_segments(const char *spill)
{
    DIR *top = opendir(spill);
    struct dirent *e;
    int n = 0;
    TH_CHECK(top != NULL, "opendir %s", spill);
    while ((e = readdir(top))) {
        char jd[600];
        DIR *sub;
        struct dirent *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(jd, sizeof(jd), "%s/%s", spill, e->d_name);
        if (!(sub = opendir(jd)))
            continue;
        while ((f = readdir(sub))) {
            char path[900];
            uint8_t b;
            int fd;
            if (strncmp(f->d_name, "seg-", 4) != 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", jd, f->d_name);
            fd = open(path, O_RDWR);
            TH_CHECK(fd >= 0, "open %s", path);
            /* record header 80 + name 16: the frame starts at 96; hit its payload */
            TH_CHECK(pread(fd, &b, 1, 96 + 1000) == 1, "read");
            b ^= 0x10;
            TH_CHECK(pwrite(fd, &b, 1, 96 + 1000) == 1, "write");
            close(fd);
            n++;
        }
        closedir(sub);
    }
    closedir(top);
    return n;
}

static void corruption(const sfp_params *p)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0", NULL};
    sfpc *c;
    int corrupt = 0, ok = 0, segs;
    sfpc_stats s;
    float *out = malloc(NV * 4);

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    c = tc_connect(&d, "corrupt", 0, (size_t)NV * 4);
    for (int i = 0; i < 8; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
        name_of(name, sizeof(name), i);
        TH_CHECK(sfpc_put(c, &k, data[i], NV, p, 0, NULL) == 0, "put");
    }
    /* the spill writes of the last puts may still be in flight */
    usleep(200000);
    segs = corrupt_segments(d.spill);
    TH_CHECK(segs > 0, "no segment file to corrupt");
    for (int i = 0; i < 8; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
        int e;
        name_of(name, sizeof(name), i);
        e = sfpc_get(c, &k, out, NV * 4, 0, NULL);
        if (e == SFPC_ECORRUPT) {
            corrupt++;
            /* and it stays reported, never returned as data */
            TH_CHECK(sfpc_get(c, &k, out, NV * 4, 0, NULL) == SFPC_ECORRUPT, "second get");
        } else {
            TH_CHECK(e == 0, "get %d: %s", i, sfpc_strerror(e));
            TH_CHECK(memcmp(out, data[i], NV * 4) == 0, "tensor %d silently wrong", i);
            ok++;
        }
    }
    TH_CHECK(corrupt >= 1, "corruption not detected");
    TH_CHECK(sfpc_stats_get(c, &s) == 0 && s.corrupt >= 1, "corrupt counter");
    sfpc_stats_free(&s);
    TH_CHECK(th_log_contains(&d, "corrupt"), "not reported in the log");
    printf("corruption: %d segment(s) damaged -> %d Get(s) failed with ECORRUPT, %d intact, logged\n",
           segs, corrupt, ok);
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
    free(out);
}

static void disk_full(const sfp_params *p)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--disk-budget", "1M", "--prefetch-depth", "0", NULL};
    sfpc *c;
    int stored = 0, e = 0;
    float *out = malloc(NV * 4);

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    c = tc_connect(&d, "full", 0, (size_t)NV * 4);
    for (int i = 0; i < 16; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
        name_of(name, sizeof(name), i);
        e = sfpc_put(c, &k, data[i], NV, p, 0, NULL);
        if (e)
            break;
        stored++;
    }
    TH_CHECK(e == SFPC_EDISKFULL, "expected EDISKFULL, got %s after %d puts", sfpc_strerror(e), stored);
    printf("disk full: put %d failed with EDISKFULL (\"%s\")", stored, sfpc_last_message(c));
    for (int i = 0; i < stored; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
        name_of(name, sizeof(name), i);
        e = sfpc_get(c, &k, out, NV * 4, 0, NULL);
        TH_CHECK(e == 0 && memcmp(out, data[i], NV * 4) == 0, "stored tensor %d lost: %s", i,
                 sfpc_strerror(e));
    }
    printf("; the %d stored tensors read back intact\n", stored);
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
    free(out);
}

/* The job's spill directory cannot be created: spills fail with an I/O error. */
static void io_error(const sfp_params *p)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0", NULL};
    char blocker[400];
    sfpc *c;
    int stored = 0, e = 0;
    float *out = malloc(NV * 4);
    FILE *f;

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    /* <spill>/<uid>-<hex "ioerr">: a file where the job's directory would go */
    snprintf(blocker, sizeof(blocker), "%s/%u-696f657272", d.spill, (unsigned)geteuid());
    f = fopen(blocker, "w");
    TH_CHECK(f != NULL, "blocker");
    fclose(f);
    c = tc_connect(&d, "ioerr", 0, (size_t)NV * 4);
    for (int i = 0; i < 8; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
        name_of(name, sizeof(name), i);
        e = sfpc_put(c, &k, data[i], NV, p, 0, NULL);
        if (e)
            break;
        stored++;
    }
    TH_CHECK(e == SFPC_EIO, "expected EIO, got %s after %d puts", sfpc_strerror(e), stored);
    printf("I/O error: put %d failed with EIO (\"%s\")", stored, sfpc_last_message(c));
    for (int i = 0; i < stored; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
        name_of(name, sizeof(name), i);
        e = sfpc_get(c, &k, out, NV * 4, 0, NULL);
        TH_CHECK(e == 0 && memcmp(out, data[i], NV * 4) == 0, "stored tensor %d lost: %s", i,
                 sfpc_strerror(e));
    }
    printf("; the %d acknowledged tensors read back intact\n", stored);
    TH_CHECK(th_log_contains(&d, "spill of job ioerr tensor") || th_log_contains(&d, "direct spill of job ioerr"),
             "spill failure not logged");
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
    free(out);
}

static int count_entries(const char *dir)
{
    DIR *dd = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!dd)
        return -1;
    while ((e = readdir(dd)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dd);
    return n;
}

static void readopt(const sfp_params *p)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0", "--grace-period", "30", NULL};
    const char *args_short[] = {"--dram-budget", "600K", "--grace-period", "0.5", NULL};
    sfpc *c;
    int found = 0;
    float *out = malloc(NV * 4);

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    c = tc_connect(&d, "survivor", 3, (size_t)NV * 4);
    for (int i = 0; i < 16; i++) {
        char name[32];
        sfpc_key k = {.rank = 3, .step = 9, .tensor = name};
        name_of(name, sizeof(name), i);
        TH_CHECK(sfpc_put(c, &k, data[i], NV, p, 0, NULL) == 0, "put");
    }
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);

    TH_CHECK(th_start(&d, args) == 0, "sfpd did not restart");
    c = tc_connect(&d, "survivor", 3, (size_t)NV * 4);
    for (int i = 0; i < 16; i++) {
        char name[32];
        sfpc_key k = {.rank = 3, .step = 9, .tensor = name};
        int e;
        name_of(name, sizeof(name), i);
        e = sfpc_get(c, &k, out, NV * 4, 0, NULL);
        if (e == SFPC_ENOTFOUND)
            continue; /* was in DRAM only */
        TH_CHECK(e == 0, "get after restart: %s", sfpc_strerror(e));
        TH_CHECK(memcmp(out, data[i], NV * 4) == 0, "re-adopted tensor %d differs", i);
        found++;
    }
    TH_CHECK(found >= 12, "only %d of 16 tensors re-adopted", found);
    TH_CHECK(th_log_contains(&d, "re-adopted job survivor"), "no re-adoption log line");
    sfpc_close(&c);
    /* kill -9 this time: the lock dies with the process, the stale socket
     * is replaced, the spill files are re-adopted once more */
    th_stop(&d, SIGKILL, 20);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not restart after SIGKILL");
    c = tc_connect(&d, "survivor", 3, (size_t)NV * 4);
    {
        int again = 0;
        for (int i = 0; i < 16; i++) {
            char name[32];
            sfpc_key k = {.rank = 3, .step = 9, .tensor = name};
            int e;
            name_of(name, sizeof(name), i);
            e = sfpc_get(c, &k, out, NV * 4, 0, NULL);
            if (e == SFPC_ENOTFOUND)
                continue;
            TH_CHECK(e == 0 && memcmp(out, data[i], NV * 4) == 0, "after SIGKILL, tensor %d: %s", i,
                     sfpc_strerror(e));
            again++;
        }
        TH_CHECK(again == found, "after SIGKILL: %d of %d re-adopted", again, found);
    }
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);

    /* nobody comes back within a short grace period: spill files go away */
    TH_CHECK(count_entries(d.spill) >= 1, "spill dir empty before expiry");
    TH_CHECK(th_start(&d, args_short) == 0, "sfpd did not restart");
    for (int i = 0; i < 100 && count_entries(d.spill) > 0; i++)
        usleep(50000);
    TH_CHECK(count_entries(d.spill) == 0, "expired job's spill files remain");
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    printf("restart: %d of 16 spilled tensors re-adopted bit-exact (after SIGTERM and again after SIGKILL); "
           "an absent job's files deleted after its grace period\n", found);
    th_cleanup(&d);
    free(out);
}

static void quota_and_grace(const sfp_params *p)
{
    th_daemon d;
    const char *args[] = {"--job-quota", "1M", "--grace-period", "0.5", NULL};
    sfpc *a, *b;
    int stored = 0, e = 0;
    float *out = malloc(NV * 4);
    sfpc_key k0 = {.rank = 0, .step = 0, .tensor = "layer00.out"};

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    a = tc_connect(&d, "greedy", 0, (size_t)NV * 4);
    b = tc_connect(&d, "modest", 0, (size_t)NV * 4);
    for (int i = 0; i < 16; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
        name_of(name, sizeof(name), i);
        if ((e = sfpc_put(a, &k, data[i], NV, p, 0, NULL)) != 0)
            break;
        stored++;
    }
    TH_CHECK(e == SFPC_EQUOTA && stored >= 3 && stored <= 4, "quota: %s after %d puts", sfpc_strerror(e), stored);
    e = sfpc_put(b, &k0, data[0], NV, p, 0, NULL);
    TH_CHECK(e == 0, "another job is not limited by the first one's quota: %s", sfpc_strerror(e));
    printf("quota: job_quota 1M stops the 5th 256 KiB put with EQUOTA; other jobs unaffected\n");

    /* connection gone: data kept for the grace period, then freed */
    sfpc_close(&b);
    b = tc_connect(&d, "modest", 0, (size_t)NV * 4);
    e = sfpc_get(b, &k0, out, NV * 4, 0, NULL);
    TH_CHECK(e == 0 && memcmp(out, data[0], NV * 4) == 0, "reconnect within grace: %s", sfpc_strerror(e));
    sfpc_close(&b);
    usleep(1200000);
    b = tc_connect(&d, "modest", 0, (size_t)NV * 4);
    e = sfpc_get(b, &k0, out, NV * 4, 0, NULL);
    TH_CHECK(e == SFPC_ENOTFOUND, "after the grace period: %s", sfpc_strerror(e));
    TH_CHECK(th_log_contains(&d, "job modest: no connection for its grace period"), "grace log");
    printf("grace: a job's data survives a reconnect within grace_period and is freed after it\n");
    sfpc_close(&a);
    sfpc_close(&b);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
    free(out);
}

/* EndJob while spill writes are still in flight, then the job goes on. */
static void endjob_under_spill(const sfp_params *p)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "2", NULL};
    sfpc *c;
    size_t shm_size;
    uint8_t *shm;
    float *out = malloc(NV * 4);

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    c = tc_connect(&d, "phoenix", 0, 16 * (size_t)NV * 4);
    shm = sfpc_shm(c, &shm_size);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 16; i++) {
            char name[32];
            sfpc_key k = {.rank = 0, .step = (uint64_t)round, .tensor = name};
            name_of(name, sizeof(name), i);
            memcpy(shm + (size_t)i * NV * 4, data[i], NV * 4);
            TH_CHECK(sfpc_put(c, &k, shm + (size_t)i * NV * 4, NV, p, SFPC_ASYNC, NULL) == 0, "put");
        }
        if (round < 2) {
            TH_CHECK(sfpc_end_job(c) == 0, "end job"); /* spills of the last puts still running */
            continue;
        }
        for (int i = 15; i >= 0; i--) {
            char name[32];
            sfpc_key k = {.rank = 0, .step = (uint64_t)round, .tensor = name};
            int e;
            name_of(name, sizeof(name), i);
            e = sfpc_get(c, &k, out, NV * 4, SFPC_GET_DROP, NULL);
            TH_CHECK(e == 0 && memcmp(out, data[i], NV * 4) == 0, "after EndJob, tensor %d: %s", i,
                     sfpc_strerror(e));
        }
        /* an ended round's keys are gone */
        {
            sfpc_key k = {.rank = 0, .step = 0, .tensor = "layer00.out"};
            TH_CHECK(sfpc_get(c, &k, out, NV * 4, 0, NULL) == SFPC_ENOTFOUND, "ended key");
        }
    }
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    printf("EndJob with spills in flight: the job's old segments retired, new stashes bit-exact\n");
    th_cleanup(&d);
    free(out);
}

int main(int argc, char **argv)
{
    sfp_params p;
    th_init(argc, argv, 110);
    sfp_params_default(&p); /* lossless F32: frames about as big as the data */
    make_data(&p);
    lifo_budget(&p, true, true, true, false);
    lifo_budget(&p, true, true, true, true);
    lifo_budget(&p, true, true, false, false);
    lifo_budget(&p, true, false, true, true);
    lifo_budget(&p, false, true, false, false);
    lifo_budget(&p, false, true, false, true);
    corruption(&p);
    disk_full(&p);
    io_error(&p);
    readopt(&p);
    quota_and_grace(&p);
    endjob_under_spill(&p);
    for (int i = 0; i < NT; i++)
        free(data[i]);
    printf("ok\n");
    return 0;
}
