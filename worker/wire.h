/*
 * wire.h - bytes through a network interface, as the kernel counts them
 * (/proc/net/dev, which shows the network namespace of the reading
 * process). sfp-train reads them around every step to report the bytes that
 * really crossed the node's link (--wire-if, docs/TRAINING.md).
 */
#ifndef SFPW_WIRE_H
#define SFPW_WIRE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Finds interface ifname in text[0..len) in the format of /proc/net/dev
 * (two header lines, then "name: rx_bytes rx_packets ... tx_bytes ..." with
 * 16 counters) and stores its received and transmitted bytes. Returns 0, or
 * SFP_EINVAL when the interface is not there or its line is malformed; *rx
 * and *tx are written only on success. text need not be NUL-terminated.
 */
int sfpw_wire_parse(const char *text, size_t len, const char *ifname,
                    uint64_t *rx, uint64_t *tx);

/* The same from /proc/net/dev: 0, SFP_EINVAL, or SFP_EUNSUPPORTED when it cannot be
 * read. */
int sfpw_wire_read(const char *ifname, uint64_t *rx, uint64_t *tx);

#endif
