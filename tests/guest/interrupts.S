/*
 * interrupts: machine and supervisor interrupts (no Sstc; see sstc.S).
 *
 * Checks the machine timer interrupt from the CLINT (mtimecmp <= mtime
 * sets mip.MTIP; cause 0x80000007; writing mtimecmp clears MTIP), the
 * machine software interrupt from CLINT msip (cause 0x80000003; clearing
 * msip clears mip.MSIP), gating by mstatus.MIE and by mie, the epc of an
 * interrupt taken right after the instruction that enabled it, that
 * M-level interrupts are taken in S-mode even with mstatus.MIE = 0, that
 * wfi wakes up on a pending+enabled interrupt even with mstatus.MIE = 0
 * (then no trap is taken), the priority orders MSI > MTI > SEI and
 * SSI > STI (the full order with all pending at once is in irq_priority.S,
 * as QEMU 7.2 gets it wrong; MEI cannot be raised on QEMU's spike machine,
 * so it is not checked), a supervisor software interrupt set from M via
 * mip.SSIP and delegated with mideleg taken in S-mode (cause 0x80000001),
 * not taken in M-mode nor in S-mode with sstatus.SIE = 0 but taken from
 * U-mode, delegated supervisor timer/external interrupts from mip.STIP/
 * mip.SEIP, and a non-delegated S-level interrupt going to M.
 *
 * The timing does not depend on the rate of mtime: waits are wfi or
 * bounded spin loops polling trap_count.
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

/* Check n: (mip & mask) == val. */
.macro CHECK_MIP n, mask, val
        csrr a0, mip
        CHECK_MASK \n, a0, \mask, \val
.endm

/* msip = val. Clobbers t5, t6. */
.macro SET_MSIP val
        STORE_ABS CLINT_MSIP, \val
.endm

/* mtimecmp = 0: MTIP pending at once. Clobbers t6. */
.macro MTIMECMP_NOW
        li t6, CLINT_MTIMECMP
        sw zero, 0(t6)
        sw zero, 4(t6)
.endm

        .text
        .globl test_main
test_main:
        li a7, 0
        csrw mie, zero
        csrw mideleg, zero
        MTIMECMP_NEVER
        SET_MSIP 0
        CHECK_MIP 1, MIP_MTIP | MIP_MSIP, 0

        /* ==== machine timer interrupt ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_MTIP
        csrs mie, t0
        li t0, MSTATUS_MIE
        csrs mstatus, t0
        MTIMECMP_IN 100
        WAIT_TRAPS 1
        CHECK_COUNT 2, 1
        CHECK_LOG 3, 0, CAUSE_MTI
        CHECK_TRAP_MODE 4, PRV_M
        CHECK_TRAP_STATUS 5, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP, MSTATUS_MPIE | MSTATUS_MPP
        CHECK_MIP 6, MIP_MTIP, MIP_MTIP   /* still pending (mie cleared) */
        csrr a0, mie
        CHECK_MASK 7, a0, MIP_MTIP, 0     /* the handler disabled it */
        MTIMECMP_NEVER
        CHECK_MIP 8, MIP_MTIP, 0          /* new mtimecmp: not pending */
        csrr a0, mstatus
        CHECK_MASK 9, a0, MSTATUS_MIE, MSTATUS_MIE   /* mret restored MIE */
        li t0, MSTATUS_MIE
        csrc mstatus, t0

        /* ==== gating by mstatus.MIE and mie ==== */
        CLEAR_TRAP_LOG
        MTIMECMP_NOW
        CHECK_MIP 10, MIP_MTIP, MIP_MTIP
        li t0, MIP_MTIP
        csrs mie, t0                      /* enabled in mie, MIE = 0 */
        nop
        nop
        CHECK_COUNT 11, 0
        csrc mie, t0
        li t0, MSTATUS_MIE
        csrs mstatus, t0                  /* MIE = 1, disabled in mie */
        nop
        nop
        CHECK_COUNT 12, 0
        li t0, MIP_MTIP
irq_enable:
        csrs mie, t0                      /* both: taken right after this */
