/*
 * fuzz_peer: the serving side of sfp.v1.Peer (daemon/edges/grpc/grpc_peer.c
 * over daemon/core/held.c) fed with untrusted request bytes, in-process,
 * through the server's own path (sfpd_grpc_serve_unary: decode, check,
 * handler). The token check is in front of it and is tested by test_peer;
 * this covers what an authenticated peer can send.
 *
 * LLVMFuzzerTestOneInput: byte 0 picks the method, the rest is the request
 * message. main() (no libFuzzer) runs every file named on the command line,
 * then a deterministic campaign: well-formed requests (valid frames, ids,
 * nodes, instances) and mutations of them (bit flips, truncation, random
 * tails, corrupt frames), checking after each that the per-node limit and
 * the total budget hold and that every frame returned by GetFrame passes
 * sfp_frame_verify.
 */
#include "edges/grpc/grpc_server.h"
#include "base/sfpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <sfp/sfp.h>

#include "sfp/v1/sfp.pb-c.h"

#define LIMIT (256u * 1024)
#define BUDGET (600u * 1024)

static sfpd_held *held;
static sfpd_grpc_ctx ctx;

static void fail(const char *what)
{
    fprintf(stderr, "FAIL: %s\n", what);
    abort();
}

static void setup(void)
{
    sfpd_config cfg;
    if (held)
        return;
    grpc_init();
    sfpd_log_set_level(SFPD_LOG_ERROR);
    memset(&cfg, 0, sizeof(cfg));
    cfg.peering = 1;
    cfg.peer_serve_max_bytes = LIMIT;
    cfg.peer_serve_budget = BUDGET;
    if (sfpd_held_create(&cfg, &held) < 0 || !held)
        fail("sfpd_held_create");
    ctx.held = held;
}

/* Runs one request (method index 0..3 of the Peer rows); checks the
 * invariants of its reply. */
static void run(int method, const uint8_t *d, size_t n)
{
    static const sfpd_grpc_method peer_rows[4] = {SFPD_M_PUT_FRAME, SFPD_M_GET_FRAME,
                                                  SFPD_M_DROP_FRAME, SFPD_M_CAPACITY};
    grpc_byte_buffer *resp = NULL;
    grpc_status_code code;
    const char *msg;
    sfpd_snapshot snap;
    uint64_t total = 0;

    code = sfpd_grpc_serve_unary(&ctx, peer_rows[method], d, n, &resp, &msg);
    if ((code == GRPC_STATUS_OK) != (resp != NULL))
        fail("status and reply disagree");
    if (resp && method == 1) {
        grpc_byte_buffer_reader r;
        grpc_slice rs;
        Sfp__V1__GetFrameResponse *g;
        if (!grpc_byte_buffer_reader_init(&r, resp))
            fail("reader");
        rs = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        g = sfp__v1__get_frame_response__unpack(NULL, GRPC_SLICE_LENGTH(rs), GRPC_SLICE_START_PTR(rs));
        grpc_slice_unref(rs);
        if (!g || sfp_frame_verify(g->frame.data, g->frame.len, NULL) != 0)
            fail("GetFrame returned a frame that does not verify");
        sfp__v1__get_frame_response__free_unpacked(g, NULL);
    }
    if (resp)
        grpc_byte_buffer_destroy(resp);
    memset(&snap, 0, sizeof(snap));
    if (sfpd_held_fill_snapshot(held, &snap) < 0)
        fail("snapshot");
    for (size_t i = 0; i < snap.n_peer_clients; i++) {
        if (snap.peer_clients[i].held_bytes > LIMIT)
            fail("a node holds more than peer_serve_max_bytes");
        total += snap.peer_clients[i].held_bytes;
    }
    if (total != snap.held.bytes || snap.held.bytes > BUDGET)
        fail("the nodes' bytes disagree with the total, or the total passed peer_serve_budget");
    sfpd_free(snap.peer_clients);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1)
        return 0;
    run(data[0] % 4, data + 1, size - 1);
    return 0;
}

