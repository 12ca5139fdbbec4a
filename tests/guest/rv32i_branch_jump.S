/*
 * rv32i_branch_jump: conditional branches, jal and jalr.
 *
 * Checks every branch (beq/bne/blt/bge/bltu/bgeu) taken and not taken,
 * including signed/unsigned edge cases (0x80000000, 0x7fffffff, -1, 0),
 * forward and backward branches; jal/jalr link values (pc + 4), jal/jalr
 * with rd = x0, jalr with an offset, jalr clearing bit 0 of the target,
 * jalr with rd == rs1; and that a jump/taken branch to a target that is not
 * 4-byte aligned raises instruction-address-misaligned (cause 0) with
 * mepc = the jump/branch itself, mtval = the target, and rd not written,
 * while a not-taken branch with a misaligned target does not trap.
 * (Needs a machine without the C extension; QEMU runs with c=false.)
 * mtval for a misaligned jal/branch is only checked in misaligned.S, as
 * QEMU 7.2 wrongly reports the pc of the jal/branch there.
 */
#include "test.h"

/* Check n: `op a1, a2` with a1 = v1, a2 = v2 branches. */
.macro BR_TAKEN n, op, v1, v2
        li gp, \n
        li a1, \v1
        li a2, \v2
        \op a1, a2, 1f
        j fail
1:
.endm

/* Check n: `op a1, a2` with a1 = v1, a2 = v2 falls through. */
.macro BR_NOT_TAKEN n, op, v1, v2
        li gp, \n
        li a1, \v1
        li a2, \v2
        \op a1, a2, 1f
        j 2f
1:      j fail
2:
.endm

        .text
        .globl test_main
test_main:
        /* ---- beq / bne ---- */
        BR_TAKEN     1, beq, 0, 0
        BR_TAKEN     2, beq, -1, -1
        BR_TAKEN     3, beq, 0x80000000, 0x80000000
        BR_NOT_TAKEN 4, beq, 0, 1
        BR_NOT_TAKEN 5, beq, 0x80000000, 0
        BR_TAKEN     6, bne, 0, 1
        BR_TAKEN     7, bne, 0x80000000, 0x7fffffff
        BR_NOT_TAKEN 8, bne, 5, 5
        BR_NOT_TAKEN 9, bne, -1, -1

        /* ---- blt / bge (signed) ---- */
        BR_TAKEN     10, blt, 0, 1
        BR_TAKEN     11, blt, -1, 0
        BR_TAKEN     12, blt, 0x80000000, 0x7fffffff
        BR_TAKEN     13, blt, 0x80000000, -1
        BR_NOT_TAKEN 14, blt, 1, 0
        BR_NOT_TAKEN 15, blt, 0, -1
        BR_NOT_TAKEN 16, blt, 7, 7
        BR_NOT_TAKEN 17, blt, 0x7fffffff, 0x80000000
        BR_TAKEN     18, bge, 0, 0
        BR_TAKEN     19, bge, 1, 0
        BR_TAKEN     20, bge, 0, -1
        BR_TAKEN     21, bge, 0x7fffffff, 0x80000000
        BR_NOT_TAKEN 22, bge, -1, 0
        BR_NOT_TAKEN 23, bge, 0x80000000, 0x7fffffff

        /* ---- bltu / bgeu (unsigned) ---- */
        BR_TAKEN     30, bltu, 0, 1
        BR_TAKEN     31, bltu, 0, -1
        BR_TAKEN     32, bltu, 0x7fffffff, 0x80000000
        BR_TAKEN     33, bltu, 0xfffffffe, 0xffffffff
        BR_NOT_TAKEN 34, bltu, -1, 0
        BR_NOT_TAKEN 35, bltu, 0x80000000, 0x7fffffff
        BR_NOT_TAKEN 36, bltu, 3, 3
        BR_TAKEN     37, bgeu, 3, 3
        BR_TAKEN     38, bgeu, -1, 0
        BR_TAKEN     39, bgeu, 0x80000000, 0x7fffffff
        BR_NOT_TAKEN 40, bgeu, 0, -1
        BR_NOT_TAKEN 41, bgeu, 0x7fffffff, 0x80000000

        /* ---- backward branch: a counted loop runs exactly 5 times ---- */
        li a0, 0
        li a1, 5
1:      addi a0, a0, 1
        bne a0, a1, 1b
        CHECK_EQ 45, a0, 5
        li a0, 10                    /* count down by 3 while a0 >= 0 */
        li a1, 0
2:      addi a1, a1, 1
        addi a0, a0, -3
        bge a0, x0, 2b
        CHECK_EQ 46, a1, 4
        CHECK_EQ 47, a0, -2

        /* ---- jal ---- */
        li ra, 0
jal_site:
        jal ra, jal_target           /* 48: ra = jal_site + 4 */
        j fail
jal_target:
        la a0, jal_site
        addi a0, a0, 4
        CHECK_REG 48, ra, a0
        /* jal backwards */
        j jal_fwd
