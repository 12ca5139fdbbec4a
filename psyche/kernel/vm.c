/*
 * vm.c: the kernel's two kinds of address space (paper, section 3.1).
 *
 * Kernel/kernel space: the local kernel instance (this node's RAM at
 * KERNEL_VBASE), the data of every kernel instance (each node's RAM at its
 * physical address: the official addresses), and the devices.  The kernel
 * runs in it.
 *
 * User/kernel space: the local kernel instance and the devices at the same
 * addresses, so switching spaces is easy, plus the user part of the uniform
 * address space and the magic page.  uk_root, with no realms, is checked
 * once at boot.  Every protection domain has its own user/kernel root on
 * each node that runs it (vm_domain_root), a frame of that node's pool.
 * Unlike the paper's 68020, Sv32 leaves room for the kernel/kernel window in
 * a domain's space as well (supervisor-only, so user code cannot touch it):
 * the kernel handles a user trap, and runs its other threads, without
 * switching spaces.  The user half of a domain's root is only a cache of the
 * domain's description (realm.h), filled by page faults.
 *
 * The local window is mapped with 4 KiB pages so that code is read-only and
 * executable, read-only data read-only, and the rest not executable.  The
 * kernel/kernel window is never executable: a node that jumped into a
 * peer's copy of the kernel would fault instead of fetching remotely.
 */
#include "memlayout.h"
#include "node.h"
#include "realm.h"
#include "riscv.h"
#include "vm.h"

#define VPN1(va) (((uint32_t)(va) >> 22) & 0x3FF)
#define VPN0(va) (((uint32_t)(va) >> 12) & 0x3FF)
#define PTE_PA(pa) ((((uint32_t)(pa)) >> 12) << 10)

/* Page tables and the magic page: local data, one set per node. */
static pte_t kk_root[1024] __attribute__((aligned(PGSIZE)));
static pte_t uk_root[1024] __attribute__((aligned(PGSIZE)));
static pte_t local_pt[1024] __attribute__((aligned(PGSIZE)));
static pte_t magic_pt[1024] __attribute__((aligned(PGSIZE)));
struct psy_magic magic __attribute__((aligned(PGSIZE)));
_Static_assert(sizeof magic == PGSIZE, "the magic page is a page");

uint32_t local_to_phys(const void *va)
{
    return (uint32_t)va - KERNEL_VBASE + this_node.ram_base;
}

static pte_t table_pte(const pte_t *table)
{
    return PTE_PA(local_to_phys(table)) | PTE_V;
}

static pte_t megapage_pte(uint32_t pa, uint32_t perm)
{
    return PTE_PA(pa) | perm | PTE_V | PTE_A | PTE_D | PTE_G;
}

/* Permissions of the page at va in the local window. */
static uint32_t local_perm(uint32_t va)
{
    if (va < (uint32_t)_text_end)
        return PTE_R | PTE_X;
    if (va < (uint32_t)_rodata_end)
        return PTE_R;
    return PTE_R | PTE_W;
}

static void map_local_window(void)
{
    for (uint32_t i = 0; i < 1024; i++) {
        uint32_t va = KERNEL_VBASE + i * PGSIZE;
        local_pt[i] = PTE_PA(this_node.ram_base + i * PGSIZE) | local_perm(va)
                      | PTE_V | PTE_A | PTE_D | PTE_G;
    }
}

static void map_common(pte_t *root)
{
    root[VPN1(KERNEL_VBASE)] = table_pte(local_pt);
    root[VPN1(CLINT_V)] = megapage_pte(CLINT_PHYS, PTE_R | PTE_W);
    root[VPN1(INTC_V)] = megapage_pte(INTC_PHYS, PTE_R | PTE_W);
    root[VPN1(UART_V)] = megapage_pte(UART_PHYS, PTE_R | PTE_W);
}

