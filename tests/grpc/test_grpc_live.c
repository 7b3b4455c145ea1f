/*
 * test_grpc_live: the real sfpd with real data, queried over gRPC.
 *
 * Two jobs put tensors through libsfpclient; then sfpctl (C core client)
 * and an independent client (Python grpcio, tests/grpc/grpc_client.py) call
 * every method and check the values against what was put; /metrics is
 * checked for the same values and validated (promtool check metrics when
 * installed, and always the strict checker check_metrics.py); a WatchStats
 * stream is open when SIGTERM arrives: health turns NOT_SERVING before the
 * exit, the stream ends, and sfpd exits 0.
 */
#include "gtest.h"

static const char *sfpctl, *py_client;

static int ctl(const gt_daemon *g, char **out, const char *a0, const char *a1, const char *a2,
               const char *a3, const char *a4)
{
    const char *argv[12] = {sfpctl, "--addr", g->addr, a0, a1, a2, a3, a4, NULL};
    return gt_run_capture(argv, &g->d, 20, out);
}

static unsigned count_substr(const char *s, const char *needle)
{
    unsigned n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void check_metrics(gt_daemon *g, uint64_t bytes_total, uint64_t bytes_in, const char *job_a,
                          uint64_t job_a_bytes)
{
    char want[200], *body;
    int code;
    body = gt_http_get(g->metrics_port, "/metrics", &code);
    TH_CHECK(body && code == 200, "GET /metrics: HTTP %d", code);
    snprintf(want, sizeof(want), "\nsfp_bytes_in_total %llu\n", (unsigned long long)bytes_total);
    TH_CHECK(strstr(body, want), "metrics lack '%s'", want + 1);
    snprintf(want, sizeof(want), "\nsfp_held_uncompressed_bytes %llu\n", (unsigned long long)bytes_in);
    TH_CHECK(strstr(body, want), "metrics lack '%s'", want + 1);
    snprintf(want, sizeof(want), "\nsfp_job_uncompressed_bytes{job=\"%s\"} %llu\n", job_a,
             (unsigned long long)job_a_bytes);
    TH_CHECK(strstr(body, want), "metrics lack '%s'", want + 1);
    TH_CHECK(strstr(body, "\nsfp_tier_bytes{tier=\"dram\"} "), "tier label");
    TH_CHECK(strstr(body, "\nprocess_resident_memory_bytes "), "process metrics");
    TH_CHECK(strstr(body, "\nprocess_open_fds "), "open fds");
    TH_CHECK(!strstr(body, "tensor="), "no per-tensor labels");
    gt_validate_metrics(g, body, "metrics.txt");
    free(body);
    body = gt_http_get(g->metrics_port, "/nope", &code);
    TH_CHECK(code == 404, "unknown path -> 404, got %d", code);
    free(body);
}

int main(int argc, char **argv)
{
    gt_daemon g;
    sfpc *a0, *a1, *b0;
    uint64_t bytes_a, bytes_b, total;
    char *out = NULL, want[200], nbuf[32], kbuf[32];
    const unsigned na = 6, nb = 3;
    int r;
    double t0;
    pid_t watch_pid;
    char watch_out[400];

    th_init(argc, argv, 150);
    sfpctl = gt_env("SFPCTL_BIN");
    py_client = gt_env("GRPC_CLIENT_PY");
    {
        const char *extra[] = {"--grpc-drain-grace", "3", NULL};
        gt_start(&g, extra);
    }
    printf("sfpd: gRPC %s, metrics port %d\n", g.addr, g.metrics_port);

    /* health before any traffic */
    r = ctl(&g, &out, "health", NULL, NULL, NULL, NULL);
    TH_CHECK(r == 0 && strstr(out, "SERVING"), "health: exit %d: %s", r, out);
    free(out);

    /* real data: job A on two ranks, job B on one */
    a0 = tc_connect(&g.d, "job-A", 0, 8 << 20);
    a1 = tc_connect(&g.d, "job-A", 1, 8 << 20);
    b0 = tc_connect(&g.d, "job-B", 0, 8 << 20);
    bytes_a = gt_put_tensors(a0, 0, na / 2, 100) + gt_put_tensors(a1, 1, na / 2, 200);
    bytes_b = gt_put_tensors(b0, 0, nb, 300);
    total = bytes_a + bytes_b;
    printf("put %u + %u tensors: %llu + %llu bytes\n", na, nb, (unsigned long long)bytes_a,
           (unsigned long long)bytes_b);

    /* sfpctl, JSON */
    r = ctl(&g, &out, "--json", "stats", NULL, NULL, NULL);
    TH_CHECK(r == 0, "sfpctl stats --json: exit %d: %s", r, out);
    snprintf(want, sizeof(want), "{\"bytes_in\":%llu,", (unsigned long long)total);
    TH_CHECK(strncmp(out, want, strlen(want)) == 0, "stats json starts '%s': %.200s", want, out);
    snprintf(want, sizeof(want), "\"puts\":%u,", na + nb);
    TH_CHECK(strstr(out, want), "stats json has %s", want);
    snprintf(want, sizeof(want), "{\"job_id\":\"job-A\",\"ranks\":2,\"bytes_in\":%llu,",
             (unsigned long long)bytes_a);
    TH_CHECK(strstr(out, want), "stats json has %s: %s", want, out);
    free(out);
    r = ctl(&g, &out, "stats", "--job", "job-B", "--json", NULL);
    TH_CHECK(r == 0 && count_substr(out, "\"job_id\":") == 1 && strstr(out, "\"job_id\":\"job-B\""),
             "stats --job filter: %s", out);
    free(out);

    /* sfpctl, table */
    r = ctl(&g, &out, "stats", NULL, NULL, NULL, NULL);
    TH_CHECK(r == 0 && strstr(out, "ratio ") && strstr(out, "job-A") && strstr(out, "dram") &&
                 (strstr(out, "MiB") || strstr(out, "KiB")),
             "stats table: %s", out);
    printf("---- sfpctl stats ----\n%s", out);
    free(out);

    r = ctl(&g, &out, "--json", "tensors", "--job", "job-A", NULL);
    TH_CHECK(r == 0 && count_substr(out, "\"tensor\":") == na, "tensors --job job-A: %s", out);
    TH_CHECK(strstr(out, "\"mantissa_bits\":7,\"exponent_bits\":5,\"coder\":\"gecko\""),
             "tensor widths and coder: %s", out);
    free(out);
    r = ctl(&g, &out, "tensors", NULL, NULL, NULL, NULL);
    snprintf(nbuf, sizeof(nbuf), "%u of %u tensors", na + nb, na + nb);
    TH_CHECK(r == 0 && strstr(out, nbuf) && strstr(out, "layer0.act"), "tensors table: %s", out);
    printf("---- sfpctl tensors ----\n%s", out);
    free(out);

    r = ctl(&g, &out, "watch", "--interval", "0.1", "--count", "3");
    TH_CHECK(r == 0 && count_substr(out, " ratio ") == 3, "watch --count 3 (piped lines): %s", out);
    free(out);
    r = ctl(&g, &out, "policy", "set", "--job", "job-A", "--pin=5,4");
    TH_CHECK(r == 0 && strstr(out, "pinned         m=5 e=4") && strstr(out, "generation 1"),
             "policy set: %s", out);
    free(out);
    r = ctl(&g, &out, "--json", "policy", "get", "--job", "job-A");
    TH_CHECK(r == 0 && strstr(out, "\"pin\":true") && strstr(out, "\"is_default\":false"),
             "policy get: %s", out);
    free(out);
    r = ctl(&g, &out, "policy", "set", "--job", "job-A", "--max-mbits=40");
    TH_CHECK(r == 1 && strstr(out, "INVALID_ARGUMENT"), "policy set out of range: %d %s", r, out);
    free(out);

    r = ctl(&g, &out, "bogus", NULL, NULL, NULL, NULL);
    TH_CHECK(r == 2, "unknown command: exit %d", r);
    free(out);
    r = ctl(&g, &out, "policy", "set", "--min-mbits", "3", NULL);
    TH_CHECK(r == 2 && strstr(out, "--job is required"), "policy set without job: %d %s", r, out);
    free(out);

    /* unreachable: one line, bounded, non-zero */
    {
        const char *argv2[] = {sfpctl, "--addr", "127.0.0.1:1", "--timeout", "2", "stats", NULL};
        t0 = th_now();
        r = gt_run_capture(argv2, &g.d, 20, &out);
        TH_CHECK(r == 1 && strstr(out, "cannot reach sfpd at 127.0.0.1:1") &&
                     count_substr(out, "\n") == 1 && th_now() - t0 < 5,
                 "unreachable: exit %d in %.1f s: %s", r, th_now() - t0, out);
        free(out);
    }

    /* independent client: every method, real values (EndJob of job B at the end) */
    snprintf(nbuf, sizeof(nbuf), "%llu", (unsigned long long)bytes_b);
    snprintf(kbuf, sizeof(kbuf), "%u", nb);
    {
        char tbuf[32], tnbuf[32];
        const char *argv2[] = {"/usr/bin/python3", py_client, "api", "--addr", g.addr, "--job", "job-B",
                               "--bytes-in", nbuf, "--tensors", kbuf, "--total-bytes-in", tbuf,
                               "--total-tensors", tnbuf, NULL};
        snprintf(tbuf, sizeof(tbuf), "%llu", (unsigned long long)total);
        snprintf(tnbuf, sizeof(tnbuf), "%u", na + nb);
        r = gt_run_capture(argv2, &g.d, 90, &out);
        TH_CHECK(r == 0, "python client: exit %d:\n%s", r, out);
        printf("python grpcio client: %s", out);
        free(out);
    }

    /* metrics after job B ended: job A only */
    check_metrics(&g, total, bytes_a, "job-A", bytes_a);

    r = ctl(&g, &out, "end-job", "--job", "job-A", NULL, NULL);
    snprintf(want, sizeof(want), "job job-A ended: %u frames", na);
    TH_CHECK(r == 0 && strstr(out, want), "end-job: %s", out);
    free(out);

    /* SIGTERM with a stream open: NOT_SERVING before exit, stream ends, exit 0 */
    snprintf(watch_out, sizeof(watch_out), "%s/watch.out", g.d.dir);
    watch_pid = fork();
    if (watch_pid == 0) {
        const char *argv2[] = {sfpctl, "--addr", g.addr, "watch", "--interval", "0.1", NULL};
        int fd = open(watch_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        alarm(0);
        execv(sfpctl, (char *const *)argv2);
        _exit(127);
    }
    usleep(500000);
    sfpc_close(&a0);
    sfpc_close(&a1);
    sfpc_close(&b0);
    t0 = th_now();
    kill(g.d.pid, SIGTERM);
    for (;;) {
        r = ctl(&g, &out, "health", NULL, NULL, NULL, NULL);
        if (r == 3)
            break;
        TH_CHECK(th_now() - t0 < 2.5, "health still %d %s after SIGTERM", r, out);
        free(out);
        usleep(20000);
    }
    TH_CHECK(strstr(out, "NOT_SERVING"), "NOT_SERVING: %s", out);
    free(out);
    printf("health NOT_SERVING %.0f ms after SIGTERM\n", (th_now() - t0) * 1e3);
    r = th_stop(&g.d, 0, 15); /* already signalled: only wait */
    TH_CHECK(r == 0, "sfpd exit status %d", r);
    {
        int st;
        double dl = th_now() + 5;
        while (waitpid(watch_pid, &st, WNOHANG) != watch_pid) {
            TH_CHECK(th_now() < dl, "sfpctl watch still running after sfpd exited");
            usleep(10000);
        }
        out = gt_slurp(watch_out);
        TH_CHECK(out && strstr(out, "DRAINING") && strstr(out, "UNAVAILABLE"),
                 "watch saw DRAINING and a clean UNAVAILABLE end: %s", out ? out : "");
        free(out);
    }
    TH_CHECK(th_log_contains(&g.d, "grpc: stopped"), "grpc stopped cleanly");
    th_cleanup(&g.d);
    printf("ok\n");
    return 0;
}
