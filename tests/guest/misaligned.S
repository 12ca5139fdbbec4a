/*
 * misaligned: misaligned loads and stores are performed (the machine's
 * default, as on QEMU), within a word, across words and across pages, and
 * an access that crosses into a page it may not touch faults before any
 * byte moves, with mtval = the first byte of the part that faults: the
 * access's own address when its first page faults, the start of the
 * second page when that one does (privileged spec: "the portion of the
 * access that caused the fault").
 *
 * Pages are checked one by one: through Sv32 (a page fault, causes 13/15,
 * and two pages mapped to physical pages that are not neighbours) and
 * through PMP in S mode with translation off (an access fault, causes 5/7).
 * misaligned_trap.S checks the machine option that makes them trap.
 */
#include "test.h"

#define VA_BASE 0x40000000      /* l2_pt: page 0 -> pg_x, 1 invalid, 2 -> pg_y, 3 -> pg_x */
#define PTE_RWAD (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
#define PMP_R     0x01
#define PMP_W     0x02
#define PMP_X     0x04
#define PMP_NAPOT 0x18

/* Check n, n+1: load `op` at data + off gives val. */
.macro LOAD_OK n, op, off, val
        la a0, data
        TRAP_BEGIN
        \op a1, \off(a0)
        TRAP_END
        CHECK_NO_TRAP \n
        CHECK_EQ (\n + 1), a1, \val
.endm

/* l2_pt[idx] = PTE(physical page of sym) | PTE_RWAD. Clobbers t0, t1. */
.macro MAP_L2 idx, sym
        la t0, \sym
        srli t0, t0, 12
        slli t0, t0, 10
        ori t0, t0, PTE_RWAD
        la t1, l2_pt
        sw t0, (\idx * 4)(t1)
.endm

        .data
        .balign 64
data:   .word 0x33221100, 0x77665544, 0xbbaa9988, 0xffeeddcc
store_area: .word 0, 0, 0, 0

        .bss
        .balign 4096
root_pt: .space 4096
l2_pt:   .space 4096
pg_x:    .space 4096
pg_y:    .space 4096
pg_z:    .space 4096

        .text
        .globl test_main
