/*
 * fuzz_config: sfpd's configuration parser (daemon/base/config.c): the INI file
 * (inih), the command-line flags and every option's value parser, through
 * sfpd_config_load exactly as sfpd's main() calls it, then --print-config,
 * a SIGHUP-style reload and sfpd_config_apply_live.
 *
 * Input: INI file text, then optionally a NUL byte and command-line
 * arguments separated by NUL bytes (at most 32). The text is handed over
 * as a real file (memfd, /proc/self/fd/N, via --config); arguments naming
 * --config themselves are dropped so the target never opens other paths.
 *
 * Properties (abort() = finding): a successful load prints; the printed
 * configuration loads again and prints identically (--print-config output
 * is a valid config file that means the same thing, whether the values came
 * from the file or from flags); reload succeeds and applying it changes
 * nothing. The SFPD_* environment is cleared first.
 */
#include "base/config.h"
#include "base/sfpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the environment is a config source too: none, so that a printed
     * configuration read back means exactly what was printed */
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "SFPD_", 5) == 0) {
                char name[128];
                size_t n = strcspn(*e, "=");
                snprintf(name, sizeof(name), "%.*s", (int)(n < 127 ? n : 127), *e);
                unsetenv(name);
                again = 1;
                break;
            }
    }
    sfpd_log_set_level(SFPD_LOG_ERROR);
    return 0;
}

/* A memfd holding len bytes of text; its /proc path goes to path. */
static int text_file(const char *text, size_t len, char *path, size_t pathlen)
{
    int fd = memfd_create("sfpd-fuzz-config", MFD_CLOEXEC);
    size_t off = 0;
    if (fd < 0)
        abort();
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

static char *print_config(const sfpd_config *c, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        abort();
    sfpd_config_print(c, f);
    fclose(f);
    return buf;
}

/* The printed text without its first line (which names the file). */
static int same_body(const char *a, const char *b)
{
    size_t ia = strcspn(a, "\n"), ib = strcspn(b, "\n");
    if (a[ia])
        ia++;
    if (b[ib])
        ib++;
    return strcmp(a + ia, b + ib) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    char *args_buf = NULL;
    char *argv[MAX_ARGS + 4];
    int argc = 0, fd;
    char path[64];
    sfpd_config *c = NULL, *c2 = NULL;
    sfpd_action act = SFPD_ACTION_RUN;

    if (!devnull) {
        LLVMFuzzerInitialize(NULL, NULL); /* replay_main does not call it */
        if (!(devnull = fopen("/dev/null", "w")))
            abort();
    }
    fd = text_file((const char *)data, text_len, path, sizeof(path));
    argv[argc++] = (char *)"sfpd";
    argv[argc++] = (char *)"--config";
    argv[argc++] = path;
    if (nul) {
        size_t n = size - text_len - 1;
        char *s, *end;
        if (!(args_buf = malloc(n + 1)))
            abort();
        memcpy(args_buf, nul + 1, n);
        args_buf[n] = 0;
        end = args_buf + n;
        for (s = args_buf; s < end && argc < MAX_ARGS + 3; s += strlen(s) + 1) {
            if (strncmp(s, "--config", 8) == 0)
                continue;
            argv[argc++] = s;
        }
        /* a trailing empty argument after the last NUL */
        if (n && args_buf[n - 1] == 0 && argc < MAX_ARGS + 3)
            argv[argc++] = end;
    }
    argv[argc] = NULL;

    /* every value through the size parser too */
    for (int i = 3; i < argc; i++) {
        uint64_t v;
        (void)sfpd_parse_size(argv[i], &v);
    }

    if (sfpd_config_load(argc, argv, &c, &act) == 0) {
        size_t l1 = 0;
        char *p1 = print_config(c, &l1);
        sfpd_config_print(c, devnull);

        {
            char path2[64];
            char *argv2[] = {(char *)"sfpd", (char *)"--config", path2, NULL};
            int fd2 = text_file(p1, l1, path2, sizeof(path2));
            sfpd_config *c3 = NULL;
            size_t l3 = 0;
            char *p3;
            if (sfpd_config_load(3, argv2, &c3, NULL) != 0)
                abort(); /* --print-config output must load */
            p3 = print_config(c3, &l3);
            if (!same_body(p1, p3))
                abort(); /* ... and mean the same */
            free(p3);
            sfpd_config_free(&c3);
            close(fd2);
        }

        if (sfpd_config_reload(c, argc, argv, &c2) != 0)
            abort(); /* same file, same argv: must load again */
        sfpd_config_apply_live(c, c2);
        {
            size_t l2 = 0;
            char *p2 = print_config(c, &l2);
            if (!same_body(p1, p2))
                abort(); /* applying an identical reload changes nothing */
            free(p2);
        }
        free(p1);
        sfpd_config_free(&c2);
        sfpd_config_free(&c);
    }
    close(fd);
    free(args_buf);
    return 0;
}
