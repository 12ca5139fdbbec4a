/*
 * traps: synchronous exceptions taken in M-mode, mret, fences.
 *
 * Checks ecall from M (cause 11, mepc = the ecall, mtval = 0); ebreak
 * (cause 3, mepc = the ebreak, mtval = 0 -- that is what QEMU 7.2 writes;
 * the spec allows 0 or the pc); illegal instructions (all-zeros word,
 * all-ones word, an F-extension instruction, an unknown opcode, a
 * reserved funct3 of a known opcode) raise cause 2 with mtval = the
 * instruction bits; trap entry sets MPP = M, MPIE = old MIE, MIE = 0; mret
 * jumps to mepc and restores MIE from MPIE, sets MPIE = 1 and MPP = U;
 * fence/fence.i execute, and fence.i makes freshly stored instructions
 * visible (self-modifying code); access faults on unmapped physical memory
 * for loads (cause 5), stores (cause 7) and fetches (cause 1), each with
 * mtval = the address (for the fetch also mepc = the address), and the
 * faulting load does not write rd.
 */
#include "test.h"

        .text
        .globl test_main
test_main:
        /* ---- ecall from M ---- */
        li a7, 0                          /* not the RETURN_TO_M magic */
        TRAP_BEGIN
ecall_site:
        ecall
        TRAP_END
        CHECK_TRAP 1, CAUSE_MACHINE_ECALL
        CHECK_EPC 2, ecall_site
        CHECK_TVAL 3, 0
        CHECK_TRAP_MODE 4, PRV_M
        CHECK_TRAP_STATUS 5, MSTATUS_MPP, MSTATUS_MPP   /* came from M */

        /* ---- ebreak ---- */
        TRAP_BEGIN
ebreak_site:
        ebreak
        TRAP_END
        CHECK_TRAP 10, CAUSE_BREAKPOINT
        CHECK_EPC 11, ebreak_site
        CHECK_TVAL 12, 0                  /* QEMU 7.2 writes 0 */

        /* ---- illegal instructions ---- */
        TRAP_BEGIN
ill_zero:
        .word 0x00000000                  /* defined illegal */
        TRAP_END
        CHECK_TRAP 20, CAUSE_ILLEGAL_INSN
        CHECK_EPC 21, ill_zero
        CHECK_TVAL 22, 0x00000000

        TRAP_BEGIN
ill_ones:
        .word 0xffffffff                  /* defined illegal */
        TRAP_END
        CHECK_TRAP 23, CAUSE_ILLEGAL_INSN
        CHECK_EPC 24, ill_ones
        CHECK_TVAL 25, 0xffffffff

        TRAP_BEGIN
ill_fadd:
        .word 0x00007053                  /* fadd.s f0, f0, f0 (no F) */
        TRAP_END
        CHECK_TRAP 26, CAUSE_ILLEGAL_INSN
        CHECK_EPC 27, ill_fadd
        CHECK_TVAL 28, 0x00007053

        TRAP_BEGIN
        .word 0x00012007                  /* flw f0, 0(sp) (no F) */
        TRAP_END
        CHECK_TRAP 29, CAUSE_ILLEGAL_INSN
        CHECK_TVAL 30, 0x00012007

        TRAP_BEGIN
        .word 0x0000007f                  /* opcode 0x7f: >64-bit encoding */
        TRAP_END
        CHECK_TRAP 31, CAUSE_ILLEGAL_INSN
        CHECK_TVAL 32, 0x0000007f

        TRAP_BEGIN
        .word 0x00003003                  /* load with funct3 = 3 (ld) */
        TRAP_END
        CHECK_TRAP 33, CAUSE_ILLEGAL_INSN
        CHECK_TVAL 34, 0x00003003

        TRAP_BEGIN
        .word 0x0000202b                  /* custom-1 opcode */
        TRAP_END
        CHECK_TRAP 35, CAUSE_ILLEGAL_INSN
        CHECK_TVAL 36, 0x0000202b

        TRAP_BEGIN
        .word 0x02051513                  /* slli a0, a0, 32: shamt[5] set */
        TRAP_END
        CHECK_TRAP 37, CAUSE_ILLEGAL_INSN
        CHECK_TVAL 38, 0x02051513

        TRAP_BEGIN
        .word 0x00000001                  /* c.nop: 16-bit, but no C */
        TRAP_END
        CHECK_TRAP 39, CAUSE_ILLEGAL_INSN
        CHECK_TVAL 47, 0x00000001         /* same as 16 or 32 bits */

        /* ---- trap entry and mret update mstatus ---- */
        li t0, MSTATUS_MIE
        csrs mstatus, t0                  /* MIE = 1 (mie = 0: no irqs) */
        li a7, 0
        TRAP_BEGIN
        ecall
        TRAP_END
        /* at the handler: MIE = 0, MPIE = 1 (old MIE), MPP = M */
        CHECK_TRAP_STATUS 40, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP, MSTATUS_MPIE | MSTATUS_MPP
        /* after mret: MIE = 1 again */
        csrr a0, mstatus
        CHECK_MASK 41, a0, MSTATUS_MIE, MSTATUS_MIE
        csrc mstatus, t0

        /* mret by hand: MPP = M, MPIE = 1, MIE = 0 */
        li t0, MSTATUS_MIE
        csrc mstatus, t0
        li t0, MSTATUS_MPP | MSTATUS_MPIE
        csrs mstatus, t0
        la t0, after_mret
        csrw mepc, t0
        li a0, 0
        mret
        li a0, 1                          /* skipped */
