/*
 * spinlock.h: the kernel's lock kinds (paper, section 3.2).
 *
 *  1. Disabled preemption: preempt_disable()/preempt_enable() nest through
 *     the node's preemption level.  The clock handler only asks for a switch
 *     (resched_pending); the switch happens when the level is back to zero.
 *  2. Locked-out interrupts: intr_disable()/intr_restore() mask this node's
 *     interrupts; used solely to synchronize with device handlers.
 *  3. Spin locks: short, bounded critical sections, shared between nodes.
 *     Taking one disables preemption so the bound holds.  The _irqsave kind
 *     also locks out interrupts, for data that interrupt handlers and
 *     remote nodes both touch.
 *  4. Semaphores (sem.h): blocking, for waits that may be long.
 * and, for initialization only, barrier_sync() (barrier.h).
 */
#ifndef PSYCHE_SPINLOCK_H
#define PSYCHE_SPINLOCK_H

#include "types.h"

struct spinlock {
    volatile uint32_t locked;   /* 0 free, 1 held (amoswap) */
    int owner;                  /* node number of the holder, -1 when free */
    const char *name;           /* for panics and gdb */
    uint32_t acquisitions;      /* how often it was taken */
    uint32_t contended;         /* acquisitions that had to spin */
};

#define SPINLOCK_INIT(n) { .locked = 0, .owner = -1, .name = (n) }

void spin_init(struct spinlock *l, const char *name);
void spin_lock(struct spinlock *l);
void spin_unlock(struct spinlock *l);
uint32_t spin_lock_irqsave(struct spinlock *l);
void spin_unlock_irqrestore(struct spinlock *l, uint32_t flags);
bool spin_holding(struct spinlock *l);

/* The bare lock word, for callers that already manage preemption (sem.c). */
void spin_acquire(struct spinlock *l);
void spin_release(struct spinlock *l);

void preempt_disable(void);
void preempt_enable(void);
void preempt_enable_no_resched(void);

uint32_t intr_disable(void);
void intr_restore(uint32_t flags);
void intr_enable(void);
bool intr_enabled(void);

#endif
