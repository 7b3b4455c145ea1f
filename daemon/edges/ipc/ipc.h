/*
 * ipc.h - the daemon side of the worker IPC wire format (docs/PROTOCOL.md).
 *
 * Pure functions over byte buffers: no sockets, no globals. The fuzz target
 * (tests/daemon/fuzz_ipc.c) drives exactly these.
 */
#ifndef SFPD_IPC_H
#define SFPD_IPC_H

#include <sfp/sfp.h>
#include "sfp/ipc/v1/ipc.pb-c.h"
#include "base/sfpd.h"

typedef Sfp__Ipc__V1__Request sfpd_request;
typedef Sfp__Ipc__V1__Response sfpd_response;

#define SFPD_IPC_PREFIX 4u /* little-endian u32 length before each message */

/*
 * Looks at the first len bytes of a receive buffer. Returns 1 and sets
 * *msg_len when a whole message (prefix + *msg_len bytes) is present, 0 when
 * more bytes are needed, and -SFP__IPC__V1__STATUS__E_TOO_LARGE when the
 * prefix announces more than max_message bytes.
 */
int sfpd_ipc_frame(const uint8_t *buf, size_t len, size_t max_message, size_t *msg_len);

/*
 * Unpacks and validates one message payload (without its prefix). On success
 * returns 0 and *out owns the request (free with sfpd_ipc_request_free). On
 * failure returns a negative ipc Status, sets *why to a static message, and
 * *req_id to the request id if it could be read (else 0). In both cases
 * *hello tells whether the payload parsed as a Request whose body is a
 * Hello (a connection without one answers everything else with
 * E_HELLO_REQUIRED, docs/PROTOCOL.md).
 */
int sfpd_ipc_decode(const uint8_t *payload, size_t len, sfpd_request **out,
                    uint64_t *req_id, bool *hello, const char **why);
void sfpd_ipc_request_free(sfpd_request *r);

/* Converts a validated Key / Params. Return 0 or a negative ipc Status. */
int sfpd_ipc_key(const Sfp__Ipc__V1__Key *k, sfpd_key *out);
int sfpd_ipc_params(const Sfp__Ipc__V1__Params *p, sfp_params *out);


/*
 * Serializes a response with its length prefix into a new buffer.
 * On success *out (sfpd_malloc'd, caller frees) and *out_len are set.
 */
int sfpd_ipc_encode(const sfpd_response *r, uint8_t **out, size_t *out_len);

const char *sfpd_status_name(int status);

#endif /* SFPD_IPC_H */
