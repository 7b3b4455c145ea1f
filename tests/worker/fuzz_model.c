/*
 * fuzz_model.c - fuzz target for the model-file parser: any input is
 * parsed; an accepted model must be consistent (tensor table inside the
 * parameter vector, every value's producer before its consumers, shapes
 * within the limits), and printing it must work. Replayed over
 * corpus/fuzz_model/ by meson test (replay_main.c); a libFuzzer binary with
 * -Dfuzzing=true (CC=clang).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sfpw_model m;
    char err[512];
    if (sfpw_model_parse(&m, (const char *)data, size, "fuzz", err, sizeof err)) {
        if (!err[0] || !memchr(err, 0, sizeof err))
            abort(); /* every refusal says why */
        return 0;
    }
    if (m.nlayers < 1 || m.nlayers > SFPW_MAX_LAYERS || m.nvalues != m.nlayers + 1 ||
        m.ntensors > SFPW_MAX_TENSORS || m.output <= 0 || m.output >= m.nvalues ||
        m.classes < 2 || m.in_dim == 0 || m.in_dim > SFPW_MODEL_MAX_VALUE)
        abort();
    size_t params = 0;
    for (int t = 0; t < m.ntensors; t++) {
        const sfpw_tensor *T = &m.tensors[t];
        if (sfpw_tensor_is_param(T->kind)) {
            if (T->off + T->n > m.nparams || T->n == 0)
                abort();
            params += T->n;
        } else if (T->n > SFPW_MODEL_MAX_VALUE || T->fixed > SFPW_MODEL_MAX_VALUE) {
            abort();
        }
    }
    if (params != m.nparams || m.nparams > SFPW_MODEL_MAX_PARAMS)
        abort();
    for (int i = 0; i < m.nlayers; i++) {
        const sfpw_layer *l = &m.layers[i];
        if (l->out != i + 1 || m.values[l->out].producer != i ||
            m.values[l->out].n != sfpw_shape_size(&l->out_shape) ||
            m.values[l->out].n > SFPW_MODEL_MAX_VALUE)
            abort();
        for (int j = 0; j < l->nin; j++)
            if (l->in[j] < 0 || l->in[j] > i) /* produced earlier */
                abort();
    }
    FILE *f = fopen("/dev/null", "w");
    if (f) {
        sfpw_model_print(&m, f);
        fclose(f);
    }
    return 0;
}
