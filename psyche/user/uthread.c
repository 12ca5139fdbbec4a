/*
 * uthread.c: the user-level thread package (uthread.h).
 *
 * Each VP runs a scheduler loop on a stack of its own, with software
 * interrupts disabled in its descriptor; it takes the next process from its
 * ready queue and switches to it (ut_swtch: callee-saved registers only, as
 * in any user-level thread package).  A process runs with software
 * interrupts enabled and comes back to the loop when it yields, ends, or is
 * preempted: the interval timer's handler runs on the process's own stack,
 * copies the interrupted state out of the descriptor onto that stack,
 * switches to the loop if the VP's scheduler says another process should
 * run, and when the process is resumed later, re-enables software
 * interrupts and continues the interrupted code with PSY_RESUME.
 *
 * A process that makes a protected call leaves the domain: the call-out
 * handler (on its stack) marks it away and switches to the loop, so the VP
 * runs another process meanwhile; the return handler puts it back on its
 * ready queue with the state the return brings, which the call-out handler
 * resumes when the process next runs.
 *
 * A ready queue is touched by its VP and by ut_create and ut_set_sched from
 * any VP, on any node: a spin lock guards it, taken only with the caller's
 * own software interrupts disabled (the handler takes it too).
 */
#include "uthread.h"

struct ut_table ut_table;

void ut_swtch(ut_context *old, ut_context *new);
__asm__(".text\n"
        ".globl ut_swtch\n"
        "ut_swtch:\n"
        "  sw ra, 0(a0)\n  sw sp, 4(a0)\n"
        "  sw s0, 8(a0)\n  sw s1, 12(a0)\n  sw s2, 16(a0)\n  sw s3, 20(a0)\n"
        "  sw s4, 24(a0)\n  sw s5, 28(a0)\n  sw s6, 32(a0)\n  sw s7, 36(a0)\n"
        "  sw s8, 40(a0)\n  sw s9, 44(a0)\n  sw s10, 48(a0)\n  sw s11, 52(a0)\n"
        "  lw ra, 0(a1)\n  lw sp, 4(a1)\n"
        "  lw s0, 8(a1)\n  lw s1, 12(a1)\n  lw s2, 16(a1)\n  lw s3, 20(a1)\n"
        "  lw s4, 24(a1)\n  lw s5, 28(a1)\n  lw s6, 32(a1)\n  lw s7, 36(a1)\n"
        "  lw s8, 40(a1)\n  lw s9, 44(a1)\n  lw s10, 48(a1)\n  lw s11, 52(a1)\n"
        "  ret\n");

/*
 * Where a new process's first switch lands: it calls ut_start (below) and,
 * its CFI says, has no caller, so a debugger's backtrace of a process ends
 * here instead of unwinding into whatever was on the new stack.
 */
void ut_entry(void);
__asm__(".text\n"
        ".globl ut_entry\n"
        "ut_entry:\n"
        "  .cfi_startproc\n"
        "  .cfi_undefined ra\n"
        "  call ut_start\n"
        "  .cfi_endproc\n");

#define COMPILER_BARRIER() __asm__ volatile("" ::: "memory")

/* The VP this code runs on: the magic page names the running VP's descriptor, its first member. */
static struct ut_vp *me(void)
{
    return (struct ut_vp *)self_vp();
}

static uint32_t swi_off(struct ut_vp *vp)
{
    uint32_t was = vp->desc.disabled;
    vp->desc.disabled = 1;
    COMPILER_BARRIER();
    return was;
}

static void swi_restore(struct ut_vp *vp, uint32_t was)
{
    COMPILER_BARRIER();
    vp->desc.disabled = was;
}

static void lock(volatile uint32_t *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        ;
}

