"""Running guest programs on machines, for the tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from psyche.guestbuild import GUEST_DIR
from psyche.machine.elf import load_elf
from psyche.machine.machine import Machine, MachineConfig
from psyche.machine.tohost import TohostMonitor, TohostResult


def machine_options(path: Path) -> dict[str, bool]:
    """MachineConfig options a guest program asks for in its source's `MACHINE-OPTIONS:` line."""
    source = GUEST_DIR / f"{Path(path).stem}.S"
    if not source.exists():
        return {}
    for line in source.read_text().splitlines()[:60]:
        if "MACHINE-OPTIONS:" in line:
            return {name: True for name in line.split("MACHINE-OPTIONS:", 1)[1].split()}
    return {}


def boot(
    path: Path, nodes: int = 1, quantum: int = 1000, remote_penalty: int = 7
) -> tuple[Machine, TohostMonitor]:
    image = load_elf(path)
    machine = Machine(MachineConfig(nodes=nodes, quantum=quantum, remote_penalty=remote_penalty,
                                    **machine_options(path)))
    monitor = TohostMonitor(machine, image)
    machine.load(image)
    return machine, monitor


def run_to_result(machine: Machine, monitor: TohostMonitor, max_rounds: int = 200_000) -> TohostResult:
    for _ in range(max_rounds):
        machine.run_round()
        if monitor.result is not None:
            return monitor.result
        if machine.idle():
            raise AssertionError(f"machine went idle without a result (king pc {machine.king.cpu.pc:#x})")
    raise AssertionError("no result within the round limit")


def trace_hash(machine: Machine, monitor: TohostMonitor, rounds: int) -> str:
    """Hash of every node's pc, clock and instruction count after every round."""
    h = hashlib.sha256()
    for _ in range(rounds):
        machine.run_round()
        for node in machine.nodes:
            cpu = node.cpu
            h.update(f"{machine.time} {node.index} {cpu.pc} {cpu.cycles} {cpu.instret};".encode())
        if monitor.result is not None:
            break
    return h.hexdigest()
