/*
 * bench_peer: put/get throughput of sfpd when its frames spill to a peer
 * sfpd over gRPC (tier_order dram,peer,disk) versus to its local disk tier
 * (dram,disk), on this machine (docs/BENCHMARKS.md "Peer tier").
 *
 *   bench_peer PATH-TO-SFPD [--quick]
 *
 * Three real daemons on loopback: B serves Peer (peering=1); A_peer spills
 * to B; A_disk spills to its spill directory. Both A's have a DRAM budget of
 * 1 MiB, far below a step's data, so nearly every frame goes down a tier and
 * comes back. One step = NT puts (synchronous, lossless F32 so frames are
 * about as large as the data) then NT gets in reverse order with drop.
 * Throughput counts uncompressed tensor bytes. One warm-up step, then the
 * median of RUNS steps; the same step alternates between the two setups.
 */
#include "gtest.h"

#include <math.h>
#include <sys/stat.h>

#define MAX_NT 64

static float *data[MAX_NT];
static int NT = 64;
static size_t NV = 256 * 1024; /* 1 MiB of F32 */
static int RUNS = 7;
static sfp_params P;

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One step; returns put and get seconds. */
static void step(sfpc *c, uint64_t s, double *put_s, double *get_s)
{
    size_t shm_size;
    uint8_t *shm = sfpc_shm(c, &shm_size);
    double t0 = th_now();
    for (int i = 0; i < NT; i++) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = s, .tensor = name};
        int e;
        snprintf(name, sizeof(name), "t%02d", i);
        memcpy(shm, data[i], NV * 4);
        e = sfpc_put(c, &k, shm, NV, &P, 0, NULL);
        TH_CHECK(e == 0, "put: %s", sfpc_strerror(e));
    }
    *put_s = th_now() - t0;
    t0 = th_now();
    for (int i = NT - 1; i >= 0; i--) {
        char name[32];
        sfpc_key k = {.rank = 0, .step = s, .tensor = name};
        int e;
        snprintf(name, sizeof(name), "t%02d", i);
        e = sfpc_get(c, &k, shm, NV * 4, SFPC_GET_DROP, NULL);
        TH_CHECK(e == 0, "get: %s", sfpc_strerror(e));
        TH_CHECK(memcmp(shm, data[i], 64) == 0, "wrong data");
    }
    *get_s = th_now() - t0;
}

static uint64_t field(const char *text, const char *prefix, const char *key)
{
    const char *l = strstr(text, prefix), *p;
    char k[64];
    snprintf(k, sizeof(k), " %s=", key);
    if (!l || !(p = strstr(l, k)))
        return 0;
    return strtoull(p + strlen(k), NULL, 10);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    char tok_dir[256], tok[300];
    const char *depths[] = {"4", "0"};
    gt_daemon B;
    FILE *f;

    th_init(argc, argv, 1200);
    if (argc > 2 && strcmp(argv[2], "--quick") == 0) {
        NT = 16;
        RUNS = 3;
    }
    sfp_params_default(&P);
    for (int i = 0; i < NT; i++) {
        data[i] = malloc(NV * 4);
        tc_fill(data[i], NV, &P, 5 + (uint64_t)i);
    }
    snprintf(tok_dir, sizeof(tok_dir), "%s/sfpd-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    TH_CHECK(mkdtemp(tok_dir) != NULL, "mkdtemp");
    snprintf(tok, sizeof(tok), "%s/token", tok_dir);
    f = fopen(tok, "w");
    TH_CHECK(f != NULL, "token file");
    fputs("bench-peer-token\n", f);
    fclose(f);
    chmod(tok, 0600);
    {
        const char *args[] = {"--peering", "1", "--peer-token-file", tok, "--peer-serve-max-bytes", "4G", NULL};
        gt_start(&B, args);
    }
    printf("# %d tensors x %.2f MiB (lossless F32) per step, DRAM budget 1 MiB, "
           "median of %d steps after 1 warm-up\n", NT, (double)NV * 4 / (1 << 20), RUNS);
    for (size_t d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
        gt_daemon A[2];
        sfpc *c[2];
        double put[2][16], get[2][16];
        const char *names[2] = {"disk", "peer"};
        char text_sent[64] = "";
        for (int m = 0; m < 2; m++) {
            const char *args[] = {"--tier-order", m ? "dram,peer,disk" : "dram,disk",
                                  "--peers", B.addr, "--peer-token-file", tok,
                                  "--dram-budget", "1M", "--prefetch-depth", depths[d], NULL};
            gt_start(&A[m], args);
            c[m] = tc_connect(&A[m].d, "bench", 0, NV * 4 + 4096);
        }
        for (int r = -1; r < RUNS; r++) {
            for (int m = 0; m < 2; m++) {
                double ps, gs;
                step(c[m], (uint64_t)(r + 2), &ps, &gs);
                if (r >= 0) {
                    put[m][r] = (double)NT * (double)NV * 4 / ps / 1e6;
                    get[m][r] = (double)NT * (double)NV * 4 / gs / 1e6;
                }
            }
        }
        {
            sfpc_stats s;
            TH_CHECK(sfpc_stats_get(c[1], &s) == 0, "stats");
            snprintf(text_sent, sizeof(text_sent), "%llu/%llu frames sent/fetched, rtt %llu us",
                     (unsigned long long)field(s.text, "peer{", "frames_sent"),
                     (unsigned long long)field(s.text, "peer{", "frames_received"),
                     (unsigned long long)field(s.text, "peer{", "rtt_us"));
            sfpc_stats_free(&s);
        }
        {
            double pm[2], gm[2];
            for (int m = 0; m < 2; m++) {
                pm[m] = median(put[m], RUNS);
                gm[m] = median(get[m], RUNS);
                printf("peer_tier tier=%s prefetch_depth=%s put_MBps=%.0f get_MBps=%.0f\n", names[m],
                       depths[d], pm[m], gm[m]);
            }
            printf("peer_tier ratio peer/disk prefetch_depth=%s put=%.2f get=%.2f (%s)\n", depths[d],
                   pm[1] / pm[0], gm[1] / gm[0], text_sent);
        }
        for (int m = 0; m < 2; m++) {
            sfpc_close(&c[m]);
            th_stop(&A[m].d, SIGTERM, 20);
            th_cleanup(&A[m].d);
        }
    }
    th_stop(&B.d, SIGTERM, 20);
    th_cleanup(&B.d);
    unlink(tok);
    rmdir(tok_dir);
    for (int i = 0; i < NT; i++)
        free(data[i]);
    return 0;
}
