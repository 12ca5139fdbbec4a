"""Where the machine is in its own execution, in the terms history compares moments by."""

from __future__ import annotations

from psyche.machine.cpu import Cpu
from psyche.machine.machine import Machine

#: A node's place in its own execution: (instret, traps taken since the last retired instruction).
Progress = tuple[int, int]
#: Every node's (state, instret, pc, clock): what a logged service point is checked against.
Where = tuple[tuple[str, int, int, int], ...]


def progress(cpu: Cpu) -> Progress:
    """Where a hart is in its own execution: strictly greater after every step it takes."""
    traps = cpu.traps_without_progress + 1 if cpu.last_trap_instret == cpu.instret else 0
    return (cpu.instret, traps)


def vector(machine: Machine) -> list[Progress]:
    """Every node's progress: a moment of the whole machine."""
    return [progress(n.cpu) for n in machine.nodes]


def where(machine: Machine) -> Where:
    """Every node's state, instret, pc and clock: kept for each logged service point and
    compared when re-execution reaches it, so that a divergence is caught where it starts."""
    return tuple((n.state.value, n.cpu.instret, n.cpu.pc, n.cpu.cycles) for n in machine.nodes)
