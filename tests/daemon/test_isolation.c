/*
 * test_isolation: access control with a real second uid. The test (root)
 * runs itself again as uid/gid 65534 through `setpriv --reuid=65534
 * --regid=65534 --clear-groups` (util-linux) and checks, against the real
 * sfpd over its socket:
 *   - socket permissions: with the default socket mode 0660 (root:root) the
 *     other uid cannot even connect;
 *   - allow list: with mode 0666 but the uid not in allow_uids, Hello is
 *     refused with EPERM (and logged); with --allow-uids 65534 it works, and
 *     with --allow-gids 65534 too;
 *   - jobs: the other uid cannot attach to root's job (EPERM), its own job
 *     does not see root's keys (ENOTFOUND), its data round-trips bit-exact,
 *     and the spill directory is not readable by it.
 * Skips (77) unless run as root with setpriv available.
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OTHER_UID 65534
#define NV 65536

static const char *setpriv_path(void)
{
    static const char *const c[] = {"/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        if (access(c[i], X_OK) == 0)
            return c[i];
    return NULL;
}

/* ----------------------------------------------------- child (uid 65534) */

static int child_connect(const char *sock, const char *job, sfpc **c)
{
    sfpc_options o;
    sfpc_options_default(&o);
    o.socket_path = sock;
    o.job_id = job;
    o.shm_size = NV * 4 * 2;
    o.timeout_ms = 10000;
    o.client_name = "isolation-child";
    return sfpc_connect(&o, c);
}

/*
 * Modes (exit 0 when the expectation holds, 1 otherwise):
 *   expect-connect-fail SOCK JOB   connect fails with ECONNECT (file mode)
 *   expect-eperm SOCK JOB          Hello refused with EPERM
 *   own SOCK JOB ROOTJOB SPILL     works in JOB; root's key absent there;
 *                                  ROOTJOB refused; SPILL unreadable
 */
static int child_main(int argc, char **argv)
{
    const char *mode = argv[2], *sock = argv[3], *job = argv[4];
    sfpc *c = NULL;
    int e;

    if (getuid() != OTHER_UID || geteuid() != OTHER_UID || getgid() != OTHER_UID) {
        fprintf(stderr, "child: not running as %d (uid %d)\n", OTHER_UID, (int)getuid());
        return 1;
    }
    if (strcmp(mode, "probe") == 0) /* can this uid run us and reach the test dir? */
        return access(sock, X_OK) == 0 ? 0 : 3;
    e = child_connect(sock, job, &c);
    if (strcmp(mode, "expect-connect-fail") == 0) {
        fprintf(stderr, "  child uid %d: connect to a 0660 root socket -> %s\n", OTHER_UID, sfpc_strerror(e));
        return e == SFPC_ECONNECT ? 0 : 1;
    }
    if (strcmp(mode, "expect-eperm") == 0) {
        fprintf(stderr, "  child uid %d: Hello for job %s -> %s\n", OTHER_UID, job, sfpc_strerror(e));
        sfpc_close(&c);
        return e == SFPC_EPERM ? 0 : 1;
    }
    if (strcmp(mode, "own") == 0 && argc >= 7) {
        const char *root_job = argv[5], *spill = argv[6];
        sfp_params p;
        float *in = malloc(NV * 4), *out = malloc(NV * 4);
        sfpc_key k = {.rank = 0, .step = 1, .tensor = "secret"};
        sfpc *c2 = NULL;
        DIR *dd;
        if (e != 0) {
            fprintf(stderr, "child: connect to own job: %s\n", sfpc_strerror(e));
            return 1;
        }
        /* root stored (0, 1, "secret") in its own job: not visible here */
        e = sfpc_get(c, &k, out, NV * 4, 0, NULL);
        if (e != SFPC_ENOTFOUND) {
            fprintf(stderr, "child: Get of root's key name in own job: %s (want ENOTFOUND)\n", sfpc_strerror(e));
            return 1;
        }
        sfp_params_default(&p);
        tc_fill(in, NV, &p, 99);
        if ((e = sfpc_put(c, &k, in, NV, &p, 0, NULL)) != 0 ||
            (e = sfpc_get(c, &k, out, NV * 4, 0, NULL)) != 0 || memcmp(in, out, NV * 4) != 0) {
            fprintf(stderr, "child: own put/get: %s\n", e ? sfpc_strerror(e) : "data differs");
            return 1;
        }
        /* the Get must not have returned root's tensor of the same key */
        e = child_connect(sock, root_job, &c2);
        sfpc_close(&c2);
        if (e != SFPC_EPERM) {
            fprintf(stderr, "child: attach to root's job: %s (want EPERM)\n", sfpc_strerror(e));
            return 1;
        }
        dd = opendir(spill);
        if (dd) {
            closedir(dd);
            fprintf(stderr, "child: spill directory %s is readable by uid %d\n", spill, OTHER_UID);
            return 1;
        }
        fprintf(stderr, "  child uid %d: own job works bit-exact; root's key not visible (ENOTFOUND); "
                        "root's job refused (EPERM); spill dir unreadable (%s)\n",
                OTHER_UID, strerror(errno));
        sfpc_close(&c);
        free(in);
        free(out);
        return 0;
    }
    fprintf(stderr, "child: bad mode %s\n", mode);
    return 1;
}

/* ------------------------------------------------------------- parent */

static char self[4096];

