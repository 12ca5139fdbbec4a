/*
 * Shared definitions and macros for the bare-metal guest tests (.S files).
 *
 * Conventions
 * -----------
 * - Every test file defines `test_main`, called by common/crt0.S in M-mode
 *   with sp set, bss cleared, mtvec/stvec pointing at the common trap
 *   handlers and PMP opened for S/U. Returning from test_main = pass.
 * - gp (x3) holds the number of the current check. A failing check jumps to
 *   `fail`, which writes (gp << 1) | 1 to tohost. An unexpected trap also
 *   fails with the current gp (the trap's cause/epc/tval are stored in
 *   unexpected_cause/unexpected_epc/unexpected_tval for a debugger).
 * - t6 (x31) and t5 (x30) are scratch registers of the check macros.
 * - Numeric local labels 8: and 9: are reserved for the macros below; test
 *   code must not use them between TRAP_BEGIN and TRAP_END.
 *
 * Expected traps
 * --------------
 *      TRAP_BEGIN             # arm: the next trap resumes at TRAP_END
 *      lw a0, 0(a1)           # instruction(s) that should trap
 *      TRAP_END
 *      CHECK_TRAP 12, CAUSE_LOAD_ACCESS
 *
 * The handler (M or S, whichever the trap goes to) records mcause/scause,
 * mepc/sepc, mtval/stval, mstatus/sstatus and the handling mode into
 * trap_cause/trap_epc/trap_tval/trap_status/trap_mode, then resumes at the
 * TRAP_END label in the mode the trap came from. If no trap happens,
 * trap_cause keeps the sentinel NO_TRAP, so CHECK_TRAP fails.
 *
 * Interrupts are always accepted: the handler appends the cause to
 * trap_log[], bumps trap_count and clears the interrupt's enable bit in mie
 * (M handler) or sie (S handler) so that it does not fire again; it then
 * returns to the interrupted instruction.
 *
 * Changing privilege
 * ------------------
 *      ENTER_MODE PRV_S       # from M: continue at the next line in S-mode
 *      ...
 *      RETURN_TO_M            # from any mode: continue in M-mode
 * RETURN_TO_M is an ecall with a7 = ECALL_MAGIC and a6 = continuation; the
 * M handler (or the S handler, which forwards it with its own ecall) returns
 * to a6 in M-mode. It clobbers a6 and a7.
 */
#ifndef GUEST_TEST_H
#define GUEST_TEST_H

/* ---- privilege levels ---- */
#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

/* ---- mstatus / sstatus bits ---- */
#define MSTATUS_SIE   0x00000002
#define MSTATUS_MIE   0x00000008
#define MSTATUS_SPIE  0x00000020
#define MSTATUS_MPIE  0x00000080
#define MSTATUS_SPP   0x00000100
#define MSTATUS_MPP   0x00001800
#define MSTATUS_MPP_S 0x00000800
#define MSTATUS_MPRV  0x00020000
#define MSTATUS_SUM   0x00040000
#define MSTATUS_MXR   0x00080000
#define MSTATUS_TVM   0x00100000
#define MSTATUS_TW    0x00200000
#define MSTATUS_TSR   0x00400000

/* ---- interrupt bits (mip/mie/mideleg), interrupt numbers ---- */
#define IRQ_S_SOFT  1
#define IRQ_M_SOFT  3
#define IRQ_S_TIMER 5
#define IRQ_M_TIMER 7
#define IRQ_S_EXT   9
#define IRQ_M_EXT   11
#define MIP_SSIP (1 << IRQ_S_SOFT)
#define MIP_MSIP (1 << IRQ_M_SOFT)
#define MIP_STIP (1 << IRQ_S_TIMER)
#define MIP_MTIP (1 << IRQ_M_TIMER)
#define MIP_SEIP (1 << IRQ_S_EXT)
#define MIP_MEIP (1 << IRQ_M_EXT)

/* ---- mcause values ---- */
#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS     1
#define CAUSE_ILLEGAL_INSN     2
#define CAUSE_BREAKPOINT       3
#define CAUSE_MISALIGNED_LOAD  4
#define CAUSE_LOAD_ACCESS      5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS     7
#define CAUSE_USER_ECALL       8
#define CAUSE_SUPERVISOR_ECALL 9
#define CAUSE_MACHINE_ECALL    11
#define CAUSE_FETCH_PAGE_FAULT 12
#define CAUSE_LOAD_PAGE_FAULT  13
#define CAUSE_STORE_PAGE_FAULT 15
#define CAUSE_INTERRUPT        0x80000000
#define CAUSE_SSI (CAUSE_INTERRUPT | IRQ_S_SOFT)
#define CAUSE_MSI (CAUSE_INTERRUPT | IRQ_M_SOFT)
#define CAUSE_STI (CAUSE_INTERRUPT | IRQ_S_TIMER)
#define CAUSE_MTI (CAUSE_INTERRUPT | IRQ_M_TIMER)
#define CAUSE_SEI (CAUSE_INTERRUPT | IRQ_S_EXT)

