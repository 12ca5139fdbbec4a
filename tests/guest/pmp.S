/*
 * pmp: physical memory protection (privileged spec 1.12, section 3.7).
 *
 * Checks: pmpaddr and pmpcfg read back what was written (4-byte
 * granularity, G = 0); the lowest-numbered matching entry decides; NA4,
 * NAPOT and TOR regions; S- and U-mode loads, stores and fetches that an
 * entry refuses fault with causes 5/7/1 and mtval = the address; an S-mode
 * access that no entry matches fails; M mode ignores unlocked entries; a
 * locked entry binds M mode too, and its pmpcfg byte and pmpaddr (and the
 * pmpaddr below a locked TOR entry) ignore writes.
 *
 * Entry 15 is the open background (NAPOT over everything, RWX) the other
 * entries carve into.  Locked entries stay until reset: they come last.
 */
#include "test.h"

#define PMP_R     0x01
#define PMP_W     0x02
#define PMP_X     0x04
#define PMP_TOR   0x08
#define PMP_NA4   0x10
#define PMP_NAPOT 0x18
#define PMP_L     0x80

/* Check n: an access in mode `mode` (PRV_S or PRV_U) at register addr traps
 * with `cause` and mtval = addr.  `insn` is the access, using addr. */
.macro ACCESS_TRAPS n, mode, insn, cause, addr
        ENTER_MODE \mode
        TRAP_BEGIN
        \insn
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP \n, \cause
        CHECK_TVAL_REG (\n + 1), \addr
.endm

/* Check n: the access in mode `mode` does not trap. */
.macro ACCESS_WORKS n, mode, insn
        ENTER_MODE \mode
        TRAP_BEGIN
        \insn
        TRAP_END
        RETURN_TO_M
        CHECK_NO_TRAP \n
.endm

        .bss
        .balign 4096
pg_a:   .space 4096
pg_b:   .space 4096
pg_c:   .space 4096

        .text
        .globl test_main
