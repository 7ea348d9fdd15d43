#include "CKernels.h"

// Float32 passes of a train step between its products, in AVX-512: AdamW, and RMSNorm forward
// and backward. Their portable versions are the Swift loops in `Kernels.adamW`,
// `Kernels.rmsNorm` and `Kernels.rmsNormBackward`, which the Swift targets compile for baseline
// x86-64 (4-wide SSE, no FMA). These kernels do the same operations in the same order, each
// product rounded before it is added, so their results have the same bits; only the speed
// differs. Release build, two threads, in one process:
// - AdamW over the base config's 3.55 M parameters: 6.8 ms in Swift, 2.3 ms here (one thread:
//   19.8 and 5.3 ms). The square root and division ran 4 wide.
// - RMSNorm of 4096 × 256: 0.56 and 0.47 ms; its backward, adding into dx: 1.02 and 0.75 ms.
//   Both are near the memory's speed either way.
// The rotary embedding, written the same way, ran no faster than its Swift loop (0.48 ms for
// one 16 × 256 × 4 × 64 tensor either way) and is not here.

#if defined(__x86_64__)
#include "Vector.h"

// Products are rounded before they are summed, as in Swift: no fused multiply-adds.
#pragma clang fp contract(off)

CK_AVX512 void ck_adamw(ptrdiff_t n, float *parameter, const float *gradient, float *first, float *second, const ck_adamw_scalars *s) {
    const __m512 decay = _mm512_set1_ps(s->decay_factor), beta1 = _mm512_set1_ps(s->beta1), beta2 = _mm512_set1_ps(s->beta2);
    const __m512 rest1 = _mm512_set1_ps(s->one_minus_beta1), rest2 = _mm512_set1_ps(s->one_minus_beta2);
    const __m512 step = _mm512_set1_ps(s->step_size), root = _mm512_set1_ps(s->inverse_root_correction2), epsilon = _mm512_set1_ps(s->epsilon);
    for (ptrdiff_t i = 0; i < n; i += 16) {
        const __mmask16 mask = tail_mask((int)(n - i < 16 ? n - i : 16));
        const __m512 g = _mm512_maskz_loadu_ps(mask, gradient + i);
        const __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, parameter + i), decay);
        const __m512 m = _mm512_add_ps(_mm512_mul_ps(beta1, _mm512_maskz_loadu_ps(mask, first + i)), _mm512_mul_ps(rest1, g));
        const __m512 v = _mm512_add_ps(_mm512_mul_ps(beta2, _mm512_maskz_loadu_ps(mask, second + i)), _mm512_mul_ps(_mm512_mul_ps(rest2, g), g));
        const __m512 denominator = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(v), root), epsilon);
        _mm512_mask_storeu_ps(parameter + i, mask, _mm512_sub_ps(p, _mm512_div_ps(_mm512_mul_ps(step, m), denominator)));
        _mm512_mask_storeu_ps(first + i, mask, m);
        _mm512_mask_storeu_ps(second + i, mask, v);
    }
}

// The Swift kernels' `dot` (weighted: Σ a·b·c, each (a·b)·c) over n floats: two 8-lane sums over
// whole 16-float chunks (lanes 0–7 and 8–15 of one 16-lane sum here), added lane by lane, their
// eight lanes added in order, then the tail's sum added.
static inline CK_AVX512 __attribute__((always_inline)) float swift_dot(int n, const float *a, const float *b, const float *c) {
    __m512 lanes = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 term = _mm512_mul_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        if (c) term = _mm512_mul_ps(term, _mm512_loadu_ps(c + i));
        lanes = _mm512_add_ps(lanes, term);
    }
    float halves[8];
    _mm256_storeu_ps(halves, _mm256_add_ps(_mm512_castps512_ps256(lanes), _mm512_extractf32x8_ps(lanes, 1)));
    float sum = -0.0f;
    for (int j = 0; j < 8; j++) sum += halves[j];
    float tail = 0;
    for (; i < n; i++) tail += c ? a[i] * b[i] * c[i] : a[i] * b[i];
    return sum + tail;
}

CK_AVX512 float ck_rmsnorm_row(int n, const float *x, const float *weight, float epsilon, float *y) {
    const float inverse = 1.0f / __builtin_sqrtf(swift_dot(n, x, x, NULL) / (float)n + epsilon);
    const __m512 r = _mm512_set1_ps(inverse);
    for (int j = 0; j < n; j += 16) {
        const __mmask16 mask = tail_mask(n - j);
        _mm512_mask_storeu_ps(y + j, mask, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + j), r), _mm512_maskz_loadu_ps(mask, weight + j)));
    }
    return inverse;
}

// dweight's term does not need the correction, so it goes in the same pass as dx, which reads x
// and dy once (the Swift loop makes a pass of its own for it; each element's bits are the same).
CK_AVX512 void ck_rmsnorm_backward_row(int n, const float *x, const float *weight, const float *dy, float inverse, int accumulate, float *dx, float *dweight) {
    const __m512 r = _mm512_set1_ps(inverse);
    const float correction = swift_dot(n, dy, weight, x) * inverse * inverse * inverse / (float)n;
    const __m512 k = _mm512_set1_ps(correction);
    for (int j = 0; j < n; j += 16) {
        const __mmask16 mask = tail_mask(n - j);
        const __m512 x_j = _mm512_maskz_loadu_ps(mask, x + j), dy_j = _mm512_maskz_loadu_ps(mask, dy + j);
        _mm512_mask_storeu_ps(dweight + j, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dweight + j), _mm512_mul_ps(_mm512_mul_ps(dy_j, x_j), r)));
        const __m512 scaled = _mm512_mul_ps(_mm512_mul_ps(r, _mm512_maskz_loadu_ps(mask, weight + j)), dy_j);
        __m512 value = _mm512_sub_ps(scaled, _mm512_mul_ps(x_j, k));
        if (accumulate) value = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dx + j), value);
        _mm512_mask_storeu_ps(dx + j, mask, value);
    }
}

#else
void ck_adamw(ptrdiff_t n, float *parameter, const float *gradient, float *first, float *second, const ck_adamw_scalars *s) {
    (void)n; (void)parameter; (void)gradient; (void)first; (void)second; (void)s;
    __builtin_trap();  // callers check ck_has_avx512() first
}
float ck_rmsnorm_row(int n, const float *x, const float *weight, float epsilon, float *y) {
    (void)n; (void)x; (void)weight; (void)epsilon; (void)y;
    __builtin_trap();
}
void ck_rmsnorm_backward_row(int n, const float *x, const float *weight, const float *dy, float inverse, int accumulate, float *dx, float *dweight) {
    (void)n; (void)x; (void)weight; (void)dy; (void)inverse; (void)accumulate; (void)dx; (void)dweight;
    __builtin_trap();
}
#endif
