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
#include <sys/mman.h>
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
    "                     [--gecko | --rans | --coder plain|gecko|rans|auto] [--group G]\n"
    "                     [--zmap bitmap|huffman]\n"
    "                     [--rounding rne|trunc|stochastic]\n"
    "                     [--seed S] [--anchor A] [--chunk SIZE] [--verbose] IN OUT\n"
    "    sfp-codec decode [--verbose] IN OUT\n"
    "    sfp-codec info [--json] FILE\n"
    "    sfp-codec --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    sfp-codec quantizes a tensor of raw little-endian FP32 or BF16 values\n"
    "    onto an adaptive floating-point container (K mantissa bits, an E-bit\n"
    "    exponent window anchored at the largest exponent) and writes it as\n"
    "    self-describing, checksummed frames (docs/FORMAT.md), one frame per\n"
    "    chunk of the input: a file of concatenated frames (FORMAT.md section\n"
    "    8). Memory stays bounded by the chunk size, whatever the input size.\n"
    "    Decoding gives back the quantized values bit for bit; with K = 23 and\n"
    "    E = 8 (F32) or K = 7 and E = 8 (BF16) the round trip is lossless.\n"
    "    A file name of - means standard input or standard output.\n"
    "\n"
    "COMMANDS\n"
    "    encode IN OUT\n"
    "        Read raw values from IN (its size must be a multiple of the dtype\n"
    "        size) and write one frame per chunk to OUT. Each chunk is\n"
    "        quantized on its own (its own anchor); stochastic rounding draws\n"
    "        the same random bits as for the whole tensor. NaN and Inf are\n"
    "        refused.\n"
    "    decode IN OUT\n"
    "        Verify every frame in IN (header, sizes, checksum, every plane) and\n"
    "        write the raw little-endian values of all frames, in order, to\n"
    "        OUT. The dtype and the counts come from the frame headers; every\n"
    "        frame of a file must have the same dtype.\n"
    "    info FILE\n"
    "        Print every header field, the plane sizes, bits per value, the\n"
    "        compression ratio against the raw dtype, whether the checksum\n"
    "        matches, and whether the payload decodes (each frame is decoded\n"
    "        once to validate every plane). A file of several frames gets one\n"
    "        line per frame and the totals. Exits 0 only when every frame was\n"
    "        checked and is good; 1 when a header, a checksum or a plane is\n"
    "        bad, or a frame could not be checked (SFP_ENOMEM).\n"
    "\n"
    "ENCODE OPTIONS\n"
    "    -t, --dtype f32|bf16     element type of IN (default f32)\n"
    "    -k, --mantissa K         kept mantissa bits, 0..23 for f32, 0..7 for bf16\n"
    "                             (default: all, i.e. 23 or 7)\n"
    "    -e, --exponent E         exponent window bits, 1..8 (default 8)\n"
    "    -g, --gecko              code the exponent plane with Gecko (grouped\n"
    "                             base + deltas; same as --coder gecko)\n"
    "    -R, --rans               code the exponent plane with static rANS (the\n"
    "                             encoder writes the smallest valid layout:\n"
    "                             rANS, plain, or plain with a zero map; same\n"
    "                             as --coder rans)\n"
    "    -c, --coder C            exponent coder: plain (default), gecko, rans, or\n"
    "                             auto (each chunk the smaller of a Gecko and a\n"
    "                             rANS frame)\n"
    "    -G, --group G            Gecko group size 8, 16, 32 or 64 (default 16;\n"
    "                             implies --gecko unless a coder is given)\n"
    "    -z, --zmap Z             zero map of frames that have one: bitmap\n"
    "                             (default) or huffman (Huffman-coded masks of 8\n"
    "                             values where smaller: zeros in runs cost less;\n"
    "                             docs/FORMAT.md 2.4.1)\n"
    "    -r, --rounding MODE      rne (default), trunc or stochastic\n"
    "    -s, --seed S             seed of stochastic rounding (default 0)\n"
    "    -a, --anchor A           fixed biased exponent anchor 0..254 instead of\n"
    "                             the chunk's largest exponent; larger values\n"
    "                             saturate\n"
    "    -C, --chunk SIZE         input bytes per frame (suffix K, M or G for\n"
    "                             KiB, MiB, GiB; rounded down to whole values;\n"
    "                             default 4M); 0: the whole input in one frame\n"
    "                             (memory then grows with the input)\n"
    "    -v, --verbose            print a summary (frames, sizes, ratio, zeros,\n"
    "                             flushed and saturated values) to standard error\n"
    "\n"
    "INFO OPTIONS\n"
    "    -j, --json               print one JSON object instead of text\n"
    "\n"
    "ENVIRONMENT\n"
    "    SFP_IMPL=c|avx2|avx512   force the kernel implementation (default: the\n"
    "                             best the CPU has); results are the same\n"
    "\n"
    "EXIT STATUS\n"
    "    0   success\n"
    "    1   codec, data or I/O error; the message names the file and, for codec\n"
    "        errors, the SFP_E* code (e.g. SFP_ECHECKSUM: frame checksum mismatch);\n"
    "        in a file of several frames also the frame number and byte offset.\n"
    "        A regular output file is removed; on standard output the frames or\n"
    "        values before the error have been written.\n"
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

