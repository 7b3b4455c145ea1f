/*
 * test_kernels.c - every kernel's backward against central finite
 * differences, whole-model gradients of mlp and cnn, optimizer steps, and
 * determinism of a training pass.
 */
#include <string.h>

#include "kernels.h"
#include "layer.h"
#include "net.h"
#include "stash.h"
#include "wcheck.h"

static sfpw_rng rng;

static void fill(float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * sfpw_rng_normal(&rng));
}

/* L = sum_i r_i * y_i  (r random) makes dL/dy = r. */
static double dotr(const float *y, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)y[i] * r[i];
    return s;
}

/* relative error with an absolute floor */
static int close_enough(double num, double ana)
{
    return fabs(num - ana) <= 2e-2 * fmax(fabs(num), fabs(ana)) + 2e-3;
}

static void test_dense(void)
{
    enum { B = 3, IN = 7, OUT = 5 };
    float X[B * IN], W[OUT * IN], b[OUT], Y[B * OUT], R[B * OUT];
    float dX[B * IN], dW[OUT * IN] = { 0 }, db[OUT] = { 0 };
    fill(X, B * IN, 1);
    fill(W, OUT * IN, 0.5);
    fill(b, OUT, 0.5);
    fill(R, B * OUT, 1);
    sfpw_dense_fwd(X, W, b, Y, B, IN, OUT, 0);
    /* forward against a plain loop */
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OUT; o++) {
            double s = b[o];
            for (int k = 0; k < IN; k++)
                s += (double)X[i * IN + k] * W[o * IN + k];
            CHECK_NEAR(Y[i * OUT + o], s, 1e-4);
        }
    sfpw_dense_bwd(X, W, R, dX, B, 0, dW, db, B, IN, OUT);
    const float h = 1e-2f;
    int bad = 0;
    for (int j = 0; j < OUT * IN; j++) {
        float s = W[j];
        W[j] = s + h; sfpw_dense_fwd(X, W, b, Y, B, IN, OUT, 0); double lp = dotr(Y, R, B * OUT);
        W[j] = s - h; sfpw_dense_fwd(X, W, b, Y, B, IN, OUT, 0); double lm = dotr(Y, R, B * OUT);
        W[j] = s;
        bad += !close_enough((lp - lm) / (2 * h), dW[j]);
    }
    for (int j = 0; j < B * IN; j++) {
        float s = X[j];
        X[j] = s + h; sfpw_dense_fwd(X, W, b, Y, B, IN, OUT, 0); double lp = dotr(Y, R, B * OUT);
        X[j] = s - h; sfpw_dense_fwd(X, W, b, Y, B, IN, OUT, 0); double lm = dotr(Y, R, B * OUT);
        X[j] = s;
        bad += !close_enough((lp - lm) / (2 * h), dX[j]);
    }
    for (int j = 0; j < OUT; j++) {
        float s = b[j];
        b[j] = s + h; sfpw_dense_fwd(X, W, b, Y, B, IN, OUT, 0); double lp = dotr(Y, R, B * OUT);
        b[j] = s - h; sfpw_dense_fwd(X, W, b, Y, B, IN, OUT, 0); double lm = dotr(Y, R, B * OUT);
        b[j] = s;
        bad += !close_enough((lp - lm) / (2 * h), db[j]);
    }
    CHECK_EQ_INT(bad, 0);
}

/* direct convolution and finite differences; geometries that take every
 * path (transposed-kernel dX, col2im dX, 1x1, padding larger than usual) */
static void test_conv_shape(int ci, int hi, int wi, int oc, int k, int pad, int stride);
static void test_conv_shapes(void);

static void test_conv(void)
{
    for (int fast = 0; fast < 2; fast++) {
        if (sfpw_conv_set_impl(fast) != fast) {
            printf("conv: no AVX2 kernels here, reference only\n");
            continue;
        }
        test_conv_shapes();
    }
    sfpw_conv_set_impl(1);
}

