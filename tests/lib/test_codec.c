/*
 * test_codec.c - quantizer test vectors, frame round trips for every width,
 * Gecko on adversarial groups, the size formula, and hostile frames.
 */
#include "check.h"
#include "internal.h"

static sfp_params params(sfp_dtype t, unsigned k, unsigned e, sfp_coder c)
{
    sfp_params p;
    sfp_params_default(&p);
    p.dtype = t;
    p.mbits = k;
    p.ebits = e;
    p.coder = c;
    return p;
}

static float q1(float x, unsigned k, unsigned e)
{
    sfp_params p = params(SFP_DTYPE_F32, k, e, SFP_CODER_PLAIN);
    float y;
    CHECK_EQ_INT(sfp_quantize(&y, &x, 1, &p, NULL), 0);
    return y;
}

/* method-spec.md 3.1 and 3.2 test vectors. */
static void test_vectors(void)
{
    static const struct { float x, y[4]; } t[] = {
        {0.7f, {0.5f, 0.75f, 0.75f, 0.6875f}},
        {0.96f, {1.0f, 1.0f, 1.0f, 0.9375f}},
        {1.125f, {1.0f, 1.0f, 1.0f, 1.125f}},
        {1.375f, {1.0f, 1.5f, 1.5f, 1.375f}},
    };
    for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        for (unsigned k = 0; k < 4; k++) {
            float y = q1(t[i].x, k, 8);
            CHECK(y == t[i].y[k]);
            if (y != t[i].y[k])
                fprintf(stderr, "  Qm(%g, %u) = %.9g, want %g\n", t[i].x, k, y, t[i].y[k]);
            CHECK(q1(-t[i].x, k, 8) == -t[i].y[k]);
        }

    /* 3.2: max 3.0 (E=128), e=3 -> window E in [122,128]. */
    float in[4] = {3.0f, 0.05f, 0.02f, -0.05f}, out[4];
    sfp_params p = params(SFP_DTYPE_F32, 23, 3, SFP_CODER_PLAIN);
    sfp_qstats st;
    CHECK_EQ_INT(sfp_quantize(out, in, 4, &p, &st), 0);
    CHECK(out[0] == 3.0f && out[1] == 0.05f && out[2] == 0.0f && out[3] == -0.05f);
    CHECK(f2u(out[2]) == 0); /* flushed values are +0 */
    CHECK_EQ_INT(st.anchor, 128);
    CHECK_EQ_INT(st.flushed, 1);
    CHECK_EQ_INT(st.zeros, 1);
    CHECK_EQ_INT(st.negative, 1);

    /* truncation and carry into the exponent */
    p = params(SFP_DTYPE_F32, 1, 8, SFP_CODER_PLAIN);
    p.rounding = SFP_ROUND_TRUNC;
    float a = 0.96f, b;
    CHECK_EQ_INT(sfp_quantize(&b, &a, 1, &p, NULL), 0);
    CHECK(b == 0.75f);
    /* overflow saturates to the largest finite grid value */
    a = 3.4e38f;
    p.rounding = SFP_ROUND_RNE;
    CHECK_EQ_INT(sfp_quantize(&b, &a, 1, &p, &st), 0);
    CHECK(f2u(b) == ((254u << 23) | (1u << 22)));
    CHECK_EQ_INT(st.saturated, 1);

    /* NaN and Inf are rejected by quantize and encode */
    float bad[3] = {1.0f, NAN, 2.0f};
    uint8_t frame[256];
    size_t len = 0;
    p = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_GECKO);
    CHECK_EQ_INT(sfp_quantize(out, bad, 3, &p, NULL), SFP_ENONFINITE);
    CHECK_EQ_INT(sfp_encode(bad, 3, &p, frame, sizeof(frame), &len, NULL), SFP_ENONFINITE);
    bad[1] = -INFINITY;
    CHECK_EQ_INT(sfp_encode(bad, 3, &p, frame, sizeof(frame), &len, NULL), SFP_ENONFINITE);
    CHECK_EQ_INT(len, 0);

    /* invalid params */
    p = params(SFP_DTYPE_BF16, 8, 4, SFP_CODER_PLAIN);
    CHECK_EQ_INT(sfp_params_check(&p), SFP_EINVAL);
    p = params(SFP_DTYPE_F32, 2, 0, SFP_CODER_PLAIN);
    CHECK_EQ_INT(sfp_params_check(&p), SFP_EINVAL);
    p = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_GECKO);
    p.gecko_group = 12;
    CHECK_EQ_INT(sfp_params_check(&p), SFP_EINVAL);
    p = params(SFP_DTYPE_F32, 0, 4, SFP_CODER_PLAIN);
    p.anchor = 0; /* no non-zero grid value: rejected (found by fuzzing) */
    CHECK_EQ_INT(sfp_params_check(&p), SFP_EINVAL);
    p.mbits = 1;
    CHECK_EQ_INT(sfp_params_check(&p), SFP_OK);
    CHECK(strcmp(sfp_strerror_name(SFP_ECHECKSUM), "SFP_ECHECKSUM") == 0);
}

/* Stochastic rounding: unbiased on average and reproducible. */
static void test_stochastic(void)
{
    enum { N = 100000 };
    float *x = malloc(N * 4), *y = malloc(N * 4), *z = malloc(N * 4);
    for (int i = 0; i < N; i++)
        x[i] = 1.1f; /* between 1.0 and 1.25 at k=2 */
    sfp_params p = params(SFP_DTYPE_F32, 2, 8, SFP_CODER_PLAIN);
    p.rounding = SFP_ROUND_STOCHASTIC;
    p.seed = 42;
    CHECK_EQ_INT(sfp_quantize(y, x, N, &p, NULL), 0);
    CHECK_EQ_INT(sfp_quantize(z, x, N, &p, NULL), 0);
    double mean = 0;
    for (int i = 0; i < N; i++) {
        CHECK(y[i] == 1.0f || y[i] == 1.25f);
        mean += y[i];
    }
    mean /= N;
    CHECK(fabs(mean - 1.1) < 0.003);
    CHECK(memcmp(y, z, N * 4) == 0);
    free(x), free(y), free(z);
}

static int roundtrip(const void *src, size_t n, const sfp_params *p,
                     size_t *flen)
{
    const size_t esz = sfp_dtype_size(p->dtype);
    size_t cap = sfp_frame_bound(n, p), len = 0, outn = 0;
    uint8_t *frame = malloc(cap ? cap : 1);
    uint8_t *q = malloc(n * esz + 1), *d = malloc(n * esz + 1);
    int ok = 1;

    CHECK(cap > 0);
    int rc = sfp_encode(src, n, p, frame, cap, &len, NULL);
    CHECK_EQ_INT(rc, 0);
    rc = sfp_decode(frame, len, d, n * esz, &outn);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(outn, n);
    CHECK_EQ_INT(sfp_quantize(q, src, n, p, NULL), 0);
    {
        /* the statistics path (histogram) quantizes identically */
        sfp_qstats st;
        uint8_t *q2 = malloc(n * esz + 1);
        CHECK_EQ_INT(sfp_quantize(q2, src, n, p, &st), 0);
        CHECK(memcmp(q, q2, n * esz) == 0);
        free(q2);
    }
    {
        /* sfp_encode_q: same frame, and the quantized values alongside,
         * into a separate buffer and in place */
        size_t l3 = 0, l4 = 0;
        uint8_t *f3 = malloc(cap ? cap : 1), *qq = malloc(n * esz + 1);
        CHECK_EQ_INT(sfp_encode_q(src, n, p, f3, cap, &l3, NULL, qq), 0);
        CHECK(l3 == len && memcmp(f3, frame, len) == 0);
        CHECK(memcmp(qq, q, n * esz) == 0);
        memcpy(qq, src, n * esz);
        CHECK_EQ_INT(sfp_encode_q(qq, n, p, f3, cap, &l4, NULL, qq), 0);
        CHECK(l4 == len && memcmp(f3, frame, len) == 0);
        CHECK(memcmp(qq, q, n * esz) == 0);
        free(f3), free(qq);
    }
    if (p->coder != SFP_CODER_RANS && p->zmap == SFP_ZMAP_BITMAP) {
        /* the Huffman-coded zero map: the same values; never larger */
        sfp_params ph = *p;
        ph.zmap = SFP_ZMAP_HUFFMAN;
        size_t caph = sfp_frame_bound(n, &ph), lh = 0;
        uint8_t *fh = malloc(caph ? caph : 1), *dh = malloc(n * esz + 1);
        CHECK(caph >= cap);
        CHECK_EQ_INT(sfp_encode(src, n, &ph, fh, caph, &lh, NULL), 0);
        CHECK(lh <= len);
        CHECK_EQ_INT(sfp_decode(fh, lh, dh, n * esz, NULL), 0);
        CHECK(memcmp(dh, q, n * esz) == 0);
        free(fh), free(dh);
    }
    if (memcmp(q, d, n * esz) != 0) {
        ok = 0;
        fprintf(stderr, "  roundtrip mismatch dtype=%d k=%u e=%u coder=%d n=%zu\n",
                p->dtype, p->mbits, p->ebits, p->coder, n);
    }
    CHECK(ok);
    /* re-encoding the decoded (on-grid) values gives the same values */
    size_t len2 = 0;
    uint8_t *frame2 = malloc(cap);
    CHECK_EQ_INT(sfp_encode(d, n, p, frame2, cap, &len2, NULL), 0);
    CHECK_EQ_INT(sfp_decode(frame2, len2, q, n * esz, NULL), 0);
    CHECK(memcmp(q, d, n * esz) == 0);
    if (flen)
        *flen = len;
    free(frame), free(frame2), free(q), free(d);
    return ok;
}

