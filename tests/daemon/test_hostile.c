/*
 * test_hostile: hostile clients (random bytes, truncated and stalled
 * messages, 4 GiB length prefix, wrong protocol version, unknown message
 * types, requests before Hello, bad shared memory, offsets outside the shm,
 * garbage frames, connection floods, a client that never reads) each get an
 * error or a closed connection, while a well-behaved client keeps being
 * served, bit-exact, in the same run.
 */
#include "common.h"
#include "raw.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static th_daemon d;
static atomic_int stop_good;
static atomic_long good_ops, good_errors;

static void *good_client(void *arg)
{
    sfpc *c = tc_connect(&d, "good", 0, 4 << 20);
    sfp_params p;
    float *in = malloc(65536 * 4), *out = malloc(65536 * 4);
    uint64_t i = 0;
    (void)arg;
    sfp_params_default(&p);
    p.mbits = 7;
    p.ebits = 5;
    p.coder = SFP_CODER_GECKO;
    tc_fill(in, 65536, &p, 5);
    while (!atomic_load(&stop_good)) {
        sfpc_key k = {.rank = 0, .step = i, .tensor = "w"};
        int e = sfpc_put(c, &k, in, 65536, &p, 0, NULL);
        if (e == 0)
            e = sfpc_get(c, &k, out, 65536 * 4, SFPC_GET_DROP, NULL);
        if (e || memcmp(in, out, 65536 * 4) != 0) {
            fprintf(stderr, "good client: %s\n", e ? sfpc_strerror(e) : "data differs");
            atomic_fetch_add(&good_errors, 1);
        } else {
            atomic_fetch_add(&good_ops, 1);
        }
        i++;
    }
    sfpc_close(&c);
    free(in);
    free(out);
    return NULL;
}

/* The good client must make progress while the hostile one runs. */
static void expect_progress(const char *what)
{
    long before = atomic_load(&good_ops);
    double end = th_now() + 10;
    while (atomic_load(&good_ops) < before + 3 && th_now() < end)
        usleep(1000);
    TH_CHECK(atomic_load(&good_ops) >= before + 3, "good client stalled after: %s", what);
    TH_CHECK(atomic_load(&good_errors) == 0, "good client saw errors after: %s", what);
    printf("  %-58s -> handled; good client still served (%ld ops)\n", what, atomic_load(&good_ops));
}

#define ST(x) SFP__IPC__V1__STATUS__##x

static void random_bytes(void)
{
    uint64_t s = 42;
    for (int round = 0; round < 20; round++) {
        uint8_t buf[1024];
        int fd = raw_connect(d.socket);
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (uint8_t)th_rand(&s);
        if (round % 2)
            buf[0] = 200, buf[1] = buf[2] = buf[3] = 0; /* a plausible prefix, garbage body */
        TH_CHECK(fd >= 0, "connect");
        raw_send(fd, buf, sizeof(buf), -1);
        TH_CHECK(raw_closed(fd, 5000), "random bytes: connection not closed");
        close(fd);
    }
    expect_progress("random bytes (20 connections)");
}

static void truncated(void)
{
    /* announces 100 bytes, sends 50, hangs up */
    uint8_t buf[54] = {100, 0, 0, 0};
    int fd = raw_connect(d.socket);
    raw_send(fd, buf, sizeof(buf), -1);
    close(fd);
    /* announces 100 bytes, sends 10, then stalls: io_timeout closes it */
    fd = raw_connect(d.socket);
    raw_send(fd, buf, 14, -1);
    TH_CHECK(raw_closed(fd, 5000), "stalled message not timed out");
    close(fd);
    expect_progress("truncated message; stalled half message (io_timeout 1 s)");
}

static void huge_prefix(void)
{
    uint8_t buf[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    int fd = raw_connect(d.socket), st;
    raw_send(fd, buf, sizeof(buf), -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_TOO_LARGE), "4 GiB prefix: status %d", st);
    TH_CHECK(raw_closed(fd, 5000), "4 GiB prefix: not closed");
    close(fd);
    expect_progress("4 GiB length prefix -> E_TOO_LARGE + close");
}

