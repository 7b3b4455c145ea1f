/* wire.c - see wire.h. */
#include "base/wire.h"

#include <sfp/sfp.h>

#define MAX_DEPTH 8

static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *pos < len; shift += 7) {
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, unsigned depth,
                const char **why)
{
    size_t pos = 0;
    *why = "malformed message";
    if (depth > MAX_DEPTH)
        return -1;
    while (pos < len) {
        uint64_t key, n;
        const ProtobufCFieldDescriptor *f;
        if (varint(p, len, &pos, &key) < 0)
            return -1;
        f = key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
        switch (key & 7) {
        case 0:
            if (varint(p, len, &pos, &n) < 0)
                return -1;
            break;
        case 1:
            if (len - pos < 8)
                return -1;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                return -1;
            pos += 4;
            break;
        case 2:
            if (varint(p, len, &pos, &n) < 0 || n > len - pos)
                return -1;
            if (f && f->type == PROTOBUF_C_TYPE_STRING &&
                sfp_text_check((const char *)p + pos, (size_t)n) != 0) {
                *why = "a string is not UTF-8 text (control characters, NUL and invalid "
                       "UTF-8 are refused)";
                return -1;
            }
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                walk(f->descriptor, p + pos, (size_t)n, depth + 1, why) < 0)
                return -1;
            pos += (size_t)n;
            break;
        default:
            return -1; /* groups are not proto3 */
        }
    }
    return 0;
}

int sfpd_wire_strings_ok(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                         const char **why)
{
    return walk(d, data, len, 0, why);
}
