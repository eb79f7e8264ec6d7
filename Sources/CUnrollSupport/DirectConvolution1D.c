// The inner loops of `DirectConvolution1D` (stride 1, no padding), compiled once per instruction set and
// picked at load time (target_clones): the same operations in the same order as the Swift loops, so every
// result is bit-identical on every clone; only the vector width differs (Swift builds for baseline x86-64).
// Contraction into fused multiply-adds would change the roundings, so it is off.
#include "CUnrollSupport.h"
#include "Clones.h"

#pragma clang fp contract(off)

typedef float v16f __attribute__((vector_size(64), aligned(4)));
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef float v1f __attribute__((vector_size(4), aligned(4)));
#define LOAD(p) (*(const v16f *)(p))
#define STORE(p, v) (*(v16f *)(p) = (v))

// Output tiles of 64 held in four vectors while every (channel, tap) term is added, in the Swift loops'
// order for each output; what does not fill a tile runs those loops.
CLONES void unroll_conv1d_forward_unit(int cin, int n, int k, int l, const float *x, const float *w, float *y, bool accumulate) {
    int t0 = 0;
    for (; t0 + 64 <= l; t0 += 64) {
        v16f A0 = {0}, A1 = {0}, A2 = {0}, A3 = {0};
        if (accumulate) { A0 = LOAD(y + t0); A1 = LOAD(y + t0 + 16); A2 = LOAD(y + t0 + 32); A3 = LOAD(y + t0 + 48); }
        for (int c = 0; c < cin; c++) {
            for (int kk = 0; kk < k; kk++) {
                const float wv = w[c * k + kk], *xs = x + c * n + kk + t0;
                A0 += wv * LOAD(xs);
                A1 += wv * LOAD(xs + 16);
                A2 += wv * LOAD(xs + 32);
                A3 += wv * LOAD(xs + 48);
            }
        }
        STORE(y + t0, A0); STORE(y + t0 + 16, A1); STORE(y + t0 + 32, A2); STORE(y + t0 + 48, A3);
    }
    if (!accumulate) for (int t = t0; t < l; t++) y[t] = 0;
    for (int c = 0; c < cin; c++) {
        for (int kk = 0; kk < k; kk++) {
            const float wv = w[c * k + kk], *xs = x + c * n + kk;
            for (int t = t0; t < l; t++) y[t] += wv * xs[t];
        }
    }
}

CLONES void unroll_conv1d_transposed_unit(int cout, int n, int k, int l, const float *y, const float *w, int wstride, float *x, bool accumulate) {
    for (int j0 = 0; j0 < n; j0 += 64) {
        if (j0 >= k - 1 && j0 + 64 <= l) {   // every tap's term exists for the whole tile
            v16f A0 = {0}, A1 = {0}, A2 = {0}, A3 = {0};
            if (accumulate) { A0 = LOAD(x + j0); A1 = LOAD(x + j0 + 16); A2 = LOAD(x + j0 + 32); A3 = LOAD(x + j0 + 48); }
            for (int o = 0; o < cout; o++) {
                for (int kk = 0; kk < k; kk++) {
                    const float wv = w[o * wstride + kk], *ys = y + o * l + j0 - kk;
                    A0 += wv * LOAD(ys);
                    A1 += wv * LOAD(ys + 16);
                    A2 += wv * LOAD(ys + 32);
                    A3 += wv * LOAD(ys + 48);
                }
            }
            STORE(x + j0, A0); STORE(x + j0 + 16, A1); STORE(x + j0 + 32, A2); STORE(x + j0 + 48, A3);
            continue;
        }
        const int j1 = j0 + 64 < n ? j0 + 64 : n;
        if (!accumulate) for (int j = j0; j < j1; j++) x[j] = 0;
        for (int o = 0; o < cout; o++) {
            for (int kk = 0; kk < k; kk++) {
                const float wv = w[o * wstride + kk], *ys = y + o * l - kk;   // x[j] += w · y[j − kk], 0 ≤ j − kk < l
                const int lo = j0 > kk ? j0 : kk, hi = j1 < l + kk ? j1 : l + kk;
                for (int j = lo; j < hi; j++) x[j] += wv * ys[j];
            }
        }
    }
}

// Taps kb ..< kb + W of one batch row, as vectors V of W floats (unaligned loads): lane j of
// `SparseKernels.dot` (t ≡ j mod 4, the tail in lane 0) in A0…A3, held in registers across the row; then
// (s0 + s1) + (s2 + s3) is added to gw.
#define TAP_BLOCK(V, W)                                                                                       \
    {                                                                                                         \
        V A0 = {0}, A1 = {0}, A2 = {0}, A3 = {0};                                                             \
        for (int t = 0; t < l4; t += 4) {                                                                     \
            const float *xt = xb + t + kb;                                                                    \
            A0 += g[t] * *(const V *)xt;                                                                      \
            A1 += g[t + 1] * *(const V *)(xt + 1);                                                            \
            A2 += g[t + 2] * *(const V *)(xt + 2);                                                            \
            A3 += g[t + 3] * *(const V *)(xt + 3);                                                            \
        }                                                                                                     \
        for (int t = l4; t < l; t++) A0 += g[t] * *(const V *)(xb + t + kb);                                  \
        const V sum = (A0 + A1) + (A2 + A3);                                                                  \
        for (int i = 0; i < (W); i++) gw[kb + i] += sum[i];                                                   \
    }

CLONES void unroll_conv1d_filter_gradient_unit(int batch, int n, int k, int l, const float *x, int xstride,
                                               const float *gy, int gystride, float *gw, bool accumulate) {
    // gw[kk] (+)= Σ_b dot(gy_b, x_b + kk), every dot with `SparseKernels.dot`'s four partial sums, so the
    // result is the Swift loop's bit for bit; the taps go in blocks of 16, 8 and 1, each block's partial
    // sums held across the whole row instead of one dot per tap.
    (void)n;
    if (!accumulate) for (int kk = 0; kk < k; kk++) gw[kk] = 0;
    const int l4 = l & ~3;
    for (int b = 0; b < batch; b++) {
        const float *g = gy + b * gystride, *xb = x + b * xstride;
        int kb = 0;
        for (; kb + 16 <= k; kb += 16) TAP_BLOCK(v16f, 16)
        for (; kb + 8 <= k; kb += 8) TAP_BLOCK(v8f, 8)
        for (; kb < k; kb += 1) TAP_BLOCK(v1f, 1)
    }
}
