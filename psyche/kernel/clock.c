/*
 * clock.c: the per-node clock interrupt.
 *
 * Each node programs its own Sstc compare register (stimecmp) for HZ
 * interrupts a second of simulated time and counts them in this_node.ticks.
 * At the end of a quantum the handler asks for a context switch if another
 * thread is waiting.  It never switches itself: trap() switches on the way
 * out when the preemption level is zero; otherwise the request stays
 * pending (deferred) until preempt_enable() brings the level back to zero.
 *
 * The same compare register serves the timers of the node's virtual
 * processors (vp.c): it is set for whichever comes first, the next tick or a
 * VP's timer, so a timer software interrupt comes on time, not at the next
 * tick.  An interrupt before the next tick is a VP timer only, and no tick.
 */
#include "clock.h"
#include "node.h"
#include "riscv.h"
#include "sched.h"
#include "vm.h"
#include "vp.h"

/* stimecmp is CSR 0x14D, its high half 0x15D (Sstc). */
static void set_stimecmp(uint64_t when)
{
    /* Raise the low word first so no intermediate value lies in the past. */
    csr_write(0x14D, 0xFFFFFFFFu);
    csr_write(0x15D, (uint32_t)(when >> 32));
    csr_write(0x14D, (uint32_t)when);
}

void clock_start(void)
{
    uint64_t now = rdtime();
    this_node.clock_started = now;
    this_node.next_tick = now + TICK_CYCLES;
    this_node.timer_armed = this_node.next_tick;
    set_stimecmp(this_node.next_tick);
    csr_set(sie, SIE_STIE);
}

/* Make the clock interrupt at `when` if that is before what it is set for (interrupts masked). */
void timer_arm(uint64_t when)
{
    if (when < this_node.timer_armed) {
        this_node.timer_armed = when;
        set_stimecmp(when);
    }
}

/* Set the compare register for the next tick or the first VP timer before it. */
static void rearm(void)
{
    this_node.timer_armed = vp_next_timer(this_node.next_tick);
    set_stimecmp(this_node.timer_armed);
}

void clock_intr(void)
{
    uint64_t now = rdtime();
    if (now < this_node.next_tick) {   /* a VP's timer, not a tick */
        magic.time = now;
        vp_clock(now, false);
        rearm();
        return;
    }
    this_node.ticks++;
    this_node.next_tick += TICK_CYCLES;
    if (this_node.next_tick <= now) {
        /*
         * Whole ticks went by unserved: interrupts were masked across them, or
         * a debugger held this node, whose clock goes on while it is stopped
         * (docs/debug-semantics.md), for seconds or minutes perhaps.  Take
         * this interrupt as one tick, count the others as missed, and set the
         * next deadline from now: the first point of the tick grid after now.
         * The way real kernels catch up (Linux's tick_do_update_jiffies64
         * divides the delay by the tick period): one division, never a replay
         * of every lost tick, so neither a burst of stale interrupts nor a
         * loop that runs once per missed tick (which gdb's `next` stepped
         * through instruction by instruction: 30 s for 799 missed ticks).
         * The grid keeps the tick phase, so the clock does not drift.
         */
        uint64_t behind = now - this_node.next_tick;
        uint32_t skipped = 1 + (behind >> 32 ? (uint32_t)(behind / TICK_CYCLES)
                                             : (uint32_t)behind / TICK_CYCLES);
        this_node.missed_ticks += skipped;
        this_node.next_tick += (uint64_t)skipped * TICK_CYCLES;
    }
    magic.ticks = this_node.ticks;
    magic.time = now;
    vp_clock(now, true);
    rearm();

    if (++this_node.quantum_used < QUANTUM_TICKS)
        return;
    this_node.quantum_used = 0;
    if (runq_empty())
        return;                        /* nobody is waiting for the processor */
    this_node.resched_pending = 1;
    if (this_node.preempt_level > 0)
        this_node.deferred_switches++; /* preempt_enable() will switch */
}
