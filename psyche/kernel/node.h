/*
 * node.h: the per-node kernel record, the king's global variables, and the
 * two addresses of every piece of kernel data.
 *
 * Every node runs its own copy of the kernel, linked at KERNEL_VBASE and
 * mapped there onto its own RAM.  So `this_node` is one symbol, at one
 * virtual address, but each node sees its own record there: gdb's
 * `print this_node.ticks` on node 5 shows node 5's tick count.
 *
 * Peers reach a node's record at its official (kernel/kernel) address: the
 * same bytes, seen through the window that maps every node's RAM at its
 * physical address.  Kernel objects that other nodes may touch (threads,
 * semaphores, the records themselves) are named by official address
 * everywhere, so that a pointer means the same thing on every node.
 */
#ifndef PSYCHE_NODE_H
#define PSYCHE_NODE_H

#include "frame.h"
#include "heap.h"
#include "memlayout.h"
#include "sem.h"
#include "spinlock.h"
#include "types.h"

struct kthread;
struct net;

#define NODE_MAGIC 0x4E4F4445  /* "NODE" */

enum node_state {
    NODE_OFF = 0,       /* not started (held) */
    NODE_BOOTING,       /* running startup */
    NODE_UP,            /* booted: idle or running kernel threads */
    NODE_PANICKED,      /* stopped by panic; answers only a restart */
    NODE_PARKED,        /* parked in M mode for a restart */
};

/* Results of one self-test run on one node (selftest.c). */
struct selftest_node {
    uint32_t spin_rounds;        /* spin lock acquisitions completed */
    uint32_t spin_level_errors;  /* critical sections entered with preemption enabled */
    uint32_t sem_rounds;         /* semaphore P/V pairs completed */
    uint32_t token_hops;         /* tokens passed on in the ring */
    bool masking_ok;             /* the clock stayed quiet while interrupts were masked */
    bool deferred_flag_ok;       /* the clock set the deferred-switch flag at level > 0 */
    bool deferred_switch_ok;     /* the switch happened when the level returned to 0 */
    struct kthread *helper;      /* local thread the deferred switch goes to */
    struct sem *helper_go;       /* the helper waits here */
    volatile uint32_t helper_runs;
};

struct node {
    uint32_t magic;               /* NODE_MAGIC once startup has initialized it */
    int id;                       /* node number; the king is 0 */
    int nnodes;                   /* nodes in the machine */
    uint32_t ram_base;            /* physical (= official) base of this node's RAM */
    struct node *official;        /* this record at its kernel/kernel address */
    volatile int state;           /* enum node_state */

    /* Clock (clock.c). */
    volatile uint32_t ticks;      /* clock interrupts taken: the per-node tick count */
    uint64_t next_tick;           /* time of the next clock interrupt, in cycles */
    uint64_t clock_started;       /* time the clock started */
    uint32_t missed_ticks;        /* ticks lost while interrupts were masked */
    uint32_t quantum_used;        /* ticks of the current quantum so far */

    /* Synchronization (spinlock.c), section 3.2. */
    volatile int preempt_level;   /* > 0: no involuntary context switch */
    volatile int resched_pending; /* the clock (or a wakeup) asked for a switch */
    volatile int in_interrupt;    /* an interrupt handler is running */
    uint32_t deferred_switches;   /* quanta that ended while the level was positive */
    uint32_t deferred_honoured;   /* switches made when the level returned to zero */

    /* Scheduling (sched.c): this node's threads. */
    struct spinlock runq_lock;    /* peers insert threads they wake */
    struct kthread *runq_head;
    struct kthread *runq_tail;
    volatile uint32_t runq_len;   /* threads on the ready queue (for the magic page) */
    struct kthread *current;      /* running thread (official address) */
    struct kthread *idle;         /* runs when nothing else is ready */
    struct kthread *threads;      /* every thread of this node, for status */
    uint32_t switches;            /* context switches */
    uint32_t preemptions;         /* switches forced by the clock */

    /* Inter-kernel interrupts (ipi.c). */
    volatile uint32_t ipi_pending;     /* IPI_* kinds posted by peers */
    uint32_t ipis_received;
    struct spinlock call_lock;         /* one synchronous call at a time */
    void (*volatile call_fn)(void *);
    void *volatile call_arg;
    volatile int call_from;
    volatile uint32_t call_seq;
    volatile uint32_t call_done;

