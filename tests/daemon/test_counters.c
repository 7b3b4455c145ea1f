/*
 * test_counters: the counters and gauges that lied (issue 15 item 5).
 *  - jobs_ended counts a job once: EndJob then the grace-period expiry of
 *    the same job adds 1, not 2; a job that never held a stash adds nothing
 *    when it expires; a job that held stashes and just went away adds 1.
 *  - tier bytes are frame bytes: the disk tier's bytes equal the frame
 *    bytes of the frames on disk (the jobs' disk bytes sum to them), with
 *    DRAM they sum to bytes_stored (no prefetch copies here), and the
 *    record overhead shows separately as the disk's used bytes.
 * Read through the IPC Stats text (the same snapshot every reporter uses).
 */
#include "common.h"

#include <inttypes.h>
#include <signal.h>
#include <unistd.h>

#define NV 8192

static th_daemon d;
static float data[NV];
static sfp_params P;

/* value of "name value" / name{...} value in the stats text, or of a
 * key=value inside the line that starts with prefix */
static uint64_t stat_line(sfpc *obs, const char *line_prefix)
{
    sfpc_stats s;
    const char *p;
    uint64_t v = UINT64_MAX;
    TH_CHECK(sfpc_stats_get(obs, &s) == 0, "stats");
    if ((p = strstr(s.text, line_prefix)) && (p == s.text || p[-1] == '\n'))
        v = strtoull(p + strlen(line_prefix), NULL, 10);
    sfpc_stats_free(&s);
    TH_CHECK(v != UINT64_MAX, "no line %s", line_prefix);
    return v;
}

static uint64_t job_field(sfpc *obs, const char *job, const char *key)
{
    sfpc_stats s;
    char pfx[128], k[64];
    const char *l, *p, *e;
    uint64_t v = UINT64_MAX;
    snprintf(pfx, sizeof(pfx), "job{job=\"%s\"}", job);
    snprintf(k, sizeof(k), " %s=", key);
    TH_CHECK(sfpc_stats_get(obs, &s) == 0, "stats");
    if ((l = strstr(s.text, pfx)) && (e = strchr(l, '\n')) && (p = strstr(l, k)) && p < e)
        v = strtoull(p + strlen(k), NULL, 10);
    sfpc_stats_free(&s);
    TH_CHECK(v != UINT64_MAX, "no %s for job %s", key, job);
    return v;
}

static int job_listed(sfpc *obs, const char *job)
{
    sfpc_stats s;
    char pfx[128];
    int r;
    snprintf(pfx, sizeof(pfx), "job{job=\"%s\"}", job);
    TH_CHECK(sfpc_stats_get(obs, &s) == 0, "stats");
    r = strstr(s.text, pfx) != NULL;
    sfpc_stats_free(&s);
    return r;
}

static void wait_gone(sfpc *obs, const char *job)
{
    double end = th_now() + 10;
    while (job_listed(obs, job) && th_now() < end)
        usleep(20000);
    TH_CHECK(!job_listed(obs, job), "job %s still there after its grace period", job);
}

static void put_some(sfpc *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        char name[16];
        sfpc_key k = {.rank = 0, .step = 1, .tensor = name};
        snprintf(name, sizeof(name), "t%u", i);
        TH_CHECK(sfpc_put(c, &k, data, NV, &P, 0, NULL) == 0, "put %u", i);
    }
}

int main(int argc, char **argv)
{
    const char *args[] = {"--grace-period", "0.3", "--dram-budget", "64K", "--prefetch-depth", "0", NULL};
    sfpc *obs, *c;
    uint64_t ended0, v;

    th_init(argc, argv, 60);
    sfp_params_default(&P);
    P.mbits = 7, P.ebits = 6, P.coder = SFP_CODER_GECKO;
    tc_fill(data, NV, &P, 3);
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    obs = tc_connect(&d, "observer", 0, 1 << 16); /* never holds data */

    /* jobs_ended: once per job */
    ended0 = stat_line(obs, "jobs_ended ");
    c = tc_connect(&d, "ends-then-expires", 0, NV * 4);
    put_some(c, 2);
    TH_CHECK(sfpc_end_job(c) == 0, "EndJob");
    sfpc_close(&c);
    wait_gone(obs, "ends-then-expires");
    v = stat_line(obs, "jobs_ended ");
    TH_CHECK(v == ended0 + 1, "EndJob + grace expiry: jobs_ended +%" PRIu64 ", want +1", v - ended0);
    c = tc_connect(&d, "hello-only", 0, 1 << 16);
    sfpc_close(&c);
    wait_gone(obs, "hello-only");
    TH_CHECK(stat_line(obs, "jobs_ended ") == ended0 + 1, "a job that never held data counted");
    c = tc_connect(&d, "goes-away", 0, NV * 4);
    put_some(c, 1);
    sfpc_close(&c);
    wait_gone(obs, "goes-away");
    TH_CHECK(stat_line(obs, "jobs_ended ") == ended0 + 2, "a job that held data and expired not counted");
    printf("jobs_ended: EndJob then expiry +1, Hello-only expiry +0, stashes then expiry +1\n");

    /* tier bytes: frame bytes, the overhead apart */
    c = tc_connect(&d, "spiller", 0, NV * 4);
    put_some(c, 12); /* 64 KiB of DRAM: most frames go to disk */
    usleep(200000);
    {
        uint64_t dram = stat_line(obs, "tier_bytes{tier=\"dram\"} ");
        uint64_t disk = stat_line(obs, "tier_bytes{tier=\"disk\"} ");
        uint64_t used = stat_line(obs, "tier_used_bytes{tier=\"disk\"} ");
        uint64_t stored = stat_line(obs, "bytes_stored ");
        uint64_t frames = stat_line(obs, "tier_frames{tier=\"disk\"} ");
        uint64_t jdisk = job_field(obs, "spiller", "disk_bytes");
        TH_CHECK(frames > 0 && disk > 0, "nothing spilled");
        TH_CHECK(jdisk == disk, "disk tier %" PRIu64 " != the job's disk bytes %" PRIu64, disk, jdisk);
        TH_CHECK(dram + disk == stored, "dram %" PRIu64 " + disk %" PRIu64 " != bytes_stored %" PRIu64,
                 dram, disk, stored);
        /* each record: 80-byte header + name padded to 8, frame padded to 8 */
        TH_CHECK(used >= disk + frames * 88 && used <= disk + frames * (88 + 8),
                 "disk used %" PRIu64 " for %" PRIu64 " frames of %" PRIu64 " bytes", used, frames, disk);
        printf("tiers: dram %" PRIu64 " + disk %" PRIu64 " = bytes_stored %" PRIu64
               "; disk used %" PRIu64 " (%" PRIu64 " frames: %.1f B of record overhead each)\n",
               dram, disk, stored, used, frames, (double)(used - disk) / (double)frames);
    }
    sfpc_close(&c);
    sfpc_close(&obs);
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
    printf("ok\n");
    return 0;
}
