#ifndef UNROLL_SUPPORT_H
#define UNROLL_SUPPORT_H
#include <stdbool.h>
#include <stdint.h>

/// Sets flush-to-zero and denormals-are-zero on the calling thread; returns the previous state.
/// Denormals make the unrolled backward pass many times slower on x86.
bool unroll_set_flush_denormals(bool on);
/// Whether the calling thread flushes denormals.
bool unroll_flush_denormals_enabled(void);
/// Makes glibc's malloc keep freed large blocks for reuse (no effect on other C libraries).
void unroll_keep_freed_memory(void);
/// Returns the free blocks that malloc keeps to the system (glibc; no effect elsewhere).
void unroll_release_free_memory(void);
/// Makes standard output line-buffered even when it is a pipe or a file.
void unroll_line_buffer_stdout(void);

/// The inner loops of `DirectConvolution1D` for stride 1 without padding (see DirectConvolution1D.c):
/// one output row y[l] = Σ_c Σ_kk w[c·k + kk] x[c·n + kk + t] (plus y when accumulating);
void unroll_conv1d_forward_unit(int cin, int n, int k, int l, const float *x, const float *w, float *y, bool accumulate);
/// one input row x[n] += Σ_o Σ_kk w[o·wstride + kk] y[o·l + t − kk];
void unroll_conv1d_transposed_unit(int cout, int n, int k, int l, const float *y, const float *w, int wstride, float *x, bool accumulate);
/// one filter row gw[kk] (+)= Σ_b Σ_t gy[b·gystride + t] x[b·xstride + t + kk].
void unroll_conv1d_filter_gradient_unit(int batch, int n, int k, int l, const float *x, int xstride,
                                        const float *gy, int gystride, float *gw, bool accumulate);

/// out[0..<n] += Σ_q coef[q]·rows[index[q]·stride ..< +n], each term one fused multiply-add in order (the
/// roundings of one FMA saxpy per term), four terms per pass over `out` (see ScaledRowSum.c).
void unroll_add_scaled_rows(int n, float *out, const float *rows, long stride, const int32_t *index,
                            const float *coef, int terms);

/// One code row's threshold (see ThresholdRow.c): z[j] = θ(v[j]; b[j]) for j < n, kind 0 soft, 1 non-negative,
/// 2 hard, and the ascending indices of z's non-zeros (NaN included) into `support`; returns their number.
long unroll_threshold_row(int kind, long n, const float *v, const float *b, float *z, int32_t *support);

/// `LassoHomotopy`'s loops over the atoms (see LassoHomotopy.c): out[j] += Σ_u weights[u]·g[rows[u]·p + j], the
/// rows added one after the other, unfused;
void unroll_homotopy_add_rows(int p, float *out, const float *g, const long *rows, const float *weights, int count);
/// each atom's join time t[j] (the smaller positive root of λ ∓ r_j = t(1 ∓ a_j), +∞ for none, at least
/// blocked[j]), its smallest value in *smallest and the first index holding it.
long unroll_homotopy_next_join(int p, float lam, const float *r, const float *a, const float *blocked, float *t,
                               float *smallest);

/// One Adam step into new arrays: m1 = b1·m0 + c1·g, v1 = b2·v0 + c2·g·g,
/// w1 = w0 − step·m1 / (√v1 / bc2_sqrt + eps), element by element (see AdamUpdate.c). Sets the largest
/// magnitudes of w1 and of m1, v1 as float bit patterns with the sign cleared.
void unroll_adam_update(long n, const float *w0, const float *g, const float *m0, const float *v0,
                        float b1, float c1, float b2, float c2, float step, float bc2_sqrt, float eps,
                        float *w1, float *m1, float *v1, unsigned *largest_weight, unsigned *largest_state);

/// One SGD step into new arrays, element by element: g ← g + decay·w0 when decay ≠ 0; without a buffer
/// b1 (no momentum) w1 = w0 + neg_lr·g; else b1 = momentum·b0 + g (b1 = g when b0 is null, the first step)
/// and w1 = (w0 + neg_lr·g) + neg_lr_momentum·b1 (Nesterov) or w0 + neg_lr·b1. Sets the largest
/// magnitudes of w1 and b1 as `unroll_adam_update` does.
void unroll_sgd_update(long n, const float *w0, const float *g0, const float *b0, float decay, float momentum,
                       bool nesterov, float neg_lr, float neg_lr_momentum, float *w1, float *b1,
                       unsigned *largest_weight, unsigned *largest_state);

/// Rows row0 ..< row1 of a non-local means (see NonLocalMeans.c) of a `width`-wide image given reflect-padded by
/// r = d + f on every side (rows of width + 2r): out[i·width + j] = Σ_o w·u(i, j + o) / Σ_o w over the offsets
/// o ∈ [−d, d]², w = exp(−scale·Σ_patch (u(p + k) − u(p + o + k))²) over the (2f+1)² patch k. `scratch` holds
/// (2(row1 − row0) + 2f)(width + 2f) + (2(row1 − row0) + 1)·width floats.
void unroll_nonlocal_means_rows(const float *padded, long width, int f, int d, float scale,
                                long row0, long row1, float *out, float *scratch);
/// The exponential the weights use, for x ≤ 0 (tests).
float unroll_nonlocal_exp(float x);

/// BM3D's groups (see CollaborativeFilter.c) for the reference patches at rows ref_rows[0 ..< rows] (ascending, at
/// most 4 apart) × columns ref_cols[0 ..< cols] of a height × width noisy image: reference r = i·cols + j gets
/// count[r] (a power of two) patches, at offsets (row·width + column) where[r·group ..< r·group + count[r]], the
/// reference first; squared distances over the 8×8 patch ≤ tau; `group` ≤ 32. `scratch` holds
/// unroll_collaborative_scratch(rows, cols, width, group) bytes.
void unroll_collaborative_match(const float *image, long height, long width, const int32_t *ref_rows, long rows,
                                const int32_t *ref_cols, long cols, int radius, int group, float tau, int32_t *where,
                                int32_t *count, void *scratch);
/// BM3D's first step (pilot NULL: coefficients below `threshold` zeroed) or second (the pilot's Wiener factors
/// with noise `threshold`) on `references` groups from unroll_collaborative_match: each adds its weighted patches
/// to num and its weights to den, both [·, width] with row 0 at image row out_row0.
void unroll_collaborative_filter(const float *image, const float *pilot, long width, const int32_t *where,
                                 const int32_t *count, long references, int group, float threshold, float *num,
                                 float *den, long out_row0);
long unroll_collaborative_scratch(long rows, long cols, long width, int group);

/// One part of a parallel region.
typedef void (*unroll_part_fn)(void *context, long part);
/// Runs fn(context, 0) … fn(context, parts − 1) on the calling thread and up to threads − 1 persistent
/// helper threads, and returns true once every part has finished. Returns false, running nothing, while
/// another region runs (see WorkerPool.c).
bool unroll_pool_run(long parts, long threads, unroll_part_fn fn, void *context);

#endif
