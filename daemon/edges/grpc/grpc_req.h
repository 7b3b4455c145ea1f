/*
 * grpc_req.h - decoding and validation of the sfp.v1 gRPC request messages,
 * kept apart from the gRPC transport so the fuzz targets
 * (tests/fuzz_grpc/) run exactly the code the server runs on a request's
 * bytes: protobuf-c unpack, then the checks below. No gRPC, no libuv.
 */
#ifndef SFPD_GRPC_REQ_H
#define SFPD_GRPC_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "sfp/v1/sfp.pb-c.h"

typedef enum sfpd_grpc_req {
    SFPD_REQ_GET_STATS,
    SFPD_REQ_WATCH_STATS,
    SFPD_REQ_LIST_TENSORS,
    SFPD_REQ_GET_POLICY,
    SFPD_REQ_SET_POLICY,
    SFPD_REQ_END_JOB,
    SFPD_REQ_HEALTH_CHECK,
    SFPD_REQ_COUNT
} sfpd_grpc_req;

/* The request message descriptor of kind k (NULL if k is out of range). */
const ProtobufCMessageDescriptor *sfpd_grpc_req_descriptor(sfpd_grpc_req k);

/*
 * Unpacks len bytes as a request of kind k and validates it. Returns 0 and
 * *msg (free with protobuf_c_message_free_unpacked(*msg, NULL)), or -EINVAL
 * with *msg NULL and *why a static reason (malformed message or a field out
 * of range; the server answers INVALID_ARGUMENT with it).
 */
int sfpd_grpc_req_decode(sfpd_grpc_req k, const uint8_t *data, size_t len, ProtobufCMessage **msg,
                         const char **why);

/* NULL if the unpacked request m of kind k is acceptable, else why not. */
const char *sfpd_grpc_req_check(sfpd_grpc_req k, const ProtobufCMessage *m);

/* job ids: 1..SFPD_JOB_ID_MAX bytes (0 allowed when !required). */
bool sfpd_grpc_job_id_ok(const char *id, bool required);

/* NULL if the policy is valid, else why not. */
const char *sfpd_grpc_policy_invalid(const Sfp__V1__Policy *p);

/* WatchStats interval: the period in ms the server will use, or 0 when
 * interval_seconds is invalid (negative, NaN, infinite). */
uint64_t sfpd_grpc_watch_interval_ms(double interval_seconds);

/* given == secret, in time that depends only on secret_len (secrets are
 * never empty). */
bool sfpd_secret_eq(const void *given, size_t given_len, const char *secret, size_t secret_len);

/*
 * Constant-time check of a gRPC "authorization" metadata value against the
 * admin token: true only for exactly "Bearer <token>". The time taken
 * depends on the lengths, never on where the bytes differ.
 */
bool sfpd_grpc_bearer_ok(const char *value, size_t value_len, const char *token, size_t token_len);

#endif /* SFPD_GRPC_REQ_H */
