/*
 * train_options.c - sfp-train's options as one declarative table: name,
 * type, bounds, default and help. Parsing, --help, --print-options (which
 * scripts/gen-options-doc turns into the table of docs/TRAINING.md) all
 * come from it.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train.h"

typedef enum arg_type {
    A_STR,        /* const char *; lo..hi: length bounds when hi > 0     */
    A_CLEAR,      /* const char * set to NULL; no argument               */
    A_FLAG,       /* int set to .value; no argument                      */
    A_FLAG_NUM,   /* int set to 1; optional =N into the size_t at .off2  */
    A_INT,
    A_UINT,
    A_LONG,
    A_SIZE,
    A_U64,
    A_DBL,
    A_MIB,        /* size_t bytes from an argument in MiB                */
    A_CHOICE,     /* int from .choices                                   */
    A_POL_DBL,    /* double in sfp_policy_config (.off), library default */
    A_POL_UINT,   /* unsigned in sfp_policy_config                       */
} arg_type;

typedef struct choice {
    const char *name;
    int value;
} choice;

typedef struct row {
    const char *name;
    arg_type type;
    size_t off;            /* field in sfpt_opts (A_POL_*: sfp_policy_config) */
    const char *arg;       /* argument in --help; NULL for flags             */
    const char *def;       /* default, read like an argument (NULL: none)    */
    const char *shown;     /* default as shown when it is computed           */
    double lo, hi;
    const char *help;
    int value;             /* A_FLAG                                         */
    const choice *choices; /* A_CHOICE, NULL-terminated                      */
    size_t off2;           /* A_FLAG_NUM                                     */
} row;

static const choice policies[] = {
    {"fp32", SFP_POLICY_FP32}, {"qm", SFP_POLICY_QM},
    {"qmqe", SFP_POLICY_QMQE}, {"bitwave", SFP_POLICY_BITWAVE}, {NULL, 0},
};
static const choice coders[] = {
#define SFPW__CODER_CHOICE(id, value, name) {name, SFP_CODER_##id},
    SFP_CODERS(SFPW__CODER_CHOICE)
#undef SFPW__CODER_CHOICE
    {"auto", SFP_CODER_AUTO}, {NULL, 0},
};
static const choice wcoders[] = {
    {"same", -1},
#define SFPW__WCODER_CHOICE(id, value, name) {name, SFP_CODER_##id},
    SFP_CODERS(SFPW__WCODER_CHOICE)
#undef SFPW__WCODER_CHOICE
    {"auto", SFP_CODER_AUTO}, {NULL, 0},
};
static const choice zmaps[] = {
    {"bitmap", SFP_ZMAP_BITMAP}, {"huffman", SFP_ZMAP_HUFFMAN}, {NULL, 0},
};
static const choice optimizers[] = {
    {"sgd", SFPW_OPT_SGD}, {"adam", SFPW_OPT_ADAM}, {NULL, 0},
};
static const choice roundings[] = {
    {"rne", SFP_ROUND_RNE}, {"trunc", SFP_ROUND_TRUNC},
    {"stochastic", SFP_ROUND_STOCHASTIC}, {NULL, 0},
};
static const choice orders[] = { {"first", 1}, {"second", 2}, {NULL, 0} };
static const choice rules[] = {
    {"adaptive", SFP_QM_RULE_ADAPTIVE}, {"sgd", SFP_QM_RULE_SGD}, {NULL, 0},
};
static const choice losses[] = {
    {"fallback", SFPW_ON_LOSS_FALLBACK}, {"fail", SFPW_ON_LOSS_FAIL}, {NULL, 0},
};
static const choice onoff[] = { {"off", 0}, {"on", 1}, {NULL, 0} };
static const choice anchors[] = { {"max", 0}, {"error", 1}, {NULL, 0} };
static const choice codecs[] = {
    {"auto", SFPW_CODEC_AUTO}, {"rank", SFPW_CODEC_RANK}, {"daemon", SFPW_CODEC_DAEMON}, {NULL, 0},
};
static const choice impls[] = {
    {"auto", SFP_IMPL_AUTO}, {"c", SFP_IMPL_C}, {"avx2", SFP_IMPL_AVX2}, {NULL, 0},
};

