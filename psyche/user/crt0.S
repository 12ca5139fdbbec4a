/*
 * crt0.S: where a Psyche user program starts.
 *
 * Started by the kernel's `run`, a program is entered at offset 0 in U mode
 * with a0 = argc, a1 = argv, a2 = the domain's descriptor, sp = the top of
 * the stack in the program's realm, and main's return value is the program's
 * exit status.
 *
 * Placed by the user-level loader instead, it is entered only by protected
 * calls of its operations, on a VP the loader made: the header below
 * (struct psy_prog_header, psyprog.h) tells the loader where the program's
 * handlers, VP descriptor and operations are (prog.c).  Its words are
 * offsets from the base, differences the linker resolves: no relocation.
 */
#include "uapi/psyche.h"

        .section .text.start, "ax"
        .globl _start
_start:
        j 1f
        .word 0x50595350                /* PSY_PROG_MAGIC */
        .word _psy_main - _start
        .word _psy_vp_init - _start
        .word _psy_call_in - _start
        .word _psy_vp - _start
        .word _psy_init_stack + 8192 - _start
        .word _psy_links - _start
        .word psy_operations - _start
1:      li fp, 0                        /* ends gdb's backtrace here */
        li ra, 0
        call main
        li a7, PSY_EXIT
        ecall
2:      j 2b
