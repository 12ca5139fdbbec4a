/*
 * rv32a: the A extension (lr.w/sc.w and the AMOs).
 *
 * Checks sc.w without a reservation fails (rd = 1, memory unchanged);
 * lr.w/sc.w to the same address succeeds (rd = 0, memory written); a second
 * sc.w fails because the first one consumed the reservation; sc.w to an
 * address other than the reserved one fails; an lr/sc retry loop; every
 * AMO (swap/add/xor/and/or/min/max/minu/maxu) returns the old value and
 * stores the right new value (signed/unsigned edges, wrap-around), the
 * .aq/.rl/.aqrl forms, rd = x0 and rd == rs2; misaligned lr.w raises
 * load-address-misaligned (cause 4) with mtval = address; lr.w to unmapped
 * memory raises a load access fault (cause 5).
 * Misaligned AMO/sc.w (cause 6) and AMO access faults (cause 7) are in
 * misaligned.S (simulator only): QEMU 7.2 reports load causes for AMOs.
 */
#include "test.h"

/* Check n..n+1: `op rd, rs2, (mem)` with mem = init, rs2 = src returns
 * init in rd (check n) and leaves newval in memory (check n+1). */
.macro TEST_AMO n, op, init, src, newval
        la a0, amo_word
        li a1, \init
        sw a1, 0(a0)
        li a2, \src
        \op a3, a2, (a0)
        CHECK_EQ \n, a3, \init
        lw a4, 0(a0)
        CHECK_EQ (\n + 1), a4, \newval
.endm

        .data
        .balign 64
amo_word:   .word 0
        .balign 64
lr_word:    .word 0
        .balign 64
other_word: .word 0
        .balign 64
mis_area:   .word 0x11223344, 0x55667788

        .text
        .globl test_main
test_main:
        /* ---- sc.w without a reservation fails ---- */
        la a0, lr_word
        li a1, 100
        sw a1, 0(a0)
        li a2, 200
        sc.w a3, a2, (a0)
        CHECK_EQ 1, a3, 1                  /* failure code 1 */
        lw a4, 0(a0)
        CHECK_EQ 2, a4, 100                /* memory unchanged */

        /* ---- lr.w / sc.w success ---- */
        lr.w a3, (a0)
        CHECK_EQ 3, a3, 100
        sc.w a4, a2, (a0)
        CHECK_EQ 4, a4, 0                  /* success */
        lw a5, 0(a0)
        CHECK_EQ 5, a5, 200

        /* ---- the reservation is consumed by the sc.w ---- */
        li a2, 300
        sc.w a4, a2, (a0)
        CHECK_EQ 6, a4, 1
        lw a5, 0(a0)
        CHECK_EQ 7, a5, 200

        /* ---- sc.w to another address than the reserved one fails ---- */
        la a1, other_word
        sw zero, 0(a1)
        lr.w a3, (a0)
        li a2, 55
        sc.w a4, a2, (a1)
        CHECK_EQ 8, a4, 1
        lw a5, 0(a1)
        CHECK_EQ 9, a5, 0
        sc.w a4, a2, (a0)                  /* clear the reservation */

        /* ---- atomic increment loop (lr/sc with aq/rl) ---- */
        li a1, 10
        sw a1, 0(a0)
        li a5, 0                           /* attempts */
1:      addi a5, a5, 1
        lr.w.aq a3, (a0)
        addi a3, a3, 5
        sc.w.rl a4, a3, (a0)
        bnez a4, 1b
        lw a3, 0(a0)
        CHECK_EQ 10, a3, 15
        CHECK_EQ 11, a5, 1                 /* single hart: first try works */

        /* ---- lr.w with rd == rs1 ---- */
        la a0, lr_word
        lr.w a0, (a0)
        CHECK_EQ 12, a0, 15
        la a0, lr_word
        sc.w a1, zero, (a0)
        CHECK_EQ 13, a1, 0
        lw a1, 0(a0)
        CHECK_EQ 14, a1, 0

        /* ---- AMOs ---- */
        TEST_AMO 20, amoswap.w, 0x11111111, 0x22222222, 0x22222222
        TEST_AMO 22, amoadd.w,  0x7fffffff, 0x00000001, 0x80000000
        TEST_AMO 24, amoadd.w,  0xffffffff, 0x00000002, 0x00000001
        TEST_AMO 26, amoxor.w,  0xff00ff00, 0x0ff00ff0, 0xf0f0f0f0
        TEST_AMO 28, amoand.w,  0xff00ff00, 0x0ff00ff0, 0x0f000f00
        TEST_AMO 30, amoor.w,   0xff00ff00, 0x0ff00ff0, 0xfff0fff0
        TEST_AMO 32, amomin.w,  0x00000001, 0x80000000, 0x80000000
        TEST_AMO 34, amomin.w,  0x00000005, 0xfffffffd, 0xfffffffd
        TEST_AMO 36, amomin.w,  0xffffffff, 0x00000000, 0xffffffff
        TEST_AMO 38, amomax.w,  0xffffffff, 0x00000001, 0x00000001
        TEST_AMO 40, amomax.w,  0x7fffffff, 0x80000000, 0x7fffffff
        TEST_AMO 42, amominu.w, 0xffffffff, 0x00000001, 0x00000001
        TEST_AMO 44, amominu.w, 0x00000000, 0x80000000, 0x00000000
        TEST_AMO 46, amomaxu.w, 0x00000001, 0xffffffff, 0xffffffff
        TEST_AMO 48, amomaxu.w, 0x80000000, 0x7fffffff, 0x80000000
        TEST_AMO 50, amoadd.w.aq,   0x00000010, 0x00000020, 0x00000030
        TEST_AMO 52, amoswap.w.rl,  0x00000010, 0x00000020, 0x00000020
        TEST_AMO 54, amoor.w.aqrl,  0x00000010, 0x00000001, 0x00000011

        /* rd = x0: memory still updated */
        la a0, amo_word
        li a1, 40
        sw a1, 0(a0)
        li a2, 2
        amoadd.w x0, a2, (a0)
        lw a3, 0(a0)
        CHECK_EQ 60, a3, 42
        CHECK_EQ 61, x0, 0
        /* rd == rs2: rd gets the old value, memory the old rs2 */
        li a2, 7
        amoswap.w a2, a2, (a0)
        CHECK_EQ 62, a2, 42
        lw a3, 0(a0)
        CHECK_EQ 63, a3, 7

        /* (Misaligned AMOs and sc.w -> cause 6 are checked in misaligned.S:
         * QEMU 7.2 reports cause 4 for a misaligned AMO, and a misaligned
         * sc.w without a reservation does not trap at all there.) */

        /* misaligned lr.w -> cause 4 */
        la a0, mis_area + 3
        TRAP_BEGIN
mis_lr:
        lr.w a3, (a0)
        TRAP_END
        CHECK_TRAP 79, CAUSE_MISALIGNED_LOAD
        CHECK_EPC 80, mis_lr
        CHECK_TVAL_REG 81, a0

        /* ---- lr.w on unmapped memory -> load access fault ---- */
        /* (An AMO there -> cause 7 is checked in misaligned.S: QEMU 7.2
         * reports cause 5 for it.) */
        li a0, UNMAPPED_ADDR
        TRAP_BEGIN
        lr.w a3, (a0)
        TRAP_END
        CHECK_TRAP 87, CAUSE_LOAD_ACCESS
        CHECK_TVAL_REG 88, a0

        j pass
