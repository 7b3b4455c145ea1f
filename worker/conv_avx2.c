/*
 * conv_avx2.c - the micro-kernels of the stride-1 convolution (conv.c),
 * compiled with -mavx2 -mfma and called only where the CPU has both.
 *
 * Both read the input through a table of offsets instead of an im2col
 * copy: with the input zero-padded to Hp x Wp and outputs numbered in the
 * padded width (p = oy * Wp + ox), the value under kernel tap k of output
 * p is src[koff[k] + p], koff[k] = c*Hp*Wp + ki*Wp + kj. Columns
 * ox >= OW of that numbering are computed and dropped.
 */
#include <immintrin.h>
#include <string.h>

#include "conv_kernels.h"

#define MR 4
#define NR 24

/*
 * out[m][p] = sum_k A[m][k] src[koff[k] + p] for m < M (A packed as
 * [M/MR][K][MR]), p in [0, np); src readable up to koff[K-1] + np + NR.
 * The epilogue keeps the columns ox < ow of rows of width wp, adds bias,
 * applies ReLU or adds onto y (row m at y + m * ldy, pixel oy*ow + ox).
 */
void sfpw_conv_igemm_avx2(int M, int K, int np, int wp, int ow, const float *Apack,
                          const float *src, const int *koff, const float *bias, int relu,
                          int add, float *y, size_t ldy)
{
    float tile[MR][NR];
    for (int m0 = 0; m0 < M; m0 += MR) {
        const float *A = Apack + (size_t)m0 * K;
        const int mr = M - m0 < MR ? M - m0 : MR;
        for (int p0 = 0; p0 < np; p0 += NR) {
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00,
                   c12 = c00, c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
            const float *s = src + p0;
            for (int k = 0; k < K; k++) {
                const float *b = s + koff[k];
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8),
                       b2 = _mm256_loadu_ps(b + 16);
                const float *a = A + (size_t)k * MR;
                __m256 a0 = _mm256_broadcast_ss(a);
                c00 = _mm256_fmadd_ps(a0, b0, c00);
                c01 = _mm256_fmadd_ps(a0, b1, c01);
                c02 = _mm256_fmadd_ps(a0, b2, c02);
                __m256 a1 = _mm256_broadcast_ss(a + 1);
                c10 = _mm256_fmadd_ps(a1, b0, c10);
                c11 = _mm256_fmadd_ps(a1, b1, c11);
                c12 = _mm256_fmadd_ps(a1, b2, c12);
                __m256 a2 = _mm256_broadcast_ss(a + 2);
                c20 = _mm256_fmadd_ps(a2, b0, c20);
                c21 = _mm256_fmadd_ps(a2, b1, c21);
                c22 = _mm256_fmadd_ps(a2, b2, c22);
                __m256 a3 = _mm256_broadcast_ss(a + 3);
                c30 = _mm256_fmadd_ps(a3, b0, c30);
                c31 = _mm256_fmadd_ps(a3, b1, c31);
                c32 = _mm256_fmadd_ps(a3, b2, c32);
            }
            _mm256_storeu_ps(tile[0], c00);
            _mm256_storeu_ps(tile[0] + 8, c01);
            _mm256_storeu_ps(tile[0] + 16, c02);
            _mm256_storeu_ps(tile[1], c10);
            _mm256_storeu_ps(tile[1] + 8, c11);
            _mm256_storeu_ps(tile[1] + 16, c12);
            _mm256_storeu_ps(tile[2], c20);
            _mm256_storeu_ps(tile[2] + 8, c21);
            _mm256_storeu_ps(tile[2] + 16, c22);
            _mm256_storeu_ps(tile[3], c30);
            _mm256_storeu_ps(tile[3] + 8, c31);
            _mm256_storeu_ps(tile[3] + 16, c32);
            /* epilogue: the tile's valid pixels, one output row at a time */
            const int pend = p0 + NR < np ? p0 + NR : np;
            int p = p0, oy = p0 / wp, ox = p0 - oy * wp;
            while (p < pend) {
                int run = wp - ox; /* pixels left in this padded row */
                if (run > pend - p)
                    run = pend - p;
                int keep = ox < ow ? (ow - ox < run ? ow - ox : run) : 0;
                for (int i = 0; i < mr; i++) {
                    sfpw_conv_row(y + (size_t)(m0 + i) * ldy + (size_t)oy * ow + ox,
                                  tile[i] + (p - p0), (size_t)keep,
                                  bias ? bias[m0 + i] : 0.0f, relu, add);
                }
                p += run;
                ox += run;
                if (ox == wp) {
                    ox = 0;
                    oy++;
                }
            }
        }
    }
}

