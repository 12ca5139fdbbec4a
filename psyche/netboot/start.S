/*
 * start.S: where the machine starts the network boot loader (the king, M mode, at the ELF
 * entry): a stack, .bss cleared, then netboot() in C, which never returns.
 */
        .section .text.start, "ax", @progbits
        .globl _start
_start:
        la sp, __stack_top
        la t0, __bss_start
        la t1, __bss_end
1:      bgeu t0, t1, 2f
        sw zero, 0(t0)
        addi t0, t0, 4
        j 1b
2:      call netboot
3:      wfi
        j 3b
