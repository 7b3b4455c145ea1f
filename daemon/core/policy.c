/* policy.c - per-job width policies (see policy.h). */
#include "core/policy.h"
#include "core/status.h"
#include "base/sfpd.h"

#include <stdio.h>
#include <string.h>

#include <sfp/sfp.h>

typedef struct rec {
    char job_id[SFPD_JOB_ID_MAX + 1];
    sfpd_policy p;
    sfpd_list link;
} rec;

struct sfpd_policies {
    sfpd_list recs;
    uint32_t n;
};

int sfpd_policies_create(sfpd_policies **out)
{
    sfpd_policies *p = sfpd_calloc(1, sizeof(*p));
    if (!p)
        return SFPD_E_NO_MEMORY;
    sfpd_list_init(&p->recs);
    *out = p;
    return 0;
}

void sfpd_policies_destroy(sfpd_policies **pp)
{
    sfpd_policies *p = pp ? *pp : NULL;
    if (!p)
        return;
    *pp = NULL;
    while (!sfpd_list_empty(&p->recs)) {
        rec *r = sfpd_container_of(p->recs.next, rec, link);
        sfpd_list_remove(&r->link);
        sfpd_free(r);
    }
    sfpd_free(p);
}

static rec *find(const sfpd_policies *p, const char *job_id)
{
    if (!p)
        return NULL;
    for (sfpd_list *l = p->recs.next; l != &p->recs; l = l->next) {
        rec *r = sfpd_container_of(l, rec, link);
        if (strcmp(r->job_id, job_id) == 0)
            return r;
    }
    return NULL;
}

const char *sfpd_policy_invalid(const sfpd_policy *p)
{
    uint32_t mmax = p->max_mbits ? p->max_mbits : 23;
    uint32_t emin = p->min_ebits ? p->min_ebits : 1;
    uint32_t emax = p->max_ebits ? p->max_ebits : 8;
    if (p->min_mbits > 23 || mmax > 23)
        return "mantissa bits must lie in 0..23";
    if (emin > 8 || emax > 8)
        return "exponent bits must lie in 1..8";
    if (p->min_mbits > mmax || emin > emax)
        return "min bits above max bits";
    if (p->pin && (p->pin_mbits > 23 || p->pin_ebits < 1 || p->pin_ebits > 8))
        return "pinned widths out of range (mantissa 0..23, exponent 1..8)";
    if (p->coder < -1 || p->coder >= SFP_CODER_COUNT)
        return "unknown coder";
    return NULL;
}

bool sfpd_policy_get(const sfpd_policies *p, const char *job_id, sfpd_policy *out)
{
    const rec *r = find(p, job_id);
    if (r) {
        *out = r->p;
        return true;
    }
    memset(out, 0, sizeof(*out));
    out->coder = -1;
    return false;
}

void sfpd_policy_resolved(const sfpd_policies *p, const char *job_id, sfpd_policy *out)
{
    sfpd_policy_get(p, job_id, out);
    if (!out->max_mbits)
        out->max_mbits = 23;
    if (!out->min_ebits)
        out->min_ebits = 1;
    if (!out->max_ebits)
        out->max_ebits = 8;
}

int sfpd_policy_set(sfpd_policies *p, const char *job_id, const sfpd_policy *in, sfpd_policy *stored)
{
    rec *r = find(p, job_id);
    uint64_t gen;

    if (sfpd_policy_invalid(in))
        return SFPD_E_INVALID;
    if (!r) {
        if (p->n >= SFPD_POLICY_MAX)
            return SFPD_E_LIMIT;
        if (!(r = sfpd_calloc(1, sizeof(*r))))
            return SFPD_E_NO_MEMORY;
        snprintf(r->job_id, sizeof(r->job_id), "%s", job_id);
        r->p.coder = -1;
        sfpd_list_push_back(&p->recs, &r->link);
        p->n++;
    }
    gen = r->p.generation + 1;
    r->p = *in;
    r->p.generation = gen;
    *stored = r->p;
    return 0;
}
