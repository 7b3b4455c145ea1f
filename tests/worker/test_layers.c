/*
 * test_layers.c - every layer kind against central finite differences
 * (parameters and the input gradient, through a small model file that uses
 * it), the built-in resnet and vit end to end, a model file with a residual
 * add, the arena plan (release mode gives the same numbers), and the
 * stashed tensors of each kind.
 */
#include <string.h>

#include "layer.h"
#include "net.h"
#include "wcheck.h"

static sfpw_rng rng;

typedef struct gcheck {
    int tried, bad;
} gcheck;

/* loss of one forward with the current weights */
static double loss_of(sfpw_net *net, const float *x, const uint8_t *y, int B)
{
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    sfpw_pass_out po;
    memset(&po, 0, sizeof po);
    sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &po);
    return po.loss_sum / B;
}

/* numeric derivative of the loss in *v, three step sizes (a kink of ReLU
 * or max can spoil one); 1 if one of them agrees with ana */
static int agrees(sfpw_net *net, const float *x, const uint8_t *y, int B, float *v,
                  double ana, double *num)
{
    static const float steps[] = { 1e-2f, 2e-3f, 5e-4f };
    for (int hs = 0; hs < 3; hs++) {
        const float h = steps[hs] * fmaxf(1.0f, fabsf(*v));
        float keep = *v;
        *v = keep + h;
        double lp = loss_of(net, x, y, B);
        *v = keep - h;
        double lm = loss_of(net, x, y, B);
        *v = keep;
        *num = (lp - lm) / (2 * h);
        if (fabs(*num - ana) <= 5e-2 * fmax(fabs(*num), fabs(ana)) + 2e-3)
            return 1;
    }
    return 0;
}

/*
 * Gradient check of a model: up to per coordinates of every parameter
 * tensor and of the input. Returns the coordinates that disagree.
 */
static gcheck check_model(const sfpw_model *m, int B, int per, const char *what)
{
    gcheck g = { 0, 0 };
    sfpw_net *net = NULL;
    CHECK_EQ_INT(sfpw_net_create(&net, m, B), 0);
    if (!net)
        return g;
    float *W = sfpw_net_weights(net), *G = sfpw_net_grads(net);
    sfpw_model_init_params(m, W, 11);
    if (m->nbuffers)
        sfpw_model_init_buffers(m, sfpw_net_buffers(net));
    for (size_t i = 0; i < m->nparams; i++)
        W[i] += (float)(0.05 * sfpw_rng_normal(&rng)); /* no zero biases, scales != 1 */
    float *x = malloc(sizeof(float) * B * m->in_dim);
    for (size_t i = 0; i < B * m->in_dim; i++)
        x[i] = (float)sfpw_rng_normal(&rng);
    uint8_t y[16];
    for (int i = 0; i < B; i++)
        y[i] = (uint8_t)(sfpw_rng_next(&rng) % (uint64_t)m->classes);
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    ps.input_grad = 1;
    sfpw_pass_out po;
    memset(&po, 0, sizeof po);
    CHECK_EQ_INT(sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &po), 0);
    CHECK_EQ_INT(sfpw_net_backward(net, &ps, B, &po), 0);
    float *gw = malloc(sizeof(float) * m->nparams), *gx = malloc(sizeof(float) * B * m->in_dim);
    memcpy(gw, G, sizeof(float) * m->nparams);
    memcpy(gx, sfpw_net_value(net, 0, 1), sizeof(float) * B * m->in_dim);
    for (int t = 0; t < m->ntensors; t++) {
        const sfpw_tensor *T = &m->tensors[t];
        if (!sfpw_tensor_is_param(T->kind))
            continue;
        for (int r = 0; r < per; r++) {
            size_t j = T->off + (size_t)(sfpw_rng_next(&rng) % T->n);
            double num;
            g.tried++;
            if (!agrees(net, x, y, B, &W[j], gw[j], &num)) {
                fprintf(stderr, "%s: %s[%zu]: numeric %.6g analytic %.6g\n", what, T->name,
                        j - T->off, num, gw[j]);
                g.bad++;
            }
        }
    }
    for (int r = 0; r < per; r++) {
        size_t j = (size_t)(sfpw_rng_next(&rng) % (B * m->in_dim));
        double num;
        g.tried++;
        if (!agrees(net, x, y, B, &x[j], gx[j], &num)) {
            fprintf(stderr, "%s: input[%zu]: numeric %.6g analytic %.6g\n", what, j, num, gx[j]);
            g.bad++;
        }
    }
    free(gw);
    free(gx);
    free(x);
    sfpw_net_destroy(&net);
    return g;
}

