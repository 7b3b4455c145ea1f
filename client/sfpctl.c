/*
 * sfpctl - query and steer sfpd over its gRPC API (proto/sfp/v1/sfp.proto).
 *
 *   sfpctl [--addr A] [--json] [--timeout S] [TLS and admin options] COMMAND [options]
 *
 * Uses only the public proto and the gRPC C core (a pluck queue per call).
 * Exit codes: 0 ok, 1 the call failed (unreachable, error status),
 * 2 usage, 3 `health` answered NOT_SERVING.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "rpc.h"
#include "sfp/v1/sfp.pb-c.h"

#define DEFAULT_ADDR "127.0.0.1:50051"
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_NOT_SERVING 3

typedef struct ctl {
    const char *addr;
    bool json;
    double timeout;
    /* TLS (--tls-ca/--tls-cert/--tls-key) and the admin token */
    const char *tls_ca, *tls_cert, *tls_key, *tls_name, *token_file;
    char *auth; /* "Bearer <token>" for sfp.v1.Control calls, or NULL */
    grpc_channel *ch;
    grpc_completion_queue *cq;
} ctl;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void quiet_log(gpr_log_func_args *a)
{
    (void)a; /* gRPC's own chatter is not for CLI users */
}

/* ------------------------------------------------------------- transport */

static gpr_timespec deadline_in(double s)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                        gpr_time_from_millis((int64_t)(s * 1000), GPR_TIMESPAN));
}

static void report_status(const ctl *c, const char *method, grpc_status_code st, const char *d)
{
    if (st == GRPC_STATUS_UNAVAILABLE || st == GRPC_STATUS_DEADLINE_EXCEEDED)
        fprintf(stderr, "sfpctl: cannot reach sfpd at %s: %s (%s)\n", c->addr,
                d && d[0] ? d : "no answer", sfp_rpc_status_name(st));
    else
        fprintf(stderr, "sfpctl: %s at %s failed: %s (%s)\n", method, c->addr,
                d && d[0] ? d : "no detail", sfp_rpc_status_name(st));
}

/* The admin token (first line of --admin-token-file) as "Bearer <token>". */
static int load_token(ctl *c)
{
    char *t = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (!c->token_file)
        return 0;
    if (sfp_rpc_read_token(c->token_file, 1, &t, &n, NULL, &why) < 0) {
        fprintf(stderr, "sfpctl: --admin-token-file %s: %s\n", c->token_file, why);
        return -1;
    }
    if (!(c->auth = malloc(n + 8))) {
        sfp_rpc_free_secret(t, n);
        return -1;
    }
    snprintf(c->auth, n + 8, "Bearer %s", t);
    sfp_rpc_free_secret(t, n);
    return 0;
}

/* A PEM file of a --tls-* option, or NULL after a message. */
static char *load_pem(const char *opt, const char *path, size_t *len)
{
    char *p = NULL;
    const char *why = NULL;
    if (sfp_rpc_read_pem(path, &p, len, NULL, &why) < 0)
        fprintf(stderr, "sfpctl: %s %s: %s\n", opt, path, why);
    return p;
}

static int ctl_open(ctl *c)
{
    grpc_channel_credentials *creds;
    grpc_arg arg;
    grpc_channel_args args = {0, NULL};
    gpr_set_log_function(quiet_log);
    grpc_init(); /* ctl_close undoes it, also after a failure here */
    if (load_token(c) < 0)
        return -1;
    if (c->tls_ca || c->tls_cert || c->tls_key) {
        char *ca = NULL, *cert = NULL, *key = NULL;
        size_t ca_n = 0, cert_n = 0, key_n = 0;
        grpc_ssl_pem_key_cert_pair pair;
        bool bad;
        if (!c->tls_cert != !c->tls_key) {
            fprintf(stderr, "sfpctl: --tls-cert and --tls-key go together\n");
            return -1;
        }
        bad = (c->tls_ca && !(ca = load_pem("--tls-ca", c->tls_ca, &ca_n))) ||
              (c->tls_cert && !(cert = load_pem("--tls-cert", c->tls_cert, &cert_n))) ||
              (c->tls_key && !(key = load_pem("--tls-key", c->tls_key, &key_n)));
        pair.private_key = key;
        pair.cert_chain = cert;
        /* without --tls-ca gRPC uses the system's root certificates */
        creds = bad ? NULL : grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
        sfp_rpc_free_secret(ca, ca_n);
        sfp_rpc_free_secret(cert, cert_n);
        sfp_rpc_free_secret(key, key_n);
        if (bad)
            return -1;
    } else {
        creds = grpc_insecure_credentials_create();
    }
    if (c->tls_name) {
        arg.type = GRPC_ARG_STRING;
        arg.key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        arg.value.string = (char *)c->tls_name;
        args.num_args = 1;
        args.args = &arg;
    }
    c->ch = creds ? grpc_channel_create(c->addr, creds, &args) : NULL;
    if (creds)
        grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    return c->ch && c->cq ? 0 : -1;
}

