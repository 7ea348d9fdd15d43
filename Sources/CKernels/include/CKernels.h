// Hand-vectorised float32 kernels for the decode path, compiled for AVX-512 and chosen at run
// time: the Swift targets build for baseline x86-64 (4-wide SSE), and OpenBLAS repacks its
// right operand on every call, which for a decode step's 16-row products costs as much as the
// product itself. Callers check `ck_has_avx512()` first and otherwise use their portable path.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the CPU and the OS support AVX-512 F, DQ and VL (what these kernels use), else 0.
int ck_has_avx512(void);

/// Columns per panel of a packed right operand.
enum { CK_PANEL_WIDTH = 32 };

/// Number of floats `ck_pack_panels` writes for a (k, n) matrix: ceil(n / 32) panels of k × 32.
size_t ck_packed_count(int k, int n);

/// Copies row-major b (k, n), row stride ldb, into panels: panel p holds columns
/// 32p ..< 32p + 32 as k rows of 32 floats, zero past column n. Plain C; any CPU.
void ck_pack_panels(int k, int n, const float *b, ptrdiff_t ldb, float *packed);

/// Number of floats `ck_pack_pair_panels` writes for a (k, 2f) gate/up matrix: ceil(f / 16)
/// panels of k × 32.
size_t ck_packed_pairs_count(int k, int f);

/// Copies row-major b (k, 2f), gate columns 0 ..< f then up columns f ..< 2f, row stride ldb,
/// into pair panels: panel p holds gate columns 16p ..< 16p + 16 then the same up columns, as k
/// rows of 32 floats, zero past column f. For `CK_EPILOGUE_SWIGLU`. Plain C; any CPU.
void ck_pack_pair_panels(int k, int f, const float *b, ptrdiff_t ldb, float *packed);

/// How `ck_sgemm_packed` finishes its products.
enum {
    /// c = a · b.
    CK_EPILOGUE_STORE = 0,
    /// c = c + a · b (a residual connection).
    CK_EPILOGUE_ADD = 1,
    /// c (m, n) = silu(g) · u where [g | u] = a · b (m, 2n), b packed by `ck_pack_pair_panels`
    /// with f = n; the arithmetic of `ck_swiglu_forward`.
    CK_EPILOGUE_SWIGLU = 2,
};

/// The products of row-major a (m, k), row stride lda, with panels p0 ..< p1 of `packed`, into
/// row-major c (row stride ldc) columns 32·p0 ..< min(32·p1, n) (16·p0 ..< min(16·p1, n) for
/// pair panels), finished by `epilogue`. b is packed by `ck_pack_panels` (n columns) or, for
/// `CK_EPILOGUE_SWIGLU`, by `ck_pack_pair_panels` (f = n). Each product element is one
/// sequential fused multiply-add chain over k, so a column range gives the same bits whichever
/// thread computes it and whichever epilogue finishes it. Requires `ck_has_avx512()`.
void ck_sgemm_packed(int m, int n, int k, int p0, int p1, const float *a, ptrdiff_t lda, const float *packed, float *c, ptrdiff_t ldc, int epilogue);

/// Causal attention of one sequence's new rows against its KV cache, for decoding.
///
/// query and out: (rows, heads, d) dense; keys and values: (capacity, key_heads, d) dense, their
/// first cached + rows positions filled. Query row i sits at position cached + i and sees keys
/// 0 ... cached + i. heads must be a multiple of key_heads; d a multiple of 16, at most 128.
/// scores: room for cached + rows floats. Per head: dot products (scaled query), a
/// max-subtracted softmax with a vectorised exp (Cephes polynomial, within 2 ulp of expf), the
/// weighted sum of values in key order, then one division by the softmax total.
/// Requires `ck_has_avx512()`.
void ck_cached_attention(int rows, int cached, int heads, int key_heads, int d, float scale, const float *query, const float *keys, const float *values, float *scores, float *out);

/// One row of a decode step's fused q/k/v projection: source holds heads query heads, then
/// key_heads key heads, then key_heads value heads, each d floats (d even). Writes the query
/// heads rotated (rotate-half RoPE with this row's cosine and sine tables of d / 2) to query,
/// the key heads rotated to keys, the value heads copied to values. The Swift kernel's
/// arithmetic, so the same bits. Requires `ck_has_avx512()`.
void ck_rotary_append_row(int heads, int key_heads, int d, const float *source, const float *cosine, const float *sine, float *query, float *keys, float *values);

/// Training SwiGLU over n elements: out = g·σ(g)·u. Requires `ck_has_avx512()`.
void ck_swiglu_forward(ptrdiff_t n, const float *gate, const float *up, float *out);

/// Its backward, with s = σ(g): dgate = dy·u·s·(1 + g(1 − s)), dup = dy·g·s.
/// Requires `ck_has_avx512()`.
void ck_swiglu_backward(ptrdiff_t n, const float *gate, const float *up, const float *dy, float *dgate, float *dup);

