/*
 * test_diskfault: spill I/O errors against the real daemon.
 *
 * Injected (tests/daemon/sfpd-faults, sfpd built with -DSFPD_FAULT_INJECTION,
 * SFPD_FAULT_DISK="op:N[+][:ERRNO]", see daemon/tiers/tier_disk.c):
 *   - the 3rd record write fails with EIO: the Put that needed it fails with
 *     EIO (or, for a background spill, the frame stays in DRAM and the
 *     failure is logged); every acknowledged tensor reads back bit-exact and
 *     later Puts succeed;
 *   - the 2nd frame read fails: that Get fails with EIO, the same Get again
 *     returns the data bit-exact;
 *   - every write fails with ENOSPC, or every segment open fails: Puts that
 *     need the disk fail with EDISKFULL / EIO, DRAM-resident data stays
 *     readable, and after Drops free DRAM the daemon stores again.
 * Real:
 *   - RLIMIT_FSIZE (inherited by sfpd with SIGXFSZ at its default action,
 *     which sfpd ignores): a segment file cannot grow, the Put fails with
 *     EDISKFULL (EFBIG), data intact;
 *   - a 1 MiB tmpfs mounted on the spill directory in a private mount
 *     namespace (root only; the mount vanishes with the test process even if
 *     it is killed, and is unmounted explicitly at the end): Puts fail with
 *     EDISKFULL once it is full, stored data intact, the daemon keeps
 *     serving.
 */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define NT 16
#define NV (64 * 1024) /* 256 KiB of F32 per tensor */

static float *data[NT];
static sfp_params P;
static const char *plain_sfpd, *faults_sfpd;
static char *argv_plain[2], *argv_faults[2];

static void use_daemon(char **av)
{
    /* th_init takes the daemon path from argv[1]; re-arming the alarm is harmless */
    th_init(2, av, 110);
}

static void name_of(char *b, size_t n, int i) { snprintf(b, n, "layer%02d", i); }

static int put_i(sfpc *c, int i)
{
    char name[16];
    sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
    name_of(name, sizeof(name), i);
    return sfpc_put(c, &k, data[i], NV, &P, 0, NULL);
}

static int get_i(sfpc *c, int i, unsigned flags)
{
    char name[16];
    sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
    float *out = malloc(NV * 4);
    int e;
    name_of(name, sizeof(name), i);
    e = sfpc_get(c, &k, out, NV * 4, flags, NULL);
    if (e == 0 && memcmp(out, data[i], NV * 4) != 0)
        e = -9999;
    free(out);
    return e;
}

static int drop_i(sfpc *c, int i)
{
    char name[16];
    sfpc_key k = {.rank = 0, .step = 0, .tensor = name};
    name_of(name, sizeof(name), i);
    return sfpc_drop(c, &k);
}

/*
 * Puts all NT tensors; each must succeed or fail with want (or want2).
 * Returns the number of failures; stored[i] says which are acknowledged.
 */
static char first_msg[200];

static int put_all(sfpc *c, bool *stored, int want, int want2, const char *what)
{
    int fails = 0;
    first_msg[0] = 0;
    for (int i = 0; i < NT; i++) {
        int e = put_i(c, i);
        stored[i] = e == 0;
        if (e) {
            TH_CHECK(e == want || e == want2, "%s: put %d: %s (%s)", what, i, sfpc_strerror(e),
                     sfpc_last_message(c));
            if (!fails++)
                snprintf(first_msg, sizeof(first_msg), " (%s: \"%s\")", sfpc_strerror(e), sfpc_last_message(c));
        }
    }
    return fails;
}

static void check_stored(sfpc *c, const bool *stored, const char *what)
{
    for (int i = 0; i < NT; i++) {
        int e;
        if (!stored[i])
            continue;
        e = get_i(c, i, 0);
        TH_CHECK(e == 0, "%s: acknowledged tensor %d: %s", what, i,
                 e == -9999 ? "not bit-exact" : sfpc_strerror(e));
    }
}

static int count(const bool *b)
{
    int n = 0;
    for (int i = 0; i < NT; i++)
        n += b[i];
    return n;
}

/* The daemon still serves: drop what is stored, then store and read one. */
static void still_serving(sfpc *c, const bool *stored, const char *what)
{
    int e;
    for (int i = 0; i < NT; i++)
        if (stored[i])
            TH_CHECK(drop_i(c, i) == 0, "%s: drop %d", what, i);
    e = put_i(c, 0);
    TH_CHECK(e == 0, "%s: put after drops: %s (%s)", what, sfpc_strerror(e), sfpc_last_message(c));
    TH_CHECK(get_i(c, 0, SFPC_GET_DROP) == 0, "%s: get after drops", what);
}

