/*
 * Common start-up code, trap handlers and pass/fail reporting for all guest
 * programs (the assembly tests and the C benchmark).
 *
 * _start (M-mode, at 0x80000000):
 *   - sets sp, gp = 0
 *   - opens PMP entry 0 to the whole address space so that S/U-mode can
 *     access memory (skipped silently if the PMP CSRs trap)
 *   - installs trap_vector_m (mtvec) and trap_vector_s (stvec), clears
 *     medeleg/mideleg/mie/satp/mstatus, clears .bss
 *   - calls test_main(); a return value of 0 passes, any other value n
 *     fails as check n. Assembly tests usually end with `j pass`.
 *
 * pass: writes 1 to tohost.  fail: writes (gp << 1) | 1 to tohost.
 * Both then spin forever. tohost is written low word first, then high word.
 *
 * The trap handlers' protocol is described in common/test.h.
 */
#include "test.h"

        .section .text.start, "ax", @progbits
        .globl _start
_start:
        la sp, __stack_top
        li gp, 0
        li a6, 0
        li a7, 0

        /* PMP: entry 0 = NAPOT over everything, RWX. If the PMP CSRs are
         * not implemented and trap, the trap lands at 1: and we go on. */
        la t0, 1f
        csrw mtvec, t0
        li t0, -1
        csrw pmpaddr0, t0
        li t0, 0x1f                     /* A=NAPOT, X, W, R */
        csrw pmpcfg0, t0
        .balign 4
1:
        la t0, trap_vector_m
        csrw mtvec, t0
        la t0, m_save
        csrw mscratch, t0
        la t0, trap_vector_s
        csrw stvec, t0
        la t0, s_save
        csrw sscratch, t0
        csrw mstatus, zero
        csrw medeleg, zero
        csrw mideleg, zero
        csrw mie, zero
        csrw satp, zero

        /* clear .bss */
        la t0, __bss_start
        la t1, __bss_end
2:      bgeu t0, t1, 3f
        sw zero, 0(t0)
        addi t0, t0, 4
        j 2b
3:
        la t0, trap_cause
        li t1, NO_TRAP
        sw t1, 0(t0)

        call test_main
        beqz a0, pass
        mv gp, a0
        j fail

/* ---------------------------------------------------------------------- */
/* pass / fail                                                             */
/* ---------------------------------------------------------------------- */
        .text
        .globl pass
pass:
        li t0, 1
        j write_tohost

        .globl fail
fail:
        bnez gp, 1f
        li gp, 0x3ff                    /* failure before any check */
1:      slli t0, gp, 1
        ori t0, t0, 1

write_tohost:
        la t1, tohost
        sw t0, 0(t1)                    /* low word first ... */
        sw zero, 4(t1)                  /* ... then high word */
1:      j 1b

/* ---------------------------------------------------------------------- */
/* Trap handlers                                                           */
/* ---------------------------------------------------------------------- */

/* Record a trap: cause in t1; epc/tval/status CSR names; mode constant.
 * Clobbers t2, t4. */
.macro RECORD_TRAP epc, tval, status, mode
        la t2, trap_cause
        sw t1, 0(t2)
        csrr t4, \epc
        sw t4, 4(t2)                    /* trap_epc */
        csrr t4, \tval
        sw t4, 8(t2)                    /* trap_tval */
        csrr t4, \status
        sw t4, 12(t2)                   /* trap_status */
        li t4, \mode
        sw t4, 16(t2)                   /* trap_mode */
        lw t4, 20(t2)                   /* trap_count */
        addi t4, t4, 1
        sw t4, 20(t2)
        addi t4, t4, -1
        andi t4, t4, 15
        slli t4, t4, 2
        add t4, t4, t2
        sw t1, 24(t4)                   /* trap_log[count & 15] */
.endm

/* Unexpected trap: remember what it was and fail with the current gp. */
.macro UNEXPECTED epc, tval
        la t2, unexpected_cause
        sw t1, 0(t2)
        csrr t4, \epc
        sw t4, 4(t2)
        csrr t4, \tval
        sw t4, 8(t2)
        j fail
.endm

