/* A persistent pool of worker threads for splitting one op over the cores. Workers spin for half
 * a millisecond after each job (ops follow each other within microseconds, or tens of them where
 * small maps run on the calling thread) and then sleep, so an idle pool costs nothing between
 * frames beyond that. */
#pragma once

typedef struct ps_pool ps_pool;

/* `threads` counts the caller: 1 makes a pool with no workers (everything runs inline). */
ps_pool *ps_pool_new(int threads);
void ps_pool_free(ps_pool *p);
int ps_pool_threads(const ps_pool *p); /* 1 for a NULL pool */

/* Runs fn(ctx, begin, end) over [0, n) split into at most ps_pool_threads() (and 32) contiguous
 * parts and returns when all are done. p may be NULL (inline). Each thread runs the part of its
 * own index if no other thread took it first, then any part left: the caller runs the parts of
 * workers that are late (asleep, or descheduled by other load) instead of waiting for them. The
 * parts are the same whichever thread runs them. Not reentrant: one caller at a time per pool. */
typedef void (*ps_range_fn)(void *ctx, int begin, int end);
void ps_pool_for(ps_pool *p, int n, ps_range_fn fn, void *ctx);
