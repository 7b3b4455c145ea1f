/*
 * test_stash_loss: what sfp-train says when sfpd is lost matches what it
 * does (issue 15 item 6). The real sfpd is killed (SIGKILL) under a daemon
 * stash with on_loss = fallback:
 *  - during a weight-piece encode, the piece is encoded in-process and no
 *    step runs again, and the log line says "nothing runs again" (it said
 *    "this step runs again" while the report showed steps_rerun 0);
 *  - during a stash put, the put returns SFPW_STASH_ERETRY (the trainer
 *    runs the step again) and the log line says "this step runs again".
 * And the rank codec (cfg.rank_codec, --stash-codec rank): a step of puts
 * and gets in reverse order comes back bit-exact with sizes known at the
 * put; sfpd killed after the (corked) puts: backward() returns
 * SFPW_STASH_ERETRY; with a ring that wraps within the step, sfpd killed in
 * the middle of backward while a frame is read ahead: the get returns
 * SFPW_STASH_ERETRY, says "sfpd lost (get"; either way the step run again
 * goes in-process.
 */
#include "harness.h"
#include "stash.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static char logged[1024];

static void log_line(const char *msg)
{
    snprintf(logged, sizeof(logged), "%s", msg);
}

static sfpw_stash *open_stash_shm(th_daemon *d, const char *job, int rank_codec, size_t shm)
{
    sfpw_daemon_config cfg;
    sfpw_stash *st = NULL;
    th_prepare(d);
    TH_CHECK(th_start(d, NULL) == 0, "sfpd did not start");
    memset(&cfg, 0, sizeof(cfg));
    cfg.rank_codec = rank_codec;
    cfg.socket_path = d->socket;
    cfg.job_id = job;
    cfg.shm_size = shm;
    cfg.timeout_ms = 5000;
    cfg.on_loss = SFPW_ON_LOSS_FALLBACK;
    cfg.log = log_line;
    TH_CHECK(sfpw_stash_daemon_open(&st, &cfg) == 0, "open the daemon stash");
    logged[0] = 0;
    return st;
}

static sfpw_stash *open_stash(th_daemon *d, const char *job, int rank_codec)
{
    return open_stash_shm(d, job, rank_codec, 1 << 20);
}

static sfpw_stash *open_and_kill(th_daemon *d, const char *job)
{
    sfpw_stash *st = open_stash(d, job, 0);
    th_stop(d, SIGKILL, 10);
    return st;
}

#define NT 4
#define NV 4096

/* One step with the rank codec: puts 0..NT-1, backward, gets in reverse;
 * kill_after >= 0 kills sfpd after that many gets, -2 before backward().
 * Returns backward's or the first get's error (0: all bit-exact). */
static int rank_step(th_daemon *d, sfpw_stash *st, uint64_t step, float (*t)[NV], int kill_after)
{
    static float out[NV];
    const sfp_params *p = NULL;
    sfp_params pp;
    sfp_params_default(&pp);
    p = &pp;
    for (int i = 0; i < NT; i++) {
        sfpw_stash_key k = {.job = 0, .rank = 0, .step = step, .tensor = (uint32_t)i};
        size_t fb = 0;
        int rc = st->ops->put(st, &k, t[i], NV, i == NT - 1 ? NULL : p, &fb, NULL);
        TH_CHECK(rc == 0, "put %d: %d", i, rc);
        TH_CHECK(fb > 0, "put %d: size not known at the put", i);
    }
    {
        sfpw_stash_key k = {.job = 0, .rank = 0, .step = step, .tensor = 0};
        if (kill_after == -2)
            th_stop(d, SIGKILL, 10);
        int rc = st->ops->backward(st, &k, NULL);
        if (rc)
            return rc;
    }
    for (int i = NT - 1; i >= 0; i--) {
        sfpw_stash_key k = {.job = 0, .rank = 0, .step = step, .tensor = (uint32_t)i};
        if (NT - 1 - i == kill_after)
            th_stop(d, SIGKILL, 10);
        int rc = st->ops->get(st, &k, out, NV);
        if (rc)
            return rc;
        TH_CHECK(memcmp(out, t[i], sizeof(out)) == 0, "step %llu tensor %d not bit-exact",
                 (unsigned long long)step, i);
    }
    return 0;
}

