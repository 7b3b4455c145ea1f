/* harness.c - see harness.h */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *sfpd_path;
static th_daemon *live[8];

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: test timed out\n";
    if (write(2, msg, sizeof(msg) - 1) < 0) {
    }
    for (size_t i = 0; i < 8; i++)
        if (live[i] && live[i]->pid > 0)
            kill(live[i]->pid, SIGKILL);
    _exit(1);
}

void th_init(int argc, char **argv, unsigned timeout_s)
{
    sfpd_path = argc > 1 ? argv[1] : getenv("SFPD_BIN");
    if (!sfpd_path) {
        fprintf(stderr, "usage: %s PATH-TO-SFPD (or set SFPD_BIN)\n", argv[0]);
        exit(77);
    }
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    {
        /* slow wrappers (valgrind) stretch the budget: meson test -t N sets this */
        const char *m = getenv("MESON_TEST_TIMEOUT_MULTIPLIER");
        const char *m2 = getenv("SFPD_TEST_TIMEOUT_MULTIPLIER");
        int k = m2 ? atoi(m2) : m ? atoi(m) : 1;
        if (k > 1)
            timeout_s *= (unsigned)k;
    }
    alarm(timeout_s);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

const char *th_sfpd_path(void) { return sfpd_path; }

double th_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t th_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void th_prepare(th_daemon *d)
{
    const char *tmp = getenv("TMPDIR");
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "%s/sfpd-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(d->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(d->socket, sizeof(d->socket), "%s/sfpd.sock", d->dir);
    snprintf(d->spill, sizeof(d->spill), "%s/spill", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/sfpd.log", d->dir);
}

static void track(th_daemon *d, bool on)
{
    for (size_t i = 0; i < 8; i++) {
        if (on && !live[i]) {
            live[i] = d;
            return;
        }
        if (!on && live[i] == d) {
            live[i] = NULL;
            return;
        }
    }
}

int th_start(th_daemon *d, const char *const *extra)
{
    const char *argv[64];
    const char *wrap = getenv("SFPD_WRAPPER");
    int n = 0;
    double deadline;

    if (wrap && wrap[0]) {
        /* e.g. "valgrind --error-exitcode=99": split on spaces */
        static char buf[512];
        snprintf(buf, sizeof(buf), "%s", wrap);
        for (char *t = strtok(buf, " "); t && n < 16; t = strtok(NULL, " "))
            argv[n++] = t;
    }
    argv[n++] = sfpd_path;
    argv[n++] = "--socket";
    argv[n++] = d->socket;
    argv[n++] = "--spill-dir";
    argv[n++] = d->spill;
    argv[n++] = "--log-level";
    argv[n++] = "info";

    for (size_t i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    d->pid = fork();
    if (d->pid < 0)
        return -1;
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        /* the daemon must not inherit the test's alarm */
        alarm(0);
        /* no TCP listeners: parallel tests must not fight over ports
         * (unknown SFPD_* variables are ignored by daemons without them) */
        setenv("SFPD_GRPC_LISTEN", "", 1);
        setenv("SFPD_METRICS_LISTEN", "", 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    track(d, true);
    deadline = th_now() + 20;
    while (th_now() < deadline) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), st;
        size_t sl = strlen(d->socket);
        if (sl >= sizeof(a.sun_path))
            sl = sizeof(a.sun_path) - 1;
        memcpy(a.sun_path, d->socket, sl);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
            close(s);
            return 0;
        }
        close(s);
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            track(d, false);
            d->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

int th_stop(th_daemon *d, int sig, unsigned timeout_s)
{
    double deadline = th_now() + timeout_s;
    int st;
    if (d->pid <= 0)
        return d->exit_status;
    kill(d->pid, sig);
    for (;;) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid)
            break;
        if (th_now() > deadline) {
            fprintf(stderr, "daemon %d did not exit in %u s; SIGKILL\n", (int)d->pid, timeout_s);
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            d->exit_status = 999;
            d->pid = 0;
            track(d, false);
            return d->exit_status;
        }
        usleep(5000);
    }
    d->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    d->pid = 0;
    track(d, false);
    return d->exit_status;
}

void th_cleanup(th_daemon *d)
{
    char cmd[600];
    if (!d->dir[0] || strncmp(d->dir + strlen(d->dir) - 16, "sfpd-test-", 10) != 0)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", d->dir);
}

void th_dump_log(const th_daemon *d)
{
    char line[1024];
    FILE *f = fopen(d->log, "r");
    if (!f)
        return;
    fprintf(stderr, "---- %s ----\n", d->log);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

int th_log_contains(const th_daemon *d, const char *needle)
{
    char line[4096];
    int found = 0;
    FILE *f = fopen(d->log, "r");
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

void th_fail(void)
{
    for (size_t i = 0; i < 8; i++) {
        if (live[i]) {
            th_daemon *d = live[i];
            if (d->pid > 0) {
                kill(d->pid, SIGKILL);
                waitpid(d->pid, NULL, 0);
            }
            th_dump_log(d);
        }
    }
    exit(1);
}
