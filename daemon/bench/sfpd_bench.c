/*
 * sfpd_bench: put/get round trips through a real sfpd versus the same
 * encode/decode done in-process, for 1, 2 and 4 concurrent clients and
 * tensor sizes 64 KiB .. 64 MiB. Prints one table: round-trip throughput
 * (tensor bytes per second, put + get counted once) and p50/p99 latency.
 *
 *   sfpd_bench PATH-TO-SFPD [--quick] [--max-size BYTES]
 *
 * The daemon runs on a temp socket and spill dir with a DRAM budget large
 * enough that nothing spills: this measures the IPC + pool overhead.
 */
#define _GNU_SOURCE
#include <sfp/client.h>
#include <sfp/sfp.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char sock_path[256];
static sfp_params params;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Activation-like data (ReLU'd Gaussian-ish), already on the grid. */
static void fill(float *v, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        double u = 0;
        for (int j = 0; j < 4; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            u += (double)(s >> 11) / 9007199254740992.0;
        }
        u = (u - 2.0) * 1.7;
        v[i] = u > 0 ? (float)u : 0.0f;
    }
    sfp_quantize(v, v, n, &params, NULL);
}

typedef struct job {
    int id;
    size_t n;          /* values */
    int iters;
    int daemon;        /* 1: through sfpd, 0: in-process */
    double *lat;       /* per iteration seconds */
    pthread_barrier_t *bar;
    double t0, t1;
    int err;
} job;

static void *run(void *arg)
{
    job *j = arg;
    size_t bytes = j->n * 4;
    float *src = NULL;
    if (j->daemon) {
        sfpc_options o;
        sfpc *c = NULL;
        char name[32];
        uint8_t *shm;
        int e;
        sfpc_options_default(&o);
        o.socket_path = sock_path;
        snprintf(name, sizeof(name), "bench-%d", j->id);
        o.job_id = name;
        o.rank = (uint32_t)j->id;
        o.shm_size = 2 * bytes + 4096;
        o.timeout_ms = 60000;
        if ((e = sfpc_connect(&o, &c)) != 0) {
            fprintf(stderr, "connect: %s\n", sfpc_strerror(e));
            j->err = e;
            pthread_barrier_wait(j->bar);
            pthread_barrier_wait(j->bar);
            return NULL;
        }
        shm = sfpc_shm(c, NULL);
        fill((float *)shm, j->n, (uint64_t)j->id);
        for (int w = 0; w < 2; w++) { /* warm-up */
            sfpc_key k = {.rank = 0, .step = 0, .tensor = "warm"};
            sfpc_put(c, &k, shm, j->n, &params, 0, NULL);
            sfpc_get(c, &k, shm + bytes, bytes, SFPC_GET_DROP, NULL);
        }
        pthread_barrier_wait(j->bar);
        j->t0 = now();
        for (int i = 0; i < j->iters; i++) {
            sfpc_key k = {.rank = 0, .step = (uint64_t)i, .tensor = "act"};
            double t = now();
            int e1 = sfpc_put(c, &k, shm, j->n, &params, 0, NULL);
            int e2 = e1 ? e1 : sfpc_get(c, &k, shm + bytes, bytes, SFPC_GET_DROP, NULL);
            if (e2 && !j->err)
                j->err = e2;
            j->lat[i] = now() - t;
        }
        j->t1 = now();
        pthread_barrier_wait(j->bar);
        if (memcmp(shm, shm + bytes, bytes) != 0)
            j->err = -999;
        sfpc_close(&c);
    } else {
        size_t cap = sfp_frame_bound(j->n, &params), len;
        uint8_t *frame = malloc(cap);
        float *out = malloc(bytes);
        src = malloc(bytes);
        fill(src, j->n, (uint64_t)j->id);
        for (int w = 0; w < 2; w++) {
            sfp_encode(src, j->n, &params, frame, cap, &len, NULL);
            sfp_decode(frame, len, out, bytes, NULL);
        }
        pthread_barrier_wait(j->bar);
        j->t0 = now();
        for (int i = 0; i < j->iters; i++) {
            double t = now();
            /* reuses one frame buffer: the fastest in-process baseline */
            if (sfp_encode(src, j->n, &params, frame, cap, &len, NULL) != 0 ||
                sfp_decode(frame, len, out, bytes, NULL) != 0)
                j->err = -1;
            j->lat[i] = now() - t;
        }
        j->t1 = now();
        pthread_barrier_wait(j->bar);
        if (memcmp(src, out, bytes) != 0)
            j->err = -999;
        free(frame);
        free(out);
        free(src);
    }
    return NULL;
}

typedef struct result {
    double mbps, p50, p99;
} result;

