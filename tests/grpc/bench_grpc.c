/*
 * bench_grpc: GetStats latency and throughput of sfpd's gRPC API.
 *
 *   bench_grpc PATH-TO-SFPD [seconds-per-run]
 *
 * Starts the real sfpd (temp dirs, port 0). Two "training" clients put,
 * get and drop 1 MiB f32 tensors through libsfpclient the whole time, so
 * the loop thread is busy the way it is during training. Then:
 *  - latency: one caller, sequential GetStats, p50/p99 over all calls;
 *  - throughput: 1, 2, 4, 8 concurrent callers (one channel each, one
 *    call in flight per caller), calls/s.
 * Each figure is the median of 3 runs after a warm-up run. Not part of the
 * default tests (it takes ~30 s and measures, it does not check).
 */
#include "gtest.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "rpc.h"
#include "sfp/v1/sfp.pb-c.h"

static atomic_int stop_training;
static atomic_ullong training_puts;
static th_daemon *daemon_ptr;

static void *trainer(void *arg)
{
    uint32_t rank = (uint32_t)(uintptr_t)arg;
    sfpc *c = tc_connect(daemon_ptr, "bench-job", rank, 16 << 20);
    size_t n = 256 * 1024;
    float *buf = malloc(n * 4), *back = malloc(n * 4);
    sfp_params p;
    uint64_t step = 0;

    sfp_params_default(&p);
    p.mbits = 7;
    p.ebits = 5;
    p.coder = SFP_CODER_GECKO;
    tc_fill(buf, n, &p, rank + 1);
    while (!atomic_load(&stop_training)) {
        /* a forward of 8 layers, then a backward in reverse */
        for (int l = 0; l < 8; l++) {
            char name[32];
            sfpc_key k = {.rank = rank, .step = step, .tensor = name};
            snprintf(name, sizeof(name), "layer%d", l);
            TH_CHECK(sfpc_put(c, &k, buf, n, &p, 0, NULL) == 0, "put");
            atomic_fetch_add(&training_puts, 1);
        }
        for (int l = 7; l >= 0; l--) {
            char name[32];
            sfpc_key k = {.rank = rank, .step = step, .tensor = name};
            snprintf(name, sizeof(name), "layer%d", l);
            TH_CHECK(sfpc_get(c, &k, back, n * 4, SFPC_GET_DROP, NULL) == 0, "get");
        }
        step++;
    }
    sfpc_close(&c);
    free(buf);
    free(back);
    return NULL;
}

typedef struct caller {
    const char *addr;
    double seconds;
    unsigned long calls;
    double *lat;     /* latencies (s) when collecting */
    size_t nlat, cap;
} caller;

static int get_stats(grpc_channel *ch, grpc_completion_queue *cq)
{
    Sfp__V1__GetStatsRequest r = SFP__V1__GET_STATS_REQUEST__INIT;
    sfp_rpc_call c = {
        .method = "/sfp.v1.Stats/GetStats", .req = &r.base,
        .reply_desc = &sfp__v1__stats_snapshot__descriptor,
        .deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(10, GPR_TIMESPAN)),
    };
    grpc_status_code st = sfp_rpc_unary(ch, cq, &c);
    sfp_rpc_call_clear(&c);
    return st == GRPC_STATUS_OK ? 0 : -1;
}

static void *caller_main(void *arg)
{
    caller *cl = arg;
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(cl->addr, creds, NULL);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    double end;

    grpc_channel_credentials_release(creds);
    get_stats(ch, cq); /* connect */
    end = th_now() + cl->seconds;
    while (th_now() < end) {
        double t0 = th_now();
        TH_CHECK(get_stats(ch, cq) == 0, "GetStats failed");
        cl->calls++;
        if (cl->lat) {
            if (cl->nlat == cl->cap) {
                cl->cap *= 2;
                cl->lat = realloc(cl->lat, cl->cap * sizeof(double));
            }
            cl->lat[cl->nlat++] = th_now() - t0;
        }
    }
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median3(double *v)
{
    qsort(v, 3, sizeof(double), cmp_double);
    return v[1];
}

/* Runs k callers for secs; returns calls/s. With lat: fills p50/p99 (us). */
static double run(const char *addr, int k, double secs, double *p50, double *p99)
{
    caller cl[8];
    pthread_t t[8];
    unsigned long total = 0;
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < k; i++) {
        cl[i].addr = addr;
        cl[i].seconds = secs;
        if (p50) {
            cl[i].cap = 1024;
            cl[i].lat = malloc(cl[i].cap * sizeof(double));
        }
        pthread_create(&t[i], NULL, caller_main, &cl[i]);
    }
    for (int i = 0; i < k; i++) {
        pthread_join(t[i], NULL);
        total += cl[i].calls;
    }
    if (p50) {
        qsort(cl[0].lat, cl[0].nlat, sizeof(double), cmp_double);
        *p50 = cl[0].lat[cl[0].nlat / 2] * 1e6;
        *p99 = cl[0].lat[(size_t)((double)cl[0].nlat * 0.99)] * 1e6;
        free(cl[0].lat);
    }
    return (double)total / secs;
}

int main(int argc, char **argv)
{
    gt_daemon g;
    pthread_t tr[2];
    double secs = argc > 2 ? atof(argv[2]) : 2.0;
    double p50[3], p99[3], cps[3], t0;
    unsigned long long puts0;

    th_init(argc, argv, 600);
    gt_start(&g, NULL);
    daemon_ptr = &g.d;
    grpc_init();

    printf("| load | callers | calls/s | p50 us (1 caller) | p99 us (1 caller) |\n");
    printf("|---|---:|---:|---:|---:|\n");
    /* idle daemon first */
    run(g.addr, 1, secs / 2, NULL, NULL);
    for (int r = 0; r < 3; r++)
        cps[r] = run(g.addr, 1, secs, &p50[r], &p99[r]);
    printf("| idle daemon | 1 | %.0f | %.0f | %.0f |\n", median3(cps), median3(p50), median3(p99));

    for (int i = 0; i < 2; i++)
        pthread_create(&tr[i], NULL, trainer, (void *)(uintptr_t)i);
    usleep(500000);
    puts0 = atomic_load(&training_puts);
    t0 = th_now();
    run(g.addr, 1, secs / 2, NULL, NULL);
    for (int r = 0; r < 3; r++)
        cps[r] = run(g.addr, 1, secs, &p50[r], &p99[r]);
    printf("| 2 training clients | 1 | %.0f | %.0f | %.0f |\n", median3(cps), median3(p50), median3(p99));
    for (int k = 2; k <= 8; k *= 2) {
        for (int r = 0; r < 3; r++)
            cps[r] = run(g.addr, k, secs, NULL, NULL);
        printf("| 2 training clients | %d | %.0f | | |\n", k, median3(cps));
    }
    printf("\ntraining load meanwhile: %.0f puts/s (+ as many gets) of 1 MiB f32 tensors\n",
           (double)(atomic_load(&training_puts) - puts0) / (th_now() - t0));
    atomic_store(&stop_training, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(tr[i], NULL);
    grpc_shutdown();
    TH_CHECK(th_stop(&g.d, SIGTERM, 15) == 0, "sfpd exit");
    th_cleanup(&g.d);
    return 0;
}
