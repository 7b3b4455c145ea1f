/*
 * test_clientkill: kill -9 of a client process in the middle of a Put and in
 * the middle of a Get (16 MiB tensors, so most of a victim's time is spent
 * inside a call) while a well-behaved client keeps working.
 *   - the bystander never sees an error and every Get is bit-exact;
 *   - the victim's connection is closed by the daemon, its job is orphaned
 *     and, after the grace period, freed: its line leaves the Stats text,
 *     the DRAM and disk bytes return to the bystander's level;
 *   - the victim's shared memory is unmapped and its descriptors closed
 *     (memfd mappings in /proc/PID/maps and the fd count of sfpd return to
 *     what they were before).
 * Victims are this program run again with --victim (a real separate process).
 */
#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG (4u << 20) /* values: 16 MiB of F32 */
#define SMALL 65536

static th_daemon d;
static atomic_int stop_good;
static atomic_long good_ops, good_errors;

/* ------------------------------------------------------------- victim */

static int victim_main(char **argv)
{
    const char *mode = argv[2], *sock = argv[3], *job = argv[4];
    sfpc_options o;
    sfpc *c;
    sfp_params p;
    size_t sz;
    float *shm;
    int e;

    sfpc_options_default(&o);
    o.socket_path = sock;
    o.job_id = job;
    o.shm_size = 2 * (size_t)BIG * 4;
    o.timeout_ms = 60000;
    o.client_name = "victim";
    if ((e = sfpc_connect(&o, &c)) != 0) {
        fprintf(stderr, "victim: connect %s\n", sfpc_strerror(e));
        return 1;
    }
    shm = sfpc_shm(c, &sz);
    sfp_params_default(&p);
    p.mbits = 7, p.ebits = 6, p.anchor = 140, p.coder = SFP_CODER_GECKO;
    tc_fill(shm, BIG, &p, 1);
    for (uint64_t step = 0;; step++) {
        sfpc_key k = {.rank = 0, .step = strcmp(mode, "get") == 0 ? step % 3 : step, .tensor = "big"};
        if (strcmp(mode, "put") == 0 || step < 3) {
            e = sfpc_put(c, &k, shm, BIG, &p, 0, NULL);
        } else {
            e = sfpc_get(c, &k, shm + BIG, (size_t)BIG * 4, 0, NULL);
        }
        if (e) {
            fprintf(stderr, "victim: %s\n", sfpc_strerror(e));
            return 1;
        }
        if (step == 3 && write(1, "R", 1) != 1) /* ready: in its main loop */
            return 1;
    }
}

/* ---------------------------------------------------------- bystander */

static void *good_client(void *arg)
{
    sfpc *c = tc_connect(&d, "bystander", 0, 4 * SMALL * 4);
    sfp_params p;
    float *in = malloc(SMALL * 4), *out = malloc(SMALL * 4);
    (void)arg;
    sfp_params_default(&p);
    p.mbits = 10, p.ebits = 6, p.coder = SFP_CODER_GECKO;
    tc_fill(in, SMALL, &p, 5);
    for (uint64_t i = 0; !atomic_load(&stop_good); i++) {
        sfpc_key k = {.rank = 0, .step = i, .tensor = "w"};
        int e = sfpc_put(c, &k, in, SMALL, &p, 0, NULL);
        if (e == 0)
            e = sfpc_get(c, &k, out, SMALL * 4, SFPC_GET_DROP, NULL);
        if (e || memcmp(in, out, SMALL * 4) != 0) {
            fprintf(stderr, "bystander: %s\n", e ? sfpc_strerror(e) : "data differs");
            atomic_fetch_add(&good_errors, 1);
        } else {
            atomic_fetch_add(&good_ops, 1);
        }
    }
    sfpc_close(&c);
    free(in);
    free(out);
    return NULL;
}

/* -------------------------------------------------------------- checks */

static int count_memfd_maps(pid_t pid)
{
    char path[64], line[512];
    int n = 0;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, "/memfd:") != NULL;
    fclose(f);
    return n;
}

static int count_fds(pid_t pid)
{
    char path[64];
    DIR *dd;
    struct dirent *e;
    int n = 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if (!(dd = opendir(path)))
        return -1;
    while ((e = readdir(dd)))
        n += e->d_name[0] != '.';
    closedir(dd);
    return n;
}

/* The Stats line of job, or "" (no such job). */
static void job_line(sfpc *c, const char *job, char *out, size_t cap)
{
    sfpc_stats s;
    char pat[160];
    const char *p;
    out[0] = 0;
    TH_CHECK(sfpc_stats_get(c, &s) == 0, "stats");
    snprintf(pat, sizeof(pat), "job{job=\"%s\"}", job);
    if ((p = strstr(s.text, pat))) {
        size_t n = strcspn(p, "\n");
        snprintf(out, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), p);
    }
    sfpc_stats_free(&s);
}

static char self[4096];

/* Waits stretch under slow wrappers (valgrind, TSan), like the harness alarm. */
static double slowdown(void)
{
    const char *m = getenv("SFPD_TEST_TIMEOUT_MULTIPLIER");
    double k = m ? atof(m) : 1;
    return k > 1 ? k : 1;
}

