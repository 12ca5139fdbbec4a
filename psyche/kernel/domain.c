/*
 * domain.c: protection domains, and the page faults that open realms
 * (paper, sections 2.2, 2.3 and 4.2; the rules are in
 * docs/kernel-interface.md, "Fault rules").
 *
 * A domain's description is compact: the realms opened in it and the
 * rights they were opened with.  The keys it holds are not the kernel's
 * business: they are in the domain's descriptor, a page the domain writes,
 * and the kernel reads them only when a fault on a realm not yet open makes
 * it check the realm's access list (lazy checking, section 2.3).
 *
 * Each node that runs the domain has its own Sv32 table for it, a cache of
 * the description filled one page per fault; so a fault on a page of an
 * open realm is only a cache miss.  A replicated realm is mapped from this
 * node's copy (made now if its policy says so) unless the domain may write
 * it: writers share the master, so what they write is what later copies get.  The kernel reads user memory (for puts)
 * through the same decision, from the frames, never through the user's
 * page table: a bad user pointer is an error return, not a kernel fault.
 */
#include "console.h"
#include "node.h"
#include "panic.h"
#include "realm.h"
#include "riscv.h"
#include "vm.h"
#include "vp.h"

struct psy_domain *domain_desc(struct domain *d)
{
    return (struct psy_domain *)d->desc->frames[0];
}

/*
 * A new domain with its descriptor page opened in it.  key gets read and
 * write on the descriptor, so whoever makes the domain can give it keys.
 * NULL when the shared heap, the pool or the domain table is exhausted.
 */
struct domain *domain_make(uint32_t key, bool devices)
{
    struct domain *d = heap_alloc(kg.shared_heap, sizeof *d);
    if (!d)
        return NULL;
    memset(d, 0, sizeof *d);
    d->devices = devices;
    if (realm_make(NULL, PGSIZE, PSY_R | PSY_W, key, 0, &d->desc) < 0) {
        heap_free(kg.shared_heap, d);
        return NULL;
    }
    d->desc->acl[0].rights = PSY_R | PSY_W;   /* the kernel alone destroys it */

    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    d->id = -1;
    for (int i = 0; i < MAX_DOMAINS && d->id < 0; i++) {
        int id = (vm->next_domain + i) % MAX_DOMAINS;   /* numbers come round late */
        if (!vm->domains[id])
            d->id = id;
    }
    if (d->id >= 0) {
        vm->next_domain = d->id + 1;
        vm->domains[d->id] = d;
        d->open[0].realm = d->desc;
        d->open[0].rights = PSY_R | PSY_W;
        d->nopen = 1;
        d->desc->opened[d->id / 32] |= 1u << (d->id % 32);
        struct psy_domain *pd = domain_desc(d);
        pd->magic = PSY_DOMAIN_MAGIC;
        pd->id = (uint32_t)d->id;
    }
    spin_unlock(&vm->lock);
    if (d->id < 0) {
        realm_remove(d->desc);
        heap_free(kg.shared_heap, d);
        return NULL;
    }
    return d;
}

/* Take d out of the machine: the caller holds vm->lock, then shoots down nodes. */
static void domain_close(struct domain *d, uint32_t *nodes)
{
    for (int i = 0; i < d->nopen; i++)
        d->open[i].realm->opened[d->id / 32] &= ~(1u << (d->id % 32));
    d->nopen = 0;
    kg.vm->domains[d->id] = NULL;
    for (struct realm *r = kg.vm->realms; r; r = r->next)
        if (r->home == d)
            r->home = NULL;          /* its protected calls have nowhere to go now */
    kg.vm->link_gen++;
    for (int k = 0; k < this_node.nnodes; k++)
        if (d->root[k])
            nodes[k / 32] |= 1u << (k % 32);
}

/* After the shootdown: give d's tables and descriptor back. */
static void domain_free(struct domain *d)
{
    for (int k = 0; k < this_node.nnodes; k++)
        if (d->root[k])
            vm_free_tables(d->root[k]);
    realm_remove(d->desc);
    heap_free(kg.shared_heap, d);
}

