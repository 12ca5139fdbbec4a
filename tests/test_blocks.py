"""The block translator against the interpreter, on random programs (pure Python only).

Random RV32IM programs mixing ALU operations, loads and stores (local,
remote, misaligned, outside RAM), branches, jumps and stores into their own
code run on two nodes' worth of RAM: once on the plain interpreter (Cpu),
once on BlockCpu.  After every run of an odd number of cycles both CPUs and
both memories must be identical.  A trap handler skips whatever faults, so
every program runs to the end of its cycle budget.

BlockCpu exists only when the CPU is not compiled, so the check runs in a
PSYCHE_PURE=1 interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_PROGRAM = r'''
import random, sys
from psyche.machine.blockcpu import BlockCpu
from psyche.machine.cpu import Cpu
from psyche.machine.physmem import NODE_RAM_SIZE, RAM_BASE, PhysMem

CODE = RAM_BASE + 0x1000          # the random program
HANDLER = RAM_BASE + 0x100        # mepc += 4; mret
LOCAL = RAM_BASE + 0x8000         # data on node 0
REMOTE = RAM_BASE + NODE_RAM_SIZE + 0x8000  # data on node 1


def r_type(f7, rs2, rs1, f3, rd, op=0x33):
    return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op

def i_type(imm, rs1, f3, rd, op):
    return (imm & 0xFFF) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op

def s_type(imm, rs2, rs1, f3):
    return (imm >> 5 & 0x7F) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 0x1F) << 7 | 0x23

def b_type(off, rs2, rs1, f3):
    return ((off >> 12 & 1) << 31 | (off >> 5 & 0x3F) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12
            | (off >> 1 & 0xF) << 8 | (off >> 11 & 1) << 7 | 0x63)

def j_type(off, rd):
    return ((off >> 20 & 1) << 31 | (off >> 1 & 0x3FF) << 21 | (off >> 11 & 1) << 20
            | (off >> 12 & 0xFF) << 12 | rd << 7 | 0x6F)


def instruction(rng, k, n):
    reg = lambda: rng.randrange(8, 16)
    any_reg = lambda: rng.randrange(0, 16)
    kind = rng.random()
    if kind < 0.35:
        f3, f7 = rng.choice([(0, 0), (0, 32), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (5, 32), (6, 0),
                             (7, 0), (0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1)])
        rs1 = any_reg()
        return r_type(f7, rs1 if rng.random() < 0.2 else any_reg(), rs1, f3, reg())
    if kind < 0.5:
        f3 = rng.choice([0, 2, 3, 4, 6, 7, 1, 5])
        imm = rng.randrange(32) | (0x400 if f3 == 5 and rng.random() < 0.5 else 0) if f3 in (1, 5) \
            else rng.randrange(-2048, 2048)
        return i_type(imm, any_reg(), f3, reg(), 0x13)
    if kind < 0.55:
        return rng.randrange(1 << 20) << 12 | reg() << 7 | rng.choice([0x37, 0x17])
    base = rng.choice([5, 5, 6, 6, 7, reg()])  # local, remote, code page, anywhere
    offset = rng.choice([0, 4, 8, 64, 1, 2, 3, -4, 2044]) if base != 7 else rng.randrange(0, 4 * n, 4)
    if kind < 0.7:
        return i_type(offset, base, rng.choice([0, 1, 2, 4, 5]), reg(), 0x03)
    if kind < 0.8:
        if base == 7 and rng.random() < 0.92:
            base = 5  # stores into the program itself, but not too many
        return s_type(offset & 0xFFF, any_reg(), base, rng.choice([0, 1, 2]))
    if kind < 0.95:
        target = rng.randrange(-k, n - k) * 4
        rs1 = any_reg()
        rs2 = rs1 if rng.random() < 0.2 else any_reg()
        return b_type(target & 0x1FFF, rs2, rs1, rng.choice([0, 1, 4, 5, 6, 7]))
    if kind < 0.98:
        return j_type((rng.randrange(-k, n - k) * 4) & 0x1FFFFF, rng.choice([0, 1]))
    return i_type(rng.randrange(0, 4 * n, 4), 7, 0, rng.choice([0, 1]), 0x67)  # jalr


def machine(seed, penalty, blocks):
    rng = random.Random(seed)
    mem = PhysMem(2, penalty)
    mem.bus = Bus()
    cpu = (BlockCpu if blocks else Cpu)(0, mem)
    # csrr x16, mepc; addi x16, x16, 4; csrw mepc, x16; mret
    handler = [i_type(0x341, 0, 2, 16, 0x73), i_type(4, 16, 0, 16, 0x13), i_type(0x341, 16, 1, 0, 0x73),
               0x30200073]
    for i, word in enumerate(handler):
        mem.write_word(HANDLER + 4 * i, word, -1)
    n = rng.randrange(8, 200)
    for k in range(n):
        mem.write_word(CODE + 4 * k, instruction(rng, k, n), -1)
    mem.write_word(CODE + 4 * n, j_type((-4 * n) & 0x1FFFFF, 0), -1)
    for i in range(64):
        mem.write_word(LOCAL + 4 * i, rng.getrandbits(32), -1)
        mem.write_word(REMOTE + 4 * i, rng.getrandbits(32), -1)
    cpu.csr.mtvec = HANDLER
    cpu.pc = CODE
    for i in range(1, 16):  # edge values make equal and signed comparisons likely
        cpu.regs[i] = rng.choice([0, 1, 2, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, rng.getrandbits(32)])
    cpu.regs[5], cpu.regs[6], cpu.regs[7] = LOCAL + 128, REMOTE + 128, CODE
    return rng, mem, cpu


class Bus:
    def read(self, node, paddr, size):
        return -1

    def write(self, node, paddr, size, value):
        return False


def state(mem, cpu, whole=False):
    """Everything the programs can change (of RAM, the first 64 KiB of each node unless whole)."""
    end = None if whole else 0x10000
    return (cpu.pc, list(cpu.regs), cpu.cycles, cpu.instret, cpu.local_refs, cpu.remote_refs,
            cpu.csr.mepc, cpu.csr.mcause, cpu.csr.mtval,
            [hash(bytes(memoryview(r).cast("B")[:end])) for r in mem.rams])


failures = 0
for seed in range(int(sys.argv[1]), int(sys.argv[2])):
    penalty = seed % 3 * 7
    rng, mem_a, cpu_a = machine(seed, penalty, False)
    _, mem_b, cpu_b = machine(seed, penalty, True)
    for step in range(40):
        limit = cpu_a.cycles + rng.choice([1, 2, 3, 7, 50, 333, 1000])
        cpu_a.run(limit)
        cpu_b.run(limit)
        if state(mem_a, cpu_a, step == 39) != state(mem_b, cpu_b, step == 39):
            print(f"seed {seed}: differs after run {step}: pc {cpu_a.pc:#x} (interpreter), {cpu_b.pc:#x}")
            failures += 1
            break
print(f"failures {failures}")
'''


@pytest.mark.timeout(300)
def test_blocks_match_the_interpreter_on_random_programs() -> None:
    env = dict(os.environ, PSYCHE_PURE="1")
    proc = subprocess.run(
        [sys.executable, "-c", _PROGRAM, "0", "60"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("failures 0"), proc.stdout