static void fill_mixed(float *x, size_t n, trng *r, double zero_frac)
{
    for (size_t i = 0; i < n; i++) {
        double u = trng_unit(r);
        if (u < zero_frac)
            x[i] = 0.0f;
        else
            x[i] = trng_gauss(r) * (float)pow(2.0, (int)(trng_next(r) % 9) - 4);
    }
}

/* Every (k, e), both dtypes and both coders, random data on and off grid. */
static void test_roundtrip_all_widths(void)
{
    enum { N = 3001, NMAX = 4097 };
    float *x = malloc(NMAX * 4);
    uint16_t *xb = malloc(N * 2);
    trng r = {7};
    fill_mixed(x, NMAX, &r, 0.3);
    for (size_t i = 0; i < N; i++)
        xb[i] = (uint16_t)(f2u(x[i]) >> 16);
    for (int c = 0; c < 3; c++)
        for (unsigned e = 1; e <= 8; e++) {
            for (unsigned k = 0; k <= 23; k++) {
                sfp_params p = params(SFP_DTYPE_F32, k, e, (sfp_coder)c);
                roundtrip(x, N, &p, NULL);
            }
            for (unsigned k = 0; k <= 7; k++) {
                sfp_params p = params(SFP_DTYPE_BF16, k, e, (sfp_coder)c);
                roundtrip(xb, N, &p, NULL);
            }
        }
    /* group sizes, trunc and stochastic rounding, fixed anchor */
    unsigned groups[] = {8, 16, 32, 64};
    for (int g = 0; g < 4; g++)
        for (int mode = 0; mode < 3; mode++) {
            sfp_params p = params(SFP_DTYPE_F32, 3, 4, SFP_CODER_GECKO);
            p.gecko_group = groups[g];
            p.rounding = (sfp_rounding)mode;
            p.seed = 99;
            roundtrip(x, N, &p, NULL);
            p.anchor = 125; /* saturates the larger values */
            roundtrip(x, N, &p, NULL);
        }
    /* sizes around chunk and block boundaries, and empty */
    size_t sizes[] = {0, 1, 7, 63, 64, 65, 2047, 2048, 2049, 4097};
    for (int s = 0; s < 10; s++)
        for (int c = 0; c < 3; c++) {
            sfp_params p = params(SFP_DTYPE_F32, 2, 4, (sfp_coder)c);
            roundtrip(x, sizes[s], &p, NULL);
        }
    free(x), free(xb);
}

/* k=23, e=8 is lossless on every finite float, subnormals and -0 included. */
static void test_full_width(void)
{
    enum { N = 20000 };
    uint32_t *u = malloc(N * 4), *d = malloc(N * 4);
    trng r = {11};
    for (size_t i = 0; i < N; i++) {
        uint32_t v;
        do
            v = (uint32_t)trng_next(&r);
        while (((v >> 23) & 0xff) == 0xff);
        if (i % 7 == 0)
            v &= 0x807fffffu; /* subnormal or zero */
        u[i] = v;
    }
    u[0] = 0x00000000u; u[1] = 0x80000000u; /* +0, -0 */
    u[2] = 0x00800000u; u[3] = 0x7f7fffffu; /* min, max normal */
    u[4] = 0x00000001u; u[5] = 0x807fffffu; /* min, max subnormal */
    for (int c = 0; c < 3; c++) {
        sfp_params p = params(SFP_DTYPE_F32, 23, 8, (sfp_coder)c);
        size_t cap = sfp_frame_bound(N, &p), len, n;
        uint8_t *f = malloc(cap);
        CHECK_EQ_INT(sfp_encode(u, N, &p, f, cap, &len, NULL), 0);
        CHECK_EQ_INT(sfp_decode(f, len, d, N * 4, &n), 0);
        CHECK(memcmp(u, d, N * 4) == 0);
        free(f);
    }
    /* BF16 k=7 e=8 */
    uint16_t *b = malloc(N * 2), *bd = malloc(N * 2);
    for (size_t i = 0; i < N; i++)
        b[i] = (uint16_t)(u[i] >> 16);
    for (int c = 0; c < 3; c++) {
        sfp_params p = params(SFP_DTYPE_BF16, 7, 8, (sfp_coder)c);
        size_t cap = sfp_frame_bound(N, &p), len, n;
        uint8_t *f = malloc(cap);
        CHECK_EQ_INT(sfp_encode(b, N, &p, f, cap, &len, NULL), 0);
        CHECK_EQ_INT(sfp_decode(f, len, bd, N * 2, &n), 0);
        CHECK(memcmp(b, bd, N * 2) == 0);
        free(f);
    }
    free(u), free(d), free(b), free(bd);
}

/* Gecko on adversarial groups, through frames with raw 8-bit exponents. */
static void test_gecko_adversarial(void)
{
    enum { N = 1024 };
    float x[N];
    trng r = {5};
    for (int pat = 0; pat < 6; pat++) {
        for (int i = 0; i < N; i++) {
            switch (pat) {
            case 0: x[i] = 0.0f; break;                     /* all zero   */
            case 1: x[i] = 1.5f; break;                     /* all equal  */
            case 2: x[i] = u2f((uint32_t)(1 + i % 254) << 23); break; /* spread */
            case 3: x[i] = u2f((i & 1) ? 0x00000001u : 0x7f7fffffu); break;
            case 4: x[i] = (i % 3) ? 0.0f : u2f((uint32_t)(1 + (i * 37) % 254) << 23); break;
            default: x[i] = (trng_next(&r) & 1) ? 0.0f : trng_gauss(&r); break;
            }
        }
        for (unsigned g = 8; g <= 64; g *= 2)
            for (unsigned e = 1; e <= 8; e++) {
                sfp_params p = params(SFP_DTYPE_F32, 23, e, SFP_CODER_GECKO);
                p.gecko_group = g;
                roundtrip(x, N, &p, NULL);
            }
    }
    /* direct group coder: extreme codes, widths 0..8, exact bit counts */
    uint8_t codes[4][16], back[16], buf[128];
    for (unsigned e = 1; e <= 8; e++) {
        sfp__bw bw;
        sfp__br br;
        sfp__bw_init(&bw, buf);
        unsigned prev = (1u << e) - 1, prev2 = prev, prev3 = prev;
        uint64_t bits = 0;
        for (int t = 0; t < 4; t++) {
            for (int i = 0; i < 16; i++)
                codes[t][i] = (uint8_t)(t == 0 ? 0 : t == 1 ? (1u << e) - 1
                                        : t == 2 ? (i & 1) * ((1u << e) - 1)
                                                 : (trng_next(&r) % (1u << e)));
            bits += sfp__gecko_bits(e, &prev, codes[t], 16);
            sfp__gecko_put(&bw, e, &prev2, codes[t], 16);
        }
        uint8_t *end = sfp__bw_flush(&bw);
        CHECK_EQ_INT(end - buf, (bits + 7) / 8);
        sfp__br_init(&br, buf, (size_t)(end - buf));
        for (int t = 0; t < 4; t++) {
            CHECK_EQ_INT(sfp__gecko_get(&br, e, &prev3, back, 16), 0);
            CHECK(memcmp(back, codes[t], 16) == 0);
        }
    }
}

/* Encoded size equals the formula in docs/FORMAT.md. */
static void test_size_formula(void)
{
    enum { N = 5000 };
    float x[N];
    trng r = {3};
    fill_mixed(x, N, &r, 0.5);
    for (int i = 0; i < N; i++)
        if (i % 5 == 0)
            x[i] = fabsf(x[i]);
    for (unsigned k = 0; k <= 23; k += 7)
        for (unsigned e = 2; e <= 8; e += 2)
            for (int c = 0; c < 3; c++) {
                sfp_params p = params(SFP_DTYPE_F32, k, e, (sfp_coder)c);
                size_t cap = sfp_frame_bound(N, &p), len;
                uint8_t *f = malloc(cap);
                sfp_qstats st;
                float q[N];
                CHECK_EQ_INT(sfp_encode(x, N, &p, f, cap, &len, &st), 0);
                sfp_frame_info fi;
                CHECK_EQ_INT(sfp_frame_verify(f, len, &fi), 0);
                CHECK_EQ_INT(sfp_quantize(q, x, N, &p, NULL), 0);
                uint64_t nnz = 0, blocks = 0, neg = 0;
                for (int b = 0; b < N; b += 64) {
                    int any = 0;
                    for (int j = b; j < N && j < b + 64; j++) {
                        nnz += q[j] != 0;
                        any |= q[j] != 0;
                        neg += q[j] < 0;
                    }
                    blocks += any;
                }
                CHECK_EQ_INT(fi.nonzero, nnz);
                CHECK_EQ_INT(st.zeros, N - nnz);
                /* the encoder decides on the zeros before flushing */
                uint64_t zin = 0;
                for (int i = 0; i < N; i++)
                    zin += x[i] == 0;
                int zmap = !!(fi.flags & SFP_FLAG_ZMAP);
                if (c == 2)
                    CHECK_EQ_INT(zmap, 0); /* rANS codes zeros in-band */
                else if (st.flushed == 0)
                    CHECK_EQ_INT(zmap, zin * e * 64 > (uint64_t)N * 65);
                CHECK_EQ_INT(fi.sign_bytes, neg ? (nnz + 7) / 8 : 0);
                CHECK_EQ_INT(fi.mant_bytes, (nnz * k + 7) / 8);
                CHECK_EQ_INT(fi.zmap_bytes, zmap ? ((N + 63) / 64 + 7) / 8 + 8 * blocks : 0);
                uint64_t nc = zmap ? nnz : N;
                uint64_t ebytes;
                if (c == 0 || fi.coder == SFP_CODER_PLAIN) {
                    ebytes = (nc * e + 7) / 8;
                } else if (c == 2) {
                    ebytes = fi.exp_bytes; /* entropy coded: checked by decode */
                    CHECK(ebytes <= (nc * e + 7) / 8);
                } else {
                    /* recompute Gecko group bits from the codes */
                    uint8_t codes[N];
                    uint64_t m = 0, bits = 0;
                    int lo = st.anchor - (1 << e) + 2;
                    for (int i = 0; i < N; i++) {
                        if (zmap && q[i] == 0)
                            continue;
                        codes[m++] = q[i] == 0 ? 0 : (uint8_t)((int)((f2u(q[i]) >> 23) & 0xff) - lo + 1);
                    }
                    unsigned prev = (1u << e) - 1;
                    for (uint64_t i = 0; i < m; i += 16)
                        bits += sfp__gecko_bits(e, &prev, codes + i, m - i < 16 ? (unsigned)(m - i) : 16);
                    ebytes = (bits + 7) / 8;
                }
                CHECK_EQ_INT(fi.exp_bytes, ebytes);
                CHECK_EQ_INT(len, 64 + 8 + fi.sign_bytes + fi.mant_bytes + fi.zmap_bytes + ebytes);
                free(f);
            }
}

