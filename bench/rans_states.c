/*
 * rans_states.c - planning prototype: how fast rANS codes exponent codes
 * with N interleaved states (N = 2, as libsfp's coder 2, and 4, 8, 16).
 *
 * Same coding as docs/FORMAT.md 2.5 (scale 2^12, 32-bit states, L = 2^16,
 * 16-bit words, state i mod N codes code i) but for N states, on the
 * exponent codes of N(0, 0.05) weights at e = 4 (16 codes, the window's
 * top at the largest value, zeros below it): what the weights' auto coder
 * spends its time on. Encode and decode of the codes only (no values),
 * thread CPU time, best of 7 runs; every decode is checked against the
 * input. Not part of libsfp: the numbers plan a wider coder
 * (docs/BENCHMARKS.md "Weight pieces: auto coder").
 *
 * usage: sfp-rans-states [CODES]   (default 4194304)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCALE 12
#define M (1u << SCALE)
#define L (1u << 16)
#define MAXN 16

typedef struct sym {
    uint64_t rcp;  /* ceil(2^(32+sh) / f)                  */
    uint32_t xmax; /* renormalise while x >= xmax          */
    uint16_t cmpl; /* M - f                                */
    uint16_t cum;
    uint8_t sh;
} sym;

static uint32_t slot[M]; /* symbol | (freq - 1) << 8 | (slot - cum) << 20 */
static sym syms[256];

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Normalised table of the codes (as libsfp's sfp__rans_build). */
static void build(const uint8_t *c, size_t n, unsigned nsym)
{
    uint64_t count[256] = {0};
    uint16_t freq[256] = {0};
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        count[c[i]]++;
    for (unsigned s = 0; s < nsym; s++) {
        if (!count[s])
            continue;
        uint64_t f = (count[s] * M * 2 + n) / (2 * n);
        freq[s] = (uint16_t)(f ? f : 1);
        sum += freq[s];
    }
    while (sum != M) {
        unsigned b = 0;
        for (unsigned s = 1; s < nsym; s++)
            if (freq[s] > freq[b])
                b = s;
        if (sum < (int64_t)M) {
            freq[b] = (uint16_t)(freq[b] + (M - sum));
            sum = M;
        } else {
            int64_t take = sum - (int64_t)M, room = freq[b] - 1;
            take = take > room ? room : take;
            freq[b] = (uint16_t)(freq[b] - take);
            sum -= take;
        }
    }
    uint32_t c0 = 0;
    for (unsigned s = 0; s < nsym; s++) {
        uint32_t f = freq[s];
        for (uint32_t j = 0; j < f; j++)
            slot[c0 + j] = s | (f - 1) << 8 | j << 20;
        if (f) {
            unsigned sh = f > 1 ? 32u - (unsigned)__builtin_clz(f - 1) : 0;
            uint64_t xm = (uint64_t)((L >> SCALE) << 16) * f;
            syms[s].rcp = (uint64_t)((((__uint128_t)1 << (32 + sh)) + f - 1) / f);
            syms[s].sh = (uint8_t)sh;
            syms[s].cum = (uint16_t)c0;
            syms[s].cmpl = (uint16_t)(M - f);
            syms[s].xmax = xm > 0xffffffffu ? 0xffffffffu : (uint32_t)xm;
        }
        c0 += f;
    }
}

static inline uint32_t put(uint32_t x, const sym *e, uint8_t **pp)
{
    const uint32_t r = x >= e->xmax;
    uint8_t *p = *pp - 2;
    uint16_t w = (uint16_t)x;
    memcpy(p, &w, 2);
    *pp = p + 2 * (1 - r);
    x >>= 16 * r;
    const uint32_t q = (uint32_t)((uint64_t)(((__uint128_t)x * e->rcp) >> 32) >> e->sh);
    return x + e->cum + q * e->cmpl;
}

/* Codes backwards into the end of out; returns the words' length. */
static size_t encode(const uint8_t *c, size_t n, unsigned N, uint8_t *out, size_t cap,
                     uint32_t *xs)
{
    uint32_t x[MAXN];
    uint8_t *p = out + cap;
    size_t i = n;
    for (unsigned k = 0; k < N; k++)
        x[k] = L;
    while (i % N) {
        i--;
        x[i % N] = put(x[i % N], &syms[c[i]], &p);
    }
    while (i >= N) {
        i -= N;
        for (unsigned k = N; k-- > 0;)
            x[k] = put(x[k], &syms[c[i + k]], &p);
    }
    memcpy(xs, x, N * sizeof(uint32_t));
    return (size_t)(out + cap - p);
}

/* N steps at once while N words are left (each state's word is loaded
 * whether it takes it or not): the states' table loads and products are
 * independent, the words they take are read in order behind them. Then
 * one step at a time, reading only the words taken. Returns 0, or -1 if
 * the words ran out. */
static int decode(uint8_t *o, size_t n, unsigned N, const uint8_t *p, const uint8_t *end,
                  const uint32_t *xs)
{
    uint32_t x[MAXN], v[MAXN], r[MAXN];
    size_t i = 0;
    memcpy(x, xs, N * sizeof(uint32_t));
    for (; i + N <= n && (size_t)(end - p) >= 2 * N; i += N) {
        for (unsigned k = 0; k < N; k++) {
            const uint32_t e = slot[x[k] & (M - 1)];
            o[i + k] = (uint8_t)e;
            v[k] = ((e >> 8 & 0xfff) + 1) * (x[k] >> SCALE) + (e >> 20);
            r[k] = v[k] < L;
        }
        for (unsigned k = 0; k < N; k++) {
            uint16_t w;
            memcpy(&w, p, 2);
            x[k] = r[k] ? v[k] << 16 | w : v[k];
            p += 2 * r[k];
        }
    }
    for (; i < n; i++) {
        const unsigned k = (unsigned)(i % N);
        const uint32_t e = slot[x[k] & (M - 1)];
        uint32_t y = ((e >> 8 & 0xfff) + 1) * (x[k] >> SCALE) + (e >> 20);
        o[i] = (uint8_t)e;
        if (y < L) {
            uint16_t w;
            if (end - p < 2)
                return -1;
            memcpy(&w, p, 2);
            p += 2;
            y = y << 16 | w;
        }
        x[k] = y;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : (size_t)4 << 20;
    if (n < 64) {
        fprintf(stderr, "usage: sfp-rans-states [CODES >= 64]\n");
        return 2;
    }
    uint8_t *c = malloc(n), *o = malloc(n), *buf = malloc(2 * n + 64);
    float *w = malloc(n * sizeof(float));
    if (!c || !o || !buf || !w)
        return 1;
    /* N(0, 0.05) weights (Box-Muller on a fixed LCG), e = 4: codes 1..15
     * for the 15 binades below the largest, 0 below them */
    uint64_t s = 1;
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((double)(s >> 11) + 1.0) / 9007199254740993.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (double)(s >> 11) / 9007199254740992.0;
        w[i] = (float)(0.05 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        mx = fabs(w[i]) > mx ? fabs(w[i]) : mx;
    }
    const int top = (int)floor(log2(mx));
    for (size_t i = 0; i < n; i++) {
        int code = w[i] != 0.0f ? (int)floor(log2(fabs(w[i]))) - (top - 15) : 0;
        c[i] = (uint8_t)(code < 1 ? 0 : code);
    }
    build(c, n, 16);
    printf("%zu exponent codes of N(0, 0.05) weights at e = 4; thread CPU time, best of 7\n", n);
    printf("| states | bits/code | encode ns/code | decode ns/code | encode, decode vs 2 states |\n");
    printf("| ---: | ---: | ---: | ---: | --- |\n");
    double e2 = 0, d2 = 0;
    for (unsigned N = 2; N <= MAXN; N *= 2) {
        double te = 1e30, td = 1e30;
        size_t len = 0;
        uint32_t xs[MAXN];
        for (int run = 0; run < 7; run++) {
            double t0 = cpu_now();
            len = encode(c, n, N, buf, 2 * n + 64, xs);
            double t1 = cpu_now();
            int bad = decode(o, n, N, buf + 2 * n + 64 - len, buf + 2 * n + 64, xs);
            double t2 = cpu_now();
            te = t1 - t0 < te ? t1 - t0 : te;
            td = t2 - t1 < td ? t2 - t1 : td;
            if (bad || memcmp(o, c, n) != 0) {
                fprintf(stderr, "sfp-rans-states: %u states: decode differs\n", N);
                return 1;
            }
        }
        if (N == 2)
            e2 = te, d2 = td;
        printf("| %u | %.3f | %.2f | %.2f | %.2fx, %.2fx |\n", N, 8.0 * (double)len / (double)n,
               1e9 * te / (double)n, 1e9 * td / (double)n, e2 / te, d2 / td);
    }
    free(c), free(o), free(buf), free(w);
    return 0;
}
