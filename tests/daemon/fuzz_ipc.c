/*
 * fuzz_ipc: the daemon's IPC message parser (daemon/edges/ipc/ipc.c). The input is a
 * byte stream as a client would send it: length-prefixed messages, parsed,
 * validated and converted exactly as the daemon does before dispatch, and a
 * reply serialized for each. Built with libFuzzer under -Dfuzzing=true, else
 * with tests/fuzz/replay_main.c replaying corpus/fuzz_ipc/.
 */
#include "edges/ipc/ipc.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        size_t len = 0;
        sfpd_request *req = NULL;
        uint64_t id = 0;
        const char *why = NULL;
        bool hello = false;
        sfpd_response resp = SFP__IPC__V1__RESPONSE__INIT;
        uint8_t *out = NULL;
        size_t out_len = 0;
        int r = sfpd_ipc_frame(data + off, size - off, 64 * 1024, &len);

        if (r <= 0)
            break;
        r = sfpd_ipc_decode(data + off + SFPD_IPC_PREFIX, len, &req, &id, &hello, &why);
        off += SFPD_IPC_PREFIX + len;
        resp.id = id;
        if (r < 0) {
            if (!why)
                abort(); /* every rejection carries a reason */
            resp.status = (Sfp__Ipc__V1__Status)-r;
            resp.message = (char *)why;
        } else {
            sfpd_key k;
            sfp_params p;
            switch (req->body_case) {
            case SFP__IPC__V1__REQUEST__BODY_PUT:
                if (sfpd_ipc_key(req->put->key, &k) < 0 || sfpd_ipc_params(req->put->params, &p) < 0)
                    abort(); /* validated requests must convert */
                (void)sfpd_range_ok(1u << 20, req->put->offset, req->put->length);
                if (req->put->length != req->put->count * sfp_dtype_size(p.dtype))
                    abort();
                break;
            case SFP__IPC__V1__REQUEST__BODY_GET:
                if (sfpd_ipc_key(req->get->key, &k) < 0)
                    abort();
                (void)sfpd_range_ok(1u << 20, req->get->offset, req->get->capacity);
                break;
            case SFP__IPC__V1__REQUEST__BODY_PUT_FRAME:
                if (sfpd_ipc_key(req->put_frame->key, &k) < 0)
                    abort();
                (void)sfpd_range_ok(1u << 20, req->put_frame->offset, req->put_frame->length);
                break;
            case SFP__IPC__V1__REQUEST__BODY_GET_FRAME:
                if (sfpd_ipc_key(req->get_frame->key, &k) < 0)
                    abort();
                (void)sfpd_range_ok(1u << 20, req->get_frame->offset, req->get_frame->capacity);
                break;
            case SFP__IPC__V1__REQUEST__BODY_DROP:
                if (sfpd_ipc_key(req->drop->key, &k) < 0)
                    abort();
                break;
            case SFP__IPC__V1__REQUEST__BODY_ENCODE:
                if (sfpd_ipc_params(req->encode->params, &p) < 0)
                    abort();
                break;
            case SFP__IPC__V1__REQUEST__BODY_HELLO:
                if (!req->hello->job_id || strlen(req->hello->job_id) > SFPD_JOB_ID_MAX)
                    abort();
                break;
            default:
                break;
            }
            resp.message = (char *)"";
        }
        if (sfpd_ipc_encode(&resp, &out, &out_len) == 0) {
            size_t back = 0;
            if (sfpd_ipc_frame(out, out_len, 1u << 20, &back) != 1 || back + SFPD_IPC_PREFIX != out_len)
                abort();
            sfpd_free(out);
        }
        sfpd_ipc_request_free(req);
    }
    return 0;
}