/*
 * Forget a domain: close its realms, flush every node that ran it, give its
 * tables back.  No thread may be running in it any more.
 */
void domain_destroy(struct domain *d)
{
    uint32_t nodes[NODE_WORDS] = { 0 };
    spin_lock(&kg.vm->lock);
    domain_close(d, nodes);
    spin_unlock(&kg.vm->lock);
    shootdown(nodes);
    domain_free(d);
}

/* The domain whose descriptor is at va, if key has write right on it: 0 or an error. */
static int domain_by_key(uint32_t va, uint32_t key, struct domain **out)
{
    struct vm *vm = kg.vm;
    struct domain *d = NULL;
    for (int id = 0; id < MAX_DOMAINS && !d; id++)
        if (vm->domains[id] && vm->domains[id]->desc->base == va)
            d = vm->domains[id];
    if (!d)
        return PSY_ENOREALM;
    for (int i = 0; i < REALM_ACL; i++)
        if (key && d->desc->acl[i].key == key && (d->desc->acl[i].rights & PSY_W)) {
            *out = d;
            return 0;
        }
    return PSY_EKEY;
}

/*
 * destroy_domain: va is a domain's descriptor and key has write right on it
 * (its maker's key).  A domain that something runs in cannot be destroyed;
 * with PSY_DOMAIN_VPS its VPs are ended first (how a loader ends a program
 * whose thread package made VPs it does not know of).  The domain is looked
 * up again after that: the lock is not held while VPs end.
 */
int domain_destroy_call(uint32_t va, uint32_t key, uint32_t flags)
{
    uint32_t nodes[NODE_WORDS] = { 0 };
    struct vm *vm = kg.vm;
    struct domain *d;
    if (flags & ~PSY_DOMAIN_VPS)
        return PSY_EINVAL;
    spin_lock(&vm->lock);
    int err = domain_by_key(va, key, &d);
    spin_unlock(&vm->lock);
    if (!err && (flags & PSY_DOMAIN_VPS))
        err = vp_end_domain(d);
    if (err)
        return err;
    spin_lock(&vm->lock);
    err = domain_by_key(va, key, &d);
    if (!err && (d->running || d->nvps))
        err = PSY_EBUSY;
    if (!err)
        domain_close(d, nodes);
    spin_unlock(&vm->lock);
    if (err)
        return err;
    shootdown(nodes);
    domain_free(d);
    return 0;
}

/* The rights the domain's keys give on r: the union over its keys on r's list. */
static uint32_t key_rights(struct domain *d, struct realm *r)
{
    struct psy_domain *pd = domain_desc(d);
    uint32_t n = pd->nkeys < PSY_DOMAIN_KEYS ? pd->nkeys : PSY_DOMAIN_KEYS;
    uint32_t rights = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t key = pd->keys[i];
        for (int j = 0; key && j < REALM_ACL; j++)
            if (r->acl[j].key == key)
                rights |= r->acl[j].rights;
    }
    return rights;
}

static int find_open(struct domain *d, struct realm *r)
{
    for (int i = 0; i < d->nopen; i++)
        if (d->open[i].realm == r)
            return i;
    return -1;
}

/* Does a domain still have the rights it opened r with?  (After set_access.) */
bool domain_still_allowed(struct domain *d, struct realm *r)
{
    int i = find_open(d, r);
    if (i < 0 || r == d->desc)
        return true;
    return (d->open[i].rights & ~key_rights(d, r)) == 0;
}

/* May rights do the access `need` (PSY_R, PSY_W or PSY_X)? */
static bool allows(uint32_t rights, uint32_t need)
{
    if (need == PSY_R)
        return rights & (PSY_R | PSY_W | PSY_X);
    return rights & need;
}

static const char *need_name(uint32_t need)
{
    return need == PSY_W ? "write" : need == PSY_X ? "execute" : need == PSY_INVOKE ? "invoke" : "read";
}

