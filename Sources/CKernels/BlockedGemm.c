#include "CKernels.h"

// Float32 GEMMs on AVX-512 FMAs, for training's products (MatmulPrecision.highest).
//
// Debian's OpenBLAS 0.3.21 (SkylakeX kernels) reaches about 94 GFLOPS on one core of the
// reference machine at 2048³, against 134 for independent FMA chains: its packing and block
// sizes suit large square products, and the step's products are 2048-row halves of a batch
// against 256- and 768-wide weights, or weight gradients 256–768 wide and 2048 deep. This
// kernel is built for those:
// - C is computed in tiles of 6 rows × 64 columns: 24 accumulators; per step of k, four loads of
//   the right operand's row and six broadcasts of the left operand's column.
// - The right operand is packed in panels of 64 columns (zero past n) and k blocks of 128, so a
//   panel block is 32 KiB and stays in L1 while the row tiles pass over it. Bᵀ (a
//   torch.nn.Linear weight) is transposed into the panels 16 × 16 at a time in registers.
// - The left operand is packed 96 rows × 128 steps of k at a time into a contiguous block, so that
//   a tile's six broadcast streams sit together in L1: rows of A (along k) are copied as they
//   are; columns of Aᵀ (the activations of a weight gradient) six to a step of k. Read in place
//   at stride lda, Aᵀ ran the 768 × 256 × 2048 weight gradient at OpenBLAS's speed; packed, about
//   1.12 times it.
// - When C is large and the whole packed right operand is small (a forward or input-gradient
//   product), rows are the outer loop and k the inner, so each 96-row block of C stays in cache
//   across its k blocks; otherwise (a weight gradient: small C, deep k) k is the outer loop and
//   each packed k block serves every row.
// - The next tile's lines of C are prefetched while a tile runs, and so, a share per tile, are
//   the operand lines the next packs will read (the next block of op(A); in the k-outer order
//   also the next k block of op(B)), so that packing reads L2 instead of memory. In a C
//   benchmark of one base layer's 21 products on one thread (each on its own operands,
//   alternating with the kernel without it), this made the layer 3.7% faster, and the layer
//   runs 1.16 times as fast as on OpenBLAS.
// - On several threads (`ck_blocked_sgemm_parallel`), a rows-outer product is one job of the
//   worker pool: its first chunks pack the right operand once, a (k block, panel) each, into a
//   buffer every thread reads, and the rest are the 96-row blocks of C, claimed in turn. Split
//   into one block per thread instead, each thread packed all of the right operand, and the
//   thread that finished first waited for the other: on this project's 2-vCPU VMs one vCPU often
//   runs slower than the other for seconds at a time (the worker's identical blocks took 0.5–23%
//   longer than the caller's over 10-step runs of the base step). Independent calls can ride in the
//   same job (a linear layer's weight gradient, cut along k, beside its input gradient), taken
//   first, one thread each, with the row blocks filling in around them.
// Every element of the product is summed the same way: over each k block of 128 in order, one
// fused multiply-add chain from 0; the blocks' chains added in order (so rounding grows with the
// block length and the number of blocks, not with k: a weight gradient's 2048-deep chain had
// about 1.2 times OpenBLAS's gradient error through a model, summed by blocks it has less); and
// with beta 1 the sum is added to C once complete (as BLAS adds beta·C, so a residual added
// inside its projection's GEMM has the bits of the separate sum). The addend may also lie apart
// from C (a residual connection's input, read where it is rather than first copied into C; the
// copy took about 1% of the base train step). This whatever m, n, the loop
// order or the tile the element falls in: a row or column block of a split product has the bits
// of the whole, and results do not depend on the thread count.

#if defined(__x86_64__)
#include "Vector.h"
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

enum { K_BLOCK = 128, ROW_BLOCK = 96, TILE_ROWS = 6, PANEL = 64 };

// The row-outer order holds the whole packed right operand: at most this many floats (1 MiB).
static const size_t WHOLE_RIGHT_LIMIT = (size_t)1 << 18;
// ... and is taken when C has more elements than this (1 MiB of floats).
static const size_t LARGE_OUTPUT = (size_t)1 << 18;

static int blocked_enabled = 1;

void ck_set_blocked_sgemm(int enabled) { blocked_enabled = enabled; }
int ck_blocked_sgemm_enabled(void) { return blocked_enabled; }

// Per-thread packing buffers, grown as needed and kept: the kernels' workers are persistent.
static __thread float *packed_right, *packed_left;
static __thread size_t right_capacity, left_capacity;