static void ctl_close(ctl *c)
{
    if (c->ch)
        grpc_channel_destroy(c->ch);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(c->cq);
    }
    grpc_shutdown();
    if (c->auth)
        explicit_bzero(c->auth, strlen(c->auth));
    free(c->auth);
}

/* Waits for tag, cancelling the call on Ctrl-C. */
static void wait_tag(ctl *c, grpc_call *call, void *tag)
{
    for (;;) {
        grpc_event e = grpc_completion_queue_pluck(c->cq, tag, deadline_in(0.1), NULL);
        if (e.type == GRPC_OP_COMPLETE)
            return;
        if (interrupted)
            grpc_call_cancel(call, NULL);
    }
}

/*
 * One unary call. On success *resp is owned by the caller
 * (protobuf_c_message_free_unpacked). Prints the error and returns -1 else.
 */
static int unary(ctl *c, const char *method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp)
{
    grpc_metadata auth;
    sfp_rpc_call call = {
        .method = method, .req = req, .reply_desc = rd, .deadline = deadline_in(c->timeout),
        .cancel = &interrupted,
    };
    grpc_status_code st;

    /* the admin token goes only to the control calls that need it */
    if (c->auth && strncmp(method, "/sfp.v1.Control/", 16) == 0) {
        memset(&auth, 0, sizeof(auth));
        auth.key = grpc_slice_from_static_string("authorization");
        auth.value = grpc_slice_from_static_string(c->auth);
        call.md = &auth;
        call.n_md = 1;
    }
    st = sfp_rpc_unary(c->ch, c->cq, &call);
    if (st != GRPC_STATUS_OK) {
        if (st == GRPC_STATUS_INTERNAL && call.details && !strcmp(call.details, "malformed reply"))
            fprintf(stderr, "sfpctl: malformed reply to %s from %s\n", method, c->addr);
        else
            report_status(c, method, st, call.details);
        sfp_rpc_call_clear(&call);
        return -1;
    }
    *resp = call.reply;
    call.reply = NULL;
    sfp_rpc_call_clear(&call);
    return 0;
}

/* ------------------------------------------------------------ formatting */

static const char *human_bytes(uint64_t v, char *buf, size_t n)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double d = (double)v;
    int i = 0;
    if (v < 1024) {
        snprintf(buf, n, "%" PRIu64 " B", v);
        return buf;
    }
    while (d >= 1024 && i < 5) {
        d /= 1024;
        i++;
    }
    snprintf(buf, n, "%.1f %s", d, u[i]);
    return buf;
}

