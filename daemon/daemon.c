/*
 * daemon.c - the composition root (daemon.h).
 *
 * Start: store (re-adopting spill files), IPC server, signal handlers,
 * /metrics and gRPC, then READY=1. SIGTERM/SIGINT: health NOT_SERVING,
 * the IPC server drains, then the store (pool work included), then gRPC
 * stops once its grace is over, and the loop ends. SIGHUP: live options.
 * SIGUSR1: the snapshot on stderr.
 */
#include "daemon.h"

#include "base/sfpd.h"
#include "base/stats.h"
#include "core/policy.h"
#include "core/store.h"
#include "edges/grpc/grpc_server.h"
#include "edges/ipc/ipc_server.h"
#include "edges/metrics/metrics_http.h"
#include "tiers/tiers.h"
#include "sfpd_build.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

typedef struct sfpd_daemon {
    uv_loop_t loop;
    sfpd_config *cfg;
    int argc;
    char **argv;
    sfpd_store *store;
    sfpd_policies *policies;
    sfpd_ipc_server *ipc;
    sfpd_grpc *grpc;
    sfpd_metrics *metrics;
    uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
    uv_timer_t watchdog;
    bool handles_init, draining, store_stopping, store_down;
    uint64_t start_ns;
} sfpd_daemon;

/* ------------------------------------------------------------- snapshot */

/* The snapshot source of every reporter: counters, core, then the edges. */
static int take_snapshot(void *arg, sfpd_snapshot **out)
{
    sfpd_daemon *d = arg;
    sfpd_snapshot *s = sfpd_calloc(1, sizeof(*s));
    struct timespec ts;
    int r;

    if (!s)
        return -ENOMEM;
    sfpd_snapshot_sum_counters(s);
    if ((r = sfpd_store_fill_snapshot(d->store, s)) < 0) {
        sfpd_snapshot_free(&s);
        return r;
    }
    if (d->ipc)
        sfpd_ipc_server_fill_snapshot(d->ipc, s);
    clock_gettime(CLOCK_REALTIME, &ts);
    s->taken_unix_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    s->uptime_seconds = (double)(sfpd_now_ns() - d->start_ns) / 1e9;
    *out = s;
    return 0;
}

static sfpd_snapshot_source snapshot_source(sfpd_daemon *d)
{
    return (sfpd_snapshot_source){.take = take_snapshot, .arg = d};
}

static void dump_stats(sfpd_daemon *d)
{
    sfpd_snapshot *s = NULL;
    if (take_snapshot(d, &s) < 0)
        return;
    fprintf(stderr, "--- sfpd stats ---\n");
    sfpd_snapshot_print(s, stderr);
    fprintf(stderr, "--- end ---\n");
    fflush(stderr);
    sfpd_snapshot_free(&s);
}

/* ---------------------------------------------------------------- drain */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void store_down_cb(void *arg)
{
    sfpd_daemon *d = arg;
    d->store_down = true;
    sfpd_grpc_daemon_drained(d->grpc); /* gRPC may stop once its grace is over */
    sfpd_ipc_server_close(d->ipc);
    if (!d->handles_init)
        return;
    close_handle((uv_handle_t *)&d->sig_term);
    close_handle((uv_handle_t *)&d->sig_int);
    close_handle((uv_handle_t *)&d->sig_hup);
    close_handle((uv_handle_t *)&d->sig_usr1);
    close_handle((uv_handle_t *)&d->watchdog);
}

static void stop_store(sfpd_daemon *d)
{
    if (d->store_stopping)
        return;
    d->store_stopping = true;
    sfpd_store_shutdown(d->store, store_down_cb, d);
}

static void ipc_drained(void *arg)
{
    stop_store(arg);
}

static void start_drain(sfpd_daemon *d, const char *why)
{
    uint32_t conns = 0, inflight = 0;
    if (d->draining)
        return;
    d->draining = true;
    if (d->ipc)
        sfpd_ipc_server_counts(d->ipc, &conns, &inflight);
    sfpd_info("%s: draining (%u connections, %u requests in flight)", why, conns,
              inflight + sfpd_store_inflight(d->store));
#if HAVE_LIBSYSTEMD
    sd_notify(0, "STOPPING=1");
#endif
    sfpd_grpc_drain(d->grpc); /* health NOT_SERVING from now on */
    sfpd_metrics_set_draining(d->metrics);
    if (d->ipc)
        sfpd_ipc_server_drain(d->ipc, ipc_drained, d);
    else
        stop_store(d);
}

/* --------------------------------------------------------------- signals */

static void reload(sfpd_daemon *d)
{
    sfpd_config *n = NULL;
#if HAVE_LIBSYSTEMD
    sd_notify(0, "RELOADING=1");
#endif
    if (sfpd_config_reload(d->cfg, d->argc, d->argv, &n) < 0) {
        sfpd_err("SIGHUP: configuration invalid; keeping the old one");
    } else {
        sfpd_config_apply_live(d->cfg, n);
        sfpd_config_free(&n);
        sfpd_log_set_level((int)d->cfg->log_level);
        sfpd_store_configure(d->store, d->cfg);
        sfpd_info("SIGHUP: configuration reloaded");
    }
#if HAVE_LIBSYSTEMD
    sd_notify(0, "READY=1");
#endif
}

