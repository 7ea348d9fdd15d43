#include "CKernels.h"

// Decode-time attention and SwiGLU in AVX-512. The portable versions are the Swift kernels
// `Kernels.cachedAttention` and `Kernels.swiGLU`, which these are tested against.

#if defined(__x86_64__)
#include <immintrin.h>

#define CK_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

// e^x, 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r from Cephes' degree-6 polynomial, then
// scaled by 2^n with scalef, which gives 0 below the float range instead of garbage.
static inline CK_AVX512 __attribute__((always_inline)) __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

static inline __mmask16 tail_mask(int remaining) {
    return remaining >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << remaining) - 1);
}

CK_AVX512 void ck_cached_attention(int rows, int cached, int heads, int key_heads, int d, float scale, const float *query, const float *keys, const float *values, float *scores, float *out) {
    const int group = heads / key_heads, chunks = d / 16;
    const ptrdiff_t cache_row = (ptrdiff_t)key_heads * d;
    for (int i = 0; i < rows; i++) {
        const int visible = cached + i + 1;
        const float *q = query + (ptrdiff_t)i * heads * d;
        float *o = out + (ptrdiff_t)i * heads * d;
        // Scores (heads, visible): one key row (all key heads) at a time, read front to back.
        for (int j = 0; j < visible; j++) {
            const float *key_row = keys + j * cache_row;
            for (int h = 0; h < heads; h++) {
                const float *k = key_row + (h / group) * d, *qh = q + h * d;
                __m512 sum = _mm512_mul_ps(_mm512_loadu_ps(qh), _mm512_loadu_ps(k));
                for (int c = 1; c < chunks; c++) sum = _mm512_fmadd_ps(_mm512_loadu_ps(qh + 16 * c), _mm512_loadu_ps(k + 16 * c), sum);
                scores[(ptrdiff_t)h * visible + j] = scale * _mm512_reduce_add_ps(sum);
            }
        }
        // Softmax per head.
        for (int h = 0; h < heads; h++) {
            float *row = scores + (ptrdiff_t)h * visible;
            __m512 peak = _mm512_set1_ps(-__builtin_inff());
            for (int j = 0; j < visible; j += 16) peak = _mm512_max_ps(peak, _mm512_mask_loadu_ps(peak, tail_mask(visible - j), row + j));
            __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(peak));
            __m512 total = _mm512_setzero_ps();
            for (int j = 0; j < visible; j += 16) {
                __mmask16 mask = tail_mask(visible - j);
                __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + j), shift));
                e = _mm512_maskz_mov_ps(mask, e);
                total = _mm512_add_ps(total, e);
                _mm512_mask_storeu_ps(row + j, mask, e);
            }
            __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
            for (int j = 0; j < visible; j += 16) {
                __mmask16 mask = tail_mask(visible - j);
                _mm512_mask_storeu_ps(row + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + j), inverse));
            }
        }
        // Output: Σ_j p[h][j] · value[j], in key order, accumulated in place.
        for (int x = 0; x < heads * d; x += 16) _mm512_storeu_ps(o + x, _mm512_setzero_ps());
        for (int j = 0; j < visible; j++) {
            const float *value_row = values + j * cache_row;
            for (int h = 0; h < heads; h++) {
                const float *v = value_row + (h / group) * d;
                float *oh = o + h * d;
                __m512 p = _mm512_set1_ps(scores[(ptrdiff_t)h * visible + j]);
                for (int c = 0; c < chunks; c++) _mm512_storeu_ps(oh + 16 * c, _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16 * c), _mm512_loadu_ps(oh + 16 * c)));
            }
        }
    }
}

CK_AVX512 void ck_swiglu(int rows, int f, const float *input, float *out) {
    for (int i = 0; i < rows; i++) {
        const float *gate = input + (ptrdiff_t)i * 2 * f, *up = gate + f;
        float *o = out + (ptrdiff_t)i * f;
        for (int j = 0; j < f; j += 16) {
            __mmask16 mask = tail_mask(f - j);
            __m512 g = _mm512_maskz_loadu_ps(mask, gate + j);
            // silu(g) = g / (1 + e^-g)
            __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
            _mm512_mask_storeu_ps(o + j, mask, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(mask, up + j)));
        }
    }
}
#else
void ck_cached_attention(int rows, int cached, int heads, int key_heads, int d, float scale, const float *query, const float *keys, const float *values, float *scores, float *out) {
    (void)rows; (void)cached; (void)heads; (void)key_heads; (void)d; (void)scale; (void)query; (void)keys; (void)values; (void)scores; (void)out;
    __builtin_trap();  // callers check ck_has_avx512() first
}
void ck_swiglu(int rows, int f, const float *input, float *out) {
    (void)rows; (void)f; (void)input; (void)out;
    __builtin_trap();
}
#endif
