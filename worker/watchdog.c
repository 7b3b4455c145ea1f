/*
 * watchdog.c - the progress watchdog of sfp-train (watchdog.h).
 *
 * The training thread stores a timestamp, a phase name and the step at every
 * beat (atomics; a beat costs a clock read). The watchdog thread wakes once
 * a second and compares; it never touches MPI (it may not: the library runs
 * at MPI_THREAD_SINGLE), it writes one line to stderr and calls _exit, and
 * mpirun ends the other ranks when one exits non-zero.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "watchdog.h"

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, stop, rank;
    double timeout;
    _Atomic double last;
    _Atomic(const char *) what;
    _Atomic uint64_t step;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sfpw_watchdog_beat(const char *what, uint64_t step)
{
    atomic_store_explicit(&wd.what, what, memory_order_relaxed);
    atomic_store_explicit(&wd.step, step, memory_order_relaxed);
    atomic_store_explicit(&wd.last, mono_now(), memory_order_release);
}

static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd.mu);
    while (!wd.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&wd.cv, &wd.mu, &until);
        if (wd.stop)
            break;
        double idle = mono_now() - atomic_load_explicit(&wd.last, memory_order_acquire);
        if (idle < wd.timeout)
            continue;
        const char *what = atomic_load_explicit(&wd.what, memory_order_relaxed);
        fprintf(stderr,
                "sfp-train[%d]: no progress for %.0f s in %s (step %llu): a rank, its "
                "link or its sfpd stopped answering; ending this rank with status %d "
                "(--step-timeout %.0f)\n",
                wd.rank, idle, what ? what : "training",
                (unsigned long long)atomic_load_explicit(&wd.step, memory_order_relaxed),
                SFPW_WATCHDOG_EXIT, wd.timeout);
        fflush(stdout);
        fflush(stderr);
        _exit(SFPW_WATCHDOG_EXIT);
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

int sfpw_watchdog_start(double timeout_s, int rank)
{
    if (timeout_s <= 0 || wd.started)
        return 0;
    wd.timeout = timeout_s;
    wd.rank = rank;
    wd.stop = 0;
    sfpw_watchdog_beat("start-up", 0);
    pthread_cond_init(&wd.cv, NULL);
    if (pthread_create(&wd.thread, NULL, watch, NULL) != 0)
        return -1;
    wd.started = 1;
    return 0;
}

void sfpw_watchdog_stop(void)
{
    if (!wd.started)
        return;
    pthread_mutex_lock(&wd.mu);
    wd.stop = 1;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    pthread_join(wd.thread, NULL);
    pthread_cond_destroy(&wd.cv);
    wd.started = 0;
}
