// The two loops over all p atoms that each event of `LassoHomotopy`'s path runs, compiled once per
// instruction set and picked at load time (CLONES). They do the Swift loops' operations in the same order,
// unfused, so every clone gives the same bits; only the vector width differs (Swift builds for SSE2).
#include <math.h>
#include <string.h>
#include "CUnrollSupport.h"
#include "Clones.h"

#pragma clang fp contract(off)

CLONES void unroll_homotopy_add_rows(int p, float *out, const float *g, const long *rows, const float *weights, int count) {
    int u = 0;
    for (; u + 4 <= count; u += 4) {
        const float *r0 = g + rows[u] * p, *r1 = g + rows[u + 1] * p, *r2 = g + rows[u + 2] * p, *r3 = g + rows[u + 3] * p;
        const float w0 = weights[u], w1 = weights[u + 1], w2 = weights[u + 2], w3 = weights[u + 3];
        for (int j = 0; j < p; j++) {
            float s = out[j];
            s += w0 * r0[j];
            s += w1 * r1[j];
            s += w2 * r2[j];
            s += w3 * r3[j];
            out[j] = s;
        }
    }
    // The last one to three rows in one pass as well: each entry still adds its terms in order.
    if (count - u == 3) {
        const float *r0 = g + rows[u] * p, *r1 = g + rows[u + 1] * p, *r2 = g + rows[u + 2] * p;
        const float w0 = weights[u], w1 = weights[u + 1], w2 = weights[u + 2];
        for (int j = 0; j < p; j++) out[j] = ((out[j] + w0 * r0[j]) + w1 * r1[j]) + w2 * r2[j];
    } else if (count - u == 2) {
        const float *r0 = g + rows[u] * p, *r1 = g + rows[u + 1] * p;
        const float w0 = weights[u], w1 = weights[u + 1];
        for (int j = 0; j < p; j++) out[j] = (out[j] + w0 * r0[j]) + w1 * r1[j];
    } else if (count - u == 1) {
        const float *r0 = g + rows[u] * p;
        const float w0 = weights[u];
        for (int j = 0; j < p; j++) out[j] = out[j] + w0 * r0[j];
    }
}

// Blocks of 64 atoms: each block's minimum is a vector reduction, and the first index of the overall
// minimum is then looked for in the one block that first holds it.
enum { BLOCK = 64 };

CLONES long unroll_homotopy_next_join(int p, float lam, const float *r, const float *a, const float *blocked, float *t,
                                      float *smallest) {
    uint32_t best = UINT32_MAX;
    int first_block = 0;
    for (int start = 0; start < p; start += BLOCK) {
        const int end = start + BLOCK < p ? start + BLOCK : p;
        for (int j = start; j < end; j++) {
            const float n1 = lam - r[j], d1 = 1 - a[j], n2 = lam + r[j], d2 = 1 + a[j];
            const float t1 = d1 > 0 && n1 > 0 ? n1 / d1 : INFINITY;
            const float t2 = d2 > 0 && n2 > 0 ? n2 / d2 : INFINITY;
            const float m = t2 < t1 ? t2 : t1;
            t[j] = blocked[j] >= m ? blocked[j] : m;
        }
        // t ≥ 0, so its order is the order of its bit patterns, and an integer minimum vectorises.
        uint32_t block_min = UINT32_MAX;
        for (int j = start; j < end; j++) {
            uint32_t b;
            memcpy(&b, t + j, sizeof b);
            block_min = b < block_min ? b : block_min;
        }
        if (block_min < best) best = block_min, first_block = start;
    }
    memcpy(smallest, &best, sizeof best);
    for (int j = first_block; j < p; j++) {
        uint32_t b;
        memcpy(&b, t + j, sizeof b);
        if (b == best) return j;
    }
    return -1;
}
