/*
 * model.c - model files: parsing (strict, every error names its line),
 * the graph's order, shapes, stashed tensors and parameter layout.
 * The format is documented in docs/TRAINING.md ("Model files").
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sfp/sfp.h>

#include "layer.h"
#include "model.h"

size_t sfpw_shape_size(const sfpw_shape *s)
{
    size_t n = 1;
    for (int i = 0; i < s->nd; i++)
        n *= (size_t)s->d[i];
    return n;
}

const char *sfpw_shape_str(const sfpw_shape *s, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < s->nd && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? "x" : "", s->d[i]);
    return buf;
}

const char *sfpw_role_name(sfpw_role r)
{
    static const char *const names[SFPW_ROLE_COUNT] = {
        [SFPW_ROLE_INPUT] = "input",
        [SFPW_ROLE_RELU] = "post-relu",
        [SFPW_ROLE_BN_IN] = "bn-input",
        [SFPW_ROLE_LN_IN] = "ln-input",
        [SFPW_ROLE_RESIDUAL] = "residual-sum",
        [SFPW_ROLE_GELU_IN] = "gelu-input",
        [SFPW_ROLE_GELU_OUT] = "gelu-output",
        [SFPW_ROLE_NORM_OUT] = "norm-output",
        [SFPW_ROLE_Q] = "q",
        [SFPW_ROLE_K] = "k",
        [SFPW_ROLE_V] = "v",
        [SFPW_ROLE_PROBS] = "attention-probs",
        [SFPW_ROLE_ATTN_OUT] = "attention-output",
        [SFPW_ROLE_POOLED] = "pooled",
        [SFPW_ROLE_TOKENS] = "tokens",
        [SFPW_ROLE_LINEAR] = "linear-output",
        [SFPW_ROLE_STATS] = "norm-stats",
        [SFPW_ROLE_ARGMAX] = "pool-argmax",
        [SFPW_ROLE_RECOMPUTED] = "recomputed",
        [SFPW_ROLE_WEIGHT] = "weight",
        [SFPW_ROLE_BIAS] = "bias",
        [SFPW_ROLE_PARAM] = "param",
    };
    return (unsigned)r < SFPW_ROLE_COUNT && names[r] ? names[r] : "?";
}

/* ----------------------------------------------------------------- parser */

#define MAX_TOKENS 16
/* recomputations in a row that backward may do for one output */
#define REBUILD_DEPTH 2
#define MAX_LINE 1024

typedef struct raw {
    int line;
    const sfpw_layer_ops *ops;
    char name[SFPW_NAME_MAX];
    int nin;
    char in[SFPW_MAX_INPUTS][SFPW_NAME_MAX];
    int src[SFPW_MAX_INPUTS];   /* -1: the input, else raw layer index */
    int opt[SFPW_MAX_OPTS];
    int relu;
    int done, ncons, mark, next;
} raw;

typedef struct parser {
    raw *r;
    int n;
    char in_name[SFPW_NAME_MAX];
    sfpw_shape in_shape;
    int in_line;
    char model_name[SFPW_NAME_MAX];
    char *err;
    size_t cap;
} parser;

__attribute__((format(printf, 3, 4)))
static int fail(parser *p, int line, const char *fmt, ...)
{
    int k = line > 0 ? snprintf(p->err, p->cap, "line %d: ", line) : 0;
    if (k < 0 || (size_t)k >= p->cap)
        k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + k, p->cap - (size_t)k, fmt, ap);
    va_end(ap);
    return SFP_EINVAL;
}

static int valid_name(const char *s)
{
    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return 0;
    return 1;
}

