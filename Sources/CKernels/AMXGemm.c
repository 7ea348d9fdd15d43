#include "CKernels.h"

// Float32 GEMMs on Sapphire Rapids' AMX tiles, for `MatmulPrecision.high` and `.medium`.
//
// AMX multiplies bfloat16 (8 significant bits) and accumulates in float32: one TDPBF16PS is a
// 16 × 16 × 32 product, and one core measured 720–1,360 GFLOPS on four independent tile chains
// (the host's speed swings) against about 100 for float32 FMAs on the same core. So, as PyTorch's
// `torch.set_float32_matmul_precision` does:
// - medium: each float32 operand is rounded to bfloat16 (one product per tile pair);
// - high: each operand is split into x = hi + lo, both bfloat16 (hi the nearest to x, lo the
//   nearest to x − hi, about 16 significant bits together), and the product is
//   hi·lo + hi·hi + lo·hi (three products, lo·lo ≈ 2⁻¹⁶ relative is dropped).
// Both accumulate every product in float32, in a fixed order: over k in 32-wide chunks, chunk
// by chunk, and within a chunk the three terms in the order above.
//
// Layout. A tile holds 16 rows of 64 bytes. Left tiles are 16 rows of op(A) × 32 k, bfloat16;
// right tiles are 16 pairs of k (rows) × 16 columns, each column's two k values adjacent (the
// "VNNI" layout TDPBF16PS reads). Operands are packed into such tiles, zero past m, n and k:
// - rows of 32 contiguous floats (A as stored, or Bᵀ, a torch.nn.Linear weight) convert into
//   16 rows of 16 bfloat16 pairs, which is a left tile as it is and a right tile transposed;
// - 32 rows of 16 contiguous floats (Aᵀ as stored, or B) convert pairwise into 16 rows of 16
//   interleaved pairs, which is a right tile as it is and a left tile transposed;
// the transpose is of 32-bit elements, 16 × 16, in registers.
//
// Blocking: k in blocks of 256 (right operand packed whole per block, ≤ 768 KiB for 768
// columns with both parts), rows in blocks of 128 (left operand packed per block, 128 KiB), and
// a 32 × 32 block of C in four accumulator tiles per pass over a k block, loaded from C when it
// accumulates. Each element of C is computed by the same operations whatever m and n around it
// are, so a row or column block of a split product has the bits of the whole.

#if defined(__x86_64__)
#include "Vector.h"
#include <cpuid.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CK_AMX __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512bf16,fma,amx-tile,amx-bf16")))

enum { K_BLOCK = 256, M_BLOCK = 128, TILE_ELEMENTS = 512 };

static int amx_parts = 0;

void ck_set_amx_parts(int parts) { amx_parts = parts; }
int ck_amx_parts(void) { return amx_parts; }

// CPUID: AMX-TILE and AMX-BF16 (leaf 7 EDX bits 24 and 22), AVX512-BF16 (leaf 7.1 EAX bit 5);
// then the kernel's permission to use the tile data state (Linux 5.16+, arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA), which is per process.
static int amx_probe(void) {
    if (!ck_has_avx512()) return 0;
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(edx & (1u << 24)) || !(edx & (1u << 22))) return 0;
    if (!(ebx & (1u << 30))) return 0;  // AVX512BW, for the packing's 16-bit shuffles
    if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(eax & (1u << 5))) return 0;
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int ck_has_amx(void) {
    static int state = -1;
    if (state < 0) state = amx_probe();
    return state;
}

// Float32 → bfloat16 (round to nearest even) of 16 lanes, as 16-bit lanes zero-extended to 32.
static inline CK_AMX __attribute__((always_inline)) __m512i bf16_bits(__m512 x) {
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x));
}

// x = hi + lo as above: hi and lo bfloat16 bits in 32-bit lanes. Where hi is not finite, lo is 0
// (x − hi would be NaN and poison the product).
static inline CK_AMX __attribute__((always_inline)) void split(__m512 x, __m512i *hi, __m512i *lo) {
    *hi = bf16_bits(x);
    __m512 high = _mm512_castsi512_ps(_mm512_slli_epi32(*hi, 16));
    __mmask16 finite = ~_mm512_fpclass_ps_mask(high, 0x99);  // QNaN, SNaN, ±∞
    *lo = bf16_bits(_mm512_maskz_sub_ps(finite, x, high));
}