/* ---- Sv32 ---- */
#define SATP_MODE_SV32 0x80000000
#define PTE_V 0x001
#define PTE_R 0x002
#define PTE_W 0x004
#define PTE_X 0x008
#define PTE_U 0x010
#define PTE_G 0x020
#define PTE_A 0x040
#define PTE_D 0x080

/* ---- CSRs the assembler may not know by name ---- */
#define CSR_MENVCFG   0x30A
#define CSR_MENVCFGH  0x31A
#define CSR_STIMECMP  0x14D
#define CSR_STIMECMPH 0x15D
#define MENVCFGH_STCE 0x80000000

/* ---- CLINT (SiFive layout) ---- */
#define CLINT_BASE      0x02000000
#define CLINT_MSIP      (CLINT_BASE + 0x0000)
#define CLINT_MTIMECMP  (CLINT_BASE + 0x4000)
#define CLINT_MTIMECMPH (CLINT_BASE + 0x4004)
#define CLINT_MTIME     (CLINT_BASE + 0xBFF8)
#define CLINT_MTIMEH    (CLINT_BASE + 0xBFFC)

/* A physical address that is unmapped both on our machine and on QEMU's
 * spike machine: any access raises an access fault. */
#define UNMAPPED_ADDR 0x40000000

/* a7 value that turns an ecall into "return to M-mode at a6". */
#define ECALL_MAGIC 0x4d5a4d5a

/* trap_cause value meaning "no trap was taken". */
#define NO_TRAP 0xdeadbeef

#ifdef __ASSEMBLER__

/* ------------------------------------------------------------------ */
/* Basic checks. Each takes the check number n (becomes gp).           */
/* ------------------------------------------------------------------ */

/* Start check n. */
.macro TEST n
        li gp, \n
.endm

/* Check n: register reg == immediate/constant val. */
.macro CHECK_EQ n, reg, val
        li gp, \n
        li t6, \val
        beq \reg, t6, 9f
        j fail
9:
.endm

/* Check n: register a == register b. */
.macro CHECK_REG n, a, b
        li gp, \n
        beq \a, \b, 9f
        j fail
9:
.endm

/* Check n: register a != register b. */
.macro CHECK_NE_REG n, a, b
        li gp, \n
        bne \a, \b, 9f
        j fail
9:
.endm

/* Check n: (reg & mask) == val. */
.macro CHECK_MASK n, reg, mask, val
        li gp, \n
        li t6, \mask
        and t6, \reg, t6
        li t5, \val
        beq t6, t5, 9f
        j fail
9:
.endm

/* Check n: the word at symbol/address sym == val. */
.macro CHECK_MEM n, sym, val
        li gp, \n
        la t6, \sym
        lw t6, 0(t6)
        li t5, \val
        beq t6, t5, 9f
        j fail
9:
.endm

/* Check n: the word at symbol sym == register reg. */
.macro CHECK_MEM_REG n, sym, reg
        li gp, \n
        la t6, \sym
        lw t6, 0(t6)
        beq t6, \reg, 9f
        j fail
9:
.endm

/* Check n: the word at symbol sym == address of label lab. */
.macro CHECK_MEM_LABEL n, sym, lab
        li gp, \n
        la t6, \sym
        lw t6, 0(t6)
        la t5, \lab
        beq t6, t5, 9f
        j fail
9:
.endm

/* Register-register ALU check: op a0, a1, a2 with a1 = v1, a2 = v2. */
.macro TEST_RR n, op, result, v1, v2
        li gp, \n
        li a1, \v1
        li a2, \v2
        \op a0, a1, a2
        li t6, \result
        beq a0, t6, 9f
        j fail
9:
.endm

/* Register-immediate ALU check: op a0, a1, imm with a1 = v1. */
.macro TEST_IMM n, op, result, v1, imm
        li gp, \n
        li a1, \v1
        \op a0, a1, \imm
        li t6, \result
        beq a0, t6, 9f
        j fail
9:
.endm

/* ------------------------------------------------------------------ */
/* Expected traps                                                      */
/* ------------------------------------------------------------------ */

/* Arm the trap handler: the next synchronous trap resumes at TRAP_END.
 * Clears the trap record so that CHECK_TRAP can tell whether it fired. */
.macro TRAP_BEGIN
        la t6, trap_cause
        li t5, NO_TRAP
        sw t5, 0(t6)
        la t5, 8f
        la t6, trap_resume
        sw t5, 0(t6)
.endm

