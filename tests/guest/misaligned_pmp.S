/*
 * misaligned_pmp: a misaligned access whose second page PMP refuses faults
 * with mtval = the start of that page (the portion that faults), and
 * nothing is stored; each page's part is checked on its own.
 *
 * SIMULATOR-ONLY: QEMU 7.2 checks PMP over the whole access at its first page and reports the access's own address
 */
#include "test.h"

#define PMP_R     0x01
#define PMP_W     0x02
#define PMP_X     0x04
#define PMP_NAPOT 0x18

        .bss
        .balign 4096
pg_y:    .space 4096
pg_z:    .space 4096

        .text
        .globl test_main
test_main:
        /* ---- PMP, S mode, bare: pg_z refuses everything ---- */
        la t0, pg_z
        srli t0, t0, 2
        ori t0, t0, 0x1ff
        csrw pmpaddr0, t0
        li t0, -1
        csrw pmpaddr1, t0
        li t0, ((PMP_NAPOT | PMP_R | PMP_W | PMP_X) << 8) | PMP_NAPOT
        csrw pmpcfg0, t0
        la s0, pg_z
        addi s0, s0, -2
        ENTER_MODE PRV_S
        TRAP_BEGIN
        lw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 60, CAUSE_LOAD_ACCESS
        la t0, pg_z
        CHECK_TVAL_REG 61, t0
        la a0, pg_y + 4096
        li t0, 0x0a0b0c0d
        sw t0, -4(a0)
        ENTER_MODE PRV_S
        TRAP_BEGIN
        sw zero, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 62, CAUSE_STORE_ACCESS
        la t0, pg_z
        CHECK_TVAL_REG 63, t0
        la a0, pg_y + 4096
        lw a2, -4(a0)
        CHECK_EQ 64, a2, 0x0a0b0c0d
        /* starting in pg_z: mtval = the address */
        li t0, 4096
        add s0, s0, t0                          /* pg_z end - 2: into the page above */
        ENTER_MODE PRV_S
        TRAP_BEGIN
        lw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 65, CAUSE_LOAD_ACCESS
        CHECK_TVAL_REG 66, s0
        /* M mode: each page's part is checked on its own (the privileged spec lets an
         * implementation split a misaligned access), and each matches an entry whole:
         * the unlocked entry does not bind M.  (QEMU checks the access as one and
         * refuses it: it matches entry 0 in part.) */
        TRAP_BEGIN
        lw a1, 0(s0)
        TRAP_END
        CHECK_NO_TRAP 67

        j pass