/* A name token: defined syntax, fits. */
static int take_name(parser *p, int line, const char *tok, char *dst, const char *what)
{
    if (strlen(tok) >= SFPW_NAME_MAX)
        return fail(p, line, "%s '%.40s...' is longer than %d characters", what, tok,
                    SFPW_NAME_MAX - 1);
    if (!valid_name(tok))
        return fail(p, line, "%s '%s' is not a name (letters, digits, '_', '.', '-'; "
                    "not starting with a digit)", what, tok);
    strcpy(dst, tok);
    return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_shape(parser *p, int line, const char *tok, sfpw_shape *s)
{
    char buf[64];
    if (strlen(tok) >= sizeof buf)
        return fail(p, line, "input shape '%.40s...' is too long", tok);
    strcpy(buf, tok);
    memset(s, 0, sizeof *s);
    size_t total = 1;
    char *save = NULL;
    for (char *d = strtok_r(buf, "x", &save); d; d = strtok_r(NULL, "x", &save)) {
        long v;
        if (s->nd == 3)
            return fail(p, line, "input shape '%s': at most 3 dimensions (CxHxW)", tok);
        if (parse_int(d, 1, SFPW_MODEL_MAX_DIM, &v))
            return fail(p, line, "input shape '%s': '%s' is not a size from 1 to %d", tok, d,
                        SFPW_MODEL_MAX_DIM);
        s->d[s->nd++] = (int)v;
        total *= (size_t)v;
        if (total > SFPW_MODEL_MAX_VALUE)
            return fail(p, line, "input shape '%s' has more than %u values", tok,
                        SFPW_MODEL_MAX_VALUE);
    }
    if (!s->nd || tok[0] == 'x' || tok[strlen(tok) - 1] == 'x' || strstr(tok, "xx"))
        return fail(p, line, "input shape '%s' is not like 1x28x28", tok);
    return 0;
}

/* key=value of a layer line into r. */
static int parse_option(parser *p, raw *r, const char *tok)
{
    const char *eq = strchr(tok, '=');
    size_t klen = (size_t)(eq - tok);
    const char *val = eq + 1;
    if (klen == 3 && !strncmp(tok, "act", 3)) {
        if (!r->ops->can_relu)
            return fail(p, r->line, "%s '%s': no act= option (a separate relu layer can follow)",
                        r->ops->kind, r->name);
        if (!strcmp(val, "relu"))
            r->relu = 1;
        else if (!strcmp(val, "none"))
            r->relu = 0;
        else
            return fail(p, r->line, "%s '%s': act='%s' (relu or none)", r->ops->kind, r->name, val);
        return 0;
    }
    for (int i = 0; r->ops->opts && r->ops->opts[i].key; i++) {
        const sfpw_opt_spec *o = &r->ops->opts[i];
        if (strlen(o->key) != klen || strncmp(o->key, tok, klen))
            continue;
        long v;
        if (o->lo == 0 && o->hi == 1 && (!strcmp(val, "yes") || !strcmp(val, "true")))
            v = 1;
        else if (o->lo == 0 && o->hi == 1 && (!strcmp(val, "no") || !strcmp(val, "false")))
            v = 0;
        else if (parse_int(val, o->lo, o->hi, &v))
            return fail(p, r->line, "%s '%s': %s='%s' is not a number from %d to %d",
                        r->ops->kind, r->name, o->key, val, o->lo, o->hi);
        r->opt[i] = (int)v;
        return 0;
    }
    char keys[256] = "";
    size_t k = 0;
    for (int i = 0; r->ops->opts && r->ops->opts[i].key && k < sizeof keys; i++)
        k += (size_t)snprintf(keys + k, sizeof keys - k, "%s%s", k ? ", " : "",
                              r->ops->opts[i].key);
    if (r->ops->can_relu && k < sizeof keys)
        snprintf(keys + k, sizeof keys - k, "%sact", k ? ", " : "");
    return fail(p, r->line, "%s '%s': unknown option '%.*s' (%s)", r->ops->kind, r->name,
                (int)klen, tok, keys[0] ? keys : "it takes none");
}

static int parse_line(parser *p, int line, char *s)
{
    char *tok[MAX_TOKENS];
    int nt = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (t[0] == '#')
            break;
        if (nt == MAX_TOKENS)
            return fail(p, line, "more than %d words", MAX_TOKENS);
        tok[nt++] = t;
    }
    if (!nt)
        return 0;
    if (!strcmp(tok[0], "model")) {
        if (nt != 2)
            return fail(p, line, "expected: model NAME");
        return take_name(p, line, tok[1], p->model_name, "model name");
    }
    if (!strcmp(tok[0], "input")) {
        if (p->in_line)
            return fail(p, line, "a second input (the first is on line %d)", p->in_line);
        if (nt != 3)
            return fail(p, line, "expected: input NAME CxHxW");
        p->in_line = line;
        if (take_name(p, line, tok[1], p->in_name, "input name"))
            return SFP_EINVAL;
        return parse_shape(p, line, tok[2], &p->in_shape);
    }
    const sfpw_layer_ops *ops = sfpw_layer_find(tok[0]);
    if (!ops) {
        char kinds[512];
        size_t k = 0;
        for (int i = 0; sfpw_layer_kinds[i] && k < sizeof kinds; i++)
            k += (size_t)snprintf(kinds + k, sizeof kinds - k, "%s%s", i ? " " : "",
                                  sfpw_layer_kinds[i]->kind);
        return fail(p, line, "unknown layer kind '%.40s' (kinds: %s)", tok[0], kinds);
    }
    if (p->n == SFPW_MAX_LAYERS)
        return fail(p, line, "more than %d layers", SFPW_MAX_LAYERS);
    raw *r = &p->r[p->n];
    memset(r, 0, sizeof *r);
    r->line = line;
    r->ops = ops;
    if (nt < 2)
        return fail(p, line, "expected: %s NAME INPUT... [key=value ...]", ops->kind);
    if (take_name(p, line, tok[1], r->name, "layer name"))
        return SFP_EINVAL;
    for (int i = 0; ops->opts && ops->opts[i].key; i++)
        r->opt[i] = ops->opts[i].def;
    for (int i = 2; i < nt; i++) {
        if (strchr(tok[i], '=')) {
            if (parse_option(p, r, tok[i]))
                return SFP_EINVAL;
            continue;
        }
        if (r->nin == ops->max_in)
            return fail(p, line, "%s '%s' takes %s%d input%s", ops->kind, r->name,
                        ops->min_in == ops->max_in ? "" : "at most ", ops->max_in,
                        ops->max_in > 1 ? "s" : "");
        if (take_name(p, line, tok[i], r->in[r->nin], "input"))
            return SFP_EINVAL;
        r->nin++;
    }
    if (r->nin < ops->min_in)
        return fail(p, line, "%s '%s' takes %s%d input%s, got %d", ops->kind, r->name,
                    ops->min_in == ops->max_in ? "" : "at least ", ops->min_in,
                    ops->min_in > 1 ? "s" : "", r->nin);
    for (int i = 0; ops->opts && ops->opts[i].key; i++)
        if (r->opt[i] < ops->opts[i].lo)
            return fail(p, line, "%s '%s' needs %s=N", ops->kind, r->name, ops->opts[i].key);
    p->n++;
    return 0;
}

