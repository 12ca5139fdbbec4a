"""The Psyche gdb commands agree with what the machine's own Python API reports.

The module's machine starts from the `stopped` snapshot: booted, then every
node stopped.  Nothing moves while gdb looks, so the same snapshot restored
in this process and read through `Machine` (CPU state, physical memory, with
struct offsets from the DWARF by pyelftools, as the kernel harness reads
them) must give exactly what gdb's types and the mux's lld status give.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from gdbfront.plugin import GdbSessions, Snapshots
from psyche.kernel.harness import kernel_phys, member_offset
from psyche.machine import snapshot
from psyche.machine.elf import load_elf
from psyche.machine.machine import Machine

NODES = 4
pytestmark = [pytest.mark.psyche(nodes=NODES, start="stopped"), pytest.mark.slow, pytest.mark.timeout(90)]


class Reference:
    """The stopped machine in this process, read through the Python API."""

    def __init__(self, machine: Machine, elf: Path) -> None:
        self.machine = machine
        self.elf = elf
        self.image = load_elf(elf)

    def word(self, paddr: int) -> int:
        return int.from_bytes(self.machine.read_phys(paddr, 4), "little")

    def field(self, address: int, struct: str, member: str) -> int:
        return self.word(address + member_offset(self.elf, struct, member))

    def record(self, node: int) -> int:
        """Node's struct node, physically (its official address)."""
        return kernel_phys(self.symbol("this_node"), node)

    def symbol(self, name: str) -> int:
        address = self.image.symbol(name)
        assert address is not None, name
        return address

    def kg(self, member: str) -> int:
        return self.field(kernel_phys(self.symbol("kg")), "kglobals", member)

    def function_at(self, pc: int) -> str:
        with open(self.elf, "rb") as f:
            for symbol in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
                start, size = symbol["st_value"], symbol["st_size"]
                if symbol["st_info"]["type"] == "STT_FUNC" and start <= pc < start + size:
                    return symbol.name
        raise AssertionError(f"no function at {pc:#x}")


@pytest.fixture(scope="module")
def reference(psyche_snapshots: Snapshots, psyche_kernel: Path) -> Reference:
    return Reference(snapshot.restore(psyche_snapshots.get("stopped", NODES)), psyche_kernel)


def test_psyche_nodes_agrees_with_the_machine(gdb: GdbSessions, reference: Reference) -> None:
    gdb1 = gdb(1)
    nodes = gdb1.psyche_data("nodes")
    node_up = gdb1.integer("NODE_UP")
    for k, row in enumerate(nodes):
        cpu = reference.machine.nodes[k].cpu
        assert row["run"] == "stopped" and reference.machine.nodes[k].state.value == "stopped"
        assert row["pc"] == cpu.pc
        assert row["where"].split()[0] == reference.function_at(cpu.pc)
        assert row["ticks"] == reference.field(reference.record(k), "node", "ticks")
        assert row["state"] == "up" and reference.field(reference.record(k), "node", "state") == node_up
        assert gdb1.integer(f"$psyche_pc({k})") == cpu.pc
    text = gdb1.psyche("nodes")
    for row in nodes:
        assert f"{row['pc']:#010x}" in text and f" {row['ticks']} " in text


def test_psyche_heap_agrees_with_the_machine(gdb: GdbSessions, reference: Reference) -> None:
    heaps = gdb(0).psyche_data("heap")
    shared = reference.kg("shared_heap")
    assert heaps[0]["heap"] == "shared" and heaps[0]["base"] == reference.field(shared, "heap", "base")
    for key in ("size", "used", "peak", "allocs"):
        assert heaps[0][key] == reference.field(shared, "heap", key), key
    for k in range(NODES):
        local = reference.record(k) + member_offset(reference.elf, "node", "heap")
        assert heaps[1 + k]["heap"] == f"node {k}"
        assert (heaps[1 + k]["used"], heaps[1 + k]["allocs"]) == (
            reference.field(local, "heap", "used"), reference.field(local, "heap", "allocs"))


def test_psyche_locks_agree_with_the_machine(gdb: GdbSessions, reference: Reference) -> None:
    locks = {row["where"]: row for row in gdb(2).psyche_data("locks")["spinlocks"]}
    shared_lock = reference.kg("shared_heap") + member_offset(reference.elf, "heap", "lock")
    taken = reference.field(shared_lock, "spinlock", "acquisitions")
    assert locks["kg.shared_heap->lock"]["acquisitions"] == taken > 0
    for k in range(NODES):
        runq = reference.record(k) + member_offset(reference.elf, "node", "runq_lock")
        row = locks[f"node {k} runq_lock"]
        held = reference.field(runq, "spinlock", "locked") != 0
        assert (row["held"], row["acquisitions"]) == (held, reference.field(runq, "spinlock", "acquisitions"))
    assert not any(row["held"] for row in locks.values())        # every node stopped outside its locks
