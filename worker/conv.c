/* conv.c - 2-D convolution; see kernels.h. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "hot.h"
#include "kernels.h"
#include "conv_kernels.h"


/* ------------------------------------------------------ implementation */

static int impl = -1; /* 1: the AVX2 stride-1 kernels, 0: im2col + GEMM */

static int use_fast(void)
{
    if (impl < 0) {
        const char *e = getenv("SFPW_CONV");
#if HAVE_AVX2 && defined(__x86_64__) && defined(__GNUC__)
        __builtin_cpu_init();
        impl = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               !(e && !strcmp(e, "c"));
#else
        (void)e;
        impl = 0;
#endif
    }
    return impl;
}

int sfpw_simd_fast(void)
{
    return use_fast();
}

int sfpw_conv_set_impl(int fast)
{
    impl = -1;
    if (fast && use_fast())
        return 1;
    impl = 0;
    return 0;
}

void sfpw_conv_shape_init(sfpw_conv_shape *s, int c, int h, int w, int oc,
                          int k, int pad, int stride)
{
    s->c = c;
    s->h = h;
    s->w = w;
    s->oc = oc;
    s->k = k;
    s->pad = pad;
    s->stride = stride;
    s->oh = (h + 2 * pad - k) / stride + 1;
    s->ow = (w + 2 * pad - k) / stride + 1;
}

/* Output pixels per GEMM: enough columns that the packing of the kernel
 * and the call overhead are paid once for many images. */
#define GROUP_PIXELS 1024

static int group_of(int pixels)
{
    int g = (GROUP_PIXELS + pixels - 1) / pixels;
    return g < 1 ? 1 : g;
}

/* The transposed convolution computing dX of a stride-1 convolution: over
 * dY (OC channels, OH x OW), kernel flipped, padding k - 1 - pad. */
static int transposed(const sfpw_conv_shape *s, sfpw_conv_shape *t)
{
    if (s->stride != 1 || s->pad > s->k - 1)
        return 0;
    sfpw_conv_shape_init(t, s->oc, s->oh, s->ow, s->c, s->k, s->k - 1 - s->pad, 1);
    return t->oh == s->h && t->ow == s->w;
}

/* ------------------------------------------- stride 1: no im2col copy */

/* floats of one zero-padded image of c channels, with read slack */
static size_t padded(int c, int hp, int wp)
{
    return (size_t)c * hp * wp + 64;
}

static size_t fast_scratch(const sfpw_conv_shape *s)
{
    const int K = s->k, P = s->pad, hp = s->h + 2 * P, wp = s->w + 2 * P;
    const int q = K - 1 - P, hq = s->oh + 2 * q, wq = s->ow + 2 * q;
    const size_t ckk = (size_t)s->c * K * K, okk = (size_t)s->oc * K * K;
    const size_t np8 = ((size_t)s->oh * wp + 7) / 8 * 8;
    return padded(s->c, hp, wp) + (size_t)s->oc * np8 + 64 + padded(s->oc, hq, wq) +
           ckk + okk + ((size_t)s->oc + 15) / 16 * 16 * ckk + ((size_t)s->c + 15) / 16 * 16 * okk +
           64;
}

static int fast_ok(const sfpw_conv_shape *s)
{
    return s->stride == 1 && s->pad <= s->k - 1 && use_fast();
}

#if HAVE_AVX2
/* the next 64-byte boundary at or after p (aligned loads of packed A) */
static float *align64(float *p)
{
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* dst[c][P + y][P + x] = src[c][y][x], zero around and in the slack */
SFPW_HOT
static void pad_image(const float *src, int C, int H, int W, int P, float *dst)
{
    const int hp = H + 2 * P, wp = W + 2 * P;
    memset(dst, 0, sizeof(float) * padded(C, hp, wp));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++) {
            const float *s = src + ((size_t)c * H + y) * W;
            float *d = dst + ((size_t)c * hp + P + y) * wp + P;
            for (int x = 0; x < W; x++)
                d[x] = s[x];
        }
}