// Set by tests (`ck_blocked_sgemm_fail_packing`): every thread's packing buffers are refused.
static atomic_int fail_packing;

void ck_blocked_sgemm_fail_packing(int fail) { atomic_store(&fail_packing, fail); }

static float *grow(float **buffer, size_t *capacity, size_t elements) {
    if (elements > *capacity) {
        free(*buffer);
        *buffer = aligned_alloc(64, (elements * sizeof(float) + 63) / 64 * 64);
        *capacity = *buffer ? elements : 0;
    }
    return *buffer;
}

static float *reserve(float **buffer, size_t *capacity, size_t elements) {
    return atomic_load_explicit(&fail_packing, memory_order_relaxed) ? NULL : grow(buffer, capacity, elements);
}

// Packs rows p ..< p + kc of op(B) (k × n) into panels of PANEL columns: panel q's row p at
// packed[(q·kc + p)·PANEL], zero past n.
static CK_AVX512 void pack_right_panel(int transpose, int kc, int n, int panel, const float *b, ptrdiff_t ldb, float *packed) {
    const int j0 = panel * PANEL, width = n - j0;
    float *target = packed + (ptrdiff_t)panel * kc * PANEL;
    if (!transpose) {
        // b[p·ldb + j]: each row of the panel is contiguous in b.
        for (int p = 0; p < kc; p++) {
            const float *source = b + (ptrdiff_t)p * ldb + j0;
            for (int v = 0; v < PANEL / 16; v++)
                _mm512_store_ps(target + p * PANEL + 16 * v, _mm512_maskz_loadu_ps(tail_mask(width - 16 * v), source + 16 * v));
        }
        return;
    }
    // b[j·ldb + p]: 16 columns × 16 steps of k at a time, transposed in registers.
    for (int v = 0; v < PANEL / 16; v++) {
        const int columns = width - 16 * v;
        for (int p0 = 0; p0 < kc; p0 += 16) {
            const __mmask16 steps = tail_mask(kc - p0);
            __m512i lines[16];
            for (int j = 0; j < 16; j++)
                lines[j] = j < columns ? _mm512_castps_si512(_mm512_maskz_loadu_ps(steps, b + (ptrdiff_t)(j0 + 16 * v + j) * ldb + p0)) : _mm512_setzero_si512();
            transpose16(lines);
            for (int p = 0; p < 16 && p0 + p < kc; p++) _mm512_store_si512(target + (p0 + p) * PANEL + 16 * v, lines[p]);
        }
    }
}

static CK_AVX512 void pack_right(int transpose, int kc, int n, const float *b, ptrdiff_t ldb, float *packed) {
    const int panels = (n + PANEL - 1) / PANEL;
    for (int panel = 0; panel < panels; panel++) pack_right_panel(transpose, kc, n, panel, b, ldb, packed);
}

// Copies `rows` rows of A (along k, row stride lda), kc steps of k each, into a block of row
// stride kc.
static CK_AVX512 void pack_left(int rows, int kc, const float *a, ptrdiff_t lda, float *packed) {
    for (int row = 0; row < rows; row++) {
        const float *source = a + (ptrdiff_t)row * lda;
        float *target = packed + (ptrdiff_t)row * kc;
        for (int p = 0; p < kc; p += 16) {
            const __mmask16 mask = tail_mask(kc - p);
            _mm512_mask_storeu_ps(target + p, mask, _mm512_maskz_loadu_ps(mask, source + p));
        }
    }
}

