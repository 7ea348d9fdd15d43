#include "CKernels.h"

// Attention over KV caches, and SwiGLU's forward (training, and decode row by row on its fused
// gate/up layout) and backward, in AVX-512. The portable versions are the Swift kernels `Kernels.cachedAttention`
// and `Kernels.swiGLU`/`swiGLUBackward`, which these are tested against.

#if defined(__x86_64__)
#include "Vector.h"

// Sixteen vectors to the vector of their sums (lane i = Σ v[i]): 15 adds and 30 shuffles where
// sixteen separate horizontal sums take about 128 instructions.
static inline CK_AVX512 __attribute__((always_inline)) __m512 sum16(const __m512 *v) {
    __m512 t[8], u[4];
    for (int i = 0; i < 8; i++) t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512 c = t[2 * i], d = t[2 * i + 1];
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(c, d, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(c, d, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    // u[i]'s 128-bit lane L holds lane L's sums of v[4i ..< 4i + 4]; add the four lanes.
    __m512 x0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 x1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// One query row, one head, head dimension 16·C (C constant after inlining): scores against
// `visible` key rows (stride `row`), softmax, and the probability-weighted sum of value rows.
// The query and the output accumulate in registers; keys are taken sixteen at a time.
static inline CK_AVX512 __attribute__((always_inline)) void attend_head(const int C, int visible, float scale, const float *q, const float *keys, const float *values, ptrdiff_t row, float *scores, float *out) {
    __m512 query[8], acc[8];
    for (int c = 0; c < C; c++) query[c] = _mm512_mul_ps(_mm512_loadu_ps(q + 16 * c), _mm512_set1_ps(scale));
    __m512 peak = _mm512_set1_ps(-__builtin_inff());
    int j = 0;
    for (; j + 16 <= visible; j += 16) {
        __m512 dots[16];
        for (int x = 0; x < 16; x++) {
            const float *k = keys + (j + x) * row;
            __m512 sum = _mm512_mul_ps(query[0], _mm512_loadu_ps(k));
            for (int c = 1; c < C; c++) sum = _mm512_fmadd_ps(query[c], _mm512_loadu_ps(k + 16 * c), sum);
            dots[x] = sum;
        }
        __m512 block = sum16(dots);
        peak = _mm512_max_ps(peak, block);
        _mm512_storeu_ps(scores + j, block);
    }
    for (; j < visible; j++) {
        const float *k = keys + j * row;
        __m512 sum = _mm512_mul_ps(query[0], _mm512_loadu_ps(k));
        for (int c = 1; c < C; c++) sum = _mm512_fmadd_ps(query[c], _mm512_loadu_ps(k + 16 * c), sum);
        scores[j] = _mm512_reduce_add_ps(sum);
    }
    for (int i = visible & ~15; i < visible; i += 16) peak = _mm512_max_ps(peak, _mm512_mask_loadu_ps(peak, tail_mask(visible - i), scores + i));
    __m512 total = exp_shifted_in_place(scores, visible, _mm512_set1_ps(_mm512_reduce_max_ps(peak)));
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
    for (int i = 0; i < visible; i++) {
        const float *v = values + i * row;
        __m512 p = _mm512_set1_ps(scores[i]);
        for (int c = 0; c < C; c++) acc[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16 * c), acc[c]);
    }
    __m512 inverse = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(total));
    for (int c = 0; c < C; c++) _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(acc[c], inverse));
}

#define CK_ATTEND_CASE(C) case C: attend_head(C, visible, scale, qh, keys + kv, values + kv, row, scores, out + (ptrdiff_t)i * heads * d + h * d); break;

CK_AVX512 void ck_cached_attention(int rows, int cached, int heads, int key_heads, int d, float scale, const float *query, const float *keys, const float *values, float *scores, float *out) {
    const int group = heads / key_heads;
    const ptrdiff_t row = (ptrdiff_t)key_heads * d;
    for (int i = 0; i < rows; i++) {
        const int visible = cached + i + 1;
        for (int h = 0; h < heads; h++) {
            const float *qh = query + (ptrdiff_t)i * heads * d + h * d;
            const ptrdiff_t kv = (ptrdiff_t)(h / group) * d;
            switch (d / 16) {
                CK_ATTEND_CASE(1) CK_ATTEND_CASE(2) CK_ATTEND_CASE(3) CK_ATTEND_CASE(4)
                CK_ATTEND_CASE(5) CK_ATTEND_CASE(6) CK_ATTEND_CASE(7) CK_ATTEND_CASE(8)
            }
        }
    }
}