/* koff[(c*K+ki)*K+kj] = c*Hp*Wp + ki*Wp + kj */
static void tap_offsets(int C, int K, int hp, int wp, int *koff)
{
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++)
                koff[(c * K + ki) * K + kj] = (c * hp + ki) * wp + kj;
}

/* rows of A a micro-kernel takes at once: 16 (channels in the vector)
 * when M allows, else 4 */
static int rows_of(int M)
{
    return M % 16 == 0 ? 16 : 4;
}

/*
 * Apack[m/R][k][m%R] = A(m, k) for m < M (zero rows up to a multiple of R,
 * R = rows_of(M)); A(m, k) = W[m][k], or with flip the transposed, flipped
 * kernel: W[oc][c][K-1-ki][K-1-kj] for m = c, k = (oc*K+ki)*K+kj.
 */
static void pack_weights(const sfpw_conv_shape *s, const float *W, int flip, float *Apack)
{
    const int K = s->k, KK = K * K, ckk = s->c * KK;
    const int M = flip ? s->c : s->oc, Kd = flip ? s->oc * KK : ckk, R = rows_of(M);
    const int Mp = (M + R - 1) / R * R;
    for (int m = 0; m < Mp; m++)
        for (int k = 0; k < Kd; k++) {
            float v = 0;
            if (m < M && !flip)
                v = W[(size_t)m * ckk + k];
            else if (m < M)
                v = W[(size_t)(k / KK) * ckk + (size_t)m * KK + (KK - 1 - k % KK)];
            Apack[((size_t)(m / R) * Kd + k) * R + m % R] = v;
        }
}

static void igemm(int M, int K, int np, int wp, int ow, const float *Apack, const float *src,
                  const int *koff, const float *bias, int relu, int add, float *y, size_t ldy)
{
    if (rows_of(M) == 16)
        sfpw_conv_igemm16_avx2(M, K, np, wp, ow, Apack, src, koff, bias, relu, add, y, ldy);
    else
        sfpw_conv_igemm_avx2(M, K, np, wp, ow, Apack, src, koff, bias, relu, add, y, ldy);
}

static void fast_fwd(const sfpw_conv_shape *s, const float *X, const float *W, const float *b,
                     float *Y, int B, int relu, float *scratch)
{
    const int K = s->k, P = s->pad, hp = s->h + 2 * P, wp = s->w + 2 * P;
    const int ckk = s->c * K * K;
    float *xp = scratch, *Apack = align64(xp + padded(s->c, hp, wp));
    int *koff = (int *)(void *)(Apack + ((size_t)s->oc + 15) / 16 * 16 * ckk);
    pack_weights(s, W, 0, Apack);
    tap_offsets(s->c, K, hp, wp, koff);
    const size_t in_sz = (size_t)s->c * s->h * s->w, out_sz = (size_t)s->oc * s->oh * s->ow;
    for (int i = 0; i < B; i++) {
        pad_image(X + i * in_sz, s->c, s->h, s->w, P, xp);
        igemm(s->oc, ckk, s->oh * wp, wp, s->ow, Apack, xp, koff, b, relu, 0, Y + i * out_sz,
              (size_t)s->oh * s->ow);
    }
}

/* dY of one image in the padded width, zero where ox >= ow: [OC][np8],
 * or with t transposed to [np8][OC] */
SFPW_HOT
static void widen(const float *dy, int OC, int OH, int OW, int wp, size_t np8, int t, float *dst)
{
    memset(dst, 0, sizeof(float) * (OC * np8 + 64));
#if HAVE_AVX2
    if (t && OC % 8 == 0 && use_fast()) {
        sfpw_widen_t_avx2(dy, OC, OH, OW, wp, dst);
        return;
    }
#endif
    for (int o = 0; o < OC; o++)
        for (int y = 0; y < OH; y++) {
            const float *s = dy + ((size_t)o * OH + y) * OW;
            if (t)
                for (int x = 0; x < OW; x++)
                    dst[((size_t)y * wp + x) * OC + o] = s[x];
            else
                for (int x = 0; x < OW; x++)
                    dst[o * np8 + (size_t)y * wp + x] = s[x];
        }
}

