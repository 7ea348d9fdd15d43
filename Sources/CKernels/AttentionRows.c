#include "CKernels.h"

// The row passes of training attention between its BLAS products, in AVX-512: the causal softmax
// of a block's score rows in the forward, and the softmax gradient in the backward. Their
// portable versions are the Swift loops in `Kernels.attention` and `attentionBackward`, which
// these are tested against. Sums run in 16 lanes added in a fixed order, so a row's result does
// not depend on which thread computes it.

#if defined(__x86_64__)
#include "Vector.h"

CK_AVX512 void ck_attention_softmax_row(int visible, int width, float *row) {
    __m512 peak = _mm512_set1_ps(-__builtin_inff());
    for (int j = 0; j < visible; j += 16) peak = _mm512_max_ps(peak, _mm512_mask_loadu_ps(peak, tail_mask(visible - j), row + j));
    const __m512 total = exp_shifted_in_place(row, visible, _mm512_set1_ps(_mm512_reduce_max_ps(peak)));
    const __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
    for (int j = 0; j < visible; j += 16) {
        __mmask16 mask = tail_mask(visible - j);
        _mm512_mask_storeu_ps(row + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + j), inverse));
    }
    for (int j = visible; j < width; j += 16) _mm512_mask_storeu_ps(row + j, tail_mask(width - j), _mm512_setzero_ps());
}

CK_AVX512 void ck_attention_softmax_backward_row(int n, const float *p, float *ds) {
    __m512 dot = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
        __mmask16 mask = tail_mask(n - j);
        dot = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, p + j), _mm512_maskz_loadu_ps(mask, ds + j), dot);
    }
    const __m512 total = _mm512_set1_ps(_mm512_reduce_add_ps(dot));
    for (int j = 0; j < n; j += 16) {
        __mmask16 mask = tail_mask(n - j);
        __m512 s = _mm512_maskz_loadu_ps(mask, ds + j);
        _mm512_mask_storeu_ps(ds + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, p + j), _mm512_sub_ps(s, total)));
    }
}
#else
void ck_attention_softmax_row(int visible, int width, float *row) {
    (void)visible; (void)width; (void)row;
    __builtin_trap();  // callers check ck_has_avx512() first
}
void ck_attention_softmax_backward_row(int n, const float *p, float *ds) {
    (void)n; (void)p; (void)ds;
    __builtin_trap();
}
#endif
