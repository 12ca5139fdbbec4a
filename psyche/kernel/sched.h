/*
 * sched.h: kernel threads and the per-node scheduler.
 *
 * Each node schedules its own threads from its own ready queue (section 3.1:
 * scheduling data are per node).  Peers only ever append to a node's ready
 * queue, under its lock, when they wake one of its threads.  These threads
 * are the kernel side of what later issues call virtual processors.
 */
#ifndef PSYCHE_SCHED_H
#define PSYCHE_SCHED_H

#include "types.h"

struct domain;
struct vp;

/* Callee-saved state, saved and restored by swtch (swtch.S). */
struct context {
    uint32_t ra;
    uint32_t sp;
    uint32_t s[12];
    volatile uint32_t saved;    /* set by swtch once everything above is stored */
};

enum thread_state {
    T_READY = 1,      /* on its node's ready queue */
    T_RUNNING,        /* its node's current thread */
    T_BLOCKED,        /* on a semaphore's wait list, or a VP waiting for a software interrupt */
    T_DEAD,           /* a virtual processor that ended: its record waits for reuse (vp.c) */
};

struct kthread {
    struct context ctx;
    char name[16];
    volatile int state;           /* enum thread_state */
    int home;                     /* node that runs it */
    struct kthread *next;         /* ready queue or wait list */
    struct kthread *all_next;     /* its node's list of threads */
    void (*fn)(void *);
    void *arg;
    uint8_t *stack;               /* local-window address */
    uint32_t stack_size;
    uint32_t runs;                /* times it was switched to */
    const char *waiting_on;       /* semaphore name while blocked */

    /* User code (user.c): the domain it runs in, and the way back to the kernel. */
    struct domain *dom;           /* NULL: kernel only */
    struct context uret;          /* user_run's context, resumed by user_leave */
    uint8_t *ustack;              /* where traps from user code are handled (KSTACK_SIZE) */
    int ustatus;                  /* exit status of the user code */
    bool ustopped;                /* ... which the kernel stopped for an error */
    struct vp *vp;                /* the virtual processor this thread is (vp.c), or NULL */
};

#define KSTACK_SIZE 8192

void sched_init(void);
struct kthread *kthread_create(const char *name, void (*fn)(void *), void *arg);
void kthread_rename(struct kthread *t, const char *name);
void make_ready(struct kthread *t);
void yield(void);
void preempt(void);
void sched_block(void);
struct kthread *kthread_shell(void);
void kthread_start_shell(struct kthread *t, const char *name, void (*fn)(void *), void *arg);
NORETURN void kthread_exit(struct kthread **free_list);
bool runq_empty(void);
const char *thread_state_name(int state);

void swtch(struct context *old, struct context *new);

/*
 * wait_step: one round of "sleep until something happens", for loops that
 * wait on memory written by another node.  The caller checks its condition
 * with interrupts masked (so a remote interrupt that arrives after the check
 * keeps wfi from sleeping), then calls this, which sleeps or lets another
 * ready thread run, then unmasks so the interrupt that woke us is handled.
 */
void wait_step(uint32_t masked_flags);

#define WAIT_UNTIL(cond)                                   \
    do {                                                   \
        for (;;) {                                         \
            uint32_t wait_flags_ = intr_disable();         \
            if (cond) {                                    \
                intr_restore(wait_flags_);                 \
                break;                                     \
            }                                              \
            wait_step(wait_flags_);                        \
        }                                                  \
    } while (0)

#endif
