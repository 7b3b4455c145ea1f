/*
 * test_frames: the frame-level stash (PutFrame / GetFrame) against the real
 * sfpd. Frames encoded by the client come back byte-identical (synchronous
 * and pipelined asynchronous gets), also after a spill to the disk tier and
 * a prefetch back; frames interoperate with Put/Get (sfpd decodes a client
 * frame, hands out a frame it encoded). Hostile frames (bad checksum,
 * truncated, a header declaring 2^40 values, over max_tensor in bytes or in
 * what they decode to, garbage) are refused with E_CODEC / E_TOO_LARGE while
 * the daemon keeps serving and every frame stored before stays readable.
 * A corked connection (sfpc_cork) batches requests and keeps their order.
 */
#include "common.h"

#include <signal.h>
#include <unistd.h>

#define NT 16
#define NV (64 * 1024) /* values per tensor: 256 KiB of F32 */

static float *data[NT];
static uint8_t *frame[NT];
static size_t flen[NT];

static void name_of(char *buf, size_t n, int i) { snprintf(buf, n, "act%02d", i); }

static void make_frames(const sfp_params *p)
{
    size_t cap = sfp_frame_bound(NV, p);
    for (int i = 0; i < NT; i++) {
        data[i] = malloc(NV * sizeof(float));
        frame[i] = malloc(cap);
        tc_fill(data[i], NV, p, 500 + (uint64_t)i);
        TH_CHECK(sfp_encode(data[i], NV, p, frame[i], cap, &flen[i], NULL) == 0, "encode %d", i);
    }
}

/* Forward: async PutFrame of every tensor from the shm; backward: GetFrame
 * in reverse, the next one always in flight while the current is checked
 * (what sfp-train does). Frames byte-identical, decodes bit-exact. */
static void step_roundtrip(sfpc *c, uint64_t step)
{
    unsigned long long spills_before = tc_stat(c, "spills");
    size_t shm_size, pos = 0;
    uint8_t *shm = sfpc_shm(c, &shm_size);
    uint8_t *out = malloc(NV * sizeof(float));
    sfpc_put_info info[NT];
    sfpc_pending pend[2];
    char name[32];
    sfpc_key k = {.rank = 0, .step = step, .tensor = name};

    for (int i = 0; i < NT; i++) {
        int e;
        TH_CHECK(pos + flen[i] <= shm_size, "shm too small for the test");
        memcpy(shm + pos, frame[i], flen[i]);
        name_of(name, sizeof(name), i);
        e = sfpc_put_frame(c, &k, shm + pos, flen[i], SFPC_ASYNC, &info[i]);
        TH_CHECK(e == 0, "put_frame %d: %s", i, sfpc_strerror(e));
        pos += (flen[i] + 63) & ~(size_t)63;
    }
    TH_CHECK(sfpc_flush(c) == 0, "flush: %s", sfpc_last_message(c));
    /* A Put is admitted once spills that will make room are under way, so
     * the Gets below could all be served from DRAM before a slow pool
     * thread finished one write. Wait (bounded) for the step's spills: a
     * quarter of the frames fit the budget, so at least half must go. */
    {
        unsigned long long s = tc_wait_stat(c, "spills", spills_before + NT / 2, 20.0);
        TH_CHECK(s != ~0ull && s >= spills_before + NT / 2,
                 "step %llu: %llu of at least %d spills done within 20 s",
                 (unsigned long long)step, s - spills_before, NT / 2);
    }
    for (int i = 0; i < NT; i++)
        TH_CHECK(info[i].stored_bytes == flen[i], "stored %llu, frame %zu",
                 (unsigned long long)info[i].stored_bytes, flen[i]);
    TH_CHECK(sfpc_prefetch(c, 0) == 0, "prefetch");
    /* two slots at the start of the shm, alternating */
    size_t cap = 2 * (size_t)NV * sizeof(float);
    name_of(name, sizeof(name), NT - 1);
    TH_CHECK(sfpc_get_frame_async(c, &k, shm, cap, SFPC_GET_DROP, &pend[(NT - 1) % 2]) == 0, "async get");
    for (int i = NT - 1; i >= 0; i--) {
        sfpc_pending *p = &pend[i % 2];
        uint8_t *dst = shm + (size_t)(i % 2 == (NT - 1) % 2 ? 0 : cap);
        size_t n = 0;
        if (i > 0) {
            name_of(name, sizeof(name), i - 1);
            uint8_t *ndst = shm + (size_t)((i - 1) % 2 == (NT - 1) % 2 ? 0 : cap);
            TH_CHECK(sfpc_get_frame_async(c, &k, ndst, cap, SFPC_GET_DROP, &pend[(i - 1) % 2]) == 0,
                     "async get %d", i - 1);
        }
        int e = sfpc_wait(c, p);
        TH_CHECK(e == 0, "get_frame %d: %s (%s)", i, sfpc_strerror(e), sfpc_last_message(c));
        TH_CHECK(p->info.bytes == flen[i] && p->info.count == NV && p->info.dtype == SFP_DTYPE_F32,
                 "frame %d: %llu bytes %llu values", i, (unsigned long long)p->info.bytes,
                 (unsigned long long)p->info.count);
        TH_CHECK(memcmp(dst, frame[i], flen[i]) == 0, "frame %d not byte-identical", i);
        TH_CHECK(sfp_decode(dst, flen[i], out, NV * sizeof(float), &n) == 0 && n == NV, "decode %d", i);
        TH_CHECK(memcmp(out, data[i], NV * sizeof(float)) == 0, "tensor %d not bit-exact", i);
    }
    /* dropped by the gets */
    name_of(name, sizeof(name), 3);
    TH_CHECK(sfpc_get_frame(c, &k, shm, cap, 0, NULL) == SFPC_ENOTFOUND, "dropped key still there");
    free(out);
}

