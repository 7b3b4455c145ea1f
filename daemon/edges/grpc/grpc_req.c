/* grpc_req.c - sfp.v1 request decoding and validation (see grpc_req.h). */
#include "edges/grpc/grpc_req.h"
#include "base/sfpd.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"

const ProtobufCMessageDescriptor *sfpd_grpc_req_descriptor(sfpd_grpc_req k)
{
    switch (k) {
    case SFPD_REQ_GET_STATS: return &sfp__v1__get_stats_request__descriptor;
    case SFPD_REQ_WATCH_STATS: return &sfp__v1__watch_stats_request__descriptor;
    case SFPD_REQ_LIST_TENSORS: return &sfp__v1__list_tensors_request__descriptor;
    case SFPD_REQ_GET_POLICY: return &sfp__v1__get_policy_request__descriptor;
    case SFPD_REQ_SET_POLICY: return &sfp__v1__set_policy_request__descriptor;
    case SFPD_REQ_END_JOB: return &sfp__v1__end_job_request__descriptor;
    case SFPD_REQ_HEALTH_CHECK: return &grpc__health__v1__health_check_request__descriptor;
    default: return NULL;
    }
}

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

const char *sfpd_grpc_policy_invalid(const Sfp__V1__Policy *p)
{
    uint32_t mmax = p->max_mantissa_bits ? p->max_mantissa_bits : 23;
    uint32_t emin = p->min_exponent_bits ? p->min_exponent_bits : 1;
    uint32_t emax = p->max_exponent_bits ? p->max_exponent_bits : 8;
    if (p->min_mantissa_bits > 23 || mmax > 23)
        return "mantissa bits must lie in 0..23";
    if (emin > 8 || emax > 8)
        return "exponent bits must lie in 1..8";
    if (p->min_mantissa_bits > mmax || emin > emax)
        return "min bits above max bits";
    if (p->pin && (p->pinned_mantissa_bits > 23 || p->pinned_exponent_bits < 1 ||
                   p->pinned_exponent_bits > 8))
        return "pinned widths out of range (mantissa 0..23, exponent 1..8)";
    if (p->coder != SFP__V1__CODER__CODER_UNSPECIFIED && p->coder != SFP__V1__CODER__CODER_PLAIN &&
        p->coder != SFP__V1__CODER__CODER_GECKO)
        return "unknown coder";
    return NULL;
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

const char *sfpd_grpc_req_check(sfpd_grpc_req k, const ProtobufCMessage *m)
{
    switch (k) {
    case SFPD_REQ_GET_STATS:
        return sfpd_grpc_job_id_ok(((const Sfp__V1__GetStatsRequest *)m)->job_id, false)
                   ? NULL
                   : "job_id too long";
    case SFPD_REQ_WATCH_STATS: {
        const Sfp__V1__WatchStatsRequest *r = (const void *)m;
        if (sfpd_grpc_watch_interval_ms(r->interval_seconds) == 0)
            return "interval_seconds must be >= 0";
        return sfpd_grpc_job_id_ok(r->job_id, false) ? NULL : "job_id too long";
    }
    case SFPD_REQ_LIST_TENSORS:
        return sfpd_grpc_job_id_ok(((const Sfp__V1__ListTensorsRequest *)m)->job_id, false)
                   ? NULL
                   : "job_id too long";
    case SFPD_REQ_GET_POLICY:
        return sfpd_grpc_job_id_ok(((const Sfp__V1__GetPolicyRequest *)m)->job_id, true)
                   ? NULL
                   : "job_id must be 1..128 bytes";
    case SFPD_REQ_SET_POLICY: {
        const Sfp__V1__SetPolicyRequest *r = (const void *)m;
        if (!sfpd_grpc_job_id_ok(r->job_id, true))
            return "job_id must be 1..128 bytes";
        return r->policy ? sfpd_grpc_policy_invalid(r->policy) : NULL;
    }
    case SFPD_REQ_END_JOB:
        return sfpd_grpc_job_id_ok(((const Sfp__V1__EndJobRequest *)m)->job_id, true)
                   ? NULL
                   : "job_id must be 1..128 bytes";
    case SFPD_REQ_HEALTH_CHECK:
        return NULL; /* unknown services are answered NOT_FOUND */
    default:
        return "unknown request type";
    }
}

int sfpd_grpc_req_decode(sfpd_grpc_req k, const uint8_t *data, size_t len, ProtobufCMessage **msg,
                         const char **why)
{
    const ProtobufCMessageDescriptor *d = sfpd_grpc_req_descriptor(k);
    ProtobufCMessage *m;
    const char *bad;

    *msg = NULL;
    if (!d) {
        *why = "unknown request type";
        return -EINVAL;
    }
    m = protobuf_c_message_unpack(d, NULL, len, data);
    if (!m) {
        *why = "malformed request message";
        return -EINVAL;
    }
    if ((bad = sfpd_grpc_req_check(k, m))) {
        protobuf_c_message_free_unpacked(m, NULL);
        *why = bad;
        return -EINVAL;
    }
    *msg = m;
    *why = NULL;
    return 0;
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