jal_back:
        la a1, jal_back_site
        addi a1, a1, 4
        CHECK_REG 49, a0, a1
        j jal_done
jal_fwd:
jal_back_site:
        jal a0, jal_back             /* 49: backward jal, link in a0 */
        j fail
jal_done:
        /* jal x0 (j) writes no register */
        li a0, 17
        jal x0, 1f
        j fail
1:      CHECK_EQ 50, a0, 17
        CHECK_EQ 51, x0, 0

        /* ---- jalr ---- */
        la a1, jalr_target1
        li ra, 0
jalr_site1:
        jalr ra, 0(a1)               /* 52: target = a1, ra = site + 4 */
        j fail
jalr_target1:
        la a0, jalr_site1
        addi a0, a0, 4
        CHECK_REG 52, ra, a0

        la a1, jalr_target2 - 16
jalr_site2:
        jalr t0, 16(a1)              /* 53: positive offset */
        j fail
jalr_target2:
        la a0, jalr_site2
        addi a0, a0, 4
        CHECK_REG 53, t0, a0

        la a1, jalr_target3 + 8
        jalr x0, -8(a1)              /* 54: negative offset, rd = x0 */
        j fail
jalr_target3:
        CHECK_EQ 54, x0, 0

        li gp, 55                    /* 55: bit 0 of rs1 + imm is cleared */
        la a1, jalr_target4
        addi a1, a1, 1
        jalr ra, 0(a1)               /* lands on jalr_target4 */
        j fail
jalr_target4:
        li gp, 56                    /* 56: same with the odd bit from imm */
        la a1, jalr_target5
        jalr ra, 1(a1)
        j fail
jalr_target5:
        li gp, 57                    /* 57: odd base + odd imm = even */
        la a1, jalr_target6 - 1
        jalr ra, 5(a1)               /* (target6 - 1) + 5 = target6 + 4 */
        j fail
jalr_target6:
        j fail
        /* lands here */

        /* jalr with rd == rs1: the target uses the old value */
        la a0, jalr_target7
jalr_site7:
        jalr a0, 0(a0)
        j fail
jalr_target7:
        la a1, jalr_site7
        addi a1, a1, 4
        CHECK_REG 58, a0, a1

        /* call/ret through a subroutine */
        li a0, 20
        call add_one
        call add_one
        CHECK_EQ 59, a0, 22

        /* ---- misaligned jump targets -> cause 0 ---- */
        /* jalr to target + 2: traps at the jalr, mtval = target,
         * rd not written. */
        la a1, misaligned_target
        addi a1, a1, 2
        li ra, 0x1234
        TRAP_BEGIN
mis_jalr:
        jalr ra, 0(a1)
        TRAP_END
        CHECK_TRAP 60, CAUSE_MISALIGNED_FETCH
        CHECK_EPC 61, mis_jalr
        CHECK_TVAL_REG 62, a1
        CHECK_EQ 63, ra, 0x1234          /* rd not written */

        /* jalr with offset 2 (bit 1 from the immediate) */
        la a1, misaligned_target
        TRAP_BEGIN
mis_jalr2:
        jalr x0, 2(a1)
        TRAP_END
        CHECK_TRAP 64, CAUSE_MISALIGNED_FETCH
        CHECK_EPC 65, mis_jalr2
        addi a1, a1, 2
        CHECK_TVAL_REG 66, a1

        /* jalr to target + 3: bit 0 is cleared first, so target + 2 */
        la a1, misaligned_target
        addi a1, a1, 3
        TRAP_BEGIN
        jalr x0, 0(a1)
        TRAP_END
        CHECK_TRAP 67, CAUSE_MISALIGNED_FETCH
        addi a1, a1, -1
        CHECK_TVAL_REG 68, a1

        /* jal to target + 2 */
        li a0, 0x5678
        TRAP_BEGIN
mis_jal:
        jal a0, misaligned_target + 2
        TRAP_END
        CHECK_TRAP 69, CAUSE_MISALIGNED_FETCH
        CHECK_EPC 70, mis_jal
        /* (71: mtval = target is checked in misaligned.S: QEMU 7.2
         * reports the jal's own pc in mtval for jal and branches.) */
        CHECK_EQ 72, a0, 0x5678          /* rd not written */

        /* taken branch to target + 2 */
        TRAP_BEGIN
mis_beq:
        beq x0, x0, misaligned_target + 2
        TRAP_END
        CHECK_TRAP 73, CAUSE_MISALIGNED_FETCH
        CHECK_EPC 74, mis_beq
        /* (75: mtval = target: see misaligned.S) */

        /* not-taken branch to target + 2: no exception */
        TRAP_BEGIN
        bne x0, x0, misaligned_target + 2
        TRAP_END
        CHECK_NO_TRAP 76

        j pass

add_one:
        addi a0, a0, 1
        ret

        .balign 16
misaligned_target:
        j fail
        j fail
        j fail
