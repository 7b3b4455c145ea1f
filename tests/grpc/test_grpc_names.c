/*
 * test_grpc_names: job ids and tensor names that are not text (invalid
 * UTF-8, control characters, an embedded NUL) are refused with E_INVALID at
 * Hello and Put (and with SFPC_EINVAL by libsfpclient before they leave),
 * and what is accepted - non-ASCII UTF-8, quotes, backslashes - comes out
 * intact on every output path: the IPC StatsReply (libsfpclient decodes
 * it), gRPC GetStats / ListTensors / WatchStats in the strict Python grpcio
 * client, sfpctl --json (strict UTF-8 JSON), and /metrics (check_metrics.py
 * and promtool check metrics). gRPC requests with such job ids get
 * INVALID_ARGUMENT. Issue 15 item 1.
 */
#include "gtest.h"
#include "raw.h"

#define NV 4096

static gt_daemon g;
static float data[NV];
static sfp_params P;

/* Packs rq, replaces the placeholder ph (bytes of the same length as
 * real[0..n)) with real, sends it and returns the reply's status. */
static int send_patched(int fd, Sfp__Ipc__V1__Request *rq, const char *ph, const char *real, size_t n)
{
    size_t len = sfp__ipc__v1__request__get_packed_size(rq);
    uint8_t *b = malloc(len + 4), *at;
    int r;
    sfp__ipc__v1__request__pack(rq, b + 4);
    at = memmem(b + 4, len, ph, n);
    TH_CHECK(at != NULL, "placeholder not found");
    memcpy(at, real, n);
    b[0] = (uint8_t)len, b[1] = (uint8_t)(len >> 8), b[2] = (uint8_t)(len >> 16), b[3] = (uint8_t)(len >> 24);
    r = raw_send(fd, b, len + 4, -1) == 0 ? raw_read_status(fd, 5000) : -1;
    free(b);
    return r;
}

static char *placeholder(size_t n)
{
    static char ph[300];
    memset(ph, 'Q', n);
    ph[n] = 0;
    return ph;
}

static int raw_hello_bytes(const char *job, size_t n)
{
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Hello h = SFP__IPC__V1__HELLO__INIT;
    int fd = raw_connect(g.d.socket), st;
    TH_CHECK(fd >= 0, "connect");
    h.version = 1;
    h.job_id = placeholder(n);
    h.client_name = (char *)"names";
    rq.id = 1;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_HELLO;
    rq.hello = &h;
    st = send_patched(fd, &rq, h.job_id, job, n);
    close(fd);
    return st;
}

static int raw_put_bytes(const char *tensor, size_t n)
{
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Put put = SFP__IPC__V1__PUT__INIT;
    Sfp__Ipc__V1__Key key = SFP__IPC__V1__KEY__INIT;
    Sfp__Ipc__V1__Params pp = SFP__IPC__V1__PARAMS__INIT;
    int fd = raw_connect(g.d.socket), st;
    TH_CHECK(fd >= 0 && raw_hello(fd, 1, "names-raw", -1) == 0, "raw Hello");
    key.tensor = placeholder(n);
    pp.dtype = 1, pp.mbits = 23, pp.ebits = 8;
    put.key = &key;
    put.length = 16, put.count = 4;
    put.params = &pp;
    rq.id = 2;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT;
    rq.put = &put;
    st = send_patched(fd, &rq, key.tensor, tensor, n);
    close(fd);
    return st;
}

