// `NonLocalMeans`: rows of a non-local means (Buades, Coll & Morel) of an image whose padding is already made.
// For each offset o of the search window, over a band of rows: the squared differences between the image and
// its copy shifted by o, their mean over each (2f+1)² patch (a vertical, then a horizontal sum of 2f + 1
// terms), the weight exp(−mean/h²) and its share of the weighted sum. The band's buffers stay in cache across
// the offsets. The exponential is our own (below), so the clones need no libm call and round alike.
#include "CUnrollSupport.h"
#include "Clones.h"

#pragma clang fp contract(off)

// e^x for x ≤ 0 (larger x are not asked for): 2^k·p(r) with k = round(x/ln 2) and r = x − k·ln 2 in two
// parts, p Cephes's degree-6 polynomial (relative error about 1e-7). Below −87 it returns e^−87 ≈ 1.6e-38,
// a weight that adds nothing next to the centre's 1. Branch-free, so the loop vectorises.
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round to nearest
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

float unroll_nonlocal_exp(float x) { return exp_nonpositive(x); }

// dst[j] = Σ_{t < taps} src[j + t] for j < n, the terms added in order of t (a pass per term, so it vectorises).
static inline __attribute__((always_inline)) void box_sum(long n, int taps, const float *restrict src, float *restrict dst) {
    for (long j = 0; j < n; j++) dst[j] = src[j];
    for (int t = 1; t < taps; t++) {
        const float *restrict s = src + t;
        for (long j = 0; j < n; j++) dst[j] += s[j];
    }
}

CLONES
void unroll_nonlocal_means_rows(const float *padded, long width, int f, int d, float scale,
                                long row0, long row1, float *out, float *scratch) {
    const long r = d + f, pw = width + 2 * r, n = row1 - row0, cw = width + 2 * f;
    const int taps = 2 * f + 1;
    float *restrict diff = scratch;                   // [n + 2f, width + 2f]: squared differences
    float *restrict column = diff + (n + 2 * f) * cw; // [n, width + 2f]: their sums down each patch column
    float *restrict num = column + n * cw;            // [n, width]: Σ w·u(p + o)
    float *restrict den = num + n * width;            // [n, width]: Σ w
    float *restrict distance = den + n * width;       // [width]: one row's patch sums
    for (long i = 0; i < n * width; i++) { num[i] = 0; den[i] = 0; }
    for (int dy = -d; dy <= d; dy++) {
        for (int dx = -d; dx <= d; dx++) {
            // Image row i, column j is padded[(i + r)·pw + j + r]; the band's patches need rows
            // row0 − f ..< row1 + f and columns −f ..< width + f.
            for (long i = 0; i < n + 2 * f; i++) {
                const float *restrict a = padded + (row0 - f + i + r) * pw + (r - f);
                const float *restrict b = a + dy * pw + dx;
                float *restrict o = diff + i * cw;
                for (long j = 0; j < cw; j++) {
                    const float e = a[j] - b[j];
                    o[j] = e * e;
                }
            }
            for (long i = 0; i < n; i++) {
                float *restrict c = column + i * cw;
                const float *restrict s = diff + i * cw;
                for (long j = 0; j < cw; j++) c[j] = s[j];
                for (int t = 1; t < taps; t++) {
                    const float *restrict u = s + t * cw;
                    for (long j = 0; j < cw; j++) c[j] += u[j];
                }
            }
            for (long i = 0; i < n; i++) {
                box_sum(width, taps, column + i * cw, distance);
                const float *restrict v = padded + (row0 + i + r + dy) * pw + r + dx;
                float *restrict nu = num + i * width, *restrict de = den + i * width;
                for (long j = 0; j < width; j++) {
                    const float w = exp_nonpositive(-distance[j] * scale);
                    nu[j] += w * v[j];
                    de[j] += w;
                }
            }
        }
    }
    for (long i = 0; i < n; i++) {
        for (long j = 0; j < width; j++) out[(row0 + i) * width + j] = num[i * width + j] / den[i * width + j];
    }
}