// Packs `rows` columns of Aᵀ over kc steps of k (step p's are contiguous at a + p·lda) for the
// tiles: tile t's six rows at step p are packed[t·kc·6 + p·6 ..< + 6], zero past `rows`. Each
// row of a is read only below `readable` (at least `rows`; the rest of the product's columns).
//
// Eight steps of k at a time: a tile's six floats from each of eight rows (one 8-float load
// each, whose last two floats go unused) are merged by three two-source permutes into the 48
// contiguous floats the tile reads, stored whole. One masked 6-float store per (step, tile), as
// before, crossed cache lines at its 24-byte stride and ran at 2.0 G floats/s with the block in
// L1 and 1.4 from memory, against 6.0 and 2.5 this way (C benchmark, one thread). The base
// step's weight gradients of n = 256 ran 6–7% faster, within 2% of forward products of the same
// multiply-adds, and the step about 1.2% faster (in-process A/B, 11 runs of 30 pairs).
static CK_AVX512 void pack_left_transposed(int rows, int kc, const float *a, ptrdiff_t lda, int readable, float *packed) {
    const int tiles = (rows + TILE_ROWS - 1) / TILE_ROWS;
    // Lanes of (x, y), x holding rows 0 and 1 of the eight (lanes 0–5 and 8–13) and y the next
    // two (16–21 and 24–29): the tile's floats 0–15, 16–31 and 32–47.
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19);
    const __m512i second = _mm512_setr_epi32(4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21, 24, 25);
    const __m512i third = _mm512_setr_epi32(10, 11, 12, 13, 16, 17, 18, 19, 20, 21, 24, 25, 26, 27, 28, 29);
    int p0 = 0;
    for (; p0 + 8 <= kc; p0 += 8) {
        const float *source = a + (ptrdiff_t)p0 * lda;
        for (int t = 0; t < tiles; t++) {
            const int column = t * TILE_ROWS, present = rows - column;
            __m256 r[8];
            if (present >= TILE_ROWS && column + 8 <= readable) {
                for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(source + i * lda + column);
            } else {
                const __mmask8 mask = (__mmask8)tail_mask(present < TILE_ROWS ? present : TILE_ROWS);
                for (int i = 0; i < 8; i++) r[i] = _mm256_maskz_loadu_ps(mask, source + i * lda + column);
            }
            const __m512 rows01 = _mm512_insertf32x8(_mm512_castps256_ps512(r[0]), r[1], 1);
            const __m512 rows23 = _mm512_insertf32x8(_mm512_castps256_ps512(r[2]), r[3], 1);
            const __m512 rows45 = _mm512_insertf32x8(_mm512_castps256_ps512(r[4]), r[5], 1);
            const __m512 rows67 = _mm512_insertf32x8(_mm512_castps256_ps512(r[6]), r[7], 1);
            float *target = packed + ((ptrdiff_t)t * kc + p0) * TILE_ROWS;
            _mm512_storeu_ps(target, _mm512_permutex2var_ps(rows01, first, rows23));
            _mm512_storeu_ps(target + 16, _mm512_permutex2var_ps(rows23, second, rows45));
            _mm512_storeu_ps(target + 32, _mm512_permutex2var_ps(rows45, third, rows67));
        }
    }
    // The last kc mod 8 steps, one masked store per tile.
    for (; p0 < kc; p0++) {
        const float *source = a + (ptrdiff_t)p0 * lda;
        for (int t = 0; t < tiles; t++) {
            const int present = rows - t * TILE_ROWS;
            const __mmask16 mask = tail_mask(present < TILE_ROWS ? present : TILE_ROWS);
            _mm512_mask_storeu_ps(packed + ((ptrdiff_t)t * kc + p0) * TILE_ROWS, 0x3F, _mm512_maskz_loadu_ps(mask, source + t * TILE_ROWS));
        }
    }
}

// `rows` rows of op(A) over kc steps of k from a; `readable` is pack_left_transposed's.
static CK_AVX512 void pack(int transpose_a, int rows, int kc, const float *a, ptrdiff_t lda, int readable, float *packed) {
    if (transpose_a) pack_left_transposed(rows, kc, a, lda, readable, packed);
    else pack_left(rows, kc, a, lda, packed);
}

// One tile of ROWS × 16·VECTORS (masked to the panel's width): the product of ROWS rows of op(A)
// (element (i, p) at a[i·row_step + p·step]) and a packed panel block, one chain from 0 per
// element, added to the sums of the earlier k blocks at `from` when it is not NULL, and then to
// `add`'s values when that is not NULL (the caller's C, for beta 1: added once the sums are
// complete), and stored to `to`.
typedef struct {
    const float *from;
    float *to;
    const float *add;
    ptrdiff_t ld_from, ld_to, ld_add;
} tile_target;

// A tile's epilogue: ANY_EPILOGUE reads `from` and `add` as they come and masks every vector to
// the panel's width; otherwise FROM and ADD say which of the two the tile adds, fixed when it is
// compiled, and its vectors are whole. The full tiles, which do nearly all the work, are compiled
// once per epilogue: read at run time, the 24 vectors' two tests and masks cost about 7% of a
// 6 × 64 tile over a 128-step k block (one thread, operands in L1), and the base train step ran
// 2% faster without them (in-process A/B at two threads).
enum { FROM = 1, ADD = 2, ANY_EPILOGUE = -1 };

