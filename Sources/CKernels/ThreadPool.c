// A persistent worker pool for the kernels' parallel regions.
//
// A base decoding step opens about 21 parallel regions of 50–300 µs each. Through Dispatch every
// region woke a parked worker (a futex wake, then the worker's trip through the scheduler) and
// parked it again afterwards: about 12% of a two-thread decoding profile was spent in
// `__schedule`, `sched_yield` and futex calls, and the caller waited for the late worker at
// the end of every region. Here a worker spins for a short while after each job, so the next
// region of the same step finds it awake, and only then sleeps on a condition variable.
//
// One job at a time: every worker takes part in every job (it runs chunk `index` if there is
// one), so a worker can never read a newer job's fields while the caller is still writing them.
// A nested call (from inside a chunk) or a concurrent one (from another thread while a job
// runs) does not wait: it runs its chunks in order on its own thread.
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
/// `ck_yield_nanoseconds`, and only then sleeps: waking a sleeping thread costs about 600 µs on
/// this project's 2-vCPU virtual machines (a 70 µs job after a 300 µs pause took 690 µs on
/// average), against a few microseconds for a polling one. The caller waits for the workers the
/// same way, without sleeping.
static const int64_t ck_spin_nanoseconds = 20 * 1000;
static const int64_t ck_yield_nanoseconds = 2 * 1000 * 1000;

static pthread_mutex_t ck_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ck_wake = PTHREAD_COND_INITIALIZER;
static atomic_flag ck_busy = ATOMIC_FLAG_INIT;
static _Atomic uint64_t ck_generation;
static atomic_int ck_pending;
static atomic_int ck_sleepers;
static int ck_workers;

// The current job; written by the caller before `ck_generation` is advanced.
static ck_chunk_fn ck_job_fn;
static void *ck_job_context;
static int ck_job_chunks;

static _Thread_local int ck_inside_job;

static int64_t ck_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/// Returns once `ck_generation` differs from `seen`: spinning first, then asleep.
static void ck_wait_for_job(uint64_t seen) {
    const int64_t start = ck_now();
    for (int spins = 1;; spins++) {
        if (atomic_load(&ck_generation) != seen) return;
        CK_PAUSE();
        if ((spins & 63) == 0 && ck_now() - start > ck_spin_nanoseconds) break;
    }
    while (ck_now() - start < ck_yield_nanoseconds) {
        if (atomic_load(&ck_generation) != seen) return;
        sched_yield();
    }
    pthread_mutex_lock(&ck_lock);
    atomic_fetch_add(&ck_sleepers, 1);
    while (atomic_load(&ck_generation) == seen) pthread_cond_wait(&ck_wake, &ck_lock);
    atomic_fetch_sub(&ck_sleepers, 1);
    pthread_mutex_unlock(&ck_lock);
}

/// What a new worker starts from: its index and the generation its creator saw, so that the job
/// published right after its creation is new to it however late the thread starts.
struct ck_worker_start {
    int index;
    uint64_t seen;
};

static void *ck_worker_main(void *argument) {
    const struct ck_worker_start start = *(struct ck_worker_start *)argument;
    free(argument);
    const int index = start.index;
    uint64_t seen = start.seen;
    ck_inside_job = 1;
    for (;;) {
        ck_wait_for_job(seen);
        seen = atomic_load(&ck_generation);
        if (index < ck_job_chunks) ck_job_fn(ck_job_context, index);
        atomic_fetch_sub_explicit(&ck_pending, 1, memory_order_release);
    }
    return NULL;
}

/// Starts workers until there are `count`; returns how many there are.
static int ck_grow(int count) {
    if (count > CK_MAX_WORKERS) count = CK_MAX_WORKERS;
    while (ck_workers < count) {
        struct ck_worker_start *start = malloc(sizeof *start);
        if (!start) break;
        start->index = ck_workers + 1;
        start->seen = atomic_load(&ck_generation);
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&thread, &attributes, ck_worker_main, start);
        pthread_attr_destroy(&attributes);
        if (failed) {
            free(start);
            break;
        }
        ck_workers += 1;
    }
    return ck_workers;
}

void ck_parallel_run(int chunks, ck_chunk_fn fn, void *context) {
    if (chunks <= 0) return;
    if (chunks == 1 || ck_inside_job || atomic_flag_test_and_set_explicit(&ck_busy, memory_order_acquire)) {
        for (int chunk = 0; chunk < chunks; chunk++) fn(context, chunk);
        return;
    }
    const int workers = ck_grow(chunks - 1);
    ck_job_fn = fn;
    ck_job_context = context;
    ck_job_chunks = chunks;
    atomic_store(&ck_pending, workers);
    atomic_fetch_add(&ck_generation, 1);
    if (atomic_load(&ck_sleepers) > 0) {
        pthread_mutex_lock(&ck_lock);
        pthread_cond_broadcast(&ck_wake);
        pthread_mutex_unlock(&ck_lock);
    }
    ck_inside_job = 1;
    fn(context, 0);
    // Chunks no worker could take (thread creation failed) run here.
    for (int chunk = workers + 1; chunk < chunks; chunk++) fn(context, chunk);
    ck_inside_job = 0;
    const int64_t waitStart = ck_now();
    for (int spins = 1; atomic_load_explicit(&ck_pending, memory_order_acquire) > 0; spins++) {
        if (spins > 64 && ck_now() - waitStart > ck_spin_nanoseconds) sched_yield();
        else CK_PAUSE();
    }
    atomic_flag_clear_explicit(&ck_busy, memory_order_release);
}
