/* sfpd.c - what base/sfpd.h declares: logging, counted allocation, clock,
 * keys. */
#include "base/sfpd.h"
#include "base/stats.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

static atomic_int log_level = SFPD_LOG_INFO;

void sfpd_log_set_level(int level) { atomic_store(&log_level, level); }

void sfpd_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (level > atomic_load(&log_level))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ sfpd %s: ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* Job ids, tensor names and client names come from clients: a control
     * character in them must not forge or break log lines. */
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    /* one write() per line so concurrent threads do not interleave */
    fprintf(stderr, "%s\n", line);

}

static atomic_uint_fast64_t alloc_countdown;

void sfpd_alloc_fail_at(uint64_t n) { atomic_store(&alloc_countdown, n); }

static bool alloc_should_fail(void)
{
    uint_fast64_t c = atomic_load_explicit(&alloc_countdown, memory_order_relaxed);
    while (c != 0) {
        if (atomic_compare_exchange_weak(&alloc_countdown, &c, c - 1))
            return c == 1;
    }
    return false;
}

void *sfpd_malloc(size_t n)
{
    void *p = alloc_should_fail() ? NULL : malloc(n ? n : 1);
    if (!p)
        sfpd_stat_inc(SFPD_C_ALLOC_FAILS, 1);
    return p;
}

void *sfpd_calloc(size_t n, size_t size)
{
    void *p = alloc_should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
    if (!p)
        sfpd_stat_inc(SFPD_C_ALLOC_FAILS, 1);
    return p;
}

void *sfpd_realloc(void *old, size_t n)
{
    void *p = alloc_should_fail() ? NULL : realloc(old, n ? n : 1);
    if (!p)
        sfpd_stat_inc(SFPD_C_ALLOC_FAILS, 1);
    return p;
}

char *sfpd_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sfpd_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void sfpd_free(void *p) { free(p); }

uint64_t sfpd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sfpd_key_hash(const sfpd_key *k, const void *job)
{
    uint64_t h = XXH3_64bits_withSeed(k->name, k->name_len, k->step * 0x9E3779B97F4A7C15ull ^ k->rank);
    return h ^ ((uint64_t)(uintptr_t)job * 0xff51afd7ed558ccdull);
}

bool sfpd_key_equal(const sfpd_key *a, const sfpd_key *b)
{
    return a->rank == b->rank && a->step == b->step && a->name_len == b->name_len &&
           memcmp(a->name, b->name, a->name_len) == 0;
}
