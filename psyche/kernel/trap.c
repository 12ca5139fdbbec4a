/*
 * trap.c: where every S-mode trap lands (via trap_entry in entry.S).
 *
 * Interrupts go to their handlers: the clock, the doorbell (remote
 * interrupts from other nodes) and, on the king, the console line, whether
 * they interrupted the kernel or user code.  Exceptions from U mode (kernel
 * calls, page faults, errors) go to user_exception (user.c), with
 * interrupts enabled: a kernel call may wait for other nodes.  An exception
 * in the kernel itself is a kernel bug: panic, which stops this node only.
 * No exception from U mode ever panics the kernel.
 *
 * Handlers run with interrupts masked and marked in_interrupt, so nothing
 * they call switches threads.  On the way out, trap() makes the switch the
 * clock asked for if the interrupted code was at preemption level zero, and
 * on the way back to user code it delivers software interrupts (vp.c).
 */
#include "clock.h"
#include "console.h"
#include "ipi.h"
#include "memlayout.h"
#include "net.h"
#include "node.h"
#include "panic.h"
#include "riscv.h"
#include "sched.h"
#include "trap.h"
#include "user.h"
#include "vp.h"

/* entry.S saves registers at these offsets. */
_Static_assert(offsetof(struct trapframe, sp) == 4, "trapframe.sp");
_Static_assert(offsetof(struct trapframe, t6) == 120, "trapframe.t6");
_Static_assert(offsetof(struct trapframe, sepc) == 124, "trapframe.sepc");
_Static_assert(offsetof(struct trapframe, stval) == 136, "trapframe.stval");
_Static_assert(sizeof(struct trapframe) == 144, "trapframe size");

void trap_init(void)
{
    csr_write(stvec, (uint32_t)trap_entry);
    csr_write(sscratch, 0);
    csr_write(scounteren, 7);   /* user code may read cycle, time and instret */
    csr_write(sie, 0);
    mmio_write32(INTC_V + INTC_ENABLE_S, 0);   /* each source is enabled by its driver */
}

/* External interrupt: ask the interrupt controller which sources are up. */
static void external_intr(void)
{
    uint32_t pending = mmio_read32(INTC_V + INTC_PENDING) & mmio_read32(INTC_V + INTC_ENABLE_S);
    if (pending & (1u << SRC_DOORBELL))
        ipi_intr();
    if (pending & (1u << SRC_CONSOLE))
        console_intr();
    if (pending & (1u << SRC_NIC))
        net_intr();
}

/*
 * Read a device register that may not exist: a load access fault while
 * probing is not a kernel bug but the answer "no".  Used at boot, to find
 * which nodes have a NIC (docs/memory-map.md: a node without one faults).
 */
bool probe_read32(uint32_t addr, uint32_t *value)
{
    this_node.probe_faulted = 0;
    this_node.probing = 1;
    __asm__ volatile("" ::: "memory");
    *value = mmio_read32(addr);
    __asm__ volatile("" ::: "memory");
    this_node.probing = 0;
    return !this_node.probe_faulted;
}

void trap(struct trapframe *tf)
{
    uint32_t cause = tf->scause;
    if (!(cause & SCAUSE_INTR)) {
        if ((tf->sstatus & SSTATUS_SPP) && this_node.probing && cause == EXC_LOAD_ACCESS) {
            this_node.probe_faulted = 1;
            tf->sepc += 4;                   /* skip the load (no compressed instructions) */
            return;
        }
        if (tf->sstatus & SSTATUS_SPP)
            panic_trap(tf, "kernel trap");
        intr_enable();
        user_exception(tf);
        intr_disable();      /* trap_return must not be interrupted */
        vp_return(tf);
        return;
    }
    this_node.in_interrupt = 1;
    switch (cause & ~SCAUSE_INTR) {
    case IRQ_S_TIMER:
        clock_intr();
        break;
    case IRQ_S_EXT:
        external_intr();
        break;
    default:
        panic_trap(tf, "unexpected interrupt");
    }
    this_node.in_interrupt = 0;
    if (this_node.resched_pending && this_node.preempt_level == 0) {
        if (this_node.current == this_node.idle)
            yield();         /* a thread woke up: leave the idle loop */
        else
            preempt();       /* the quantum ended: involuntary switch */
    }
    if (!(tf->sstatus & SSTATUS_SPP))
        vp_return(tf);       /* back to user code: software interrupts are delivered now */
}

const char *trap_cause_name(uint32_t scause)
{
    static const char *const exceptions[] = {
        "instruction address misaligned", "instruction access fault",
        "illegal instruction", "breakpoint", "load address misaligned",
        "load access fault", "store address misaligned", "store access fault",
        "ecall from U mode", "ecall from S mode", "reserved", "ecall from M mode",
        "instruction page fault", "load page fault", "reserved", "store page fault",
    };
    static const char *const interrupts[] = {
        "reserved", "supervisor software interrupt", "reserved", "machine software interrupt",
        "reserved", "supervisor timer interrupt", "reserved", "machine timer interrupt",
        "reserved", "supervisor external interrupt", "reserved", "machine external interrupt",
    };
    uint32_t code = scause & ~SCAUSE_INTR;
    if (scause & SCAUSE_INTR)
        return code < ARRAY_SIZE(interrupts) ? interrupts[code] : "unknown interrupt";
    return code < ARRAY_SIZE(exceptions) ? exceptions[code] : "unknown exception";
}