/// One score row of training attention, in place: the softmax of its first `visible` floats
/// (max-subtracted, exp as in `ck_cached_attention`), then zeros up to `width`. visible ≥ 1.
/// Requires `ck_has_avx512()`.
void ck_attention_softmax_row(int visible, int width, float *row);

/// The softmax gradient of one row of n probabilities p, in place on ds (dL/dp on entry):
/// ds = p ∘ (ds − Σ p ∘ ds). Requires `ck_has_avx512()`.
void ck_attention_softmax_backward_row(int n, const float *p, float *ds);

/// The float32 scalars of one AdamW step, each as `Kernels.adamW` rounds it to float32.
typedef struct {
    float decay_factor, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, inverse_root_correction2, epsilon;
} ck_adamw_scalars;

/// AdamW over n elements, `Kernels.adamW`'s float32 arithmetic (the same bits): p ← p·decay;
/// m ← β₁m + (1 − β₁)g; v ← β₂v + ((1 − β₂)g)g; p ← p − (step·m)/(√v · r₂ + ε).
/// Requires `ck_has_avx512()`.
void ck_adamw(ptrdiff_t n, float *parameter, const float *gradient, float *first, float *second, const ck_adamw_scalars *scalars);

/// One row of RMSNorm, `Kernels.rmsNorm`'s float32 arithmetic: y = (x · r) · w with
/// r = 1 / √(Σx² / n + ε), the sum as the Swift kernels' `dot` sums. Returns r.
/// Requires `ck_has_avx512()`.
float ck_rmsnorm_row(int n, const float *x, const float *weight, float epsilon, float *y);

/// One row of RMSNorm's backward, `Kernels.rmsNormBackward`'s float32 arithmetic:
/// dweight += (dy · x) · r; dx = (r · w) · dy − x · c (added to dx when accumulate is 1) with
/// c = Σ(dy · w · x) · r · r · r / n. Requires `ck_has_avx512()`.
void ck_rmsnorm_backward_row(int n, const float *x, const float *weight, const float *dy, float inverse, int accumulate, float *dx, float *dweight);

/// Floats of scratch `ck_attention_forward` and `ck_attention_backward` need for these sizes.
size_t ck_attention_scratch_count(int tq, int tk, int d);

/// Causal attention of one (batch row, key head) unit and its `group` query heads,
/// `Kernels.attention`'s float32 path. Query row i sees keys 0 ..< clamp(offset + i + 1, 0,
/// length). Query rows go in tiles of 8 from row 0, and each tile's products stop at the last key
/// its last row sees (the tile's extent).
/// - q, o: the group's first query head, (tq × d) with row stride ldq, the next head d floats on;
///   k, v: (tk × d), row stride ldk.
/// - p: the group's first head's probabilities softmax(scale · q kᵀ) (tq × tk), the next head
///   tq · tk floats on; null when they are not kept. Row i is written up to its tile's extent
///   rounded up to a multiple of 8 (at most tk), zero past the keys it sees, and not beyond: the
///   backward pass reads no further.
/// - scratch: `ck_attention_scratch_count(tq, tk, d)` floats.
/// Requires `ck_has_avx512()`.
void ck_attention_forward(int tq, int tk, int group, int d, float scale, int offset, int length, const float *q, ptrdiff_t ldq, const float *k, const float *v, ptrdiff_t ldk, float *o, float *p, float *scratch);

/// Its backward, given p from the forward and dout (laid out as q): writes dq (as q) and dk, dv
/// (as k), summed over the group. Requires `ck_has_avx512()`.
void ck_attention_backward(int tq, int tk, int group, int d, float scale, int offset, int length, const float *q, ptrdiff_t ldq, const float *k, const float *v, ptrdiff_t ldk, const float *p, const float *dout, float *dq, float *dk, float *dv, float *scratch);

/// Float32 GEMM on AVX-512 FMAs: c (m × n, row stride ldc) = op(a) · op(b), or op(a) · op(b) +
/// addend when `addend` (m × n, row stride ld_addend) is not NULL: c itself (BLAS's beta 1), or
/// a matrix apart from c, which is then neither copied nor written. op(a) is m × k: a[i·lda + p],
/// or a[p·lda + i] when transpose_a; op(b) is k × n: b[p·ldb + j], or b[j·ldb + p] when
/// transpose_b. Each element of the product is the sum in order of one fused multiply-add chain
/// from 0 per k block of 128, and the addend is added to it afterwards (as BLAS adds beta·C),
/// whatever m, n or where the block sits.
/// Single-threaded. Returns 0 (c untouched) if its packing buffers could not be allocated.
/// Requires `ck_has_avx512()`.
int ck_blocked_sgemm(int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, const float *addend, ptrdiff_t ld_addend, float *c, ptrdiff_t ldc);

/// One single-threaded `ck_blocked_sgemm` call to run inside `ck_blocked_sgemm_parallel`'s job
/// (adding into c in place when `accumulate`); `done` is its return value.
typedef struct {
    int transpose_a, transpose_b, m, n, k;
    const float *a;
    ptrdiff_t lda;
    const float *b;
    ptrdiff_t ldb;
    int accumulate;
    float *c;
    ptrdiff_t ldc;
    int done;
} ck_gemm_call;

