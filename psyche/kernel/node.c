/*
 * node.c: the per-node record and the king's global variables, and the
 * initialization of a node's local data (the first step of Figure 3).
 */
#include "console.h"
#include "frame.h"
#include "ipi.h"
#include "memlayout.h"
#include "node.h"
#include "riscv.h"
#include "sched.h"
#include "trap.h"
#include "vm.h"
#include "vp.h"

/* Local data: at the same virtual address on every node, each its own. */
struct node this_node;

/* Initialized data: the king's values reach every node by replication.
 * kg starts all zero, so it must be placed in .data explicitly: .bss is
 * cleared by every node, never copied. */
struct kglobals kg __attribute__((section(".data"))) = { .magic = 0 };
struct bootargs bootargs = { .magic = BOOTARGS_MAGIC, .selftest = 0 };

/*
 * Everything a node sets up for itself before it can meet the others: its
 * record, address spaces, local heap, trap vector, threads and remote
 * interrupts.  The king and every other node run exactly this.
 */
void node_init_local(int id)
{
    struct node *n = &this_node;
    n->id = id;
    n->nnodes = (int)mmio_read32(DOORBELL_V + DB_NODE_COUNT);
    n->ram_base = node_ram(id);
    n->official = official(n);
    n->state = NODE_BOOTING;
    spin_init(&n->runq_lock, "run queue");

    vm_init();
    heap_init(&n->heap, "local", (uint32_t)_kernel_end,
              KERNEL_VBASE + LOCAL_HEAP_END_OFF - (uint32_t)_kernel_end);
    frame_init();
    trap_init();
    sched_init();
    vp_node_init();
    sem_init(&n->work_sem, 0, "daemon work");
    ipi_init();
    n->magic = NODE_MAGIC;
    intr_enable();
}
