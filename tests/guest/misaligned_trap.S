/*
 * misaligned_trap: with the machine option trap_misaligned, misaligned data
 * accesses trap; and other fault details where QEMU 7.2 deviates from the
 * privileged spec.
 *
 * SIMULATOR-ONLY: QEMU 7.2 does misaligned lw/sw/lh/sh in "hardware" (no trap), reports load causes for AMO faults and mtval = pc for misaligned jal/branch
 * MACHINE-OPTIONS: trap_misaligned
 *
 * With trap_misaligned the machine does not perform misaligned data accesses; it traps:
 *   - lw/lh/lhu at a misaligned address: load-address-misaligned (cause 4),
 *     mtval = the address, rd not written;
 *   - sw/sh at a misaligned address: store-address-misaligned (cause 6),
 *     mtval = the address, memory unchanged;
 *   - lb/lbu/sb are never misaligned;
 *   - misaligned AMOs and sc.w (with or without a reservation): cause 6
 *     (store/AMO), memory unchanged;
 *   - an AMO on unmapped memory: store/AMO access fault (cause 7);
 *   - jal and taken branches to a target that is not 4-byte aligned:
 *     cause 0 with mtval = the target (rv32i_branch_jump.S checks the
 *     cause and mepc on QEMU too).
 */
#include "test.h"

/* Check n..n+3: a misaligned load `op` at data + off traps with cause 4,
 * epc = the load, tval = the address, and rd keeps its old value. */
.macro MIS_LOAD n, op, off
        la a0, data + \off
        li a1, 0x5555
        TRAP_BEGIN
1:      \op a1, 0(a0)
        TRAP_END
        CHECK_TRAP \n, CAUSE_MISALIGNED_LOAD
        CHECK_TVAL_REG (\n + 1), a0
        CHECK_EQ (\n + 2), a1, 0x5555
        li gp, (\n + 3)
        la t6, trap_epc
        lw t6, 0(t6)
        la t5, 1b
        beq t5, t6, 2f
        j fail
2:
.endm

/* Check n..n+3: a misaligned store `op` at data + off traps with cause 6,
 * tval = the address, and the data words are unchanged. */
.macro MIS_STORE n, op, off
        la a0, data + \off
        li a1, -1
        TRAP_BEGIN
        \op a1, 0(a0)
        TRAP_END
        CHECK_TRAP \n, CAUSE_MISALIGNED_STORE
        CHECK_TVAL_REG (\n + 1), a0
        CHECK_MEM (\n + 2), data, 0x33221100
        CHECK_MEM (\n + 3), data + 4, 0x77665544
.endm

        .data
        .balign 64
data:   .word 0x33221100, 0x77665544, 0xbbaa9988, 0xffeeddcc

        .text
        .globl test_main
test_main:
        /* ---- misaligned loads ---- */
        MIS_LOAD 1,  lw,  1
        MIS_LOAD 5,  lw,  2
        MIS_LOAD 9,  lw,  3
        MIS_LOAD 13, lh,  1
        MIS_LOAD 17, lh,  3
        MIS_LOAD 21, lhu, 1
        MIS_LOAD 25, lhu, 5

        /* ---- aligned/byte accesses at odd addresses do not trap ---- */
        la a0, data
        TRAP_BEGIN
        lb a1, 1(a0)
        lbu a2, 3(a0)
        lh a3, 2(a0)
        lhu a4, 6(a0)
        TRAP_END
        CHECK_NO_TRAP 30
        CHECK_EQ 31, a1, 0x11
        CHECK_EQ 32, a2, 0x33
        CHECK_EQ 33, a3, 0x3322
        CHECK_EQ 34, a4, 0x7766

        /* ---- misaligned stores ---- */
        MIS_STORE 40, sw, 1
        MIS_STORE 44, sw, 2
        MIS_STORE 48, sw, 3
        MIS_STORE 52, sh, 1
        MIS_STORE 56, sh, 3

        /* ---- misaligned AMOs and sc.w -> cause 6, memory unchanged ---- */
        li a2, 1
        la a0, data + 1
        TRAP_BEGIN
mis_amo:
        amoadd.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 60, CAUSE_MISALIGNED_STORE
        CHECK_EPC 61, mis_amo
        CHECK_TVAL_REG 62, a0
        CHECK_MEM 63, data, 0x33221100
        CHECK_MEM 64, data + 4, 0x77665544

        la a0, data + 2
        TRAP_BEGIN
        amoswap.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 65, CAUSE_MISALIGNED_STORE
        CHECK_TVAL_REG 66, a0

        la a0, data + 3
        TRAP_BEGIN
        amomaxu.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 67, CAUSE_MISALIGNED_STORE
        CHECK_TVAL_REG 68, a0

        /* sc.w without a reservation */
        la a0, data + 2
        TRAP_BEGIN
        sc.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 69, CAUSE_MISALIGNED_STORE
        CHECK_TVAL_REG 70, a0

        /* sc.w with a reservation on the aligned word */
        la a1, data
        lr.w a3, (a1)
        la a0, data + 1
        TRAP_BEGIN
        sc.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 71, CAUSE_MISALIGNED_STORE
        CHECK_TVAL_REG 72, a0
        CHECK_MEM 73, data, 0x33221100

        /* ---- AMO on unmapped memory -> store/AMO access fault ---- */
        li a0, UNMAPPED_ADDR
        TRAP_BEGIN
        amoadd.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 80, CAUSE_STORE_ACCESS
        CHECK_TVAL_REG 81, a0
        li a0, UNMAPPED_ADDR + 0x100
        TRAP_BEGIN
        amoswap.w x0, a2, (a0)
        TRAP_END
        CHECK_TRAP 82, CAUSE_STORE_ACCESS
        CHECK_TVAL_REG 83, a0

        /* ---- misaligned jal/branch: mtval = the target ---- */
        TRAP_BEGIN
mis_jal:
        jal a0, misaligned_target + 2
        TRAP_END
        CHECK_TRAP 90, CAUSE_MISALIGNED_FETCH
        CHECK_EPC 91, mis_jal
        la a1, misaligned_target
        addi a1, a1, 2
        CHECK_TVAL_REG 92, a1

        li a0, 1
        TRAP_BEGIN
mis_blt:
        blt zero, a0, misaligned_target + 2
        TRAP_END
        CHECK_TRAP 93, CAUSE_MISALIGNED_FETCH
        CHECK_EPC 94, mis_blt
        CHECK_TVAL_REG 95, a1

        j pass

        .balign 16
misaligned_target:
        j fail
        j fail