static void injected_write(const char *spec)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0", NULL};
    bool stored[NT], onward = strchr(spec, '+') != NULL;
    sfpc *c;
    int fails;
    char armed[64];

    th_prepare(&d);
    setenv("SFPD_FAULT_DISK", spec, 1);
    TH_CHECK(th_start(&d, args) == 0, "sfpd-faults did not start");
    unsetenv("SFPD_FAULT_DISK");
    snprintf(armed, sizeof(armed), "disk write call %d ", atoi(spec + 6));
    TH_CHECK(th_log_contains(&d, armed), "fault not armed");
    c = tc_connect(&d, "wfault", 0, NV * 4);
    fails = put_all(c, stored, SFPC_EIO, SFPC_EIO, spec);
    usleep(200000); /* background spills of the last Puts */
    if (onward)
        TH_CHECK(fails >= NT / 2, "%s: only %d Puts failed", spec, fails);
    else
        TH_CHECK(fails == 1 || th_log_contains(&d, "spill of job wfault tensor"), "%s: no failure seen", spec);
    check_stored(c, stored, spec);
    if (!onward)
        TH_CHECK(stored[NT - 1], "%s: the Put after the fault failed too", spec);
    printf("injected EIO, SFPD_FAULT_DISK=%-9s %2d Put(s) failed with EIO%s, the %d acknowledged read back "
           "bit-exact", spec, fails,
           fails ? first_msg : " (background spill failed: frame kept in DRAM, logged)", count(stored));
    still_serving(c, stored, spec);
    printf("; afterwards the daemon stores again\n");
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

static void injected_read(void)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0", NULL};
    bool stored[NT];
    sfpc *c;
    int ioerr = 0, bad = -1;

    th_prepare(&d);
    setenv("SFPD_FAULT_DISK", "read:2", 1);
    TH_CHECK(th_start(&d, args) == 0, "sfpd-faults did not start");
    unsetenv("SFPD_FAULT_DISK");
    c = tc_connect(&d, "rfault", 0, NV * 4);
    TH_CHECK(put_all(c, stored, 0, 0, "read fault") == 0, "puts");
    usleep(200000);
    for (int i = 0; i < NT; i++) {
        int e = get_i(c, i, 0);
        if (e == SFPC_EIO) {
            ioerr++;
            bad = i;
            e = get_i(c, i, 0); /* the data is still there */
        }
        TH_CHECK(e == 0, "read fault: tensor %d: %s", i, e == -9999 ? "not bit-exact" : sfpc_strerror(e));
    }
    TH_CHECK(ioerr == 1, "read fault: %d Gets failed with EIO (want 1)", ioerr);
    printf("injected EIO on the 2nd spill read: Get of tensor %d failed with EIO (\"spill read failed\"), "
           "the same Get again bit-exact; the other %d fine\n", bad, NT - 1);
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

/*
 * Every spill write (or open) fails. window: spill_write_behind in KiB. At 0
 * a Put waits for the writes that make its room, so all but the first few
 * fail; with a window, Puts admitted while those writes were on their way
 * stay in DRAM when they fail (acknowledged, readable), at most the window
 * of them over the 600 KiB budget.
 */
static void injected_always(const char *spec, int want, const char *what, unsigned window)
{
    th_daemon d;
    char wb[32];
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0",
                          "--spill-write-behind", wb, NULL};
    bool stored[NT];
    sfpc_stats s;
    sfpc *c;
    int fails;

    snprintf(wb, sizeof(wb), "%uK", window);

    th_prepare(&d);
    setenv("SFPD_FAULT_DISK", spec, 1);
    TH_CHECK(th_start(&d, args) == 0, "sfpd-faults did not start");
    unsetenv("SFPD_FAULT_DISK");
    c = tc_connect(&d, "afault", 0, NV * 4);
    fails = put_all(c, stored, want, want, what);
    TH_CHECK(fails >= NT - 3 - (int)(window / (NV * 4 / 1024)), "%s: only %d of %d Puts failed",
             what, fails, NT);
    TH_CHECK(count(stored) >= 1, "%s: nothing stored in DRAM", what);
    check_stored(c, stored, what);
    TH_CHECK(sfpc_stats_get(c, &s) == 0, "stats");
    TH_CHECK(s.dram_high_water <= (600u + window) << 10, "%s: DRAM high water %llu over budget + window",
             what, (unsigned long long)s.dram_high_water);
    sfpc_stats_free(&s);
    printf("injected %s (spill_write_behind %u KiB): %d Puts failed%s, the %d in DRAM read back "
           "bit-exact", what, window, fails, first_msg, count(stored));
    still_serving(c, stored, what);
    printf("; after Drops the daemon stores again\n");
    sfpc_close(&c);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

