/*
 * pcall.c: protected invocation (paper, sections 2.2 and 2.4; the rules
 * are in docs/kernel-interface.md, "Protected invocation").
 *
 * A protected call is a plain jal/jalr into a realm that the caller's
 * domain may only invoke: the fetch faults.  The kernel checks the access
 * list (a verified target, domain.c) and that the address is one of the
 * realm's operations (set_ops), finds the realm's distinguished
 * domain and a VP there that takes calls, records the call (struct pcall,
 * a link of the process's call chain), queues it on that VP and gives it a
 * call-in software interrupt.  The operation runs in the distinguished
 * domain with return address PSY_RETURN_VA, an address that is never
 * mapped: its return is a fetch fault there, which the kernel turns into
 * the caller's return, with a0 and a1 as results.  If the caller's VP has
 * call-out and return handlers (and software interrupts enabled), the call
 * is asynchronous for it: it gets a call-out software interrupt at once, so
 * its scheduler can run another process, and a return software interrupt
 * with the caller's state when the operation returns.  Otherwise the VP
 * waits in the kernel.
 *
 * Section 2.4 hoped that "substantial amounts of time can be saved by
 * automatically precomputing linkage mechanisms for protected procedure
 * calls": the first call of an operation from a domain stores its linkage
 * (the callee domain and VP) in the caller's domain, and later calls find
 * it before anything else, without looking up the realm, the keys or the
 * VPs.  Whatever may make a linkage stale (a realm closed or destroyed, a
 * revocation, a domain or VP gone, a new distinguished domain) moves
 * vm->link_gen, and every stored linkage with it.
 *
 * Calls live in kg.vm->pcalls under vm->lock; each is held by its caller and
 * its callee, and freed when both have let go.
 */
#include "console.h"
#include "node.h"
#include "pcall.h"
#include "realm.h"
#include "riscv.h"
#include "sched.h"
#include "trap.h"
#include "vp.h"

/* x1..x31 in a psy_state: the registers of an arriving process. */
#define X_RA  0
#define X_A0  9

/* A record for a new call, or NULL when PCALL_MAX are in progress.  Holds vm->lock. */
static struct pcall *pcall_alloc(void)
{
    struct vm *vm = kg.vm;
    for (int i = 0; i < PCALL_MAX; i++) {
        if (vm->pcalls[i])
            continue;
        struct pcall *p = heap_alloc(kg.shared_heap, sizeof *p);
        if (!p)
            return NULL;
        memset(p, 0, sizeof *p);
        p->id = i;
        p->refs = 2;
        sem_init(&p->returned, 0, "protected call");
        vm->pcalls[i] = p;
        return p;
    }
    return NULL;
}

/* One side lets go of p.  Holds vm->lock. */
static void pcall_drop(struct pcall *p)
{
    if (--p->refs == 0) {
        kg.vm->pcalls[p->id] = NULL;
        heap_free(kg.shared_heap, p);
    }
}

static struct link *find_link(struct domain *d, uint32_t entry)
{
    for (int i = 0; i < DOMAIN_LINKS; i++)
        if (d->links[i].entry == entry && d->links[i].gen == kg.vm->link_gen)
            return &d->links[i];
    return NULL;
}

/* A VP of home that takes calls, not the caller's own: one on this node if there is one. */
static struct vp *pick_vp(struct domain *home, struct vp *self)
{
    struct vp *found = NULL;
    for (int i = 0; i < PSY_MAX_VPS; i++) {
        struct vp *v = kg.vm->vps[i];
        if (!v || v == self || v->dom != home || v->dying || !v->desc ||
            !v->desc->handler[PSY_SWI_CALL_IN])
            continue;
        if (v->node == this_node.id)
            return v;
        if (!found)
            found = v;
    }
    return found;
}

/*
 * Make the call along linkage l and wait for its return.  Entered with
 * vm->lock held; releases it.  False (and the reason) if no call could be
 * recorded.
 */
