/*
 * rv32i_alu: RV32I integer computational instructions.
 *
 * Checks add/sub/and/or/xor/slt/sltu/sll/srl/sra, their immediate forms
 * (addi/andi/ori/xori/slti/sltiu/slli/srli/srai), lui and auipc, with edge
 * values (0, -1, 0x80000000, 0x7fffffff, shift amounts 0 and 31, shift
 * amounts taken from the low 5 bits of rs2 only), that x0 reads as zero and
 * ignores writes, and that an instruction with rd == rs1/rs2 works.
 */
#include "test.h"

        .text
        .globl test_main
test_main:
        /* ---- add ---- */
        TEST_RR 1,  add, 0x00000000, 0x00000000, 0x00000000
        TEST_RR 2,  add, 0x00000002, 0x00000001, 0x00000001
        TEST_RR 3,  add, 0x0000000a, 0x00000003, 0x00000007
        TEST_RR 4,  add, 0xffff8000, 0x00000000, 0xffff8000
        TEST_RR 5,  add, 0x7fffffff, 0x80000000, 0xffffffff   /* wraps */
        TEST_RR 6,  add, 0x80000000, 0x7fffffff, 0x00000001   /* signed overflow */
        TEST_RR 7,  add, 0x00000000, 0xffffffff, 0x00000001
        TEST_RR 8,  add, 0xfffffffe, 0xffffffff, 0xffffffff

        /* ---- sub ---- */
        TEST_RR 10, sub, 0x00000000, 0x00000000, 0x00000000
        TEST_RR 11, sub, 0xfffffffc, 0x00000003, 0x00000007
        TEST_RR 12, sub, 0x80000000, 0x00000000, 0x80000000
        TEST_RR 13, sub, 0x7fffffff, 0x80000000, 0x00000001
        TEST_RR 14, sub, 0x00000001, 0x00000000, 0xffffffff
        TEST_RR 15, sub, 0x80000001, 0x00000000, 0x7fffffff

        /* ---- logic ---- */
        TEST_RR 20, and, 0x0f000f00, 0xff00ff00, 0x0f0f0f0f
        TEST_RR 21, and, 0x00f000f0, 0xf0fff0ff, 0x0ff00ff0
        TEST_RR 22, or,  0xff0fff0f, 0xff00ff00, 0x0f0f0f0f
        TEST_RR 23, or,  0xfff0fff0, 0x0ff00ff0, 0xf0f0f0f0
        TEST_RR 24, xor, 0xf00ff00f, 0xff00ff00, 0x0f0f0f0f
        TEST_RR 25, xor, 0x00000000, 0xffffffff, 0xffffffff
        TEST_RR 26, xor, 0xffffffff, 0x00000000, 0xffffffff

        /* ---- slt / sltu ---- */
        TEST_RR 30, slt,  0, 0x00000000, 0x00000000
        TEST_RR 31, slt,  1, 0xffffffff, 0x00000000   /* -1 < 0 */
        TEST_RR 32, slt,  0, 0x00000000, 0xffffffff
        TEST_RR 33, slt,  1, 0x80000000, 0x7fffffff   /* INT_MIN < INT_MAX */
        TEST_RR 34, slt,  0, 0x7fffffff, 0x80000000
        TEST_RR 35, slt,  1, 0x80000000, 0x80000001
        TEST_RR 36, sltu, 0, 0xffffffff, 0x00000000   /* unsigned: max > 0 */
        TEST_RR 37, sltu, 1, 0x00000000, 0xffffffff
        TEST_RR 38, sltu, 0, 0x80000000, 0x7fffffff
        TEST_RR 39, sltu, 1, 0x7fffffff, 0x80000000
        TEST_RR 40, sltu, 0, 0x00000005, 0x00000005

        /* ---- shifts (register) ---- */
        TEST_RR 50, sll, 0x00000001, 0x00000001, 0
        TEST_RR 51, sll, 0x80000000, 0x00000001, 31
        TEST_RR 52, sll, 0x00000080, 0x00000001, 7
        TEST_RR 53, sll, 0x42424242, 0x21212121, 1
        TEST_RR 54, sll, 0x80000000, 0x00000001, 0xffffffff   /* amount = rs2 & 31 */
        TEST_RR 55, sll, 0x21212121, 0x21212121, 0xffffffe0   /* amount 0 */
        TEST_RR 56, srl, 0x40000000, 0x80000000, 1
        TEST_RR 57, srl, 0x00000001, 0x80000000, 31
        TEST_RR 58, srl, 0x01ffffff, 0xffffffff, 7
        TEST_RR 59, srl, 0x00000001, 0xffffffff, 0xffffffff   /* amount 31 */
        TEST_RR 60, sra, 0xc0000000, 0x80000000, 1
        TEST_RR 61, sra, 0xffffffff, 0x80000000, 31
        TEST_RR 62, sra, 0x00ffffff, 0x7fffffff, 7
        TEST_RR 63, sra, 0xffffffc0, 0x81818181, 0x00000019   /* 25 */
        TEST_RR 64, sra, 0xffffffff, 0x81818181, 0xffffffff   /* amount 31 */
        TEST_RR 65, sra, 0x81818181, 0x81818181, 0x00000020   /* amount 0 */

        /* ---- immediate forms ---- */
        TEST_IMM 70, addi, 0x00000000, 0x00000000, 0
        TEST_IMM 71, addi, 0x0000000a, 0x00000003, 7
        TEST_IMM 72, addi, 0xfffff800, 0x00000000, -2048       /* imm min */
        TEST_IMM 73, addi, 0x000007ff, 0x00000000, 2047        /* imm max */
        TEST_IMM 74, addi, 0x7fffffff, 0x80000000, -1
        TEST_IMM 75, addi, 0x80000000, 0x7fffffff, 1
        TEST_IMM 76, andi, 0xff00ff00, 0xff00ff00, -1          /* imm sign-extended */
        TEST_IMM 77, andi, 0x000000f0, 0xff00fff0, 0x0f0
        TEST_IMM 78, ori,  0xffffff0f, 0x00ff0f00, -241        /* 0xf0f */
        TEST_IMM 79, ori,  0x00ff07ff, 0x00ff0000, 0x7ff
        TEST_IMM 80, xori, 0xff00f00f, 0x00ff0f00, -241
        TEST_IMM 81, xori, 0x0000070f, 0x00000000, 0x70f
        TEST_IMM 82, slti,  1, 0xffffffff, 0
        TEST_IMM 83, slti,  0, 0x00000000, -1
        TEST_IMM 84, slti,  1, 0x80000000, -2048
        TEST_IMM 85, slti,  0, 0x7fffffff, 2047
        TEST_IMM 86, sltiu, 1, 0x00000000, -1                  /* imm = 0xffffffff */
        TEST_IMM 87, sltiu, 0, 0xffffffff, -1
        TEST_IMM 88, sltiu, 1, 0x00000000, 1                   /* seqz idiom */
        TEST_IMM 89, sltiu, 0, 0x00000007, 1
        TEST_IMM 90, slli, 0x80000000, 0x00000001, 31
        TEST_IMM 91, slli, 0x21212121, 0x21212121, 0
        TEST_IMM 92, slli, 0x90909080, 0x21212121, 7
        TEST_IMM 93, srli, 0x00000001, 0x80000000, 31
        TEST_IMM 94, srli, 0x01ffffff, 0xffffffff, 7
        TEST_IMM 95, srli, 0x81818181, 0x81818181, 0
        TEST_IMM 96, srai, 0xffffffff, 0x80000000, 31
        TEST_IMM 97, srai, 0xff030303, 0x81818181, 7
        TEST_IMM 98, srai, 0x00000000, 0x7fffffff, 31

        /* ---- lui / auipc ---- */
        TEST 100
        lui a0, 0x00000
        CHECK_EQ 100, a0, 0
        lui a0, 0xfffff
        CHECK_EQ 101, a0, 0xfffff000
        lui a0, 0x80000
        CHECK_EQ 102, a0, 0x80000000
        lui a0, 0x12345
        addi a0, a0, 0x678
        CHECK_EQ 103, a0, 0x12345678
        /* auipc: pc + (imm << 12); compare with the label address */
