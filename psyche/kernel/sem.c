/*
 * sem.c: blocking semaphores.
 *
 * To block, a thread (1) disables preemption, (2) writes its name on the
 * semaphore's wait list, and (3) calls the scheduler, which saves its state,
 * switches to another thread and re-enables preemption (section 3.2).
 * Interrupts stay masked from (2) until its state is saved, so a handler on
 * this node can never try to resume a thread that is still half running.
 *
 * sem_V hands its unit straight to the first waiter, so a woken thread
 * never has to compete for it again.
 */
#include "node.h"
#include "panic.h"
#include "riscv.h"
#include "sched.h"
#include "sem.h"

void sem_init(struct sem *s, int count, const char *name)
{
    spin_init(&s->lock, name);
    s->count = count;
    s->head = s->tail = NULL;
    s->name = name;
    s->blocked = 0;
}

void sem_P(struct sem *s)
{
    preempt_disable();
    uint32_t flags = intr_disable();
    spin_acquire(&s->lock);
    if (s->count > 0) {
        s->count--;
        spin_release(&s->lock);
        intr_restore(flags);
        preempt_enable();
        return;
    }
    struct kthread *self = this_node.current;
    self->ctx.saved = 0;
    self->state = T_BLOCKED;
    self->waiting_on = s->name;
    self->next = NULL;
    if (s->tail)
        s->tail->next = self;
    else
        s->head = self;
    s->tail = self;
    s->blocked++;
    spin_release(&s->lock);
    sched_block();
    intr_restore(flags);
    preempt_enable();
}

void sem_V(struct sem *s)
{
    preempt_disable();
    uint32_t flags = intr_disable();
    spin_acquire(&s->lock);
    struct kthread *t = s->head;
    if (t) {
        s->head = t->next;
        if (!s->head)
            s->tail = NULL;
    } else {
        s->count++;
    }
    spin_release(&s->lock);
    if (t)
        make_ready(t);
    intr_restore(flags);
    preempt_enable();
}