static inline CK_AVX512 __attribute__((always_inline)) void tile(
    const int rows, const int vectors, const int epilogue, int kc, const float *a, ptrdiff_t row_step, ptrdiff_t step,
    const float *panel, const tile_target *target, const __mmask16 masks[4], int prefetch_next) {
    // The target read once: C's stores could otherwise alias it and make each vector reload it.
    const float *const from_c = target->from, *const add_c = target->add;
    float *const to_c = target->to;
    const ptrdiff_t ld_from = target->ld_from, ld_add = target->ld_add, ld_to = target->ld_to;
    const int from = epilogue == ANY_EPILOGUE ? from_c != NULL : (epilogue & FROM) != 0;
    const int add = epilogue == ANY_EPILOGUE ? add_c != NULL : (epilogue & ADD) != 0;
    __m512 sum[TILE_ROWS][4];
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++)
            sum[r][v] = _mm512_setzero_ps();
    if (prefetch_next) {
        const float *next = add ? add_c : to_c;
        const ptrdiff_t ld = add ? ld_add : ld_to;
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
            for (int v = 0; v < vectors; v++) _mm_prefetch((const char *)(next + (rows + r) * ld + 16 * v), _MM_HINT_T0);
    }
    for (int p = 0; p < kc; p++) {
        __m512 right[4];
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) right[v] = _mm512_load_ps(panel + 16 * v);
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) {
            const __m512 left = _mm512_set1_ps(a[r * row_step]);
#pragma GCC unroll 4
            for (int v = 0; v < vectors; v++) sum[r][v] = _mm512_fmadd_ps(left, right[v], sum[r][v]);
        }
        a += step;
        panel += PANEL;
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) {
            __m512 value = sum[r][v];
            // Whole vectors take a constant mask, which the compiler drops.
            const __mmask16 mask = epilogue == ANY_EPILOGUE ? masks[v] : (__mmask16)0xFFFF;
            if (from) value = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, from_c + r * ld_from + 16 * v), value);
            if (add) value = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, add_c + r * ld_add + 16 * v), value);
            _mm512_mask_storeu_ps(to_c + r * ld_to + 16 * v, mask, value);
        }
}

// The tile shapes, each compiled with its row and vector counts fixed, for a left block packed
// from A (row step kc, k step 1) or from Aᵀ (row step 1, k step 6), with the epilogue read at
// run time: six rows of a last panel narrower than 64 columns (narrowN: N vectors, the last one
// masked), and a block's last rows (rowsN: N rows).
#define CK_TILE(name, rows, vectors) \
    static CK_AVX512 void name##_packed(int kc, const float *a, ptrdiff_t row_step, const float *panel, const tile_target *target, const __mmask16 masks[4], int prefetch_next) { \
        tile(rows, vectors, ANY_EPILOGUE, kc, a, row_step, 1, panel, target, masks, prefetch_next); } \
    static CK_AVX512 void name##_transposed(int kc, const float *a, ptrdiff_t step, const float *panel, const tile_target *target, const __mmask16 masks[4], int prefetch_next) { \
        tile(rows, vectors, ANY_EPILOGUE, kc, a, 1, step, panel, target, masks, prefetch_next); }
CK_TILE(narrow1, TILE_ROWS, 1)
CK_TILE(narrow2, TILE_ROWS, 2)
CK_TILE(narrow3, TILE_ROWS, 3)
CK_TILE(narrow4, TILE_ROWS, 4)
CK_TILE(rows1, 1, 4)
CK_TILE(rows2, 2, 4)
CK_TILE(rows3, 3, 4)
CK_TILE(rows4, 4, 4)
CK_TILE(rows5, 5, 4)

// The full tile (six rows, four whole vectors) once per epilogue. Rows of A packed from a whole k
// block lie K_BLOCK apart, a constant the broadcasts then take as displacements; Aᵀ's six rows
// are always adjacent.
#define CK_FULL_TILE(EPILOGUE) \
    static CK_AVX512 void full_packed_##EPILOGUE(int kc, const float *a, ptrdiff_t row_step, const float *panel, const tile_target *target, const __mmask16 masks[4], int prefetch_next) { \
        if (row_step == K_BLOCK) tile(TILE_ROWS, 4, EPILOGUE, kc, a, K_BLOCK, 1, panel, target, masks, prefetch_next); \
        else tile(TILE_ROWS, 4, EPILOGUE, kc, a, row_step, 1, panel, target, masks, prefetch_next); } \
    static CK_AVX512 void full_transposed_##EPILOGUE(int kc, const float *a, ptrdiff_t step, const float *panel, const tile_target *target, const __mmask16 masks[4], int prefetch_next) { \
        tile(TILE_ROWS, 4, EPILOGUE, kc, a, 1, TILE_ROWS, panel, target, masks, prefetch_next); }
