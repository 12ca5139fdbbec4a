/*
 * sv32: Sv32 virtual memory.
 *
 * Builds a two-level page table in RAM:
 *   root[0x200]  4 MiB megapage, identity map of RAM 0x80000000 (RWX, A, D)
 *                -- all test code, data and handlers run through this one;
 *   root[0x100]  -> l2_pt, 4 KiB pages at VA 0x40000000 + i * 0x1000
 *                (see the VA_* constants below);
 *   root[0x300]  megapage VA 0xC0000000 -> PA 0x80000000 (RW, no X);
 *   root[0x301]  a misaligned megapage (PPN[0] != 0);
 *   root[0x140]  invalid (VA 0x50000000).
 * and checks, mostly from S-mode with satp.MODE = Sv32: satp read-back;
 * loads/stores through 4 KiB pages and the megapage reach the right
 * physical memory; load/store/fetch page faults (causes 13/15/12) with
 * mtval = the virtual address for an invalid leaf, an invalid root entry,
 * a V=0 PTE, a reserved W-without-R PTE, a pointer PTE at level 0 and a
 * misaligned megapage; stores to a read-only page and fetches from a
 * non-executable page fault; fetching from an executable page works;
 * loads from an execute-only page fault unless sstatus.MXR; S-mode
 * loads/stores to U pages fault unless sstatus.SUM, S-mode fetches from
 * U pages always fault; U-mode can use U pages and faults on non-U pages
 * (data and fetch); the hardware sets PTE.A on a load and PTE.D on a
 * store (like QEMU; the spec also allows a page fault instead, our
 * simulator does what QEMU does); sfence.vma makes a changed PTE take
 * effect; M-mode loads with mstatus.MPRV use the MPP mode's translation
 * and permissions; satp = 0 goes back to bare addressing.
 */
#include "test.h"

#define VA_BASE      0x40000000
#define VA_RW        (VA_BASE + 0x0000)   /* page_rw, RW */
#define VA_RO        (VA_BASE + 0x1000)   /* page_ro, R */
#define VA_X         (VA_BASE + 0x2000)   /* xpage code, X only */
#define VA_U         (VA_BASE + 0x3000)   /* page_u, RW + U */
#define VA_AD        (VA_BASE + 0x4000)   /* page_ad, RW, A = D = 0 */
#define VA_UNMAPPED  (VA_BASE + 0x5000)   /* PTE = 0 */
#define VA_WONLY     (VA_BASE + 0x6000)   /* W without R: reserved */
#define VA_NONLEAF   (VA_BASE + 0x7000)   /* pointer PTE at level 0 */
#define VA_UCODE     (VA_BASE + 0x8000)   /* upage code, RX + U */
#define VA_SWITCH    (VA_BASE + 0x9000)   /* page_rw, later page_alt */
#define VA_INVALID   (VA_BASE + 0xa000)   /* V = 0, RWX set */
#define VA_MEGA      0xc0000000           /* megapage -> 0x80000000 */
#define VA_MEGA_BAD  0xc0400000           /* misaligned megapage */
#define VA_NOROOT    0x50000000           /* root entry invalid */

/* offsets of the U-mode routines in upage (checked below) */
#define U_LOAD_OFF   0
#define U_DONE_OFF   4
#define U_STORE_OFF  16

#define PTE_LEAF_RWXAD (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)

/* l2_pt[idx] = PTE(physical page of sym) | flags. Clobbers t0, t1. */
.macro MAP_L2 idx, sym, flags
        la t0, \sym
        srli t0, t0, 12
        slli t0, t0, 10
        ori t0, t0, \flags
        la t1, l2_pt
        sw t0, (\idx * 4)(t1)
.endm

/* root_pt[vpn1] = pte (register). Clobbers t1, t2. */
.macro SET_ROOT vpn1, pte
        la t1, root_pt
        li t2, \vpn1 * 4
        add t1, t1, t2
        sw \pte, 0(t1)
.endm

/* Enter U-mode at the virtual address in register va; the U code ends
 * with a RETURN_TO_M-style ecall, which continues after this macro. */
.macro ENTER_U_AT va
        li t6, MSTATUS_MPP | MSTATUS_MPIE
        csrc mstatus, t6
        csrw mepc, \va
        la a6, 1f
        mret
1:      li a7, 0
.endm

        .bss
        .balign 4096
root_pt:  .space 4096
l2_pt:    .space 4096

        .data
        .balign 4096
page_rw:  .word 0x11111111
          .space 4096 - 8
          .word 0x1111fffc
page_ro:  .word 0x22222222
          .space 4096 - 4
page_u:   .word 0x33333333
          .space 4096 - 4
page_ad:  .word 0x44444444
          .space 4096 - 4
page_alt: .word 0x55555555
          .space 4096 - 4
