/*
 * vp.c: virtual processors and software interrupts (paper, sections 2.2,
 * 2.3 and 6; the interface is in docs/kernel-interface.md).
 *
 * A VP is a kernel thread of its node that runs user code in one domain:
 * the kernel threads of part 1 are the kernel side of VPs, and the node's
 * round-robin scheduler (sched.c) time-slices VPs and kernel-only threads
 * alike.  Its user side is a descriptor in user memory that the kernel
 * reaches through the frame (never through the user's page table) and
 * reads and writes in place: handlers, a disable flag, the timers, the
 * saved state of whatever a software interrupt interrupted.
 *
 * Software interrupts are delivered on the way back to U mode (vp_return,
 * at the end of every trap from user code): the interrupted state goes into
 * the descriptor, software interrupts are disabled there, and the trap
 * frame is rewritten so that sret enters the handler.  Nothing here ever
 * touches user memory through a user address.
 *
 * A VP's thread record comes from a few "shells" each node makes at boot
 * (kthread_shell), so that create_vp can start a VP on another node from an
 * inter-kernel interrupt handler, where nothing may be allocated; a VP that
 * ends gives its record back for the next one.
 */
#include "clock.h"
#include "console.h"
#include "ipi.h"
#include "net.h"
#include "node.h"
#include "panic.h"
#include "pcall.h"
#include "realm.h"
#include "riscv.h"
#include "sched.h"
#include "trap.h"
#include "user.h"
#include "vm.h"
#include "vp.h"

#define STATS_EVERY 10   /* ticks between refreshes of the magic page's statistics */

/* psy_state and the trap frame keep x1..x31 in the same order. */
_Static_assert(offsetof(struct trapframe, t6) == 30 * 4, "trapframe: x1..x31 first");

void vp_node_init(void)
{
    for (int i = 0; i < VP_SHELLS; i++) {
        struct kthread *t = kthread_shell();
        t->next = this_node.vp_free;
        this_node.vp_free = t;
    }
}

static struct vp *current_vp(void)
{
    return this_node.current->vp;
}

/* A record and a number for a VP of d on node; NULL when the table is full. */
static struct vp *vp_alloc(struct domain *d, int node)
{
    struct vp *v = heap_alloc(kg.shared_heap, sizeof *v);
    if (!v)
        return NULL;
    memset(v, 0, sizeof *v);
    v->dom = d;
    v->dom_id = d->id;
    v->node = node;
    v->id = -1;
    v->state = PSY_VP_READY;
    spin_lock(&kg.vm->lock);
    for (int i = 0; i < PSY_MAX_VPS && v->id < 0; i++)
        if (!kg.vm->vps[i])
            v->id = i;
    if (v->id >= 0) {
        kg.vm->vps[v->id] = v;
        atomic_add(&d->nvps, 1);
    }
    spin_unlock(&kg.vm->lock);
    if (v->id < 0) {
        heap_free(kg.shared_heap, v);
        return NULL;
    }
    return v;
}

/* Forget a VP; whoever waits for it to end (destroy_vp) sees its slot's generation move. */
static void vp_release(struct vp *v)
{
    net_vp_gone(v);                          /* its ports first: a datagram may be telling it */
    console_vp_gone(v);                      /* ... and the console, if it was its reader */
    spin_lock(&kg.vm->lock);
    pcall_vp_gone(v);
    kg.vm->vps[v->id] = NULL;
    kg.vm->vp_gen[v->id]++;
    atomic_add(&v->dom->nvps, (uint32_t)-1);
    spin_unlock(&kg.vm->lock);
    heap_free(kg.shared_heap, v);
}

/*
 * Check and attach a descriptor at va for v: it must lie in one page of a
 * realm v's domain may write, be 8-byte aligned and carry PSY_VP_MAGIC.
 */
static int vp_attach(struct vp *v, uint32_t va)
{
    struct realm *r;
    if (va % 8)
        return PSY_EALIGN;
    struct psy_vp *desc = domain_pointer(v->dom, va, sizeof *desc, PSY_W, &r);
    if (!desc)
        return PSY_EFAULT;
    if (desc->magic != PSY_VP_MAGIC)
        return PSY_EINVAL;
    desc->id = (uint32_t)v->id;
    desc->node = (uint32_t)v->node;
    desc->pending = 0;
    spin_lock(&kg.vm->lock);
    v->desc_realm = r;
    v->desc = desc;
    v->desc_va = va;
    spin_unlock(&kg.vm->lock);
    if (v == current_vp())
        magic.vp = va;
    return 0;
}

