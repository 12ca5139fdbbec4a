/*
 * uthread.h: a user-level thread package (the paper's section 2.3: "first
 * class user-level threads").
 *
 * Lightweight processes are made and scheduled entirely in user space, on
 * the domain's virtual processors.  Each VP has its own ready queue and its
 * own scheduler, round-robin or FIFO-priority, which can be changed at any
 * time.  Preemption comes from the VP's interval timer: a software
 * interrupt whose handler switches processes.  A switch is a user-level
 * context switch plus a store of the process's name into the VP descriptor:
 * no kernel call.
 *
 * Every process descriptor is in one structure, ut_table (below), which is
 * what a debugger reads to show the processes as threads.
 */
#ifndef PSYCHE_UTHREAD_H
#define PSYCHE_UTHREAD_H

#include <stdbool.h>

#include "ulib.h"

#define UT_MAX          40          /* processes */
#define UT_VPS          8           /* VPs */
#define UT_STACK        2048        /* bytes of stack per process */
#define UT_QUANTUM      20000       /* interval timer period, cycles (2 ms) */
#define UT_TABLE_MAGIC  0x54485455  /* "UTHT" */

/* A process's state: the names debuggers know (uapi/psyche.h, struct psy_process). */
enum ut_state {
    UT_FREE = PSY_PROC_FREE, UT_READY = PSY_PROC_READY, UT_RUNNING = PSY_PROC_RUNNING,
    UT_DONE = PSY_PROC_DONE, UT_AWAY = PSY_PROC_AWAY,
};
enum ut_sched { UT_SCHED_RR, UT_SCHED_FIFO };

/* Callee-saved registers: what a user-level switch saves (the rest is on the stack). */
typedef struct psy_context ut_context;

/*
 * A process descriptor.  It begins with what debuggers read of it (its name
 * 1, 2, ..., which the VP descriptor's `process` holds while it runs; its
 * state; its saved context), published through the domain descriptor.
 */
struct ut_process {
    struct psy_process pub;
    uint32_t priority;              /* FIFO-priority: higher runs first */
    uint32_t vp;                    /* index in ut_table.vps of the VP it runs on */
    void (*fn)(void *);
    void *arg;
    uint32_t stack;                 /* lowest address of its stack */
    uint32_t runs;                  /* times it was switched to */
    uint32_t preempted;             /* ... away from by the interval timer */
    uint32_t calls;                 /* protected calls it made (UT_AWAY while one is out) */
    struct psy_state back;          /* the state a protected call's return brings */
    struct ut_process *next;        /* ready queue */
};

/* One VP as the package sees it. */
struct ut_vp {
    /* The kernel's VP descriptor: first, so its address is the VP's; aligned so it is in one page. */
    struct psy_vp desc __attribute__((aligned(512)));
    volatile uint32_t sched;        /* enum ut_sched; ut_set_sched changes it */
    volatile uint32_t lock;         /* the ready queue's */
    struct ut_process *current;     /* running process, or NULL in the scheduler loop */
    struct ut_process *head;        /* ready queue */
    ut_context loop;                /* the VP's scheduler loop, while a process runs */
    uint32_t node;
    uint32_t switches;              /* processes switched to */
};

struct ut_table {
    struct psy_processes published; /* procs, for debuggers: the domain descriptor points here */
    uint32_t magic;                 /* UT_TABLE_MAGIC once ut_init ran */
    uint32_t nprocs;                /* procs[0..nprocs) have been used */
    uint32_t nvps;
    volatile uint32_t live;         /* processes made and not yet done */
    struct ut_process procs[UT_MAX];
    struct ut_vp vps[UT_VPS];
    uint8_t stacks[UT_MAX + UT_VPS][UT_STACK] __attribute__((aligned(16)));   /* processes', then VPs' */
};

extern struct ut_table ut_table;

int ut_init(uint32_t sched);   /* the calling VP becomes vps[0] */
int ut_add_vp(uint32_t node, uint32_t sched);            /* a new VP; its index, or an error */
int ut_create(void (*fn)(void *), void *arg, uint32_t priority, uint32_t vp);  /* vp: an index */
void ut_yield(void);
void ut_set_sched(uint32_t vp, uint32_t sched);
void ut_run(void);                  /* vps[0] runs processes until none is left */
struct ut_process *ut_self(void);

#endif
