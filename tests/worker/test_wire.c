/* test_wire.c - the /proc/net/dev parser on real, edge and hostile input,
 * and the live file (lo exists in every network namespace). */
#include <string.h>

#include <sfp/sfp.h>

#include "wcheck.h"
#include "wire.h"

static const char sample[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
    "    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0\n"
    " veth0: 18446744073709551615 5 0 0 0 0 0 0 42 3 0 0 0 0 0 0\n"
    "veth01:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";

static int parse(const char *text, const char *ifname, uint64_t *rx, uint64_t *tx)
{
    return sfpw_wire_parse(text, strlen(text), ifname, rx, tx);
}

/* xorshift: reproducible mutations */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(void)
{
    uint64_t rx = 7, tx = 7;
    CHECK_EQ_INT(parse(sample, "lo", &rx, &tx), 0);
    CHECK_EQ_INT(rx, 1234);
    CHECK_EQ_INT(tx, 1234);
    CHECK_EQ_INT(parse(sample, "veth0", &rx, &tx), 0);
    CHECK(rx == UINT64_MAX);
    CHECK_EQ_INT(tx, 42);
    CHECK_EQ_INT(parse(sample, "veth01", &rx, &tx), 0); /* no blank after ':' */
    CHECK_EQ_INT(rx, 1);
    CHECK_EQ_INT(tx, 9);

    /* not there, prefixes and empty names are not matches; nothing written */
    rx = tx = 7;
    CHECK_EQ_INT(parse(sample, "eth0", &rx, &tx), SFP_EINVAL);
    CHECK_EQ_INT(parse(sample, "veth", &rx, &tx), SFP_EINVAL);
    CHECK_EQ_INT(parse(sample, "", &rx, &tx), SFP_EINVAL);
    CHECK_EQ_INT(parse("", "lo", &rx, &tx), SFP_EINVAL);
    /* malformed lines of the interface asked for */
    CHECK_EQ_INT(parse("lo: 1 2 3\n", "lo", &rx, &tx), SFP_EINVAL);           /* too few */
    CHECK_EQ_INT(parse("lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n", "lo", &rx, &tx), SFP_EINVAL);
    CHECK_EQ_INT(parse("lo: 1 2 3 4 5 6 7 8 -9 10 11 12 13 14 15 16\n", "lo", &rx, &tx), SFP_EINVAL);
    CHECK_EQ_INT(parse("lo: 18446744073709551616 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
                       "lo", &rx, &tx), SFP_EINVAL);                       /* 2^64 */
    CHECK_EQ_INT(parse("lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 1x6\n", "lo", &rx, &tx), SFP_EINVAL);
    CHECK_EQ_INT(rx, 7);
    CHECK_EQ_INT(tx, 7);
    /* a line cut by the end of the buffer (no newline, no NUL) */
    const char *cut = "lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
    CHECK_EQ_INT(sfpw_wire_parse(cut, strlen(cut), "lo", &rx, &tx), 0);
    CHECK_EQ_INT(tx, 9);
    CHECK_EQ_INT(sfpw_wire_parse(cut, strlen(cut) - 3, "lo", &rx, &tx), SFP_EINVAL);

    /* mutated copies (ASan watches the bounds): any answer, never a crash */
    char buf[sizeof sample];
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, sample, sizeof sample);
        size_t len = sizeof sample - 1;
        int flips = 1 + (int)(next() % 8);
        for (int i = 0; i < flips; i++)
            buf[next() % len] = (char)(next() & 0xff);
        len = next() % (len + 1);
        (void)sfpw_wire_parse(buf, len, (it & 1) ? "veth0" : "lo", &rx, &tx);
    }

    /* the live file: lo is in every namespace */
    CHECK_EQ_INT(sfpw_wire_read("lo", &rx, &tx), 0);
    CHECK_EQ_INT(sfpw_wire_read("no-such-if0", &rx, &tx), SFP_EINVAL);
    WCHECK_DONE();
}
