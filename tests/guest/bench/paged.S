/*
 * paged.S: run the CPU benchmark in S mode with Sv32 translation on.
 *
 * test_main (M mode) maps the 4 MiB of RAM it runs from with one identity
 * megapage (RWX, A and D preset so no walk writes a PTE), turns on satp, lets
 * S mode read instret, enters S mode, calls bench_main, and returns its
 * result to crt0 from M mode. The program is position independent, so the
 * same image copied into any node's RAM runs there under its own mapping.
 */
#include "test.h"

        .text
        .globl test_main
test_main:
        addi sp, sp, -16
        sw ra, 0(sp)
        la t0, page_table
        auipc t3, 0
        li t1, 0xFFC00000
        and t3, t3, t1                  /* the megapage we run from */
        srli t1, t3, 2                  /* PPN << 10 */
        ori t1, t1, 0xCF                /* D A X W R V */
        srli t2, t3, 22 - 2             /* VPN[1] * 4 */
        add t2, t2, t0
        sw t1, 0(t2)
        srli t0, t0, 12
        li t1, 1 << 31
        or t0, t0, t1
        csrw satp, t0
        sfence.vma
        li t0, 7
        csrw mcounteren, t0
        ENTER_MODE PRV_S
        call bench_main
        mv s1, a0
        RETURN_TO_M
        mv a0, s1
        lw ra, 0(sp)
        addi sp, sp, 16
        ret

        .bss
        .balign 4096
page_table:
        .space 4096
