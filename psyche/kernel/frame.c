/*
 * frame.c: per-node frame pools (frame.h).
 *
 * The free list is threaded through the free frames themselves, reached
 * through the kernel/kernel window, so a pool costs no memory of its own
 * and any node can allocate from or free to any pool under its lock.
 */
#include "frame.h"
#include "memlayout.h"
#include "node.h"
#include "panic.h"

/* This node's pool: the RAM that nothing else of the kernel uses, up to the debuggers' scratch. */
void frame_init(void)
{
    struct framepool *p = &this_node.pool;
    uint32_t start = is_king() ? PERSIST_OFF + PERSIST_SIZE : LOCAL_HEAP_END_OFF;
    spin_init(&p->lock, "frame pool");
    p->base = this_node.ram_base + start;
    p->total = (DEBUG_SCRATCH_OFF - start) / PGSIZE;
    p->free = 0;
    for (uint32_t i = p->total; i-- > 0;) {
        uint32_t *frame = (uint32_t *)(p->base + i * PGSIZE);
        *frame = p->free;
        p->free = (uint32_t)frame;
    }
    p->nfree = p->total;
}

int frame_node(uint32_t pa)
{
    return (int)((pa - NODE_RAM_BASE) >> NODE_RAM_SHIFT);
}

uint32_t frame_alloc(int node)
{
    struct framepool *p = &node_ptr(node)->pool;
    spin_lock(&p->lock);
    uint32_t pa = p->free;
    if (pa) {
        p->free = *(uint32_t *)pa;
        p->nfree--;
    }
    spin_unlock(&p->lock);
    if (pa)
        memset((void *)pa, 0, PGSIZE);
    return pa;
}

void frame_free(uint32_t pa)
{
    struct framepool *p = &node_ptr(frame_node(pa))->pool;
    if (pa < p->base || pa >= p->base + p->total * PGSIZE || pa % PGSIZE)
        panic("frame_free: %p is not a frame of node %d's pool", (void *)pa, frame_node(pa));
    spin_lock(&p->lock);
    *(uint32_t *)pa = p->free;
    p->free = pa;
    p->nfree++;
    spin_unlock(&p->lock);
}
