/*
 * test_kernels.c - every SIMD kernel set agrees bit for bit with the C
 * reference: quantizer output, pass-1 statistics, frames and decodes, for
 * every width, every coder and rounding mode, special values and odd
 * lengths. Sets: AVX2 and AVX-512 where the CPU has them, and the AVX-512
 * kernels over SIMDe's emulation (any AVX2 CPU) when built with it.
 */
#include "check.h"
#include "internal.h"

static void fill(uint32_t *u, size_t n, trng *r, int kind)
{
    for (size_t i = 0; i < n; i++) {
        float g = trng_gauss(r);
        switch (kind) {
        case 0: u[i] = f2u(g); break;
        case 1: u[i] = f2u(g > 0 ? g : 0.0f); break;
        case 2: { /* any finite pattern, subnormals and -0 included */
            uint32_t v;
            do v = (uint32_t)trng_next(r); while (((v >> 23) & 0xff) == 0xff);
            if (i % 5 == 0) v &= 0x807fffffu;
            if (i % 97 == 0) v = 0x80000000u;
            u[i] = v;
            break;
        }
        case 3: u[i] = f2u(g * 1e-3f * (float)(i % 7)); break;
        default: /* signed and sparse: 60 % zeros (sign plane and zero map) */
            u[i] = trng_next(r) % 5 < 3 ? 0 : f2u(g);
            break;
        }
    }
}

/* A kernel set to compare with the C reference. */
typedef struct impl {
    const char *name;
    sfp_impl id;            /* sfp_set_impl, or ...         */
    const sfp__kernels *kt; /* ... forced (the emulation)   */
} impl;

static const impl *cur;

static void use_impl(const impl *m)
{
    if (m == NULL)
        sfp_set_impl(SFP_IMPL_C);
    else if (m->kt)
        sfp__kernels_force(m->kt, m->id);
    else
        sfp_set_impl(m->id);
}

static int frames_agree(const uint32_t *x, size_t n, const sfp_params *p)
{
    size_t cap = sfp_frame_bound(n, p), l1 = 0, l2 = 0;
    uint8_t *f1 = malloc(cap), *f2 = malloc(cap);
    uint32_t *d1 = malloc(n * 4 + 4), *d2 = malloc(n * 4 + 4);
    uint32_t *q1 = malloc(n * 4 + 4), *q2 = malloc(n * 4 + 4);
    sfp_qstats s1, s2;
    int ok = 1;

    memset(&s1, 0, sizeof(s1));
    memset(&s2, 0, sizeof(s2));

    use_impl(NULL);
    int r1 = sfp_encode(x, n, p, f1, cap, &l1, &s1);
    sfp_quantize(q1, x, n, p, NULL);
    use_impl(cur);
    int r2 = sfp_encode(x, n, p, f2, cap, &l2, &s2);
    sfp_quantize(q2, x, n, p, NULL);
    ok &= r1 == 0 && r2 == 0 && l1 == l2 && memcmp(f1, f2, l1) == 0;
    ok &= memcmp(&s1, &s2, sizeof(s1)) == 0;
    ok &= memcmp(q1, q2, n * 4) == 0;
    /* the encoder's quantized output (a kernel may write it while it
     * encodes): into another buffer and in place, as the stash does */
    {
        uint32_t *q3 = malloc(n * 4 + 4);
        uint8_t *f3 = malloc(cap);
        size_t l3 = 0;
        use_impl(cur);
        int r3 = sfp_encode_q(x, n, p, f3, cap, &l3, NULL, q3);
        ok &= r3 == r1 && (r3 != 0 || (l3 == l1 && memcmp(f3, f1, l1) == 0 &&
                                       memcmp(q3, q1, n * 4) == 0));
        memcpy(q3, x, n * 4);
        r3 = sfp_encode_q(q3, n, p, f3, cap, &l3, NULL, q3);
        ok &= r3 == r1 && (r3 != 0 || (l3 == l1 && memcmp(f3, f1, l1) == 0 &&
                                       memcmp(q3, q1, n * 4) == 0));
        free(q3), free(f3);
    }
    if (r1 == 0) {
        size_t n1 = 0, n2 = 0;
        use_impl(NULL);
        int e1 = sfp_decode(f1, l1, d1, n * 4, &n1);
        use_impl(cur);
        int e2 = sfp_decode(f1, l1, d2, n * 4, &n2);
        ok &= e1 == 0 && e2 == 0 && memcmp(d1, d2, n * 4) == 0 && memcmp(d1, q1, n * 4) == 0;
    }
    if (!ok)
        fprintf(stderr, "  [frame %d stats %d q %d] z %llu/%llu fl %llu/%llu sat %llu/%llu neg %llu/%llu A %d/%d\n",
                l1 == l2 && memcmp(f1, f2, l1) == 0, memcmp(&s1, &s2, sizeof(s1)) == 0,
                memcmp(q1, q2, n * 4) == 0,
                (unsigned long long)s1.zeros, (unsigned long long)s2.zeros,
                (unsigned long long)s1.flushed, (unsigned long long)s2.flushed,
                (unsigned long long)s1.saturated, (unsigned long long)s2.saturated,
                (unsigned long long)s1.negative, (unsigned long long)s2.negative,
                s1.anchor, s2.anchor);
    if (!ok)
        fprintf(stderr, "  %s: mismatch n=%zu k=%u e=%u coder=%d G=%u round=%d (rc %d/%d len %zu/%zu)\n",
                cur->name, n, p->mbits, p->ebits, p->coder, p->gecko_group, p->rounding, r1, r2,
                l1, l2);
    free(f1), free(f2), free(d1), free(d2), free(q1), free(q2);
    return ok;
}