/* Truncations, bit flips and hostile headers never crash and always fail. */
static void test_hostile(void)
{
    enum { N = 700 };
    float x[N], y[N];
    trng r = {13};
    fill_mixed(x, N, &r, 0.5);
    for (int c = 0; c < 3; c++) {
        sfp_params p = params(SFP_DTYPE_F32, 2, 4, (sfp_coder)c);
        size_t cap = sfp_frame_bound(N, &p), len;
        uint8_t *f = malloc(cap), *g = malloc(cap);
        CHECK_EQ_INT(sfp_encode(x, N, &p, f, cap, &len, NULL), 0);
        for (size_t l = 0; l < len; l++) {
            uint8_t *t = malloc(l ? l : 1);
            memcpy(t, f, l);
            CHECK(sfp_decode(t, l, y, sizeof(y), NULL) < 0);
            free(t);
        }
        int undetected = 0;
        for (size_t i = 0; i < len * 8; i += 3) {
            memcpy(g, f, len);
            g[i / 8] ^= (uint8_t)(1u << (i % 8));
            undetected += sfp_decode(g, len, y, sizeof(y), NULL) == 0;
        }
        CHECK_EQ_INT(undetected, 0);
        CHECK_EQ_INT(sfp_decode(f, len, y, sizeof(y) - 1, NULL), SFP_ENOSPC);
        /* hostile sizes with a valid checksum: rewrite fields, re-sum */
        for (int fld = 16; fld < 64; fld += 8) {
            uint64_t vals[] = {0, 1, UINT64_MAX, UINT64_C(1) << 40, UINT64_C(1) << 63, len};
            for (int v = 0; v < 6; v++) {
                memcpy(g, f, len);
                sfp__store64le(g + fld, vals[v]);
                sfp_frame_info fi;
                if (sfp_frame_parse(g, len, &fi) == 0)
                    sfp__store64le(g + fi.frame_bytes - 8, sfp_checksum(g, fi.frame_bytes - 8));
                int rc = sfp_decode(g, len, y, sizeof(y), NULL);
                if (!(fld == 16 && vals[v] == N) && !(fld == 24 && vals[v] == len))
                    CHECK(rc < 0 || memcmp(g, f, len) == 0);
            }
        }
        /* byte fields 4..11 */
        for (int fld = 4; fld < 16; fld++)
            for (int v = 0; v < 256; v += 17) {
                memcpy(g, f, len);
                if (g[fld] == v)
                    continue;
                g[fld] = (uint8_t)v;
                sfp_frame_info fi;
                if (sfp_frame_parse(g, len, &fi) == 0)
                    sfp__store64le(g + fi.frame_bytes - 8, sfp_checksum(g, fi.frame_bytes - 8));
                (void)sfp_decode(g, len, y, sizeof(y), NULL); /* must not crash */
            }
        CHECK_EQ_INT(sfp_decode(f, 3, y, sizeof(y), NULL), SFP_ETRUNC);
        g[0] = 'X';
        CHECK_EQ_INT(sfp_decode(g, len, y, sizeof(y), NULL), SFP_EMAGIC);
        memcpy(g, f, len);
        g[4] = 2;
        CHECK_EQ_INT(sfp_decode(g, len, y, sizeof(y), NULL), SFP_EVERSION);
        memcpy(g, f, len);
        g[len - 1] ^= 1;
        CHECK_EQ_INT(sfp_decode(g, len, y, sizeof(y), NULL), SFP_ECHECKSUM);
        CHECK_EQ_INT(sfp_encode(x, N, &p, g, 100, &len, NULL), SFP_ENOSPC);
        free(f), free(g);
    }
}

