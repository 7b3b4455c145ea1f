/*
 * test_limits: connection and in-flight bounds of the real sfpd.
 *   - with --max-connections 4, a fifth client (libsfpclient or raw) is
 *     refused with EBUSY and its connection closed; once one of the four
 *     goes, a new client gets in; idle raw connections occupy slots too;
 *   - each connection has at most one request in flight: two connections
 *     that pipeline 100 Encode requests each (without waiting for replies)
 *     never have more than 2 requests running in the daemon (sampled from
 *     the Stats "inflight" line), and every request is answered, in order;
 *   - a client that floods Puts through libsfpclient's asynchronous path is
 *     bounded the same way.
 */
#include "common.h"
#include "raw.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static th_daemon d;

static long stat_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return atol(p + n + 1);
    return -1;
}

static int try_connect(const char *job, sfpc **c)
{
    sfpc_options o;
    sfpc_options_default(&o);
    o.socket_path = d.socket;
    o.job_id = job;
    o.shm_size = 1 << 20;
    o.timeout_ms = 5000;
    return sfpc_connect(&o, c);
}

static void connections(void)
{
    const char *args[] = {"--max-connections", "4", NULL};
    sfpc *c[4], *x = NULL;
    int e, fd, raw[4];
    double end;
    sfpc_stats s;

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    for (int i = 0; i < 4; i++) {
        char job[16];
        snprintf(job, sizeof(job), "lim-%d", i);
        TH_CHECK(try_connect(job, &c[i]) == 0, "client %d of 4 refused", i);
    }
    e = try_connect("lim-5", &x);
    TH_CHECK(e == SFPC_EBUSY, "fifth client: %s (want EBUSY)", sfpc_strerror(e));
    /* raw: the refusal comes as the reply to Hello, then the daemon hangs up */
    fd = raw_connect(d.socket);
    TH_CHECK(fd >= 0, "raw connect");
    e = raw_hello(fd, 1, "lim-raw", -1);
    TH_CHECK(e == SFP__IPC__V1__STATUS__E_BUSY, "raw fifth: status %d", e);
    TH_CHECK(raw_closed(fd, 5000), "refused connection not closed");
    close(fd);
    /* the four keep working */
    TH_CHECK(sfpc_stats_get(c[0], &s) == 0, "stats");
    TH_CHECK(stat_value(s.text, "connections_rejected") >= 2, "rejections not counted");
    sfpc_stats_free(&s);
    printf("max_connections 4: the 5th client gets EBUSY (libsfpclient and raw), its connection is closed\n");

    /* one leaves: a new one gets in (the close is processed asynchronously) */
    sfpc_close(&c[3]);
    end = th_now() + 5;
    while ((e = try_connect("lim-3b", &c[3])) == SFPC_EBUSY && th_now() < end)
        usleep(20000);
    TH_CHECK(e == 0, "after a close, a new client: %s", sfpc_strerror(e));
    printf("  after one client closed, a new one is accepted\n");

    /* idle raw connections hold slots as well */
    for (int i = 1; i < 4; i++)
        sfpc_close(&c[i]);
    sfpc_close(&c[0]);
    end = th_now() + 5;
    for (int i = 0; i < 4; i++) {
        raw[i] = raw_connect(d.socket);
        TH_CHECK(raw[i] >= 0, "raw connect %d", i);
    }
    /* the daemon may still be closing the earlier four: wait until it sees
     * exactly the raw ones */
    while ((e = try_connect("lim-x", &x)) != SFPC_EBUSY && th_now() < end) {
        sfpc_close(&x);
        usleep(20000);
    }
    TH_CHECK(e == SFPC_EBUSY, "4 idle connections: a fifth got %s", sfpc_strerror(e));
    for (int i = 0; i < 4; i++)
        close(raw[i]);
    end = th_now() + 5;
    while ((e = try_connect("lim-y", &x)) == SFPC_EBUSY && th_now() < end)
        usleep(20000);
    TH_CHECK(e == 0, "after the idle ones closed: %s", sfpc_strerror(e));
    sfpc_close(&x);
    printf("  4 idle (never said Hello) connections also fill the limit; freed when they close\n");
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

/* ------------------------------------------------------------- in-flight */

#define NREQ 100
#define TV (256 * 1024) /* values per Encode: 1 MiB of F32 */

static atomic_int sampling;
static atomic_long max_inflight, samples;

static void *sampler(void *arg)
{
    sfpc *c = tc_connect(&d, "sampler", 0, 0);
    (void)arg;
    while (atomic_load(&sampling)) {
        sfpc_stats s;
        if (sfpc_stats_get(c, &s) == 0) {
            long v = stat_value(s.text, "inflight");
            if (v > atomic_load(&max_inflight))
                atomic_store(&max_inflight, v);
            atomic_fetch_add(&samples, 1);
            sfpc_stats_free(&s);
        }
        usleep(500);
    }
    sfpc_close(&c);
    return NULL;
}

typedef struct pipeliner {
    int fd;
    uint8_t *shm;
    size_t size;
} pipeliner;

static void pipe_open(pipeliner *p, const char *job)
{
    int mf;
    sfp_params q;
    p->size = 3 * (size_t)TV * 4;
    mf = raw_memfd(p->size, 1);
    TH_CHECK(mf >= 0, "memfd");
    p->shm = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, mf, 0);
    TH_CHECK(p->shm != MAP_FAILED, "mmap");
    p->fd = raw_connect(d.socket);
    TH_CHECK(p->fd >= 0, "connect");
    TH_CHECK(raw_hello(p->fd, 1, job, mf) == 0, "hello");
    close(mf);
    sfp_params_default(&q);
    q.mbits = 7, q.ebits = 5, q.anchor = 140, q.coder = SFP_CODER_GECKO;
    tc_fill(p->shm, TV, &q, 3);
}