static void test_conv_shapes(void)
{
    test_conv_shape(2, 6, 5, 3, 3, 1, 1);
    test_conv_shape(2, 7, 6, 3, 3, 1, 2);
    test_conv_shape(3, 5, 5, 2, 1, 0, 2);
    test_conv_shape(2, 4, 4, 3, 3, 2, 1);
    test_conv_shape(1, 9, 8, 4, 5, 2, 1);
    test_conv_shape(2, 40, 36, 2, 3, 1, 1); /* several groups of images */
    test_conv_shape(5, 7, 7, 6, 3, 1, 1);   /* rows past a multiple of 4 and 3 */
    test_conv_shape(3, 9, 11, 4, 3, 0, 1);
    test_conv_shape(4, 6, 6, 8, 1, 0, 1);
}

static void test_conv_shape(int ci, int hi, int wi, int oc, int k, int pad, int stride)
{
    sfpw_conv_shape s;
    sfpw_conv_shape_init(&s, ci, hi, wi, oc, k, pad, stride);
    enum { B = 2 };
    size_t in = (size_t)s.c * s.h * s.w, out = (size_t)s.oc * s.oh * s.ow;
    size_t wn = (size_t)s.oc * s.c * s.k * s.k;
    float *X = malloc(sizeof(float) * B * in), *dX = malloc(sizeof(float) * B * in);
    float *Y = malloc(sizeof(float) * B * out), *R = malloc(sizeof(float) * B * out);
    float *W = malloc(sizeof(float) * wn), *dW = calloc(wn, sizeof(float));
    float b[16], db[16] = { 0 };
    float *col = malloc(sizeof(float) * sfpw_conv_scratch(&s));
    fill(X, B * in, 1);
    fill(W, wn, 0.5);
    fill(b, oc, 0.5);
    fill(R, B * out, 1);
    sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col);
    /* direct convolution */
    for (int i = 0; i < B; i++)
        for (int o = 0; o < s.oc; o++)
            for (int y = 0; y < s.oh; y++)
                for (int x = 0; x < s.ow; x++) {
                    double acc = b[o];
                    for (int c = 0; c < s.c; c++)
                        for (int ki = 0; ki < s.k; ki++)
                            for (int kj = 0; kj < s.k; kj++) {
                                int iy = y * s.stride + ki - s.pad, ix = x * s.stride + kj - s.pad;
                                if (iy < 0 || ix < 0 || iy >= s.h || ix >= s.w)
                                    continue;
                                acc += (double)X[i * in + (c * s.h + iy) * s.w + ix] *
                                       W[((o * s.c + c) * s.k + ki) * s.k + kj];
                            }
                    CHECK_NEAR(Y[i * out + (o * s.oh + y) * s.ow + x], acc, 1e-4);
                }
    sfpw_conv_bwd(&s, X, W, R, dX, B, 0, dW, db, B, col);
    const float h = 1e-2f;
    int bad = 0;
    for (size_t j = 0; j < wn; j++) {
        float v = W[j];
        W[j] = v + h; sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col); double lp = dotr(Y, R, B * out);
        W[j] = v - h; sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col); double lm = dotr(Y, R, B * out);
        W[j] = v;
        bad += !close_enough((lp - lm) / (2 * h), dW[j]);
    }
    for (size_t j = 0; j < B * in; j++) {
        float v = X[j];
        X[j] = v + h; sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col); double lp = dotr(Y, R, B * out);
        X[j] = v - h; sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col); double lm = dotr(Y, R, B * out);
        X[j] = v;
        bad += !close_enough((lp - lm) / (2 * h), dX[j]);
    }
    for (int j = 0; j < oc; j++) {
        float v = b[j];
        b[j] = v + h; sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col); double lp = dotr(Y, R, B * out);
        b[j] = v - h; sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col); double lm = dotr(Y, R, B * out);
        b[j] = v;
        bad += !close_enough((lp - lm) / (2 * h), db[j]);
    }
    CHECK_EQ_INT(bad, 0);
    /* relu fused in the forward = conv then relu; dX added onto what is there */
    float *Y2 = malloc(sizeof(float) * B * out), *dX2 = malloc(sizeof(float) * B * in);
    sfpw_conv_fwd(&s, X, W, b, Y, B, 0, col);
    sfpw_relu_fwd(Y, (size_t)B * out);
    sfpw_conv_fwd(&s, X, W, b, Y2, B, 1, col);
    CHECK(memcmp(Y, Y2, sizeof(float) * B * out) == 0);
    for (size_t j = 0; j < B * in; j++)
        dX2[j] = 1.0f;
    sfpw_conv_bwd(&s, X, W, R, dX2, 1, 1, dW, NULL, B, col);
    for (size_t j = 0; j < in; j++)
        bad += fabsf(dX2[j] - 1.0f - dX[j]) > 1e-5f;
    for (size_t j = in; j < B * in; j++)
        bad += dX2[j] != 1.0f; /* rows past dx_rows untouched */
    CHECK_EQ_INT(bad, 0);
    free(Y2); free(dX2);
    free(X); free(dX); free(Y); free(R); free(W); free(dW); free(col);
}

