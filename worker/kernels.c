/* kernels.c - see kernels.h. GEMMs through cblas_sgemm; the rest plain C. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "kernels.h"

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
                    int B, int in, int out)
{
    for (int i = 0; b && i < B; i++)
        memcpy(Y + (size_t)i * out, b, sizeof(float) * out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, X,
                in, W, in, b ? 1.0f : 0.0f, Y, out);
}

void sfpw_dense_bwd(const float *X, const float *W, const float *dY,
                    float *dX, int dx_rows, int dx_add, float *dW, float *db,
                    int B, int in, int out)
{
    /* dW[out,in] += dY^T[out,B] X[B,in] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dY,
                out, X, in, 1.0f, dW, in);
    for (int i = 0; db && i < B; i++) {
        const float *r = dY + (size_t)i * out;
        for (int j = 0; j < out; j++)
            db[j] += r[j];
    }
    if (dX && dx_rows > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dx_rows, in,
                    out, 1.0f, dY, out, W, in, dx_add ? 1.0f : 0.0f, dX, in);
}

/* ---------------------------------------------------------------- conv2d */

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

size_t sfpw_conv_col_size(const sfpw_conv_shape *s)
{
    return (size_t)s->c * s->k * s->k * s->oh * s->ow;
}

/* col[(c*k+ki)*k+kj][oy*ow+ox] = x[c][oy*S+ki-pad][ox*S+kj-pad] */
static void im2col(const sfpw_conv_shape *s, const float *x, float *col)
{
    const int K = s->k, P = s->pad, OH = s->oh, OW = s->ow, S = s->stride;
    for (int c = 0; c < s->c; c++) {
        const float *xc = x + (size_t)c * s->h * s->w;
        for (int ki = 0; ki < K; ki++) {
            for (int kj = 0; kj < K; kj++) {
                float *row = col + ((size_t)(c * K + ki) * K + kj) * OH * OW;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * S + ki - P;
                    float *dst = row + (size_t)oy * OW;
                    if (iy < 0 || iy >= s->h) {
                        memset(dst, 0, sizeof(float) * OW);
                        continue;
                    }
                    const float *src = xc + (size_t)iy * s->w;
                    for (int ox = 0; ox < OW; ox++) {
                        int ix = ox * S + kj - P;
                        dst[ox] = (ix >= 0 && ix < s->w) ? src[ix] : 0.0f;
                    }
                }
            }
        }
    }
}

