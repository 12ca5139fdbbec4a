/*
 * pcall: protected invocation between two domains.
 *
 *   pcall call NODE CALLS   this program's domain A calls operations of a realm R whose
 *                           distinguished domain D has a VP on NODE: first calls, then CALLS
 *                           more (timed, against a plain call), then an operation that stores
 *                           into a realm only D may touch, then a call into the middle of an
 *                           operation (refused: not one of R's operations)
 *   pcall destroy NODE      a VP of A is destroyed while its process is inside a call (and then
 *                           D's VP, still running the operation)
 *   pcall threads NODE N    A runs the thread package on one VP: N processes each make calls
 *                           that take a while in D, and a worker counts meanwhile; the calls
 *                           are asynchronous for A (call-out and return software interrupts),
 *                           so the worker runs while processes are away
 *
 * D is a server: its VP waits in PSY_BLOCK; its call-in handler runs the arriving process on a
 * stack of D's own; the operation's return goes back through the kernel to A.  A's calls are
 * plain jalr instructions.  At the end every VP, domain and realm made here is destroyed.
 */
#include "uthread.h"

#define KD  0xD0D0u      /* D's descriptor (read/write): A makes D with it */
#define KS  0x5555u      /* the server realm S: D's VP descriptor and stacks; A and D */
#define KP  0x9999u      /* P: D's private data; A does not hold it */
#define KR  0x7777u      /* R, the operations: A writes them in (read/write, owner) */
#define KI  0x1111u      /* R: protected invocation only; A */
#define KX  0x3333u      /* R: read and execute; D */

/* The operations: copied into R, so position independent and self-contained. */
extern const char ops_start[] __attribute__((visibility("hidden")));
extern const char ops_end[] __attribute__((visibility("hidden")));
extern const char op_add[] __attribute__((visibility("hidden")));
extern const char op_store[] __attribute__((visibility("hidden")));
extern const char op_load[] __attribute__((visibility("hidden")));
extern const char op_spin[] __attribute__((visibility("hidden")));
extern const char op_work[] __attribute__((visibility("hidden")));
__asm__(".text\n.balign 4\n"
        "ops_start:\n"
        "op_add: add a0, a0, a1\n ret\n"                  /* a0 + a1 */
        "op_store: sw a1, 0(a0)\n li a0, 0\n ret\n"       /* *a0 = a1 */
        "op_load: lw a0, 0(a0)\n ret\n"                   /* *a0 */
        "op_spin: j op_spin\n"                            /* never returns */
        "op_work: mv t0, a0\n1: addi t0, t0, -1\n bnez t0, 1b\n add a0, a0, a0\n ret\n"  /* 2 * a0, slowly */
        "ops_end:\n");

/* Realm S: D's VP and its stacks.  The server's code reaches it only through its own VP. */
struct server {
    struct psy_vp vp;
    uint8_t init_stack[1024] __attribute__((aligned(16)));
    uint8_t op_stack[2048] __attribute__((aligned(16)));
};

/* D's VP starts here: wait for calls, for ever. */
static void server_init(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    self_vp()->disabled = 0;
    for (;;)
        psy_block();
}

/* A process arrives: run it on the operation stack (one call at a time: interrupts stay off). */
static void server_call_in(uint32_t kind, uint32_t name, uint32_t entry)
{
    (void)kind, (void)name, (void)entry;
    struct server *sv = (struct server *)self_vp();
    struct psy_state st = sv->vp.arrived;
    st.x[1] = (uint32_t)sv->op_stack + sizeof sv->op_stack;
    psy_resume(&st);
}

/*
 * A's own VP descriptor: an error is noted and skipped: a load or store
 * (touching P itself) by going on after it, a call that could not be made
 * (the fetch at its target faulted) by returning to the caller.
 */
static struct psy_vp mine __attribute__((aligned(512)));
static volatile uint32_t error_cause, error_addr, in_call;

#define CAUSE_FETCH_PAGE 12

static void on_error(uint32_t kind, uint32_t cause, uint32_t addr)
{
    (void)kind;
    struct psy_state st = mine.saved;
    error_cause = cause;
    error_addr = addr;
    st.pc = cause == CAUSE_FETCH_PAGE ? st.x[0] : st.pc + 4;
    mine.disabled = 0;
    psy_resume(&st);
}

typedef uint32_t (*op2)(uint32_t, uint32_t);

static uint32_t __attribute__((noinline)) plain_add(uint32_t a, uint32_t b)
{
    __asm__ volatile("");
    return a + b;
}

static void bench_end(const char *name, uint32_t count, uint32_t cycles)
{
    printf("bench: %s end %u %u\n", name, count, cycles);
}

struct world {
    uint32_t d, s, p, r;      /* D's descriptor, realms S, P, R */
    int vp;                   /* D's VP */
};

