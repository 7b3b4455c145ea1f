/* grpc_req.c - gRPC request decoding and validation (see grpc_req.h). */
#include "edges/grpc/grpc_req.h"
#include "base/sfpd.h"
#include "base/wire.h"
#include "core/held.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <sfp/sfp.h>

/* The proto's Coder enum is libsfp's coder list shifted by one. */
#define SFPD__CODER_MATCHES(id, value, name)                                          \
    _Static_assert(SFP__V1__CODER__CODER_##id == (value) + 1,                          \
                   "sfp.proto Coder CODER_" #id " must be sfp_coder + 1");
SFP_CODERS(SFPD__CODER_MATCHES)
#undef SFPD__CODER_MATCHES

/* ------------------------------------------------------------- checks */

typedef const char *(*check_fn)(const void *req);

static const char *job_opt(const char *id)
{
    return sfpd_grpc_job_id_ok(id, false) ? NULL : "job_id too long";
}

static const char *job_req(const char *id)
{
    return sfpd_grpc_job_id_ok(id, true) ? NULL : "job_id must be 1..128 bytes";
}

static const char *check_get_stats(const void *m)
{
    return job_opt(((const Sfp__V1__GetStatsRequest *)m)->job_id);
}

static const char *check_watch_stats(const void *m)
{
    const Sfp__V1__WatchStatsRequest *r = m;
    if (sfpd_grpc_watch_interval_ms(r->interval_seconds) == 0)
        return "interval_seconds must be >= 0";
    return job_opt(r->job_id);
}

static const char *check_list_tensors(const void *m)
{
    return job_opt(((const Sfp__V1__ListTensorsRequest *)m)->job_id);
}

static const char *check_get_policy(const void *m)
{
    return job_req(((const Sfp__V1__GetPolicyRequest *)m)->job_id);
}

static const char *check_set_policy(const void *m)
{
    const Sfp__V1__SetPolicyRequest *r = m;
    sfpd_policy p;
    const char *why = job_req(r->job_id);
    if (!why && r->policy)
        why = sfpd_grpc_policy_from_proto(r->policy, &p);
    return why;
}

static const char *check_end_job(const void *m)
{
    return job_req(((const Sfp__V1__EndJobRequest *)m)->job_id);
}

static const char *check_health_check(const void *m)
{
    (void)m;
    return NULL; /* unknown services are answered NOT_FOUND */
}

static const char *node_must_be_ok(const char *node)
{
    return sfpd_peer_node_ok(node) ? NULL : "node must be 1..255 printable bytes";
}

static const char *check_put_frame(const void *m)
{
    return node_must_be_ok(((const Sfp__V1__PutFrameRequest *)m)->node);
}

static const char *check_capacity(const void *m)
{
    return node_must_be_ok(((const Sfp__V1__CapacityRequest *)m)->node);
}

/* a node or frame the server does not hold is answered NOT_FOUND / no-op */
static const char *check_get_frame(const void *m)
{
    (void)m;
    return NULL;
}

static const char *check_drop_frame(const void *m)
{
    (void)m;
    return NULL;
}

/* -------------------------------------------------------------- table */

static const struct row {
    const char *path, *name;
    const ProtobufCMessageDescriptor *desc;
    sfpd_grpc_auth auth;
    bool streams;
    check_fn check;
} rows[SFPD_M_COUNT] = {
#define SFPD__STREAMS_UNARY false
#define SFPD__STREAMS_STREAM true
#define SFPD__M_ROW(id, path, req, auth, kind, name) \
    [SFPD_M_##id] = {path, #name, &req##__descriptor, SFPD_AUTH_##auth, SFPD__STREAMS_##kind, check_##name},
    SFPD_GRPC_METHODS(SFPD__M_ROW)
#undef SFPD__M_ROW
#undef SFPD__STREAMS_UNARY
#undef SFPD__STREAMS_STREAM
};

const char *sfpd_grpc_method_path(sfpd_grpc_method m)
{
    return (unsigned)m < SFPD_M_COUNT ? rows[m].path : NULL;
}

const char *sfpd_grpc_method_name(sfpd_grpc_method m)
{
    return (unsigned)m < SFPD_M_COUNT ? rows[m].name : NULL;
}

const ProtobufCMessageDescriptor *sfpd_grpc_req_descriptor(sfpd_grpc_method m)
{
    return (unsigned)m < SFPD_M_COUNT ? rows[m].desc : NULL;
}

sfpd_grpc_auth sfpd_grpc_method_auth(sfpd_grpc_method m)
{
    return (unsigned)m < SFPD_M_COUNT ? rows[m].auth : SFPD_AUTH_PEER;
}

bool sfpd_grpc_method_streams(sfpd_grpc_method m)
{
    return (unsigned)m < SFPD_M_COUNT && rows[m].streams;
}

sfpd_grpc_method sfpd_grpc_method_find(const char *path, size_t len)
{
    for (unsigned i = 0; i < SFPD_M_COUNT; i++)
        if (strlen(rows[i].path) == len && memcmp(rows[i].path, path, len) == 0)
            return (sfpd_grpc_method)i;
    return SFPD_M_COUNT;
}

const char *sfpd_grpc_req_check(sfpd_grpc_method m, const ProtobufCMessage *msg)
{
    if ((unsigned)m >= SFPD_M_COUNT)
        return "unknown request type";
    return rows[m].check(msg);
}

int sfpd_grpc_req_decode(sfpd_grpc_method m, const uint8_t *data, size_t len, ProtobufCMessage **msg,
                         const char **why)
{
    const ProtobufCMessageDescriptor *d = sfpd_grpc_req_descriptor(m);
    ProtobufCMessage *p;
    const char *bad;

    *msg = NULL;
    if (!d) {
        *why = "unknown request type";
        return -EINVAL;
    }
    p = protobuf_c_message_unpack(d, NULL, len, data);
    if (!p) {
        *why = "malformed request message";
        return -EINVAL;
    }
    /* protobuf-c cuts a string at a NUL and takes any bytes for UTF-8 */
    if (sfpd_wire_strings_ok(d, data, len, &bad) < 0 || (bad = sfpd_grpc_req_check(m, p))) {
        protobuf_c_message_free_unpacked(p, NULL);
        *why = bad;
        return -EINVAL;
    }
    *msg = p;
    *why = NULL;
    return 0;
}

/* ------------------------------------------------------------ helpers */

bool sfpd_grpc_job_id_ok(const char *id, bool required)
{
    size_t n;
    if (!id)
        return !required;
    n = strlen(id);
    if (n == 0)
        return !required;
    return n <= SFPD_JOB_ID_MAX;
}

const char *sfpd_grpc_policy_from_proto(const Sfp__V1__Policy *in, sfpd_policy *out)
{
    memset(out, 0, sizeof(*out));
    out->min_mbits = in->min_mantissa_bits;
    out->max_mbits = in->max_mantissa_bits;
    out->min_ebits = in->min_exponent_bits;
    out->max_ebits = in->max_exponent_bits;
    out->pin = in->pin;
    out->pin_mbits = in->pinned_mantissa_bits;
    out->pin_ebits = in->pinned_exponent_bits;
    out->freeze = in->freeze;
    out->generation = in->generation;
    if ((unsigned)in->coder > SFP_CODER_COUNT)
        return "unknown coder";
    out->coder = (int)in->coder - 1; /* CODER_UNSPECIFIED -> -1 */
    return sfpd_policy_invalid(out);
}

void sfpd_grpc_policy_to_proto(const sfpd_policy *in, Sfp__V1__Policy *out)
{
    sfp__v1__policy__init(out);
    out->min_mantissa_bits = in->min_mbits;
    out->max_mantissa_bits = in->max_mbits;
    out->min_exponent_bits = in->min_ebits;
    out->max_exponent_bits = in->max_ebits;
    out->pin = in->pin;
    out->pinned_mantissa_bits = in->pin_mbits;
    out->pinned_exponent_bits = in->pin_ebits;
    out->coder = (Sfp__V1__Coder)(in->coder + 1);
    out->freeze = in->freeze;
    out->generation = in->generation;
}

uint64_t sfpd_grpc_watch_interval_ms(double iv)
{
    if (!isfinite(iv) || iv < 0)
        return 0;
    if (iv == 0)
        iv = 1;
    if (iv < 0.05)
        iv = 0.05;
    if (iv > 3600)
        iv = 3600;
    return (uint64_t)(iv * 1000 + 0.5);
}

bool sfpd_secret_eq(const void *given, size_t given_len, const char *secret, size_t secret_len)
{
    const unsigned char *g = given;
    volatile unsigned char diff = 0;

    if (!secret || secret_len == 0 || (!given && given_len))
        return false;
    /* every byte of the secret is visited, whatever the input */
    diff |= (unsigned char)(given_len != secret_len);
    for (size_t i = 0; i < secret_len; i++) {
        unsigned char c = i < given_len ? g[i] : 0;
        diff |= (unsigned char)(c ^ (unsigned char)secret[i]);
    }
    return diff == 0;
}

bool sfpd_grpc_bearer_ok(const char *value, size_t value_len, const char *token, size_t token_len)
{
    static const char prefix[] = "Bearer ";
    const size_t pl = sizeof(prefix) - 1;

    if (!value || !token || token_len == 0)
        return false;
    if (value_len < pl)
        return false;
    /* the scheme is not secret: a plain compare is fine for it */
    for (size_t i = 0; i < pl; i++)
        if (value[i] != prefix[i])
            return false;
    return sfpd_secret_eq(value + pl, value_len - pl, token, token_len);
}