static int parse(sfpw_model *m, const char *text)
{
    char err[512];
    int rc = sfpw_model_parse(m, text, strlen(text), "test", err, sizeof err);
    if (rc)
        fprintf(stderr, "model: %s\n%s", err, text);
    return rc;
}

/* One small network per layer kind: the kind right after the input (or
 * after a patch layer for token layers), so that the input gradient flows
 * through it. */
static const struct {
    const char *kind, *text;
} cases[] = {
    {"dense", "input x 2x3x3\ndense a x out=5 act=relu\ndense o a out=3\n"},
    {"dense-nobias", "input x 2x3x3\ndense a x out=5 bias=no\ndense o a out=3\n"},
    {"conv", "input x 2x5x6\nconv a x out=3 k=3 pad=1\navgpool p a\ndense o p out=3\n"},
    {"conv-stride", "input x 2x7x6\nconv a x out=3 k=3 stride=2 pad=1 bias=no\n"
                    "conv b a out=2 k=1 stride=2\navgpool p b\ndense o p out=3\n"},
    {"maxpool", "input x 2x4x6\nmaxpool a x\ndense o a out=3\n"},
    {"maxpool-codes", "input x 2x6x6\nconv a x out=3 k=3 pad=1 act=relu\nmaxpool p a\n"
                      "dense o p out=3\n"},
    {"maxpool-shared", "input x 2x4x4\nconv a x out=2 k=3 pad=1 act=relu\nmaxpool p a\n"
                       "avgpool q a\ndense o1 p out=3\ndense o2 q out=3\nadd o o1 o2\n"},
    {"avgpool", "input x 3x4x5\navgpool a x\ndense o a out=3\n"},
    {"relu", "input x 2x3x3\nrelu a x\ndense o a out=3\n"},
    {"batchnorm", "input x 3x4x4\nbatchnorm a x act=relu\nconv b a out=2 k=3 pad=1\n"
                  "batchnorm c b\navgpool p c\ndense o p out=3\n"},
    {"batchnorm-1d", "input x 6\nbatchnorm a x\ndense o a out=3\n"},
    {"add", "input x 2x4x4\nconv a x out=2 k=3 pad=1 act=relu\nadd s a x act=relu\n"
            "conv b s out=3 k=1 stride=2\nadd t b b\navgpool p t\ndense o p out=3\n"},
    {"patch", "input x 2x4x6\npatch a x patch=2 out=5\ndense b a out=2\ntoken c b index=1\n"
              "dense o c out=3\n"},
    {"layernorm", "input x 1x4x4\npatch p x patch=2 out=6\nlayernorm a p\ntoken c a\n"
                  "layernorm d c\ndense o d out=3\n"},
    {"gelu", "input x 1x4x4\npatch p x patch=2 out=6\ngelu a p\ntoken c a index=2\n"
             "dense o c out=3\n"},
    {"attention", "input x 1x4x4\npatch p x patch=2 out=8\ndense q p out=8\ndense k p out=8\n"
                  "dense v p out=8\nattention a q k v heads=2\ntoken c a index=3\n"
                  "dense o c out=3\n"},
    {"attention-self", "input x 1x4x4\npatch p x patch=2 out=4\nattention a p p p heads=2\n"
                       "token c a index=1\ndense o c out=3\n"},
    {"cls", "input x 1x4x4\npatch p x patch=2 out=4\ncls a p\ntoken c a index=0\n"
            "dense d a out=2\ntoken e d index=2\nadd s c c\ndense o1 s out=3\n"
            "dense o2 e out=3\nadd o o1 o2\n"},
    {"posembed", "input x 1x4x4\npatch p x patch=2 out=4\nposembed a p\ntoken c a index=2\n"
                 "dense o c out=3\n"},
    {"token", "input x 1x4x4\npatch p x patch=2 out=4\ntoken a p index=3\ndense o a out=3\n"},
    {"maxpool-codes-bn", "input x 2x4x4\nconv a x out=3 k=3 pad=1 bias=no\n"
                         "batchnorm b a act=relu\nmaxpool p b\ndense o p out=3\n"},
};

