/* registry.c - the tier registry (tiers.h): one row per kind of lower tier. */
#include "tiers/tiers.h"

const sfpd_tier_kind sfpd_tier_kinds[] = {
    {"disk", sfpd_tier_disk_create, NULL},
    {"peer", sfpd_tier_peer_create, sfpd_tier_peer_unused},
};

const size_t sfpd_n_tier_kinds = SFPD_ARRAY_SIZE(sfpd_tier_kinds);
