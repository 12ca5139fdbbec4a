"""psyche/rv32.py against the node CPU: what `execute` predicts is what the CPU does.

The mux answers gdb's step of a register-only instruction from `execute` before lld
has made the step; a wrong prediction would show gdb a state the node never had.  So
every prediction is held to the CPU here: random encodings of every opcode `execute`
takes (and of the ones near them), random registers (edge values weighted), stepped
on a real node.
"""

from __future__ import annotations

import random

import pytest

from psyche import rv32
from psyche.machine.machine import Machine, MachineConfig

PC = 0x8000_1000
EDGES = (0, 1, 2, 3, 31, 32, 0x7FFF_FFFF, 0x8000_0000, 0x8000_0001, 0xFFFF_FFFF, 0xFFFF_FFFE, 0x1000)
OPCODES = (rv32.OP_LUI, rv32.OP_AUIPC, rv32.OP_IMM, rv32.OP_REG, rv32.OP_JAL, rv32.OP_JALR,
           rv32.OP_BRANCH, 0x03, 0x23, 0x0F, 0x2F, rv32.OP_SYSTEM, 0x3B, 0x1B)


def _value(rng: random.Random) -> int:
    return rng.choice(EDGES) if rng.random() < 0.4 else rng.getrandbits(32)


def _encoding(rng: random.Random) -> int:
    insn = rng.getrandbits(32) & ~0x7F | rng.choice(OPCODES)
    if rng.random() < 0.5:   # funct7 as RV32IM defines them, most of the time
        insn = insn & 0x01FF_FFFF | rng.choice((0, 1, 0x20)) << 25
    if rng.random() < 0.3:   # a jump target that may be aligned
        insn &= ~0x0030_0000
    return insn


@pytest.fixture(scope="module")
def machine() -> Machine:
    m = Machine(MachineConfig(nodes=1))
    m.start_node(0, PC)
    m.stop_node(0)
    return m


def _step(machine: Machine, insn: int, registers: list[int]) -> tuple[list[int], int, int]:
    cpu = machine.node(0).cpu
    machine.write_phys(PC, insn.to_bytes(4, "little"))
    cpu.pc = PC
    cpu.priv = rv32.PRV_M
    for i in range(1, 32):
        cpu.regs[i] = registers[i]
    instret = cpu.instret
    machine.step_node(0, False)
    return [cpu.regs[i] & rv32.M32 if i else 0 for i in range(32)], cpu.pc & rv32.M32, cpu.instret - instret


def test_every_prediction_is_what_the_cpu_does(machine: Machine) -> None:
    rng = random.Random(1990)
    predicted = 0
    for _ in range(20_000):
        insn = _encoding(rng)
        registers = [0] + [_value(rng) for _ in range(31)]
        outcome = rv32.execute(insn, PC, registers)
        after, pc, retired = _step(machine, insn, registers)
        if outcome is None:
            continue
        predicted += 1
        rd, value, next_pc = outcome
        expected = list(registers)
        if rd:
            expected[rd] = value
        assert (after, pc, retired) == (expected, next_pc, 1), f"{insn:#010x}"
    assert predicted > 6_000   # most draws are of opcodes execute takes


@pytest.mark.parametrize(("insn", "why"), [
    (0x0000_0003, "a load"), (0x0000_0023, "a store"), (0x0000_000F, "a fence"),
    (rv32.ECALL, "ecall"), (rv32.MRET, "mret"), (rv32.WFI, "wfi"), (0x1000_202F, "an AMO"),
    (0x0020_006F, "jal to pc + 2"), (0x4000_1013, "slli with funct7 0x20"),
    (0x0000_1067, "jalr with funct3 1"), (0x0000_2063, "a branch with funct3 2"),
    (0x0400_0033 | 0x20 << 25, "an OP funct7 RV32IM lacks"),
])
def test_what_execute_leaves_to_lld(insn: int, why: str) -> None:
    assert rv32.execute(insn, PC, [0] * 32) is None, why
