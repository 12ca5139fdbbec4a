/*
 * realm.c: realms and the kernel's map of the uniform address space
 * (paper, sections 2.2 and 4.2; the calls are in docs/kernel-interface.md).
 *
 * A realm has one virtual address in the whole machine, chosen by the
 * kernel (or asked for, or a device's physical registers, section 4.1), and
 * an access list of keys with rights.  Its frames come from the pool of the
 * node its creator chose, all at once when it is made: the simple VM of
 * section 4.2 has no paging.
 *
 * Every call checks all its arguments before it changes anything.  Frames
 * are taken before vm->lock (zeroing a page is not short) and given back if
 * the call fails later.  Destroying a realm or revoking rights removes the
 * mappings from every domain's tables under the lock, and then, without it,
 * makes every node that may hold them in its TLB flush it (shootdown)
 * before the frames go back to their pool.
 */
#include "console.h"
#include "ipi.h"
#include "node.h"
#include "panic.h"
#include "realm.h"
#include "riscv.h"
#include "vm.h"
#include "vp.h"

#define GUARD PGSIZE   /* unmapped page after every realm the kernel places */

/* King, at boot: the empty map, in the shared heap. */
void vm_shared_init(void)
{
    struct vm *vm = kalloc_shared(sizeof *vm);
    spin_init(&vm->lock, "vm");
    vm->next_va = PSY_USER_BASE;
    vm->code_policy = PSY_REPLICATE_DEMAND;
    vm->key_seed = 0x9E3779B9u ^ (uint32_t)rdtime();
    kg.vm = vm;
}

/* A key for the kernel's own realms (xorshift: unguessable enough, and deterministic). */
uint32_t make_key(void)
{
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    uint32_t x = vm->key_seed;
    do {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
    } while (x == 0);
    vm->key_seed = x;
    spin_unlock(&vm->lock);
    return x;
}

/* The realm containing va; the caller holds vm->lock. */
struct realm *realm_lookup(uint32_t va)
{
    for (struct realm *r = kg.vm->realms; r && r->base <= va; r = r->next)
        if (va - r->base < r->size)
            return r;
    return NULL;
}

/* Lowest free range of size bytes at or above next_va, guard pages included; 0 if none. */
static uint32_t find_space(uint32_t size)
{
    uint32_t va = kg.vm->next_va;
    for (struct realm *r = kg.vm->realms; r; r = r->next) {
        if (r->base + r->size + GUARD <= va)
            continue;
        if (va + size + GUARD <= r->base)
            break;
        va = r->base + r->size + GUARD;
    }
    return va <= PSY_USER_END - size ? va : 0;
}

static bool overlaps(uint32_t va, uint32_t size)
{
    for (struct realm *r = kg.vm->realms; r && r->base < va + size; r = r->next)
        if (r->base + r->size > va)
            return true;
    return false;
}

static void map_insert(struct realm *r)
{
    struct realm **link = &kg.vm->realms;
    while (*link && (*link)->base < r->base)
        link = &(*link)->next;
    r->next = *link;
    *link = r;
    kg.vm->nrealms++;
}

static void map_remove(struct realm *r)
{
    struct realm **link = &kg.vm->realms;
    while (*link != r)
        link = &(*link)->next;
    *link = r->next;
    kg.vm->nrealms--;
}

static void copies_free(struct realm *r)
{
    uint32_t pages = r->size / PGSIZE;
    for (int k = 0; k < MAX_NODES; k++) {
        if (!r->copies[k])
            continue;
        for (uint32_t i = 0; i < pages; i++)
            if (r->copies[k][i])
                frame_free(r->copies[k][i]);
        heap_free(kg.shared_heap, r->copies[k]);
    }
    heap_free(kg.shared_heap, r->copies);
}

static void realm_free(struct realm *r)
{
    if (r->copies)
        copies_free(r);
    if (r->frames) {
        for (uint32_t i = 0; i < r->size / PGSIZE; i++)
            if (r->frames[i])
                frame_free(r->frames[i]);
        heap_free(kg.shared_heap, r->frames);
    }
    heap_free(kg.shared_heap, r);
}

/*
 * Node's copy of one page of a replicated realm, made now from the master
 * frame if need be; 0 if the node has no frame for it.  The caller holds
 * vm->lock, or owns the realm alone (it is being made).
 */
uint32_t realm_copy(struct realm *r, int node, uint32_t page)
{
    if (node == r->node)
        return r->frames[page];
    uint32_t **copy = &r->copies[node];
    if (!*copy) {
        uint32_t bytes = r->size / PGSIZE * sizeof(uint32_t);
        *copy = heap_alloc(kg.shared_heap, bytes);
        if (!*copy)
            return 0;
        memset(*copy, 0, bytes);
    }
    if (!(*copy)[page]) {
        uint32_t frame = frame_alloc(node);
        if (!frame)
            return 0;
        memcpy((void *)frame, (void *)r->frames[page], PGSIZE);
        (*copy)[page] = frame;
    }
    return (*copy)[page];
}

