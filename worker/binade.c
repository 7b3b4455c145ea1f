/* binade.c - per-binade sums; see binade.h. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "binade.h"

void sfpw_bins_add_c(sfpw_bins *b, const float *x, size_t n, int top, int low)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, x + i, sizeof v);
        const int E = (int)(v >> 23 & 0xffu);
        const int j = top - E;
        if (E == 0 || E == 0xff || j < 0 || j >= SFPW_BINS)
            continue;
        const uint64_t m = (v & 0x7fffffu) | 0x800000u;
        b->n[j]++;
        if (j < SFPW_BINS_SAT)
            b->s1[j] += m;
        if (j < SFPW_BINS_SAT || j >= low)
            b->s2[j] += m * m;
    }
}

static int impl = -1; /* 1: the AVX-512 kernel */

static int cpu_has(void)
{
#if HAVE_AVX512 && defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char *e = getenv("SFPW_BINS");
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           !(e && !strcmp(e, "c"));
#else
    return 0;
#endif
}

int sfpw_bins_set_impl(int simd)
{
    impl = simd && cpu_has();
    return impl;
}

void sfpw_bins_add(sfpw_bins *b, const float *x, size_t n, int top, int low)
{
    if (impl < 0)
        impl = cpu_has();
    size_t done = 0;
#if HAVE_AVX512
    if (impl)
        done = sfpw_bins_add_avx512(b, x, n, top, low);
#endif
    sfpw_bins_add_c(b, x + done, n - done, top, low);
}
