/*
 * spinlock.c: preemption level, interrupt masking and spin locks.
 *
 * Section 3.2 of the paper: the kernel is preemptible, so mutual exclusion
 * is explicit.  The preemption level and the deferred-switch flag are per
 * node, in this_node: the clock handler never switches threads while the
 * level is positive; it leaves resched_pending set, and preempt_enable()
 * makes the switch once the level is back to zero.
 */
#include "node.h"
#include "panic.h"
#include "riscv.h"
#include "sched.h"
#include "spinlock.h"

/* -- preemption level ----------------------------------------------------- */

void preempt_disable(void)
{
    this_node.preempt_level++;
    barrier();
}

/* Drop the level without switching: for the scheduler's own use. */
void preempt_enable_no_resched(void)
{
    barrier();
    this_node.preempt_level--;
}

/*
 * Leave a critical section.  If the clock ended our quantum while we were
 * inside (resched_pending), switch now, on its behalf.  Interrupt handlers
 * never switch: trap() does it after the handler, on the way out.
 */
void preempt_enable(void)
{
    barrier();
    int level = --this_node.preempt_level;
    if (level < 0)
        panic("preemption level below zero");
    if (level == 0 && this_node.resched_pending && !this_node.in_interrupt) {
        this_node.deferred_honoured++;
        yield();
    }
}

/* -- locked-out interrupts -------------------------------------------------- */

/* Mask this node's interrupts; returns what intr_restore needs. */
uint32_t intr_disable(void)
{
    uint32_t s;
    __asm__ volatile("csrrc %0, sstatus, %1" : "=r"(s) : "r"(SSTATUS_SIE) : "memory");
    return s & SSTATUS_SIE;
}

void intr_restore(uint32_t flags)
{
    if (flags & SSTATUS_SIE)
        csr_set(sstatus, SSTATUS_SIE);
}

void intr_enable(void)
{
    csr_set(sstatus, SSTATUS_SIE);
}

bool intr_enabled(void)
{
    return (csr_read(sstatus) & SSTATUS_SIE) != 0;
}

/* -- spin locks -------------------------------------------------------------- */

void spin_init(struct spinlock *l, const char *name)
{
    l->locked = 0;
    l->owner = -1;
    l->name = name;
    l->acquisitions = 0;
    l->contended = 0;
}

/*
 * Test-and-test-and-set with bounded exponential backoff: waiting nodes
 * read the (usually remote) lock word, and try the atomic swap only when it
 * looks free, so they do not flood the switch with writes.
 */
void spin_acquire(struct spinlock *l)
{
    if (atomic_swap(&l->locked, 1) != 0) {
        if (l->owner == this_node.id && this_node.in_interrupt)
            panic("spin lock %s: taken in an interrupt handler while its thread holds it",
                  l->name);
        uint32_t delay = 8;
        do {
            while (l->locked) {
                for (volatile uint32_t i = 0; i < delay; i++)
                    ;
                if (delay < 256)
                    delay <<= 1;
            }
        } while (atomic_swap(&l->locked, 1) != 0);
        l->contended++;
    }
    l->owner = this_node.id;
    l->acquisitions++;
}

void spin_release(struct spinlock *l)
{
    if (!l->locked)
        panic("spin lock %s: released but not held", l->name);
    l->owner = -1;
    fence();
    atomic_swap(&l->locked, 0);
}

bool spin_holding(struct spinlock *l)
{
    return l->locked && l->owner == this_node.id;
}

void spin_lock(struct spinlock *l)
{
    preempt_disable();
    spin_acquire(l);
}

void spin_unlock(struct spinlock *l)
{
    spin_release(l);
    preempt_enable();
}

/* For data touched by interrupt handlers as well as by other nodes. */
uint32_t spin_lock_irqsave(struct spinlock *l)
{
    uint32_t flags = intr_disable();
    preempt_disable();
    spin_acquire(l);
    return flags;
}

void spin_unlock_irqrestore(struct spinlock *l, uint32_t flags)
{
    spin_release(l);
    intr_restore(flags);
    preempt_enable();
}
