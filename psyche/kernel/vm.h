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
    uint32_t reserved0;
    volatile uint64_t time;
    uint8_t reserved[PGSIZE - 24];
};

extern struct magic_page magic;

void vm_init(void);
void vm_use_kernel_kernel(void);
void vm_use_user_kernel(void);
bool vm_check_spaces(void);
uint32_t local_to_phys(const void *va);

#endif