int main(void)
{
    static const impl impls[] = {
        {"avx2", SFP_IMPL_AVX2, NULL},
        {"avx512", SFP_IMPL_AVX512, NULL},
#if HAVE_AVX512_EMU
        {"avx512 (SIMDe emulation)", SFP_IMPL_AVX512, &sfp__kernels_avx512_emu},
#endif
    };
    enum { N = 5000 };
    uint32_t *x = malloc(N * 4);
    const size_t lens[] = {N, 4097, 2048 + 47, 130, 64, 47, 16, 9, 1};
    const size_t nlens = sizeof(lens) / sizeof(lens[0]);
    int tested = 0;
    for (size_t m = 0; m < sizeof(impls) / sizeof(impls[0]); m++) {
        cur = &impls[m];
        if (!cur->kt && sfp_set_impl(cur->id) != 0) {
            printf("%s: not on this CPU or build, skipped\n", cur->name);
            continue;
        }
        tested++;
        int before = check_failures;
        trng r = {1};
        for (int kind = 0; kind < 4; kind++) {
            fill(x, N, &r, kind);
            for (unsigned e = 1; e <= 8; e++)
                for (unsigned k = 0; k <= 23; k++)
                    for (int c = 0; c < 3; c++) {
                        sfp_params p;
                        sfp_params_default(&p);
                        p.mbits = k, p.ebits = e, p.coder = (sfp_coder)c;
                        p.gecko_group = 8u << ((k + e + (unsigned)kind) % 4);
                        p.rounding = (sfp_rounding)((k + (unsigned)kind + (unsigned)c) % 3);
                        p.seed = k * 31 + e;
                        if ((k + e) % 5 == 0)
                            p.anchor = 120 + (int)(k % 10);
                        CHECK(frames_agree(x, lens[(k + e + (unsigned)c) % nlens], &p));
                    }
        }
        /* The specialised loops (round to nearest even on tensors without
         * -0 or saturation, mantissa widths 0..8 and 23, every sign / zero-map
         * combination, whole 64-blocks and a tail) against the reference. */
        const size_t flens[] = {N, 4097, 2048 + 64, 130, 64};
        for (int kind = 0; kind < 5; kind++) {
            if (kind == 2)
                continue;
            fill(x, N, &r, kind);
            for (unsigned e = 1; e <= 8; e++)
                for (unsigned k = 0; k <= 23; k = k == 8 ? 23 : k + 1)
                    for (int c = 0; c < 3; c++) {
                        sfp_params p;
                        sfp_params_default(&p);
                        p.mbits = k, p.ebits = e, p.coder = (sfp_coder)c;
                        p.gecko_group = 8u << ((k + e) % 4);
                        p.rounding = SFP_ROUND_RNE;
                        CHECK(frames_agree(x, flens[(k + e + (unsigned)c) % 5], &p));
                    }
        }
        /* Zeros in runs with the Huffman-coded zero map (read block by
         * block inside the AVX-512 decoder's loop, with the Gecko groups):
         * every mantissa and exponent width those loops take, both coders
         * that use it, whole blocks, a tail and a tensor shorter than a
         * block; the frames must actually be Huffman-coded. */
        const size_t hlens[] = {N, 4097, 2048 + 64, 130, 47};
        unsigned zhuf_frames = 0;
        for (size_t i = 0; i < N;) {
            size_t run = 1 + trng_next(&r) % 90;
            int on = trng_next(&r) % 2;
            for (; run-- && i < N; i++)
                x[i] = on ? f2u(0.5f + (float)(trng_next(&r) % 1000) / 250.0f) : 0;
        }
        for (unsigned e = 1; e <= 8; e++)
            for (unsigned k = 0; k <= 8; k++)
                for (int c = 0; c < 2; c++) {
                    sfp_params p;
                    sfp_params_default(&p);
                    p.mbits = k, p.ebits = e;
                    p.coder = c ? SFP_CODER_GECKO : SFP_CODER_PLAIN;
                    p.gecko_group = (k + e) % 3 ? 16 : 8;
                    p.rounding = SFP_ROUND_RNE;
                    p.zmap = SFP_ZMAP_HUFFMAN;
                    const size_t n = hlens[(k + e + (unsigned)c) % 5];
                    CHECK(frames_agree(x, n, &p));
                    uint8_t *f = malloc(sfp_frame_bound(n, &p));
                    size_t fl = 0;
                    sfp_frame_info fi;
                    if (sfp_encode(x, n, &p, f, sfp_frame_bound(n, &p), &fl, NULL) == 0 &&
                        sfp_frame_parse(f, fl, &fi) == 0)
                        zhuf_frames += (fi.flags & SFP_FLAG_ZHUF) != 0;
                    free(f);
                }
        if (zhuf_frames < 40)
            fprintf(stderr, "  only %u Huffman-coded frames of 144\n", zhuf_frames);
        CHECK(zhuf_frames >= 40);
        /* rANS with 32 states (from SFP__RANS_WIDE_MIN codes on): the
         * encoder's and decoder's 32-lane loops against the C loops, every
         * exponent width, a whole number of rounds and tails */
        {
            const size_t wl[] = {SFP__RANS_WIDE_MIN, SFP__RANS_WIDE_MIN + 47, 70001};
            uint32_t *xw = malloc(70001 * 4);
            for (unsigned e = 1; e <= 8; e++)
                for (int kind = 0; kind < 5; kind++) {
                    if (kind == 2 && e < 8)
                        continue; /* any pattern: e = 8 keeps them all */
                    fill(xw, 70001, &r, kind);
                    sfp_params p;
                    sfp_params_default(&p);
                    p.mbits = (e + (unsigned)kind) % 4 == 3 ? 23 : (e + (unsigned)kind) % 4;
                    p.ebits = e, p.coder = SFP_CODER_RANS;
                    p.rounding = (sfp_rounding)((e + (unsigned)kind) % 3);
                    p.seed = e;
                    CHECK(frames_agree(xw, wl[(e + (unsigned)kind) % 3], &p));
                }
            free(xw);
        }
        /* count_below (the one-pass zero-map decision): any pattern, limits
         * at, between and around the values, every length up to two loops
         * of the widest kernel and a tail */
        fill(x, N, &r, 2);
        for (int t = 0; t < 200; t++) {
            const size_t n = t < 70 ? (size_t)t : 1 + trng_next(&r) % N;
            uint32_t lim = t % 3 ? x[trng_next(&r) % N] & 0x7fffffffu : (uint32_t)trng_next(&r) >> 1;
            lim += (uint32_t)(t % 4 == 1 && lim < 0x7fffffffu) - (uint32_t)(t % 4 == 2 && lim > 0);
            const uint64_t want = sfp__kernels_c.count_below(x, n, lim);
            use_impl(cur);
            CHECK_EQ_INT(sfp__kernels_get()->count_below(x, n, lim), want);
            uint64_t naive = 0;
            for (size_t i = 0; i < n; i++)
                naive += (x[i] & 0x7fffffffu) < lim;
            CHECK_EQ_INT(want, naive);
        }
        /* scan (pass 1): every statistic against the C scan, for both
         * roundings the fast scans take, every mantissa width, tensors
         * whose smallest non-zero magnitude is a power of two (where
         * truncation and rounding part), with -0, all zeros and tails */
        for (int t = 0; t < 400; t++) {
            const int kind = t % 6;
            const size_t n = t < 80 ? (size_t)t : 1 + trng_next(&r) % N;
            if (kind == 5)
                memset(x, 0, N * 4);
            else
                fill(x, N, &r, kind == 2 ? 4 : kind);
            if (t % 3 == 0 && n > 0) /* the smallest magnitude, a power of two */
                x[trng_next(&r) % n] = (uint32_t)(1 + trng_next(&r) % 100) << 23 |
                                       (uint32_t)(t % 2) << 31;
            if (t % 7 == 0 && n > 0)
                x[trng_next(&r) % n] = 0x80000000u;
            sfp_params p;
            sfp_params_default(&p);
            p.mbits = (unsigned)t % 24;
            p.ebits = 1 + (unsigned)t % 8;
            p.rounding = t % 2 ? SFP_ROUND_TRUNC : SFP_ROUND_RNE;
            sfp__round rd;
            sfp__round_init(&rd, &p);
            sfp__scan a, b;
            memset(&a, 0, sizeof(a));
            memset(&b, 0, sizeof(b));
            a.maxE = b.maxE = -1;
            a.minE = b.minE = 255;
            sfp__kernels_c.scan(x, n, &rd, 0, -1, &a);
            use_impl(cur);
            sfp__kernels_get()->scan(x, n, &rd, 0, -1, &b);
            CHECK_EQ_INT(b.maxE, a.maxE);
            CHECK_EQ_INT(b.minE, a.minE);
            CHECK_EQ_INT(b.zeros, a.zeros);
            CHECK_EQ_INT(b.negzero, a.negzero);
            CHECK_EQ_INT(b.anyneg != 0, a.anyneg != 0);
            CHECK_EQ_INT(b.saturated, a.saturated);
            CHECK_EQ_INT(b.nonfinite, a.nonfinite);
        }
        /* count_codes (the rANS request's histogram and non-zero blocks):
         * every width up to 8 (the kernel may decline), lengths around its
         * 64-code rounds and its 255-round counter flush, codes random, in
         * runs of zeros and one symbol for more than 255 rounds, against a naive count */
        {
            enum { CN = 64 * 255 * 2 + 200 };
            uint8_t *codes = malloc(CN);
            const size_t cl[] = {0, 1, 63, 64, 65, 64 * 255 - 1, 64 * 255, 64 * 255 + 64,
                                 64 * 255 + 65, CN};
            for (unsigned e = 1; e <= 8; e++)
                for (size_t li = 0; li < sizeof(cl) / sizeof(cl[0]); li++) {
                    const size_t n = cl[li];
                    for (size_t i = 0; i < n; i++)
                        codes[i] = (uint8_t)(trng_next(&r) >> 7);
                    for (size_t i = 0; i < n; i++) {
                        codes[i] &= (uint8_t)((1u << e) - 1);
                        if ((i / 200) % 3 == li % 3 || (li % 2 && i < 64 * 256 + 5))
                            codes[i] = 0;
                    }
                    uint64_t want[256] = {0}, got[256] = {0}, wblocks = 0, blocks = 7;
                    for (size_t b = 0; b < n; b += 64) {
                        unsigned any = 0;
                        for (size_t j = b; j < n && j < b + 64; j++)
                            any |= codes[j], want[codes[j]]++;
                        wblocks += any != 0;
                    }
                    use_impl(cur);
                    const sfp__kernels *kt = sfp__kernels_get();
                    if (kt->count_codes && kt->count_codes(codes, n, e, got, &blocks)) {
                        CHECK(memcmp(got, want, sizeof(want)) == 0);
                        CHECK_EQ_INT(blocks, wblocks);
                    }
                }
            free(codes);
        }
        printf("%s: %s\n", cur->name, check_failures == before ? "bit for bit equal to C" : "MISMATCH");
    }
    free(x);
    if (tested == 0) {
        printf("no SIMD kernels on this CPU or build: nothing to compare\n");
        return 77;
    }
    return check_report("test_kernels");
}