/* The reciprocal division of the rANS encoder is exact for every divisor. */
static void test_rans_division(void)
{
    trng r = {23};
    int bad = 0;
    for (uint32_t f = 1; f <= SFP__RANS_M; f++) {
        unsigned sh = f > 1 ? 32u - (unsigned)__builtin_clz(f - 1) : 0;
        uint64_t m = (uint64_t)((((__uint128_t)1 << (32 + sh)) + f - 1) / f);
        for (int t = 0; t < 2000; t++) {
            uint32_t x = t < 8 ? (uint32_t)(0xffffffffu - (uint32_t)t)
                       : t < 16 ? (uint32_t)(f * (uint32_t)t - 1)
                                : (uint32_t)trng_next(&r);
            uint32_t q = (uint32_t)(((__uint128_t)x * m) >> (32 + sh));
            bad += q != x / f;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* rANS planes with a valid checksum but hostile content. */
static void test_rans_hostile(void)
{
    enum { N = 3000 };
    float x[N], y[N];
    trng r = {17};
    fill_mixed(x, N, &r, 0.5);
    sfp_params p = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_RANS);
    size_t cap = sfp_frame_bound(N, &p), len;
    uint8_t *f = malloc(cap), *g = malloc(cap);
    CHECK_EQ_INT(sfp_encode(x, N, &p, f, cap, &len, NULL), 0);
    sfp_frame_info fi;
    CHECK_EQ_INT(sfp_frame_parse(f, len, &fi), 0);
    CHECK_EQ_INT(fi.coder, SFP_CODER_RANS);
    const size_t off_exp = 64 + fi.sign_bytes + fi.mant_bytes + fi.zmap_bytes;
    int accepted = 0;
    for (size_t i = off_exp; i < len - 8; i++)
        for (int b = 0; b < 8; b++) {
            memcpy(g, f, len);
            g[i] ^= (uint8_t)(1u << b);
            sfp__store64le(g + len - 8, sfp_checksum(g, len - 8));
            int rc = sfp_decode(g, len, y, sizeof(y), NULL);
            CHECK(rc == 0 || rc == SFP_ECORRUPT);
            accepted += rc == 0;
        }
    /* a flip that still decodes must at least not go unnoticed often */
    printf("rANS payload bit flips accepted after re-checksumming: %d of %zu\n",
           accepted, (len - 8 - off_exp) * 8);
    /* frequency sum off by one */
    memcpy(g, f, len);
    g[off_exp + 2] ^= 1; /* first frequency (16 presence bits first) */
    sfp__store64le(g + len - 8, sfp_checksum(g, len - 8));
    CHECK_EQ_INT(sfp_decode(g, len, y, sizeof(y), NULL), SFP_ECORRUPT);
    free(f), free(g);
}

/*
 * Gecko planes at their bound, in a buffer of exactly sfp_frame_bound bytes:
 * every group of 16 a new base (long header) over the lowest code (width e
 * for e >= 3), no zeros, mantissas 0, so the exponent plane fills its bound
 * to the byte. The encoders' branchless group writer stores whole qwords up to 7
 * bytes past the plane; they must stay inside the buffer (guard bytes after
 * it must not change; the asan build sees the heap) and every kernel must
 * write the same frame.
 */
static void test_gecko_exact_buffer(void)
{
    enum { N = 64 * 34, GUARD = 64 }; /* whole vectors: the last group goes out by the fast writer */
    static float x[N], y[N];
    for (unsigned e = 1; e <= 8; e++)
        for (unsigned k = 0; k <= 23; k = k == 6 ? 23 : k + 1) {
            const unsigned M = (1u << e) - 1;  /* the top code          */
            const int A = e == 8 ? 254 : 127; /* its biased exponent    */
            const int lo = A - (int)M + 1;    /* E of code 1            */
            const unsigned cmin = lo < 1 ? (unsigned)(1 - lo) + 1 : 1;
            if (M - 1 < cmin) /* e = 1: one code, no delta */
                continue;
            for (int i = 0; i < N; i++) {
                /* group 0's base differs from the initial previous (M) */
                const unsigned g = (unsigned)i / 16, base = M - ((g + 1) & 1);
                const unsigned code = i & 1 ? cmin : base;
                x[i] = u2f((uint32_t)(lo + (int)code - 1) << 23);
            }
            sfp_params p = params(SFP_DTYPE_F32, k, e, SFP_CODER_GECKO);
            const size_t cap = sfp_frame_bound(N, &p);
            uint8_t *ref = NULL, *f = malloc(cap + GUARD);
            size_t rlen = 0;
            for (int impl = SFP_IMPL_C; impl <= SFP_IMPL_AVX512; impl++) {
                if (sfp_set_impl((sfp_impl)impl) != 0)
                    continue;
                size_t len = 0;
                memset(f, 0xa5, cap + GUARD);
                CHECK_EQ_INT(sfp_encode(x, N, &p, f, cap, &len, NULL), 0);
                int guard_ok = 1;
                for (size_t i = cap; i < cap + GUARD; i++)
                    guard_ok &= f[i] == 0xa5;
                CHECK(guard_ok);
                sfp_frame_info fi;
                CHECK_EQ_INT(sfp_frame_parse(f, len, &fi), 0);
                const uint64_t groups = (N + 15) / 16, wb = sfp__gecko_wbits(e);
                if (e >= 3) /* e = 2: base 2 leaves a delta of 1 */
                    CHECK_EQ_INT(fi.exp_bytes, (groups * (1 + e + wb) + (uint64_t)N * e + 7) / 8);
                CHECK_EQ_INT(sfp_decode(f, len, y, sizeof(y), NULL), 0);
                CHECK(memcmp(x, y, sizeof(x)) == 0);
                /* again with a buffer of exactly the frame's length, which
                 * the encoder's plan accepts when the plane is at its bound */
                if (e >= 3) {
                    size_t len2 = 0;
                    memset(f, 0xa5, cap + GUARD);
                    CHECK_EQ_INT(sfp_encode(x, N, &p, f, len, &len2, NULL), 0);
                    CHECK(len2 == len);
                    guard_ok = 1;
                    for (size_t i = len; i < len + GUARD; i++)
                        guard_ok &= f[i] == 0xa5;
                    CHECK(guard_ok);
                }
                if (!ref) {
                    ref = malloc(len);
                    memcpy(ref, f, len);
                    rlen = len;
                } else {
                    CHECK(len == rlen && memcmp(f, ref, len) == 0);
                }
            }
            sfp_set_impl(SFP_IMPL_AUTO);
            free(ref), free(f);
        }
}

/* ------------------------------------------- frames the format forbids */

/* Encodes x into a fresh buffer with room for one extra byte. */
static uint8_t *enc(const float *x, size_t n, const sfp_params *p, size_t *len,
                    sfp_frame_info *fi)
{
    size_t cap = sfp_frame_bound(n, p) + 1;
    uint8_t *f = malloc(cap);
    CHECK_EQ_INT(sfp_encode(x, n, p, f, cap, len, NULL), 0);
    CHECK_EQ_INT(sfp_frame_parse(f, *len, fi), 0);
    return f;
}

static void resum(uint8_t *f, size_t len)
{
    sfp__store64le(f + len - 8, sfp_checksum(f, len - 8));
}

/* Decodes f under every kernel implementation the CPU has (and the AVX-512
 * kernels over SIMDe's emulation when built); each must give want. */
static void decode_all_impls(const uint8_t *f, size_t len, int want, const char *what)
{
    static float y[4096];
    for (int impl = SFP_IMPL_C; impl <= SFP_IMPL_AVX512 + 1; impl++) {
        if (impl > SFP_IMPL_AVX512) {
#if HAVE_AVX512_EMU
            sfp__kernels_force(&sfp__kernels_avx512_emu, SFP_IMPL_AVX512);
#else
            continue;
#endif
        } else if (sfp_set_impl((sfp_impl)impl) != 0) {
            continue;
        }
        int rc = sfp_decode(f, len, y, sizeof(y), NULL);
        CHECK_EQ_INT(rc, want);
        if (rc != want)
            fprintf(stderr, "  %s (impl %d%s)\n", what, impl,
                    impl > SFP_IMPL_AVX512 ? ", AVX-512 emulated" : "");
    }
    sfp_set_impl(SFP_IMPL_AUTO);
}

/* Bits the groups of a Gecko plane take (found by decoding it). */
static uint64_t gecko_plane_bits(const uint8_t *plane, const sfp_frame_info *fi)
{
    sfp__br br;
    uint8_t codes[64];
    unsigned prev = (1u << fi->ebits) - 1;
    uint64_t left = (fi->flags & SFP_FLAG_ZMAP) ? fi->nonzero : fi->count;
    sfp__br_init(&br, plane, fi->exp_bytes);
    while (left) {
        unsigned g = left < fi->gecko_group ? (unsigned)left : fi->gecko_group;
        CHECK_EQ_INT(sfp__gecko_get(&br, fi->ebits, &prev, codes, g), 0);
        left -= g;
    }
    return br.pos;
}

static void test_forbidden(void)
{
    enum { N = 1000 };
    float x[N];
    trng r = {31};
    size_t len;
    sfp_frame_info fi;

    /* (a) ZMAP: code 0 where the zero map says non-zero (e = 4, plain:
     * the first code is the low nibble of the first exponent byte). */
    fill_mixed(x, N, &r, 0.6);
    x[0] = -1.5f; /* first non-zero value negative: the old bug gave -0 */
    sfp_params p = params(SFP_DTYPE_F32, 3, 4, SFP_CODER_PLAIN);
    uint8_t *f = enc(x, N, &p, &len, &fi);
    CHECK(fi.flags & SFP_FLAG_ZMAP);
    size_t oe = 64 + fi.sign_bytes + fi.mant_bytes + fi.zmap_bytes;
    decode_all_impls(f, len, 0, "ZMAP valid");
    f[oe] &= 0xf0;
    resum(f, len);
    decode_all_impls(f, len, SFP_ECORRUPT, "ZMAP code 0 at a non-zero");
    free(f);
    /* the same through the Gecko coder (a group of one code: delta = B) */
    p.coder = SFP_CODER_GECKO;
    f = enc(x, 8, &p, &len, &fi);
    decode_all_impls(f, len, 0, "Gecko valid");
    free(f);

    /* (a') no zero map: a code in 1..cmin-1 (below the window; e = 8,
     * plain: the first code is the first exponent byte); one in a later
     * 64-block too */
    {
        float g[N];
        trng rg = {37};
        for (int i = 0; i < N; i++)
            g[i] = (float)(trng_gauss(&rg) + 0.01);
        sfp_params q = params(SFP_DTYPE_F32, 2, 8, SFP_CODER_PLAIN);
        uint8_t *h = enc(g, N, &q, &len, &fi);
        CHECK(!(fi.flags & SFP_FLAG_ZMAP));
        size_t ox = 64 + fi.sign_bytes + fi.mant_bytes;
        decode_all_impls(h, len, 0, "no ZMAP valid");
        const size_t at[] = {0, 200};
        for (int i = 0; i < 2; i++) {
            uint8_t *k = malloc(len);
            memcpy(k, h, len);
            k[ox + at[i]] = 5;
            resum(k, len);
            decode_all_impls(k, len, SFP_ECORRUPT, "no ZMAP: code below cmin");
            free(k);
        }
        free(h);
    }

    /* (b) Gecko plane one byte longer than its groups */
    f = enc(x, N, &p, &len, &fi);
    memmove(f + len - 7, f + len - 8, 8);
    f[len - 8] = 0;
    sfp__store64le(f + 56, fi.exp_bytes + 1);
    resum(f, len + 1);
    CHECK_EQ_INT(sfp_frame_parse(f, len + 1, &fi), 0);
    decode_all_impls(f, len + 1, SFP_ECORRUPT, "Gecko plane + 1 byte");
    free(f);

    /* (c) padding bits: sign (ZSIGN, n = 1001 bits), mantissa, exponent */
    float z[N + 1];
    memcpy(z, x, sizeof(x));
    z[N] = -0.0f;
    const unsigned ks[] = {3, 5};
    for (int c = 0; c < 2; c++) {
        p = params(SFP_DTYPE_F32, ks[c], 5, c ? SFP_CODER_GECKO : SFP_CODER_PLAIN);
        f = enc(z, N + 1, &p, &len, &fi);
        CHECK(fi.flags & SFP_FLAG_ZSIGN);
        uint64_t sbits = fi.count, mbits = fi.nonzero * fi.mbits;
        uint64_t ebits = fi.nonzero * fi.ebits; /* plain with ZMAP */
        size_t om = 64 + fi.sign_bytes, ox = om + fi.mant_bytes + fi.zmap_bytes;
        uint8_t *g = malloc(len);
        struct { size_t off; uint64_t bits; const char *what; } pads[] = {
            {64, sbits, "sign padding"},
            {om, mbits, "mantissa padding"},
            {ox, c ? gecko_plane_bits(f + ox, &fi) : ebits, "exponent padding"},
        };
        for (int i = 0; i < 3; i++) {
            if (pads[i].bits % 8 == 0)
                continue;
            memcpy(g, f, len);
            g[pads[i].off + pads[i].bits / 8] |= 0x80;
            resum(g, len);
            decode_all_impls(g, len, SFP_ECORRUPT, pads[i].what);
        }
        free(g), free(f);
    }

    /* E = 0 with a zero mantissa: a zero coded as a non-zero value */
    {
        uint32_t sub[16];
        for (int i = 0; i < 16; i++)
            sub[i] = 1 + (uint32_t)i;
        p = params(SFP_DTYPE_F32, 23, 8, SFP_CODER_PLAIN);
        f = enc((const float *)sub, 16, &p, &len, &fi);
        decode_all_impls(f, len, 0, "subnormals");
        memset(f + 64 + fi.sign_bytes, 0, fi.mant_bytes);
        resum(f, len);
        decode_all_impls(f, len, SFP_ECORRUPT, "E = 0 with mantissa 0");
        free(f);
    }

    /* (d) rANS with a zero map: refused from the header alone */
    p = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_RANS);
    fill_mixed(x, N, &r, 0.1);
    f = enc(x, N, &p, &len, &fi);
    CHECK_EQ_INT(fi.coder, SFP_CODER_RANS);
    f[11] |= SFP_FLAG_ZMAP;
    CHECK_EQ_INT(sfp_frame_parse(f, len, &fi), SFP_EHEADER);
    decode_all_impls(f, len, SFP_EHEADER, "rANS + ZMAP");
    free(f);

    /* 3: 83 bytes declaring 2^40 zeros, and the density limit exactly */
    uint8_t d[83] = {'S', 'F', 'P', 'F', 1, SFP_DTYPE_F32, 0, 1, 127, SFP_CODER_RANS};
    sfp__store64le(d + 16, UINT64_C(1) << 40);
    sfp__store64le(d + 56, 11);
    d[64] = 1, d[65] = 0xff, d[66] = 0x0f;
    sfp__store32le(d + 67, SFP__RANS_L);
    sfp__store32le(d + 71, SFP__RANS_L);
    resum(d, sizeof(d));
    CHECK_EQ_INT(sfp_frame_parse(d, sizeof(d), &fi), SFP_EHEADER);
    sfp__store64le(d + 16, 11 * SFP_FRAME_MAX_DENSITY + 1);
    CHECK_EQ_INT(sfp_frame_parse(d, sizeof(d), &fi), SFP_EHEADER);
    sfp__store64le(d + 16, 11 * SFP_FRAME_MAX_DENSITY);
    resum(d, sizeof(d));
    CHECK_EQ_INT(sfp_frame_parse(d, sizeof(d), &fi), 0);
    decode_all_impls(d, sizeof(d), SFP_ENOSPC, "5632 zeros into 16 KiB");
    {
        float *y = malloc(11 * SFP_FRAME_MAX_DENSITY * 4);
        size_t n = 0;
        CHECK_EQ_INT(sfp_decode(d, sizeof(d), y, 11 * SFP_FRAME_MAX_DENSITY * 4, &n), 0);
        CHECK_EQ_INT(n, 11 * SFP_FRAME_MAX_DENSITY);
        free(y);
    }
}

/* 4: the rANS request never writes more than the smallest valid layout
 * (what the plain coder writes, with or without a zero map). */
static void test_rans_smallest(void)
{
    enum { N = 3000 };
    static float x[N];
    trng r = {41};
    int tried = 0, worse = 0;
    for (int t = 0; t < 200; t++) {
        size_t n = 1 + trng_next(&r) % (t < 100 ? 200 : N);
        unsigned k = (unsigned)(trng_next(&r) % 24), e = 1 + (unsigned)(trng_next(&r) % 8);
        int kind = t % 5;
        for (size_t i = 0; i < n; i++)
            x[i] = kind == 0 ? -0.0f : kind == 1 ? 0.0f : kind == 2 ? 1.0f
                 : (trng_unit(&r) < 0.3 * (kind - 2)) ? 0.0f : trng_gauss(&r);
        sfp_params pp = params(SFP_DTYPE_F32, k, e, SFP_CODER_PLAIN);
        sfp_params pr = params(SFP_DTYPE_F32, k, e, SFP_CODER_RANS);
        size_t cap = sfp_frame_bound(n, &pr), lp = 0, lr = 0, got = 0;
        uint8_t *fp = malloc(cap), *fr = malloc(cap);
        CHECK_EQ_INT(sfp_encode(x, n, &pp, fp, cap, &lp, NULL), 0);
        CHECK_EQ_INT(sfp_encode(x, n, &pr, fr, cap, &lr, NULL), 0);
        float *y1 = malloc(n * 4), *y2 = malloc(n * 4);
        CHECK_EQ_INT(sfp_decode(fp, lp, y1, n * 4, &got), 0);
        CHECK_EQ_INT(sfp_decode(fr, lr, y2, n * 4, &got), 0);
        CHECK(memcmp(y1, y2, n * 4) == 0);
        tried++;
        if (lr > lp) {
            worse++;
            fprintf(stderr, "  rANS %zu > plain %zu bytes (n %zu k %u e %u kind %d)\n",
                    lr, lp, n, k, e, kind);
        }
        free(fp), free(fr), free(y1), free(y2);
    }
    CHECK_EQ_INT(worse, 0);
    /* the case: 100 x -0.0, k 23, e 8 */
    for (int i = 0; i < 100; i++)
        x[i] = -0.0f;
    sfp_params pr = params(SFP_DTYPE_F32, 23, 8, SFP_CODER_RANS);
    uint8_t f[1024];
    size_t len = 0;
    CHECK_EQ_INT(sfp_encode(x, 100, &pr, f, sizeof(f), &len, NULL), 0);
    CHECK_EQ_INT(len, 86);
    printf("rANS never larger than plain: %d cases\n", tried);
}

/*
 * SFP_CODER_AUTO: the frame is the smaller of the Gecko and the rANS request
 * (Gecko on a tie), holds the same values, writes nothing past its bound,
 * gives the same quantized copy in place (every rounding mode), and needs
 * the whole bound.
 */
static void test_coder_auto(void)
{
    enum { N = 5000 };
    static float x[N], q[N], y[N], z[N];
    trng r = {77};
    int picked[SFP_CODER_COUNT] = {0};
    for (int t = 0; t < 120; t++) {
        size_t n = t < 3 ? (size_t)t : 1 + trng_next(&r) % (t < 60 ? 300 : N);
        unsigned k = (unsigned)(trng_next(&r) % 8), e = 1 + (unsigned)(trng_next(&r) % 8);
        int kind = t % 4;
        for (size_t i = 0; i < n; i++)
            x[i] = kind == 0 ? trng_gauss(&r) * 0.05f /* weights */
                 : kind == 1 ? (trng_unit(&r) < 0.5 ? 0.0f : fabsf(trng_gauss(&r)))
                 : kind == 2 ? trng_gauss(&r) * (float)pow(2.0, (int)(trng_next(&r) % 30) - 15)
                             : 1.0f;
        sfp_params pa = params(SFP_DTYPE_F32, k, e, SFP_CODER_AUTO);
        sfp_params pg = params(SFP_DTYPE_F32, k, e, SFP_CODER_GECKO);
        sfp_params pr = params(SFP_DTYPE_F32, k, e, SFP_CODER_RANS);
        pa.rounding = pg.rounding = pr.rounding = (sfp_rounding)(t % 3);
        pa.seed = pg.seed = pr.seed = 1000u + (unsigned)t;
        pa.zmap = pg.zmap = pr.zmap = t & 1 ? SFP_ZMAP_HUFFMAN : SFP_ZMAP_BITMAP;
        const size_t cap = sfp_frame_bound(n, &pa);
        CHECK(cap >= sfp_frame_bound(n, &pg) + sfp_frame_bound(n, &pr));
        uint8_t *fa = malloc(cap + 16), *fg = malloc(cap), *fr = malloc(cap);
        memset(fa, 0xa5, cap + 16);
        size_t la = 0, lg = 0, lr = 0, got = 0;
        sfp_qstats sa, sg;
        memset(&sa, 0, sizeof sa);
        memset(&sg, 0, sizeof sg);
        CHECK_EQ_INT(sfp_encode(x, n, &pa, fa, cap, &la, &sa), 0);
        CHECK_EQ_INT(sfp_encode(x, n, &pg, fg, cap, &lg, &sg), 0);
        CHECK_EQ_INT(sfp_encode(x, n, &pr, fr, cap, &lr, NULL), 0);
        CHECK_EQ_INT(la, lg <= lr ? lg : lr);
        CHECK(memcmp(fa, lg <= lr ? fg : fr, la) == 0);
        CHECK(sa.count == sg.count && sa.zeros == sg.zeros && sa.flushed == sg.flushed &&
              sa.saturated == sg.saturated && sa.negative == sg.negative &&
              sa.anchor == sg.anchor);
        for (size_t i = cap; i < cap + 16; i++)
            CHECK_EQ_INT(fa[i], 0xa5);
        sfp_frame_info fi;
        CHECK_EQ_INT(sfp_frame_parse(fa, la, &fi), 0);
        CHECK((unsigned)fi.coder < SFP_CODER_COUNT);
        picked[fi.coder]++;
        CHECK_EQ_INT(sfp_decode(fa, la, y, sizeof y, &got), 0);
        CHECK_EQ_INT(got, n);
        /* in place: src becomes the values the frame decodes to */
        memcpy(q, x, n * 4);
        size_t lq = 0;
        CHECK_EQ_INT(sfp_encode_q(q, n, &pa, fa, cap, &lq, NULL, q), 0);
        CHECK_EQ_INT(lq, la);
        CHECK(memcmp(q, y, n * 4) == 0);
        CHECK_EQ_INT(sfp_decode(fa, lq, z, sizeof z, &got), 0);
        CHECK(memcmp(z, y, n * 4) == 0);
        /* the whole bound, or nothing */
        lq = 12345;
        CHECK_EQ_INT(sfp_encode(x, n, &pa, fa, cap - 1, &lq, NULL), SFP_ENOSPC);
        CHECK_EQ_INT(lq, 12345);
        free(fa), free(fg), free(fr);
    }
    /* weights (kind 0) pick rANS, and every kind of frame comes out */
    CHECK(picked[SFP_CODER_RANS] > 0);
    CHECK(picked[SFP_CODER_GECKO] > 0);
    sfp_params bad = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_AUTO);
    bad.gecko_group = 12;
    CHECK_EQ_INT(sfp_params_check(&bad), SFP_EINVAL);
    CHECK_EQ_INT(sfp_frame_bound(10, &bad), 0);
    printf("coder auto: gecko %d, rans %d, plain %d frames\n", picked[SFP_CODER_GECKO],
           picked[SFP_CODER_RANS], picked[SFP_CODER_PLAIN]);
}

