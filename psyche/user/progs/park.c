/*
 * park NODE [PROCS]: a domain that stays, for debuggers to look at.  This
 * program's domain gets a second VP on NODE, which blocks for good.  The
 * program itself then blocks too, or with PROCS, runs that many processes of
 * the thread package that yield to each other for ever.  Nothing ends.
 * Start it with `spawn`, so that the console stays free:
 *
 *   park: vp V on node N, descriptor at 0x..., domain D
 *   park: P processes
 *
 * The descriptor is in the program's own data: only its domain maps it.
 */
#include "uthread.h"

/* The parked VP's descriptor and stack on one page (aligned so that they fit): its node maps
 * the page when the VP starts on the stack, and a debugger finds the descriptor mapped there. */
static struct {
    struct psy_vp vp;
    uint8_t stack[1024] __attribute__((aligned(16)));
} parked __attribute__((aligned(2048)));
static struct psy_vp mine __attribute__((aligned(512)));

static void parked_init(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    for (;;)
        psy_block();
}

static void yielder(void *arg)
{
    (void)arg;
    for (;;)
        ut_yield();
}

static int run_processes(uint32_t n)
{
    int err = ut_init(UT_SCHED_RR);
    for (uint32_t i = 0; !err && i < n; i++)
        err = ut_create(yielder, 0, 0, 0) < 0;
    if (err) {
        printf("park: the thread package: %s\n", error_name(err));
        return 1;
    }
    printf("park: %u processes\n", n);
    ut_run();
    return 0;
}

int main(int argc, char **argv, struct psy_domain *self)
{
    uint32_t node = argc > 1 ? parse_number(argv[1]) : 1;
    uint32_t procs = argc > 2 ? parse_number(argv[2]) : 0;
    parked.vp.magic = PSY_VP_MAGIC;
    parked.vp.handler[PSY_SWI_INIT] = (uint32_t)parked_init;
    parked.vp.init_sp = (uint32_t)parked.stack + sizeof parked.stack;
    int id = create_vp(0, node, &parked.vp);
    if (id < 0) {
        printf("park: create_vp: %s\n", error_name(id));
        return 1;
    }
    printf("park: vp %d on node %u, descriptor at %p, domain %u\n", id, node, (void *)&parked,
           self->id);
    if (procs)
        return run_processes(procs);
    mine.magic = PSY_VP_MAGIC;
    mine.disabled = 1;                /* nothing is ever delivered: block for good */
    set_vp(&mine);
    for (;;)
        psy_block();
}