/* A copy of every page on every node. */
static bool copy_everywhere(struct realm *r)
{
    for (int k = 0; k < this_node.nnodes; k++)
        for (uint32_t i = 0; i < r->size / PGSIZE; i++)
            if (!realm_copy(r, k, i))
                return false;
    return true;
}

/*
 * The kernel has written a replicated realm's master (run loads a program):
 * refresh every copy made so far.  No domain has it open yet.
 */
void realm_replicate(struct realm *r)
{
    for (int k = 0; k < MAX_NODES; k++)
        for (uint32_t i = 0; r->copies[k] && i < r->size / PGSIZE; i++)
            if (r->copies[k][i])
                memcpy((void *)r->copies[k][i], (void *)r->frames[i], PGSIZE);
}

/*
 * Reserve size bytes of address space where the kernel would put a realm,
 * for realms it places side by side (run); 0 if there is no room.
 */
uint32_t realm_reserve(uint32_t size)
{
    spin_lock(&kg.vm->lock);
    uint32_t va = find_space(size);
    if (va)
        kg.vm->next_va = va + size + GUARD;
    spin_unlock(&kg.vm->lock);
    return va;
}

/* Check make_realm's arguments; 0 if they are good. */
static int check_make(struct domain *caller, uint32_t size, uint32_t flags, uint32_t key,
                      uint32_t at)
{
    uint32_t known = PSY_RIGHTS | PSY_REALM_AT | PSY_REALM_DEVICE | PSY_REPLICATE | (0xFFu << 16);
    uint32_t replicate = flags & PSY_REPLICATE;
    int node = PSY_REALM_NODE_OF(flags);
    if ((flags & ~known) || key == 0 || size == 0 || size > PSY_REALM_MAX
        || !(flags & (PSY_R | PSY_W | PSY_X | PSY_INVOKE))
        || ((flags & PSY_REALM_AT) && (flags & PSY_REALM_DEVICE))
        || (replicate & (replicate - 1)) || (replicate && (flags & PSY_REALM_DEVICE)))
        return PSY_EINVAL;
    if (size % PGSIZE || at % PGSIZE)
        return PSY_EALIGN;
    if (node >= this_node.nnodes)
        return PSY_ERANGE;
    if (flags & PSY_REALM_DEVICE) {
        if (!caller || !caller->devices)
            return PSY_EPERM;
        if (at < PSY_DEVICE_BASE || at > PSY_DEVICE_END || PSY_DEVICE_END - at < size)
            return PSY_ERANGE;
    } else if (flags & PSY_REALM_AT) {
        if (at < PSY_USER_BASE || at > PSY_USER_END || PSY_USER_END - at < size)
            return PSY_ERANGE;
    }
    return 0;
}

/*
 * make_realm: caller is the domain that asks (NULL for the kernel's own
 * realms).  On success *out is the new realm, already in the map.
 */
int realm_make(struct domain *caller, uint32_t size, uint32_t flags, uint32_t key, uint32_t at,
               struct realm **out)
{
    int err = check_make(caller, size, flags, key, at);
    if (err)
        return err;
    struct realm *r = heap_alloc(kg.shared_heap, sizeof *r);
    if (!r)
        return PSY_ENOMEM;
    memset(r, 0, sizeof *r);
    r->size = size;
    r->flags = flags;
    r->node = PSY_REALM_NODE_OF(flags) < 0 ? this_node.id : PSY_REALM_NODE_OF(flags);
    r->acl[0].key = key;
    r->acl[0].rights = (flags & PSY_RIGHTS) | PSY_OWNER;
    if (flags & PSY_REALM_DEVICE) {
        r->phys = at;
    } else {
        uint32_t pages = size / PGSIZE;
        r->frames = heap_alloc(kg.shared_heap, pages * sizeof(uint32_t));
        if (!r->frames) {
            realm_free(r);
            return PSY_ENOMEM;
        }
        memset(r->frames, 0, pages * sizeof(uint32_t));
        for (uint32_t i = 0; i < pages; i++) {
            r->frames[i] = frame_alloc(r->node);
            if (!r->frames[i]) {
                realm_free(r);
                return PSY_ENOMEM;
            }
        }
    }
    if (flags & PSY_REPLICATE) {
        r->copies = heap_alloc(kg.shared_heap, MAX_NODES * sizeof *r->copies);
        if (r->copies)
            memset(r->copies, 0, MAX_NODES * sizeof *r->copies);
        if (!r->copies || ((flags & PSY_REPLICATE_CREATE) && !copy_everywhere(r))) {
            realm_free(r);
            return PSY_ENOMEM;
        }
    }

    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    if (flags & PSY_REALM_AT) {
        err = overlaps(at, size) ? PSY_EBUSY : 0;
        r->base = at;
    } else {
        r->base = find_space(size);
        err = r->base ? 0 : PSY_ENOMEM;
        if (!err)
            vm->next_va = r->base + size + GUARD;
    }
    if (!err)
        map_insert(r);
    spin_unlock(&vm->lock);
    if (err) {
        realm_free(r);
        return err;
    }
    *out = r;
    return 0;
}