/* Parses "1048576", "4M", "512K", "1G" (binary units); -1 if invalid. */
static int parse_size(const char *s, uint64_t *out)
{
    char num[32];
    size_t l = strlen(s);
    uint64_t mul = 1, v;
    if (l == 0 || l >= sizeof(num))
        return -1;
    memcpy(num, s, l + 1);
    switch (num[l - 1]) {
    case 'k': case 'K': mul = 1u << 10; break;
    case 'm': case 'M': mul = 1u << 20; break;
    case 'g': case 'G': mul = 1u << 30; break;
    default: break;
    }
    if (mul > 1)
        num[l - 1] = '\0';
    if (parse_uint(num, 0, UINT64_MAX / mul, &v) < 0)
        return -1;
    *out = v * mul;
    return 0;
}

/* ----------------------------------------------------------------- I/O */

/* Input bytes per frame when --chunk is not given. */
#define DEFAULT_CHUNK (4u << 20)

/*
 * Large buffers are allocated once per run and reused for every chunk.
 * They are 2 MiB aligned and advised as huge pages, so that touching them
 * the first time costs one page fault per 2 MiB where the kernel allows it
 * (page faults are expensive on virtual machines).
 */
#define BIG_ALIGN ((size_t)2 << 20)

static void *big_alloc(size_t n)
{
    size_t sz = (n + BIG_ALIGN - 1) & ~(BIG_ALIGN - 1);
    if (sz < n)
        return NULL;
    void *p = aligned_alloc(BIG_ALIGN, sz ? sz : BIG_ALIGN);
#ifdef MADV_HUGEPAGE
    if (p && sz >= BIG_ALIGN)
        (void)madvise(p, sz, MADV_HUGEPAGE);
#endif
    return p;
}

/* A reusable buffer that only grows; keeps the first `keep` bytes. */
typedef struct buffer {
    uint8_t *p;
    size_t cap;
} buffer;

static int buf_reserve(buffer *b, size_t need, size_t keep)
{
    if (need <= b->cap)
        return 0;
    uint8_t *q = big_alloc(need);
    if (q == NULL)
        return -1;
    if (keep)
        memcpy(q, b->p, keep);
    free(b->p);
    b->p = q;
    b->cap = need;
    return 0;
}

typedef struct input {
    int fd;
    const char *name; /* for messages */
    uint64_t off;     /* bytes read so far */
} input;

/* Opens path ("-": stdin); prints a message and returns -1 on error. */
static int in_open(input *in, const char *path)
{
    struct stat st;
    in->fd = STDIN_FILENO;
    in->name = display_name(path);
    in->off = 0;
    if (strcmp(path, "-") != 0) {
        in->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            msg("%s: cannot open: %s", path, strerror(errno));
            return -1;
        }
    }
    if (fstat(in->fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        msg("%s: %s", in->name, S_ISDIR(st.st_mode) ? "is a directory" : strerror(errno));
        if (in->fd != STDIN_FILENO)
            close(in->fd);
        in->fd = -1;
        return -1;
    }
#ifdef POSIX_FADV_SEQUENTIAL
    (void)posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    return 0;
}

static void in_close(input *in)
{
    if (in->fd >= 0 && in->fd != STDIN_FILENO)
        close(in->fd);
    in->fd = -1;
}

/* Reads n bytes, fewer only at the end of the input. Returns the count, or
 * (size_t)-1 after printing a message. */
