/* wire.c - see wire.h. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sfp/sfp.h>

#include "wire.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Reads n decimal counters from p[0..end), separated by blanks. */
static int counters(const char *p, const char *end, uint64_t *v, int n)
{
    for (int i = 0; i < n; i++) {
        while (p < end && is_space(*p))
            p++;
        if (p == end || *p < '0' || *p > '9')
            return -1;
        uint64_t x = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            uint64_t d = (uint64_t)(*p - '0');
            if (x > UINT64_MAX / 10 || (x == UINT64_MAX / 10 && d > UINT64_MAX % 10))
                return -1;
            x = x * 10 + d;
        }
        if (p < end && !is_space(*p))
            return -1;
        v[i] = x;
    }
    return 0;
}

int sfpw_wire_parse(const char *text, size_t len, const char *ifname,
                    uint64_t *rx, uint64_t *tx)
{
    size_t nl = strlen(ifname);
    if (nl == 0)
        return SFP_EINVAL;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *q = p;
        while (q < eol && is_space(*q))
            q++;
        const char *colon = memchr(q, ':', (size_t)(eol - q));
        if (colon && (size_t)(colon - q) == nl && !memcmp(q, ifname, nl)) {
            uint64_t v[16];
            if (counters(colon + 1, eol, v, 16))
                return SFP_EINVAL;
            *rx = v[0];
            *tx = v[8];
            return 0;
        }
        p = eol + 1;
    }
    return SFP_EINVAL;
}

int sfpw_wire_read(const char *ifname, uint64_t *rx, uint64_t *tx)
{
    /* one read: the file is generated whole, a few hundred bytes a line */
    char buf[16384];
    int fd = open("/proc/net/dev", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SFP_EUNSUPPORTED;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0) {
            close(fd);
            return SFP_EUNSUPPORTED;
        }
        if (n == 0 || (len += (size_t)n) == sizeof buf)
            break;
    }
    close(fd);
    return sfpw_wire_parse(buf, len, ifname, rx, tx);
}