static void test_pool_relu_loss(void)
{
    enum { B = 2, C = 3, H = 4, W = 6 };
    float X[B * C * H * W], Y[B * C * H * W / 4], R[B * C * H * W / 4], dX[B * C * H * W];
    fill(X, B * C * H * W, 1);
    fill(R, B * C * H * W / 4, 1);
    sfpw_pool_fwd(X, Y, B, C, H, W);
    sfpw_pool_bwd(X, R, dX, B, 0, C, H, W);
    const float h = 1e-3f;
    int bad = 0;
    for (int j = 0; j < B * C * H * W; j++) {
        float v = X[j];
        X[j] = v + h; sfpw_pool_fwd(X, Y, B, C, H, W); double lp = dotr(Y, R, B * C * H * W / 4);
        X[j] = v - h; sfpw_pool_fwd(X, Y, B, C, H, W); double lm = dotr(Y, R, B * C * H * W / 4);
        X[j] = v;
        bad += !close_enough((lp - lm) / (2 * h), dX[j]);
    }
    CHECK_EQ_INT(bad, 0);

    float y[6] = { -1, 2, 0, 3, -0.5f, 1 }, d[6] = { 1, 1, 1, 1, 1, 1 };
    sfpw_relu_fwd(y, 6);
    sfpw_relu_bwd(y, d, 6);
    CHECK(y[0] == 0 && y[1] == 2 && y[4] == 0);
    CHECK(d[0] == 0 && d[1] == 1 && d[2] == 0 && d[3] == 1 && d[4] == 0 && d[5] == 1);

    /* softmax cross-entropy: gradient against finite differences */
    enum { NB = 3, NC = 4 };
    float z[NB * NC], dz[NB * NC], tmp[NB * NC];
    uint8_t lab[NB] = { 0, 3, 2 };
    fill(z, NB * NC, 2);
    uint64_t correct = 0;
    sfpw_softmax_xent(z, lab, dz, NB, NC, 1.0f, &correct);
    bad = 0;
    for (int j = 0; j < NB * NC; j++) {
        float v = z[j];
        uint64_t c2 = 0;
        z[j] = v + h; double lp = sfpw_softmax_xent(z, lab, tmp, NB, NC, 1.0f, &c2);
        z[j] = v - h; double lm = sfpw_softmax_xent(z, lab, tmp, NB, NC, 1.0f, &c2);
        z[j] = v;
        bad += !close_enough((lp - lm) / (2 * h), dz[j]);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(correct, sfpw_count_correct(z, lab, NB, NC));
}

/* The AVX2 max-pool backward against the reference, bit for bit: widths
 * with whole 8-window steps and tails, odd sizes, ties (ReLU zeros and
 * repeated values), a NaN, with and without accumulation. */
static void test_pool_simd(void)
{
    static const int shapes[][2] = { { 28, 28 }, { 14, 14 }, { 6, 34 }, { 5, 17 }, { 4, 16 } };
    enum { B = 2, C = 3, MAXHW = 28 * 34 };
    static float X[B * C * MAXHW], R[B * C * MAXHW], d1[B * C * MAXHW], d2[B * C * MAXHW];
    if (sfpw_conv_set_impl(1) != 1) {
        printf("pool: no AVX2 kernels here, reference only\n");
        return;
    }
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int H = shapes[si][0], W = shapes[si][1], n = B * C * H * W;
        fill(X, (size_t)n, (int)si + 3);
        for (int j = 0; j < n; j++) {
            if (j % 3 == 0)
                X[j] = 0.0f; /* ReLU zeros: ties inside windows */
            else if (j % 7 == 0)
                X[j] = X[j - 1]; /* a repeated value */
        }
        X[5] = NAN;
        fill(R, (size_t)(B * C * (H / 2) * (W / 2)), (int)si + 4);
        for (int add = 0; add < 2; add++) {
            fill(d1, (size_t)n, 9);
            memcpy(d2, d1, sizeof(float) * (size_t)n);
            sfpw_conv_set_impl(0);
            sfpw_pool_bwd(X, R, d1, B, add, C, H, W);
            sfpw_conv_set_impl(1);
            sfpw_pool_bwd(X, R, d2, B, add, C, H, W);
            CHECK(memcmp(d1, d2, sizeof(float) * (size_t)n) == 0);
        }
    }
}

