/*
 * test_config: --help and --print-config come from the option table;
 * precedence default < file < environment < flag; bad input exits 2; the
 * lock keeps a second daemon off the same socket and spill dir; SIGHUP
 * reloads live options; SIGUSR1 dumps the stats snapshot; SO_PEERCRED
 * allow list (as root: a client running as nobody).
 */
#include "common.h"
#include "base/stats.h" /* the counter list (X-macro) */

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs sfpd with args, captures stdout+stderr into out; returns exit code. */
static int run_capture(const char *const *args, const char *env, char *out, size_t cap)
{
    int pfd[2], st;
    pid_t pid;
    size_t len = 0;
    TH_CHECK(pipe(pfd) == 0, "pipe");
    pid = fork();
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        argv[n++] = th_sfpd_path();
        for (size_t i = 0; args[i]; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        alarm(10);
        if (env)
            putenv((char *)env);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        ssize_t r = read(pfd[0], out + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap - 1)
            break;
    }
    out[len] = 0;
    close(pfd[0]);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char buf[65536];

static void table_driven(const th_daemon *d)
{
    static const char *const names[] = {"socket", "spill_dir", "dram_budget", "job_dram_budget",
                                        "job_quota", "disk_budget", "prefetch_depth",
                                        "grace_period", "allow_uids", "log_level"};
    char ini[400];
    FILE *f;
    const char *help[] = {"--help", NULL};
    const char *bad[] = {"--no-such-option", "1", NULL};
    const char *badval[] = {"--dram-budget", "lots", NULL};
    const char *prn[] = {"--config", ini, "--prefetch-depth", "9", "--print-config", NULL};
    const char *badini[] = {"--config", ini, "--print-config", NULL};

    TH_CHECK(run_capture(help, NULL, buf, sizeof(buf)) == 0, "--help exit");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", names[i]);
        for (char *s = flag + 2; *s; s++)
            if (*s == '_')
                *s = '-';
        TH_CHECK(strstr(buf, flag), "--help lacks %s", flag);
    }
    TH_CHECK(run_capture(bad, NULL, buf, sizeof(buf)) == 2, "unknown flag must exit 2");
    TH_CHECK(run_capture(badval, NULL, buf, sizeof(buf)) == 2, "bad value must exit 2");

    snprintf(ini, sizeof(ini), "%s/sfpd.ini", d->dir);
    f = fopen(ini, "w");
    fprintf(f, "# test\n[sfpd]\ndram_budget = 3M\nprefetch_depth = 2\ngrace_period = 7\njob_quota = 1G\n");
    fclose(f);
    /* file sets 3M/2/7/1G; env overrides grace; flag overrides prefetch */
    TH_CHECK(run_capture(prn, "SFPD_GRACE_PERIOD=11", buf, sizeof(buf)) == 0, "--print-config: %s", buf);
    TH_CHECK(strstr(buf, "dram_budget = 3M"), "file value lost:\n%s", buf);
    TH_CHECK(strstr(buf, "job_quota = 1G"), "file value lost:\n%s", buf);
    TH_CHECK(strstr(buf, "grace_period = 11"), "env does not beat file:\n%s", buf);
    TH_CHECK(strstr(buf, "prefetch_depth = 9"), "flag does not beat file:\n%s", buf);
    f = fopen(ini, "w");
    fprintf(f, "[sfpd]\ndram_budget = 3M\nbogus_key = 1\n");
    fclose(f);
    TH_CHECK(run_capture(badini, NULL, buf, sizeof(buf)) == 2, "unknown INI key must exit 2");
    TH_CHECK(strstr(buf, ":3:"), "INI error names the line: %s", buf);
    {
        /* --print-config output is itself a valid config that reproduces itself */
        static char again[65536];
        const char *pc[] = {"--print-config", NULL};
        const char *pc2[] = {"--config", ini, "--print-config", NULL};
        const char *a, *b;
        TH_CHECK(run_capture(pc, NULL, buf, sizeof(buf)) == 0, "--print-config");
        f = fopen(ini, "w");
        fputs(buf, f);
        fclose(f);
        TH_CHECK(run_capture(pc2, NULL, again, sizeof(again)) == 0, "reading printed config: %s", again);
        a = strchr(buf, '\n');
        b = strchr(again, '\n');
        TH_CHECK(a && b && strcmp(a, b) == 0, "printed config does not round-trip");
    }
    printf("config: --help lists the table, precedence default<file<env<flag, bad input exits 2, "
           "--print-config round-trips\n");
}