static int measure(int daemon, int clients, size_t bytes, int iters, result *r)
{
    pthread_t t[8];
    job j[8];
    pthread_barrier_t bar;
    double t0 = 1e300, t1 = 0, *all = malloc(sizeof(double) * (size_t)(clients * iters));
    int err = 0, n = 0;

    pthread_barrier_init(&bar, NULL, (unsigned)clients);
    for (int i = 0; i < clients; i++) {
        j[i] = (job){.id = i, .n = bytes / 4, .iters = iters, .daemon = daemon, .bar = &bar};
        j[i].lat = calloc((size_t)iters, sizeof(double));
        pthread_create(&t[i], NULL, run, &j[i]);
    }
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        if (j[i].err)
            err = j[i].err;
        t0 = j[i].t0 < t0 ? j[i].t0 : t0;
        t1 = j[i].t1 > t1 ? j[i].t1 : t1;
        for (int k = 0; k < iters; k++)
            all[n++] = j[i].lat[k];
        free(j[i].lat);
    }
    pthread_barrier_destroy(&bar);
    qsort(all, (size_t)n, sizeof(double), cmp_double);
    r->mbps = (double)bytes * clients * iters / (t1 - t0) / 1048576.0;
    r->p50 = all[(size_t)(0.50 * (n - 1))] * 1e3;
    r->p99 = all[(size_t)ceil(0.99 * (n - 1))] * 1e3;
    free(all);
    return err;
}

static pid_t start_sfpd(const char *sfpd, const char *dir)
{
    char spill[300], log[300];
    pid_t pid;
    snprintf(sock_path, sizeof(sock_path), "%s/sfpd.sock", dir);
    snprintf(spill, sizeof(spill), "%s/spill", dir);
    snprintf(log, sizeof(log), "%s/sfpd.log", dir);
    pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        setenv("SFPD_GRPC_LISTEN", "", 1); /* no TCP listeners needed here */
        setenv("SFPD_METRICS_LISTEN", "", 1);
        execl(sfpd, sfpd, "--socket", sock_path, "--spill-dir", spill, "--dram-budget", "2G",
              "--max-tensor", "256M", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int s = socket(AF_UNIX, SOCK_STREAM, 0), ok;
        memcpy(a.sun_path, sock_path, strlen(sock_path) + 1);
        ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(s);
        if (ok)
            return pid;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    return -1;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {64u << 10, 256u << 10, 1u << 20, 4u << 20, 16u << 20, 64u << 20};
    static const int clients[] = {1, 2, 4};
    char dir[] = "/tmp/sfpd-bench-XXXXXX", cmd[128];
    size_t max_size = 64u << 20;
    int quick = 0, st, rc = 0;
    pid_t pid;

    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-SFPD [--quick] [--max-size BYTES]\n", argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1, max_size = 4u << 20;
        else if (strcmp(argv[i], "--max-size") == 0 && i + 1 < argc)
            max_size = strtoull(argv[++i], NULL, 0);
    }
    sfp_params_default(&params);
    params.mbits = 7;
    params.ebits = 5;
    params.coder = SFP_CODER_GECKO;
    if (!mkdtemp(dir) || (pid = start_sfpd(argv[1], dir)) < 0) {
        fprintf(stderr, "cannot start sfpd\n");
        return 1;
    }
    printf("sfpd put+get round trip vs in-process encode+decode; F32, k=%u e=%u Gecko; %ld CPUs\n",
           params.mbits, params.ebits, sysconf(_SC_NPROCESSORS_ONLN));
    printf("| size | clients | daemon MiB/s | daemon p50 ms | daemon p99 ms | in-proc MiB/s | in-proc p50 ms | in-proc p99 ms | daemon/in-proc |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t bytes = sizes[si];
        int iters;
        if (bytes > max_size)
            break;
        iters = (int)((quick ? (64u << 20) : (512u << 20)) / bytes);
        if (iters < 6)
            iters = 6;
        if (iters > 400)
            iters = 400;
        for (size_t ci = 0; ci < 3; ci++) {
            result d, p;
            int e1 = measure(1, clients[ci], bytes, iters, &d);
            int e2 = measure(0, clients[ci], bytes, iters, &p);
            char sz[32];
            if (bytes >= (1u << 20))
                snprintf(sz, sizeof(sz), "%zu MiB", bytes >> 20);
            else
                snprintf(sz, sizeof(sz), "%zu KiB", bytes >> 10);
            printf("| %s | %d | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %.0f%% |%s\n", sz, clients[ci],
                   d.mbps, d.p50, d.p99, p.mbps, p.p50, p.p99, 100 * d.mbps / p.mbps,
                   e1 || e2 ? " ERROR" : "");
            if (e1 || e2)
                rc = 1;
        }
    }
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "sfpd exited abnormally\n");
        rc = 1;
    }
    return rc;
}