/* Names to sources; duplicate and dangling names. */
static int resolve(parser *p)
{
    for (int i = 0; i < p->n; i++) {
        raw *r = &p->r[i];
        if (!strcmp(r->name, p->in_name))
            return fail(p, r->line, "'%s' is already the input's name (line %d)", r->name,
                        p->in_line);
        for (int j = 0; j < i; j++)
            if (!strcmp(p->r[j].name, r->name))
                return fail(p, r->line, "'%s' is already defined on line %d", r->name,
                            p->r[j].line);
    }
    for (int i = 0; i < p->n; i++) {
        raw *r = &p->r[i];
        for (int k = 0; k < r->nin; k++) {
            r->src[k] = -2;
            if (!strcmp(r->in[k], p->in_name))
                r->src[k] = -1;
            for (int j = 0; j < p->n && r->src[k] == -2; j++)
                if (!strcmp(p->r[j].name, r->in[k]))
                    r->src[k] = j;
            if (r->src[k] == -2)
                return fail(p, r->line, "%s '%s': input '%s' is not defined", r->ops->kind,
                            r->name, r->in[k]);
            if (r->src[k] == i)
                return fail(p, r->line, "%s '%s' reads its own output (a cycle)",
                            r->ops->kind, r->name);
            if (r->src[k] >= 0)
                p->r[r->src[k]].ncons++;
        }
    }
    return 0;
}

/* The layers in execution order (inputs first, file order among the
 * ready ones) into order[]; a cycle is reported with its path. */
