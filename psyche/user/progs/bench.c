/*
 * bench: simulated cycles of kernel operations, for scripts/bench_kernel.
 *
 *   bench                  kernel call round trips, first-touch faults,
 *                          make_realm / destroy_realm, software interrupt
 *                          delivery, user-level process switches
 *   bench destroy VA KEY   one destroy_realm of a realm others have open
 *
 * Each measurement prints "bench: NAME begin" before its loop and
 * "bench: NAME end COUNT CYCLES" after it, so the host can time the loop
 * between the two lines too.
 */
#include "uthread.h"

#define CALLS   2000
#define REALMS  32
#define PAGES   4
#define MAKES   200
#define KEY     0xBE7C4001u

static void report(const char *name, uint32_t count, uint32_t cycles)
{
    printf("bench: %s end %u %u\n", name, count, cycles);
}

static void calls(void)
{
    printf("bench: call begin\n");
    uint32_t t0 = rdcycle();
    for (int i = 0; i < CALLS; i++)
        psy_call(PSY_NCALLS, 0, 0, 0, 0);   /* unknown: ENOSYS, the trap path alone */
    report("call", CALLS, rdcycle() - t0);
}

/* First touches: of a realm not yet open (open + map), then of its other pages (map). */
static void touches(struct psy_domain *self)
{
    uint32_t va[REALMS];
    for (int i = 0; i < REALMS; i++) {
        va[i] = (uint32_t)make_realm(PAGES * PSY_PAGE_SIZE, PSY_R | PSY_W, KEY, 0);
        if ((int)va[i] < 0) {
            printf("bench: make_realm: %s\n", error_name((int)va[i]));
            psy_exit(1);
        }
    }
    add_key(self, KEY);
    printf("bench: open-fault begin\n");
    uint32_t t0 = rdcycle();
    for (int i = 0; i < REALMS; i++)
        *(volatile uint32_t *)va[i] = 1;
    report("open-fault", REALMS, rdcycle() - t0);
    printf("bench: page-fault begin\n");
    t0 = rdcycle();
    for (int i = 0; i < REALMS; i++)
        for (int j = 1; j < PAGES; j++)
            *(volatile uint32_t *)(va[i] + j * PSY_PAGE_SIZE) = 1;
    report("page-fault", REALMS * (PAGES - 1), rdcycle() - t0);
    printf("bench: touch begin\n");
    t0 = rdcycle();
    for (int i = 0; i < REALMS; i++)
        for (int j = 0; j < PAGES; j++)
            *(volatile uint32_t *)(va[i] + j * PSY_PAGE_SIZE) = 2;
    report("touch", REALMS * PAGES, rdcycle() - t0);
    for (int i = 0; i < REALMS; i++)
        destroy_realm(va[i], KEY);
}

static void make_destroy(void)
{
    uint32_t make = 0, destroy = 0;
    printf("bench: make-destroy begin\n");
    for (int i = 0; i < MAKES; i++) {
        uint32_t t0 = rdcycle();
        int va = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, KEY, 0);
        uint32_t t1 = rdcycle();
        destroy_realm((uint32_t)va, KEY);
        destroy += rdcycle() - t1;
        make += t1 - t0;
    }
    report("make-destroy", MAKES, make + destroy);
    report("make", MAKES, make);
    report("destroy", MAKES, destroy);
}

/*
 * Software interrupts: a wall-clock timer already due, noticed by the kernel
 * on the way back from a null kernel call, delivered, and resumed from.
 * Reported beyond the cost of the null call itself ("call").
 */
static struct ut_vp *vp0;
static volatile uint32_t swis;

static void on_timer(uint32_t kind, uint32_t a1, uint32_t a2)
{
    (void)kind, (void)a1, (void)a2;
    struct psy_state st = vp0->desc.saved;
    swis++;
    vp0->desc.disabled = 0;
    psy_resume(&st);
}

static void swi(void)
{
    uint32_t timer = vp0->desc.handler[PSY_SWI_TIMER];
    vp0->desc.handler[PSY_SWI_TIMER] = (uint32_t)on_timer;
    printf("bench: swi begin\n");
    uint32_t t0 = rdcycle();
    for (int i = 0; i < CALLS; i++)
        psy_call(PSY_NCALLS, 0, 0, 0, 0);
    uint32_t t1 = rdcycle();
    for (int i = 0; i < CALLS; i++) {
        vp0->desc.timer_at = 1;                 /* long past: fires at the next trap */
        psy_call(PSY_NCALLS, 0, 0, 0, 0);
    }
    uint32_t t2 = rdcycle();
    vp0->desc.handler[PSY_SWI_TIMER] = timer;
    if (swis != CALLS)
        printf("bench: swi: %u interrupts for %u calls\n", swis, CALLS);
    report("swi", CALLS, (t2 - t1) - (t1 - t0));
}

/* User-level process switches: two processes on one VP yield to each other. */
static void yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < CALLS; i++)
        ut_yield();
}

static void yields(void)
{
    ut_create(yielder, 0, 0, 0);
    ut_create(yielder, 0, 0, 0);
    printf("bench: uswitch begin\n");
    uint32_t t0 = rdcycle();
    ut_run();
    uint32_t took = rdcycle() - t0;
    report("uswitch", vp0->switches, took);
}

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc == 4 && strcmp(argv[1], "destroy") == 0) {
        printf("bench: destroy-shared begin\n");
        uint32_t t0 = rdcycle();
        int err = destroy_realm(parse_number(argv[2]), parse_number(argv[3]));
        report("destroy-shared", 1, rdcycle() - t0);
        return err < 0;
    }
    calls();
    touches(self);
    make_destroy();
    int err = ut_init(UT_SCHED_RR);
    if (err) {
        printf("bench: ut_init: %s\n", error_name(err));
        return 1;
    }
    vp0 = &ut_table.vps[0];
    vp0->desc.interval = 0;                    /* no preemption: switches are the yields */
    swi();
    yields();
    return 0;
}