/* Is some VP's descriptor in r?  (The caller holds vm->lock.) */
bool vp_desc_in(struct realm *r)
{
    for (int i = 0; i < PSY_MAX_VPS; i++)
        if (kg.vm->vps[i] && kg.vm->vps[i]->desc_realm == r)
            return true;
    return false;
}

/* -- delivery -------------------------------------------------------------------- */

/*
 * Enter v's handler for kind on the way out of this trap: the interrupted
 * state into the descriptor, software interrupts disabled, the handler's
 * arguments in a0..a2, and its stack just below the interrupted one (the
 * handler runs on the stack of whatever it interrupted).
 */
void vp_deliver(struct trapframe *tf, struct vp *v, uint32_t kind, uint32_t a1, uint32_t a2)
{
    struct psy_vp *desc = v->desc;
    desc->saved.pc = tf->sepc;
    memcpy(desc->saved.x, tf, sizeof desc->saved.x);
    desc->disabled = 1;
    desc->pending = v->pending;
    tf->sepc = desc->handler[kind];
    tf->a0 = kind;
    tf->a1 = a1;
    tf->a2 = a2;
    tf->ra = 0;                              /* a handler that returns faults */
    tf->sp = (tf->sp - 64) & ~15u;
    this_node.swis_delivered++;
}

/* Mark kind pending for v; wake v if it waits for a software interrupt. */
void vp_pend(struct vp *v, uint32_t kind)
{
    atomic_or(&v->pending, 1u << kind);
    if (v->desc)
        v->desc->pending = v->pending;
    if (atomic_swap(&v->blocked, 0))
        make_ready(v->thread);
}

/* v's timers, as its descriptor sets them, at time now. */
static void vp_timers(struct vp *v, uint64_t now)
{
    struct psy_vp *desc = v->desc;
    if (!desc)
        return;
    uint64_t at = desc->timer_at;
    if (at && now >= at) {
        desc->timer_at = 0;                   /* one-shot */
        vp_pend(v, PSY_SWI_TIMER);
    }
    uint32_t period = desc->interval;
    if (!period) {
        v->interval_next = 0;
    } else if (!v->interval_next) {
        v->interval_next = now + period;      /* the period starts when the kernel sees it */
    } else if (now >= v->interval_next) {
        vp_pend(v, PSY_SWI_INTERVAL);
        v->interval_next += period;
        if (v->interval_next <= now)          /* missed periods are not replayed */
            v->interval_next = now + period;
    }
}

/* The earliest of v's timers, or `until`. */
static uint64_t vp_deadline(struct vp *v, uint64_t until)
{
    if (!v->desc)
        return until;
    uint64_t at = v->desc->timer_at;
    if (at && at < until)
        until = at;
    if (v->interval_next && v->interval_next < until)
        until = v->interval_next;
    return until;
}

/* The current VP's timers, checked and armed (on traps: a store to timer_at needs no call). */
static void vp_timers_here(struct vp *v)
{
    vp_timers(v, rdtime());
    timer_arm(vp_deadline(v, ~0ull));
}

/*
 * On every return to U mode (trap.c), interrupts masked: end the VP if it
 * was asked to, check the current VP's timers, and deliver the lowest
 * pending kind unless the descriptor disables software interrupts.
 */
void vp_return(struct trapframe *tf)
{
    struct vp *v = current_vp();
    if (!v)
        return;
    if (v->dying)
        user_leave(0, false);
    if (!v->desc)
        return;
    vp_timers_here(v);
    for (uint32_t kind = 0; !v->desc->disabled && v->pending && kind < PSY_SWI_KINDS; kind++) {
        uint32_t bit = 1u << kind;
        if (!(v->pending & bit))
            continue;
        atomic_and(&v->pending, ~bit);
        v->desc->pending = v->pending;
        if (kind == PSY_SWI_CALL_IN)
            pcall_deliver(tf, v);            /* a VP takes calls only with a handler (pcall.c) */
        else if (kind == PSY_SWI_RETURN)
            pcall_deliver_return(tf, v);     /* asynchronous only with a handler (pcall.c) */
        else if (v->desc->handler[kind])     /* a kind without a handler is dropped */
            vp_deliver(tf, v, kind, 0, 0);
    }
}

