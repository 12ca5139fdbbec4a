"""Facts of the RV32 instruction set that the debugger's layers share.

Register names, CSR numbers and status bits, privilege names, and where an
instruction may go next.  No simulator imports: lld, the mux and the console use
it to name and decode what they see (the node CPU in psyche/machine/ keeps its
own definitions, compiled for speed).  `next_pcs` predicts control flow as gdb's
own `riscv_next_pc` does for its software single step.  `execute` computes what
an instruction that touches only registers does, which lets the mux answer a step
of one before lld has made it (docs/debug-semantics.md); tests/test_rv32.py holds
it to the node CPU.
"""

from __future__ import annotations

from collections.abc import Callable

M32 = 0xFFFFFFFF

OP_JAL = 0x6F
OP_JALR = 0x67
OP_BRANCH = 0x63
OP_SYSTEM = 0x73
OP_LUI = 0x37
OP_AUIPC = 0x17
OP_IMM = 0x13
OP_REG = 0x33

ECALL = 0x00000073
EBREAK = 0x00100073
MRET = 0x30200073
SRET = 0x10200073
WFI = 0x10500073

#: x0..x31 by their ABI names (x8 is s0, also called fp).
ABI_NAMES = ("zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
             "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
             "t3", "t4", "t5", "t6")
PRIV_NAMES = {0: "U", 1: "S", 3: "M"}
PRV_M = 3

#: The CSRs a node implements that debuggers see (gdb's target description, the console), by
#: their assembler names.  The PMP (pmpcfg0-3, pmpaddr0-15) and trigger (tselect, tdata1-3,
#: tinfo) registers are implemented too (docs/cpu.md) but left out of this list: the views and
#: tests built on it predate them.
CSRS: dict[str, int] = {
    "sstatus": 0x100, "sie": 0x104, "stvec": 0x105, "scounteren": 0x106, "senvcfg": 0x10A,
    "sscratch": 0x140, "sepc": 0x141, "scause": 0x142, "stval": 0x143, "sip": 0x144,
    "stimecmp": 0x14D, "stimecmph": 0x15D, "satp": 0x180,
    "mstatus": 0x300, "misa": 0x301, "medeleg": 0x302, "mideleg": 0x303, "mie": 0x304,
    "mtvec": 0x305, "mcounteren": 0x306, "menvcfg": 0x30A, "mstatush": 0x310, "menvcfgh": 0x31A,
    "mcountinhibit": 0x320, "mscratch": 0x340, "mepc": 0x341, "mcause": 0x342, "mtval": 0x343,
    "mip": 0x344, "mcycle": 0xB00, "minstret": 0xB02, "mcycleh": 0xB80, "minstreth": 0xB82,
    "cycle": 0xC00, "time": 0xC01, "instret": 0xC02, "cycleh": 0xC80, "timeh": 0xC81,
    "instreth": 0xC82, "mvendorid": 0xF11, "marchid": 0xF12, "mimpid": 0xF13, "mhartid": 0xF14,
    "mconfigptr": 0xF15,
}
CSR_MCAUSE = CSRS["mcause"]
CSR_SCAUSE = CSRS["scause"]
CSR_MIP = CSRS["mip"]
CSR_SIP = CSRS["sip"]
#: Bit 31 of a cause: the trap was an interrupt.
CAUSE_INTERRUPT = 1 << 31
MSTATUS_SUM = 1 << 18
MSTATUS_MXR = 1 << 19
SATP_MODE_SV32 = 1 << 31


def _signed(value: int, bits: int) -> int:
    return value - ((value & 1 << (bits - 1)) << 1)


def jal_offset(insn: int) -> int:
    imm = ((insn >> 31) & 1) << 20 | ((insn >> 12) & 0xFF) << 12 | ((insn >> 20) & 1) << 11 \
        | ((insn >> 21) & 0x3FF) << 1
    return _signed(imm, 21)


def branch_offset(insn: int) -> int:
    imm = ((insn >> 31) & 1) << 12 | ((insn >> 7) & 1) << 11 | ((insn >> 25) & 0x3F) << 5 \
        | ((insn >> 8) & 0xF) << 1
    return _signed(imm, 13)


def next_pcs(insn: int, pc: int, registers: list[int] | None) -> frozenset[int] | None:
    """Every pc the instruction at pc may go to when it completes, as gdb predicts them.

    With the registers (x0..x31), a branch goes the one way they say, as gdb 13 reads
    them to plant its single-step breakpoint; without them it may go either way.  A
    `jalr` needs the registers (None without them).  SYSTEM instructions give None:
    where `mret`, `sret`, `ecall` or a trap go is the CPU's business, not the
    instruction's (gdb assumes pc + 4 for them).
    """
    opcode = insn & 0x7F
    if opcode == OP_JAL:
        return frozenset({(pc + jal_offset(insn)) & M32})
    if opcode == OP_JALR:
        if registers is None:
            return None
        base = _register(registers, (insn >> 15) & 31)
        return frozenset({(base + _signed(insn >> 20, 12)) & M32 & ~1})
    if opcode == OP_BRANCH:
        taken, fallthrough = (pc + branch_offset(insn)) & M32, (pc + 4) & M32
        condition = _BRANCHES.get((insn >> 12) & 7)
        if registers is None or condition is None:
            return frozenset({fallthrough, taken})
        return frozenset({taken if condition(_register(registers, (insn >> 15) & 31),
                                             _register(registers, (insn >> 20) & 31)) else fallthrough})
    if opcode == OP_SYSTEM:
        return None
    return frozenset({(pc + 4) & M32})


