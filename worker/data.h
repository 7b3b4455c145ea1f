/*
 * data.h - Fashion-MNIST IDX files (gzip) and a synthetic stand-in.
 */
#ifndef SFPW_DATA_H
#define SFPW_DATA_H

#include <stddef.h>
#include <stdint.h>

#define SFPW_DATA_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define SFPW_DATA_IMAGE 784  /* values per image (1x28x28) */
#define SFPW_DATA_CLASSES 10

/* Errors of this module (negative, distinct from SFP_E*). */
enum {
    SFPW_DATA_EOPEN = -101,   /* file missing or unreadable    */
    SFPW_DATA_EFORMAT = -102, /* not an IDX file of that kind  */
    SFPW_DATA_ETRUNC = -103,  /* shorter than its header says  */
    SFPW_DATA_ENOMEM = -104,
    SFPW_DATA_EMISMATCH = -105, /* image and label counts differ */
};

typedef struct sfpw_dataset {
    size_t n;        /* samples                              */
    int c, h, w;     /* image shape (1, 28, 28)              */
    int classes;     /* 10                                   */
    float *x;        /* [n, c*h*w], values in [0, 1]         */
    uint8_t *y;      /* [n]                                  */
} sfpw_dataset;

const char *sfpw_data_strerror(int err);

/*
 * Reads an IDX file (gzip or plain; zlib handles both). kind 3: images
 * (u8 [n, rows, cols]); kind 1: labels (u8 [n]). On success *out owns a
 * malloc'd buffer of *n * *rows * *cols bytes (rows = cols = 1 for labels).
 * max_items bounds n (0: no bound) to reject hostile headers.
 */
int sfpw_idx_read(const char *path, int kind, uint8_t **out, size_t *n,
                  int *rows, int *cols, size_t max_items);

/*
 * Loads "<dir>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz". limit > 0
 * keeps only the first `limit` samples (tuning subsets). On failure *path_out
 * (if not NULL, cap bytes) names the file that failed.
 */
int sfpw_data_load(sfpw_dataset *train, sfpw_dataset *test, const char *dir,
                   size_t train_limit, size_t test_limit, char *path_out,
                   size_t cap);

/*
 * Synthetic 28x28 10-class data: per-class smooth prototypes plus noise,
 * deterministic in seed. Learnable to > 90% in one epoch.
 */
int sfpw_data_synthetic(sfpw_dataset *train, sfpw_dataset *test,
                        size_t ntrain, size_t ntest, uint64_t seed);

void sfpw_dataset_free(sfpw_dataset *d);

#endif