static void test_kinds(void)
{
    int covered[64] = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sfpw_model m;
        if (parse(&m, cases[i].text)) {
            CHECK(0);
            continue;
        }
        gcheck g = check_model(&m, 3, 8, cases[i].kind);
        CHECK(g.tried > 8);
        if (g.bad)
            fprintf(stderr, "%s: %d of %d disagree\n", cases[i].kind, g.bad, g.tried);
        CHECK(g.bad <= 1); /* a kink can flip under h for one coordinate */
        for (int l = 0; l < m.nlayers; l++)
            for (int k = 0; sfpw_layer_kinds[k]; k++)
                covered[k] |= m.layers[l].ops == sfpw_layer_kinds[k];
    }
    for (int k = 0; sfpw_layer_kinds[k]; k++) {
        if (!covered[k])
            fprintf(stderr, "layer kind %s has no gradient check\n", sfpw_layer_kinds[k]->kind);
        CHECK(covered[k]);
    }
}

/* The built-in models end to end (a few coordinates per tensor). */
static void test_builtin(const char *name, int per)
{
    sfpw_model m;
    CHECK_EQ_INT(sfpw_model_build(&m, name), 0);
    gcheck g = check_model(&m, 2, per, name);
    if (g.bad)
        fprintf(stderr, "%s: %d of %d disagree\n", name, g.bad, g.tried);
    CHECK(g.tried > 20);
    CHECK(g.bad <= 2);
}

