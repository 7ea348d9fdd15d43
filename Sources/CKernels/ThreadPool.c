// A persistent worker pool for the kernels' parallel regions.
//
// A base decoding step opens about 21 parallel regions of 50–300 µs each. Through Dispatch every
// region woke a parked worker (a futex wake, then the worker's trip through the scheduler) and
// parked it again afterwards: about 12% of a two-thread decoding profile was spent in
// `__schedule`, `sched_yield` and futex calls, and the caller waited for the late worker at
// the end of every region. On this project's 2-vCPU virtual machines waking a sleeping thread
// takes about 600 µs (a 70 µs job after a 300 µs pause took 690 µs on average), and the host
// often deschedules a vCPU for a millisecond or more.
//
// So a job's chunks are claimed, not assigned: the caller and every worker take the next
// unclaimed chunk until none is left. A worker that is asleep, or whose vCPU the host has
// descheduled, simply takes none, and the caller waits only for chunks already being computed.
// Which thread computes a chunk does not change its result. A worker polls for a while after
// each job, so the next region of the same step finds it awake, and only then sleeps on a
// condition variable.
//
// The job's state is one atomic word, generation << 32 | next chunk: a claim is a
// compare-and-swap on it, so a worker late from an earlier job can never claim a chunk of a
// newer one with the earlier job's function. A nested call (from inside a chunk) or a
// concurrent one (from another thread while a job runs) does not wait: it runs its chunks in
// order on its own thread.
#include "CKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_PAUSE() _mm_pause()
#else
#define CK_PAUSE() ((void)0)
#endif

enum { CK_MAX_WORKERS = 63 };

/// An idle worker polls with `pause` for `ck_spin_nanoseconds`, then with `sched_yield` (which
/// hands the core to any other runnable thread, such as an OpenBLAS worker) until
/// `ck_yield_nanoseconds`, and only then sleeps. The caller waits for chunks in progress the
/// same way, without sleeping.
static const int64_t ck_spin_nanoseconds = 50 * 1000;
static const int64_t ck_yield_nanoseconds = 2 * 1000 * 1000;

static pthread_mutex_t ck_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ck_wake = PTHREAD_COND_INITIALIZER;
static atomic_flag ck_busy = ATOMIC_FLAG_INIT;
/// generation << 32 | index of the next unclaimed chunk.
static _Atomic uint64_t ck_state;
static atomic_int ck_finished;
static atomic_int ck_sleepers;
static int ck_workers;

// The current job; written by the caller before it publishes the job's generation.
static _Atomic(ck_chunk_fn) ck_job_fn;
static _Atomic(void *) ck_job_context;
static atomic_int ck_job_chunks;

static _Thread_local int ck_inside_job;

/// The configured thread count (`ComputeSettings.threads`); 0 until set.
static atomic_int ck_configured_threads;

void ck_set_thread_count(int count) { atomic_store_explicit(&ck_configured_threads, count, memory_order_relaxed); }
int ck_thread_count(void) { return atomic_load_explicit(&ck_configured_threads, memory_order_relaxed); }
int ck_in_parallel_job(void) { return ck_inside_job; }
int ck_enter_job(void) {
    int was = ck_inside_job;
    ck_inside_job = 1;
    return was;
}
void ck_leave_job(int was) { ck_inside_job = was; }

static int64_t ck_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static uint32_t ck_generation_of(uint64_t state) { return (uint32_t)(state >> 32); }

/// Claims and runs chunks of job `generation` until none is left or a newer job has started.
/// The job's fields are read before the first claim; a successful claim proves the job was
/// still unfinished then, so the caller had not yet overwritten them.
static void ck_take_chunks(uint32_t generation) {
    const ck_chunk_fn fn = atomic_load_explicit(&ck_job_fn, memory_order_relaxed);
    void *const context = atomic_load_explicit(&ck_job_context, memory_order_relaxed);
    const uint32_t chunks = (uint32_t)atomic_load_explicit(&ck_job_chunks, memory_order_relaxed);
    uint64_t state = atomic_load_explicit(&ck_state, memory_order_acquire);
    for (;;) {
        if (ck_generation_of(state) != generation || (uint32_t)state >= chunks) return;
        if (!atomic_compare_exchange_weak_explicit(&ck_state, &state, state + 1, memory_order_acq_rel, memory_order_acquire)) continue;
        fn(context, (int)(uint32_t)state);
        atomic_fetch_add_explicit(&ck_finished, 1, memory_order_release);
        state = atomic_load_explicit(&ck_state, memory_order_acquire);
    }
}

