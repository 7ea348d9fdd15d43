// Vector helpers shared by the AVX-512 kernels (a private header of CKernels, x86-64 only): the
// exponential and sigmoid that the attention, SwiGLU and packed-GEMM kernels must compute
// identically, so that decoding's fused SwiGLU gives the same bits as the training kernel.
#ifndef CKERNELS_VECTOR_H
#define CKERNELS_VECTOR_H

#include <immintrin.h>

#define CK_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

// e^x, 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r from Cephes' degree-6 polynomial, then
// scaled by 2^n with scalef, which gives 0 below the float range and +∞ above it (the clamp
// only keeps n representable).
static inline CK_AVX512 __attribute__((always_inline)) __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(100.0f));
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

// The lanes of a 16-lane vector that hold one of `remaining` elements: all 16 from 16 on, none
// at 0 or below (the upper half of a 32-column chunk narrower than 16).
static inline __mmask16 tail_mask(int remaining) {
    if (remaining >= 16) return (__mmask16)0xFFFF;
    return remaining > 0 ? (__mmask16)((1u << remaining) - 1) : (__mmask16)0;
}

// A softmax's exponentials: x[i] = e^(x[i] − shift) in place for i < n; returns the 16 lane
// sums (lanes past n add 0). The decode and training attention kernels share it, so their
// probabilities come from the same arithmetic.
static inline CK_AVX512 __attribute__((always_inline)) __m512 exp_shifted_in_place(float *x, int n, __m512 shift) {
    __m512 total = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 mask = tail_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(mask, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), shift)));
        total = _mm512_add_ps(total, e);
        _mm512_mask_storeu_ps(x + i, mask, e);
    }
    return total;
}

// σ(g) = 1 / (1 + e^−g), exactly 0 once e^−g overflows (g below about −88.7).
static inline CK_AVX512 __attribute__((always_inline)) __m512 sigmoid16(__m512 g) {
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

// 16 × 16 transpose of 32-bit elements in place (the AMX and blocked GEMMs' packing).
static inline CK_AVX512 __attribute__((always_inline)) void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + c], 128-bit lane L: rows 4i ..< 4i + 4 of column 4L + c.
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
    }
}

#endif