static uint32_t pte_perm(struct realm *r, uint32_t rights)
{
    uint32_t perm = allows(rights, PSY_R) ? PTE_R : 0;
    if (rights & PSY_W)
        perm |= PTE_W;
    if ((rights & PSY_X) && !(r->flags & PSY_REALM_DEVICE))
        perm |= PTE_X;
    return perm;
}

/* Where va's page is for this node: a device register page, a copy, or the master frame. */
/* PSY_REPLICATE_OPEN: a realm opened without write right is copied to this node now. */
static void copy_on_open(struct realm *r, uint32_t rights)
{
    if (!(r->flags & PSY_REPLICATE_OPEN) || (rights & PSY_W))
        return;
    for (uint32_t i = 0; i < r->size / PGSIZE; i++)
        if (!realm_copy(r, this_node.id, i))
            return;
}

static uint32_t page_phys(struct realm *r, uint32_t va, uint32_t rights)
{
    uint32_t off = va - r->base, page = off / PGSIZE;
    if (r->flags & PSY_REALM_DEVICE)
        return r->phys + (off & ~(PGSIZE - 1));
    if (r->copies && !(rights & PSY_W)) {
        uint32_t copy = r->copies[this_node.id] ? r->copies[this_node.id][page] : 0;
        if (!copy && (r->flags & PSY_REPLICATE_DEMAND))
            copy = realm_copy(r, this_node.id, page);
        /* A domain opens a realm once, on the node it first touches it from: its first touch on
         * another node copies the whole realm there, as the open did on the first. */
        if (!copy && (r->flags & PSY_REPLICATE_OPEN)) {
            copy_on_open(r, rights);
            copy = r->copies[this_node.id] ? r->copies[this_node.id][page] : 0;
        }
        if (copy)
            return copy;   /* else no copy (or no frame for one): the master, remotely */
    }
    return r->frames[page];
}

/*
 * The heart of a fault: may domain d do `need` at va?  Opens the realm if
 * the domain's keys allow and it is not open yet.  Returns the realm, or
 * NULL with the reason in why.  The caller holds vm->lock.
 */
static struct realm *decide(struct domain *d, uint32_t va, uint32_t need, char *why,
                            uint32_t size, uint32_t *rights)
{
    struct realm *r = realm_lookup(va);
    if (!r) {
        bool magic = va / PGSIZE == MAGIC_PAGE_VA / PGSIZE;
        ksnprintf(why, size, magic ? "the magic page is read-only" : "no realm at this address");
        return NULL;
    }
    int i = find_open(d, r);
    if (i < 0) {
        uint32_t given = key_rights(d, r) & ~PSY_OWNER;
        if (!given) {
            ksnprintf(why, size, "no key of the domain is on realm %p's access list",
                      (void *)r->base);
            return NULL;
        }
        if (d->nopen == DOMAIN_OPEN) {
            ksnprintf(why, size, "the domain has %d realms open already", DOMAIN_OPEN);
            return NULL;
        }
        i = d->nopen++;
        d->open[i].realm = r;
        d->open[i].rights = given;
        r->opened[d->id / 32] |= 1u << (d->id % 32);
        kg.vm->opens++;
        copy_on_open(r, given);
    }
    uint32_t have = d->open[i].rights;
    if (allows(have, need)) {
        *rights = have;
        return r;
    }
    if (need == PSY_X && (have & PSY_INVOKE))
        ksnprintf(why, size, "protected invocation of realm %p", (void *)r->base);
    else
        ksnprintf(why, size, "the domain's keys give no %s right on realm %p", need_name(need),
                  (void *)r->base);
    return NULL;
}

/*
 * May d make a protected call to va?  The realm if so (opening it as a
 * verified target if d's keys allow), else NULL with the reason in why.
 * The caller holds vm->lock.
 */
struct realm *domain_invoke_target(struct domain *d, uint32_t va, char *why, uint32_t size)
{
    uint32_t rights;
    return decide(d, va, PSY_INVOKE, why, size, &rights);
}

