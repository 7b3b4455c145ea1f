/*
 * sfpd.h - internals shared by the sfpd modules (not installed).
 *
 * Threading: one libuv loop thread owns every object below unless a comment
 * says otherwise. Pool threads (uv_queue_work) only touch the buffers handed
 * to them in their work item, plus the per-thread stats block (stats.h).
 */
#ifndef SFPD_SFPD_H
#define SFPD_SFPD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ------------------------------------------------------------- logging */

typedef enum sfpd_log_level {
    SFPD_LOG_ERROR = 0,
    SFPD_LOG_WARN = 1,
    SFPD_LOG_INFO = 2,
    SFPD_LOG_DEBUG = 3,
} sfpd_log_level;

/* Thread safe; writes one line to stderr with a level prefix. */
void sfpd_log_set_level(int level);
void sfpd_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define sfpd_err(...) sfpd_log(SFPD_LOG_ERROR, __VA_ARGS__)
#define sfpd_warn(...) sfpd_log(SFPD_LOG_WARN, __VA_ARGS__)
#define sfpd_info(...) sfpd_log(SFPD_LOG_INFO, __VA_ARGS__)
#define sfpd_debug(...) sfpd_log(SFPD_LOG_DEBUG, __VA_ARGS__)

/* ------------------------------------------------------------ allocation */

/*
 * Every daemon allocation goes through these counted wrappers (thread safe).
 * A failure is counted in the stats (alloc_fails). sfpd_alloc_fail_at(n)
 * makes the n-th allocation from now fail (0 disables): fault injection for
 * tests. sfpd_free(NULL) is a no-op.
 */
void *sfpd_malloc(size_t n);
void *sfpd_calloc(size_t n, size_t size);
void *sfpd_realloc(void *p, size_t n);
char *sfpd_strdup(const char *s);
void sfpd_free(void *p);
void sfpd_alloc_fail_at(uint64_t n);

/* -------------------------------------------------------------- helpers */

#define SFPD_RETURN_IF(cond, code) \
    do { if (cond) return (code); } while (0)

#define SFPD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* 1 if [off, off+len) lies within a region of size bytes (overflow safe). */
static inline int sfpd_range_ok(uint64_t size, uint64_t off, uint64_t len)
{
    return off <= size && len <= size - off;
}

/* Monotonic clock in nanoseconds. */
uint64_t sfpd_now_ns(void);

/* Intrusive doubly linked list (circular, with a sentinel head). */
typedef struct sfpd_list {
    struct sfpd_list *prev, *next;
} sfpd_list;

static inline void sfpd_list_init(sfpd_list *h) { h->prev = h->next = h; }
static inline bool sfpd_list_empty(const sfpd_list *h) { return h->next == h; }
static inline void sfpd_list_insert_after(sfpd_list *pos, sfpd_list *n)
{
    n->prev = pos;
    n->next = pos->next;
    pos->next->prev = n;
    pos->next = n;
}
static inline void sfpd_list_push_back(sfpd_list *h, sfpd_list *n)
{
    sfpd_list_insert_after(h->prev, n);
}
static inline void sfpd_list_remove(sfpd_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
#define sfpd_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---------------------------------------------------------------- limits */

#define SFPD_PROTOCOL_VERSION 1u
#define SFPD_JOB_ID_MAX 128u
#define SFPD_TENSOR_NAME_MAX 255u



/* ------------------------------------------------------------------ keys */

/* Key of a stash inside a job (the job is implied by the connection). */
typedef struct sfpd_key {
    uint32_t rank;
    uint64_t step;
    uint16_t name_len;
    char name[SFPD_TENSOR_NAME_MAX + 1]; /* NUL terminated for logs */
} sfpd_key;

uint64_t sfpd_key_hash(const sfpd_key *k, const void *job);
bool sfpd_key_equal(const sfpd_key *a, const sfpd_key *b);
#endif /* SFPD_SFPD_H */
