/*
 * sfp_codec.c - sfp-codec: encode raw tensors into sfp frames, decode them
 * back, and show what a frame header says. Uses only the public API.
 *
 * Exit status: 0 success, 1 codec, data or I/O error, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfp/sfp.h"

#define EXIT_DATA 1
#define EXIT_USAGE 2

static const char *prog = "sfp-codec";

static const char help_text[] =
    "NAME\n"
    "    sfp-codec - encode, decode and inspect sfp frames\n"
    "\n"
    "SYNOPSIS\n"
    "    sfp-codec encode [--dtype f32|bf16] [--mantissa K] [--exponent E]\n"
    "                     [--gecko | --rans | --coder plain|gecko|rans] [--group G]\n"
    "                     [--rounding rne|trunc|stochastic]\n"
    "                     [--seed S] [--anchor A] [--verbose] IN OUT\n"
    "    sfp-codec decode [--verbose] IN OUT\n"
    "    sfp-codec info [--json] FRAME\n"
    "    sfp-codec --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    sfp-codec quantizes a tensor of raw little-endian FP32 or BF16 values\n"
    "    onto an adaptive floating-point container (K mantissa bits, an E-bit\n"
    "    exponent window anchored at the tensor's largest exponent) and writes\n"
    "    it as one self-describing, checksummed frame (docs/FORMAT.md).\n"
    "    Decoding gives back the quantized values bit for bit; with K = 23 and\n"
    "    E = 8 (F32) or K = 7 and E = 8 (BF16) the round trip is lossless.\n"
    "    A file name of - means standard input or standard output.\n"
    "\n"
    "COMMANDS\n"
    "    encode IN OUT\n"
    "        Read raw values from IN (its size must be a multiple of the dtype\n"
    "        size) and write one frame to OUT. NaN and Inf are refused.\n"
    "    decode IN OUT\n"
    "        Verify the frame in IN (header, sizes, checksum, every plane) and\n"
    "        write the raw little-endian values to OUT. The dtype and the count\n"
    "        come from the frame header.\n"
    "    info FRAME\n"
    "        Print every header field, the plane sizes, bits per value, the\n"
    "        compression ratio against the raw dtype and whether the checksum\n"
    "        matches; with a good checksum it also decodes the frame once to\n"
    "        validate every plane. Exits 1 when the header, the checksum or a\n"
    "        plane is bad.\n"
    "\n"
    "ENCODE OPTIONS\n"
    "    -t, --dtype f32|bf16     element type of IN (default f32)\n"
    "    -k, --mantissa K         kept mantissa bits, 0..23 for f32, 0..7 for bf16\n"
    "                             (default: all, i.e. 23 or 7)\n"
    "    -e, --exponent E         exponent window bits, 1..8 (default 8)\n"
    "    -g, --gecko              code the exponent plane with Gecko (grouped\n"
    "                             base + deltas; same as --coder gecko)\n"
    "    -R, --rans               code the exponent plane with static rANS (the\n"
    "                             encoder writes plain codes when that is not\n"
    "                             larger; same as --coder rans)\n"
    "    -c, --coder C            exponent coder: plain (default), gecko or rans\n"
    "    -G, --group G            Gecko group size 8, 16, 32 or 64 (default 16;\n"
    "                             implies --gecko unless a coder is given)\n"
    "    -r, --rounding MODE      rne (default), trunc or stochastic\n"
    "    -s, --seed S             seed of stochastic rounding (default 0)\n"
    "    -a, --anchor A           fixed biased exponent anchor 0..254 instead of\n"
    "                             the tensor's largest exponent; larger values\n"
    "                             saturate\n"
    "    -v, --verbose            print a summary (sizes, ratio, zeros, flushed\n"
    "                             and saturated values) to standard error\n"
    "\n"
    "INFO OPTIONS\n"
    "    -j, --json               print one JSON object instead of text\n"
    "\n"
    "EXIT STATUS\n"
    "    0   success\n"
    "    1   codec, data or I/O error; the message names the file and, for codec\n"
    "        errors, the SFP_E* code (e.g. SFP_ECHECKSUM: frame checksum mismatch)\n"
    "    2   usage error (unknown command or option, bad option value)\n"
    "\n"
    "EXAMPLES\n"
    "    sfp-codec encode --mantissa 2 --exponent 4 --gecko act.f32 act.sfp\n"
    "    sfp-codec decode act.sfp act.q.f32\n"
    "    sfp-codec info --json act.sfp\n"
    "    cat w.bf16 | sfp-codec encode -t bf16 -k 3 -e 5 - - | sfp-codec info -\n";

/* ------------------------------------------------------------ messages */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    return EXIT_USAGE;
}

