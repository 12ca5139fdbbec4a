/* barrier.h: all-node barrier, for kernel initialization (section 3.2). */
#ifndef PSYCHE_BARRIER_H
#define PSYCHE_BARRIER_H

#include "types.h"

struct barrier {
    volatile uint32_t arrived;    /* nodes at the barrier in this episode */
    volatile uint32_t episode;    /* completed episodes */
    int nnodes;                   /* nodes that must arrive */
};

void barrier_init(struct barrier *b, int nnodes);
uint32_t barrier_sync(void);

#endif
