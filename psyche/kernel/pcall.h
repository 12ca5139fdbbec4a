/*
 * pcall.h: protected invocation (paper, sections 2.2 and 2.4;
 * docs/kernel-interface.md, "Protected invocation").
 */
#ifndef PSYCHE_PCALL_H
#define PSYCHE_PCALL_H

#include "sem.h"
#include "types.h"
#include "uapi/psyche.h"

struct domain;
struct trapframe;
struct vp;

/* One protected call in progress: a link of its process's kernel-kept call chain. */
struct pcall {
    int id;                      /* kg.vm->pcalls[id]; the process's name in the callee domain */
    int parent;                  /* the call the caller was itself serving, or -1: the chain */
    uint32_t entry;              /* the operation */
    struct domain *caller;
    struct vp *caller_vp;        /* the caller's VP; NULL once it is gone */
    bool async;                  /* the caller's VP took a call-out and runs on meanwhile */
    struct psy_state caller_state;  /* async: the caller's state at the call, pc its return address */
    struct pcall *next_ret;      /* async: the caller VP's queue of returns not yet delivered */
    uint32_t caller_process;     /* the caller's process name (its VP descriptor's `process`) */
    uint32_t ret_pc;             /* where the caller continues */
    uint32_t args[8];            /* the caller's a0..a7 */
    struct domain *callee;
    struct vp *callee_vp;        /* the VP that takes it; NULL once that is gone */
    struct pcall *next_in;       /* the callee VP's queue of calls not yet delivered */
    struct pcall *outer;         /* the call the callee VP served before this one */
    struct psy_state callee_prev;   /* what the call-in interrupted, resumed after the return */
    bool delivered;
    bool done;
    uint32_t result[2];          /* a0, a1 at the return */
    int refs;                    /* caller and callee: freed when both let go */
    struct sem returned;         /* the caller waits here */
};

bool pcall_fault(struct trapframe *tf);
bool pcall_start(struct trapframe *tf, char *why, uint32_t size);
bool pcall_deliver(struct trapframe *tf, struct vp *v);
bool pcall_deliver_return(struct trapframe *tf, struct vp *v);
void pcall_vp_gone(struct vp *v);
void pcall_kick(struct vp *v);
int pcall_set_home(struct domain *caller, uint32_t va, uint32_t key, uint32_t domain_va);
int pcall_set_ops(struct domain *caller, uint32_t va, uint32_t key, uint32_t ops_va, uint32_t n);
void pcalls_print(void);

#endif
