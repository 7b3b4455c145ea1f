/*
 * test_grpc_tls: gRPC transport security and the admin credential, on the
 * real sfpd and the real sfpctl, with certificates made by openssl at test
 * time (gen_certs.sh: CA 1 signs the server and a client certificate, an
 * unrelated CA 2 signs a "rogue" client certificate).
 *
 *  1. defaults: gRPC and /metrics listen on loopback only;
 *  2. server TLS (grpc_tls_cert/key): sfpctl stats over TLS works; a
 *     plaintext client and a client that does not trust the server's CA are
 *     refused; /metrics stays plain HTTP on loopback (not covered by TLS);
 *  3. admin token (admin_token_file): SetPolicy and EndJob without a token
 *     -> UNAUTHENTICATED, with a wrong one -> PERMISSION_DENIED, with the
 *     right one -> served; stats, tensors and policy get stay open;
 *  4. client certificates (grpc_tls_client_ca): a good client certificate
 *     works; no certificate, a certificate of another CA and plaintext are
 *     refused; the same with Python grpcio as an independent client;
 *  5. bad settings stop sfpd at start-up with a clear message: key without
 *     certificate, a key that does not match the certificate, a short token.
 */
#include "gtest.h"

#include <sys/stat.h>

static const char *sfpctl;
static char pki[400];

static const char *pk(const char *name)
{
    static char buf[8][500];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", pki, name);
    return buf[i];
}

/* sfpctl with the given leading options, then the command words. */
static int ctl(const gt_daemon *g, char **out, const char *const *opts, const char *const *cmd)
{
    const char *argv[40];
    size_t n = 0;
    argv[n++] = sfpctl;
    argv[n++] = "--addr";
    argv[n++] = g->addr;
    argv[n++] = "--timeout";
    argv[n++] = "5";
    for (size_t i = 0; opts && opts[i] && n < 30; i++)
        argv[n++] = opts[i];
    for (size_t i = 0; cmd && cmd[i] && n < 39; i++)
        argv[n++] = cmd[i];
    argv[n] = NULL;
    return gt_run_capture(argv, &g->d, 20, out);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    TH_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
    chmod(path, mode);
}

