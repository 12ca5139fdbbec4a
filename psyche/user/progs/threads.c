/*
 * threads: the user-level thread package on several VPs and nodes.
 *
 *   threads NPROCS WORK rr|fifo|switch
 *
 * Makes NPROCS processes spread round-robin over four VPs, then the VPs,
 * on this node and the next (two each, the first VP included), so that
 * each VP starts with its whole queue, each adding 1..WORK into a
 * shared total (preempted by the VPs' interval timers, and yielding now and
 * then); `switch` starts round-robin and switches every VP to FIFO-priority
 * when half the processes are done.  Process i has priority (i / 4) % 4.
 * Prints the total, the total it should be, and what each VP did: whether
 * its processes finished in priority order (what FIFO-priority promises).
 */
#include "uthread.h"

#define NVPS 4

static volatile uint32_t total, done, switched;
static uint32_t work, switch_at;
static uint32_t finished[UT_MAX + 1];   /* process id -> its place in the order of finishing */

static void count(void *arg)
{
    (void)arg;
    uint32_t sum = 0;
    for (uint32_t i = 1; i <= work; i++) {
        sum += i;
        if (i % (work / 4 + 1) == 0)
            ut_yield();
    }
    __atomic_fetch_add(&total, sum, __ATOMIC_SEQ_CST);
    uint32_t place = __atomic_add_fetch(&done, 1, __ATOMIC_SEQ_CST);
    finished[ut_self()->pub.name] = place;
    if (place == switch_at) {
        for (uint32_t v = 0; v < ut_table.nvps; v++)
            ut_set_sched(v, UT_SCHED_FIFO);
        switched = 1;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        printf("usage: threads NPROCS WORK rr|fifo|switch\n");
        return 1;
    }
    uint32_t nprocs = parse_number(argv[1]);
    work = parse_number(argv[2]);
    uint32_t sched = strcmp(argv[3], "fifo") == 0 ? UT_SCHED_FIFO : UT_SCHED_RR;
    switch_at = strcmp(argv[3], "switch") == 0 ? nprocs / 2 : 0;
    const struct psy_magic *m = magic_page();
    uint32_t here = m->node, there = (m->node + 1) % m->nnodes;
    int err = ut_init(sched);
    for (uint32_t i = 0; !err && i < nprocs; i++) {
        int id = ut_create(count, 0, (i / 4) % 4, i % NVPS);
        err = id < 0 ? id : 0;
    }
    uint32_t nodes[NVPS - 1] = { here, there, there };
    for (int i = 0; !err && i < NVPS - 1; i++) {
        int vp = ut_add_vp(nodes[i], sched);
        err = vp < 0 ? vp : 0;
    }
    if (err) {
        printf("threads: %s\n", error_name(err));
        return 1;
    }
    ut_run();
    uint32_t want = nprocs * (work * (work + 1) / 2);
    printf("threads: total %u want %u, %u processes done%s\n", total, want, done,
           switched ? ", switched to fifo" : "");
    for (uint32_t v = 0; v < ut_table.nvps; v++) {
        struct ut_vp *vp = &ut_table.vps[v];
        uint32_t preempted = 0, ran = 0, inversions = 0;
        for (uint32_t i = 0; i < ut_table.nprocs; i++) {
            struct ut_process *p = &ut_table.procs[i];
            if (p->vp != v)
                continue;
            preempted += p->preempted;
            ran += p->pub.state == UT_DONE;
            for (uint32_t j = 0; j < ut_table.nprocs; j++) {
                struct ut_process *q = &ut_table.procs[j];
                if (q->vp == v && q->priority > p->priority && finished[q->pub.name] > finished[p->pub.name])
                    inversions++;     /* q outranks p but finished after it */
            }
        }
        printf("threads: vp %u on node %u: %u processes done, %u switches, %u preemptions, "
               "%u priority inversions, %s\n", v, vp->node, ran, vp->switches, preempted,
               inversions, vp->sched == UT_SCHED_FIFO ? "fifo" : "rr");
    }
    return total == want ? 0 : 2;
}
