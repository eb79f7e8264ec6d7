// The optimizers' updates into new arrays (see Optimizer.swift): the same correctly rounded operations per
// element as the scalar formulas, with contraction into fused multiply-adds off, so every clone gives the
// same bits. In C because the Swift loop stayed scalar (its square root calls libm for errno). Each update
// also reports the largest magnitude it wrote, as the largest float bit pattern with the sign cleared (NaN
// above ∞ above every finite value), so the trainer's divergence checks need no second pass.
#include "CUnrollSupport.h"
#include "Clones.h"

#pragma clang fp contract(off)

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef unsigned v8u __attribute__((vector_size(32), aligned(4)));

static inline unsigned magnitude(float x) {
    unsigned u;
    __builtin_memcpy(&u, &x, 4);
    return u & 0x7fffffffu;
}

#define MAGNITUDES(x) ((v8u)(x) & 0x7fffffffu)

CLONES void unroll_adam_update(long n, const float *w0, const float *g, const float *m0, const float *v0,
                               float b1, float c1, float b2, float c2, float step, float bc2_sqrt, float eps,
                               float *w1, float *m1, float *v1, unsigned *largest_weight, unsigned *largest_state) {
    long i = 0;
    v8u lw = {0}, ls = {0};
    for (; i + 8 <= n; i += 8) {
        const v8f gi = *(const v8f *)(g + i);
        const v8f m = b1 * *(const v8f *)(m0 + i) + c1 * gi;
        const v8f v = b2 * *(const v8f *)(v0 + i) + c2 * gi * gi;
        const v8f w = *(const v8f *)(w0 + i) - step * m / (__builtin_elementwise_sqrt(v) / bc2_sqrt + eps);
        *(v8f *)(m1 + i) = m;
        *(v8f *)(v1 + i) = v;
        *(v8f *)(w1 + i) = w;
        lw = __builtin_elementwise_max(lw, MAGNITUDES(w));
        ls = __builtin_elementwise_max(ls, __builtin_elementwise_max(MAGNITUDES(m), MAGNITUDES(v)));
    }
    unsigned mw = __builtin_reduce_max(lw), ms = __builtin_reduce_max(ls);
    for (; i < n; i++) {
        const float m = b1 * m0[i] + c1 * g[i];
        const float v = b2 * v0[i] + c2 * g[i] * g[i];
        m1[i] = m;
        v1[i] = v;
        w1[i] = w0[i] - step * m / (__builtin_elementwise_sqrt(v) / bc2_sqrt + eps);
        mw = magnitude(w1[i]) > mw ? magnitude(w1[i]) : mw;
        ms = magnitude(m) > ms ? magnitude(m) : ms;
        ms = magnitude(v) > ms ? magnitude(v) : ms;
    }
    *largest_weight = mw;
    *largest_state = ms;
}

CLONES void unroll_sgd_update(long n, const float *w0, const float *g0, const float *b0, float decay, float momentum,
                              bool nesterov, float neg_lr, float neg_lr_momentum, float *w1, float *b1,
                              unsigned *largest_weight, unsigned *largest_state) {
    unsigned mw = 0, ms = 0;
    // One loop for every variant; the branches are loop-invariant, and the compiler unswitches them.
    for (long i = 0; i < n; i++) {
        float g = g0[i];
        if (decay != 0) g = g + decay * w0[i];
        float w;
        if (!b1) {
            w = w0[i] + neg_lr * g;
        } else {
            float b = g;
            if (b0) {
                b = momentum * b0[i];
                b = b + g;
            }
            b1[i] = b;
            ms = magnitude(b) > ms ? magnitude(b) : ms;
            if (nesterov) {
                w = w0[i] + neg_lr * g;
                w = w + neg_lr_momentum * b;
            } else {
                w = w0[i] + neg_lr * b;
            }
        }
        w1[i] = w;
        mw = magnitude(w) > mw ? magnitude(w) : mw;
    }
    *largest_weight = mw;
    *largest_state = ms;
}