/*
 * The max pool of a ReLU output with argmax codes: the maxima are
 * sfpw_pool_fwd's, the gradients sfpw_pool_bwd's with the ReLU's mask
 * (bit for bit, with and without accumulation, for the first dx_rows rows
 * only), C and AVX2 equal (codes and all), a code that is not 0-3 routes
 * nothing, and the unused codes of an image's last word are 0.
 */
static void test_pool_codes(void)
{
    static const int shapes[][2] = { { 28, 28 }, { 14, 14 }, { 6, 34 }, { 5, 17 }, { 4, 16 },
                                     { 2, 6 } };
    enum { B = 3, C = 3, MAXHW = 28 * 34 };
    static float X[B * C * MAXHW], R[B * C * MAXHW], Y1[B * C * MAXHW], Y2[B * C * MAXHW];
    static float d1[B * C * MAXHW], d2[B * C * MAXHW], dr[B * C * MAXHW], base[B * C * MAXHW];
    static float c1[B * C * MAXHW], c2[B * C * MAXHW];
    static unsigned char scratch[4 * C * MAXHW];
    const int simd = sfpw_conv_set_impl(1) == 1;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int H = shapes[si][0], W = shapes[si][1], n = B * C * H * W;
        const int no = B * C * (H / 2) * (W / 2);
        const size_t words = sfpw_pool_code_words(C, H, W);
        fill(X, (size_t)n, (int)si + 11);
        for (int j = 0; j < n; j++) {
            X[j] = X[j] > 0.0f ? X[j] : 0.0f; /* a ReLU output */
            if (j % 7 == 0 && j)
                X[j] = X[j - 1]; /* ties */
        }
        for (int j = 0; j < 4 * W && j < n; j++)
            X[j] = 0.0f; /* whole windows of zeros: masked */
        fill(R, (size_t)no, (int)si + 12);
        for (int impl = 0; impl <= simd; impl++) {
            sfpw_conv_set_impl(impl);
            float *Y = impl ? Y2 : Y1, *cw = impl ? c2 : c1;
            memset(cw, 0xA5, sizeof(float) * words * B);
            sfpw_pool_fwd_codes(X, Y, cw, B, C, H, W, scratch);
            sfpw_conv_set_impl(0);
            sfpw_pool_fwd(X, dr, B, C, H, W);
            CHECK(memcmp(Y, dr, sizeof(float) * (size_t)no) == 0);
            for (int b = 0; b < B; b++) {
                uint32_t last;
                memcpy(&last, &cw[(size_t)b * words + words - 1], sizeof last);
                const size_t used = (size_t)C * (H / 2) * (W / 2) - 7 * (words - 1);
                CHECK((last >> 21) == 0x3F800000u >> 21); /* a float in [1, 2) */
                CHECK(used == 7 || (last & 0x1FFFFFu) >> (3 * used) == 0);
            }
            for (int add = 0; add < 2; add++) {
                for (int rows = B - 1; rows <= B; rows++) {
                    fill(base, (size_t)n, 9);
                    memcpy(d1, base, sizeof(float) * (size_t)n);
                    sfpw_conv_set_impl(impl);
                    sfpw_pool_bwd_codes(cw, R, d1, rows, add, C, H, W, scratch);
                    /* the reference: route by recomputing, then the ReLU */
                    sfpw_conv_set_impl(0);
                    sfpw_pool_bwd(X, R, dr, rows, 0, C, H, W);
                    const int nr = rows * C * H * W;
                    int bad = 0;
                    for (int j = 0; j < n; j++) {
                        float want = base[j];
                        if (j < nr) {
                            const float g = X[j] > 0.0f ? dr[j] : 0.0f;
                            want = add ? (g != 0.0f ? base[j] + g : base[j]) : g;
                        }
                        bad += memcmp(&want, &d1[j], sizeof want) != 0;
                    }
                    CHECK_EQ_INT(bad, 0);
                    if (impl) { /* the same as the C path's, bit for bit */
                        memcpy(d2, base, sizeof(float) * (size_t)n);
                        sfpw_conv_set_impl(0);
                        sfpw_pool_bwd_codes(c1, R, d2, rows, add, C, H, W, scratch);
                        CHECK(memcmp(d1, d2, sizeof(float) * (size_t)n) == 0);
                    }
                }
            }
        }
        if (simd)
            CHECK(memcmp(c1, c2, sizeof(float) * words * B) == 0);
        /* a corrupt code (7) in the first window routes nothing */
        uint32_t w0;
        memcpy(&w0, &c1[0], sizeof w0);
        w0 = (w0 & ~7u) | 7u;
        memcpy(&c1[0], &w0, sizeof w0);
        fill(d1, (size_t)n, 5);
        sfpw_pool_bwd_codes(c1, R, d1, B, 0, C, H, W, scratch);
        CHECK(d1[0] == 0.0f && d1[1] == 0.0f && d1[W] == 0.0f && d1[W + 1] == 0.0f);
    }
    sfpw_conv_set_impl(1);
}