/* Steps 1 and 2 through sfpd, step 3 with sfpd killed at kill (as
 * rank_step) must return ERETRY and log what, step 3 again in-process. */
static void lose_in_step(th_daemon *d, sfpw_stash *st, float (*t)[NV], int kill,
                         const char *what, const char *when)
{
    TH_CHECK(rank_step(d, st, 1, t, -1) == 0, "step 1 through sfpd (%s)", when);
    TH_CHECK(rank_step(d, st, 2, t, -1) == 0, "step 2 through sfpd (%s)", when);
    int rc = rank_step(d, st, 3, t, kill);
    TH_CHECK(rc == SFPW_STASH_ERETRY, "%s: %d", when, rc);
    TH_CHECK(strstr(logged, what) && strstr(logged, "this step runs again"), "%s said: %s",
             when, logged);
    printf("rank codec, %s: %s\n", when, logged);
    TH_CHECK(!sfpw_stash_daemon_alive(st), "still alive after the loss");
    TH_CHECK(rank_step(d, st, 3, t, -1) == 0, "step 3 again, in-process (%s)", when);
    sfpw_stash_close(&st);
    th_cleanup(d);
}

static void rank_codec(void)
{
    static float t[NT][NV];
    th_daemon d;
    for (int i = 0; i < NT; i++)
        for (int j = 0; j < NV; j++)
            t[i][j] = (j % 5 == 0) ? 0.0f : (float)((i + 1) * j % 977) * 0.25f - 60.0f;
    /* the step's frames fit the ring: its puts (corked until backward) and
     * every GetFrame leave at backward(); sfpd killed before that loses
     * the step there */
    sfpw_stash *st = open_stash(&d, "rank-codec", 1);
    TH_CHECK(!(st->ops->flags & SFPW_STASH_DEFERRED), "the rank codec's puts are not deferred");
    lose_in_step(&d, st, t, -2, "sfpd lost (", "lost before backward");
    /* a ring of two frames: it wraps within the step, the gets go one
     * ahead; sfpd killed while tensor NT-2 is being read ahead */
    st = open_stash_shm(&d, "rank-codec-ring", 1, 40 << 10);
    lose_in_step(&d, st, t, 1, "sfpd lost (get", "lost during backward");
}

int main(int argc, char **argv)
{
    th_daemon d;
    float w[4096];
    unsigned char frame[32768];
    size_t len = 0, fb = 0;
    sfp_params p;
    sfpw_stash *st;
    int rc;

    th_init(argc, argv, 60);
    sfp_params_default(&p);
    for (size_t i = 0; i < 4096; i++)
        w[i] = (float)i / 4096.0f - 0.5f;

    st = open_and_kill(&d, "loss-encode");
    rc = sfpw_stash_daemon_encode(st, w, 4096, &p, frame, sizeof(frame), &len);
    TH_CHECK(rc == SFPW_ENCODE_IN_PROCESS, "encode after the loss: %d", rc);
    TH_CHECK(strstr(logged, "sfpd lost (encode") && strstr(logged, "nothing runs again") &&
                 !strstr(logged, "this step runs again"), "encode loss said: %s", logged);
    printf("lost during an encode: %s\n", logged);
    sfpw_stash_close(&st);
    th_cleanup(&d);

    st = open_and_kill(&d, "loss-put");
    {
        sfpw_stash_key k = {.job = 0, .rank = 0, .step = 1, .tensor = 0};
        rc = st->ops->put(st, &k, w, 4096, &p, &fb, NULL);
    }
    TH_CHECK(rc == SFPW_STASH_ERETRY, "put after the loss: %d", rc);
    TH_CHECK(strstr(logged, "sfpd lost (put") && strstr(logged, "this step runs again"),
             "put loss said: %s", logged);
    printf("lost during a put: %s\n", logged);
    sfpw_stash_close(&st);
    th_cleanup(&d);
    rank_codec();
    printf("ok\n");
    return 0;
}
