/* common.c - helpers shared by the layer kinds. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "layer.h"

int sfpw_layer_fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

void sfpw_init_he(float *w, size_t n, size_t fan_in, sfpw_rng *r)
{
    double sd = sqrt(2.0 / (double)fan_in);
    for (size_t j = 0; j < n; j++)
        w[j] = (float)(sd * sfpw_rng_normal(r));
}

void sfpw_copy_or_add(float *dst, const float *src, size_t n, int add)
{
    if (!add) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

int sfpw_setup_same_shape(sfpw_layer *l, char *err, size_t cap)
{
    (void)err;
    (void)cap;
    l->out_shape = l->in_shape[0];
    return 0;
}

void sfpw_setup_linear(sfpw_layer *l, size_t w_n, size_t fan_in, int out, int bias)
{
    l->w_n = w_n;
    l->fan_in = fan_in;
    l->w_kind = SFPW_TENSOR_WEIGHT;
    l->w_role = SFPW_ROLE_WEIGHT;
    l->b_n = bias ? (size_t)out : 0;
    l->b_kind = SFPW_TENSOR_BIAS;
    l->b_role = SFPW_ROLE_BIAS;
}

void sfpw_init_linear(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r)
{
    (void)b;
    (void)buf;
    if (w)
        sfpw_init_he(w, l->w_n, l->fan_in, r);
}

void sfpw_setup_norm(sfpw_layer *l, int C, size_t stats_per_image, size_t stats_fixed)
{
    l->w_n = l->b_n = (size_t)C;
    l->w_kind = SFPW_TENSOR_PARAM;
    l->w_role = SFPW_ROLE_PARAM;
    l->b_kind = SFPW_TENSOR_BIAS;
    l->b_role = SFPW_ROLE_BIAS;
    l->nslots = 1;
    l->slot_n[0] = stats_per_image;
    l->slot_fixed[0] = stats_fixed;
    l->slot_raw[0] = 1;
    l->slot_role[0] = SFPW_ROLE_STATS;
    l->slot_name[0] = "stats";
}

void sfpw_init_norm(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r)
{
    (void)buf;
    (void)r;
    for (size_t i = 0; w && i < l->w_n; i++)
        w[i] = 1.0f;
    for (size_t i = 0; b && i < l->b_n; i++)
        b[i] = 0.0f;
}

void sfpw_setup_embedding(sfpw_layer *l, size_t n)
{
    l->w_n = n;
    l->w_kind = SFPW_TENSOR_PARAM;
    l->w_role = SFPW_ROLE_PARAM;
}

void sfpw_init_embedding(const sfpw_layer *l, float *w, float *b, float *buf, sfpw_rng *r)
{
    (void)b;
    (void)buf;
    for (size_t i = 0; w && i < l->w_n; i++)
        w[i] = (float)(0.02 * sfpw_rng_normal(r));
}
