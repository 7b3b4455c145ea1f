/* binade.c - per-binade sums; see binade.h. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "binade.h"

void sfpw_bins_add_c(sfpw_bins *b, const float *x, size_t n, int top, int low)
{
    /* every bin's sums without a branch on the bin (which mispredicts),
     * m^2 in 64-bit sums over 2^16 values at a time (each below 2^48);
     * then the bins the contract names */
    for (size_t i0 = 0; i0 < n; i0 += (size_t)1 << 16) {
        const size_t i1 = n - i0 > ((size_t)1 << 16) ? i0 + ((size_t)1 << 16) : n;
        uint64_t cnt[SFPW_BINS] = { 0 }, s1[SFPW_BINS] = { 0 }, s2[SFPW_BINS] = { 0 };
        for (size_t i = i0; i < i1; i++) {
            uint32_t v;
            memcpy(&v, x + i, sizeof v);
            const int E = (int)(v >> 23 & 0xffu);
            const int j = top - E;
            if (E == 0 || E == 0xff || j < 0 || j >= SFPW_BINS)
                continue;
            const uint64_t m = (v & 0x7fffffu) | 0x800000u;
            cnt[j]++;
            s1[j] += m;
            s2[j] += m * m;
        }
        for (int j = 0; j < SFPW_BINS; j++) {
            b->n[j] += cnt[j];
            if (j < SFPW_BINS_SAT)
                b->s1[j] += s1[j];
            if (j < SFPW_BINS_SAT || j >= low)
                b->s2[j] += s2[j];
        }
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
