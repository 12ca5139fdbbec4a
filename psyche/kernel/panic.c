/*
 * panic.c: stop this node, report why, and let the others run on.
 *
 * The report names the node, the cause and the pc, and goes to the console
 * (through the king when this is another node) and to the node's own
 * on-board line.  The node then sleeps with every interrupt masked except
 * the doorbell, which it watches only for a restart: a panicked node can
 * still be parked and restarted from the console.
 */
#include "console.h"
#include "ipi.h"
#include "node.h"
#include "panic.h"
#include "restart.h"
#include "riscv.h"
#include "sched.h"
#include "trap.h"

static void report(const char *msg)
{
    onboard_puts(msg);
    kputs(msg);
}

NORETURN void halt_node(void)
{
    intr_disable();
    this_node.state = NODE_PANICKED;
    csr_write(sie, SIE_SEIE);        /* only the doorbell may wake us */
    for (;;) {
        wfi();
        ipi_clear_doorbell();
        if (persist->restart_state == RESTART_PARKING)
            restart_park();
    }
}

static bool panicking;

/*
 * Every panic goes through here, the one place a debugger needs to watch
 * (lld stops a node that reaches `panic`, by default).
 */
NORETURN void panic(const char *fmt, ...)
{
    char msg[200], line[300];
    uint32_t caller = (uint32_t)__builtin_return_address(0) - 4;
    intr_disable();
    if (panicking)
        halt_node();                 /* a panic while reporting a panic */
    panicking = true;
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    strncpy_z(this_node.panic_msg, msg, sizeof this_node.panic_msg);
    if (this_node.panic_cause == 0) {
        this_node.panic_pc = caller;
        ksnprintf(line, sizeof line, "\npanic: node %d: %s (called from pc %p)\n",
                  this_node.id, msg, (void *)caller);
    } else {
        ksnprintf(line, sizeof line, "\npanic: node %d: %s\n", this_node.id, msg);
    }
    report(line);
    ksnprintf(line, sizeof line, "panic: node %d stopped; the other nodes run on\n", this_node.id);
    report(line);
    halt_node();
}

/* An exception the kernel cannot handle: report where and why. */
NORETURN void panic_trap(struct trapframe *tf, const char *why)
{
    this_node.panic_cause = tf->scause ? tf->scause : ~0u;
    this_node.panic_pc = tf->sepc;
    this_node.panic_tval = tf->stval;
    panic("%s: %s (scause 0x%x) at pc %p, stval 0x%x; ra %p, sp %p, thread %s",
          why, trap_cause_name(tf->scause), tf->scause, (void *)tf->sepc, tf->stval,
          (void *)tf->ra, (void *)tf->sp, this_node.current ? this_node.current->name : "?");
}