/* The ratios the issue asks for (deterministic data, no timing). */
static void test_ratios(void)
{
    enum { N = 1 << 20 };
    float *x = malloc((size_t)N * 4);
    trng r = {21};
    for (size_t i = 0; i < N; i++)
        x[i] = trng_gauss(&r);
    sfp_params p = params(SFP_DTYPE_F32, 23, 8, SFP_CODER_GECKO);
    size_t cap = sfp_frame_bound(N, &p), len;
    uint8_t *f = malloc(cap);
    CHECK_EQ_INT(sfp_encode(x, N, &p, f, cap, &len, NULL), 0);
    double lossless = (double)N * 4 / (double)len;
    printf("lossless Gecko, Gaussian FP32: %.3fx (%.2f bits/value)\n", lossless,
           8.0 * (double)len / N);
    CHECK(lossless >= 1.15);

    for (size_t i = 0; i < N; i++)
        x[i] = (trng_next(&r) & 1) ? fabsf(trng_gauss(&r)) : 0.0f;
    p = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_GECKO);
    CHECK_EQ_INT(sfp_encode(x, N, &p, f, cap, &len, NULL), 0);
    double relu = (double)N * 4 / (double)len;
    printf("k=2 e=4 Gecko, post-ReLU N(0,1) 50%% zeros: %.3fx (%.2f bits/value)\n",
           relu, 8.0 * (double)len / N);
    CHECK(relu >= 7.0);
    p.coder = SFP_CODER_RANS;
    cap = sfp_frame_bound(N, &p);
    free(f);
    f = malloc(cap);
    CHECK_EQ_INT(sfp_encode(x, N, &p, f, cap, &len, NULL), 0);
    printf("k=2 e=4 rANS, post-ReLU N(0,1) 50%% zeros: %.3fx (%.2f bits/value)\n",
           (double)N * 4 / (double)len, 8.0 * (double)len / N);
    CHECK((double)N * 4 / (double)len > relu);
    free(x), free(f);
}

