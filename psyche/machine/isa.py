"""RV32IMA instruction decoding into packed integers.

The interpreter decodes each instruction word once and caches the result, so
decoding is off the hot path but its output format is on it.  A decoded
instruction is one positive integer:

    bits  0..7   op        (one of the OP_* constants)
    bits  8..13  rd        (0..32; 32 is a sink register used when rd is x0)
    bits 14..18  rs1       (or the 5-bit immediate of CSR*I instructions)
    bits 19..23  rs2
    bits 24..55  imm       (32-bit two's complement value, stored unsigned)

Writes to x0 never reach register 0: ALU instructions with rd = x0 decode to
OP_NOP, everything else that writes rd (loads, jumps, CSRs, AMOs) writes the
sink register 32 instead, so the hot loop never tests rd.
"""

from typing import Final

from mypy_extensions import i64

MASK32: Final = 0xFFFFFFFF
SINK: Final = 32

# Ordered roughly by dynamic frequency: the interpreter dispatches on these in
# this order, so common instructions cost fewer comparisons.
OP_ADDI: Final = 1
OP_ADD: Final = 2
OP_LW: Final = 3
OP_SW: Final = 4
# Conditional branches, contiguous: the interpreter tests the range first.
OP_BNE: Final = 5
OP_BLTU: Final = 6
OP_BEQ: Final = 7
OP_BLT: Final = 8
OP_BGE: Final = 9
OP_BGEU: Final = 10
# Jumps, contiguous.
OP_JAL: Final = 11
OP_JALR: Final = 12
OP_LBU: Final = 13
OP_SB: Final = 14
OP_AUIPC: Final = 15
OP_LUI: Final = 16
OP_ANDI: Final = 17
OP_SLLI: Final = 18
OP_SRLI: Final = 19
OP_SUB: Final = 20
OP_AND: Final = 21
OP_OR: Final = 22
OP_XOR: Final = 23
OP_ORI: Final = 24
OP_XORI: Final = 25
OP_SRAI: Final = 26
OP_SLL: Final = 27
OP_SRL: Final = 28
OP_SRA: Final = 29
OP_SLT: Final = 30
OP_SLTU: Final = 31
OP_SLTI: Final = 32
OP_SLTIU: Final = 33
OP_LB: Final = 34
OP_LH: Final = 35
OP_LHU: Final = 36
OP_SH: Final = 37
OP_MUL: Final = 38
OP_MULH: Final = 39
OP_MULHSU: Final = 40
OP_MULHU: Final = 41
OP_DIV: Final = 42
OP_DIVU: Final = 43
OP_REM: Final = 44
OP_REMU: Final = 45
OP_NOP: Final = 46
# Everything from here on is handled off the hot loop ("system" ops).
OP_FIRST_SYSTEM: Final = 50
OP_FENCE_I: Final = 50
OP_ECALL: Final = 51
OP_EBREAK: Final = 52
OP_MRET: Final = 53
OP_SRET: Final = 54
OP_WFI: Final = 55
OP_SFENCE_VMA: Final = 56
OP_CSRRW: Final = 57
OP_CSRRS: Final = 58
OP_CSRRC: Final = 59
OP_CSRRWI: Final = 60
OP_CSRRSI: Final = 61
OP_CSRRCI: Final = 62
OP_LR: Final = 63
OP_SC: Final = 64
OP_AMOSWAP: Final = 65
OP_AMOADD: Final = 66
OP_AMOXOR: Final = 67
OP_AMOAND: Final = 68
OP_AMOOR: Final = 69
OP_AMOMIN: Final = 70
OP_AMOMAX: Final = 71
OP_AMOMINU: Final = 72
OP_AMOMAXU: Final = 73
OP_ILLEGAL: Final = 74
# A decode-cache slot that holds no decoding yet (the whole slot is this value).
OP_UNDECODED: Final = 255


def sext(value: i64, bits: i64) -> i64:
    """Sign-extend the low `bits` bits of value and return it as unsigned 32-bit."""
    sign: i64 = 1 << (bits - 1)
    v: i64 = value & ((1 << bits) - 1)
    return ((v ^ sign) - sign) & MASK32


