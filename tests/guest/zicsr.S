/*
 * zicsr: CSR instructions and the basic machine CSRs.
 *
 * Checks csrrw/csrrs/csrrc and csrrwi/csrrsi/csrrci (old value returned,
 * new value written, 5-bit immediates zero-extended, rd == rs1, csrr not
 * writing), mscratch/sscratch/mepc round trips, mhartid == 0, misa (MXL=1
 * for RV32; I, M, A, S, U present; C, F, D absent), mvendorid/marchid/
 * mimpid readable; writing a read-only CSR (mhartid, mvendorid, cycle,
 * with csrrw/csrrs/csrrwi/csrrci forms) raises illegal instruction (cause 2)
 * with mtval = the instruction bits; unknown CSRs raise illegal
 * instruction; cycle/instret (and their h halves, and mcycle/minstret)
 * are readable and increasing.
 *
 * Note: csrrs/csrrc with rs1 != x0 whose *value* is 0 on a read-only CSR
 * is not checked: the spec says it traps, QEMU 7.2 does not.
 * The `time` CSR is checked in sstc.S (QEMU's spike machine has no rdtime).
 */
#include "test.h"

        .text
        .globl test_main
test_main:
        csrr s0, mscratch                /* the trap handler's pointer */

        /* ---- csrrw ---- */
        li a1, 0x12345678
        csrw mscratch, a1
        li a2, 0xcafebabe
        csrrw a0, mscratch, a2           /* returns the old value */
        CHECK_EQ 1, a0, 0x12345678
        csrr a0, mscratch
        CHECK_EQ 2, a0, 0xcafebabe
        li a0, 0x11111111
        csrrw a0, mscratch, a0           /* rd == rs1: swap */
        CHECK_EQ 3, a0, 0xcafebabe
        csrr a1, mscratch
        CHECK_EQ 4, a1, 0x11111111

        /* ---- csrrs / csrrc ---- */
        li a1, 0x00000f0f
        csrw mscratch, a1
        li a2, 0x0000f000
        csrrs a0, mscratch, a2
        CHECK_EQ 5, a0, 0x00000f0f
        csrr a0, mscratch
        CHECK_EQ 6, a0, 0x0000ff0f
        li a2, 0x00000f01
        csrrc a0, mscratch, a2
        CHECK_EQ 7, a0, 0x0000ff0f
        csrr a0, mscratch
        CHECK_EQ 8, a0, 0x0000f00e
        csrrs a0, mscratch, zero         /* rs1 = x0: read only */
        CHECK_EQ 9, a0, 0x0000f00e
        csrrc a0, mscratch, zero
        csrr a0, mscratch
        CHECK_EQ 10, a0, 0x0000f00e

        /* ---- immediate forms ---- */
        csrrwi a0, mscratch, 31          /* uimm zero-extended: 0x1f */
        CHECK_EQ 11, a0, 0x0000f00e
        csrr a0, mscratch
        CHECK_EQ 12, a0, 0x1f
        csrrci a0, mscratch, 0x15
        CHECK_EQ 13, a0, 0x1f
        csrr a0, mscratch
        CHECK_EQ 14, a0, 0x0a
        csrrsi a0, mscratch, 0x11
        CHECK_EQ 15, a0, 0x0a
        csrr a0, mscratch
        CHECK_EQ 16, a0, 0x1b
        csrrsi a0, mscratch, 0           /* uimm = 0: no write */
        CHECK_EQ 17, a0, 0x1b
        csrwi mscratch, 0
        csrr a0, mscratch
        CHECK_EQ 18, a0, 0
        li a1, -1
        csrw mscratch, a1                /* all 32 bits writable */
        csrr a0, mscratch
        CHECK_EQ 19, a0, 0xffffffff

        csrw mscratch, s0                /* restore the handler pointer */

        /* ---- sscratch, mepc, mtvec round trips ---- */
        csrr s1, sscratch
        li a1, 0xa5a5a5a5
        csrw sscratch, a1
        csrr a0, sscratch
        CHECK_EQ 20, a0, 0xa5a5a5a5
        csrw sscratch, s1
        li a1, 0x80001234
        csrw mepc, a1
        csrr a0, mepc
        CHECK_EQ 21, a0, 0x80001234
        csrr a0, mtvec
        la a1, trap_vector_m
        CHECK_REG 22, a0, a1

        /* ---- identification CSRs ---- */
        csrr a0, mhartid
        CHECK_EQ 30, a0, 0
        csrr a0, misa
        CHECK_MASK 31, a0, 0xc0000000, 0x40000000     /* MXL = 1: RV32 */
        CHECK_MASK 32, a0, (1 << 8), (1 << 8)          /* I */
        CHECK_MASK 33, a0, (1 << 12), (1 << 12)        /* M */
        CHECK_MASK 34, a0, (1 << 0), (1 << 0)          /* A */
        CHECK_MASK 35, a0, (1 << 18), (1 << 18)        /* S */
        CHECK_MASK 36, a0, (1 << 20), (1 << 20)        /* U */
        CHECK_MASK 37, a0, (1 << 2), 0                 /* no C */
        CHECK_MASK 38, a0, (1 << 5) | (1 << 3), 0      /* no F, no D */
        TRAP_BEGIN
        csrr a0, mvendorid               /* readable (any value) */
        csrr a0, marchid
        csrr a0, mimpid
        csrrs a0, mhartid, x0
        csrrsi a0, mhartid, 0            /* uimm = 0: no write, no trap */
        csrrc a0, mhartid, x0
        TRAP_END
        CHECK_NO_TRAP 39

        /* ---- writes to read-only CSRs -> illegal instruction ---- */
        li a1, 1
        TRAP_BEGIN