static inline CK_AMX __attribute__((always_inline)) __mmask16 lanes(int count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

// 16 lines of 32 contiguous floats (line i at src + i·ld, lines ≥ lines_valid and floats ≥ width
// read as 0) → per part, 16 rows of 16 bfloat16 pairs (hi[i], lo[i]).
static inline CK_AMX __attribute__((always_inline)) void read_rows(const float *src, ptrdiff_t ld, int lines_valid, int width, int parts, __m512i hi[16], __m512i lo[16]) {
    __mmask16 m0 = lanes(width), m1 = lanes(width - 16);
    for (int i = 0; i < 16; i++) {
        __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
        if (i < lines_valid) {
            x0 = _mm512_maskz_loadu_ps(m0, src + i * ld);
            x1 = _mm512_maskz_loadu_ps(m1, src + i * ld + 16);
        }
        if (parts == 1) {
            hi[i] = _mm512_packus_epi32(bf16_bits(x0), bf16_bits(x1));
        } else {
            __m512i h0, l0, h1, l1;
            split(x0, &h0, &l0);
            split(x1, &h1, &l1);
            hi[i] = _mm512_packus_epi32(h0, h1);
            lo[i] = _mm512_packus_epi32(l0, l1);
        }
    }
    // packus interleaves 128-bit lanes (lane L holds x0's lane L then x1's lane L); put the 32
    // bfloat16 back in order.
    const __m512i order = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
    for (int i = 0; i < 16; i++) {
        hi[i] = _mm512_permutexvar_epi64(order, hi[i]);
        if (parts == 2) lo[i] = _mm512_permutexvar_epi64(order, lo[i]);
    }
}

// 32 lines of 16 contiguous floats (line j at src + j·ld, lines ≥ lines_valid and floats ≥ width
// read as 0) → per part, 16 rows of 16 pairs: row r, element e = (line 2r, line 2r + 1)[e].
static inline CK_AMX __attribute__((always_inline)) void read_pairs(const float *src, ptrdiff_t ld, int lines_valid, int width, int parts, __m512i hi[16], __m512i lo[16]) {
    __mmask16 m = lanes(width);
    for (int r = 0; r < 16; r++) {
        __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
        if (2 * r < lines_valid) x0 = _mm512_maskz_loadu_ps(m, src + 2 * r * ld);
        if (2 * r + 1 < lines_valid) x1 = _mm512_maskz_loadu_ps(m, src + (2 * r + 1) * ld);
        if (parts == 1) {
            hi[r] = _mm512_or_si512(bf16_bits(x0), _mm512_slli_epi32(bf16_bits(x1), 16));
        } else {
            __m512i h0, l0, h1, l1;
            split(x0, &h0, &l0);
            split(x1, &h1, &l1);
            hi[r] = _mm512_or_si512(h0, _mm512_slli_epi32(h1, 16));
            lo[r] = _mm512_or_si512(l0, _mm512_slli_epi32(l1, 16));
        }
    }
}

static inline CK_AMX __attribute__((always_inline)) void store_tile(uint16_t *tile, const __m512i rows[16]) {
    for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(tile + i * 32), rows[i]);
}

// Tile (group or panel g, chunk q, part s) of a packed operand with `chunks` chunks.
static inline uint16_t *tile_at(uint16_t *packed, int g, int q, int chunks, int parts, int s) {
    return packed + ((ptrdiff_t)(g * chunks + q) * parts + s) * TILE_ELEMENTS;
}

