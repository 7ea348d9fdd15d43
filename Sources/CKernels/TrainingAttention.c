#include "CKernels.h"

// Training attention in float32, AVX-512: the forward and backward passes of one (batch row, key
// head) unit, for `Kernels.attention` and `Kernels.attentionBackward`.
//
// Through OpenBLAS, attention was 6,144 small products per base train step (64-row blocks of
// queries, up to 64 × 256 × 64), each re-packing its operands, the transposed ones through its
// general path. Here one register tile does all six products:
//
//     C (rows × 32 columns) = alpha · A B,  or  C += alpha · A B,  A(i, l) = a[i·rsa + l·csa],
//
// up to 8 rows in 16 ZMM accumulators, as in the packed decode GEMM. A is only ever broadcast one
// element at a time, so its two strides let the tile read Q, dO, P and dS where they lie, and Pᵀ
// and dSᵀ as well. B comes from 32-column panels (k × 32 contiguous floats) that each unit packs
// once: Kᵀ and V in the forward, K and Vᵀ in the backward, and dO and Q per head for the
// key-side products.
//
// Query rows go in tiles of 8, and each tile's products stop at the last key its last row sees:
// at T = 256, P V, dS K, Pᵀ dO and dSᵀ Q do 52% of the full square's work instead of the 62.5% of
// 64-row blocks, and Q Kᵀ and dO Vᵀ, whose last 32-column chunk runs whole under a mask, 56%. dK and dV go key tile by key tile, each tile
// summing over the query rows that see it. Each element of C is one fused multiply-add chain in
// order, so a unit's result does not depend on the thread that computes it.

#if defined(__x86_64__)
#include <string.h>

#include "Vector.h"

// R (≤ 8) rows × one chunk of up to 32 columns (mask0, mask1). R and ACCUMULATE are constants
// after inlining.
static inline CK_AVX512 __attribute__((always_inline)) void tile(int R, int ACCUMULATE, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, __mmask16 mask0, __mmask16 mask1) {
    __m512 left[8], right[8];
    for (int r = 0; r < R; r++) {
        left[r] = _mm512_setzero_ps();
        right[r] = _mm512_setzero_ps();
    }
    for (int l = 0; l < k; l++) {
        const float *row = b + (ptrdiff_t)l * ldb;
        const float *column = a + (ptrdiff_t)l * csa;
        __m512 b0 = _mm512_maskz_loadu_ps(mask0, row);
        __m512 b1 = _mm512_maskz_loadu_ps(mask1, row + 16);
        for (int r = 0; r < R; r++) {
            __m512 x = _mm512_set1_ps(column[r * rsa]);
            left[r] = _mm512_fmadd_ps(x, b0, left[r]);
            right[r] = _mm512_fmadd_ps(x, b1, right[r]);
        }
    }
    const __m512 scale = _mm512_set1_ps(alpha);
    for (int r = 0; r < R; r++) {
        float *target = c + r * ldc;
        __m512 x0 = _mm512_mul_ps(left[r], scale), x1 = _mm512_mul_ps(right[r], scale);
        if (ACCUMULATE) {
            x0 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask0, target), x0);
            x1 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask1, target + 16), x1);
        }
        _mm512_mask_storeu_ps(target, mask0, x0);
        _mm512_mask_storeu_ps(target + 16, mask1, x1);
    }
}

// The whole 8 × 32 tile, which nearly every product runs (all but a row of scores' last chunk
// and the edges of a short sequence), is compiled with its masks constant, so its loads and
// stores are plain: with the masks read at run time, the base shapes' forward ran 4% and the
// backward 6% slower (C benchmark, one thread, medians of 15 alternating rounds).
#define CK_ATTENTION_TILE_CASE(R, ACC) case R: tile(R, ACC, k, alpha, a, rsa, csa, b, ldb, c, ldc, mask0, mask1); break;
#define CK_ATTENTION_TILE_ROWS(NAME, ACC)                                                            \
    static CK_AVX512 void NAME(int rows, int k, float alpha, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, __mmask16 mask0, __mmask16 mask1) { \
        if (rows == 8 && mask0 == 0xFFFF && mask1 == 0xFFFF) {                                         \
            tile(8, ACC, k, alpha, a, rsa, csa, b, ldb, c, ldc, 0xFFFF, 0xFFFF);                         \
            return;                                                                                   \
        }                                                                                             \
        switch (rows) {                                                                               \
            CK_ATTENTION_TILE_CASE(1, ACC) CK_ATTENTION_TILE_CASE(2, ACC) CK_ATTENTION_TILE_CASE(3, ACC) CK_ATTENTION_TILE_CASE(4, ACC) \
            CK_ATTENTION_TILE_CASE(5, ACC) CK_ATTENTION_TILE_CASE(6, ACC) CK_ATTENTION_TILE_CASE(7, ACC) CK_ATTENTION_TILE_CASE(8, ACC) \
        }                                                                                             \
    }
