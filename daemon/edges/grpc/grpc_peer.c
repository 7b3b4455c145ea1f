/*
 * grpc_peer.c - the sfp.v1.Peer methods: decode, dispatch to the core's
 * store of frames held for other daemons (core/held.c), encode the reply.
 * Rows PUT_FRAME, GET_FRAME, DROP_FRAME and CAPACITY of grpc_methods.h; the
 * server checks the peer token before the message is read and the request
 * checker (grpc_req.c) the node name, so the handlers see authenticated,
 * well-formed requests only. Loop thread.
 */
#include "edges/grpc/grpc_server.h"
#include "core/status.h"

#include "sfp/v1/sfp.pb-c.h"

grpc_status_code sfpd_grpc_do_put_frame(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                        const char **msg)
{
    const Sfp__V1__PutFrameRequest *r = req;
    Sfp__V1__PutFrameResponse m = SFP__V1__PUT_FRAME_RESPONSE__INIT;
    sfpd_held_room room;
    int e = sfpd_held_put(ctx->held, r->node, r->instance, r->frame_id, r->frame.data, r->frame.len,
                          &room);

    if (e < 0) {
        *msg = e == SFPD_E_CORRUPT ? "frame failed verification"
               : e == SFPD_E_QUOTA ? "over peer_serve_max_bytes or peer_serve_budget"
               : e == SFPD_E_LIMIT ? "too many peer nodes"
                                   : sfpd_strerror(e);
        return sfpd_grpc_status_of(e);
    }
    m.free_bytes = room.free_bytes;
    m.held_bytes = room.held_bytes;
    m.lease_seconds = room.lease_seconds;
    return sfpd_grpc_reply(&m.base, reply, msg);
}

grpc_status_code sfpd_grpc_do_get_frame(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                        const char **msg)
{
    const Sfp__V1__GetFrameRequest *r = req;
    Sfp__V1__GetFrameResponse m = SFP__V1__GET_FRAME_RESPONSE__INIT;
    const void *frame;
    size_t len;
    int e = sfpd_held_get(ctx->held, r->node, r->instance, r->frame_id, &frame, &len);

    if (e < 0) {
        *msg = e == SFPD_E_NOT_FOUND ? "frame not held" : "held frame failed verification";
        return sfpd_grpc_status_of(e);
    }
    m.frame.data = (uint8_t *)frame;
    m.frame.len = len;
    return sfpd_grpc_reply(&m.base, reply, msg);
}

grpc_status_code sfpd_grpc_do_drop_frame(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                         const char **msg)
{
    const Sfp__V1__DropFrameRequest *r = req;
    Sfp__V1__DropFrameResponse m = SFP__V1__DROP_FRAME_RESPONSE__INIT;
    sfpd_held_room room;
    uint64_t first = r->frame_id, dropped = 0, more = 0;

    /* frame_id and more_frame_ids name the frames (all: every frame) */
    sfpd_held_drop(ctx->held, r->node, r->instance, &first, 1, r->all, &dropped, &room);
    if (!r->all && r->n_more_frame_ids)
        sfpd_held_drop(ctx->held, r->node, r->instance, r->more_frame_ids, r->n_more_frame_ids,
                       false, &more, &room);
    m.frames_dropped = dropped + more;
    m.free_bytes = room.free_bytes;
    m.lease_seconds = room.lease_seconds;
    return sfpd_grpc_reply(&m.base, reply, msg);
}

grpc_status_code sfpd_grpc_do_capacity(sfpd_grpc_ctx *ctx, const void *req, grpc_byte_buffer **reply,
                                       const char **msg)
{
    const Sfp__V1__CapacityRequest *r = req;
    Sfp__V1__CapacityResponse m = SFP__V1__CAPACITY_RESPONSE__INIT;
    sfpd_held_room room;
    int e = sfpd_held_capacity(ctx->held, r->node, r->instance, &room);

    if (e < 0) {
        *msg = e == SFPD_E_LIMIT ? "too many peer nodes" : sfpd_strerror(e);
        return sfpd_grpc_status_of(e);
    }
    m.free_bytes = room.free_bytes;
    m.held_bytes = room.held_bytes;
    m.held_frames = room.held_frames;
    m.limit_bytes = room.limit_bytes;
    m.lease_seconds = room.lease_seconds;
    return sfpd_grpc_reply(&m.base, reply, msg);
}