#define O(f) offsetof(sfpt_opts, f)
#define P(f) offsetof(sfp_policy_config, f)
/* name, type, field, argument, default, default as shown, lo, hi, help[, extras] */
#define ROW(n, t, f, a, d, s, l, h, hp, ...) \
    {.name = n, .type = t, .off = f, .arg = a, .def = d, .shown = s, .lo = l, \
     .hi = h, .help = hp, __VA_ARGS__}

static const row rows[] = {
    ROW("model", A_STR, O(model), "mlp|cnn|resnet|vit", "mlp", NULL, 0, 0,
     "built-in model: mlp 784-512-256-10 (ReLU); cnn conv3x3(16)+pool, "
     "conv3x3(32)+pool, dense 1568-128, dense 128-10; resnet ResNet-20 "
     "(16/32/64 channels, BatchNorm, projection shortcuts); vit a vision "
     "transformer (4x4 patches, width 64, 4 pre-LN blocks, 4 heads). "
     "--print-model shows each as a model file"),
    ROW("model-file", A_STR, O(model_file), "FILE", NULL, NULL, 0, 0,
     "the network described in a model file (docs/TRAINING.md \"Model files\"); "
     "replaces --model"),
    ROW("print-model", A_FLAG, O(print_model), NULL, NULL, NULL, 0, 0,
     "print the model file of --model (or --model-file) and its layer table, and exit",
     .value = 1),
    ROW("policy", A_CHOICE, O(policy), NULL, "qmqe", NULL, 0, 0, "width policy",
     .choices = policies),
    ROW("gecko", A_FLAG, O(coder), NULL, NULL, "off", 0, 0,
     "Gecko-code the exponent planes of the stashed activations (same as "
     "--coder gecko)",
     .value = SFP_CODER_GECKO),
    ROW("coder", A_CHOICE, O(coder), NULL, "auto", NULL, 0, 0,
     "exponent-plane coder of the stashed activations (and of the weight "
     "pieces with --weight-coder same): auto (per stashed tensor the coder "
     "whose frame was smaller at its last check, Gecko or rANS, checked at "
     "each epoch's start, on an exponent-width change and at every multiple "
     "of 100 steps), "
     "plain, gecko, or rans (libsfp's entropy coder, see docs/FORMAT.md)",
     .choices = coders),
    ROW("weight-coder", A_CHOICE, O(weight_coder), NULL, "auto", NULL, 0, 0,
     "exponent-plane coder of the weight pieces (the exchange, and what their "
     "footprint counts): auto (each piece in the coder whose frame was the "
     "smaller when both Gecko and rANS were last tried: at the start, at an "
     "epoch's last step, every 100 steps and on a width change), same (as "
     "--coder), plain, gecko or "
     "rans", .choices = wcoders),
    ROW("weight-anchor", A_CHOICE, O(weight_anchor), NULL, "error", NULL, 0, 0,
     "exponent window of a weight tensor of at most 4 exponent bits: max (its "
     "top binade is the tensor's largest magnitude) or error (up to 3 binades "
     "lower where the modelled squared error of the tensor's values is "
     "smaller: values above saturate, more small ones are kept)",
     .choices = anchors),
    ROW("zmap", A_CHOICE, O(zmap), NULL, "huffman", NULL, 0, 0,
     "zero map of the frames that have one: bitmap (one bit per value), or "
     "huffman (the bitmap's masks Huffman-coded where that is smaller; zeros "
     "in runs cost less; docs/FORMAT.md 2.4.1)", .choices = zmaps),
    ROW("epochs", A_INT, O(epochs), "N", "5", NULL, 1, 10000, "epochs"),
    ROW("batch", A_INT, O(batch), "N", "128", NULL, 1, 65536,
     "global minibatch, split across the ranks"),
    ROW("optimizer", A_CHOICE, O(optimizer), NULL, "adam", NULL, 0, 0, "optimizer",
     .choices = optimizers),
    ROW("lr", A_DBL, O(lr), "F", NULL, "1e-3 (adam), 0.05 (sgd)", 0, 100,
     "learning rate"),
    ROW("lr-decay", A_DBL, O(lr_decay), "F", "1", NULL, 0, 1,
     "learning rate × F after each epoch"),
    ROW("momentum", A_DBL, O(momentum), "F", "0.9", NULL, 0, 1, "SGD momentum"),
    ROW("weight-decay", A_DBL, O(weight_decay), "F", NULL,
     "1e-4 (adam, decoupled), 5e-4 (sgd, L2)", 0, 1,
     "decay of the weights, not the biases"),
    ROW("seed", A_U64, O(seed), "N", "1", NULL, 0, 1e18,
     "init, shuffling, width draws, stochastic rounding"),
    ROW("data", A_STR, O(data_dir), "DIR", SFPW_DATA_DEFAULT_DIR, NULL, 0, 0,
     "Fashion-MNIST IDX gzip files"),
    ROW("train-limit", A_SIZE, O(train_limit), "N", NULL, "all", 1, 1e9,
     "use the first N training images (tuning on subsets)"),
    ROW("test-limit", A_SIZE, O(test_limit), "N", NULL, "all", 1, 1e9,
     "use the first N test images"),
    ROW("precise-bn", A_SIZE, O(precise_bn), "N", NULL, "off", 0, 1e9,
     "also evaluate with running statistics recomputed over the first N training images"),
    ROW("synthetic", A_FLAG_NUM, O(synthetic), "[=N]", "4096", "off (N = 4096)", 16, 1e7,
     "generated 28×28 10-class data, N training and N/4 test images; no files",
     .off2 = O(synth_train)),
    ROW("rounding", A_CHOICE, O(rounding), NULL, "rne", NULL, 0, 0, "mantissa rounding",
     .choices = roundings),
    ROW("gecko-group", A_UINT, O(gecko_group), "N", NULL, "libsfp's default", 8, 64,
     "Gecko group size: 8, 16, 32, 64"),
    ROW("target-bits", A_POL_DBL, P(qm.target_bits), "B", NULL, NULL, 0, 64,
     "QM/QE trade-off knob: the stored bits per value (all frames of a step) the "
     "learned widths aim at, a footprint of about 32/B x; the bit cost moves "
     "(within --bit-cost-max) to meet it; 0: no target, the bit cost stays at "
     "--bit-cost (docs/TRAINING.md)"),
    ROW("bit-cost", A_POL_DBL, P(qm.bit_cost), "P", NULL, NULL, 0, 1e4,
     "QM/QE: one bit per value of footprint is worth P % of the training loss; "
     "the start of the moving cost with --target-bits, a fixed cost when given "
     "without it"),
    ROW("bit-cost-max", A_POL_DBL, P(qm.bit_cost_max), "P", NULL, NULL, 0.001, 1e4,
     "with --target-bits: the largest bit cost (%) the target may ask for"),
    ROW("target-gain", A_POL_DBL, P(qm.target_gain), "F", NULL, NULL, 0, 10,
     "with --target-bits: ln(bit cost) moves by F × (bits / target − 1) per step"),
    ROW("calib-target", A_CHOICE, O(calib_target), NULL, "off", NULL, 0, 0,
     "with --target-bits: the calibration solves for the bit cost at which its "
     "widths meet the target (from the bits measured while it runs); off: it "
     "balances at --bit-cost and only the moving cost follows the target",
     .choices = onoff),
    ROW("qm-rule", A_CHOICE, O(qm_rule), NULL, "adaptive", NULL, 0, 0,
     "how QM/QE learn the widths: adaptive (calibrated start, loss-relative "
     "--bit-cost, Adam on the widths) or sgd (fixed --gamma, clipped SGD, "
     "method-spec §4.5)", .choices = rules),
    ROW("qm-step", A_POL_DBL, P(qm.step), "F", NULL, NULL, 1e-6, 23,
     "adaptive rule: Adam step of the widths (bits per step)"),
    ROW("gamma", A_POL_DBL, P(qm.gamma), "F", NULL, NULL, 0, 1e6,
     "sgd rule: regularizer strength (loss per bit per value)"),
    ROW("qm-lr", A_POL_DBL, P(qm.lr), "F", NULL, NULL, 0, 1e6,
     "sgd rule: width learning rate (bits per unit gradient)"),
    ROW("qm-max-step", A_POL_DBL, P(qm.max_step), "F", NULL, NULL, 1e-6, 23,
     "sgd rule: largest width change per step (bits)"),
    ROW("n-init", A_POL_DBL, P(qm.n_init), "F", NULL, NULL, 0, 23,
     "initial mantissa width (QM/QE)"),
    ROW("e-init", A_POL_DBL, P(qm.e_init), "F", NULL, NULL, 1, 8,
     "initial exponent width (QM/QE; qm keeps it fixed at 8)"),
    ROW("n-min", A_POL_DBL, P(qm.n_min), "F", NULL, NULL, 0, 22,
     "lower bound of the learned mantissa widths"),
    ROW("e-min", A_DBL, O(e_min), "F", "2", NULL, 1, 8,
     "lower bound of the learned exponent widths of weights and biases"),
    ROW("e-min-act", A_DBL, O(e_min_act), "F", "3", NULL, 1, 8,
     "lower bound of the learned exponent widths of activations"),
    ROW("n-min-act", A_DBL, O(n_min_act), "F", NULL, "3, or --n-min if higher", 0, 22,
     "lower bound of the learned mantissa widths of activations (0 lets the rule take "
     "them to powers of two; 7 leaves the stash near bf16 and compresses only the "
     "exchange of weights and gradients)"),
    ROW("n-min-act-linear", A_DBL, O(n_min_act_linear), "F", NULL, "--n-min-act", 0, 22,
     "lower bound of the mantissa widths of the activations that only linear layers "
     "read for their weight gradients (the input, ReLU, pooling, convolution / dense, "
     "norm, GELU and attention outputs); the others (inputs of BatchNorm, LayerNorm, "
     "GELU, Q/K/V, attention probabilities, residual sums, tokens) keep --n-min-act"),
    ROW("n-min-param", A_DBL, O(n_min_param), "F", "7", NULL, 0, 22,
     "lower bound of the learned mantissa widths of norm scales, class token and positions"),
    ROW("n-min-bias", A_DBL, O(n_min_bias), "F", NULL, "--n-min", 0, 22,
     "lower bound of the learned mantissa widths of biases (BatchNorm and LayerNorm "
     "shifts included); with --policy bitwave, rounded up to whole bits, the biases' "
     "floor under the network's width"),
    ROW("warmup", A_LONG, O(warmup), "N", NULL,
     "1% of the steps; adaptive QM/QE: 2 sweeps of the brackets", 0, 1e12,
     "steps before the regularizer (sgd rule) or the controller (BitWave) acts; "
     "adaptive QM/QE: calibration steps (0: the default)"),
    ROW("bw-period", A_POL_UINT, P(bw.period), "N", NULL, NULL, 1, 1e6,
     "BitWave: decide every N steps (method-spec §5.2)"),
    ROW("bw-tau", A_POL_DBL, P(bw.tau), "F", NULL, NULL, 0, 10,
     "BitWave: relative loss threshold"),
    ROW("bw-m-init", A_POL_UINT, P(bw.m_init), "N", NULL, NULL, 0, 23,
     "BitWave: initial mantissa bits"),
    ROW("bw-m-min", A_POL_UINT, P(bw.m_min), "N", NULL, NULL, 0, 23,
     "BitWave: fewest mantissa bits"),
    ROW("bw-e-min", A_POL_UINT, P(bw.e_min), "N", NULL, NULL, 1, 8,
     "BitWave: fewest exponent bits"),
    ROW("bw-m-min-act", A_DBL, O(bw_m_min_act), "N", NULL, "3, or --bw-m-min if higher", 0, 23,
     "BitWave: fewest mantissa bits of the activations (the stashes), which keep them "
     "while the weights' go on down to --bw-m-min"),
    ROW("bw-min-share", A_DBL, O(bw_min_share), "F", "0.01", NULL, 0, 1,
     "BitWave: a weight, bias or norm parameter holding less than this share of the "
     "values stored per step keeps --bw-m-min-act mantissa bits (0: every weight "
     "follows the network down to --bw-m-min)"),
    ROW("sample", A_SIZE, O(sample), "N", "4096", NULL, 1, 1 << 20,
     "values per tensor for the bitlength gradient"),
    ROW("qm-grad", A_CHOICE, O(qm_grad), NULL, "second", NULL, 0, 0,
     "bitlength gradient: first-order term only (method-spec §4.4), or first + "
     "second-order term (Gauss-Newton curvature; docs/TRAINING.md)",
     .choices = orders),
    ROW("daemon", A_STR, O(daemon), "PATH", NULL, "$SFP_SOCKET if set, else none", 0, 0,
     "stash activations in sfpd at this Unix socket and have it encode the "
     "weight shards (\"Offload to sfpd\")"),
    ROW("no-daemon", A_CLEAR, O(daemon), NULL, NULL, NULL, 0, 0,
     "in-process stash even when $SFP_SOCKET is set"),
    ROW("job", A_STR, O(job), "ID", NULL, "sfp-train-HOST-PID-TIME", 1, 128,
     "sfpd job id shared by the ranks (1 to 128 bytes)"),
    ROW("on-daemon-loss", A_CHOICE, O(on_loss), NULL, "fallback", NULL, 0, 0,
     "on a lost daemon: continue in-process (the interrupted step runs again), "
     "or exit non-zero", .choices = losses),
    ROW("stash-codec", A_CHOICE, O(stash_codec), NULL, "auto", NULL, 0, 0,
     "with --daemon, who encodes and decodes the stash: rank (the rank, with "
     "libsfp; sfpd stores the frames; weight pieces too), daemon (sfpd's "
     "threads), auto (rank: cheaper for the ranks with or without a free "
     "core, docs/BENCHMARKS.md)", .choices = codecs),
    ROW("daemon-timeout", A_INT, O(daemon_timeout_ms), "MS", "5000", NULL, 10, 3600000,
     "bound of every sfpd call"),
    ROW("step-timeout", A_DBL, O(step_timeout), "S", "600", NULL, 0, 1e6,
     "end the rank (exit 4) after S seconds without progress (a rank, link or sfpd "
     "that stopped answering; 0: wait forever)"),
    ROW("daemon-shm", A_MIB, O(daemon_shm), "MIB", NULL, "one step's stashes + 1 MiB",
     1, 65536, "shared memory per rank"),
    ROW("no-daemon-encode", A_FLAG, O(daemon_encode), NULL, NULL, NULL, 0, 0,
     "with --daemon, encode the weight pieces in the ranks", .value = 0),
    ROW("weight-cost", A_DBL, O(weight_cost), "F", "1", NULL, 0.001, 1e6,
     "QM/QE regularizer: a weight value counts as F activation values (λ of a "
     "weight tensor ∝ F × its values; γ and the bit cost are rescaled so that "
     "activations keep their pull; the report's gamma and bit_cost are the "
     "rescaled ones). 1 = memory "
     "footprint; raise it to pay for the bytes of the weight exchange "
     "(docs/BENCHMARKS.md \"Offload\")"),
    ROW("grad-container", A_STR, O(grad_container), "off|policy|M,E", "off", NULL, 0, 0,
     "carry the gradient reduce-scatter in containers: policy = each tensor's "
     "weight widths of the step, M,E = M mantissa and E exponent bits for all; "
     "the quantization error is fed back into the next step's gradient; off = "
     "exact FP32 (docs/TRAINING.md \"Gradients in containers\")"),
    ROW("wire-if", A_STR, O(wire_if), "IFACE", NULL, "$SFP_WIRE_IF if set, else none", 1, 15,
     "count the bytes through this network interface of every node during the "
     "steps (one rank per node reads /proc/net/dev) and report them next to "
     "sfp-train's own accounting"),
    ROW("report", A_STR, O(report), "FILE.json", NULL, NULL, 0, 0,
     "write the run report (schema sfp-train-report/1)"),
    ROW("save", A_STR, O(save), "FILE", NULL, NULL, 0, 0,
     "checkpoint after every epoch (atomic: temp file + rename)"),
    ROW("resume", A_STR, O(resume), "FILE", NULL, NULL, 0, 0,
     "continue from a checkpoint (same model, policy, optimizer, batch, seed)"),
    ROW("check-replicas", A_FLAG, O(check_replicas), NULL, NULL, NULL, 0, 0,
     "exit status 3 unless all ranks end with identical weights", .value = 1),
    ROW("timing", A_FLAG, O(timing), NULL, NULL, NULL, 0, 0,
     "per-epoch breakdown of the step time", .value = 1),
    ROW("measure-coders", A_FLAG, O(measure_coders), NULL, NULL, NULL, 0, 0,
     "also encode every stash and weight piece with each coder (plain, gecko, "
     "rans) and report each footprint; the values, hence accuracy, do not "
     "depend on the coder (slower: for measurements, not timing)", .value = 1),
    ROW("impl", A_CHOICE, O(impl), NULL, "auto", NULL, 0, 0, "libsfp kernels",
     .choices = impls),
    ROW("progress", A_FLAG, O(progress), NULL, NULL, "when stderr is a terminal", 0, 0,
     "progress line on stderr", .value = 1),
    ROW("no-progress", A_FLAG, O(progress), NULL, NULL, NULL, 0, 0,
     "no progress line", .value = 0),
    ROW("quiet", A_FLAG, O(quiet), NULL, NULL, NULL, 0, 0,
     "only the per-epoch lines and the final line", .value = 1),
    ROW("stop-after", A_INT, O(stop_after), "N", NULL, NULL, 1, 10000,
     "stop after N epochs of this invocation (tests of --save/--resume)"),
    ROW("help", A_FLAG, O(help), NULL, NULL, NULL, 0, 0, "this text", .value = 1),
    ROW("print-options", A_FLAG, O(print_options), NULL, NULL, NULL, 0, 0,
     "the option table, tab-separated (scripts/gen-options-doc)", .value = 1),
};

