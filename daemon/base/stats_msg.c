/* stats_msg.c - see stats_msg.h. */
#include "base/stats_msg.h"

#include <string.h>

void sfpd_snapshot_fill_counters(const sfpd_snapshot *s, ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_UINT64 || fd->label == PROTOBUF_C_LABEL_REPEATED)
            continue;
        for (int c = 0; c < SFPD_C_COUNT; c++) {
            if (strcmp(fd->name, sfpd_counter_name(c)) == 0) {
                memcpy((char *)m + fd->offset, &s->counters[c], sizeof(uint64_t));
                break;
            }
        }
    }
}
