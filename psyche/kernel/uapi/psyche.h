/*
 * uapi/psyche.h: the Psyche kernel interface, as user code sees it.
 *
 * Shared by the kernel and by user programs (psyche/user/), so the two can
 * never disagree about a call number, a flag or a structure layout.  The
 * prose is docs/kernel-interface.md; keep the two in step.
 *
 * A kernel call is `ecall` from U mode with the call number in a7 and up to
 * four arguments in a0..a3.  The result comes back in a0: a value >= 0, or
 * a negative PSY_E* error.  Every other register is preserved.  A bad
 * argument is an error return that changes nothing, never a fault.
 */
#ifndef PSYCHE_UAPI_PSYCHE_H
#define PSYCHE_UAPI_PSYCHE_H

/* Kernel call numbers (a7). */
#define PSY_PUTC            0   /* (c): print one character on the console */
#define PSY_PUTS            1   /* (va, len): print len bytes at va; returns len */
#define PSY_EXIT            2   /* (status): end the program; does not return */
#define PSY_MAKE_REALM      3   /* (size, flags, key, at): returns the realm's address */
#define PSY_DESTROY_REALM   4   /* (va, key): va is the realm's first address */
#define PSY_MAKE_DOMAIN     5   /* (key): returns the new domain's descriptor address */
#define PSY_SET_ACCESS      6   /* (va, key, other, rights): set other's rights on the realm */
#define PSY_DESTROY_DOMAIN  7   /* (va, key, flags): va is the domain's descriptor */
#define PSY_CREATE_VP       8   /* (domain, node, desc): returns the new VP's number */
#define PSY_DESTROY_VP      9   /* (vp): end a VP of the caller's domain */
#define PSY_SET_VP          10  /* (desc): the calling VP's descriptor */
#define PSY_BLOCK           11  /* (): block until a software interrupt is pending */
#define PSY_RESUME          12  /* (state): continue at the struct psy_state at `state` */
#define PSY_SET_HOME        13  /* (va, key, domain): the realm's distinguished domain */
#define PSY_SET_OPS         14  /* (va, key, ops, n): the realm's n operations, addresses at ops */
#define PSY_REALM_INFO      15  /* (va, info): describe the realm holding va in *info */
#define PSY_UDP_BIND        16  /* (port): the port is the calling VP's; PSY_SWI_NET tells it */
#define PSY_UDP_SEND        17  /* (ports, ip, va, len): send len bytes at va; returns len */
#define PSY_UDP_RECV        18  /* (port, va, len, from): the oldest datagram, or PSY_EAGAIN */
#define PSY_UDP_UNBIND      19  /* (port): give a port of the caller's domain back */
#define PSY_CONSOLE_ATTACH  20  /* (): the calling VP becomes the console's user reader */
#define PSY_CONSOLE_READ    21  /* (va, len): the oldest input line for it, or PSY_EAGAIN */
#define PSY_CONSOLE_DETACH  22  /* (): give console input back to the kernel monitor */
#define PSY_VP_INFO         23  /* (id, info): describe VP number id in *info */
#define PSY_DOMAIN_INFO     24  /* (id, info): describe domain number id in *info */
#define PSY_NCALLS          25

/* Errors (negative results). */
#define PSY_EINVAL   (-1)   /* unknown flags, zero or oversized size, zero key, no rights */
#define PSY_EALIGN   (-2)   /* a size or address that is not a multiple of the page size */
#define PSY_ERANGE   (-3)   /* an address outside the user space, device window or node range */
#define PSY_ENOREALM (-4)   /* no realm begins at that address */
#define PSY_EKEY     (-5)   /* the key is not on the realm's access list with the right needed */
#define PSY_ENOMEM   (-6)   /* no frames, no address space, or a table is full */
#define PSY_EBUSY    (-7)   /* the address range asked for overlaps a realm */
#define PSY_ENOSYS   (-8)   /* no such kernel call */
#define PSY_EFAULT   (-9)   /* a buffer the domain may not read */
#define PSY_EPERM    (-10)  /* not allowed: device realms, a port the domain did not bind,
                               the console's input for a VP that is not its reader */
#define PSY_ENOVP    (-11)  /* no such VP in the caller's domain */
#define PSY_EAGAIN   (-12)  /* nothing yet, try again later (no datagram or line; ring full) */
#define PSY_ENODEV   (-13)  /* the machine has no network interface */

/* Rights: on an access list entry, and in make_realm's flags for `key`. */
#define PSY_R        0x01   /* read (open for optimized access) */
#define PSY_W        0x02   /* write */
#define PSY_X        0x04   /* execute (optimized invocation) */
#define PSY_INVOKE   0x08   /* protected invocation only: a verified target */
#define PSY_OWNER    0x10   /* destroy the realm, change its access list */
#define PSY_RIGHTS   0x1F