#define NROWS (sizeof rows / sizeof rows[0])
_Static_assert(NROWS <= 128, "sfpt_opts.given has 128 bits");

static void *field(sfpt_opts *o, const row *r)
{
    return (char *)o + r->off;
}

static int given_row(const sfpt_opts *o, size_t i)
{
    return (int)((o->given[i / 64] >> (i % 64)) & 1);
}

/* Whether any option that writes the field at off was on the command line. */
static int given(const sfpt_opts *o, size_t off)
{
    for (size_t i = 0; i < NROWS; i++)
        if (rows[i].off == off && rows[i].type != A_POL_DBL &&
            rows[i].type != A_POL_UINT && given_row(o, i))
            return 1;
    return 0;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static const char *choice_list(const choice *c, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (; c->name && n < cap; c++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "|" : "", c->name);
    return buf;
}

/* Stores argument a of row r into o; -1 (reported) when it is bad. */
static int set(sfpt_opts *o, const row *r, const char *a)
{
    double v = 0;
    void *f = field(o, r);
    char list[128];
    switch (r->type) {
    case A_STR:
        if (r->hi > 0 && (strlen(a) < (size_t)r->lo || strlen(a) > (size_t)r->hi)) {
            err("--%s: %g to %g bytes\n", r->name, r->lo, r->hi);
            return -1;
        }
        *(const char **)f = a;
        return 0;
    case A_CLEAR:
        *(const char **)f = NULL;
        return 0;
    case A_FLAG:
        *(int *)f = r->value;
        return 0;
    case A_CHOICE:
        for (const choice *c = r->choices; c->name; c++)
            if (!strcmp(a, c->name)) {
                *(int *)f = c->value;
                return 0;
            }
        err("unknown --%s '%s' (%s)\n", r->name, a, choice_list(r->choices, list, sizeof list));
        return -1;
    case A_FLAG_NUM:
        *(int *)f = 1;
        if (!a)
            return 0;
        break;
    default:
        break;
    }
    if (parse_num(a, r->lo, r->hi, &v)) {
        err("bad value '%s' for --%s (%g to %g)\n", a, r->name, r->lo, r->hi);
        return -1;
    }
    switch (r->type) {
    case A_INT: *(int *)f = (int)v; break;
    case A_UINT: *(unsigned *)f = (unsigned)v; break;
    case A_LONG: *(long *)f = (long)v; break;
    case A_SIZE: *(size_t *)f = (size_t)v; break;
    case A_U64: *(uint64_t *)f = (uint64_t)v; break;
    case A_DBL: *(double *)f = v; break;
    case A_MIB: *(size_t *)f = (size_t)v << 20; break;
    case A_FLAG_NUM: *(size_t *)((char *)o + r->off2) = (size_t)v; break;
    case A_POL_DBL: *(double *)((char *)&o->pol + r->off) = v; break;
    case A_POL_UINT: *(unsigned *)((char *)&o->pol + r->off) = (unsigned)v; break;
    default: break;
    }
    return 0;
}

int sfpt_opts_given(const sfpt_opts *o, const char *name)
{
    for (size_t i = 0; i < NROWS; i++)
        if (!strcmp(rows[i].name, name))
            return given_row(o, i);
    return 0;
}

void sfpt_opts_apply_policy(const sfpt_opts *o, sfp_policy_config *pc)
{
    for (size_t i = 0; i < NROWS; i++) {
        const row *r = &rows[i];
        if (!given_row(o, i))
            continue;
        if (r->type == A_POL_DBL)
            *(double *)((char *)pc + r->off) = *(const double *)((const char *)&o->pol + r->off);
        else if (r->type == A_POL_UINT)
            *(unsigned *)((char *)pc + r->off) = *(const unsigned *)((const char *)&o->pol + r->off);
    }
}

/* The default of r as text: its own, computed, or the library's. */
static const char *shown_default(const row *r, char *buf, size_t cap)
{
    if (r->shown)
        return r->shown;
    if (r->type == A_POL_DBL || r->type == A_POL_UINT) {
        sfp_policy_config pc;
        /* the BitWave fields from bitwave's defaults, the rest from qmqe's */
        int bw = r->off >= P(bw) && r->off < P(bw) + sizeof pc.bw;
        sfp_policy_config_default(&pc, bw ? SFP_POLICY_BITWAVE : SFP_POLICY_QMQE);
        if (r->type == A_POL_DBL)
            snprintf(buf, cap, "%g", *(const double *)((const char *)&pc + r->off));
        else
            snprintf(buf, cap, "%u", *(const unsigned *)((const char *)&pc + r->off));
        return buf;
    }
    return r->def ? r->def : "";
}

/* "--name ARG" as in --help and the docs. */
static const char *flag_text(const row *r, char *buf, size_t cap)
{
    char list[128];
    if (r->type == A_CHOICE)
        snprintf(buf, cap, "--%s %s", r->name, choice_list(r->choices, list, sizeof list));
    else if (r->type == A_FLAG_NUM)
        snprintf(buf, cap, "--%s%s", r->name, r->arg);
    else if (r->arg)
        snprintf(buf, cap, "--%s %s", r->name, r->arg);
    else
        snprintf(buf, cap, "--%s", r->name);
    return buf;
}

void sfpt_opts_help(FILE *f)
{
    fprintf(f, "usage: [mpirun -np N] sfp-train [options]\n");
    for (size_t i = 0; i < NROWS; i++) {
        const row *r = &rows[i];
        char flag[160], def[64], text[1024];
        const char *d = shown_default(r, def, sizeof def);
        snprintf(text, sizeof text, "%s%s%s%s", r->help, d[0] ? " (default " : "", d,
                 d[0] ? ")" : "");
        flag_text(r, flag, sizeof flag);
        /* flag in a 26-column gutter, the text wrapped at 80 columns */
        int col = fprintf(f, "  %s", flag);
        const char *p = text;
        while (*p) {
            if (col > 24) {
                fputc('\n', f);
                col = 0;
            }
            col += fprintf(f, "%*s", 26 - col, "");
            size_t n = strlen(p), room = 80 - 26;
            if (n > room) {
                n = room;
                while (n > 0 && p[n] != ' ')
                    n--;
                if (!n)
                    n = room;
            }
            fprintf(f, "%.*s\n", (int)n, p);
            col = 0;
            p += n;
            while (*p == ' ')
                p++;
        }
    }
}

void sfpt_opts_print(FILE *f)
{
    for (size_t i = 0; i < NROWS; i++) {
        char flag[160], def[64];
        fprintf(f, "%s\t%s\t%s\n", flag_text(&rows[i], flag, sizeof flag),
                shown_default(&rows[i], def, sizeof def), rows[i].help);
    }
}

/* --grad-container off|policy|M,E */
static int parse_grad_container(sfpt_opts *o)
{
    const char *a = o->grad_container;
    unsigned k, e;
    char tail;
    if (!strcmp(a, "off")) {
        o->grad_mode = SFPT_GRAD_EXACT;
    } else if (!strcmp(a, "policy")) {
        o->grad_mode = SFPT_GRAD_POLICY;
    } else if (sscanf(a, "%u,%u%c", &k, &e, &tail) == 2 && k <= 23 && e >= 1 && e <= 8) {
        o->grad_mode = SFPT_GRAD_FIXED;
        o->grad_k = k;
        o->grad_e = e;
    } else {
        err("--grad-container '%s': off, policy, or M,E with M 0..23 and E 1..8\n", a);
        return -1;
    }
    return 0;
}

int sfpt_opts_parse(int argc, char **argv, sfpt_opts *o)
{
    struct option lo[NROWS + 1];
    memset(o, 0, sizeof *o);
    memset(lo, 0, sizeof lo);
    for (size_t i = 0; i < NROWS; i++) {
        const row *r = &rows[i];
        lo[i].name = r->name;
        lo[i].has_arg = r->type == A_FLAG_NUM ? optional_argument :
                        r->type == A_FLAG || r->type == A_CLEAR ? no_argument :
                        required_argument;
        lo[i].val = 256 + (int)i;
        if (r->def && set(o, r, r->def))
            return -1; /* a bad default in the table */
        if (r->type == A_FLAG_NUM)
            *(int *)field(o, r) = 0;
    }
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (c < 256 || c >= 256 + (int)NROWS) {
            if (sfpt_rank == 0)
                sfpt_opts_help(stderr);
            return -1;
        }
        size_t i = (size_t)(c - 256);
        if (set(o, &rows[i], optarg))
            return -1;
        o->given[i / 64] |= UINT64_C(1) << (i % 64);
    }
    if (o->help || o->print_options) {
        if (sfpt_rank == 0) {
            if (o->print_options)
                sfpt_opts_print(stdout);
            else
                sfpt_opts_help(stdout);
        }
        return 1;
    }
    if (optind < argc) {
        err("unexpected argument '%s'\n", argv[optind]);
        return -1;
    }

    /* each QM/QE rule has its own knobs */
    static const char *const sgd_only[] = { "gamma", "qm-lr", "qm-max-step", NULL };
    static const char *const adaptive_only[] = { "bit-cost", "qm-step", "target-bits",
                                                 "bit-cost-max", "target-gain", "calib-target", NULL };
    const char *const *bad = o->qm_rule == SFP_QM_RULE_SGD ? adaptive_only : sgd_only;
    for (size_t i = 0; i < NROWS; i++)
        for (const char *const *b = bad; *b; b++)
            if (given_row(o, i) && !strcmp(rows[i].name, *b)) {
                err("--%s belongs to --qm-rule %s\n", *b,
                    o->qm_rule == SFP_QM_RULE_SGD ? "adaptive" : "sgd");
                return -1;
            }

    /* computed defaults */
    o->gecko = o->coder == SFP_CODER_GECKO;
    o->synth_test = o->synth_train / 4;
    if (!given(o, O(daemon))) {
        o->daemon = getenv("SFP_SOCKET");
        if (o->daemon && !o->daemon[0])
            o->daemon = NULL;
    }
    if (!given(o, O(wire_if))) {
        o->wire_if = getenv("SFP_WIRE_IF");
        if (o->wire_if && (!o->wire_if[0] || strlen(o->wire_if) > 15))
            o->wire_if = NULL;
    }
    if (parse_grad_container(o))
        return -1;
    if (!given(o, O(daemon_encode)))
        o->daemon_encode = 1;
    if (!given(o, O(progress)))
        o->progress = isatty(STDERR_FILENO);
    if (!given(o, O(warmup)))
        o->warmup = -1;
    if (!given(o, O(n_min_act)))
        o->n_min_act = -1;
    if (!given(o, O(n_min_act_linear)))
        o->n_min_act_linear = -1;
    if (!given(o, O(n_min_bias)))
        o->n_min_bias = -1;
    if (!given(o, O(bw_m_min_act)))
        o->bw_m_min_act = -1;
    else if (o->bw_m_min_act != (double)(long)o->bw_m_min_act) {
        err("--bw-m-min-act takes a whole number of bits\n");
        return -1;
    }
    int adam = o->optimizer == SFPW_OPT_ADAM;
    if (!given(o, O(lr)))
        o->lr = adam ? 1e-3 : 0.05;
    if (!given(o, O(weight_decay)))
        o->weight_decay = adam ? 1e-4 : 5e-4;
    memset(&o->opt, 0, sizeof o->opt);
    o->opt.kind = (sfpw_opt_kind)o->optimizer;
    o->opt.lr = (float)o->lr;
    o->opt.momentum = (float)o->momentum;
    o->opt.weight_decay = (float)o->weight_decay;
    o->opt.beta1 = 0.9f;
    o->opt.beta2 = 0.999f;
    o->opt.eps = 1e-8f;
    return 0;
}
