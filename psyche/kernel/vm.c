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
 * address space (empty until realms arrive) and the magic page.  Later
 * issues give every protection domain its own user/kernel root, built from
 * this one; here there is one per node, checked once at boot.
 *
 * The local window is mapped with 4 KiB pages so that code is read-only and
 * executable, read-only data read-only, and the rest not executable.  The
 * kernel/kernel window is never executable: a node that jumped into a
 * peer's copy of the kernel would fault instead of fetching remotely.
 */
#include "memlayout.h"
#include "node.h"
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
struct magic_page magic __attribute__((aligned(PGSIZE)));

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
