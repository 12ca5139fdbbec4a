/*
 * rv32m: the M extension.
 *
 * Checks mul/mulh/mulhsu/mulhu (low and high halves, all sign
 * combinations, INT_MIN and -1 edges), div/divu/rem/remu with rounding
 * toward zero and the sign of the remainder following the dividend,
 * division by zero (quotient all ones, remainder = dividend) and signed
 * overflow INT_MIN / -1 (quotient INT_MIN, remainder 0), and rd aliasing
 * a source.
 */
#include "test.h"

        .text
        .globl test_main
test_main:
        /* ---- mul (low 32 bits; same for signed and unsigned) ---- */
        TEST_RR 1,  mul, 0x00000000, 0x00000000, 0x00000000
        TEST_RR 2,  mul, 0x00000001, 0x00000001, 0x00000001
        TEST_RR 3,  mul, 0x00000015, 0x00000003, 0x00000007
        TEST_RR 4,  mul, 0x00000000, 0x00000000, 0xffff8000
        TEST_RR 5,  mul, 0x00000000, 0x80000000, 0x00000000
        TEST_RR 6,  mul, 0x00000000, 0x80000000, 0xffff8000
        TEST_RR 7,  mul, 0x0000ff7f, 0xaaaaaaab, 0x0002fe7d
        TEST_RR 8,  mul, 0x0000ff7f, 0x0002fe7d, 0xaaaaaaab
        TEST_RR 9,  mul, 0x00000001, 0xffffffff, 0xffffffff   /* -1 * -1 */
        TEST_RR 10, mul, 0x80000000, 0x80000000, 0xffffffff   /* wraps */
        TEST_RR 11, mul, 0xfffffff9, 0xffffffff, 0x00000007

        /* ---- mulh (signed x signed, high half) ---- */
        TEST_RR 20, mulh, 0x00000000, 0x00000000, 0x00000000
        TEST_RR 21, mulh, 0x00000000, 0x00000001, 0x00000001
        TEST_RR 22, mulh, 0x00000000, 0x00000003, 0x00000007
        TEST_RR 23, mulh, 0x00000000, 0xffffffff, 0xffffffff   /* -1*-1 = 1 */
        TEST_RR 24, mulh, 0xffffffff, 0xffffffff, 0x00000001   /* -1 */
        TEST_RR 25, mulh, 0x40000000, 0x80000000, 0x80000000   /* 2^62 */
        TEST_RR 26, mulh, 0xc0000000, 0x80000000, 0x7fffffff
        TEST_RR 27, mulh, 0x3fffffff, 0x7fffffff, 0x7fffffff
        TEST_RR 28, mulh, 0x00000000, 0x80000000, 0x00000000
        TEST_RR 29, mulh, 0xffff0081, 0xaaaaaaab, 0x0002fe7d
        TEST_RR 30, mulh, 0xffffffff, 0xfffffffe, 0x00000003   /* -6 */

        /* ---- mulhsu (signed rs1 x unsigned rs2) ---- */
        TEST_RR 40, mulhsu, 0x00000000, 0x00000000, 0x00000000
        TEST_RR 41, mulhsu, 0x00000000, 0x00000003, 0x00000007
        TEST_RR 42, mulhsu, 0xffffffff, 0xffffffff, 0xffffffff   /* -1 * (2^32-1) */
        TEST_RR 43, mulhsu, 0xffffffff, 0xffffffff, 0x00000001   /* -1 * 1 */
        TEST_RR 44, mulhsu, 0x80000000, 0x80000000, 0xffffffff
        TEST_RR 45, mulhsu, 0x7ffffffe, 0x7fffffff, 0xffffffff
        TEST_RR 46, mulhsu, 0xc0000000, 0x80000000, 0x80000000
        TEST_RR 47, mulhsu, 0x3fffffff, 0x7fffffff, 0x80000000
        TEST_RR 48, mulhsu, 0x0001fefe, 0x0002fe7d, 0xaaaaaaab

        /* ---- mulhu (unsigned x unsigned) ---- */
        TEST_RR 50, mulhu, 0x00000000, 0x00000000, 0x00000000
        TEST_RR 51, mulhu, 0x00000000, 0x00000003, 0x00000007
        TEST_RR 52, mulhu, 0xfffffffe, 0xffffffff, 0xffffffff
        TEST_RR 53, mulhu, 0x40000000, 0x80000000, 0x80000000
        TEST_RR 54, mulhu, 0x7fffffff, 0x80000000, 0xffffffff
        TEST_RR 55, mulhu, 0x0001fefe, 0xaaaaaaab, 0x0002fe7d
        TEST_RR 56, mulhu, 0x00000000, 0x0000ffff, 0x0000ffff

        /* ---- div (signed, rounds toward zero) ---- */
        TEST_RR 60, div, 3,          20, 6
        TEST_RR 61, div, 0xfffffffd, -20, 6
        TEST_RR 62, div, 0xfffffffd, 20, -6
        TEST_RR 63, div, 3,          -20, -6
        TEST_RR 64, div, 0,          5, 7
        TEST_RR 65, div, 0,          -5, 7                         /* not -1 */
        TEST_RR 66, div, 0xc0000000, 0x80000000, 2
        TEST_RR 67, div, 0x80000000, 0x80000000, 1
        TEST_RR 68, div, 0x80000000, 0x80000000, -1                /* overflow */
        TEST_RR 69, div, 0xffffffff, 0x80000000, 0                 /* by zero */
        TEST_RR 70, div, 0xffffffff, 1, 0
        TEST_RR 71, div, 0xffffffff, 0, 0
        TEST_RR 72, div, 0xffffffff, -7, 0
        TEST_RR 73, div, 0x80000001, 0x7fffffff, -1

        /* ---- divu ---- */
        TEST_RR 80, divu, 3,          20, 6
        TEST_RR 81, divu, 715827879,  -20, 6                      /* (2^32-20)/6 */
        TEST_RR 82, divu, 0,          20, -6
        TEST_RR 83, divu, 0,          -20, -6
        TEST_RR 84, divu, 0x40000000, 0x80000000, 2
        TEST_RR 85, divu, 0,          0x80000000, -1
        TEST_RR 86, divu, 1,          0xffffffff, 0xffffffff
        TEST_RR 87, divu, 0xffffffff, 0x80000000, 0               /* by zero */
        TEST_RR 88, divu, 0xffffffff, 0, 0
        TEST_RR 89, divu, 0xffffffff, 0xffffffff, 1

        /* ---- rem (sign follows the dividend) ---- */
        TEST_RR 90, rem, 2,          20, 6
        TEST_RR 91, rem, 0xfffffffe, -20, 6
        TEST_RR 92, rem, 2,          20, -6
        TEST_RR 93, rem, 0xfffffffe, -20, -6
        TEST_RR 94, rem, 0,          0x80000000, 1
        TEST_RR 95, rem, 0,          0x80000000, -1                /* overflow */
        TEST_RR 96, rem, 0x80000000, 0x80000000, 0                 /* by zero */
        TEST_RR 97, rem, 1,          1, 0
        TEST_RR 98, rem, 0,          0, 0
        TEST_RR 99, rem, 0xfffffff9, -7, 0
        TEST_RR 100, rem, 0xfffffffb, -5, 7

        /* ---- remu ---- */
        TEST_RR 110, remu, 2,          20, 6
        TEST_RR 111, remu, 2,          -20, 6                     /* 4294967276 % 6 */
        TEST_RR 112, remu, 20,         20, -6
        TEST_RR 113, remu, 0xffffffec, -20, -6
        TEST_RR 114, remu, 0,          0x80000000, 1
        TEST_RR 115, remu, 0x80000000, 0x80000000, -1
        TEST_RR 116, remu, 0x80000000, 0x80000000, 0              /* by zero */
        TEST_RR 117, remu, 0,          0, 0
        TEST_RR 118, remu, 0xffffffff, 0xffffffff, 0
        TEST_RR 119, remu, 0,          0xffffffff, 0xffffffff

        /* ---- rd aliasing sources ---- */
        li a0, 7
        mul a0, a0, a0
        CHECK_EQ 120, a0, 49
        li a0, 100
        li a1, 7
        div a1, a0, a1
        CHECK_EQ 121, a1, 14
        li a0, 100
        li a1, 7
        rem a0, a0, a1
        CHECK_EQ 122, a0, 2
        li a0, 0x80000000
        mulh a0, a0, a0
        CHECK_EQ 123, a0, 0x40000000
        /* writes to x0 are discarded */
        li a1, 3
        mul x0, a1, a1
        div x0, a1, a1
        CHECK_EQ 124, x0, 0

        j pass