/* The dtype and coder vocabulary: names, parse, counts and sizes agree. */
static void test_vocabulary(void)
{
    sfp_dtype t;
    sfp_coder c;
    CHECK_EQ_INT(SFP_DTYPE_COUNT, 2);
    CHECK_EQ_INT(SFP_CODER_COUNT, 3);
    for (unsigned i = 1; i <= SFP_DTYPE_COUNT; i++) {
        t = (sfp_dtype)0;
        CHECK_EQ_INT(sfp_dtype_parse(sfp_dtype_name((sfp_dtype)i), &t), 0);
        CHECK_EQ_INT((int)t, (int)i);
        CHECK(sfp_dtype_size((sfp_dtype)i) > 0);
    }
    for (unsigned i = 0; i < SFP_CODER_COUNT; i++) {
        sfp_params p = params(SFP_DTYPE_F32, 23, 8, (sfp_coder)i);
        c = (sfp_coder)99;
        CHECK_EQ_INT(sfp_coder_parse(sfp_coder_name((sfp_coder)i), &c), 0);
        CHECK_EQ_INT((int)c, (int)i);
        CHECK_EQ_INT(sfp_params_check(&p), 0);
    }
    CHECK(strcmp(sfp_dtype_name(SFP_DTYPE_F32), "f32") == 0);
    CHECK(strcmp(sfp_dtype_name(SFP_DTYPE_BF16), "bf16") == 0);
    CHECK(strcmp(sfp_coder_name(SFP_CODER_PLAIN), "plain") == 0);
    CHECK(strcmp(sfp_coder_name(SFP_CODER_GECKO), "gecko") == 0);
    CHECK(strcmp(sfp_coder_name(SFP_CODER_RANS), "rans") == 0);
    CHECK_EQ_INT(sfp_dtype_parse("float32", &t), 0);
    CHECK_EQ_INT((int)t, SFP_DTYPE_F32);
    CHECK_EQ_INT(sfp_dtype_parse("bfloat16", &t), 0);
    CHECK_EQ_INT((int)t, SFP_DTYPE_BF16);
    CHECK_EQ_INT(sfp_dtype_fraction_bits(SFP_DTYPE_F32), 23);
    CHECK_EQ_INT(sfp_dtype_fraction_bits(SFP_DTYPE_BF16), 7);
    /* unknown values and names */
    CHECK(strcmp(sfp_dtype_name((sfp_dtype)0), "?") == 0);
    CHECK(strcmp(sfp_dtype_name((sfp_dtype)(SFP_DTYPE_COUNT + 1)), "?") == 0);
    CHECK(strcmp(sfp_coder_name((sfp_coder)SFP_CODER_COUNT), "?") == 0);
    CHECK(strcmp(sfp_coder_name((sfp_coder)-1), "?") == 0);
    t = SFP_DTYPE_BF16;
    CHECK_EQ_INT(sfp_dtype_parse("F32", &t), SFP_EINVAL);
    CHECK_EQ_INT(sfp_dtype_parse("", &t), SFP_EINVAL);
    CHECK_EQ_INT(sfp_dtype_parse("fp", &t), SFP_EINVAL);
    CHECK_EQ_INT(sfp_dtype_parse(NULL, &t), SFP_EINVAL);
    CHECK_EQ_INT((int)t, SFP_DTYPE_BF16);
    CHECK(strcmp(sfp_coder_name(SFP_CODER_AUTO), "auto") == 0);
    CHECK_EQ_INT(sfp_coder_parse("auto", &c), 0);
    CHECK_EQ_INT((int)c, (int)SFP_CODER_AUTO);
    {
        sfp_params pa = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_AUTO);
        CHECK_EQ_INT(sfp_params_check(&pa), 0);
        pa.coder = (sfp_coder)SFP_CODER_COUNT;
        CHECK_EQ_INT(sfp_params_check(&pa), SFP_EINVAL);
        pa.coder = (sfp_coder)254;
        CHECK_EQ_INT(sfp_params_check(&pa), SFP_EINVAL);
    }
    CHECK_EQ_INT(sfp_coder_parse("gecko ", &c), SFP_EINVAL);
    CHECK_EQ_INT(sfp_coder_parse("?", &c), SFP_EINVAL);
    CHECK_EQ_INT(sfp_dtype_size((sfp_dtype)3), 0);
    /* names: UTF-8 text without control characters */
    CHECK_EQ_INT(sfp_text_check("job-1", 5), 0);
    CHECK_EQ_INT(sfp_text_check("j\xc3\xb6" "b \"q\" \\", 9), 0);   /* ö, quotes, backslash */
    CHECK_EQ_INT(sfp_text_check("\xe5\x90\x8d\xf0\x9f\x98\x80", 7), 0); /* 3- and 4-byte forms */
    CHECK_EQ_INT(sfp_text_check("", 0), 0);
    CHECK_EQ_INT(sfp_text_check("nul\0x", 5), SFP_EINVAL);
    CHECK_EQ_INT(sfp_text_check("a\tb", 3), SFP_EINVAL);
    CHECK_EQ_INT(sfp_text_check("\x7f", 1), SFP_EINVAL);
    CHECK_EQ_INT(sfp_text_check("\xc2\x85", 2), SFP_EINVAL);           /* C1 NEL */
    CHECK_EQ_INT(sfp_text_check("\xc2\xa0", 2), 0);                   /* U+00A0 */
    CHECK_EQ_INT(sfp_text_check("\xc0\xae", 2), SFP_EINVAL);           /* overlong */
    CHECK_EQ_INT(sfp_text_check("\xe0\x80\xae", 3), SFP_EINVAL);       /* overlong */
    CHECK_EQ_INT(sfp_text_check("\xed\xa0\x80", 3), SFP_EINVAL);       /* surrogate */
    CHECK_EQ_INT(sfp_text_check("\xf4\x90\x80\x80", 4), SFP_EINVAL);   /* > U+10FFFF */
    CHECK_EQ_INT(sfp_text_check("\xff\xfe", 2), SFP_EINVAL);
    CHECK_EQ_INT(sfp_text_check("t\xc3\x28", 3), SFP_EINVAL);
    CHECK_EQ_INT(sfp_text_check("\xc3", 1), SFP_EINVAL);                /* cut short */
    CHECK_EQ_INT(sfp_text_check("\x80", 1), SFP_EINVAL);
    CHECK_EQ_INT(sfp_dtype_fraction_bits((sfp_dtype)0), 0);
}

/* Zeros in runs (rows of an image with a background): the Huffman-coded
 * zero map is chosen, smaller, and decodes to the same values; hostile
 * tables and streams are rejected. */