static bool call(struct trapframe *tf, struct link *l, char *why, uint32_t size)
{
    struct vp *self = this_node.current->vp;
    struct pcall *p = pcall_alloc();
    if (!p) {
        spin_unlock(&kg.vm->lock);
        ksnprintf(why, size, "protected invocation of %p: %d calls in progress already",
                  (void *)tf->stval, PCALL_MAX);
        return false;
    }
    kg.vm->pcalls_made++;
    p->parent = self->serving ? self->serving->id : -1;
    p->entry = tf->stval;
    p->caller = this_node.current->dom;
    p->caller_vp = self;
    p->caller_process = self->desc ? self->desc->process : 0;
    p->ret_pc = tf->ra;
    memcpy(p->args, &tf->a0, sizeof p->args);
    p->callee = l->callee;
    p->callee_vp = l->vp;
    if (l->vp->calls_tail)
        l->vp->calls_tail->next_in = p;
    else
        l->vp->calls_in = p;
    l->vp->calls_tail = p;
    struct psy_vp *desc = self->desc;
    p->async = desc && !desc->disabled && desc->handler[PSY_SWI_CALL_OUT] &&
               desc->handler[PSY_SWI_RETURN];
    if (!p->async)
        self->awaiting = p;
    vp_pend(l->vp, PSY_SWI_CALL_IN);
    spin_unlock(&kg.vm->lock);

    if (p->async) {
        p->caller_state.pc = p->ret_pc;
        memcpy(p->caller_state.x, tf, sizeof p->caller_state.x);
        vp_deliver(tf, self, PSY_SWI_CALL_OUT, p->caller_process, PSY_PCALL_NAME(p->id));
        return true;
    }
    sem_P(&p->returned);

    spin_lock(&kg.vm->lock);
    self->awaiting = NULL;
    if (p->done) {
        tf->sepc = p->ret_pc;
        tf->a0 = p->result[0];
        tf->a1 = p->result[1];
    } else {
        p->caller_vp = NULL;      /* woken to end (destroy_vp): the call goes on without us */
    }
    pcall_drop(p);
    spin_unlock(&kg.vm->lock);
    return true;                  /* if the VP is to end, vp_return ends it now */
}

/*
 * p is done (results set): tell its caller, if it is still there: a return
 * software interrupt for an asynchronous one, a wakeup otherwise.  Holds
 * vm->lock.
 */
static void give_back(struct pcall *p)
{
    struct vp *c = p->caller_vp;
    if (c && p->async) {
        if (c->returns_tail)
            c->returns_tail->next_ret = p;
        else
            c->returns = p;
        c->returns_tail = p;
        vp_pend(c, PSY_SWI_RETURN);
    } else if (c) {
        sem_V(&p->returned);
    }
}

/*
 * The operation jumped to PSY_RETURN_VA: the call that VP v serves returns.
 * The caller gets a0 and a1; v continues what the call-in interrupted.
 */
static bool pcall_return(struct trapframe *tf, struct vp *v)
{
    spin_lock(&kg.vm->lock);
    struct pcall *p = v->serving;
    if (!p) {
        spin_unlock(&kg.vm->lock);
        return false;             /* a jump there outside any call: an error */
    }
    v->serving = p->outer;
    p->result[0] = tf->a0;
    p->result[1] = tf->a1;
    p->done = true;
    p->callee_vp = NULL;
    give_back(p);
    memcpy(tf, p->callee_prev.x, sizeof p->callee_prev.x);
    tf->sepc = p->callee_prev.pc;
    pcall_drop(p);
    spin_unlock(&kg.vm->lock);
    v->desc->disabled = 0;        /* as when the call-in came */
    return true;
}

/*
 * Deliver the next call queued on v (vp.c, for PSY_SWI_CALL_IN): the
 * arriving process's state in the descriptor's `arrived` (pc the
 * operation, the caller's a0..a7, ra PSY_RETURN_VA; its stack is the
 * handler's to give), a1 = its name, a2 = the operation.
 */
bool pcall_deliver(struct trapframe *tf, struct vp *v)
{
    spin_lock(&kg.vm->lock);
    struct pcall *p = v->calls_in;
    if (p) {
        v->calls_in = p->next_in;
        if (!v->calls_in)
            v->calls_tail = NULL;
        else
            vp_pend(v, PSY_SWI_CALL_IN);   /* the next one after this */
        p->delivered = true;
        p->outer = v->serving;
        v->serving = p;
    }
    spin_unlock(&kg.vm->lock);
    if (!p)
        return false;
    struct psy_state *in = &v->desc->arrived;
    memset(in, 0, sizeof *in);
    in->pc = p->entry;
    in->x[X_RA] = PSY_RETURN_VA;
    memcpy(&in->x[X_A0], p->args, sizeof p->args);
    vp_deliver(tf, v, PSY_SWI_CALL_IN, PSY_PCALL_NAME(p->id), p->entry);
    p->callee_prev = v->desc->saved;
    return true;
}

