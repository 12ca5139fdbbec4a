/*
 * start.S: the M-mode start stub, and the S-mode entry into C.
 *
 * Every node enters _entry in M mode with translation off: the king at
 * power-on (the ELF entry point), every other node when the king rings it
 * with START_PC pointing at _entry in that node's own copy of the kernel,
 * and every node again at a restart.  So this code is position independent:
 * it finds its own copy with pc-relative addressing (lla), and touches no
 * absolute address except device registers and the king's restart record.
 *
 * It keeps M mode to a minimum: delegate every trap that S mode can take,
 * let S mode use the Sstc timer, save or restore the initialized data
 * (king only), clear .bss, build a boot page table that maps this node's
 * RAM at KERNEL_VBASE, and mret into S mode at s_entry, a virtual address.
 * vm.c then replaces the boot page table with the real ones.
 *
 * Registers through the stub: s0 node number, s1 physical base of this copy,
 * s2 1 if this is the king restarting.
 */
#include "memlayout.h"

#define MSTATUS_MPP_S   (1 << 11)
#define MIE_SEIE        (1 << 9)
#define CSR_MENVCFGH    0x31A
#define MENVCFGH_STCE   0x80000000
/* Exceptions S mode handles: all but ecall from S (9) and from M (11). */
#define MEDELEG_BITS    0xB1FF
/* Interrupts S mode handles: software, timer, external (S level). */
#define MIDELEG_BITS    0x222
#define PTE_LEAF_RWX    0xEF    /* V R W X G A D */
#define PTE_LEAF_RW     0xE7    /* V R W G A D */
#define SATP_SV32       0x80000000
#define ECALL_FROM_S    9
#define PMPCFG_NAPOT_RWX 0x1f           /* A = NAPOT, X, W, R */

        .cfi_sections .debug_frame      /* kernel.ld discards .eh_frame */

        .section .text.entry, "ax"
        .globl _entry
_entry:
        csrw mie, zero
        csrw satp, zero
        li t0, MSTATUS_MPP_S            /* mret goes to S mode, interrupts off */
        csrw mstatus, t0
        csrr s0, mhartid
        lla s1, _text_start             /* where this node's copy lives */
        lla t0, m_trap
        csrw mtvec, t0
        li t0, MEDELEG_BITS
        csrw medeleg, t0
        li t0, MIDELEG_BITS
        csrw mideleg, t0
        li t0, 7                        /* S mode may read cycle, time, instret */
        csrw mcounteren, t0
        li t0, MENVCFGH_STCE            /* S mode owns stimecmp (Sstc) */
        csrs CSR_MENVCFGH, t0
        /* PMP entry 0: NAPOT over all memory, RWX, unlocked.  With PMP entries implemented
         * and none matching, S and U mode may access nothing: open it all, as OpenSBI does. */
        li t0, -1
        csrw pmpaddr0, t0
        li t0, PMPCFG_NAPOT_RWX
        csrw pmpcfg0, t0
        li s2, 0
        bnez s0, clear_bss

        /* King: the first boot saves .data as loaded; a restart puts it back. */
        li t0, PERSIST_BASE
        lw t1, PERSIST_MAGIC_OFF(t0)
        li t2, PERSIST_MAGIC
        lla a0, _data_start
        lla a1, _data_end
        addi a2, t0, PERSIST_DATA_SAVE_OFF
        beq t1, t2, restore_data
save_data:
        bgeu a0, a1, 1f
        lw t3, 0(a0)
        sw t3, 0(a2)
        addi a0, a0, 4
        addi a2, a2, 4
        j save_data
1:      sw t2, PERSIST_MAGIC_OFF(t0)
        j clear_bss
restore_data:
        li s2, 1
        bgeu a0, a1, clear_bss
        lw t3, 0(a2)
        sw t3, 0(a0)
        addi a0, a0, 4
        addi a2, a2, 4
        j restore_data

clear_bss:
        lla a0, _bss_start
        lla a1, _bss_end
1:      bgeu a0, a1, 2f
        sw zero, 0(a0)
        addi a0, a0, 4
        j 1b
