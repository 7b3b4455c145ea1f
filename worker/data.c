/* data.c - IDX reader over zlib and synthetic data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data.h"
#include "kernels.h"

const char *sfpw_data_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case SFPW_DATA_EOPEN: return "cannot open file";
    case SFPW_DATA_EFORMAT: return "not an IDX file of the expected kind";
    case SFPW_DATA_ETRUNC: return "file shorter than its IDX header says";
    case SFPW_DATA_ENOMEM: return "out of memory";
    case SFPW_DATA_EMISMATCH: return "image and label counts differ";
    default: return "unknown data error";
    }
}

static int read_full(gzFile f, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got <= 0)
            return SFPW_DATA_ETRUNC;
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int sfpw_idx_read(const char *path, int kind, uint8_t **out, size_t *n,
                  int *rows, int *cols, size_t max_items)
{
    int rc;
    uint8_t *buf = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return SFPW_DATA_EOPEN;
    unsigned char hdr[16];
    size_t hlen = kind == 3 ? 16 : 8;
    /* magic first (0 0 type(0x08 = u8) ndims), so a wrong file is named as
     * such rather than as truncated */
    rc = read_full(f, hdr, 4);
    if (rc)
        goto fail;
    rc = SFPW_DATA_EFORMAT;
    if (hdr[0] || hdr[1] || hdr[2] != 0x08 || hdr[3] != (kind == 3 ? 3 : 1))
        goto fail;
    rc = read_full(f, hdr + 4, hlen - 4);
    if (rc)
        goto fail;
    rc = SFPW_DATA_EFORMAT;
    size_t cnt = be32(hdr + 4);
    size_t r = 1, c = 1;
    if (kind == 3) {
        r = be32(hdr + 8);
        c = be32(hdr + 12);
        if (r == 0 || c == 0 || r > 4096 || c > 4096)
            goto fail;
    }
    if (cnt == 0 || (max_items && cnt > max_items))
        goto fail;
    if (cnt > SIZE_MAX / (r * c))
        goto fail;
    buf = malloc(cnt * r * c);
    if (!buf) {
        rc = SFPW_DATA_ENOMEM;
        goto fail;
    }
    rc = read_full(f, buf, cnt * r * c);
    if (rc)
        goto fail;
    gzclose(f);
    *out = buf;
    *n = cnt;
    *rows = (int)r;
    *cols = (int)c;
    return 0;
fail:
    free(buf);
    gzclose(f);
    return rc;
}

void sfpw_dataset_free(sfpw_dataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

static int load_split(sfpw_dataset *d, const char *dir, const char *prefix,
                      size_t limit, char *path_out, size_t cap)
{
    char path[4096];
    uint8_t *img = NULL, *lab = NULL;
    size_t ni, nl;
    int r, c, r2, c2, rc;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    rc = sfpw_idx_read(path, 3, &img, &ni, &r, &c, 10000000);
    if (rc)
        goto fail;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    rc = sfpw_idx_read(path, 1, &lab, &nl, &r2, &c2, 10000000);
    if (rc)
        goto fail;
    rc = SFPW_DATA_EMISMATCH;
    if (ni != nl)
        goto fail;
    for (size_t i = 0; i < nl; i++)
        if (lab[i] > 9) {
            rc = SFPW_DATA_EFORMAT;
            goto fail;
        }
    size_t n = limit && limit < ni ? limit : ni;
    size_t dim = (size_t)r * c;
    d->x = malloc(n * dim * sizeof(float));
    d->y = malloc(n);
    if (!d->x || !d->y) {
        rc = SFPW_DATA_ENOMEM;
        sfpw_dataset_free(d);
        goto fail;
    }
    for (size_t i = 0; i < n * dim; i++)
        d->x[i] = img[i] * (1.0f / 255.0f);
    memcpy(d->y, lab, n);
    d->n = n;
    d->c = 1;
    d->h = r;
    d->w = c;
    d->classes = 10;
    free(img);
    free(lab);
    return 0;
fail:
    if (path_out && cap)
        snprintf(path_out, cap, "%s", path);
    free(img);
    free(lab);
    return rc;
}

int sfpw_data_load(sfpw_dataset *train, sfpw_dataset *test, const char *dir,
                   size_t train_limit, size_t test_limit, char *path_out,
                   size_t cap)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    int rc = load_split(train, dir, "train", train_limit, path_out, cap);
    if (rc)
        return rc;
    rc = load_split(test, dir, "t10k", test_limit, path_out, cap);
    if (rc)
        sfpw_dataset_free(train);
    return rc;
}

static int synth_split(sfpw_dataset *d, size_t n, const float *proto,
                       sfpw_rng *r)
{
    const size_t dim = 28 * 28;
    d->x = malloc(n * dim * sizeof(float));
    d->y = malloc(n ? n : 1);
    if (!d->x || !d->y) {
        sfpw_dataset_free(d);
        return SFPW_DATA_ENOMEM;
    }
    d->n = n;
    d->c = 1;
    d->h = d->w = 28;
    d->classes = 10;
    for (size_t i = 0; i < n; i++) {
        int cls = (int)(sfpw_rng_next(r) % 10);
        d->y[i] = (uint8_t)cls;
        float *x = d->x + i * dim;
        for (size_t j = 0; j < dim; j++) {
            float v = proto[cls * dim + j] + 0.8f * (float)sfpw_rng_normal(r);
            x[j] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
    return 0;
}

int sfpw_data_synthetic(sfpw_dataset *train, sfpw_dataset *test,
                        size_t ntrain, size_t ntest, uint64_t seed)
{
    const size_t dim = 28 * 28;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    float *proto = malloc(10 * dim * sizeof(float));
    if (!proto)
        return SFPW_DATA_ENOMEM;
    sfpw_rng r;
    sfpw_rng_seed(&r, seed, 0x5e7d);
    /* Each class: a few random Gaussian blobs. */
    for (int c = 0; c < 10; c++) {
        float *p = proto + c * dim;
        memset(p, 0, dim * sizeof(float));
        for (int blob = 0; blob < 4; blob++) {
            double cy = 4 + 20 * sfpw_rng_uniform(&r), cx = 4 + 20 * sfpw_rng_uniform(&r);
            double s2 = 6 + 10 * sfpw_rng_uniform(&r);
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) {
                    double d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
                    p[y * 28 + x] += (float)(0.8 * exp(-d2 / s2));
                }
        }
    }
    int rc = synth_split(train, ntrain, proto, &r);
    if (!rc) {
        rc = synth_split(test, ntest, proto, &r);
        if (rc)
            sfpw_dataset_free(train);
    }
    free(proto);
    return rc;
}