// Packs an operand into tiles: `groups` groups of 16 lines (rows of op(A), or columns of op(B))
// × k [0, kc), `extent` lines valid. Lines run along k in memory (line i at x + i·ld) when
// `along_k`, else k runs across lines (k step p at x + p·ld); `transpose` turns each tile's 16 ×
// 16 pairs over. A left operand is along k as stored and k-major transposed; a right one the
// other way round (see the layout at the top).
static CK_AMX void pack(int along_k, int transpose, int extent, int kc, int groups, const float *x, ptrdiff_t ld, int parts, uint16_t *packed) {
    const int chunks = (kc + 31) / 32;
    __m512i hi[16], lo[16];
    // k-major operands go groups inner, so each of the 32 lines a chunk reads is read along its
    // row (the lines are ld apart, in different pages, where the prefetchers do not follow).
    const int outer = along_k ? groups : chunks, inner = along_k ? chunks : groups;
    for (int o = 0; o < outer; o++) {
        for (int i = 0; i < inner; i++) {
            const int g = along_k ? o : i, q = along_k ? i : o;
            if (along_k) {
                read_rows(x + (ptrdiff_t)(16 * g) * ld + 32 * q, ld, extent - 16 * g, kc - 32 * q, parts, hi, lo);
            } else {
                read_pairs(x + (ptrdiff_t)(32 * q) * ld + 16 * g, ld, kc - 32 * q, extent - 16 * g, parts, hi, lo);
            }
            if (transpose) {
                transpose16(hi);
                if (parts == 2) transpose16(lo);
            }
            store_tile(tile_at(packed, g, q, chunks, parts, 0), hi);
            if (parts == 2) store_tile(tile_at(packed, g, q, chunks, parts, 1), lo);
        }
    }
}

