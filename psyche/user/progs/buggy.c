/*
 * buggy: programs with the bugs a debugger is for, made on purpose so that
 * the debugger's tests have something to find.
 *
 *   buggy wild       a store through a wild pointer (a list node that was
 *                    never allocated): the kernel stops the program and
 *                    says why; the shell prints "buggy: stopped" and goes on
 *   buggy deadlock   two processes of the thread package, on VPs on two
 *                    nodes, take two user-level locks in opposite order and
 *                    wait for each other for ever: the program never
 *                    returns (run it in the background and `kill` it)
 *
 * A lock records the process that holds it, so a debugger (or `!procs D`
 * and the domain's memory) shows who holds what and who waits for what.
 */
#include "uthread.h"

struct node {
    struct node *next;
    uint32_t value;
};

/* A user-level lock: taken by exchanging 1 in, given up by storing 0; waiters yield. */
struct lock {
    volatile uint32_t held;
    volatile uint32_t owner;        /* the holder's process name, 0: none */
    const char *name;
};

static struct lock lock_a = { 0, 0, "A" }, lock_b = { 0, 0, "B" };
static volatile uint32_t have_first;    /* processes holding their first lock */

static void take(struct lock *l)
{
    while (__atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE))
        ut_yield();
    l->owner = ut_self()->pub.name;
}

static void give(struct lock *l)
{
    l->owner = 0;
    __atomic_store_n(&l->held, 0, __ATOMIC_RELEASE);
}

/* Take `first`, wait until the other process holds its own first lock, then take `second`. */
static void transfer(struct lock *first, struct lock *second)
{
    take(first);
    __atomic_fetch_add(&have_first, 1, __ATOMIC_SEQ_CST);
    while (have_first < 2)
        ut_yield();
    printf("buggy: process %u on node %u holds lock %s, wants lock %s\n", ut_self()->pub.name,
           magic_page()->node, first->name, second->name);
    take(second);                   /* never: the other process holds it and wants ours */
    give(second);
    give(first);
}

static void a_then_b(void *arg)
{
    (void)arg;
    transfer(&lock_a, &lock_b);
}

static void b_then_a(void *arg)
{
    (void)arg;
    transfer(&lock_b, &lock_a);
}

static int deadlock(void)
{
    const struct psy_magic *m = magic_page();
    int err = ut_init(UT_SCHED_RR);
    if (!err)
        err = ut_create(a_then_b, 0, 0, 0) < 0;
    if (!err)
        err = ut_create(b_then_a, 0, 0, 1) < 0;
    if (!err) {
        int vp = ut_add_vp((m->node + 1) % m->nnodes, UT_SCHED_RR);
        err = vp < 0 ? vp : 0;
    }
    if (err) {
        printf("buggy: %s\n", error_name(err));
        return 1;
    }
    ut_run();                       /* the bug: this never returns */
    printf("buggy: no deadlock after all\n");
    return 0;
}

static int wild(void)
{
    struct node *list = (struct node *)0x0BADF00C;    /* "allocated" by nobody */
    printf("buggy: storing through a wild pointer %p\n", (void *)list);
    list->value = 42;
    printf("buggy: the store went through\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "";
    if (strcmp(how, "wild") == 0)
        return wild();
    if (strcmp(how, "deadlock") == 0)
        return deadlock();
    printf("usage: buggy wild | deadlock\n");
    return 2;
}