mega_word: .word 0x66666666

        /* Code pages mapped at other virtual addresses. */
        .section .text_pages, "ax", @progbits
        .balign 4096
upage:
u_load:                                   /* U: a0 = *a1, back to M */
        lw a0, 0(a1)
u_done:
        li a7, ECALL_MAGIC
        ecall
u_store:                                  /* U: *a1 = a0, back to M */
        sw a0, 0(a1)
        j u_done
        .if (u_load - upage) != U_LOAD_OFF || (u_done - upage) != U_DONE_OFF || (u_store - upage) != U_STORE_OFF
        .error "fix the U_*_OFF constants"
        .endif
        .balign 4096
xpage:
xfunc:                                    /* S: return 42 */
        li a0, 42
        ret
        .balign 4096

        .text
        .globl test_main
test_main:
        li a7, 0

        /* ---- build the page tables (in M-mode, physical) ---- */
        la t0, l2_pt                      /* root[0x100] -> l2_pt */
        srli t0, t0, 12
        slli t0, t0, 10
        ori t0, t0, PTE_V
        SET_ROOT 0x100, t0
        li t0, (0x80000000 >> 2) | PTE_LEAF_RWXAD
        SET_ROOT 0x200, t0                /* identity megapage */
        li t0, (0x80000000 >> 2) | PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
        SET_ROOT 0x300, t0                /* VA 0xC0000000 megapage */
        li t0, (0x80001000 >> 2) | PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
        SET_ROOT 0x301, t0                /* misaligned megapage */

        MAP_L2 0,  page_rw, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
        MAP_L2 1,  page_ro, PTE_V | PTE_R | PTE_A
        MAP_L2 2,  xpage,   PTE_V | PTE_X | PTE_A
        MAP_L2 3,  page_u,  PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
        MAP_L2 4,  page_ad, PTE_V | PTE_R | PTE_W
        MAP_L2 6,  page_rw, PTE_V | PTE_W | PTE_A | PTE_D
        MAP_L2 7,  page_rw, PTE_V
        MAP_L2 8,  upage,   PTE_V | PTE_R | PTE_X | PTE_U | PTE_A
        MAP_L2 9,  page_rw, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
        MAP_L2 10, page_rw, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D

        la t0, root_pt
        srli t0, t0, 12
        li t1, SATP_MODE_SV32
        or s0, t0, t1                     /* s0 = satp value */
        csrw satp, s0
        sfence.vma
        csrr a0, satp
        CHECK_REG 1, a0, s0

        /* ==== S-mode through the tables ==== */
        ENTER_MODE PRV_S

        /* 4 KiB page, read and write */
        li s1, VA_RW
        lw a0, 0(s1)
        CHECK_EQ 2, a0, 0x11111111
        li t0, 0xffc
        add t0, t0, s1
        lw a0, 0(t0)
        CHECK_EQ 3, a0, 0x1111fffc
        li a1, 0xabcd1234
        sw a1, 4(s1)
        la t0, page_rw                    /* identity view: same memory */
        lw a0, 4(t0)
        CHECK_EQ 4, a0, 0xabcd1234

        /* megapage */
        la t0, mega_word
        li t1, VA_MEGA - 0x80000000
        add s2, t0, t1                    /* VA of mega_word */
        lw a0, 0(s2)
        CHECK_EQ 5, a0, 0x66666666
        li a1, 0x77777777
        sw a1, 0(s2)
        la t0, mega_word
        lw a0, 0(t0)
        CHECK_EQ 6, a0, 0x77777777

        /* ---- page faults: unmapped / invalid entries ---- */
        li a1, VA_UNMAPPED + 8
        li a0, 0x1357
        TRAP_BEGIN
