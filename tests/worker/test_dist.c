/*
 * test_dist.c - the weight pieces' auto coder (worker/dist.c), one rank
 * (MPI singleton): under SFP_CODER_AUTO a piece is encoded with both coders
 * only at a fresh start, at multiples of 100 steps and when its widths
 * change, which depends on the step alone (a run resumed at a step codes as
 * the uninterrupted one); the working weights are the frames' values either
 * way, and other coders never try both.
 */
#include <stdlib.h>
#include <string.h>

#include <sfp/sfp.h>

#include "dist.h"
#include "model.h"
#include "wcheck.h"

typedef struct rig {
    sfpw_model m;
    sfpw_dist *d;
    float *params, *W;
    sfp_width w[SFPW_MAX_TENSORS];
    sfp_params base;
    unsigned pieces;
} rig;

static void rig_init(rig *r, sfp_coder coder)
{
    CHECK_EQ_INT(sfpw_model_build(&r->m, "mlp"), 0);
    r->params = malloc(r->m.nparams * sizeof(float));
    r->W = malloc(r->m.nparams * sizeof(float));
    sfpw_model_init_params(&r->m, r->params, 7);
    CHECK_EQ_INT(sfpw_dist_create(&r->d, MPI_COMM_WORLD, &r->m), 0);
    sfpw_dist_set_master(r->d, r->params);
    r->pieces = 0;
    for (int t = 0; t < r->m.ntensors; t++) {
        r->w[t].k = 2;
        r->w[t].e = 4;
        r->pieces += sfpw_tensor_is_param(r->m.tensors[t].kind) != 0;
    }
    sfp_params_default(&r->base);
    r->base.coder = coder;
}

static void rig_free(rig *r)
{
    sfpw_dist_destroy(&r->d);
    free(r->params);
    free(r->W);
}

/* Publishes for step with fresh; returns the pieces that tried both. */
static unsigned publish(rig *r, uint64_t step, int fresh, double *bytes)
{
    sfpw_exchange x;
    sfpw_dist_coder_step(r->d, step, fresh);
    CHECK_EQ_INT(sfpw_dist_publish(r->d, r->w, &r->base, r->W, bytes), 0);
    sfpw_dist_last_exchange(r->d, &x);
    return x.checks;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    rig a, b;
    rig_init(&a, SFP_CODER_AUTO);
    rig_init(&b, SFP_CODER_AUTO);
    CHECK(a.pieces >= 3);
    /* the rule, step by step */
    CHECK_EQ_INT(publish(&a, 0, 1, NULL), a.pieces);
    CHECK_EQ_INT(publish(&a, 1, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 99, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 100, 0, NULL), a.pieces);
    CHECK_EQ_INT(publish(&a, 101, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 250, 0, NULL), a.pieces); /* 200 passed */
    CHECK_EQ_INT(publish(&a, 251, 0, NULL), 0);
    int wt = 0; /* the first weight tensor */
    while (!sfpw_tensor_is_param(a.m.tensors[wt].kind))
        wt++;
    a.w[wt].e = 5; /* one tensor's widths change: its piece tries both */
    CHECK_EQ_INT(publish(&a, 252, 0, NULL), 1);
    CHECK_EQ_INT(publish(&a, 253, 0, NULL), 0);
    CHECK_EQ_INT(publish(&a, 254, 1, NULL), a.pieces);
    /* resumed at step 120 after a fresh start there: the same checks and
     * the same frames as a run that got there from step 0 */
    a.w[wt].e = 4;
    double ba[SFPW_MAX_TENSORS], bb[SFPW_MAX_TENSORS];
    publish(&a, 0, 1, NULL);
    for (uint64_t s = 1; s < 120; s++)
        publish(&a, s, 0, NULL);
    CHECK_EQ_INT(publish(&b, 120, 1, NULL), b.pieces);
    CHECK_EQ_INT(publish(&a, 120, 1, ba), a.pieces);
    for (uint64_t s = 121; s < 320; s++) {
        unsigned ca = publish(&a, s, 0, ba), cb = publish(&b, s, 0, bb);
        CHECK_EQ_INT(ca, cb);
        CHECK_EQ_INT(ca, s % 100 == 0 ? a.pieces : 0);
        CHECK(memcmp(ba, bb, sizeof(ba)) == 0);
    }
    CHECK(memcmp(a.W, b.W, a.m.nparams * sizeof(float)) == 0);
    /* the working weights are what sfp_quantize gives, auto or not */
    rig g;
    rig_init(&g, SFP_CODER_GECKO);
    CHECK_EQ_INT(publish(&g, 0, 1, NULL), 0);
    CHECK_EQ_INT(publish(&g, 100, 0, NULL), 0);
    CHECK(memcmp(a.W, g.W, a.m.nparams * sizeof(float)) == 0);
    rig_free(&a);
    rig_free(&b);
    rig_free(&g);
    MPI_Finalize();
    WCHECK_DONE();
}