test_main:
        /* ---- the background: entry 15 open, entry 0 (crt0's) off ---- */
        li t0, -1
        csrw pmpaddr15, t0
        li t0, (PMP_NAPOT | PMP_R | PMP_W | PMP_X) << 24
        csrw pmpcfg3, t0
        csrw pmpcfg0, zero

        /* ---- WARL read-back ---- */
        li t0, 0x12345678
        csrw pmpaddr1, t0
        csrr a0, pmpaddr1
        CHECK_EQ 1, a0, 0x12345678
        li t0, -1
        csrw pmpaddr2, t0
        csrr a0, pmpaddr2
        CHECK_EQ 2, a0, 0xffffffff              /* G = 0: every bit sticks */
        csrr a0, pmpcfg3
        CHECK_EQ 3, a0, 0x1f000000
        li t0, 0x0d0b0900                       /* entries 1-3: R|NAPOT... with X/W */
        csrw pmpcfg0, t0
        csrr a0, pmpcfg0
        CHECK_EQ 4, a0, 0x0d0b0900
        csrw pmpcfg0, zero
        csrr a0, pmpcfg0
        CHECK_EQ 5, a0, 0

        /* ---- entry 0: NA4 over pg_a, read only ---- */
        la s0, pg_a
        srli t0, s0, 2
        csrw pmpaddr0, t0
        li t0, PMP_NA4 | PMP_R
        csrw pmpcfg0, t0
        ACCESS_WORKS 10, PRV_S, "lw a0, 0(s0)"
        ACCESS_TRAPS 11, PRV_S, "sw a0, 0(s0)", CAUSE_STORE_ACCESS, s0
        ACCESS_TRAPS 13, PRV_U, "sh a0, 0(s0)", CAUSE_STORE_ACCESS, s0
        addi s1, s0, 4                          /* the next word: entry 15 */
        ACCESS_WORKS 15, PRV_S, "sw a0, 0(s1)"
        ACCESS_WORKS 16, PRV_U, "sw a0, 0(s1)"
        /* M mode: unlocked entries do not bind it */
        TRAP_BEGIN
        sw a0, 0(s0)
        TRAP_END
        CHECK_NO_TRAP 17

        /* ---- entry 1: NAPOT over all of pg_b, no access ---- */
        la s0, pg_b
        srli t0, s0, 2
        ori t0, t0, 0x1ff                       /* 4 KiB */
        csrw pmpaddr1, t0
        li t0, ((PMP_NAPOT) << 8) | PMP_NA4 | PMP_R
        csrw pmpcfg0, t0
        addi s1, s0, 0x7fc                      /* inside */
        ACCESS_TRAPS 20, PRV_S, "lw a0, 0(s1)", CAUSE_LOAD_ACCESS, s1
        ACCESS_TRAPS 22, PRV_U, "lbu a0, 0(s1)", CAUSE_LOAD_ACCESS, s1
        ACCESS_TRAPS 24, PRV_S, "sw a0, 0(s1)", CAUSE_STORE_ACCESS, s1
        addi s1, s0, -4                         /* just below: pg_a's last word */
        ACCESS_WORKS 26, PRV_S, "lw a0, 0(s1)"
        li t0, 4096
        add s1, s0, t0                          /* just above: pg_c */
        ACCESS_WORKS 27, PRV_S, "lw a0, 0(s1)"
        TRAP_BEGIN
        lw a0, 0x7fc(s0)
        TRAP_END
        CHECK_NO_TRAP 28

        /* ---- entries 2-3: TOR [pg_c, pg_c + 64), read only ---- */
        la s0, pg_c
        srli t0, s0, 2
        csrw pmpaddr2, t0
        addi t0, t0, 16
        csrw pmpaddr3, t0
        li t0, ((PMP_TOR | PMP_R) << 24) | (PMP_NAPOT << 8) | PMP_NA4 | PMP_R
        csrw pmpcfg0, t0
        ACCESS_WORKS 30, PRV_S, "lw a0, 0(s0)"
        ACCESS_TRAPS 31, PRV_S, "sw a0, 0(s0)", CAUSE_STORE_ACCESS, s0
        addi s1, s0, 60
        ACCESS_TRAPS 33, PRV_U, "sw a0, 0(s1)", CAUSE_STORE_ACCESS, s1
        addi s1, s0, 64
        ACCESS_WORKS 35, PRV_S, "sw a0, 0(s1)"
        addi s1, s0, -4                         /* pg_b's last word: entry 1 */
        ACCESS_TRAPS 36, PRV_S, "sw a0, 0(s1)", CAUSE_STORE_ACCESS, s1
        csrw pmpcfg0, zero

        /* ---- entry 4: NA4 on the first instruction of xcode, RW ---- */
        la s0, xcode
        srli t0, s0, 2
        csrw pmpaddr4, t0
        li t0, PMP_NA4 | PMP_R | PMP_W
        csrw pmpcfg1, t0
        li a2, 0
        ACCESS_TRAPS 40, PRV_S, "jalr s0", CAUSE_FETCH_ACCESS, s0
        CHECK_EPC 42, xcode
        CHECK_EQ 43, a2, 0
        addi s1, s0, 4                          /* the rest of the page runs */
        ACCESS_WORKS 44, PRV_U, "jalr s1"
        CHECK_EQ 45, a2, 2
        ACCESS_WORKS 46, PRV_S, "lw a0, 0(s0)"  /* and may be read */
        li a2, 0
        jalr s0                                 /* M mode runs it */
        CHECK_EQ 47, a2, 3
        csrw pmpcfg1, zero

        /* ---- no entry matches: S fails, M passes ---- */
        /* entry 15 becomes TOR [pmpaddr14 = 0, pg_b): pg_b and up match nothing */
        csrw pmpaddr14, zero
        la s0, pg_b
        srli t0, s0, 2
        csrw pmpaddr15, t0
        li t0, (PMP_TOR | PMP_R | PMP_W | PMP_X) << 24
        csrw pmpcfg3, t0
        addi s1, s0, 8
        ACCESS_TRAPS 50, PRV_S, "lw a0, 0(s1)", CAUSE_LOAD_ACCESS, s1
        TRAP_BEGIN
        lw a0, 0(s1)
        TRAP_END
        CHECK_NO_TRAP 52
        li t0, -1
        csrw pmpaddr15, t0
        li t0, (PMP_NAPOT | PMP_R | PMP_W | PMP_X) << 24
        csrw pmpcfg3, t0

        /* ---- locked: entry 5 NA4 on pg_a + 16, no access, binds M ---- */
        la s0, pg_a
        addi s0, s0, 16
        srli t0, s0, 2
        csrw pmpaddr5, t0
        li t0, (PMP_L | PMP_NA4) << 8
        csrw pmpcfg1, t0
        TRAP_BEGIN
        lw a0, 0(s0)
        TRAP_END
        CHECK_TRAP 60, CAUSE_LOAD_ACCESS
        CHECK_TVAL_REG 61, s0
        TRAP_BEGIN
        sw a0, 0(s0)
        TRAP_END
        CHECK_TRAP 62, CAUSE_STORE_ACCESS
        /* its configuration and address ignore writes */
        li t0, (PMP_NAPOT | PMP_R | PMP_W) << 8
        csrw pmpcfg1, t0
        csrr a0, pmpcfg1
        CHECK_EQ 63, a0, (PMP_L | PMP_NA4) << 8
        csrw pmpaddr5, zero
        csrr a0, pmpaddr5
        srli t0, s0, 2
        CHECK_REG 64, a0, t0
        /* a locked TOR entry 7 locks pmpaddr6 */
        li t0, 0x100
        csrw pmpaddr6, t0
        li t0, 0x200
        csrw pmpaddr7, t0
        li t0, ((PMP_L | PMP_TOR | PMP_R | PMP_W | PMP_X) << 24) | ((PMP_L | PMP_NA4) << 8)
        csrw pmpcfg1, t0
        li t0, 0x180
        csrw pmpaddr6, t0
        csrr a0, pmpaddr6
        CHECK_EQ 65, a0, 0x100

        j pass

        /* xcode: adds 1 to a2 when entered at its first instruction, 2 at the second. */
        .balign 4
xcode:
        addi a2, a2, 1
        addi a2, a2, 2
        ret
