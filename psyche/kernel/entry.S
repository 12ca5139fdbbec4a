/*
 * entry.S: the S-mode trap path.
 *
 * trap_entry saves the full state of the interrupted code (x1..x31 and the
 * trap CSRs) in a struct trapframe on the kernel stack, calls trap(), and
 * restores everything.  trap() may switch threads on the way out (a clock
 * preemption); the frame stays on the preempted thread's stack until that
 * thread runs again and returns through here.
 *
 * sscratch is 0 while the node runs kernel code.  On the way back to user
 * mode, trap_return leaves the top of the frame (the thread's kernel stack,
 * user.c) in sscratch; the swap below then lands on that stack when user
 * code traps, and the frame holds the user's sp.
 */
#define TF_SIZE     144
#define TF_SEPC     124
#define TF_SSTATUS  128
#define TF_SCAUSE   132
#define TF_STVAL    136
#define SSTATUS_SPP 0x100

        .cfi_sections .debug_frame      /* kernel.ld discards .eh_frame */

/* DWARF number of CSR sepc (4096 + 0x141): the "return address" of a trap. */
#define DWARF_SEPC  4417

        .text
        .balign 4
        .globl trap_entry
        .type trap_entry, @function
trap_entry:
        .cfi_startproc
        .cfi_signal_frame
        .cfi_return_column DWARF_SEPC
        .cfi_undefined DWARF_SEPC       /* until the frame is built: no unwinding */
        csrrw sp, sscratch, sp
        bnez sp, 1f                     /* from user: sp is the kernel stack */
        csrrw sp, sscratch, sp          /* from kernel: take sp back, sscratch 0 */
1:      addi sp, sp, -TF_SIZE
        sw x1, 0(sp)
        sw x3, 8(sp)
        sw x4, 12(sp)
        sw x5, 16(sp)
        sw x6, 20(sp)
        sw x7, 24(sp)
        sw x8, 28(sp)
        sw x9, 32(sp)
        sw x10, 36(sp)
        sw x11, 40(sp)
        sw x12, 44(sp)
        sw x13, 48(sp)
        sw x14, 52(sp)
        sw x15, 56(sp)
        sw x16, 60(sp)
        sw x17, 64(sp)
        sw x18, 68(sp)
        sw x19, 72(sp)
        sw x20, 76(sp)
        sw x21, 80(sp)
        sw x22, 84(sp)
        sw x23, 88(sp)
        sw x24, 92(sp)
        sw x25, 96(sp)
        sw x26, 100(sp)
        sw x27, 104(sp)
        sw x28, 108(sp)
        sw x29, 112(sp)
        sw x30, 116(sp)
        sw x31, 120(sp)
        csrrw t0, sscratch, zero        /* user sp, or 0 from kernel */
        bnez t0, 2f
        addi t0, sp, TF_SIZE            /* the kernel sp before the trap */
2:      sw t0, 4(sp)
        csrr t0, sepc
        sw t0, TF_SEPC(sp)
        csrr t0, sstatus
        sw t0, TF_SSTATUS(sp)
        csrr t0, scause
        sw t0, TF_SCAUSE(sp)
        csrr t0, stval
        sw t0, TF_STVAL(sp)
        /*
         * For debuggers: from here on the interrupted code's registers are in
         * the frame and its pc is the saved sepc, so gdb's backtrace from
         * trap() continues into the code that took the trap.  (The CFA is
         * the top of the frame: the interrupted sp for traps from the
         * kernel.)
         */
        .cfi_def_cfa sp, TF_SIZE
        .cfi_offset DWARF_SEPC, TF_SEPC - TF_SIZE
        .cfi_offset x1, 0 - TF_SIZE
        .cfi_offset x3, 8 - TF_SIZE
        .cfi_offset x4, 12 - TF_SIZE
        .cfi_offset x5, 16 - TF_SIZE
        .cfi_offset x6, 20 - TF_SIZE
        .cfi_offset x7, 24 - TF_SIZE
        .cfi_offset x8, 28 - TF_SIZE
        .cfi_offset x9, 32 - TF_SIZE
        .cfi_offset x10, 36 - TF_SIZE
        .cfi_offset x11, 40 - TF_SIZE
        .cfi_offset x12, 44 - TF_SIZE
        .cfi_offset x13, 48 - TF_SIZE
        .cfi_offset x14, 52 - TF_SIZE
        .cfi_offset x15, 56 - TF_SIZE
        .cfi_offset x16, 60 - TF_SIZE
        .cfi_offset x17, 64 - TF_SIZE
        .cfi_offset x18, 68 - TF_SIZE
        .cfi_offset x19, 72 - TF_SIZE
        .cfi_offset x20, 76 - TF_SIZE
        .cfi_offset x21, 80 - TF_SIZE
        .cfi_offset x22, 84 - TF_SIZE
        .cfi_offset x23, 88 - TF_SIZE
        .cfi_offset x24, 92 - TF_SIZE
        .cfi_offset x25, 96 - TF_SIZE
        .cfi_offset x26, 100 - TF_SIZE
        .cfi_offset x27, 104 - TF_SIZE
        .cfi_offset x28, 108 - TF_SIZE
        .cfi_offset x29, 112 - TF_SIZE
        .cfi_offset x30, 116 - TF_SIZE
        .cfi_offset x31, 120 - TF_SIZE
        mv a0, sp
        call trap

        .globl trap_return
trap_return:
        lw t0, TF_SEPC(sp)
        csrw sepc, t0
        lw t0, TF_SSTATUS(sp)
        csrw sstatus, t0                /* SPP and SPIE of the interrupted code */
        andi t0, t0, SSTATUS_SPP
        bnez t0, 3f
        addi t0, sp, TF_SIZE            /* back to user: next trap's stack */
        csrw sscratch, t0
3:      lw x1, 0(sp)
        lw x3, 8(sp)
        lw x4, 12(sp)
        lw x5, 16(sp)
        lw x6, 20(sp)
        lw x7, 24(sp)
        lw x8, 28(sp)
        lw x9, 32(sp)
        lw x10, 36(sp)
        lw x11, 40(sp)
        lw x12, 44(sp)
        lw x13, 48(sp)
        lw x14, 52(sp)
        lw x15, 56(sp)
        lw x16, 60(sp)
        lw x17, 64(sp)
        lw x18, 68(sp)
        lw x19, 72(sp)
        lw x20, 76(sp)
        lw x21, 80(sp)
        lw x22, 84(sp)
        lw x23, 88(sp)
        lw x24, 92(sp)
        lw x25, 96(sp)
        lw x26, 100(sp)
        lw x27, 104(sp)
        lw x28, 108(sp)
        lw x29, 112(sp)
        lw x30, 116(sp)
        lw x31, 120(sp)
        lw x2, 4(sp)
        sret
        .cfi_endproc
        .size trap_entry, . - trap_entry