def pack(op: i64, rd: i64, rs1: i64, rs2: i64, imm: i64) -> i64:
    return op | (rd << 8) | (rs1 << 14) | (rs2 << 19) | ((imm & MASK32) << 24)


def _illegal(raw: i64) -> i64:
    return pack(OP_ILLEGAL, 0, 0, 0, raw)


def _dest(rd: i64) -> i64:
    return SINK if rd == 0 else rd


def _alu(op: i64, rd: i64, rs1: i64, rs2: i64, imm: i64) -> i64:
    if rd == 0:
        return pack(OP_NOP, 0, 0, 0, 0)
    return pack(op, rd, rs1, rs2, imm)


def decode(raw: i64) -> i64:
    """Decode one 32-bit instruction word into the packed form."""
    opcode: i64 = raw & 0x7F
    rd: i64 = (raw >> 7) & 31
    f3: i64 = (raw >> 12) & 7
    rs1: i64 = (raw >> 15) & 31
    rs2: i64 = (raw >> 20) & 31
    f7: i64 = (raw >> 25) & 0x7F
    i_imm: i64 = sext(raw >> 20, 12)
    if opcode == 0x13:
        return _decode_op_imm(raw, rd, f3, rs1, f7, i_imm)
    if opcode == 0x33:
        return _decode_op(raw, rd, f3, rs1, rs2, f7)
    if opcode == 0x03:
        load_ops = [OP_LB, OP_LH, OP_LW, 0, OP_LBU, OP_LHU, 0, 0]
        op: i64 = load_ops[f3]
        if op == 0:
            return _illegal(raw)
        return pack(op, _dest(rd), rs1, 0, i_imm)
    if opcode == 0x23:
        s_imm: i64 = sext(((raw >> 25) << 5) | ((raw >> 7) & 31), 12)
        store_ops = [OP_SB, OP_SH, OP_SW, 0, 0, 0, 0, 0]
        sop: i64 = store_ops[f3]
        if sop == 0:
            return _illegal(raw)
        return pack(sop, 0, rs1, rs2, s_imm)
    if opcode == 0x63:
        b_imm: i64 = sext(
            (((raw >> 31) & 1) << 12) | (((raw >> 7) & 1) << 11)
            | (((raw >> 25) & 0x3F) << 5) | (((raw >> 8) & 0xF) << 1),
            13,
        )
        branch_ops = [OP_BEQ, OP_BNE, 0, 0, OP_BLT, OP_BGE, OP_BLTU, OP_BGEU]
        bop: i64 = branch_ops[f3]
        if bop == 0:
            return _illegal(raw)
        return pack(bop, 0, rs1, rs2, b_imm)
    if opcode == 0x37:
        return _alu(OP_LUI, rd, 0, 0, raw & 0xFFFFF000)
    if opcode == 0x17:
        return _alu(OP_AUIPC, rd, 0, 0, raw & 0xFFFFF000)
    if opcode == 0x6F:
        j_imm: i64 = sext(
            (((raw >> 31) & 1) << 20) | (((raw >> 12) & 0xFF) << 12)
            | (((raw >> 20) & 1) << 11) | (((raw >> 21) & 0x3FF) << 1),
            21,
        )
        return pack(OP_JAL, _dest(rd), 0, 0, j_imm)
    if opcode == 0x67:
        if f3 != 0:
            return _illegal(raw)
        return pack(OP_JALR, _dest(rd), rs1, 0, i_imm)
    if opcode == 0x0F:
        if f3 == 0:
            return pack(OP_NOP, 0, 0, 0, 0)
        if f3 == 1:
            return pack(OP_FENCE_I, 0, 0, 0, 0)
        return _illegal(raw)
    if opcode == 0x73:
        return _decode_system(raw, rd, f3, rs1, rs2, f7)
    if opcode == 0x2F:
        return _decode_amo(raw, rd, f3, rs1, rs2)
    return _illegal(raw)


