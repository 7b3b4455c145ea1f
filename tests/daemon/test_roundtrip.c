/*
 * test_roundtrip: put/get bit-exact for every dtype and several widths and
 * coders; unknown key -> not found; job isolation; drop; EndJob; daemon-side
 * Encode/Decode produce the same frames as libsfp in-process; client calls
 * are bounded in time against a silent and a dead daemon.
 */
#include "common.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void roundtrip(sfpc *c)
{
    static const sfp_dtype dtypes[] = {SFP_DTYPE_F32, SFP_DTYPE_BF16};
    static const unsigned mb_f32[] = {0, 3, 7, 10, 23};
    static const unsigned mb_bf16[] = {0, 2, 4, 7};
    static const unsigned eb[] = {2, 5, 8};
    static const size_t counts[] = {1, 17, 4096, 100003};
    size_t shm_size;
    uint8_t *shm = sfpc_shm(c, &shm_size);
    size_t max_bytes = 100003 * 4;
    uint8_t *in = malloc(max_bytes), *out = malloc(max_bytes);
    unsigned cases = 0;

    for (size_t di = 0; di < 2; di++) {
        const unsigned *mb = dtypes[di] == SFP_DTYPE_F32 ? mb_f32 : mb_bf16;
        size_t nmb = dtypes[di] == SFP_DTYPE_F32 ? 5 : 4;
        for (size_t mi = 0; mi < nmb; mi++)
            for (size_t ei = 0; ei < 3; ei++)
                for (int coder = 0; coder < 3; coder++)
                    for (size_t ci = 0; ci < 4; ci++) {
                        sfp_params p;
                        sfpc_key k = {.rank = 0, .step = cases, .tensor = "act"};
                        sfpc_get_info gi;
                        sfpc_put_info pi;
                        size_t n = counts[ci], bytes;
                        int e;
                        bool via_shm = (cases & 1) != 0;

                        sfp_params_default(&p);
                        p.dtype = dtypes[di];
                        p.mbits = mb[mi];
                        p.ebits = eb[ei];
                        p.coder = coder == 2 ? SFP_CODER_AUTO
                                : coder ? SFP_CODER_GECKO : SFP_CODER_PLAIN;
                        bytes = n * sfp_dtype_size(p.dtype);
                        tc_fill(in, n, &p, 1000 + cases);
                        if (via_shm) {
                            /* zero-copy path: data placed in the shm */
                            memcpy(shm + 4096, in, bytes);
                            e = sfpc_put(c, &k, shm + 4096, n, &p, 0, &pi);
                        } else {
                            e = sfpc_put(c, &k, in, n, &p, 0, &pi);
                        }
                        TH_CHECK(e == 0, "put dtype %d k %u e %u coder %d n %zu: %s (%s)", p.dtype,
                                 p.mbits, p.ebits, coder, n, sfpc_strerror(e), sfpc_last_message(c));
                        memset(out, 0xA5, bytes);
                        if (via_shm) {
                            memset(shm + 8 * 1024 * 1024, 0x5A, bytes);
                            e = sfpc_get(c, &k, shm + 8 * 1024 * 1024, bytes, 0, &gi);
                            memcpy(out, shm + 8 * 1024 * 1024, bytes);
                        } else {
                            e = sfpc_get(c, &k, out, bytes, 0, &gi);
                        }
                        TH_CHECK(e == 0, "get: %s", sfpc_strerror(e));
                        TH_CHECK(gi.count == n && gi.bytes == bytes && gi.dtype == p.dtype,
                                 "get info count %llu bytes %llu dtype %d", (unsigned long long)gi.count,
                                 (unsigned long long)gi.bytes, gi.dtype);
                        TH_CHECK(memcmp(in, out, bytes) == 0,
                                 "not bit-exact: dtype %d k %u e %u coder %d n %zu", p.dtype, p.mbits,
                                 p.ebits, coder, n);
                        /* daemon-side Encode gives the same frame as libsfp here */
                        if (n == 4096) {
                            size_t cap = sfp_frame_bound(n, &p), fl = 0, ll = 0, cnt = 0;
                            uint8_t *f1 = malloc(cap), *f2 = malloc(cap);
                            TH_CHECK(sfp_encode(in, n, &p, f1, cap, &ll, NULL) == 0, "local encode");
                            e = sfpc_encode(c, in, n, &p, f2, cap, &fl);
                            TH_CHECK(e == 0, "sfpc_encode: %s", sfpc_strerror(e));
                            TH_CHECK(fl == ll && memcmp(f1, f2, fl) == 0, "daemon frame differs");
                            e = sfpc_decode(c, f2, fl, out, bytes, &cnt);
                            TH_CHECK(e == 0 && cnt == n && memcmp(in, out, bytes) == 0,
                                     "sfpc_decode: %s", sfpc_strerror(e));
                            free(f1);
                            free(f2);
                        }
                        TH_CHECK(sfpc_drop(c, &k) == 0, "drop");
                        cases++;
                    }
    }
    printf("round trip: %u cases bit-exact (F32 and BF16, widths, plain, Gecko and auto)\n", cases);
    free(in);
    free(out);
}

