/*
 * gtest.h - helpers of the gRPC integration tests: start the real sfpd with
 * gRPC and /metrics on port 0, find the bound ports in its log, run sfpctl
 * and the independent Python client as bounded subprocesses, fetch /metrics.
 */
#ifndef SFP_TESTS_GTEST_H
#define SFP_TESTS_GTEST_H

#include "common.h" /* tests/daemon: harness, tc_fill, tc_connect */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct gt_daemon {
    th_daemon d;
    int grpc_port, metrics_port;
    char addr[64];
} gt_daemon;

/* Reads a whole file into a malloc'd NUL-terminated string (or NULL). */
static inline char *gt_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *b;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = 0;
    fclose(f);
    return b;
}

/* Port number that follows needle in the daemon's log, or 0. */
static inline int gt_log_port(const th_daemon *d, const char *needle)
{
    char *log = gt_slurp(d->log), *p;
    int port = 0;
    if (log && (p = strstr(log, needle)) && (p = strstr(p, "(port ")))
        port = atoi(p + 6);
    free(log);
    return port;
}

/* Starts sfpd with gRPC and metrics on free loopback ports plus extra args. */
static inline void gt_start(gt_daemon *g, const char *const *extra)
{
    const char *args[40];
    size_t n = 0;
    double deadline;
    args[n++] = "--grpc-listen";
    args[n++] = "127.0.0.1:0";
    args[n++] = "--metrics-listen";
    args[n++] = "127.0.0.1:0";
    for (size_t i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    th_prepare(&g->d);
    TH_CHECK(th_start(&g->d, args) == 0, "sfpd did not start (exit %d)", g->d.exit_status);
    deadline = th_now() + 15;
    while ((!(g->grpc_port = gt_log_port(&g->d, "grpc: listening")) ||
            !(g->metrics_port = gt_log_port(&g->d, "metrics: listening"))) && th_now() < deadline)
        usleep(10000);
    TH_CHECK(g->grpc_port > 0 && g->metrics_port > 0, "ports not found in the log");
    snprintf(g->addr, sizeof(g->addr), "127.0.0.1:%d", g->grpc_port);
}

/*
 * Runs argv with stdout (and stderr) into out_path, bounded by timeout_s
 * (SIGKILL after). Returns the exit code, 128+signal, or -1.
 */
static inline int gt_run(const char *const *argv, const char *out_path, double timeout_s)
{
    double deadline = th_now() + timeout_s;
    int st;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        alarm(0);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (th_now() > deadline) {
            fprintf(stderr, "%s: still running after %.0f s; killed\n", argv[0], timeout_s);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(2000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Same, and returns the output (malloc'd) in *out. */
static inline int gt_run_capture(const char *const *argv, const th_daemon *d, double timeout_s,
                                 char **out)
{
    char path[400];
    int r;
    snprintf(path, sizeof(path), "%s/cmd.out", d->dir);
    r = gt_run(argv, path, timeout_s);
    *out = gt_slurp(path);
    if (!*out)
        *out = strdup("");
    return r;
}

/* GET http://127.0.0.1:port/path into a malloc'd body; HTTP status in *code. */
static inline char *gt_http_get(int port, const char *path, int *code)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[256], *buf = NULL, *body;
    size_t len = 0, cap = 0;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {10, 0};

    *code = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(s);
        return NULL;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(s, req, strlen(req)) < 0) {
        close(s);
        return NULL;
    }
    for (;;) {
        ssize_t n;
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap + 1);
        }
        n = read(s, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(s);
    if (!buf)
        return NULL;
    buf[len] = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", code) != 1 || !(body = strstr(buf, "\r\n\r\n"))) {
        free(buf);
        return NULL;
    }
    body = strdup(body + 4);
    free(buf);
    return body;
}

static inline const char *gt_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !v[0]) {
        fprintf(stderr, "SKIP: %s not set\n", name);
        exit(77);
    }

    return v;
}

/*
 * A /metrics body, validated as a scraper would: written to <dir>/name,
 * then the strict checker tests/grpc/check_metrics.py (format, naming, every
 * family documented in docs/OPERATIONS.md) and, where Debian's prometheus
 * package is installed, `promtool check metrics`.
 */
static inline void gt_validate_metrics(const gt_daemon *g, const char *body, const char *name)
{
    const char *py = getenv("CHECK_METRICS_PY");
    char path[400], doc[512], *out = NULL;
    FILE *f;
    int r;
    snprintf(path, sizeof(path), "%s/%s", g->d.dir, name);
    f = fopen(path, "w");
    TH_CHECK(f && fputs(body, f) >= 0, "write %s", path);
    fclose(f);
    if (py) {
        const char *argv[] = {"/usr/bin/python3", py, path, doc, NULL};
        snprintf(doc, sizeof(doc), "%s/docs/OPERATIONS.md", gt_env("SFP_SOURCE_ROOT"));
        r = gt_run_capture(argv, &g->d, 30, &out);
        TH_CHECK(r == 0, "check_metrics.py %s: exit %d:\n%s", name, r, out);
        free(out);
    }
    if (access("/usr/bin/promtool", X_OK) == 0) {
        char cmd[600];
        const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < '%s'", path);
        r = gt_run_capture(argv, &g->d, 30, &out);
        TH_CHECK(r == 0, "promtool check metrics %s: exit %d:\n%s", name, r, out);
        free(out);
        printf("promtool check metrics (%s): ok\n", name);
    } else {
        printf("promtool not installed: strict checker only (%s)\n", name);
    }
}

/* Puts n tensors of various sizes for job (rank r); returns the bytes put. */
static inline uint64_t gt_put_tensors(sfpc *c, uint32_t rank, unsigned n, uint64_t seed)
{
    static const size_t counts[] = {4096, 1000, 65536, 17, 20000, 300000};
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t cnt = counts[i % 6];
        sfp_params p;
        char name[64];
        sfpc_key k = {.rank = rank, .step = 1, .tensor = name};
        void *buf;
        int e;
        sfp_params_default(&p);
        p.dtype = i % 3 == 2 ? SFP_DTYPE_BF16 : SFP_DTYPE_F32;
        p.mbits = p.dtype == SFP_DTYPE_BF16 ? 3 : 7;
        p.ebits = 5;
        p.coder = i % 2 ? SFP_CODER_GECKO : SFP_CODER_PLAIN;
        snprintf(name, sizeof(name), "layer%u.act", i);
        buf = malloc(cnt * 4);
        tc_fill(buf, cnt, &p, seed + i);
        e = sfpc_put(c, &k, buf, cnt, &p, 0, NULL);
        TH_CHECK(e == 0, "put %s: %s (%s)", name, sfpc_strerror(e), sfpc_last_message(c));
        total += cnt * sfp_dtype_size(p.dtype);
        free(buf);
    }
    return total;
}

#endif
