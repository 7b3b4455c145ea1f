/*
 * test_stash.c - the in-process stash (frames round trip bit-exactly, keys,
 * errors) and checkpoint files (round trip, corruption rejected).
 */
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "kernels.h"
#include "stash.h"
#include "wcheck.h"

static void test_stash(void)
{
    sfpw_stash *st = NULL;
    CHECK_EQ_INT(sfpw_stash_local_open(&st), 0);
    if (!st)
        return;
    enum { N = 5000 };
    static float x[N], y[N], back[N];
    sfpw_rng r;
    sfpw_rng_seed(&r, 1, 0);
    for (int i = 0; i < N; i++) {
        float v = (float)sfpw_rng_normal(&r);
        x[i] = v > 0 ? v : 0; /* post-ReLU-like: half zeros */
    }
    for (int coder = 0; coder < 2; coder++) {
        sfp_params p;
        sfp_params_default(&p);
        p.mbits = 2;
        p.ebits = 4;
        p.coder = coder ? SFP_CODER_GECKO : SFP_CODER_PLAIN;
        CHECK_EQ_INT(sfp_quantize(y, x, N, &p, NULL), 0); /* on the grid */
        sfpw_stash_key k = { 0, 0, 7, 3 };
        size_t bytes = 0;
        sfp_qstats qs;
        memset(&qs, 0, sizeof qs);
        CHECK_EQ_INT(st->ops->put(st, &k, y, N, &p, &bytes, &qs), 0);
        CHECK(qs.count == N && qs.zeros >= N / 3 && qs.anchor > 0);
        CHECK(bytes > 0 && bytes < N * sizeof(float) / 3);
        CHECK_EQ_INT(st->ops->put(st, &k, y, N, &p, NULL, NULL), SFPW_STASH_EDUP);
        sfpw_stash_key k2 = k;
        k2.tensor = 4;
        CHECK_EQ_INT(st->ops->put(st, &k2, x, N, NULL, &bytes, NULL), 0);
        CHECK_EQ_INT(bytes, N * sizeof(float));
        CHECK_EQ_INT(st->ops->prefetch(st, &k), 0);
        memset(back, 0xff, sizeof back);
        CHECK_EQ_INT(st->ops->get(st, &k, back, N), 0);
        CHECK(memcmp(back, y, sizeof y) == 0);
        CHECK_EQ_INT(st->ops->get(st, &k, back, N - 1), SFPW_STASH_ESIZE);
        CHECK_EQ_INT(st->ops->get(st, &k2, back, N), 0);
        CHECK(memcmp(back, x, sizeof x) == 0);
        /* put_q: values off the grid, quantized in place while encoded;
         * the same frame size, stats and values as quantize + put */
        static float z[N];
        for (int i = 0; i < N; i++)
            z[i] = x[i] * 1.37f;
        sfp_quantize(y, z, N, &p, NULL);
        sfpw_stash_key k3 = k;
        k3.tensor = 5;
        size_t bq = 0, bp = 0;
        sfp_qstats q1, q2;
        memset(&q1, 0, sizeof q1);
        memset(&q2, 0, sizeof q2);
        CHECK(st->ops->put_q != NULL);
        CHECK_EQ_INT(st->ops->put_q(st, &k3, z, N, &p, &bq, &q1), 0);
        CHECK(memcmp(z, y, sizeof y) == 0);
        sfpw_stash_key k4 = k;
        k4.tensor = 6;
        CHECK_EQ_INT(st->ops->put(st, &k4, y, N, &p, &bp, &q2), 0);
        CHECK(bq == bp && q1.zeros == q2.zeros && q1.anchor == q2.anchor);
        CHECK_EQ_INT(st->ops->get(st, &k3, back, N), 0);
        CHECK(memcmp(back, y, sizeof y) == 0);
        CHECK_EQ_INT(st->ops->drop(st, &k3), 0);
        CHECK_EQ_INT(st->ops->drop(st, &k4), 0);
        CHECK_EQ_INT(st->ops->drop(st, &k), 0);
        CHECK_EQ_INT(st->ops->drop(st, &k2), 0);
        CHECK_EQ_INT(st->ops->get(st, &k, back, N), SFPW_STASH_ENOKEY);
        CHECK_EQ_INT(st->ops->drop(st, &k), 0);
        CHECK(strlen(st->ops->strerror(st, SFPW_STASH_ENOKEY)) > 0);
    }
    /* many keys at once (grows the table) */
    for (uint32_t t = 0; t < 40; t++) {
        sfpw_stash_key k = { 0, 1, 9, t };
        x[0] = (float)t;
        CHECK_EQ_INT(st->ops->put(st, &k, x, 16, NULL, NULL, NULL), 0);
    }
    for (uint32_t t = 0; t < 40; t++) {
        sfpw_stash_key k = { 0, 1, 9, t };
        CHECK_EQ_INT(st->ops->get(st, &k, back, 16), 0);
        CHECK(back[0] == (float)t);
        st->ops->drop(st, &k);
    }
    sfpw_stash_close(&st);
    CHECK(st == NULL);
}

