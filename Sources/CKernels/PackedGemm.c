#include "CKernels.h"

// Few-row products against a packed right operand (a decode step: 16 sequences × a weight).
//
// The tile is 8 rows × 32 columns: 16 ZMM accumulators, two loads of the panel's row and eight
// broadcasts per step of k, so the loads feed the FMAs without stalling them. The panel of the
// right operand (k × 32 floats, 32 KiB at k = 256) stays in L1 while the row blocks pass over
// it, so each weight is streamed from memory once per call. Measured on the 2-core Sapphire
// Rapids reference machine, one thread, 16 × 768 × 256: about 80 GFLOPS against OpenBLAS's 45.
//
// A panel's first row block waits on memory: the 16 FMAs of a k step need its 128 bytes far
// faster than memory or the shared L3 deliver them. So the last row block of a panel, which
// reads the panel from L1, prefetches the next panel of the range into L2 (two lines per k
// step), and a first row block whose panel nobody prefetched prefetches its own rows 64 k steps
// ahead. The step's 16 GEMMs of a 16-row decode, replayed alone in C on one thread with a KV
// cache's worth of reads between rounds: 48 GFLOPS median without prefetching, 55 prefetching
// ahead, 58 prefetching the next panel (66, 70 and 72 without the reads between).
//
// The epilogue finishes each tile while it is still in registers: store it, add it to c (a
// residual connection), or, for a gate/up pair panel, store silu(gate) · up. Each product
// element is the same fused multiply-add chain in every epilogue, and the epilogues use the
// separate ops' arithmetic, so fusing changes no bits.

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

size_t ck_packed_pairs_count(int k, int f) {
    const int half = CK_PANEL_WIDTH / 2;
    return (size_t)((f + half - 1) / half) * (size_t)k * CK_PANEL_WIDTH;
}

void ck_pack_pair_panels(int k, int f, const float *b, ptrdiff_t ldb, float *packed) {
    const int half = CK_PANEL_WIDTH / 2;
    int panels = (f + half - 1) / half;
    for (int p = 0; p < panels; p++) {
        for (int row = 0; row < k; row++) {
            float *target = packed + ((ptrdiff_t)p * k + row) * CK_PANEL_WIDTH;
            for (int q = 0; q < half; q++) {
                int column = p * half + q;
                target[q] = column < f ? b[row * ldb + column] : 0.0f;
                target[half + q] = column < f ? b[row * ldb + f + column] : 0.0f;
            }
        }
    }
}

#if defined(__x86_64__)
#include "Vector.h"

// How a row block prefetches.
enum { PREFETCH_NONE = 0, PREFETCH_NEXT_PANEL = 1, PREFETCH_AHEAD = 2 };
enum { PREFETCH_DISTANCE = 64 };  // k steps, 8 KiB