CK_FULL_TILE(0)
CK_FULL_TILE(1)
CK_FULL_TILE(2)
CK_FULL_TILE(3)

typedef void (*tile_fn)(int, const float *, ptrdiff_t, const float *, const tile_target *, const __mmask16 *, int);

// Operand lines a later pack will read, prefetched into L2 a share per tile while this block's
// tiles run, so that packing reads cache rather than memory: `segments` contiguous runs of
// `lines` cache lines, `stride` bytes apart (none when base is NULL).
typedef struct {
    const char *base;
    int segments, lines;
    ptrdiff_t stride;
} upcoming;

static inline CK_AVX512 void prefetch_share(upcoming next, int tile, int tiles) {
    if (!next.base) return;
    for (int segment = next.segments * tile / tiles; segment < next.segments * (tile + 1) / tiles; segment++)
        for (int line = 0; line < next.lines; line++) _mm_prefetch(next.base + segment * next.stride + 64 * line, _MM_HINT_T1);
}

// A block of rows against one packed k block (rows p0 ..< p0 + kc of op(B)); `block` gives where
// its chains come from and go (its rows' first elements); `next_left` and `next_right` what the
// following packs will read.
static CK_AVX512 void row_block(int transpose_a, int rows, int n, int kc, const float *right, const float *left, tile_target block, upcoming next_left, upcoming next_right) {
    static const tile_fn full_packed[4] = {full_packed_0, full_packed_1, full_packed_2, full_packed_3};
    static const tile_fn full_transposed[4] = {full_transposed_0, full_transposed_1, full_transposed_2, full_transposed_3};
    static const tile_fn narrow_packed[4] = {narrow1_packed, narrow2_packed, narrow3_packed, narrow4_packed};
    static const tile_fn narrow_transposed[4] = {narrow1_transposed, narrow2_transposed, narrow3_transposed, narrow4_transposed};
    static const tile_fn short_packed[TILE_ROWS] = {0, rows1_packed, rows2_packed, rows3_packed, rows4_packed, rows5_packed};
    static const tile_fn short_transposed[TILE_ROWS] = {0, rows1_transposed, rows2_transposed, rows3_transposed, rows4_transposed, rows5_transposed};
    // Tile i's rows in the packed left block: at left + i·kc, k step 1 and row step kc (rows of
    // A), or k step 6 and row step 1 (columns of Aᵀ); the tile functions take the step that is
    // not 1.
    const ptrdiff_t step = transpose_a ? TILE_ROWS : kc;
    const int panels = (n + PANEL - 1) / PANEL;
    const int tile_rows = (rows + TILE_ROWS - 1) / TILE_ROWS, tiles = panels * tile_rows;
    const int epilogue = (block.from ? FROM : 0) | (block.add ? ADD : 0);
    for (int panel = 0; panel < panels; panel++) {
        const int j0 = panel * PANEL, width = n - j0;
        const __mmask16 masks[4] = {tail_mask(width), tail_mask(width - 16), tail_mask(width - 32), tail_mask(width - 48)};
        const int vectors = width >= PANEL ? 4 : (width + 15) / 16;
        const float *panel_block = right + (ptrdiff_t)panel * kc * PANEL;
        int i = 0;
        for (; i < rows; i += TILE_ROWS) {
            prefetch_share(next_left, panel * tile_rows + i / TILE_ROWS, tiles);
            prefetch_share(next_right, panel * tile_rows + i / TILE_ROWS, tiles);
            tile_target target = {
                block.from ? block.from + (ptrdiff_t)i * block.ld_from + j0 : NULL, block.to + (ptrdiff_t)i * block.ld_to + j0,
                block.add ? block.add + (ptrdiff_t)i * block.ld_add + j0 : NULL, block.ld_from, block.ld_to, block.ld_add};
            if (i + TILE_ROWS <= rows) {
                const tile_fn full_tile = width >= PANEL ? (transpose_a ? full_transposed : full_packed)[epilogue] : (transpose_a ? narrow_transposed : narrow_packed)[vectors - 1];
                full_tile(kc, left + (ptrdiff_t)i * kc, step, panel_block, &target, masks, i + 2 * TILE_ROWS <= rows);
            } else {
                // The last rows (fewer than six) use all four vectors: zero columns of the panel
                // compute zeros that the masks do not store.
                const tile_fn short_tile = transpose_a ? short_transposed[rows - i] : short_packed[rows - i];
                short_tile(kc, left + (ptrdiff_t)i * kc, step, panel_block, &target, masks, 0);
            }
        }
    }
}