/* Real limits: the daemon is the plain sfpd. */
static void real_full(th_daemon *d, const char *const *args, const char *what)
{
    bool stored[NT];
    sfpc *c;
    int fails;
    c = tc_connect(d, "full", 0, NV * 4);
    fails = put_all(c, stored, SFPC_EDISKFULL, SFPC_EIO, what);
    usleep(200000);
    TH_CHECK(fails >= 1, "%s: no Put failed", what);
    check_stored(c, stored, what);
    printf("%s: %d of %d Puts failed%s, the %d acknowledged read back bit-exact", what, fails, NT,
           first_msg, count(stored));
    still_serving(c, stored, what);
    printf("; the daemon keeps serving\n");
    sfpc_close(&c);
    (void)args;
}

static void fsize_limit(void)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0", "--segment-size", "4M",
                          "--spill-write-behind", "0", NULL};
    struct rlimit old, lim;
    void (*old_sig)(int);

    th_prepare(&d);
    TH_CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = 600 << 10;
    /* sfpd inherits the limit, and SIGXFSZ at its default (terminate) action:
     * sfpd must ignore it itself so that writes fail with EFBIG instead */
    old_sig = signal(SIGXFSZ, SIG_DFL);
    TH_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    TH_CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0, "setrlimit back");
    signal(SIGXFSZ, old_sig);
    real_full(&d, args, "RLIMIT_FSIZE 600 KiB (EFBIG)");
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

static void tmpfs_full(void)
{
    th_daemon d;
    const char *args[] = {"--dram-budget", "600K", "--prefetch-depth", "0", "--segment-size", "1M",
                          "--spill-write-behind", "0", NULL};

    if (geteuid() != 0) {
        printf("SKIP tmpfs part: not root\n");
        return;
    }
    /* a private mount namespace: the mount cannot outlive this process */
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        printf("SKIP tmpfs part: no private mount namespace (%s)\n", strerror(errno));
        return;
    }
    th_prepare(&d);
    TH_CHECK(mkdir(d.spill, 0700) == 0, "mkdir %s", d.spill);
    if (mount("sfpd-test", d.spill, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700") < 0) {
        printf("SKIP tmpfs part: mount: %s\n", strerror(errno));
        th_cleanup(&d);
        return;
    }
    if (th_start(&d, args) != 0) {
        umount2(d.spill, MNT_DETACH);
        TH_CHECK(0, "sfpd did not start on the tmpfs");
    }
    real_full(&d, args, "tmpfs of 1 MiB on the spill dir (ENOSPC)");
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    TH_CHECK(umount2(d.spill, 0) == 0 || umount2(d.spill, MNT_DETACH) == 0, "umount %s", d.spill);
    th_cleanup(&d);
}

int main(int argc, char **argv)
{
    plain_sfpd = argc > 1 ? argv[1] : getenv("SFPD_BIN");
    faults_sfpd = argc > 2 ? argv[2] : getenv("SFPD_FAULTS_BIN");
    argv_plain[0] = argv[0], argv_plain[1] = (char *)plain_sfpd;
    argv_faults[0] = argv[0], argv_faults[1] = (char *)faults_sfpd;
    th_init(argc, argv, 110);
    sfp_params_default(&P);
    for (int i = 0; i < NT; i++) {
        data[i] = malloc(NV * 4);
        tc_fill(data[i], NV, &P, 300 + (uint64_t)i);
    }
    if (faults_sfpd && access(faults_sfpd, X_OK) == 0) {
        use_daemon(argv_faults);
        injected_write("write:1");
        injected_write("write:3");
        injected_write("write:3+");
        injected_read();
        injected_always("write:1+:ENOSPC", SFPC_EDISKFULL, "ENOSPC on every spill write", 0);
        injected_always("write:1+:ENOSPC", SFPC_EDISKFULL, "ENOSPC on every spill write", 512);
        injected_always("open:1+", SFPC_EIO, "EIO on every segment open", 0);
    } else {
        printf("SKIP injected part: no sfpd-faults (argv[2] or $SFPD_FAULTS_BIN)\n");
    }
    use_daemon(argv_plain);
    fsize_limit();
    tmpfs_full();
    for (int i = 0; i < NT; i++)
        free(data[i]);
    printf("ok\n");
    return 0;
}
