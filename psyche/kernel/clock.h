/* clock.h: the per-node clock interrupt. */
#ifndef PSYCHE_CLOCK_H
#define PSYCHE_CLOCK_H

#include "types.h"

#define TIMEBASE_HZ    10000000u               /* the machine's nominal clock */
#define HZ             100u                    /* clock interrupts per second */
#define TICK_CYCLES    (TIMEBASE_HZ / HZ)
#define QUANTUM_TICKS  1u                      /* scheduling quantum, in ticks */

void clock_start(void);
void clock_intr(void);
void timer_arm(uint64_t when);

#endif