/* What each layer kind stashes, by role. */
static void test_stashed(void)
{
    sfpw_model m;
    CHECK_EQ_INT(sfpw_model_build(&m, "resnet"), 0);
    int roles[SFPW_ROLE_COUNT] = { 0 };
    for (int t = 0; t < m.ntensors; t++)
        roles[m.tensors[t].role]++;
    CHECK_EQ_INT(roles[SFPW_ROLE_INPUT], 1);
    CHECK_EQ_INT(roles[SFPW_ROLE_BN_IN], 21);  /* every conv output */
    CHECK_EQ_INT(roles[SFPW_ROLE_STATS], 21);  /* every BatchNorm   */
    /* the block outputs (add act=relu): every other one recomputed from
     * the second BatchNorm's output (itself rebuilt from the stashed conv
     * output) and the shortcut, when that is stashed or rebuilt once */
    CHECK_EQ_INT(roles[SFPW_ROLE_RELU], 3);
    CHECK_EQ_INT(roles[SFPW_ROLE_RECOMPUTED], 16); /* stem, 9 inner BatchNorm+ReLU, 6 adds */
    int adds = 0, rebuilt = 0;
    for (int t = 0; t < m.ntensors; t++)
        if (m.tensors[t].role == SFPW_ROLE_RECOMPUTED) {
            CHECK_EQ_INT(m.tensors[t].kind, SFPW_TENSOR_RECOMP);
            const sfpw_layer *pl = &m.layers[m.tensors[t].layer];
            CHECK(pl->relu);
            CHECK(!strcmp(pl->ops->kind, "batchnorm") || !strcmp(pl->ops->kind, "add"));
            adds += !strcmp(pl->ops->kind, "add");
        }
    CHECK_EQ_INT(adds, 6); /* s1b1, s1b3, s2b1, s2b3, s3b1, s3b3 */
    for (int v = 0; v < m.nvalues; v++) {
        if (!m.values[v].rebuilt)
            continue;
        rebuilt++; /* a BatchNorm output only an add reads: no tensor */
        CHECK_EQ_INT(m.values[v].tensor, -1);
        CHECK(!strcmp(m.layers[m.values[v].producer].ops->kind, "batchnorm"));
    }
    CHECK_EQ_INT(rebuilt, 8); /* 6 blocks' second BatchNorm, 2 projections' */
    CHECK_EQ_INT(roles[SFPW_ROLE_POOLED], 1);  /* the dense layer's input */
    CHECK_EQ_INT(m.ntensors - 63, 21 + 2 * 21 + 2);
    CHECK_EQ_INT(sfpw_model_build(&m, "vit"), 0);
    memset(roles, 0, sizeof roles);
    for (int t = 0; t < m.ntensors; t++)
        roles[m.tensors[t].role]++;
    CHECK_EQ_INT(roles[SFPW_ROLE_Q], 4);
    CHECK_EQ_INT(roles[SFPW_ROLE_K], 4);
    CHECK_EQ_INT(roles[SFPW_ROLE_V], 4);
    CHECK_EQ_INT(roles[SFPW_ROLE_PROBS], 0);      /* recomputed from Q and K */
    CHECK_EQ_INT(roles[SFPW_ROLE_GELU_IN], 4);
    CHECK_EQ_INT(roles[SFPW_ROLE_GELU_OUT], 0);   /* recomputed from the GELU input */
    CHECK_EQ_INT(roles[SFPW_ROLE_RESIDUAL], 7);   /* LN inputs inside the blocks */
    CHECK_EQ_INT(roles[SFPW_ROLE_LN_IN], 2);      /* the first block's, the class token */
    CHECK_EQ_INT(roles[SFPW_ROLE_NORM_OUT], 0);   /* dense inputs after LayerNorm: */
    CHECK_EQ_INT(roles[SFPW_ROLE_RECOMPUTED], 17); /* recomputed, as the GELU outputs
                                                   * and the attention probabilities */
    for (int t = 0; t < m.ntensors; t++)
        if (strstr(m.tensors[t].name, ".probs")) {
            CHECK_EQ_INT(m.tensors[t].kind, SFPW_TENSOR_RECOMP);
            CHECK_EQ_INT(m.tensors[t].slot, 0);
        }
    CHECK_EQ_INT(roles[SFPW_ROLE_ATTN_OUT], 4);
    CHECK_EQ_INT(roles[SFPW_ROLE_STATS], 9);

    /* cnn: each max pool keeps argmax codes in place of its ReLU input */
    CHECK_EQ_INT(sfpw_model_build(&m, "cnn"), 0);
    memset(roles, 0, sizeof roles);
    for (int t = 0; t < m.ntensors; t++) {
        roles[m.tensors[t].role]++;
        CHECK(strcmp(m.tensors[t].name, "conv1.out") && strcmp(m.tensors[t].name, "conv2.out"));
        if (!strcmp(m.tensors[t].name, "pool1.argmax")) {
            CHECK_EQ_INT(m.tensors[t].kind, SFPW_TENSOR_CODES);
            CHECK_EQ_INT(m.tensors[t].n, 16 * 28 * 28); /* the values it stands for */
        }
    }
    CHECK_EQ_INT(roles[SFPW_ROLE_ARGMAX], 2);
    CHECK_EQ_INT(roles[SFPW_ROLE_POOLED], 2);
    CHECK(m.layers[0].relu_masked && m.layers[1].relu_codes);
    /* not when the ReLU output has another reader */
    CHECK_EQ_INT(parse(&m, cases[6].text), 0);
    CHECK(!strcmp(cases[6].kind, "maxpool-shared"));
    int codes = 0, conv_out = 0;
    for (int t = 0; t < m.ntensors; t++) {
        codes += m.tensors[t].kind == SFPW_TENSOR_CODES;
        conv_out += !strcmp(m.tensors[t].name, "a.out");
    }
    CHECK(codes == 0 && conv_out == 1);
    /* a BatchNorm with act=relu under the pool: codes, no BN output */
    const size_t last = sizeof cases / sizeof cases[0] - 1;
    CHECK(!strcmp(cases[last].kind, "maxpool-codes-bn"));
    CHECK_EQ_INT(parse(&m, cases[last].text), 0);
    codes = conv_out = 0;
    for (int t = 0; t < m.ntensors; t++) {
        codes += m.tensors[t].kind == SFPW_TENSOR_CODES;
        conv_out += !strcmp(m.tensors[t].name, "b.out");
    }
    CHECK(codes == 1 && conv_out == 0);
}

/*
 * Release mode (stashed tensors leave the arena between put and get) and
 * keep mode give bit-identical gradients through the in-process stash, and
 * the release arena is smaller.
 */