/*
 * A kernel-detected error in user code (user.c): deliver PSY_SWI_ERROR now
 * if the VP can take it (a descriptor with an error handler, software
 * interrupts enabled).  Otherwise the caller stops the program.
 */
bool vp_error(struct trapframe *tf)
{
    struct vp *v = current_vp();
    if (!v || !v->desc || v->desc->disabled || !v->desc->handler[PSY_SWI_ERROR])
        return false;
    vp_deliver(tf, v, PSY_SWI_ERROR, tf->scause, tf->stval);
    this_node.swi_errors++;
    return true;
}

/* -- the clock and the scheduler -------------------------------------------------- */

/* What the magic page says about every VP and every node's ready queue. */
static void refresh_stats(void)
{
    magic.stats_tick = this_node.ticks;
    for (int k = 0; k < this_node.nnodes; k++)
        magic.runq[k] = (unsigned short)node_ptr(k)->runq_len;
    for (int i = 0; i < PSY_MAX_VPS; i++) {
        /* Without the lock: a snapshot, and a VP that ends meanwhile is read harmlessly. */
        struct vp *v = kg.vm->vps[i];
        volatile struct psy_vp_stat *s = &magic.vps[i];
        s->state = v ? (unsigned char)v->state : PSY_VP_FREE;
        s->node = v ? (unsigned char)v->node : 0;
        s->domain = v ? (unsigned char)v->dom_id : 0;
        s->cycles = v ? v->cycles : 0;
    }
}

/* From clock_intr: every VP's timers on this node, and now and then the statistics. */
void vp_clock(uint64_t now, bool tick)
{
    for (struct kthread *t = this_node.threads; t; t = t->all_next)
        if (t->vp && t->state != T_DEAD)
            vp_timers(t->vp, now);
    if (tick && this_node.ticks % STATS_EVERY == 0 && kg.vm)
        refresh_stats();
}

/* The earliest timer of a VP on this node, or `until`: when the clock must interrupt next. */
uint64_t vp_next_timer(uint64_t until)
{
    for (struct kthread *t = this_node.threads; t; t = t->all_next)
        if (t->vp && t->state != T_DEAD)
            until = vp_deadline(t->vp, until);
    return until;
}

/* From sched_switch: accounting, the VPs' states, and the magic page's current VP. */
void vp_switch(struct kthread *prev, struct kthread *next)
{
    uint64_t now = rdtime();
    if (prev->vp) {
        prev->vp->cycles += (uint32_t)(now - prev->vp->since);
        prev->vp->state = prev->state == T_BLOCKED ? PSY_VP_BLOCKED : PSY_VP_READY;
    }
    if (next->vp) {
        next->vp->since = now;
        next->vp->state = PSY_VP_RUNNING;
    }
    magic.vp = next->vp ? next->vp->desc_va : 0;
    magic.vp_id = next->vp ? (uint32_t)next->vp->id : ~0u;
}

/* -- VPs' lives ------------------------------------------------------------------- */

/* A created VP's thread: enter the initialisation handler, and end when the user code does. */
static void vp_main(void *arg)
{
    struct vp *v = arg;
    bool stopped = false;
    if (!v->dying) {
        uint32_t args[3] = { PSY_SWI_INIT, (uint32_t)v->id, 0 };
        v->desc->disabled = 1;               /* as for every delivery */
        user_run(v->dom, v->desc->handler[PSY_SWI_INIT], v->desc->init_sp, args, &stopped);
    }
    if (stopped)
        kprintf("vp %d: stopped\n", v->id);
    this_node.current->vp = NULL;
    magic.vp = 0;
    vp_release(v);
    kthread_exit(&this_node.vp_free);
}

/* Give v a thread on this node (an inter-kernel call from create_vp, or create_vp itself). */
static void vp_start_here(void *arg)
{
    struct vp *v = arg;
    uint32_t flags = intr_disable();
    struct kthread *t = this_node.vp_free;
    if (t)
        this_node.vp_free = t->next;
    intr_restore(flags);
    if (!t)
        return;                              /* create_vp sees no thread: ENOMEM */
    char name[16];
    ksnprintf(name, sizeof name, "vp%d", v->id);
    t->vp = v;
    v->thread = t;
    kthread_start_shell(t, name, vp_main, v);
}

static struct domain *domain_at(uint32_t va)
{
    for (int id = 0; id < MAX_DOMAINS; id++)
        if (kg.vm->domains[id] && kg.vm->domains[id]->desc->base == va)
            return kg.vm->domains[id];
    return NULL;
}