2:
        /* Boot page table: megapages only. */
        lla a0, boot_pt
        /* this node's RAM at KERNEL_VBASE, where the kernel is linked */
        srli t0, s1, 12
        slli t0, t0, 10
        ori t0, t0, PTE_LEAF_RWX
        li t1, (KERNEL_VBASE >> 22) * 4
        add t1, t1, a0
        sw t0, 0(t1)
        /* every node's RAM at its physical address (kernel/kernel window) */
        li t2, DOORBELL_PHYS
        lw t2, DB_NODE_COUNT(t2)
        li t3, NODE_RAM_BASE
        li t4, (NODE_RAM_BASE >> 22) * 4
        add t4, t4, a0
3:      beqz t2, 4f
        srli t0, t3, 12
        slli t0, t0, 10
        ori t0, t0, PTE_LEAF_RW
        sw t0, 0(t4)
        li t5, NODE_RAM_SIZE
        add t3, t3, t5
        addi t4, t4, 4
        addi t2, t2, -1
        j 3b
4:      /* the device window */
        li t1, (DEV_VBASE >> 22) * 4
        add t1, t1, a0
        li t0, ((CLINT_PHYS >> 12) << 10) | PTE_LEAF_RW
        sw t0, 0(t1)
        li t0, ((INTC_PHYS >> 12) << 10) | PTE_LEAF_RW
        sw t0, 4(t1)
        li t0, ((UART_PHYS >> 12) << 10) | PTE_LEAF_RW
        sw t0, 8(t1)

        /* Translation on (it applies from S mode), then S mode at s_entry's
         * virtual address: its offset in this copy plus KERNEL_VBASE. */
        srli t0, a0, 12
        li t1, SATP_SV32
        or t0, t0, t1
        csrw satp, t0
        sfence.vma zero, zero
        lla t0, s_entry
        sub t0, t0, s1
        li t1, KERNEL_VBASE
        add t0, t0, t1
        csrw mepc, t0
        mv a0, s0
        mv a1, s2
        mret

/*
 * M-mode trap handler.  Only two things reach M mode on purpose, ecalls
 * from S mode: SBI_PARK (wait here for a restart, touching no kernel
 * memory, since the king is about to overwrite it) and SBI_RESTART (the
 * king starting over).  Anything else means the stub itself is broken:
 * stop this node.
 */
        .balign 4
m_trap:
        csrr t0, mcause
        li t1, ECALL_FROM_S
        bne t0, t1, m_halt
        li t1, SBI_PARK
        beq a7, t1, m_park
        li t1, SBI_RESTART
        bne a7, t1, m_halt
        j _entry

m_halt:
        csrw mie, zero
1:      wfi
        j 1b

m_park:
        /* Wake only on doorbell rings: source 1 -> SEIP, never taken in M mode. */
        li t0, MIE_SEIE
        csrw mie, t0
        li t0, INTC_PHYS
        li t1, 1 << SRC_DOORBELL
        sw t1, INTC_ENABLE_S(t0)
        li t0, DOORBELL_PHYS
        li t1, -1
        sw t1, DB_PENDING_FROM + 0(t0)
        sw t1, DB_PENDING_FROM + 4(t0)
        sw t1, DB_PENDING_FROM + 8(t0)
        sw t1, DB_PENDING_FROM + 12(t0)
        /* tell the king this node is parked */
        li t2, PERSIST_BASE
        csrr t3, mhartid
        add t3, t3, t2
        li t4, 1
        sb t4, PERSIST_PARKED_OFF(t3)
1:      lw t4, PERSIST_STATE_OFF(t2)
        li t5, RESTART_RELEASED
        beq t4, t5, 2f
        wfi
        sw t1, DB_PENDING_FROM + 0(t0)
        sw t1, DB_PENDING_FROM + 4(t0)
        sw t1, DB_PENDING_FROM + 8(t0)
        sw t1, DB_PENDING_FROM + 12(t0)
        j 1b
2:      j _entry

/*
 * S mode, translation on, interrupts off.  Runs startup() on the boot stack
 * in this node's local memory.  A zero frame pointer ends gdb's backtraces.
 */
        .text
        .balign 4
        .globl s_entry
        .type s_entry, @function
s_entry:
        .cfi_startproc
        .cfi_undefined ra               /* the outermost frame of the boot thread */
        lla sp, boot_stack_top
        li s0, 0
        call startup
1:      wfi
        j 1b
        .cfi_endproc
        .size s_entry, . - s_entry

        .bss
        .balign 4096
        .globl boot_pt
boot_pt:
        .space 4096
        .balign 16
        .globl boot_stack, boot_stack_top
boot_stack:
        .space 16384
boot_stack_top:
