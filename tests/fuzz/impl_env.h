/*
 * impl_env.h - replay_setup() for the libsfp fuzz targets: with SFP_IMPL
 * set (c, avx2, avx512), the replay runs only when libsfp really uses those
 * kernels (otherwise it is skipped, exit 77), so meson can replay the
 * corpus once per kernel implementation the CPU has.
 */
#ifndef SFP_FUZZ_IMPL_ENV_H
#define SFP_FUZZ_IMPL_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfp/sfp.h"

int replay_setup(void);

int replay_setup(void)
{
    static const char *const names[] = {"auto", "c", "avx2", "avx512"};
    const char *want = getenv("SFP_IMPL");
    sfp_impl got = sfp_get_impl();
    const char *name = (unsigned)got < 4 ? names[got] : "?";
    if (want && *want && strcmp(want, name) != 0) {
        printf("SFP_IMPL=%s: not on this CPU or build (libsfp uses %s): skipped\n", want, name);
        return 77;
    }
    printf("kernels: %s\n", name);
    return 0;
}

#endif /* SFP_FUZZ_IMPL_ENV_H */
