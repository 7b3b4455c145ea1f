/*
 * stats_msg.h - counters of a snapshot into a protobuf-c message, by name:
 * the one mapping the reply messages of the edges share (the IPC
 * StatsReply and the gRPC StatsSnapshot name their headline counters like
 * the counters of stats.h).
 */
#ifndef SFPD_BASE_STATS_MSG_H
#define SFPD_BASE_STATS_MSG_H

#include <protobuf-c/protobuf-c.h>

#include "base/stats.h"

/* Sets every uint64 field of m whose name is a counter's name
 * (sfpd_counter_name) to that counter of s; other fields are untouched.
 * Call it first: a field named like a counter but meaning something else
 * (StatsSnapshot.bytes_in, a gauge) is then set again by the caller. */
void sfpd_snapshot_fill_counters(const sfpd_snapshot *s, ProtobufCMessage *m);

#endif /* SFPD_BASE_STATS_MSG_H */