/// `ck_blocked_sgemm` on up to `threads` threads of `ck_parallel_run`, with the same bits, for a
/// product the kernel runs rows outer (C large, the packed right operand at most 1 MiB): the
/// right operand is packed once into a buffer every thread reads, and the 96-row blocks of C are
/// claimed one at a time, so a thread the host slows leaves its share to the others. The
/// `call_count` independent `calls` (which must not write what the product reads or writes) run
/// first in the same job, one thread each, and the row blocks fill in around them. Returns 0
/// (nothing run, c untouched) when the product does not qualify (fewer than 2 threads or 192
/// rows, or not rows outer) or the shared buffer could not be allocated; else 1, with each call's
/// `done` set. Requires `ck_has_avx512()`.
int ck_blocked_sgemm_parallel(int threads, int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, const float *addend, ptrdiff_t ld_addend, float *c, ptrdiff_t ldc, int call_count, ck_gemm_call *calls);

/// For tests: while `fail` is nonzero every thread's packing buffers are refused, as when they
/// cannot be allocated (`ck_blocked_sgemm` returns 0; a row block of `ck_blocked_sgemm_parallel`
/// is computed unpacked, with the same bits).
void ck_blocked_sgemm_fail_packing(int fail);

/// Whether float32 products at full precision go to `ck_blocked_sgemm` (1, the default) or to
/// BLAS (0).
void ck_set_blocked_sgemm(int enabled);
int ck_blocked_sgemm_enabled(void);

/// 1 when the CPU has AMX-TILE, AMX-BF16 and AVX512-BF16 and the OS lets this process use the
/// tile state (asked for on the first call), else 0.
int ck_has_amx(void);

/// Float32 GEMM through AMX bfloat16 tiles: c (m × n, row stride ldc) = op(a) · op(b), or c +=
/// when `accumulate`. op(a) is m × k: a[i·lda + p], or a[p·lda + i] when transpose_a; op(b) is
/// k × n: b[p·ldb + j], or b[j·ldb + p] when transpose_b. parts 1 rounds each operand to
/// bfloat16; parts 2 splits each into two bfloat16 (hi + lo) and sums hi·lo + hi·hi + lo·hi.
/// Products accumulate in float32. Single-threaded; each element's arithmetic does not depend on
/// m, n or where the block sits. Returns 0 (c untouched) if its packing buffers could not be
/// allocated. Requires `ck_has_amx()`.
int ck_amx_sgemm(int transpose_a, int transpose_b, int m, int n, int k, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, int accumulate, float *c, ptrdiff_t ldc, int parts);

/// The bfloat16 parts float32 GEMMs use through AMX (`MatmulPrecision`): 0 for float32 BLAS
/// (highest), 2 (high) or 1 (medium).
void ck_set_amx_parts(int parts);
int ck_amx_parts(void);

/// A chunk of a parallel region: `chunk` in 0 ..< chunks.
typedef void (*ck_chunk_fn)(void *context, int chunk);

/// Runs fn(context, c) for every c in 0 ..< chunks and returns when all are done. The calling
/// thread and up to threads − 1 persistent workers claim chunks one at a time, in increasing
/// order, so a worker that is asleep or descheduled delays nothing it has not started (and a
/// chunk may wait for earlier ones: they have all been claimed); which thread runs a chunk must
/// not change its result. Workers poll briefly between jobs before they sleep. A nested call
/// (from inside a chunk) or one made while another thread's job runs executes its chunks in
/// order on the calling thread, still marked as inside a job. Any CPU.
void ck_parallel_run(int chunks, int threads, ck_chunk_fn fn, void *context);

/// The thread count kernels and GEMMs split over (`ComputeSettings.threads`); 0 until set.
void ck_set_thread_count(int count);
int ck_thread_count(void);

/// Whether the calling thread is running a chunk of a parallel region (a worker, or the caller
/// while it takes chunks): work started here runs on this thread alone.
int ck_in_parallel_job(void);

/// Marks the calling thread as running chunks of a parallel region until `ck_leave_job`, which
/// takes what `ck_enter_job` returned: for chunks run in order on the calling thread, which
/// must behave as they would on the workers.
int ck_enter_job(void);
void ck_leave_job(int was);

/// Whether `GEMMRecorder` is recording (the benchmark harness's replay of a train step's GEMMs).
/// Every float32 GEMM reads it with one relaxed load, so a run that records nothing takes no lock.
extern int ck_gemm_recording;

static inline int ck_gemm_recording_active(void) { return __atomic_load_n(&ck_gemm_recording, __ATOMIC_RELAXED); }
static inline void ck_set_gemm_recording(int active) { __atomic_store_n(&ck_gemm_recording, active, __ATOMIC_RELAXED); }

#ifdef __cplusplus
}
#endif

#endif