/* Whole-model check: dL/dW of a few random coordinates per tensor. */
static void test_model_grad(const char *name)
{
    sfpw_model m;
    CHECK_EQ_INT(sfpw_model_build(&m, name), 0);
    enum { B = 3 };
    sfpw_net *net = NULL;
    CHECK_EQ_INT(sfpw_net_create(&net, &m, B), 0);
    if (!net)
        return;
    float *W = sfpw_net_weights(net), *G = sfpw_net_grads(net);
    sfpw_model_init_params(&m, W, 7);
    for (size_t i = 0; i < m.nparams; i++)
        if (W[i] == 0)
            W[i] = (float)(0.05 * sfpw_rng_normal(&rng)); /* non-zero biases */
    float *x = malloc(sizeof(float) * B * m.in_dim);
    for (size_t i = 0; i < B * m.in_dim; i++)
        x[i] = (float)sfpw_rng_uniform(&rng);
    uint8_t y[B] = { 1, 7, 4 };
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    sfpw_pass_out po;
    memset(&po, 0, sizeof po);
    CHECK_EQ_INT(sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &po), 0);
    CHECK_EQ_INT(sfpw_net_backward(net, &ps, B, &po), 0);
    float *g = malloc(sizeof(float) * m.nparams);
    memcpy(g, G, sizeof(float) * m.nparams);
    int bad = 0, tried = 0;
    for (int t = 0; t < m.ntensors; t++) {
        const sfpw_tensor *T = &m.tensors[t];
        if (T->kind == SFPW_TENSOR_ACT)
            continue;
        for (int r = 0; r < 6; r++) {
            size_t j = T->off + (size_t)(sfpw_rng_next(&rng) % T->n);
            /* two step sizes: a ReLU/max kink or float noise can spoil one */
            double num = 0;
            int okj = 0;
            for (int hs = 0; hs < 2 && !okj; hs++) {
                const float h = hs ? 5e-4f : 2e-3f;
                float v = W[j];
                sfpw_pass_out a, b;
                memset(&a, 0, sizeof a);
                memset(&b, 0, sizeof b);
                W[j] = v + h; sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &a);
                W[j] = v - h; sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &b);
                W[j] = v;
                num = (a.loss_sum - b.loss_sum) / B / (2 * h);
                okj = fabs(num - g[j]) <= 5e-2 * fmax(fabs(num), fabs(g[j])) + 3e-3;
            }
            tried++;
            if (!okj) {
                fprintf(stderr, "%s %s[%zu]: numeric %.6g analytic %.6g\n", name,
                        T->name, j - T->off, num, g[j]);
                bad++;
            }
        }
    }
    CHECK(tried > 0);
    CHECK(bad <= 1); /* a ReLU/max kink can flip under h for one coordinate */
    free(g);
    free(x);
    sfpw_net_destroy(&net);
}

