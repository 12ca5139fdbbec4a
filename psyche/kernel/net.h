/*
 * net.h: the NIC driver and a small UDP/IPv4 stack (docs/kernel.md,
 * "The network"; the calls are in docs/kernel-interface.md).
 *
 * One NIC serves the machine: the lowest-numbered node that has one.  Its
 * state lives in memory every node reaches (the shared heap, and rings and
 * buffers in the NIC node's RAM at official addresses), under one spin lock
 * with interrupts locked out.  Any node runs the stack's code on that state;
 * only the NIC's registers are the NIC node's own, so another node that
 * queued a frame rings it (IPI_NET) to write the transmit tail.
 */
#ifndef PSYCHE_NET_H
#define PSYCHE_NET_H

#include "types.h"

struct domain;
struct vp;

bool net_probe(void);
void net_shared_init(void);
void net_init(void);
void net_intr(void);
void net_kick(void);
void net_vp_gone(struct vp *v);
void net_print(void);

/* Kernel calls (kcall.c). */
int net_udp_bind(uint32_t port);
int net_udp_unbind(struct domain *d, uint32_t port);
int net_udp_send(struct domain *d, uint32_t ports, uint32_t ip, uint32_t va, uint32_t len);
int net_udp_recv(struct domain *d, uint32_t port, uint32_t va, uint32_t len, uint32_t from_va);

#endif