pf_load:
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 10, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 11, VA_UNMAPPED + 8
        CHECK_EPC 12, pf_load
        CHECK_EQ 13, a0, 0x1357           /* rd not written */
        CHECK_TRAP_STATUS 14, MSTATUS_MPP, MSTATUS_MPP_S

        TRAP_BEGIN
        sw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 15, CAUSE_STORE_PAGE_FAULT
        CHECK_TVAL 16, VA_UNMAPPED + 8

        li a1, VA_UNMAPPED
        TRAP_BEGIN
        jalr ra, 0(a1)
        TRAP_END
        CHECK_TRAP 17, CAUSE_FETCH_PAGE_FAULT
        CHECK_TVAL 18, VA_UNMAPPED
        CHECK_MEM 19, trap_epc, VA_UNMAPPED

        li a1, VA_NOROOT + 0x123
        TRAP_BEGIN
        lbu a0, 0(a1)
        TRAP_END
        CHECK_TRAP 20, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 21, VA_NOROOT + 0x123

        li a1, VA_INVALID
        TRAP_BEGIN
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 22, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 23, VA_INVALID

        li a1, VA_WONLY + 4               /* W without R: reserved */
        TRAP_BEGIN
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 24, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 25, VA_WONLY + 4
        TRAP_BEGIN
        sw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 26, CAUSE_STORE_PAGE_FAULT

        li a1, VA_NONLEAF                 /* pointer at the last level */
        TRAP_BEGIN
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 27, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 28, VA_NONLEAF

        li a1, VA_MEGA_BAD + 0x40         /* misaligned superpage */
        TRAP_BEGIN
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 29, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 30, VA_MEGA_BAD + 0x40

        /* ---- permissions ---- */
        li a1, VA_RO
        lw a0, 0(a1)                      /* read-only: loads work */
        CHECK_EQ 31, a0, 0x22222222
        TRAP_BEGIN
        sw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 32, CAUSE_STORE_PAGE_FAULT
        CHECK_TVAL 33, VA_RO
        TRAP_BEGIN
        amoadd.w a2, a0, (a1)             /* AMO = store permission */
        TRAP_END
        CHECK_TRAP 34, CAUSE_STORE_PAGE_FAULT
        la t0, page_ro
        lw a0, 0(t0)
        CHECK_EQ 35, a0, 0x22222222       /* unchanged */

        li a1, VA_RW                      /* no X: fetch faults */
        TRAP_BEGIN
        jalr ra, 0(a1)
        TRAP_END
        CHECK_TRAP 36, CAUSE_FETCH_PAGE_FAULT
        CHECK_TVAL 37, VA_RW

        li a1, VA_MEGA                    /* megapage without X */
        TRAP_BEGIN
        jalr ra, 0x100(a1)
        TRAP_END
        CHECK_TRAP 38, CAUSE_FETCH_PAGE_FAULT
        CHECK_TVAL 39, VA_MEGA + 0x100

        li a1, VA_X                       /* execute-only page: fetch ok */
        li a0, 0
        jalr ra, 0(a1)
        CHECK_EQ 40, a0, 42

        TRAP_BEGIN                        /* ... but loads fault */
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 41, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 42, VA_X
        li t0, MSTATUS_MXR                /* MXR: loads from X pages ok */
        csrs sstatus, t0
        TRAP_BEGIN
        lw a0, 0(a1)
        TRAP_END
        CHECK_NO_TRAP 43
        la t0, xfunc
        lw a2, 0(t0)
        CHECK_REG 44, a0, a2              /* the instruction word */
        TRAP_BEGIN
        sw a0, 0(a1)                      /* MXR does not allow stores */
        TRAP_END
        CHECK_TRAP 45, CAUSE_STORE_PAGE_FAULT
        li t0, MSTATUS_MXR
        csrc sstatus, t0

        /* ---- U pages from S-mode: SUM ---- */
        li a1, VA_U
        TRAP_BEGIN
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 50, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 51, VA_U
        TRAP_BEGIN
        sw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 52, CAUSE_STORE_PAGE_FAULT
        li t0, MSTATUS_SUM
        csrs sstatus, t0
        TRAP_BEGIN
        lw a0, 0(a1)
        li a2, 0x33330000
        sw a2, 4(a1)
        lw a3, 4(a1)
        TRAP_END
        CHECK_NO_TRAP 53
        CHECK_EQ 54, a0, 0x33333333
        CHECK_EQ 55, a3, 0x33330000
        li a1, VA_UCODE                   /* S never executes U pages */
        TRAP_BEGIN
        jalr ra, 0(a1)
        TRAP_END
        CHECK_TRAP 56, CAUSE_FETCH_PAGE_FAULT
        CHECK_TVAL 57, VA_UCODE
        li t0, MSTATUS_SUM
        csrc sstatus, t0

        /* ---- hardware A/D update ---- */
        la s3, l2_pt + 4 * 4              /* the PTE of VA_AD */
        lw a0, 0(s3)
        CHECK_MASK 60, a0, PTE_A | PTE_D, 0
        li a1, VA_AD
        lw a0, 0(a1)
        CHECK_EQ 61, a0, 0x44444444
        lw a0, 0(s3)
        CHECK_MASK 62, a0, PTE_A | PTE_D, PTE_A       /* load: A only */
        li a2, 0x44440000
        sw a2, 0(a1)
        lw a0, 0(s3)
        CHECK_MASK 63, a0, PTE_A | PTE_D, PTE_A | PTE_D   /* store: D */
        la t0, page_ad
        lw a0, 0(t0)
        CHECK_EQ 64, a0, 0x44440000

        /* ---- sfence.vma makes a PTE change visible ---- */
        li s4, VA_SWITCH
        lw a0, 0(s4)
        CHECK_EQ 70, a0, 0x11111111       /* -> page_rw */
        la t0, page_alt                   /* remap to page_alt */
        srli t0, t0, 12
        slli t0, t0, 10
        ori t0, t0, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
        la t1, l2_pt + 9 * 4
        sw t0, 0(t1)
        sfence.vma
        lw a0, 0(s4)
        CHECK_EQ 71, a0, 0x55555555       /* -> page_alt */
        la t0, page_ro                    /* again, address-specific */
        srli t0, t0, 12
        slli t0, t0, 10
        ori t0, t0, PTE_V | PTE_R | PTE_A
        sw t0, 0(t1)
        sfence.vma s4, zero
        lw a0, 0(s4)
        CHECK_EQ 72, a0, 0x22222222       /* -> page_ro */
        sw zero, 0(t1)                    /* unmap it */
        sfence.vma s4, zero
        TRAP_BEGIN
        lw a0, 0(s4)
        TRAP_END
        CHECK_TRAP 73, CAUSE_LOAD_PAGE_FAULT

        RETURN_TO_M

        /* ==== U-mode ==== */
        /* U loads from a U page */
        li a1, VA_U
        li a0, 0
        li t0, VA_UCODE + U_LOAD_OFF
        ENTER_U_AT t0
        CHECK_EQ 80, a0, 0x33333333
        /* U stores to a U page */
        li a1, VA_U + 8
        li a0, 0x3333aaaa
        li t0, VA_UCODE + U_STORE_OFF
        ENTER_U_AT t0
        la t0, page_u
        lw a0, 8(t0)
        CHECK_EQ 81, a0, 0x3333aaaa
        /* U loads from a non-U page: page fault, resume at u_done */
        la t0, trap_cause
        li t1, NO_TRAP
        sw t1, 0(t0)
        la t0, trap_resume
        li t1, VA_UCODE + U_DONE_OFF
        sw t1, 0(t0)
        li a1, VA_RW
        li t0, VA_UCODE + U_LOAD_OFF
        ENTER_U_AT t0
        CHECK_TRAP 82, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 83, VA_RW
        CHECK_MEM 84, trap_epc, VA_UCODE + U_LOAD_OFF
        CHECK_TRAP_STATUS 85, MSTATUS_MPP, 0
        /* U fetches from a non-U page (the identity megapage) */
        la t0, trap_cause
        li t1, NO_TRAP
        sw t1, 0(t0)
        la t0, trap_resume
        li t1, VA_UCODE + U_DONE_OFF
        sw t1, 0(t0)
        la t0, u_in_s_page
        ENTER_U_AT t0
        CHECK_TRAP 86, CAUSE_FETCH_PAGE_FAULT
        CHECK_TVAL_LABEL 87, u_in_s_page
        CHECK_EPC 88, u_in_s_page

        /* ==== M-mode with MPRV ==== */
        li t0, MSTATUS_MPP
        csrc mstatus, t0
        li t0, MSTATUS_MPP_S | MSTATUS_MPRV
        csrs mstatus, t0                  /* loads/stores as S */
        li a1, VA_RW
        lw a0, 0(a1)
        li t0, MSTATUS_MPRV
        csrc mstatus, t0
        CHECK_EQ 90, a0, 0x11111111
        /* MPRV with MPP = S and a U page, no SUM: faults */
        li a1, VA_U
        li a0, 0
        TRAP_BEGIN
        li t0, MSTATUS_MPRV
        csrs mstatus, t0
        lw a0, 0(a1)
        /* TRAP_END by hand: the trap from M keeps MPRV = 1 and mret sets
         * MPP = U, so turn MPRV off before touching memory again. */