#ifndef FUZZ_PEER_LIBFUZZER
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    static uint8_t buf[1 << 20];
    size_t n;
    if (!f)
        fail(path);
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
}

int main(int argc, char **argv)
{
    static const char *nodes[] = {"a", "node-b", "", "c"};
    uint64_t st = 12345;
    unsigned iters = argc > 1 && strncmp(argv[1], "--iters=", 8) == 0 ? (unsigned)atoi(argv[1] + 8) : 3000;
    float vals[2048];
    uint8_t frame[16384];
    size_t flen = 0;
    sfp_params p;

    setup();
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--", 2) != 0)
            run_file(argv[i]);
    sfp_params_default(&p);
    for (size_t i = 0; i < 2048; i++)
        vals[i] = (float)((double)(rnd(&st) % 20000) / 1000.0 - 10.0);
    if (sfp_encode(vals, 2048, &p, frame, sizeof(frame), &flen, NULL) != 0)
        fail("encode");
    for (unsigned it = 0; it < iters; it++) {
        int m = (int)(rnd(&st) % 4);
        uint8_t buf[20000], fr[16384];
        size_t n = 0;
        const char *node = nodes[rnd(&st) % 4];
        uint64_t inst = rnd(&st) % 16 == 0 ? rnd(&st) % 3 : 0, id = rnd(&st) % 40;
        switch (m) {
        case 0: {
            Sfp__V1__PutFrameRequest q = SFP__V1__PUT_FRAME_REQUEST__INIT;
            memcpy(fr, frame, flen);
            if (rnd(&st) % 4 == 0)
                fr[rnd(&st) % flen] ^= (uint8_t)(1u << (rnd(&st) % 8)); /* corrupt frame */
            q.node = (char *)node;
            q.instance = inst;
            q.frame_id = id;
            q.frame.data = fr;
            q.frame.len = rnd(&st) % 8 == 0 ? rnd(&st) % flen : flen;
            n = sfp__v1__put_frame_request__pack(&q, buf);
            break;
        }
        case 1: {
            Sfp__V1__GetFrameRequest q = SFP__V1__GET_FRAME_REQUEST__INIT;
            q.node = (char *)node;
            q.instance = inst;
            q.frame_id = id;
            n = sfp__v1__get_frame_request__pack(&q, buf);
            break;
        }
        case 2: {
            Sfp__V1__DropFrameRequest q = SFP__V1__DROP_FRAME_REQUEST__INIT;
            uint64_t more[3] = {rnd(&st) % 40, rnd(&st) % 40, rnd(&st) % 40};
            q.node = (char *)node;
            q.instance = inst;
            q.frame_id = id;
            q.all = rnd(&st) % 16 == 0;
            q.n_more_frame_ids = rnd(&st) % 4;
            q.more_frame_ids = more;
            n = sfp__v1__drop_frame_request__pack(&q, buf);
            break;
        }
        default: {
            Sfp__V1__CapacityRequest q = SFP__V1__CAPACITY_REQUEST__INIT;
            q.node = (char *)node;
            q.instance = inst;
            n = sfp__v1__capacity_request__pack(&q, buf);
            break;
        }
        }
        switch (rnd(&st) % 6) { /* mutate the message itself now and then */
        case 0:
            if (n)
                buf[rnd(&st) % n] ^= (uint8_t)(1u << (rnd(&st) % 8));
            break;
        case 1:
            n = n ? rnd(&st) % n : 0;
            break;
        case 2:
            for (unsigned k = 0, extra = (unsigned)(rnd(&st) % 64); k < extra && n < sizeof(buf); k++)
                buf[n++] = (uint8_t)rnd(&st);
            break;
        default:
            break;
        }
        run(m, buf, n);
    }
    sfpd_held_destroy(&held);
    grpc_shutdown();
    printf("fuzz_peer: %u requests ok\n", iters);
    return 0;
}
#endif
