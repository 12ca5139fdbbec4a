/*
 * counters: writing minstret/minstreth and mcycle/mcycleh (privileged spec
 * 1.12, "CSR Instructions" and "Hardware Performance Monitor").
 *
 * SIMULATOR-ONLY: QEMU 7.2 counts the writing instruction too (with -icount a write of 1000 reads back 1001; without it, host ticks) and keeps the two halves apart
 *
 *   - the value a CSR instruction writes to a counter is what the next
 *     instruction reads: the write is done instead of the writing
 *     instruction's own increment;
 *   - each half is written alone; the other half keeps its value;
 *   - the two halves are one 64-bit counter: a carry out of the low half
 *     reaches the high half;
 *   - cycle/instret (and their h halves) read the same counters.
 *
 * On this machine an instruction takes one cycle (code and data in the
 * node's own RAM, no WFI, no interrupts), so mcycle moves as minstret does.
 */
#include "test.h"

        .text
        .globl test_main
test_main:
        /* ---- the next instruction reads the value written ---- */
        li t0, 1000
        csrw minstret, t0
        csrr a0, minstret
        CHECK_EQ 1, a0, 1000
        csrw minstret, t0
        nop
        csrr a0, minstret
        CHECK_EQ 2, a0, 1001
        csrw minstret, t0
        csrr a0, instret                        /* the unprivileged view */
        CHECK_EQ 3, a0, 1000
        li t0, 5000
        csrw mcycle, t0
        csrr a0, mcycle
        CHECK_EQ 4, a0, 5000
        csrw mcycle, t0
        nop
        nop
        csrr a0, cycle
        CHECK_EQ 5, a0, 5002
        /* csrrw reads the old value and writes in the same instruction */
        li t0, 77
        csrw minstret, t0
        csrrw a0, minstret, zero
        csrr a1, minstret
        CHECK_EQ 6, a0, 77
        CHECK_EQ 7, a1, 0

        /* ---- halves ---- */
        li t0, 5
        csrw minstreth, t0
        csrr a0, minstreth
        CHECK_EQ 10, a0, 5
        csrr a0, instreth
        CHECK_EQ 11, a0, 5
        li t0, 0x100
        csrw minstret, t0
        csrr a0, minstreth                      /* a low write keeps the high half */
        CHECK_EQ 12, a0, 5
        li t0, 3
        csrw mcycleh, t0
        csrr a0, mcycleh
        CHECK_EQ 13, a0, 3
        csrr a0, cycleh
        CHECK_EQ 14, a0, 3

        /* ---- carry from the low half into the high half ---- */
        li t0, 7
        csrw minstreth, t0
        li t0, 0xfffffffe
        csrw minstret, t0
        csrr a0, minstret                       /* 7:fffffffe */
        csrr a1, minstreth                      /* 7:ffffffff */
        csrr a2, minstret                       /* 8:00000000 */
        csrr a3, minstreth                      /* 8:00000001 */
        CHECK_EQ 20, a0, 0xfffffffe
        CHECK_EQ 21, a1, 7
        CHECK_EQ 22, a2, 0
        CHECK_EQ 23, a3, 8
        /* a low write of all ones does not carry by itself */
        li t0, 2
        csrw mcycleh, t0
        li t0, -1
        csrw mcycle, t0
        csrr a0, mcycleh                        /* 2:ffffffff */
        csrr a1, mcycleh                        /* 3:00000000 */
        CHECK_EQ 24, a0, 2
        CHECK_EQ 25, a1, 3
        /* writing the high half when the low one is about to wrap: the write
         * replaces the increment, so the low half wraps one instruction later */
        li t0, -1
        li t1, 9
        csrw minstret, t0
        csrw minstreth, t1                      /* reads ffffffff, writes 9 */
        csrr a0, minstret                       /* 9:ffffffff */
        csrr a1, minstreth                      /* a:00000000 */
        CHECK_EQ 26, a0, 0xffffffff
        CHECK_EQ 27, a1, 10

        /* ---- back to small values (nothing else cares) ---- */
        csrw minstreth, zero
        csrw mcycleh, zero
        j pass
