/*
 * harness.h - start the real sfpd for integration tests: temp socket, temp
 * spill dir, bounded waits, killed by pid. Nothing outside the temp dir is
 * touched; only processes started here are signalled.
 */
#ifndef SFPD_TEST_HARNESS_H
#define SFPD_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

typedef struct th_daemon {
    pid_t pid;
    char dir[256];       /* temp dir of this test                   */
    char socket[300];
    char spill[300];
    char log[300];
    int exit_status;     /* after th_stop: exit code, or 128+signal  */
} th_daemon;

#define TH_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
            th_fail();                                                       \
        }                                                                    \
    } while (0)

/* Sets the sfpd path from argv[1] or $SFPD_BIN and arms a global timeout
 * (times $SFPD_TEST_TIMEOUT_MULTIPLIER, e.g. under valgrind). */
void th_init(int argc, char **argv, unsigned timeout_s);
const char *th_sfpd_path(void);
/* Makes a fresh temp dir (socket, spill dir and log inside). */
void th_prepare(th_daemon *d);
/* Starts sfpd with extra "--opt", "value" pairs (NULL terminated list) and
 * waits until its socket accepts connections. 0 or -1. */
int th_start(th_daemon *d, const char *const *extra);
/* Sends sig and waits up to timeout_s for exit; SIGKILL after that. */
int th_stop(th_daemon *d, int sig, unsigned timeout_s);
/* Removes the temp dir. */
void th_cleanup(th_daemon *d);
/* Kills every daemon this process started, prints its log, exits 1. */
void th_fail(void) __attribute__((noreturn));
/* Prints the daemon log to stderr. */
void th_dump_log(const th_daemon *d);
/* 1 if the log contains needle. */
int th_log_contains(const th_daemon *d, const char *needle);

/* Deterministic test data generator. */
uint64_t th_rand(uint64_t *state);
double th_now(void);

#endif