/*
 * An asynchronous call returned to v (vp.c, for PSY_SWI_RETURN): the
 * caller's state at the call, continuing at its return address with the
 * results in a0 and a1, in `arrived`; a1 = the process's name, a2 = the
 * call's.
 */
bool pcall_deliver_return(struct trapframe *tf, struct vp *v)
{
    spin_lock(&kg.vm->lock);
    struct pcall *p = v->returns;
    if (p) {
        v->returns = p->next_ret;
        if (!v->returns)
            v->returns_tail = NULL;
        else
            vp_pend(v, PSY_SWI_RETURN);
        v->desc->arrived = p->caller_state;
        v->desc->arrived.x[X_A0] = p->result[0];
        v->desc->arrived.x[X_A0 + 1] = p->result[1];
        vp_deliver(tf, v, PSY_SWI_RETURN, p->caller_process, PSY_PCALL_NAME(p->id));
        pcall_drop(p);
    }
    spin_unlock(&kg.vm->lock);
    return p != NULL;
}

/*
 * VP v ends (vp.c): the calls queued on it or served by it return
 * PSY_ENOVP to their callers, and its asynchronous calls lose their caller.
 * (A caller that waits in the kernel wakes and lets go of its call itself,
 * in call().)  Holds vm->lock.
 */
void pcall_vp_gone(struct vp *v)
{
    for (int i = 0; i < PCALL_MAX; i++) {
        struct pcall *p = kg.vm->pcalls[i];
        if (p && p->async && p->caller_vp == v) {
            p->caller_vp = NULL;
            pcall_drop(p);
            p = kg.vm->pcalls[i];
        }
        if (!p || p->callee_vp != v)
            continue;
        p->callee_vp = NULL;
        p->done = true;
        p->result[0] = (uint32_t)PSY_ENOVP;
        p->result[1] = 0;
        give_back(p);
        pcall_drop(p);
    }
    v->calls_in = v->calls_tail = NULL;
    v->returns = v->returns_tail = NULL;
    v->serving = NULL;
    kg.vm->link_gen++;
}

/* v must end: if it waits for a call's return, wake it.  Holds vm->lock. */
void pcall_kick(struct vp *v)
{
    if (v->awaiting)
        sem_V(&v->awaiting->returned);
}

/*
 * set_home(va, key, domain): protected calls to the realm at va run in the
 * domain whose descriptor is at domain_va (0: none).  key must own the
 * realm, and the caller must be able to write that domain's descriptor:
 * code of the realm will run with the domain's rights.
 */
int pcall_set_home(struct domain *caller, uint32_t va, uint32_t key, uint32_t domain_va)
{
    struct realm *dr;
    if (domain_va && !domain_pointer(caller, domain_va, 4, PSY_W, &dr))
        return PSY_EKEY;
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    int err;
    struct realm *r = realm_owned(va, key, &err);
    struct domain *home = NULL;
    for (int id = 0; domain_va && id < MAX_DOMAINS; id++)
        if (vm->domains[id] && vm->domains[id]->desc->base == domain_va)
            home = vm->domains[id];
    if (!err && domain_va && !home)
        err = PSY_EINVAL;
    if (!err) {
        r->home = home;
        vm->link_gen++;
    }
    spin_unlock(&vm->lock);
    return err;
}

/*
 * set_ops(va, key, ops, n): the n addresses at ops are the operations of the
 * realm at va, the only places a protected call may enter it; n 0: none,
 * and the realm cannot be invoked.  Without this, a caller could enter an
 * operation past the checks at its start.  key must own the realm.
 */
