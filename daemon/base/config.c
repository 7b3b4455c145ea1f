/* config.c - option table, INI file (inih), environment and flags. */
#include "base/config.h"
#include "base/sfpd.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct opt {
    const char *name;
    sfpd_opt_type type;
    const char *def;
    uint64_t min, max;
    bool live;
    const char *help;
    size_t off;
} opt;

static const opt opts[] = {
#define SFPD__OPT(name, type, def, mn, mx, live, help) \
    {#name, SFPD_OPT_##type, def, (uint64_t)(mn), (uint64_t)(mx), live, help, offsetof(sfpd_config, name)},
    SFPD_OPTIONS(SFPD__OPT)
#undef SFPD__OPT
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static const opt *find_opt(const char *name, size_t len)
{
    char norm[64];
    if (len >= sizeof(norm))
        return NULL;
    for (size_t i = 0; i < len; i++)
        norm[i] = name[i] == '-' ? '_' : (char)tolower((unsigned char)name[i]);
    norm[len] = 0;
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(opts); i++)
        if (strcmp(opts[i].name, norm) == 0)
            return &opts[i];
    return NULL;
}

int sfpd_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1;

    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    while (isspace((unsigned char)*end))
        end++;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mul = SFPD_KiB; end++; break;
    case 'M': mul = SFPD_MiB; end++; break;
    case 'G': mul = SFPD_GiB; end++; break;
    case 'T': mul = SFPD_GiB << 10; end++; break;
    default: return -EINVAL;
    }
    if (mul > 1) {
        if (toupper((unsigned char)*end) == 'I' && toupper((unsigned char)end[1]) == 'B')
            end += 2;
        else if (toupper((unsigned char)*end) == 'B')
            end++;
    }
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -EINVAL;
    if (v > UINT64_MAX / mul)
        return -EINVAL;
    *out = (uint64_t)v * mul;
    return 0;
}

static int parse_idlist(const char *s)
{
    /* validation only; parsed into arrays by finish() */
    while (*s) {
        char *end;
        while (*s == ',' || isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        if (!isdigit((unsigned char)*s))
            return -EINVAL;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || v > UINT32_MAX)
            return -EINVAL;
        s = end;
        while (isspace((unsigned char)*s))
            s++;
        if (*s && *s != ',')
            return -EINVAL;
    }
    return 0;
}

/*
 * Why a string value could not be written back by --print-config and read
 * again as the same value (inih reads lines of at most INI_MAX_LINE - 2
 * characters, strips blanks, takes " ;" for a comment and has no quoting),
 * or NULL. Found by the fuzz_config campaign (docs/TESTING.md): a value
 * such as ";" was accepted from "spill_dir =;" but printed as an empty one.
 */
static const char *unwritable(const opt *o, const char *v)
{
    size_t n = strlen(v);
    if (strlen(o->name) + 3 + n > INI_MAX_LINE - 2)
        return "too long for one line of a config file";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return "contains a control character";
    if (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))
        return "starts or ends with a blank";
    if (v[0] == ';' || strstr(v, " ;") || strstr(v, "\t;"))
        return "contains an INI comment (';' at the start or after a blank)";
    return NULL;
}

