/*
 * test_stash_loss: what sfp-train says when sfpd is lost matches what it
 * does (issue 15 item 6). The real sfpd is killed (SIGKILL) under a daemon
 * stash with on_loss = fallback:
 *  - during a weight-piece encode, the piece is encoded in-process and no
 *    step runs again, and the log line says "nothing runs again" (it said
 *    "this step runs again" while the report showed steps_rerun 0);
 *  - during a stash put, the put returns SFPW_STASH_ERETRY (the trainer
 *    runs the step again) and the log line says "this step runs again".
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

static sfpw_stash *open_and_kill(th_daemon *d, const char *job)
{
    sfpw_daemon_config cfg;
    sfpw_stash *st = NULL;
    th_prepare(d);
    TH_CHECK(th_start(d, NULL) == 0, "sfpd did not start");
    memset(&cfg, 0, sizeof(cfg));
    cfg.socket_path = d->socket;
    cfg.job_id = job;
    cfg.shm_size = 1 << 20;
    cfg.timeout_ms = 5000;
    cfg.on_loss = SFPW_ON_LOSS_FALLBACK;
    cfg.log = log_line;
    TH_CHECK(sfpw_stash_daemon_open(&st, &cfg) == 0, "open the daemon stash");
    th_stop(d, SIGKILL, 10);
    logged[0] = 0;
    return st;
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
    printf("ok\n");
    return 0;
}