static void fast_bwd(const sfpw_conv_shape *s, const float *X, const float *W, const float *dY,
                     float *dX, int dx_rows, int dx_add, float *dW, float *db, int B,
                     float *scratch)
{
    const int K = s->k, P = s->pad, hp = s->h + 2 * P, wp = s->w + 2 * P;
    const int q = K - 1 - P, hq = s->oh + 2 * q, wq = s->ow + 2 * q;
    const int ckk = s->c * K * K, okk = s->oc * K * K;
    const size_t np8 = ((size_t)s->oh * wp + 7) / 8 * 8;
    float *xp = scratch, *dyw = align64(xp + padded(s->c, hp, wp));
    float *dyq = dyw + s->oc * np8 + 64, *A2 = align64(dyq + padded(s->oc, hq, wq));
    int *koff = (int *)(void *)(A2 + ((size_t)s->c + 15) / 16 * 16 * okk), *koff2 = koff + ckk;
    tap_offsets(s->c, K, hp, wp, koff);
    if (dX && dx_rows > 0) {
        pack_weights(s, W, 1, A2);
        tap_offsets(s->oc, K, hq, wq, koff2);
    }
    const size_t in_sz = (size_t)s->c * s->h * s->w, hw = (size_t)s->oh * s->ow;
    const size_t out_sz = (size_t)s->oc * hw;
    for (int i = 0; i < B; i++) {
        const float *dy = dY + i * out_sz;
        if (db)
            for (int o = 0; o < s->oc; o++)
                db[o] += (float)sfpw_sum(dy + o * hw, hw);
        pad_image(X + i * in_sz, s->c, s->h, s->w, P, xp);
        const int t16 = s->oc % 16 == 0;
        widen(dy, s->oc, s->oh, s->ow, wp, np8, t16, dyw);
        if (t16)
            sfpw_conv_wgrad16_avx2(s->oc, ckk, (int)np8, dyw, xp, koff, dW, (size_t)ckk);
        else
            sfpw_conv_wgrad_avx2(s->oc, ckk, (int)np8, dyw, np8, xp, koff, dW, (size_t)ckk);
        if (dX && i < dx_rows) {
            pad_image(dy, s->oc, s->oh, s->ow, q, dyq);
            igemm(s->c, okk, s->h * wq, wq, s->w, A2, dyq, koff2, NULL, 0, dx_add,
                  dX + i * in_sz, (size_t)s->h * s->w);
        }
    }
}
#endif

/* ------------------------------------------ any stride: im2col + GEMM */

size_t sfpw_conv_scratch(const sfpw_conv_shape *s)
{
    const size_t ckk = (size_t)s->c * s->k * s->k, okk = (size_t)s->oc * s->k * s->k;
    const size_t po = (size_t)group_of(s->oh * s->ow) * s->oh * s->ow;
    const size_t pi = (size_t)group_of(s->oh * s->ow) * s->h * s->w;
    /* forward: col + out; backward: col + dY gathered + (dcol + dX group,
     * or the transposed conv's col and output) + the flipped kernel */
    size_t fwd = ckk * po + (size_t)s->oc * po;
    size_t bwd = ckk * po + (size_t)s->oc * po + ckk * po + okk * pi + (size_t)s->c * pi + ckk * s->oc;
    size_t gemm = fwd > bwd ? fwd : bwd, fast = fast_scratch(s);
    return gemm > fast ? gemm : fast;
}

/*
 * Columns of image x into col, row stride ld:
 * col[(c*k+ki)*k+kj][oy*ow+ox] = x[c][oy*S+ki-pad][ox*S+kj-pad] (0 outside).
 */
