/*
 * delegation: medeleg/mideleg and trap handling in S-mode.
 *
 * Checks medeleg/mideleg write masks (M-level interrupts cannot be
 * delegated); an ecall from U delegated with medeleg[8] is taken
 * by the S handler (stvec) with scause = 8, sepc = the ecall, stval = 0,
 * sstatus.SPP = U, SPIE = old SIE, SIE = 0, and sret restores SIE; a load
 * page fault delegated with medeleg[13] is taken in S with scause = 13,
 * stval = the virtual address, SPP = S; a store page fault (not delegated)
 * and an ecall from S (not delegated) still go to M; a delegated illegal
 * instruction goes to S from S/U-mode (stval = instruction bits) but
 * traps raised in M-mode are never delegated.
 */
#include "test.h"

        .bss
        .balign 4096
root_pt:
        .space 4096

        .text
        .globl test_main
test_main:
        li a7, 0

        /* ---- writable bits of medeleg / mideleg ---- */
        li t0, -1
        csrw medeleg, t0
        csrr a0, medeleg
        /* (medeleg[11], ecall from M, is not checked: the spec says it
         * should be hardwired to 0, QEMU 7.2 lets it be written; either
         * way an ecall from M is handled in M.) */
        CHECK_MASK 2, a0, (1 << CAUSE_USER_ECALL) | (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_ILLEGAL_INSN), (1 << CAUSE_USER_ECALL) | (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_ILLEGAL_INSN)
        csrw mideleg, t0
        csrr a0, mideleg
        CHECK_MASK 3, a0, MIP_MSIP | MIP_MTIP | MIP_MEIP, 0  /* M irqs stay in M */
        CHECK_MASK 4, a0, MIP_SSIP | MIP_STIP | MIP_SEIP, MIP_SSIP | MIP_STIP | MIP_SEIP
        csrw medeleg, zero
        csrw mideleg, zero

        /* ---- ecall from U delegated to S ---- */
        li t0, 1 << CAUSE_USER_ECALL
        csrw medeleg, t0
        li t0, MSTATUS_SIE                /* SIE = 1 while in U (sie = 0) */
        csrs mstatus, t0
        ENTER_MODE PRV_U
        TRAP_BEGIN
u_ecall:
        ecall
        TRAP_END
        CHECK_TRAP 10, CAUSE_USER_ECALL
        CHECK_TRAP_MODE 11, PRV_S
        CHECK_EPC 12, u_ecall
        CHECK_TVAL 13, 0
        /* sstatus at S handler entry: SPP = U, SPIE = 1 (old SIE), SIE = 0 */
        CHECK_TRAP_STATUS 14, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE, MSTATUS_SPIE
        /* the S handler's sret restored SIE = 1: look at mstatus from M
         * through a non-delegated trap */
        TRAP_BEGIN
        .word 0x00000000
        TRAP_END
        CHECK_TRAP_MODE 15, PRV_M
        CHECK_TRAP_STATUS 19, MSTATUS_SIE, MSTATUS_SIE
        RETURN_TO_M                       /* forwarded by the S handler */
        csrr a0, mcause
        CHECK_EQ 16, a0, CAUSE_SUPERVISOR_ECALL       /* the forwarding ecall */
        li t0, MSTATUS_SIE
        csrc mstatus, t0

        /* ---- ecall from S is not delegated: goes to M ---- */
        ENTER_MODE PRV_S
        TRAP_BEGIN
        ecall
        TRAP_END
        CHECK_TRAP 17, CAUSE_SUPERVISOR_ECALL
        CHECK_TRAP_MODE 18, PRV_M
        RETURN_TO_M

        /* ---- page faults: identity-map RAM, delegate load faults ---- */
        la t0, root_pt
        li t1, (0x80000000 >> 12 << 10) | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
        li t2, 0x200 * 4                  /* VPN1 0x200: 4 MiB megapage */
        add t2, t2, t0
        sw t1, 0(t2)
        srli t0, t0, 12
        li t1, SATP_MODE_SV32
        or t0, t0, t1
        csrw satp, t0
        sfence.vma
        li t0, 1 << CAUSE_LOAD_PAGE_FAULT
        csrw medeleg, t0

        ENTER_MODE PRV_S
        li a1, 0x40000000                 /* unmapped virtual address */
        li a0, 0x99
        TRAP_BEGIN
s_load:
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 20, CAUSE_LOAD_PAGE_FAULT
        CHECK_TRAP_MODE 21, PRV_S
        CHECK_EPC 22, s_load
        CHECK_TVAL 23, 0x40000000
        CHECK_TRAP_STATUS 24, MSTATUS_SPP, MSTATUS_SPP   /* from S */
        CHECK_EQ 25, a0, 0x99                             /* rd untouched */
        csrr a2, scause                   /* S sees its CSRs directly */
        CHECK_EQ 26, a2, CAUSE_LOAD_PAGE_FAULT
        csrr a2, stval
        CHECK_EQ 27, a2, 0x40000000

        /* store page fault: not delegated -> M */
        TRAP_BEGIN
        sw a0, 4(a1)
        TRAP_END
        CHECK_TRAP 28, CAUSE_STORE_PAGE_FAULT
        CHECK_TRAP_MODE 29, PRV_M
        CHECK_TVAL 30, 0x40000004
        RETURN_TO_M
        csrw satp, zero
        sfence.vma

        /* ---- illegal instruction delegated ---- */
        li t0, 1 << CAUSE_ILLEGAL_INSN
        csrw medeleg, t0
        /* from M: never delegated */
        TRAP_BEGIN
        .word 0xffffffff
        TRAP_END
        CHECK_TRAP 40, CAUSE_ILLEGAL_INSN
        CHECK_TRAP_MODE 41, PRV_M
        /* from S: to S */
        ENTER_MODE PRV_S
        TRAP_BEGIN
s_ill:
        csrr a0, mstatus
        TRAP_END
        CHECK_TRAP 42, CAUSE_ILLEGAL_INSN
        CHECK_TRAP_MODE 43, PRV_S
        CHECK_EPC 44, s_ill
        CHECK_TVAL_INSN 45
        RETURN_TO_M
        /* from U: to S */
        ENTER_MODE PRV_U
        TRAP_BEGIN
        .word 0x00000000
        TRAP_END
        CHECK_TRAP 46, CAUSE_ILLEGAL_INSN
        CHECK_TRAP_MODE 47, PRV_S
        CHECK_TRAP_STATUS 48, MSTATUS_SPP, 0
        RETURN_TO_M
        csrw medeleg, zero

        /* ---- with nothing delegated, U's ecall goes to M again ---- */
        ENTER_MODE PRV_U
        TRAP_BEGIN
        ecall
        TRAP_END
        CHECK_TRAP 50, CAUSE_USER_ECALL
        CHECK_TRAP_MODE 51, PRV_M
        RETURN_TO_M

        j pass