static void isolation(const th_daemon *d)
{
    sfpc *a = tc_connect(d, "job-A", 0, 1 << 20), *b = tc_connect(d, "job-B", 0, 1 << 20);
    sfpc *a2 = tc_connect(d, "job-A", 1, 1 << 20);
    sfp_params p;
    float v[256], w[256];
    sfpc_key k = {.rank = 0, .step = 1, .tensor = "secret"};
    sfpc_key none = {.rank = 0, .step = 1, .tensor = "never-put"};
    int e;

    sfp_params_default(&p);
    tc_fill(v, 256, &p, 7);
    TH_CHECK(sfpc_put(a, &k, v, 256, &p, 0, NULL) == 0, "put A");
    {
        sfpc_stats s;
        TH_CHECK(sfpc_stats_get(a, &s) == 0, "stats");
        TH_CHECK(s.text && strstr(s.text, "tensor{job=\"job-A\",rank=\"0\",step=\"1\",tensor=\"secret\"}"),
                 "per-tensor listing missing:\n%s", s.text ? s.text : "");
        TH_CHECK(s.job_frames == 1 && s.job_bytes_in == sizeof(v), "job stats");
        sfpc_stats_free(&s);
    }
    e = sfpc_get(a, &none, w, sizeof(w), 0, NULL);
    TH_CHECK(e == SFPC_ENOTFOUND, "unknown key: %s", sfpc_strerror(e));
    e = sfpc_get(b, &k, w, sizeof(w), 0, NULL);
    TH_CHECK(e == SFPC_ENOTFOUND, "job B read job A's key: %s", sfpc_strerror(e));
    e = sfpc_drop(b, &k);
    TH_CHECK(e == SFPC_ENOTFOUND, "job B dropped job A's key: %s", sfpc_strerror(e));
    /* another connection of the same job sees it */
    e = sfpc_get(a2, &k, w, sizeof(w), 0, NULL);
    TH_CHECK(e == 0 && memcmp(v, w, sizeof(v)) == 0, "same job, other rank: %s", sfpc_strerror(e));
    /* too small a destination is refused, not overflowed */
    e = sfpc_get(a, &k, w, 100, 0, NULL);
    TH_CHECK(e == SFPC_ERANGE, "short capacity: %s", sfpc_strerror(e));
    /* Get+drop, then it is gone */
    TH_CHECK(sfpc_get(a, &k, w, sizeof(w), SFPC_GET_DROP, NULL) == 0, "get+drop");
    e = sfpc_get(a, &k, w, sizeof(w), 0, NULL);
    TH_CHECK(e == SFPC_ENOTFOUND, "after drop: %s", sfpc_strerror(e));
    /* EndJob frees everything of the job */
    TH_CHECK(sfpc_put(a, &k, v, 256, &p, 0, NULL) == 0, "put again");
    TH_CHECK(sfpc_end_job(a2) == 0, "end job");
    e = sfpc_get(a, &k, w, sizeof(w), 0, NULL);
    TH_CHECK(e == SFPC_ENOTFOUND, "after EndJob: %s", sfpc_strerror(e));
    /* async puts, then flush */
    {
        size_t sz;
        uint8_t *shm = sfpc_shm(a, &sz);
        for (int i = 0; i < 32; i++) {
            sfpc_key ki = {.rank = 0, .step = 100, .tensor = "async"};
            char name[32];
            snprintf(name, sizeof(name), "async-%d", i);
            ki.tensor = name;
            memcpy(shm + (size_t)i * 1024, v, 1024);
            TH_CHECK(sfpc_put(a, &ki, shm + (size_t)i * 1024, 256, &p, SFPC_ASYNC, NULL) == 0, "async put");
        }
        TH_CHECK(sfpc_flush(a) == 0, "flush");
        /* an async put that fails (NaN: the codec refuses) surfaces at flush */
        {
            sfpc_key kn = {.rank = 0, .step = 101, .tensor = "nan"};
            float *slot = (float *)(shm + 64 * 1024);
            int fe;
            memcpy(slot, v, 1024);
            slot[7] = __builtin_nanf("");
            TH_CHECK(sfpc_put(a, &kn, slot, 256, &p, SFPC_ASYNC, NULL) == 0, "async nan put sent");
            fe = sfpc_flush(a);
            TH_CHECK(fe == SFPC_ECODEC, "async error at flush: %s", sfpc_strerror(fe));
            TH_CHECK(sfpc_get(a, &kn, w, sizeof(w), 0, NULL) == SFPC_ENOTFOUND, "failed put stored");
        }
        for (int i = 0; i < 32; i++) {
            char name[32];
            sfpc_key ki = {.rank = 0, .step = 100, .tensor = name};
            snprintf(name, sizeof(name), "async-%d", i);
            TH_CHECK(sfpc_get(a, &ki, w, sizeof(w), SFPC_GET_DROP, NULL) == 0 &&
                         memcmp(v, w, sizeof(v)) == 0, "async %d", i);
        }
    }
    printf("isolation: other job gets not-found; same job shares keys; drop/EndJob free\n");
    sfpc_close(&a);
    sfpc_close(&a2);
    sfpc_close(&b);
}

