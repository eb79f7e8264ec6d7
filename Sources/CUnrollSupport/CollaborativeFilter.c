// `CollaborativeFilter`: BM3D's first step (Dabov et al. 2007, as Lebrun 2012 describes it) on a band of
// reference patches. For each reference 8×8 patch: the most alike patches of the noisy image in its search
// window (squared distance ≤ tau, at most `group`, a power of two of them, the reference first); their 2-D DCT,
// a Walsh–Hadamard transform across the group, a hard threshold, the inverse transforms, and the filtered
// patches added to the band's sums with weight 1/(non-zero coefficients) times a Kaiser window (β = 2).
// Matching goes offset by offset over the band (the squared differences summed down the rows as they come,
// so that 8 rows are one subtraction, then across 8 columns by sums of 2, 4 and 8), so that a reference's
// candidates come in scan order and ties keep the earlier one.
#include <math.h>
#include <string.h>
#include "CUnrollSupport.h"
#include "Clones.h"

#pragma clang fp contract(off)

enum { K = 8, KK = 64 };

// The orthonormal DCT-II matrix, c[u][x], and the 2-D Kaiser window, from libm in double, rounded once.
static void tables(float c[K][K], float kaiser[KK]) {
    double w[K], i0beta = 0, term = 1;
    for (int m = 1; m < 40; m++) { i0beta += term; term *= 1.0 / ((double)m * m); }   // I0(2) = Σ 1/(m!)²
    i0beta += term;
    for (int n = 0; n < K; n++) {
        const double t = 2.0 * n / (K - 1) - 1, x = 2.0 * sqrt(1 - t * t);       // β = 2
        double s = 0, a = 1;
        for (int m = 1; m < 40; m++) { s += a; a *= (x * x / 4) / ((double)m * m); }
        w[n] = (s + a) / i0beta;
    }
    for (int u = 0; u < K; u++) {
        const double scale = u == 0 ? sqrt(1.0 / K) : sqrt(2.0 / K);
        for (int x = 0; x < K; x++) c[u][x] = (float)(scale * cos(M_PI * (2 * x + 1) * u / (2.0 * K)));
    }
    for (int r = 0; r < K; r++)
        for (int q = 0; q < K; q++) kaiser[r * K + q] = (float)(w[r] * w[q]);
}

// out = a·p·m for 8×8 row-major matrices, a row of 8 at a time (so that it vectorises).
static inline __attribute__((always_inline)) void sandwich(const float a[K][K], const float *restrict p, const float m[K][K],
                                                           float *restrict out) {
    float t[KK];
    for (int u = 0; u < K; u++) {
        for (int q = 0; q < K; q++) t[u * K + q] = 0;
        for (int x = 0; x < K; x++)
            for (int q = 0; q < K; q++) t[u * K + q] += a[u][x] * p[x * K + q];
    }
    for (int u = 0; u < K; u++) {
        for (int v = 0; v < K; v++) out[u * K + v] = 0;
        for (int y = 0; y < K; y++)
            for (int v = 0; v < K; v++) out[u * K + v] += t[u * K + y] * m[y][v];
    }
}

// The unnormalised Walsh–Hadamard transform across n (a power of two) patches of 64 coefficients.
static inline __attribute__((always_inline)) void hadamard(float *g, int n) {
    for (int h = 1; h < n; h *= 2)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float *restrict a = g + (long)j * KK, *restrict b = g + (long)(j + h) * KK;
                for (int e = 0; e < KK; e++) { const float s = a[e], d = b[e]; a[e] = s + d; b[e] = s - d; }
            }
}

long unroll_collaborative_scratch(long rows, long cols, long width, int group) {
    return (long)sizeof(float) * ((rows * 4 + K + 1) * width + 3 * width + rows * cols * (group + 1) + (long)group * KK + KK)
         + (long)sizeof(int32_t) * (rows * cols * (group + 1));
}