static void lock_reload_dump(th_daemon *d)
{
    const char *args[] = {"--dram-budget", "8M", NULL};
    const char *second[] = {"--socket", d->socket, "--spill-dir", d->spill, NULL};
    char other_spill[400], ini[400];
    const char *third[] = {"--socket", d->socket, "--spill-dir", other_spill, NULL};
    const char *args_cfg[] = {"--config", ini, NULL};
    sfpc *c;
    sfpc_stats s;
    FILE *f;
    int r;

    (void)args;
    snprintf(ini, sizeof(ini), "%s/live.ini", d->dir);
    f = fopen(ini, "w");
    fprintf(f, "dram_budget = 8M\n");
    fclose(f);
    TH_CHECK(th_start(d, args_cfg) == 0, "sfpd did not start");
    r = run_capture(second, NULL, buf, sizeof(buf));
    TH_CHECK(r != 0 && strstr(buf, "locked"), "second daemon on the same socket: %d %s", r, buf);
    snprintf(other_spill, sizeof(other_spill), "%s/spill2", d->dir);
    r = run_capture(third, NULL, buf, sizeof(buf));
    TH_CHECK(r != 0 && strstr(buf, "locked"), "second daemon, same socket, other spill: %d %s", r, buf);

    c = tc_connect(d, "cfg", 0, 1 << 20);
    TH_CHECK(sfpc_stats_get(c, &s) == 0 && s.dram_budget == 8u << 20, "budget before reload");
    sfpc_stats_free(&s);
    f = fopen(ini, "w");
    fprintf(f, "dram_budget = 12M\nmax_message = 8K\n");
    fclose(f);
    kill(d->pid, SIGHUP);
    for (int i = 0; i < 200; i++) {
        TH_CHECK(sfpc_stats_get(c, &s) == 0, "stats");
        r = s.dram_budget == 12u << 20;
        sfpc_stats_free(&s);
        if (r)
            break;
        usleep(10000);
    }
    TH_CHECK(r, "SIGHUP did not apply dram_budget");
    {
        /* a live decrease evicts down to the new budget at once */
        sfp_params p;
        size_t n = 200000; /* 800 KB of F32 per tensor */
        float *v = malloc(n * 4);
        sfp_params_default(&p);
        tc_fill(v, n, &p, 11);
        for (int i = 0; i < 6; i++) {
            char name[16];
            sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
            snprintf(name, sizeof(name), "w%d", i);
            TH_CHECK(sfpc_put(c, &k, v, n, &p, 0, NULL) == 0, "put");
        }
        TH_CHECK(sfpc_stats_get(c, &s) == 0 && s.dram_bytes > (2u << 20), "setup");
        sfpc_stats_free(&s);
        f = fopen(ini, "w");
        fprintf(f, "dram_budget = 2M\nmax_message = 8K\n");
        fclose(f);
        kill(d->pid, SIGHUP);
        for (int i = 0; i < 300; i++) {
            TH_CHECK(sfpc_stats_get(c, &s) == 0, "stats");
            r = s.dram_bytes <= (2u << 20) && s.dram_budget == (2u << 20);
            sfpc_stats_free(&s);
            if (r)
                break;
            usleep(10000);
        }
        TH_CHECK(r, "DRAM not brought down to a lowered budget");
        for (int i = 0; i < 6; i++) {
            char name[16];
            sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
            float *w = malloc(n * 4);
            snprintf(name, sizeof(name), "w%d", i);
            TH_CHECK(sfpc_get(c, &k, w, n * 4, SFPC_GET_DROP, NULL) == 0 && memcmp(v, w, n * 4) == 0,
                     "tensor %d after the budget cut", i);
            free(w);
        }
        free(v);
    }
    TH_CHECK(th_log_contains(d, "max_message changed but needs a restart"), "non-live option warning");
    kill(d->pid, SIGUSR1);
    for (int i = 0; i < 200 && !th_log_contains(d, "--- end ---"); i++)
        usleep(10000);
    TH_CHECK(th_log_contains(d, "--- sfpd stats ---") && th_log_contains(d, "tier_bytes{tier=\"dram\"}"),
             "SIGUSR1 dump");
    {
        /* the dump carries every counter of the X-macro list, by name */
        static const char *const counters[] = {
#define TC_NAME(id, name, unit, help) name,
            SFPD_COUNTERS(TC_NAME)
#undef TC_NAME
        };
        for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
            char needle[80];
            snprintf(needle, sizeof(needle), "%s ", counters[i]);
            TH_CHECK(th_log_contains(d, needle), "counter %s missing from the dump", counters[i]);
        }
    }
    sfpc_close(&c);
    TH_CHECK(th_stop(d, SIGTERM, 20) == 0, "exit status %d", d->exit_status);
    printf("lock: a second sfpd on the same socket is refused; SIGHUP applied dram_budget 8M->12M, "
           "and 12M->2M evicted down to 2M at once; SIGUSR1 dumped the stats\n");
}