/* make_realm flags, beyond the rights in the low bits. */
#define PSY_REALM_AT       0x100   /* place the realm at virtual address `at` */
#define PSY_REALM_DEVICE   0x200   /* map device registers at physical address `at` */
#define PSY_REALM_NODE(k)  (((k) + 1) << 16)  /* frames on node k (default: the caller's) */
/* Replication (section 4.2): each node maps the realm from a copy in its own
 * memory, made at creation, when a domain on that node opens the realm, or
 * page by page on demand.  Only mappings without the write right use copies. */
#define PSY_REPLICATE_CREATE  0x400
#define PSY_REPLICATE_OPEN    0x800
#define PSY_REPLICATE_DEMAND  0x1000
#define PSY_REPLICATE         0x1C00
#define PSY_REALM_NODE_OF(flags) ((int)(((flags) >> 16) & 0xFF) - 1)

/* destroy_domain flags. */
#define PSY_DOMAIN_VPS     0x1     /* end the domain's VPs first (not a program's first VP) */

/* The user part of the uniform address space, and the magic page. */
#define PSY_USER_BASE      0x00100000
#define PSY_USER_END       0x7FC00000
#define PSY_MAGIC_PAGE     0x7FFFF000
/* A protected call's return address: an operation "returns" by a fetch fault here. */
#define PSY_RETURN_VA      0x7FFFE000
#define PSY_PAGE_SIZE      4096
#define PSY_REALM_MAX      (1024 * 1024)   /* largest realm, bytes */

/* Device realms: the node-local device window (physical). */
#define PSY_DEVICE_BASE    0x02000000
#define PSY_DEVICE_END     0x10005000   /* the NIC's page (0x1000_4000) included */

#ifndef __ASSEMBLER__
/*
 * A realm as realm_info shows it (section 2.2: "each realm consists of code
 * and data", its code "operations that provide a protocol for accessing the
 * data").  Protected calls may enter a realm only at one of its operations.
 * The access list shows every entry's rights, but only the keys the
 * caller's domain holds itself: the others are 0, since a key is a
 * capability and knowing it is having it.
 */
#define PSY_REALM_OPS      16
#define PSY_REALM_ACL      8

struct psy_access {
    unsigned int key;
    unsigned int rights;                 /* PSY_R ... PSY_OWNER */
};

/* realm_info flags. */
#define PSY_INFO_NEXT      0x1     /* the first realm at or above va, not the one holding it */

struct psy_realm {
    unsigned int base;                   /* its first address */
    unsigned int size;                   /* bytes */
    unsigned int flags;                  /* make_realm's flags */
    int home;                            /* its distinguished domain's number; -1: none */
    unsigned int nops;
    unsigned int ops[PSY_REALM_OPS];     /* the operations' addresses */
    unsigned int nacl;                   /* entries in use, first in acl */
    struct psy_access acl[PSY_REALM_ACL];
};

/* A VP as vp_info describes it: what the monitor's `vps` shows. */
struct psy_vp_info {
    int id;
    unsigned int node;                   /* the node it runs on */
    int domain;                          /* its domain's number */
    unsigned int state;                  /* PSY_VP_FREE .. PSY_VP_BLOCKED */
    unsigned int desc;                   /* its descriptor's address; 0: none yet */
    unsigned int pending;                /* 1 << kind for each pending software interrupt */
    unsigned int cycles;                 /* time it has run, in cycles */
};

/* A domain as domain_info describes it: what the monitor's `realms` and `vps` show of it. */
struct psy_domain_info {
    int id;
    unsigned int desc;                   /* its descriptor's address */
    unsigned int vps;                    /* its VPs */
    unsigned int open;                   /* realms it has opened */
    unsigned int running;                /* threads running in it now, on any node */
};

/*
 * A protection domain's descriptor: one page of the domain's own, written
 * by user code, read by the kernel only when a fault asks it to.  Keys are
 * handed around by users without the kernel; putting one in `keys` is all
 * it takes to gain the rights the key has on any realm's access list.
 */
#define PSY_DOMAIN_MAGIC   0x44595350  /* "PSYD" */
#define PSY_DOMAIN_KEYS    64

struct psy_domain {
    unsigned int magic;                  /* PSY_DOMAIN_MAGIC (kernel-written) */
    unsigned int id;                     /* domain number (kernel-written) */
    unsigned int nkeys;                  /* keys[0..nkeys) are the domain's keys */
    unsigned int processes;              /* its struct psy_processes, for debuggers; 0: none */
    unsigned int programs;               /* its struct psy_programs, for debuggers; 0: none */
    unsigned int keys[PSY_DOMAIN_KEYS];
};

