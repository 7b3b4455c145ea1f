/*
 * zhuf.c - the Huffman-coded zero map (flag ZHUF, docs/FORMAT.md 2.4.1).
 *
 * The zero map as a sequence of byte masks (bit j of mask i: value 8i + j is
 * non-zero), each coded with a canonical Huffman code of at most 12 bits
 * chosen by one bit of context: the top bit of the previous mask (is the
 * value just before this group non-zero). Zeros cluster in activations
 * (backgrounds, dead channels), which this captures and the bitmap does not.
 */
#include "internal.h"

/* Huffman code lengths of nsym counts (all > 0), by the two-queue method
 * over leaves sorted by count; returns the largest length. */
static unsigned tree_lengths(const uint64_t *cnt, const uint16_t *order,
                             unsigned nsym, uint8_t *len)
{
    /* nodes 0..nsym-1: leaves in ascending count; nsym..: internal */
    uint64_t w[512];
    uint16_t parent[512];
    unsigned leaf = 0, node = nsym, next = nsym;
    for (unsigned i = 0; i < nsym; i++)
        w[i] = cnt[order[i]];
    for (unsigned k = 0; k + 1 < nsym; k++) {
        unsigned pick[2];
        for (int t = 0; t < 2; t++) {
            if (leaf < nsym && (node >= next || w[leaf] <= w[node]))
                pick[t] = leaf++;
            else
                pick[t] = node++;
        }
        w[next] = w[pick[0]] + w[pick[1]];
        parent[pick[0]] = parent[pick[1]] = (uint16_t)next;
        next++;
    }
    /* depths from the root (the last node) down */
    uint8_t depth[512];
    unsigned maxlen = 0;
    depth[next - 1] = 0;
    for (unsigned i = next - 1; i-- > 0;) {
        depth[i] = (uint8_t)(depth[parent[i]] + 1);
        if (i < nsym) {
            len[order[i]] = depth[i];
            maxlen = depth[i] > maxlen ? depth[i] : maxlen;
        }
    }
    return maxlen;
}

/* Sorts order[0..n) (symbols in ascending order) by count, then symbol:
 * an LSD radix sort of count << 8 | symbol, one byte per pass (stable, no
 * branches on the data), as many passes as the largest key has bytes (an
 * insertion sort of up to 256 symbols per context was 0.6 % of a cnn step).
 * Counts of 2^56 or more, which no frame has, take the insertion sort. */
static void sort_by_count(const uint64_t *cnt, uint16_t *order, unsigned n)
{
    uint64_t a[256], b[256], *src = a, *dst = b, top = 0;
    for (unsigned i = 0; i < n; i++) {
        a[i] = cnt[order[i]] << 8 | order[i];
        top |= cnt[order[i]];
    }
    if (top >> 56) {
        for (unsigned i = 1; i < n; i++) {
            uint16_t v = order[i];
            unsigned j = i;
            while (j > 0 && cnt[order[j - 1]] > cnt[v])
                order[j] = order[j - 1], j--;
            order[j] = v;
        }
        return;
    }
    /* the symbol byte is in ascending order already: passes over the count */
    for (unsigned sh = 8; sh < 64 && top >> (sh - 8); sh += 8) {
        unsigned pos[256] = {0};
        for (unsigned i = 0; i < n; i++)
            pos[src[i] >> sh & 0xffu]++;
        for (unsigned c = 0, sum = 0; c < 256; c++) {
            const unsigned t = pos[c];
            pos[c] = sum;
            sum += t;
        }
        for (unsigned i = 0; i < n; i++)
            dst[pos[src[i] >> sh & 0xffu]++] = src[i];
        uint64_t *t = src;
        src = dst, dst = t;
    }
    for (unsigned i = 0; i < n; i++)
        order[i] = (uint16_t)(src[i] & 0xffu);
}

/* Lengths for one context: at most SFP__ZH_MAXLEN bits, a complete code
 * (or one symbol of length 1). cnt all zero: no symbol. */