/* the 16 x 6 accumulators c{0..5}{l,h} into float tile[6][16] */
#define STORE16(tile)                                                      \
    do {                                                                   \
        _mm256_storeu_ps(tile[0], c0l), _mm256_storeu_ps(tile[0] + 8, c0h); \
        _mm256_storeu_ps(tile[1], c1l), _mm256_storeu_ps(tile[1] + 8, c1h); \
        _mm256_storeu_ps(tile[2], c2l), _mm256_storeu_ps(tile[2] + 8, c2h); \
        _mm256_storeu_ps(tile[3], c3l), _mm256_storeu_ps(tile[3] + 8, c3h); \
        _mm256_storeu_ps(tile[4], c4l), _mm256_storeu_ps(tile[4] + 8, c4h); \
        _mm256_storeu_ps(tile[5], c5l), _mm256_storeu_ps(tile[5] + 8, c5h); \
    } while (0)

/* c{j}{l,h} += A rows (al, ah) times the broadcast of src value b[j] */
#define FMA16(j, bj)                                                       \
    do {                                                                   \
        __m256 v_ = _mm256_broadcast_ss(bj);                               \
        c##j##l = _mm256_fmadd_ps(al, v_, c##j##l);                        \
        c##j##h = _mm256_fmadd_ps(ah, v_, c##j##h);                        \
    } while (0)

/*
 * The same product with the output channels in the vector: M a multiple
 * of 16, A packed as [M/16][K][16]; a tile is 16 channels x 6 pixels, so
 * every load is an aligned 16-channel row of A or a 4-byte broadcast of a
 * pixel (no loads that split cache lines).
 */