/// Returns the generation of the next job once it differs from `seen`: polling first, then
/// asleep.
static uint32_t ck_wait_for_job(uint32_t seen) {
    const int64_t start = ck_now();
    uint32_t generation;
    for (int spins = 1;; spins++) {
        if ((generation = ck_generation_of(atomic_load_explicit(&ck_state, memory_order_acquire))) != seen) return generation;
        CK_PAUSE();
        if ((spins & 63) == 0 && ck_now() - start > ck_spin_nanoseconds) break;
    }
    while (ck_now() - start < ck_yield_nanoseconds) {
        if ((generation = ck_generation_of(atomic_load_explicit(&ck_state, memory_order_acquire))) != seen) return generation;
        sched_yield();
    }
    pthread_mutex_lock(&ck_lock);
    atomic_fetch_add(&ck_sleepers, 1);
    while ((generation = ck_generation_of(atomic_load(&ck_state))) == seen) pthread_cond_wait(&ck_wake, &ck_lock);
    atomic_fetch_sub(&ck_sleepers, 1);
    pthread_mutex_unlock(&ck_lock);
    return generation;
}

static void *ck_worker_main(void *argument) {
    uint32_t seen = (uint32_t)(uintptr_t)argument;
    ck_inside_job = 1;
    for (;;) {
        seen = ck_wait_for_job(seen);
        ck_take_chunks(seen);
    }
    return NULL;
}

/// Starts workers until there are `count`.
static void ck_grow(int count) {
    if (count > CK_MAX_WORKERS) count = CK_MAX_WORKERS;
    while (ck_workers < count) {
        // The worker starts from the current generation, so it waits for the next job.
        uint32_t seen = ck_generation_of(atomic_load(&ck_state));
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attributes, ck_worker_main, (void *)(uintptr_t)seen);
        pthread_attr_destroy(&attributes);
        if (failed) return;  // the chunks run on the threads there are
        ck_workers += 1;
    }
}

void ck_parallel_run(int chunks, int threads, ck_chunk_fn fn, void *context) {
    if (chunks <= 0) return;
    if (chunks == 1 || threads <= 1 || ck_inside_job || atomic_flag_test_and_set_explicit(&ck_busy, memory_order_acquire)) {
        int was = ck_enter_job();
        for (int chunk = 0; chunk < chunks; chunk++) fn(context, chunk);
        ck_leave_job(was);
        return;
    }
    ck_grow(threads - 1);
    const uint32_t generation = ck_generation_of(atomic_load(&ck_state)) + 1;
    atomic_store_explicit(&ck_job_fn, fn, memory_order_relaxed);
    atomic_store_explicit(&ck_job_context, context, memory_order_relaxed);
    atomic_store_explicit(&ck_job_chunks, chunks, memory_order_relaxed);
    atomic_store_explicit(&ck_finished, 0, memory_order_relaxed);
    atomic_store(&ck_state, (uint64_t)generation << 32);
    if (atomic_load(&ck_sleepers) > 0) {
        pthread_mutex_lock(&ck_lock);
        pthread_cond_broadcast(&ck_wake);
        pthread_mutex_unlock(&ck_lock);
    }
    ck_inside_job = 1;
    ck_take_chunks(generation);
    ck_inside_job = 0;
    const int64_t waitStart = ck_now();
    for (int spins = 1; atomic_load_explicit(&ck_finished, memory_order_acquire) < chunks; spins++) {
        if (spins > 64 && ck_now() - waitStart > ck_spin_nanoseconds) sched_yield();
        else CK_PAUSE();
    }
    atomic_flag_clear_explicit(&ck_busy, memory_order_release);
}
