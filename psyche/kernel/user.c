/*
 * user.c: entering and leaving U mode, user exceptions, and `run`.
 *
 * A kernel thread runs user code by building a trap frame for it at the top
 * of its user trap stack (a second kernel stack of the thread's, made the
 * first time) and "returning" to U mode through trap_return (entry.S), with
 * sscratch pointing just above that frame: every later trap from U mode
 * lands there, and the kernel handles it on that stack.  (Not on the
 * thread's own stack below user_run: a frame's locals may lie anywhere in
 * it.)  user_run waits in swtch; when the program exits or is stopped,
 * user_leave switches back to it, abandoning the trap stack's contents.
 *
 * A program starts on a kernel thread, which is its first virtual processor
 * (vp.c) until it ends: the monitor's thread for `run NAME ARGS`, another
 * node's daemon thread for `spawn NODE NAME ARGS` (which does not wait).
 * The program may make more VPs (create_vp); they end with it.
 *
 * An error in user code is a software interrupt for the VP if it has an
 * error handler and software interrupts enabled (vp_error); otherwise the
 * program (or the VP, if it is not the first) is stopped.
 */
#include "console.h"
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

void trap_return(void);

#define EXC_ECALL_U       8
#define EXC_INST_PAGE     12
#define EXC_LOAD_PAGE     13
#define EXC_STORE_PAGE    15

/*
 * Run domain d's code at pc with stack sp and arguments a0..a2 on this
 * thread until it exits or is stopped.  Returns the exit status; *stopped
 * says whether the kernel stopped it for an error.
 */
int user_run(struct domain *d, uint32_t pc, uint32_t sp, const uint32_t args[3], bool *stopped)
{
    struct kthread *t = this_node.current;
    if (!t->ustack)
        t->ustack = kalloc_local(KSTACK_SIZE);
    struct trapframe *tf = (struct trapframe *)(t->ustack + KSTACK_SIZE) - 1;
    struct context enter = { 0 };
    memset(tf, 0, sizeof *tf);
    tf->sepc = pc;
    tf->sp = sp;
    tf->a0 = args[0];
    tf->a1 = args[1];
    tf->a2 = args[2];
    tf->sstatus = (csr_read(sstatus) & ~(SSTATUS_SPP | SSTATUS_SIE)) | SSTATUS_SPIE;
    enter.ra = (uint32_t)trap_return;
    enter.sp = (uint32_t)tf;

    uint32_t flags = intr_disable();
    if (!d->root[this_node.id])
        d->root[this_node.id] = vm_domain_root();
    if (!d->root[this_node.id]) {
        intr_restore(flags);
        kprintf("domain %d: node %d has no frame for a page table\n", d->id, this_node.id);
        *stopped = true;
        return -1;
    }
    t->dom = d;
    atomic_add(&d->running, 1);
    vm_activate(d);
    swtch(&t->uret, &enter);        /* back here from user_leave */
    t->dom = NULL;
    atomic_add(&d->running, (uint32_t)-1);
    vm_activate(NULL);
    intr_restore(flags);
    *stopped = t->ustopped;
    return t->ustatus;
}

NORETURN void user_leave(int status, bool stopped)
{
    struct kthread *t = this_node.current;
    struct context gone;
    t->ustatus = status;
    t->ustopped = stopped;
    intr_disable();
    swtch(&gone, &t->uret);
    panic("user_leave: returned");
}

/* Stop the program for an error, and say why on the console. */
static NORETURN void user_stop(struct trapframe *tf, const char *what, const char *why)
{
    struct domain *d = this_node.current->dom;
    if (why)
        kprintf("domain %d: stopped: %s at %p (pc %p): %s\n", d->id, what, (void *)tf->stval,
                (void *)tf->sepc, why);
    else
        kprintf("domain %d: stopped: %s (pc %p, stval 0x%x)\n", d->id, what, (void *)tf->sepc,
                tf->stval);
    user_leave(-1, true);
}