void sfpw_conv_igemm16_avx2(int M, int K, int np, int wp, int ow, const float *Apack,
                            const float *src, const int *koff, const float *bias, int relu,
                            int add, float *y, size_t ldy)
{
    float tile[6][16];
    for (int m0 = 0; m0 < M; m0 += 16) {
        const float *A = Apack + (size_t)m0 * K;
        for (int p0 = 0; p0 < np; p0 += 6) {
            __m256 c0l = _mm256_setzero_ps(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l,
                   c2h = c0l, c3l = c0l, c3h = c0l, c4l = c0l, c4h = c0l, c5l = c0l, c5h = c0l;
            const float *s = src + p0;
            for (int k = 0; k < K; k++) {
                const float *b = s + koff[k];
                const __m256 al = _mm256_load_ps(A + (size_t)k * 16),
                             ah = _mm256_load_ps(A + (size_t)k * 16 + 8);
                FMA16(0, b);
                FMA16(1, b + 1);
                FMA16(2, b + 2);
                FMA16(3, b + 3);
                FMA16(4, b + 4);
                FMA16(5, b + 5);
            }
            STORE16(tile);
            const int pend = p0 + 6 < np ? p0 + 6 : np;
            for (int p = p0; p < pend; p++) {
                int oy = p / wp, ox = p - oy * wp;
                if (ox >= ow)
                    continue;
                const float *t = tile[p - p0];
                float *dst = y + (size_t)m0 * ldy + (size_t)oy * ow + ox;
                if (add)
                    for (int i = 0; i < 16; i++)
                        dst[i * ldy] += t[i];
                else
                    for (int i = 0; i < 16; i++) {
                        float v = t[i] + (bias ? bias[m0 + i] : 0.0f);
                        dst[i * ldy] = relu && !(v > 0.0f) ? 0.0f : v;
                    }
            }
        }
    }
}

static float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/*
 * C[m][n] += sum_p A[m * lda + p] src[koff[n] + p] over p in [0, np) for
 * m < M, n < N (np a multiple of 8; A zero where the pixel is not an
 * output). The weight gradient of the stride-1 convolution.
 */
void sfpw_conv_wgrad_avx2(int M, int N, int np, const float *A, size_t lda, const float *src,
                          const int *koff, float *C, size_t ldc)
{
    int m0 = 0;
    for (; m0 + 4 <= M; m0 += 4) {
        const float *a0p = A + (size_t)m0 * lda, *a1p = a0p + lda, *a2p = a1p + lda,
                    *a3p = a2p + lda;
        int n0 = 0;
        for (; n0 + 3 <= N; n0 += 3) {
            const float *b0p = src + koff[n0], *b1p = src + koff[n0 + 1], *b2p = src + koff[n0 + 2];
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00,
                   c12 = c00, c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
            for (int p = 0; p < np; p += 8) {
                __m256 b0 = _mm256_loadu_ps(b0p + p), b1 = _mm256_loadu_ps(b1p + p),
                       b2 = _mm256_loadu_ps(b2p + p);
                __m256 a = _mm256_loadu_ps(a0p + p);
                c00 = _mm256_fmadd_ps(a, b0, c00);
                c01 = _mm256_fmadd_ps(a, b1, c01);
                c02 = _mm256_fmadd_ps(a, b2, c02);
                a = _mm256_loadu_ps(a1p + p);
                c10 = _mm256_fmadd_ps(a, b0, c10);
                c11 = _mm256_fmadd_ps(a, b1, c11);
                c12 = _mm256_fmadd_ps(a, b2, c12);
                a = _mm256_loadu_ps(a2p + p);
                c20 = _mm256_fmadd_ps(a, b0, c20);
                c21 = _mm256_fmadd_ps(a, b1, c21);
                c22 = _mm256_fmadd_ps(a, b2, c22);
                a = _mm256_loadu_ps(a3p + p);
                c30 = _mm256_fmadd_ps(a, b0, c30);
                c31 = _mm256_fmadd_ps(a, b1, c31);
                c32 = _mm256_fmadd_ps(a, b2, c32);
            }
            float *c = C + (size_t)m0 * ldc + n0;
            c[0] += hsum(c00);
            c[1] += hsum(c01);
            c[2] += hsum(c02);
            c[ldc] += hsum(c10);
            c[ldc + 1] += hsum(c11);
            c[ldc + 2] += hsum(c12);
            c[2 * ldc] += hsum(c20);
            c[2 * ldc + 1] += hsum(c21);
            c[2 * ldc + 2] += hsum(c22);
            c[3 * ldc] += hsum(c30);
            c[3 * ldc + 1] += hsum(c31);
            c[3 * ldc + 2] += hsum(c32);
        }
        for (; n0 < N; n0++)
            for (int i = 0; i < 4; i++) {
                __m256 acc = _mm256_setzero_ps();
                const float *ap = A + (size_t)(m0 + i) * lda, *bp = src + koff[n0];
                for (int p = 0; p < np; p += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(ap + p), _mm256_loadu_ps(bp + p), acc);
                C[(size_t)(m0 + i) * ldc + n0] += hsum(acc);
            }
    }
    for (; m0 < M; m0++)
        for (int n0 = 0; n0 < N; n0++) {
            __m256 acc = _mm256_setzero_ps();
            const float *ap = A + (size_t)m0 * lda, *bp = src + koff[n0];
            for (int p = 0; p < np; p += 8)
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(ap + p), _mm256_loadu_ps(bp + p), acc);
            C[(size_t)m0 * ldc + n0] += hsum(acc);
        }
}

/*
 * The weight gradient with the output channels in the vector: M a multiple
 * of 16, At = dY transposed to [np][M] (zero where the pixel is not an
 * output), C[m][n] += sum_p At[p][m] src[koff[n] + p]; tiles of 16
 * channels x 6 taps.
 */