ro1:    csrw mhartid, a1
        TRAP_END
        CHECK_TRAP 40, CAUSE_ILLEGAL_INSN
        CHECK_EPC 41, ro1
        CHECK_TVAL 42, 0xf1459073        /* csrrw x0, mhartid, a1 */

        TRAP_BEGIN
ro2:    csrrwi a0, mvendorid, 1
        TRAP_END
        CHECK_TRAP 43, CAUSE_ILLEGAL_INSN
        CHECK_EPC 44, ro2
        CHECK_TVAL_INSN 45

        TRAP_BEGIN
        csrrs a0, mimpid, a1             /* rs1 != x0, value != 0 */
        TRAP_END
        CHECK_TRAP 46, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN 47

        TRAP_BEGIN
        csrrci a0, marchid, 1
        TRAP_END
        CHECK_TRAP 48, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN 49

        TRAP_BEGIN
        csrw cycle, a1                   /* user counters are read-only */
        TRAP_END
        CHECK_TRAP 50, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN 51

        TRAP_BEGIN
        csrs instret, a1
        TRAP_END
        CHECK_TRAP 52, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN 53

        /* ---- unknown CSRs -> illegal instruction ---- */
        TRAP_BEGIN
unk1:   csrr a0, 0x7c0                   /* custom M-mode CSR: absent */
        TRAP_END
        CHECK_TRAP 60, CAUSE_ILLEGAL_INSN
        CHECK_EPC 61, unk1
        CHECK_TVAL 62, 0x7c002573        /* csrrs a0, 0x7c0, x0 */

        TRAP_BEGIN
        csrw 0x0ff, a1                   /* unallocated user CSR */
        TRAP_END
        CHECK_TRAP 63, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN 64

        TRAP_BEGIN
        csrr a0, 0x5ff                   /* unallocated supervisor CSR */
        TRAP_END
        CHECK_TRAP 65, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN 66

        /* a trapped CSR instruction does not write rd */
        li a0, 0x777
        TRAP_BEGIN
        csrr a0, 0x7c0
        TRAP_END
        CHECK_EQ 67, a0, 0x777

        /* ---- counters ---- */
        rdcycle a0
        rdinstret a1
        li t0, 100                       /* do some work */
1:      addi t0, t0, -1
        bnez t0, 1b
        rdcycle a2
        rdinstret a3
        sub a4, a2, a0
        CHECK_NE_REG 70, a4, zero        /* cycle advanced */
        CHECK_MASK 71, a4, 0x80000000, 0 /* ... by a positive amount */
        sub a4, a3, a1
        li a5, 200                       /* at least the loop's 200 insns */
        sltu a5, a4, a5
        CHECK_EQ 72, a5, 0
        CHECK_MASK 73, a4, 0x80000000, 0

        /* machine-mode aliases and high halves are readable */
        TRAP_BEGIN
        csrr a0, mcycle
        csrr a0, minstret
        csrr a0, mcycleh
        csrr a0, minstreth
        rdcycleh a0
        rdinstreth a0
        TRAP_END
        CHECK_NO_TRAP 74

        /* minstret is writable: write a value, read it back. It may have
         * grown a little (on QEMU without -icount it counts host ticks),
         * but it must be close to what was written. */
        li a1, 1000
        csrw minstret, a1
        csrr a0, minstret
        sub a0, a0, a1
        li a2, 0x100000
        sltu a0, a0, a2
        CHECK_EQ 75, a0, 1

        j pass