SFPW_HOT
static void im2col(const sfpw_conv_shape *s, const float *x, float *col, size_t ld)
{
    const int K = s->k, P = s->pad, S = s->stride, OH = s->oh, OW = s->ow;
    for (int c = 0; c < s->c; c++) {
        const float *xc = x + (size_t)c * s->h * s->w;
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++) {
                float *row = col + (size_t)((c * K + ki) * K + kj) * ld;
                /* ox with 0 <= ox*S + kj - P < w */
                int lo = P - kj > 0 ? (P - kj + S - 1) / S : 0;
                int hi = (s->w - 1 + P - kj) / S + 1;
                if (s->w - 1 + P - kj < 0)
                    hi = 0;
                hi = hi < OW ? hi : OW;
                lo = lo < hi ? lo : hi;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * S + ki - P;
                    float *dst = row + (size_t)oy * OW;
                    /* short rows: loops, not calls */
                    if (iy < 0 || iy >= s->h) {
                        for (int ox = 0; ox < OW; ox++)
                            dst[ox] = 0.0f;
                        continue;
                    }
                    const float *src = xc + (size_t)iy * s->w + kj - P;
                    for (int ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (S == 1)
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = src[ox];
                    else
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = src[ox * S];
                    for (int ox = hi; ox < OW; ox++)
                        dst[ox] = 0.0f;
                }
            }
    }
}

/* x (+)= the columns of one image summed back (the adjoint of im2col) */
SFPW_HOT
static void col2im(const sfpw_conv_shape *s, const float *col, size_t ld, float *x, int add)
{
    const int K = s->k, P = s->pad, S = s->stride, OH = s->oh, OW = s->ow;
    if (!add)
        memset(x, 0, sizeof(float) * s->c * s->h * s->w);
    for (int c = 0; c < s->c; c++) {
        float *xc = x + (size_t)c * s->h * s->w;
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++) {
                const float *row = col + (size_t)((c * K + ki) * K + kj) * ld;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * S + ki - P;
                    if (iy < 0 || iy >= s->h)
                        continue;
                    const float *src = row + (size_t)oy * OW;
                    float *dst = xc + (size_t)iy * s->w;
                    for (int ox = 0; ox < OW; ox++) {
                        int ix = ox * S + kj - P;
                        if (ix >= 0 && ix < s->w)
                            dst[ix] += src[ox];
                    }
                }
            }
    }
}

/* y[g][o][p] (+)= t[o][g*hw + p] (+ b[o]), ReLU if relu, for g < G */
SFPW_HOT
static void scatter(const float *t, int O, int G, size_t hw, const float *b, int relu,
                    float *y, int add)
{
    const size_t ld = (size_t)G * hw;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < O; o++) {
            sfpw_conv_row(y + ((size_t)g * O + o) * hw, t + (size_t)o * ld + (size_t)g * hw,
                          hw, b ? b[o] : 0.0f, relu, add);
        }
}

void sfpw_conv_fwd(const sfpw_conv_shape *s, const float *X, const float *W,
                   const float *b, float *Y, int B, int relu, float *scratch)
{
#if HAVE_AVX2
    if (fast_ok(s)) {
        fast_fwd(s, X, W, b, Y, B, relu, scratch);
        return;
    }
#endif
    const int CKK = s->c * s->k * s->k;
    const size_t hw = (size_t)s->oh * s->ow, in_sz = (size_t)s->c * s->h * s->w;
    const int G = group_of((int)hw);
    for (int i0 = 0; i0 < B; i0 += G) {
        const int g = B - i0 < G ? B - i0 : G;
        const size_t ld = (size_t)g * hw;
        float *col = scratch, *out = scratch + (size_t)CKK * ld;
        for (int j = 0; j < g; j++)
            im2col(s, X + (size_t)(i0 + j) * in_sz, col + j * hw, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->oc, (int)ld, CKK, 1.0f, W,
                    CKK, col, (int)ld, 0.0f, out, (int)ld);
        scatter(out, s->oc, g, hw, b, relu, Y + (size_t)i0 * s->oc * hw, 0);
    }
}