/* Swap in the save area (t0 <-> xscratch) and save t0-t4. */
.macro SAVE_REGS scratch
        csrrw t0, \scratch, t0
        sw t1, 4(t0)
        sw t2, 8(t0)
        sw t3, 12(t0)
        sw t4, 16(t0)
        csrr t1, \scratch
        sw t1, 0(t0)
        csrw \scratch, t0
.endm

.macro RESTORE_REGS
        lw t1, 4(t0)
        lw t2, 8(t0)
        lw t3, 12(t0)
        lw t4, 16(t0)
        lw t0, 0(t0)
.endm

        .balign 64
        .globl trap_vector_m
trap_vector_m:
        SAVE_REGS mscratch
        csrr t1, mcause
        bltz t1, .Lm_interrupt
        li t2, CAUSE_USER_ECALL
        beq t1, t2, .Lm_ecall
        li t2, CAUSE_SUPERVISOR_ECALL
        beq t1, t2, .Lm_ecall
        li t2, CAUSE_MACHINE_ECALL
        beq t1, t2, .Lm_ecall
.Lm_exception:
        la t2, trap_resume
        lw t3, 0(t2)
        beqz t3, .Lm_unexpected
        sw zero, 0(t2)
        RECORD_TRAP mepc, mtval, mstatus, PRV_M
        csrw mepc, t3
        j .Lm_return
.Lm_ecall:
        li t2, ECALL_MAGIC
        bne a7, t2, .Lm_exception
        /* RETURN_TO_M: continue at a6 in M-mode */
        li t2, MSTATUS_MPP
        csrs mstatus, t2
        csrw mepc, a6
        j .Lm_return
.Lm_interrupt:
        RECORD_TRAP mepc, mtval, mstatus, PRV_M
        andi t2, t1, 31
        li t3, 1
        sll t3, t3, t2
        csrc mie, t3                    /* don't take it again */
.Lm_return:
        RESTORE_REGS
        mret
.Lm_unexpected:
        UNEXPECTED mepc, mtval

        .balign 64
        .globl trap_vector_s
trap_vector_s:
        SAVE_REGS sscratch
        csrr t1, scause
        bltz t1, .Ls_interrupt
        li t2, CAUSE_USER_ECALL
        beq t1, t2, .Ls_ecall
.Ls_exception:
        la t2, trap_resume
        lw t3, 0(t2)
        beqz t3, .Ls_unexpected
        sw zero, 0(t2)
        RECORD_TRAP sepc, stval, sstatus, PRV_S
        csrw sepc, t3
        j .Ls_return
.Ls_ecall:
        li t2, ECALL_MAGIC
        bne a7, t2, .Ls_exception
        /* RETURN_TO_M from U-mode with ecall delegated: forward it to M
         * with an ecall of our own (cause 9 must not be delegated). */
        RESTORE_REGS
        ecall
.Ls_interrupt:
        RECORD_TRAP sepc, stval, sstatus, PRV_S
        andi t2, t1, 31
        li t3, 1
        sll t3, t3, t2
        csrc sie, t3                    /* don't take it again */
.Ls_return:
        RESTORE_REGS
        sret
.Ls_unexpected:
        UNEXPECTED sepc, stval

/* ---------------------------------------------------------------------- */
/* Data                                                                    */
/* ---------------------------------------------------------------------- */

        .section .tohost, "aw", @progbits
        .balign 64
        .globl tohost
tohost: .word 0, 0
        .size tohost, 8
        .balign 64
        .globl fromhost
fromhost: .word 0, 0
        .size fromhost, 8

        .bss
        .balign 64
m_save: .space 32
s_save: .space 32

        /* Trap record; the layout is used by RECORD_TRAP. */
        .balign 64
        .globl trap_cause, trap_epc, trap_tval, trap_status, trap_mode
        .globl trap_count, trap_log, trap_resume
trap_cause:  .space 4
trap_epc:    .space 4
trap_tval:   .space 4
trap_status: .space 4
trap_mode:   .space 4
trap_count:  .space 4
trap_log:    .space 64
trap_resume: .space 4

        .globl unexpected_cause, unexpected_epc, unexpected_tval
unexpected_cause: .space 4
unexpected_epc:   .space 4
unexpected_tval:  .space 4