// What pack() reads for `rows` rows and kc steps of op(A) from a: rows of A along k, or k rows of
// Aᵀ across the block's rows.
static upcoming left_block(int transpose_a, const float *a, ptrdiff_t lda, int rows, int kc) {
    if (transpose_a) return (upcoming){(const char *)a, kc, (rows * 4 + 63) / 64, lda * 4};
    return (upcoming){(const char *)a, rows, (kc * 4 + 63) / 64, lda * 4};
}

// One product's operands, and its packing geometry.
typedef struct {
    int transpose_a, transpose_b, m, n, k, accumulate;
    const float *a, *b, *d;  // d: the addend when accumulating (c itself, or apart)
    float *c;
    ptrdiff_t lda, ldb, ldc, ldd, width;  // width: n rounded up to whole panels
    int chains_apart;  // beta 1 over several k blocks: the chains run in a scratch block of rows
} product;

static product describe(int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, const float *addend, ptrdiff_t ld_addend, float *c, ptrdiff_t ldc) {
    const ptrdiff_t width = (ptrdiff_t)((n + PANEL - 1) / PANEL) * PANEL;
    const int accumulate = addend != NULL;
    return (product){transpose_a, transpose_b, m, n, k, accumulate, a, b, addend, c, lda, ldb, ldc, ld_addend, width, accumulate && k > K_BLOCK};
}

// Element (i, p) of op(A) and row p of op(B).
static inline const float *left_at(const product *g, int i, int p) {
    return g->transpose_a ? g->a + (ptrdiff_t)p * g->lda + i : g->a + (ptrdiff_t)i * g->lda + p;
}
static inline const float *right_at(const product *g, int p) { return g->transpose_b ? g->b + p : g->b + (ptrdiff_t)p * g->ldb; }

// The block of op(A) at rows i0 and step p0 that a later pack reads (none past the end).
static upcoming next_left_block(const product *g, int i0, int p0) {
    if (i0 >= g->m || p0 >= g->k) return (upcoming){0};
    return left_block(g->transpose_a, left_at(g, i0, p0), g->lda, g->m - i0 < ROW_BLOCK ? g->m - i0 : ROW_BLOCK, g->k - p0 < K_BLOCK ? g->k - p0 : K_BLOCK);
}

// Whether the rows are the outer loop (see the top of the file): always when the chains run
// apart, else when C is large and the whole packed right operand small.
static int rows_outer(const product *g) {
    return g->chains_apart || ((size_t)g->m * g->n > LARGE_OUTPUT && (size_t)g->width * g->k <= WHOLE_RIGHT_LIMIT);
}

// Rows i0 ..< i0 + ROW_BLOCK of C, rows outer: every k block against the whole packed right
// operand `right`, through the packed left block `left` (and its scratch when the chains run
// apart). `next_i0`: the row block this thread is expected to take next, for prefetching.
static CK_AVX512 void rows_outer_block(const product *g, int i0, int next_i0, const float *right, float *left) {
    float *scratch = left + (size_t)ROW_BLOCK * K_BLOCK;
    const int rows = g->m - i0 < ROW_BLOCK ? g->m - i0 : ROW_BLOCK;
    float *c_rows = g->c + (ptrdiff_t)i0 * g->ldc;
    const float *d_rows = g->accumulate ? g->d + (ptrdiff_t)i0 * g->ldd : NULL;
    for (int p0 = 0; p0 < g->k; p0 += K_BLOCK) {
        const int kc = g->k - p0 < K_BLOCK ? g->k - p0 : K_BLOCK;
        const int first = p0 == 0, last = p0 + kc == g->k;
        tile_target block;
        if (g->chains_apart) {
            block = (tile_target){first ? NULL : scratch, last ? c_rows : scratch, last ? d_rows : NULL, g->width, last ? g->ldc : g->width, g->ldd};
        } else {
            block = (tile_target){first ? NULL : c_rows, c_rows, first ? d_rows : NULL, g->ldc, g->ldc, g->ldd};
        }
        pack(g->transpose_a, rows, kc, left_at(g, i0, p0), g->lda, g->m - i0, left);
        row_block(g->transpose_a, rows, g->n, kc, right + (size_t)g->width * p0, left, block, p0 + K_BLOCK < g->k ? next_left_block(g, i0, p0 + K_BLOCK) : next_left_block(g, next_i0, 0), (upcoming){0});
    }
}