static void roundtrip_and_spill(const sfp_params *p)
{
    th_daemon d;
    size_t total = 0;
    char budget[32];
    for (int i = 0; i < NT; i++)
        total += flen[i];
    /* a quarter of the frames fit DRAM: the rest spills to disk */
    snprintf(budget, sizeof(budget), "%zu", total / 4);
    const char *args[] = {"--dram-budget", budget, "--prefetch-depth", "4", NULL};
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    sfpc *c = tc_connect(&d, "frames", 0, 2 * total + 4 * (size_t)NV * sizeof(float));
    for (uint64_t step = 0; step < 3; step++)
        step_roundtrip(c, step);
    unsigned long long spills = tc_stat(c, "spills"), fp = tc_stat(c, "frames_put");
    unsigned long long reads = tc_stat(c, "disk_reads");
    unsigned long long ops = tc_stat(c, "io_ops"), batches = tc_stat(c, "io_batches");
    printf("frames: %d x %zu KiB frames per step, 3 steps, DRAM budget %s: spills %llu, "
           "disk reads %llu, frames_put %llu; tier I/O %llu ops in %llu pool jobs\n",
           NT, flen[0] / 1024, budget, spills, reads, fp, ops, batches);
    TH_CHECK(spills > 0 && spills != ~0ull, "nothing spilled (%llu)", spills);
    TH_CHECK(reads > 0 && reads != ~0ull, "nothing read back from disk (%llu)", reads);
    TH_CHECK(fp == 3 * NT, "frames_put %llu", fp);
    /* each spill is a tier op; dead-record marks of one loop turn share a job */
    TH_CHECK(ops != ~0ull && ops >= spills && batches > 0 && batches <= ops,
             "io_ops %llu, io_batches %llu, spills %llu", ops, batches, spills);

    /* interoperates with Put/Get: sfpd decodes a client frame and hands
     * out the frame of its own encode, byte-identical to libsfp's */
    {
        size_t shm_size;
        uint8_t *shm = sfpc_shm(c, &shm_size);
        float *out = malloc(NV * sizeof(float));
        char name[] = "mixed";
        sfpc_key k = {.rank = 0, .step = 99, .tensor = name};
        sfpc_get_info gi;
        TH_CHECK(sfpc_put_frame(c, &k, frame[1], flen[1], 0, NULL) == 0, "put_frame (copied)");
        TH_CHECK(sfpc_get(c, &k, out, NV * sizeof(float), SFPC_GET_DROP, &gi) == 0, "get of a frame");
        TH_CHECK(memcmp(out, data[1], NV * sizeof(float)) == 0, "Get of a PutFrame not bit-exact");
        TH_CHECK(sfpc_put(c, &k, data[2], NV, p, 0, NULL) == 0, "put");
        TH_CHECK(sfpc_get_frame(c, &k, shm, 4, 0, &gi) == SFPC_ERANGE, "small capacity");
        TH_CHECK(sfpc_get_frame(c, &k, shm, shm_size, SFPC_GET_DROP, &gi) == 0, "get_frame of a Put");
        TH_CHECK(gi.bytes == flen[2] && memcmp(shm, frame[2], flen[2]) == 0,
                 "frame of sfpd's encode differs from libsfp's");
        free(out);
    }
    {
        /* a frame over 1 MiB: verified on sfpd's pool (smaller ones on its
         * loop thread), over the DRAM budget: straight to disk and back */
        size_t n = 400 * 1024, cap, bl = 0;
        sfp_params lossless;
        sfp_params_default(&lossless);
        float *big = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            big[i] = (float)(i * 2654435761u % 1000003u) * 1.37e-3f;
        cap = sfp_frame_bound(n, &lossless);
        uint8_t *bf = malloc(cap), *back = malloc(cap);
        char name[] = "big";
        sfpc_key k = {.rank = 0, .step = 100, .tensor = name};
        sfpc_get_info gi;
        TH_CHECK(sfp_encode(big, n, &lossless, bf, cap, &bl, NULL) == 0 && bl > (1u << 20), "encode big");
        TH_CHECK(sfpc_put_frame(c, &k, bf, bl, 0, NULL) == 0, "put_frame of %zu bytes: %s", bl,
                 sfpc_last_message(c));
        TH_CHECK(sfpc_get_frame(c, &k, back, cap, SFPC_GET_DROP, &gi) == 0, "get_frame big");
        TH_CHECK(gi.bytes == bl && memcmp(back, bf, bl) == 0, "big frame not byte-identical");
        free(big);
        free(bf);
        free(back);
    }
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

/*
 * sfpc_cork: corked requests stay in the client (sfpd counts none of them,
 * seen from a second connection) until a call waits for a reply or the
 * connection is uncorked; then they arrive in order, in one batch, and
 * every reply lands where its request asked. A batch over the client's
 * cork buffer goes out by itself. A request after an error in the batch
 * still gets its own reply.
 */
static void corked(void)
{
    th_daemon d;
    size_t shm_size, pos = 0, total = 0;
    th_prepare(&d);
    TH_CHECK(th_start(&d, NULL) == 0, "sfpd did not start");
    for (int i = 0; i < NT; i++)
        total += (flen[i] + 63) & ~(size_t)63;
    sfpc *c = tc_connect(&d, "cork", 0, total + (1u << 20));
    sfpc *watch = tc_connect(&d, "cork-watch", 0, 1u << 20);
    uint8_t *shm = sfpc_shm(c, &shm_size);
    sfpc_put_info info[NT];
    sfpc_pending pend[NT];
    size_t at[NT];
    char name[32];
    sfpc_key k = {.rank = 0, .step = 1, .tensor = name};
    unsigned long long fp0 = tc_stat(watch, "frames_put");

    TH_CHECK(sfpc_cork(c, 1) == 0, "cork");
    for (int i = 0; i < NT; i++) {
        memcpy(shm + pos, frame[i], flen[i]);
        at[i] = pos;
        name_of(name, sizeof(name), i);
        TH_CHECK(sfpc_put_frame(c, &k, shm + pos, flen[i], SFPC_ASYNC, &info[i]) == 0, "corked put %d", i);
        pos += (flen[i] + 63) & ~(size_t)63;
    }
    TH_CHECK(sfpc_prefetch_flags(c, 0, SFPC_ASYNC) == 0, "corked prefetch");
    /* every get writes where its frame was put: sfpd serves the connection
     * in order, so each put is read before a get overwrites it */
    for (int i = NT - 1; i >= 0; i--) {
        name_of(name, sizeof(name), i);
        TH_CHECK(sfpc_get_frame_async(c, &k, shm + at[i], flen[i], SFPC_GET_DROP, &pend[i]) == 0,
                 "corked get %d", i);
    }
    usleep(100 * 1000);
    TH_CHECK(tc_stat(watch, "frames_put") == fp0, "corked puts reached sfpd");
    TH_CHECK(sfpc_cork(c, 0) == 0, "uncork");
    for (int i = NT - 1; i >= 0; i--) {
        size_t n = 0;
        float *out = malloc(NV * sizeof(float));
        TH_CHECK(sfpc_wait(c, &pend[i]) == 0, "get %d: %s", i, sfpc_last_message(c));
        TH_CHECK(pend[i].info.bytes == flen[i] && memcmp(shm + at[i], frame[i], flen[i]) == 0,
                 "frame %d not byte-identical", i);
        TH_CHECK(sfp_decode(shm + at[i], flen[i], out, NV * sizeof(float), &n) == 0 && n == NV &&
                     memcmp(out, data[i], NV * sizeof(float)) == 0, "tensor %d not bit-exact", i);
        free(out);
    }
    TH_CHECK(sfpc_flush(c) == 0, "flush: %s", sfpc_last_message(c));
    for (int i = 0; i < NT; i++)
        TH_CHECK(info[i].stored_bytes == flen[i], "put %d: stored %llu", i,
                 (unsigned long long)info[i].stored_bytes);
    TH_CHECK(tc_stat(watch, "frames_put") == fp0 + NT, "frames_put");

    /* a synchronous call while corked sends the batch first */
    TH_CHECK(sfpc_cork(c, 1) == 0, "cork");
    k.step = 2;
    name_of(name, sizeof(name), 0);
    TH_CHECK(sfpc_put_frame(c, &k, shm, flen[0], SFPC_ASYNC, &info[0]) == 0, "corked put");
    TH_CHECK(sfpc_get_frame(c, &k, shm + total, shm_size - total, 0, NULL) == 0,
             "synchronous get after a corked put: %s", sfpc_last_message(c));
    TH_CHECK(info[0].stored_bytes == flen[0], "the corked put was not acknowledged first");
    /* an error inside a batch: its reply, and the next request's */
    name_of(name, sizeof(name), 9);
    TH_CHECK(sfpc_get_frame_async(c, &k, shm + total, shm_size - total, 0, &pend[0]) == 0, "get");
    name_of(name, sizeof(name), 0);
    TH_CHECK(sfpc_get_frame_async(c, &k, shm + total, shm_size - total, SFPC_GET_DROP, &pend[1]) == 0,
             "get");
    TH_CHECK(sfpc_wait(c, &pend[0]) == SFPC_ENOTFOUND, "missing key in a batch");
    TH_CHECK(sfpc_wait(c, &pend[1]) == 0 && pend[1].info.bytes == flen[0], "get after the error");

    /* more than the cork buffer: part of the batch leaves by itself */
    {
        unsigned long long before = tc_stat(watch, "frames_put");
        int n = 3000, seen = 0;
        k.step = 3;
        for (int i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "many%04d", i);
            TH_CHECK(sfpc_put_frame(c, &k, shm, flen[0], SFPC_ASYNC, NULL) == 0, "put %d", i);
        }
        seen = tc_wait_stat(watch, "frames_put", before + 1, 2.0) > before;
        TH_CHECK(seen, "no part of a %d-request batch left the client", n);
        TH_CHECK(tc_stat(watch, "frames_put") < before + (unsigned long long)n,
                 "the whole batch left while corked");
        TH_CHECK(sfpc_cork(c, 0) == 0 && sfpc_flush(c) == 0, "flush: %s", sfpc_last_message(c));
        TH_CHECK(tc_stat(watch, "frames_put") == before + (unsigned long long)n, "frames_put");
    }
    printf("cork: %d puts + prefetch + %d gets in one batch, byte-identical; sync call, "
           "error and overflow of a corked batch handled\n", NT, NT);
    sfpc_close(&watch);
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

static void put_bad(sfpc *c, const char *what, const void *f, size_t len, int want)
{
    char name[] = "bad";
    sfpc_key k = {.rank = 0, .step = 7, .tensor = name};
    int e = sfpc_put_frame(c, &k, f, len, 0, NULL);
    TH_CHECK(e == want, "%s: got %s (%s), want %s", what, sfpc_strerror_name(e),
             sfpc_last_message(c), sfpc_strerror_name(want));
    printf("refused %-28s -> %s (%s): \"%s\"\n", what, sfpc_strerror_name(e), sfpc_status_name(e),
           sfpc_last_message(c));
}

static void hostile(const sfp_params *p)
{
    th_daemon d;
    const char *args[] = {"--max-tensor", "1M", NULL};
    size_t shm_size;
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    sfpc *c = tc_connect(&d, "hostile", 0, 16u << 20);
    uint8_t *shm = sfpc_shm(c, &shm_size);
    char name[32];
    sfpc_key k = {.rank = 0, .step = 1, .tensor = name};

    /* good frames first: they must survive everything below */
    for (int i = 0; i < 4; i++) {
        name_of(name, sizeof(name), i);
        TH_CHECK(sfpc_put_frame(c, &k, frame[i], flen[i], 0, NULL) == 0, "put_frame %d", i);
    }
    uint8_t *bad = malloc(flen[0]);
    memcpy(bad, frame[0], flen[0]);
    bad[flen[0] / 2] ^= 0x40;
    put_bad(c, "payload byte flipped", bad, flen[0], SFPC_ECODEC);
    memcpy(bad, frame[0], flen[0]);
    bad[0] ^= 1;
    put_bad(c, "bad magic", bad, flen[0], SFPC_ECODEC);
    memcpy(bad, frame[0], flen[0]);
    put_bad(c, "truncated by 9 bytes", bad, flen[0] - 9, SFPC_ECODEC);
    put_bad(c, "shorter than a header", bad, 20, SFPC_ECODEC);
    {
        uint64_t huge = UINT64_C(1) << 40;
        memcpy(bad + 16, &huge, 8); /* count field (docs/FORMAT.md) */
        put_bad(c, "header declares 2^40 values", bad, flen[0], SFPC_ECODEC);
    }
    memset(bad, 0xa5, flen[0]);
    put_bad(c, "garbage", bad, flen[0], SFPC_ECODEC);
    {
        /* over max_tensor (1 MiB): in bytes, and in what it decodes to */
        size_t n = 400 * 1024, cap;
        sfp_params lossless;
        sfp_params_default(&lossless);
        float *big = calloc(n, sizeof(float));
        for (size_t i = 0; i < n; i++)
            big[i] = (float)(i * 2654435761u % 1000003u) * 1.37e-3f;
        cap = sfp_frame_bound(n, &lossless);
        uint8_t *bf = malloc(cap);
        size_t bl = 0;
        TH_CHECK(sfp_encode(big, n, &lossless, bf, cap, &bl, NULL) == 0, "encode big");
        TH_CHECK(bl > (1u << 20), "big frame only %zu bytes", bl);
        put_bad(c, "frame over max_tensor", bf, bl, SFPC_ETOOLARGE);
        memset(big, 0, n * sizeof(float));
        TH_CHECK(sfp_encode(big, n, p, bf, cap, &bl, NULL) == 0, "encode zeros");
        TH_CHECK(bl < (64u << 10), "zero frame %zu bytes", bl);
        put_bad(c, "decodes over max_tensor", bf, bl, SFPC_ETOOLARGE);
        free(bf);
        free(big);
    }
    free(bad);
    unsigned long long refused = tc_stat(c, "frames_refused");
    TH_CHECK(refused == 6, "frames_refused %llu", refused);
    /* the daemon serves on, nothing stored was lost */
    for (int i = 0; i < 4; i++) {
        sfpc_get_info gi;
        name_of(name, sizeof(name), i);
        TH_CHECK(sfpc_get_frame(c, &k, shm, shm_size, SFPC_GET_DROP, &gi) == 0, "get_frame %d", i);
        TH_CHECK(gi.bytes == flen[i] && memcmp(shm, frame[i], flen[i]) == 0, "frame %d changed", i);
    }
    name_of(name, sizeof(name), 5);
    TH_CHECK(sfpc_put_frame(c, &k, frame[5], flen[5], 0, NULL) == 0, "put_frame after the bad ones");
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

int main(int argc, char **argv)
{
    sfp_params p;
    th_init(argc, argv, 50);
    sfp_params_default(&p);
    p.mbits = 7;
    p.ebits = 5;
    p.coder = SFP_CODER_GECKO;
    make_frames(&p);
    roundtrip_and_spill(&p);
    corked();
    hostile(&p);
    printf("ok\n");
    return 0;
}
