/*
 * layer_dump.c - one training-mode forward and backward of a model file on
 * fixed inputs, written out for tests/worker/torch_layers.py to redo in
 * PyTorch: parameters, running statistics before and after, input, labels,
 * logits, loss, parameter and input gradients, and the evaluation-mode
 * logits. Files in OUTDIR: meta.json and *.f32 (little-endian floats).
 *
 *   layer_dump MODEL_FILE OUTDIR [BATCH]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "net.h"

static int dump(const char *dir, const char *name, const float *v, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof(float), n, f) != n) {
        fprintf(stderr, "layer_dump: cannot write %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: layer_dump MODEL_FILE OUTDIR [BATCH]\n");
        return 2;
    }
    const int B = argc > 3 ? atoi(argv[3]) : 3;
    static sfpw_model m;
    char err[512];
    if (sfpw_model_load(&m, argv[1], err, sizeof err) || B < 1 || B > 64) {
        fprintf(stderr, "layer_dump: %s\n", err);
        return 2;
    }
    const char *dir = argv[2];
    sfpw_net *net = NULL;
    if (sfpw_net_create(&net, &m, B))
        return 1;
    float *W = sfpw_net_weights(net), *buf = sfpw_net_buffers(net);
    sfpw_model_init_params(&m, W, 5);
    sfpw_rng r;
    sfpw_rng_seed(&r, 9, 0);
    for (size_t i = 0; i < m.nparams; i++)
        W[i] += (float)(0.05 * sfpw_rng_normal(&r));
    if (buf) {
        sfpw_model_init_buffers(&m, buf);
        for (size_t i = 0; i < m.nbuffers; i++) /* running stats away from 0 / 1 */
            buf[i] += (float)(0.1 * sfpw_rng_uniform(&r));
    }
    float *x = malloc(sizeof(float) * B * m.in_dim), *yf = malloc(sizeof(float) * B);
    uint8_t *y = malloc((size_t)B);
    for (size_t i = 0; i < (size_t)B * m.in_dim; i++)
        x[i] = (float)sfpw_rng_normal(&r);
    for (int i = 0; i < B; i++) {
        y[i] = (uint8_t)(sfpw_rng_next(&r) % (uint64_t)m.classes);
        yf[i] = y[i];
    }
    int rc = dump(dir, "params", W, m.nparams) || dump(dir, "x", x, (size_t)B * m.in_dim) ||
             dump(dir, "y", yf, (size_t)B) || (buf && dump(dir, "buffers0", buf, m.nbuffers));
    sfpw_pass ps;
    memset(&ps, 0, sizeof ps);
    ps.input_grad = 1;
    sfpw_pass_out po;
    memset(&po, 0, sizeof po);
    rc = rc || sfpw_net_forward(net, &ps, x, y, B, 1.0f / B, &po);
    rc = rc || dump(dir, "logits", sfpw_net_value(net, m.output, 0), (size_t)B * m.classes);
    rc = rc || sfpw_net_backward(net, &ps, B, &po);
    rc = rc || dump(dir, "grads", sfpw_net_grads(net), m.nparams) ||
         dump(dir, "dx", sfpw_net_value(net, 0, 1), (size_t)B * m.in_dim) ||
         (buf && dump(dir, "buffers1", buf, m.nbuffers));
    uint64_t correct = 0;
    rc = rc || sfpw_net_eval(net, &ps, x, y, B, &correct);
    rc = rc || dump(dir, "logits_eval", sfpw_net_value(net, m.output, 0), (size_t)B * m.classes);
    char path[4096];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "w");
    if (rc || !f) {
        fprintf(stderr, "layer_dump: failed\n");
        return 1;
    }
    fprintf(f, "{\"batch\": %d, \"loss\": %.9g, \"nparams\": %zu, \"nbuffers\": %zu, "
               "\"classes\": %d, \"tensors\": [", B, po.loss_sum / B, m.nparams, m.nbuffers,
            m.classes);
    int first = 1;
    for (int t = 0; t < m.ntensors; t++) {
        const sfpw_tensor *T = &m.tensors[t];
        if (!sfpw_tensor_is_param(T->kind))
            continue;
        const char *dot = strrchr(T->name, '.');
        fprintf(f, "%s{\"layer\": \"%s\", \"which\": \"%s\", \"off\": %zu, \"n\": %zu}",
                first ? "" : ", ", m.layers[T->layer].name, dot + 1, T->off, T->n);
        first = 0;
    }
    fprintf(f, "], \"buffers\": [");
    first = 1;
    for (int i = 0; i < m.nlayers; i++)
        if (m.layers[i].nbuf) {
            fprintf(f, "%s{\"layer\": \"%s\", \"off\": %zu, \"n\": %zu}", first ? "" : ", ",
                    m.layers[i].name, m.layers[i].buf_off, m.layers[i].nbuf);
            first = 0;
        }
    fprintf(f, "]}\n");
    fclose(f);
    free(x);
    free(yf);
    free(y);
    sfpw_net_destroy(&net);
    return 0;
}