/* Sets one option from text; returns 0 or -EINVAL (message in err). */
static int set_opt(sfpd_config *c, const opt *o, const char *val, char *err, size_t errlen)
{
    char *p = (char *)c + o->off;
    uint64_t u;
    char *end;

    switch (o->type) {
    case SFPD_OPT_STRING:
    case SFPD_OPT_IDLIST: {
        char *dup;
        const char *why;
        if (o->type == SFPD_OPT_IDLIST && parse_idlist(val) < 0)
            goto bad;
        if ((why = unwritable(o, val))) {
            snprintf(err, errlen, "%s: value %s", o->name, why);
            return -EINVAL;
        }
        dup = sfpd_strdup(val);
        if (!dup) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        sfpd_free(*(char **)p);
        *(char **)p = dup;
        return 0;
    }
    case SFPD_OPT_SIZE:
        if (sfpd_parse_size(val, &u) < 0)
            goto bad;
        break;
    case SFPD_OPT_UINT:
        if (!isdigit((unsigned char)*val))
            goto bad;
        errno = 0;
        u = strtoull(val, &end, 10);
        if (errno || *end)
            goto bad;
        break;
    case SFPD_OPT_MODE:
        if (!isdigit((unsigned char)*val))
            goto bad;
        errno = 0;
        u = strtoull(val, &end, 8);
        if (errno || *end)
            goto bad;
        break;
    case SFPD_OPT_LEVEL:
        for (u = 0; u < 4; u++)
            if (strcasecmp(val, level_names[u]) == 0)
                break;
        if (u == 4)
            goto bad;
        break;
    case SFPD_OPT_SECONDS: {
        double d;
        errno = 0;
        d = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(d) || d < (double)o->min || d > (double)o->max)
            goto bad;
        *(double *)p = d;
        return 0;
    }
    default:
        goto bad;
    }
    if (u < o->min || u > o->max) {
        snprintf(err, errlen, "%s: %s is out of range [%llu, %llu]", o->name, val,
                 (unsigned long long)o->min, (unsigned long long)o->max);
        return -EINVAL;
    }
    *(uint64_t *)p = u;
    return 0;
bad:
    snprintf(err, errlen, "%s: invalid value '%s'", o->name, val);
    return -EINVAL;
}

static int set_defaults(sfpd_config *c)
{
    char err[256];
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(opts); i++)
        if (set_opt(c, &opts[i], opts[i].def, err, sizeof(err)) < 0)
            return -ENOMEM;
    return 0;
}

typedef struct ini_ctx {
    sfpd_config *c;
    char err[300];
    int failed;
} ini_ctx;

