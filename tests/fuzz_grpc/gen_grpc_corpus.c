/*
 * gen_grpc_corpus: writes the seed corpora of the fuzz_grpc_* targets into
 * DIR/fuzz_grpc_<type>/ (valid, boundary and invalid requests of each type).
 * Usage: gen_grpc_corpus tests/fuzz_grpc/corpus
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grpc/health/v1/health.pb-c.h"
#include "sfp/v1/sfp.pb-c.h"

static const char *root;

static void make_dir(const char *target)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/fuzz_grpc_%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
}

static void put(const char *target, const char *name, const ProtobufCMessage *m)
{
    char path[512];
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    FILE *f;
    make_dir(target);
    snprintf(path, sizeof(path), "%s/fuzz_grpc_%s/%s", root, target, name);
    protobuf_c_message_pack(m, buf);
    if (!(f = fopen(path, "wb")) || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    free(buf);
}

static void put_raw(const char *target, const char *name, const void *b, size_t n)
{
    char path[512];
    FILE *f;
    make_dir(target);
    snprintf(path, sizeof(path), "%s/fuzz_grpc_%s/%s", root, target, name);
    if (!(f = fopen(path, "wb")) || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    char long_job[130], max_job[129];
    static const uint8_t trunc[] = {0x0a, 0x10, 'j', 'o'};          /* length past the end */
    static const uint8_t badwire[] = {0x0f, 0x01};                  /* wire type 7 */
    static const uint8_t unknown[] = {0xf8, 0xff, 0x03, 0x01, 0x0a, 0x01, 'j'}; /* field 8191 + job */
    const char *targets[] = {"get_stats", "watch_stats", "list_tensors", "get_policy", "set_policy",
                             "end_job", "health_check", "put_frame", "get_frame", "drop_frame",
                             "capacity"};

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    memset(long_job, 'j', sizeof(long_job) - 1);
    long_job[sizeof(long_job) - 1] = 0;
    memset(max_job, 'm', sizeof(max_job) - 1);
    max_job[sizeof(max_job) - 1] = 0;

    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        put_raw(targets[i], "empty", "", 0);
        put_raw(targets[i], "truncated", trunc, sizeof(trunc));
        put_raw(targets[i], "bad_wire_type", badwire, sizeof(badwire));
        put_raw(targets[i], "unknown_field", unknown, sizeof(unknown));
    }
    {
        Sfp__V1__GetStatsRequest r = SFP__V1__GET_STATS_REQUEST__INIT;
        r.job_id = (char *)"job-1";
        put("get_stats", "job", &r.base);
        r.job_id = max_job;
        put("get_stats", "job_max", &r.base);
        r.job_id = long_job;
        put("get_stats", "job_too_long", &r.base);
    }
    {
        Sfp__V1__WatchStatsRequest r = SFP__V1__WATCH_STATS_REQUEST__INIT;
        r.interval_seconds = 0.2;
        r.count = 3;
        r.job_id = (char *)"job-1";
        put("watch_stats", "valid", &r.base);
        r.interval_seconds = -1;
        put("watch_stats", "negative", &r.base);
        r.interval_seconds = NAN;
        put("watch_stats", "nan", &r.base);
        r.interval_seconds = INFINITY;
        put("watch_stats", "inf", &r.base);
        r.interval_seconds = 1e-9;
        put("watch_stats", "tiny", &r.base);
        r.interval_seconds = 1e300;
        put("watch_stats", "huge", &r.base);
        r.interval_seconds = 1;
        r.job_id = long_job;
        put("watch_stats", "job_too_long", &r.base);
    }
    {
        Sfp__V1__ListTensorsRequest r = SFP__V1__LIST_TENSORS_REQUEST__INIT;
        r.job_id = (char *)"job-1";
        r.limit = 10;
        put("list_tensors", "valid", &r.base);
        r.limit = 0xffffffffu;
        put("list_tensors", "limit_max", &r.base);
        r.job_id = long_job;
        put("list_tensors", "job_too_long", &r.base);
    }
    {
        Sfp__V1__GetPolicyRequest r = SFP__V1__GET_POLICY_REQUEST__INIT;
        r.job_id = (char *)"job-1";
        put("get_policy", "valid", &r.base);
        r.job_id = max_job;
        put("get_policy", "job_max", &r.base);
        r.job_id = long_job;
        put("get_policy", "job_too_long", &r.base);
    }
    {
        Sfp__V1__SetPolicyRequest r = SFP__V1__SET_POLICY_REQUEST__INIT;
        Sfp__V1__Policy p = SFP__V1__POLICY__INIT;
        r.job_id = (char *)"job-1";
        put("set_policy", "no_policy", &r.base);
        r.policy = &p;
        p.min_mantissa_bits = 2;
        p.max_mantissa_bits = 10;
        p.min_exponent_bits = 3;
        p.max_exponent_bits = 8;
        p.coder = SFP__V1__CODER__CODER_GECKO;
        p.freeze = 1;
        put("set_policy", "valid", &r.base);
        p.pin = 1;
        p.pinned_mantissa_bits = 7;
        p.pinned_exponent_bits = 5;
        put("set_policy", "pinned", &r.base);
        p.pinned_exponent_bits = 0;
        put("set_policy", "pinned_bad", &r.base);
        p.pin = 0;
        p.min_mantissa_bits = 11;
        put("set_policy", "min_above_max", &r.base);
        p.min_mantissa_bits = 0;
        p.max_exponent_bits = 9;
        put("set_policy", "ebits_9", &r.base);
        p.max_exponent_bits = 8;
        p.coder = 7;
        put("set_policy", "coder_unknown", &r.base);
        p.coder = SFP__V1__CODER__CODER_RANS;
        put("set_policy", "coder_rans", &r.base);
        p.coder = 0;
        p.generation = UINT64_MAX;
        put("set_policy", "generation_max", &r.base);
        r.job_id = (char *)"";
        put("set_policy", "job_empty", &r.base);
    }
    {
        Sfp__V1__EndJobRequest r = SFP__V1__END_JOB_REQUEST__INIT;
        r.job_id = (char *)"job-1";
        put("end_job", "valid", &r.base);
        r.job_id = (char *)"../../etc";
        put("end_job", "traversal", &r.base);
        r.job_id = long_job;
        put("end_job", "job_too_long", &r.base);
    }
    {
        Grpc__Health__V1__HealthCheckRequest r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
        put("health_check", "all", &r.base);
        r.service = (char *)"sfp.v1.Stats";
        put("health_check", "stats", &r.base);
        r.service = (char *)"no.such.Service";
        put("health_check", "unknown", &r.base);
    }
    {
        /* a minimal valid-looking frame body is not needed: the checker
         * looks at the node; the handler verifies the frame */
        static const uint8_t junk[] = {'S', 'F', 'P', '1', 0, 0, 0, 0};
        Sfp__V1__PutFrameRequest r = SFP__V1__PUT_FRAME_REQUEST__INIT;
        r.node = (char *)"node-a:/var/lib/sfpd";
        r.instance = 42;
        r.frame_id = 7;
        r.frame.data = (uint8_t *)junk;
        r.frame.len = sizeof(junk);
        put("put_frame", "valid_node", &r.base);
        r.node = (char *)"bad\"node";
        put("put_frame", "node_quote", &r.base);
        r.node = (char *)"";
        put("put_frame", "node_empty", &r.base);
    }
    {
        Sfp__V1__GetFrameRequest r = SFP__V1__GET_FRAME_REQUEST__INIT;
        r.node = (char *)"node-a";
        r.instance = 42;
        r.frame_id = 7;
        put("get_frame", "valid", &r.base);
    }
    {
        uint64_t more[3] = {1, 2, UINT64_MAX};
        Sfp__V1__DropFrameRequest r = SFP__V1__DROP_FRAME_REQUEST__INIT;
        r.node = (char *)"node-a";
        r.instance = 42;
        r.frame_id = 7;
        r.n_more_frame_ids = 3;
        r.more_frame_ids = more;
        put("drop_frame", "ids", &r.base);
        r.all = 1;
        put("drop_frame", "all", &r.base);
    }
    {
        Sfp__V1__CapacityRequest r = SFP__V1__CAPACITY_REQUEST__INIT;
        r.node = (char *)"node-a";
        r.instance = 42;
        put("capacity", "valid", &r.base);
        r.node = (char *)"tab\tnode";
        put("capacity", "node_control", &r.base);
    }
    return 0;
}
