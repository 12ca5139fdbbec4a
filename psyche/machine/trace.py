"""Per-instruction stepping with a hook: the slow, exact way to watch a node execute.

The machine normally runs nodes a quantum at a time; tracing steps one
stopped node an instruction at a time and calls a hook after each, for tests
and tools that need to see every instruction (the other nodes stay put).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psyche.machine.cpu import STOP_NONE
from psyche.machine.machine import Machine


@dataclass(frozen=True)
class Step:
    """One executed instruction: where it was, and the node's counters after it."""

    node: int
    pc: int
    next_pc: int
    instret: int
    cycles: int
    priv: int


def trace(machine: Machine, index: int, count: int, hook: Callable[[Step], bool | None]) -> int:
    """Step stopped node `index` up to `count` times, calling hook(step) after each.

    The hook returns True to stop early. Returns the number of steps taken;
    a CPU stop (breakpoint, watchpoint, trap loop) also ends the trace.
    """
    cpu = machine.node(index).cpu
    for taken in range(count):
        pc = cpu.pc
        reason = machine.step_node(index)
        step = Step(index, pc, cpu.pc, cpu.instret, cpu.cycles, cpu.priv)
        if hook(step) or reason != STOP_NONE:
            return taken + 1
    return count