static int sfpd_ini_cb(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *ctx = user;
    const opt *o;

    if (section[0] && strcmp(section, "sfpd") != 0) {
        snprintf(ctx->err, sizeof(ctx->err), "unknown section [%s]", section);
        ctx->failed = 1;
        return 0;
    }
    o = find_opt(name, strlen(name));
    if (!o) {
        snprintf(ctx->err, sizeof(ctx->err), "unknown option '%s'", name);
        ctx->failed = 1;
        return 0;
    }
    if (set_opt(ctx->c, o, value, ctx->err, sizeof(ctx->err)) < 0) {
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

static int load_file(sfpd_config *c, const char *path)
{
    ini_ctx ctx = {.c = c};
    int r = ini_parse(path, sfpd_ini_cb, &ctx);
    if (r == -1) {
        fprintf(stderr, "sfpd: cannot open config file %s: %s\n", path, strerror(errno));
        return -ENOENT;
    }
    if (r != 0) {
        fprintf(stderr, "sfpd: %s:%d: %s\n", path, r, ctx.failed ? ctx.err : "syntax error");
        return -EINVAL;
    }
    return 0;
}

static int load_env(sfpd_config *c)
{
    char err[300];
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(opts); i++) {
        char name[80] = "SFPD_";
        size_t n = 5;
        const char *v;
        for (const char *s = opts[i].name; *s && n + 1 < sizeof(name); s++)
            name[n++] = (char)toupper((unsigned char)*s);
        name[n] = 0;
        v = getenv(name);
        if (!v)
            continue;
        if (set_opt(c, &opts[i], v, err, sizeof(err)) < 0) {
            fprintf(stderr, "sfpd: environment %s: %s\n", name, err);
            return -EINVAL;
        }
    }
    return 0;
}

/* Walks argv; with apply, sets options; without, only finds --config and actions. */
static int scan_args(sfpd_config *c, int argc, char **argv, bool apply,
                     const char **config_path, sfpd_action *action)
{
    char err[300];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *val = NULL, *eq;
        size_t nlen;
        const opt *o;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *action = SFPD_ACTION_HELP;
            continue;
        }
        if (strcmp(a, "--print-config") == 0) {
            *action = SFPD_ACTION_PRINT_CONFIG;
            continue;
        }
        if (strcmp(a, "--version") == 0) {
            *action = SFPD_ACTION_VERSION;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sfpd: unexpected argument '%s' (see --help)\n", a);
            return -EINVAL;
        }
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "sfpd: option %s needs a value\n", a);
            return -EINVAL;
        }
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            *config_path = val;
            continue;
        }
        o = find_opt(name, nlen);
        if (!o) {
            fprintf(stderr, "sfpd: unknown option '%.*s' (see --help)\n", (int)nlen, name);
            return -EINVAL;
        }
        if (apply && set_opt(c, o, val, err, sizeof(err)) < 0) {
            fprintf(stderr, "sfpd: --%s\n", err);
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_ids(const char *s, uint32_t **out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    while (*s) {
        char *end;
        unsigned long v;
        while (*s == ',' || isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        v = strtoul(s, &end, 10);
        s = end;
        if (*n == cap) {
            uint32_t *g;
            cap = cap ? cap * 2 : 4;
            g = sfpd_realloc(*out, cap * sizeof(**out));
            if (!g)
                return -ENOMEM;
            *out = g;
        }
        (*out)[(*n)++] = (uint32_t)v;
    }
    return 0;
}

static int build(int argc, char **argv, sfpd_config **out, sfpd_action *action)
{
    sfpd_config *c = sfpd_calloc(1, sizeof(*c));
    const char *path = NULL;
    sfpd_action act = SFPD_ACTION_RUN;
    int r = -ENOMEM;

    if (!c)
        return -ENOMEM;
    if ((r = set_defaults(c)) < 0)
        goto fail;
    if ((r = scan_args(c, argc, argv, false, &path, &act)) < 0)
        goto fail;
    if (!path)
        path = getenv("SFPD_CONFIG");
    if (path && path[0]) {
        if ((r = load_file(c, path)) < 0)
            goto fail;
        if (!(c->config_file = sfpd_strdup(path))) {
            r = -ENOMEM;
            goto fail;
        }
    }
    if ((r = load_env(c)) < 0)
        goto fail;
    if ((r = scan_args(c, argc, argv, true, &path, &act)) < 0)
        goto fail;
    if ((r = parse_ids(c->allow_uids, &c->uids, &c->n_uids)) < 0 ||
        (r = parse_ids(c->allow_gids, &c->gids, &c->n_gids)) < 0)
        goto fail;
    if (!c->socket[0] || !c->spill_dir[0]) {
        fprintf(stderr, "sfpd: socket and spill_dir must not be empty\n");
        r = -EINVAL;
        goto fail;
    }
    if (action)
        *action = act;
    *out = c;
    return 0;
fail:
    sfpd_config_free(&c);
    return r;
}

int sfpd_config_load(int argc, char **argv, sfpd_config **out, sfpd_action *action)
{
    return build(argc, argv, out, action);
}

int sfpd_config_reload(const sfpd_config *old, int argc, char **argv, sfpd_config **out)
{
    (void)old;
    return build(argc, argv, out, NULL);
}

void sfpd_config_apply_live(sfpd_config *dst, const sfpd_config *src)
{
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(opts); i++) {
        const opt *o = &opts[i];
        char *d = (char *)dst + o->off;
        const char *s = (const char *)src + o->off;
        bool differ;

        if (o->type == SFPD_OPT_STRING || o->type == SFPD_OPT_IDLIST)
            differ = strcmp(*(char *const *)d, *(char *const *)s) != 0;
        else if (o->type == SFPD_OPT_SECONDS)
            differ = *(double *)d != *(const double *)s;
        else
            differ = *(uint64_t *)d != *(const uint64_t *)s;
        if (!differ)
            continue;
        if (!o->live) {
            sfpd_warn("config: %s changed but needs a restart; keeping the old value", o->name);
            continue;
        }
        sfpd_info("config: %s changed", o->name);
        if (o->type == SFPD_OPT_STRING || o->type == SFPD_OPT_IDLIST) {
            char *dup = sfpd_strdup(*(char *const *)s);
            if (!dup) {
                sfpd_err("config: out of memory applying %s", o->name);
                continue;
            }
            sfpd_free(*(char **)d);
            *(char **)d = dup;
        } else if (o->type == SFPD_OPT_SECONDS) {
            *(double *)d = *(const double *)s;
        } else {
            *(uint64_t *)d = *(const uint64_t *)s;
        }
    }
    /* id lists are re-parsed from the (possibly new) text */
    {
        uint32_t *u = NULL, *g = NULL;
        size_t nu = 0, ng = 0;
        if (parse_ids(dst->allow_uids, &u, &nu) == 0 && parse_ids(dst->allow_gids, &g, &ng) == 0) {
            sfpd_free(dst->uids);
            sfpd_free(dst->gids);
            dst->uids = u, dst->n_uids = nu;
            dst->gids = g, dst->n_gids = ng;
        } else {
            sfpd_free(u);
            sfpd_free(g);
        }
    }
}

void sfpd_config_free(sfpd_config **pc)
{
    sfpd_config *c;
    if (!pc || !*pc)
        return;
    c = *pc;
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(opts); i++)
        if (opts[i].type == SFPD_OPT_STRING || opts[i].type == SFPD_OPT_IDLIST)
            sfpd_free(*(char **)((char *)c + opts[i].off));
    sfpd_free(c->config_file);
    sfpd_free(c->uids);
    sfpd_free(c->gids);
    sfpd_free(c);
    *pc = NULL;
}