test_main:
        /* ---- loads within and across words (M mode) ---- */
        LOAD_OK 1, lw, 1, 0x44332211
        LOAD_OK 3, lw, 2, 0x55443322
        LOAD_OK 5, lw, 3, 0x66554433
        LOAD_OK 7, lw, 7, 0xaa998877
        LOAD_OK 9, lh, 1, 0x2211
        LOAD_OK 11, lh, 3, 0x4433
        LOAD_OK 13, lh, 13, 0xffffeedd                    /* sign-extended */
        LOAD_OK 15, lhu, 11, 0xccbb
        LOAD_OK 17, lh, 11, 0xffffccbb

        /* ---- stores within and across words ---- */
        la a0, store_area
        li a1, 0xa1b2c3d4
        sw a1, 1(a0)
        CHECK_MEM 20, store_area, 0xb2c3d400
        CHECK_MEM 21, store_area + 4, 0x000000a1
        li a1, 0x1234
        sh a1, 7(a0)
        CHECK_MEM 22, store_area + 4, 0x340000a1
        CHECK_MEM 23, store_area + 8, 0x00000012
        sw zero, 0(a0)
        li a1, -1
        sw a1, 3(a0)
        CHECK_MEM 24, store_area, 0xff000000
        CHECK_MEM 25, store_area + 4, 0x34ffffff   /* byte 7 stays */

        /* ---- across a page boundary, physically contiguous (M mode) ---- */
        la a0, pg_y
        li a1, 0x87654321
        sw a1, -2(a0)                           /* pg_x end, pg_y start */
        lw a2, -2(a0)
        CHECK_REG 30, a1, a2
        lhu a2, -1(a0)
        CHECK_EQ 31, a2, 0x6543
        lw a2, 0(a0)
        CHECK_EQ 32, a2, 0x8765

        /* ---- Sv32: pages 0 -> pg_x, 1 invalid, 2 -> pg_y, 3 -> pg_x ---- */
        la t0, l2_pt
        srli t0, t0, 12
        slli t0, t0, 10
        ori t0, t0, PTE_V
        la t1, root_pt + 0x100 * 4
        sw t0, 0(t1)                            /* VA 0x40000000 -> l2_pt */
        li t0, (0x80000000 >> 2) | PTE_RWAD | PTE_X
        la t1, root_pt + 0x200 * 4
        sw t0, 0(t1)                            /* identity megapage for the code */
        MAP_L2 0, pg_x
        MAP_L2 2, pg_y
        MAP_L2 3, pg_x
        la t0, root_pt
        srli t0, t0, 12
        li t1, SATP_MODE_SV32
        or t0, t0, t1
        csrw satp, t0
        sfence.vma

        la a0, pg_y + 4096                             /* pg_y's last bytes, pg_x's first */
        li t0, 0x00ddccbb
        sw t0, -4(a0)                        /* pg_y[0xffc..0xfff] = bb cc dd 00 */
        la a0, pg_x
        li t0, 0x11223344
        sw t0, 0(a0)                            /* pg_x[0..3] = 44 33 22 11 */
        ENTER_MODE PRV_S
        li s0, VA_BASE + 0x2ffe                 /* page 2 end, page 3 start */
        TRAP_BEGIN
        lw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_NO_TRAP 40
        CHECK_EQ 41, a1, 0x334400dd
        ENTER_MODE PRV_S
        li s0, VA_BASE + 0x2fff
        li a1, 0xa0b0c0d0
        TRAP_BEGIN
        sw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_NO_TRAP 42
        la a0, pg_y + 4096
        lw a2, -4(a0)
        CHECK_EQ 43, a2, 0xd0ddccbb
        la a0, pg_x
        lw a2, 0(a0)
        CHECK_EQ 44, a2, 0x11a0b0c0

        /* the second page is invalid: page fault, mtval = its start, nothing stored */
        ENTER_MODE PRV_S
        li s0, VA_BASE + 0x0ffd
        li a1, 0x5555
        TRAP_BEGIN
        lw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 50, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 51, VA_BASE + 0x1000
        CHECK_EQ 52, a1, 0x5555
        la a0, pg_x + 4096
        li t0, 0x01020304
        sw t0, -4(a0)
        ENTER_MODE PRV_S
        li s0, VA_BASE + 0x0ffe
        li a1, -1
        TRAP_BEGIN
        sw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 53, CAUSE_STORE_PAGE_FAULT
        CHECK_TVAL 54, VA_BASE + 0x1000
        la a0, pg_x + 4096
        lw a2, -4(a0)
        CHECK_EQ 55, a2, 0x01020304             /* the first page's bytes unchanged */
        /* the first page is invalid: mtval = the access's address */
        ENTER_MODE PRV_S
        li s0, VA_BASE + 0x1ffe
        TRAP_BEGIN
        lh a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 56, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 57, VA_BASE + 0x1ffe
        csrw satp, zero
        sfence.vma

        /* ---- PMP, S mode, bare: pg_z refuses everything (mtval: misaligned_pmp.S) ---- */
        la t0, pg_z
        srli t0, t0, 2
        ori t0, t0, 0x1ff
        csrw pmpaddr0, t0
        li t0, -1
        csrw pmpaddr1, t0
        li t0, ((PMP_NAPOT | PMP_R | PMP_W | PMP_X) << 8) | PMP_NAPOT
        csrw pmpcfg0, t0
        la s0, pg_z
        addi s0, s0, -2
        ENTER_MODE PRV_S
        TRAP_BEGIN
        lw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 60, CAUSE_LOAD_ACCESS
        la a0, pg_y + 4096
        li t0, 0x0a0b0c0d
        sw t0, -4(a0)
        ENTER_MODE PRV_S
        TRAP_BEGIN
        sw zero, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 62, CAUSE_STORE_ACCESS
        la a0, pg_y + 4096
        lw a2, -4(a0)
        CHECK_EQ 64, a2, 0x0a0b0c0d
        /* starting in pg_z: mtval = the address */
        li t0, 4096
        add s0, s0, t0                          /* pg_z end - 2: into the page above */
        ENTER_MODE PRV_S
        TRAP_BEGIN
        lw a1, 0(s0)
        TRAP_END
        RETURN_TO_M
        CHECK_TRAP 65, CAUSE_LOAD_ACCESS
        CHECK_TVAL_REG 66, s0

        j pass
