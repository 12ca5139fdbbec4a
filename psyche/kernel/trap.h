/* trap.h: the trap frame that entry.S saves, and trap-path entry points. */
#ifndef PSYCHE_TRAP_H
#define PSYCHE_TRAP_H

#include "types.h"

/* Saved by trap_entry (entry.S): x1..x31, then the trap CSRs.  The offsets
 * are wired into entry.S; change both together. */
struct trapframe {
    uint32_t ra, sp, gp, tp;                            /* x1..x4 */
    uint32_t t0, t1, t2;                                /* x5..x7 */
    uint32_t s0, s1;                                    /* x8, x9 */
    uint32_t a0, a1, a2, a3, a4, a5, a6, a7;            /* x10..x17 */
    uint32_t s2, s3, s4, s5, s6, s7, s8, s9, s10, s11;  /* x18..x27 */
    uint32_t t3, t4, t5, t6;                            /* x28..x31 */
    uint32_t sepc, sstatus, scause, stval;
    uint32_t pad[1];                                    /* 16-byte aligned frame */
};

void trap_init(void);
void trap(struct trapframe *tf);
const char *trap_cause_name(uint32_t scause);
bool probe_read32(uint32_t addr, uint32_t *value);
void trap_entry(void);

#endif