static int as_nobody(const th_daemon *d, const char *job)
{
    pid_t pid = fork();
    int st;
    if (pid == 0) {
        sfpc_options o;
        sfpc *c = NULL;
        int e;
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(200);
        sfpc_options_default(&o);
        o.socket_path = d->socket;
        o.job_id = job;
        o.shm_size = 1 << 16;
        o.timeout_ms = 5000;
        e = sfpc_connect(&o, &c);
        sfpc_close(&c);
        _exit(e == 0 ? 0 : SFPC_ERROR_MAX - e); /* 1..999 fits an exit status */
    }
    waitpid(pid, &st, 0);
    return !WIFEXITED(st) ? -999 : WEXITSTATUS(st) ? SFPC_ERROR_MAX - WEXITSTATUS(st) : 0;
}

static void peercred(th_daemon *d)
{
    const char *deny[] = {"--socket-mode", "0666", NULL};
    const char *allow[] = {"--socket-mode", "0666", "--allow-uids", "65534", NULL};
    sfpc *c;
    int e;

    if (geteuid() != 0) {
        printf("peercred: skipped (needs root to act as another uid)\n");
        return;
    }
    chmod(d->dir, 0755);
    TH_CHECK(th_start(d, deny) == 0, "sfpd did not start");
    e = as_nobody(d, "other");
    TH_CHECK(e == SFPC_EPERM, "uid 65534 not in the allow list: %s", sfpc_strerror(e));
    TH_CHECK(th_stop(d, SIGTERM, 20) == 0, "exit");
    TH_CHECK(th_start(d, allow) == 0, "sfpd did not start");
    e = as_nobody(d, "nobodys-job");
    TH_CHECK(e == 0, "uid 65534 in the allow list: %s", sfpc_strerror(e));
    /* root's job cannot be joined by another uid */
    c = tc_connect(d, "roots-job", 0, 1 << 16);
    e = as_nobody(d, "roots-job");
    TH_CHECK(e == SFPC_EPERM, "nobody joined root's job: %s", sfpc_strerror(e));
    sfpc_close(&c);
    TH_CHECK(th_stop(d, SIGTERM, 20) == 0, "exit");
    printf("peercred: uid outside the allow list refused; allowed uid served; another uid's job refused\n");
}

/* sd_notify: READY=1 once serving, WATCHDOG=1 when asked, STOPPING=1 on SIGTERM */
static void notify(th_daemon *d)
{
    const char *ver[] = {"--version", NULL};
    char path[400], got[4096] = "";
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = 0;
    double end;
    int s;

    TH_CHECK(run_capture(ver, NULL, buf, sizeof(buf)) == 0, "--version");
    if (!strstr(buf, "sd_notify yes")) {
        printf("sd_notify: skipped (built without libsystemd)\n");
        return;
    }
    snprintf(path, sizeof(path), "%s/notify.sock", d->dir);
    TH_CHECK(strlen(path) < sizeof(a.sun_path), "path");
    memcpy(a.sun_path, path, strlen(path) + 1);
    s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    TH_CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0, "bind notify socket");
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    TH_CHECK(th_start(d, NULL) == 0, "sfpd did not start");
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    end = th_now() + 5;
    while (th_now() < end && !(strstr(got, "READY=1") && strstr(got, "WATCHDOG=1"))) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            ssize_t r = recv(s, got + len, sizeof(got) - 1 - len, 0);
            if (r > 0) {
                len += (size_t)r;
                got[len++] = '\n';
                got[len] = 0;
            }
        }
    }
    TH_CHECK(strstr(got, "READY=1"), "no READY=1: %s", got);
    TH_CHECK(strstr(got, "WATCHDOG=1"), "no WATCHDOG=1: %s", got);
    TH_CHECK(th_stop(d, SIGTERM, 20) == 0, "exit");
    for (;;) {
        ssize_t r = recv(s, got + len, sizeof(got) - 1 - len, MSG_DONTWAIT);
        if (r <= 0)
            break;
        len += (size_t)r;
        got[len++] = '\n';
        got[len] = 0;
    }
    TH_CHECK(strstr(got, "STOPPING=1"), "no STOPPING=1: %s", got);
    close(s);
    printf("sd_notify: READY=1, WATCHDOG=1 (WATCHDOG_USEC=200000), STOPPING=1 received\n");
}

int main(int argc, char **argv)
{
    th_daemon d;
    th_init(argc, argv, 100);
    th_prepare(&d);
    table_driven(&d);
    lock_reload_dump(&d);
    peercred(&d);
    notify(&d);
    th_cleanup(&d);
    printf("ok\n");
    return 0;
}
