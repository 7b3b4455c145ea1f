/*
 * test_paths: job ids and tensor names that look like paths ("../x", "a/b",
 * "..", absolute paths, overlong and non-UTF-8 bytes, control characters,
 * an embedded NUL, the longest allowed and one byte more) against the real
 * sfpd with a tiny DRAM budget, so every tensor is written to the spill
 * directory. Each one either works (bit-exact, also after a restart
 * re-adopts the spill files) or is refused with a clear error, and the
 * test's directory tree afterwards holds nothing but the socket, the log
 * and <spill>/<uid>-<hex job id>/seg-<8 hex>.sfs files; nothing appears
 * outside it.
 */
#include "common.h"
#include "raw.h"

#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>

#define NV 16384 /* 64 KiB of F32: over the DRAM budget, so it spills */

static th_daemon d;
static float *data;
static sfp_params P;
static char escape_tmp[128];

typedef struct accepted {
    char job[200];
    size_t job_len;
    char tensor[300];
} accepted;

static accepted ok_list[64];
static int n_ok;

static void show(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    size_t n = strlen(s);
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 32 && ch < 127)
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        if (i == 40 && n > 48) {
            o += (size_t)snprintf(out + o, cap - o, "...(%zu bytes)", n);
            break;
        }
    }
    out[o] = 0;
}

/* Connect as job and put/get tensor; records what was accepted. */
static void try_one(const char *job, const char *tensor)
{
    sfpc_options o;
    sfpc *c = NULL;
    sfpc_key k = {.rank = 0, .step = 1, .tensor = tensor};
    float *out = malloc(NV * 4);
    char sj[128], st[128];
    int e;

    show(sj, sizeof(sj), job);
    show(st, sizeof(st), tensor);
    sfpc_options_default(&o);
    o.socket_path = d.socket;
    o.job_id = job;
    o.shm_size = 2 * NV * 4;
    o.timeout_ms = 10000;
    e = sfpc_connect(&o, &c);
    if (e) {
        TH_CHECK(e == SFPC_EINVAL || e == SFPC_EREQUEST, "job \"%s\": unexpected %s", sj, sfpc_strerror(e));
        printf("  job %-46s refused: %s\n", sj, sfpc_strerror(e));
        free(out);
        return;
    }
    e = sfpc_put(c, &k, data, NV, &P, 0, NULL);
    if (e) {
        TH_CHECK(e == SFPC_EINVAL || e == SFPC_EREQUEST, "job \"%s\" tensor \"%s\": put %s (%s)", sj, st,
                 sfpc_strerror(e), sfpc_last_message(c));
        printf("  job %-46s tensor %-30s refused: %s (%s)\n", sj, st, sfpc_strerror(e), sfpc_last_message(c));
    } else {
        e = sfpc_get(c, &k, out, NV * 4, 0, NULL);
        TH_CHECK(e == 0 && memcmp(out, data, NV * 4) == 0, "job \"%s\" tensor \"%s\": get %s", sj, st,
                 sfpc_strerror(e));
        printf("  job %-46s tensor %-30s stored and read back bit-exact\n", sj, st);
        TH_CHECK(n_ok < 64, "too many");
        snprintf(ok_list[n_ok].job, sizeof(ok_list[n_ok].job), "%s", job);
        snprintf(ok_list[n_ok].tensor, sizeof(ok_list[n_ok].tensor), "%s", tensor);
        n_ok++;
    }
    sfpc_close(&c);
    free(out);
}

/* Hello with an embedded NUL (protobuf strings carry a length; C strings
 * do not): hand-encoded, since protobuf-c packs strings with strlen. */