static void unlock(volatile uint32_t *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* Onto vp's ready queue as its scheduler orders it; the caller holds the lock. */
static void push(struct ut_vp *vp, struct ut_process *p)
{
    struct ut_process **link = &vp->head;
    if (vp->sched == UT_SCHED_FIFO)
        while (*link && (*link)->priority >= p->priority)
            link = &(*link)->next;
    else
        while (*link)
            link = &(*link)->next;
    p->next = *link;
    *link = p;
}

static struct ut_process *pop(struct ut_vp *vp)
{
    lock(&vp->lock);
    struct ut_process *p = vp->head;
    if (p)
        vp->head = p->next;
    unlock(&vp->lock);
    return p;
}

/* Should the running process p give way to the head of the queue? */
static bool want_switch(struct ut_vp *vp, struct ut_process *p)
{
    lock(&vp->lock);
    struct ut_process *head = vp->head;
    bool yes = head && (vp->sched == UT_SCHED_RR || head->priority > p->priority);
    unlock(&vp->lock);
    return yes;
}

/* The interval timer (and the wall-clock timer): maybe switch, then continue what was interrupted. */
static void ut_interrupt(uint32_t kind, uint32_t a1, uint32_t a2)
{
    (void)kind, (void)a1, (void)a2;
    struct ut_vp *vp = me();
    struct psy_state st = vp->desc.saved;       /* the descriptor's copy is the next interrupt's */
    struct ut_process *p = vp->current;
    if (p && want_switch(vp, p)) {
        p->preempted++;
        ut_swtch(&p->pub.ctx, &vp->loop);
    }
    swi_restore(vp, 0);
    psy_resume(&st);
    psy_exit(98);                                /* the state was unreadable */
}

/* A process leaves the domain by a protected call: run another until it returns. */
static void ut_call_out(uint32_t kind, uint32_t name, uint32_t call)
{
    (void)kind, (void)name, (void)call;
    struct ut_vp *vp = me();
    struct ut_process *p = vp->current;
    p->pub.state = UT_AWAY;
    p->calls++;
    ut_swtch(&p->pub.ctx, &vp->loop);
    swi_restore(me(), 0);                        /* back from the call: continue after it */
    psy_resume(&p->back);
    psy_exit(98);
}

/* A process's protected call returned (name: its id): ready again, then continue what ran. */
static void ut_return(uint32_t kind, uint32_t name, uint32_t call)
{
    (void)kind, (void)call;
    struct ut_vp *vp = me();
    struct psy_state st = vp->desc.saved;
    struct ut_process *p = &ut_table.procs[name - 1];
    p->back = vp->desc.arrived;
    p->pub.state = UT_READY;
    lock(&vp->lock);
    push(vp, p);
    unlock(&vp->lock);
    swi_restore(vp, 0);
    psy_resume(&st);
    psy_exit(98);
}

/* The scheduler loop of a VP; the first VP's returns when every process is done. */
static void loop(struct ut_vp *vp, bool first)
{
    for (;;) {
        swi_off(vp);
        struct ut_process *p = pop(vp);
        if (!p) {
            if (first && ut_table.live == 0)
                return;
            swi_restore(vp, 0);
            psy_block();                         /* until the next interval timer */
            continue;
        }
        /*
         * The switch, as the kernel and debuggers see it: the descriptor names the process
         * before its state says running, and stops naming it only after the state says
         * otherwise, so a debugger reading both at any moment finds a running process on a
         * VP (and a process a VP names shows there, not among the waiting ones).
         */
        p->runs++;
        vp->switches++;
        vp->current = p;
        vp->desc.process = p->pub.name;
        p->pub.state = UT_RUNNING;
        ut_swtch(&vp->loop, &p->pub.ctx);
        vp->current = 0;
        if (p->pub.state == UT_RUNNING) {
            p->pub.state = UT_READY;
            vp->desc.process = 0;
            lock(&vp->lock);
            push(vp, p);
            unlock(&vp->lock);
        }
        vp->desc.process = 0;
    }
}

/* A new VP's initialisation handler, on its own stack. */
static void ut_vp_start(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    struct ut_vp *vp = me();
    vp->desc.interval = UT_QUANTUM;
    loop(vp, false);
}

/* Where a new process starts (from ut_entry, after the loop's ut_swtch); it never returns. */
void ut_start(void);
void ut_start(void)
{
    struct ut_vp *vp = me();
    struct ut_process *p = vp->current;
    swi_restore(vp, 0);
    p->fn(p->arg);
    vp = me();
    swi_off(vp);
    p->pub.state = UT_DONE;
    __atomic_fetch_sub(&ut_table.live, 1, __ATOMIC_SEQ_CST);
    ut_swtch(&p->pub.ctx, &vp->loop);
}

static void vp_setup(struct ut_vp *vp, uint32_t sched, uint32_t stack_top)
{
    vp->desc.magic = PSY_VP_MAGIC;
    vp->desc.handler[PSY_SWI_INIT] = (uint32_t)ut_vp_start;
    vp->desc.handler[PSY_SWI_INTERVAL] = (uint32_t)ut_interrupt;
    vp->desc.handler[PSY_SWI_TIMER] = (uint32_t)ut_interrupt;
    vp->desc.handler[PSY_SWI_CALL_OUT] = (uint32_t)ut_call_out;
    vp->desc.handler[PSY_SWI_RETURN] = (uint32_t)ut_return;
    vp->desc.init_sp = stack_top;
    vp->sched = sched;
}

static uint32_t stack_top(uint32_t slot)
{
    return (uint32_t)ut_table.stacks[slot] + UT_STACK;
}

int ut_init(uint32_t sched)
{
    struct ut_vp *vp = &ut_table.vps[0];
    vp_setup(vp, sched, 0);
    vp->node = magic_page()->node;
    int err = set_vp(&vp->desc);
    if (err)
        return err;
    ut_table.nvps = 1;
    ut_table.magic = UT_TABLE_MAGIC;
    /* Every entry, free ones too: a debugger skips those, and count never changes under it. */
    ut_table.published = (struct psy_processes){ PSY_PROCESSES_MAGIC, UT_MAX, sizeof(struct ut_process),
                                                 (uint32_t)ut_table.procs };
    ((struct psy_domain *)magic_page()->domain)->processes = (uint32_t)&ut_table.published;
    vp->desc.interval = UT_QUANTUM;
    swi_restore(vp, 0);
    return 0;
}

/* Change a VP's scheduler now: its queue is put in the new order. */
void ut_set_sched(uint32_t vpi, uint32_t sched)
{
    struct ut_vp *own = me(), *vp = &ut_table.vps[vpi];
    uint32_t was = swi_off(own);
    lock(&vp->lock);
    struct ut_process *list = vp->head;
    vp->head = 0;
    vp->sched = sched;
    while (list) {
        struct ut_process *next = list->next;
        push(vp, list);
        list = next;
    }
    unlock(&vp->lock);
    swi_restore(own, was);
}

int ut_add_vp(uint32_t node, uint32_t sched)
{
    if (ut_table.nvps == UT_VPS)
        return PSY_ENOMEM;
    uint32_t i = ut_table.nvps;
    struct ut_vp *vp = &ut_table.vps[i];
    vp_setup(vp, sched, stack_top(UT_MAX + i));
    ut_set_sched(i, sched);                      /* processes queued already, in its order */
    vp->node = node;
    int id = create_vp(0, node, &vp->desc);
    if (id < 0)
        return id;
    ut_table.nvps = i + 1;
    return (int)i;
}

/* A process on VP vpi's queue; that VP may be added later (it starts with a full queue). */
int ut_create(void (*fn)(void *), void *arg, uint32_t priority, uint32_t vpi)
{
    if (vpi >= UT_VPS)
        return PSY_EINVAL;
    uint32_t i = __atomic_fetch_add(&ut_table.nprocs, 1, __ATOMIC_SEQ_CST);
    if (i >= UT_MAX)
        return PSY_ENOMEM;
    struct ut_process *p = &ut_table.procs[i];
    p->pub.name = i + 1;
    p->fn = fn;
    p->arg = arg;
    p->priority = priority;
    p->vp = vpi;
    p->stack = stack_top(i) - UT_STACK;
    p->pub.ctx.ra = (uint32_t)ut_entry;
    p->pub.ctx.sp = stack_top(i);
    p->pub.state = UT_READY;
    __atomic_fetch_add(&ut_table.live, 1, __ATOMIC_SEQ_CST);
    struct ut_vp *own = me(), *vp = &ut_table.vps[vpi];
    uint32_t was = swi_off(own);
    lock(&vp->lock);
    push(vp, p);
    unlock(&vp->lock);
    swi_restore(own, was);
    return (int)p->pub.name;
}

void ut_yield(void)
{
    struct ut_vp *vp = me();
    swi_off(vp);
    ut_swtch(&vp->current->pub.ctx, &vp->loop);
    swi_restore(me(), 0);
}

void ut_run(void)
{
    loop(me(), true);
}

struct ut_process *ut_self(void)
{
    return me()->current;
}
