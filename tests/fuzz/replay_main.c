/*
 * replay_main.c - plain main() for fuzz targets built without libFuzzer:
 * runs LLVMFuzzerTestOneInput once on every file named on the command line,
 * descending one level into directories (a corpus directory). Exits 0 when
 * every input ran, 1 on an I/O error; a target finding aborts. A target may
 * define replay_setup(); when it returns 77 the replay is skipped (exit 77).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int replay_setup(void) __attribute__((weak));

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? 2 * cap : 4096;
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "replay: %s: read error\n", path);
                goto fail;
            }
            break;
        }
    }
    /* Hand over an exact-size copy so over-reads are caught under ASan. */
    {
        uint8_t *exact = malloc(len ? len : 1);
        if (exact == NULL)
            goto fail;
        memcpy(exact, buf, len);
        /* Name the input first, so a finding (abort) says which one. */
        printf("%s\n", path);
        fflush(stdout);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    rc = 0;
fail:
    free(buf);
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (nn == NULL)
                goto fail;
            names = nn;
            cap = ncap;
        }
        size_t l = strlen(dir) + strlen(e->d_name) + 2;
        if ((names[n] = malloc(l)) == NULL)
            goto fail;
        snprintf(names[n], l, "%s/%s", dir, e->d_name);
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (run_file(names[i]) < 0)
            goto fail;
        (*count)++;
    }
    rc = 0;
fail:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (replay_setup && replay_setup() == 77)
        return 77;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = S_ISDIR(st.st_mode) ? run_dir(argv[i], &count)
                                     : (run_file(argv[i]) == 0 ? (count++, 0) : -1);
        if (rc < 0)
            return 1;
    }
    printf("replayed %u inputs\n", count);
    return 0;
}