def is_trap_return(insn: int) -> bool:
    return insn in (MRET, SRET)


def is_wfi(insn: int) -> bool:
    return insn == WFI


def _div(a: int, b: int) -> int:
    """Signed division as RV32M defines it (toward zero; by zero, -1; overflow, the dividend)."""
    if b == 0:
        return -1
    if a == -(1 << 31) and b == -1:
        return a
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _rem(a: int, b: int) -> int:
    if b == 0:
        return a
    if a == -(1 << 31) and b == -1:
        return 0
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _s(value: int) -> int:
    return _signed(value, 32)


#: What OP computes from rs1 and rs2 (unsigned 32-bit values), by funct7 << 3 | funct3; OP-IMM
#: uses the same with funct7 0 (0x20 for srai) and the immediate as rs2.
_OPS: dict[int, Callable[[int, int], int]] = {
    0x000: lambda a, b: a + b,
    0x100: lambda a, b: a - b,
    0x001: lambda a, b: a << (b & 31),
    0x002: lambda a, b: int(_s(a) < _s(b)),
    0x003: lambda a, b: int(a < b),
    0x004: lambda a, b: a ^ b,
    0x005: lambda a, b: a >> (b & 31),
    0x105: lambda a, b: _s(a) >> (b & 31),
    0x006: lambda a, b: a | b,
    0x007: lambda a, b: a & b,
    0x008: lambda a, b: _s(a) * _s(b),
    0x009: lambda a, b: (_s(a) * _s(b)) >> 32,
    0x00A: lambda a, b: (_s(a) * b) >> 32,
    0x00B: lambda a, b: (a * b) >> 32,
    0x00C: lambda a, b: _div(_s(a), _s(b)),
    0x00D: lambda a, b: a // b if b else M32,
    0x00E: lambda a, b: _rem(_s(a), _s(b)),
    0x00F: lambda a, b: a % b if b else a,
}
#: Whether a branch is taken, by funct3.
_BRANCHES: dict[int, Callable[[int, int], bool]] = {
    0: lambda a, b: a == b,
    1: lambda a, b: a != b,
    4: lambda a, b: _s(a) < _s(b),
    5: lambda a, b: _s(a) >= _s(b),
    6: lambda a, b: a < b,
    7: lambda a, b: a >= b,
}


def _register(registers: list[int], index: int) -> int:
    """x<index> as an unsigned 32-bit value (x0 reads 0)."""
    return registers[index] & M32 if index else 0


def execute(insn: int, pc: int, registers: list[int]) -> tuple[int, int, int] | None:
    """What the instruction at pc does if it reads and writes only registers and cannot trap.

    (rd, its new value, the next pc): rd 0 when nothing is written.  None for every
    other instruction (loads, stores, SYSTEM, FENCE, AMOs, an encoding RV32IM does not
    define) and for a jump or taken branch to an address that is not a multiple of 4,
    which traps on a hart without compressed instructions.  `registers` holds x0..x31.
    """
    opcode = insn & 0x7F
    rd = (insn >> 7) & 31
    funct3 = (insn >> 12) & 7
    a = _register(registers, (insn >> 15) & 31)
    b = _register(registers, (insn >> 20) & 31)
    imm_i = _signed(insn >> 20, 12)
    next_pc = (pc + 4) & M32
    value: int
    if opcode == OP_LUI:
        value = insn & 0xFFFFF000
    elif opcode == OP_AUIPC:
        value = pc + (insn & 0xFFFFF000)
    elif opcode == OP_IMM:
        funct7 = insn >> 25
        if funct3 == 1 and funct7 != 0 or funct3 == 5 and funct7 not in (0, 0x20):
            return None
        op = _OPS[(0x100 if funct3 == 5 and funct7 == 0x20 else 0) | funct3]
        value = op(a, imm_i & M32)
    elif opcode == OP_REG:
        found = _OPS.get((insn >> 25) << 3 | funct3)
        if found is None:
            return None
        value = found(a, b)
    elif opcode == OP_JAL:
        value, next_pc = next_pc, (pc + jal_offset(insn)) & M32
    elif opcode == OP_JALR:
        if funct3 != 0:
            return None
        value, next_pc = next_pc, (a + imm_i) & M32 & ~1
    elif opcode == OP_BRANCH:
        branch = _BRANCHES.get(funct3)
        if branch is None:
            return None
        if branch(a, b):
            next_pc = (pc + branch_offset(insn)) & M32
        rd, value = 0, 0
    else:
        return None
    if next_pc & 3:
        return None
    return (rd, value & M32 if rd else 0, next_pc)
