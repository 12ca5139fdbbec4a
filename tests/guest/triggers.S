/*
 * triggers: the Sdtrig trigger module as software finds and drives it
 * (RISC-V debug spec 1.0, chapter 5): two mcontrol (type 2) triggers,
 * found through tselect/tinfo/tdata1, matching execute, load and store
 * addresses in the modes their m/s/u bits enable, with action 0: a
 * breakpoint exception (cause 3) taken before the instruction, whose
 * mepc is the instruction and which changes no register or memory.
 *
 * mtval (the address) is checked in triggers_tval.S: QEMU 7.2 leaves it 0.
 */
#include "test.h"

#define CSR_TSELECT 0x7a0
#define CSR_TDATA1  0x7a1
#define CSR_TDATA2  0x7a2
#define CSR_TINFO   0x7a4
#define MC_TYPE2    0x20000000
#define MC_M        0x40
#define MC_S        0x10
#define MC_U        0x08
#define MC_EXEC     0x04
#define MC_STORE    0x02
#define MC_LOAD     0x01
#define MC_BITS     (MC_M | MC_S | MC_U | MC_EXEC | MC_STORE | MC_LOAD)

/* Arm trigger `sel` on address `addr` (a register) with mcontrol bits `bits`. */
.macro ARM sel, addr, bits
        li t0, \sel
        csrw CSR_TSELECT, t0
        csrw CSR_TDATA2, \addr
        li t0, MC_TYPE2 | (\bits)
        csrw CSR_TDATA1, t0
.endm

/* Disarm trigger `sel`: type 2 with no mode or access bit (QEMU 7.2 ignores a write of 0). */
.macro DISARM sel
        li t0, \sel
        csrw CSR_TSELECT, t0
        li t0, MC_TYPE2
        csrw CSR_TDATA1, t0
.endm

        .data
        .balign 16
watched: .word 0x11111111, 0x22222222, 0x33333333, 0x44444444

        .text
        .globl test_main
test_main:
        /* ---- probing: triggers 0 and 1 exist and are mcontrol ---- */
        csrw CSR_TSELECT, zero
        csrr a0, CSR_TSELECT
        CHECK_EQ 1, a0, 0
        csrr a0, CSR_TINFO
        CHECK_MASK 2, a0, 1 << 2, 1 << 2        /* type 2 supported */
        csrr a0, CSR_TDATA1
        CHECK_MASK 3, a0, 0xf0000000, MC_TYPE2
        li t0, 1
        csrw CSR_TSELECT, t0
        csrr a0, CSR_TSELECT
        CHECK_EQ 4, a0, 1
        csrr a0, CSR_TINFO
        CHECK_MASK 5, a0, 1 << 2, 1 << 2
        csrr a0, CSR_TDATA1
        CHECK_MASK 6, a0, 0xf0000000, MC_TYPE2
        /* the registers of the two triggers are separate */
        la a1, watched
        csrw CSR_TDATA2, a1
        csrw CSR_TSELECT, zero
        csrw CSR_TDATA2, zero
        li t0, 1
        csrw CSR_TSELECT, t0
        csrr a0, CSR_TDATA2
        CHECK_REG 7, a0, a1
        /* the mode and access bits read back as written */
        li t0, MC_TYPE2 | MC_M | MC_U | MC_LOAD
        csrw CSR_TDATA1, t0
        csrr a0, CSR_TDATA1
        CHECK_MASK 8, a0, 0xf0000000 | MC_BITS, MC_TYPE2 | MC_M | MC_U | MC_LOAD
        DISARM 1

        /* ---- execute trigger, M mode ---- */
        la a1, exec_target
        ARM 0, a1, MC_M | MC_EXEC
        li a2, 0
        TRAP_BEGIN
        addi a2, a2, 1
exec_target:
        addi a2, a2, 2                          /* not executed */
        TRAP_END
        CHECK_TRAP 10, CAUSE_BREAKPOINT
        CHECK_EPC 11, exec_target
        CHECK_EQ 12, a2, 1
        CHECK_TRAP_MODE 13, PRV_M
        DISARM 0
        /* disarmed: runs */
        li a2, 0
        jal exec_target_again
        CHECK_EQ 14, a2, 2

        /* ---- execute trigger for S only: M runs through, S traps ---- */
        la a1, exec_target_again
        ARM 0, a1, MC_S | MC_EXEC
        li a2, 0
        jal exec_target_again
        CHECK_EQ 15, a2, 2
        ENTER_MODE PRV_S
        li a2, 0
        TRAP_BEGIN
        jal exec_target_again
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 16, CAUSE_BREAKPOINT
        CHECK_EPC 17, exec_target_again
        CHECK_EQ 18, a2, 0
        /* and U mode does not match an S-only trigger */
        ENTER_MODE PRV_U
        li a2, 0
        jal exec_target_again
        RETURN_TO_M
        CHECK_EQ 19, a2, 2
        DISARM 0

        /* ---- load trigger (trigger 0) and store trigger (trigger 1) ---- */
        la a0, watched
        ARM 0, a0, MC_M | MC_LOAD
        addi a1, a0, 4
        ARM 1, a1, MC_M | MC_STORE
        li a3, 0x5555
        TRAP_BEGIN
load_hit:
        lw a3, 0(a0)
        TRAP_END
        CHECK_TRAP 20, CAUSE_BREAKPOINT
        CHECK_EPC 21, load_hit
        CHECK_EQ 22, a3, 0x5555                 /* not loaded */
        TRAP_BEGIN
        lw a3, 8(a0)                            /* another word */
        lw a3, 4(a0)                            /* a store trigger's word */
        sw a3, 0(a0)                            /* a load trigger's word */
        TRAP_END
        CHECK_NO_TRAP 23
        li a3, 0x77
        TRAP_BEGIN
store_hit:
        sw a3, 4(a0)
        TRAP_END
        CHECK_TRAP 25, CAUSE_BREAKPOINT
        CHECK_EPC 26, store_hit
        CHECK_MEM 27, watched + 4, 0x22222222   /* not stored */
        /* a byte access to the watched address matches too */
        TRAP_BEGIN
        lbu a3, 0(a0)
        TRAP_END
        CHECK_TRAP 28, CAUSE_BREAKPOINT
        TRAP_BEGIN
        sb a3, 4(a0)
        TRAP_END
        CHECK_TRAP 29, CAUSE_BREAKPOINT
        /* an M-only load trigger does not match S-mode loads */
        ENTER_MODE PRV_S
        TRAP_BEGIN
        lw a3, 0(a0)
        TRAP_END
        RETURN_TO_M
        CHECK_NO_TRAP 30
        CHECK_EQ 31, a3, 0x22222222
        DISARM 0
        DISARM 1
        /* disarmed: the store goes through */
        li a3, 0x99
        sw a3, 4(a0)
        CHECK_MEM 32, watched + 4, 0x99
        CHECK_MEM 33, watched, 0x22222222       /* the store at load_hit + 2 went through */

        /* ---- a load and store trigger in U mode ---- */
        la a0, watched
        ARM 0, a0, MC_U | MC_LOAD | MC_STORE
        ENTER_MODE PRV_U
        TRAP_BEGIN
u_store:
        sw zero, 0(a0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 40, CAUSE_BREAKPOINT
        CHECK_EPC 41, u_store
        CHECK_MEM 42, watched, 0x22222222
        DISARM 0

        j pass

        /* Adds 2 to a2 and returns. */
        .balign 4
exec_target_again:
        addi a2, a2, 2
        ret
