/*
 * selftest.c: the lock self-test.  Every node runs selftest_run() at once
 * (at boot when bootargs.selftest is set, or on the monitor's `selftest`);
 * barriers separate the parts, and the king reports on the console.
 *
 *  - spin lock: every node increments a shared counter inside the same spin
 *    lock, with a gap between read and write that any overlap would expose;
 *  - locked-out interrupts: with interrupts masked for two ticks, the clock
 *    handler must not run, and must run as soon as they are unmasked;
 *  - preemption level: a quantum that ends at level > 0 sets the
 *    deferred-switch flag without switching; the switch happens when the
 *    level returns to zero (to a local helper thread, which counts it);
 *  - semaphores: a shared mutex semaphore contended by every node (waiters
 *    block and are woken across nodes), then a token passed round a ring of
 *    semaphores, one per node.
 */
#include "barrier.h"
#include "clock.h"
#include "console.h"
#include "node.h"
#include "riscv.h"
#include "sched.h"
#include "selftest.h"

#define SPIN_ROUNDS   20
#define SEM_ROUNDS    5
#define TOKEN_ROUNDS  2

/* King, during shared initialization: the objects everyone contends on. */
struct selftest_shared *selftest_create(int nnodes)
{
    struct selftest_shared *st = kalloc_shared(sizeof *st);
    spin_init(&st->lock, "selftest spin");
    sem_init(&st->mutex, 1, "selftest mutex");
    st->tokens = kalloc_shared(sizeof(struct sem) * (uint32_t)nnodes);
    for (int k = 0; k < nnodes; k++)
        sem_init(&st->tokens[k], 0, "selftest token");
    st->spin_owner = st->sem_owner = -1;
    return st;
}

/* Work between a read and a write of shared data: widens any race. */
static void dawdle(int n)
{
    for (volatile int i = 0; i < n; i++)
        ;
}

static void test_spin_lock(struct selftest_shared *st, struct selftest_node *me)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        spin_lock(&st->lock);
        if (this_node.preempt_level < 1)
            me->spin_level_errors++;
        if (st->spin_owner != -1)
            st->spin_overlaps++;
        st->spin_owner = this_node.id;
        uint32_t v = st->spin_counter;
        dawdle(10);
        st->spin_counter = v + 1;
        if (st->spin_owner != this_node.id)
            st->spin_overlaps++;
        st->spin_owner = -1;
        spin_unlock(&st->lock);
        me->spin_rounds++;
    }
}

static void wait_cycles(uint64_t cycles)
{
    uint64_t end = rdtime() + cycles;
    while (rdtime() < end)
        ;
}

static void test_masking(struct selftest_node *me)
{
    uint32_t flags = intr_disable();
    uint32_t before = this_node.ticks;
    wait_cycles(2 * TICK_CYCLES);
    uint32_t masked = this_node.ticks;
    intr_restore(flags);
    uint64_t end = rdtime() + 1000;  /* the pending tick comes at once */
    while (this_node.ticks == masked && rdtime() < end)
        ;
    me->masking_ok = masked == before && this_node.ticks == before + 1;
}

static void helper_loop(void *arg)
{
    struct selftest_node *me = arg;
    for (;;) {
        sem_P(me->helper_go);
        me->helper_runs++;
    }
}

static void test_deferred_switch(struct selftest_node *me)
{
    if (!me->helper) {
        me->helper_go = official(kalloc_local(sizeof(struct sem)));
        sem_init(me->helper_go, 0, "selftest helper");
        me->helper = kthread_create("st-helper", helper_loop, me);
        yield();                        /* let it start and block */
    }
    preempt_disable();
    uint32_t runs = me->helper_runs;
    uint32_t deferred = this_node.deferred_switches;
    sem_V(me->helper_go);               /* the helper is ready, but we keep the processor */
    uint32_t start = this_node.ticks;
    while (this_node.ticks < start + QUANTUM_TICKS + 1)
        ;
    me->deferred_flag_ok = this_node.resched_pending && me->helper_runs == runs
                           && this_node.deferred_switches > deferred;
    preempt_enable();                   /* level 0: the deferred switch happens here */
    me->deferred_switch_ok = me->helper_runs == runs + 1;
}

static void test_mutex(struct selftest_shared *st, struct selftest_node *me)
{
    for (int i = 0; i < SEM_ROUNDS; i++) {
        sem_P(&st->mutex);
        if (st->sem_owner != -1)
            st->sem_overlaps++;
        st->sem_owner = this_node.id;
        uint32_t v = st->sem_counter;
        dawdle(50);
        st->sem_counter = v + 1;
        if (st->sem_owner != this_node.id)
            st->sem_overlaps++;
        st->sem_owner = -1;
        sem_V(&st->mutex);
        me->sem_rounds++;
    }
}