1:      auipc a0, 0
        la a1, 1b
        CHECK_REG 104, a0, a1
2:      auipc a0, 1
        la a1, 2b
        li a2, 0x1000
        add a1, a1, a2
        CHECK_REG 105, a0, a1
3:      auipc a0, 0xfffff                /* pc - 0x1000 */
        la a1, 3b
        li a2, 0x1000
        sub a1, a1, a2
        CHECK_REG 106, a0, a1

        /* ---- x0 ---- */
        li a1, 0x1234
        addi x0, a1, 1                   /* writes to x0 are discarded */
        CHECK_EQ 110, x0, 0
        lui x0, 0x80000
        CHECK_EQ 111, x0, 0
        add a0, x0, x0
        CHECK_EQ 112, a0, 0
        li a1, -1
        or x0, a1, a1
        mv a0, x0
        CHECK_EQ 113, a0, 0
        auipc x0, 1
        CHECK_EQ 114, x0, 0

        /* ---- rd aliases a source ---- */
        li a0, 13
        li a1, 11
        add a0, a0, a1
        CHECK_EQ 120, a0, 24
        sub a1, a0, a1
        CHECK_EQ 121, a1, 13
        li a0, 5
        add a0, a0, a0
        CHECK_EQ 122, a0, 10
        li a0, 0x80000000
        srai a0, a0, 4
        CHECK_EQ 123, a0, 0xf8000000

        /* ---- all registers hold independent values ---- */
        li x1, 1
        li x2, 2
        li x4, 4
        li x5, 5
        li x6, 6
        li x7, 7
        li x8, 8
        li x9, 9
        li x10, 10
        li x11, 11
        li x12, 12
        li x13, 13
        li x14, 14
        li x15, 15
        li x16, 16
        li x17, 17
        li x18, 18
        li x19, 19
        li x20, 20
        li x21, 21
        li x22, 22
        li x23, 23
        li x24, 24
        li x25, 25
        li x26, 26
        li x27, 27
        li x28, 28
        li x29, 29
        add x1, x1, x2      /* 3 */
        add x1, x1, x4      /* 7 */
        add x1, x1, x5
        add x1, x1, x6
        add x1, x1, x7
        add x1, x1, x8
        add x1, x1, x9
        add x1, x1, x10
        add x1, x1, x11
        add x1, x1, x12
        add x1, x1, x13
        add x1, x1, x14
        add x1, x1, x15
        add x1, x1, x16
        add x1, x1, x17
        add x1, x1, x18
        add x1, x1, x19
        add x1, x1, x20
        add x1, x1, x21
        add x1, x1, x22
        add x1, x1, x23
        add x1, x1, x24
        add x1, x1, x25
        add x1, x1, x26
        add x1, x1, x27
        add x1, x1, x28
        add x1, x1, x29     /* 1+2+4+...+29 = 435 - 3 = 432 */
        CHECK_EQ 130, x1, 432
        la sp, __stack_top

        j pass
