/*
 * smp.S: every node of a multi-node machine hammers shared counters.
 *
 * Runs on this project's machine only (it uses the doorbell device, which
 * QEMU does not have). The king node starts every other node with a remote
 * interrupt (RING with START_PC = secondary), then all nodes, the king too,
 * add 1 ITERATIONS times to two counters in the king's RAM: once with
 * amoadd.w and once with an lr.w/sc.w retry loop. Each node also counts its
 * own iterations in its own RAM (local references) and ends with a remote
 * interrupt to the king. The king waits until every node has finished, then
 * checks both counters: a lost update (a broken atomic, or an SC that
 * succeeded after another node's store) makes check 1 or 2 fail.
 */
#include "test.h"

#define DOORBELL        0x10003000
#define DB_NODE_ID      0x0
#define DB_NODE_COUNT   0x4
#define DB_RING         0x8
#define DB_START_PC     0xC
#define ITERATIONS      200

        .text
        .globl test_main
test_main:
        addi sp, sp, -16
        sw ra, 0(sp)
        li s0, DOORBELL
        lw s1, DB_NODE_COUNT(s0)
        la t0, secondary
        sw t0, DB_START_PC(s0)
        li t1, 1
1:      bge t1, s1, 2f
        sw t1, DB_RING(s0)              /* starts held node t1 at secondary */
        addi t1, t1, 1
        j 1b
2:      call worker
        la t0, done_count
3:      lw t1, 0(t0)                    /* wait for every node, king included */
        bne t1, s1, 3b

        li t2, ITERATIONS
        mul t2, t2, s1
        la t0, amo_counter
        lw t1, 0(t0)
        CHECK_REG 1, t1, t2
        la t0, lrsc_counter
        lw t1, 0(t0)
        CHECK_REG 2, t1, t2
        lw ra, 0(sp)
        addi sp, sp, 16
        li a0, 0
        ret

/* Add ITERATIONS to both shared counters; count locally in 0(sp). */
worker:
        addi sp, sp, -16
        sw zero, 0(sp)
        li t3, ITERATIONS
        la t4, amo_counter
        la t5, lrsc_counter
        li t6, 1
4:      amoadd.w zero, t6, (t4)
5:      lr.w t0, (t5)
        addi t0, t0, 1
        sc.w t1, t0, (t5)
        bnez t1, 5b
        lw t0, 0(sp)                    /* a local reference on every node */
        addi t0, t0, 1
        sw t0, 0(sp)
        addi t3, t3, -1
        bnez t3, 4b
        la t0, done_count
        amoadd.w zero, t6, (t0)
        addi sp, sp, 16
        ret

/* Entry of every non-king node: a stack at the top of its own RAM. */
secondary:
        li s0, DOORBELL
        lw a0, DB_NODE_ID(s0)
        addi t0, a0, 1
        slli t0, t0, 22
        li sp, 0x80000000
        add sp, sp, t0
        addi sp, sp, -16
        call worker
        sw zero, DB_RING(s0)            /* tell the king (node 0) */
6:      wfi
        j 6b

        .data
        .balign 64
amo_counter:    .word 0
        .balign 64
lrsc_counter:   .word 0
        .balign 64
done_count:     .word 0