void sfpw_conv_wgrad16_avx2(int M, int N, int np, const float *At, const float *src,
                            const int *koff, float *C, size_t ldc)
{
    float tile[6][16];
    for (int m0 = 0; m0 < M; m0 += 16) {
        for (int n0 = 0; n0 < N; n0 += 6) {
            const int nn = N - n0 < 6 ? N - n0 : 6;
            const float *b[6];
            for (int j = 0; j < 6; j++)
                b[j] = src + koff[n0 + (j < nn ? j : 0)];
            __m256 c0l = _mm256_setzero_ps(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l,
                   c2h = c0l, c3l = c0l, c3h = c0l, c4l = c0l, c4h = c0l, c5l = c0l, c5h = c0l;
            for (int p = 0; p < np; p++) {
                const __m256 al = _mm256_load_ps(At + (size_t)p * M + m0),
                             ah = _mm256_load_ps(At + (size_t)p * M + m0 + 8);
                FMA16(0, b[0] + p);
                FMA16(1, b[1] + p);
                FMA16(2, b[2] + p);
                FMA16(3, b[3] + p);
                FMA16(4, b[4] + p);
                FMA16(5, b[5] + p);
            }
            STORE16(tile);
            for (int j = 0; j < nn; j++)
                for (int i = 0; i < 16; i++)
                    C[(size_t)(m0 + i) * ldc + n0 + j] += tile[j][i];
        }
    }
}

/* The even and odd columns of the 16 floats at p, lanes in the order
 * 0 1 4 5 | 2 3 6 7 of the eight pairs. */
/* Loads of a step of the pooling backward: whole (mask NULL) or only the
 * lanes of a partial last step (the masks of the 16 floats and of the 8
 * gradients). */
typedef struct pool_masks {
    __m256i lo, hi, g;
} pool_masks;

static inline __m256 load8f(const float *p, const __m256i *m)
{
    return m ? _mm256_maskload_ps(p, *m) : _mm256_loadu_ps(p);
}

static inline void store8f(float *p, const __m256i *m, __m256 v)
{
    if (m)
        _mm256_maskstore_ps(p, *m, v);
    else
        _mm256_storeu_ps(p, v);
}

/* The even and odd columns of the 16 floats at p, lanes in the order
 * 0 1 4 5 | 2 3 6 7 of the eight pairs. */
static inline void split_pairs(const float *p, const pool_masks *k, __m256 *ev, __m256 *od)
{
    const __m256 lo = load8f(p, k ? &k->lo : NULL), hi = load8f(p + 8, k ? &k->hi : NULL);
    *ev = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    *od = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}

/*
 * The gradients g of eight windows (k: a partial last step) to the inputs
 * the masks sa..sd (lanes in split_pairs' order) select: written (+0 for
 * the others) or, with add, added (the others keep their value).
 */
static inline __attribute__((always_inline)) void
pool_route8(const float *g, float *d0, float *d1, int add, const pool_masks *k, __m256 sa,
            __m256 sb, __m256 sc, __m256 sd)
{
    const __m256 gv = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(load8f(g, k ? &k->g : NULL)), _MM_SHUFFLE(3, 1, 2, 0)));
    __m256 oa, ob, oc, od;
    if (add) {
        __m256 pa, pb, pc, pd;
        split_pairs(d0, k, &pa, &pb);
        split_pairs(d1, k, &pc, &pd);
        oa = _mm256_blendv_ps(pa, _mm256_add_ps(pa, gv), sa);
        ob = _mm256_blendv_ps(pb, _mm256_add_ps(pb, gv), sb);
        oc = _mm256_blendv_ps(pc, _mm256_add_ps(pc, gv), sc);
        od = _mm256_blendv_ps(pd, _mm256_add_ps(pd, gv), sd);
    } else {
        oa = _mm256_and_ps(sa, gv);
        ob = _mm256_and_ps(sb, gv);
        oc = _mm256_and_ps(sc, gv);
        od = _mm256_and_ps(sd, gv);
    }
    store8f(d0, k ? &k->lo : NULL, _mm256_unpacklo_ps(oa, ob));
    store8f(d0 + 8, k ? &k->hi : NULL, _mm256_unpackhi_ps(oa, ob));
    store8f(d1, k ? &k->lo : NULL, _mm256_unpacklo_ps(oc, od));
    store8f(d1 + 8, k ? &k->hi : NULL, _mm256_unpackhi_ps(oc, od));
}

/* The masks of a last step of rem < 8 windows. */
static inline pool_masks pool_tail(int rem)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    pool_masks k;
    k.lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * rem), iota);
    k.hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * rem - 8), iota);
    k.g = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), iota);
    return k;
}

/*
 * The windows' scan in the order (0,0), (0,1), (1,0), (1,1): tb, tc, td
 * whether each input is strictly larger than the maximum before it (false
 * for NaN); returns the maximum (lanes in split_pairs' order).
 */
static inline __attribute__((always_inline)) __m256
pool_scan8(const float *r0, const float *r1, const pool_masks *k, __m256 *tb, __m256 *tc,
           __m256 *td)
{
    __m256 a, b, c, d;
    split_pairs(r0, k, &a, &b);
    split_pairs(r1, k, &c, &d);
    *tb = _mm256_cmp_ps(b, a, _CMP_GT_OQ);
    __m256 m = _mm256_blendv_ps(a, b, *tb);
    *tc = _mm256_cmp_ps(c, m, _CMP_GT_OQ);
    m = _mm256_blendv_ps(m, c, *tc);
    *td = _mm256_cmp_ps(d, m, _CMP_GT_OQ);
    return _mm256_blendv_ps(m, d, *td);
}

