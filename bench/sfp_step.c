/*
 * sfp_step.c - sfp-step: forward + backward of a model (FP32, no stash) on
 * one core, timed by process CPU time and by the wall clock (median of
 * --runs after a warm-up), with the time per layer kind. For tuning the
 * kernels; the images/s next to PyTorch are bench/train_speed.sh's.
 *
 *   sfp-step [--model NAME | --model-file FILE] [--batch N] [--runs N] [--layers]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layer.h"
#include "net.h"

static double clock_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *name = "resnet", *file = NULL;
    int batch = 64, runs = 5, layers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--model-file") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers"))
            layers = 1;
        else {
            fprintf(stderr, "usage: sfp-step [--model NAME | --model-file FILE] [--batch N] "
                            "[--runs N] [--layers]\n");
            return 2;
        }
    }
    if (batch < 1 || batch > 4096 || runs < 1 || runs > 1000) {
        fprintf(stderr, "sfp-step: --batch 1..4096, --runs 1..1000\n");
        return 2;
    }
    static sfpw_model m;
    char err[512];
    if (file ? sfpw_model_load(&m, file, err, sizeof err) : sfpw_model_build(&m, name)) {
        fprintf(stderr, "sfp-step: %s\n", file ? err : "unknown model");
        return 2;
    }
    sfpw_net *net = NULL;
    if (sfpw_net_create(&net, &m, batch)) {
        fprintf(stderr, "sfp-step: out of memory\n");
        return 1;
    }
    sfpw_model_init_params(&m, sfpw_net_weights(net), 1);
    if (m.nbuffers)
        sfpw_model_init_buffers(&m, sfpw_net_buffers(net));
    float *x = malloc(sizeof(float) * batch * m.in_dim);
    uint8_t *y = malloc((size_t)batch);
    sfpw_rng r;
    sfpw_rng_seed(&r, 1, 0);
    for (size_t i = 0; i < (size_t)batch * m.in_dim; i++)
        x[i] = (float)sfpw_rng_uniform(&r);
    for (int i = 0; i < batch; i++)
        y[i] = (uint8_t)(i % m.classes);
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    double *cpu = calloc((size_t)runs, sizeof(double)), *wall = calloc((size_t)runs, sizeof(double));
    double fwd = 0, bwd = 0;
    for (int i = -2; i < runs; i++) {
        sfpw_pass_out po;
        memset(&po, 0, sizeof po);
        double c0 = clock_of(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_of(CLOCK_MONOTONIC);
        sfpw_net_forward(net, &ps, x, y, batch, 1.0f / batch, &po);
        double c1 = clock_of(CLOCK_PROCESS_CPUTIME_ID);
        sfpw_net_backward(net, &ps, batch, &po);
        double c2 = clock_of(CLOCK_PROCESS_CPUTIME_ID), w2 = clock_of(CLOCK_MONOTONIC);
        if (i < 0)
            continue;
        cpu[i] = c2 - c0;
        wall[i] = w2 - w0;
        fwd += c1 - c0;
        bwd += c2 - c1;
    }
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp);
    qsort(wall, (size_t)runs, sizeof *wall, cmp);
    printf("%s batch %d: %.1f ms/step cpu (forward %.0f%%), %.0f images/s cpu, %.0f images/s wall "
           "(median of %d)\n", m.name, batch, 1e3 * cpu[runs / 2], 100 * fwd / (fwd + bwd),
           batch / cpu[runs / 2], batch / wall[runs / 2], runs);
    if (layers)
        sfpw_net_profile(net, stdout);
    free(cpu);
    free(wall);
    free(x);
    free(y);
    sfpw_net_destroy(&net);
    return 0;
}