static uint32_t key_rights_on(struct realm *r, uint32_t key);

/* Is key on r's access list with PSY_OWNER?  (The caller holds vm->lock.) */
bool realm_owned_by(struct realm *r, uint32_t key)
{
    return key && (key_rights_on(r, key) & PSY_OWNER);
}

/*
 * The realm that begins at va, if key owns it; otherwise NULL and *err says
 * why (ENOREALM, EKEY).  What every call that changes a realm checks first.
 * The caller holds vm->lock.
 */
struct realm *realm_owned(uint32_t va, uint32_t key, int *err)
{
    struct realm *r = realm_lookup(va);
    *err = !r || r->base != va ? PSY_ENOREALM : !realm_owned_by(r, key) ? PSY_EKEY : 0;
    return *err ? NULL : r;
}

static uint32_t key_rights_on(struct realm *r, uint32_t key)
{
    for (int i = 0; i < REALM_ACL; i++)
        if (r->acl[i].key == key)
            return r->acl[i].rights;
    return 0;
}

/* A node's TLB flush, asked for by another node (ipi_call). */
static void tlb_flush(void *arg)
{
    (void)arg;
    sfence_vma();
    this_node.tlb_flushes++;
}

/*
 * Make every node in the set forget the mappings that were just removed,
 * and return only when each has answered: all are rung first, then every
 * answer is awaited, so the nodes flush at the same time.  A panicked node
 * runs no user code and answers nothing: it is skipped.
 */
void shootdown(const uint32_t *nodes)
{
    uint32_t seq[MAX_NODES];
    bool asked[MAX_NODES];
    for (int k = 0; k < this_node.nnodes; k++) {
        bool member = nodes[k / 32] & (1u << (k % 32));
        asked[k] = member && k != this_node.id && node_ptr(k)->state == NODE_UP;
        if (asked[k])
            seq[k] = ipi_call_start(k, tlb_flush, NULL);
        else if (member && k == this_node.id)
            sfence_vma();
    }
    for (int k = 0; k < this_node.nnodes; k++)
        if (asked[k])
            ipi_call_finish(k, seq[k]);
}

/* Take r out of every domain that opened it; the caller holds vm->lock. */
static void close_everywhere(struct realm *r, uint32_t *nodes)
{
    for (int id = 0; id < MAX_DOMAINS; id++)
        if (r->opened[id / 32] & (1u << (id % 32)))
            domain_unmap_realm(kg.vm->domains[id], r, nodes);
}

/* Destroy a realm that is in the map, whoever owns it. */
void realm_remove(struct realm *r)
{
    uint32_t nodes[NODE_WORDS] = { 0 };
    spin_lock(&kg.vm->lock);
    map_remove(r);
    close_everywhere(r, nodes);
    spin_unlock(&kg.vm->lock);
    shootdown(nodes);
    realm_free(r);
}

int realm_destroy(uint32_t va, uint32_t key)
{
    uint32_t nodes[NODE_WORDS] = { 0 };
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    int err;
    struct realm *r = realm_owned(va, key, &err);
    if (!err && vp_desc_in(r))
        err = PSY_EBUSY;     /* the kernel writes a VP's descriptor in place, through the frames */
    if (!err) {
        map_remove(r);
        close_everywhere(r, nodes);
    }
    spin_unlock(&vm->lock);
    if (err)
        return err;
    shootdown(nodes);
    realm_free(r);
    return 0;
}

/*
 * set_access: change one key's rights.  Domains that opened the realm with
 * rights their keys no longer give lose it (revocation); they may open it
 * again, by a fault, with what their keys give now.
 */