irq_after:
        nop
        CHECK_COUNT 13, 1
        CHECK_LOG 14, 0, CAUSE_MTI
        CHECK_EPC 15, irq_after
        li t0, MSTATUS_MIE
        csrc mstatus, t0
        MTIMECMP_NEVER

        /* ==== wfi wakes up with mstatus.MIE = 0, no trap ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_MTIP
        csrs mie, t0
        MTIMECMP_IN 200
        wfi
        CHECK_MIP 20, MIP_MTIP, MIP_MTIP  /* woke up because MTIP is set */
        CHECK_COUNT 21, 0                 /* ... and no trap was taken */
        csrw mie, zero
        MTIMECMP_NEVER

        /* ==== machine software interrupt ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_MSIP
        csrs mie, t0
        li t0, MSTATUS_MIE
        csrs mstatus, t0
        SET_MSIP 1
        WAIT_TRAPS 1
        CHECK_COUNT 30, 1
        CHECK_LOG 31, 0, CAUSE_MSI
        CHECK_MIP 32, MIP_MSIP, MIP_MSIP
        li t0, CLINT_MSIP
        lw a0, 0(t0)
        CHECK_EQ 33, a0, 1                /* msip reads back */
        SET_MSIP 0
        CHECK_MIP 34, MIP_MSIP, 0
        li t0, MSTATUS_MIE
        csrc mstatus, t0

        /* ==== M interrupts are taken in S-mode even with MIE = 0 ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_MSIP
        csrs mie, t0
        SET_MSIP 1
        nop
        CHECK_COUNT 35, 0                 /* M-mode, MIE = 0: not taken */
        ENTER_MODE PRV_S                  /* taken as soon as we are in S */
        WAIT_TRAPS 1
        RETURN_TO_M
        CHECK_COUNT 36, 1
        CHECK_LOG 37, 0, CAUSE_MSI
        CHECK_TRAP_MODE 38, PRV_M
        CHECK_TRAP_STATUS 39, MSTATUS_MPP, MSTATUS_MPP_S
        SET_MSIP 0

        /* ==== priority ==== */
        /* QEMU 7.2 (without AIA) takes pending interrupts in the order of
         * their numbers, not in the spec's order MEI > MSI > MTI > SEI >
         * SSI > STI. Here only sets where both orders agree are checked;
         * irq_priority.S (simulator only) checks all five at once. */
        /* MSI > MTI > SEI */
        CLEAR_TRAP_LOG
        csrw mideleg, zero
        SET_MSIP 1
        MTIMECMP_NOW
        li t0, MIP_SEIP
        csrs mip, t0                      /* S-level bits writable from M */
        li t0, MIP_MSIP | MIP_MTIP | MIP_SEIP
        csrw mie, t0
        CHECK_MIP 40, MIP_MSIP | MIP_MTIP | MIP_SEIP, MIP_MSIP | MIP_MTIP | MIP_SEIP
        CHECK_COUNT 41, 0
        li t0, MSTATUS_MIE
        csrs mstatus, t0                  /* all three, one after another */
        WAIT_TRAPS 3
        CHECK_COUNT 42, 3
        CHECK_LOG 43, 0, CAUSE_MSI
        CHECK_LOG 44, 1, CAUSE_MTI
        CHECK_LOG 45, 2, CAUSE_SEI
        li t0, MSTATUS_MIE
        csrc mstatus, t0
        SET_MSIP 0
        MTIMECMP_NEVER
        li t0, MIP_SEIP
        csrc mip, t0
        CHECK_MIP 46, MIP_MSIP | MIP_MTIP | MIP_SEIP, 0
        /* SSI > STI */
        CLEAR_TRAP_LOG
        li t0, MIP_SSIP | MIP_STIP
        csrs mip, t0
        csrw mie, t0
        li t0, MSTATUS_MIE
        csrs mstatus, t0
        WAIT_TRAPS 2
        CHECK_COUNT 47, 2
        CHECK_LOG 48, 0, CAUSE_SSI
        CHECK_LOG 49, 1, CAUSE_STI
        li t0, MSTATUS_MIE
        csrc mstatus, t0
        li t0, MIP_SSIP | MIP_STIP
        csrc mip, t0
        CHECK_MIP 39, MIP_SSIP | MIP_STIP, 0
        csrw mie, zero

        /* ==== delegated supervisor software interrupt ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_SSIP
        csrw mideleg, t0
        csrs mie, t0                      /* = sie.SSIE */
        csrr a0, sie
        CHECK_MASK 50, a0, MIP_SSIP, MIP_SSIP
        li t0, MSTATUS_MIE | MSTATUS_SIE
        csrs mstatus, t0
        li t0, MIP_SSIP
        csrs mip, t0                      /* pending ... */
        nop
        nop
        CHECK_COUNT 51, 0                 /* ... but never taken in M */
        ENTER_MODE PRV_S                  /* taken in S at once (SIE = 1) */
        WAIT_TRAPS 1
        CHECK_COUNT 52, 1
        CHECK_LOG 53, 0, CAUSE_SSI
        CHECK_TRAP_MODE 54, PRV_S
        CHECK_TRAP_STATUS 55, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE, MSTATUS_SPP | MSTATUS_SPIE
        csrr a0, scause
        CHECK_EQ 56, a0, CAUSE_SSI
        csrr a0, sip
        CHECK_MASK 57, a0, MIP_SSIP, MIP_SSIP
        li t0, MIP_SSIP
        csrc sip, t0                      /* S clears its own SSIP */
        csrr a0, sip
        CHECK_MASK 58, a0, MIP_SSIP, 0
        RETURN_TO_M
        li t0, MSTATUS_MIE | MSTATUS_SIE
        csrc mstatus, t0

        /* S-mode with SIE = 0: not taken; from U-mode: taken (in S) */
        CLEAR_TRAP_LOG
        li t0, MIP_SSIP
        csrs mie, t0
        csrs mip, t0
        ENTER_MODE PRV_S
        nop
        nop
        CHECK_COUNT 60, 0
        li t0, MSTATUS_SPP
        csrc sstatus, t0
        la t0, 1f
        csrw sepc, t0
        sret                              /* to U: taken right away */
