/* test_data.c - IDX reader on small generated gzip files, synthetic data. */
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "data.h"
#include "wcheck.h"

static char dir[256];

static void write_gz(const char *name, const unsigned char *b, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(gzwrite(f, b, (unsigned)n) == (int)n);
    gzclose(f);
}

static size_t idx_images(unsigned char *b, unsigned n, unsigned r, unsigned c)
{
    unsigned char h[16] = { 0, 0, 8, 3, n >> 24, n >> 16, n >> 8, n,
                            r >> 24, r >> 16, r >> 8, r, c >> 24, c >> 16, c >> 8, c };
    memcpy(b, h, 16);
    for (size_t i = 0; i < (size_t)n * r * c; i++)
        b[16 + i] = (unsigned char)(i * 7);
    return 16 + (size_t)n * r * c;
}

static size_t idx_labels(unsigned char *b, unsigned n)
{
    unsigned char h[8] = { 0, 0, 8, 1, n >> 24, n >> 16, n >> 8, n };
    memcpy(b, h, 8);
    for (unsigned i = 0; i < n; i++)
        b[8 + i] = (unsigned char)(i % 10);
    return 8 + n;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sfpw-data-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    static unsigned char buf[16 + 5 * 28 * 28];
    size_t n = idx_images(buf, 5, 28, 28);
    write_gz("train-images-idx3-ubyte.gz", buf, n);
    write_gz("t10k-images-idx3-ubyte.gz", buf, n);
    n = idx_labels(buf, 5);
    write_gz("train-labels-idx1-ubyte.gz", buf, n);
    write_gz("t10k-labels-idx1-ubyte.gz", buf, n);

    sfpw_dataset tr, te;
    char bad[512];
    CHECK_EQ_INT(sfpw_data_load(&tr, &te, dir, 0, 3, bad, sizeof bad), 0);
    CHECK_EQ_INT(tr.n, 5);
    CHECK_EQ_INT(te.n, 3);
    CHECK(tr.h == 28 && tr.w == 28 && tr.classes == 10);
    CHECK_NEAR(tr.x[1], 7 / 255.0, 1e-7);
    CHECK_NEAR(tr.x[100], (unsigned char)(700) / 255.0, 1e-7);
    CHECK_EQ_INT(tr.y[3], 3);
    sfpw_dataset_free(&tr);
    sfpw_dataset_free(&te);

    /* direct reader: label file read as images is a format error */
    char path[512];
    uint8_t *out = NULL;
    size_t cnt;
    int r, c;
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    CHECK_EQ_INT(sfpw_idx_read(path, 3, &out, &cnt, &r, &c, 0), SFPW_DATA_EFORMAT);
    CHECK_EQ_INT(sfpw_idx_read(path, 1, &out, &cnt, &r, &c, 0), 0);
    CHECK_EQ_INT(cnt, 5);
    free(out);
    /* bound on the item count rejects hostile headers */
    CHECK_EQ_INT(sfpw_idx_read(path, 1, &out, &cnt, &r, &c, 4), SFPW_DATA_EFORMAT);

    /* truncated payload */
    n = idx_images(buf, 5, 28, 28);
    write_gz("t10k-images-idx3-ubyte.gz", buf, n - 100);
    CHECK_EQ_INT(sfpw_data_load(&tr, &te, dir, 0, 0, bad, sizeof bad), SFPW_DATA_ETRUNC);
    CHECK(strstr(bad, "t10k-images") != NULL);
    /* count mismatch between images and labels */
    idx_images(buf, 4, 28, 28);
    write_gz("t10k-images-idx3-ubyte.gz", buf, 16 + 4 * 784);
    CHECK_EQ_INT(sfpw_data_load(&tr, &te, dir, 0, 0, bad, sizeof bad), SFPW_DATA_EMISMATCH);
    /* missing directory: clear error naming the file */
    CHECK_EQ_INT(sfpw_data_load(&tr, &te, "/nonexistent-sfp", 0, 0, bad, sizeof bad),
                 SFPW_DATA_EOPEN);
    CHECK(strstr(bad, "/nonexistent-sfp/train-images-idx3-ubyte.gz") != NULL);
    CHECK(strlen(sfpw_data_strerror(SFPW_DATA_EOPEN)) > 0);

    /* synthetic: deterministic in the seed, values in [0, 1] */
    sfpw_dataset a, b, a2, b2;
    CHECK_EQ_INT(sfpw_data_synthetic(&a, &b, 100, 20, 5), 0);
    CHECK_EQ_INT(sfpw_data_synthetic(&a2, &b2, 100, 20, 5), 0);
    CHECK(memcmp(a.x, a2.x, 100 * 784 * sizeof(float)) == 0);
    CHECK(memcmp(a.y, a2.y, 100) == 0);
    int inrange = 1;
    for (size_t i = 0; i < 100 * 784; i++)
        inrange &= a.x[i] >= 0 && a.x[i] <= 1;
    CHECK(inrange);
    sfpw_dataset_free(&a);
    sfpw_dataset_free(&b);
    sfpw_dataset_free(&a2);
    sfpw_dataset_free(&b2);

    const char *names[] = { "train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                            "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz" };
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    WCHECK_DONE();
}