static void test_release(const char *name)
{
    sfpw_model m;
    CHECK_EQ_INT(sfpw_model_build(&m, name), 0);
    enum { B = 4 };
    sfpw_net *a = NULL, *b = NULL, *c = NULL;
    sfpw_stash *sa = NULL, *sb = NULL;
    CHECK_EQ_INT(sfpw_net_create(&a, &m, B), 0);
    CHECK_EQ_INT(sfpw_net_create(&c, &m, B), 0);
    CHECK_EQ_INT(sfpw_net_create(&b, &m, B), 0);
    CHECK_EQ_INT(sfpw_net_set_release(b), 0);
    CHECK_EQ_INT(sfpw_stash_local_open(&sa), 0);
    CHECK_EQ_INT(sfpw_stash_local_open(&sb), 0);
    size_t keep, rel, stashed;
    sfpw_net_sizes(b, &keep, &rel, &stashed);
    CHECK(rel < keep);
    CHECK(stashed > 0);
    sfpw_model_init_params(&m, sfpw_net_weights(a), 2);
    sfpw_model_init_params(&m, sfpw_net_weights(b), 2);
    sfpw_model_init_params(&m, sfpw_net_weights(c), 2);
    if (m.nbuffers) {
        sfpw_model_init_buffers(&m, sfpw_net_buffers(a));
        sfpw_model_init_buffers(&m, sfpw_net_buffers(b));
        sfpw_model_init_buffers(&m, sfpw_net_buffers(c));
    }
    float *x = malloc(sizeof(float) * B * m.in_dim);
    for (size_t i = 0; i < B * m.in_dim; i++)
        x[i] = (float)sfpw_rng_uniform(&rng);
    uint8_t y[B] = { 1, 2, 3, 4 };
    sfp_width w[SFPW_MAX_TENSORS];
    for (int t = 0; t < m.ntensors; t++)
        w[t] = (sfp_width){ .k = 3, .e = 5, .k_lo = 3, .k_hi = 4, .e_lo = 5, .e_hi = 6 };
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    ps.quantize = ps.stash = ps.want_grad = 1;
    ps.width = w;
    sfp_params_default(&ps.base);
    ps.base.coder = SFP_CODER_GECKO;
    ps.sample_budget = 4096;
    for (int step = 0; step < 2; step++) {
        sfpw_pass_out pa, pb;
        memset(&pa, 0, sizeof pa);
        memset(&pb, 0, sizeof pb);
        ps.key.step = (uint64_t)step;
        ps.st = sa;
        CHECK_EQ_INT(sfpw_net_forward(a, &ps, x, y, B, 0.25f, &pa), 0);
        CHECK_EQ_INT(sfpw_net_backward(a, &ps, B, &pa), 0);
        ps.st = sb;
        CHECK_EQ_INT(sfpw_net_forward(b, &ps, x, y, B, 0.25f, &pb), 0);
        CHECK_EQ_INT(sfpw_net_backward(b, &ps, B, &pb), 0);
        CHECK(pa.loss_sum == pb.loss_sum);
        CHECK(memcmp(sfpw_net_grads(a), sfpw_net_grads(b), m.nparams * sizeof(float)) == 0);
        /* without a stash nothing is fetched or recomputed (backward reads
         * what forward left in the arena): the same gradients, so a
         * recomputed output is bit for bit what forward wrote */
        sfpw_pass_out pc;
        memset(&pc, 0, sizeof pc);
        ps.stash = 0;
        CHECK_EQ_INT(sfpw_net_forward(c, &ps, x, y, B, 0.25f, &pc), 0);
        CHECK_EQ_INT(sfpw_net_backward(c, &ps, B, &pc), 0);
        ps.stash = 1;
        CHECK(pc.loss_sum == pb.loss_sum);
        CHECK(memcmp(sfpw_net_grads(c), sfpw_net_grads(b), m.nparams * sizeof(float)) == 0);
        CHECK(memcmp(pc.gn, pb.gn, sizeof pc.gn) == 0);
        CHECK(memcmp(pa.gn, pb.gn, sizeof pa.gn) == 0);
        CHECK(memcmp(pa.bytes, pb.bytes, sizeof pa.bytes) == 0);
        int stashed_n = 0;
        for (int t = 0; t < m.ntensors; t++) {
            if (!sfpw_tensor_is_stashed(m.tensors[t].kind))
                continue;
            stashed_n++;
            CHECK(pb.values[t] > 0);
            if (m.tensors[t].kind == SFPW_TENSOR_RECOMP) { /* counted, never stored */
                CHECK(pb.bytes[t] == 0);
                continue;
            }
            CHECK(pb.bytes[t] > 0);
            if (m.tensors[t].kind == SFPW_TENSOR_ACT)
                CHECK(pb.bytes[t] < pb.values[t] * 4);
            else if (m.tensors[t].kind == SFPW_TENSOR_CODES) /* 4/7 byte per window */
                CHECK(pb.bytes[t] >= pb.values[t] / 7 && pb.bytes[t] < pb.values[t] / 4);
            else
                CHECK(pb.bytes[t] >= pb.values[t] * 4); /* raw FP32 frames */
        }
        CHECK(stashed_n > 0);
    }
    /* releasing a net that was not planned for it: backward without stash fails */
    sfpw_pass plain;
    memset(&plain, 0, sizeof plain);
    sfpw_pass_out po;
    memset(&po, 0, sizeof po);
    CHECK_EQ_INT(sfpw_net_forward(b, &plain, x, y, B, 0.25f, &po), 0);
    CHECK_EQ_INT(sfpw_net_backward(b, &plain, B, &po), SFP_EINVAL);
    free(x);
    sfpw_stash_close(&sa);
    sfpw_stash_close(&sb);
    sfpw_net_destroy(&a);
    sfpw_net_destroy(&b);
    sfpw_net_destroy(&c);
}