typedef struct {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

// The four accumulators += left tiles 4–5 × right tiles 6–7 (tile numbers must be constants).
#define PRODUCTS_2X2() \
    do { \
        _tile_dpbf16ps(0, 4, 6); \
        _tile_dpbf16ps(1, 4, 7); \
        _tile_dpbf16ps(2, 5, 6); \
        _tile_dpbf16ps(3, 5, 7); \
    } while (0)

// The 32 × 32 block of C at c (ldc floats a row): tiles 0–3 accumulate (rows 0–15 and 16–31 ×
// columns 0–15 and 16–31), tiles 4–5 hold left tiles, 6–7 right tiles. Full blocks load and store
// C directly; blocks cut by m or n go through a 32 × 32 buffer.
static CK_AMX void block(int chunks, int parts, const uint16_t *left0, const uint16_t *left1, const uint16_t *right0, const uint16_t *right1, float *c, ptrdiff_t ldc, int rows, int columns, int accumulate) {
    float buffer[32 * 32] __attribute__((aligned(64)));
    const int full = rows >= 32 && columns >= 32;
    float *target = full ? c : buffer;
    const ptrdiff_t ld = full ? ldc : 32;
    if (accumulate) {
        if (!full) {
            memset(buffer, 0, sizeof buffer);
            for (int i = 0; i < rows && i < 32; i++) memcpy(buffer + 32 * i, c + i * ldc, sizeof(float) * (columns < 32 ? columns : 32));
        }
        _tile_loadd(0, target, ld * sizeof(float));
        _tile_loadd(1, target + 16, ld * sizeof(float));
        _tile_loadd(2, target + 16 * ld, ld * sizeof(float));
        _tile_loadd(3, target + 16 * ld + 16, ld * sizeof(float));
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    const ptrdiff_t step = (ptrdiff_t)parts * TILE_ELEMENTS;
    for (int q = 0; q < chunks; q++) {
        const uint16_t *a0 = left0 + q * step, *a1 = left1 + q * step, *b0 = right0 + q * step, *b1 = right1 + q * step;
        if (parts == 1) {
            _tile_loadd(4, a0, 64);
            _tile_loadd(5, a1, 64);
            _tile_loadd(6, b0, 64);
            _tile_loadd(7, b1, 64);
            PRODUCTS_2X2();
        } else {
            // hi·lo, hi·hi, lo·hi: eight tile loads for twelve products.
            _tile_loadd(4, a0, 64);
            _tile_loadd(5, a1, 64);
            _tile_loadd(6, b0 + TILE_ELEMENTS, 64);
            _tile_loadd(7, b1 + TILE_ELEMENTS, 64);
            PRODUCTS_2X2();
            _tile_loadd(6, b0, 64);
            _tile_loadd(7, b1, 64);
            PRODUCTS_2X2();
            _tile_loadd(4, a0 + TILE_ELEMENTS, 64);
            _tile_loadd(5, a1 + TILE_ELEMENTS, 64);
            PRODUCTS_2X2();
        }
    }
    _tile_stored(0, target, ld * sizeof(float));
    _tile_stored(1, target + 16, ld * sizeof(float));
    _tile_stored(2, target + 16 * ld, ld * sizeof(float));
    _tile_stored(3, target + 16 * ld + 16, ld * sizeof(float));
    if (!full) {
        for (int i = 0; i < rows && i < 32; i++) memcpy(c + i * ldc, buffer + 32 * i, sizeof(float) * (columns < 32 ? columns : 32));
    }
}

// Per-thread packing buffers, grown as needed and kept: the kernels' workers are persistent.
static __thread uint16_t *packed_left, *packed_right;
static __thread size_t left_capacity, right_capacity;

static uint16_t *reserve(uint16_t **buffer, size_t *capacity, size_t elements) {
    if (elements > *capacity) {
        free(*buffer);
        size_t bytes = (elements * sizeof(uint16_t) + 63) / 64 * 64;
        *buffer = aligned_alloc(64, bytes);
        *capacity = *buffer ? elements : 0;
    }
    return *buffer;
}

CK_AMX int ck_amx_sgemm(int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc, int parts) {
    if (m <= 0 || n <= 0) return 1;
    const int panels = (n + 31) / 32 * 2;
    const int k_block = k < K_BLOCK ? k : K_BLOCK;
    const int chunks_max = (k_block + 31) / 32;
    uint16_t *right = reserve(&packed_right, &right_capacity, (size_t)panels * chunks_max * parts * TILE_ELEMENTS);
    uint16_t *left = reserve(&packed_left, &left_capacity, (size_t)(M_BLOCK / 16) * chunks_max * parts * TILE_ELEMENTS);
    if (!right || !left) return 0;

    tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    _tile_loadconfig(&config);

    if (k <= 0) {
        // C = 0 (or C unchanged when accumulating).
        if (!accumulate) {
            for (int i = 0; i < m; i++) memset(c + (ptrdiff_t)i * ldc, 0, sizeof(float) * n);
        }
    }
    for (int p0 = 0; p0 < k; p0 += K_BLOCK) {
        const int kc = k - p0 < K_BLOCK ? k - p0 : K_BLOCK;
        const int chunks = (kc + 31) / 32;
        const float *b_block = transpose_b ? b + p0 : b + (ptrdiff_t)p0 * ldb;
        pack(transpose_b, transpose_b, n, kc, panels, b_block, ldb, parts, right);
        for (int i0 = 0; i0 < m; i0 += M_BLOCK) {
            const int mc = m - i0 < M_BLOCK ? m - i0 : M_BLOCK;
            const int groups = (mc + 31) / 32 * 2;
            const float *a_block = transpose_a ? a + (ptrdiff_t)p0 * lda + i0 : a + (ptrdiff_t)i0 * lda + p0;
            pack(!transpose_a, transpose_a, mc, kc, groups, a_block, lda, parts, left);
            for (int g = 0; g < groups; g += 2) {
                for (int j = 0; j < panels; j += 2) {
                    block(chunks, parts, tile_at(left, g, 0, chunks, parts, 0), tile_at(left, g + 1, 0, chunks, parts, 0),
                        tile_at(right, j, 0, chunks, parts, 0), tile_at(right, j + 1, 0, chunks, parts, 0),
                        c + (ptrdiff_t)(i0 + 16 * g) * ldc + 16 * j, ldc, mc - 16 * g, n - 16 * j, accumulate || p0 > 0);
                }
            }
        }
    }
    _tile_release();
    return 1;
}

#else
void ck_set_amx_parts(int parts) { (void)parts; }
int ck_amx_parts(void) { return 0; }
int ck_has_amx(void) { return 0; }
int ck_amx_sgemm(int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc, int parts) { return 0; }
#endif