static int topo(parser *p, int *order)
{
    int k = 0;
    while (k < p->n) {
        int pick = -1;
        for (int i = 0; i < p->n && pick < 0; i++) {
            raw *r = &p->r[i];
            if (r->done)
                continue;
            int ready = 1;
            for (int j = 0; j < r->nin; j++)
                if (r->src[j] >= 0 && !p->r[r->src[j]].done)
                    ready = 0;
            if (ready)
                pick = i;
        }
        if (pick < 0)
            break;
        p->r[pick].done = 1;
        order[k++] = pick;
    }
    if (k == p->n)
        return 0;
    /* walk back along undone inputs until a layer repeats: a cycle */
    int cur = 0;
    while (p->r[cur].done)
        cur++;
    while (!p->r[cur].mark) {
        raw *r = &p->r[cur];
        r->mark = 1;
        for (int j = 0; j < r->nin; j++)
            if (r->src[j] >= 0 && !p->r[r->src[j]].done) {
                r->next = r->src[j];
                break;
            }
        cur = r->next;
    }
    raw *r = &p->r[cur];
    char path[512];
    size_t n = (size_t)snprintf(path, sizeof path, "%s", r->name);
    int c = r->next;
    for (int i = 0; i < p->n && n < sizeof path; i++) {
        n += (size_t)snprintf(path + n, sizeof path - n, " <- %s", p->r[c].name);
        if (c == cur)
            break;
        c = p->r[c].next;
    }
    return fail(p, r->line, "%s '%s' is in a cycle: %s", r->ops->kind, r->name, path);
}

/* The role of a stashed value: what produced it, else what reads it. */
static sfpw_role value_role(const sfpw_model *m, int v)
{
    const sfpw_value *val = &m->values[v];
    if (val->producer < 0)
        return SFPW_ROLE_INPUT;
    const sfpw_layer *pl = &m->layers[val->producer];
    if (pl->relu || !strcmp(pl->ops->kind, "relu"))
        return SFPW_ROLE_RELU;
    if (!strcmp(pl->ops->kind, "add"))
        return SFPW_ROLE_RESIDUAL;
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        for (int j = 0; j < l->nin; j++) {
            if (l->in[j] != v)
                continue;
            if (!strcmp(l->ops->kind, "batchnorm"))
                return SFPW_ROLE_BN_IN;
            if (!strcmp(l->ops->kind, "layernorm"))
                return SFPW_ROLE_LN_IN;
            if (!strcmp(l->ops->kind, "gelu"))
                return SFPW_ROLE_GELU_IN;
            if (!strcmp(l->ops->kind, "attention"))
                return (sfpw_role)(SFPW_ROLE_Q + j);
        }
    }
    return pl->ops->out_role >= 0 ? (sfpw_role)pl->ops->out_role : SFPW_ROLE_LINEAR;
}

/*
 * Layer l's slots (those neither raw nor codes) are rebuilt in backward
 * rather than stashed: its kind can, and every input it reads is stashed
 * (numbered as an activation, or still to be numbered: -2), not recomputed.
 */
static int slot_rebuilt(const sfpw_model *m, const sfpw_layer *l)
{
    if (!l->ops->recompute_slot)
        return 0;
    for (int j = 0; j < l->nin; j++) {
        const int t = m->values[l->in[j]].tensor;
        if (!(l->needs & (SFPW_NEEDS_IN0 << j)) ||
            !(t == -2 || (t >= 0 && m->tensors[t].kind == SFPW_TENSOR_ACT)))
            return 0;
    }
    return 1;
}