static void nul_job(void)
{
    uint8_t msg[64];
    const char job[] = {'n', 'u', 'l', 0, '/', '.', '.', '/', 'x'};
    size_t jl = sizeof(job), hl = 2 + 2 + jl, n = 0;
    int fd = raw_connect(d.socket), st;
    TH_CHECK(fd >= 0, "connect");
    msg[4 + n++] = 0x08, msg[4 + n++] = 0x01;             /* Request.id = 1 */
    msg[4 + n++] = 0x12, msg[4 + n++] = (uint8_t)hl;      /* Request.hello  */
    msg[4 + n++] = 0x08, msg[4 + n++] = 0x01;             /* Hello.version  */
    msg[4 + n++] = 0x12, msg[4 + n++] = (uint8_t)jl;      /* Hello.job_id   */
    memcpy(msg + 4 + n, job, jl);
    n += jl;
    msg[0] = (uint8_t)n, msg[1] = msg[2] = msg[3] = 0;
    TH_CHECK(raw_send(fd, msg, n + 4, -1) == 0, "send");
    st = raw_read_status(fd, 5000);
    /* protobuf-c would end the C string at the NUL (job "nul"): refused */
    TH_CHECK(st == SFP__IPC__V1__STATUS__E_INVALID, "Hello with a NUL in the job id: status %d", st);
    printf("  job \"nul\\x00/../x\" (raw Hello)                     -> E_INVALID\n");
    close(fd);
    /* 129 bytes, past the client library's own check */
    {
        char longid[130];
        memset(longid, 'j', 129), longid[129] = 0;
        fd = raw_connect(d.socket);
        st = raw_hello(fd, 1, longid, -1);
        TH_CHECK(st == SFP__IPC__V1__STATUS__E_INVALID, "raw Hello with a 129-byte job id: %d", st);
        printf("  job of 129 bytes (raw Hello, no client-side check)     -> E_INVALID\n");
        close(fd);
    }
}

static int tree_bad;