/*
 * create_vp(domain, node, desc): a VP of `domain` (0: the caller's) on
 * `node`, whose descriptor is at desc.  The caller must be able to write
 * the domain's descriptor (its maker's key does).  Returns the VP's number.
 */
int vp_create(struct domain *caller, uint32_t domain_va, uint32_t node, uint32_t desc_va)
{
    struct realm *r;
    struct domain *d = caller;
    if (domain_va) {
        spin_lock(&kg.vm->lock);
        d = domain_at(domain_va);
        spin_unlock(&kg.vm->lock);
        if (!d)
            return PSY_ENOREALM;
        if (d != caller && !domain_pointer(caller, domain_va, 4, PSY_W, &r))
            return PSY_EKEY;
    }
    if (node >= (uint32_t)this_node.nnodes || node_ptr((int)node)->state != NODE_UP)
        return PSY_ERANGE;
    struct vp *v = vp_alloc(d, (int)node);
    if (!v)
        return PSY_ENOMEM;
    int err = vp_attach(v, desc_va);
    if (!err) {
        if (node == (uint32_t)this_node.id)
            vp_start_here(v);
        else
            ipi_call((int)node, vp_start_here, v);
        if (!v->thread)
            err = PSY_ENOMEM;
    }
    if (err) {
        vp_release(v);
        return err;
    }
    return v->id;
}

/* Make v notice that it must end: wake it if it waits, interrupt its node if it runs there. */
static void kick(struct vp *v)
{
    pcall_kick(v);
    if (atomic_swap(&v->blocked, 0))
        make_ready(v->thread);
    else if (v->node != this_node.id)
        ipi_send(v->node, IPI_RESCHED);
}

/*
 * destroy_vp(id): end a VP of the caller's domain, or of a domain whose
 * descriptor the caller may write (as for create_vp); not a program's first
 * VP, which ends with the program.  Returns once it is gone; a VP that
 * destroys itself does not return.
 */
int vp_destroy(struct domain *caller, uint32_t id)
{
    struct realm *r;
    if (id >= PSY_MAX_VPS)
        return PSY_ENOVP;
    spin_lock(&kg.vm->lock);
    struct vp *v = kg.vm->vps[id];
    uint32_t gen = kg.vm->vp_gen[id];
    uint32_t dva = v && v->dom != caller ? v->dom->desc->base : 0;
    spin_unlock(&kg.vm->lock);
    if (dva && !domain_pointer(caller, dva, 4, PSY_W, &r))
        return PSY_ENOVP;
    spin_lock(&kg.vm->lock);
    bool ok = v && kg.vm->vps[id] == v && kg.vm->vp_gen[id] == gen && !v->first && !v->dying;
    if (ok) {
        v->dying = 1;
        if (v != current_vp())
            kick(v);      /* under the lock: v cannot end and be freed meanwhile */
    }
    spin_unlock(&kg.vm->lock);
    if (!ok)
        return PSY_ENOVP;
    if (v == current_vp())
        user_leave(0, false);
    WAIT_UNTIL(kg.vm->vp_gen[id] != gen);
    return 0;
}

/* set_vp(desc): the calling VP's descriptor (the program's first VP starts without one). */
int vp_set_desc(uint32_t desc_va)
{
    struct vp *v = current_vp();
    return v ? vp_attach(v, desc_va) : PSY_ENOVP;
}

/*
 * block(): wait until a software interrupt is pending (at once if one is).
 * The only kernel call that blocks a VP.  The interrupt is delivered on the
 * way back to U mode, with pc after the ecall as the saved state.
 */
int vp_block(void)
{
    struct vp *v = current_vp();
    if (!v || !v->desc)
        return PSY_EINVAL;
    struct kthread *self = this_node.current;
    preempt_disable();
    uint32_t flags = intr_disable();
    vp_timers_here(v);
    if (!v->pending && !v->dying) {
        self->ctx.saved = 0;
        self->state = T_BLOCKED;
        self->waiting_on = "software interrupt";
        v->blocked = 1;
        sched_block();
    }
    intr_restore(flags);
    preempt_enable();
    return 0;
}

/*
 * resume(state): continue at the struct psy_state at state_va, read as the
 * domain may read it.  How a handler returns to what it interrupted: user
 * code cannot restore every register and the pc at once by itself.
 */
