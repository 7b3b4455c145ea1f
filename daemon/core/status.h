/*
 * status.h - the core's error model: every core call (store, jobs, policies,
 * frames held for peers) returns 0 or a negative SFPD_E_* code. The edges
 * translate these into their wire codes (IPC Status, gRPC status) in one
 * table each; the core never sees a wire code.
 */
#ifndef SFPD_CORE_STATUS_H
#define SFPD_CORE_STATUS_H

/* X(NAME, value, message) */
#define SFPD_STATUSES(X)                                                       \
    X(INVALID,       -1,  "invalid argument")                                  \
    X(NOT_FOUND,     -2,  "not found")                                         \
    X(PERMISSION,    -3,  "belongs to another user")                           \
    X(QUOTA,         -4,  "quota exceeded")                                    \
    X(NO_MEMORY,     -5,  "out of memory")                                     \
    X(DISK_FULL,     -6,  "no lower tier has room")                            \
    X(IO,            -7,  "tier I/O error")                                    \
    X(CORRUPT,       -8,  "stored frame failed verification")                 \
    X(RANGE,         -9,  "outside the shared memory, or capacity too small")  \
    X(SHUTTING_DOWN, -10, "shutting down")                                     \
    X(CODEC,         -11, "the codec refused the data")                        \
    X(NO_SHM,        -12, "no usable shared memory")                           \
    X(TOO_LARGE,     -13, "larger than the configured limit")                  \
    X(INTERNAL,      -14, "internal error")                                    \
    X(LOST,          -15, "frame lost: its peer is unreachable or lost it")    \
    X(LIMIT,         -16, "too many entries")

enum {
    SFPD_OK = 0,
#define SFPD__STATUS_ENUM(name, value, msg) SFPD_E_##name = value,
    SFPD_STATUSES(SFPD__STATUS_ENUM)
#undef SFPD__STATUS_ENUM
};

/* Number of SFPD_E_* codes; they are -1..-SFPD_E_COUNT. */
#define SFPD__STATUS_ROW(...) +1
enum { SFPD_E_COUNT = 0 SFPD_STATUSES(SFPD__STATUS_ROW) };
#undef SFPD__STATUS_ROW

/* Message of a code ("ok" for 0, "unknown error" otherwise); never NULL. */
const char *sfpd_strerror(int status);

#endif /* SFPD_CORE_STATUS_H */
