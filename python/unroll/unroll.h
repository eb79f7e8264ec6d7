/* The C ABI of the Unroll library (libUnrollC): dense unrolled dictionary learning and 2-D
 * convolutional denoising (PUDLE), spike sorting (CRsAE, 1-D), and encoding with variational
 * sparse-coding models read from files.
 *
 * Every function that can fail returns 0 on success and -1 on failure and never aborts on bad
 * input; unroll_last_error() then gives the calling thread's message. Arrays are float32 in C order,
 * samples as rows; the caller owns every buffer (outputs are written into buffers it allocated with
 * the sizes the shape functions report). Settings are a JSON object with scikit-learn's parameter
 * names: n_components, n_layers, lam, gradient ("ae-ls" | "ae-lasso" | "dec"), threshold ("soft" |
 * "hard" | "nonneg"), lambda_decay ({"decrement": d, "every": n} or null), encoder ("ista" |
 * "fista"), step (α, or null for 1/L), batch_size (null: all), max_iter (epochs), learning_rate,
 * random_state, n_jobs.
 */
#ifndef UNROLL_H
#define UNROLL_H
#include <stdint.h>

typedef struct unroll_model unroll_model;

const char *unroll_version(void);
const char *unroll_last_error(void);

int unroll_dense_create(const char *settings_json, unroll_model **out);
int unroll_load(const char *path, const char *settings_json /* may be NULL */, unroll_model **out);
void unroll_free(unroll_model *model);

/* partial = 0: fit afresh for max_iter epochs; 1: one more epoch over x, continuing the optimizer. */
int unroll_fit(unroll_model *model, const float *x, int64_t n, int64_t m, int32_t partial);
int unroll_transform(unroll_model *model, const float *x, int64_t n, int64_t m, float *codes /* [n, p] */);
/* The exact lasso codes at the model's λ (soft threshold, one λ, no decay): the limit of unroll_transform's layers. */
int unroll_transform_exact(unroll_model *model, const float *x, int64_t n, int64_t m, float *codes /* [n, p] */);
int unroll_inverse_transform(unroll_model *model, const float *codes, int64_t n, int64_t p, float *x /* [n, m] */);

int unroll_shape(unroll_model *model, int64_t *p, int64_t *m);
int unroll_dictionary(unroll_model *model, float *out /* [p, m], atoms as rows */);
int unroll_set_dictionary(unroll_model *model, const float *dictionary, int64_t p, int64_t m);
int unroll_progress(unroll_model *model, int64_t *steps, int64_t *epochs, int64_t *losses);
int unroll_losses(unroll_model *model, double *out);
int unroll_save(unroll_model *model, const char *path);
const char *unroll_kind(unroll_model *model);  /* "dense", "conv2d", "conv1d", "vsc-linear" or "vsc-conv" */
/* The weights' shape (dense [p, m], conv2d [C, 1, K, K], conv1d [C, channels, K], vsc-linear
 * [latents, pixels]); rank 0 before fitting and for vsc-conv. shape has room for 4. */
int unroll_weights_shape(unroll_model *model, int64_t *shape, int64_t *rank);
/* The encoder's threshold per atom (conv1d: the penalty λ_c σ²); out may be NULL to get the count. */
int unroll_lambdas(unroll_model *model, float *out, int64_t *count);

/* 2-D convolutional denoising (PUDLE's CAE). Settings: n_filters, kernel_size, stride, n_layers, lam,
 * gradient, threshold, encoder, step, crop_size, sigma, batch_size, max_iter (steps), learning_rate,
 * target ("clean" | "noisy"), flips, random_state, n_jobs. unroll_load reads every kind of model file. */
int unroll_conv2d_create(const char *settings_json, unroll_model **out);
int unroll_fit_images(unroll_model *model, const float *pixels, const int64_t *heights, const int64_t *widths, int64_t count);
/* sigma: the image's noise level, for which a noise-adaptive model sets its thresholds (<= 0: estimated
 * from the image); other models ignore it. */
int unroll_denoise(unroll_model *model, const float *image, int64_t height, int64_t width, float sigma, float *out);
/* A noise-adaptive model's reference σ (its thresholds are set for it and scale with the input's σ); 0
 * for a model of one σ. */
int unroll_noise_reference(unroll_model *model, float *sigma);
/* The model's last denoising stage, a non-local means of its estimate with weights of width h = strength·σ
 * over patch×patch patches in a window×window window (odd sides); all 0 when it has none. Setting
 * strength 0 removes it; a stage needs a noise-adaptive (or EM) model, which knows σ. */
int unroll_non_local(unroll_model *model, float *strength, int64_t *patch, int64_t *window);
int unroll_set_non_local(unroll_model *model, float strength, int64_t patch, int64_t window);
int unroll_collaborative(unroll_model *model, float *weight, float *threshold, float *wiener, float *wiener_threshold);
int unroll_set_collaborative(unroll_model *model, float weight, float threshold, float wiener, float wiener_threshold);

/* 1-D convolutional spike sorting (CRsAE). Settings: n_neurons, filter_length (null: 2.5 ms),
 * sampling_rate, n_layers, max_iter (epochs), batch_size, learning_rate, lr_decay, window,
 * refine_epochs, refine_layers, refine_learning_rate, prior_rate, crossing, non_negative,
 * random_state, n_jobs (defaults: `unroll spikes train`'s). Recordings are [samples, channels]. */
int unroll_conv1d_create(const char *settings_json, unroll_model **out);
int unroll_fit_recording(unroll_model *model, const float *signal, int64_t samples, int64_t channels);
/* Encodes in chunks of `chunk` samples, detects each neuron's spikes; count = detections kept. */
int unroll_sort(unroll_model *model, const float *signal, int64_t samples, int64_t channels, int64_t chunk, int64_t *count);
int unroll_sorted(unroll_model *model, int64_t *neurons, int64_t *times, float *heights /* [count] each, by time */);
/* Variational sparse coding (models from files): codes and reconstructions of rows x, each code the
 * one the model's aggregation picks among `samples` draws (0: the model's count) seeded by `seed`. */
int unroll_vsc_encode(unroll_model *model, const float *x, int64_t n, int64_t m, int64_t samples, uint64_t seed,
                      float *codes /* [n, latents] */, float *reconstruction /* [n, pixels] */);
/* PNG images as gray levels in [0, 1] (the reader the CLI uses: 8/16-bit, gray, RGB(A), palette;
 * RGB as luma). unroll_read_png with out = NULL gives the size only. */
int unroll_read_png(const char *path, float *out /* [height, width] */, int64_t *height, int64_t *width);
int unroll_write_png(const char *path, const float *image, int64_t height, int64_t width);
#endif
