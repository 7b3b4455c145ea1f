/* kernels.c - see kernels.h. GEMMs through cblas_sgemm; the rest plain C. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "hot.h"
#include "kernels.h"
#include "conv_kernels.h"

/* ---------------------------------------------------------------- random */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sfpw_rng_seed(sfpw_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sfpw_rng_next(sfpw_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sfpw_rng_uniform(sfpw_rng *r)
{
    return (double)(sfpw_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double sfpw_rng_normal(sfpw_rng *r)
{
    double u1 = sfpw_rng_uniform(r), u2 = sfpw_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void sfpw_rng_shuffle(sfpw_rng *r, uint32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(sfpw_rng_next(r) % i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* ----------------------------------------------------------------- dense */

void sfpw_dense_fwd(const float *X, const float *W, const float *b, float *Y,
                    int B, int in, int out, int relu)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, X,
                in, W, in, 0.0f, Y, out);
    if (b || relu)
        for (int i = 0; i < B; i++)
            sfpw_bias_act(Y + (size_t)i * out, b, (size_t)out, relu);
}

SFPW_HOT
void sfpw_bias_act(float *y, const float *b, size_t n, int relu)
{
    if (b && relu)
        for (size_t j = 0; j < n; j++) {
            float v = y[j] + b[j];
            y[j] = v > 0.0f ? v : 0.0f;
        }
    else if (b)
        for (size_t j = 0; j < n; j++)
            y[j] += b[j];
    else if (relu)
        for (size_t j = 0; j < n; j++)
            y[j] = y[j] > 0.0f ? y[j] : 0.0f;
}

/* db[j] += sum_i dY[i][j] */
SFPW_HOT
static void sfpw_colsum_add(const float *dY, int B, int out, float *db)
{
    for (int i = 0; i < B; i++) {
        const float *r = dY + (size_t)i * out;
        for (int j = 0; j < out; j++)
            db[j] += r[j];
    }
}

void sfpw_dense_bwd(const float *X, const float *W, const float *dY,
                    float *dX, int dx_rows, int dx_add, float *dW, float *db,
                    int B, int in, int out)
{
    /* dW[out,in] += dY^T[out,B] X[B,in] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dY,
                out, X, in, 1.0f, dW, in);
    if (db)
        sfpw_colsum_add(dY, B, out, db);
    if (dX && dx_rows > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dx_rows, in,
                    out, 1.0f, dY, out, W, in, dx_add ? 1.0f : 0.0f, dX, in);
}



/* -------------------------------------------------------------- max-pool */

/* Window j of rows r0, r1: the first maximum in the order (0,0), (0,1),
 * (1,0), (1,1) (compares with >: false for NaN), its value in *m and its
 * position returned; without branches on the data. */
static inline unsigned pool_window(const float *r0, const float *r1, int j, float *m)
{
    const float a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
    float v = a;
    unsigned s = 0;
    s = b > v ? 1 : s;
    v = b > v ? b : v;
    s = c > v ? 2 : s;
    v = c > v ? c : v;
    s = d > v ? 3 : s;
    v = d > v ? d : v;
    *m = v;
    return s;
}

SFPW_HOT
void sfpw_pool_fwd(const float *X, float *Y, int B, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *x = X + bc * H * W;
        float *y = Y + bc * OH * OW;
        for (int i = 0; i < OH; i++) {
            const float *r0 = x + (size_t)(2 * i) * W, *r1 = r0 + W;
            for (int j = 0; j < OW; j++)
                (void)pool_window(r0, r1, j, &y[i * OW + j]);
        }
    }
}

/* A window's gradient g to its input s (0-3: (0,0), (0,1), (1,0), (1,1);
 * other values: none): written, +0 for the others, or with add added, the
 * others kept; without branches on the data. */
static inline void pool_route(float *d0, float *d1, unsigned s, float g, int add)
{
    if (add) {
        d0[0] = s == 0 ? d0[0] + g : d0[0];
        d0[1] = s == 1 ? d0[1] + g : d0[1];
        d1[0] = s == 2 ? d1[0] + g : d1[0];
        d1[1] = s == 3 ? d1[1] + g : d1[1];
    } else {
        d0[0] = s == 0 ? g : 0.0f;
        d0[1] = s == 1 ? g : 0.0f;
        d1[0] = s == 2 ? g : 0.0f;
        d1[1] = s == 3 ? g : 0.0f;
    }
}

/*
 * Routes each output gradient to the first of its four inputs (in the order
 * (0,0), (0,1), (1,0), (1,1)) that is strictly larger than those before it,
 * as the forward pass chose: eight windows at a time in AVX2
 * (sfpw_pool_bwd_row_avx2, a masked last step), else without branches on
 * the data (the choice is a select, every input position is stored); the
 * values are those of a scan with > and a scatter.
 */
SFPW_HOT
void sfpw_pool_bwd(const float *X, const float *dY, float *dX, int dx_rows,
                   int dx_add, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
#if HAVE_AVX2
    const int fast = sfpw_simd_fast();
#endif
    for (size_t bc = 0; bc < (size_t)dx_rows * C; bc++) {
        const float *x = X + bc * H * W;
        const float *dy = dY + bc * OH * OW;
        float *dx = dX + bc * H * W;
        if (!dx_add && ((H | W) & 1)) /* a last row or column no window covers */
            memset(dx, 0, sizeof(float) * H * W);
        for (int i = 0; i < OH; i++) {
            const float *r0 = x + (size_t)(2 * i) * W, *r1 = r0 + W;
            float *d0 = dx + (size_t)(2 * i) * W, *d1 = d0 + W;
            const float *g = dy + (size_t)i * OW;
#if HAVE_AVX2
            if (fast) {
                sfpw_pool_bwd_row_avx2(r0, r1, g, d0, d1, OW, dx_add);
                continue;
            }
#endif
            for (int j = 0; j < OW; j++) {
                float m;
                pool_route(d0 + 2 * j, d1 + 2 * j, pool_window(r0, r1, j, &m), g[j], dx_add);
            }
        }
    }
}

#define POOL_CODE_HIGH 0x3F800000u

/* A row of windows: maxima and code bytes (the C path of the AVX2 row). */
static void pool_fwd_codes_row(const float *r0, const float *r1, float *y, uint8_t *code, int ow)
{
    for (int j = 0; j < ow; j++) {
        const unsigned s = pool_window(r0, r1, j, &y[j]);
        code[j] = (uint8_t)(y[j] > 0.0f ? s : SFPW_POOL_MASKED);
    }
}

static void pool_bwd_codes_row(const uint8_t *code, const float *g, float *d0, float *d1, int ow,
                               int add)
{
    for (int j = 0; j < ow; j++)
        pool_route(d0 + 2 * j, d1 + 2 * j, code[j], g[j], add);
}

/*
 * An image's codes are first written one byte per window into scratch (its
 * tail up to whole words zeroed), then packed seven to a word.
 */
SFPW_HOT
void sfpw_pool_fwd_codes(const float *X, float *Y, float *codes, int B, int C, int H, int W,
                         void *scratch)
{
    const int OH = H / 2, OW = W / 2;
    const size_t words = sfpw_pool_code_words(C, H, W), nw = (size_t)C * OH * OW;
    uint8_t *cb = scratch;
#if HAVE_AVX2
    const int fast = sfpw_simd_fast();
#endif
    memset(cb + nw, 0, sfpw_pool_code_scratch(C, H, W) - nw);
    for (int b = 0; b < B; b++) {
        size_t p = 0;
        for (int c = 0; c < C; c++) {
            const size_t bc = (size_t)b * C + c;
            const float *x = X + bc * H * W;
            float *y = Y + bc * OH * OW;
            for (int i = 0; i < OH; i++, p += (size_t)OW) {
                const float *r0 = x + (size_t)(2 * i) * W, *r1 = r0 + W;
#if HAVE_AVX2
                if (fast) {
                    sfpw_pool_fwd_codes_row_avx2(r0, r1, y + (size_t)i * OW, cb + p, OW);
                    continue;
                }
#endif
                pool_fwd_codes_row(r0, r1, y + (size_t)i * OW, cb + p, OW);
            }
        }
        float *cw = codes + (size_t)b * words;
        for (size_t w = 0; w < words; w++) {
            const uint8_t *q = cb + SFPW_POOL_CODES_PER_WORD * w;
            uint32_t v = POOL_CODE_HIGH;
            for (int k = 0; k < SFPW_POOL_CODES_PER_WORD; k++)
                v |= (uint32_t)q[k] << (3 * k);
            memcpy(&cw[w], &v, sizeof v);
        }
    }
}

SFPW_HOT
void sfpw_pool_bwd_codes(const float *codes, const float *dY, float *dX, int dx_rows,
                         int dx_add, int C, int H, int W, void *scratch)
{
    const int OH = H / 2, OW = W / 2;
    const size_t words = sfpw_pool_code_words(C, H, W);
    uint8_t *cb = scratch;
#if HAVE_AVX2
    const int fast = sfpw_simd_fast();
#endif
    for (int b = 0; b < dx_rows; b++) {
        const float *cw = codes + (size_t)b * words;
        for (size_t w = 0; w < words; w++) {
            uint32_t v;
            memcpy(&v, cw + w, sizeof v);
            uint8_t *q = cb + SFPW_POOL_CODES_PER_WORD * w;
            for (int k = 0; k < SFPW_POOL_CODES_PER_WORD; k++)
                q[k] = (uint8_t)((v >> (3 * k)) & 7u);
        }
        size_t p = 0;
        for (int c = 0; c < C; c++) {
            const size_t bc = (size_t)b * C + c;
            const float *dy = dY + bc * OH * OW;
            float *dx = dX + bc * H * W;
            if (!dx_add && ((H | W) & 1))
                memset(dx, 0, sizeof(float) * H * W);
            for (int i = 0; i < OH; i++, p += (size_t)OW) {
                float *d0 = dx + (size_t)(2 * i) * W, *d1 = d0 + W;
#if HAVE_AVX2
                if (fast) {
                    sfpw_pool_bwd_codes_row_avx2(cb + p, dy + (size_t)i * OW, d0, d1, OW, dx_add);
                    continue;
                }
#endif
                pool_bwd_codes_row(cb + p, dy + (size_t)i * OW, d0, d1, OW, dx_add);
            }
        }
    }
}

/* ------------------------------------------------------------------ relu */

SFPW_HOT
void sfpw_relu_fwd(float *Y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        Y[i] = Y[i] > 0.0f ? Y[i] : 0.0f;
}

SFPW_HOT
void sfpw_relu_bwd(const float *Y, float *dY, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dY[i] = Y[i] > 0.0f ? dY[i] : 0.0f;
}

/* ------------------------------------------------------------------ loss */

double sfpw_softmax_xent(const float *logits, const uint8_t *labels,
                         float *dlogits, int B, int C, float scale,
                         uint64_t *correct)
{
    double total = 0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * C;
        float *d = dlogits + (size_t)i * C;
        int arg = 0;
        float m = z[0];
        for (int c = 1; c < C; c++)
            if (z[c] > m) {
                m = z[c];
                arg = c;
            }
        if (arg == labels[i])
            (*correct)++;
        double sum = 0;
        for (int c = 0; c < C; c++)
            sum += exp((double)z[c] - m);
        double lse = m + log(sum);
        total += lse - z[labels[i]];
        for (int c = 0; c < C; c++) {
            double p = exp((double)z[c] - lse);
            d[c] = (float)((p - (c == labels[i] ? 1.0 : 0.0)) * scale);
        }
    }
    return total;
}

uint64_t sfpw_count_correct(const float *logits, const uint8_t *labels, int B,
                            int C)
{
    uint64_t n = 0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * C;
        int arg = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > z[arg])
                arg = c;
        n += arg == labels[i];
    }
    return n;
}

/* ------------------------------------------------------------- optimizers */

SFPW_HOT
void sfpw_opt_update(const sfpw_opt_config *c, float *w, const float *g,
                     float *s1, float *s2, size_t n, uint64_t t, int decay)
{
    const float wd = decay ? c->weight_decay : 0.0f;
    if (c->kind == SFPW_OPT_SGD) {
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] + wd * w[i];
            s1[i] = c->momentum * s1[i] + gi;
            w[i] -= c->lr * s1[i];
        }
        return;
    }
    /* PyTorch's AdamW, operation for operation: decay first, then
     * m / (sqrt(v) / sqrt(1 - beta2^t) + eps) times lr / (1 - beta1^t) */
    const double bc1 = 1.0 - pow(c->beta1, (double)t);
    const double bc2 = 1.0 - pow(c->beta2, (double)t);
    const float step = (float)(c->lr / bc1), ibc2 = (float)(1.0 / sqrt(bc2));
    const float keep = 1.0f - c->lr * wd;
    for (size_t i = 0; i < n; i++) {
        s1[i] = c->beta1 * s1[i] + (1 - c->beta1) * g[i];
        s2[i] = c->beta2 * s2[i] + (1 - c->beta2) * g[i] * g[i];
        w[i] = w[i] * keep - step * s1[i] / (sqrtf(s2[i]) * ibc2 + c->eps);
    }
}
