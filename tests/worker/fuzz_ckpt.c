/*
 * fuzz_ckpt.c - fuzz target for the checkpoint reader (worker/checkpoint.c):
 * any bytes, given to sfpw_ckpt_load as a file (a memfd: nothing on disk),
 * are refused with an error or accepted whole: an accepted checkpoint has
 * sizes inside the limits, every array present, and accounts for exactly
 * the bytes of the file (header of its version, weights and two moments,
 * statistics, policy state, residuals, hash). Replayed over
 * corpus/fuzz_ckpt/ by meson test; a libFuzzer binary with -Dfuzzing=true
 * (CC=clang). The corpus (valid files of versions 1 to 3 and broken ones) is
 * made by corpus/fuzz_ckpt/gen.py.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-ckpt", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    sfpw_ckpt c;
    int rc = sfpw_ckpt_load(path, &c);
    if (rc) {
        if (rc != SFPW_CKPT_EFORMAT && rc != SFPW_CKPT_ENOMEM)
            abort(); /* the file is there: only its content can be wrong */
        return 0;
    }
    if (c.nparams == 0 || !c.master || !c.s1 || !c.s2 || !c.buffers || !c.policy_state ||
        (c.resid_ranks && !c.resid) || (!c.resid_ranks && c.resid))
        abort();
    const char *m = (const char *)data;
    size_t head = m[7] == '1' ? 80 : m[7] == '2' ? 112 : 120;
    size_t need = head + 4 * c.nparams * (3 + c.resid_ranks) + 4 * c.nbuffers +
                  c.policy_len + 8;
    if (need != size)
        abort();
    /* touch every array: a short allocation shows under ASan */
    volatile float s = c.master[c.nparams - 1] + c.s1[c.nparams - 1] + c.s2[c.nparams - 1];
    if (c.nbuffers)
        s += c.buffers[c.nbuffers - 1];
    if (c.resid_ranks)
        s += c.resid[c.resid_ranks * c.nparams - 1];
    if (c.policy_len)
        s += c.policy_state[c.policy_len - 1];
    (void)s;
    sfpw_ckpt_free(&c);
    return 0;
}
