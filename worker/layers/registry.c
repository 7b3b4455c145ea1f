/* registry.c - every layer kind a model file can name (layer.h). */
#include <string.h>

#include "layer.h"

extern const sfpw_layer_ops sfpw_layer_dense, sfpw_layer_conv, sfpw_layer_maxpool,
    sfpw_layer_avgpool, sfpw_layer_relu, sfpw_layer_batchnorm, sfpw_layer_add,
    sfpw_layer_layernorm, sfpw_layer_gelu, sfpw_layer_attention, sfpw_layer_patch,
    sfpw_layer_cls, sfpw_layer_posembed, sfpw_layer_token;

const sfpw_layer_ops *const sfpw_layer_kinds[] = {
    &sfpw_layer_dense, &sfpw_layer_conv, &sfpw_layer_maxpool, &sfpw_layer_avgpool,
    &sfpw_layer_relu, &sfpw_layer_batchnorm, &sfpw_layer_add, &sfpw_layer_layernorm,
    &sfpw_layer_gelu, &sfpw_layer_attention, &sfpw_layer_patch, &sfpw_layer_cls,
    &sfpw_layer_posembed, &sfpw_layer_token, NULL,
};

const sfpw_layer_ops *sfpw_layer_find(const char *kind)
{
    for (int i = 0; sfpw_layer_kinds[i]; i++)
        if (!strcmp(sfpw_layer_kinds[i]->kind, kind))
            return sfpw_layer_kinds[i];
    return NULL;
}