static const char *human_duration(double s, char *buf, size_t n)
{
    uint64_t t = (uint64_t)s;
    if (t < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (t < 3600)
        snprintf(buf, n, "%um%02us", (unsigned)(t / 60), (unsigned)(t % 60));
    else if (t < 86400)
        snprintf(buf, n, "%uh%02um", (unsigned)(t / 3600), (unsigned)(t / 60 % 60));
    else
        snprintf(buf, n, "%ud%02uh", (unsigned)(t / 86400), (unsigned)(t / 3600 % 24));
    return buf;
}

static const char *human_seconds(double s, char *buf, size_t n)
{
    if (s <= 0)
        snprintf(buf, n, "-");
    else if (s < 1e-3)
        snprintf(buf, n, "%.0f us", s * 1e6);
    else if (s < 1)
        snprintf(buf, n, "%.1f ms", s * 1e3);
    else
        snprintf(buf, n, "%.2f s", s);
    return buf;
}

/* --- generic JSON of any protobuf-c message (proto3, all fields shown) --- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_message(FILE *f, const ProtobufCMessage *m);

static bool is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t l = strlen(d->name);
    return d->n_fields == 2 && l > 5 && strcmp(d->name + l - 5, "Entry") == 0 &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

static void json_value(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        fprintf(f, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        fprintf(f, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        fprintf(f, "%" PRId64, *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        fprintf(f, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        fprintf(f, "%.9g", isfinite(*(const float *)p) ? *(const float *)p : 0.0);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        fprintf(f, "%.17g", isfinite(*(const double *)p) ? *(const double *)p : 0.0);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        fputs(*(const protobuf_c_boolean *)p ? "true" : "false", f);
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(fd->descriptor, *(const int *)p);
        if (v)
            json_string(f, v->name);
        else
            fprintf(f, "%d", *(const int *)p);
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        json_string(f, *(char *const *)p);
        break;
    case PROTOBUF_C_TYPE_BYTES:
        fputs("null", f);
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        if (*(ProtobufCMessage *const *)p)
            json_message(f, *(ProtobufCMessage *const *)p);
        else
            fputs("null", f);
        break;
    }
}

static size_t type_size(const ProtobufCFieldDescriptor *fd)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    default: return 4;
    }
}

static void json_message(FILE *f, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    fputc('{', f);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        const char *base = (const char *)m;
        if (i)
            fputc(',', f);
        json_string(f, fd->name);
        fputc(':', f);
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + fd->quantifier_offset);
            const char *arr = *(char *const *)(base + fd->offset);
            bool map = fd->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(fd->descriptor);
            fputc(map ? '{' : '[', f);
            for (size_t k = 0; k < n; k++) {
                const void *p = arr + k * type_size(fd);
                if (k)
                    fputc(',', f);
                if (map) {
                    const ProtobufCMessage *e = *(ProtobufCMessage *const *)p;
                    const ProtobufCMessageDescriptor *ed = e->descriptor;
                    json_string(f, *(char *const *)((const char *)e + ed->fields[0].offset));
                    fputc(':', f);
                    json_value(f, &ed->fields[1], (const char *)e + ed->fields[1].offset);
                } else {
                    json_value(f, fd, p);
                }
            }
            fputc(map ? '}' : ']', f);
        } else {
            json_value(f, fd, base + fd->offset);
        }
    }
    fputc('}', f);
}

/* --------------------------------------------------------------- output */

/* s in upper case into buf (table headings). */
static const char *upper(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        buf[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    buf[i] = 0;
    return buf;
}

/* What job j keeps in the tier called name (JobStats.tiers). */
static uint64_t job_tier_bytes(const Sfp__V1__JobStats *j, const char *name)
{
    for (size_t i = 0; i < j->n_tiers; i++)
        if (!strcmp(j->tiers[i]->name, name))
            return j->tiers[i]->bytes;
    return 0;
}

static void print_stats(const ctl *c, const Sfp__V1__StatsSnapshot *s)
{
    char a[32], b[32], d[32], e[32];
    printf("sfpd %s at %s, up %s%s\n", s->daemon_version, c->addr,
           human_duration(s->uptime_seconds, a, sizeof(a)), s->draining ? " (DRAINING)" : "");
    printf("held       %s in, %s stored   ratio %.2f   %.2f bits/value\n",
           human_bytes(s->bytes_in, a, sizeof(a)), human_bytes(s->bytes_stored, b, sizeof(b)),
           s->compression_ratio, s->bits_per_value);
    printf("requests   puts %" PRIu64 "  gets %" PRIu64 "  drops %" PRIu64 "  errors %" PRIu64
           "  corrupt %" PRIu64 "\n", s->puts, s->gets, s->drops, s->errors, s->corrupt_frames);
    printf("traffic    %s put, %s got, %u connections, %u in flight\n",
           human_bytes(s->bytes_in_total, a, sizeof(a)), human_bytes(s->bytes_out_total, b, sizeof(b)),
           s->connections, s->inflight);
    printf("spills     %" PRIu64 "   prefetch hits %" PRIu64 "  misses %" PRIu64 "\n\n", s->spills,
           s->prefetch_hits, s->prefetch_misses);
    printf("%-10s %12s %12s %12s %10s %12s\n", "TIER", "BYTES", "USED", "BUDGET", "FRAMES",
           "HIGH WATER");
    for (size_t i = 0; i < s->n_tiers; i++) {
        const Sfp__V1__TierStats *t = s->tiers[i];
        printf("%-10s %12s %12s %12s %10" PRIu64 " %12s\n", t->name, human_bytes(t->bytes, a, sizeof(a)),
               human_bytes(t->used_bytes, e, sizeof(e)),
               t->budget_bytes ? human_bytes(t->budget_bytes, b, sizeof(b)) : "unlimited", t->frames,
               human_bytes(t->high_water_bytes, d, sizeof(d)));
    }
    if (s->n_jobs) {
        /* one column per tier, named like the TIER table's rows */
        printf("\n%-24s %6s %12s %12s %7s %9s %6s", "JOB", "RANKS", "IN", "STORED", "RATIO", "FRAMES",
               "CONNS");
        for (size_t t = 0; t < s->n_tiers; t++)
            printf(" %10s", upper(s->tiers[t]->name, d, sizeof(d)));
        putchar('\n');
        for (size_t i = 0; i < s->n_jobs; i++) {
            const Sfp__V1__JobStats *j = s->jobs[i];
            printf("%-24s %6u %12s %12s %7.2f %9" PRIu64 " %6u", j->job_id, j->ranks,
                   human_bytes(j->bytes_in, a, sizeof(a)), human_bytes(j->bytes_stored, b, sizeof(b)),
                   j->compression_ratio, j->frames, j->connections);
            for (size_t t = 0; t < s->n_tiers; t++)
                printf(" %10s", human_bytes(job_tier_bytes(j, s->tiers[t]->name), d, sizeof(d)));
            printf("%s\n", j->orphaned ? " (orphaned)" : "");
        }
    }
    if (s->n_peers) { /* network tier: peers this daemon spills to */
        printf("\n%-22s %4s %10s %10s %10s %8s %9s %6s %6s %6s\n", "PEER", "UP", "SENT", "RECEIVED",
               "HELD", "FRAMES", "RTT", "FAIL", "REFUSE", "LOST");
        for (size_t i = 0; i < s->n_peers; i++) {
            const Sfp__V1__PeerStats *p = s->peers[i];
            printf("%-22s %4s %10s %10s %10s %8" PRIu64 " %9s %6" PRIu64 " %6" PRIu64 " %6" PRIu64 "\n",
                   p->address, p->up ? "yes" : "no", human_bytes(p->bytes_sent, a, sizeof(a)),
                   human_bytes(p->bytes_received, b, sizeof(b)), human_bytes(p->held_bytes, d, sizeof(d)),
                   p->held_frames, human_seconds(p->rtt_seconds, e, sizeof(e)), p->failures,
                   p->refusals, p->lost_frames);
        }
    }
    if (s->n_peer_clients) { /* daemons whose frames this one holds */
        printf("\n%-40s %10s %8s %10s %10s %6s\n", "HELD FOR NODE", "HELD", "FRAMES", "RECEIVED",
               "SENT", "REFUSE");
        for (size_t i = 0; i < s->n_peer_clients; i++) {
            const Sfp__V1__PeerClientStats *p = s->peer_clients[i];
            printf("%-40s %10s %8" PRIu64 " %10s %10s %6" PRIu64 "\n", p->node,
                   human_bytes(p->held_bytes, a, sizeof(a)), p->held_frames,
                   human_bytes(p->bytes_received, b, sizeof(b)), human_bytes(p->bytes_sent, d, sizeof(d)),
                   p->refusals);
        }
    }
    printf("\n%-14s %10s %10s %10s\n", "LATENCY", "COUNT", "P50", "P99");
    for (size_t i = 0; i < s->n_latencies; i++) {
        const Sfp__V1__LatencyStats *l = s->latencies[i];
        printf("%-14s %10" PRIu64 " %10s %10s\n", l->name, l->count,
               human_seconds(l->p50_seconds, d, sizeof(d)), human_seconds(l->p99_seconds, e, sizeof(e)));
    }
}

static void print_stats_line(const Sfp__V1__StatsSnapshot *s)
{
    char a[32], b[32], d[32];
    time_t t = (time_t)(s->taken_unix_nanos / 1000000000u);
    struct tm tm;
    char ts[32];
    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
    printf("%s in %s stored %s ratio %.2f bpv %.2f puts %" PRIu64 " gets %" PRIu64 " spills %" PRIu64,
           ts, human_bytes(s->bytes_in, a, sizeof(a)), human_bytes(s->bytes_stored, b, sizeof(b)),
           s->compression_ratio, s->bits_per_value, s->puts, s->gets, s->spills);
    for (size_t i = 0; i < s->n_tiers; i++) /* "dram 1.0 MiB disk 2.0 MiB ..." */
        printf(" %s %s", s->tiers[i]->name, human_bytes(s->tiers[i]->bytes, d, sizeof(d)));
    printf(" errors %" PRIu64 "%s\n", s->errors, s->draining ? " DRAINING" : "");
    fflush(stdout);
}

/* -------------------------------------------------------------- commands */

static int opt_value(int argc, char **argv, int *i, const char *name, const char **out)
{
    size_t l = strlen(name);
    if (strncmp(argv[*i], name, l) == 0 && argv[*i][l] == '=') {
        *out = argv[*i] + l + 1;
        return 1;
    }
    if (strcmp(argv[*i], name) == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "sfpctl: %s needs a value\n", name);
            exit(EXIT_USAGE);
        }
        *out = argv[++*i];
        return 1;
    }
    return 0;
}