/*
 * A domain's processes, as debuggers see them.  Processes are the user's
 * (section 2.3): the kernel neither makes nor schedules them.  A thread
 * package that wants them debugged publishes a table: the address of a
 * struct psy_processes in the domain descriptor's `processes`, and entries
 * of `stride` bytes, each beginning with a struct psy_process.  Only the
 * monitor's `procs` and debuggers read it, through the domain's own rights.
 */
#define PSY_PROCESSES_MAGIC 0x534F5250   /* "PROS" */

enum psy_process_state {
    PSY_PROC_FREE,                       /* an unused entry */
    PSY_PROC_READY,                      /* waits for a VP: `ctx` holds where it continues */
    PSY_PROC_RUNNING,                    /* on the VP whose descriptor's `process` is its name */
    PSY_PROC_DONE,
    PSY_PROC_AWAY,                       /* in a protected call, in another domain */
};

/* What a user-level switch saves: the callee-saved registers (the rest are on the stack). */
struct psy_context {
    unsigned int ra, sp;
    unsigned int s[12];
};

struct psy_process {
    unsigned int name;                   /* what a VP descriptor's `process` holds while it runs */
    volatile unsigned int state;         /* enum psy_process_state, written last when it is made */
    struct psy_context ctx;              /* valid while it does not run */
};

struct psy_processes {
    unsigned int magic;                  /* PSY_PROCESSES_MAGIC */
    unsigned int count;                  /* entries (free ones included) */
    unsigned int stride;                 /* bytes from one entry to the next */
    unsigned int first;                  /* address of entry 0 */
};

/*
 * Programs that user code placed in the uniform address space, as debuggers
 * see them.  The kernel knows only the programs its own `run` loads; a
 * user-level loader that wants its programs debugged publishes a table: the
 * address of a struct psy_programs in its domain descriptor's `programs`, and
 * entries of `stride` bytes, each beginning with a struct psy_program.  A
 * program is its ELF linked at 0 and placed whole (code and data) at `base`:
 * its symbols are the ELF's offset by `base`.  The kernel never reads it.
 */
#define PSY_PROGRAMS_MAGIC  0x474F5250   /* "PROG" */
#define PSY_PROGRAM_BOOT    1            /* flags: placed at boot (by init), not by a load */
#define PSY_PROGRAM_LIBRARY 2            /* a shared library: no domain, VP or node of its own */
#define PSY_PROGRAM_LINKED  4            /* linked against the library: shared/NAME.elf */

struct psy_program {
    char name[32];                       /* its file's name, NUL-ended */
    unsigned int base;                   /* its realm: where the ELF's address 0 is */
    unsigned int size;
    volatile unsigned int domain;        /* its domain's descriptor; 0: a free entry (written last) */
    unsigned int domain_id;
    int vp;                              /* its VP's number */
    unsigned int node;                   /* the node its VP runs on */
    unsigned int flags;                  /* PSY_PROGRAM_* */
};

struct psy_programs {
    unsigned int magic;                  /* PSY_PROGRAMS_MAGIC */
    volatile unsigned int gen;           /* moves whenever a program comes or goes */
    unsigned int count;                  /* entries (free ones included) */
    unsigned int stride;                 /* bytes from one entry to the next */
    unsigned int first;                  /* address of entry 0 */
};

/*
 * Software interrupts (section 2.3): the kernel tells a virtual processor
 * about events by entering its handler for the event's kind in U mode.
 */
#define PSY_SWI_INIT      0   /* the VP starts: a1 = the VP's number */
#define PSY_SWI_TIMER     1   /* the wall-clock timer (timer_at) expired */
#define PSY_SWI_INTERVAL  2   /* the interval timer (interval) expired */
#define PSY_SWI_ERROR     3   /* a kernel-detected error: a1 = scause, a2 = stval */
#define PSY_SWI_CALL_OUT  4   /* a process left the domain by a protected call:
                                 a1 = its name, a2 = the call's name */
#define PSY_SWI_CALL_IN   5   /* a process arrived by a protected call: its state is in `arrived`,
                                 a1 = its name, a2 = the operation's address */
#define PSY_SWI_RETURN    6   /* a process's protected call returned: its state is in `arrived`,
                                 a1 = its name, a2 = the call's name */
#define PSY_SWI_NET       7   /* a datagram arrived on a port the VP bound (udp_recv takes it) */
#define PSY_SWI_CONSOLE   8   /* an input line for the console's reader (console_read takes it) */
#define PSY_SWI_KINDS     9