/*
 * A user page fault in domain d on this node (need: PSY_R for a load, PSY_W
 * for a store, PSY_X for a fetch).  NULL if the page is now mapped and the
 * access can be retried; otherwise the reason, in why, for the error.
 */
const char *domain_fault(struct domain *d, uint32_t va, uint32_t need, char *why, uint32_t size)
{
    struct vm *vm = kg.vm;
    uint32_t rights, node = (uint32_t)this_node.id;
    spin_lock(&vm->lock);
    vm->faults++;
    struct realm *r = decide(d, va, need, why, size, &rights);
    if (r && vm_map_user(d->root[node], (int)node, va, page_phys(r, va, rights),
                         pte_perm(r, rights))) {
        ksnprintf(why, size, "node %u has no frame left for a page table", node);
        r = NULL;
    }
    spin_unlock(&vm->lock);
    if (!r)
        return why;
    __asm__ volatile("sfence.vma %0, zero" :: "r"(va) : "memory");
    return NULL;
}

/*
 * Copy len bytes between buf and va as domain d may access them (need:
 * PSY_R to read va, PSY_W to write it), opening realms as a fault would.
 * 0, or PSY_EFAULT; a write that fails may have written its first pages.
 * Device registers are not copied: touching one may have effects.  The
 * caller holds vm->lock.
 */
static int copy_held(struct domain *d, uint32_t va, void *buf, uint32_t len, uint32_t need)
{
    char why[96];
    uint32_t rights;
    uint8_t *kbuf = buf;
    while (len) {
        uint32_t chunk = PGSIZE - va % PGSIZE;
        if (chunk > len)
            chunk = len;
        struct realm *r = decide(d, va, need, why, sizeof why, &rights);
        if (!r || (r->flags & PSY_REALM_DEVICE))
            return PSY_EFAULT;
        void *user = (void *)(r->frames[(va - r->base) / PGSIZE] + va % PGSIZE);
        memcpy(need == PSY_W ? user : kbuf, need == PSY_W ? kbuf : user, chunk);
        va += chunk;
        kbuf += chunk;
        len -= chunk;
    }
    return 0;
}

static int domain_copy(struct domain *d, uint32_t va, void *buf, uint32_t len, uint32_t need)
{
    spin_lock(&kg.vm->lock);
    int err = copy_held(d, va, buf, len, need);
    spin_unlock(&kg.vm->lock);
    return err;
}

int domain_read(struct domain *d, uint32_t va, void *buf, uint32_t len)
{
    return domain_copy(d, va, buf, len, PSY_R);
}

int domain_write(struct domain *d, uint32_t va, const void *buf, uint32_t len)
{
    return domain_copy(d, va, (void *)buf, len, PSY_W);
}

/* Is key one of d's keys?  (What d already knows, the kernel may show it.) */
bool domain_holds(struct domain *d, uint32_t key)
{
    struct psy_domain *pd = domain_desc(d);
    uint32_t n = pd->nkeys < PSY_DOMAIN_KEYS ? pd->nkeys : PSY_DOMAIN_KEYS;
    for (uint32_t i = 0; key && i < n; i++)
        if (pd->keys[i] == key)
            return true;
    return false;
}

/*
 * Where the kernel reaches len bytes at va (within one page) that domain d
 * may access as `need` says, opening the realm as a fault would: the frame's
 * official address, or NULL.  *out is the realm.  For structures the kernel
 * reads and writes in place, like VP descriptors.
 */
void *domain_pointer(struct domain *d, uint32_t va, uint32_t len, uint32_t need,
                     struct realm **out)
{
    char why[96];
    uint32_t rights;
    if (len == 0 || va % PGSIZE + len > PGSIZE)
        return NULL;
    spin_lock(&kg.vm->lock);
    struct realm *r = decide(d, va, need, why, sizeof why, &rights);
    void *p = NULL;
    if (r && !(r->flags & PSY_REALM_DEVICE))
        p = (void *)(r->frames[(va - r->base) / PGSIZE] + va % PGSIZE);
    spin_unlock(&kg.vm->lock);
    *out = r;
    return p;
}