after_mret:
        CHECK_EQ 42, a0, 0
        csrr a1, mstatus
        CHECK_MASK 43, a1, MSTATUS_MIE, MSTATUS_MIE     /* MIE = old MPIE */
        CHECK_MASK 44, a1, MSTATUS_MPIE, MSTATUS_MPIE   /* MPIE = 1 */
        CHECK_MASK 45, a1, MSTATUS_MPP, 0               /* MPP = U */
        li t0, MSTATUS_MIE
        csrc mstatus, t0

        /* mret with MPIE = 0 leaves MIE = 0 */
        li t0, MSTATUS_MPP
        csrs mstatus, t0
        li t0, MSTATUS_MPIE
        csrc mstatus, t0
        la t0, 1f
        csrw mepc, t0
        mret
1:      csrr a1, mstatus
        CHECK_MASK 46, a1, MSTATUS_MIE | MSTATUS_MPIE, MSTATUS_MPIE

        /* ---- fences ---- */
        fence
        fence rw, rw
        fence iorw, iorw
        fence r, w
        fence.i
        CHECK_EQ 50, zero, 0              /* they execute as no-ops */

        /* self-modifying code: write `addi a0, zero, 123; ret` to a
         * buffer, fence.i, call it; then patch it to 77 and call again. */
        la s0, code_buf
        li a1, 0x07b00513                 /* addi a0, zero, 123 */
        sw a1, 0(s0)
        li a1, 0x00008067                 /* ret (jalr x0, 0(ra)) */
        sw a1, 4(s0)
        fence.i
        li a0, 0
        jalr ra, 0(s0)
        CHECK_EQ 51, a0, 123
        li a1, 0x04d00513                 /* addi a0, zero, 77 */
        sw a1, 0(s0)
        fence.i
        li a0, 0
        jalr ra, 0(s0)
        CHECK_EQ 52, a0, 77

        /* ---- access faults on unmapped physical memory ---- */
        li a1, UNMAPPED_ADDR
        li a0, 0x3333
        TRAP_BEGIN
load_fault:
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 60, CAUSE_LOAD_ACCESS
        CHECK_EPC 61, load_fault
        CHECK_TVAL 62, UNMAPPED_ADDR
        CHECK_EQ 63, a0, 0x3333           /* rd not written */

        TRAP_BEGIN
        lbu a0, 0x7ff(a1)
        TRAP_END
        CHECK_TRAP 64, CAUSE_LOAD_ACCESS
        CHECK_TVAL 65, UNMAPPED_ADDR + 0x7ff

        TRAP_BEGIN
store_fault:
        sw a0, 8(a1)
        TRAP_END
        CHECK_TRAP 66, CAUSE_STORE_ACCESS
        CHECK_EPC 67, store_fault
        CHECK_TVAL 68, UNMAPPED_ADDR + 8

        TRAP_BEGIN
        sb a0, 3(a1)
        TRAP_END
        CHECK_TRAP 69, CAUSE_STORE_ACCESS
        CHECK_TVAL 70, UNMAPPED_ADDR + 3

        li ra, 0
        TRAP_BEGIN
        jalr ra, 0(a1)                    /* fetch from unmapped memory */
        TRAP_END
        CHECK_TRAP 71, CAUSE_FETCH_ACCESS
        CHECK_TVAL 72, UNMAPPED_ADDR
        CHECK_MEM 73, trap_epc, UNMAPPED_ADDR
        li a2, 0x7000ff00                 /* another unmapped address */
        TRAP_BEGIN
        jalr x0, 0(a2)
        TRAP_END
        CHECK_TRAP 74, CAUSE_FETCH_ACCESS
        CHECK_TVAL 75, 0x7000ff00

        j pass

        .data
        .balign 16
code_buf:
        .word 0, 0, 0, 0