// Rotate-half RoPE of one head: y[i] = a·c − b·s, y[i + half] = b·c + a·s with a = x[i],
// b = x[i + half], products rounded before the sum as in the Swift kernel, so the bits match.
static inline CK_AVX512 __attribute__((always_inline)) void rotate_head(int half, const float *x, const float *c, const float *s, float *y) {
    for (int i = 0; i < half; i += 16) {
        __mmask16 mask = tail_mask(half - i);
        __m512 a = _mm512_maskz_loadu_ps(mask, x + i), b = _mm512_maskz_loadu_ps(mask, x + half + i);
        __m512 cv = _mm512_maskz_loadu_ps(mask, c + i), sv = _mm512_maskz_loadu_ps(mask, s + i);
        _mm512_mask_storeu_ps(y + i, mask, _mm512_sub_ps(_mm512_mul_ps(a, cv), _mm512_mul_ps(b, sv)));
        _mm512_mask_storeu_ps(y + half + i, mask, _mm512_add_ps(_mm512_mul_ps(b, cv), _mm512_mul_ps(a, sv)));
    }
}

CK_AVX512 void ck_rotary_append_row(int heads, int key_heads, int d, const float *source, const float *cosine, const float *sine, float *query, float *keys, float *values) {
    const int half = d / 2;
    for (int h = 0; h < heads; h++) rotate_head(half, source + h * d, cosine, sine, query + h * d);
    for (int h = 0; h < key_heads; h++) rotate_head(half, source + (heads + h) * d, cosine, sine, keys + h * d);
    const float *v = source + (heads + key_heads) * d;
    for (int i = 0; i < key_heads * d; i += 16) {
        __mmask16 mask = tail_mask(key_heads * d - i);
        _mm512_mask_storeu_ps(values + i, mask, _mm512_maskz_loadu_ps(mask, v + i));
    }
}

CK_AVX512 void ck_swiglu_forward(ptrdiff_t n, const float *gate, const float *up, float *out) {
    for (ptrdiff_t i = 0; i < n; i += 16) {
        __mmask16 mask = tail_mask((int)(n - i < 16 ? n - i : 16));
        __m512 g = _mm512_maskz_loadu_ps(mask, gate + i), u = _mm512_maskz_loadu_ps(mask, up + i);
        _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid16(g)), u));
    }
}

CK_AVX512 void ck_swiglu_backward(ptrdiff_t n, const float *gate, const float *up, const float *dy, float *dgate, float *dup) {
    __m512 one = _mm512_set1_ps(1.0f);
    for (ptrdiff_t i = 0; i < n; i += 16) {
        __mmask16 mask = tail_mask((int)(n - i < 16 ? n - i : 16));
        __m512 g = _mm512_maskz_loadu_ps(mask, gate + i), u = _mm512_maskz_loadu_ps(mask, up + i), d = _mm512_maskz_loadu_ps(mask, dy + i);
        __m512 s = sigmoid16(g);
        __m512 slope = _mm512_fmadd_ps(g, _mm512_sub_ps(one, s), one);  // 1 + g(1 − s)
        _mm512_mask_storeu_ps(dgate + i, mask, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, u), s), slope));
        _mm512_mask_storeu_ps(dup + i, mask, _mm512_mul_ps(_mm512_mul_ps(d, g), s));
    }
}
#else
void ck_rotary_append_row(int heads, int key_heads, int d, const float *source, const float *cosine, const float *sine, float *query, float *keys, float *values) {
    (void)heads; (void)key_heads; (void)d; (void)source; (void)cosine; (void)sine; (void)query; (void)keys; (void)values;
    __builtin_trap();
}
void ck_swiglu_forward(ptrdiff_t n, const float *gate, const float *up, float *out) {
    (void)n; (void)gate; (void)up; (void)out;
    __builtin_trap();
}
void ck_swiglu_backward(ptrdiff_t n, const float *gate, const float *up, const float *dy, float *dgate, float *dup) {
    (void)n; (void)gate; (void)up; (void)dy; (void)dgate; (void)dup;
    __builtin_trap();
}
void ck_cached_attention(int rows, int cached, int heads, int key_heads, int d, float scale, const float *query, const float *keys, const float *values, float *scores, float *out) {
    (void)rows; (void)cached; (void)heads; (void)key_heads; (void)d; (void)scale; (void)query; (void)keys; (void)values; (void)scores; (void)out;
    __builtin_trap();  // callers check ck_has_avx512() first
}
#endif
