/*
 * train.c - sfp-train: Fashion-MNIST training with adaptive floating-point
 * containers (QM/QE, BitWave, Gecko), data parallel over MPI.
 * docs/TRAINING.md describes the flags, model files, the output and the
 * report; train.h
 * lists the parts this file puts in order.
 */
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "train.h"
#include "watchdog.h"

int sfpt_rank;

/* 0 ok, 1 runtime error, 2 usage error, 3 replicas differ. */
static int run(int argc, char **argv)
{
    sfpt *r = calloc(1, sizeof *r);
    if (!r) {
        err("out of memory\n");
        return 1;
    }
    int rc = sfpt_opts_parse(argc, argv, &r->o);
    if (rc) {
        free(r);
        return rc > 0 ? 0 : 2;
    }
    int ret = sfpt_setup(r);
    if (ret < 0) /* --print-model */
        goto done;
    if (!ret && sfpw_watchdog_start(r->o.step_timeout, sfpt_rank))
        err("--step-timeout: cannot start the watchdog thread; running without\n");
    for (int epoch = r->first_epoch; !ret && epoch < r->o.epochs; epoch++) {
        sfpt_epoch *R = &r->recs[r->nrec];
        if (sfpt_epoch_train(r, epoch, R) || sfpt_evaluate(r, R)) {
            ret = 1;
            break;
        }
        sfpt_report_epoch(r, R);
        r->nrec++;
        r->epochs_run++;
        r->o.opt.lr *= (float)r->o.lr_decay;
        if (r->o.save && sfpt_save(r, epoch)) {
            ret = 1;
            break;
        }
        if (r->o.stop_after && r->epochs_run >= r->o.stop_after)
            break;
    }
    if (!ret) {
        sfpw_watchdog_beat("the final report", r->step);
        ret = sfpt_report_final(r);
    }
    sfpw_watchdog_stop();
done:
    sfpt_teardown(r);
    free(r);
    return ret < 0 ? 0 : ret;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &sfpt_rank);
    int ret = run(argc, argv);
    /* A failure on one rank must not leave the others blocked in a
     * collective: abort the job instead of finalizing. */
    int nranks;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (ret != 0 && ret != 3 && nranks > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, ret);
    }
    MPI_Finalize();
    return ret;
}
