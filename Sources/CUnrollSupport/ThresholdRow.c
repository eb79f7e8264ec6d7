// `Threshold.applyRow`: one code row's threshold and the indices of its non-zeros, the inner step of every
// dense unrolled layer. The lane maps are selections by comparison and one subtraction, so every width gives
// the same bits; AVX-512 compresses the indices in a register, the others eight lanes at a time, indices
// collected only from blocks with a non-zero (a row that is 99 % zeros costs one comparison per block).
// Picked once by the CPU's features.
#include "CUnrollSupport.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define UNROLL_X86 1
#endif

typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef int v8i __attribute__((vector_size(32), aligned(4)));

// m ? a : b lane by lane (m all ones or all zeros, as comparisons give). Macros, not functions: a 32-byte
// vector argument would change the calling convention between the clones.
#define SELECT8(m, a, b) ((v8f)(((m) & (v8i)(a)) | (~(m) & (v8i)(b))))

// kind: 0 soft x − clamp(x, −t, t), 1 non-negative max(x − t, 0), 2 hard x·1{|x| > t}.
#define LANES8(kind, x, t, y) do {                                   \
        const v8f zero_ = {0};                                         \
        if ((kind) == 0) {                                             \
            v8f c_ = SELECT8((x) > (t), t, x);                         \
            c_ = SELECT8((x) < -(t), -(t), c_);                        \
            (y) = (x) - c_;                                            \
        } else if ((kind) == 1) {                                      \
            const v8f d_ = (x) - (t);                                  \
            (y) = SELECT8(d_ < zero_, zero_, d_);                      \
        } else {                                                       \
            (y) = SELECT8(((x) > (t)) | ((x) < -(t)), x, zero_);       \
        }                                                              \
    } while (0)

// Always inlined, so that the AVX2 entry below compiles it for AVX2 (called, it would run this baseline copy).
static inline __attribute__((always_inline)) long rows8(int kind, long n, const float *v, const float *b, float *z,
                                                        int32_t *support) {
    long c = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        v8f x, t;
        __builtin_memcpy(&x, v + j, sizeof x);
        __builtin_memcpy(&t, b + j, sizeof t);
        v8f y;
        LANES8(kind, x, t, y);
        __builtin_memcpy(z + j, &y, sizeof y);
        const v8i nonzero = y != (v8f){0} | y != y;   // NaN counts as a non-zero
        if (nonzero[0] | nonzero[1] | nonzero[2] | nonzero[3] | nonzero[4] | nonzero[5] | nonzero[6] | nonzero[7]) {
            // Branch-free within the block: always write the index, advance when the bits are not ±0.
            for (int l = 0; l < 8; l++) {
                uint32_t bits;
                __builtin_memcpy(&bits, z + j + l, sizeof bits);
                support[c] = (int32_t)(j + l);
                c += ((bits & 0x7fffffffu) + 0x7fffffffu) >> 31;
            }
        }
    }
    for (; j < n; j++) {
        v8f x = {v[j]}, t = {b[j]}, y;
        LANES8(kind, x, t, y);
        z[j] = y[0];
        if (z[j] != 0 || z[j] != z[j]) support[c++] = (int32_t)j;
    }
    return c;
}

#ifdef UNROLL_X86
// The eight lanes in one AVX2 register.
__attribute__((target("avx2"))) static long rows_avx2(int kind, long n, const float *v, const float *b, float *z, int32_t *support) {
    return rows8(kind, n, v, b, z, support);
}

// Sixteen lanes, the row's end by masked loads and stores.
__attribute__((target("avx512f"))) static long rows_avx512(int kind, long n, const float *v, const float *b, float *z,
                                                         int32_t *support) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    long c = 0;
    for (long j = 0; j < n; j += 16) {
        const __mmask16 in = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(in, v + j), t = _mm512_maskz_loadu_ps(in, b + j);
        const __m512 minus_t = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(t), sign));
        const __mmask16 above = _mm512_cmp_ps_mask(x, t, _CMP_GT_OQ), below = _mm512_cmp_ps_mask(x, minus_t, _CMP_LT_OQ);
        __m512 y;
        if (kind == 0) {
            const __m512 clamped = _mm512_mask_blend_ps(below, _mm512_mask_blend_ps(above, x, t), minus_t);
            y = _mm512_sub_ps(x, clamped);
        } else if (kind == 1) {
            const __m512 d = _mm512_sub_ps(x, t);
            y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(d, zero, _CMP_LT_OQ), d, zero);
        } else {
            y = _mm512_maskz_mov_ps(above | below, x);
        }
        _mm512_mask_storeu_ps(z + j, in, y);
        const __mmask16 nonzero = _mm512_cmp_ps_mask(y, zero, _CMP_NEQ_UQ) & in;
        if (nonzero) {
            // Compressed in a register, then a masked store of the leading lanes: a compress straight to
            // memory is microcoded on some CPUs (AMD's Zen 4 among them) and was the loop's slowest step.
            const int count = __builtin_popcount(nonzero);
            _mm512_mask_storeu_epi32(support + c, (__mmask16)((1u << count) - 1), _mm512_maskz_compress_epi32(nonzero, index));
            c += count;
        }
        index = _mm512_add_epi32(index, sixteen);
    }
    return c;
}
#endif

typedef long (*threshold_fn)(int, long, const float *, const float *, float *, int32_t *);

static threshold_fn pick(void) {
#ifdef UNROLL_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return rows_avx512;
    if (__builtin_cpu_supports("avx2")) return rows_avx2;
#endif
    return rows8;
}

long unroll_threshold_row(int kind, long n, const float *v, const float *b, float *z, int32_t *support) {
    static threshold_fn chosen;   // benign race: every thread computes the same pointer
    threshold_fn f = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (!f) {
        f = pick();
        __atomic_store_n(&chosen, f, __ATOMIC_RELAXED);
    }
    return f(kind, n, v, b, z, support);
}