void vm_init(void)
{
    map_local_window();

    map_common(kk_root);
    for (int k = 0; k < this_node.nnodes; k++)
        kk_root[VPN1(node_ram(k))] = megapage_pte(node_ram(k), PTE_R | PTE_W);

    map_common(uk_root);
    magic.node = (uint32_t)this_node.id;
    magic.nnodes = (uint32_t)this_node.nnodes;
    uk_root[VPN1(MAGIC_PAGE_VA)] = table_pte(magic_pt);
    magic_pt[VPN0(MAGIC_PAGE_VA)] = PTE_PA(local_to_phys(&magic)) | PTE_R | PTE_U | PTE_V | PTE_A;

    vm_use_kernel_kernel();
}

void vm_use_kernel_kernel(void)
{
    csr_write(satp, SATP_SV32 | (local_to_phys(kk_root) >> 12));
    sfence_vma();
}

void vm_use_user_kernel(void)
{
    csr_write(satp, SATP_SV32 | (local_to_phys(uk_root) >> 12));
    sfence_vma();
}

/*
 * Boot check (episode 2): in user/kernel space the local kernel keeps
 * running (code, stack and this_node are where they were) and the magic page
 * shows this node's number at its user address.
 */
bool vm_check_spaces(void)
{
    uint32_t flags = intr_disable();
    vm_use_user_kernel();
    csr_set(sstatus, SSTATUS_SUM);   /* S mode may read the user page */
    uint32_t seen = *(volatile uint32_t *)MAGIC_PAGE_VA;
    csr_clear(sstatus, SSTATUS_SUM);
    bool ok = seen == (uint32_t)this_node.id && this_node.magic == NODE_MAGIC;
    vm_use_kernel_kernel();
    intr_restore(flags);
    return ok;
}

/* A new root for a protection domain on this node: the kernel's half only. */
uint32_t vm_domain_root(void)
{
    uint32_t root = frame_alloc(this_node.id);
    if (!root)
        return 0;
    memcpy((void *)root, kk_root, PGSIZE);
    ((pte_t *)root)[VPN1(MAGIC_PAGE_VA)] = table_pte(magic_pt);
    return root;
}

/*
 * Map one user page in a domain's table on `node` (which owns the table);
 * the second-level table comes from that node's pool.  The caller holds
 * vm->lock.  Returns -1 if the node has no frame left for a table.
 */
int vm_map_user(uint32_t root, int node, uint32_t va, uint32_t pa, uint32_t perm)
{
    pte_t *l1 = (pte_t *)root + VPN1(va);
    if (!(*l1 & PTE_V)) {
        uint32_t table = frame_alloc(node);
        if (!table)
            return -1;
        *l1 = PTE_PA(table) | PTE_V;
    }
    pte_t *leaf = (pte_t *)((*l1 >> 10) << 12) + VPN0(va);
    *leaf = PTE_PA(pa) | perm | PTE_U | PTE_V;
    return 0;
}

/* Remove a range's mappings from one table (the caller then shoots down TLBs). */
void vm_unmap_range(uint32_t root, uint32_t va, uint32_t size)
{
    for (uint32_t a = va; a < va + size; a += PGSIZE) {
        pte_t l1 = ((pte_t *)root)[VPN1(a)];
        if (l1 & PTE_V)
            ((pte_t *)((l1 >> 10) << 12))[VPN0(a)] = 0;
    }
}

/* Give a domain's table on some node back to that node's pool. */
void vm_free_tables(uint32_t root)
{
    for (uint32_t i = VPN1(PSY_USER_BASE); i < VPN1(PSY_USER_END); i++) {
        pte_t l1 = ((pte_t *)root)[i];
        if (l1 & PTE_V)
            frame_free((l1 >> 10) << 12);
    }
    frame_free(root);
}

/* Run in domain d's space on this node (its root exists), or the kernel's if d is NULL. */
void vm_activate(struct domain *d)
{
    if (d) {
        csr_write(satp, SATP_SV32 | (d->root[this_node.id] >> 12));
        magic.domain = d->desc->base;
    } else {
        csr_write(satp, SATP_SV32 | (local_to_phys(kk_root) >> 12));
        magic.domain = 0;
    }
    sfence_vma();
}