/*
 * Close r in d: drop it from the description and from d's table on every
 * node (marked in nodes, for the caller's shootdown).  Holds vm->lock.
 */
void domain_unmap_realm(struct domain *d, struct realm *r, uint32_t *nodes)
{
    int i = find_open(d, r);
    if (i >= 0)
        d->open[i] = d->open[--d->nopen];
    r->opened[d->id / 32] &= ~(1u << (d->id % 32));
    kg.vm->link_gen++;               /* linkages into r may be stale (pcall.c) */
    for (int k = 0; k < this_node.nnodes; k++) {
        if (d->root[k]) {
            vm_unmap_range(d->root[k], r->base, r->size);
            nodes[k / 32] |= 1u << (k % 32);
        }
    }
}

/* One process as the monitor shows it. */
struct proc_row {
    uint32_t name, state, pc, sp;
};
#define PROC_ROWS 64

/*
 * The kernel never reads a domain's published programs (struct psy_programs,
 * uapi/psyche.h); these keep their layout in its DWARF, where gdb's `psyche
 * symbols` and the mux find it by name, as they find struct psy_processes.
 */
const struct psy_programs *const psy_programs_layout __attribute__((used)) = NULL;
const struct psy_program *const psy_program_layout __attribute__((used)) = NULL;

/*
 * The monitor's `procs D`: the processes domain D's thread package publishes
 * (struct psy_processes, uapi/psyche.h), read as D may read them, all under
 * vm->lock so that D cannot go away meanwhile.
 */
void domain_procs_print(int id)
{
    static const char *const states[] = { "free", "ready", "running", "done", "away" };
    struct proc_row rows[PROC_ROWS];
    struct psy_processes table = { 0 };
    uint32_t n = 0;
    int err = PSY_ENOREALM;
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    struct domain *d = id >= 0 && id < MAX_DOMAINS ? vm->domains[id] : NULL;
    uint32_t at = d ? domain_desc(d)->processes : 0;
    if (d && at)
        err = copy_held(d, at, &table, sizeof table, PSY_R);
    for (uint32_t i = 0; !err && table.magic == PSY_PROCESSES_MAGIC && i < table.count; i++) {
        struct psy_process p;
        if (copy_held(d, table.first + i * table.stride, &p, sizeof p, PSY_R))
            break;
        if (p.state != PSY_PROC_FREE && n < PROC_ROWS)
            rows[n++] = (struct proc_row){ p.name, p.state, p.ctx.ra, p.ctx.sp };
    }
    spin_unlock(&vm->lock);
    if (!d) {
        kprintf("procs: no domain %d\n", id);
        return;
    }
    if (!at || err || table.magic != PSY_PROCESSES_MAGIC) {
        kprintf("domain %d publishes no processes%s\n", id, at ? " (its table is unreadable)" : "");
        return;
    }
    kprintf("domain %d: %u processes\n  name  state    pc          sp\n", id, n);
    for (uint32_t i = 0; i < n; i++)
        kprintf("  %-4u  %-7s  %p  %p\n", rows[i].name,
                rows[i].state < 5 ? states[rows[i].state] : "?", (void *)rows[i].pc, (void *)rows[i].sp);
}

/*
 * domain_info(id, info): domain number id, as struct psy_domain_info says,
 * written at info_va as the caller's domain may write it: for a user-level
 * shell's listing.  PSY_ENOREALM if there is no such domain.
 */
int domain_info(struct domain *caller, uint32_t id, uint32_t info_va)
{
    struct psy_domain_info info = { 0 };
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    struct domain *d = id < MAX_DOMAINS ? vm->domains[id] : NULL;
    if (d)
        info = (struct psy_domain_info){ d->id, d->desc->base, d->nvps, (uint32_t)d->nopen, d->running };
    spin_unlock(&vm->lock);
    if (!d)
        return PSY_ENOREALM;
    return domain_write(caller, info_va, &info, sizeof info);
}
