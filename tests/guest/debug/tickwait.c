/*
 * tickwait.c: a wait for one clock tick on the `time` CSR, for gdb's `next`
 * (issue 12, bug 5: the clock froze while a node was stopped, so `next` over
 * the wait below stepped 100 000 instructions and never seemed to end).
 *
 * Built at -O0 so the wait loop is one source line made of single
 * instructions (no call for gdb to step over); runs in M mode with
 * interrupts off, forever: wait a tick, count it.
 */
#include <stdint.h>

#define TICK_CYCLES 100000u /* one tick of the kernel's clock: 10 ms at TIMEBASE_HZ */

#define RDTIME() ({ uint32_t t_; __asm__ volatile("rdtime %0" : "=r"(t_)); t_; })

volatile uint32_t waited;   /* cycles the last wait took */
volatile uint32_t rounds;   /* waits completed */

void wait_one_tick(void)
{
    uint32_t start = RDTIME();
    while ((uint32_t)(RDTIME() - start) < TICK_CYCLES) {}
    waited = RDTIME() - start;
}

int test_main(void)
{
    for (;;) {
        wait_one_tick();
        rounds++;
    }
}
