/*
 * rv32i_loadstore: RV32I loads and stores (naturally aligned).
 *
 * Checks lb/lh/lw/lbu/lhu with sign and zero extension, little-endian
 * byte order, sb/sh/sw writing only their bytes (and only the low bits of
 * rs2), positive/negative/extreme (+2047/-2048) offsets, a load into x0
 * being discarded, a load with rd == rs1, and store-to-load forwarding of
 * neighbouring bytes. Misaligned accesses are checked in misaligned.S
 * (simulator only: QEMU 7.2 performs misaligned loads/stores in
 * "hardware" instead of trapping).
 */
#include "test.h"

        .data
        .balign 16
word_data:
        .word 0x12345678
sign_bytes:
        .byte 0x80, 0x7f, 0xff, 0x01
sign_halves:
        .half 0x8001, 0x7fff
more_halves:
        .half 0xffff, 0x0001
scratch:
        .word 0, 0, 0, 0

        .bss
        .balign 4096
big_area:
        .space 8192

        .text
        .globl test_main
test_main:
        la s0, word_data

        /* ---- lw / byte order ---- */
        lw a0, 0(s0)
        CHECK_EQ 1, a0, 0x12345678
        lbu a0, 0(s0)                    /* little endian: lowest byte first */
        CHECK_EQ 2, a0, 0x78
        lbu a0, 1(s0)
        CHECK_EQ 3, a0, 0x56
        lbu a0, 2(s0)
        CHECK_EQ 4, a0, 0x34
        lbu a0, 3(s0)
        CHECK_EQ 5, a0, 0x12
        lhu a0, 0(s0)
        CHECK_EQ 6, a0, 0x5678
        lhu a0, 2(s0)
        CHECK_EQ 7, a0, 0x1234

        /* ---- lb / lbu sign and zero extension ---- */
        la s1, sign_bytes
        lb a0, 0(s1)
        CHECK_EQ 10, a0, 0xffffff80
        lb a0, 1(s1)
        CHECK_EQ 11, a0, 0x7f
        lb a0, 2(s1)
        CHECK_EQ 12, a0, 0xffffffff
        lb a0, 3(s1)
        CHECK_EQ 13, a0, 0x01
        lbu a0, 0(s1)
        CHECK_EQ 14, a0, 0x80
        lbu a0, 2(s1)
        CHECK_EQ 15, a0, 0xff

        /* ---- lh / lhu ---- */
        la s1, sign_halves
        lh a0, 0(s1)
        CHECK_EQ 20, a0, 0xffff8001
        lh a0, 2(s1)
        CHECK_EQ 21, a0, 0x7fff
        lhu a0, 0(s1)
        CHECK_EQ 22, a0, 0x8001
        lhu a0, 2(s1)
        CHECK_EQ 23, a0, 0x7fff
        la s1, more_halves
        lh a0, 0(s1)
        CHECK_EQ 24, a0, 0xffffffff
        lhu a0, 0(s1)
        CHECK_EQ 25, a0, 0xffff
        lw a0, 0(s1)                     /* halves combine little-endian */
        CHECK_EQ 26, a0, 0x0001ffff

        /* ---- offsets ---- */
        addi s1, s0, 4
        lw a0, -4(s1)                    /* negative offset */
        CHECK_EQ 30, a0, 0x12345678
        lb a0, -1(s1)
        CHECK_EQ 31, a0, 0x12
        la s1, big_area + 2048
        li a1, 0xcafef00d
        sw a1, 2044(s1)                  /* near the maximum offset */
        lw a0, 2044(s1)
        CHECK_EQ 32, a0, 0xcafef00d
        li a1, 0x0badc0de
        sw a1, -2048(s1)                 /* minimum offset */
        la a2, big_area
        lw a0, 0(a2)
        CHECK_EQ 33, a0, 0x0badc0de
        li a1, 0x5a
        sb a1, 2047(s1)                  /* maximum offset */
        la a2, big_area + 2048 + 2047
        lbu a0, 0(a2)
        CHECK_EQ 34, a0, 0x5a

        /* ---- stores ---- */
        la s1, scratch
        li a1, -1
        sw a1, 0(s1)
        sw a1, 4(s1)
        sw zero, 0(s1)
        lw a0, 0(s1)
        CHECK_EQ 40, a0, 0
        lw a0, 4(s1)                     /* neighbour untouched */
        CHECK_EQ 41, a0, 0xffffffff
        li a1, 0x123456ab
        sb a1, 1(s1)                     /* only the low byte is stored */
        lw a0, 0(s1)
        CHECK_EQ 42, a0, 0x0000ab00
        li a1, 0xfedcbeef
        sh a1, 2(s1)                     /* only the low half */
        lw a0, 0(s1)
        CHECK_EQ 43, a0, 0xbeefab00
        li a1, 0x77
        sb a1, 0(s1)
        lw a0, 0(s1)
        CHECK_EQ 44, a0, 0xbeefab77
        li a1, 0x00001111
        sh a1, 0(s1)
        lw a0, 0(s1)
        CHECK_EQ 45, a0, 0xbeef1111
        lb a0, 3(s1)
        CHECK_EQ 46, a0, 0xffffffbe
        lh a0, 2(s1)
        CHECK_EQ 47, a0, 0xffffbeef
        li a1, 0x80
        sb a1, 7(s1)                     /* top byte of the neighbour */
        lw a0, 4(s1)
        CHECK_EQ 48, a0, 0x80ffffff

        /* ---- x0 and rd == rs1 ---- */
        lw x0, 0(s0)                     /* discarded */
        CHECK_EQ 50, x0, 0
        la a0, word_data
        lw a0, 0(a0)                     /* rd == rs1 */
        CHECK_EQ 51, a0, 0x12345678
        la a0, scratch
        sw a0, 8(a0)                     /* store the base register itself */
        lw a1, 8(a0)
        CHECK_REG 52, a1, a0

        /* ---- a simple memory copy loop ---- */
        la a0, big_area
        la a1, big_area + 4096
        li a2, 0
1:      sw a2, 0(a0)                     /* fill 1024 words with i * 3 */
        addi a0, a0, 4
        addi a2, a2, 3
        bne a0, a1, 1b
        la a0, big_area
        li a3, 0
        li a4, 0
2:      lw a2, 0(a0)                     /* sum them */
        add a3, a3, a2
        addi a0, a0, 4
        addi a4, a4, 1
        bne a0, a1, 2b
        CHECK_EQ 60, a4, 1024
        /* sum of 3*i for i < 1024 = 3 * 1023 * 1024 / 2 */
        CHECK_EQ 61, a3, 1571328

        j pass