    /* Work for this node's kernel daemon thread (main.c). */
    struct sem work_sem;
    volatile uint32_t work;            /* WORK_* requests */
    volatile bool running;             /* WORK_RUN: a user program is running here */
    char run_line[128];                /* WORK_RUN: the program's name and arguments */

    /* What this node learned about itself during boot, for its peers. */
    uint32_t barriers_passed;
    int peers_seen;                    /* records of peers found sane (episode 2) */
    uint32_t code_sum;                 /* checksum of this node's code copy */
    bool code_ok;                      /* ... equal to the king's at first boot */
    bool spaces_ok;                    /* user/kernel space switch worked */
    volatile int pings_received;       /* synchronous IPIs served (episode 3) */
    int ping_from;

    /* Memory (heap.c): the local heap, for thread stacks and local objects. */
    struct heap heap;
    struct framepool pool;             /* frames for realms and page tables (frame.c) */
    uint32_t tlb_flushes;              /* shootdowns served (realm.c) */

    /* Virtual processors on this node (vp.c): records ready to start, ended ones. */
    struct kthread *vp_free;           /* thread records for VPs, not running */
    uint64_t timer_armed;              /* when stimecmp fires next (clock.c) */
    uint32_t swis_delivered;           /* software interrupts delivered here */
    uint32_t swi_errors;               /* ... of them kernel-detected errors */

    /* The network (net.c): does this node have a NIC?  A kernel probe's fault (trap.c). */
    bool has_nic;
    volatile int probing;
    volatile int probe_faulted;

    /* Panic (panic.c). */
    uint32_t panic_cause;
    uint32_t panic_pc;
    uint32_t panic_tval;
    char panic_msg[160];

    struct selftest_node st;
};

/* The king's global variables: set before replication, so every node's
 * copy of them holds the addresses of the shared objects (Figure 3). */
struct kglobals {
    uint32_t magic;                   /* KG_MAGIC once shared data exist */
    int nnodes;
    struct heap *shared_heap;         /* kernel/kernel heap in the king's RAM */
    struct barrier *barrier;          /* for barrier_sync */
    struct node **nodes;              /* each node's record, written by that node */
    struct conring *conring;          /* console output from non-king nodes */
    struct selftest_shared *selftest; /* objects the self-test contends on */
    uint64_t boot_started;            /* king's clock when this boot began */
    uint32_t image_bytes;             /* code and data copied into each node */
    struct vm *vm;                    /* realms and protection domains (realm.h) */
    struct net *net;                  /* the network stack (net.c) */
};
#define KG_MAGIC 0x4B474C42  /* "KGLB" */

/* Flags the host may set before the king starts (see docs/kernel.md). */
struct bootargs {
    uint32_t magic;                   /* BOOTARGS_MAGIC: lets a host find and check it */
    uint32_t selftest;                /* non-zero: run the lock self-test at boot */
    uint32_t files_port;              /* non-zero: start the user level (init) at boot, with the
                                         host's file server at 10.0.2.2:files_port */
};
#define BOOTARGS_MAGIC 0x42415247  /* "BARG" */

/* Requests for a node's daemon thread. */
#define WORK_SELFTEST  (1u << 0)
#define WORK_RUN       (1u << 1)   /* run_line: run a user program (user.c) */

extern struct node this_node;
extern struct kglobals kg;
extern struct bootargs bootargs;

/* Linker-script symbols: the kernel image in the local window. */
extern char _text_start[], _text_end[], _rodata_start[], _rodata_end[];
extern char _data_start[], _data_end[], _bss_start[], _bss_end[], _kernel_end[];
extern char boot_stack[], boot_stack_top[];

void node_init_local(int id);

static inline bool is_king(void) { return this_node.id == 0; }

static inline uint32_t node_ram(int k) { return NODE_RAM_BASE + ((uint32_t)k << NODE_RAM_SHIFT); }

/* Official (kernel/kernel) address of a local-window address on node k. */
static inline void *official_on(int k, const void *local)
{
    return (void *)((uint32_t)local - KERNEL_VBASE + node_ram(k));
}

/* Official address of a local-window address of this node. */
static inline void *official(const void *local)
{
    return (void *)((uint32_t)local - KERNEL_VBASE + this_node.ram_base);
}

/* Node k's record, wherever the caller runs. */
static inline struct node *node_ptr(int k) { return official_on(k, &this_node); }

#endif