// R (≤ 8) rows of a times one panel, finished by epilogue E, prefetching as PF says (R, E and PF
// are constants after inlining).
static inline CK_AVX512 __attribute__((always_inline)) void tile(int R, int E, int PF, int k, const float *a, ptrdiff_t lda, const float *panel, const float *next, float *c, ptrdiff_t ldc, __mmask16 mask0, __mmask16 mask1) {
    __m512 left[8], right[8];
    for (int r = 0; r < R; r++) {
        left[r] = _mm512_setzero_ps();
        right[r] = _mm512_setzero_ps();
    }
    for (int i = 0; i < k; i++) {
        if (PF == PREFETCH_NEXT_PANEL) {
            _mm_prefetch((const char *)(next + (ptrdiff_t)i * CK_PANEL_WIDTH), _MM_HINT_T1);
            _mm_prefetch((const char *)(next + (ptrdiff_t)i * CK_PANEL_WIDTH + 16), _MM_HINT_T1);
        } else if (PF == PREFETCH_AHEAD && i + PREFETCH_DISTANCE < k) {
            _mm_prefetch((const char *)(panel + (ptrdiff_t)(i + PREFETCH_DISTANCE) * CK_PANEL_WIDTH), _MM_HINT_T0);
            _mm_prefetch((const char *)(panel + (ptrdiff_t)(i + PREFETCH_DISTANCE) * CK_PANEL_WIDTH + 16), _MM_HINT_T0);
        }
        __m512 b0 = _mm512_loadu_ps(panel + (ptrdiff_t)i * CK_PANEL_WIDTH);
        __m512 b1 = _mm512_loadu_ps(panel + (ptrdiff_t)i * CK_PANEL_WIDTH + 16);
        for (int r = 0; r < R; r++) {
            __m512 x = _mm512_set1_ps(a[r * lda + i]);
            left[r] = _mm512_fmadd_ps(x, b0, left[r]);
            right[r] = _mm512_fmadd_ps(x, b1, right[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        float *row = c + r * ldc;
        switch (E) {
        case CK_EPILOGUE_STORE:
            _mm512_mask_storeu_ps(row, mask0, left[r]);
            _mm512_mask_storeu_ps(row + 16, mask1, right[r]);
            break;
        case CK_EPILOGUE_ADD:
            _mm512_mask_storeu_ps(row, mask0, _mm512_add_ps(_mm512_maskz_loadu_ps(mask0, row), left[r]));
            _mm512_mask_storeu_ps(row + 16, mask1, _mm512_add_ps(_mm512_maskz_loadu_ps(mask1, row + 16), right[r]));
            break;
        case CK_EPILOGUE_SWIGLU:  // left: 16 gate columns, right: the same 16 up columns
            _mm512_mask_storeu_ps(row, mask0, _mm512_mul_ps(_mm512_mul_ps(left[r], sigmoid16(left[r])), right[r]));
            break;
        }
    }
}

#define CK_TILE_CASE(R, E, PF) case R: tile(R, E, PF, k, a, lda, panel, next, c, ldc, mask0, mask1); break;
#define CK_TILE_ROW_CASES(E, PF)                                          \
    CK_TILE_CASE(1, E, PF) CK_TILE_CASE(2, E, PF) CK_TILE_CASE(3, E, PF) CK_TILE_CASE(4, E, PF) \
    CK_TILE_CASE(5, E, PF) CK_TILE_CASE(6, E, PF) CK_TILE_CASE(7, E, PF) CK_TILE_CASE(8, E, PF)
#define CK_TILE_ROWS(E)                                                   \
    static CK_AVX512 void tile_rows_##E(int prefetch, int rows, int k, const float *a, ptrdiff_t lda, const float *panel, const float *next, float *c, ptrdiff_t ldc, __mmask16 mask0, __mmask16 mask1) { \
        switch (prefetch) {                                               \
        case PREFETCH_NEXT_PANEL:                                         \
            switch (rows) { CK_TILE_ROW_CASES(E, PREFETCH_NEXT_PANEL) }  \
            break;                                                        \
        case PREFETCH_AHEAD:                                              \
            switch (rows) { CK_TILE_ROW_CASES(E, PREFETCH_AHEAD) }       \
            break;                                                        \
        default:                                                          \
            switch (rows) { CK_TILE_ROW_CASES(E, PREFETCH_NONE) }        \
        }                                                                 \
    }
CK_TILE_ROWS(CK_EPILOGUE_STORE)
CK_TILE_ROWS(CK_EPILOGUE_ADD)
CK_TILE_ROWS(CK_EPILOGUE_SWIGLU)

CK_AVX512 void ck_sgemm_packed(int m, int n, int k, int p0, int p1, const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc, int epilogue) {
    // A pair panel produces 16 output columns, a plain one 32.
    const int step = epilogue == CK_EPILOGUE_SWIGLU ? CK_PANEL_WIDTH / 2 : CK_PANEL_WIDTH;
    int prefetched = 0;  // whether the previous panel's last row block prefetched this one
    for (int p = p0; p < p1; p++) {
        int column = p * step;
        int width = n - column < step ? n - column : step;
        unsigned long long bits = width == 32 ? 0xFFFFFFFFull : (1ull << width) - 1;
        __mmask16 mask0 = (__mmask16)(bits & 0xFFFF), mask1 = (__mmask16)(bits >> 16);
        const float *panel = packed + (ptrdiff_t)p * k * CK_PANEL_WIDTH;
        for (int row = 0; row < m; row += 8) {
            int rows = m - row < 8 ? m - row : 8;
            const float *block = a + (ptrdiff_t)row * lda;
            float *target = c + (ptrdiff_t)row * ldc + column;
            const float *next = panel + (ptrdiff_t)k * CK_PANEL_WIDTH;
            int prefetch = row + 8 >= m && p + 1 < p1 ? PREFETCH_NEXT_PANEL : row == 0 && !prefetched ? PREFETCH_AHEAD : PREFETCH_NONE;
            switch (epilogue) {
            case CK_EPILOGUE_STORE: tile_rows_CK_EPILOGUE_STORE(prefetch, rows, k, block, lda, panel, next, target, ldc, mask0, mask1); break;
            case CK_EPILOGUE_ADD: tile_rows_CK_EPILOGUE_ADD(prefetch, rows, k, block, lda, panel, next, target, ldc, mask0, mask1); break;
            case CK_EPILOGUE_SWIGLU: tile_rows_CK_EPILOGUE_SWIGLU(prefetch, rows, k, block, lda, panel, next, target, ldc, mask0, mask1); break;
            }
        }
        prefetched = p + 1 < p1;
    }
}
#else
void ck_sgemm_packed(int m, int n, int k, int p0, int p1, const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc, int epilogue) {
    (void)m; (void)n; (void)k; (void)p0; (void)p1; (void)a; (void)lda; (void)packed; (void)c; (void)ldc; (void)epilogue;
    __builtin_trap();  // callers check ck_has_avx512() first
}
#endif
