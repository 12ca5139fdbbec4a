/*
 * restart.c: restart without reloading.
 *
 * Section 3.3: "we checksum the kernel code and save a copy of its data in
 * memory, so that the current version can be restarted in response to a
 * request on the console line."  start.S saves the data on the first boot
 * and restores them on a restart; this file keeps the code checksum, parks
 * the other nodes, and sends the king back to _entry.
 *
 * A restart is refused when the code no longer matches its checksum, e.g.
 * because a debugger left a breakpoint instruction in it: restarting would
 * replicate the corrupted code into every node (section 5).
 */
#include "clock.h"
#include "console.h"
#include "ipi.h"
#include "node.h"
#include "panic.h"
#include "restart.h"
#include "riscv.h"
#include "sched.h"

struct persist *const persist = (struct persist *)PERSIST_BASE;

/* start.S reaches these fields by offset. */
_Static_assert(offsetof(struct persist, magic) == PERSIST_MAGIC_OFF, "persist.magic");
_Static_assert(offsetof(struct persist, restart_state) == PERSIST_STATE_OFF, "persist.restart_state");
_Static_assert(offsetof(struct persist, parked) == PERSIST_PARKED_OFF, "persist.parked");
_Static_assert(offsetof(struct persist, data_save) == PERSIST_DATA_SAVE_OFF, "persist.data_save");

/* How long the king waits for the other nodes to park. */
#define PARK_TIMEOUT_CYCLES (TIMEBASE_HZ / 2)

/* Fletcher-style checksum of this node's code and read-only data. */
uint32_t code_checksum(void)
{
    const uint32_t *p = (const uint32_t *)_text_start;
    const uint32_t *end = (const uint32_t *)_rodata_end;
    uint32_t a = 1, b = 0;
    for (; p < end; p++) {
        a += *p;
        b += a;
    }
    return a ^ (b << 16 | b >> 16);
}

/* King, early in every boot: remember the code's checksum the first time. */
void restart_record_boot(void)
{
    if (!persist->code_sum_valid) {
        persist->code_sum = code_checksum();
        persist->code_bytes = (uint32_t)(_rodata_end - _text_start);
        persist->code_sum_valid = 1;
    }
    persist->boots++;
}

/* King, once every node is back: the restart (if any) is over. */
void restart_boot_done(void)
{
    persist->restart_state = RESTART_NONE;
    for (int k = 0; k < MAX_NODES; k++)
        persist->parked[k] = 0;
}

static NORETURN void sbi_call(uint32_t which)
{
    register uint32_t a7 __asm__("a7") = which;
    __asm__ volatile("ecall" :: "r"(a7) : "memory");
    for (;;)
        ;
}

/* Any node but the king: wait in M mode until the king restarts us. */
NORETURN void restart_park(void)
{
    intr_disable();
    this_node.state = NODE_PARKED;
    sbi_call(SBI_PARK);
}

NORETURN void sbi_restart(void)
{
    sbi_call(SBI_RESTART);
}

/*
 * Is node k stopped by a debugger?  The doorbells' HALTED bitmap says
 * (docs/memory-map.md), as a Butterfly node could see a peer held on its
 * front panel: the kernel cannot talk to the debugger, but it can tell the
 * user why a node does not answer.
 */
static int node_halted(int k)
{
    return (mmio_read32(DOORBELL_V + DB_HALTED + 4 * (uint32_t)(k / 32)) >> (k % 32)) & 1;
}

static int count_parked(void)
{
    int n = 0;
    for (int k = 1; k < this_node.nnodes; k++)
        n += persist->parked[k] != 0;
    return n;
}

/*
 * The monitor's `restart`.  Returns -1 if refused; otherwise it does not
 * return: the king starts over at _entry with its data as first loaded.
 */
int restart_request(void)
{
    uint32_t sum = code_checksum();
    if (sum != persist->code_sum) {
        persist->refused++;
        kprintf("restart refused: kernel code checksum is %08x, not %08x as at boot:\n"
                "  the code has been corrupted (a breakpoint instruction left in memory?)\n"
                "  and cannot be restarted; reload the kernel instead\n", sum, persist->code_sum);
        return -1;
    }
    int others = this_node.nnodes - 1;
    kprintf("restart: kernel code checksum %08x ok; parking %d other node%s\n",
            sum, others, others == 1 ? "" : "s");
    persist->restart_state = RESTART_PARKING;
    fence();
    for (int k = 1; k < this_node.nnodes; k++)
        ipi_send(k, IPI_RESTART);

    uint64_t deadline = rdtime() + PARK_TIMEOUT_CYCLES;
    WAIT_UNTIL(count_parked() == others || rdtime() >= deadline);
    if (count_parked() != others) {
        persist->refused++;
        kprintf("restart failed: only %d of %d nodes parked; not parked:", count_parked(), others);
        for (int k = 1; k < this_node.nnodes; k++)
            if (!persist->parked[k])
                kprintf(" %d", k);
        kprintf("\n");
        /*
         * Say why each one did not answer.  A node a debugger holds cannot
         * take the restart interrupt; it is still pending, so the node parks
         * as soon as it is let go.
         */
        int held = 0;
        for (int k = 1; k < this_node.nnodes; k++) {
            if (persist->parked[k])
                continue;
            if (node_halted(k)) {
                held++;
                kprintf("  node %d did not answer: it is stopped by a debugger; release it (detach\n"
                        "    its gdb, or `cont %d` in the mux console) and it parks\n", k, k);
            } else {
                kprintf("  node %d did not answer within %d ms and is not stopped by a debugger\n"
                        "    (interrupts masked for long, or hung?)\n",
                        k, (int)(PARK_TIMEOUT_CYCLES / (TIMEBASE_HZ / 1000)));
            }
        }
        kprintf("  (the parked nodes stay parked; %s)\n",
                held ? "try restart again once the node is released" : "try restart again");
        return -1;
    }
    kprintf("restart: restarting %d node%s without reloading\n",
            this_node.nnodes, this_node.nnodes == 1 ? "" : "s");
    intr_disable();
    sbi_restart();
}
