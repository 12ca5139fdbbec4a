/* vm.h: the kernel/kernel and user/kernel address spaces (section 3.1). */
#ifndef PSYCHE_VM_H
#define PSYCHE_VM_H

#include "memlayout.h"
#include "types.h"
#include "uapi/psyche.h"

typedef uint32_t pte_t;

/* The per-node magic page: kernel data that user code may read (uapi/psyche.h). */
extern struct psy_magic magic;

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