CK_ATTENTION_TILE_ROWS(tile_rows_store, 0)
CK_ATTENTION_TILE_ROWS(tile_rows_accumulate, 1)

// Keys visible to query row i: 0 ..< visible.
static inline int visible_keys(int offset, int length, int i) {
    int visible = offset + i + 1;
    if (visible > length) visible = length;
    return visible > 0 ? visible : 0;
}

// The causal extent of the row tile that ends at row `last`: the keys its last row sees.
#define TILE_EXTENT(last) visible_keys(offset, length, (last))

static inline int min_int(int a, int b) { return a < b ? a : b; }

// Columns rounded up to whole 32-column panels.
static inline int panel_columns(int n) { return (n + 31) & ~31; }

// dst: the 32-column panels of src (rows × n, row stride ld): panel p holds columns
// 32p ..< 32p + 32 as rows × 32 contiguous floats, zero past column n. The layout of
// `ck_pack_panels`, whose plain C (any CPU, run once per weight change) took about twice as long
// here, where each unit packs four operands.
static CK_AVX512 void pack_rows(int rows, int n, const float *src, ptrdiff_t ld, float *dst) {
    for (int j = 0; j < n; j += 32) {
        const __mmask16 mask0 = tail_mask(n - j), mask1 = tail_mask(n - j - 16);
        float *panel = dst + (ptrdiff_t)j * rows;
        for (int r = 0; r < rows; r++) {
            const float *row = src + (ptrdiff_t)r * ld + j;
            _mm512_storeu_ps(panel + r * 32, _mm512_maskz_loadu_ps(mask0, row));
            _mm512_storeu_ps(panel + r * 32 + 16, _mm512_maskz_loadu_ps(mask1, row + 16));
        }
    }
}

// dst: the 32-column panels of srcᵀ (d × rows) for src (rows × d, row stride ld): panel p holds
// src rows 32p ..< 32p + 32 as d × 32 floats. Gathers 16 rows at a time; a last panel's columns
// past `rows` are zero up to the next multiple of 16 and unwritten beyond, where the products'
// masked loads never read.
static CK_AVX512 void pack_transposed(int rows, int d, const float *src, ptrdiff_t ld, float *dst) {
    const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)ld));
    for (int j = 0; j < rows; j += 16) {
        const __mmask16 mask = tail_mask(rows - j);
        const float *block = src + (ptrdiff_t)j * ld;
        float *panel = dst + (ptrdiff_t)(j & ~31) * d + (j & 31);
        for (int c = 0; c < d; c++) _mm512_storeu_ps(panel + c * 32, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, lanes, block + c, 4));
    }
}

// One tile of up to 8 query rows: C[r][0 ..< extent] = alpha · A[r] B, B the panels of Kᵀ or Vᵀ
// (k × 32 each): the scores Q Kᵀ and dO Vᵀ.
static inline CK_AVX512 __attribute__((always_inline)) void tile_to_extent(int rows, int k, int extent, float alpha, const float *a, ptrdiff_t lda, const float *panels, float *c, ptrdiff_t ldc) {
    for (int j = 0; j < extent; j += 32) {
        const int columns = extent - j;
        const __mmask16 mask0 = tail_mask(columns), mask1 = tail_mask(columns - 16);
        tile_rows_store(rows, k, alpha, a, lda, 1, panels + (ptrdiff_t)j * k, 32, c + j, ldc, mask0, mask1);
    }
}

// One tile of up to 8 query rows: C[r][0 ..< n] = alpha · Σ_{l < extent} A[r][l] B[l], B the
// panels of V or K (height rows × 32 each): P V and dS K.
static inline CK_AVX512 __attribute__((always_inline)) void tile_over_extent(int rows, int n, int height, int extent, float alpha, const float *a, ptrdiff_t lda, const float *panels, float *c, ptrdiff_t ldc) {
    for (int j = 0; j < n; j += 32) {
        const int columns = n - j;
        const __mmask16 mask0 = tail_mask(columns), mask1 = tail_mask(columns - 16);
        tile_rows_store(rows, extent, alpha, a, lda, 1, panels + (ptrdiff_t)j * height, 32, c + j, ldc, mask0, mask1);
    }
}

