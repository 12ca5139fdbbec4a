/*
 * crt0.S: where a Psyche user program starts.
 *
 * The kernel enters here in U mode with a0 = argc, a1 = argv, a2 = the
 * domain's descriptor, sp = the top of the stack in the program's realm.
 * main's return value is the program's exit status.
 */
#include "uapi/psyche.h"

        .section .text.start, "ax"
        .globl _start
_start:
        li fp, 0                        /* ends gdb's backtrace here */
        li ra, 0
        call main
        li a7, PSY_EXIT
        ecall
1:      j 1b