def _decode_op_imm(raw: i64, rd: i64, f3: i64, rs1: i64, f7: i64, imm: i64) -> i64:
    shamt: i64 = (raw >> 20) & 31
    if f3 == 0:
        return _alu(OP_ADDI, rd, rs1, 0, imm)
    if f3 == 1:
        return _alu(OP_SLLI, rd, rs1, 0, shamt) if f7 == 0 else _illegal(raw)
    if f3 == 2:
        return _alu(OP_SLTI, rd, rs1, 0, imm)
    if f3 == 3:
        return _alu(OP_SLTIU, rd, rs1, 0, imm)
    if f3 == 4:
        return _alu(OP_XORI, rd, rs1, 0, imm)
    if f3 == 5:
        if f7 == 0:
            return _alu(OP_SRLI, rd, rs1, 0, shamt)
        if f7 == 0x20:
            return _alu(OP_SRAI, rd, rs1, 0, shamt)
        return _illegal(raw)
    if f3 == 6:
        return _alu(OP_ORI, rd, rs1, 0, imm)
    return _alu(OP_ANDI, rd, rs1, 0, imm)


def _decode_op(raw: i64, rd: i64, f3: i64, rs1: i64, rs2: i64, f7: i64) -> i64:
    if f7 == 0:
        ops = [OP_ADD, OP_SLL, OP_SLT, OP_SLTU, OP_XOR, OP_SRL, OP_OR, OP_AND]
        return _alu(ops[f3], rd, rs1, rs2, 0)
    if f7 == 1:
        mops = [OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU, OP_DIV, OP_DIVU, OP_REM, OP_REMU]
        return _alu(mops[f3], rd, rs1, rs2, 0)
    if f7 == 0x20:
        if f3 == 0:
            return _alu(OP_SUB, rd, rs1, rs2, 0)
        if f3 == 5:
            return _alu(OP_SRA, rd, rs1, rs2, 0)
    return _illegal(raw)


def _decode_system(raw: i64, rd: i64, f3: i64, rs1: i64, rs2: i64, f7: i64) -> i64:
    if f3 == 0:
        if raw == 0x00000073:
            return pack(OP_ECALL, 0, 0, 0, 0)
        if raw == 0x00100073:
            return pack(OP_EBREAK, 0, 0, 0, 0)
        if raw == 0x30200073:
            return pack(OP_MRET, 0, 0, 0, 0)
        if raw == 0x10200073:
            return pack(OP_SRET, 0, 0, 0, 0)
        if raw == 0x10500073:
            return pack(OP_WFI, 0, 0, 0, 0)
        if f7 == 0x09 and rd == 0:
            return pack(OP_SFENCE_VMA, 0, rs1, rs2, 0)
        return _illegal(raw)
    if f3 == 4:
        return _illegal(raw)
    csr_ops = [0, OP_CSRRW, OP_CSRRS, OP_CSRRC, 0, OP_CSRRWI, OP_CSRRSI, OP_CSRRCI]
    # The CSR number travels in imm and the raw word is not needed again:
    # illegal CSR accesses rebuild it from the fields for mtval.
    return pack(csr_ops[f3], _dest(rd), rs1, 0, (raw >> 20) & 0xFFF)


def _decode_amo(raw: i64, rd: i64, f3: i64, rs1: i64, rs2: i64) -> i64:
    if f3 != 2:
        return _illegal(raw)
    funct5: i64 = (raw >> 27) & 31
    if funct5 == 0x02:
        return pack(OP_LR, _dest(rd), rs1, 0, 0) if rs2 == 0 else _illegal(raw)
    amo_ops = {
        0x03: OP_SC, 0x01: OP_AMOSWAP, 0x00: OP_AMOADD, 0x04: OP_AMOXOR,
        0x0C: OP_AMOAND, 0x08: OP_AMOOR, 0x10: OP_AMOMIN, 0x14: OP_AMOMAX,
        0x18: OP_AMOMINU, 0x1C: OP_AMOMAXU,
    }
    op = amo_ops.get(funct5)
    if op is None:
        return _illegal(raw)
    return pack(op, _dest(rd), rs1, rs2, 0)

