/*
 * watchdog.h - ends a rank of sfp-train that makes no progress for a bound
 * time (--step-timeout): MPI has no timeout of its own, so a rank whose
 * peer, link or daemon stops answering would wait in a collective forever.
 */
#ifndef SFPW_WATCHDOG_H
#define SFPW_WATCHDOG_H

#include <stdint.h>

/* Exit status of a rank the watchdog ends (docs/TRAINING.md). */
#define SFPW_WATCHDOG_EXIT 4

/* Starts the watchdog thread: with no sfpw_watchdog_beat for timeout_s
 * seconds it prints what the rank was doing and ends the process with
 * SFPW_WATCHDOG_EXIT (mpirun then ends the job). 0 when started or when
 * timeout_s <= 0 (off); -1 if the thread cannot be made. */
int sfpw_watchdog_start(double timeout_s, int rank);
/* Progress: what the rank is about to do (a static string) and its step. */
void sfpw_watchdog_beat(const char *what, uint64_t step);
/* Stops and joins the thread (no-op when not started). */
void sfpw_watchdog_stop(void);

#endif
