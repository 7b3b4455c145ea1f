/*
 * dispatch.c - picks the kernel implementation once, from the CPU's features
 * (or SFP_IMPL in the environment: "c" or "avx2", for tests and benchmarks).
 */
#include <stdlib.h>

#include "config.h"
#include "internal.h"

/* Set on first use from any thread: atomic, so concurrent first calls
 * (e.g. sfpd's pool threads) do not race (found by ThreadSanitizer). */
static const sfp__kernels *active;
static sfp_impl active_impl;

static int cpu_has_avx2(void)
{
#if HAVE_AVX2 && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
#else
    return 0;
#endif
}

int sfp_set_impl(sfp_impl impl)
{
    switch (impl) {
    case SFP_IMPL_AUTO:
        if (cpu_has_avx2())
            return sfp_set_impl(SFP_IMPL_AVX2);
        return sfp_set_impl(SFP_IMPL_C);
    case SFP_IMPL_C:
        __atomic_store_n(&active_impl, SFP_IMPL_C, __ATOMIC_RELAXED);
        __atomic_store_n(&active, &sfp__kernels_c, __ATOMIC_RELEASE);
        return SFP_OK;
    case SFP_IMPL_AVX2:
#if HAVE_AVX2
        RETURN_IF(!cpu_has_avx2(), SFP_EUNSUPPORTED);
        __atomic_store_n(&active_impl, SFP_IMPL_AVX2, __ATOMIC_RELAXED);
        __atomic_store_n(&active, &sfp__kernels_avx2, __ATOMIC_RELEASE);
        return SFP_OK;
#else
        return SFP_EUNSUPPORTED;
#endif
    case SFP_IMPL_AVX512:
        return SFP_EUNSUPPORTED;
    }
    return SFP_EINVAL;
}

sfp_impl sfp_get_impl(void)
{
    (void)sfp__kernels_get();
    return __atomic_load_n(&active_impl, __ATOMIC_RELAXED);
}

const sfp__kernels *sfp__kernels_get(void)
{
    const sfp__kernels *k = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    if (SFP__LIKELY(k != NULL))
        return k;
    const char *env = getenv("SFP_IMPL");
    if (env && env[0] == 'c' && env[1] == 0)
        sfp_set_impl(SFP_IMPL_C);
    else if (!(env && sfp_set_impl(SFP_IMPL_AVX2) == 0 && strcmp(env, "avx2") == 0))
        sfp_set_impl(SFP_IMPL_AUTO);
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE);
}