static void test_zhuf(void)
{
    enum { N = 20000 };
    static float x[N];
    trng r = {41};
    for (size_t i = 0; i < N; i++) {
        int on = (i / 37) % 3 != 0 && (i % 28) > 5; /* runs of zeros */
        x[i] = on && trng_unit(&r) < 0.9 ? fabsf(trng_gauss(&r)) : 0.0f;
    }
    for (int c = 0; c < 2; c++) {
        sfp_params p = params(SFP_DTYPE_F32, 2, 4, (sfp_coder)c);
        size_t lb = 0, lh = 0;
        sfp_frame_info fb, fh;
        uint8_t *b = enc(x, N, &p, &lb, &fb);
        p.zmap = SFP_ZMAP_HUFFMAN;
        uint8_t *h = enc(x, N, &p, &lh, &fh);
        CHECK(fb.flags & SFP_FLAG_ZMAP);
        CHECK(!(fb.flags & SFP_FLAG_ZHUF));
        CHECK(fh.flags & SFP_FLAG_ZHUF);
        CHECK(fh.zmap_bytes < fb.zmap_bytes);
        CHECK_EQ_INT(lb - lh, fb.zmap_bytes - fh.zmap_bytes);
        printf("Huffman zero map, runs of zeros, %s: %.3f -> %.3f bits/value of zero map\n",
               c ? "Gecko" : "plain", 8.0 * fb.zmap_bytes / N, 8.0 * fh.zmap_bytes / N);
        static float yb[N], yh[N];
        CHECK_EQ_INT(sfp_decode(b, lb, yb, sizeof(yb), NULL), 0);
        CHECK_EQ_INT(sfp_decode(h, lh, yh, sizeof(yh), NULL), 0);
        CHECK(memcmp(yb, yh, sizeof(yb)) == 0);

        /* hostile: a length over 12; an over-subscribed context; a flipped
         * stream bit (a missing code, another count, or padding); the
         * stream cut or grown (the header then disagrees or bits are left) */
        const size_t zoff = SFP_FRAME_HEADER_SIZE + fh.sign_bytes + fh.mant_bytes;
        uint8_t *t = malloc(lh + 64);
        memcpy(t, h, lh);
        t[zoff] = 0xdd; /* two lengths of 13 */
        resum(t, lh);
        CHECK_EQ_INT(sfp_decode(t, lh, yh, sizeof(yh), NULL), SFP_ECORRUPT);
        memcpy(t, h, lh);
        memset(t + zoff, 0x11, 128); /* 256 codes of 1 bit */
        resum(t, lh);
        CHECK_EQ_INT(sfp_decode(t, lh, yh, sizeof(yh), NULL), SFP_ECORRUPT);
        int rejected = 0, flips = 0;
        for (size_t bit = 8 * (zoff + SFP__ZH_TABLE_BYTES); bit < 8 * (zoff + fh.zmap_bytes);
             bit += 7, flips++) {
            memcpy(t, h, lh);
            t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            resum(t, lh);
            int rc = sfp_decode(t, lh, yh, sizeof(yh), NULL);
            CHECK(rc == SFP_OK || rc == SFP_ECORRUPT);
            rejected += rc == SFP_ECORRUPT;
        }
        printf("Huffman zero map: %d of %d stream bit flips rejected\n", rejected, flips);
        CHECK(rejected > flips / 2);
        /* the zero map is not allowed without ZMAP, nor too short/long */
        memcpy(t, h, lh);
        t[11] = (uint8_t)(t[11] & ~SFP_FLAG_ZMAP);
        resum(t, lh);
        CHECK_EQ_INT(sfp_decode(t, lh, yh, sizeof(yh), NULL), SFP_EHEADER);
        memcpy(t, h, lh);
        sfp__store64le(t + 48, SFP__ZH_TABLE_BYTES + 1);
        resum(t, lh);
        CHECK(sfp_decode(t, lh, yh, sizeof(yh), NULL) < 0);
        /* two streams (ZH2): the first stream's byte count must split the
         * plane where the encoder did (one off either way, none, all of
         * it, past it); ZH2 only with ZHUF */
        CHECK(fh.flags & SFP_FLAG_ZH2);
        const uint64_t la = sfp__load64le(h + zoff + SFP__ZH_TABLE_BYTES);
        const uint64_t cuts[] = {0, la - 1, la + 1, fh.zmap_bytes - SFP__ZH_TABLE_BYTES - 8,
                                 fh.zmap_bytes, UINT64_MAX};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            memcpy(t, h, lh);
            sfp__store64le(t + zoff + SFP__ZH_TABLE_BYTES, cuts[i]);
            resum(t, lh);
            CHECK_EQ_INT(sfp_decode(t, lh, yh, sizeof(yh), NULL), SFP_ECORRUPT);
        }
        memcpy(t, h, lh);
        t[11] = (uint8_t)(t[11] & ~SFP_FLAG_ZHUF);
        resum(t, lh);
        CHECK_EQ_INT(sfp_decode(t, lh, yh, sizeof(yh), NULL), SFP_EHEADER);
        free(t), free(b), free(h);
    }
    /* a tensor with no zero map: the option changes nothing */
    for (size_t i = 0; i < N; i++)
        x[i] = trng_gauss(&r);
    sfp_params p = params(SFP_DTYPE_F32, 2, 4, SFP_CODER_GECKO);
    size_t l1 = 0, l2 = 0;
    sfp_frame_info f1, f2;
    uint8_t *a = enc(x, N, &p, &l1, &f1);
    p.zmap = SFP_ZMAP_HUFFMAN;
    uint8_t *b = enc(x, N, &p, &l2, &f2);
    CHECK(l1 == l2 && memcmp(a, b, l1) == 0);
    p.zmap = 2;
    CHECK_EQ_INT(sfp_params_check(&p), SFP_EINVAL);
    free(a), free(b);
}

/* Zeros that only the window's flush makes (softmax outputs: no input is
 * zero) get the zero map too: the frame is the one the values give once
 * quantized, with and without qout, in place or not. */
static void test_flush_zmap(void)
{
    enum { N = 5000 };
    static float x[N], q[N], y[N];
    trng r = {53};
    for (size_t i = 0; i < N; i++)
        x[i] = (float)exp(-8.0 * trng_unit(&r)) * (i % 50 == 0 ? 1.0f : 0.01f);
    for (unsigned z = 0; z < 2; z++) {
        sfp_params p = params(SFP_DTYPE_F32, 2, 3, SFP_CODER_GECKO);
        p.zmap = z;
        size_t cap = sfp_frame_bound(N, &p), la = 0, lb = 0, lc = 0;
        uint8_t *a = malloc(cap), *b = malloc(cap), *c = malloc(cap);
        sfp_qstats sa, sb;
        CHECK_EQ_INT(sfp_quantize(q, x, N, &p, NULL), 0);
        CHECK_EQ_INT(sfp_encode(q, N, &p, a, cap, &la, NULL), 0);
        CHECK_EQ_INT(sfp_encode(x, N, &p, b, cap, &lb, &sb), 0);
        CHECK(la == lb && memcmp(a, b, la) == 0);
        CHECK(b[11] & SFP_FLAG_ZMAP);
        CHECK(sb.zeros > N / 2 && sb.flushed == sb.zeros); /* statistics of x */
        memcpy(y, x, sizeof(y));
        CHECK_EQ_INT(sfp_encode_q(y, N, &p, c, cap, &lc, &sa, y), 0);
        CHECK(la == lc && memcmp(a, c, la) == 0);
        CHECK(memcmp(y, q, sizeof(y)) == 0);
        CHECK(sa.zeros == sb.zeros && sa.flushed == sb.flushed && sa.anchor == sb.anchor);
        free(a), free(b), free(c);
    }
}

/*
 * sfp__plan_zeros counts the zeros of the quantized tensor from the raw
 * values (the encoder's one-pass zero-map decision): equal to the zeros of
 * sfp_quantize's output for every width, RNE and truncation, both dtypes,
 * with magnitudes on both sides of the flush limit; and a frame of the raw
 * values equals the frame of the quantized ones.
 */
static void test_plan_zeros(void)
{
    enum { N = 3000 };
    static float x[N], q[N];
    static uint16_t xb[N], qb[N];
    trng r = {91};
    for (int t = 0; t < 400; t++) {
        const unsigned k = t % 5 == 0 ? 23 : (unsigned)(trng_next(&r) % 8);
        const unsigned e = 1 + (unsigned)(trng_next(&r) % 8);
        const sfp_dtype dt = t % 3 == 2 ? SFP_DTYPE_BF16 : SFP_DTYPE_F32;
        const unsigned kk = dt == SFP_DTYPE_BF16 && k > 7 ? 7 : k;
        sfp_params p = params(dt, kk, e, SFP_CODER_GECKO);
        p.rounding = t & 1 ? SFP_ROUND_TRUNC : SFP_ROUND_RNE;
        p.zmap = t & 2 ? SFP_ZMAP_HUFFMAN : SFP_ZMAP_BITMAP;
        if (t % 7 == 3)
            p.anchor = 120 + (int)(trng_next(&r) % 10);
        const size_t n = 1 + trng_next(&r) % N;
        /* one value at 1.0 fixes the auto anchor near 127; the others
         * spread over 2^-40..2^1, some next to the flush limit (minE's
         * smallest magnitude minus half a step, +-1 ulp), some zero */
        const int minE = 127 - (1 << e) + 2 > 0 ? 127 - (1 << e) + 2 : 0;
        const uint32_t g = kk == 23 ? 0 : 1u << (23 - kk);
        for (size_t i = 0; i < n; i++) {
            uint32_t u = trng_next(&r);
            float v;
            if (i == 0)
                v = 1.0f;
            else if (u % 5 == 0)
                v = 0.0f;
            else if (u % 5 == 1 && minE > 0) {
                uint32_t b = ((uint32_t)minE << 23) - g / 2 + (u >> 8) % 3 - 1;
                memcpy(&v, &b, 4);
            } else
                v = (float)pow(2.0, -40.0 * trng_unit(&r) + 1.0);
            if (u & 0x80000000u)
                v = -v;
            x[i] = v;
        }
        const void *src = x;
        void *dst = q;
        if (dt == SFP_DTYPE_BF16) {
            for (size_t i = 0; i < n; i++) {
                uint32_t b;
                memcpy(&b, &x[i], 4);
                xb[i] = (uint16_t)(b >> 16);
            }
            src = xb, dst = qb;
        }
        sfp__plan pl;
        CHECK_EQ_INT(sfp__plan_scan(&pl, &p, src, n), 0);
        CHECK_EQ_INT(sfp_quantize(dst, src, n, &p, NULL), 0);
        uint64_t zeros = 0;
        for (size_t i = 0; i < n; i++)
            zeros += dt == SFP_DTYPE_F32 ? (q[i] == 0.0f) : ((qb[i] & 0x7fffu) == 0);
        CHECK_EQ_INT(sfp__plan_zeros(&pl, src, n, dt), zeros);
        size_t cap = sfp_frame_bound(n, &p), la = 0, lb = 0;
        uint8_t *a = malloc(cap), *b = malloc(cap);
        CHECK_EQ_INT(sfp_encode(src, n, &p, a, cap, &la, NULL), 0);
        CHECK_EQ_INT(sfp_encode(dst, n, &p, b, cap, &lb, NULL), 0);
        CHECK(la == lb && memcmp(a, b, la) == 0);
        free(a), free(b);
    }
}

