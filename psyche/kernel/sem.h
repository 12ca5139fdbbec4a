/*
 * sem.h: blocking semaphores (paper, section 3.2).
 *
 * A thread that must wait writes its name on the semaphore's wait list and
 * gives up its processor; whoever signals takes it off the list and puts it
 * on its home node's ready queue, with a remote interrupt if that node is
 * another one.  Semaphores may live in shared memory, so waiters are named
 * by official address.
 */
#ifndef PSYCHE_SEM_H
#define PSYCHE_SEM_H

#include "spinlock.h"
#include "types.h"

struct kthread;

struct sem {
    struct spinlock lock;
    volatile int count;          /* units available */
    struct kthread *head;        /* waiters, first to be resumed first */
    struct kthread *tail;
    const char *name;
    uint32_t blocked;            /* P operations that had to wait */
};

void sem_init(struct sem *s, int count, const char *name);
void sem_P(struct sem *s);       /* wait: may block the calling thread */
void sem_V(struct sem *s);       /* signal: never blocks; safe in interrupt handlers */

#endif