static uint32_t parse_u32(const char *s, const char *what)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > UINT32_MAX) {
        fprintf(stderr, "sfpctl: %s: not a number: %s\n", what, s);
        exit(EXIT_USAGE);
    }
    return (uint32_t)v;
}

static double parse_double(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !isfinite(v) || v < 0) {
        fprintf(stderr, "sfpctl: %s: not a non-negative number: %s\n", what, s);
        exit(EXIT_USAGE);
    }
    return v;
}

static void unknown_opt(const char *cmd, const char *o)
{
    fprintf(stderr, "sfpctl %s: unknown option %s (see sfpctl --help)\n", cmd, o);
    exit(EXIT_USAGE);
}

static int cmd_stats(ctl *c, int argc, char **argv)
{
    Sfp__V1__GetStatsRequest req = SFP__V1__GET_STATS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (opt_value(argc, argv, &i, "--job", &v))
            req.job_id = (char *)v;
        else
            unknown_opt("stats", argv[i]);
    }
    if (unary(c, "/sfp.v1.Stats/GetStats", &req.base, &sfp__v1__stats_snapshot__descriptor, &resp) < 0)
        return EXIT_FAIL;
    if (c->json) {
        json_message(stdout, resp);
        putchar('\n');
    } else {
        print_stats(c, (Sfp__V1__StatsSnapshot *)resp);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int cmd_watch(ctl *c, int argc, char **argv)
{
    Sfp__V1__WatchStatsRequest req = SFP__V1__WATCH_STATS_REQUEST__INIT;
    grpc_call *call;
    grpc_op ops[4];
    grpc_metadata_array imd, tmd;
    grpc_byte_buffer *send, *recv = NULL;
    grpc_status_code st = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    const char *err_str = NULL, *v;
    bool tty = isatty(STDOUT_FILENO) && !c->json;
    unsigned n = 0;
    int r = EXIT_FAIL;

    req.interval_seconds = 1;
    for (int i = 1; i < argc; i++) {
        if (opt_value(argc, argv, &i, "--interval", &v))
            req.interval_seconds = parse_double(v, "--interval");
        else if (opt_value(argc, argv, &i, "--count", &v))
            req.count = parse_u32(v, "--count");
        else if (opt_value(argc, argv, &i, "--job", &v))
            req.job_id = (char *)v;
        else
            unknown_opt("watch", argv[i]);
    }
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    send = sfp_rpc_pack(&req.base);
    grpc_metadata_array_init(&imd);
    grpc_metadata_array_init(&tmd);
    call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                    grpc_slice_from_static_string("/sfp.v1.Stats/WatchStats"), NULL,
                                    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
    if (grpc_call_start_batch(call, ops, 4, (void *)1, NULL) != GRPC_CALL_OK)
        goto out;
    wait_tag(c, call, (void *)1);
    for (;;) {
        ProtobufCMessage *m;
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_RECV_MESSAGE;
        ops[0].data.recv_message.recv_message = &recv;
        if (grpc_call_start_batch(call, ops, 1, (void *)2, NULL) != GRPC_CALL_OK)
            break;
        wait_tag(c, call, (void *)2);
        if (!recv)
            break; /* end of stream */
        m = sfp_rpc_unpack(recv, &sfp__v1__stats_snapshot__descriptor);
        grpc_byte_buffer_destroy(recv);
        recv = NULL;
        if (!m) {
            fprintf(stderr, "sfpctl: malformed snapshot from %s\n", c->addr);
            grpc_call_cancel(call, NULL);
            continue;
        }
        n++;
        if (c->json) {
            json_message(stdout, m);
            putchar('\n');
            fflush(stdout);
        } else if (tty) {
            printf("\033[H\033[2J");
            print_stats(c, (Sfp__V1__StatsSnapshot *)m);
            printf("\n(every %.2f s; Ctrl-C to stop)\n", req.interval_seconds);
            fflush(stdout);
        } else {
            print_stats_line((Sfp__V1__StatsSnapshot *)m);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &tmd;
    ops[0].data.recv_status_on_client.status = &st;
    ops[0].data.recv_status_on_client.status_details = &details;
    ops[0].data.recv_status_on_client.error_string = &err_str;
    if (grpc_call_start_batch(call, ops, 1, (void *)3, NULL) != GRPC_CALL_OK)
        goto out;
    wait_tag(c, call, (void *)3);
    if (st == GRPC_STATUS_OK || (interrupted && st == GRPC_STATUS_CANCELLED))
        r = 0;
    else {
        char *d = grpc_slice_to_c_string(details);
        report_status(c, "WatchStats", st, d);
        gpr_free(d);
    }
out:
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    gpr_free((void *)err_str);
    grpc_metadata_array_destroy(&imd);
    grpc_metadata_array_destroy(&tmd);
    grpc_call_unref(call);
    (void)n;
    return r;
}

static int cmd_tensors(ctl *c, int argc, char **argv)
{
    Sfp__V1__ListTensorsRequest req = SFP__V1__LIST_TENSORS_REQUEST__INIT;
    Sfp__V1__ListTensorsResponse *lt;
    ProtobufCMessage *resp = NULL;
    const char *v;
    char a[32], b[32];

    for (int i = 1; i < argc; i++) {
        if (opt_value(argc, argv, &i, "--job", &v))
            req.job_id = (char *)v;
        else if (opt_value(argc, argv, &i, "--limit", &v))
            req.limit = parse_u32(v, "--limit");
        else
            unknown_opt("tensors", argv[i]);
    }
    if (unary(c, "/sfp.v1.Stats/ListTensors", &req.base, &sfp__v1__list_tensors_response__descriptor,
              &resp) < 0)
        return EXIT_FAIL;
    lt = (Sfp__V1__ListTensorsResponse *)resp;
    if (c->json) {
        json_message(stdout, resp);
        putchar('\n');
    } else {
        printf("%-16s %5s %8s %-24s %-5s %10s %3s %2s %-6s %10s %10s %6s %-5s\n", "JOB", "RANK", "STEP",
               "TENSOR", "DTYPE", "COUNT", "M", "E", "CODER", "IN", "STORED", "RATIO", "TIER");
        for (size_t i = 0; i < lt->n_tensors; i++) {
            const Sfp__V1__TensorInfo *t = lt->tensors[i];
            printf("%-16s %5u %8" PRIu64 " %-24s %-5s %10" PRIu64 " %3u %2u %-6s %10s %10s %6.2f %-5s\n",
                   t->job_id, t->rank, t->step, t->tensor, t->dtype, t->count, t->mantissa_bits,
                   t->exponent_bits, t->coder, human_bytes(t->bytes_in, a, sizeof(a)),
                   human_bytes(t->stored_bytes, b, sizeof(b)),
                   t->stored_bytes ? (double)t->bytes_in / (double)t->stored_bytes : 0.0, t->tier);
        }
        printf("%zu of %" PRIu64 " tensors%s\n", lt->n_tensors, lt->total,
               lt->truncated ? " (raise --limit for more)" : "");
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int cmd_health(ctl *c, int argc, char **argv)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckResponse *h;
    ProtobufCMessage *resp = NULL;
    const ProtobufCEnumValue *ev;
    const char *v;
    int r;

    for (int i = 1; i < argc; i++) {
        if (opt_value(argc, argv, &i, "--service", &v))
            req.service = (char *)v;
        else
            unknown_opt("health", argv[i]);
    }
    if (unary(c, "/grpc.health.v1.Health/Check", &req.base,
              &grpc__health__v1__health_check_response__descriptor, &resp) < 0)
        return EXIT_FAIL;
    h = (Grpc__Health__V1__HealthCheckResponse *)resp;
    ev = protobuf_c_enum_descriptor_get_value(&grpc__health__v1__health_check_response__serving_status__descriptor,
                                              h->status);
    if (c->json) {
        json_message(stdout, resp);
        putchar('\n');
    } else {
        printf("%s\n", ev ? ev->name : "UNKNOWN");
    }
    r = h->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? 0 : EXIT_NOT_SERVING;
    protobuf_c_message_free_unpacked(resp, NULL);
    return r;
}

/*
 * Coder names come from the public proto's Coder enum (CODER_GECKO ->
 * "gecko"), which sfpd keeps equal to libsfp's coder list; "auto" is
 * CODER_UNSPECIFIED, the workers' own choice.
 */
static const char *coder_name(const ProtobufCEnumValue *ev, char *buf, size_t n)
{
    size_t i = 0;
    const char *s = ev->value == 0 ? "auto" : ev->name + 6; /* past "CODER_" */
    for (; s[i] && i + 1 < n; i++)
        buf[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    buf[i] = 0;
    return buf;
}

/* The enum value of a coder name, or -1. */
static int coder_value(const char *name)
{
    const ProtobufCEnumDescriptor *d = &sfp__v1__coder__descriptor;
    char buf[64];
    for (unsigned i = 0; i < d->n_values; i++)
        if (!strcmp(coder_name(&d->values[i], buf, sizeof(buf)), name))
            return d->values[i].value;
    return -1;
}

/* "plain, gecko, rans, auto" */
static const char *coder_names(char *out, size_t n)
{
    const ProtobufCEnumDescriptor *d = &sfp__v1__coder__descriptor;
    char buf[64];
    size_t o = 0;
    out[0] = 0;
    for (unsigned k = 0; k < d->n_values && o < n; k++) {
        unsigned i = (k + 1) % d->n_values; /* "auto" last */
        o += (size_t)snprintf(out + o, n - o, "%s%s", k ? ", " : "",
                              coder_name(&d->values[i], buf, sizeof(buf)));
    }
    return out;
}

static void print_policy(const char *job, const Sfp__V1__Policy *p, bool is_default)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(&sfp__v1__coder__descriptor, p->coder);
    char cn[64];
    printf("job %s%s (generation %" PRIu64 ")\n", job, is_default ? ": default policy" : "", p->generation);
    printf("  mantissa bits  %u..%u\n", p->min_mantissa_bits, p->max_mantissa_bits ? p->max_mantissa_bits : 23);
    printf("  exponent bits  %u..%u\n", p->min_exponent_bits ? p->min_exponent_bits : 1,
           p->max_exponent_bits ? p->max_exponent_bits : 8);
    if (p->pin)
        printf("  pinned         m=%u e=%u\n", p->pinned_mantissa_bits, p->pinned_exponent_bits);
    printf("  coder          %s\n", ev ? coder_name(ev, cn, sizeof(cn)) : "?");
    printf("  learning       %s\n", p->freeze ? "frozen" : "on");
}

static int cmd_policy(ctl *c, int argc, char **argv)
{
    const char *job = NULL, *v;
    bool set;
    Sfp__V1__Policy pol = SFP__V1__POLICY__INIT;
    ProtobufCMessage *resp = NULL;
    int r = 0;

    if (argc < 2 || (strcmp(argv[1], "get") && strcmp(argv[1], "set"))) {
        fprintf(stderr, "sfpctl policy: want 'get' or 'set' (see sfpctl --help)\n");
        return EXIT_USAGE;
    }
    set = !strcmp(argv[1], "set");
    for (int i = 2; i < argc; i++) {
        if (opt_value(argc, argv, &i, "--job", &v))
            job = v;
        else if (set && opt_value(argc, argv, &i, "--min-mbits", &v))
            pol.min_mantissa_bits = parse_u32(v, "--min-mbits");
        else if (set && opt_value(argc, argv, &i, "--max-mbits", &v))
            pol.max_mantissa_bits = parse_u32(v, "--max-mbits");
        else if (set && opt_value(argc, argv, &i, "--min-ebits", &v))
            pol.min_exponent_bits = parse_u32(v, "--min-ebits");
        else if (set && opt_value(argc, argv, &i, "--max-ebits", &v))
            pol.max_exponent_bits = parse_u32(v, "--max-ebits");
        else if (set && opt_value(argc, argv, &i, "--pin", &v)) {
            unsigned m, e;
            char tail;
            if (sscanf(v, "%u,%u%c", &m, &e, &tail) != 2) {
                fprintf(stderr, "sfpctl policy set: --pin wants MBITS,EBITS\n");
                return EXIT_USAGE;
            }
            pol.pin = 1;
            pol.pinned_mantissa_bits = m;
            pol.pinned_exponent_bits = e;
        } else if (set && opt_value(argc, argv, &i, "--coder", &v)) {
            int cv = coder_value(v);
            if (cv < 0) {
                char names[128];
                fprintf(stderr, "sfpctl policy set: --coder wants one of: %s\n",
                        coder_names(names, sizeof(names)));
                return EXIT_USAGE;
            }
            pol.coder = (Sfp__V1__Coder)cv;
        } else if (set && !strcmp(argv[i], "--freeze"))
            pol.freeze = 1;
        else if (set && !strcmp(argv[i], "--no-freeze"))
            pol.freeze = 0;
        else
            unknown_opt("policy", argv[i]);
    }
    if (!job) {
        fprintf(stderr, "sfpctl policy %s: --job is required\n", argv[1]);
        return EXIT_USAGE;
    }
    if (!set) {
        Sfp__V1__GetPolicyRequest req = SFP__V1__GET_POLICY_REQUEST__INIT;
        req.job_id = (char *)job;
        if (unary(c, "/sfp.v1.Control/GetPolicy", &req.base, &sfp__v1__get_policy_response__descriptor,
                  &resp) < 0)
            return EXIT_FAIL;
        if (!c->json) {
            Sfp__V1__GetPolicyResponse *g = (Sfp__V1__GetPolicyResponse *)resp;
            Sfp__V1__Policy def = SFP__V1__POLICY__INIT;
            print_policy(g->job_id, g->policy ? g->policy : &def, g->is_default);
        }
    } else {
        Sfp__V1__SetPolicyRequest req = SFP__V1__SET_POLICY_REQUEST__INIT;
        req.job_id = (char *)job;
        req.policy = &pol;
        if (unary(c, "/sfp.v1.Control/SetPolicy", &req.base, &sfp__v1__set_policy_response__descriptor,
                  &resp) < 0)
            return EXIT_FAIL;
        if (!c->json) {
            Sfp__V1__SetPolicyResponse *s = (Sfp__V1__SetPolicyResponse *)resp;
            Sfp__V1__Policy def = SFP__V1__POLICY__INIT;
            print_policy(s->job_id, s->policy ? s->policy : &def, false);
        }
    }
    if (c->json) {
        json_message(stdout, resp);
        putchar('\n');
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return r;
}

static int cmd_end_job(ctl *c, int argc, char **argv)
{
    Sfp__V1__EndJobRequest req = SFP__V1__END_JOB_REQUEST__INIT;
    Sfp__V1__EndJobResponse *e;
    ProtobufCMessage *resp = NULL;
    const char *job = NULL, *v;
    char a[32];

    for (int i = 1; i < argc; i++) {
        if (opt_value(argc, argv, &i, "--job", &v))
            job = v;
        else if (argv[i][0] != '-' && !job)
            job = argv[i];
        else
            unknown_opt("end-job", argv[i]);
    }
    if (!job) {
        fprintf(stderr, "sfpctl end-job: --job is required\n");
        return EXIT_USAGE;
    }
    req.job_id = (char *)job;
    if (unary(c, "/sfp.v1.Control/EndJob", &req.base, &sfp__v1__end_job_response__descriptor, &resp) < 0)
        return EXIT_FAIL;
    e = (Sfp__V1__EndJobResponse *)resp;
    if (c->json) {
        json_message(stdout, resp);
        putchar('\n');
    } else {
        printf("job %s ended: %" PRIu64 " frames, %s freed\n", e->job_id, e->frames_freed,
               human_bytes(e->bytes_freed, a, sizeof(a)));
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sfpctl [--addr ADDR] [--json] [--timeout SECONDS] [--tls-ca FILE]\n"
            "              [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]\n"
            "              [--admin-token-file FILE] COMMAND [options]\n"
            "\n"
            "Queries and steers sfpd over gRPC (sfp.v1). ADDR defaults to $SFP_GRPC_ADDR,\n"
            "else " DEFAULT_ADDR "; host:port, [v6]:port or unix:/path.\n"
            "\n"
            "TLS (sfpd option grpc_tls_cert): --tls-ca is the PEM CA that signed the\n"
            "server certificate (default: the system roots); --tls-cert/--tls-key are the\n"
            "client certificate and key for a daemon with grpc_tls_client_ca;\n"
            "--tls-server-name overrides the name checked in the server certificate.\n"
            "--admin-token-file: file whose first line is the admin token (sfpd option\n"
            "admin_token_file), sent as 'authorization: Bearer' with policy set/end-job.\n"
            "\n"
            "commands:\n"
            "  stats [--job J]                      one snapshot: bytes, ratio, tiers, jobs\n"
            "  watch [--interval S] [--count N] [--job J]\n"
            "                                       snapshots every S seconds (redrawn on a\n"
            "                                       terminal, one line each when piped)\n"
            "  tensors [--job J] [--limit N]        per-tensor widths, coder, size, tier\n"
            "  health [--service NAME]              grpc.health.v1 check: SERVING exits 0,\n"
            "                                       NOT_SERVING exits 3\n"
            "  policy get --job J\n"
            "  policy set --job J [--min-mbits N] [--max-mbits N] [--min-ebits N]\n"
            "             [--max-ebits N] [--pin M,E] [--coder plain|gecko|rans|auto]\n"
            "             [--freeze|--no-freeze]\n"
            "  end-job --job J                      frees every stash of job J\n"
            "\n"
            "--json prints the reply message as JSON (one object per line for watch).\n"
            "Exit codes: 0 ok, 1 call failed or sfpd unreachable, 2 usage, 3 NOT_SERVING.\n");
}

int main(int argc, char **argv)
{
    ctl c = {0};
    const char *v;
    int i, r;

    c.addr = getenv("SFP_GRPC_ADDR") && getenv("SFP_GRPC_ADDR")[0] ? getenv("SFP_GRPC_ADDR") : DEFAULT_ADDR;
    c.timeout = 5;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--json"))
            c.json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (opt_value(argc, argv, &i, "--addr", &v))
            c.addr = v;
        else if (opt_value(argc, argv, &i, "--timeout", &v))
            c.timeout = parse_double(v, "--timeout");
        else if (opt_value(argc, argv, &i, "--tls-ca", &v))
            c.tls_ca = v;
        else if (opt_value(argc, argv, &i, "--tls-cert", &v))
            c.tls_cert = v;
        else if (opt_value(argc, argv, &i, "--tls-key", &v))
            c.tls_key = v;
        else if (opt_value(argc, argv, &i, "--tls-server-name", &v))
            c.tls_name = v;
        else if (opt_value(argc, argv, &i, "--admin-token-file", &v))
            c.token_file = v;
        else {
            fprintf(stderr, "sfpctl: unknown option %s\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* options may also follow the command */
    for (int k = i + 1; k < argc; k++) {
        if (!strcmp(argv[k], "--json")) {
            c.json = true;
            memmove(&argv[k], &argv[k + 1], (size_t)(argc - k - 1) * sizeof(*argv));
            argc--;
            k--;
        }
    }
    if (ctl_open(&c) < 0) {
        fprintf(stderr, "sfpctl: cannot create a channel to %s\n", c.addr);
        ctl_close(&c);
        return EXIT_FAIL;
    }
    argc -= i;
    argv += i;
    if (!strcmp(argv[0], "stats"))
        r = cmd_stats(&c, argc, argv);
    else if (!strcmp(argv[0], "watch"))
        r = cmd_watch(&c, argc, argv);
    else if (!strcmp(argv[0], "tensors"))
        r = cmd_tensors(&c, argc, argv);
    else if (!strcmp(argv[0], "health"))
        r = cmd_health(&c, argc, argv);
    else if (!strcmp(argv[0], "policy"))
        r = cmd_policy(&c, argc, argv);
    else if (!strcmp(argv[0], "end-job"))
        r = cmd_end_job(&c, argc, argv);
    else {
        fprintf(stderr, "sfpctl: unknown command %s\n", argv[0]);
        usage(stderr);
        r = EXIT_USAGE;
    }
    ctl_close(&c);
    return r;
}