static void format_value(const sfpd_config *c, const opt *o, char *buf, size_t len)
{
    const char *p = (const char *)c + o->off;
    uint64_t u;
    switch (o->type) {
    case SFPD_OPT_STRING:
    case SFPD_OPT_IDLIST:
        snprintf(buf, len, "%s", *(char *const *)p);
        return;
    case SFPD_OPT_SECONDS:
        snprintf(buf, len, "%g", *(const double *)p);
        return;
    case SFPD_OPT_MODE:
        snprintf(buf, len, "0%llo", (unsigned long long)*(const uint64_t *)p);
        return;
    case SFPD_OPT_LEVEL:
        snprintf(buf, len, "%s", level_names[*(const uint64_t *)p & 3]);
        return;
    case SFPD_OPT_SIZE:
        u = *(const uint64_t *)p;
        if (u && u % SFPD_GiB == 0)
            snprintf(buf, len, "%lluG", (unsigned long long)(u / SFPD_GiB));
        else if (u && u % SFPD_MiB == 0)
            snprintf(buf, len, "%lluM", (unsigned long long)(u / SFPD_MiB));
        else if (u && u % SFPD_KiB == 0)
            snprintf(buf, len, "%lluK", (unsigned long long)(u / SFPD_KiB));
        else
            snprintf(buf, len, "%llu", (unsigned long long)u);
        return;
    default:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)p);
        return;
    }
}

void sfpd_config_print(const sfpd_config *c, FILE *f)
{
    char v[512];
    fprintf(f, "# sfpd configuration (effective values)%s%s\n",
            c->config_file ? "; file " : "", c->config_file ? c->config_file : "");
    fprintf(f, "[sfpd]\n");
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(opts); i++) {
        format_value(c, &opts[i], v, sizeof(v));
        fprintf(f, "# %s%s\n%s = %s\n", opts[i].help, opts[i].live ? " [live]" : "",
                opts[i].name, v);
    }
}

void sfpd_config_help(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [--config FILE] [--OPTION VALUE ...] [--print-config] [--help] [--version]\n"
            "\n"
            "sfpd: node-local stash daemon for sfp (compressed activations, spill, prefetch).\n"
            "Every option can be set in the INI file (section [sfpd] or none), as the\n"
            "environment variable SFPD_<OPTION> or as --<option>; later sources win:\n"
            "default < file < environment < flag. [live] options change on SIGHUP.\n"
            "Signals: SIGTERM/SIGINT drain and exit 0, SIGHUP reload, SIGUSR1 stats to stderr.\n"
            "\n"
            "  --config FILE                   INI file (also SFPD_CONFIG)\n",
            argv0);
    for (size_t i = 0; i < SFPD_ARRAY_SIZE(opts); i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", opts[i].name);
        for (char *s = flag + 2; *s; s++)
            if (*s == '_')
                *s = '-';
        fprintf(f, "  %-31s %s%s (default: %s)\n", flag, opts[i].help,
                opts[i].live ? " [live]" : "", opts[i].def[0] ? opts[i].def : "\"\"");
    }
}
