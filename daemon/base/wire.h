/*
 * wire.h - a check of the strings in a protobuf message's wire form, which
 * protobuf-c does not do: it unpacks a string field into a C string, so an
 * embedded NUL silently cuts it, and it takes any bytes for UTF-8. The
 * edges run this on every request they accept (IPC and gRPC), after
 * protobuf-c has unpacked it.
 */
#ifndef SFPD_BASE_WIRE_H
#define SFPD_BASE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/*
 * Walks data[0..len), a message of type d, into its sub-messages; every
 * string field must be text (sfp_text_check: UTF-8 without control
 * characters, so no NUL). 0, or -1 with *why a static reason (also for
 * wire data protobuf-c would not have accepted).
 */
int sfpd_wire_strings_ok(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                         const char **why);

#endif /* SFPD_BASE_WIRE_H */
