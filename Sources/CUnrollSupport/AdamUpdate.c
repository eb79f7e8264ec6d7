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

// One element (or eight) of an SGD step; T is float or v8f, and the flags are constant in each loop.
#define SGD_ELEMENT(T, at, load, store, mag, lw, ls)                                             \
    do {                                                                                         \
        T g = load(g0 + at);                                                                     \
        if (decay != 0) g = g + decay * load(w0 + at);                                           \
        T w;                                                                                     \
        if (!b1) {                                                                               \
            w = load(w0 + at) + neg_lr * g;                                                      \
        } else {                                                                                 \
            T b = g;                                                                             \
            if (b0) {                                                                            \
                b = momentum * load(b0 + at);                                                    \
                b = b + g;                                                                       \
            }                                                                                    \
            store(b1 + at, b);                                                                   \
            ls = MAX(ls, mag(b));                                                                \
            if (nesterov) {                                                                      \
                w = load(w0 + at) + neg_lr * g;                                                  \
                w = w + neg_lr_momentum * b;                                                     \
            } else {                                                                             \
                w = load(w0 + at) + neg_lr * b;                                                  \
            }                                                                                    \
        }                                                                                        \
        store(w1 + at, w);                                                                       \
        lw = MAX(lw, mag(w));                                                                    \
    } while (0)

#define LOAD8(p) (*(const v8f *)(p))
#define STORE8(p, v) (*(v8f *)(p) = (v))
#define LOAD1(p) (*(p))
#define STORE1(p, v) (*(p) = (v))
#define MAX(a, b) __builtin_elementwise_max(a, b)

CLONES void unroll_sgd_update(long n, const float *w0, const float *g0, const float *b0, float decay, float momentum,
                              bool nesterov, float neg_lr, float neg_lr_momentum, float *w1, float *b1,
                              unsigned *largest_weight, unsigned *largest_state) {
    long i = 0;
    v8u lw = {0}, ls = {0};
    for (; i + 8 <= n; i += 8) SGD_ELEMENT(v8f, i, LOAD8, STORE8, MAGNITUDES, lw, ls);
    unsigned mw = __builtin_reduce_max(lw), ms = __builtin_reduce_max(ls);
    for (; i < n; i++) SGD_ELEMENT(float, i, LOAD1, STORE1, magnitude, mw, ms);
    *largest_weight = mw;
    *largest_state = ms;
}
