/*
 * sstc: the time CSR and the Sstc extension (stimecmp).
 *
 * SIMULATOR-ONLY: QEMU's spike machine provides no rdtime, so QEMU 7.2 makes time, stimecmp and stimecmph illegal there
 *
 * (It does pass on `qemu-system-riscv32 -machine virt -cpu rv32,c=false,...`,
 * which has rdtime and Sstc but no tohost: run it under gdb with
 * breakpoints on `pass` and `fail`.)
 *
 * Checks time/timeh are readable in M-mode, increase, and agree with the
 * CLINT's mtime; time is readable from S with mcounteren.TM and from U
 * with mcounteren.TM and scounteren.TM, illegal otherwise;
 * menvcfgh.STCE (bit 31 of CSR 0x31A) is writable; with STCE = 0, S-mode
 * access to stimecmp is illegal; with STCE = 1 and mcounteren.TM = 1,
 * S-mode writes stimecmp/stimecmph (0x14D/0x15D) = time + delta and takes
 * a supervisor timer interrupt (cause 0x80000005) in S-mode with
 * mideleg.STIP; mip.STIP follows stimecmp (set while stimecmp <= time,
 * cleared by writing a later value) and cannot be set by writing mip.
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

/* Read the 64-bit time CSR into hi:lo consistently. */
.macro READ_TIME hi, lo
1:      rdtimeh \hi
        rdtime \lo
        rdtimeh t6
        bne \hi, t6, 1b
.endm

        .text
        .globl test_main
test_main:
        li a7, 0
        csrw mie, zero
        csrw mideleg, zero
        csrw mcounteren, zero
        csrw scounteren, zero

        /* ==== time in M-mode ==== */
        li t0, CLINT_MTIME
        lw s0, 0(t0)                      /* mtime (low) first */
        TRAP_BEGIN
        READ_TIME s2, s1
        TRAP_END
        CHECK_NO_TRAP 1
        sub a0, s1, s0                    /* time - mtime: small, >= 0 */
        li a1, 100000
        sltu a0, a0, a1
        CHECK_EQ 2, a0, 1
        li t0, 100
3:      addi t0, t0, -1
        bnez t0, 3b
        rdtime a0
        sub a0, a0, s1
        CHECK_NE_REG 3, a0, zero          /* time advanced */
        CHECK_MASK 4, a0, 0x80000000, 0

        /* ==== time from S and U: gated by mcounteren/scounteren.TM ==== */
        ENTER_MODE PRV_S
        TRAP_BEGIN
        rdtime a0
        TRAP_END
        CHECK_TRAP 10, CAUSE_ILLEGAL_INSN
        RETURN_TO_M
        li t0, 0x2                        /* TM */
        csrw mcounteren, t0
        ENTER_MODE PRV_S
        TRAP_BEGIN
        rdtime a0
        rdtimeh a0
        TRAP_END
        CHECK_NO_TRAP 11
        RETURN_TO_M
        ENTER_MODE PRV_U
        TRAP_BEGIN
        rdtime a0
        TRAP_END
        CHECK_TRAP 12, CAUSE_ILLEGAL_INSN
        RETURN_TO_M
        li t0, 0x2
        csrw scounteren, t0
        ENTER_MODE PRV_U
        TRAP_BEGIN
        rdtime a0
        TRAP_END
        CHECK_NO_TRAP 13
        RETURN_TO_M

        /* ==== menvcfgh.STCE ==== */
        csrw CSR_MENVCFGH, zero
        csrr a0, CSR_MENVCFGH
        CHECK_MASK 20, a0, MENVCFGH_STCE, 0
        /* STCE = 0: stimecmp is illegal from S */
        ENTER_MODE PRV_S
        TRAP_BEGIN
        csrr a0, CSR_STIMECMP
        TRAP_END
        CHECK_TRAP 21, CAUSE_ILLEGAL_INSN
        CHECK_TVAL_INSN 22
        RETURN_TO_M
        li t0, MENVCFGH_STCE
        csrs CSR_MENVCFGH, t0
        csrr a0, CSR_MENVCFGH
        CHECK_MASK 23, a0, MENVCFGH_STCE, MENVCFGH_STCE
        /* STCE = 1 but mcounteren.TM = 0: still illegal from S */
        csrw mcounteren, zero
        ENTER_MODE PRV_S
        TRAP_BEGIN
        csrw CSR_STIMECMP, zero
        TRAP_END
        CHECK_TRAP 24, CAUSE_ILLEGAL_INSN
        RETURN_TO_M
        li t0, 0x2
        csrw mcounteren, t0

        /* stimecmp = max: STIP clear, and M cannot set it through mip */
        li t0, -1
        csrw CSR_STIMECMPH, t0
        csrw CSR_STIMECMP, t0
        csrr a0, CSR_STIMECMP
        CHECK_EQ 25, a0, 0xffffffff
        csrr a0, CSR_STIMECMPH
        CHECK_EQ 26, a0, 0xffffffff
        li t0, MIP_STIP
        csrs mip, t0
        csrr a0, mip
        CHECK_MASK 27, a0, MIP_STIP, 0

        /* ==== supervisor timer interrupt in S-mode ==== */
        CLEAR_TRAP_LOG
        li t0, MIP_STIP
        csrw mideleg, t0
        csrw mie, t0                      /* sie.STIE */
        li t0, MSTATUS_SIE
        csrs mstatus, t0
        ENTER_MODE PRV_S
        READ_TIME a1, a0                  /* S reads time (TM = 1) */
        addi a2, a0, 200
        sltu a3, a2, a0                   /* carry */
        add a3, a3, a1
        li t0, -1
        csrw CSR_STIMECMPH, t0            /* no spurious interrupt ... */
        csrw CSR_STIMECMP, a2             /* ... while updating */
        csrw CSR_STIMECMPH, a3
        WAIT_TRAPS 1
        CHECK_COUNT 30, 1
        CHECK_LOG 31, 0, CAUSE_STI
        CHECK_TRAP_MODE 32, PRV_S
        csrr a0, scause
        CHECK_EQ 33, a0, CAUSE_STI
        csrr a0, sip
        CHECK_MASK 34, a0, MIP_STIP, MIP_STIP   /* still pending */
        li t0, -1
        csrw CSR_STIMECMPH, t0
        csrw CSR_STIMECMP, t0
        csrr a0, sip
        CHECK_MASK 35, a0, MIP_STIP, 0          /* cleared by stimecmp */
        RETURN_TO_M

        /* stimecmp in the past: STIP at once, visible in mip from M */
        csrw CSR_STIMECMPH, zero
        csrw CSR_STIMECMP, zero
        csrr a0, mip
        CHECK_MASK 36, a0, MIP_STIP, MIP_STIP
        li t0, -1
        csrw CSR_STIMECMPH, t0
        csrw CSR_STIMECMP, t0
        csrr a0, mip
        CHECK_MASK 37, a0, MIP_STIP, 0

        li t0, MSTATUS_SIE
        csrc mstatus, t0
        csrw mie, zero
        csrw mideleg, zero
        csrw CSR_MENVCFGH, zero
        csrw mcounteren, zero
        csrw scounteren, zero
        j pass