static void build_lengths(const uint64_t *cnt, uint8_t *len)
{
    uint16_t order[256];
    unsigned nsym = 0;
    memset(len, 0, 256);
    for (unsigned s = 0; s < 256; s++)
        if (cnt[s])
            order[nsym++] = (uint16_t)s;
    if (nsym == 0)
        return;
    if (nsym == 1) {
        len[order[0]] = 1;
        return;
    }
    sort_by_count(cnt, order, nsym);
    unsigned maxlen = tree_lengths(cnt, order, nsym, len);
    if (maxlen <= SFP__ZH_MAXLEN)
        return;
    /*
     * Too deep: count codes per length, move the excess up (each step takes
     * two codes of the deepest length, gives one to the length above and
     * splits a shorter leaf into two), then hand the lengths out again,
     * shortest to the most frequent.
     */
    unsigned bl[256] = {0};
    for (unsigned s = 0; s < 256; s++)
        if (len[s])
            bl[len[s]]++;
    for (unsigned i = maxlen; i > SFP__ZH_MAXLEN; i--) {
        while (bl[i] > 0) {
            unsigned j = i - 2;
            while (bl[j] == 0)
                j--;
            bl[i] -= 2;
            bl[i - 1] += 1;
            bl[j + 1] += 2;
            bl[j] -= 1;
        }
    }
    unsigned l = 1;
    for (unsigned i = nsym; i-- > 0;) { /* most frequent first */
        while (bl[l] == 0)
            l++;
        len[order[i]] = (uint8_t)l;
        bl[l]--;
    }
}

/* Canonical codes of lengths len, bit-reversed for an LSB-first stream. */
static void canonical(const uint8_t *len, uint16_t *code)
{
    unsigned bl[SFP__ZH_MAXLEN + 1] = {0}, first[SFP__ZH_MAXLEN + 2];
    for (unsigned s = 0; s < 256; s++)
        bl[len[s]]++;
    bl[0] = 0;
    unsigned c = 0;
    for (unsigned l = 1; l <= SFP__ZH_MAXLEN; l++) {
        c = (c + bl[l - 1]) << 1;
        first[l] = c;
    }
    for (unsigned s = 0; s < 256; s++) {
        unsigned l = len[s];
        if (!l) {
            code[s] = 0;
            continue;
        }
        /* the l-bit code reversed: 16 bits reversed, shifted down */
        unsigned v = first[l]++;
        v = (v >> 1 & 0x5555u) | (v & 0x5555u) << 1;
        v = (v >> 2 & 0x3333u) | (v & 0x3333u) << 2;
        v = (v >> 4 & 0x0f0fu) | (v & 0x0f0fu) << 4;
        v = (v >> 8 & 0x00ffu) | (v & 0x00ffu) << 8;
        code[s] = (uint16_t)(v >> (16 - l));
    }
}

uint64_t sfp__zh_build(sfp__zh_enc *e, const uint64_t cnt[2][256])
{
    uint64_t bits = 0;
    for (int x = 0; x < 2; x++) {
        build_lengths(cnt[x], e->len[x]);
        canonical(e->len[x], e->code[x]);
        for (unsigned s = 0; s < 256; s++)
            bits += cnt[x][s] * e->len[x][s];
    }
    return bits;
}

void sfp__zh_write_table(uint8_t *p, const sfp__zh_enc *e)
{
    for (int x = 0; x < 2; x++)
        for (unsigned s = 0; s < 256; s += 2)
            p[x * 128 + s / 2] = (uint8_t)(e->len[x][s] | e->len[x][s + 1] << 4);
}

int sfp__zh_dec_init(sfp__zh_dec *d, const uint8_t *p)
{
    for (int x = 0; x < 2; x++) {
        uint8_t len[256];
        uint16_t code[256];
        uint32_t kraft = 0; /* in units of 2^-MAXLEN */
        for (unsigned s = 0; s < 256; s += 2) {
            len[s] = p[x * 128 + s / 2] & 15u;
            len[s + 1] = p[x * 128 + s / 2] >> 4;
        }
        for (unsigned s = 0; s < 256; s++) {
            RETURN_IF(len[s] > SFP__ZH_MAXLEN, SFP_ECORRUPT);
            if (len[s])
                kraft += 1u << (SFP__ZH_MAXLEN - len[s]);
        }
        /* a prefix code: not over-subscribed (an incomplete one is valid:
         * its missing codes are corrupt input) */
        RETURN_IF(kraft > (1u << SFP__ZH_MAXLEN), SFP_ECORRUPT);
        canonical(len, code);
        /* a complete code's entries cover the whole table */
        if (kraft < (1u << SFP__ZH_MAXLEN))
            for (unsigned i = 0; i < (1u << SFP__ZH_MAXLEN); i++)
                d->tab[x][i] = (uint16_t)(SFP__ZH_MISS | 1u);
        for (unsigned s = 0; s < 256; s++) {
            unsigned l = len[s];
            if (!l)
                continue;
            for (unsigned hi = 0; hi < (1u << (SFP__ZH_MAXLEN - l)); hi++)
                d->tab[x][code[s] | hi << l] = (uint16_t)(s << SFP__ZH_SYM | l);
        }
    }
    return SFP_OK;
}
