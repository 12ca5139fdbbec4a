/*
 * heap.h: first-fit heaps.
 *
 * Two kinds, one allocator: the shared heap lives in the king's RAM and hands
 * out kernel/kernel (official) addresses that every node can use; each node
 * has a local heap in its own RAM, handing out local-window addresses (thread
 * stacks must stay mapped in both address spaces, so they use those).
 */
#ifndef PSYCHE_HEAP_H
#define PSYCHE_HEAP_H

#include "spinlock.h"
#include "types.h"

struct hblock;

struct heap {
    struct spinlock lock;
    const char *name;
    uint32_t base;          /* first byte the heap manages */
    uint32_t size;
    struct hblock *free;    /* free blocks in address order */
    uint32_t used;          /* bytes allocated, headers included */
    uint32_t peak;
    uint32_t allocs;
};

void heap_init(struct heap *h, const char *name, uint32_t base, uint32_t size);
void *heap_alloc(struct heap *h, uint32_t size);
void heap_free(struct heap *h, void *p);

void *kalloc_shared(uint32_t size);   /* zeroed, official address; panics when full */
void *kalloc_local(uint32_t size);    /* zeroed, local-window address; panics when full */
void *kalloc_stack(uint32_t size);    /* the same, not zeroed */

#endif