int vp_resume(struct trapframe *tf, uint32_t state_va)
{
    struct psy_state st;
    if (domain_read(this_node.current->dom, state_va, &st, sizeof st))
        return PSY_EFAULT;
    memcpy(tf, st.x, sizeof st.x);
    tf->sepc = st.pc;
    return 0;
}

/* -- the program's first VP (user.c) ---------------------------------------------- */

/* `run` makes the thread it runs a program on the program's first VP. */
struct vp *vp_first(struct domain *d)
{
    struct vp *v = vp_alloc(d, this_node.id);
    if (v) {
        v->first = true;
        v->thread = this_node.current;
        v->since = rdtime();
        v->state = PSY_VP_RUNNING;
        this_node.current->vp = v;
        magic.vp_id = (uint32_t)v->id;
    }
    return v;
}

/*
 * End every VP of d but `keep`, and return once they are gone: each is
 * kicked as destroy_vp kicks it, and waited for by its generation, so that
 * nothing here reads d after the lock is dropped.  The caller holds no lock.
 */
static void end_vps(struct domain *d, struct vp *keep)
{
    int ids[PSY_MAX_VPS];
    uint32_t gens[PSY_MAX_VPS];
    int n = 0;
    spin_lock(&kg.vm->lock);
    for (int i = 0; i < PSY_MAX_VPS; i++) {
        struct vp *w = kg.vm->vps[i];
        if (w && w->dom == d && w != keep) {
            w->dying = 1;
            kick(w);      /* under the lock: w cannot end and be freed meanwhile */
            ids[n] = i;
            gens[n++] = kg.vm->vp_gen[i];
        }
    }
    spin_unlock(&kg.vm->lock);
    for (int i = 0; i < n; i++)
        WAIT_UNTIL(kg.vm->vp_gen[ids[i]] != gens[i]);
}

/* The program ended: end the domain's other VPs, wait until they are gone, forget the first. */
void vp_first_done(struct vp *v)
{
    end_vps(v->dom, v);
    this_node.current->vp = NULL;
    magic.vp = 0;
    vp_release(v);
}

/*
 * destroy_domain's PSY_DOMAIN_VPS: end the VPs of d, which the caller may
 * destroy.  Not the caller's own domain, nor a program's, whose first VP
 * ends only with the program: PSY_EBUSY.
 */
int vp_end_domain(struct domain *d)
{
    struct vp *self = current_vp();
    bool busy = self && self->dom == d;
    spin_lock(&kg.vm->lock);
    for (int i = 0; i < PSY_MAX_VPS && !busy; i++)
        busy = kg.vm->vps[i] && kg.vm->vps[i]->dom == d && kg.vm->vps[i]->first;
    spin_unlock(&kg.vm->lock);
    if (busy)
        return PSY_EBUSY;
    end_vps(d, NULL);
    return 0;
}

/*
 * vp_info(id, info): VP number id, as struct psy_vp_info says, written at
 * info_va as the caller's domain may write it.  PSY_ENOVP if there is none.
 */
int vp_info(struct domain *caller, uint32_t id, uint32_t info_va)
{
    struct psy_vp_info info = { 0 };
    spin_lock(&kg.vm->lock);
    struct vp *v = id < PSY_MAX_VPS ? kg.vm->vps[id] : NULL;
    if (v)
        info = (struct psy_vp_info){ v->id, (uint32_t)v->node, v->dom_id, (uint32_t)v->state,
                                     v->desc_va, v->pending, v->cycles };
    spin_unlock(&kg.vm->lock);
    if (!v)
        return PSY_ENOVP;
    return domain_write(caller, info_va, &info, sizeof info);
}

void vps_print(void)
{
    static const char *const states[] = { "free", "ready", "running", "blocked" };
    for (int k = 0; k < this_node.nnodes; k++)
        kprintf("node %d: %u software interrupts delivered, %u of them errors\n", k,
                node_ptr(k)->swis_delivered, node_ptr(k)->swi_errors);
    kprintf("vp  node  domain  state     cycles      pending  descriptor\n");
    spin_lock(&kg.vm->lock);
    for (int i = 0; i < PSY_MAX_VPS; i++) {
        struct vp *v = kg.vm->vps[i];
        if (v)
            kprintf("%-3d %-5d %-7d %-9s %-11u %-8x %p%s\n", i, v->node, v->dom->id,
                    states[v->state], v->cycles, (unsigned)v->pending, (void *)v->desc_va,
                    v->first ? " (first)" : "");
    }
    spin_unlock(&kg.vm->lock);
}
