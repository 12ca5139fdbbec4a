/*
 * sched.c: kernel threads and the per-node round-robin scheduler.
 *
 * Every switch happens at preemption level 1, with interrupts masked, in
 * sched_switch(): from yield() (a quantum ended, or a thread gives way),
 * from sched_block() (a semaphore wait), or from the idle thread.  The
 * thread that resumes returns from its own sched_switch() and restores its
 * own interrupt state, so each thread keeps the masking it had.
 */
#include "console.h"
#include "ipi.h"
#include "node.h"
#include "panic.h"
#include "riscv.h"
#include "sched.h"
#include "vm.h"
#include "vp.h"

static void idle_loop(void *arg);
static void sched_switch(void);

/* swtch.S saves registers at these offsets. */
_Static_assert(offsetof(struct context, s[11]) == 52, "context.s11");
_Static_assert(offsetof(struct context, saved) == 56, "context.saved");

bool runq_empty(void)
{
    return this_node.runq_head == NULL;
}

/* Append to node n's ready queue; the caller holds n->runq_lock. */
static void runq_push(struct node *n, struct kthread *t)
{
    t->next = NULL;
    if (n->runq_tail)
        n->runq_tail->next = t;
    else
        n->runq_head = t;
    n->runq_tail = t;
    n->runq_len++;
}

static struct kthread *runq_pop(struct node *n)
{
    struct kthread *t = n->runq_head;
    if (t) {
        n->runq_head = t->next;
        if (!n->runq_head)
            n->runq_tail = NULL;
        t->next = NULL;
        n->runq_len--;
    }
    return t;
}

/* A thread record in local memory, named by its official address; not yet on the node's list. */
static struct kthread *thread_record(void)
{
    struct kthread *t = official(kalloc_local(sizeof *t));
    t->home = this_node.id;
    t->ctx.saved = 1;
    return t;
}

static struct kthread *thread_alloc(const char *name)
{
    struct kthread *t = thread_record();
    strncpy_z(t->name, name, sizeof t->name);
    t->all_next = this_node.threads;
    this_node.threads = t;
    return t;
}

void thread_entry(void);
void thread_start(void);

/* First C code a new thread runs: it arrives from sched_switch, through
 * thread_entry (swtch.S). */
void thread_start(void)
{
    struct kthread *t = this_node.current;
    intr_enable();
    preempt_enable();
    t->fn(t->arg);
    panic("thread %s returned", t->name);
}

static void thread_setup(struct kthread *t, void (*fn)(void *), void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->stack_size = KSTACK_SIZE;
    if (!t->stack)
        t->stack = kalloc_local(KSTACK_SIZE);
    t->ctx.ra = (uint32_t)thread_entry;
    t->ctx.sp = (uint32_t)t->stack + KSTACK_SIZE;
    t->ctx.s[0] = 0;   /* frame pointer: ends gdb backtraces */
}

/* This node's first threads: the running boot context, and idle. */
void sched_init(void)
{
    struct kthread *boot = thread_alloc("boot");
    boot->state = T_RUNNING;
    boot->stack = (uint8_t *)boot_stack;
    boot->stack_size = boot_stack_top - boot_stack;
    boot->runs = 1;
    this_node.current = boot;

    struct kthread *idle = thread_alloc("idle");
    thread_setup(idle, idle_loop, NULL);
    idle->state = T_READY;   /* but never on the ready queue */
    this_node.idle = idle;
}

struct kthread *kthread_create(const char *name, void (*fn)(void *), void *arg)
{
    struct kthread *t = thread_alloc(name);
    thread_setup(t, fn, arg);
    make_ready(t);
    return t;
}

/*
 * A thread record with its stacks, made ahead of need and not yet a thread
 * (vp.c keeps a few per node): starting one allocates nothing, so it can be
 * done in an interrupt handler, where the local heap's lock may not be taken.
 */
struct kthread *kthread_shell(void)
{
    struct kthread *t = thread_record();
    t->stack = kalloc_stack(KSTACK_SIZE);
    t->ustack = kalloc_stack(KSTACK_SIZE);
    t->state = T_DEAD;
    return t;
}

