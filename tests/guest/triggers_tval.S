/*
 * triggers_tval: what a trigger's breakpoint exception reports, and the
 * trigger registers' WARL details.
 *
 * SIMULATOR-ONLY: QEMU 7.2 leaves mtval 0 for trigger breakpoints, ignores a tdata1 write of type 0, and watches the 4 bytes from tdata2 (an access to the byte after it fires)
 *
 *   - mtval = the instruction's address for an execute trigger, the
 *     access's address for a load or store trigger (privileged spec: the
 *     faulting virtual address);
 *   - an AMO is a load and a store: a load or a store trigger on its word
 *     fires (lr.w loads, sc.w stores);
 *   - writing tdata1 with type 0 disables the trigger;
 *   - tselect is WARL: selecting a trigger that does not exist keeps the
 *     old selection;
 *   - the fields this hart fixes (dmode, hit, select, timing, size,
 *     action, chain, match) read 0 whatever is written;
 *   - tdata3 reads 0.
 */
#include "test.h"

#define CSR_TSELECT 0x7a0
#define CSR_TDATA1  0x7a1
#define CSR_TDATA2  0x7a2
#define CSR_TDATA3  0x7a3
#define MC_TYPE2    0x20000000
#define MC_M        0x40
#define MC_S        0x10
#define MC_EXEC     0x04
#define MC_STORE    0x02
#define MC_LOAD     0x01

.macro ARM sel, addr, bits
        li t0, \sel
        csrw CSR_TSELECT, t0
        csrw CSR_TDATA2, \addr
        li t0, MC_TYPE2 | (\bits)
        csrw CSR_TDATA1, t0
.endm

        .data
        .balign 16
watched: .word 0x11111111, 0x22222222

        .text
        .globl test_main
test_main:
        /* ---- tval of an execute trigger: the pc ---- */
        la a1, exec_target
        ARM 0, a1, MC_M | MC_EXEC
        TRAP_BEGIN
exec_target:
        nop
        TRAP_END
        CHECK_TRAP 1, CAUSE_BREAKPOINT
        CHECK_TVAL_LABEL 2, exec_target
        /* type 0 disables it */
        csrw CSR_TDATA1, zero
        csrr a0, CSR_TDATA1
        CHECK_MASK 3, a0, MC_M | MC_EXEC, 0
        TRAP_BEGIN
        jal exec_target_again
        TRAP_END
        CHECK_NO_TRAP 4

        /* ---- tval of a load and a store trigger: the address ---- */
        la a0, watched
        addi a1, a0, 1
        ARM 1, a1, MC_M | MC_S | MC_LOAD | MC_STORE
        TRAP_BEGIN
        lw a3, 0(a0)                    /* covers watched + 1 */
        TRAP_END
        CHECK_TRAP 10, CAUSE_BREAKPOINT
        CHECK_TVAL_REG 11, a0
        TRAP_BEGIN
        sb a3, 1(a0)
        TRAP_END
        CHECK_TRAP 12, CAUSE_BREAKPOINT
        CHECK_TVAL_REG 13, a1
        ENTER_MODE PRV_S
        TRAP_BEGIN
        sh a3, 0(a0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 14, CAUSE_BREAKPOINT
        CHECK_TVAL_REG 15, a0
        /* a byte beside it does not match */
        TRAP_BEGIN
        lbu a3, 2(a0)
        sb a3, 0(a0)
        TRAP_END
        CHECK_NO_TRAP 16

        /* ---- AMOs, lr.w, sc.w ---- */
        ARM 1, a0, MC_M | MC_LOAD
        li a2, 5
        TRAP_BEGIN
        amoadd.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 20, CAUSE_BREAKPOINT
        CHECK_TVAL_REG 21, a0
        TRAP_BEGIN
        lr.w a3, (a0)
        TRAP_END
        CHECK_TRAP 23, CAUSE_BREAKPOINT
        ARM 1, a0, MC_M | MC_STORE
        TRAP_BEGIN
        amoswap.w a3, a2, (a0)
        TRAP_END
        CHECK_TRAP 24, CAUSE_BREAKPOINT
        TRAP_BEGIN
        lr.w a3, (a0)                   /* a store trigger: the load goes through */
        sc.w a4, a2, (a0)
        TRAP_END
        CHECK_TRAP 25, CAUSE_BREAKPOINT
        CHECK_EQ 26, a3, 0x11111111
        CHECK_MEM 27, watched, 0x11111111
        csrw CSR_TDATA1, zero

        /* ---- WARL ---- */
        li t0, 1
        csrw CSR_TSELECT, t0
        li t0, 7
        csrw CSR_TSELECT, t0
        csrr a0, CSR_TSELECT
        CHECK_EQ 30, a0, 1
        li t0, 0x2fffffff               /* every field of mcontrol set */
        csrw CSR_TDATA1, t0
        csrr a0, CSR_TDATA1
        CHECK_EQ 31, a0, 0x2000005f     /* type 2, m s u execute store load */
        csrw CSR_TDATA1, zero
        li t0, -1
        csrw CSR_TDATA3, t0
        csrr a0, CSR_TDATA3
        CHECK_EQ 32, a0, 0
        /* a type this hart lacks (6, mcontrol6) is not taken */
        li t0, 0x60000044
        csrw CSR_TDATA1, t0
        csrr a0, CSR_TDATA1
        CHECK_EQ 33, a0, 0x20000000

        j pass

        .balign 4
exec_target_again:
        ret
