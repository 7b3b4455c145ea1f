/* common.h - helpers shared by the daemon tests. */
#ifndef SFPD_TEST_COMMON_H
#define SFPD_TEST_COMMON_H

#include "harness.h"
#include <sfp/client.h>
#include <sfp/sfp.h>
#include <string.h>
#include <unistd.h>

/* Random finite values of p->dtype, already on p's grid (so round trips
 * are bit-exact). buf holds n * dtype size bytes. */
static inline void tc_fill(void *buf, size_t n, const sfp_params *p, uint64_t seed)
{
    uint64_t s = seed;
    float *tmp = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = th_rand(&s);
        uint32_t sign = (uint32_t)(r & 1) << 31;
        uint32_t exp = 100 + (uint32_t)((r >> 1) % 40);  /* about 2^-27 .. 2^12 */
        uint32_t mant = (uint32_t)(r >> 16) & 0x7fffff;
        uint32_t bits = sign | exp << 23 | mant;
        if ((r >> 60) == 0)
            bits = 0; /* some zeros */
        memcpy(&tmp[i], &bits, 4);
    }
    if (p->dtype == SFP_DTYPE_BF16) {
        uint16_t *b = buf;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &tmp[i], 4);
            b[i] = (uint16_t)(bits >> 16);
        }
    } else {
        memcpy(buf, tmp, n * 4);
    }
    free(tmp);
    if (sfp_quantize(buf, buf, n, p, NULL) != 0) {
        fprintf(stderr, "sfp_quantize failed\n");
        th_fail();
    }
}

static inline sfpc *tc_connect(const th_daemon *d, const char *job, uint32_t rank, size_t shm)
{
    sfpc_options o;
    sfpc *c = NULL;
    int e;
    sfpc_options_default(&o);
    o.socket_path = d->socket;
    o.job_id = job;
    o.rank = rank;
    o.shm_size = shm;
    o.timeout_ms = 20000;
    e = sfpc_connect(&o, &c);
    TH_CHECK(e == 0, "sfpc_connect(%s): %s %s", job, sfpc_strerror(e), c ? "" : "");
    return c;
}

/* Counter "name value" from the daemon's stats text (IPC Stats); ~0 if absent. */
static inline unsigned long long tc_stat(sfpc *c, const char *name)
{
    sfpc_stats s;
    unsigned long long v = ~0ull;
    char pat[96];
    TH_CHECK(sfpc_stats_get(c, &s) == 0, "stats");
    snprintf(pat, sizeof(pat), "\n%s ", name);
    const char *at = s.text ? strstr(s.text, pat) : NULL;
    if (at)
        v = strtoull(at + strlen(pat), NULL, 10);
    else if (s.text && !strncmp(s.text, pat + 1, strlen(pat) - 1))
        v = strtoull(s.text + strlen(pat) - 1, NULL, 10);
    sfpc_stats_free(&s);
    return v;
}

/* Polls counter name until it reaches at least min or timeout_s passes;
 * returns the last value read (~0 if absent). */
static inline unsigned long long tc_wait_stat(sfpc *c, const char *name,
                                              unsigned long long min, double timeout_s)
{
    double t0 = th_now();
    unsigned long long v;
    while ((v = tc_stat(c, name)) != ~0ull && v < min && th_now() - t0 < timeout_s)
        usleep(2000);
    return v;
}

#endif
