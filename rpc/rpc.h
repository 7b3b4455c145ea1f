/*
 * rpc.h - gRPC plumbing shared by sfpd and sfpctl (and their tests): one
 * way to move protobuf-c messages in and out of gRPC byte buffers, one
 * blocking unary call, and one reader for the secret and PEM files both
 * sides load. Depends on the gRPC core and protobuf-c only; never logs:
 * every failure comes back as a code and a static reason for the caller to
 * report. Thread safe (no state of its own).
 */
#ifndef SFP_RPC_H
#define SFP_RPC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <protobuf-c/protobuf-c.h>

/* ---------------------------------------------------------- messages */

/* Packs m into a new byte buffer (owned by the caller), or NULL. */
grpc_byte_buffer *sfp_rpc_pack(const ProtobufCMessage *m);

/* Decodes bb (not consumed) with d; NULL when bb is NULL or malformed.
 * The message is the caller's (protobuf_c_message_free_unpacked). */
ProtobufCMessage *sfp_rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d);

/* An integer channel or server argument {key, v}. */
grpc_arg sfp_rpc_int_arg(const char *key, int v);

/* -------------------------------------------------------- unary call */

typedef struct sfp_rpc_call {
    /* in */
    const char *method;                      /* "/pkg.Service/Method"      */
    const grpc_metadata *md;                 /* initial metadata, or NULL  */
    size_t n_md;
    const ProtobufCMessage *req;
    const ProtobufCMessageDescriptor *reply_desc; /* NULL: reply not decoded */
    gpr_timespec deadline;
    /* checked every 100 ms while waiting: a non-zero value cancels the
     * call (Ctrl-C in a CLI); NULL: wait for the reply or the deadline */
    const volatile sig_atomic_t *cancel;
    /* out */
    ProtobufCMessage *reply;                 /* status OK only; caller frees */
    char *details;                           /* status text or NULL; free() */
} sfp_rpc_call;

/*
 * One blocking unary call on ch. cq is a pluck completion queue the caller
 * owns (one thread at a time), or NULL for a private one made and destroyed
 * by the call (any thread). Returns the gRPC status; a transport failure
 * gives UNAVAILABLE or DEADLINE_EXCEEDED, a reply that does not decode with
 * reply_desc INTERNAL ("malformed reply"). On return c->reply is set only
 * for GRPC_STATUS_OK; c->details may be set for any status.
 */
grpc_status_code sfp_rpc_unary(grpc_channel *ch, grpc_completion_queue *cq, sfp_rpc_call *c);

/* Frees what a finished call left in c (reply and details). */
void sfp_rpc_call_clear(sfp_rpc_call *c);

/* Name of a status code ("UNAVAILABLE"), "?" if unknown. */
const char *sfp_rpc_status_name(grpc_status_code s);

/* --------------------------------------------------- secret and PEM files */

/* What a secret or PEM file reader found out besides its content. */
typedef struct sfp_rpc_file_info {
    /* group or others may read it: others at all, or a group that is not
     * the caller's own (a Kubernetes Secret volume, root-owned with group
     * fsGroup and mode 0440, is fine) */
    bool loose;
    unsigned mode;                           /* permission bits */
} sfp_rpc_file_info;

#define SFP_RPC_TOKEN_MAX 4096u
#define SFP_RPC_PEM_MAX (1u << 20)

/*
 * A token file (admin token, peer token): the token is the file's first
 * line with trailing blanks (space, tab, CR) removed; it must be min..
 * SFP_RPC_TOKEN_MAX bytes of printable ASCII without blanks (it travels as
 * a gRPC metadata value). The path may be a symbolic link (Kubernetes
 * mounts Secrets that way) but must lead to a regular file.
 * Returns 0 with *out (NUL-terminated; release with sfp_rpc_free_secret)
 * and *len, or a negative errno with *why set to a static reason.
 */
int sfp_rpc_read_token(const char *path, size_t min, char **out, size_t *len,
                       sfp_rpc_file_info *info, const char **why);

/*
 * A PEM file (certificate chain, private key, CA bundle): at most
 * SFP_RPC_PEM_MAX bytes holding a "-----BEGIN " line. Same returns as
 * sfp_rpc_read_token; key files are secrets (sfp_rpc_free_secret).
 */
int sfp_rpc_read_pem(const char *path, char **out, size_t *len, sfp_rpc_file_info *info,
                     const char **why);

/* Wipes and frees a buffer from the readers above (NULL is a no-op). */
void sfp_rpc_free_secret(char *s, size_t len);

#endif /* SFP_RPC_H */