/* sfpd with extra args must refuse to start, saying why. */
static void expect_refused(const char *what, const char *const *extra, const char *msg)
{
    th_daemon d;
    const char *argv[40];
    size_t n = 0;
    char path[400], *out;
    int r;
    th_prepare(&d);
    argv[n++] = th_sfpd_path();
    argv[n++] = "--socket";
    argv[n++] = d.socket;
    argv[n++] = "--spill-dir";
    argv[n++] = d.spill;
    argv[n++] = "--grpc-listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--metrics-listen";
    argv[n++] = "";
    for (size_t i = 0; extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    snprintf(path, sizeof(path), "%s/refused.out", d.dir);
    r = gt_run(argv, path, 20);
    out = gt_slurp(path);
    TH_CHECK(r > 0 && r < 128 && out && strstr(out, msg), "%s: sfpd exit %d, want a refusal saying '%s': %s",
             what, r, msg, out ? out : "");
    printf("refused as expected (%s): exit %d\n", what, r);
    free(out);
    th_cleanup(&d);
}

int main(int argc, char **argv)
{
    gt_daemon a, b;
    th_daemon tmp;
    char *out = NULL, gen[600], token[400], wrong[400], shorttok[400];
    const char *gen_sh;
    int r, code;

    th_init(argc, argv, 150);
    sfpctl = gt_env("SFPCTL_BIN");
    gen_sh = gt_env("GEN_CERTS_SH");
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP: openssl not installed (scripts/packages.txt, role test)\n");
        return 77;
    }

    /* ---- 1. loopback by default ---- */
    {
        th_daemon d;
        const char *pc[] = {th_sfpd_path(), "--print-config", NULL};
        char path[400];
        char *saved_g = getenv("SFPD_GRPC_LISTEN") ? strdup(getenv("SFPD_GRPC_LISTEN")) : NULL;
        char *saved_m = getenv("SFPD_METRICS_LISTEN") ? strdup(getenv("SFPD_METRICS_LISTEN")) : NULL;
        th_prepare(&d);
        snprintf(path, sizeof(path), "%s/pc.out", d.dir);
        unsetenv("SFPD_GRPC_LISTEN");
        unsetenv("SFPD_METRICS_LISTEN");
        r = gt_run(pc, path, 20);
        if (saved_g)
            setenv("SFPD_GRPC_LISTEN", saved_g, 1);
        if (saved_m)
            setenv("SFPD_METRICS_LISTEN", saved_m, 1);
        free(saved_g);
        free(saved_m);
        out = gt_slurp(path);
        TH_CHECK(r == 0 && out && strstr(out, "\ngrpc_listen = 127.0.0.1:50051\n") &&
                     strstr(out, "\nmetrics_listen = 127.0.0.1:9464\n") &&
                     strstr(out, "\ngrpc_tls_cert = \n") && strstr(out, "\nadmin_token_file = \n"),
                 "defaults are loopback, TLS and token off: %s", out ? out : "");
        free(out);
        th_cleanup(&d);
        printf("defaults: grpc_listen 127.0.0.1:50051, metrics_listen 127.0.0.1:9464\n");
    }

    /* ---- certificates and tokens, made now ---- */
    th_prepare(&tmp); /* only for its temp dir */
    snprintf(pki, sizeof(pki), "%s/pki", tmp.dir);
    snprintf(gen, sizeof(gen), "sh '%s' '%s'", gen_sh, pki);
    TH_CHECK(system(gen) == 0, "gen_certs.sh failed: %s", gen);
    snprintf(token, sizeof(token), "%.380s/admin.token", pki);
    snprintf(wrong, sizeof(wrong), "%.380s/wrong.token", pki);
    snprintf(shorttok, sizeof(shorttok), "%.380s/short.token", pki);
    write_file(token, "9f3c1e0a7b5d4f2e8c6a1b3d5f7e9a0c\n", 0600);
    write_file(wrong, "9f3c1e0a7b5d4f2e8c6a1b3d5f7e9a0d\n", 0600);
    write_file(shorttok, "secret\n", 0600);

    /* ---- 2. server TLS + 3. admin token ---- */
    {
        const char *extra[] = {"--grpc-tls-cert", pk("server.pem"), "--grpc-tls-key", pk("server.key"),
                               "--admin-token-file", token, NULL};
        gt_start(&a, extra);
    }
    printf("sfpd A (TLS, admin token): %s\n", a.addr);
    TH_CHECK(th_log_contains(&a.d, "grpc: TLS on, client certificates not requested") &&
                 th_log_contains(&a.d, "grpc: listening on 127.0.0.1:0"),
             "TLS and loopback in the log");
    {
        const char *tls[] = {"--tls-ca", pk("ca1.pem"), NULL};
        const char *tls_bad_ca[] = {"--tls-ca", pk("ca2.pem"), NULL};
        const char *tls_tok[] = {"--tls-ca", pk("ca1.pem"), "--admin-token-file", token, NULL};
        const char *tls_wrong[] = {"--tls-ca", pk("ca1.pem"), "--admin-token-file", wrong, NULL};
        const char *stats[] = {"stats", NULL};
        const char *tensors[] = {"tensors", NULL};
        const char *pget[] = {"policy", "get", "--job", "job-A", NULL};
        const char *pset[] = {"policy", "set", "--job", "job-A", "--pin=5,4", NULL};
        const char *endjob[] = {"end-job", "--job", "no-such-job", NULL};
        char *body;

        r = ctl(&a, &out, tls, stats);
        TH_CHECK(r == 0 && strstr(out, "sfpd "), "stats over TLS: exit %d: %s", r, out);
        free(out);
        r = ctl(&a, &out, NULL, stats);
        TH_CHECK(r == 1 && strstr(out, "UNAVAILABLE"), "plaintext client refused: exit %d: %s", r, out);
        free(out);
        r = ctl(&a, &out, tls_bad_ca, stats);
        TH_CHECK(r == 1 && strstr(out, "UNAVAILABLE"), "server cert of an untrusted CA: exit %d: %s", r, out);
        free(out);
        printf("server TLS: TLS client ok, plaintext and wrong-CA clients refused\n");

        /* /metrics: plain HTTP, on loopback (documented in SECURITY.md) */
        body = gt_http_get(a.metrics_port, "/metrics", &code);
        TH_CHECK(body && code == 200 && strstr(body, "# TYPE "), "/metrics over plain HTTP: %d", code);
        free(body);

        /* the admin token */
        r = ctl(&a, &out, tls, pset);
        TH_CHECK(r == 1 && strstr(out, "UNAUTHENTICATED"), "SetPolicy without token: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls_wrong, pset);
        TH_CHECK(r == 1 && strstr(out, "PERMISSION_DENIED"), "SetPolicy wrong token: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls, endjob);
        TH_CHECK(r == 1 && strstr(out, "UNAUTHENTICATED"), "EndJob without token: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls_wrong, endjob);
        TH_CHECK(r == 1 && strstr(out, "PERMISSION_DENIED"), "EndJob wrong token: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls, pget);
        TH_CHECK(r == 0 && strstr(out, "default"), "GetPolicy open, policy still default: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls_tok, pset);
        TH_CHECK(r == 0, "SetPolicy with the token: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls, pget);
        TH_CHECK(r == 0 && !strstr(out, "default"), "policy set took effect: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls_tok, endjob);
        TH_CHECK(r == 1 && strstr(out, "NOT_FOUND"), "EndJob with the token passes the check: %d %s", r, out);
        free(out);
        r = ctl(&a, &out, tls, tensors);
        TH_CHECK(r == 0, "ListTensors stays open: %d %s", r, out);
        free(out);
        TH_CHECK(th_log_contains(&a.d, "admin call refused"), "refusals are logged");
        printf("admin token: missing -> UNAUTHENTICATED, wrong -> PERMISSION_DENIED, right -> served\n");
    }
    TH_CHECK(th_stop(&a.d, SIGTERM, 20) == 0 && a.d.exit_status == 0, "sfpd A exit %d", a.d.exit_status);
    th_cleanup(&a.d);

    /* ---- 4. client certificates required ---- */
    {
        const char *extra[] = {"--grpc-tls-cert", pk("server.pem"), "--grpc-tls-key", pk("server.key"),
                               "--grpc-tls-client-ca", pk("ca1.pem"), NULL};
        gt_start(&b, extra);
    }
    printf("sfpd B (TLS, client certificates required): %s\n", b.addr);
    TH_CHECK(th_log_contains(&b.d, "client certificates required and verified"), "mTLS in the log");
    {
        const char *good[] = {"--tls-ca", pk("ca1.pem"), "--tls-cert", pk("client.pem"), "--tls-key",
                              pk("client.key"), NULL};
        const char *nocert[] = {"--tls-ca", pk("ca1.pem"), NULL};
        const char *rogue[] = {"--tls-ca", pk("ca1.pem"), "--tls-cert", pk("rogue.pem"), "--tls-key",
                               pk("rogue.key"), NULL};
        const char *stats[] = {"stats", NULL};
        const char *health[] = {"health", NULL};
        r = ctl(&b, &out, good, stats);
        TH_CHECK(r == 0 && strstr(out, "sfpd "), "good client certificate: exit %d: %s", r, out);
        free(out);
        r = ctl(&b, &out, good, health);
        TH_CHECK(r == 0 && strstr(out, "SERVING"), "health with a client certificate: %d %s", r, out);
        free(out);
        r = ctl(&b, &out, nocert, stats);
        TH_CHECK(r == 1 && strstr(out, "UNAVAILABLE"), "no client certificate refused: exit %d: %s", r, out);
        free(out);
        r = ctl(&b, &out, rogue, stats);
        TH_CHECK(r == 1 && strstr(out, "UNAVAILABLE"), "certificate of another CA refused: exit %d: %s", r, out);
        free(out);
        r = ctl(&b, &out, NULL, health);
        TH_CHECK(r == 1, "plaintext refused: exit %d: %s", r, out);
        free(out);
        /* an independent client: Python grpcio (its own TLS stack) */
        if (system("/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1") == 0) {
            static const char py[] =
                "import grpc, sys\n"
                "d = sys.argv[1]\n"
                "rd = lambda n: open(d + '/' + n, 'rb').read()\n"
                "def check(cert):\n"
                "    kw = {'private_key': rd(cert + '.key'), 'certificate_chain': rd(cert + '.pem')} if cert else {}\n"
                "    cr = grpc.ssl_channel_credentials(root_certificates=rd('ca1.pem'), **kw)\n"
                "    with grpc.secure_channel(sys.argv[2], cr) as ch:\n"
                "        f = ch.unary_unary('/grpc.health.v1.Health/Check', request_serializer=lambda x: x,\n"
                "                           response_deserializer=lambda x: x)\n"
                "        try:\n"
                "            return f(b'', timeout=5)\n"
                "        except grpc.RpcError as e:\n"
                "            return e.code().name\n"
                "good, none, rogue = check('client'), check(None), check('rogue')\n"
                "print('python grpcio: client cert', good, '; none', none, '; other CA', rogue)\n"
                "sys.exit(0 if good == b'\\x08\\x01' and none == 'UNAVAILABLE' and rogue == 'UNAVAILABLE' else 1)\n";
            char pyfile[500];
            const char *pyargv[] = {"/usr/bin/python3", pyfile, pki, b.addr, NULL};
            snprintf(pyfile, sizeof(pyfile), "%.400s/tls_check.py", pki);
            write_file(pyfile, py, 0600);
            r = gt_run_capture(pyargv, &b.d, 60, &out);
            TH_CHECK(r == 0, "python grpcio over mTLS: exit %d: %s", r, out);
            printf("%s", out);
            free(out);
        } else {
            printf("python3-grpcio missing: independent TLS client skipped\n");
        }
        printf("client certificates: good ok; none, other CA and plaintext refused\n");
    }
    TH_CHECK(th_stop(&b.d, SIGTERM, 20) == 0 && b.d.exit_status == 0, "sfpd B exit %d", b.d.exit_status);
    th_cleanup(&b.d);

    /* ---- 5. bad settings refuse to start ---- */
    {
        const char *key_only[] = {"--grpc-tls-key", pk("server.key"), NULL};
        const char *ca_only[] = {"--grpc-tls-client-ca", pk("ca1.pem"), NULL};
        const char *mismatch[] = {"--grpc-tls-cert", pk("server.pem"), "--grpc-tls-key", pk("client.key"), NULL};
        const char *missing[] = {"--grpc-tls-cert", pk("nope.pem"), "--grpc-tls-key", pk("server.key"), NULL};
        const char *notpem[] = {"--grpc-tls-cert", token, "--grpc-tls-key", pk("server.key"), NULL};
        const char *short_tok[] = {"--admin-token-file", shorttok, NULL};
        const char *no_tok[] = {"--admin-token-file", pk("nope.token"), NULL};
        expect_refused("key without certificate", key_only, "TLS needs both grpc_tls_cert and grpc_tls_key");
        expect_refused("client CA alone", ca_only, "grpc_tls_client_ca alone is not enough");
        expect_refused("key of another certificate", mismatch, "TLS certificate/key unusable");
        expect_refused("missing certificate file", missing, "No such file");
        expect_refused("certificate not PEM", notpem, "not a PEM file");
        expect_refused("short admin token", short_tok, "16..4096 printable ASCII");
        expect_refused("missing admin token file", no_tok, "No such file");
    }
    th_cleanup(&tmp);
    printf("PASS\n");
    return 0;
}