/* An exception from U mode (trap.c), with interrupts enabled. */
void user_exception(struct trapframe *tf)
{
    char why[160];
    uint32_t cause = tf->scause;
    uint32_t need = cause == EXC_INST_PAGE ? PSY_X : cause == EXC_LOAD_PAGE ? PSY_R : PSY_W;
    switch (cause) {
    case EXC_ECALL_U:
        tf->sepc += 4;
        kcall(tf);
        break;
    case EXC_INST_PAGE:
        if (pcall_fault(tf))          /* a protected call's return, or a call linked before */
            break;
        if (!domain_fault(this_node.current->dom, tf->stval, need, why, sizeof why))
            break;
        if (pcall_start(tf, why, sizeof why) || vp_error(tf))
            break;
        user_stop(tf, trap_cause_name(cause), why);
        break;
    case EXC_LOAD_PAGE:
    case EXC_STORE_PAGE:
        if (domain_fault(this_node.current->dom, tf->stval, need, why, sizeof why) && !vp_error(tf))
            user_stop(tf, trap_cause_name(cause), why);
        break;
    default:
        if (!vp_error(tf))
            user_stop(tf, trap_cause_name(cause), NULL);
    }
}

/* The king's copy of a program table address, wherever we run. */
static const void *in_king(const void *p)
{
    return official_on(0, p);
}

/* Program i of the table, or NULL past its end; its pointers made official. */
static bool program(int i, struct uprog *out)
{
    *out = ((const struct uprog *)in_king(user_programs))[i];
    if (!out->name)
        return false;
    out->name = in_king(out->name);
    out->image = in_king(out->image);
    out->relocs = in_king(out->relocs);
    return true;
}

static bool find_program(const char *name, struct uprog *out)
{
    for (int i = 0; program(i, out); i++)
        if (strcmp(out->name, name) == 0)
            return true;
    return false;
}

static void list_programs(void)
{
    struct uprog p;
    kprintf("programs:");
    for (int i = 0; program(i, &p); i++)
        kprintf(" %s", p.name);
    kprintf("\n");
}

/* Write bytes into a realm the kernel made, through its frames. */
static void realm_write(struct realm *r, uint32_t off, const void *src, uint32_t len)
{
    const uint8_t *s = src;
    while (len) {
        uint32_t chunk = PGSIZE - off % PGSIZE;
        if (chunk > len)
            chunk = len;
        memcpy((void *)(r->frames[off / PGSIZE] + off % PGSIZE), s, chunk);
        off += chunk;
        s += chunk;
        len -= chunk;
    }
}

/*
 * The program's image: code and read-only data into the code realm, the rest
 * into the data realm, which follows it; then the relocations (all in data).
 */
static void load_image(struct realm *code, struct realm *data, const struct uprog *p)
{
    uint32_t in_code = p->filesz < p->codesz ? p->filesz : p->codesz;
    realm_write(code, 0, p->image, in_code);
    if (p->filesz > p->codesz)
        realm_write(data, 0, p->image + p->codesz, p->filesz - p->codesz);
    for (uint32_t i = 0; i < p->nrelocs; i++) {
        uint32_t word = code->base + p->relocs[2 * i + 1];
        realm_write(data, p->relocs[2 * i] - p->codesz, &word, sizeof word);
    }
}

/* argv's strings and array at the top of the stack; returns the new sp. */
static uint32_t push_args(struct realm *r, int argc, char **argv, uint32_t *uargv)
{
    uint32_t off = r->size, ptrs[8];
    for (int i = 0; i < argc; i++) {
        uint32_t len = strlen(argv[i]) + 1;
        off -= len;
        realm_write(r, off, argv[i], len);
        ptrs[i] = r->base + off;
    }
    ptrs[argc] = 0;
    off = (off - 4 * (uint32_t)(argc + 1)) & ~15u;
    realm_write(r, off, ptrs, 4 * (uint32_t)(argc + 1));
    *uargv = r->base + off;
    return r->base + off;
}

/*
 * A program's two realms, side by side at an address the kernel chooses:
 * its code on the king, replicated as the monitor's `replicate` says, and
 * its data and stack on the node that runs it.  0, or an error.
 */
static int make_program_realms(struct domain *d, const struct uprog *p, uint32_t keys[2],
                               struct realm **code, struct realm **data)
{
    uint32_t datasz = ALIGN_UP(p->memsz - p->codesz, PGSIZE) + USER_STACK;
    uint32_t base = realm_reserve(p->codesz + datasz);
    if (!base)
        return PSY_ENOMEM;
    uint32_t code_flags = PSY_R | PSY_X | PSY_REALM_AT | PSY_REALM_NODE(0) | kg.vm->code_policy;
    int err = realm_make(d, p->codesz, code_flags, keys[0], base, code);
    if (err)
        return err;
    err = realm_make(d, datasz, PSY_R | PSY_W | PSY_REALM_AT, keys[1], base + p->codesz, data);
    if (err)
        realm_remove(*code);
    return err;
}