static float *reserve_left(const product *g) {
    return reserve(&packed_left, &left_capacity, (size_t)ROW_BLOCK * K_BLOCK + (g->chains_apart ? (size_t)ROW_BLOCK * g->width : 0));
}

CK_AVX512 int ck_blocked_sgemm(int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, const float *addend, ptrdiff_t ld_addend, float *c, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return 1;
    if (k <= 0) {
        if (addend != c)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) c[(ptrdiff_t)i * ldc + j] = addend ? addend[(ptrdiff_t)i * ld_addend + j] : 0;
        return 1;
    }
    const int accumulate = addend != NULL;
    const product g = describe(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, addend, ld_addend, c, ldc);
    const ptrdiff_t width = g.width;
    const int outer = rows_outer(&g);
    float *right = reserve(&packed_right, &right_capacity, outer ? (size_t)width * k : (size_t)width * (k < K_BLOCK ? k : K_BLOCK));
    float *left = reserve_left(&g);
    if (!right || !left) return 0;
    if (outer) {
        for (int p0 = 0; p0 < k; p0 += K_BLOCK) {
            const int kc = k - p0 < K_BLOCK ? k - p0 : K_BLOCK;
            pack_right(transpose_b, kc, n, right_at(&g, p0), ldb, right + (size_t)width * p0);
        }
        for (int i0 = 0; i0 < m; i0 += ROW_BLOCK) rows_outer_block(&g, i0, i0 + ROW_BLOCK, right, left);
        return 1;
    }
    // k outer. One k block when accumulating (chains_apart is rows outer).
    for (int p0 = 0; p0 < k; p0 += K_BLOCK) {
        const int kc = k - p0 < K_BLOCK ? k - p0 : K_BLOCK;
        pack_right(transpose_b, kc, n, right_at(&g, p0), ldb, right);
        for (int i0 = 0; i0 < m; i0 += ROW_BLOCK) {
            const int rows = m - i0 < ROW_BLOCK ? m - i0 : ROW_BLOCK;
            float *c_rows = c + (ptrdiff_t)i0 * ldc;
            const tile_target block = {p0 == 0 ? NULL : c_rows, c_rows, accumulate ? addend + (ptrdiff_t)i0 * ld_addend : NULL, ldc, ldc, ld_addend};
            pack(transpose_a, rows, kc, left_at(&g, i0, p0), lda, m - i0, left);
            upcoming next_right = {0};
            if (p0 + K_BLOCK < k) {
                // This row block's share of the next k block of op(B).
                const int next_kc = k - p0 - K_BLOCK < K_BLOCK ? k - p0 - K_BLOCK : K_BLOCK;
                const int segments = transpose_b ? n : next_kc, first = (int)((long)segments * i0 / m), last = (int)((long)segments * (i0 + rows) / m);
                const float *base = transpose_b ? right_at(&g, p0 + K_BLOCK) + (ptrdiff_t)first * ldb : right_at(&g, p0 + K_BLOCK + first);
                next_right = (upcoming){(const char *)base, last - first, ((transpose_b ? next_kc : n) * 4 + 63) / 64, ldb * 4};
            }
            row_block(transpose_a, rows, n, kc, right, left, block, i0 + ROW_BLOCK < m ? next_left_block(&g, i0 + ROW_BLOCK, p0) : next_left_block(&g, 0, p0 + K_BLOCK), next_right);
        }
    }
    return 1;
}

// The parallel form of the rows-outer order (`ck_blocked_sgemm_parallel`): one job whose first
// chunks are the independent calls given with it, each on one thread; then chunks that pack the
// right operand, a (k block, panel) each, into one buffer all threads read; then the row blocks
// of C, claimed one at a time. A row-block chunk first waits until every packing chunk is done;
// chunks are claimed in order, so the packing chunks are all claimed (and, run in order on one
// thread, all done) before any row block starts.
typedef struct {
    product g;
    float *right;
    ck_gemm_call *calls;
    int call_count, panels, pack_chunks, threads;
    _Atomic int packed;
} shared_product;

