/*
 * test_grpc_req: unit checks of daemon/edges/grpc/grpc_req.c, the gRPC request
 * validation the server and the fuzz targets share, and of the admin
 * token comparison.
 */
#include "edges/grpc/grpc_req.h"
#include "base/sfpd.h"

#include <sfp/sfp.h>

#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(c)                                                         \
    do {                                                                 \
        if (!(c)) {                                                      \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                  \
        }                                                                \
    } while (0)

static bool bearer(const char *v, const char *t)
{
    return sfpd_grpc_bearer_ok(v, strlen(v), t, strlen(t));
}

static int decode_packed(sfpd_grpc_method k, const ProtobufCMessage *m, const char **why)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    ProtobufCMessage *out = NULL;
    int r;
    protobuf_c_message_pack(m, b);
    r = sfpd_grpc_req_decode(k, b, n, &out, why);
    if (out)
        protobuf_c_message_free_unpacked(out, NULL);
    free(b);
    return r;
}

/* Every row of the method table: a path, a descriptor, a fuzz target with
 * a seed corpus (tests/fuzz_grpc/corpus/fuzz_grpc_<name>), and a lookup
 * that finds it by its path. */
static void method_table(const char *corpus)
{
    for (unsigned m = 0; m < SFPD_M_COUNT; m++) {
        const char *path = sfpd_grpc_method_path((sfpd_grpc_method)m);
        const char *name = sfpd_grpc_method_name((sfpd_grpc_method)m);
        char dir[512];
        struct stat st;
        CHECK(path && name && sfpd_grpc_req_descriptor((sfpd_grpc_method)m));
        if (!path || !name)
            continue;
        CHECK(sfpd_grpc_method_find(path, strlen(path)) == (sfpd_grpc_method)m);
        snprintf(dir, sizeof(dir), "%s/fuzz_grpc_%s", corpus, name);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "method %s has no fuzz corpus %s\n", path, dir);
            failures++;
        }
    }
    CHECK(sfpd_grpc_method_find("/sfp.v1.Stats/GetStat", 21) == SFPD_M_COUNT);
    CHECK(sfpd_grpc_method_find("/sfp.v1.Stats/GetStatsX", 23) == SFPD_M_COUNT);
    CHECK(sfpd_grpc_method_auth(SFPD_M_SET_POLICY) == SFPD_AUTH_ADMIN);
    CHECK(sfpd_grpc_method_auth(SFPD_M_END_JOB) == SFPD_AUTH_ADMIN);
    CHECK(sfpd_grpc_method_auth(SFPD_M_PUT_FRAME) == SFPD_AUTH_PEER);
    CHECK(sfpd_grpc_method_auth(SFPD_M_GET_STATS) == SFPD_AUTH_OPEN);
    CHECK(sfpd_grpc_method_streams(SFPD_M_WATCH_STATS) && !sfpd_grpc_method_streams(SFPD_M_GET_STATS));
}

