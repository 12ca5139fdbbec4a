/*
 * ipi.c: synchronous inter-kernel interrupts.
 *
 * A sender posts what it wants in the target's record (ipi_pending, a
 * bitmask, with an atomic or) and rings the target's doorbell.  The target's
 * handler acknowledges the doorbell first and only then collects the posted
 * bits, so a ring that arrives in between raises a new interrupt rather
 * than being lost.
 */
#include "console.h"
#include "ipi.h"
#include "memlayout.h"
#include "net.h"
#include "node.h"
#include "panic.h"
#include "restart.h"
#include "riscv.h"
#include "sched.h"

/* Acknowledge every ring this node has received (PENDING_FROM is RW1C). */
void ipi_clear_doorbell(void)
{
    int words = (this_node.nnodes + 31) / 32;
    for (int w = 0; w < words; w++) {
        uint32_t reg = DOORBELL_V + DB_PENDING_FROM + 4 * w;
        uint32_t bits = mmio_read32(reg);
        if (bits)
            mmio_write32(reg, bits);
    }
}

/* Take remote interrupts from now on (S-level external interrupt, source 1). */
void ipi_init(void)
{
    ipi_clear_doorbell();
    this_node.ipi_pending = 0;
    spin_init(&this_node.call_lock, "ipi call");
    uint32_t enable = mmio_read32(INTC_V + INTC_ENABLE_S);
    mmio_write32(INTC_V + INTC_ENABLE_S, enable | (1u << SRC_DOORBELL));
    csr_set(sie, SIE_SEIE);
}

void ipi_ring(int node)
{
    mmio_write32(DOORBELL_V + DB_RING, (uint32_t)node);
}

void ipi_send(int node, uint32_t kinds)
{
    atomic_or(&node_ptr(node)->ipi_pending, kinds);
    ipi_ring(node);
}

/*
 * Run fn(arg) on another node, in its interrupt handler, and wait until it
 * has run.  fn must be short and must not block.  The wait keeps our own
 * interrupts enabled, so two nodes calling each other do not deadlock.
 *
 * In two halves, so that a caller can start calls on several nodes and then
 * wait for all their answers (TLB shootdown): ipi_call_start takes the
 * target's call lock, posts the call and rings; ipi_call_finish waits for
 * the answer and releases the lock.  Start calls in increasing node order.
 */
uint32_t ipi_call_start(int node, void (*fn)(void *), void *arg)
{
    struct node *n = node_ptr(node);
    spin_lock(&n->call_lock);
    n->call_fn = fn;
    n->call_arg = arg;
    n->call_from = this_node.id;
    uint32_t seq = n->call_seq + 1;
    fence();
    n->call_seq = seq;
    ipi_send(node, IPI_CALL);
    return seq;
}

/* A node that panics before it answers never will: stop waiting for it. */
void ipi_call_finish(int node, uint32_t seq)
{
    struct node *n = node_ptr(node);
    WAIT_UNTIL(n->call_done == seq || n->state == NODE_PANICKED);
    spin_unlock(&n->call_lock);
}

void ipi_call(int node, void (*fn)(void *), void *arg)
{
    ipi_call_finish(node, ipi_call_start(node, fn, arg));
}

static void ipi_serve_call(void)
{
    uint32_t seq = this_node.call_seq;
    if (seq == this_node.call_done)
        return;
    this_node.call_fn(this_node.call_arg);
    fence();
    this_node.call_done = seq;
    ipi_ring(this_node.call_from);   /* wake the caller */
}

/* The doorbell's interrupt handler. */
void ipi_intr(void)
{
    ipi_clear_doorbell();
    uint32_t kinds = atomic_swap(&this_node.ipi_pending, 0);
    this_node.ipis_received++;
    if (kinds & IPI_CALL)
        ipi_serve_call();
    if ((kinds & IPI_RESCHED) && this_node.current == this_node.idle)
        this_node.resched_pending = 1;
    if (kinds & IPI_CONSOLE)
        console_drain_remote();
    if (kinds & IPI_NET)
        net_kick();
    if (kinds & IPI_WORK)
        sem_V(&this_node.work_sem);
    if (kinds & IPI_RESTART)
        restart_park();
    if (kinds & IPI_PANIC)
        panic("panic requested on the console");
}
