/*
 * grpc_req.h - decoding and validation of the gRPC request messages, and
 * the conversions between sfp.v1 messages and core types, kept apart from
 * the gRPC transport so the fuzz targets (tests/fuzz_grpc/) run exactly the
 * code the server runs on a request's bytes: protobuf-c unpack, then the
 * method's check. No gRPC, no libuv.
 */
#ifndef SFPD_EDGES_GRPC_REQ_H
#define SFPD_EDGES_GRPC_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/policy.h"
#include "edges/grpc/grpc_methods.h"
#include "grpc/health/v1/health.pb-c.h"
#include "sfp/v1/sfp.pb-c.h"

/* Row data of the method table (NULL / false when m is out of range). */
const char *sfpd_grpc_method_path(sfpd_grpc_method m);
const char *sfpd_grpc_method_name(sfpd_grpc_method m);
const ProtobufCMessageDescriptor *sfpd_grpc_req_descriptor(sfpd_grpc_method m);
sfpd_grpc_auth sfpd_grpc_method_auth(sfpd_grpc_method m);
bool sfpd_grpc_method_streams(sfpd_grpc_method m);
/* The method of a request path, or SFPD_M_COUNT. len: bytes of path. */
sfpd_grpc_method sfpd_grpc_method_find(const char *path, size_t len);

/*
 * Unpacks len bytes as the request of method m and validates it. Returns 0
 * and *msg (free with protobuf_c_message_free_unpacked(*msg, NULL)), or
 * -EINVAL with *msg NULL and *why a static reason (malformed message or a
 * field out of range; the server answers INVALID_ARGUMENT with it).
 */
int sfpd_grpc_req_decode(sfpd_grpc_method m, const uint8_t *data, size_t len, ProtobufCMessage **msg,
                         const char **why);

/* NULL if the unpacked request msg of method m is acceptable, else why not. */
const char *sfpd_grpc_req_check(sfpd_grpc_method m, const ProtobufCMessage *msg);

/* job ids: 1..SFPD_JOB_ID_MAX bytes (0 allowed when !required). */
bool sfpd_grpc_job_id_ok(const char *id, bool required);

/* sfp.v1.Policy <-> the core's policy. from_proto returns NULL, or why the
 * message is not a valid policy (then *out is unspecified). */
const char *sfpd_grpc_policy_from_proto(const Sfp__V1__Policy *in, sfpd_policy *out);
void sfpd_grpc_policy_to_proto(const sfpd_policy *in, Sfp__V1__Policy *out);

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

#endif /* SFPD_EDGES_GRPC_REQ_H */