/* Resume point; disarms the handler (in case nothing trapped). */
.macro TRAP_END
8:
        la t6, trap_resume
        sw zero, 0(t6)
.endm

/* Check n: the armed trap happened with this cause. */
.macro CHECK_TRAP n, cause
        CHECK_MEM \n, trap_cause, \cause
.endm

/* Check n: no trap happened since TRAP_BEGIN. */
.macro CHECK_NO_TRAP n
        CHECK_MEM \n, trap_cause, NO_TRAP
.endm

/* Check n: recorded epc == address of label lab. */
.macro CHECK_EPC n, lab
        CHECK_MEM_LABEL \n, trap_epc, \lab
.endm

/* Check n: recorded tval == constant val. */
.macro CHECK_TVAL n, val
        CHECK_MEM \n, trap_tval, \val
.endm

/* Check n: recorded tval == address of label lab. */
.macro CHECK_TVAL_LABEL n, lab
        CHECK_MEM_LABEL \n, trap_tval, \lab
.endm

/* Check n: recorded tval == register reg. */
.macro CHECK_TVAL_REG n, reg
        CHECK_MEM_REG \n, trap_tval, \reg
.endm

/* Check n: the trap was handled in mode (PRV_M or PRV_S). */
.macro CHECK_TRAP_MODE n, mode
        CHECK_MEM \n, trap_mode, \mode
.endm

/* Check n: (recorded mstatus/sstatus at handler entry & mask) == val. */
.macro CHECK_TRAP_STATUS n, mask, val
        li gp, \n
        la t6, trap_status
        lw t6, 0(t6)
        li t5, \mask
        and t6, t6, t5
        li t5, \val
        beq t6, t5, 9f
        j fail
9:
.endm

/* Check n: recorded tval == the instruction word at the recorded epc
 * (illegal-instruction traps report the faulting instruction's bits). */
.macro CHECK_TVAL_INSN n
        li gp, \n
        la t6, trap_epc
        lw t6, 0(t6)
        lw t6, 0(t6)
        la t5, trap_tval
        lw t5, 0(t5)
        beq t6, t5, 9f
        j fail
9:
.endm

/* ------------------------------------------------------------------ */
/* Privilege changes                                                   */
/* ------------------------------------------------------------------ */

/* From M-mode: continue at the next instruction in mode `mode` (via mret).
 * Sets mstatus.MPIE=0 so that mret leaves mstatus.MIE=0. Clobbers t6. */
.macro ENTER_MODE mode
        li t6, MSTATUS_MPP | MSTATUS_MPIE
        csrc mstatus, t6
        li t6, (\mode) << 11
        csrs mstatus, t6
        la t6, 9f
        csrw mepc, t6
        mret
9:
.endm

/* From any mode: continue at the next instruction in M-mode. */
.macro RETURN_TO_M
        la a6, 9f
        li a7, ECALL_MAGIC
        ecall
9:
        li a7, 0
.endm

/* ------------------------------------------------------------------ */
/* Misc                                                                */
/* ------------------------------------------------------------------ */

/* Clear the interrupt log (trap_count = 0). Clobbers t6. */
.macro CLEAR_TRAP_LOG
        la t6, trap_count
        sw zero, 0(t6)
.endm

/* Check n: trap_log[i] == cause. */
.macro CHECK_LOG n, i, cause
        CHECK_MEM \n, trap_log + 4 * (\i), \cause
.endm

/* Check n: trap_count == count. */
.macro CHECK_COUNT n, count
        CHECK_MEM \n, trap_count, \count
.endm

/* Store a 32-bit constant to an absolute address. Clobbers t5, t6. */
.macro STORE_ABS addr, val
        li t6, \addr
        li t5, \val
        sw t5, 0(t6)
.endm

/* Set mtimecmp to "never" (all ones): clears MTIP. Clobbers t5, t6. */
.macro MTIMECMP_NEVER
        li t6, CLINT_MTIMECMP
        li t5, -1
        sw t5, 4(t6)
        sw t5, 0(t6)
.endm

/* mtimecmp = mtime + delta (0 < delta < 2048). Clobbers t2-t6. */
.macro MTIMECMP_IN delta
        li t6, CLINT_MTIMECMP
        li t5, -1
        sw t5, 4(t6)            /* hi = max first: no spurious interrupt */
        li t4, CLINT_MTIME
1:      lw t5, 4(t4)            /* read mtime hi/lo/hi consistently */
        lw t3, 0(t4)
        lw t2, 4(t4)
        bne t5, t2, 1b
        addi t3, t3, \delta
        sltiu t2, t3, \delta    /* carry into hi */
        add t5, t5, t2
        sw t3, 0(t6)
        sw t5, 4(t6)
.endm

#endif /* __ASSEMBLER__ */
#endif /* GUEST_TEST_H */