static void pipe_send_all(pipeliner *p)
{
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Encode en = SFP__IPC__V1__ENCODE__INIT;
    Sfp__Ipc__V1__Params pr = SFP__IPC__V1__PARAMS__INIT;
    pr.dtype = 1, pr.mbits = 7, pr.ebits = 5, pr.anchor = -1, pr.coder = 1;
    en.offset = 0, en.length = (uint64_t)TV * 4, en.count = TV, en.params = &pr;
    en.out_offset = (uint64_t)TV * 4, en.out_capacity = 2 * (uint64_t)TV * 4;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_ENCODE;
    rq.encode = &en;
    for (int i = 0; i < NREQ; i++) {
        rq.id = 100 + (uint64_t)i;
        TH_CHECK(raw_send_req(p->fd, &rq, -1) == 0, "send %d", i);
    }
}

/* Reads NREQ replies: all ok, ids in order. */
static void pipe_read_all(pipeliner *p)
{
    for (int i = 0; i < NREQ; i++) {
        uint8_t h[4], *b;
        uint32_t n;
        Sfp__Ipc__V1__Response *r;
        TH_CHECK(raw_read_full(p->fd, h, 4, 30000) == 0, "reply %d missing", i);
        n = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        TH_CHECK(n < 4096, "reply size %u", n);
        b = malloc(n + 1);
        TH_CHECK(raw_read_full(p->fd, b, n, 30000) == 0, "reply %d body", i);
        r = sfp__ipc__v1__response__unpack(NULL, n, b);
        TH_CHECK(r && r->status == 0 && r->id == 100 + (uint64_t)i, "reply %d: status %d id %llu", i,
                 r ? (int)r->status : -1, r ? (unsigned long long)r->id : 0ull);
        sfp__ipc__v1__response__free_unpacked(r, NULL);
        free(b);
    }
}

static void inflight(void)
{
    const char *args[] = {"--threads", "4", NULL};
    pipeliner a, b;
    pthread_t t;
    double t0;

    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    pipe_open(&a, "pipe-a");
    pipe_open(&b, "pipe-b");
    atomic_store(&sampling, 1);
    pthread_create(&t, NULL, sampler, NULL);
    t0 = th_now();
    pipe_send_all(&a);
    pipe_send_all(&b);
    pipe_read_all(&a);
    pipe_read_all(&b);
    atomic_store(&sampling, 0);
    pthread_join(t, NULL);
    printf("in flight: 2 connections pipelined %d Encodes of 1 MiB each (%.2f s); %ld Stats samples saw "
           "at most %ld request(s) running in the daemon (4 pool threads); all %d answered in order\n",
           NREQ, th_now() - t0, atomic_load(&samples), atomic_load(&max_inflight), 2 * NREQ);
    TH_CHECK(atomic_load(&samples) >= 5, "too few samples");
    TH_CHECK(atomic_load(&max_inflight) <= 2, "%ld requests in flight from 2 connections",
             atomic_load(&max_inflight));
    TH_CHECK(atomic_load(&max_inflight) >= 1, "sampler never saw the work");
    close(a.fd);
    close(b.fd);
    munmap(a.shm, a.size);
    munmap(b.shm, b.size);

    /* async Puts: many outstanding in the client, one at a time in the daemon */
    {
        sfpc *c = tc_connect(&d, "async", 0, 32 * (size_t)TV * 4 / 4);
        size_t sz;
        uint8_t *shm = sfpc_shm(c, &sz);
        sfp_params q;
        int n = (int)(sz / ((size_t)TV * 4 / 4));
        sfp_params_default(&q);
        tc_fill(shm, sz / 4, &q, 9);
        atomic_store(&max_inflight, 0);
        atomic_store(&samples, 0);
        atomic_store(&sampling, 1);
        pthread_create(&t, NULL, sampler, NULL);
        for (int r = 0; r < 4; r++) {
            for (int i = 0; i < n; i++) {
                sfpc_key k = {.rank = 0, .step = (uint64_t)(r * n + i), .tensor = "a"};
                TH_CHECK(sfpc_put(c, &k, shm + (size_t)i * TV, TV / 4, &q, SFPC_ASYNC, NULL) == 0, "async put");
            }
            TH_CHECK(sfpc_flush(c) == 0, "flush");
        }
        atomic_store(&sampling, 0);
        pthread_join(t, NULL);
        printf("  %d asynchronous Puts from one client: at most %ld running in the daemon\n", 4 * n,
               atomic_load(&max_inflight));
        /* a Put, and no spill (default DRAM budget): 1 */
        TH_CHECK(atomic_load(&max_inflight) <= 1, "%ld in flight from one connection",
                 atomic_load(&max_inflight));
        sfpc_close(&c);
    }
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "exit status %d", d.exit_status);
    th_cleanup(&d);
}

int main(int argc, char **argv)
{
    th_init(argc, argv, 55);
    connections();
    inflight();
    printf("ok\n");
    return 0;
}