/*
 * Console input (docs/kernel-interface.md, "Console input"): one VP in the
 * machine may attach as the console's user reader; the kernel monitor's
 * `shell` command routes input lines to it.  A line is at most
 * PSY_CONSOLE_LINE bytes, without its line end, never with a NUL.
 */
#define PSY_CONSOLE_LINE  255

/*
 * UDP (section 4.1): the machine is 10.0.2.15 on its network, the gateway
 * 10.0.2.2 (docs/network.md).  Addresses are 32-bit numbers in host order;
 * udp_send takes both ports in one argument.
 */
#define PSY_IP(a, b, c, d) ((unsigned int)(a) << 24 | (b) << 16 | (c) << 8 | (d))
#define PSY_UDP_PORTS(local, remote) ((unsigned int)(local) | (unsigned int)(remote) << 16)
#define PSY_UDP_MAX 1472                     /* the largest payload: one frame, no fragments */

/* Where a datagram came from, as udp_recv writes it. */
struct psy_udp_from {
    unsigned int ip;                         /* the sender's address */
    unsigned short port;                     /* the sender's port */
    unsigned short len;                      /* the datagram's length (what was copied may be less) */
};

/* The name of a process that arrived by protected call `id` (PSY_SWI_CALL_IN's a1). */
#define PSY_PCALL_NAME(id) (0x80000000u | (unsigned int)(id))

/* A user register state: pc, then x1..x31 (the trap frame's order). */
struct psy_state {
    unsigned int pc;
    unsigned int x[31];                  /* x[0] is x1 (ra), x[1] x2 (sp), ... */
};

/*
 * A virtual processor's descriptor: user memory that the kernel reads and
 * writes in place (section 6), in a realm the VP's domain may write.  The
 * user sets handlers, the disable flag, the process name and the timers
 * with plain stores; the kernel writes id, node, pending and saved.
 */
#define PSY_VP_MAGIC 0x50565350              /* "PSVP" */
struct psy_vp {
    unsigned int magic;                      /* PSY_VP_MAGIC (user: the kernel checks it) */
    unsigned int id;                         /* VP number (kernel) */
    unsigned int node;                       /* node it runs on (kernel) */
    volatile unsigned int disabled;          /* non-zero: hold software interrupts (user) */
    volatile unsigned int pending;           /* 1 << kind for each held interrupt (kernel) */
    volatile unsigned int process;           /* the running process's name (user) */
    unsigned int init_sp;                    /* stack for the initialisation handler (user) */
    volatile unsigned int interval;          /* interval timer period, cycles; 0: off (user) */
    volatile unsigned long long timer_at;    /* wall-clock timer, cycles; 0: off (user; kernel clears) */
    unsigned int handler[PSY_SWI_KINDS];     /* entry point of each kind's handler; 0: none */
    struct psy_state saved;                  /* the interrupted state (kernel) */
    struct psy_state arrived;                /* CALL_IN, RETURN: the arriving process (kernel) */
};

/* Scheduling statistics on the magic page: one entry per VP of the machine. */
#define PSY_MAX_VPS 64
#define PSY_VP_FREE     0
#define PSY_VP_READY    1
#define PSY_VP_RUNNING  2
#define PSY_VP_BLOCKED  3
struct psy_vp_stat {
    unsigned char state;                 /* PSY_VP_* */
    unsigned char node;
    unsigned char domain;                /* domain number */
    unsigned char pad;
    unsigned int cycles;                 /* accumulated running time, cycles */
};

/* The magic page: per node, read-only to user code, at PSY_MAGIC_PAGE. */
#define PSY_MAX_NODES 128
/* A whole page, so that mapping it for users exposes nothing else of the kernel's. */
struct psy_magic {
    union {
        struct {
            unsigned int node;                   /* this node's number */
            unsigned int nnodes;                 /* nodes in the machine */
            volatile unsigned int ticks;         /* this node's clock ticks */
            volatile unsigned int domain;        /* descriptor of the domain running here */
            volatile unsigned long long time;    /* this node's clock, in cycles */
            volatile unsigned int vp;            /* descriptor of the VP running here, 0 if none */
            volatile unsigned int vp_id;         /* its number */
            volatile unsigned int stats_tick;    /* tick at which the statistics below were taken */
            unsigned int reserved;
            volatile unsigned short runq[PSY_MAX_NODES];     /* ready VPs and threads per node */
            volatile struct psy_vp_stat vps[PSY_MAX_VPS];    /* every VP of the machine */
        };
        unsigned char page[PSY_PAGE_SIZE];
    };
};
#endif

#endif