static void bounded_calls(th_daemon *d)
{
    /* a socket that accepts (backlog) but never answers */
    char path[400];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    sfpc_options o;
    sfpc *c = NULL;
    double t0;
    int e;

    snprintf(path, sizeof(path), "%s/silent.sock", d->dir);
    TH_CHECK(strlen(path) < sizeof(addr.sun_path), "path too long");
    memcpy(addr.sun_path, path, strlen(path) + 1);
    TH_CHECK(bind(ls, (struct sockaddr *)&addr, sizeof(addr)) == 0 && listen(ls, 4) == 0, "silent socket");
    sfpc_options_default(&o);
    o.socket_path = path;
    o.job_id = "j";
    o.timeout_ms = 300;
    o.shm_size = 1 << 16;
    t0 = th_now();
    e = sfpc_connect(&o, &c);
    TH_CHECK(e == SFPC_ETIMEDOUT, "silent daemon: %s", sfpc_strerror(e));
    TH_CHECK(th_now() - t0 < 2.0, "timeout took %.2f s", th_now() - t0);
    close(ls);
    /* nobody listening at all */
    o.socket_path = "/nonexistent/sfpd.sock";
    e = sfpc_connect(&o, &c);
    TH_CHECK(e == SFPC_ECONNECT, "no daemon: %s", sfpc_strerror(e));

    /* a daemon killed mid-session: the next call fails at once */
    {
        sfp_params p;
        float v[64] = {0};
        sfpc_key k = {.rank = 0, .step = 0, .tensor = "x"};
        sfpc *live = tc_connect(d, "dying", 0, 1 << 16);
        sfp_params_default(&p);
        TH_CHECK(sfpc_put(live, &k, v, 64, &p, 0, NULL) == 0, "put");
        th_stop(d, SIGKILL, 10);
        t0 = th_now();
        e = sfpc_get(live, &k, v, sizeof(v), 0, NULL);
        TH_CHECK(e == SFPC_EDISCONNECTED, "dead daemon: %s", sfpc_strerror(e));
        TH_CHECK(th_now() - t0 < 2.0, "dead daemon took %.2f s", th_now() - t0);
        sfpc_close(&live);
    }
    printf("bounded: silent daemon -> timeout in %.2f s; dead daemon -> disconnected at once\n", 0.3);
}

int main(int argc, char **argv)
{
    th_daemon d;
    sfpc *c;
    const char *args[] = {"--dram-budget", "256M", NULL};

    th_init(argc, argv, 100);
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    c = tc_connect(&d, "roundtrip", 0, 16 << 20);
    roundtrip(c);
    sfpc_close(&c);
    isolation(&d);
    bounded_calls(&d);
    th_cleanup(&d);
    printf("ok\n");
    return 0;
}
