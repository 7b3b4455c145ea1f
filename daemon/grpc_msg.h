/*
 * grpc_msg.h - protobuf-c messages in and out of gRPC byte buffers, for the
 * server (grpc_server.c, grpc_peer.c) and the peer client (tier_peer.c).
 */
#ifndef SFPD_GRPC_MSG_H
#define SFPD_GRPC_MSG_H

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

/* Packs m into a new byte buffer (owned by the caller), or NULL. */
grpc_byte_buffer *sfpd_grpc_pack(const ProtobufCMessage *m);

/* Decodes bb (not consumed) with d; NULL when bb is malformed. */
ProtobufCMessage *sfpd_grpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d);

#endif /* SFPD_GRPC_MSG_H */