8:      li t0, MSTATUS_MPRV
        csrc mstatus, t0
        la t6, trap_resume
        sw zero, 0(t6)
        CHECK_TRAP 91, CAUSE_LOAD_PAGE_FAULT
        CHECK_TVAL 92, VA_U
        CHECK_TRAP_MODE 93, PRV_M
        /* MPRV with MPP = U and a U page: works */
        li t0, MSTATUS_MPP
        csrc mstatus, t0                  /* MPP = U */
        li t0, MSTATUS_MPRV
        csrs mstatus, t0
        lw a0, 0(a1)
        li t0, MSTATUS_MPRV
        csrc mstatus, t0
        CHECK_EQ 94, a0, 0x33333333

        /* ==== satp = 0: bare again ==== */
        csrw satp, zero
        sfence.vma
        ENTER_MODE PRV_S
        la t0, page_rw
        lw a0, 0(t0)
        CHECK_EQ 95, a0, 0x11111111
        li a1, VA_RW                      /* unmapped physical memory */
        TRAP_BEGIN
        lw a0, 0(a1)
        TRAP_END
        CHECK_TRAP 96, CAUSE_LOAD_ACCESS
        RETURN_TO_M

        j pass

        /* U-mode tries to run this (not a U page): fetch page fault */
u_in_s_page:
        j fail