int main(int argc, char **argv)
{
    const char *tok = "0123456789abcdef0123";
    char long_job[SFPD_JOB_ID_MAX + 2];
    const char *why;

    /* admin token */
    CHECK(bearer("Bearer 0123456789abcdef0123", tok));
    CHECK(!bearer("Bearer 0123456789abcdef012", tok));   /* prefix of the token */
    CHECK(!bearer("Bearer 0123456789abcdef01234", tok)); /* token plus a byte */
    CHECK(!bearer("Bearer 0123456789abcdef0124", tok));  /* last byte differs */
    CHECK(!bearer("Bearer 1123456789abcdef0123", tok));  /* first byte differs */
    CHECK(!bearer("bearer 0123456789abcdef0123", tok));
    CHECK(!bearer("Basic 0123456789abcdef0123", tok));
    CHECK(!bearer("0123456789abcdef0123", tok));
    CHECK(!bearer("Bearer ", tok));
    CHECK(!bearer("", tok));
    CHECK(!bearer("Bearer ", ""));
    CHECK(!sfpd_grpc_bearer_ok(NULL, 0, tok, strlen(tok)));
    /* embedded NUL in the metadata value: compared by length, not strlen */
    CHECK(!sfpd_grpc_bearer_ok("Bearer 0123456789abcdef0123\0x", 29, tok, strlen(tok)));

    /* job ids */
    memset(long_job, 'j', sizeof(long_job) - 1);
    long_job[sizeof(long_job) - 1] = 0;
    CHECK(sfpd_grpc_job_id_ok("", false));
    CHECK(!sfpd_grpc_job_id_ok("", true));
    CHECK(!sfpd_grpc_job_id_ok(long_job, false));
    long_job[SFPD_JOB_ID_MAX] = 0;
    CHECK(sfpd_grpc_job_id_ok(long_job, true));

    /* WatchStats interval */
    CHECK(sfpd_grpc_watch_interval_ms(0) == 1000);
    CHECK(sfpd_grpc_watch_interval_ms(1e-9) == 50);
    CHECK(sfpd_grpc_watch_interval_ms(1e300) == 3600 * 1000);
    CHECK(sfpd_grpc_watch_interval_ms(-1) == 0);
    CHECK(sfpd_grpc_watch_interval_ms(NAN) == 0);
    CHECK(sfpd_grpc_watch_interval_ms(INFINITY) == 0);

    /* requests, end to end through the decoder */
    {
        Sfp__V1__SetPolicyRequest r = SFP__V1__SET_POLICY_REQUEST__INIT;
        Sfp__V1__Policy p = SFP__V1__POLICY__INIT;
        r.job_id = (char *)"job";
        r.policy = &p;
        p.max_mantissa_bits = 10;
        CHECK(decode_packed(SFPD_M_SET_POLICY, &r.base, &why) == 0);
        p.max_exponent_bits = 9;
        CHECK(decode_packed(SFPD_M_SET_POLICY, &r.base, &why) < 0 && strstr(why, "exponent"));
        p.max_exponent_bits = 0;
        p.pin = 1; /* pinned exponent 0 */
        CHECK(decode_packed(SFPD_M_SET_POLICY, &r.base, &why) < 0 && strstr(why, "pinned"));
        p.pin = 0;
        p.coder = 9;
        CHECK(decode_packed(SFPD_M_SET_POLICY, &r.base, &why) < 0 && strstr(why, "coder"));
        p.coder = SFP__V1__CODER__CODER_RANS; /* every libsfp coder has its proto value */
        CHECK(decode_packed(SFPD_M_SET_POLICY, &r.base, &why) == 0);
        {
            sfpd_policy core;
            Sfp__V1__Policy back;
            CHECK(sfpd_grpc_policy_from_proto(&p, &core) == NULL && core.coder == SFP_CODER_RANS);
            sfpd_grpc_policy_to_proto(&core, &back);
            CHECK(back.coder == SFP__V1__CODER__CODER_RANS);
        }
        p.coder = SFP_CODER_COUNT + 1;
        CHECK(decode_packed(SFPD_M_SET_POLICY, &r.base, &why) < 0 && strstr(why, "coder"));
        p.coder = 0;
        r.job_id = (char *)"";
        CHECK(decode_packed(SFPD_M_SET_POLICY, &r.base, &why) < 0 && strstr(why, "job_id"));
    }
    {
        Sfp__V1__WatchStatsRequest r = SFP__V1__WATCH_STATS_REQUEST__INIT;
        r.interval_seconds = -0.5;
        CHECK(decode_packed(SFPD_M_WATCH_STATS, &r.base, &why) < 0 && strstr(why, "interval"));
        r.interval_seconds = 0.5;
        CHECK(decode_packed(SFPD_M_WATCH_STATS, &r.base, &why) == 0);
    }
    {
        static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
        ProtobufCMessage *m = (ProtobufCMessage *)1;
        CHECK(sfpd_grpc_req_decode(SFPD_M_END_JOB, garbage, sizeof(garbage), &m, &why) < 0 && !m &&
              strstr(why, "malformed"));
        CHECK(sfpd_grpc_req_decode(SFPD_M_COUNT, garbage, 0, &m, &why) < 0 && !m);
        CHECK(sfpd_grpc_req_decode(SFPD_M_END_JOB, garbage, 0, &m, &why) < 0 && strstr(why, "job_id"));
        CHECK(sfpd_grpc_req_decode(SFPD_M_GET_STATS, garbage, 0, &m, &why) == 0 && m);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    {
        Sfp__V1__PutFrameRequest r = SFP__V1__PUT_FRAME_REQUEST__INIT;
        r.node = (char *)"node-a";
        CHECK(decode_packed(SFPD_M_PUT_FRAME, &r.base, &why) == 0);
        r.node = (char *)"bad\"node";
        CHECK(decode_packed(SFPD_M_PUT_FRAME, &r.base, &why) < 0 && strstr(why, "node"));
        r.node = (char *)"";
        CHECK(decode_packed(SFPD_M_PUT_FRAME, &r.base, &why) < 0 && strstr(why, "node"));
    }
    if (argc > 1)
        method_table(argv[1]);
    else
        CHECK(!"usage: test_grpc_req CORPUS_DIR");
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("PASS\n");
    return 0;
}
