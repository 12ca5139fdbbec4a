/*
 * echo.S: the console line, end to end, interrupt driven.
 *
 * Prints a greeting naming the node count on the console, then sleeps in
 * WFI. Each byte the host sends raises the console UART's receive interrupt,
 * routed by the interrupt controller to MEIP; the handler echoes the byte in
 * upper case. A '!' makes the program report PASS through tohost.
 */
#include "test.h"

#define CONSOLE         0x10001000
#define UART_RBR        0
#define UART_IER        1
#define UART_LSR        5
#define INTC            0x0C000000
#define INTC_ENABLE_M   4
#define SRC_CONSOLE     3
#define DOORBELL        0x10003000

        .text
        .globl test_main
test_main:
        la a0, greeting
        call puts
        li t0, DOORBELL
        lw a0, 4(t0)                    /* node count, one digit or more */
        call putnum
        la a0, newline
        call puts

        la t0, echo_handler
        csrw mtvec, t0
        li t0, CONSOLE
        li t1, 1
        sb t1, UART_IER(t0)             /* receive interrupt on */
        li t0, INTC
        li t1, 1 << SRC_CONSOLE
        sw t1, INTC_ENABLE_M(t0)
        li t0, MIP_MEIP
        csrw mie, t0
        csrsi mstatus, MSTATUS_MIE
1:      wfi
        j 1b

echo_handler:
        li t0, CONSOLE
2:      lbu t1, UART_LSR(t0)
        andi t1, t1, 1
        beqz t1, 3f
        lbu a0, UART_RBR(t0)
        li t2, '!'
        beq a0, t2, pass
        li t2, 'a'
        blt a0, t2, 4f
        li t2, 'z'
        bgt a0, t2, 4f
        addi a0, a0, -32
4:      sb a0, UART_RBR(t0)
        j 2b
3:      mret

/* puts(a0): write a NUL-terminated string to the console. */
puts:
        li t0, CONSOLE
5:      lbu t1, 0(a0)
        beqz t1, 6f
        sb t1, UART_RBR(t0)
        addi a0, a0, 1
        j 5b
6:      ret

/* putnum(a0): write a0 in decimal (a0 < 1000). */
putnum:
        li t0, CONSOLE
        li t1, 100
        li t3, 0                        /* printed a digit yet? */
7:      divu t2, a0, t1
        remu a0, a0, t1
        bnez t2, 8f
        bnez t3, 8f
        li t4, 1
        bne t1, t4, 10f                 /* skip leading zeros, not the last */
8:      addi t2, t2, '0'
        sb t2, UART_RBR(t0)
        li t3, 1
10:     li t4, 10
        divu t1, t1, t4
        bnez t1, 7b
        ret

        .section .rodata
greeting:       .asciz "echo: hello from a machine of "
newline:        .asciz " nodes\n"
