// Persistent helper threads for `Parallel`'s parallel regions.
//
// libdispatch's `concurrentPerform` often started the second part of a 2-part region late on this
// project's machines: in a fig5 training step's forward, part 1 began on average 0.84 ms after the region
// began, and in 38 of 100 regions the caller ran it itself after its own part (docs/performance.md). Two
// causes: libdispatch's thread management, and a kernel that wakes a helper on the waker's busy CPU
// (below). Here a helper sleeps on a condition variable between regions (nobody spins) and is kept off
// the caller's CPU; it joins a region about 40 µs after it starts.
//
// One region runs at a time. A region asked for while another runs (a part that opens a region of its
// own, or a second thread) is refused, and the caller runs its parts itself.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "CUnrollSupport.h"

enum { max_helpers = 255 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;     // helpers wait here for a region
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;     // the caller waits here for the helpers
static atomic_flag busy = ATOMIC_FLAG_INIT;                // a region is running

// The region, written under `lock` before `generation` moves on.
static unroll_part_fn job_fn;
static void *job_context;
static long job_parts;
static atomic_long next_part;      // the next part to claim
static long seats;                 // helpers that may still join (the region's thread count − 1)
static long active;                // helpers inside the region
static bool closed;                // every part claimed: late helpers stay out
static unsigned long generation;

static int helpers;                // threads started so far
static pthread_t helper_threads[max_helpers];
static int pinned_away_from = -1;  // the caller's CPU that the helpers' affinity excludes
static int cpus;                   // CPUs this process may run on (0: not counted yet)

// More threads than CPUs would only take turns: a region uses at most one thread per CPU.
static int allowed_cpus(void) {
    if (cpus == 0) {
        cpu_set_t allowed;
        cpus = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
        if (cpus < 1) cpus = 1;
    }
    return cpus;
}

// Keeps the helpers off the CPU the caller runs on. Some kernels (this project's VMs among them) wake a
// helper on the waker's busy CPU, where it waits for the next balancing tick or for the caller to finish
// every part alone; with that CPU excluded the wake-up picks another. Changes only when the caller moves.
static void pin_helpers_away_from(int cpu) {
    if (cpu < 0 || cpu == pinned_away_from) return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || !CPU_ISSET(cpu, &allowed) || CPU_COUNT(&allowed) < 2) return;
    CPU_CLR(cpu, &allowed);
    for (int k = 0; k < helpers; k++) pthread_setaffinity_np(helper_threads[k], sizeof allowed, &allowed);
    pinned_away_from = cpu;
}

// Claims and runs parts until none is left.
static void claim_parts(unroll_part_fn fn, void *context, long parts) {
    long part;
    while ((part = atomic_fetch_add_explicit(&next_part, 1, memory_order_relaxed)) < parts) fn(context, part);
}

// `arg` is the generation before the region the helper is started for, so that it joins that region:
// reading `generation` itself once it holds the lock would skip it (the caller has moved it on by then).
static void *helper_main(void *arg) {
    pthread_mutex_lock(&lock);
    unsigned long seen = (unsigned long)arg;
    for (;;) {
        while (generation == seen) pthread_cond_wait(&wake, &lock);
        seen = generation;
        if (closed || seats <= 0) continue;
        seats--;
        active++;
        unroll_part_fn fn = job_fn;
        void *context = job_context;
        long parts = job_parts;
        pthread_mutex_unlock(&lock);
        claim_parts(fn, context, parts);
        pthread_mutex_lock(&lock);
        if (--active == 0) pthread_cond_signal(&done);
    }
    return NULL;
}

// A forked child has none of the helpers (and maybe a lock held by one): it starts afresh.
static void reset_in_child(void) {
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&wake, NULL);
    pthread_cond_init(&done, NULL);
    atomic_flag_clear(&busy);
    helpers = 0;
    active = 0;
    pinned_away_from = -1;
    cpus = 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void register_fork_handler(void) { pthread_atfork(NULL, NULL, reset_in_child); }

bool unroll_pool_run(long parts, long threads, unroll_part_fn fn, void *context) {
    if (atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) return false;
    pthread_once(&once, register_fork_handler);
    pthread_mutex_lock(&lock);
    long wanted = (threads < parts ? threads : parts) - 1, limit = allowed_cpus() - 1;
    if (limit > max_helpers) limit = max_helpers;
    if (wanted > limit) wanted = limit;
    while (helpers < wanted) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 8 << 20);   // parts run Swift code, as on the main thread
        int failed = pthread_create(&thread, &attr, helper_main, (void *)generation);
        pthread_attr_destroy(&attr);
        if (failed) break;
        helper_threads[helpers++] = thread;
        pinned_away_from = -1;
    }
    if (wanted > helpers) wanted = helpers;
    if (wanted > 0) pin_helpers_away_from(sched_getcpu());
    job_fn = fn;
    job_context = context;
    job_parts = parts;
    atomic_store_explicit(&next_part, 0, memory_order_relaxed);
    seats = wanted;
    closed = false;
    generation++;
    if (wanted > 0) pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);

    claim_parts(fn, context, parts);

    // Every part is claimed; wait for the helpers still running theirs.
    pthread_mutex_lock(&lock);
    closed = true;
    while (active > 0) pthread_cond_wait(&done, &lock);
    pthread_mutex_unlock(&lock);
    atomic_flag_clear_explicit(&busy, memory_order_release);
    return true;
}