/* Note a loaded program in kg.vm->loaded, for debuggers; its slot, or -1 if the table is full. */
static int note_loaded(const struct uprog *p, struct domain *d, struct realm *code, struct realm *data)
{
    struct vm *vm = kg.vm;
    int slot = -1;
    spin_lock(&vm->lock);
    for (int i = 0; i < MAX_LOADED && slot < 0; i++) {
        if (vm->loaded[i].name[0])
            continue;
        struct loaded *l = &vm->loaded[i];
        strncpy_z(l->name, p->name, sizeof l->name);
        l->domain = d->id;
        l->code = code->base;
        l->data = data->base;
        vm->loaded_gen++;
        slot = i;
    }
    spin_unlock(&vm->lock);
    return slot;
}

static void forget_loaded(int slot)
{
    if (slot < 0)
        return;
    spin_lock(&kg.vm->lock);
    kg.vm->loaded[slot].name[0] = 0;
    kg.vm->loaded_gen++;
    spin_unlock(&kg.vm->lock);
}

/*
 * The monitor's `run NAME ARGS` (and a daemon's, for spawn): a fresh domain,
 * the program's realms, their keys in the domain's keys, and off it goes.
 * Afterwards the program's realms and domain are destroyed; realms it made
 * stay.  Returns the exit status (-1 if it was stopped).
 */
int run_program(int argc, char **argv)
{
    struct uprog prog;
    const struct uprog *p = argc > 1 && find_program(argv[1], &prog) ? &prog : NULL;
    if (!p) {
        if (argc > 1)
            kprintf("run: no program %s\n", argv[1]);
        list_programs();
        return -1;
    }
    argc--, argv++;
    uint32_t keys[2] = { make_key(), make_key() };
    struct domain *d = domain_make(make_key(), true);
    struct realm *code, *data;
    int err = d ? make_program_realms(d, p, keys, &code, &data) : PSY_ENOMEM;
    struct vp *vp = err ? NULL : vp_first(d);
    if (!err && !vp) {
        realm_remove(code);
        realm_remove(data);
        err = PSY_ENOMEM;
    }
    if (err) {
        kprintf("run: %s: no memory for its domain, realms or VP (error %d)\n", p->name, err);
        if (d)
            domain_destroy(d);
        return -1;
    }
    load_image(code, data, p);
    if (code->flags & PSY_REPLICATE_CREATE)
        realm_replicate(code);
    struct psy_domain *pd = domain_desc(d);
    pd->keys[0] = keys[0];
    pd->keys[1] = keys[1];
    pd->nkeys = 2;
    uint32_t args[3] = { (uint32_t)argc, 0, d->desc->base };
    uint32_t sp = push_args(data, argc, argv, &args[1]);
    kprintf("%s: domain %d, code %p-%p on node %d, data %p-%p on node %d\n", p->name, d->id,
            (void *)code->base, (void *)(code->base + code->size - 1), code->node,
            (void *)data->base, (void *)(data->base + data->size - 1), data->node);
    int slot = note_loaded(p, d, code, data);
    bool stopped;
    int status = user_run(d, code->base + p->entry, sp, args, &stopped);
    forget_loaded(slot);
    if (stopped)
        kprintf("%s: stopped\n", p->name);
    else
        kprintf("%s: exit %d\n", p->name, status);
    vp_first_done(vp);
    realm_remove(code);
    realm_remove(data);
    domain_destroy(d);
    return status;
}

/* Another node's daemon: run the program the monitor's spawn asked for. */
void run_on_daemon(void)
{
    char *argv[8];
    int argc = split_args(this_node.run_line, argv, 8);
    run_program(argc, argv);
    this_node.running = false;
}

/*
 * The primordial realm (section 3.3): the program init (psyche/user/sys/init.c)
 * on a thread of its own on the king, told where the host's file server is.
 * It makes the user level's initial realms and ends; they stay.
 */
static struct kthread *init_done;

static void init_thread(void *arg)
{
    char port[12];
    ksnprintf(port, sizeof port, "%u", (uint32_t)arg);
    char *argv[] = { "run", "init", port, NULL };
    int status = run_program(3, argv);
    if (status)
        kprintf("init: exit %d: the user level is not up\n", status);
    kthread_exit(&init_done);
}

void start_init(uint32_t files_port)
{
    kthread_create("init", init_thread, (void *)files_port);
}