static size_t in_read(input *in, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(in->fd, (uint8_t *)buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            msg("%s: read error: %s", in->name, strerror(errno));
            return (size_t)-1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    in->off += got;
    return got;
}

typedef struct output {
    const char *path, *name;
    int fd;      /* -1 until the first write */
    int regular; /* a regular file we created: removed on failure */
} output;

static void out_init(output *o, const char *path)
{
    o->path = path;
    o->name = strcmp(path, "-") == 0 ? "<stdout>" : path;
    o->fd = -1;
    o->regular = 0;
}

/* Opens the output (replacing a file) on first use. */
static int out_open(output *o)
{
    struct stat st;
    if (o->fd >= 0)
        return 0;
    if (strcmp(o->path, "-") == 0) {
        o->fd = STDOUT_FILENO;
        return 0;
    }
    o->fd = open(o->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0) {
        msg("%s: cannot create: %s", o->path, strerror(errno));
        return -1;
    }
    o->regular = fstat(o->fd, &st) == 0 && S_ISREG(st.st_mode);
    return 0;
}

static int out_write(output *o, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (out_open(o) < 0)
        return -1;
    while (len > 0) {
        ssize_t put = write(o->fd, p, len);
        if (put < 0) {
            if (errno == EINTR)
                continue;
            msg("%s: write error: %s", o->name, strerror(errno));
            return -1;
        }
        p += put;
        len -= (size_t)put;
    }
    return 0;
}

/* Finishes the output (creating it if nothing was written). */
static int out_finish(output *o)
{
    if (out_open(o) < 0)
        return -1;
    if (o->fd != STDOUT_FILENO) {
        int fd = o->fd;
        o->fd = -1;
        if (close(fd) != 0) {
            msg("%s: write error: %s", o->name, strerror(errno));
            if (o->regular)
                unlink(o->path);
            return -1;
        }
    }
    return 0;
}

/* After a failure: a regular output file we created is removed. */
static void out_abort(output *o)
{
    if (o->fd >= 0 && o->fd != STDOUT_FILENO) {
        close(o->fd);
        if (o->regular)
            unlink(o->path);
    }
    o->fd = -1;
}

/*
 * Frames of a file, one after the other, in a buffer that grows only as
 * bytes actually arrive (a header cannot make it allocate more than twice
 * what was read).
 */
typedef struct reader {
    input in;
    buffer b;
    unsigned idx;       /* frames returned so far */
    uint64_t frame_off; /* byte offset of the current frame */
} reader;

/* Reports a codec error of the current frame (its number and offset when
 * it is not the only frame so far); returns the exit status. */
static int frame_error(const reader *r, const char *what, int rc)
{
    if (r->idx <= 1 && r->frame_off == 0)
        return codec_error(r->in.name, what, rc);
    char w[128];
    snprintf(w, sizeof(w), "frame %u at byte %" PRIu64 ": %s", r->idx, r->frame_off, what);
    return codec_error(r->in.name, w, rc);
}

/*
 * Reads the next frame into r->b and parses its header. Returns 1 (a frame:
 * r->b.p, fi->frame_bytes), 0 (end of input after at least one frame), or
 * -1 after printing a message (an empty input is a truncated frame).
 */
static int next_frame(reader *r, sfp_frame_info *fi)
{
    r->frame_off = r->in.off;
    r->idx++;
    if (buf_reserve(&r->b, 1u << 20, 0) < 0) {
        frame_error(r, "read", SFP_ENOMEM);
        return -1;
    }
    size_t have = in_read(&r->in, r->b.p, SFP_FRAME_HEADER_SIZE);
    if (have == (size_t)-1)
        return -1;
    if (have == 0 && r->idx > 1) {
        r->idx--;
        return 0;
    }
    int rc = sfp_frame_parse_header(r->b.p, have, fi);
    if (rc < 0) {
        frame_error(r, "invalid frame", rc);
        return -1;
    }
    const uint64_t fb = fi->frame_bytes;
    if (fb > SIZE_MAX / 2) {
        frame_error(r, "invalid frame", SFP_EOVERFLOW);
        return -1;
    }
    while (have < fb) {
        if (have == r->b.cap) {
            size_t ncap = r->b.cap * 2 < fb ? r->b.cap * 2 : (size_t)fb;
            if (buf_reserve(&r->b, ncap, have) < 0) {
                frame_error(r, "read", SFP_ENOMEM);
                return -1;
            }
        }
        size_t want = (r->b.cap < fb ? r->b.cap : (size_t)fb) - have;
        size_t got = in_read(&r->in, r->b.p + have, want);
        if (got == (size_t)-1)
            return -1;
        have += got;
        if (got < want) {
            frame_error(r, "invalid frame", SFP_ETRUNC);
            return -1;
        }
    }
    if ((rc = sfp_frame_parse(r->b.p, have, fi)) < 0) {
        frame_error(r, "invalid frame", rc);
        return -1;
    }
    return 1;
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
        {"zmap", required_argument, NULL, 'z'},
        {"rounding", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"anchor", required_argument, NULL, 'a'},
        {"chunk", required_argument, NULL, 'C'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sfp_params p;
    int have_k = 0, have_group = 0, verbose = 0, rc, c;
    uint64_t v, chunk = DEFAULT_CHUNK;
    buffer ib = {0}, fb = {0};
    input in = {.fd = -1};
    output out;
    int status = EXIT_DATA;

    sfp_params_default(&p);
    getopt_reset();
    while ((c = getopt_long(argc, argv, ":t:k:e:gRc:G:z:r:s:a:C:vh", opts, NULL)) != -1) {
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
        case 'z':
            if (sfp_zmap_parse(optarg, &p.zmap) < 0)
                return usage_error("encode: --zmap must be bitmap or huffman, not '%s'", optarg);
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
        case 'C':
            if (parse_size(optarg, &chunk) < 0 || chunk > ((uint64_t)1 << 40))
                return usage_error("encode: --chunk must be a size in bytes (suffix K, M or G) "
                                   "up to 1T, not '%s'", optarg);
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
    const size_t esz = sfp_dtype_size(p.dtype);
    if (chunk && chunk < esz)
        return usage_error("encode: --chunk must hold at least one value (%zu bytes)", esz);

    const char *inpath = argv[optind], *outpath = argv[optind + 1];
    const size_t per = (size_t)(chunk / esz); /* values per frame; 0: all */
    out_init(&out, outpath);
    if (in_open(&in, inpath) < 0)
        goto fail;
    if (per && (buf_reserve(&ib, per * esz, 0) < 0 ||
                buf_reserve(&fb, sfp_frame_bound(per, &p), 0) < 0)) {
        status = codec_error(in.name, "encode", SFP_ENOMEM);
        goto fail;
    }

    uint64_t frames = 0, values = 0, bytes_out = 0;
    uint64_t zeros = 0, flushed = 0, saturated = 0, negative = 0;
    int amin = 255, amax = -1;
    for (;;) {
        size_t got;
        if (per) {
            got = in_read(&in, ib.p, per * esz);
        } else { /* the whole input: grow as it arrives */
            got = 0;
            for (;;) {
                if (got == ib.cap && buf_reserve(&ib, ib.cap ? 2 * ib.cap : DEFAULT_CHUNK, got) < 0) {
                    status = codec_error(in.name, "encode", SFP_ENOMEM);
                    goto fail;
                }
                size_t r = in_read(&in, ib.p + got, ib.cap - got);
                if (r == (size_t)-1)
                    goto fail;
                got += r;
                if (got < ib.cap)
                    break;
            }
        }
        if (got == (size_t)-1)
            goto fail;
        if (got == 0 && frames > 0)
            break;
        if (got % esz != 0) {
            msg("%s: size %" PRIu64 " bytes is not a multiple of %zu (the %s element size); "
                "is --dtype right?", in.name, in.off, esz, sfp_dtype_name(p.dtype));
            goto fail;
        }
        const size_t n = got / esz;
        size_t cap = sfp_frame_bound(n, &p), flen = 0;
        if (cap == 0) {
            status = codec_error(in.name, "encode", SFP_EOVERFLOW);
            goto fail;
        }
        if (buf_reserve(&fb, cap, 0) < 0) {
            status = codec_error(in.name, "encode", SFP_ENOMEM);
            goto fail;
        }
        /* value i of this chunk draws the stochastic bits of value
         * values + i of the whole input (sfp.h, SFP_STOCHASTIC_STEP) */
        sfp_params pc = p;
        pc.seed = p.seed + values * SFP_STOCHASTIC_STEP;
        sfp_qstats st;
        rc = sfp_encode(ib.p, n, &pc, fb.p, fb.cap, &flen, &st);
        if (rc < 0) {
            if (frames == 0 && got < per * esz)
                status = codec_error(in.name, "encode", rc);
            else {
                char w[96];
                snprintf(w, sizeof(w), "encode of values %" PRIu64 "..%" PRIu64, values,
                         values + n - 1);
                status = codec_error(in.name, w, rc);
            }
            goto fail;
        }
        if (out_write(&out, fb.p, flen) < 0)
            goto fail;
        frames++;
        values += n;
        bytes_out += flen;
        zeros += st.zeros, flushed += st.flushed, saturated += st.saturated;
        negative += st.negative;
        if (n) {
            amin = st.anchor < amin ? st.anchor : amin;
            amax = st.anchor > amax ? st.anchor : amax;
        }
        if (!per || got < per * esz)
            break;
    }
    if (out_finish(&out) < 0)
        goto fail;
    if (verbose) {
        char anchors[32];
        if (amax < 0 || amin == amax)
            snprintf(anchors, sizeof(anchors), "%d", amax < 0 ? 0 : amax);
        else
            snprintf(anchors, sizeof(anchors), "%d..%d", amin, amax);
        fprintf(stderr,
                "%s: %" PRIu64 " %s values, %" PRIu64 " -> %" PRIu64 " bytes in %" PRIu64
                " frame%s, ratio %.3f, %.3f bits/value; k=%u e=%u %s anchor=%s; zeros %" PRIu64
                " (flushed %" PRIu64 "), saturated %" PRIu64 ", negative %" PRIu64 "\n",
                in.name, values, sfp_dtype_name(p.dtype), in.off, bytes_out, frames,
                frames == 1 ? "" : "s", bytes_out ? (double)in.off / (double)bytes_out : 0.0,
                values ? 8.0 * (double)bytes_out / (double)values : 0.0, p.mbits, p.ebits,
                sfp_coder_name(p.coder), anchors, zeros, flushed, saturated, negative);
    }
    status = 0;
fail:
    if (status != 0)
        out_abort(&out);
    in_close(&in);
    free(ib.p);
    free(fb.p);
    return status;
}

/* -------------------------------------------------------------- decode */

static int cmd_decode(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int verbose = 0, status = EXIT_DATA, c, rc;
    reader r = {.in = {.fd = -1}};
    buffer ob = {0};
    output out;
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
    out_init(&out, argv[optind + 1]);
    if (in_open(&r.in, argv[optind]) < 0)
        goto fail;

    sfp_dtype dtype = 0;
    uint64_t values = 0, bytes_out = 0;
    while ((rc = next_frame(&r, &fi)) == 1) {
        if (r.idx == 1) {
            dtype = fi.dtype;
        } else if (fi.dtype != dtype) {
            msg("%s: frame %u at byte %" PRIu64 ": dtype %s differs from the first frame's %s "
                "(%s)", r.in.name, r.idx, r.frame_off, sfp_dtype_name(fi.dtype), sfp_dtype_name(dtype),
                sfp_strerror_name(SFP_EHEADER));
            goto fail;
        }
        const size_t esz = sfp_dtype_size(fi.dtype);
        if (fi.count > SIZE_MAX / esz) {
            status = frame_error(&r, "decode", SFP_EOVERFLOW);
            goto fail;
        }
        const size_t len = (size_t)fi.count * esz;
        if (buf_reserve(&ob, len ? len : 1, 0) < 0) {
            status = frame_error(&r, "decode", SFP_ENOMEM);
            goto fail;
        }
        size_t n = 0;
        rc = sfp_decode(r.b.p, (size_t)fi.frame_bytes, ob.p, ob.cap, &n);
        if (rc < 0) {
            status = frame_error(&r, "decode", rc);
            goto fail;
        }
        if (out_write(&out, ob.p, len) < 0)
            goto fail;
        values += n;
        bytes_out += len;
    }
    if (rc < 0 || out_finish(&out) < 0)
        goto fail;
    if (verbose)
        fprintf(stderr, "%s: %" PRIu64 " %s values in %u frame%s, %" PRIu64 " -> %" PRIu64
                " bytes\n", r.in.name, values, sfp_dtype_name(dtype), r.idx, r.idx == 1 ? "" : "s",
                r.in.off, bytes_out);
    status = 0;
fail:
    if (status != 0)
        out_abort(&out);
    in_close(&r.in);
    free(r.b.p);
    free(ob.p);
    return status;
}

/* ---------------------------------------------------------------- info */

static void flags_text(unsigned f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s%s%s%s", (f & SFP_FLAG_SIGN) ? "SIGN " : "",
             (f & SFP_FLAG_ZSIGN) ? "ZSIGN " : "", (f & SFP_FLAG_ZMAP) ? "ZMAP " : "",
             (f & SFP_FLAG_ZHUF) ? "ZHUF " : "", (f & SFP_FLAG_ZH2) ? "ZH2 " : "",
             f ? "" : "none");
    size_t l = strlen(buf);
    if (l && buf[l - 1] == ' ')
        buf[l - 1] = '\0';
}

/* What info found out about one frame. */
typedef struct frec {
    sfp_frame_info fi;
    uint64_t off;       /* byte offset in the file */
    uint64_t computed;  /* checksum of the frame's bytes */
    int sum_ok;
    int payload_rc;     /* 0 good, < 0 bad or SFP_ENOMEM, 1 not checked */
} frec;

/* Checks the checksum and, when it matches, decodes the frame once. */
static void check_frame(const reader *r, const sfp_frame_info *fi, buffer *ob, frec *f)
{
    const uint64_t body = fi->frame_bytes - SFP_FRAME_TRAILER_SIZE;
    f->fi = *fi;
    f->off = r->frame_off;
    f->computed = sfp_checksum(r->b.p, (size_t)body);
    f->sum_ok = f->computed == fi->checksum;
    f->payload_rc = 1;
    if (!f->sum_ok)
        return;
    const size_t esz = sfp_dtype_size(fi->dtype);
    if (fi->count > SIZE_MAX / esz ||
        buf_reserve(ob, fi->count ? (size_t)fi->count * esz : 1, 0) < 0) {
        f->payload_rc = SFP_ENOMEM; /* not vouched for: info exits 1 */
        return;
    }
    f->payload_rc = sfp_decode(r->b.p, (size_t)fi->frame_bytes, ob->p, ob->cap, NULL);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static const char *payload_json(int rc)
{
    return rc == 1 || rc == SFP_ENOMEM ? "null" : rc == 0 ? "true" : "false";
}

/* The JSON fields of one frame (without braces). */
static void frame_json(const frec *f)
{
    const sfp_frame_info *fi = &f->fi;
    const uint64_t body = fi->frame_bytes - SFP_FRAME_TRAILER_SIZE;
    const size_t esz = sfp_dtype_size(fi->dtype);
    const int lo = (int)fi->anchor - (1 << fi->ebits) + 2;
    printf("\"version\": %u, \"dtype\": \"%s\", \"mantissa_bits\": %u, "
           "\"exponent_bits\": %u, \"anchor\": %u, \"window_low\": %d, "
           "\"coder\": \"%s\", \"gecko_group\": %u, \"flags\": %u, "
           "\"count\": %" PRIu64 ", \"nonzero\": %" PRIu64 ", \"zeros\": %" PRIu64
           ", \"sign_bytes\": %" PRIu64 ", \"mantissa_bytes\": %" PRIu64
           ", \"zero_map_bytes\": %" PRIu64 ", \"exponent_bytes\": %" PRIu64
           ", \"frame_bytes\": %" PRIu64 ", \"raw_bytes\": %" PRIu64,
           fi->version, sfp_dtype_name(fi->dtype), fi->mbits, fi->ebits, fi->anchor, lo,
           sfp_coder_name(fi->coder), fi->gecko_group, fi->flags, fi->count, fi->nonzero,
           fi->count - fi->nonzero, fi->sign_bytes, fi->mant_bytes, fi->zmap_bytes,
           fi->exp_bytes, fi->frame_bytes, fi->count * esz);
    printf(", \"bits_per_value\": %.4f, \"payload_bits_per_value\": %.4f, \"ratio\": %.4f"
           ", \"checksum\": \"%016" PRIx64 "\", \"checksum_ok\": %s, \"payload_ok\": %s",
           fi->count ? 8.0 * (double)fi->frame_bytes / (double)fi->count : 0.0,
           fi->count ? 8.0 * (double)(body - SFP_FRAME_HEADER_SIZE) / (double)fi->count : 0.0,
           (double)(fi->count * esz) / (double)fi->frame_bytes, fi->checksum,
           f->sum_ok ? "true" : "false", payload_json(f->payload_rc));
}

/* The text of a file that holds one frame. */
static void single_text(const char *path, const frec *f)
{
    const sfp_frame_info *fi = &f->fi;
    const uint64_t body = fi->frame_bytes - SFP_FRAME_TRAILER_SIZE;
    const size_t esz = sfp_dtype_size(fi->dtype);
    const int lo = (int)fi->anchor - (1 << fi->ebits) + 2;
    char flags[64];
    flags_text(fi->flags, flags, sizeof(flags));
    printf("file:            %s\n", path);
    printf("version:         %u\n", fi->version);
    printf("dtype:           %s (%zu bytes/value)\n", sfp_dtype_name(fi->dtype), esz);
    printf("mantissa bits:   %u\n", fi->mbits);
    printf("exponent bits:   %u\n", fi->ebits);
    printf("anchor:          %u (2^%d); window %d..%u\n", fi->anchor, (int)fi->anchor - 127,
           lo < 0 ? 0 : lo, fi->anchor);
    if (fi->coder == SFP_CODER_GECKO)
        printf("coder:           gecko (group %u)\n", fi->gecko_group);
    else if (fi->coder == SFP_CODER_RANS && fi->gecko_group)
        printf("coder:           rans (%u states)\n", fi->gecko_group);
    else
        printf("coder:           %s\n", sfp_coder_name(fi->coder));
    printf("flags:           0x%02x (%s)\n", fi->flags, flags);
    printf("count:           %" PRIu64 "\n", fi->count);
    printf("nonzero:         %" PRIu64 "\n", fi->nonzero);
    printf("zeros:           %" PRIu64 " (%.2f%%)\n", fi->count - fi->nonzero,
           fi->count ? 100.0 * (double)(fi->count - fi->nonzero) / (double)fi->count : 0.0);
    printf("sign bytes:      %" PRIu64 "\n", fi->sign_bytes);
    printf("mantissa bytes:  %" PRIu64 "\n", fi->mant_bytes);
    printf("zero map bytes:  %" PRIu64 "\n", fi->zmap_bytes);
    printf("exponent bytes:  %" PRIu64 "\n", fi->exp_bytes);
    printf("frame bytes:     %" PRIu64 "\n", fi->frame_bytes);
    printf("raw bytes:       %" PRIu64 "\n", fi->count * esz);
    printf("bits/value:      %.4f (payload %.4f)\n",
           fi->count ? 8.0 * (double)fi->frame_bytes / (double)fi->count : 0.0,
           fi->count ? 8.0 * (double)(body - SFP_FRAME_HEADER_SIZE) / (double)fi->count : 0.0);
    printf("ratio:           %.4f (vs raw %s)\n",
           (double)(fi->count * esz) / (double)fi->frame_bytes, sfp_dtype_name(fi->dtype));
    printf("checksum:        %016" PRIx64 " %s\n", fi->checksum, f->sum_ok ? "OK" : "bad");
    if (!f->sum_ok)
        printf("payload:         not checked (checksum bad)\n");
    else if (f->payload_rc == SFP_ENOMEM)
        printf("payload:         not checked (%s)\n", sfp_strerror_name(f->payload_rc));
    else if (f->payload_rc < 0)
        printf("payload:         bad (%s)\n", sfp_strerror_name(f->payload_rc));
    else
        printf("payload:         OK\n");
}

/* One line of a file with several frames. */
static void frame_row(unsigned idx, const frec *f)
{
    const sfp_frame_info *fi = &f->fi;
    char flags[64], coder[32];
    flags_text(fi->flags, flags, sizeof(flags));
    if (fi->coder == SFP_CODER_GECKO)
        snprintf(coder, sizeof(coder), "gecko%u", fi->gecko_group);
    else if (fi->coder == SFP_CODER_RANS && fi->gecko_group)
        snprintf(coder, sizeof(coder), "rans%u", fi->gecko_group);
    else
        snprintf(coder, sizeof(coder), "%s", sfp_coder_name(fi->coder));
    printf("frame %-10u offset %" PRIu64 ", %s k%u e%u %s anchor %u flags %s, %" PRIu64
           " values (%" PRIu64 " nonzero), %" PRIu64 " bytes, checksum %s, payload %s\n",
           idx, f->off, sfp_dtype_name(fi->dtype), fi->mbits, fi->ebits, coder, fi->anchor, flags,
           fi->count, fi->nonzero, fi->frame_bytes, f->sum_ok ? "OK" : "bad",
           !f->sum_ok || f->payload_rc == 1 ? "not checked"
           : f->payload_rc == SFP_ENOMEM    ? "not checked (SFP_ENOMEM)"
           : f->payload_rc < 0              ? sfp_strerror_name(f->payload_rc)
                                            : "OK");
}

/* Messages for a bad frame; returns 1 when the frame is not good. */
static int frame_verdict(const reader *r, unsigned idx, const frec *f)
{
    reader at = *r;
    at.idx = idx;
    at.frame_off = f->off;
    if (!f->sum_ok) {
        char w[160];
        snprintf(w, sizeof(w), "checksum (stored %016" PRIx64 ", computed %016" PRIx64 ")",
                 f->fi.checksum, f->computed);
        /* codec_error's format, with the sums after the message */
        if (idx <= 1 && f->off == 0)
            msg("%s: checksum: %s: %s (stored %016" PRIx64 ", computed %016" PRIx64 ")",
                r->in.name, sfp_strerror_name(SFP_ECHECKSUM), sfp_strerror(SFP_ECHECKSUM),
                f->fi.checksum, f->computed);
        else
            frame_error(&at, w, SFP_ECHECKSUM);
        return 1;
    }
    if (f->payload_rc < 0) {
        frame_error(&at, "payload", f->payload_rc);
        return 1;
    }
    return 0;
}

typedef struct totals {
    uint64_t count, nonzero, frame_bytes, raw_bytes, bad;
} totals;

static void totals_add(totals *t, const frec *f)
{
    t->count += f->fi.count;
    t->nonzero += f->fi.nonzero;
    t->frame_bytes += f->fi.frame_bytes;
    t->raw_bytes += f->fi.count * sfp_dtype_size(f->fi.dtype);
}

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    reader r = {.in = {.fd = -1}};
    buffer ob = {0};
    int json = 0, status = EXIT_DATA, c, rc;
    sfp_frame_info fi;
    frec first, cur;
    totals t = {0};

    getopt_reset();
    while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else
            return option_status(bad_option("info", argv, c));
    }
    if (argc - optind != 1)
        return usage_error("info: expected one FILE, got %d file arguments", argc - optind);
    const char *path = argv[optind];
    if (in_open(&r.in, path) < 0)
        goto fail;
    if (next_frame(&r, &fi) != 1)
        goto fail;
    check_frame(&r, &fi, &ob, &first);
    totals_add(&t, &first);
    rc = next_frame(&r, &fi);
    if (rc != 1) {
        /* one frame (then the end of the file, or an error after it) */
        if (json) {
            printf("{\"file\": ");
            json_string(path);
            printf(", ");
            frame_json(&first);
            printf(", \"trailing_bytes\": 0}\n");
        } else {
            single_text(path, &first);
        }
        t.bad += (unsigned)frame_verdict(&r, 1, &first);
        if (rc < 0)
            t.bad++;
    } else {
        if (json) {
            printf("{\"file\": ");
            json_string(path);
            printf(", \"frame_list\": [{\"offset\": 0, ");
            frame_json(&first);
            printf("}");
        } else {
            printf("file:            %s\n", path);
            frame_row(1, &first);
        }
        t.bad += (unsigned)frame_verdict(&r, 1, &first);
        do {
            check_frame(&r, &fi, &ob, &cur);
            totals_add(&t, &cur);
            if (json) {
                printf(", {\"offset\": %" PRIu64 ", ", cur.off);
                frame_json(&cur);
                printf("}");
            } else {
                frame_row(r.idx, &cur);
            }
            t.bad += (unsigned)frame_verdict(&r, r.idx, &cur);
        } while ((rc = next_frame(&r, &fi)) == 1);
        if (rc < 0)
            t.bad++;
        const double bpv = t.count ? 8.0 * (double)t.frame_bytes / (double)t.count : 0.0;
        const double ratio = t.frame_bytes ? (double)t.raw_bytes / (double)t.frame_bytes : 0.0;
        if (json) {
            printf("], \"frames\": %u, \"count\": %" PRIu64 ", \"nonzero\": %" PRIu64
                   ", \"zeros\": %" PRIu64 ", \"frame_bytes\": %" PRIu64 ", \"raw_bytes\": %" PRIu64
                   ", \"bits_per_value\": %.4f, \"ratio\": %.4f, \"all_ok\": %s}\n",
                   r.idx, t.count, t.nonzero, t.count - t.nonzero, t.frame_bytes, t.raw_bytes,
                   bpv, ratio, t.bad ? "false" : "true");
        } else {
            printf("frames:          %u\n", r.idx);
            printf("count:           %" PRIu64 "\n", t.count);
            printf("nonzero:         %" PRIu64 "\n", t.nonzero);
            printf("zeros:           %" PRIu64 " (%.2f%%)\n", t.count - t.nonzero,
                   t.count ? 100.0 * (double)(t.count - t.nonzero) / (double)t.count : 0.0);
            printf("frame bytes:     %" PRIu64 "\n", t.frame_bytes);
            printf("raw bytes:       %" PRIu64 "\n", t.raw_bytes);
            printf("bits/value:      %.4f\n", bpv);
            printf("ratio:           %.4f\n", ratio);
            printf("verdict:         %s\n", t.bad ? "bad" : "every frame OK");
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        msg("<stdout>: write error: %s", strerror(errno));
        goto fail;
    }
    if (t.bad == 0)
        status = 0;
fail:
    in_close(&r.in);
    free(r.b.p);
    free(ob.p);
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