static bool is_hex_dir(const char *name)
{
    const char *p = name;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '_') {
        /* long ids: <uid>_<base64url>, at most NAME_MAX */
        if (!*++p || strlen(name) > 255)
            return false;
        for (; *p; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  *p == '-' || *p == '_'))
                return false;
        return true;
    }
    if (*p++ != '-' || !*p)
        return false;
    for (; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static int walk_cb(const char *path, const struct stat *sb, int type, struct FTW *f)
{
    const char *rel = path + strlen(d.dir);
    const char *base = path + f->base;
    bool ok;
    (void)sb;
    if (!*rel)
        return 0;
    rel++;
    if (f->level == 1)
        ok = strcmp(rel, "sfpd.sock") == 0 || strcmp(rel, "sfpd.sock.lock") == 0 ||
             strcmp(rel, "sfpd.log") == 0 || strcmp(rel, "spill") == 0;
    else if (f->level == 2)
        ok = strcmp(rel, "spill/.sfpd.lock") == 0 ||
             (strncmp(rel, "spill/", 6) == 0 && type == FTW_D && is_hex_dir(base));
    else if (f->level == 3) {
        unsigned id;
        char tail[8];
        ok = strncmp(rel, "spill/", 6) == 0 && type == FTW_F &&
             sscanf(base, "seg-%8x.sf%1s", &id, tail) == 2 && strcmp(tail, "s") == 0 && strlen(base) == 16;
    } else
        ok = false;
    if (!ok) {
        fprintf(stderr, "unexpected entry in the test tree: %s\n", rel);
        tree_bad++;
    }
    return 0;
}

static void check_tree(void)
{
    struct stat sb;
    tree_bad = 0;
    TH_CHECK(nftw(d.dir, walk_cb, 16, FTW_PHYS) == 0, "nftw");
    TH_CHECK(tree_bad == 0, "%d unexpected entries", tree_bad);
    TH_CHECK(stat(escape_tmp, &sb) < 0, "%s exists", escape_tmp);
}

int main(int argc, char **argv)
{
    const char *args[] = {"--dram-budget", "64K", "--prefetch-depth", "0", "--grace-period", "60", NULL};
    char abs_job[400], abs_tensor[400], long_job[200], too_long_job[200], long_tensor[300],
        too_long_tensor[300], dots_job[200];
    float *out;

    th_init(argc, argv, 55);
    sfp_params_default(&P);
    data = malloc(NV * 4);
    out = malloc(NV * 4);
    tc_fill(data, NV, &P, 11);
    th_prepare(&d);
    snprintf(escape_tmp, sizeof(escape_tmp), "/tmp/sfpd-paths-escape-%d", (int)getpid());
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");

    snprintf(abs_job, sizeof(abs_job), "%s/escaped-job", d.dir);
    snprintf(abs_tensor, sizeof(abs_tensor), "%s/escaped-tensor", d.dir);
    memset(long_job, 'j', 128), long_job[128] = 0;
    memset(too_long_job, 'j', 129), too_long_job[129] = 0;
    for (int i = 0; i < 42; i++)
        memcpy(dots_job + 3 * i, "../", 3);
    dots_job[126] = 'x', dots_job[127] = 'y', dots_job[128] = 0; /* 128 bytes */
    for (int i = 0; i < 255; i++)
        long_tensor[i] = (char)(i % 3 == 2 ? '/' : '.');
    long_tensor[255] = 0;
    memset(too_long_tensor, 't', 256), too_long_tensor[256] = 0;

    printf("path-like job ids and tensor names (DRAM budget 64K: every tensor goes to the spill dir):\n");
    {
        char esc[160];
        snprintf(esc, sizeof(esc), "../../../../../../..%s", escape_tmp);
        const char *jobs[] = {"../x", "..", ".", "a/b", "/", "x/../../y", "..\\..\\z", "~root",
                              "%2e%2e%2fx", "\xc0\xae\xc0\xae/x", "\xff\xfe\xfd", "tab\there\nnl", "-", "*",
                              "$(touch pwned)", esc, abs_job, escape_tmp, long_job, dots_job,
                              too_long_job};
        for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++)
            try_one(jobs[i], "t");
    }
    {
        const char *tensors[] = {"../t", "..", "a/b", "/etc/passwd", "\xff\xfe", "\xc0\xaf", "line\nbreak",
                                 abs_tensor, escape_tmp, long_tensor, too_long_tensor};
        for (size_t i = 0; i < sizeof(tensors) / sizeof(tensors[0]); i++)
            try_one("../names", tensors[i]);
    }
    nul_job();
    check_tree();
    printf("  tree after: only the socket, the log and <spill>/<uid>-<hex>/seg-*.sfs; nothing outside\n");

    /* a restart re-adopts every accepted (job, tensor) from the spill files
     * (one more Put pushes the last of them out of DRAM first) */
    {
        sfpc *c = tc_connect(&d, "filler", 0, NV * 4);
        sfpc_key k = {.rank = 0, .step = 0, .tensor = "filler"};
        TH_CHECK(sfpc_put(c, &k, data, NV, &P, 0, NULL) == 0, "filler put");
        sfpc_close(&c);
        usleep(200000);
    }
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not restart");
    for (int i = 0; i < n_ok; i++) {
        sfpc *c = tc_connect(&d, ok_list[i].job, 0, NV * 4);
        sfpc_key k = {.rank = 0, .step = 1, .tensor = ok_list[i].tensor};
        int e = sfpc_get(c, &k, out, NV * 4, SFPC_GET_DROP, NULL);
        char sj[128];
        show(sj, sizeof(sj), ok_list[i].job);
        TH_CHECK(e == 0 && memcmp(out, data, NV * 4) == 0, "after restart, job \"%s\": %s", sj, sfpc_strerror(e));
        sfpc_close(&c);
    }
    check_tree();
    printf("  restart: all %d accepted (job, tensor) pairs re-adopted from their spill files bit-exact\n", n_ok);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
    free(data);
    free(out);
    printf("ok\n");
    return 0;
}
