/*
 * frame.h: per-node pools of physical page frames.
 *
 * Each node's RAM above its local heap (and, on the king, above the shared
 * heap and restart record) is a pool of 4 KiB frames for realms and for the
 * page tables of protection domains.  Any node may take a frame from any
 * node's pool: the creator of a realm chooses where its pages live
 * (section 4.2).  Frames are named by official (= physical) address.
 */
#ifndef PSYCHE_FRAME_H
#define PSYCHE_FRAME_H

#include "spinlock.h"
#include "types.h"

struct framepool {
    struct spinlock lock;
    uint32_t free;          /* first free frame; each free frame holds the next */
    uint32_t nfree;
    uint32_t total;
    uint32_t base;          /* first frame of the pool */
};

void frame_init(void);
uint32_t frame_alloc(int node);   /* zeroed frame on node's RAM, or 0 */
void frame_free(uint32_t pa);
int frame_node(uint32_t pa);

#endif
