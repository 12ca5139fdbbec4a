/*
 * barrier.c: barrier_sync, the all-node barrier of Figure 3.
 *
 * A central counter in the shared heap.  Each node reads the episode number,
 * then adds itself to the count; the last to arrive resets the count, starts
 * the next episode, and rings every other node's doorbell.  The others sleep
 * in wfi until then, instead of spinning on the king's memory: with 128
 * nodes a spinning barrier would cost more than everything else at boot.
 * The clock, once running, wakes them too, so a lost ring only costs time.
 */
#include "barrier.h"
#include "ipi.h"
#include "node.h"
#include "riscv.h"
#include "sched.h"

void barrier_init(struct barrier *b, int nnodes)
{
    b->arrived = 0;
    b->episode = 0;
    b->nnodes = nnodes;
}

/* Wait until every node has called barrier_sync; returns the episode passed. */
uint32_t barrier_sync(void)
{
    struct barrier *b = kg.barrier;
    uint32_t episode = b->episode;

    if (atomic_add(&b->arrived, 1) == (uint32_t)b->nnodes - 1) {
        b->arrived = 0;
        fence();
        b->episode = episode + 1;
        fence();
        for (int k = 0; k < b->nnodes; k++)
            if (k != this_node.id)
                ipi_ring(k);
    } else {
        WAIT_UNTIL(b->episode != episode);
    }
    this_node.barriers_passed++;
    return episode + 1;
}
