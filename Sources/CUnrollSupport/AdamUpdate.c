// One Adam update into new arrays (see Optimizer.swift): the same correctly rounded operations per element
// as the scalar formula, with contraction into fused multiply-adds off, so every clone gives the same bits.
// In C because the Swift loop stayed scalar (its square root calls libm for errno).
#include "CUnrollSupport.h"
#include "Clones.h"

#pragma clang fp contract(off)

typedef float v8f __attribute__((vector_size(32), aligned(4)));

CLONES void unroll_adam_update(long n, const float *w0, const float *g, const float *m0, const float *v0,
                               float b1, float c1, float b2, float c2, float step, float bc2_sqrt, float eps,
                               float *w1, float *m1, float *v1) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const v8f gi = *(const v8f *)(g + i);
        const v8f m = b1 * *(const v8f *)(m0 + i) + c1 * gi;
        const v8f v = b2 * *(const v8f *)(v0 + i) + c2 * gi * gi;
        *(v8f *)(m1 + i) = m;
        *(v8f *)(v1 + i) = v;
        *(v8f *)(w1 + i) = *(const v8f *)(w0 + i) - step * m / (__builtin_elementwise_sqrt(v) / bc2_sqrt + eps);
    }
    for (; i < n; i++) {
        const float m = b1 * m0[i] + c1 * g[i];
        const float v = b2 * v0[i] + c2 * g[i] * g[i];
        m1[i] = m;
        v1[i] = v;
        w1[i] = w0[i] - step * m / (__builtin_elementwise_sqrt(v) / bc2_sqrt + eps);
    }
}
