/* ipc.c - framing, validation and serialization of IPC messages. */
#include "edges/ipc/ipc.h"
#include "base/wire.h"

#include <errno.h>
#include <string.h>

#define ST(x) SFP__IPC__V1__STATUS__##x

int sfpd_ipc_frame(const uint8_t *buf, size_t len, size_t max_message, size_t *msg_len)
{
    uint32_t n;
    if (len < SFPD_IPC_PREFIX)
        return 0;
    n = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
    if (n > max_message)
        return -ST(E_TOO_LARGE);
    if (len - SFPD_IPC_PREFIX < n)
        return 0;
    *msg_len = n;
    return 1;
}

/* protobuf-c allocator through the counted wrappers */
static void *pb_alloc(void *data, size_t size) { (void)data; return sfpd_malloc(size); }
static void pb_free(void *data, void *p) { (void)data; sfpd_free(p); }
static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

int sfpd_ipc_key(const Sfp__Ipc__V1__Key *k, sfpd_key *out)
{
    size_t n;
    if (!k || !k->tensor)
        return -ST(E_INVALID);
    n = strlen(k->tensor);
    if (n == 0 || n > SFPD_TENSOR_NAME_MAX)
        return -ST(E_INVALID);
    memset(out, 0, sizeof(*out));
    out->rank = k->rank;
    out->step = k->step;
    out->name_len = (uint16_t)n;
    memcpy(out->name, k->tensor, n);
    return 0;
}

int sfpd_ipc_params(const Sfp__Ipc__V1__Params *p, sfp_params *out)
{
    sfp_params q;
    if (!p)
        return -ST(E_INVALID);
    sfp_params_default(&q);
    if (sfp_dtype_size((sfp_dtype)p->dtype) == 0)
        return -ST(E_INVALID);
    if (p->mbits > 23 || p->ebits > 8 || p->rounding > 2 ||
        (p->coder >= SFP_CODER_COUNT && p->coder != (unsigned)SFP_CODER_AUTO) ||
        p->anchor < -1 || p->anchor > 254 || p->gecko_group > 64 || p->zmap > 1)
        return -ST(E_INVALID);
    q.dtype = (sfp_dtype)p->dtype;
    q.mbits = p->mbits;
    q.ebits = p->ebits;
    q.rounding = (sfp_rounding)p->rounding;
    q.seed = p->seed;
    q.anchor = p->anchor;
    q.coder = (sfp_coder)p->coder;
    q.gecko_group = p->gecko_group;
    q.zmap = p->zmap;
    if (sfp_params_check(&q) != 0)
        return -ST(E_INVALID);
    *out = q;
    return 0;
}

static int validate(const sfpd_request *r, const char **why)
{
    sfpd_key k;
    sfp_params p;

    switch (r->body_case) {
    case SFP__IPC__V1__REQUEST__BODY_HELLO: {
        const Sfp__Ipc__V1__Hello *h = r->hello;
        size_t n = h->job_id ? strlen(h->job_id) : 0;
        if (n == 0 || n > SFPD_JOB_ID_MAX) {
            *why = "job_id must be 1..128 bytes";
            return -ST(E_INVALID);
        }
        return 0;
    }
    case SFP__IPC__V1__REQUEST__BODY_PUT:
        if (sfpd_ipc_key(r->put->key, &k) < 0) {
            *why = "invalid key";
            return -ST(E_INVALID);
        }
        if (sfpd_ipc_params(r->put->params, &p) < 0) {
            *why = "invalid params";
            return -ST(E_INVALID);
        }
        if (r->put->count == 0 || r->put->count > SFP_FRAME_MAX_COUNT ||
            r->put->count * sfp_dtype_size(p.dtype) != r->put->length) {
            *why = "length does not match count and dtype";
            return -ST(E_INVALID);
        }
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_GET:
        if (sfpd_ipc_key(r->get->key, &k) < 0) {
            *why = "invalid key";
            return -ST(E_INVALID);
        }
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_PUT_FRAME:
        /* the frame itself is checked by the store (E_CODEC, E_TOO_LARGE) */
        if (sfpd_ipc_key(r->put_frame->key, &k) < 0) {
            *why = "invalid key";
            return -ST(E_INVALID);
        }
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_GET_FRAME:
        if (sfpd_ipc_key(r->get_frame->key, &k) < 0) {
            *why = "invalid key";
            return -ST(E_INVALID);
        }
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_DROP:
        if (sfpd_ipc_key(r->drop->key, &k) < 0) {
            *why = "invalid key";
            return -ST(E_INVALID);
        }
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_ENCODE:
        if (sfpd_ipc_params(r->encode->params, &p) < 0) {
            *why = "invalid params";
            return -ST(E_INVALID);
        }
        if (r->encode->count == 0 || r->encode->count > SFP_FRAME_MAX_COUNT ||
            r->encode->count * sfp_dtype_size(p.dtype) != r->encode->length) {
            *why = "length does not match count and dtype";
            return -ST(E_INVALID);
        }
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_DECODE:
        if (r->decode->length < SFP_FRAME_HEADER_SIZE) {
            *why = "frame shorter than a header";
            return -ST(E_INVALID);
        }
        return 0;
    case SFP__IPC__V1__REQUEST__BODY_PREFETCH:
    case SFP__IPC__V1__REQUEST__BODY_END_JOB:
    case SFP__IPC__V1__REQUEST__BODY_STATS:
    case SFP__IPC__V1__REQUEST__BODY_POLICY:
        return 0;
    default:
        *why = "unknown or missing request type";
        return -ST(E_UNKNOWN_TYPE);
    }
}

int sfpd_ipc_decode(const uint8_t *payload, size_t len, sfpd_request **out,
                    uint64_t *req_id, bool *hello, const char **why)
{
    sfpd_request *r;
    int st;

    *req_id = 0;
    *hello = false;
    r = sfp__ipc__v1__request__unpack(&pb_allocator, len, payload);
    if (!r) {
        *why = "cannot parse request";
        return -ST(E_INVALID);
    }
    *req_id = r->id;
    *hello = r->body_case == SFP__IPC__V1__REQUEST__BODY_HELLO;
    /* protobuf-c cuts a string at a NUL and takes any bytes for UTF-8 */
    st = sfpd_wire_strings_ok(&sfp__ipc__v1__request__descriptor, payload, len, why) < 0
             ? -ST(E_INVALID)
             : validate(r, why);
    if (st < 0) {
        sfp__ipc__v1__request__free_unpacked(r, &pb_allocator);
        return st;
    }
    *out = r;
    return 0;
}

void sfpd_ipc_request_free(sfpd_request *r)
{
    if (r)
        sfp__ipc__v1__request__free_unpacked(r, &pb_allocator);
}

int sfpd_ipc_encode(const sfpd_response *r, uint8_t **out, size_t *out_len)
{
    size_t n = sfp__ipc__v1__response__get_packed_size(r);
    uint8_t *b;
    if (n > UINT32_MAX)
        return -EOVERFLOW;
    b = sfpd_malloc(n + SFPD_IPC_PREFIX);
    if (!b)
        return -ENOMEM;
    b[0] = (uint8_t)n;
    b[1] = (uint8_t)(n >> 8);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 24);
    sfp__ipc__v1__response__pack(r, b + SFPD_IPC_PREFIX);
    *out = b;
    *out_len = n + SFPD_IPC_PREFIX;
    return 0;
}

const char *sfpd_status_name(int status)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&sfp__ipc__v1__status__descriptor, status < 0 ? -status : status);
    return v ? v->name : "?";
}