static void test_optimizers(void)
{
    sfpw_opt_config c = { SFPW_OPT_SGD, 0.1f, 0.9f, 0.0f, 0.9f, 0.999f, 1e-8f };
    float w[2] = { 1, -2 }, g[2] = { 0.5f, 1 }, s1[2] = { 0 }, s2[2] = { 0 };
    sfpw_opt_update(&c, w, g, s1, s2, 2, 1, 1);
    CHECK_NEAR(w[0], 1 - 0.05, 1e-6);
    sfpw_opt_update(&c, w, g, s1, s2, 2, 2, 1);
    CHECK_NEAR(w[0], 0.95 - 0.1 * (0.9 * 0.5 + 0.5), 1e-6);
    /* Adam: first step moves every weight by ~lr against the gradient sign */
    c.kind = SFPW_OPT_ADAM;
    c.lr = 0.01f;
    float w2[2] = { 1, -2 }, m[2] = { 0 }, v[2] = { 0 };
    sfpw_opt_update(&c, w2, g, m, v, 2, 1, 0);
    CHECK_NEAR(w2[0], 0.99, 1e-5);
    CHECK_NEAR(w2[1], -2.01, 1e-5);
    /* weight decay pulls towards 0 with a zero gradient */
    float w3 = 1, z = 0, a = 0, b = 0;
    c.kind = SFPW_OPT_SGD;
    c.weight_decay = 0.1f;
    c.momentum = 0;
    sfpw_opt_update(&c, &w3, &z, &a, &b, 1, 1, 1);
    CHECK_NEAR(w3, 1 - 0.01 * 0.1, 1e-6);
}

static void test_determinism(void)
{
    sfpw_model m;
    sfpw_model_build(&m, "cnn");
    sfpw_net *a = NULL, *b = NULL;
    CHECK_EQ_INT(sfpw_net_create(&a, &m, 4), 0);
    CHECK_EQ_INT(sfpw_net_create(&b, &m, 4), 0);
    if (!a || !b)
        return;
    sfpw_model_init_params(&m, sfpw_net_weights(a), 3);
    sfpw_model_init_params(&m, sfpw_net_weights(b), 3);
    CHECK(memcmp(sfpw_net_weights(a), sfpw_net_weights(b), m.nparams * 4) == 0);
    float x[4 * 784];
    for (int i = 0; i < 4 * 784; i++)
        x[i] = (float)sfpw_rng_uniform(&rng);
    uint8_t y[4] = { 0, 1, 2, 3 };
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    sfpw_pass_out pa, pb;
    memset(&pa, 0, sizeof pa);
    memset(&pb, 0, sizeof pb);
    sfpw_net_forward(a, &ps, x, y, 4, 0.25f, &pa);
    sfpw_net_backward(a, &ps, 4, &pa);
    sfpw_net_forward(b, &ps, x, y, 4, 0.25f, &pb);
    sfpw_net_backward(b, &ps, 4, &pb);
    CHECK(pa.loss_sum == pb.loss_sum);
    CHECK(memcmp(sfpw_net_grads(a), sfpw_net_grads(b), m.nparams * 4) == 0);
    /* different seeds give different weights */
    sfpw_model_init_params(&m, sfpw_net_weights(b), 4);
    CHECK(memcmp(sfpw_net_weights(a), sfpw_net_weights(b), m.nparams * 4) != 0);
    /* shuffle is a permutation and depends on the seed */
    uint32_t p1[100], p2[100];
    int seen[100] = { 0 };
    for (int i = 0; i < 100; i++)
        p1[i] = p2[i] = (uint32_t)i;
    sfpw_rng r1, r2;
    sfpw_rng_seed(&r1, 5, 0);
    sfpw_rng_seed(&r2, 6, 0);
    sfpw_rng_shuffle(&r1, p1, 100);
    sfpw_rng_shuffle(&r2, p2, 100);
    for (int i = 0; i < 100; i++)
        seen[p1[i]]++;
    int ok = 1;
    for (int i = 0; i < 100; i++)
        ok &= seen[i] == 1;
    CHECK(ok);
    CHECK(memcmp(p1, p2, sizeof p1) != 0);
    sfpw_net_destroy(&a);
    sfpw_net_destroy(&b);
}