/* Start a shell (or a dead thread's record) as a thread; safe in interrupt handlers. */
void kthread_start_shell(struct kthread *t, const char *name, void (*fn)(void *), void *arg)
{
    uint32_t flags = intr_disable();
    if (t->runs == 0) {             /* first use: onto the node's list, for status */
        t->all_next = this_node.threads;
        this_node.threads = t;
    }
    intr_restore(flags);
    strncpy_z(t->name, name, sizeof t->name);
    t->dom = NULL;
    thread_setup(t, fn, arg);
    make_ready(t);
}

/*
 * The current thread ends for good: its record goes on *free_list for reuse
 * (by code on this node, with interrupts masked), and the node runs another.
 */
NORETURN void kthread_exit(struct kthread **free_list)
{
    struct kthread *t = this_node.current;
    preempt_disable();
    intr_disable();
    t->state = T_DEAD;
    t->next = *free_list;
    *free_list = t;
    sched_switch();
    panic("a dead thread ran again");
}

void kthread_rename(struct kthread *t, const char *name)
{
    strncpy_z(t->name, name, sizeof t->name);
}

/*
 * Put t on its home node's ready queue.  May be called on any node, and from
 * interrupt handlers.  First wait until t's state is completely saved: t may
 * still be on its way out of the processor (section 3.2's timing window).
 */
void make_ready(struct kthread *t)
{
    while (!t->ctx.saved)
        barrier();
    struct node *n = node_ptr(t->home);
    uint32_t flags = spin_lock_irqsave(&n->runq_lock);
    t->state = T_READY;
    t->waiting_on = NULL;
    runq_push(n, t);
    spin_unlock_irqrestore(&n->runq_lock, flags);
    if (t->home != this_node.id)
        ipi_send(t->home, IPI_RESCHED);
    else if (this_node.current == this_node.idle)
        this_node.resched_pending = 1;
}

/* Give the processor to the next ready thread; called at preemption level 1. */
static void sched_switch(void)
{
    struct kthread *prev = this_node.current;
    struct kthread *next;
    uint32_t flags = intr_disable();

    spin_acquire(&this_node.runq_lock);
    if (prev->state == T_RUNNING) {
        prev->state = T_READY;        /* round robin: to the back of the queue */
        if (prev != this_node.idle)   /* (idle is ready, but never queued) */
            runq_push(&this_node, prev);
    }
    next = runq_pop(&this_node);
    spin_release(&this_node.runq_lock);
    if (!next)
        next = this_node.idle;
    this_node.resched_pending = 0;

    next->state = T_RUNNING;
    if (next != prev) {
        if (next->dom != prev->dom)
            vm_activate(next->dom);   /* each thread runs in its domain's space */
        next->runs++;
        this_node.switches++;
        vp_switch(prev, next);
        this_node.current = next;
        swtch(&prev->ctx, &next->ctx);
    }
    intr_restore(flags);
}

/* Let other ready threads run; come back when our turn comes again. */
void yield(void)
{
    if (this_node.in_interrupt)
        panic("yield in an interrupt handler");
    preempt_disable();
    sched_switch();
    preempt_enable_no_resched();
}

/* A switch forced by the end of a quantum. */
void preempt(void)
{
    this_node.preemptions++;
    yield();
}

/*
 * The current thread has written its name where its waker will find it
 * (state T_BLOCKED, on a wait list) with preemption disabled: switch away.
 * Returns when someone has made it ready and its node has run it again.
 */
void sched_block(void)
{
    if (this_node.preempt_level != 1)
        panic("blocking at preemption level %d (a spin lock is held?)",
              this_node.preempt_level);
    if (this_node.in_interrupt)
        panic("blocking in an interrupt handler");
    if (this_node.current == this_node.idle)
        panic("the idle thread tried to block");
    sched_switch();
}

/* See sched.h; called with interrupts masked by WAIT_UNTIL. */
void wait_step(uint32_t masked_flags)
{
    if (this_node.preempt_level == 0 && !this_node.in_interrupt && !runq_empty()) {
        intr_restore(masked_flags);
        yield();
        return;
    }
    wfi();
    intr_restore(masked_flags);
}

/* Runs when nothing else is ready: sleep until an interrupt. */
static void idle_loop(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t flags = intr_disable();
        if (!runq_empty()) {
            intr_restore(flags);
            yield();
            continue;
        }
        wfi();
        intr_restore(flags);
    }
}

const char *thread_state_name(int state)
{
    switch (state) {
    case T_READY: return "ready";
    case T_RUNNING: return "running";
    case T_BLOCKED: return "blocked";
    case T_DEAD: return "dead";
    default: return "?";
    }
}
