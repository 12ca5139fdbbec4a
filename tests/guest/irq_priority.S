/*
 * irq_priority: the priority order of simultaneously pending interrupts.
 *
 * SIMULATOR-ONLY: QEMU 7.2 without AIA takes pending interrupts in the order of their numbers (SSI first), not the spec's MEI > MSI > MTI > SEI > SSI > STI
 *
 * Checks, with the common M handler taking each interrupt and disabling it
 * in mie so that the next one follows:
 *   - all of MSI, MTI, SEI, SSI, STI pending and enabled, none delegated:
 *     taken in the order MSI, MTI, SEI, SSI, STI (MEI cannot be raised
 *     without an interrupt controller, so it is not part of the test);
 *   - SEI and STI delegated to S and both pending in S-mode: SEI first;
 *   - SSI delegated and pending together with a non-delegated MTI while in
 *     S-mode: the M-level interrupt is taken first (in M), then SSI in S.
 */
#include "test.h"

/* Spin until trap_count >= count (bounded). Clobbers t0, t5, t6. */
.macro WAIT_TRAPS count
        li t0, 4000000
1:      la t6, trap_count
        lw t6, 0(t6)
        li t5, \count
        bgeu t6, t5, 2f
        addi t0, t0, -1
        bnez t0, 1b
2:
.endm

        .text
        .globl test_main
test_main:
        li a7, 0
        csrw mie, zero
        csrw mideleg, zero
        MTIMECMP_NEVER

        /* ==== all five pending, none delegated ==== */
        CLEAR_TRAP_LOG
        STORE_ABS CLINT_MSIP, 1
        li t6, CLINT_MTIMECMP             /* mtimecmp = 0: MTIP now */
        sw zero, 0(t6)
        sw zero, 4(t6)
        li t0, MIP_SEIP | MIP_SSIP | MIP_STIP
        csrs mip, t0
        li t0, MIP_MSIP | MIP_MTIP | MIP_SEIP | MIP_SSIP | MIP_STIP
        csrw mie, t0
        csrr a0, mip
        CHECK_MASK 1, a0, MIP_MSIP | MIP_MTIP | MIP_SEIP | MIP_SSIP | MIP_STIP, MIP_MSIP | MIP_MTIP | MIP_SEIP | MIP_SSIP | MIP_STIP
        li t0, MSTATUS_MIE
        csrs mstatus, t0
        WAIT_TRAPS 5
        CHECK_COUNT 2, 5
        CHECK_LOG 3, 0, CAUSE_MSI
        CHECK_LOG 4, 1, CAUSE_MTI
        CHECK_LOG 5, 2, CAUSE_SEI
        CHECK_LOG 6, 3, CAUSE_SSI
        CHECK_LOG 7, 4, CAUSE_STI
        li t0, MSTATUS_MIE
        csrc mstatus, t0
        STORE_ABS CLINT_MSIP, 0
        MTIMECMP_NEVER
        li t0, MIP_SEIP | MIP_SSIP | MIP_STIP
        csrc mip, t0
        csrw mie, zero

        /* ==== delegated SEI and STI pending in S-mode: SEI first ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_SEIP | MIP_STIP
        csrw mideleg, t0
        csrw mie, t0
        csrs mip, t0
        li t0, MSTATUS_SIE
        csrs mstatus, t0
        ENTER_MODE PRV_S
        WAIT_TRAPS 2
        RETURN_TO_M
        CHECK_COUNT 10, 2
        CHECK_LOG 11, 0, CAUSE_SEI
        CHECK_LOG 12, 1, CAUSE_STI
        CHECK_TRAP_MODE 13, PRV_S
        li t0, MIP_SEIP | MIP_STIP
        csrc mip, t0

        /* ==== non-delegated MTI before delegated SSI, in S-mode ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_SSIP
        csrw mideleg, t0
        li t0, MIP_SSIP | MIP_MTIP
        csrw mie, t0
        li t0, MIP_SSIP
        csrs mip, t0
        li t6, CLINT_MTIMECMP
        sw zero, 0(t6)
        sw zero, 4(t6)
        ENTER_MODE PRV_S                  /* SIE = 1 still */
        WAIT_TRAPS 2
        RETURN_TO_M
        CHECK_COUNT 20, 2
        CHECK_LOG 21, 0, CAUSE_MTI
        CHECK_LOG 22, 1, CAUSE_SSI
        CHECK_TRAP_MODE 23, PRV_S         /* the last one, SSI, in S */
        MTIMECMP_NEVER
        li t0, MIP_SSIP
        csrc mip, t0
        li t0, MSTATUS_SIE
        csrc mstatus, t0
        csrw mie, zero
        csrw mideleg, zero

        j pass
