#include "threadpool.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* How long an idle worker spins before it sleeps. The model's deepest levels run stretches of
 * tens of microseconds on the calling thread between parallel ops; a worker asleep by then took
 * 20-40 us to wake (a 256 frame's decoder stage dec3 0.084 -> 0.043 ms on two cores with the
 * longer spin). Between frames, half a millisecond of spinning is the price. With more threads
 * than the CPUs this process may use, a spinning worker takes the core from the thread it waits
 * for (a frame took 54 ms instead of 6 with 3 threads on 2 cores), so it spins only briefly.
 * After 50 us of spinning (past most serial stretches inside a frame) it yields now and then:
 * a source thread beside the element, or any other process, gets it instead of the spin. */
#define IDLE_SPIN_NS 500000LL
#define IDLE_SPIN_OVERSUBSCRIBED_NS 20000LL
#define YIELD_AFTER_NS 50000LL
enum { WAIT_SPINS = 2000 }; /* the caller waiting for the parts spins this often, then yields */

typedef struct worker {
    ps_pool *pool;
    int index; /* 1..threads-1; the caller is part 0 */
    pthread_t thread;
} worker;

/* Parts are claimed, not assigned: each thread first claims the part of its own index (so the
 * same rows stay with the same core from op to op), then any part still unclaimed. A worker
 * that is slow to wake, or descheduled by other load, so costs nothing: the caller runs its
 * part. The claim word holds the job's generation (high 32 bits) and a bit per claimed part
 * (parts the job does not have start set), so a worker still looking at an old job cannot claim
 * a part of the new one. */
enum { MAX_PARTS = 32 };

struct ps_pool {
    int threads;
    long long idle_spin_ns;
    worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint generation; /* bumped for every job */
    _Atomic unsigned long long claims; /* generation << 32 | claimed parts */
    atomic_int done;        /* parts of the current job finished */
    atomic_int quit;
    /* the current job */
    ps_range_fn fn;
    void *ctx;
    int n;
    atomic_int parts; /* also read before a claim, by workers that may be a job behind */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_part(ps_pool *p, int part)
{
    const int parts = atomic_load_explicit(&p->parts, memory_order_relaxed);
    int begin = (int)((long)p->n * part / parts), end = (int)((long)p->n * (part + 1) / parts);
    if (begin < end)
        p->fn(p->ctx, begin, end);
}

/* Claims part `part` of job `gen`; FALSE if that job is over or the part taken. */
static int claim(ps_pool *p, unsigned gen, int part)
{
    unsigned long long w = atomic_load_explicit(&p->claims, memory_order_acquire);
    for (;;) {
        if ((unsigned)(w >> 32) != gen || (w & (1ull << part)))
            return 0;
        if (atomic_compare_exchange_weak_explicit(&p->claims, &w, w | (1ull << part), memory_order_acq_rel,
                                                  memory_order_acquire))
            return 1;
    }
}

/* Runs the parts of job `gen` this thread can claim, its own (`first`) first. The job's fields
 * are read only after a claim, while the caller cannot start another. */
static void run_claims(ps_pool *p, unsigned gen, int first)
{
    const unsigned long long w = atomic_load_explicit(&p->claims, memory_order_acquire);
    if ((unsigned)(w >> 32) != gen)
        return;
    /* gen's count, or a newer job's: then gen's word has every bit set and all claims fail */
    const int parts = atomic_load_explicit(&p->parts, memory_order_relaxed);
    for (int k = 0; k < parts; k++) {
        const int part = (first + k) % parts;
        if (claim(p, gen, part)) {
            run_part(p, part);
            atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        }
    }
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    ps_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        const long long idle_since = now_ns();
        int spins = 0;
        while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load(&p->quit)) {
            if (++spins % 256) {
                cpu_relax();
                continue;
            }
            const long long idle = now_ns() - idle_since; /* the clock, now and then */
            if (idle < p->idle_spin_ns) {
                if (idle > YIELD_AFTER_NS)
                    sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            return NULL;
        seen = gen;
        run_claims(p, gen, w->index);
    }
}

/* CPUs this process may run on (its affinity mask; containers restrict it), at least 1. */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return 1;
}

ps_pool *ps_pool_new(int threads)
{
    ps_pool *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->threads = threads < 1 ? 1 : threads;
    p->idle_spin_ns = p->threads <= usable_cpus() ? IDLE_SPIN_NS : IDLE_SPIN_OVERSUBSCRIBED_NS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->workers = calloc((size_t)p->threads, sizeof *p->workers);
    if (!p->workers)
        abort();
    for (int i = 1; i < p->threads; i++) {
        p->workers[i] = (worker){p, i, 0};
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            p->threads = i; /* run with the workers we got */
            break;
        }
    }
    return p;
}

void ps_pool_free(ps_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int ps_pool_threads(const ps_pool *p)
{
    return p ? p->threads : 1;
}

void ps_pool_for(ps_pool *p, int n, ps_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (!p || p->threads == 1 || n == 1) {
        fn(ctx, 0, n);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    int parts = n < p->threads ? n : p->threads;
    parts = parts < MAX_PARTS ? parts : MAX_PARTS;
    atomic_store_explicit(&p->parts, parts, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    const unsigned gen = atomic_load_explicit(&p->generation, memory_order_relaxed) + 1;
    /* Parts past the job's count start claimed: a worker still in the last job, which read this
     * job's larger count, can then claim nothing of it (its claims carry the old generation, and
     * every bit of that word is set once the last job ended). */
    const unsigned long long absent = 0xffffffffull & ~((1ull << parts) - 1);
    atomic_store_explicit(&p->claims, (unsigned long long)gen << 32 | absent, memory_order_release);
    pthread_mutex_lock(&p->mu); /* a sleeping worker must not miss the bump */
    atomic_store_explicit(&p->generation, gen, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_claims(p, gen, 0);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < parts; spins++) {
        if (spins < WAIT_SPINS)
            cpu_relax();
        else
            sched_yield(); /* a worker was descheduled inside its part: give it the core */
    }
}
