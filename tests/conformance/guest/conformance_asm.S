/*
 * The conformance guest's assembly: its own M-mode trap handler, and the
 * instructions whose stepping the scenarios compare: ecall, an illegal
 * instruction, wfi, a timer interrupt, mret, sret, and a one-instruction spin
 * loop (a Ctrl-C or an attach always finds it at the same pc).
 */
#include "test.h"

        .text

/* Install conf_trap as the M-mode trap vector. */
        .globl conf_setup
conf_setup:
        la t0, conf_trap
        csrw mtvec, t0
        la t0, conf_save
        csrw mscratch, t0
        ret

/* The M-mode trap handler.  Counts every trap in trap_total and keeps its
 * cause in last_cause.  An exception resumes after the faulting instruction,
 * except the ecall of RETURN_TO_M (a7 = ECALL_MAGIC), which resumes at a6 in
 * M mode; an interrupt clears its enable bit in mie and resumes where it hit. */
        .balign 64
        .globl conf_trap, handler_body
conf_trap:
        csrrw t0, mscratch, t0
        sw t1, 0(t0)
        sw t2, 4(t0)
handler_body:
        csrr t1, mcause
        la t2, last_cause
        sw t1, 0(t2)
        la t2, trap_total
        lw t1, 0(t2)
        addi t1, t1, 1
        sw t1, 0(t2)
        csrr t1, mcause
        bltz t1, 2f
        li t2, ECALL_MAGIC
        bne a7, t2, 1f
        li t1, MSTATUS_MPP
        csrs mstatus, t1
        csrw mepc, a6
        j 3f
1:      csrr t1, mepc
        addi t1, t1, 4
        csrw mepc, t1
        j 3f
2:      andi t1, t1, 31
        li t2, 1
        sll t2, t2, t1
        csrc mie, t2
3:      lw t1, 0(t0)
        lw t2, 4(t0)
        csrrw t0, mscratch, t0
        .globl handler_return
handler_return:
        mret

        .globl do_ecall, ecall_insn
do_ecall:
        li a7, 0
ecall_insn:
        ecall
        ret

        .globl do_illegal, illegal_insn
do_illegal:
        nop
illegal_insn:
        unimp                           /* csrrw x0, cycle, x0: a write to a read-only CSR */
        ret

/* wfi with the timer pending and enabled in mie, but mstatus.MIE clear:
 * wfi ends at once and no interrupt is taken. */
        .globl do_wfi, wfi_insn
do_wfi:
        li t0, CLINT_MTIMECMP
        sw zero, 4(t0)
        sw zero, 0(t0)                  /* mtimecmp = 0: the timer is pending */
        li t0, MIP_MTIP
        csrs mie, t0
wfi_insn:
        wfi
        csrc mie, t0
        MTIMECMP_NEVER
        ret

/* A pending timer interrupt, taken as soon as timer_enable sets mstatus.MIE. */
        .globl do_timer, timer_enable, timer_after
do_timer:
        li t0, CLINT_MTIMECMP
        sw zero, 4(t0)
        sw zero, 0(t0)
        li t0, MIP_MTIP
        csrs mie, t0
timer_enable:
        csrsi mstatus, MSTATUS_MIE
timer_after:
        nop
        csrci mstatus, MSTATUS_MIE
        MTIMECMP_NEVER
        ret

/* mret to mret_target (M mode), which comes back to mret_after. */
        .globl do_mret, mret_insn, mret_after, mret_target
do_mret:
        la t0, mret_target
        csrw mepc, t0
        li t0, MSTATUS_MPP
        csrs mstatus, t0
mret_insn:
        mret
mret_after:
        ret
mret_target:
        addi a0, zero, 42
        j mret_after

/* sret from M mode into S mode at sret_target, which goes back to M mode at
 * sret_after with RETURN_TO_M's ecall. */
        .globl do_sret, sret_insn, sret_after, sret_target
do_sret:
        la t0, sret_target
        csrw sepc, t0
        li t0, MSTATUS_SPP
        csrs mstatus, t0                /* SPP = S */
sret_insn:
        sret
sret_after:
        li a7, 0
        ret
sret_target:
        addi a0, zero, 7
        la a6, sret_after
        li a7, ECALL_MAGIC
        ecall

        .globl spin
spin:
        j spin

        .bss
        .balign 16
conf_save:      .space 16
