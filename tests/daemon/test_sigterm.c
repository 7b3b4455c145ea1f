/*
 * test_sigterm: SIGTERM while four clients put and get: in-flight requests
 * finish or fail with a code, clients see an error (never a hang, never
 * wrong data), and sfpd exits 0 in bounded time. In the sanitizer build the
 * exit status also carries LeakSanitizer's verdict.
 */
#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static th_daemon d;
static atomic_long ops, wrong;
static atomic_int ended[4];
static double end_time[4];

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char job[16];
    sfpc *c;
    sfp_params p;
    size_t n = (size_t)(16384 << (id % 3)); /* 64 KiB .. 256 KiB */
    float *in = malloc(n * 4), *out = malloc(n * 4);
    int e = 0;

    snprintf(job, sizeof(job), "job%d", id % 2);
    c = tc_connect(&d, job, (uint32_t)id, 2 << 20);
    sfp_params_default(&p);
    p.mbits = 10;
    p.ebits = 6;
    tc_fill(in, n, &p, (uint64_t)id);
    for (uint64_t i = 0;; i++) {
        char name[32];
        sfpc_key k = {.rank = (uint32_t)id, .step = i, .tensor = name};
        snprintf(name, sizeof(name), "t%llu", (unsigned long long)(i % 8));
        if ((e = sfpc_put(c, &k, in, n, &p, 0, NULL)) != 0)
            break;
        if ((e = sfpc_get(c, &k, out, n * 4, SFPC_GET_DROP, NULL)) != 0)
            break;
        if (memcmp(in, out, n * 4) != 0)
            atomic_fetch_add(&wrong, 1);
        atomic_fetch_add(&ops, 1);
    }
    end_time[id] = th_now();
    atomic_store(&ended[id], e);
    sfpc_close(&c);
    free(in);
    free(out);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *args[] = {"--dram-budget", "1M", NULL}; /* keeps the disk tier busy too */
    pthread_t t[4];
    double t0;
    int status;

    th_init(argc, argv, 100);
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    while (atomic_load(&ops) < 200)
        usleep(1000);
    t0 = th_now();
    status = th_stop(&d, SIGTERM, 30);
    printf("SIGTERM after %ld round trips: sfpd exited with %d after %.3f s\n", atomic_load(&ops),
           status, th_now() - t0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) {
        int e = atomic_load(&ended[i]);
        printf("  client %d: stopped with %s after %.3f s\n", i, sfpc_strerror(e), end_time[i] - t0);
        TH_CHECK(e == SFPC_ESHUTDOWN || e == SFPC_EDISCONNECTED, "client %d: %s", i, sfpc_strerror(e));
        TH_CHECK(end_time[i] - t0 < 10, "client %d hung", i);
    }
    TH_CHECK(atomic_load(&wrong) == 0, "wrong data returned");
    if (status != 0)
        th_dump_log(&d);
    TH_CHECK(status == 0, "sfpd exit status %d", status);
    TH_CHECK(th_log_contains(&d, "SIGTERM: draining") && th_log_contains(&d, "stopped"), "drain log");
    th_cleanup(&d);
    printf("ok\n");
    return 0;
}