/* Reports a libsfp error for a file; returns the exit status. */
static int codec_error(const char *file, const char *what, int rc)
{
    msg("%s: %s: %s: %s", file, what, sfp_strerror_name(rc), sfp_strerror(rc));
    return EXIT_DATA;
}

static const char *display_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

/* ----------------------------------------------------------------- I/O */

/*
 * Reads all of path ("-": stdin) into a malloc'd buffer. On success *out
 * owns the buffer (free it); on failure prints a message and returns -1.
 */
static int read_all(const char *path, uint8_t **out, size_t *out_len)
{
    int fd = STDIN_FILENO;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, hint = 65536;
    struct stat st;

    if (strcmp(path, "-") != 0) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            msg("%s: cannot open: %s", path, strerror(errno));
            return -1;
        }
    }
    if (fstat(fd, &st) != 0) {
        msg("%s: cannot stat: %s", display_name(path), strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        msg("%s: is a directory", path);
        goto fail;
    }
    /* Regular files: one allocation of the right size (+1 to see EOF). */
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        if ((uint64_t)st.st_size >= SIZE_MAX) {
            msg("%s: file too large", path);
            goto fail;
        }
        hint = (size_t)st.st_size + 1;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap < hint ? hint : cap * 2;
            if (ncap < cap) {
                msg("%s: file too large", display_name(path));
                goto fail;
            }
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL) {
                msg("%s: out of memory reading %zu bytes", display_name(path), ncap);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            msg("%s: read error: %s", display_name(path), strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    *out = buf;
    *out_len = len;
    return 0;
fail:
    free(buf);
    if (fd != STDIN_FILENO)
        close(fd);
    return -1;
}

/*
 * Writes buf[0..len) to path ("-": stdout), replacing the file. A partly
 * written output file is removed. Prints a message and returns -1 on error.
 */
static int write_all(const char *path, const void *buf, size_t len)
{
    const int is_stdout = strcmp(path, "-") == 0;
    const char *name = is_stdout ? "<stdout>" : path;
    const uint8_t *p = buf;
    int fd = STDOUT_FILENO;
    int regular = 0; /* only a regular output file is removed on failure */

    if (!is_stdout) {
        struct stat st;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            msg("%s: cannot create: %s", path, strerror(errno));
            return -1;
        }
        regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    }
    while (len > 0) {
        ssize_t put = write(fd, p, len);
        if (put < 0) {
            if (errno == EINTR)
                continue;
            msg("%s: write error: %s", name, strerror(errno));
            goto fail;
        }
        p += put;
        len -= (size_t)put;
    }
    if (!is_stdout) {
        if (close(fd) != 0) {
            fd = -1;
            msg("%s: write error: %s", name, strerror(errno));
            goto fail;
        }
    }
    return 0;
fail:
    if (!is_stdout) {
        if (fd >= 0)
            close(fd);
        if (regular)
            unlink(path);
    }
    return -1;
}

/* --------------------------------------------------------- arguments */

/* Parses an unsigned decimal (or 0x hex) number in [lo, hi]. */
static int parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Resets getopt for a subcommand's argv. */
static void getopt_reset(void)
{
    optind = 0; /* glibc: full reinitialisation */
    opterr = 0;
}

static int bad_option(const char *cmd, char **argv, int c)
{
    if (c == 'h') {
        fputs(help_text, stdout);
        fflush(stdout);
        return -1; /* caller returns 0 */
    }
    if (c == ':')
        return usage_error("%s: option '%s' needs a value", cmd, argv[optind - 1]);
    if (optopt)
        return usage_error("%s: unknown option '-%c'", cmd, optopt);
    return usage_error("%s: unknown option '%s'", cmd, argv[optind - 1]);
}

/* Exit status for a bad_option() result. */
static int option_status(int r)
{
    return r < 0 ? 0 : r;
}

/* -------------------------------------------------------------- encode */

