/*
 * test_grpc_hostile: sfpd holding real data is attacked over gRPC while a
 * well-behaved client keeps calling GetStats: thousands of concurrent calls
 * (valid, garbage payloads, unknown methods), abandoned WatchStats streams,
 * an oversized message. Checks: the well-behaved client is always answered,
 * hostile calls get the right codes, RSS after the attack stays within a
 * bound of RSS after a warm-up (the Python side measures and prints it),
 * and the daemon still drains and exits 0 on SIGTERM.
 *
 * Also: a second sfpd cannot take the same gRPC port (SO_REUSEPORT off),
 * an empty grpc_listen disables gRPC, and unix: addresses work.
 */
#include "gtest.h"

int main(int argc, char **argv)
{
    gt_daemon g;
    sfpc *c;
    uint64_t bytes;
    char *out = NULL, pid[16], mport[16], rounds[8];
    const char *sfpctl, *py_client;
    int r;

    th_init(argc, argv, 280);
    sfpctl = gt_env("SFPCTL_BIN");
    py_client = gt_env("GRPC_CLIENT_PY");
    {
        /* a small DRAM tier: some stashes live on disk */
        const char *extra[] = {"--dram-budget", "256K", NULL};
        gt_start(&g, extra);
    }
    c = tc_connect(&g.d, "job-H", 0, 8 << 20);
    bytes = gt_put_tensors(c, 0, 12, 7);
    printf("sfpd %s holds %llu bytes\n", g.addr, (unsigned long long)bytes);
    {
        const char *a[] = {sfpctl, "--addr", g.addr, "--json", "tensors", NULL};
        r = gt_run_capture(a, &g.d, 20, &out);
        TH_CHECK(r == 0 && strstr(out, "\"tier\":\"disk\"") && strstr(out, "\"tier\":\"dram\""),
                 "tensors in both tiers: %s", out);
        free(out);
    }
    {
        const char *a[] = {sfpctl, "--addr", g.addr, "stats", NULL};
        r = gt_run_capture(a, &g.d, 20, &out);
        TH_CHECK(r == 0 && !strstr(out, "spills     0 ") && strstr(out, "disk "), "spills shown: %s", out);
        printf("%s", out);
        free(out);
    }

    snprintf(pid, sizeof(pid), "%d", (int)g.d.pid);
    snprintf(mport, sizeof(mport), "%d", g.metrics_port);
    /* 8 attack rounds of 2000 calls: a leak of 64 bytes per call grows the
     * heap in use (sfp_heap_in_use_bytes on /metrics) by 512 KiB over the last
     * four, the limit there (seen: +10 KiB); RSS over the whole attack may
     * grow by 64 MiB (a one-off glibc arena for a gRPC thread was seen at
     * +26 MiB, flat afterwards). */
    snprintf(rounds, sizeof(rounds), "%s", getenv("SFP_HOSTILE_ROUNDS") ? getenv("SFP_HOSTILE_ROUNDS") : "8");
    {
        const char *a[] = {"/usr/bin/python3", py_client, "hostile", "--addr", g.addr, "--pid", pid,
                           "--metrics-port", mport, "--rounds", rounds, "--calls", "2000", "--streams", "50",
                           "--max-heap-growth-kib", "512", "--max-growth-kib", "32768", NULL};
        r = gt_run_capture(a, &g.d, 200, &out);
        printf("%s", out);
        TH_CHECK(r == 0, "hostile client: exit %d", r);
        free(out);
    }
    /* raw TCP: garbage instead of HTTP/2, and idle connections held open */
    {
        int idle[100];
        uint64_t seed = 42;
        for (int i = 0; i < 300; i++) {
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.grpc_port)};
            uint8_t junk[512];
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            TH_CHECK(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %d", i);
            for (size_t k = 0; k < sizeof(junk); k++)
                junk[k] = (uint8_t)th_rand(&seed);
            if (i % 3 == 0) /* a valid preface, then junk frames */
                memcpy(junk, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
            if (write(s, junk, (size_t)(1 + i % (int)sizeof(junk))) < 0) {
            }
            close(s);
        }
        for (int i = 0; i < 100; i++) {
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.grpc_port)};
            idle[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            TH_CHECK(connect(idle[i], (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect idle %d", i);
        }
        {
            /* bounded retries: under valgrind the teardown of 300
             * connections alone takes seconds; natively this is ~1 ms */
            const char *a[] = {sfpctl, "--addr", g.addr, "--timeout", "10", "health", NULL};
            double t1 = th_now();
            while ((r = gt_run_capture(a, &g.d, 20, &out)) != 0 && th_now() - t1 < 40) {
                free(out);
                usleep(100000);
            }
            TH_CHECK(r == 0, "health with 100 idle connections open: %d %s", r, out);
            free(out);
            printf("health answered %.0f ms after the garbage, 100 idle connections open\n",
                   (th_now() - t1) * 1e3);
        }
        for (int i = 0; i < 100; i++)
            close(idle[i]);
        printf("300 garbage connections and 100 idle ones: still answering\n");
    }
    /* /metrics: garbage requests, then a real scrape */
    {
        uint64_t seed = 7;
        int code;
        char *body;
        for (int i = 0; i < 100; i++) {
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.metrics_port)};
            char junk[300];
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            TH_CHECK(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect metrics %d", i);
            for (size_t k = 0; k < sizeof(junk); k++)
                junk[k] = (char)(th_rand(&seed) & 0x7f);
            if (i % 2)
                memcpy(junk, "POST /metrics HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 49);
            if (write(s, junk, sizeof(junk)) < 0) {
            }
            close(s);
        }
        body = gt_http_get(g.metrics_port, "/metrics", &code);
        TH_CHECK(body && code == 200 && strstr(body, "sfp_puts_total 12\n"), "scrape after garbage: %d", code);
        free(body);
    }
    {
        const char *a[] = {sfpctl, "--addr", g.addr, "--json", "stats", NULL};
        char want[64];
        r = gt_run_capture(a, &g.d, 20, &out);
        snprintf(want, sizeof(want), "{\"bytes_in\":%llu,", (unsigned long long)bytes);
        TH_CHECK(r == 0 && strncmp(out, want, strlen(want)) == 0, "stats after the attack: %s", out);
        free(out);
    }

    /* a second daemon on the same gRPC port must fail, not share it */
    {
        gt_daemon g2;
        char port_arg[32];
        const char *extra[] = {"--grpc-listen", port_arg, NULL};
        const char *args[] = {"--grpc-listen", port_arg, "--metrics-listen", "", NULL};
        snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%d", g.grpc_port);
        (void)extra;
        th_prepare(&g2.d);
        r = th_start(&g2.d, args);
        if (r == 0) {
            /* socket came up before gRPC failed: it must exit on its own */
            double dl = th_now() + 10;
            int st;
            while (waitpid(g2.d.pid, &st, WNOHANG) != g2.d.pid) {
                TH_CHECK(th_now() < dl, "second sfpd shares gRPC port %d", g.grpc_port);
                usleep(10000);
            }
            g2.d.exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
            g2.d.pid = 0;
        }
        TH_CHECK(g2.d.exit_status != 0 && th_log_contains(&g2.d, "grpc: cannot listen"),
                 "second sfpd: exit %d", g2.d.exit_status);
        th_cleanup(&g2.d);
    }

    sfpc_close(&c);
    r = th_stop(&g.d, SIGTERM, 15);
    TH_CHECK(r == 0, "sfpd exit %d after the attack", r);
    TH_CHECK(th_log_contains(&g.d, "grpc: stopped"), "grpc stopped");
    th_cleanup(&g.d);

    /* gRPC on a unix: address, metrics off */
    {
        gt_daemon g3;
        char addr[400], arg[400];
        const char *args[] = {"--grpc-listen", arg, "--metrics-listen", "", NULL};
        th_prepare(&g3.d);
        snprintf(arg, sizeof(arg), "unix:%s/grpc.sock", g3.d.dir);
        snprintf(addr, sizeof(addr), "%s", arg);
        TH_CHECK(th_start(&g3.d, args) == 0, "sfpd with unix: gRPC");
        {
            const char *a[] = {sfpctl, "--addr", addr, "health", NULL};
            double dl = th_now() + 10;
            while ((r = gt_run_capture(a, &g3.d, 10, &out)) != 0 && th_now() < dl) {
                free(out);
                usleep(20000);
            }
            TH_CHECK(r == 0 && strstr(out, "SERVING"), "health over unix: %d %s", r, out);
            free(out);
        }
        TH_CHECK(th_log_contains(&g3.d, "metrics: disabled"), "metrics disabled");
        TH_CHECK(th_stop(&g3.d, SIGTERM, 15) == 0, "exit 0");
        th_cleanup(&g3.d);
    }
    /* gRPC off */
    {
        gt_daemon g4;
        const char *args[] = {"--grpc-listen", "", "--metrics-listen", "", NULL};
        th_prepare(&g4.d);
        TH_CHECK(th_start(&g4.d, args) == 0, "sfpd without gRPC");
        {
            double dl = th_now() + 10;
            while (!th_log_contains(&g4.d, "grpc: disabled") && th_now() < dl)
                usleep(10000);
        }
        TH_CHECK(th_log_contains(&g4.d, "grpc: disabled"), "grpc disabled");
        TH_CHECK(th_stop(&g4.d, SIGTERM, 15) == 0, "exit 0");
        th_cleanup(&g4.d);
    }
    printf("ok\n");
    return 0;
}