static void wrong_version(void)
{
    int fd = raw_connect(d.socket), st;
    st = raw_hello(fd, 99, "bad", -1);
    TH_CHECK(st == ST(E_VERSION), "version 99: status %d", st);
    TH_CHECK(raw_closed(fd, 5000), "wrong version: not closed");
    close(fd);
    expect_progress("protocol version 99 -> E_VERSION + close");
}

static void unknown_type(void)
{
    /* Request{id=5, field 50 = 1}: a type this daemon does not know */
    uint8_t msg[] = {7, 0, 0, 0, 0x08, 0x05, 0x90, 0x03, 0x01, 0x08, 0x06};
    /* an empty request (no body), and a zero-length one */
    uint8_t empty[] = {2, 0, 0, 0, 0x08, 0x07};
    uint8_t zero[] = {0, 0, 0, 0};
    int fd, st;

    /* before Hello every request but Hello is E_HELLO_REQUIRED, these too
     * (docs/PROTOCOL.md; they were E_UNKNOWN_TYPE before issue 15) */
    fd = raw_connect(d.socket);
    raw_send(fd, zero, sizeof(zero), -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_HELLO_REQUIRED), "zero-length request before Hello: status %d", st);
    raw_send(fd, empty, sizeof(empty), -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_HELLO_REQUIRED), "empty request before Hello: status %d", st);
    raw_send(fd, msg, 4 + 7, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_HELLO_REQUIRED), "unknown type before Hello: status %d", st);
    TH_CHECK(raw_hello(fd, 1, "unknown-type", -1) == 0, "Hello after them");
    /* after Hello they are E_UNKNOWN_TYPE */
    raw_send(fd, msg, 4 + 7, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_UNKNOWN_TYPE), "unknown type: status %d", st);
    raw_send(fd, empty, sizeof(empty), -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_UNKNOWN_TYPE), "empty request: status %d", st);
    raw_send(fd, zero, sizeof(zero), -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_UNKNOWN_TYPE), "zero-length request: status %d", st);
    close(fd);
    expect_progress("zero-length, empty and unknown requests -> E_HELLO_REQUIRED before Hello, "
                    "E_UNKNOWN_TYPE after");
}

static void before_hello(void)
{
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Drop dr = SFP__IPC__V1__DROP__INIT;
    Sfp__Ipc__V1__Key k = SFP__IPC__V1__KEY__INIT;
    int fd = raw_connect(d.socket), st;
    k.tensor = (char *)"w";
    dr.key = &k;
    rq.id = 3;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_DROP;
    rq.drop = &dr;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_HELLO_REQUIRED), "before hello: status %d", st);
    close(fd);
    expect_progress("Drop before Hello -> E_HELLO_REQUIRED");
}

static void bad_shm(void)
{
    int fd, st, mf;
    /* unsealed memfd: the client could shrink it under the daemon */
    fd = raw_connect(d.socket);
    mf = raw_memfd(1 << 16, 0);
    st = raw_hello(fd, 1, "shm", mf);
    TH_CHECK(st == ST(E_NO_SHM), "unsealed memfd: status %d", st);
    close(mf);
    close(fd);
    /* not a memfd at all */
    fd = raw_connect(d.socket);
    mf = open("/dev/null", O_RDONLY);
    st = raw_hello(fd, 1, "shm", mf);
    TH_CHECK(st == ST(E_NO_SHM), "/dev/null as shm: status %d", st);
    close(mf);
    close(fd);
    expect_progress("unsealed memfd, /dev/null as shm -> E_NO_SHM");
}