static void signal_cb(uv_signal_t *h, int signum)
{
    sfpd_daemon *d = h->data;
    switch (signum) {
    case SIGTERM:
    case SIGINT:
        start_drain(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    case SIGHUP:
        reload(d);
        break;
    case SIGUSR1:
        dump_stats(d);
        break;
    }
}

static void init_handles(sfpd_daemon *d)
{
    uv_signal_t *sigs[] = {&d->sig_term, &d->sig_int, &d->sig_hup, &d->sig_usr1};
    int nums[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(sigs); i++) {
        uv_signal_init(&d->loop, sigs[i]);
        sigs[i]->data = d;
        uv_signal_start(sigs[i], signal_cb, nums[i]);
    }
    uv_timer_init(&d->loop, &d->watchdog);
    d->handles_init = true;
}

#if HAVE_LIBSYSTEMD
static void watchdog_cb(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

static void notify_ready(sfpd_daemon *d)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        uv_timer_start(&d->watchdog, watchdog_cb, usec / 2000, usec / 2000);
        sfpd_info("systemd watchdog every %llu ms", (unsigned long long)(usec / 2000));
    }
    sd_notifyf(0, "READY=1\nSTATUS=serving on %s\nMAINPID=%lu", d->cfg->socket,
               (unsigned long)getpid());
}
#else
static void notify_ready(sfpd_daemon *d) { (void)d; }
#endif

/* ------------------------------------------------------------------ run */

int sfpd_daemon_run(sfpd_config *cfg, int argc, char **argv)
{
    sfpd_daemon *d = sfpd_calloc(1, sizeof(*d));
    int r, code = 1;

    if (!d) {
        sfpd_config_free(&cfg);
        return 1;
    }
    d->cfg = cfg;
    d->argc = argc;
    d->argv = argv;
    d->start_ns = sfpd_now_ns();
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit (LimitFSIZE=, ulimit -f) must fail a spill write
     * with EFBIG (-> E_DISK_FULL), not kill the daemon */
    signal(SIGXFSZ, SIG_IGN);

    if ((r = uv_loop_init(&d->loop)) != 0) {
        sfpd_err("uv_loop_init: %s", uv_strerror(r));
        goto out_free;
    }
    if (sfpd_policies_create(&d->policies) < 0)
        goto out_loop;
    if (sfpd_store_create(&d->loop, cfg, sfpd_tier_kinds, sfpd_n_tier_kinds, &d->store) < 0)
        goto out_loop;
    sfpd_store_adopt(d->store); /* logs what it could not scan */
    if (sfpd_ipc_server_start(&d->loop, cfg, d->store, d->policies, snapshot_source(d), &d->ipc) < 0)
        goto out_store;
    init_handles(d);
    /* gRPC API and /metrics: listening before READY=1 */
    if (sfpd_metrics_start(&d->loop, cfg, snapshot_source(d), &d->metrics) < 0 ||
        sfpd_grpc_start(&d->loop, cfg, d->store, d->policies, snapshot_source(d), &d->grpc) < 0) {
        start_drain(d, "start-up failed");
        uv_run(&d->loop, UV_RUN_DEFAULT);
        goto out_store; /* code stays 1 */
    }
    notify_ready(d);
    sfpd_info("sfpd %s serving on %s (pid %ld, dram_budget %llu, spill %s, %s threads)",
              SFP_VERSION_STRING, cfg->socket, (long)getpid(), (unsigned long long)cfg->dram_budget,
              cfg->spill_dir, getenv("UV_THREADPOOL_SIZE") ? getenv("UV_THREADPOOL_SIZE") : "4");
    {
        /* fault injection for tests: fail the n-th allocation from now */
        const char *fa = getenv("SFPD_TEST_FAIL_ALLOC_AT");
        if (fa && fa[0]) {
            sfpd_warn("test mode: allocation %s from now will fail", fa);
            sfpd_alloc_fail_at(strtoull(fa, NULL, 10));
        }
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    code = 0;
    sfpd_info("stopped");

out_store:
    /* start-up failure: no handles besides the store's timer */
    stop_store(d);
    sfpd_metrics_stop(&d->metrics);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    sfpd_grpc_destroy(&d->grpc);
    sfpd_ipc_server_destroy(&d->ipc);
    sfpd_store_destroy(&d->store);
out_loop:
    sfpd_policies_destroy(&d->policies);
    if (uv_loop_close(&d->loop) != 0)
        sfpd_warn("loop closed with live handles");
out_free:
    sfpd_config_free(&d->cfg);
    sfpd_free(d);
    return code;
}