static void test_token_ring(struct selftest_shared *st, struct selftest_node *me)
{
    int n = this_node.nnodes, id = this_node.id;
    if (id == 0)
        sem_V(&st->tokens[0]);          /* the first token */
    for (int r = 0; r < TOKEN_ROUNDS; r++) {
        sem_P(&st->tokens[id]);
        atomic_add(&st->token_hops, 1);
        me->token_hops++;
        sem_V(&st->tokens[(id + 1) % n]);
    }
    if (id == 0)
        sem_P(&st->tokens[0]);          /* take the last token back */
}

static const char *verdict(bool ok)
{
    return ok ? "ok" : "FAILED";
}

/* King: add up what every node wrote about itself, and say so. */
static bool report(struct selftest_shared *st)
{
    int n = this_node.nnodes;
    uint32_t spin = 0, level_errors = 0, sem = 0;
    int masking = 0, flag = 0, sw = 0;
    for (int k = 0; k < n; k++) {
        struct selftest_node *r = &node_ptr(k)->st;
        spin += r->spin_rounds;
        level_errors += r->spin_level_errors;
        sem += r->sem_rounds;
        masking += r->masking_ok;
        flag += r->deferred_flag_ok;
        sw += r->deferred_switch_ok;
    }
    uint32_t want_spin = (uint32_t)n * SPIN_ROUNDS, want_sem = (uint32_t)n * SEM_ROUNDS;
    uint32_t want_hops = (uint32_t)n * TOKEN_ROUNDS;
    bool spin_ok = spin == want_spin && st->spin_counter == want_spin && st->spin_overlaps == 0
                   && level_errors == 0;
    bool masking_ok = masking == n;
    bool level_ok = flag == n && sw == n;
    bool sem_ok = sem == want_sem && st->sem_counter == want_sem && st->sem_overlaps == 0;
    bool ring_ok = st->token_hops == want_hops;

    kprintf("selftest: spin lock: %d nodes x %d, counter %u of %u, %u overlaps, "
            "%u contended acquisitions: %s\n", n, SPIN_ROUNDS, st->spin_counter, want_spin,
            st->spin_overlaps, st->lock.contended, verdict(spin_ok));
    kprintf("selftest: locked-out interrupts: clock held off while masked on %d of %d nodes: %s\n",
            masking, n, verdict(masking_ok));
    kprintf("selftest: preemption level: deferred-switch flag set on %d of %d nodes, "
            "switch made at level 0 on %d of %d: %s\n", flag, n, sw, n, verdict(level_ok));
    kprintf("selftest: semaphore: %d nodes x %d P/V, counter %u of %u, %u overlaps, "
            "%u blocked waits: %s\n", n, SEM_ROUNDS, st->sem_counter, want_sem,
            st->sem_overlaps, st->mutex.blocked, verdict(sem_ok));
    kprintf("selftest: semaphore token ring: %d rounds over %d nodes, %u of %u hops: %s\n",
            TOKEN_ROUNDS, n, st->token_hops, want_hops, verdict(ring_ok));
    bool ok = spin_ok && masking_ok && level_ok && sem_ok && ring_ok;
    if (ok)
        kprintf("selftest: passed on %d nodes\n", n);
    else
        kprintf("selftest: FAILED on %d nodes\n", n);
    return ok;
}

/* Every node at once.  Returns the verdict on the king (true elsewhere). */
bool selftest_run(void)
{
    struct selftest_shared *st = kg.selftest;
    struct selftest_node *me = &this_node.st;
    me->spin_rounds = me->spin_level_errors = me->sem_rounds = me->token_hops = 0;
    me->masking_ok = me->deferred_flag_ok = me->deferred_switch_ok = false;
    if (is_king()) {
        st->runs++;
        st->spin_counter = st->spin_overlaps = 0;
        st->sem_counter = st->sem_overlaps = 0;
        st->token_hops = 0;
        st->lock.contended = 0;
        st->mutex.blocked = 0;
        kprintf("selftest: run %u on %d nodes\n", st->runs, this_node.nnodes);
    }
    barrier_sync();
    test_spin_lock(st, me);
    test_masking(me);
    test_deferred_switch(me);
    barrier_sync();
    test_mutex(st, me);
    barrier_sync();
    test_token_ring(st, me);
    barrier_sync();
    return is_king() ? report(st) : true;
}