static void out_of_range(void)
{
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Put put = SFP__IPC__V1__PUT__INIT;
    Sfp__Ipc__V1__Get get = SFP__IPC__V1__GET__INIT;
    Sfp__Ipc__V1__Encode en = SFP__IPC__V1__ENCODE__INIT;
    Sfp__Ipc__V1__Decode de = SFP__IPC__V1__DECODE__INIT;
    Sfp__Ipc__V1__Key k = SFP__IPC__V1__KEY__INIT;
    Sfp__Ipc__V1__Params p = SFP__IPC__V1__PARAMS__INIT;
    size_t size = 1 << 16;
    int fd = raw_connect(d.socket), mf = raw_memfd(size, 1), st;
    uint8_t *shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mf, 0);

    TH_CHECK(raw_hello(fd, 1, "ranges", mf) == 0, "hello");
    close(mf);
    k.tensor = (char *)"t";
    p.dtype = 1, p.mbits = 23, p.ebits = 8, p.anchor = -1;
    /* Put reaching past the end of the shm */
    put.key = &k, put.params = &p;
    put.offset = size - 1024, put.count = 1024, put.length = 4096;
    rq.id = 10, rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT, rq.put = &put;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_RANGE), "put past end: %d", st);
    /* offset + length wrapping around 2^64 */
    put.offset = UINT64_MAX - 100;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_RANGE), "put wrap: %d", st);
    /* length inconsistent with count */
    put.offset = 0, put.length = 4095;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_INVALID), "put bad length: %d", st);
    /* a valid put, then Gets to bad places */
    put.offset = 0, put.length = 4096;
    memset(shm, 0, 4096);
    raw_send_req(fd, &rq, -1);
    TH_CHECK(raw_read_status(fd, 5000) == 0, "valid put");
    get.key = &k, get.offset = size - 100, get.capacity = 4096;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_GET, rq.get = &get;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_RANGE), "get past end: %d", st);
    get.offset = UINT64_MAX;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_RANGE), "get wrap: %d", st);
    /* Encode with overlapping input and output */
    en.offset = 0, en.length = 4096, en.count = 1024, en.params = &p;
    en.out_offset = 2048, en.out_capacity = 8192;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_ENCODE, rq.encode = &en;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_INVALID), "overlap: %d", st);
    /* Decode of garbage */
    for (size_t i = 0; i < 4096; i++)
        shm[i] = (uint8_t)(i * 7);
    de.offset = 0, de.length = 4096, de.out_offset = 8192, de.out_capacity = 16384;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_DECODE, rq.decode = &de;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_CODEC), "garbage frame: %d", st);
    /* Decode out of range */
    de.out_offset = size;
    raw_send_req(fd, &rq, -1);
    st = raw_read_status(fd, 5000);
    TH_CHECK(st == ST(E_RANGE), "decode out of range: %d", st);
    munmap(shm, size);
    close(fd);
    expect_progress("shm offsets outside the region, overlap, garbage frame");
}

static void flood(void)
{
    int fds[300];
    for (int i = 0; i < 300; i++)
        fds[i] = raw_connect(d.socket);
    expect_progress("300 idle connections open");
    for (int i = 0; i < 300; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    expect_progress("300 connections closed");
}

static void never_reads(void)
{
    /* pipelines thousands of Stats requests and never reads the replies */
    int fd = raw_connect(d.socket);
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__StatsRequest sr = SFP__IPC__V1__STATS_REQUEST__INIT;
    int sent = 0;
    raw_hello(fd, 1, "lazy", -1);
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_STATS;
    rq.stats = &sr;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 20000; i++) {
        size_t n = sfp__ipc__v1__request__get_packed_size(&rq);
        uint8_t b[64] = {(uint8_t)n, 0, 0, 0};
        rq.id = (uint64_t)i + 2;
        sfp__ipc__v1__request__pack(&rq, b + 4);
        if (send(fd, b, n + 4, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            break;
        sent++;
    }
    expect_progress("client that pipelines requests and never reads");
    close(fd);
    (void)sent;
}

int main(int argc, char **argv)
{
    const char *args[] = {"--io-timeout", "1", "--max-message", "4K", NULL};
    pthread_t t;

    th_init(argc, argv, 110);
    th_prepare(&d);
    TH_CHECK(th_start(&d, args) == 0, "sfpd did not start");
    pthread_create(&t, NULL, good_client, NULL);
    printf("hostile clients against a live daemon:\n");
    random_bytes();
    truncated();
    huge_prefix();
    wrong_version();
    unknown_type();
    before_hello();
    bad_shm();
    out_of_range();
    flood();
    never_reads();
    atomic_store(&stop_good, 1);
    pthread_join(t, NULL);
    TH_CHECK(atomic_load(&good_errors) == 0, "good client errors");
    TH_CHECK(th_stop(&d, SIGTERM, 20) == 0, "daemon exit status %d", d.exit_status);
    printf("good client: %ld bit-exact put/get round trips, 0 errors; daemon exited 0\n",
           atomic_load(&good_ops));
    th_cleanup(&d);
    printf("ok\n");
    return 0;
}
