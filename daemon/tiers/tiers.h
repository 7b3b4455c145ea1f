/*
 * tiers.h - the lower tiers sfpd can stack below DRAM (core/tier.h is
 * their interface) and their registry (registry.c): disk (tier_disk.c) and
 * the network tier over peer sfpd daemons (tier_peer.c). Adding a tier is
 * its own file, one row in registry.c and the docs (docs/DAEMON.md).
 */
#ifndef SFPD_TIERS_TIERS_H
#define SFPD_TIERS_TIERS_H

#include "base/config.h"
#include "base/stats.h"
#include "core/tier.h"

struct uv_loop_s;

/* The registry: every kind of lower tier, by its tier_order word. */
extern const sfpd_tier_kind sfpd_tier_kinds[];
extern const size_t sfpd_n_tier_kinds;

/* Disk tier over cfg->spill_dir: the spill tier ("disk"). */
int sfpd_tier_disk_create(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_tier **out);
/* A disk tier over dir (created if missing); counted: its I/O feeds the
 * spill and disk_* stats (the network tier's write-through copy does not). */
int sfpd_tier_disk_open(struct uv_loop_s *loop, const char *dir, uint64_t budget,
                        uint64_t segment_size, bool counted, sfpd_tier **out);

/* Network tier over cfg->peers ("peer"). */
int sfpd_tier_peer_create(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_tier **out);
/* Warns when peers is set but tier_order has no peer tier. */
void sfpd_tier_peer_unused(const sfpd_config *cfg);

#endif /* SFPD_TIERS_TIERS_H */