static void test_checkpoint(void)
{
    char path[] = "/tmp/sfpw-ckpt-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    enum { P = 1000 };
    static float m[P], s1[P], s2[P];
    for (int i = 0; i < P; i++) {
        m[i] = (float)i * 0.5f;
        s1[i] = (float)-i;
        s2[i] = 1.0f / (i + 1);
    }
    unsigned char pol[40];
    for (int i = 0; i < 40; i++)
        pol[i] = (unsigned char)i;
    sfpw_ckpt c;
    memset(&c, 0, sizeof c);
    snprintf(c.model, sizeof c.model, "mlp");
    c.policy = 2;
    c.optimizer = 1;
    c.nparams = P;
    c.next_epoch = 3;
    c.step = 1404;
    c.seed = 11;
    c.batch = 128;
    c.master = m;
    c.s1 = s1;
    c.s2 = s2;
    c.policy_state = pol;
    c.policy_len = sizeof pol;
    static float res[2 * P]; /* two ranks' gradient residuals */
    for (int i = 0; i < 2 * P; i++)
        res[i] = (float)i * -0.25f;
    c.resid = res;
    c.resid_ranks = 2;
    CHECK_EQ_INT(sfpw_ckpt_save(path, &c), 0);
    sfpw_ckpt d;
    CHECK_EQ_INT(sfpw_ckpt_load(path, &d), 0);
    CHECK(strcmp(d.model, "mlp") == 0);
    CHECK(d.nparams == P && d.next_epoch == 3 && d.step == 1404 && d.seed == 11);
    CHECK(d.policy == 2 && d.optimizer == 1 && d.batch == 128);
    CHECK(memcmp(d.master, m, sizeof m) == 0 && memcmp(d.s1, s1, sizeof s1) == 0 &&
          memcmp(d.s2, s2, sizeof s2) == 0);
    CHECK(d.policy_len == sizeof pol && memcmp(d.policy_state, pol, sizeof pol) == 0);
    CHECK(d.resid_ranks == 2 && d.resid && memcmp(d.resid, res, sizeof res) == 0);
    sfpw_ckpt_free(&d);
    /* a residual section claiming more ranks than the limit is refused
     * before anything is allocated (header field at byte 112) */
    {
        FILE *g = fopen(path, "r+b");
        CHECK(g != NULL);
        if (g) {
            uint64_t huge = UINT64_C(1) << 40;
            fseek(g, 112, SEEK_SET);
            fwrite(&huge, 8, 1, g);
            fclose(g);
        }
        CHECK_EQ_INT(sfpw_ckpt_load(path, &d), SFPW_CKPT_EFORMAT);
        CHECK_EQ_INT(sfpw_ckpt_save(path, &c), 0);
    }
    /* without a residual (gradients exact): none comes back */
    c.resid = NULL;
    c.resid_ranks = 0;
    CHECK_EQ_INT(sfpw_ckpt_save(path, &c), 0);
    CHECK_EQ_INT(sfpw_ckpt_load(path, &d), 0);
    CHECK(d.resid_ranks == 0 && d.resid == NULL);
    sfpw_ckpt_free(&d);
    /* a flipped byte is caught by the hash */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 200, SEEK_SET);
        int ch = fgetc(f);
        fseek(f, 200, SEEK_SET);
        fputc(ch ^ 0x10, f);
        fclose(f);
    }
    CHECK_EQ_INT(sfpw_ckpt_load(path, &d), SFPW_CKPT_EFORMAT);
    /* truncated */
    CHECK_EQ_INT(truncate(path, 100), 0);
    CHECK_EQ_INT(sfpw_ckpt_load(path, &d), SFPW_CKPT_EFORMAT);
    unlink(path);
    CHECK_EQ_INT(sfpw_ckpt_load(path, &d), SFPW_CKPT_EIO);
}

int main(void)
{
    test_stash();
    test_checkpoint();
    WCHECK_DONE();
}