int realm_set_access(uint32_t va, uint32_t key, uint32_t other, uint32_t rights)
{
    uint32_t nodes[NODE_WORDS] = { 0 };
    if (other == 0 || (rights & ~PSY_RIGHTS))
        return PSY_EINVAL;
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    int err, slot = -1, free_slot = -1;
    struct realm *r = realm_owned(va, key, &err);
    for (int i = 0; !err && i < REALM_ACL; i++) {
        if (r->acl[i].key == other)
            slot = i;
        else if (r->acl[i].key == 0 && free_slot < 0)
            free_slot = i;
    }
    if (!err && slot < 0 && rights) {
        slot = free_slot;
        if (slot < 0)
            err = PSY_ENOMEM;
    }
    if (!err && slot >= 0) {
        r->acl[slot].key = rights ? other : 0;
        r->acl[slot].rights = rights;
        for (int id = 0; id < MAX_DOMAINS; id++) {
            struct domain *d = vm->domains[id];
            if ((r->opened[id / 32] & (1u << (id % 32))) && !domain_still_allowed(d, r))
                domain_unmap_realm(d, r, nodes);
        }
    }
    spin_unlock(&vm->lock);
    if (!err)
        shootdown(nodes);
    return err;
}

/* The first realm at or above va; the caller holds vm->lock. */
static struct realm *realm_at_or_above(uint32_t va)
{
    struct realm *r = kg.vm->realms;
    while (r && r->base + r->size <= va)
        r = r->next;
    return r && r->base < va ? r->next : r;
}

/*
 * realm_info(va, info, flags): the realm that holds va (PSY_INFO_NEXT: the
 * first at or above it, so that a program can walk the map), as struct
 * psy_realm says, written at info_va as the caller's domain may write it.
 * Any domain may ask: addresses are public in a uniform address space, keys
 * are not.
 */
int realm_info(struct domain *caller, uint32_t va, uint32_t info_va, uint32_t flags)
{
    struct psy_realm info;
    if (flags & ~PSY_INFO_NEXT)
        return PSY_EINVAL;
    memset(&info, 0, sizeof info);
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    struct realm *r = flags & PSY_INFO_NEXT ? realm_at_or_above(va) : realm_lookup(va);
    if (r) {
        info.base = r->base;
        info.size = r->size;
        info.flags = r->flags;
        info.home = r->home ? r->home->id : -1;
        info.nops = r->nops;
        memcpy(info.ops, r->ops, sizeof info.ops);
        for (int i = 0; i < REALM_ACL; i++) {
            if (!r->acl[i].key)
                continue;
            struct psy_access *a = &info.acl[info.nacl++];
            a->rights = r->acl[i].rights;
            a->key = domain_holds(caller, r->acl[i].key) ? r->acl[i].key : 0;
        }
    }
    spin_unlock(&vm->lock);
    if (!r)
        return PSY_ENOREALM;
    return domain_write(caller, info_va, &info, sizeof info);
}

static void print_rights(uint32_t rights)
{
    static const char names[] = "rwxio";
    for (int i = 0; i < 5; i++)
        kprintf("%c", rights & (1u << i) ? names[i] : '-');
}

/* The monitor's `realms`: the map, and each node's free frames. */
void realms_print(void)
{
    struct vm *vm = kg.vm;
    spin_lock(&vm->lock);
    kprintf("%d realms; %u user page faults, %u opened a realm\n", vm->nrealms, vm->faults,
            vm->opens);
    for (struct realm *r = vm->realms; r; r = r->next) {
        kprintf("  %p-%p %4u KiB ", (void *)r->base, (void *)(r->base + r->size - 1),
                r->size / 1024);
        if (r->flags & PSY_REALM_DEVICE)
            kprintf("device %p", (void *)r->phys);
        else
            kprintf("node %d", r->node);
        if (r->copies) {
            int copies = 0;
            for (int k = 0; k < MAX_NODES; k++)
                copies += r->copies[k] != NULL;
            kprintf(" (%d cop%s)", copies, copies == 1 ? "y" : "ies");
        }
        kprintf("  access");
        for (int i = 0; i < REALM_ACL; i++) {
            if (r->acl[i].key) {
                kprintf(" %08x:", r->acl[i].key);
                print_rights(r->acl[i].rights);
            }
        }
        if (r->nops)
            kprintf("  %u op%s", r->nops, r->nops == 1 ? "" : "s");
        kprintf("  open in");
        for (int id = 0; id < MAX_DOMAINS; id++)
            if (r->opened[id / 32] & (1u << (id % 32)))
                kprintf(" %d", id);
        kprintf("\n");
    }
    spin_unlock(&vm->lock);
    kprintf("free frames:");
    for (int k = 0; k < this_node.nnodes; k++) {
        struct framepool *p = &node_ptr(k)->pool;
        kprintf("%s %d:%u/%u", k % 8 == 0 && k ? "\n " : "", k, p->nfree, p->total);
    }
    kprintf("\n");
}