void sfpw_conv_bwd(const sfpw_conv_shape *s, const float *X, const float *W,
                   const float *dY, float *dX, int dx_rows, int dx_add,
                   float *dW, float *db, int B, float *scratch)
{
#if HAVE_AVX2
    if (fast_ok(s)) {
        fast_bwd(s, X, W, dY, dX, dx_rows, dx_add, dW, db, B, scratch);
        return;
    }
#endif
    const int K = s->k, CKK = s->c * K * K, OKK = s->oc * K * K;
    const size_t hw = (size_t)s->oh * s->ow, ihw = (size_t)s->h * s->w;
    const size_t in_sz = (size_t)s->c * ihw, out_sz = (size_t)s->oc * hw;
    const int G = group_of((int)hw);
    sfpw_conv_shape t;
    const int flip = dX && dx_rows > 0 && transposed(s, &t);
    float *col = scratch, *dyt = col + (size_t)CKK * G * hw, *rest = dyt + (size_t)s->oc * G * hw;
    float *wt = rest + (flip ? (size_t)OKK * G * ihw + (size_t)s->c * G * ihw : (size_t)CKK * G * hw);
    if (flip) /* wt[c][(o*K+ki)*K+kj] = W[o][c][K-1-ki][K-1-kj] */
        for (int o = 0; o < s->oc; o++)
            for (int c = 0; c < s->c; c++)
                for (int q = 0; q < K * K; q++)
                    wt[(size_t)c * OKK + (size_t)o * K * K + q] =
                        W[(size_t)o * CKK + (size_t)c * K * K + (K * K - 1 - q)];
    for (int i0 = 0; i0 < B; i0 += G) {
        const int g = B - i0 < G ? B - i0 : G;
        const size_t ld = (size_t)g * hw;
        /* dY of the group as [OC, g*hw], and db */
        for (int j = 0; j < g; j++)
            for (int o = 0; o < s->oc; o++) {
                const float *src = dY + (size_t)(i0 + j) * out_sz + (size_t)o * hw;
                memcpy(dyt + (size_t)o * ld + j * hw, src, sizeof(float) * hw);
                if (db)
                    db[o] += (float)sfpw_sum(src, hw);
            }
        for (int j = 0; j < g; j++)
            im2col(s, X + (size_t)(i0 + j) * in_sz, col + j * hw, ld);
        /* dW[OC, CKK] += dY[OC, ld] col^T[ld, CKK] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->oc, CKK, (int)ld, 1.0f, dyt,
                    (int)ld, col, (int)ld, 1.0f, dW, CKK);
        const int gx = dx_rows - i0 < g ? dx_rows - i0 : g;
        if (!dX || gx <= 0)
            continue;
        if (flip) {
            /* dX = conv(dY, flipped W^T): columns of dY, GEMM over OC*k*k */
            const size_t ldi = (size_t)gx * ihw;
            float *dcol = rest, *out = rest + (size_t)OKK * ldi;
            for (int j = 0; j < gx; j++)
                im2col(&t, dY + (size_t)(i0 + j) * out_sz, dcol + j * ihw, ldi);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->c, (int)ldi, OKK, 1.0f, wt,
                        OKK, dcol, (int)ldi, 0.0f, out, (int)ldi);
            scatter(out, s->c, gx, ihw, NULL, 0, dX + (size_t)i0 * in_sz, dx_add);
        } else {
            /* dcol[CKK, ld] = W^T[CKK, OC] dY[OC, ld], summed back per image */
            float *dcol = rest;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, (int)ld, s->oc, 1.0f, W,
                        CKK, dyt, (int)ld, 0.0f, dcol, (int)ld);
            for (int j = 0; j < gx; j++)
                col2im(s, dcol + j * hw, ld, dX + (size_t)(i0 + j) * in_sz, dx_add);
        }
    }
}
