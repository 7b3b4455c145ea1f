/*
 * test_model.c - model files: the built-in models parse to the documented
 * shapes; a file with a residual add; every class of bad file (unknown
 * layer, shape mismatch, dangling name, cycle, huge sizes, bad options,
 * unused outputs, ...) is refused with its line number and the reason.
 */
#include <string.h>

#include <sfp/sfp.h>

#include "layer.h"
#include "model.h"
#include "wcheck.h"

static void expect_error(const char *text, const char *want)
{
    sfpw_model *m = malloc(sizeof *m);
    char err[512] = "";
    int rc = sfpw_model_parse(m, text, strlen(text), "t", err, sizeof err);
    if (rc != SFP_EINVAL || !strstr(err, want)) {
        fprintf(stderr, "model:\n%s\nexpected error containing \"%s\", got rc %d \"%s\"\n", text,
                want, rc, err);
        wcheck_failures++;
    }
    free(m);
}

static void test_builtins(void)
{
    sfpw_model *m = malloc(sizeof *m);
    char s[64];
    for (int i = 0; sfpw_model_builtin_names[i]; i++) {
        CHECK_EQ_INT(sfpw_model_build(m, sfpw_model_builtin_names[i]), 0);
        CHECK_EQ_INT(m->in_dim, 784);
        CHECK_EQ_INT(m->classes, 10);
        CHECK(!strcmp(m->name, sfpw_model_builtin_names[i]));
    }
    CHECK_EQ_INT(sfpw_model_build(m, "resnet"), 0);
    CHECK_EQ_INT(m->nparams, 272186); /* ResNet-20's 0.27 M */
    int convs = 0, adds = 0;
    for (int i = 0; i < m->nlayers; i++) {
        convs += !strcmp(m->layers[i].ops->kind, "conv");
        adds += !strcmp(m->layers[i].ops->kind, "add");
    }
    CHECK_EQ_INT(convs, 21); /* stem + 18 + 2 projections */
    CHECK_EQ_INT(adds, 9);
    CHECK(!strcmp(sfpw_shape_str(&m->values[m->layers[m->nlayers - 2].in[0]].shape, s,
                                 sizeof s), "64x7x7"));
    CHECK_EQ_INT(sfpw_model_build(m, "vit"), 0);
    int att = 0;
    for (int i = 0; i < m->nlayers; i++)
        if (!strcmp(m->layers[i].ops->kind, "attention")) {
            att++;
            CHECK(!strcmp(sfpw_shape_str(&m->layers[i].out_shape, s, sizeof s), "50x64"));
            CHECK_EQ_INT(m->layers[i].opt[0], 4);
        }
    CHECK_EQ_INT(att, 4);
    CHECK_EQ_INT(sfpw_model_build(m, "nope"), SFP_EINVAL);
    /* the same text gives the same graph hash; another text another */
    sfpw_model *m2 = malloc(sizeof *m2);
    CHECK_EQ_INT(sfpw_model_build(m2, "vit"), 0);
    CHECK(m->hash == m2->hash);
    CHECK_EQ_INT(sfpw_model_build(m2, "resnet"), 0);
    CHECK(m->hash != m2->hash);
    free(m2);
    free(m);
}

static void test_residual_file(void)
{
    /* order-free: layers may be listed before their inputs */
    const char *text =
        "# a residual block\n"
        "model tiny\n"
        "input img 1x28x28\n"
        "dense  fc    pool out=10\n"
        "add    res   c2 c0 act=relu   # the residual sum\n"
        "conv   c0    img out=8 k=3 pad=1 act=relu\n"
        "conv   c1    c0 out=8 k=3 pad=1 bias=no\n"
        "batchnorm c2 c1\n"
        "avgpool pool res\n";
    sfpw_model *m = malloc(sizeof *m);
    char err[256] = "";
    CHECK_EQ_INT(sfpw_model_parse(m, text, strlen(text), "x", err, sizeof err), 0);
    if (err[0])
        fprintf(stderr, "%s\n", err);
    CHECK(!strcmp(m->name, "tiny"));
    CHECK_EQ_INT(m->nlayers, 6);
    CHECK(!strcmp(m->layers[0].name, "c0")); /* execution order */
    CHECK(!strcmp(m->layers[5].name, "fc"));
    CHECK_EQ_INT(m->output, m->layers[5].out);
    CHECK_EQ_INT(m->classes, 10);
    CHECK_EQ_INT(m->layers[3].line, 5);
    free(m);
}