// C[j] = alpha · Σ_i A[i][j] B[i] (accumulate 0) or C[j] += … (accumulate 1) for each 8-key
// tile, over the query rows that see the tile's first key (from j − offset on): Pᵀ dO and dSᵀ Q.
// A (tq × tk) is read only where it is written (see `ck_attention_forward`); B is the panels of
// dO or Q (tq × 32 each); C (tk × n). Storing, it clears the rows of keys no query sees.
static CK_AVX512 void product_by_keys(int accumulate, int tq, int tk, int n, int offset, int length, float alpha, const float *a, const float *panels, float *c, ptrdiff_t ldc) {
    const int keys = min_int(length, tk);
    const int seen = keys < offset + tq ? keys : (offset + tq > 0 ? offset + tq : 0);  // keys some query sees
    for (int col = 0; col < n; col += 32) {
        const int columns = n - col;
        const __mmask16 mask0 = tail_mask(columns), mask1 = tail_mask(columns - 16);
        const float *panel = panels + (ptrdiff_t)col * tq;
        for (int j = 0; j < seen; j += 8) {
            const int first = j - offset > 0 ? j - offset : 0;
            const float *strip = a + (ptrdiff_t)first * tk + j, *rows = panel + (ptrdiff_t)first * 32;
            float *target = c + (ptrdiff_t)j * ldc + col;
            if (accumulate) tile_rows_accumulate(min_int(seen - j, 8), tq - first, alpha, strip, 1, tk, rows, 32, target, ldc, mask0, mask1);
            else tile_rows_store(min_int(seen - j, 8), tq - first, alpha, strip, 1, tk, rows, 32, target, ldc, mask0, mask1);
        }
    }
    if (!accumulate)
        for (int j = seen; j < tk; j++) memset(c + (ptrdiff_t)j * ldc, 0, sizeof(float) * (size_t)n);
}

// The columns of row i that the products read: the row tile's extent rounded up to whole 8-key
// tiles (for `product_by_keys`), at most tk.
static inline int written_width(int tq, int tk, int offset, int length, int i) {
    const int width = (TILE_EXTENT(min_int(i | 7, tq - 1)) + 7) & ~7;
    return min_int(width, tk);
}

size_t ck_attention_scratch_count(int tq, int tk, int d) {
    const size_t keys = (size_t)panel_columns(tk), width = (size_t)panel_columns(d);
    const size_t forward = (size_t)d * keys + (size_t)tk * width + (size_t)tq * tk;
    const size_t backward = (size_t)tk * width + (size_t)d * keys + 2 * (size_t)tq * width + (size_t)tq * tk;
    return forward > backward ? forward : backward;
}

// One query head: row tile by row tile, S = scale · Q Kᵀ to the tile's extent, its softmax rows,
// then O = P V.
static CK_AVX512 void head_forward(int tq, int tk, int d, float scale, int offset, int length, const float *q, ptrdiff_t ldq, const float *keys_t, const float *values, float *o, float *p) {
    for (int i = 0; i < tq; i += 8) {
        const int rows = min_int(tq - i, 8);
        const int extent = TILE_EXTENT(i + rows - 1), width = written_width(tq, tk, offset, length, i);
        float *scores = p + (ptrdiff_t)i * tk;
        tile_to_extent(rows, d, extent, scale, q + (ptrdiff_t)i * ldq, ldq, keys_t, scores, tk);
        for (int r = 0; r < rows; r++) {
            const int visible = visible_keys(offset, length, i + r);
            float *row = scores + (ptrdiff_t)r * tk;
            if (visible > 0) ck_attention_softmax_row(visible, width, row);
            else memset(row, 0, sizeof(float) * (size_t)width);
        }
        tile_over_extent(rows, d, tk, extent, 1.0f, scores, tk, values, o + (ptrdiff_t)i * ldq, ldq);
    }
}

