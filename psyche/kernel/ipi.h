/*
 * ipi.h: synchronous inter-kernel interrupts through the doorbells.
 *
 * Most changes to another node's data are made directly in shared memory
 * and noticed later (section 3.1).  A remote interrupt is for what cannot
 * wait: waking a thread, draining console output, running a function on a
 * given node now (ipi_call), and restart.
 */
#ifndef PSYCHE_IPI_H
#define PSYCHE_IPI_H

#include "types.h"

#define IPI_RESCHED   (1u << 0)   /* a thread of yours became ready */
#define IPI_CALL      (1u << 1)   /* run call_fn(call_arg), then answer */
#define IPI_CONSOLE   (1u << 2)   /* king: console output waits in the ring */
#define IPI_WORK      (1u << 3)   /* wake your daemon thread: see node.work */
#define IPI_RESTART   (1u << 4)   /* park for a restart */
#define IPI_PANIC     (1u << 5)   /* panic (a monitor command, for testing) */
#define IPI_NET       (1u << 6)   /* NIC node: frames wait on the transmit ring (net.c) */

void ipi_init(void);
void ipi_ring(int node);
void ipi_send(int node, uint32_t kinds);
void ipi_call(int node, void (*fn)(void *), void *arg);
uint32_t ipi_call_start(int node, void (*fn)(void *), void *arg);
void ipi_call_finish(int node, uint32_t seq);
void ipi_intr(void);
void ipi_clear_doorbell(void);

#endif