/* sfpctl --json CMD: its output must be strict UTF-8 JSON holding needle. */
static void sfpctl_json(const char *cmd, const char *needle)
{
    const char *sfpctl = gt_env("SFPCTL_BIN");
    const char *check = "import json, sys\n"
                        "d = json.loads(open(sys.argv[1], 'rb').read().decode('utf-8', 'strict'))\n"
                        "def strs(v):\n"
                        "    if isinstance(v, str): yield v\n"
                        "    elif isinstance(v, dict):\n"
                        "        for x in v.values(): yield from strs(x)\n"
                        "    elif isinstance(v, list):\n"
                        "        for x in v: yield from strs(x)\n"
                        "sys.exit(0 if sys.argv[2] in strs(d) else 3)\n";
    char path[400];
    const char *argv[] = {sfpctl, "--addr", g.addr, "--json", cmd, NULL};
    const char *py[] = {"/usr/bin/python3", "-c", check, path, needle, NULL};
    char *out = NULL;
    int r;
    snprintf(path, sizeof(path), "%s/sfpctl-%s.json", g.d.dir, cmd);
    TH_CHECK(gt_run(argv, path, 20) == 0, "sfpctl --json %s", cmd);
    r = gt_run_capture(py, &g.d, 20, &out);
    TH_CHECK(r == 0, "sfpctl --json %s: not strict UTF-8 JSON with %s (exit %d): %s", cmd, needle, r, out);
    free(out);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *what, *bytes;
        size_t n;
    } bad[] = {
        {"invalid UTF-8", "bad\xff\xfejob", 8},
        {"embedded NUL", "nul\0/../x", 9},
        {"C0 control", "a\x01" "b", 3},
        {"tab", "tab\tjob", 7},
        {"newline", "line\nbreak", 10},
        {"DEL", "del\x7f", 4},
        {"C1 control (U+0085)", "c1\xc2\x85", 4},
        {"overlong '.'", "\xc0\xae", 2},
        {"surrogate", "\xed\xa0\x80", 3},
        {"truncated sequence", "t\xc3\x28", 3},
    };
    const char *job = "jöb \"q\" \\ ü-名前", *tensor = "τensor/\"ü\"";
    sfpc *c;
    sfpc_stats st;
    sfpc_key k = {.rank = 0, .step = 1, .tensor = tensor};
    char *body, *out = NULL;
    int code, r;

    th_init(argc, argv, 120);
    sfp_params_default(&P);
    tc_fill(data, NV, &P, 7);
    gt_start(&g, NULL);

    /* refused at Hello and Put, by the daemon and by the client library */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char name[32];
        sfpc_options o;
        sfpc *cc = NULL;
        TH_CHECK(raw_hello_bytes(bad[i].bytes, bad[i].n) == SFP__IPC__V1__STATUS__E_INVALID,
                 "Hello with a job id with %s: not E_INVALID", bad[i].what);
        TH_CHECK(raw_put_bytes(bad[i].bytes, bad[i].n) == SFP__IPC__V1__STATUS__E_INVALID,
                 "Put with a tensor name with %s: not E_INVALID", bad[i].what);
        if (memchr(bad[i].bytes, 0, bad[i].n))
            continue; /* a C string cannot carry it to the client library */
        snprintf(name, sizeof(name), "%.*s", (int)bad[i].n, bad[i].bytes);
        sfpc_options_default(&o);
        o.socket_path = g.d.socket;
        o.job_id = name;
        TH_CHECK(sfpc_connect(&o, &cc) == SFPC_EINVAL, "libsfpclient takes job id with %s", bad[i].what);
        c = tc_connect(&g.d, "names-client", 0, NV * 4);
        k.tensor = name;
        TH_CHECK(sfpc_put(c, &k, data, NV, &P, 0, NULL) == SFPC_EINVAL,
                 "libsfpclient takes tensor name with %s", bad[i].what);
        sfpc_close(&c);
        printf("refused: %s (daemon E_INVALID at Hello and Put, SFPC_EINVAL in the client)\n", bad[i].what);
    }

    /* accepted: UTF-8 text, quotes and backslashes */
    c = tc_connect(&g.d, job, 0, NV * 4);
    k.tensor = tensor;
    TH_CHECK(sfpc_put(c, &k, data, NV, &P, 0, NULL) == 0, "put %s", sfpc_last_message(c));
    /* the IPC StatsReply decodes (protobuf-c) and names the job, escaped */
    TH_CHECK(sfpc_stats_get(c, &st) == 0 && st.job_frames == 1, "StatsReply");
    TH_CHECK(st.text && strstr(st.text, "job{job=\"jöb \\\"q\\\" \\\\ ü-名前\"}") &&
                 strstr(st.text, "tensor=\"τensor/\\\"ü\\\"\""), "StatsReply text:\n%s", st.text);
    sfpc_stats_free(&st);
    printf("IPC StatsReply: decodes, names escaped\n");

    /* gRPC in the strict Python client */
    {
        const char *py[] = {"/usr/bin/python3", gt_env("GRPC_CLIENT_PY"), "names", "--addr", g.addr,
                            "--job", job, "--tensor", tensor, NULL};
        r = gt_run_capture(py, &g.d, 60, &out);
        if (r == 77) {
            printf("python grpcio missing: strict client skipped\n");
        } else {
            TH_CHECK(r == 0, "strict grpcio client: exit %d:\n%s", r, out);
            printf("strict grpcio client (GetStats, ListTensors, WatchStats; refusals): %s", out);
        }
        free(out);
    }
    sfpctl_json("stats", job);
    sfpctl_json("tensors", tensor);
    printf("sfpctl --json stats, tensors: strict UTF-8 JSON with the names\n");

    /* Prometheus */
    body = gt_http_get(g.metrics_port, "/metrics", &code);
    TH_CHECK(body && code == 200, "GET /metrics: HTTP %d", code);
    TH_CHECK(strstr(body, "sfp_job_frames{job=\"jöb \\\"q\\\" \\\\ ü-名前\"} 1\n"), "job label:\n%s", body);
    gt_validate_metrics(&g, body, "metrics-names.txt");
    free(body);

    /* the daemon served everyone throughout */
    {
        float back[NV];
        TH_CHECK(sfpc_get(c, &k, back, sizeof(back), SFPC_GET_DROP, NULL) == 0 &&
                     memcmp(back, data, sizeof(back)) == 0, "get back");
    }
    sfpc_close(&c);
    TH_CHECK(th_stop(&g.d, SIGTERM, 20) == 0, "exit status %d", g.d.exit_status);
    th_cleanup(&g.d);
    printf("ok\n");
    return 0;
}