static void kill_victim(sfpc *mon, const char *mode, int round, int delay_ms)
{
    char job[32], line[512];
    int pipefd[2], maps0, fds0, maps1, fds1, maps_mid;
    pid_t pid;
    char r;
    double t_kill, end;
    long before = atomic_load(&good_ops);
    unsigned long long orphan_bytes = 0;

    snprintf(job, sizeof(job), "victim-%s-%d", mode, round);
    maps0 = count_memfd_maps(d.pid);
    fds0 = count_fds(d.pid);
    TH_CHECK(pipe(pipefd) == 0, "pipe");
    pid = fork();
    if (pid == 0) {
        alarm(0);
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        execl(self, self, "--victim", mode, d.socket, job, (char *)NULL);
        _exit(127);
    }
    TH_CHECK(pid > 0, "fork");
    close(pipefd[1]);
    TH_CHECK(read(pipefd[0], &r, 1) == 1 && r == 'R', "victim %s did not get ready", job);
    close(pipefd[0]);
    usleep((useconds_t)delay_ms * 1000);
    job_line(mon, job, line, sizeof(line));
    TH_CHECK(strstr(line, "connections=1"), "victim not attached: %s", line);
    maps_mid = count_memfd_maps(d.pid);
    TH_CHECK(maps_mid > maps0, "victim's shared memory not seen in sfpd's maps (%d -> %d)", maps0, maps_mid);
    kill(pid, SIGKILL);
    t_kill = th_now();
    TH_CHECK(waitpid(pid, NULL, 0) == pid, "waitpid");

    /* connection closed (job orphaned), then freed after the 1 s grace period */
    end = th_now() + 15 * slowdown();
    do {
        const char *b;
        usleep(50000);
        job_line(mon, job, line, sizeof(line));
        if (!orphan_bytes && strstr(line, "connections=0") && (b = strstr(line, " bytes_stored=")))
            orphan_bytes = strtoull(b + 14, NULL, 10);
    } while (line[0] && th_now() < end);
    TH_CHECK(!line[0], "job %s still there %.1f s after kill -9: %s", job, th_now() - t_kill, line);
    TH_CHECK(orphan_bytes > 0, "job %s never seen orphaned with its data", job);
    /* mappings and fds of the victim released (in-flight work holds them a moment) */
    end = th_now() + 5 * slowdown();
    do {
        maps1 = count_memfd_maps(d.pid);
        fds1 = count_fds(d.pid);
        if (maps1 <= maps0 && fds1 <= fds0)
            break;
        usleep(50000);
    } while (th_now() < end);
    TH_CHECK(maps1 <= maps0, "victim's shared memory still mapped (%d -> %d memfd mappings)", maps0, maps1);
    TH_CHECK(fds1 <= fds0, "sfpd fds %d -> %d", fds0, fds1);
    TH_CHECK(atomic_load(&good_errors) == 0, "bystander saw errors");
    TH_CHECK(atomic_load(&good_ops) > before, "bystander made no progress");
    printf("  kill -9 %-3s victim after %3d ms in its loop: job orphaned with %.1f MiB stored, freed %.1f s "
           "after the kill (grace 1 s); memfd maps %d -> %d -> %d, fds %d -> %d; bystander at %ld ops, 0 errors\n",
           mode, delay_ms, orphan_bytes / 1048576.0, th_now() - t_kill, maps0, maps_mid, maps1, fds0, fds1,
           atomic_load(&good_ops));
}

int main(int argc, char **argv)
{
    const char *args[] = {"--grace-period", "1", "--dram-budget", "40M", "--max-tensor", "64M", NULL};
    pthread_t t;
    sfpc *mon;
    sfpc_stats s;
    ssize_t n;

    if (argc > 4 && strcmp(argv[1], "--victim") == 0)
        return victim_main(argv);
    th_init(argc, argv, 110);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    TH_CHECK(n > 0, "readlink");
    self[n] = 0;
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    mon = tc_connect(&d, "monitor", 0, 0);
    pthread_create(&t, NULL, good_client, NULL);
    /* baselines below are taken with the bystander connected */
    for (double end = th_now() + 10 * slowdown(); atomic_load(&good_ops) < 2 && th_now() < end;)
        usleep(5000);
    TH_CHECK(atomic_load(&good_ops) >= 2, "bystander did not start");
    printf("kill -9 of clients mid-call (16 MiB tensors, Gecko), bystander client running:\n");
    for (int round = 0; round < 3; round++) {
        kill_victim(mon, "put", round, 7 + 31 * round);
        kill_victim(mon, "get", round, 13 + 29 * round);
    }
    atomic_store(&stop_good, 1);
    pthread_join(t, NULL);
    TH_CHECK(atomic_load(&good_errors) == 0, "bystander errors");
    /* nothing of the victims is left: the bystander drops what it reads
     * (dead segment files are unlinked on the pool: allow a moment) */
    for (double end = th_now() + 5 * slowdown();;) {
        TH_CHECK(sfpc_stats_get(mon, &s) == 0, "stats");
        if ((s.dram_bytes == 0 && s.disk_bytes == 0) || th_now() > end)
            break;
        sfpc_stats_free(&s);
        usleep(50000);
    }
    TH_CHECK(s.dram_bytes == 0 && s.disk_bytes == 0, "bytes left: dram %llu disk %llu",
             (unsigned long long)s.dram_bytes, (unsigned long long)s.disk_bytes);
    printf("after all kills: DRAM %llu B, disk %llu B in use; bystander %ld bit-exact round trips, 0 errors\n",
           (unsigned long long)s.dram_bytes, (unsigned long long)s.disk_bytes, atomic_load(&good_ops));
    sfpc_stats_free(&s);
    sfpc_close(&mon);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
    printf("ok\n");
    return 0;
}
