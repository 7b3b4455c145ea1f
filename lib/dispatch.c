/*
 * dispatch.c - picks the kernel implementation once, from the CPU's features
 * (or SFP_IMPL in the environment: "c", "avx2" or "avx512", for tests and
 * benchmarks; one the CPU lacks falls back to the automatic choice).
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

static int cpu_has_avx512(void)
{
#if HAVE_AVX512 && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2");
#else
    return 0;
#endif
}

void sfp__kernels_force(const sfp__kernels *k, sfp_impl impl)
{
    __atomic_store_n(&active_impl, impl, __ATOMIC_RELAXED);
    __atomic_store_n(&active, k, __ATOMIC_RELEASE);
}

int sfp_set_impl(sfp_impl impl)
{
    switch (impl) {
    case SFP_IMPL_AUTO:
        if (cpu_has_avx512())
            return sfp_set_impl(SFP_IMPL_AVX512);
        if (cpu_has_avx2())
            return sfp_set_impl(SFP_IMPL_AVX2);
        return sfp_set_impl(SFP_IMPL_C);
    case SFP_IMPL_C:
        sfp__kernels_force(&sfp__kernels_c, SFP_IMPL_C);
        return SFP_OK;
    case SFP_IMPL_AVX2:
#if HAVE_AVX2
        RETURN_IF(!cpu_has_avx2(), SFP_EUNSUPPORTED);
        sfp__kernels_force(&sfp__kernels_avx2, SFP_IMPL_AVX2);
        return SFP_OK;
#else
        return SFP_EUNSUPPORTED;
#endif
    case SFP_IMPL_AVX512:
#if HAVE_AVX512
        RETURN_IF(!cpu_has_avx512(), SFP_EUNSUPPORTED);
        sfp__kernels_force(&sfp__kernels_avx512, SFP_IMPL_AVX512);
        return SFP_OK;
#else
        return SFP_EUNSUPPORTED;
#endif
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
    sfp_impl want = SFP_IMPL_AUTO;
    if (env && strcmp(env, "c") == 0)
        want = SFP_IMPL_C;
    else if (env && strcmp(env, "avx2") == 0)
        want = SFP_IMPL_AVX2;
    else if (env && strcmp(env, "avx512") == 0)
        want = SFP_IMPL_AVX512;
    if (sfp_set_impl(want) != SFP_OK)
        sfp_set_impl(SFP_IMPL_AUTO);
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE);
}