/* Eight windows (k NULL) or the first of them that k's masks keep. */
static inline __attribute__((always_inline)) void
pool_bwd8(const float *r0, const float *r1, const float *g, float *d0, float *d1, int add,
          const pool_masks *k)
{
    __m256 tb, tc, td;
    pool_scan8(r0, r1, k, &tb, &tc, &td);
    const __m256 sd = td, sc = _mm256_andnot_ps(td, tc);
    const __m256 sb = _mm256_andnot_ps(_mm256_or_ps(tc, td), tb);
    const __m256 sa = _mm256_andnot_ps(_mm256_or_ps(tb, _mm256_or_ps(tc, td)),
                                       _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
    pool_route8(g, d0, d1, add, k, sa, sb, sc, sd);
}

/*
 * One output row of the 2x2 max-pool's backward pass (kernels.c
 * sfpw_pool_bwd): r0, r1 the two input rows, g the ow output gradients,
 * d0, d1 the two rows of the input gradient. Each gradient goes to the
 * first of its window's four inputs, in the order (0,0), (0,1), (1,0),
 * (1,1), that is strictly larger than those before it (compares with >,
 * false for NaN); without add the other three get +0, with add they keep
 * their value. Eight windows per step, their even and odd columns split
 * with shuffles (lanes in the order 0 1 4 5 | 2 3 6 7, undone by the
 * unpacks), the last step with masked loads and stores (nothing outside
 * the 2 ow columns is read or written).
 */
void sfpw_pool_bwd_row_avx2(const float *r0, const float *r1, const float *g, float *d0,
                            float *d1, int ow, int add)
{
    int j = 0;
    for (; j + 8 <= ow; j += 8)
        pool_bwd8(r0 + 2 * j, r1 + 2 * j, g + j, d0 + 2 * j, d1 + 2 * j, add, NULL);
    if (j < ow) {
        const int rem = ow - j;
        const pool_masks k = pool_tail(rem);
        pool_bwd8(r0 + 2 * j, r1 + 2 * j, g + j, d0 + 2 * j, d1 + 2 * j, add, &k);
    }
}

/* Lanes 0-7 <-> 0 1 4 5 2 3 6 7 (split_pairs' order; its own inverse). */
static inline __m256i pair_order(__m256i v)
{
    return _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0));
}

/* Eight windows' maxima and codes (k: the lanes of a partial last step). */
static inline __attribute__((always_inline)) void
pool_fwd_codes8(const float *r0, const float *r1, float *y, uint8_t *code, const pool_masks *k,
                int rem)
{
    __m256 tb, tc, td;
    __m256 m = pool_scan8(r0, r1, k, &tb, &tc, &td);
    __m256i s = _mm256_and_si256(_mm256_castps_si256(tb), _mm256_set1_epi32(1));
    s = _mm256_blendv_epi8(s, _mm256_set1_epi32(2), _mm256_castps_si256(tc));
    s = _mm256_blendv_epi8(s, _mm256_set1_epi32(3), _mm256_castps_si256(td));
    const __m256 pos = _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ);
    s = _mm256_blendv_epi8(_mm256_set1_epi32(4), s, _mm256_castps_si256(pos));
    m = _mm256_castsi256_ps(pair_order(_mm256_castps_si256(m)));
    s = pair_order(s);
    store8f(y, k ? &k->g : NULL, m);
    /* the low byte of each lane: bytes 0, 4, 8, 12 of each half, then the
     * halves' first words side by side */
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, -1, -1);
    const __m256i by = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(s, pick),
                                                   _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    const uint64_t eight = (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(by));
    if (rem == 8)
        memcpy(code, &eight, 8);
    else
        memcpy(code, &eight, (size_t)rem);
}

/*
 * One output row of sfpw_pool_fwd_codes: the maxima of the ow windows of
 * rows r0, r1 into y, their codes into code (first max with >, as
 * sfpw_pool_fwd; 4 where the maximum is not > 0). Nothing outside the 2 ow
 * inputs, ow outputs and ow codes is read or written.
 */
void sfpw_pool_fwd_codes_row_avx2(const float *r0, const float *r1, float *y, uint8_t *code,
                                  int ow)
{
    int j = 0;
    for (; j + 8 <= ow; j += 8)
        pool_fwd_codes8(r0 + 2 * j, r1 + 2 * j, y + j, code + j, NULL, 8);
    if (j < ow) {
        const int rem = ow - j;
        const pool_masks k = pool_tail(rem);
        pool_fwd_codes8(r0 + 2 * j, r1 + 2 * j, y + j, code + j, &k, rem);
    }
}

