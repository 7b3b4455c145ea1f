/* ctx1.h - prototype context-modelled exponent coder (bench/ctx1.c). */
#ifndef SFP_BENCH_CTX1_H
#define SFP_BENCH_CTX1_H

#include <stddef.h>
#include <stdint.h>

#define CTX1_MAX_CTX 16
#define CTX1_SCALE 10

/*
 * Codes the n exponent codes (each < 2^e, 0 = zero) into out[0..cap).
 * Returns the plane's length, 0 if it does not fit (or n == 0).
 */
size_t ctx1_encode(const uint8_t *codes, size_t n, unsigned e, uint8_t *out,
                   size_t cap);

typedef struct ctx1_dec {
    uint32_t tab[CTX1_MAX_CTX][1u << CTX1_SCALE];
    uint32_t x[2];
    const uint8_t *p, *end;
    unsigned e;
} ctx1_dec;

/* Reads the tables; 0 or -1 (corrupt). */
int ctx1_dec_init(ctx1_dec *d, const uint8_t *in, size_t len, unsigned e);
/* Decodes all n codes at once; 0, or -1 if the plane is corrupt. */
int ctx1_decode(ctx1_dec *d, uint8_t *codes, size_t n);
/*
 * Builds the values from the codes and the sign and mantissa planes of the
 * non-zero values (mant needs 8 readable bytes past its end).
 */
void ctx1_assemble(const uint8_t *codes, size_t n, unsigned k, unsigned e,
                   int anchor, const uint8_t *sign, const uint8_t *mant,
                   float *out);

#endif