/* BatchNorm in evaluation uses the running statistics. */
static void test_bn_eval(void)
{
    sfpw_model m;
    CHECK_EQ_INT(parse(&m, "input x 2x1x1\nbatchnorm a x\ndense o a out=2 bias=no\n"), 0);
    sfpw_net *n = NULL;
    CHECK_EQ_INT(sfpw_net_create(&n, &m, 2), 0);
    float *W = sfpw_net_weights(n), *buf = sfpw_net_buffers(n);
    sfpw_model_init_params(&m, W, 1);
    sfpw_model_init_buffers(&m, buf);
    CHECK(buf[0] == 0 && buf[1] == 0 && buf[2] == 1 && buf[3] == 1);
    float x[4] = { 1, 2, 3, 6 }; /* channel 0: 1, 3; channel 1: 2, 6 */
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    CHECK_EQ_INT(sfpw_net_run(n, &ps, x, 2), 0);
    /* running mean 0.9*0 + 0.1*mean, variance 0.9*1 + 0.1*unbiased var */
    CHECK_NEAR(buf[0], 0.2, 1e-6);
    CHECK_NEAR(buf[1], 0.4, 1e-6);
    CHECK_NEAR(buf[2], 0.9 + 0.1 * 2, 1e-6);
    CHECK_NEAR(buf[3], 0.9 + 0.1 * 8, 1e-6);
    /* training output: (x - mean) / sqrt(var + eps), var biased */
    const float *a = sfpw_net_value(n, 1, 0);
    CHECK_NEAR(a[0], -1 / sqrt(1 + 1e-5), 1e-5);
    CHECK_NEAR(a[3], 2 / sqrt(4 + 1e-5), 1e-5);
    uint64_t correct = 0;
    uint8_t y[2] = { 0, 1 };
    CHECK_EQ_INT(sfpw_net_eval(n, &ps, x, y, 2, &correct), 0);
    a = sfpw_net_value(n, 1, 0);
    CHECK_NEAR(a[0], (1 - 0.2) / sqrt(1.1 + 1e-5), 1e-5);
    CHECK_NEAR(a[1], (2 - 0.4) / sqrt(1.7 + 1e-5), 1e-5);
    sfpw_net_destroy(&n);
}

int main(void)
{
    sfpw_rng_seed(&rng, 42, 0);
    test_kinds();
    test_builtin("vit", 3);
    test_builtin("resnet", 1);
    test_stashed();
    test_release("resnet");
    test_release("vit");
    test_release("cnn");
    test_bn_eval();
    WCHECK_DONE();
}
