/* main.c - sfpd entry point: configuration, locks, thread pool, run. */
#include "base/config.h"
#include "daemon.h"
#include "base/sfpd.h"
#include "sfpd_build.h"
#include "base/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sfp/sfp.h>

/*
 * Takes an exclusive lock on path (created if missing) and writes our pid
 * into it. The fd stays open for the life of the process: the kernel drops
 * the lock when we exit, however we exit.
 */
static int take_lock(const char *path, int *out_fd)
{
    char buf[32];
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int n;

    if (fd < 0) {
        fprintf(stderr, "sfpd: cannot open lock file %s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char other[32] = "";
        ssize_t r = pread(fd, other, sizeof(other) - 1, 0);
        if (r > 0)
            other[strcspn(other, "\n")] = 0;
        fprintf(stderr, "sfpd: %s is locked by another sfpd%s%s; refusing to share it\n", path,
                r > 0 ? " (pid " : "", r > 0 ? strcat(other, ")") : "");
        close(fd);
        return -EBUSY;
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        fprintf(stderr, "sfpd: warning: cannot write pid to %s\n", path);
    *out_fd = fd;
    return 0;
}

int main(int argc, char **argv)
{
    sfpd_config *cfg = NULL;
    sfpd_action action = SFPD_ACTION_RUN;
    char *path = NULL;
    int lock_sock = -1, lock_spill = -1, code = 1;
    size_t n;

    if (sfpd_config_load(argc, argv, &cfg, &action) < 0)
        return 2;
    switch (action) {
    case SFPD_ACTION_HELP:
        sfpd_config_help(stdout, argv[0]);
        sfpd_config_free(&cfg);
        return 0;
    case SFPD_ACTION_PRINT_CONFIG:
        sfpd_config_print(cfg, stdout);
        sfpd_config_free(&cfg);
        return 0;
    case SFPD_ACTION_VERSION:
        printf("sfpd %s (libsfp %s, IPC protocol %u, sd_notify %s)\n", SFP_VERSION_STRING,
               sfp_version(), SFPD_PROTOCOL_VERSION, HAVE_LIBSYSTEMD ? "yes" : "no");
        sfpd_config_free(&cfg);
        return 0;
    default:
        break;
    }
    sfpd_log_set_level((int)cfg->log_level);
    {
        /* one fd per connection, per open segment and per pending shm */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    /* Frames come and go every step, from the loop and the pool threads.
     * glibc returns freed memory above 128 KiB to the kernel (and raises
     * that limit only as it goes), so each step faulted its frames in
     * again: ~18 minor faults per step on the cnn (docs/BENCHMARKS.md "Page
     * faults"). Keep up to the DRAM budget (at least 64 MiB, at most 1 GiB)
     * of freed heap for the next step; frames above 32 MiB still get their
     * own mapping. GLIBC_TUNABLES with malloc settings takes precedence. */
    {
        const char *tun = getenv("GLIBC_TUNABLES");
        if (!tun || !strstr(tun, "glibc.malloc.")) {
            uint64_t keep = cfg->dram_budget;
            keep = keep < (UINT64_C(64) << 20) ? UINT64_C(64) << 20 : keep;
            keep = keep > (UINT64_C(1) << 30) ? UINT64_C(1) << 30 : keep;
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, (int)keep);
        }
    }

    /* the libuv pool reads this once, at the first uv_queue_work. Auto:
     * half the CPUs, at least one. Each queued job wakes an idle pool
     * thread, and on a node whose cores all run training ranks every
     * wake-up takes a core from a rank: on 2 CPUs with 2 ranks one thread
     * against four made the spilling stash's step 4.7 % slower than
     * in-process instead of 6.2 % (medians of 13 and 17 rounds,
     * docs/BENCHMARKS.md "Where sfpd's CPU goes"). A peer tier makes
     * blocking calls on the pool (up to peer_timeout each): at least 4. */
    {
        char v[24];
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned long t = cfg->threads;
        if (!t) {
            t = cpus > 2 ? (unsigned long)cpus / 2 : 1;
            if (strstr(cfg->tier_order, "peer") && t < 4)
                t = 4;
        }
        snprintf(v, sizeof(v), "%lu", t);
        setenv("UV_THREADPOOL_SIZE", v, 1);
    }

    /* two daemons must never share a socket path or a spill directory */
    if (mkdir(cfg->spill_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "sfpd: cannot create spill directory %s: %s\n", cfg->spill_dir, strerror(errno));
        goto out;
    }
    n = strlen(cfg->socket) + 8;
    if (!(path = sfpd_malloc(n)))
        goto out;
    snprintf(path, n, "%s.lock", cfg->socket);
    {
        /* the socket's directory may not exist yet */
        char *slash = strrchr(path, '/');
        if (slash && slash != path) {
            *slash = 0;
            if (mkdir(path, 0755) < 0 && errno != EEXIST)
                fprintf(stderr, "sfpd: cannot create %s: %s\n", path, strerror(errno));
            *slash = '/';
        }
    }
    if (take_lock(path, &lock_sock) < 0)
        goto out;
    sfpd_free(path);
    n = strlen(cfg->spill_dir) + 16;
    if (!(path = sfpd_malloc(n)))
        goto out;
    snprintf(path, n, "%s/.sfpd.lock", cfg->spill_dir);
    if (take_lock(path, &lock_spill) < 0)
        goto out;
    sfpd_free(path);
    path = NULL;

    code = sfpd_daemon_run(cfg, argc, argv); /* owns cfg */
    cfg = NULL;
out:
    sfpd_free(path);
    sfpd_config_free(&cfg);
    if (lock_sock >= 0)
        close(lock_sock);
    if (lock_spill >= 0)
        close(lock_spill);
    sfpd_stats_shutdown();
    return code;
}