CLONES
void unroll_collaborative_band(const float *image, long height, long width, const int32_t *ref_rows, long rows,
                               const int32_t *ref_cols, long cols, int radius, int group, float tau, float threshold,
                               float *num, float *den, long out_row0, void *scratch) {
    float c[K][K], ct[K][K], kaiser[KK];
    tables(c, kaiser);
    for (int u = 0; u < K; u++)
        for (int x = 0; x < K; x++) ct[x][u] = c[u][x];
    // Reference rows ref_rows[0 ..< rows], ascending and at most 4 apart, so their patches span at most
    // ref_rows[rows − 1] − ref_rows[0] + 8 ≤ 4·rows + 4 image rows.
    const long first = ref_rows[0];
    float *restrict sums = scratch;                               // [span + 1, width]: squared differences, summed down
    float *restrict column = sums + (rows * 4 + K + 1) * width;   // [width]: their sums down a patch
    float *restrict distance = column + width;                    // [width]: the patches' distances
    float *restrict limit = distance + width;                     // [rows·cols]: see below
    float *restrict best = limit + rows * cols;                   // [rows·cols, group]: the distances kept
    float *restrict g = best + rows * cols * group;               // [group, 64]: the group's coefficients
    float *restrict patch = g + (long)group * KK;                 // [64]
    int32_t *restrict where = (int32_t *)(patch + KK);            // [rows·cols, group]: row·width + column
    int32_t *restrict count = where + rows * cols * group;        // [rows·cols]
    // A candidate is kept when its distance is below limit[r]: just above tau while the group has room
    // (distances ≤ tau qualify), then the farthest kept one's (a nearer one displaces it; a tie does not).
    const float open = nextafterf(tau, INFINITY);
    for (long r = 0; r < rows * cols; r++) {
        count[r] = 1;
        best[r * group] = 0;
        where[r * group] = ref_rows[r / cols] * (int32_t)width + ref_cols[r % cols];
        limit[r] = group == 1 ? 0 : open;
    }
    const long lastRow = height - K, lastCol = width - K;
    for (int dy = -radius; dy <= radius; dy++) {
        // The rows this offset can use: a reference row i needs 0 ≤ i + dy ≤ height − 8.
        long lo = 0, hi = rows;
        while (lo < rows && ref_rows[lo] + dy < 0) lo++;
        while (hi > lo && ref_rows[hi - 1] + dy > lastRow) hi--;
        if (lo >= hi) continue;
        for (int dx = -radius; dx <= radius; dx++) {
            if (dy == 0 && dx == 0) continue;          // the reference, already first
            const long c0 = dx < 0 ? -dx : 0, c1 = dx > 0 ? width - dx : width;   // columns j with j, j + dx inside
            long q_lo = 0, q_hi = cols;                 // the references q with 0 ≤ ref_cols[q] + dx ≤ width − 8
            while (q_lo < cols && ref_cols[q_lo] + dx < 0) q_lo++;
            while (q_hi > q_lo && ref_cols[q_hi - 1] + dx > lastCol) q_hi--;
            if (q_lo >= q_hi) continue;
            // Row i of `sums` (i ≥ 1): the squared differences summed down image rows first + d0 ..< first + d0 + i,
            // so that a patch's column sums are one subtraction.
            const long d0 = ref_rows[lo] - first, d1 = ref_rows[hi - 1] - first + K;
            for (long j = c0; j < c1; j++) sums[j] = 0;
            for (long i = d0; i < d1; i++) {
                const float *restrict a = image + (first + i) * width, *restrict b = a + (long)dy * width + dx;
                const float *restrict above = sums + (i - d0) * width;
                float *restrict o = sums + (i - d0 + 1) * width;
                for (long j = c0; j < c1; j++) { const float e = a[j] - b[j]; o[j] = above[j] + e * e; }
            }
            for (long rr = lo; rr < hi; rr++) {
                const float *restrict top = sums + (ref_rows[rr] - first - d0) * width, *restrict bottom = top + K * width;
                for (long j = c0; j < c1; j++) column[j] = bottom[j] - top[j];
                // distance[j] = Σ_{t < 8} column[j + t] for the patches inside both copies, j ∈ [c0, c1 − 8], by
                // sums of 2, 4 and 8 (pair and quad share `distance` and `column`'s storage as they go).
                float *restrict pair = distance;
                for (long j = c0; j + 1 < c1; j++) pair[j] = column[j] + column[j + 1];
                float *restrict quad = column;
                for (long j = c0; j + 3 < c1; j++) quad[j] = pair[j] + pair[j + 2];
                for (long j = c0; j + 7 < c1; j++) distance[j] = quad[j] + quad[j + 4];
                const long candRow = ref_rows[rr] + dy;
                const float *restrict rowLimit = limit + rr * cols;
                for (long q0 = q_lo; q0 < q_hi; q0 += 16) {
                    // Few candidates qualify once the groups are full: test 16 at a time (a vector compare), then look.
                    const long q1 = q0 + 16 < q_hi ? q0 + 16 : q_hi;
                    int any = 0;
                    for (long q = q0; q < q1; q++) any |= distance[ref_cols[q]] < rowLimit[q];
                    if (!any) continue;
                    for (long q = q0; q < q1; q++) {
                    const long j = ref_cols[q];
                    const float d = distance[j];
                    const long r = rr * cols + q;
                    if (!(d < limit[r])) continue;
                    float *restrict bd = best + r * group;
                    int32_t *restrict bw = where + r * group;
                    int n = count[r];
                    if (n < group) n++;
                    int at = n - 1;
                    while (at > 1 && d < bd[at - 1]) { bd[at] = bd[at - 1]; bw[at] = bw[at - 1]; at--; }
                    bd[at] = d;
                    bw[at] = (int32_t)(candRow * width + j + dx);
                    count[r] = n;
                    if (n == group) limit[r] = bd[n - 1];
                    }
                }
            }
        }
    }
    for (long r = 0; r < rows * cols; r++) {
        int n = 1;
        while (2 * n <= count[r]) n *= 2;
        const int32_t *restrict bw = where + r * group;
        for (int m = 0; m < n; m++) {
            const float *src = image + bw[m];
            for (int x = 0; x < K; x++)
                for (int q = 0; q < K; q++) patch[x * K + q] = src[(long)x * width + q];
            sandwich(c, patch, ct, g + (long)m * KK);
        }
        hadamard(g, n);
        // The transform across the group is orthonormal with the factor 1/√n, so the threshold on the
        // unnormalised coefficients is threshold·√n; the inverse takes the remaining 1/n.
        const float limit = threshold * sqrtf((float)n), back = 1.0f / (float)n;
        long nonzero = 0;
        for (long e = 0; e < (long)n * KK; e++) {
            if (fabsf(g[e]) < limit) g[e] = 0; else nonzero++;
        }
        hadamard(g, n);
        const float w = nonzero > 0 ? 1.0f / (float)nonzero : 1.0f;
        for (int m = 0; m < n; m++) {
            float *restrict coefficients = g + (long)m * KK;
            for (int e = 0; e < KK; e++) coefficients[e] *= back;
            sandwich(ct, coefficients, c, patch);
            const long top = bw[m] / width - out_row0, left = bw[m] % width;
            for (int x = 0; x < K; x++) {
                float *restrict nu = num + (top + x) * width + left, *restrict de = den + (top + x) * width + left;
                for (int q = 0; q < K; q++) {
                    const float kw = w * kaiser[x * K + q];
                    nu[q] += kw * patch[x * K + q];
                    de[q] += kw;
                }
            }
        }
    }
}
