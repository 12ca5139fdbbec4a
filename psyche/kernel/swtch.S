/*
 * swtch.S: switch kernel threads.
 *
 * void swtch(struct context *old, struct context *new)
 *
 * Saves the callee-saved registers of the running thread in *old, marks
 * old->saved (section 3.2: whoever resumes a thread must wait until its
 * state is completely saved), and continues the thread whose state is in
 * *new.  The caller-saved registers are already on the stack, by the C
 * calling convention.
 */
#define CTX_SAVED 56

        .cfi_sections .debug_frame      /* kernel.ld discards .eh_frame */

        .text
        .balign 4
        .globl swtch
swtch:
        sw ra, 0(a0)
        sw sp, 4(a0)
        sw s0, 8(a0)
        sw s1, 12(a0)
        sw s2, 16(a0)
        sw s3, 20(a0)
        sw s4, 24(a0)
        sw s5, 28(a0)
        sw s6, 32(a0)
        sw s7, 36(a0)
        sw s8, 40(a0)
        sw s9, 44(a0)
        sw s10, 48(a0)
        sw s11, 52(a0)
        fence rw, w
        li t0, 1
        sw t0, CTX_SAVED(a0)

        lw ra, 0(a1)
        lw sp, 4(a1)
        lw s0, 8(a1)
        lw s1, 12(a1)
        lw s2, 16(a1)
        lw s3, 20(a1)
        lw s4, 24(a1)
        lw s5, 28(a1)
        lw s6, 32(a1)
        lw s7, 36(a1)
        lw s8, 40(a1)
        lw s9, 44(a1)
        lw s10, 48(a1)
        lw s11, 52(a1)
        ret

/*
 * Where a new thread starts (its ctx.ra).  The outermost frame of every
 * thread: its CFI says it has no return address, so a debugger's backtrace
 * ends here, at "thread_entry", instead of at a made-up frame at address 0.
 * thread_start never returns (a thread that returns panics); the call only
 * leaves a return address inside this function for the unwinder to find.
 */
        .globl thread_entry
        .type thread_entry, @function
thread_entry:
        .cfi_startproc
        .cfi_undefined ra
        call thread_start
        unimp
        .cfi_endproc
        .size thread_entry, . - thread_entry