/* x (+)= the columns summed back onto the image (add: keep x's values) */
static void col2im(const sfpw_conv_shape *s, const float *col, float *x, int add)
{
    const int K = s->k, P = s->pad, OH = s->oh, OW = s->ow, S = s->stride;
    if (!add)
        memset(x, 0, sizeof(float) * s->c * s->h * s->w);
    for (int c = 0; c < s->c; c++) {
        float *xc = x + (size_t)c * s->h * s->w;
        for (int ki = 0; ki < K; ki++) {
            for (int kj = 0; kj < K; kj++) {
                const float *row = col + ((size_t)(c * K + ki) * K + kj) * OH * OW;
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
}

void sfpw_conv_fwd(const sfpw_conv_shape *s, const float *X, const float *W,
                   const float *b, float *Y, int B, float *col)
{
    const int CKK = s->c * s->k * s->k, HW = s->oh * s->ow;
    const size_t in_sz = (size_t)s->c * s->h * s->w, out_sz = (size_t)s->oc * HW;
    for (int i = 0; i < B; i++) {
        float *y = Y + i * out_sz;
        im2col(s, X + i * in_sz, col);
        for (int o = 0; b && o < s->oc; o++)
            for (int p = 0; p < HW; p++)
                y[(size_t)o * HW + p] = b[o];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->oc, HW, CKK,
                    1.0f, W, CKK, col, HW, b ? 1.0f : 0.0f, y, HW);
    }
}

void sfpw_conv_bwd(const sfpw_conv_shape *s, const float *X, const float *W,
                   const float *dY, float *dX, int dx_rows, int dx_add,
                   float *dW, float *db, int B, float *col, float *dcol)
{
    const int CKK = s->c * s->k * s->k, HW = s->oh * s->ow;
    const size_t in_sz = (size_t)s->c * s->h * s->w, out_sz = (size_t)s->oc * HW;
    for (int i = 0; i < B; i++) {
        const float *dy = dY + i * out_sz;
        im2col(s, X + i * in_sz, col);
        /* dW[OC,CKK] += dy[OC,HW] col^T[HW,CKK] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->oc, CKK, HW,
                    1.0f, dy, HW, col, HW, 1.0f, dW, CKK);
        for (int o = 0; db && o < s->oc; o++) {
            float acc = 0;
            const float *r = dy + (size_t)o * HW;
            for (int p = 0; p < HW; p++)
                acc += r[p];
            db[o] += acc;
        }
        if (dX && i < dx_rows) {
            /* dcol[CKK,HW] = W^T[CKK,OC] dy[OC,HW] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, HW,
                        s->oc, 1.0f, W, CKK, dy, HW, 0.0f, dcol, HW);
            col2im(s, dcol, dX + i * in_sz, dx_add);
        }
    }
}

/* -------------------------------------------------------------- max-pool */

void sfpw_pool_fwd(const float *X, float *Y, int B, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *x = X + bc * H * W;
        float *y = Y + bc * OH * OW;
        for (int i = 0; i < OH; i++) {
            const float *r0 = x + (size_t)(2 * i) * W, *r1 = r0 + W;
            for (int j = 0; j < OW; j++) {
                float m = r0[2 * j];
                if (r0[2 * j + 1] > m)
                    m = r0[2 * j + 1];
                if (r1[2 * j] > m)
                    m = r1[2 * j];
                if (r1[2 * j + 1] > m)
                    m = r1[2 * j + 1];
                y[i * OW + j] = m;
            }
        }
    }
}

void sfpw_pool_bwd(const float *X, const float *dY, float *dX, int dx_rows,
                   int dx_add, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    for (size_t bc = 0; bc < (size_t)dx_rows * C; bc++) {
        const float *x = X + bc * H * W;
        const float *dy = dY + bc * OH * OW;
        float *dx = dX + bc * H * W;
        if (!dx_add)
            memset(dx, 0, sizeof(float) * H * W);
        for (int i = 0; i < OH; i++) {
            for (int j = 0; j < OW; j++) {
                size_t best = (size_t)(2 * i) * W + 2 * j;
                size_t cand[3] = { best + 1, best + W, best + W + 1 };
                float m = x[best];
                for (int c = 0; c < 3; c++) {
                    if (x[cand[c]] > m) {
                        m = x[cand[c]];
                        best = cand[c];
                    }
                }
                if (dx_add)
                    dx[best] += dy[i * OW + j];
                else
                    dx[best] = dy[i * OW + j];
            }
        }
    }
}

/* ------------------------------------------------------------------ relu */

void sfpw_relu_fwd(float *Y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        Y[i] = Y[i] > 0.0f ? Y[i] : 0.0f;
}

void sfpw_relu_bwd(const float *Y, float *dY, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(Y[i] > 0.0f))
            dY[i] = 0.0f;
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
    const double bc1 = 1.0 - pow(c->beta1, (double)t);
    const double bc2 = 1.0 - pow(c->beta2, (double)t);
    const float step = (float)(c->lr * sqrt(bc2) / bc1);
    for (size_t i = 0; i < n; i++) {
        s1[i] = c->beta1 * s1[i] + (1 - c->beta1) * g[i];
        s2[i] = c->beta2 * s2[i] + (1 - c->beta2) * g[i] * g[i];
        w[i] -= step * s1[i] / (sqrtf(s2[i]) + c->eps) + c->lr * wd * w[i];
    }
}