static int add_tensor(parser *p, sfpw_model *m, int line, const char *name, const char *suffix,
                      sfpw_tensor_kind kind, sfpw_role role, size_t n)
{
    if (m->ntensors == SFPW_MAX_TENSORS)
        return fail(p, line, "more than %d tensors", SFPW_MAX_TENSORS);
    sfpw_tensor *t = &m->tensors[m->ntensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s", name, suffix);
    t->kind = kind;
    t->role = role;
    t->layer = -1;
    t->value = -1;
    t->slot = -1;
    t->n = n;
    return m->ntensors++;
}

static uint64_t fnv(uint64_t h, const void *d, size_t n)
{
    const unsigned char *b = d;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Shapes, values, tensors and parameter layout, in execution order. */
static int build(parser *p, sfpw_model *m, const int *order)
{
    int map[SFPW_MAX_LAYERS];
    char sa[64];
    m->nvalues = 1;
    sfpw_value *in = &m->values[0];
    snprintf(in->name, sizeof in->name, "%s", p->in_name);
    in->shape = p->in_shape;
    in->n = sfpw_shape_size(&p->in_shape);
    in->producer = -1;
    in->tensor = -1;
    m->in_shape = p->in_shape;
    m->in_dim = in->n;
    m->nlayers = p->n;
    uint64_t h = fnv(0xcbf29ce484222325ull, &p->in_shape, sizeof p->in_shape);
    size_t nparams = 0, nbuf = 0;
    for (int k = 0; k < p->n; k++) {
        const raw *r = &p->r[order[k]];
        map[order[k]] = k;
        sfpw_layer *l = &m->layers[k];
        memset(l, 0, sizeof *l);
        l->ops = r->ops;
        snprintf(l->name, sizeof l->name, "%s", r->name);
        l->line = r->line;
        l->nin = r->nin;
        l->relu = r->relu;
        memcpy(l->opt, r->opt, sizeof l->opt);
        for (int j = 0; j < r->nin; j++) {
            l->in[j] = r->src[j] < 0 ? 0 : m->layers[map[r->src[j]]].out;
            l->in_shape[j] = m->values[l->in[j]].shape;
        }
        char why[256] = "";
        if (l->ops->setup(l, why, sizeof why))
            return fail(p, r->line, "%s '%s': %s", l->ops->kind, l->name, why);
        l->needs = l->ops->needs;
        size_t on = sfpw_shape_size(&l->out_shape);
        if (on == 0 || on > SFPW_MODEL_MAX_VALUE)
            return fail(p, r->line, "%s '%s': output %s has more than %u values per image",
                        l->ops->kind, l->name, sfpw_shape_str(&l->out_shape, sa, sizeof sa),
                        SFPW_MODEL_MAX_VALUE);
        for (int s = 0; s < l->nslots; s++)
            if (l->slot_n[s] > SFPW_MODEL_MAX_VALUE || l->slot_fixed[s] > SFPW_MODEL_MAX_VALUE)
                return fail(p, r->line, "%s '%s': its %s tensor has more than %u values per image",
                            l->ops->kind, l->name, l->slot_name[s], SFPW_MODEL_MAX_VALUE);
        if (l->scratch > 16 * (size_t)SFPW_MODEL_MAX_VALUE ||
            l->scratch_fixed > 16 * (size_t)SFPW_MODEL_MAX_VALUE)
            return fail(p, r->line, "%s '%s': needs too much scratch memory", l->ops->kind, l->name);
        if (l->w_n > SFPW_MODEL_MAX_PARAMS || l->b_n > SFPW_MODEL_MAX_PARAMS ||
            nparams + l->w_n + l->b_n > SFPW_MODEL_MAX_PARAMS)
            return fail(p, r->line, "%s '%s': more than %u parameters in all", l->ops->kind,
                        l->name, SFPW_MODEL_MAX_PARAMS);
        nparams += l->w_n + l->b_n;
        l->buf_off = nbuf;
        nbuf += l->nbuf;
        sfpw_value *v = &m->values[m->nvalues];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "%s", l->name);
        v->shape = l->out_shape;
        v->n = on;
        v->producer = k;
        v->tensor = -1;
        l->out = m->nvalues++;
        for (int j = 0; j < l->nin; j++)
            m->values[l->in[j]].nconsumers++;
        h = fnv(h, l->ops->kind, strlen(l->ops->kind) + 1);
        h = fnv(h, l->name, strlen(l->name) + 1);
        h = fnv(h, l->in, sizeof l->in);
        h = fnv(h, l->opt, sizeof l->opt);
        h = fnv(h, &l->relu, sizeof l->relu);
    }
    m->hash = h;
    m->nbuffers = nbuf;

    /* the one unused output: the logits */
    m->output = -1;
    if (m->values[0].nconsumers == 0)
        return fail(p, p->in_line, "the input '%s' is not used by any layer", p->in_name);
    for (int v = 1; v < m->nvalues; v++) {
        if (m->values[v].nconsumers)
            continue;
        if (m->output >= 0) {
            const sfpw_layer *a = &m->layers[m->values[m->output].producer];
            const sfpw_layer *b = &m->layers[m->values[v].producer];
            const sfpw_layer *late = a->line > b->line ? a : b, *early = a->line > b->line ? b : a;
            return fail(p, early->line, "the output of '%s' is not used (only the logits, "
                        "here '%s' on line %d, may be unused)", early->name, late->name, late->line);
        }
        m->output = v;
    }
    const sfpw_value *o = &m->values[m->output];
    if (o->shape.nd != 1 || o->n < 2)
        return fail(p, m->layers[o->producer].line,
                    "the logits '%s' must be a vector of class scores, not %s", o->name,
                    sfpw_shape_str(&o->shape, sa, sizeof sa));
    m->classes = (int)o->n;

    /* a ReLU output read only by a layer that can keep codes instead (a
     * max pool: its argmax) is not stashed at all */
    for (int i = 0; i < m->nlayers; i++) {
        sfpw_layer *l = &m->layers[i];
        if (!l->ops->relu_codes || l->nin < 1)
            continue;
        const sfpw_value *src = &m->values[l->in[0]];
        if (src->producer < 0 || src->nconsumers != 1 || l->in[0] == m->output)
            continue;
        sfpw_layer *pl = &m->layers[src->producer];
        if (!pl->relu || (pl->needs & SFPW_NEEDS_OUT))
            continue;
        l->ops->relu_codes(l);
        if (l->relu_codes)
            pl->relu_masked = 1;
    }

    /* stashed tensors in production order: the input, then per layer its
     * internal tensors and its output */
    for (int v = 0; v < m->nvalues; v++) {
        int read = 0;
        for (int i = 0; i < m->nlayers && !read; i++) {
            const sfpw_layer *l = &m->layers[i];
            for (int j = 0; j < l->nin; j++)
                read |= l->in[j] == v && (l->needs & (SFPW_NEEDS_IN0 << j));
            read |= l->out == v && sfpw_layer_reads_out(l);
        }
        m->values[v].tensor = read ? -2 : -1; /* -2: to be numbered */
    }
    /*
     * An output its producer rebuilds from its inputs and statistics is
     * recomputed in backward, not stashed, when each input is stashed or
     * itself rebuilt from stashed ones (at most REBUILD_DEPTH recomputations
     * in a row: a residual add over a BatchNorm output, not the whole
     * residual stream). An input nothing reads in backward (no tensor) is
     * then rebuilt for the occasion (`rebuilt`), if its own producer can.
     */
    int depth[SFPW_MAX_VALUES];
    for (int v = 0; v < m->nvalues; v++) {
        depth[v] = m->values[v].tensor == -2 ? 0 : -1; /* -1: not available */
        m->values[v].rebuilt = 0;
    }
    for (int i = 0; i < m->nlayers; i++) {
        sfpw_layer *l = &m->layers[i];
        sfpw_value *v = &m->values[l->out];
        if (!l->ops->recompute || l->out == m->output || (l->needs & SFPW_NEEDS_OUT))
            continue;
        int d = 0;
        for (int j = 0; j < l->nin && d >= 0; j++) {
            const int dj = depth[l->in[j]];
            d = dj < 0 ? -1 : dj + 1 > d ? dj + 1 : d;
        }
        if (d < 1 || d > REBUILD_DEPTH)
            continue;
        if (v->tensor == -2) {
            v->tensor = -3; /* -3: to be numbered as recomputed */
            depth[l->out] = d;
            for (int j = 0; j < l->nin; j++)
                if (m->values[l->in[j]].tensor == -1)
                    m->values[l->in[j]].rebuilt = 1;
        } else if (v->tensor == -1) {
            depth[l->out] = d; /* could be rebuilt for a reader */
        }
    }
    int t;
    if (m->values[0].tensor == -2) {
        if ((t = add_tensor(p, m, p->in_line, p->in_name, "", SFPW_TENSOR_ACT,
                            SFPW_ROLE_INPUT, m->in_dim)) < 0)
            return SFP_EINVAL;
        m->values[0].tensor = t;
        m->tensors[t].value = 0;
    }
    for (int i = 0; i < m->nlayers; i++) {
        sfpw_layer *l = &m->layers[i];
        for (int s = 0; s < l->nslots; s++) {
            char suf[SFPW_NAME_MAX + 1];
            snprintf(suf, sizeof suf, ".%s", l->slot_name[s]);
            sfpw_tensor_kind kind = l->slot_codes[s] ? SFPW_TENSOR_CODES
                                    : l->slot_raw[s] ? SFPW_TENSOR_STATS
                                    : slot_rebuilt(m, l) ? SFPW_TENSOR_RECOMP
                                                         : SFPW_TENSOR_ACT;
            if ((t = add_tensor(p, m, l->line, l->name, suf, kind,
                                kind == SFPW_TENSOR_RECOMP ? SFPW_ROLE_RECOMPUTED
                                                           : l->slot_role[s],
                                l->slot_codes[s] ? l->slot_codes[s] : l->slot_n[s])) < 0)
                return SFP_EINVAL;
            m->tensors[t].fixed = l->slot_fixed[s];
            m->tensors[t].layer = i;
            m->tensors[t].slot = s;
            l->slot_tensor[s] = t;
        }
        sfpw_value *v = &m->values[l->out];
        if (v->tensor == -2 || v->tensor == -3) {
            const int rec = v->tensor == -3;
            if ((t = add_tensor(p, m, l->line, l->name, ".out",
                                rec ? SFPW_TENSOR_RECOMP : SFPW_TENSOR_ACT,
                                rec ? SFPW_ROLE_RECOMPUTED : value_role(m, l->out), v->n)) < 0)
                return SFP_EINVAL;
            v->tensor = t;
            m->tensors[t].layer = i;
            m->tensors[t].value = l->out;
        }
    }
    size_t off = 0;
    for (int i = 0; i < m->nlayers; i++) {
        sfpw_layer *l = &m->layers[i];
        l->w_tensor = l->b_tensor = -1;
        if (l->w_n) {
            if ((t = add_tensor(p, m, l->line, l->name, ".w", l->w_kind, l->w_role, l->w_n)) < 0)
                return SFP_EINVAL;
            m->tensors[t].layer = i;
            m->tensors[t].off = l->w_off = off;
            l->w_tensor = t;
            off += l->w_n;
        }
        if (l->b_n) {
            if ((t = add_tensor(p, m, l->line, l->name, ".b", l->b_kind, l->b_role, l->b_n)) < 0)
                return SFP_EINVAL;
            m->tensors[t].layer = i;
            m->tensors[t].off = l->b_off = off;
            l->b_tensor = t;
            off += l->b_n;
        }
    }
    m->nparams = off;
    if (!m->nparams)
        return fail(p, 0, "the model has no parameters to train");
    return 0;
}

int sfpw_model_parse(sfpw_model *m, const char *text, size_t len,
                     const char *name, char *err, size_t cap)
{
    char dummy[8];
    if (!err || !cap) {
        err = dummy;
        cap = sizeof dummy;
    }
    err[0] = 0;
    parser p;
    memset(&p, 0, sizeof p);
    p.err = err;
    p.cap = cap;
    if (len > SFPW_MODEL_MAX_BYTES)
        return fail(&p, 0, "the model file is larger than %u bytes", SFPW_MODEL_MAX_BYTES);
    p.r = calloc(SFPW_MAX_LAYERS, sizeof *p.r);
    int *order = calloc(SFPW_MAX_LAYERS, sizeof *order);
    char *line = malloc(MAX_LINE + 1);
    int rc = SFP_ENOMEM;
    if (!p.r || !order || !line) {
        fail(&p, 0, "out of memory");
        goto out;
    }
    rc = SFP_EINVAL;
    size_t pos = 0;
    for (int ln = 1; pos < len; ln++) {
        size_t e = pos;
        while (e < len && text[e] != '\n')
            e++;
        if (e - pos > MAX_LINE) {
            fail(&p, ln, "longer than %d characters", MAX_LINE);
            goto out;
        }
        for (size_t i = pos; i < e; i++) {
            unsigned char c = (unsigned char)text[i];
            if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
                fail(&p, ln, "control character 0x%02x", c);
                goto out;
            }
        }
        memcpy(line, text + pos, e - pos);
        line[e - pos] = 0;
        if (parse_line(&p, ln, line))
            goto out;
        pos = e + 1;
    }
    if (!p.in_line) {
        fail(&p, 0, "no input line (input NAME CxHxW)");
        goto out;
    }
    if (!p.n) {
        fail(&p, 0, "no layers");
        goto out;
    }
    if (resolve(&p) || topo(&p, order))
        goto out;
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s",
             p.model_name[0] ? p.model_name : name && name[0] ? name : "model");
    if (build(&p, m, order))
        goto out;
    rc = 0;
