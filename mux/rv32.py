"""What the mux needs to know of the RV32 instruction set: where an instruction may go next.

No simulator imports: the mux decodes instructions only to predict control flow
(as gdb's own `riscv_next_pc` does for its software single step), never to run them.
"""

from __future__ import annotations

M32 = 0xFFFFFFFF

OP_JAL = 0x6F
OP_JALR = 0x67
OP_BRANCH = 0x63
OP_SYSTEM = 0x73

ECALL = 0x00000073
EBREAK = 0x00100073
MRET = 0x30200073
SRET = 0x10200073
WFI = 0x10500073

#: Trap cause CSRs: which one holds the cause of a trap depends on the mode it entered.
CSR_MCAUSE = 0x342
CSR_SCAUSE = 0x142
CAUSE_INTERRUPT = 1 << 31


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

    A branch may go either way; a `jalr` needs the registers (None without them).
    SYSTEM instructions give None: where `mret`, `sret`, `ecall` or a trap go is the
    CPU's business, not the instruction's (gdb assumes pc + 4 for them).
    """
    opcode = insn & 0x7F
    if opcode == OP_JAL:
        return frozenset({(pc + jal_offset(insn)) & M32})
    if opcode == OP_JALR:
        if registers is None:
            return None
        rs1 = (insn >> 15) & 31
        base = registers[rs1] if rs1 else 0
        return frozenset({(base + _signed(insn >> 20, 12)) & M32 & ~1})
    if opcode == OP_BRANCH:
        return frozenset({(pc + 4) & M32, (pc + branch_offset(insn)) & M32})
    if opcode == OP_SYSTEM:
        return None
    return frozenset({(pc + 4) & M32})


def is_trap_return(insn: int) -> bool:
    return insn in (MRET, SRET)


def is_wfi(insn: int) -> bool:
    return insn == WFI
