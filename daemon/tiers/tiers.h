/*
 * tiers.h - the lower tiers sfpd can stack below DRAM (core/tier.h is
 * their interface): disk (tier_disk.c) and the network tier over peer sfpd
 * daemons (tier_peer.c).
 */
#ifndef SFPD_TIERS_TIERS_H
#define SFPD_TIERS_TIERS_H

#include "base/config.h"
#include "base/stats.h"
#include "core/tier.h"

struct uv_loop_s;

/* Disk tier over dir (created if missing). */
int sfpd_tier_disk_create(struct uv_loop_s *loop, const char *dir, uint64_t budget,
                          uint64_t segment_size, sfpd_tier **out);

/* Network tier over cfg->peers (must not be empty). */
int sfpd_tier_peer_create(struct uv_loop_s *loop, const sfpd_config *cfg, sfpd_tier **out);
/* Per-peer client stats into s->peers. 0 or -ENOMEM. */
int sfpd_tier_peer_fill_snapshot(const sfpd_tier *t, sfpd_snapshot *s);

#endif /* SFPD_TIERS_TIERS_H */