static uint32_t op(const struct world *w, const char *which)
{
    return w->r + (uint32_t)(which - ops_start);
}

static int build(struct psy_domain *self, uint32_t node, struct world *w)
{
    int d = make_domain(KD);
    int s = make_realm(2 * PSY_PAGE_SIZE, PSY_R | PSY_W, KS, 0);
    int p = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, KP, 0);
    int r = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, KR, 0);
    if (d < 0 || s < 0 || p < 0 || r < 0)
        return d < 0 ? d : s < 0 ? s : p < 0 ? p : r;
    w->d = (uint32_t)d, w->s = (uint32_t)s, w->p = (uint32_t)p, w->r = (uint32_t)r;
    add_key(self, KD);
    add_key(self, KS);
    add_key(self, KR);
    add_key(self, KI);
    set_access(w->r, KR, KI, PSY_INVOKE);
    set_access(w->r, KR, KX, PSY_R | PSY_X);
    /* After the access list is complete: our first touch opens R with every right we have. */
    memcpy((void *)w->r, ops_start, (uint32_t)(ops_end - ops_start));
    struct psy_domain *dd = (struct psy_domain *)w->d;
    dd->keys[0] = KS, dd->keys[1] = KP, dd->keys[2] = KX;
    dd->keys[3] = self->keys[0];                   /* our code: the server's handlers */
    dd->nkeys = 4;
    const uint32_t ops[] = { op(w, op_add), op(w, op_store), op(w, op_load), op(w, op_spin),
                             op(w, op_work) };
    int err = set_home(w->r, KR, w->d);
    if (!err)
        err = set_ops(w->r, KR, ops, sizeof ops / sizeof ops[0]);
    if (err)
        return err;
    struct server *sv = (struct server *)w->s;
    sv->vp.magic = PSY_VP_MAGIC;
    sv->vp.handler[PSY_SWI_INIT] = (uint32_t)server_init;
    sv->vp.handler[PSY_SWI_CALL_IN] = (uint32_t)server_call_in;
    sv->vp.init_sp = (uint32_t)sv->init_stack + sizeof sv->init_stack;
    w->vp = create_vp(w->d, node, &sv->vp);
    return w->vp < 0 ? w->vp : 0;
}

/* R as realm_info shows it to A: its operations, and only the keys A holds. */
static void describe(const struct world *w)
{
    struct psy_realm info;
    int err = realm_info(op(w, op_load), &info);
    if (err) {
        printf("pcall: realm_info: %s\n", error_name(err));
        return;
    }
    printf("pcall: R: %u ops, the first op_add %s, home %s; access",
           info.nops, info.ops[0] == op(w, op_add) ? "yes" : "no",
           info.home == (int)((struct psy_domain *)w->d)->id ? "D" : "?");
    for (uint32_t i = 0; i < info.nacl; i++)
        printf(" %x:%x", info.acl[i].key, info.acl[i].rights);
    printf("\n");
}

static int teardown(struct world *w)
{
    int a = destroy_vp((uint32_t)w->vp);
    int b = destroy_domain(w->d, KD);
    int c = destroy_realm(w->r, KR), e = destroy_realm(w->s, KS), f = destroy_realm(w->p, KP);
    printf("pcall: teardown: destroy_vp %s, destroy_domain %s, destroy_realm %s %s %s\n",
           error_name(a), error_name(b), error_name(c), error_name(e), error_name(f));
    return a || b || c || e || f;
}

static int calls(struct psy_domain *self, uint32_t node, uint32_t n)
{
    struct world w;
    int err = build(self, node, &w);
    if (err) {
        printf("pcall: build: %s\n", error_name(err));
        return 1;
    }
    op2 add = (op2)op(&w, op_add), store = (op2)op(&w, op_store), load = (op2)op(&w, op_load);
    /*
     * Timed as scripts/bench_kernel reads it: "bench: NAME begin" before, "bench: NAME end
     * COUNT CYCLES" after.  The first call also opens realms in both domains (R in A; S, the
     * code and the stack in D); the first call of another operation only finds its linkage
     * (and opens P in D, which it loads from).
     */
    printf("bench: pcall-first begin\n");
    uint32_t t0 = rdcycle();
    uint32_t first = add(40, 2);
    bench_end("pcall-first", 1, rdcycle() - t0);
    printf("bench: pcall-link begin\n");
    t0 = rdcycle();
    uint32_t other = load(w.p, 0);
    bench_end("pcall-link", 1, rdcycle() - t0);
    printf("bench: pcall-later begin\n");
    uint32_t sum = 0;
    t0 = rdcycle();
    for (uint32_t i = 0; i < n; i++)
        sum += add(i, 1);
    bench_end("pcall-later", n, rdcycle() - t0);
    printf("bench: plain-call begin\n");
    uint32_t plain = 0;
    t0 = rdcycle();
    for (uint32_t i = 0; i < n; i++)
        plain += plain_add(i, 1);
    bench_end("plain-call", n, rdcycle() - t0);
    printf("pcall: add(40, 2) = %u, load %u; %u calls sum %u (plain %u)\n", first, other, n, sum,
           plain);

    mine.magic = PSY_VP_MAGIC;
    mine.handler[PSY_SWI_ERROR] = (uint32_t)on_error;
    set_vp(&mine);
    uint32_t stored = store(w.p, 0x5eed);
    uint32_t loaded = load(w.p, 0);
    uint32_t direct = *(volatile uint32_t *)w.p;   /* A has no key for P: an error */
    printf("pcall: through D: store %u, load %x; A's own load: cause %u, got %x\n", stored,
           loaded, error_cause, direct);
    uint32_t inside = op(&w, op_add) + 4;          /* op_add's `ret`: not an operation */
    ((op2)inside)(1, 2);
    printf("pcall: a call into op_add: cause %u at %s\n", error_cause,
           error_addr == inside ? "op_add+4" : "?");
    describe(&w);
    return teardown(&w);
}