out:
    free(p.r);
    free(order);
    free(line);
    return rc;
}

int sfpw_model_build(sfpw_model *m, const char *name)
{
    const char *text = sfpw_model_builtin_text(name);
    if (!text)
        return SFP_EINVAL;
    return sfpw_model_parse(m, text, strlen(text), name, NULL, 0);
}

int sfpw_model_load(sfpw_model *m, const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return SFP_EINVAL;
    }
    char *buf = malloc(SFPW_MODEL_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, SFPW_MODEL_MAX_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, cap, "%s: cannot read", path);
        free(buf);
        return SFP_EINVAL;
    }
    /* the name: the file's base name without its extension */
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char name[SFPW_NAME_MAX];
    snprintf(name, sizeof name, "%s", b);
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
        *dot = 0;
    if (!valid_name(name))
        snprintf(name, sizeof name, "model");
    char why[512];
    int rc = sfpw_model_parse(m, buf, n, name, why, sizeof why);
    if (rc)
        snprintf(err, cap, "%s: %s", path, why);
    free(buf);
    return rc;
}

/* ----------------------------------------------------------------- output */

void sfpw_model_print(const sfpw_model *m, FILE *f)
{
    int stashed = 0, rec = 0;
    for (int t = 0; t < m->ntensors; t++) {
        stashed += sfpw_tensor_is_put(m->tensors[t].kind);
        rec += m->tensors[t].kind == SFPW_TENSOR_RECOMP;
    }
    fprintf(f, "model %s: %zu parameters, %d layers, %d stashed tensors", m->name, m->nparams,
            m->nlayers, stashed);
    if (rec)
        fprintf(f, ", %d recomputed", rec);
    fputc('\n', f);
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        char si[64], so[64], ins[96] = "";
        size_t k = 0;
        for (int j = 0; j < l->nin && k < sizeof ins; j++)
            k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%s", j ? "," : "",
                                  m->values[l->in[j]].name);
        fprintf(f, "  %-10s %-9s %-14s %9s -> %-9s", l->name, l->ops->kind, ins,
                sfpw_shape_str(&l->in_shape[0], si, sizeof si),
                sfpw_shape_str(&l->out_shape, so, sizeof so));
        for (int o = 0; l->ops->opts && l->ops->opts[o].key; o++)
            fprintf(f, " %s=%d", l->ops->opts[o].key, l->opt[o]);
        if (l->relu)
            fprintf(f, " act=relu");
        if (l->w_n + l->b_n)
            fprintf(f, "  params %zu", l->w_n + l->b_n);
        fputc('\n', f);
    }
    fprintf(f, "  loss       softmax cross-entropy over %d classes\n", m->classes);
}

void sfpw_model_init_params(const sfpw_model *m, float *params, uint64_t seed)
{
    sfpw_rng r;
    sfpw_rng_seed(&r, seed, 0x1417);
    memset(params, 0, m->nparams * sizeof(float));
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        if (l->w_n + l->b_n)
            l->ops->init(l, l->w_n ? params + l->w_off : NULL,
                         l->b_n ? params + l->b_off : NULL, NULL, &r);
    }
}

void sfpw_model_init_buffers(const sfpw_model *m, float *buffers)
{
    for (int i = 0; i < m->nlayers; i++) {
        const sfpw_layer *l = &m->layers[i];
        if (l->nbuf)
            l->ops->init(l, NULL, NULL, buffers + l->buf_off, NULL);
    }
}