CK_AVX512 void ck_attention_forward(int tq, int tk, int group, int d, float scale, int offset, int length, const float *q, ptrdiff_t ldq, const float *k, const float *v, ptrdiff_t ldk, float *o, float *p, float *scratch) {
    float *keys_t = scratch, *values = keys_t + (ptrdiff_t)d * panel_columns(tk), *scores = values + (ptrdiff_t)tk * panel_columns(d);
    pack_transposed(tk, d, k, ldk, keys_t);
    pack_rows(tk, d, v, ldk, values);
    for (int head = 0; head < group; head++)
        head_forward(tq, tk, d, scale, offset, length, q + (ptrdiff_t)head * d, ldq, keys_t, values, o + (ptrdiff_t)head * d, p ? p + (ptrdiff_t)head * tq * tk : scores);
}

CK_AVX512 void ck_attention_backward(int tq, int tk, int group, int d, float scale, int offset, int length, const float *q, ptrdiff_t ldq, const float *k, const float *v, ptrdiff_t ldk, const float *p, const float *dout, float *dq, float *dk, float *dv, float *scratch) {
    const int width = panel_columns(d);
    float *keys = scratch, *values_t = keys + (ptrdiff_t)tk * width;
    float *gradients = values_t + (ptrdiff_t)d * panel_columns(tk), *queries = gradients + (ptrdiff_t)tq * width, *ds = queries + (ptrdiff_t)tq * width;
    pack_rows(tk, d, k, ldk, keys);
    pack_transposed(tk, d, v, ldk, values_t);
    for (int head = 0; head < group; head++) {
        const float *qh = q + (ptrdiff_t)head * d, *doh = dout + (ptrdiff_t)head * d, *ph = p + (ptrdiff_t)head * tq * tk;
        float *dqh = dq + (ptrdiff_t)head * d;
        // Row tile by row tile: dP = dO Vᵀ; dS = P ∘ (dP − rowsum(P ∘ dP)), zero out to the
        // written width; dQ = scale · dS K.
        for (int i = 0; i < tq; i += 8) {
            const int rows = min_int(tq - i, 8);
            const int extent = TILE_EXTENT(i + rows - 1), written = written_width(tq, tk, offset, length, i);
            float *rowsOfDS = ds + (ptrdiff_t)i * tk;
            tile_to_extent(rows, d, extent, 1.0f, doh + (ptrdiff_t)i * ldq, ldq, values_t, rowsOfDS, tk);
            for (int r = 0; r < rows; r++) {
                float *row = rowsOfDS + (ptrdiff_t)r * tk;
                ck_attention_softmax_backward_row(extent, ph + (ptrdiff_t)(i + r) * tk, row);
                if (written > extent) memset(row + extent, 0, sizeof(float) * (size_t)(written - extent));
            }
            tile_over_extent(rows, d, tk, extent, scale, rowsOfDS, tk, keys, dqh + (ptrdiff_t)i * ldq, ldq);
        }
        // Key tile by key tile: dV += Pᵀ dO;  dK += scale · dSᵀ Q.
        pack_rows(tq, d, doh, ldq, gradients);
        pack_rows(tq, d, qh, ldq, queries);
        product_by_keys(head > 0, tq, tk, d, offset, length, 1.0f, ph, gradients, dv, ldk);
        product_by_keys(head > 0, tq, tk, d, offset, length, scale, ds, queries, dk, ldk);
    }
}
#else
size_t ck_attention_scratch_count(int tq, int tk, int d) {
    (void)tq; (void)tk; (void)d;
    __builtin_trap();  // callers check ck_has_avx512() first
}
void ck_attention_forward(int tq, int tk, int group, int d, float scale, int offset, int length, const float *q, ptrdiff_t ldq, const float *k, const float *v, ptrdiff_t ldk, float *o, float *p, float *scratch) {
    (void)tq; (void)tk; (void)group; (void)d; (void)scale; (void)offset; (void)length; (void)q; (void)ldq; (void)k; (void)v; (void)ldk; (void)o; (void)p; (void)scratch;
    __builtin_trap();
}
void ck_attention_backward(int tq, int tk, int group, int d, float scale, int offset, int length, const float *q, ptrdiff_t ldq, const float *k, const float *v, ptrdiff_t ldk, const float *p, const float *dout, float *dq, float *dk, float *dv, float *scratch) {
    (void)tq; (void)tk; (void)group; (void)d; (void)scale; (void)offset; (void)length; (void)q; (void)ldq; (void)k; (void)v; (void)ldk;
    (void)p; (void)dout; (void)dq; (void)dk; (void)dv; (void)scratch;
    __builtin_trap();
}
#endif
