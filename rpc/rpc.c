/* rpc.c - see rpc.h. */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>

grpc_byte_buffer *sfp_rpc_pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    grpc_byte_buffer *bb;
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

ProtobufCMessage *sfp_rpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d)
{
    grpc_byte_buffer_reader r;
    grpc_slice s;
    ProtobufCMessage *m;

    if (!bb || !grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

grpc_arg sfp_rpc_int_arg(const char *key, int v)
{
    grpc_arg a;
    memset(&a, 0, sizeof(a));
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = v;
    return a;
}

/* ------------------------------------------------------------ unary call */

static void drain_and_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* Waits for tag on cq; cancels the call once *cancel turns non-zero. */
static bool wait_tag(grpc_completion_queue *cq, grpc_call *call, void *tag,
                     const volatile sig_atomic_t *cancel)
{
    for (;;) {
        gpr_timespec until = cancel ? gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                   gpr_time_from_millis(100, GPR_TIMESPAN))
                                    : gpr_inf_future(GPR_CLOCK_REALTIME);
        grpc_event e = grpc_completion_queue_pluck(cq, tag, until, NULL);
        if (e.type == GRPC_OP_COMPLETE)
            return e.success != 0;
        if (e.type == GRPC_QUEUE_SHUTDOWN)
            return false;
        if (cancel && *cancel)
            grpc_call_cancel(call, NULL);
    }
}

grpc_status_code sfp_rpc_unary(grpc_channel *ch, grpc_completion_queue *cq, sfp_rpc_call *c)
{
    grpc_completion_queue *own = cq ? NULL : grpc_completion_queue_create_for_pluck(NULL);
    grpc_completion_queue *q = cq ? cq : own;
    grpc_metadata_array md_in, md_trail;
    grpc_byte_buffer *send_bb, *recv_bb = NULL;
    grpc_status_code status = GRPC_STATUS_UNAVAILABLE;
    grpc_slice details = grpc_empty_slice();
    const char *err_str = NULL;
    grpc_op ops[6];
    grpc_call *call;

    c->reply = NULL;
    c->details = NULL;
    send_bb = sfp_rpc_pack(c->req);
    grpc_metadata_array_init(&md_in);
    grpc_metadata_array_init(&md_trail);
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, q,
                                    grpc_slice_from_static_string(c->method), NULL, c->deadline, NULL);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = c->md ? c->n_md : 0;
    ops[0].data.send_initial_metadata.metadata = c->md ? (grpc_metadata *)c->md : NULL;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_in;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &err_str;
    if (!call || !send_bb || grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK)
        status = GRPC_STATUS_INTERNAL;
    else if (!wait_tag(q, call, (void *)1, c->cancel))
        status = GRPC_STATUS_UNAVAILABLE;
    if (status == GRPC_STATUS_OK && c->reply_desc &&
        !(c->reply = sfp_rpc_unpack(recv_bb, c->reply_desc))) {
        status = GRPC_STATUS_INTERNAL;
        c->details = strdup("malformed reply");
    } else if (status != GRPC_STATUS_OK && GRPC_SLICE_LENGTH(details)) {
        c->details = grpc_slice_to_c_string(details); /* gpr_malloc: gpr_free == free here */
        if (c->details) {
            char *d = strdup(c->details);
            gpr_free(c->details);
            c->details = d;
        }
    }
    if (recv_bb)
        grpc_byte_buffer_destroy(recv_bb);
    if (send_bb)
        grpc_byte_buffer_destroy(send_bb);
    grpc_slice_unref(details);
    gpr_free((void *)err_str);
    grpc_metadata_array_destroy(&md_in);
    grpc_metadata_array_destroy(&md_trail);
    if (call)
        grpc_call_unref(call);
    if (own)
        drain_and_destroy(own);
    return status;
}

void sfp_rpc_call_clear(sfp_rpc_call *c)
{
    if (c->reply)
        protobuf_c_message_free_unpacked(c->reply, NULL);
    free(c->details);
    c->reply = NULL;
    c->details = NULL;
}

const char *sfp_rpc_status_name(grpc_status_code s)
{
    static const char *const n[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                    "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                    "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* --------------------------------------------------- secret and PEM files */

void sfp_rpc_free_secret(char *s, size_t len)
{
    if (!s)
        return;
    explicit_bzero(s, len);
    free(s);
}

/* The whole regular file (at most max bytes), NUL-terminated. */
static int read_file(const char *path, size_t max, char **out, size_t *len,
                     sfp_rpc_file_info *info, const char **why)
{
    FILE *f;
    struct stat st;
    char *buf;
    size_t n;

    *out = NULL;
    if (!path || !path[0]) {
        *why = "no file named";
        return -EINVAL;
    }
    if (!(f = fopen(path, "rbe"))) {
        int e = errno;
        *why = strerror(e); /* glibc: static text for every errno */
        return -e;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        *why = "not a regular file";
        return -EINVAL;
    }
    if (!(buf = malloc(max + 1))) {
        fclose(f);
        *why = "out of memory";
        return -ENOMEM;
    }
    n = fread(buf, 1, max + 1, f);
    fclose(f);
    if (n > max) {
        sfp_rpc_free_secret(buf, max + 1);
        *why = "file too large";
        return -EFBIG;
    }
    buf[n] = 0;
    if (info) {
        info->mode = (unsigned)(st.st_mode & 0777);
        info->loose = (st.st_mode & 0007) || ((st.st_mode & 0070) && st.st_gid != getegid());
    }
    *out = buf;
    *len = n;
    return 0;
}

int sfp_rpc_read_token(const char *path, size_t min, char **out, size_t *len,
                       sfp_rpc_file_info *info, const char **why)
{
    char *buf = NULL;
    size_t n, cap = 0;
    int r;

    if ((r = read_file(path, SFP_RPC_TOKEN_MAX + 2, &buf, &cap, info, why)) < 0)
        return r;
    n = strcspn(buf, "\n");
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r'))
        n--;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e) {
            sfp_rpc_free_secret(buf, cap);
            *why = "the token must be printable ASCII without blanks";
            return -EINVAL;
        }
    }
    if (n < (min ? min : 1) || n > SFP_RPC_TOKEN_MAX) {
        sfp_rpc_free_secret(buf, cap);
        *why = n ? "the token has the wrong length" : "no token in the file's first line";
        return -EINVAL;
    }
    explicit_bzero(buf + n, cap - n);
    *out = buf;
    *len = n;
    return 0;
}

int sfp_rpc_read_pem(const char *path, char **out, size_t *len, sfp_rpc_file_info *info,
                     const char **why)
{
    int r = read_file(path, SFP_RPC_PEM_MAX, out, len, info, why);
    if (r == 0 && !strstr(*out, "-----BEGIN ")) {
        sfp_rpc_free_secret(*out, *len);
        *out = NULL;
        *why = "not a PEM file";
        return -EINVAL;
    }
    return r;
}
