// `CollaborativeFilter`: BM3D's two steps (Dabov et al. 2007, as Lebrun 2012 describes them) on a band of
// reference patches, in two parts. `unroll_collaborative_match` finds each reference 8×8 patch's group: the
// most alike patches of the noisy image in its search window (squared distance ≤ tau, at most `group`, a power
// of two of them, the reference first). `unroll_collaborative_filter` shrinks the groups: the noisy patches'
// 2-D DCT and a transform across the group; then either (no pilot, the first step) a Walsh–Hadamard transform,
// a hard threshold and weight 1/(non-zero coefficients), or (a pilot, the second step) the orthonormal Haar
// transform, each coefficient scaled by the pilot's Wiener factor P²/(P² + threshold²) and weight
// 1/Σ factor²; the inverse transforms, and the filtered patches added to the band's sums with that weight
// times a Kaiser window (β = 2). Both steps share the groups, so matching is done once.
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

// The orthonormal Haar transform across n (a power of two) patches, in place: level by level, each pair of the
// previous level's means becomes their scaled sum and difference (the coefficients are left in a permuted
// order, which an element-wise shrinkage does not mind). Each butterfly is its own inverse, so the levels
// in reverse order (`inverse`) undo it.
static inline __attribute__((always_inline)) void haar(float *g, int n, int inverse) {
    const float r = (float)M_SQRT1_2;
    for (int level = 0; (1 << level) < n; level++) {
        const int h = inverse ? n >> (level + 1) : 1 << level;
        for (int i = 0; i < n; i += 2 * h) {
            float *restrict a = g + (long)i * KK, *restrict b = g + (long)(i + h) * KK;
            for (int e = 0; e < KK; e++) { const float s = a[e], d = b[e]; a[e] = r * (s + d); b[e] = r * (s - d); }
        }
    }
}

long unroll_collaborative_scratch(long rows, long cols, long width, int group) {
    return (long)sizeof(float) * ((rows * 4 + K + 1) * width + 3 * width + rows * cols * (group + 1));
}

CLONES
void unroll_collaborative_match(const float *image, long height, long width, const int32_t *ref_rows, long rows,
                                const int32_t *ref_cols, long cols, int radius, int group, float tau, int32_t *where,
                                int32_t *count, void *scratch) {
    // Reference rows ref_rows[0 ..< rows], ascending and at most 4 apart, so their patches span at most
    // ref_rows[rows − 1] − ref_rows[0] + 8 ≤ 4·rows + 4 image rows.
    const long first = ref_rows[0];
    float *restrict sums = scratch;                               // [span + 1, width]: squared differences, summed down
    float *restrict column = sums + (rows * 4 + K + 1) * width;   // [width]: their sums down a patch
    float *restrict distance = column + width;                    // [width]: the patches' distances
    float *restrict limit = distance + width;                     // [rows·cols]: see below
    float *restrict best = limit + rows * cols;                   // [rows·cols, group]: the distances kept
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
    for (long r = 0; r < rows * cols; r++) {   // a power of two of them
        int n = 1;
        while (2 * n <= count[r]) n *= 2;
        count[r] = n;
    }
}

CLONES
void unroll_collaborative_filter(const float *image, const float *pilot, long width, const int32_t *where,
                                 const int32_t *count, long references, int group, float threshold, float *num,
                                 float *den, long out_row0) {
    float c[K][K], ct[K][K], kaiser[KK];
    tables(c, kaiser);
    for (int u = 0; u < K; u++)
        for (int x = 0; x < K; x++) ct[x][u] = c[u][x];
    float g[32 * KK], gp[32 * KK], patch[KK];   // the group's coefficients, the pilot's; group ≤ 32
    for (long r = 0; r < references; r++) {
        const int n = count[r];
        const int32_t *restrict bw = where + r * group;
        for (int m = 0; m < n; m++) {
            const float *src = image + bw[m];
            for (int x = 0; x < K; x++)
                for (int q = 0; q < K; q++) patch[x * K + q] = src[(long)x * width + q];
            sandwich(c, patch, ct, g + (long)m * KK);
            if (!pilot) continue;
            src = pilot + bw[m];
            for (int x = 0; x < K; x++)
                for (int q = 0; q < K; q++) patch[x * K + q] = src[(long)x * width + q];
            sandwich(c, patch, ct, gp + (long)m * KK);
        }
        // Across the group: the hard threshold takes the Walsh–Hadamard transform, orthonormal with the factor
        // 1/√n, so its threshold on the unnormalised coefficients is threshold·√n and the inverse takes the
        // remaining 1/n; the Wiener shrinkage takes the orthonormal Haar transform (BM3D's: in the bm3d package's
        // second step on the shipped models' estimates of two training images it beat a DCT there by 0.1–0.2 dB).
        float back, w;   // the inverse's factor; the patches' weight: 1/(non-zeros), or 1/Σ factor²
        if (pilot) {
            haar(g, n, 0);
            haar(gp, n, 0);
            const float noise = threshold * threshold;
            float squares = 0;
            for (long e = 0; e < (long)n * KK; e++) {
                const float p2 = gp[e] * gp[e], d = p2 + noise, f = d > 0 ? p2 / d : 0;   // 0/0 (μ = 0): nothing held
                g[e] *= f;
                squares += f * f;
            }
            haar(g, n, 1);
            back = 1;
            w = squares > 0 ? 1.0f / squares : 1.0f;
        } else {
            hadamard(g, n);
            const float limit = threshold * sqrtf((float)n);
            long nonzero = 0;
            for (long e = 0; e < (long)n * KK; e++) {
                if (fabsf(g[e]) < limit) g[e] = 0; else nonzero++;
            }
            hadamard(g, n);
            back = 1.0f / (float)n;
            w = nonzero > 0 ? 1.0f / (float)nonzero : 1.0f;
        }
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