int pcall_set_ops(struct domain *caller, uint32_t va, uint32_t key, uint32_t ops_va, uint32_t n)
{
    uint32_t ops[PSY_REALM_OPS];
    if (n > PSY_REALM_OPS)
        return PSY_EINVAL;
    if (n && domain_read(caller, ops_va, ops, n * sizeof ops[0]))
        return PSY_EFAULT;
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    int err;
    struct realm *r = realm_owned(va, key, &err);
    if (!err && n && (r->flags & PSY_REALM_DEVICE))
        err = PSY_EINVAL;             /* registers are not code */
    for (uint32_t i = 0; !err && i < n; i++)
        if (ops[i] - r->base >= r->size || ops[i] % 4)
            err = PSY_EINVAL;
    if (!err) {
        memcpy(r->ops, ops, n * sizeof ops[0]);
        r->nops = n;
        vm->link_gen++;               /* a linkage may lead to what is no operation now */
    }
    spin_unlock(&vm->lock);
    return err;
}

static bool is_op(const struct realm *r, uint32_t va)
{
    for (uint32_t i = 0; i < r->nops; i++)
        if (r->ops[i] == va)
            return true;
    return false;
}

void pcalls_print(void)
{
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    kprintf("%u protected calls, %u on the slow path\n", vm->pcalls_made, vm->pcalls_slow);
    for (int i = 0; i < PCALL_MAX; i++) {
        struct pcall *p = vm->pcalls[i];
        if (!p)
            continue;
        kprintf("call %d: %p from domain %d (vp %d, process %u) to domain %d (vp %d)%s%s",
                i, (void *)p->entry, p->caller->id, p->caller_vp ? p->caller_vp->id : -1,
                p->caller_process, p->callee->id, p->callee_vp ? p->callee_vp->id : -1,
                p->delivered ? "" : ", queued", p->done ? ", returned" : "");
        if (p->parent >= 0)
            kprintf(", inside call %d", p->parent);
        kprintf("\n");
    }
    spin_unlock(&vm->lock);
}

/*
 * First look at a fetch fault in U mode (user.c): the return of a protected
 * call, or a call along a linkage stored before (the fast path).  False if
 * it is neither.
 */
bool pcall_fault(struct trapframe *tf)
{
    struct vp *v = this_node.current->vp;
    if (!v)
        return false;
    if (tf->stval == PSY_RETURN_VA)
        return pcall_return(tf, v);
    char why[96];
    spin_lock(&kg.vm->lock);
    struct link *l = find_link(this_node.current->dom, tf->stval);
    if (!l || l->vp == v) {       /* (never a call to oneself: the slow path picks another) */
        spin_unlock(&kg.vm->lock);
        return false;
    }
    return call(tf, l, why, sizeof why);   /* false: no record free; the slow path says so */
}

/*
 * The slow path, after the fault decision said no: if the address is in a
 * verified target, check the rest, store the linkage and make the call.
 * False if it is not one (why unchanged), or with the reason in why if the
 * call cannot be made.
 */
bool pcall_start(struct trapframe *tf, char *why, uint32_t size)
{
    char not_target[96];
    struct domain *d = this_node.current->dom;
    if (!this_node.current->vp)
        return false;
    spin_lock(&kg.vm->lock);
    struct realm *r = domain_invoke_target(d, tf->stval, not_target, sizeof not_target);
    struct vp *v = NULL;
    if (r && !is_op(r, tf->stval))
        ksnprintf(why, size, "protected invocation of %p, which is not an operation of realm %p "
                  "(it has %u)", (void *)tf->stval, (void *)r->base, r->nops);
    else if (r && !r->home)
        ksnprintf(why, size, "protected invocation of realm %p, which has no distinguished "
                  "domain", (void *)r->base);
    else if (r && !(v = pick_vp(r->home, this_node.current->vp)))
        ksnprintf(why, size, "protected invocation of realm %p: its distinguished domain %d "
                  "has no VP that takes calls", (void *)r->base, r->home->id);
    if (!v) {
        spin_unlock(&kg.vm->lock);
        return false;
    }
    struct link *l = &d->links[d->next_link++ % DOMAIN_LINKS];
    l->entry = tf->stval;
    l->callee = r->home;
    l->vp = v;
    l->gen = kg.vm->link_gen;
    kg.vm->pcalls_slow++;
    return call(tf, l, why, size);
}
