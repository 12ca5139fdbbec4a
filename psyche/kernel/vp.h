/*
 * vp.h: virtual processors and software interrupts (paper, sections 2.2 and
 * 2.3; docs/kernel-interface.md).
 *
 * A virtual processor is a kernel thread that runs user code in one
 * protection domain on one node, plus a user-maintained descriptor (struct
 * psy_vp) that the kernel reads and writes in place.  The node's scheduler
 * time-slices its VPs round-robin with its other kernel threads.
 */
#ifndef PSYCHE_VP_H
#define PSYCHE_VP_H

#include "types.h"
#include "uapi/psyche.h"

struct domain;
struct kthread;
struct realm;
struct trapframe;

#define VP_SHELLS 8          /* VPs that create_vp can start on one node */

struct vp {
    int id;                      /* its number: kg.vm->vps[id] */
    int node;                    /* the node it runs on */
    struct domain *dom;
    int dom_id;                  /* its number (the magic page's statistics read it unlocked) */
    struct kthread *thread;
    bool first;                  /* the thread `run` started the program on */
    uint32_t desc_va;            /* its descriptor, as the user sees it; 0: none yet */
    struct psy_vp *desc;         /* ... and as the kernel reaches it: the frame's official address */
    struct realm *desc_realm;    /* the realm it lies in (destroy_realm refuses while it is used) */
    volatile uint32_t pending;   /* 1 << kind: software interrupts waiting for delivery */
    volatile uint32_t dying;     /* asked to end (destroy_vp, or the program's end) */
    volatile uint32_t blocked;   /* in PSY_BLOCK; whoever swaps it to 0 makes it ready */
    volatile int state;          /* PSY_VP_*, for the magic page */
    uint64_t interval_next;      /* when the interval timer fires next; 0: not started */
    uint64_t since;              /* when it last began to run */
    uint32_t cycles;             /* accumulated running time */

    /* Protected calls (pcall.c), under vm->lock. */
    struct pcall *calls_in;      /* calls queued for it, not yet delivered */
    struct pcall *calls_tail;
    struct pcall *serving;       /* the call whose operation it runs (innermost) */
    struct pcall *awaiting;      /* the call it waits on as a caller */
    struct pcall *returns;       /* asynchronous calls returned, not yet delivered */
    struct pcall *returns_tail;
};

void vp_node_init(void);
struct vp *vp_first(struct domain *d);
void vp_first_done(struct vp *v);
int vp_end_domain(struct domain *d);
void vp_switch(struct kthread *prev, struct kthread *next);
void vp_clock(uint64_t now, bool tick);
uint64_t vp_next_timer(uint64_t until);
bool vp_error(struct trapframe *tf);
void vp_return(struct trapframe *tf);
bool vp_desc_in(struct realm *r);
void vp_pend(struct vp *v, uint32_t kind);
void vp_deliver(struct trapframe *tf, struct vp *v, uint32_t kind, uint32_t a1, uint32_t a2);
void vps_print(void);

/* Kernel calls (kcall.c). */
int vp_create(struct domain *caller, uint32_t domain_va, uint32_t node, uint32_t desc_va);
int vp_destroy(struct domain *caller, uint32_t id);
int vp_set_desc(uint32_t desc_va);
int vp_block(void);
int vp_resume(struct trapframe *tf, uint32_t state_va);
int vp_info(struct domain *caller, uint32_t id, uint32_t info_va);

#endif