static int cmd_encode(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dtype", required_argument, NULL, 't'},
        {"mantissa", required_argument, NULL, 'k'},
        {"exponent", required_argument, NULL, 'e'},
        {"gecko", no_argument, NULL, 'g'},
        {"rans", no_argument, NULL, 'R'},
        {"coder", required_argument, NULL, 'c'},
        {"group", required_argument, NULL, 'G'},
        {"rounding", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"anchor", required_argument, NULL, 'a'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sfp_params p;
    int have_k = 0, have_group = 0, verbose = 0, rc, c;
    uint64_t v;
    uint8_t *in = NULL, *frame = NULL;
    size_t in_len = 0;
    int status = EXIT_DATA;

    sfp_params_default(&p);
    getopt_reset();
    while ((c = getopt_long(argc, argv, ":t:k:e:gRc:G:r:s:a:vh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (sfp_dtype_parse(optarg, &p.dtype) < 0)
                return usage_error("encode: --dtype must be f32 or bf16, not '%s'", optarg);
            break;
        case 'k':
            if (parse_uint(optarg, 0, 23, &v) < 0)
                return usage_error("encode: --mantissa must be 0..23 (0..7 for bf16), not '%s'", optarg);
            p.mbits = (unsigned)v;
            have_k = 1;
            break;
        case 'e':
            if (parse_uint(optarg, 1, 8, &v) < 0)
                return usage_error("encode: --exponent must be 1..8, not '%s'", optarg);
            p.ebits = (unsigned)v;
            break;
        case 'g':
            p.coder = SFP_CODER_GECKO;
            break;
        case 'R':
            p.coder = SFP_CODER_RANS;
            break;
        case 'c':
            if (sfp_coder_parse(optarg, &p.coder) < 0)
                return usage_error("encode: --coder must be plain, gecko or rans, not '%s'", optarg);
            break;
        case 'G':
            if (parse_uint(optarg, 8, 64, &v) < 0 || (v != 8 && v != 16 && v != 32 && v != 64))
                return usage_error("encode: --group must be 8, 16, 32 or 64, not '%s'", optarg);
            p.gecko_group = (unsigned)v;
            have_group = 1;
            break;
        case 'r':
            if (strcmp(optarg, "rne") == 0)
                p.rounding = SFP_ROUND_RNE;
            else if (strcmp(optarg, "trunc") == 0)
                p.rounding = SFP_ROUND_TRUNC;
            else if (strcmp(optarg, "stochastic") == 0)
                p.rounding = SFP_ROUND_STOCHASTIC;
            else
                return usage_error("encode: --rounding must be rne, trunc or stochastic, not '%s'", optarg);
            break;
        case 's':
            if (parse_uint(optarg, 0, UINT64_MAX, &v) < 0)
                return usage_error("encode: --seed must be an unsigned 64-bit number, not '%s'", optarg);
            p.seed = v;
            break;
        case 'a':
            if (parse_uint(optarg, 0, 254, &v) < 0)
                return usage_error("encode: --anchor must be 0..254, not '%s'", optarg);
            p.anchor = (int)v;
            break;
        case 'v':
            verbose = 1;
            break;
        default:
            return option_status(bad_option("encode", argv, c));
        }
    }
    if (argc - optind != 2)
        return usage_error("encode: expected IN and OUT, got %d file argument%s",
                           argc - optind, argc - optind == 1 ? "" : "s");
    if (have_group && p.coder == SFP_CODER_PLAIN)
        p.coder = SFP_CODER_GECKO;
    if (have_group && p.coder != SFP_CODER_GECKO)
        return usage_error("encode: --group applies to the Gecko coder only");
    if (!have_k)
        p.mbits = p.dtype == SFP_DTYPE_F32 ? 23 : 7;
    if (p.dtype == SFP_DTYPE_BF16 && p.mbits > 7)
        return usage_error("encode: --mantissa must be 0..7 for bf16, not %u", p.mbits);
    if (p.anchor == 0 && p.mbits == 0)
        return usage_error("encode: a fixed --anchor 0 needs --mantissa >= 1 "
                           "(the grid would have no non-zero value)");
    if ((rc = sfp_params_check(&p)) < 0)
        return usage_error("encode: invalid parameters: %s", sfp_strerror(rc));

    const char *inpath = argv[optind], *outpath = argv[optind + 1];
    const char *inname = display_name(inpath);
    const size_t esz = sfp_dtype_size(p.dtype);
    if (read_all(inpath, &in, &in_len) < 0)
        goto fail;
    if (in_len % esz != 0) {
        msg("%s: size %zu bytes is not a multiple of %zu (the %s element size); "
            "is --dtype right?", inname, in_len, esz, sfp_dtype_name(p.dtype));
        goto fail;
    }
    const size_t n = in_len / esz;
    const size_t cap = sfp_frame_bound(n, &p);
    if (cap == 0) {
        status = codec_error(inname, "encode", SFP_EOVERFLOW);
        goto fail;
    }
    if ((frame = malloc(cap)) == NULL) {
        status = codec_error(inname, "encode", SFP_ENOMEM);
        goto fail;
    }
    size_t flen = 0;
    sfp_qstats st;
    rc = sfp_encode(in, n, &p, frame, cap, &flen, &st);
    if (rc < 0) {
        status = codec_error(inname, "encode", rc);
        goto fail;
    }
    if (write_all(outpath, frame, flen) < 0)
        goto fail;
    if (verbose) {
        fprintf(stderr,
                "%s: %zu %s values, %zu -> %zu bytes, ratio %.3f, %.3f bits/value; "
                "k=%u e=%u %s anchor=%d; zeros %" PRIu64 " (flushed %" PRIu64
                "), saturated %" PRIu64 ", negative %" PRIu64 "\n",
                inname, n, sfp_dtype_name(p.dtype), in_len, flen,
                flen ? (double)in_len / (double)flen : 0.0,
                n ? 8.0 * (double)flen / (double)n : 0.0, p.mbits, p.ebits,
                sfp_coder_name(p.coder), st.anchor, st.zeros, st.flushed, st.saturated,
                st.negative);
    }
    status = 0;
fail:
    free(in);
    free(frame);
    return status;
}

/* -------------------------------------------------------------- decode */

/* Parses the frame header with a message naming the file on failure. */
static int parse_frame(const char *name, const uint8_t *buf, size_t len,
                       sfp_frame_info *fi)
{
    int rc = sfp_frame_parse(buf, len, fi);
    if (rc < 0)
        return codec_error(name, "invalid frame", rc);
    return 0;
}

static int cmd_decode(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint8_t *in = NULL, *out = NULL;
    size_t in_len = 0;
    int verbose = 0, status = EXIT_DATA, c, rc;
    sfp_frame_info fi;

    getopt_reset();
    while ((c = getopt_long(argc, argv, ":vh", opts, NULL)) != -1) {
        if (c == 'v')
            verbose = 1;
        else
            return option_status(bad_option("decode", argv, c));
    }
    if (argc - optind != 2)
        return usage_error("decode: expected IN and OUT, got %d file argument%s",
                           argc - optind, argc - optind == 1 ? "" : "s");
    const char *inpath = argv[optind], *outpath = argv[optind + 1];
    const char *inname = display_name(inpath);

    if (read_all(inpath, &in, &in_len) < 0)
        goto fail;
    if (parse_frame(inname, in, in_len, &fi) != 0)
        goto fail;
    if (fi.frame_bytes != in_len) {
        msg("%s: %zu bytes of trailing data after the %" PRIu64
            "-byte frame (one frame per file expected)",
            inname, in_len - (size_t)fi.frame_bytes, fi.frame_bytes);
        goto fail;
    }
    const size_t esz = sfp_dtype_size(fi.dtype);
    if (fi.count > SIZE_MAX / esz) {
        status = codec_error(inname, "decode", SFP_EOVERFLOW);
        goto fail;
    }
    const size_t out_len = (size_t)fi.count * esz;
    if ((out = malloc(out_len ? out_len : 1)) == NULL) {
        status = codec_error(inname, "decode", SFP_ENOMEM);
        goto fail;
    }
    size_t n = 0;
    rc = sfp_decode(in, in_len, out, out_len, &n);
    if (rc < 0) {
        status = codec_error(inname, "decode", rc);
        goto fail;
    }
    if (write_all(outpath, out, out_len) < 0)
        goto fail;
    if (verbose)
        fprintf(stderr, "%s: %zu %s values, %zu -> %zu bytes\n", inname, n,
                sfp_dtype_name(fi.dtype), in_len, out_len);
    status = 0;
fail:
    free(in);
    free(out);
    return status;
}

/* ---------------------------------------------------------------- info */

static void flags_text(unsigned f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s%s", (f & SFP_FLAG_SIGN) ? "SIGN " : "",
             (f & SFP_FLAG_ZSIGN) ? "ZSIGN " : "", (f & SFP_FLAG_ZMAP) ? "ZMAP " : "",
             f ? "" : "none");
    size_t l = strlen(buf);
    if (l && buf[l - 1] == ' ')
        buf[l - 1] = '\0';
}

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint8_t *in = NULL;
    size_t in_len = 0;
    int json = 0, status = EXIT_DATA, c;
    sfp_frame_info fi;

    getopt_reset();
    while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else
            return option_status(bad_option("info", argv, c));
    }
    if (argc - optind != 1)
        return usage_error("info: expected one FRAME, got %d file arguments",
                           argc - optind);
    const char *path = argv[optind];
    const char *name = display_name(path);
    if (read_all(path, &in, &in_len) < 0)
        goto fail;
    if (parse_frame(name, in, in_len, &fi) != 0)
        goto fail;

    const uint64_t body = fi.frame_bytes - SFP_FRAME_TRAILER_SIZE;
    const uint64_t computed = sfp_checksum(in, (size_t)body);
    const int sum_ok = computed == fi.checksum;
    const size_t esz = sfp_dtype_size(fi.dtype);
    const double raw = (double)fi.count * (double)esz;
    const double bpv = fi.count ? 8.0 * (double)fi.frame_bytes / (double)fi.count : 0.0;
    const double payload_bpv =
        fi.count ? 8.0 * (double)(body - SFP_FRAME_HEADER_SIZE) / (double)fi.count : 0.0;
    const double ratio = raw / (double)fi.frame_bytes;
    const int lo = (int)fi.anchor - (1 << fi.ebits) + 2;
    const uint64_t trailing = in_len - fi.frame_bytes;
    char flags[64];
    flags_text(fi.flags, flags, sizeof(flags));

    /* With a good checksum, decode once to validate every plane too. */
    int payload_rc = 1; /* 1: not checked */
    const char *payload_note = "not checked (checksum bad)";
    if (sum_ok) {
        size_t out_len = fi.count <= SIZE_MAX / esz ? (size_t)fi.count * esz : SIZE_MAX;
        void *tmp = out_len < SIZE_MAX ? malloc(out_len ? out_len : 1) : NULL;
        if (tmp == NULL) {
            payload_rc = SFP_ENOMEM; /* not vouched for: exit 1 */
        } else {
            payload_rc = sfp_decode(in, in_len, tmp, out_len, NULL);
            payload_note = payload_rc == 0 ? "OK" : "bad";
            free(tmp);
        }
    }

    if (json) {
        printf("{\"file\": \"");
        for (const char *s = path; *s; s++) {
            unsigned char ch = (unsigned char)*s;
            if (ch == '"' || ch == '\\')
                printf("\\%c", ch);
            else if (ch < 0x20)
                printf("\\u%04x", ch);
            else
                putchar(ch);
        }
        printf("\", \"version\": %u, \"dtype\": \"%s\", \"mantissa_bits\": %u, "
               "\"exponent_bits\": %u, \"anchor\": %u, \"window_low\": %d, "
               "\"coder\": \"%s\", \"gecko_group\": %u, \"flags\": %u, "
               "\"count\": %" PRIu64 ", \"nonzero\": %" PRIu64 ", \"zeros\": %" PRIu64
               ", \"sign_bytes\": %" PRIu64 ", \"mantissa_bytes\": %" PRIu64
               ", \"zero_map_bytes\": %" PRIu64 ", \"exponent_bytes\": %" PRIu64
               ", \"frame_bytes\": %" PRIu64 ", \"raw_bytes\": %" PRIu64
               ", \"trailing_bytes\": %" PRIu64 ", \"bits_per_value\": %.4f"
               ", \"payload_bits_per_value\": %.4f, \"ratio\": %.4f"
               ", \"checksum\": \"%016" PRIx64 "\", \"checksum_ok\": %s"
               ", \"payload_ok\": %s}\n",
               fi.version, sfp_dtype_name(fi.dtype), fi.mbits, fi.ebits, fi.anchor, lo,
               sfp_coder_name(fi.coder), fi.gecko_group, fi.flags, fi.count, fi.nonzero,
               fi.count - fi.nonzero, fi.sign_bytes, fi.mant_bytes, fi.zmap_bytes,
               fi.exp_bytes, fi.frame_bytes, fi.count * esz, trailing, bpv,
               payload_bpv, ratio, fi.checksum, sum_ok ? "true" : "false",
               payload_rc == 1 ? "null" : payload_rc == 0 ? "true" : "false");
    } else {
        printf("file:            %s\n", path);
        printf("version:         %u\n", fi.version);
        printf("dtype:           %s (%zu bytes/value)\n", sfp_dtype_name(fi.dtype), esz);
        printf("mantissa bits:   %u\n", fi.mbits);
        printf("exponent bits:   %u\n", fi.ebits);
        printf("anchor:          %u (2^%d); window %d..%u\n", fi.anchor,
               (int)fi.anchor - 127, lo < 0 ? 0 : lo, fi.anchor);
        if (fi.coder == SFP_CODER_GECKO)
            printf("coder:           gecko (group %u)\n", fi.gecko_group);
        else
            printf("coder:           %s\n", sfp_coder_name(fi.coder));
        printf("flags:           0x%02x (%s)\n", fi.flags, flags);
        printf("count:           %" PRIu64 "\n", fi.count);
        printf("nonzero:         %" PRIu64 "\n", fi.nonzero);
        printf("zeros:           %" PRIu64 " (%.2f%%)\n", fi.count - fi.nonzero,
               fi.count ? 100.0 * (double)(fi.count - fi.nonzero) / (double)fi.count : 0.0);
        printf("sign bytes:      %" PRIu64 "\n", fi.sign_bytes);
        printf("mantissa bytes:  %" PRIu64 "\n", fi.mant_bytes);
        printf("zero map bytes:  %" PRIu64 "\n", fi.zmap_bytes);
        printf("exponent bytes:  %" PRIu64 "\n", fi.exp_bytes);
        printf("frame bytes:     %" PRIu64 "\n", fi.frame_bytes);
        if (trailing)
            printf("trailing bytes:  %" PRIu64 " (after the frame)\n", trailing);
        printf("raw bytes:       %" PRIu64 "\n", fi.count * esz);
        printf("bits/value:      %.4f (payload %.4f)\n", bpv, payload_bpv);
        printf("ratio:           %.4f (vs raw %s)\n", ratio, sfp_dtype_name(fi.dtype));
        printf("checksum:        %016" PRIx64 " %s\n", fi.checksum,
               sum_ok ? "OK" : "bad");
        if (payload_rc == SFP_ENOMEM)
            printf("payload:         not checked (%s)\n", sfp_strerror_name(payload_rc));
        else if (payload_rc < 0)
            printf("payload:         bad (%s)\n", sfp_strerror_name(payload_rc));
        else
            printf("payload:         %s\n", payload_note);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg("<stdout>: write error: %s", strerror(errno));
        goto fail;
    }
    if (!sum_ok) {
        msg("%s: checksum: %s: %s (stored %016" PRIx64 ", computed %016" PRIx64 ")",
            name, sfp_strerror_name(SFP_ECHECKSUM), sfp_strerror(SFP_ECHECKSUM),
            fi.checksum, computed);
        goto fail;
    }
    if (payload_rc < 0) {
        status = codec_error(name, "payload", payload_rc);
        goto fail;
    }
    status = 0;
fail:
    free(in);
    return status;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command (encode, decode or info)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(help_text, stdout);
        return fflush(stdout) == 0 ? 0 : EXIT_DATA;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("sfp-codec (libsfp %s, frame format version %d)\n", sfp_version(),
               SFP_FRAME_VERSION);
        return fflush(stdout) == 0 ? 0 : EXIT_DATA;
    }
    /* Subcommands see argv[0] = command name, as getopt expects. */
    if (strcmp(cmd, "encode") == 0)
        return cmd_encode(argc - 1, argv + 1);
    if (strcmp(cmd, "decode") == 0)
        return cmd_decode(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc - 1, argv + 1);
    return usage_error("unknown command '%s' (encode, decode or info)", cmd);
}