/*
 * Large tensors decide the zero map on a sample (every SFP__ZEROS_STRIDE-th
 * value) and pass 2 corrects a wrong guess: the sample here sees only
 * flushed values (guess: map) while the whole has too few zeros for one,
 * and the other way round. Either way the frame equals the frame of the
 * quantized values (whose zeros pass 1 knows exactly).
 */
static void test_zmap_sampled(void)
{
    enum { N = 200000 };
    static float x[N], q[N];
    trng r = {17};
    for (int way = 0; way < 4; way++) {
        const int guess_yes = way & 1;
        for (size_t i = 0; i < N; i++) {
            const int sampled = i % SFP__ZEROS_STRIDE == 0;
            const double u = trng_unit(&r);
            if (i == 1)
                x[i] = 1.0f;
            else if (guess_yes)
                x[i] = sampled ? 1e-30f : u < 0.30 ? 0.0f : 0.5f + (float)u / 2;
            else
                x[i] = sampled ? 1.0f : u < 0.20 ? 0.0f : u < 0.37 ? 1e-30f : 0.5f + (float)u / 2;
        }
        sfp_params p = params(SFP_DTYPE_F32, 2, 3, SFP_CODER_GECKO);
        p.zmap = way & 2 ? SFP_ZMAP_HUFFMAN : SFP_ZMAP_BITMAP;
        size_t cap = sfp_frame_bound(N, &p), la = 0, lb = 0;
        uint8_t *a = malloc(cap), *b = malloc(cap);
        CHECK_EQ_INT(sfp_quantize(q, x, N, &p, NULL), 0);
        CHECK_EQ_INT(sfp_encode(x, N, &p, a, cap, &la, NULL), 0);
        CHECK_EQ_INT(sfp_encode(q, N, &p, b, cap, &lb, NULL), 0);
        CHECK(la == lb && memcmp(a, b, la) == 0);
        size_t zeros = 0;
        for (size_t i = 0; i < N; i++)
            zeros += q[i] == 0.0f;
        const int pays = zeros * 3 * 64 > (size_t)N * 65;
        CHECK_EQ_INT(pays, !guess_yes); /* the sample guessed wrong */
        CHECK_EQ_INT((a[11] & SFP_FLAG_ZMAP) != 0, pays);
        free(a), free(b);
    }
}

/*
 * rANS with 32 states (FORMAT 2.5, from SFP__RANS_WIDE_MIN codes on): the
 * header says so (byte 10 = 32, info reports 32 states), frames decode to
 * the quantized values under every kernel set, one code fewer keeps two
 * states; corrupt states, words and the states field are refused, and
 * every single bit flip in the plane (re-checksummed) decodes or is
 * refused (never a crash or an out-of-bounds access, which asan checks).
 */
static void test_rans_wide(void)
{
    const size_t ns[] = {SFP__RANS_WIDE_MIN - 1, SFP__RANS_WIDE_MIN, SFP__RANS_WIDE_MIN + 33,
                         100003};
    trng r = {23};
    for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++) {
        const size_t n = ns[a];
        float *x = malloc(n * 4), *y = malloc(n * 4), *q = malloc(n * 4);
        for (size_t i = 0; i < n; i++)
            x[i] = a == 3 && i % 3 == 0 ? 0.0f : trng_gauss(&r) * 0.05f;
        for (unsigned e = 1; e <= 8; e++) {
            sfp_params p = params(SFP_DTYPE_F32, e % 4, e, SFP_CODER_RANS);
            p.rounding = (sfp_rounding)(e % 3);
            p.seed = e;
            size_t cap = sfp_frame_bound(n, &p), len = 0, got = 0;
            uint8_t *f = malloc(cap);
            CHECK_EQ_INT(sfp_encode(x, n, &p, f, cap, &len, NULL), 0);
            CHECK_EQ_INT(sfp_quantize(q, x, n, &p, NULL), 0);
            sfp_frame_info fi;
            CHECK_EQ_INT(sfp_frame_parse(f, len, &fi), 0);
            if (fi.coder != SFP_CODER_RANS) { /* plain codes were not larger */
                free(f);
                continue;
            }
            const unsigned nst = n >= SFP__RANS_WIDE_MIN ? 32 : 2;
            CHECK_EQ_INT(fi.gecko_group, nst == 32 ? 32 : 0);
            CHECK_EQ_INT(f[10], nst == 32 ? 32 : 0);
            static const sfp_impl impls[] = {SFP_IMPL_C, SFP_IMPL_AVX2, SFP_IMPL_AVX512};
            for (int m = 0; m < 3; m++) {
                if (sfp_set_impl(impls[m]) != 0)
                    continue;
                memset(y, 0xff, n * 4);
                CHECK_EQ_INT(sfp_decode(f, len, y, n * 4, &got), 0);
                CHECK(got == n && memcmp(y, q, n * 4) == 0);
                size_t l2 = 0;
                uint8_t *f2 = malloc(cap);
                CHECK_EQ_INT(sfp_encode(x, n, &p, f2, cap, &l2, NULL), 0);
                CHECK(l2 == len && memcmp(f2, f, len) == 0);
                free(f2);
            }
            sfp_set_impl(SFP_IMPL_AUTO);
            if (nst == 32 && e == 4) {
                const size_t off_exp = 64 + fi.sign_bytes + fi.mant_bytes + fi.zmap_bytes;
                /* presence bitmap (2 bytes at e = 4), frequencies, states */
                const unsigned present = (unsigned)__builtin_popcount(f[off_exp]) +
                                         (unsigned)__builtin_popcount(f[off_exp + 1]);
                const size_t off_st = off_exp + 2 + 2 * present;
                for (unsigned l = 0; l < 32; l++) /* the decoder's start: at least L */
                    CHECK(sfp__load32le(f + off_st + 4 * l) >= SFP__RANS_L);
                uint8_t *g = malloc(len);
                /* each state word changed: the final states are not L */
                for (unsigned l = 0; l < 32; l++) {
                    memcpy(g, f, len);
                    g[off_st + 4 * l + 1] ^= 0x10;
                    sfp__store64le(g + len - 8, sfp_checksum(g, len - 8));
                    CHECK_EQ_INT(sfp_decode(g, len, y, n * 4, NULL), SFP_ECORRUPT);
                }
                /* a state below L */
                memcpy(g, f, len);
                sfp__store32le(g + off_st + 4 * 7, SFP__RANS_L - 1);
                sfp__store64le(g + len - 8, sfp_checksum(g, len - 8));
                CHECK_EQ_INT(sfp_decode(g, len, y, n * 4, NULL), SFP_ECORRUPT);
                /* read as two states, or with a states field that is not one */
                memcpy(g, f, len);
                g[10] = 0;
                sfp__store64le(g + len - 8, sfp_checksum(g, len - 8));
                CHECK_EQ_INT(sfp_decode(g, len, y, n * 4, NULL), SFP_ECORRUPT);
                for (unsigned v = 1; v < 256; v++) {
                    if (v == 32)
                        continue;
                    g[10] = (uint8_t)v;
                    CHECK_EQ_INT(sfp_decode(g, len, y, n * 4, NULL), SFP_EHEADER);
                }
                /* every bit of the first 200 bytes of the plane and of its
                 * last 64, under each kernel set */
                int accepted = 0, tried = 0;
                for (size_t i = off_exp; i < len - 8; i++) {
                    if (i >= off_exp + 200 && i < len - 8 - 64)
                        continue;
                    for (int b = 0; b < 8; b++) {
                        memcpy(g, f, len);
                        g[i] ^= (uint8_t)(1u << b);
                        sfp__store64le(g + len - 8, sfp_checksum(g, len - 8));
                        if (sfp_set_impl(impls[(i + (size_t)b) % 3]) != 0)
                            sfp_set_impl(SFP_IMPL_C);
                        int rc = sfp_decode(g, len, y, n * 4, NULL);
                        CHECK(rc == 0 || rc == SFP_ECORRUPT);
                        accepted += rc == 0;
                        tried++;
                    }
                }
                sfp_set_impl(SFP_IMPL_AUTO);
                printf("rANS x32 plane bit flips accepted after re-checksumming: %d of %d\n",
                       accepted, tried);
                free(g);
            }
            free(f);
        }
        free(x), free(y), free(q);
    }
}

int main(void)
{
    test_vocabulary();
    test_vectors();
    test_stochastic();
    test_roundtrip_all_widths();
    test_full_width();
    test_gecko_adversarial();
    test_gecko_exact_buffer();
    test_size_formula();
    test_hostile();
    test_rans_division();
    test_rans_hostile();
    test_forbidden();
    test_rans_smallest();
    test_coder_auto();
    test_ratios();
    test_zhuf();
    test_flush_zmap();
    test_plan_zeros();
    test_zmap_sampled();
    test_rans_wide();
    return check_report("test_codec");
}
