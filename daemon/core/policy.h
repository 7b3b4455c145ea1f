/*
 * policy.h - the width policies operators set per job (gRPC
 * Control.SetPolicy) and workers read (IPC PolicyRequest, the generation in
 * every PutReply). Kept in the daemon's memory, at most SFPD_POLICY_MAX
 * jobs, lost at restart. Loop thread only.
 */
#ifndef SFPD_CORE_POLICY_H
#define SFPD_CORE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define SFPD_POLICY_MAX 4096u

/*
 * One job's policy. As stored, a bound of 0 means "no bound" for
 * max_mbits, min_ebits and max_ebits (min_mbits 0 is the bound 0);
 * sfpd_policy_resolve() fills those in (0..23 mantissa, 1..8 exponent).
 */
typedef struct sfpd_policy {
    uint64_t generation;         /* 0: none set; +1 per set        */
    uint32_t min_mbits, max_mbits, min_ebits, max_ebits;
    bool pin;                    /* every tensor uses the pin_*    */
    uint32_t pin_mbits, pin_ebits;
    int coder;                   /* -1: the worker's choice, else sfp_coder */
    bool freeze;                 /* stop learning the widths       */
} sfpd_policy;

typedef struct sfpd_policies sfpd_policies;

/* 0 or SFPD_E_NO_MEMORY. */
int sfpd_policies_create(sfpd_policies **out);
/* Accepts NULL; sets *p to NULL. */
void sfpd_policies_destroy(sfpd_policies **p);

/* NULL if p is acceptable, else why not (a static text). */
const char *sfpd_policy_invalid(const sfpd_policy *p);

/* Fills *out with the policy of job_id as stored; false (and a default
 * policy, generation 0) when none was set. p may be NULL. */
bool sfpd_policy_get(const sfpd_policies *p, const char *job_id, sfpd_policy *out);

/* The policy with every bound filled in (generation 0 when none). */
void sfpd_policy_resolved(const sfpd_policies *p, const char *job_id, sfpd_policy *out);

/*
 * Stores in (its generation is ignored) as job_id's policy, one generation
 * after the last. Fills *stored. 0, SFPD_E_INVALID (sfpd_policy_invalid),
 * SFPD_E_LIMIT (SFPD_POLICY_MAX jobs have one) or SFPD_E_NO_MEMORY.
 */
int sfpd_policy_set(sfpd_policies *p, const char *job_id, const sfpd_policy *in, sfpd_policy *stored);

#endif /* SFPD_CORE_POLICY_H */
