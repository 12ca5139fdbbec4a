/* selftest.h: the lock self-test, run on every node at once. */
#ifndef PSYCHE_SELFTEST_H
#define PSYCHE_SELFTEST_H

#include "sem.h"
#include "spinlock.h"
#include "types.h"

/* Objects in the shared heap that every node contends on. */
struct selftest_shared {
    struct spinlock lock;          /* the contended spin lock */
    volatile uint32_t spin_counter;
    volatile int spin_owner;       /* node inside the critical section, or -1 */
    volatile uint32_t spin_overlaps;
    struct sem mutex;              /* a semaphore used as a blocking mutex */
    volatile uint32_t sem_counter;
    volatile int sem_owner;
    volatile uint32_t sem_overlaps;
    struct sem *tokens;            /* token ring: one semaphore per node */
    volatile uint32_t token_hops;
    uint32_t runs;
};

struct selftest_shared *selftest_create(int nnodes);
bool selftest_run(void);

#endif