/* A VP of A whose process makes a call that never returns. */
static struct psy_vp caller __attribute__((aligned(512)));
static uint8_t caller_stack[1024] __attribute__((aligned(16)));
static uint32_t spin_entry;

static void caller_init(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    in_call = 1;
    ((op2)spin_entry)(0, 0);
    in_call = 2;                                   /* never */
    for (;;)
        psy_block();
}

static int destroy(struct psy_domain *self, uint32_t node)
{
    struct world w;
    int err = build(self, node, &w);
    if (err) {
        printf("pcall: build: %s\n", error_name(err));
        return 1;
    }
    spin_entry = op(&w, op_spin);
    caller.magic = PSY_VP_MAGIC;
    caller.handler[PSY_SWI_INIT] = (uint32_t)caller_init;
    caller.init_sp = (uint32_t)caller_stack + sizeof caller_stack;
    int id = create_vp(0, magic_page()->node, &caller);
    while (!in_call)
        ;
    /* Until the magic page shows D's VP running the operation. */
    const struct psy_magic *m = magic_page();
    while (m->vps[w.vp].state != PSY_VP_RUNNING)
        ;
    int gone = destroy_vp((uint32_t)id);
    printf("pcall: vp %d destroyed inside its call: %s (in_call %u)\n", id, error_name(gone),
           in_call);
    return teardown(&w);
}

#define WORK 20000                                  /* op_work's loop: about 40000 cycles */
#define CALLS_EACH 3

static op2 work_op;
static volatile uint32_t callers_done, worked, worked_away, wrong;

static void caller_process(void *arg)
{
    uint32_t n = WORK + (uint32_t)arg;
    for (int i = 0; i < CALLS_EACH; i++)
        if (work_op(n, 0) != 2 * n)
            wrong++;
    callers_done++;
}

/* Counts while the callers are in D: only possible if their calls gave the VP away. */
static void worker_process(void *arg)
{
    uint32_t callers = (uint32_t)arg;
    while (callers_done < callers) {
        uint32_t away = 0;
        for (uint32_t i = 0; i < ut_table.nprocs; i++)
            away += ut_table.procs[i].pub.state == UT_AWAY;
        worked++;
        worked_away += away > 0;
        ut_yield();
    }
}

static int threads(struct psy_domain *self, uint32_t node, uint32_t n)
{
    struct world w;
    int err = build(self, node, &w);
    if (!err)
        err = ut_init(UT_SCHED_RR);
    if (err) {
        printf("pcall: %s\n", error_name(err));
        return 1;
    }
    work_op = (op2)op(&w, op_work);
    for (uint32_t i = 0; i < n; i++)
        ut_create(caller_process, (void *)i, 0, 0);
    ut_create(worker_process, (void *)n, 0, 0);
    ut_run();
    uint32_t calls = 0;
    for (uint32_t i = 0; i < ut_table.nprocs; i++)
        calls += ut_table.procs[i].calls;
    printf("pcall: threads: %u calls by %u processes, %u wrong; the worker ran %u times, %u of "
           "them while a process was away\n", calls, n, wrong, worked, worked_away);
    return teardown(&w) || wrong;
}

int main(int argc, char **argv, struct psy_domain *self)
{
    const char *how = argc > 1 ? argv[1] : "";
    uint32_t node = argc > 2 ? parse_number(argv[2]) : 0;
    if (strcmp(how, "call") == 0)
        return calls(self, node, argc > 3 ? parse_number(argv[3]) : 10);
    if (strcmp(how, "destroy") == 0)
        return destroy(self, node);
    if (strcmp(how, "threads") == 0)
        return threads(self, node, argc > 3 ? parse_number(argv[3]) : 4);
    printf("usage: pcall call NODE CALLS | destroy NODE\n");
    return 1;
}
