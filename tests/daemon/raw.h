/* raw.h - a hand-rolled IPC client for hostile tests (no libsfpclient). */
#ifndef SFPD_TEST_RAW_H
#define SFPD_TEST_RAW_H

#include "harness.h"
#include "sfp/ipc/v1/ipc.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static inline int raw_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t n = strlen(path);
    if (n >= sizeof(a.sun_path))
        return -1;
    memcpy(a.sun_path, path, n + 1);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(s);
        return -1;
    }
    return s;
}

static inline int raw_send(int s, const void *buf, size_t len, int fd)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = {(void *)buf, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&cm, 0, sizeof(cm));
        m.msg_control = cm.b;
        m.msg_controllen = sizeof(cm.b);
        CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
        CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
        CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &fd, sizeof(int));
    }
    return sendmsg(s, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static inline int raw_send_req(int s, Sfp__Ipc__V1__Request *rq, int fd)
{
    size_t n = sfp__ipc__v1__request__get_packed_size(rq);
    uint8_t *b = malloc(n + 4);
    int r;
    b[0] = (uint8_t)n, b[1] = (uint8_t)(n >> 8), b[2] = (uint8_t)(n >> 16), b[3] = (uint8_t)(n >> 24);
    sfp__ipc__v1__request__pack(rq, b + 4);
    r = raw_send(s, b, n + 4, fd);
    free(b);
    return r;
}

static inline int raw_read_full(int s, uint8_t *b, size_t n, int timeout_ms)
{
    while (n) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        ssize_t r;
        if (poll(&p, 1, timeout_ms) <= 0)
            return -2; /* timeout */
        r = recv(s, b, n, 0);
        if (r <= 0)
            return -1; /* closed */
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads one response: its status (>= 0), -1 if the daemon closed, -2 on timeout. */
static inline int raw_read_status(int s, int timeout_ms)
{
    uint8_t h[4], *b;
    uint32_t n;
    int st, r = raw_read_full(s, h, 4, timeout_ms);
    Sfp__Ipc__V1__Response *resp;
    if (r < 0)
        return r;
    n = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    if (n > (64u << 20))
        return -3;
    b = malloc(n + 1);
    if ((r = raw_read_full(s, b, n, timeout_ms)) < 0) {
        free(b);
        return r;
    }
    resp = sfp__ipc__v1__response__unpack(NULL, n, b);
    free(b);
    if (!resp)
        return -3;
    st = (int)resp->status;
    sfp__ipc__v1__response__free_unpacked(resp, NULL);
    return st;
}

/* 1 if the daemon closes the connection within timeout (after any replies). */
static inline int raw_closed(int s, int timeout_ms)
{
    double end = th_now() + timeout_ms / 1000.0;
    uint8_t b[4096];
    while (th_now() < end) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            ssize_t r = recv(s, b, sizeof(b), 0);
            if (r <= 0)
                return 1;
        }
    }
    return 0;
}

static inline int raw_memfd(size_t size, int seal)
{
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        return -1;
    if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
        return -1;
    return fd;
}

/* Connects and says Hello (version, with an optional fd); returns the status. */
static inline int raw_hello(int s, uint32_t version, const char *job, int fd)
{
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Hello h = SFP__IPC__V1__HELLO__INIT;
    h.version = version;
    h.job_id = (char *)job;
    h.client_name = (char *)"hostile";
    rq.id = 1;
    rq.body_case = SFP__IPC__V1__REQUEST__BODY_HELLO;
    rq.hello = &h;
    if (raw_send_req(s, &rq, fd) < 0)
        return -1;
    return raw_read_status(s, 5000);
}

#endif