/*
 * A quantized training pass through the in-process stash: frames round trip,
 * the bitlength gradients are finite, and with the second-order term
 * dominating (large curvature scale) adding a bit is always "downhill".
 */
static void test_quantized_pass(const char *name)
{
    sfpw_model m;
    sfpw_model_build(&m, name);
    enum { B = 4 };
    sfpw_net *net = NULL;
    sfpw_stash *st = NULL;
    CHECK_EQ_INT(sfpw_net_create(&net, &m, B), 0);
    CHECK_EQ_INT(sfpw_stash_local_open(&st), 0);
    if (!net || !st)
        return;
    sfpw_model_init_params(&m, sfpw_net_weights(net), 5);
    float *x = malloc(sizeof(float) * B * m.in_dim);
    for (size_t i = 0; i < B * m.in_dim; i++)
        x[i] = (float)sfpw_rng_uniform(&rng);
    uint8_t y[B] = { 3, 1, 4, 1 };
    sfp_width w[SFPW_MAX_TENSORS];
    for (int t = 0; t < m.ntensors; t++)
        w[t] = (sfp_width){ .k = 1, .e = 3, .k_lo = 1, .k_hi = 2, .e_lo = 3, .e_hi = 4 };
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    ps.quantize = ps.stash = ps.want_grad = 1;
    ps.width = w;
    sfp_params_default(&ps.base);
    ps.st = st;
    ps.sample_budget = 4096;
    ps.fisher = 1e6;
    sfpw_pass_out po;
    memset(&po, 0, sizeof po);
    CHECK_EQ_INT(sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &po), 0);
    CHECK_EQ_INT(sfpw_net_backward(net, &ps, B, &po), 0);
    for (int t = 0; t < m.ntensors; t++) {
        const sfpw_tensor *T = &m.tensors[t];
        if (T->kind != SFPW_TENSOR_ACT)
            continue;
        CHECK(isfinite(po.gn[t]) && isfinite(po.ge[t]));
        /* A max-pool output of on-grid values is already on the grid of
         * its producer: its mantissa bracket costs nothing, gradient 0. */
        if (T->value > 0 && m.layers[m.values[T->value].producer].ops->subset &&
            m.values[m.layers[m.values[T->value].producer].in[0]].tensor >= 0)
            CHECK(po.gn[t] == 0);
        else
            CHECK(po.gn[t] < 0);
        CHECK(po.bytes[t] > 0 && po.bytes[t] < po.values[t] * 4);
    }
    /* everything was dropped: a second step with the same key works */
    memset(&po, 0, sizeof po);
    CHECK_EQ_INT(sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &po), 0);
    CHECK_EQ_INT(sfpw_net_backward(net, &ps, B, &po), 0);
    free(x);
    sfpw_stash_close(&st);
    sfpw_net_destroy(&net);
}

int main(void)
{
    sfpw_rng_seed(&rng, 42, 0);
    test_dense();
    test_conv();
    test_pool_relu_loss();
    test_pool_simd();
    test_pool_codes();
    test_model_grad("mlp");
    test_model_grad("cnn");
    test_optimizers();
    test_determinism();
    test_quantized_pass("mlp");
    test_quantized_pass("cnn");
    WCHECK_DONE();
}