// Rows i0 ..< i0 + ROW_BLOCK of C, element by element with the tiles' arithmetic (the same
// chains, summed in the same order), for a thread that could not have its packing buffer: part
// of C may already be written, so the product cannot be handed back.
static void rows_unpacked(const product *g, int i0) {
    const int end = g->m - i0 < ROW_BLOCK ? g->m : i0 + ROW_BLOCK;
    for (int i = i0; i < end; i++)
        for (int j = 0; j < g->n; j++) {
            float total = 0;
            for (int p0 = 0; p0 < g->k; p0 += K_BLOCK) {
                const int stop = g->k - p0 < K_BLOCK ? g->k : p0 + K_BLOCK;
                float chain = 0;
                for (int p = p0; p < stop; p++) chain = fmaf(*left_at(g, i, p), right_at(g, p)[g->transpose_b ? (ptrdiff_t)j * g->ldb : j], chain);
                total = p0 == 0 ? chain : total + chain;
            }
            g->c[(ptrdiff_t)i * g->ldc + j] = g->accumulate ? g->d[(ptrdiff_t)i * g->ldd + j] + total : total;
        }
}

static CK_AVX512 void shared_chunk(void *context, int chunk) {
    shared_product *job = context;
    const product *g = &job->g;
    if (chunk < job->call_count) {
        ck_gemm_call *call = &job->calls[chunk];
        call->done = ck_blocked_sgemm(call->transpose_a, call->transpose_b, call->m, call->n, call->k, call->a, call->lda, call->b, call->ldb, call->accumulate ? call->c : NULL, call->ldc, call->c, call->ldc);
        return;
    }
    chunk -= job->call_count;
    if (chunk < job->pack_chunks) {
        const int kb = chunk / job->panels, panel = chunk % job->panels, p0 = kb * K_BLOCK;
        const int kc = g->k - p0 < K_BLOCK ? g->k - p0 : K_BLOCK;
        pack_right_panel(g->transpose_b, kc, g->n, panel, right_at(g, p0), g->ldb, job->right + (size_t)g->width * p0);
        atomic_fetch_add_explicit(&job->packed, 1, memory_order_release);
        return;
    }
    const int i0 = (chunk - job->pack_chunks) * ROW_BLOCK;
    float *left = reserve_left(g);
    while (atomic_load_explicit(&job->packed, memory_order_acquire) < job->pack_chunks) _mm_pause();
    if (left) rows_outer_block(g, i0, i0 + job->threads * ROW_BLOCK, job->right, left);
    else rows_unpacked(g, i0);
}

// Per-thread buffer for the shared packed right operand of the jobs this thread starts.
static __thread float *shared_right;
static __thread size_t shared_right_capacity;

CK_AVX512 int ck_blocked_sgemm_parallel(int threads, int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, const float *addend, ptrdiff_t ld_addend, float *c, ptrdiff_t ldc, int call_count, ck_gemm_call *calls) {
    if (m <= 0 || n <= 0 || k <= 0) return 0;
    shared_product job = {.g = describe(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, addend, ld_addend, c, ldc), .threads = threads, .calls = calls, .call_count = call_count};
    if (threads < 2 || m < 2 * ROW_BLOCK || !rows_outer(&job.g)) return 0;
    job.right = grow(&shared_right, &shared_right_capacity, (size_t)job.g.width * k);
    if (!job.right) return 0;
    job.panels = (int)(job.g.width / PANEL);
    job.pack_chunks = (k + K_BLOCK - 1) / K_BLOCK * job.panels;
    atomic_init(&job.packed, 0);
    for (int call = 0; call < call_count; call++) calls[call].done = 0;
    ck_parallel_run(call_count + job.pack_chunks + (m + ROW_BLOCK - 1) / ROW_BLOCK, threads, shared_chunk, &job);
    return 1;
}

#else
void ck_set_blocked_sgemm(int enabled) {}
int ck_blocked_sgemm_enabled(void) { return 0; }
int ck_blocked_sgemm(int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, const float *addend, ptrdiff_t ld_addend, float *c, ptrdiff_t ldc) { return 0; }
int ck_blocked_sgemm_parallel(int threads, int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, const float *addend, ptrdiff_t ld_addend, float *c, ptrdiff_t ldc, int call_count, ck_gemm_call *calls) { return 0; }
void ck_blocked_sgemm_fail_packing(int fail) {}
#endif
