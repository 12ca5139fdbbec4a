/*
 * realm.h: realms, protection domains and the uniform address space
 * (paper, sections 2.2, 2.3 and 4.2).
 *
 * One kernel map from virtual address to realm serves the whole machine: a
 * list of realms in address order in the shared heap, consulted on every
 * user page fault.  A protection domain is described compactly in software:
 * the realms opened in it and the rights it opened them with.  On every
 * node that runs it, a domain has an Sv32 page table that is only a cache
 * of that description, filled on demand by page faults (vm.c).
 *
 * Everything here lives in the shared heap, named by official address, and
 * is guarded by one spin lock, vm->lock: faults, kernel calls and the
 * monitor hold it only for short, bounded work.
 */
#ifndef PSYCHE_REALM_H
#define PSYCHE_REALM_H

#include "memlayout.h"
#include "spinlock.h"
#include "types.h"
#include "uapi/psyche.h"

#define REALM_ACL       PSY_REALM_ACL   /* access list entries per realm */
#define MAX_DOMAINS     64
#define DOMAIN_OPEN     64    /* realms open in one domain */
#define NODE_WORDS      (MAX_NODES / 32)
#define PCALL_MAX       64    /* protected calls in progress at once */

struct pcall;
struct vp;

struct realm {
    uint32_t base;            /* first virtual address */
    uint32_t size;            /* bytes, a multiple of PGSIZE */
    uint32_t flags;           /* make_realm's flags */
    uint32_t phys;            /* device realms: the registers' physical address */
    int node;                 /* whose pool the frames come from */
    uint32_t *frames;         /* official address of each page's frame (not device realms) */
    uint32_t **copies;        /* replicated realms: node k's copy of each page, or 0 */
    struct psy_access acl[REALM_ACL];   /* key 0: an unused entry */
    uint32_t ops[PSY_REALM_OPS];  /* its operations: where protected calls may enter */
    uint32_t nops;
    uint32_t opened[MAX_DOMAINS / 32];   /* domains that opened it */
    struct domain *home;      /* distinguished domain: protected calls run there (pcall.c) */
    struct realm *next;       /* the map, in address order */
};

struct domain_open {
    struct realm *realm;
    uint32_t rights;          /* rights it was opened with; PSY_INVOKE alone: a verified target */
};

/* A protected call's precomputed linkage (pcall.c): valid while vm->link_gen is unchanged. */
struct link {
    uint32_t entry;           /* the operation's address; 0: unused */
    struct domain *callee;    /* the realm's distinguished domain */
    struct vp *vp;            /* the VP there that takes the call */
    uint32_t gen;
};
#define DOMAIN_LINKS 8

struct domain {
    int id;
    bool devices;             /* may make device realms */
    volatile uint32_t running; /* threads running in it, on any node (user.c) */
    volatile uint32_t nvps;   /* its virtual processors, started or not (vp.c) */
    struct realm *desc;       /* its descriptor page (struct psy_domain) */
    int nopen;
    struct domain_open open[DOMAIN_OPEN];
    uint32_t root[MAX_NODES]; /* physical address of node k's root page table, 0 if none */
    struct link links[DOMAIN_LINKS];   /* operations it called before */
    uint32_t next_link;       /* the slot the next new linkage replaces */
};

/*
 * A program `run` or `spawn` loaded, for debuggers (gdb's `psyche symbols`): it
 * is linked at 0, so its symbols are its ELF's, offset by where its code realm
 * begins (its data realm follows).  name "" is a free slot.
 */
struct loaded {
    char name[16];
    int domain;
    uint32_t code;            /* its code realm's first address */
    uint32_t data;            /* its data realm's */
};
#define MAX_LOADED 32

struct vm {
    struct spinlock lock;
    struct realm *realms;     /* the kernel map: every realm, in address order */
    int nrealms;
    uint32_t next_va;         /* where the kernel looks for the next realm's address */
    struct domain *domains[MAX_DOMAINS];
    int next_domain;          /* where the search for a free domain number starts */
    uint32_t key_seed;        /* kernel-made keys */
    uint32_t code_policy;     /* PSY_REPLICATE_* for the code of programs `run` starts */
    struct vp *vps[PSY_MAX_VPS];   /* every virtual processor, by number (vp.c) */
    volatile uint32_t vp_gen[PSY_MAX_VPS];   /* moves when a VP ends: destroy_vp waits for it */
    struct pcall *pcalls[PCALL_MAX];         /* protected calls in progress (pcall.c) */
    uint32_t link_gen;        /* moves whenever a linkage may have gone stale */
    uint32_t pcalls_made;     /* protected calls: all, and those that took the slow path */
    uint32_t pcalls_slow;
    uint32_t faults;          /* user page faults decided */
    uint32_t opens;           /* ... that opened a realm */
    struct loaded loaded[MAX_LOADED];   /* programs running now (user.c) */
    uint32_t loaded_gen;      /* moves whenever a program comes or goes */
};

/* realm.c */
void vm_shared_init(void);
uint32_t make_key(void);
int realm_make(struct domain *caller, uint32_t size, uint32_t flags, uint32_t key, uint32_t at,
               struct realm **out);
int realm_destroy(uint32_t va, uint32_t key);
void realm_remove(struct realm *r);
int realm_set_access(uint32_t va, uint32_t key, uint32_t other, uint32_t rights);
int realm_info(struct domain *caller, uint32_t va, uint32_t info_va, uint32_t flags);
int domain_info(struct domain *caller, uint32_t id, uint32_t info_va);
struct realm *realm_lookup(uint32_t va);
bool realm_owned_by(struct realm *r, uint32_t key);
struct realm *realm_owned(uint32_t va, uint32_t key, int *err);
uint32_t realm_reserve(uint32_t size);
uint32_t realm_copy(struct realm *r, int node, uint32_t page);
void realm_replicate(struct realm *r);
void shootdown(const uint32_t *nodes);
void realms_print(void);

/* domain.c */
struct domain *domain_make(uint32_t key, bool devices);
void domain_destroy(struct domain *d);
int domain_destroy_call(uint32_t va, uint32_t key, uint32_t flags);
struct psy_domain *domain_desc(struct domain *d);
const char *domain_fault(struct domain *d, uint32_t va, uint32_t need, char *why, uint32_t size);
int domain_read(struct domain *d, uint32_t va, void *buf, uint32_t len);
int domain_write(struct domain *d, uint32_t va, const void *buf, uint32_t len);
bool domain_holds(struct domain *d, uint32_t key);
void domain_procs_print(int id);
struct realm *domain_invoke_target(struct domain *d, uint32_t va, char *why, uint32_t size);
void *domain_pointer(struct domain *d, uint32_t va, uint32_t len, uint32_t need,
                     struct realm **out);
void domain_unmap_realm(struct domain *d, struct realm *r, uint32_t *nodes);
bool domain_still_allowed(struct domain *d, struct realm *r);

#endif
