/* vm.h: the kernel/kernel and user/kernel address spaces (section 3.1). */
#ifndef PSYCHE_VM_H
#define PSYCHE_VM_H

#include "memlayout.h"
#include "types.h"

typedef uint32_t pte_t;

/* The per-node magic page: kernel data that user code may read.  A whole
 * page, so that mapping it for users exposes nothing else. */
struct magic_page {
    uint32_t node;
    uint32_t nnodes;
    volatile uint32_t ticks;
    volatile uint32_t domain;     /* descriptor of the domain running here, 0 if none */
    volatile uint64_t time;
    uint8_t reserved[PGSIZE - 24];
};

extern struct magic_page magic;

void vm_init(void);
void vm_use_kernel_kernel(void);
void vm_use_user_kernel(void);
bool vm_check_spaces(void);
uint32_t local_to_phys(const void *va);

/* Protection domains' page tables (physical addresses of their roots). */
struct domain;
uint32_t vm_domain_root(void);
int vm_map_user(uint32_t root, int node, uint32_t va, uint32_t pa, uint32_t perm);
void vm_unmap_range(uint32_t root, uint32_t va, uint32_t size);
void vm_free_tables(uint32_t root);
void vm_activate(struct domain *d);

#endif
