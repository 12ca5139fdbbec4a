"""Booting the kernel: Figure 3's startup on 1, 2 and 16 nodes, replication, address spaces."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from psyche.kernel.build import KERNEL_VBASE
from psyche.kernel.harness import KernelRun, kernel_phys
from psyche.machine.physmem import NODE_RAM_SIZE, RAM_BASE

PSYCHE = [sys.executable, "-m", "psyche.cli"]
EPISODES = 3


def boot_log_is_complete(log: str, nodes: int) -> None:
    for episode in range(1, EPISODES + 1):
        assert f"barrier {episode} of {EPISODES} passed: {nodes} nodes" in log, log
    assert f"king node 0 of {nodes} nodes" in log
    assert f"boot complete: {nodes} nodes up" in log
    assert "WARNING" not in log and "panic" not in log
    # Each episode's report says that every node did its part.
    assert f"{nodes} of {nodes} reached every kernel instance" in log
    assert f"{nodes} code copies match checksum" in log
    assert f"{nodes} of {nodes} answered a synchronous call" in log


@pytest.mark.timeout(90)
@pytest.mark.parametrize("nodes", [1, 2, 16])
def test_boot_to_prompt_with_psyche_machine(kernel_elf: Path, nodes: int) -> None:
    result = subprocess.run(
        [*PSYCHE, "machine", "--nodes", str(nodes), "--kernel", str(kernel_elf),
         "--until", "psyche> ", "--max-seconds", "60", "--console", "null", "--debug-line", "null"],
        capture_output=True, text=True, timeout=80,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout.replace("\r\n", "\n")
    boot_log_is_complete(log, nodes)
    assert re.search(r"console matched 'psyche> ' after [\d.]+ s, simulated time \d+ cycles", result.stderr)


@pytest.mark.parametrize("nodes", [1, 2, 16])
def test_boot_log_names_every_episode(kernel_elf: Path, nodes: int) -> None:
    run = KernelRun(nodes, elf=kernel_elf)
    log = run.boot()
    boot_log_is_complete(log, nodes)
    # The episodes come in order, after replication and before the prompt.
    positions = [log.index(f"barrier {e} of {EPISODES} passed") for e in range(1, EPISODES + 1)]
    assert positions == sorted(positions)
    if nodes > 1:
        assert log.index("king: replicated") < positions[0]
        assert f"started {nodes - 1} node" in log


def test_instruction_fetches_stay_local(kernel_elf: Path) -> None:
    """Every node runs its own copy: not one instruction crosses the switch, then or later."""
    run = KernelRun(16, elf=kernel_elf)
    run.boot()
    run.command("status")
    run.run_cycles(300_000)  # a few clock ticks on every node
    for node in run.machine.nodes:
        cpu = node.cpu
        assert cpu.remote_fetches == 0, f"node {node.index}: {cpu.remote_fetches} remote fetches"
        assert cpu.local_refs > 0
        if node.index:
            # Shared kernel data live in the king's RAM: peers reach them remotely.
            assert cpu.remote_refs > 0


def test_each_node_maps_the_kernel_onto_its_own_memory(kernel_elf: Path) -> None:
    run = KernelRun(4, elf=kernel_elf)
    run.boot()
    machine = run.machine
    clock_intr = run.symbol("clock_intr")
    this_node = run.symbol("this_node")
    for k in range(4):
        base = RAM_BASE + k * NODE_RAM_SIZE
        # local kernel window: this node's RAM, at the addresses gdb knows
        assert machine.translate(k, clock_intr) == kernel_phys(clock_intr, k)
        assert machine.translate(k, this_node, write=True) == kernel_phys(this_node, k)
        assert machine.translate(k, KERNEL_VBASE) == base
        # code is read-only
        assert machine.translate(k, clock_intr, write=True) is None
        # kernel/kernel window: every node's RAM at its physical address
        for j in range(4):
            other = RAM_BASE + j * NODE_RAM_SIZE + 0x1234
            assert machine.translate(k, other, write=True) == other
        # the user part of the uniform address space is empty in kernel/kernel space
        assert machine.translate(k, 0x1000_0000) is None
        # each node's record is its own, reachable by peers at its official address
        assert run.node_field(k, "id") == k
        assert run.node_field(k, "official") == kernel_phys(this_node, k)


def test_the_debuggers_scratch_area_is_never_the_kernels(kernel_elf: Path) -> None:
    """The top 64 KiB of every node's RAM stay as the machine made them (zero) through a boot:
    no frame pool reaches into them, so a debugger's test may write there (scripts/fuzz_mux)."""
    run = KernelRun(4, elf=kernel_elf)
    run.boot()
    for k in range(4):
        scratch = RAM_BASE + k * NODE_RAM_SIZE + NODE_RAM_SIZE - 0x10000
        assert run.machine.read_phys(scratch, 0x10000) == bytes(0x10000), k


def test_each_node_keeps_its_own_tick_count(kernel_elf: Path) -> None:
    run = KernelRun(4, elf=kernel_elf)
    run.boot()
    before = [run.node_field(k, "ticks") for k in range(4)]
    run.run_cycles(500_000)  # 50 ms of simulated time: 5 ticks at 100 Hz
    after = [run.node_field(k, "ticks") for k in range(4)]
    for k in range(4):
        assert 4 <= after[k] - before[k] <= 6, (before, after)
    out = run.command("ticks")
    for k in range(4):
        assert re.search(rf"\b{k}:(\d+)", out), out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_128_nodes_boot(kernel_elf: Path) -> None:
    run = KernelRun(128, elf=kernel_elf)
    log = run.boot(timeout=90)
    boot_log_is_complete(log, 128)
    assert all(node.cpu.remote_fetches == 0 for node in run.machine.nodes)