/* Eight windows' gradients from their codes (k: a partial last step). */
static inline __attribute__((always_inline)) void
pool_bwd_codes8(const uint8_t *code, const float *g, float *d0, float *d1, int add,
                const pool_masks *k, int rem)
{
    uint64_t eight = 0x0404040404040404ull;
    memcpy(&eight, code, rem == 8 ? 8 : (size_t)rem);
    const __m256i s = pair_order(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)eight)));
    const __m256 sa = _mm256_castsi256_ps(_mm256_cmpeq_epi32(s, _mm256_setzero_si256()));
    const __m256 sb = _mm256_castsi256_ps(_mm256_cmpeq_epi32(s, _mm256_set1_epi32(1)));
    const __m256 sc = _mm256_castsi256_ps(_mm256_cmpeq_epi32(s, _mm256_set1_epi32(2)));
    const __m256 sd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(s, _mm256_set1_epi32(3)));
    pool_route8(g, d0, d1, add, k, sa, sb, sc, sd);
}

/* One output row of sfpw_pool_bwd_codes (the gradients of ow windows from
 * their code bytes; codes other than 0-3 route nothing). */
void sfpw_pool_bwd_codes_row_avx2(const uint8_t *code, const float *g, float *d0, float *d1,
                                  int ow, int add)
{
    int j = 0;
    for (; j + 8 <= ow; j += 8)
        pool_bwd_codes8(code + j, g + j, d0 + 2 * j, d1 + 2 * j, add, NULL, 8);
    if (j < ow) {
        const int rem = ow - j;
        const pool_masks k = pool_tail(rem);
        pool_bwd_codes8(code + j, g + j, d0 + 2 * j, d1 + 2 * j, add, &k, rem);
    }
}

/*
 * conv.c's widen with the transpose: dst[(y * wp + x) * oc + o] =
 * dy[(o * oh + y) * ow + x] for x < ow, in 8 x 8 blocks (eight channels'
 * rows of eight pixels transposed in registers); oc a multiple of 8.
 * Writes only those positions (the caller zeroes the rest).
 */
void sfpw_widen_t_avx2(const float *dy, int oc, int oh, int ow, int wp, float *dst)
{
    for (int o0 = 0; o0 < oc; o0 += 8) {
        for (int y = 0; y < oh; y++) {
            const float *s = dy + ((size_t)o0 * oh + y) * ow;
            const size_t rs = (size_t)oh * ow; /* next channel, same pixel */
            float *d = dst + (size_t)y * wp * oc + o0;
            int x = 0;
            for (; x + 8 <= ow; x += 8) {
                __m256 r0 = _mm256_loadu_ps(s + x), r1 = _mm256_loadu_ps(s + rs + x);
                __m256 r2 = _mm256_loadu_ps(s + 2 * rs + x), r3 = _mm256_loadu_ps(s + 3 * rs + x);
                __m256 r4 = _mm256_loadu_ps(s + 4 * rs + x), r5 = _mm256_loadu_ps(s + 5 * rs + x);
                __m256 r6 = _mm256_loadu_ps(s + 6 * rs + x), r7 = _mm256_loadu_ps(s + 7 * rs + x);
                __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
                __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
                __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
                __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
                __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
                __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
                __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
                __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
                __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
                __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
                __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
                float *q = d + (size_t)x * oc;
                _mm256_storeu_ps(q + 0 * (size_t)oc, _mm256_permute2f128_ps(u0, u4, 0x20));
                _mm256_storeu_ps(q + 1 * (size_t)oc, _mm256_permute2f128_ps(u1, u5, 0x20));
                _mm256_storeu_ps(q + 2 * (size_t)oc, _mm256_permute2f128_ps(u2, u6, 0x20));
                _mm256_storeu_ps(q + 3 * (size_t)oc, _mm256_permute2f128_ps(u3, u7, 0x20));
                _mm256_storeu_ps(q + 4 * (size_t)oc, _mm256_permute2f128_ps(u0, u4, 0x31));
                _mm256_storeu_ps(q + 5 * (size_t)oc, _mm256_permute2f128_ps(u1, u5, 0x31));
                _mm256_storeu_ps(q + 6 * (size_t)oc, _mm256_permute2f128_ps(u2, u6, 0x31));
                _mm256_storeu_ps(q + 7 * (size_t)oc, _mm256_permute2f128_ps(u3, u7, 0x31));
            }
            for (; x < ow; x++)
                for (int r = 0; r < 8; r++)
                    d[(size_t)x * oc + r] = s[r * rs + x];
        }
    }
}
