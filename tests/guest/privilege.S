/*
 * privilege: M/S/U modes and the privileged instructions.
 *
 * Checks that mret with MPP = S/U enters S/U-mode; ecall from S (cause 9)
 * and U (cause 8) reach M with mepc = the ecall and MPP = the old mode;
 * in S-mode, M-mode CSRs (mstatus, mscratch, mtvec, mhartid) and mret are
 * illegal (cause 2, mtval = instruction bits) while S CSRs work and
 * sstatus hides M-only mstatus fields; sret from S to S and to U restores
 * SIE from SPIE, sets SPIE = 1 and SPP = U; in U-mode, S/M CSRs, sret,
 * mret, wfi and sfence.vma are illegal; mstatus.TSR makes sret illegal in
 * S, mstatus.TW makes wfi illegal in S, mstatus.TVM makes satp access and
 * sfence.vma illegal in S; mcounteren/scounteren gate cycle/instret
 * reads from S and U.
 */
#include "test.h"

/* Check n..n+1: the armed instruction(s) trapped with illegal instruction
 * and mtval = the faulting instruction's bits. */
.macro CHECK_ILLEGAL n
        CHECK_TRAP \n, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN (\n + 1)
.endm

        .text
        .globl test_main
test_main:
        li a7, 0
        csrw mcounteren, zero
        csrw scounteren, zero

        /* ==== S-mode ==== */
        ENTER_MODE PRV_S

        /* ecall from S -> cause 9 in M, MPP = S */
        TRAP_BEGIN
s_ecall:
        ecall
        TRAP_END
        CHECK_TRAP 1, CAUSE_SUPERVISOR_ECALL
        CHECK_EPC 2, s_ecall
        CHECK_TRAP_MODE 3, PRV_M
        CHECK_TRAP_STATUS 4, MSTATUS_MPP, MSTATUS_MPP_S
        CHECK_TVAL 5, 0

        /* M-mode CSRs are illegal in S */
        TRAP_BEGIN
        csrr a0, mstatus
        TRAP_END
        CHECK_ILLEGAL 10
        TRAP_BEGIN
        csrw mscratch, a0
        TRAP_END
        CHECK_ILLEGAL 12
        TRAP_BEGIN
        csrr a0, mtvec
        TRAP_END
        CHECK_ILLEGAL 14
        TRAP_BEGIN
        csrr a0, mhartid
        TRAP_END
        CHECK_ILLEGAL 16
        TRAP_BEGIN
        csrr a0, medeleg
        TRAP_END
        CHECK_ILLEGAL 18

        /* mret is illegal in S */
        TRAP_BEGIN
s_mret:
        mret
        TRAP_END
        CHECK_TRAP 20, CAUSE_ILLEGAL_INSN
        CHECK_TVAL 21, 0x30200073
        CHECK_EPC 22, s_mret

        /* S CSRs work; sstatus hides M fields (mret set MPIE = 1) */
        TRAP_BEGIN
        li a1, 0x5a5a
        csrrw a2, sscratch, a1
        csrr a0, sscratch
        csrw sscratch, a2
        csrr a3, sstatus
        csrr a4, stvec
        csrr a5, sie
        TRAP_END
        CHECK_NO_TRAP 25
        CHECK_EQ 26, a0, 0x5a5a
        CHECK_MASK 27, a3, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE, 0

        /* sret from S to S: SIE <- SPIE, SPIE <- 1, SPP <- U */
        li t0, MSTATUS_SIE
        csrc sstatus, t0
        li t0, MSTATUS_SPIE | MSTATUS_SPP
        csrs sstatus, t0
        la t0, 1f
        csrw sepc, t0
        sret
        j fail
1:      csrr a0, sstatus
        CHECK_MASK 30, a0, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP, MSTATUS_SIE | MSTATUS_SPIE
        li t0, MSTATUS_SIE
        csrc sstatus, t0

        /* ==== sret from S to U ==== */
        li t0, MSTATUS_SPP
        csrc sstatus, t0
        la t0, u_mode
        csrw sepc, t0
        sret
        j fail
u_mode:
        /* ecall from U -> cause 8 in M, MPP = U */
        TRAP_BEGIN