1:      WAIT_TRAPS 1
        RETURN_TO_M
        CHECK_COUNT 61, 1
        CHECK_LOG 62, 0, CAUSE_SSI
        CHECK_TRAP_MODE 63, PRV_S
        CHECK_TRAP_STATUS 64, MSTATUS_SPP, 0          /* from U */
        li t0, MIP_SSIP
        csrc mip, t0

        /* ==== delegated supervisor timer and external interrupts ==== */
        li t0, MIP_STIP | MIP_SEIP
        csrw mideleg, t0
        li t0, MSTATUS_SIE
        csrs mstatus, t0
        /* STI (mip.STIP set by M: no Sstc here) */
        CLEAR_TRAP_LOG
        li t0, MIP_STIP
        csrw mie, t0
        csrs mip, t0
        ENTER_MODE PRV_S
        WAIT_TRAPS 1
        RETURN_TO_M
        CHECK_COUNT 70, 1
        CHECK_LOG 71, 0, CAUSE_STI
        CHECK_TRAP_MODE 72, PRV_S
        li t0, MIP_STIP
        csrc mip, t0
        /* SEI (mip.SEIP set by M) */
        CLEAR_TRAP_LOG
        li t0, MIP_SEIP
        csrw mie, t0
        csrs mip, t0
        ENTER_MODE PRV_S
        WAIT_TRAPS 1
        RETURN_TO_M
        CHECK_COUNT 73, 1
        CHECK_LOG 74, 0, CAUSE_SEI
        CHECK_TRAP_MODE 75, PRV_S
        li t0, MIP_SEIP
        csrc mip, t0
        li t0, MSTATUS_SIE
        csrc mstatus, t0

        /* ==== non-delegated S interrupt in S-mode goes to M ==== */
        CLEAR_TRAP_LOG
        csrw mideleg, zero
        li t0, MIP_SSIP
        csrw mie, t0
        csrs mip, t0
        ENTER_MODE PRV_S                  /* MIE = 0, but we are below M */
        WAIT_TRAPS 1
        RETURN_TO_M
        CHECK_COUNT 80, 1
        CHECK_LOG 81, 0, CAUSE_SSI
        CHECK_TRAP_MODE 82, PRV_M
        li t0, MIP_SSIP
        csrc mip, t0
        csrw mie, zero

        j pass