static int run_child(const char *mode, const char *sock, const char *job, const char *a5, const char *a6)
{
    const char *sp = setpriv_path();
    pid_t pid = fork();
    int st;
    if (pid == 0) {
        char uid[16], gid[16];
        alarm(0);
        snprintf(uid, sizeof(uid), "--reuid=%d", OTHER_UID);
        snprintf(gid, sizeof(gid), "--regid=%d", OTHER_UID);
        execl(sp, sp, uid, gid, "--clear-groups", self, "--child", mode, sock, job, a5, a6, (char *)NULL);
        _exit(127);
    }
    TH_CHECK(pid > 0, "fork");
    TH_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void start(th_daemon *d, const char *const *args)
{
    th_prepare(d);
    /* the other uid must reach the socket inside the test's 0700 temp dir */
    TH_CHECK(chmod(d->dir, 0711) == 0, "chmod %s", d->dir);
    TH_CHECK(th_start(d, args) == 0, "sfpd did not start");
}

int main(int argc, char **argv)
{
    th_daemon d;
    sfpc *root;
    sfp_params p;
    float *in;
    sfpc_key k = {.rank = 0, .step = 1, .tensor = "secret"};
    ssize_t n;

    if (argc > 2 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    th_init(argc, argv, 55);
    if (geteuid() != 0) {
        printf("SKIP: needs root to run a client as uid %d\n", OTHER_UID);
        return 77;
    }
    if (!setpriv_path()) {
        printf("SKIP: setpriv (util-linux) not found\n");
        return 77;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    TH_CHECK(n > 0, "readlink /proc/self/exe");
    self[n] = 0;
    sfp_params_default(&p);
    in = malloc(NV * 4);
    tc_fill(in, NV, &p, 7);

    {
        /* the binary, its libraries and the temp dir must be reachable by
         * the other uid (a build tree under a 0700 home is not) */
        th_daemon probe;
        int r;
        th_prepare(&probe);
        TH_CHECK(chmod(probe.dir, 0711) == 0, "chmod %s", probe.dir);
        r = run_child("probe", probe.dir, "-", "-", "-");
        th_cleanup(&probe);
        if (r != 0) {
            printf("SKIP: uid %d cannot run %s or reach %s (exit %d)\n", OTHER_UID, self, probe.dir, r);
            return 77;
        }
    }
    printf("isolation with a real second uid (%d) through setpriv:\n", OTHER_UID);
    /* 1. default socket mode 0660, owner root: no connection at all */
    {
        const char *args[] = {NULL};
        start(&d, args);
        TH_CHECK(run_child("expect-connect-fail", d.socket, "nobody-job", "-", "-") == 0,
                 "uid %d connected through a 0660 root-owned socket", OTHER_UID);
        TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
        th_cleanup(&d);
    }
    /* 2. socket 0666, uid not in the allow list: refused by the daemon */
    {
        const char *args[] = {"--socket-mode", "0666", "--allow-uids", "1234", NULL};
        start(&d, args);
        TH_CHECK(run_child("expect-eperm", d.socket, "nobody-job", "-", "-") == 0,
                 "uid %d not in the allow list was not refused with EPERM", OTHER_UID);
        TH_CHECK(th_log_contains(&d, "not in the allow list"), "refusal not logged");
        /* root (and the daemon's own uid) keep working */
        root = tc_connect(&d, "root-job", 0, NV * 4);
        TH_CHECK(sfpc_put(root, &k, in, NV, &p, 0, NULL) == 0, "root put");
        sfpc_close(&root);
        TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
        th_cleanup(&d);
        printf("  not in allow_uids: refused with EPERM, logged; root unaffected\n");
    }
    /* 3. allowed by uid, then by gid: own job works, nothing of root's is reachable */
    for (int by_gid = 0; by_gid < 2; by_gid++) {
        const char *args[] = {"--socket-mode", "0666", by_gid ? "--allow-gids" : "--allow-uids", "65534",
                              "--dram-budget", "64K", NULL};
        float *out = malloc(NV * 4);
        start(&d, args);
        root = tc_connect(&d, "root-job", 0, NV * 4);
        TH_CHECK(sfpc_put(root, &k, in, NV, &p, 0, NULL) == 0, "root put");
        TH_CHECK(run_child("own", d.socket, "nobody-job", "root-job", d.spill) == 0,
                 "uid %d allowed by %s: isolation check failed", OTHER_UID, by_gid ? "gid" : "uid");
        /* root's data unchanged by the other uid's Put of the same key */
        TH_CHECK(sfpc_get(root, &k, out, NV * 4, 0, NULL) == 0 && memcmp(in, out, NV * 4) == 0,
                 "root's tensor changed");
        sfpc_close(&root);
        {
            /* the other uid's job directory in the spill dir is owned by the
             * daemon and named after its owner */
            char jd[600];
            struct stat sb;
            snprintf(jd, sizeof(jd), "%s/%d-%s", d.spill, OTHER_UID, "6e6f626f64792d6a6f62");
            if (stat(jd, &sb) == 0)
                TH_CHECK((sb.st_mode & 077) == 0, "job directory %s mode %o", jd, sb.st_mode & 0777);
        }
        TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
        th_cleanup(&d);
        free(out);
        printf("  allowed by %s: own job bit-exact, root's job EPERM, root's keys invisible, "
               "spill dir unreadable, root's data intact\n", by_gid ? "allow_gids" : "allow_uids");
    }
    free(in);
    printf("ok\n");
    return 0;
}