u_ecall:
        ecall
        TRAP_END
        CHECK_TRAP 40, CAUSE_USER_ECALL
        CHECK_EPC 41, u_ecall
        CHECK_TRAP_STATUS 42, MSTATUS_MPP, 0

        /* privileged things are illegal in U */
        TRAP_BEGIN
        csrr a0, sstatus
        TRAP_END
        CHECK_ILLEGAL 43
        TRAP_BEGIN
        csrw sscratch, a0
        TRAP_END
        CHECK_ILLEGAL 45
        TRAP_BEGIN
        csrr a0, mstatus
        TRAP_END
        CHECK_ILLEGAL 47
        TRAP_BEGIN
        sret
        TRAP_END
        CHECK_ILLEGAL 49
        TRAP_BEGIN
        mret
        TRAP_END
        CHECK_ILLEGAL 51
        TRAP_BEGIN
        wfi
        TRAP_END
        CHECK_ILLEGAL 53
        TRAP_BEGIN
        sfence.vma
        TRAP_END
        CHECK_ILLEGAL 55
        /* counters: mcounteren = scounteren = 0 after reset */
        TRAP_BEGIN
        rdcycle a0
        TRAP_END
        CHECK_ILLEGAL 57

        RETURN_TO_M
        /* back in M: M CSRs work again */
        csrr a0, mhartid
        CHECK_EQ 59, a0, 0

        /* ==== mstatus.TSR: sret illegal in S ==== */
        li t0, MSTATUS_TSR
        csrs mstatus, t0
        ENTER_MODE PRV_S
        TRAP_BEGIN
        sret
        TRAP_END
        CHECK_ILLEGAL 60
        RETURN_TO_M
        li t0, MSTATUS_TSR
        csrc mstatus, t0

        /* ==== mstatus.TW: wfi illegal in S ==== */
        li t0, MSTATUS_TW
        csrs mstatus, t0
        ENTER_MODE PRV_S
        TRAP_BEGIN
        wfi
        TRAP_END
        CHECK_ILLEGAL 62
        RETURN_TO_M
        li t0, MSTATUS_TW
        csrc mstatus, t0

        /* ==== mstatus.TVM: satp and sfence.vma illegal in S ==== */
        li t0, MSTATUS_TVM
        csrs mstatus, t0
        ENTER_MODE PRV_S
        TRAP_BEGIN
        csrr a0, satp
        TRAP_END
        CHECK_ILLEGAL 64
        TRAP_BEGIN
        sfence.vma
        TRAP_END
        CHECK_ILLEGAL 66
        RETURN_TO_M
        li t0, MSTATUS_TVM
        csrc mstatus, t0
        /* without TVM both work in S */
        ENTER_MODE PRV_S
        TRAP_BEGIN
        csrr a0, satp
        sfence.vma
        TRAP_END
        CHECK_NO_TRAP 68
        RETURN_TO_M

        /* ==== counter enables ==== */
        csrw mcounteren, zero
        csrw scounteren, zero
        ENTER_MODE PRV_S
        TRAP_BEGIN
        rdcycle a0
        TRAP_END
        CHECK_ILLEGAL 70                  /* mcounteren.CY = 0 */
        TRAP_BEGIN
        rdinstret a0
        TRAP_END
        CHECK_ILLEGAL 72                  /* mcounteren.IR = 0 */
        RETURN_TO_M
        li t0, 0x5                        /* CY | IR */
        csrw mcounteren, t0
        ENTER_MODE PRV_S
        TRAP_BEGIN
        rdcycle a0
        rdinstret a0
        TRAP_END
        CHECK_NO_TRAP 74                  /* S may read them now */
        RETURN_TO_M
        ENTER_MODE PRV_U
        TRAP_BEGIN
        rdinstret a0
        TRAP_END
        CHECK_ILLEGAL 75                  /* U also needs scounteren */
        RETURN_TO_M
        li t0, 0x4                        /* IR only */
        csrw scounteren, t0
        ENTER_MODE PRV_U
        TRAP_BEGIN
        rdinstret a0
        TRAP_END
        CHECK_NO_TRAP 77
        TRAP_BEGIN
        rdcycle a0
        TRAP_END
        CHECK_ILLEGAL 78                  /* scounteren.CY = 0 */
        RETURN_TO_M
        csrw mcounteren, zero
        csrw scounteren, zero

        j pass