static void test_errors(void)
{
    const char *in = "input x 1x28x28\n";
    char buf[4096];
#define ERR(body, want) do { snprintf(buf, sizeof buf, "%s%s", in, body); expect_error(buf, want); } while (0)
    ERR("convv a x out=3\n", "line 2: unknown layer kind 'convv'");
    ERR("conv a x out=8 k=3\nconv b x out=4 k=3\nadd c a b\ndense o c out=10\n",
        "line 4: add 'c': inputs of different shapes 8x26x26 and 4x26x26");
    ERR("dense o nope out=10\n", "line 2: dense 'o': input 'nope' is not defined");
    ERR("dense a b out=10\ndense b a out=10\ndense o a out=10\n", "is in a cycle: ");
    ERR("relu a a\n", "line 2: relu 'a' reads its own output");
    expect_error("input x 1x256x256\ndense a x out=8192\ndense o a out=10\n",
                 "line 2: dense 'a': more than 268435456 parameters in all");
    expect_error("input x 1x4096x4097\nconv a x out=16 k=1\navgpool p a\ndense o p out=10\n",
                 "line 1: input shape '1x4096x4097' has more than 16777216 values");
    expect_error("input x 1x1024x1024\nconv a x out=32 k=1\navgpool p a\ndense o p out=10\n",
                 "line 2: conv 'a': output 32x1024x1024 has more than 16777216 values");
    expect_error("input x 100000\ndense o x out=10\n", "'100000' is not a size from 1 to 65536");
    expect_error("input x 1x2x3x4\ndense o x out=10\n", "at most 3 dimensions");
    expect_error("input x 1xx3\ndense o x out=10\n", "is not");
    ERR("dense o x\n", "line 2: dense 'o' needs out=N");
    ERR("dense o x out=0\n", "line 2: dense 'o': out='0' is not a number from 1 to 65536");
    ERR("dense o x out=10 bias=maybe\n", "bias='maybe' is not a number from 0 to 1");
    ERR("dense o x out=10 stride=2\n", "line 2: dense 'o': unknown option 'stride' (out, bias, act)");
    ERR("dense o x out=10 act=tanh\n", "act='tanh' (relu or none)");
    ERR("maxpool p x act=relu\ndense o p out=10\n", "maxpool 'p': no act= option");
    ERR("add a x\ndense o a out=10\n", "line 2: add 'a' takes 2 inputs, got 1");
    ERR("relu a x x\n", "line 2: relu 'a' takes 1 input");
    ERR("dense o x out=10\ndense o x out=10\n", "line 3: 'o' is already defined on line 2");
    ERR("dense x x out=10\n", "'x' is already the input's name");
    ERR("dense a x out=10\ndense o x out=10\n", "line 2: the output of 'a' is not used");
    ERR("conv o x out=10 k=3\n", "the logits 'o' must be a vector of class scores, not 10x26x26");
    ERR("conv o x out=10 k=31\n", "k='31' is not a number from 1 to 15");
    ERR("conv a x out=8 k=15\nconv b a out=8 k=15\n",
        "line 3: conv 'b': kernel 15 larger than the padded input 14x14");
    ERR("maxpool a x\nmaxpool b a\nmaxpool c b\navgpool p c\ndense o p out=10\n",
        "line 4: maxpool 'c': needs a CxHxW input with even H and W");
    ERR("attention a x x x heads=2\n", "needs TxD inputs");
    ERR("patch p x patch=4 out=12\nattention a p p p heads=5\n",
        "line 3: attention 'a': heads=5 does not divide D=12");
    ERR("patch p x patch=5 out=12\n", "H and W multiples of 5");
    ERR("patch p x patch=4 out=8\ntoken t p index=49\n", "index=49 but only 49 tokens");
    ERR("dense 9a x out=10\n", "layer name '9a' is not a name");
    ERR("dense o x out=10 # fine\nbogus\n", "line 3: unknown layer kind 'bogus'");
    ERR("dense o\tx out=10\n\x01\n", "line 3: control character 0x01");
    expect_error("dense o x out=10\n", "no input line");
    expect_error("input x 784\n", "no layers");
    expect_error("input x 784\ninput y 784\n", "line 2: a second input (the first is on line 1)");
    expect_error("input x 784 extra\n", "line 1: expected: input NAME CxHxW");
    expect_error("input x 784\nrelu a b\n", "line 2: relu 'a': input 'b' is not defined");
    expect_error("input x 784\ninput2 y 3\n", "unknown layer kind 'input2'");
    expect_error("input x 1x28x28\nrelu r x\nadd o r r\n", "the logits 'o' must be a vector");
    expect_error("input x 10\nrelu o x\n", "the model has no parameters");
    expect_error("input x 784\nrelu r x\n# no dense\n", "no parameters");
    expect_error("model 7up\ninput x 784\n", "model name '7up' is not a name");
    expect_error("input x 784\ndense a_very_long_layer_name_of_40_characters x out=10\n",
                 "longer than 31 characters");
    /* too many layers */
    size_t k = (size_t)snprintf(buf, sizeof buf, "input x 16\n");
    char *big = malloc(64 * 300);
    memcpy(big, buf, k);
    for (int i = 0; i < 300; i++)
        k += (size_t)sprintf(big + k, "relu r%d x\n", i);
    big[k] = 0;
    expect_error(big, "more than 256 layers");
    /* a line that is too long, and a file that is too large */
    memset(big, 'a', 2000);
    big[2000] = 0;
    memcpy(big, "input x 784\n", 12);
    expect_error(big, "line 2: longer than 1024 characters");
    free(big);
    big = malloc(SFPW_MODEL_MAX_BYTES + 2);
    memset(big, '\n', SFPW_MODEL_MAX_BYTES + 1);
    sfpw_model *m = malloc(sizeof *m);
    char err[256];
    CHECK_EQ_INT(sfpw_model_parse(m, big, SFPW_MODEL_MAX_BYTES + 1, "t", err, sizeof err),
                 SFP_EINVAL);
    CHECK(strstr(err, "larger than") != NULL);
    free(m);
    free(big);
#undef ERR
}

int main(void)
{
    test_builtins();
    test_residual_file();
    test_errors();
    WCHECK_DONE();
}
