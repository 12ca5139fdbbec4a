"""`restart` while a debugger holds a node (issue 12, bug 7).

The restart used to fail with only "not parked: 1 ... try restart again".  The doorbells' HALTED
register lets the kernel tell that node 1 is stopped by a debugger, so the message says so and
how to release it; once released, the node parks and the restart goes through.
"""

from __future__ import annotations

from pathlib import Path

from psyche.kernel.harness import KernelRun
from psyche.machine.devices import DOORBELL_BASE
from psyche.machine.machine import Machine, MachineConfig, NodeState

DB_HALTED = 0x20


def test_the_halted_register_shows_stopped_nodes_to_every_node() -> None:
    machine = Machine(MachineConfig(nodes=40))
    for index in (1, 33):
        machine.start_node(index, 0x8000_0000)
    machine.stop_node(33)
    bus = machine.mem.bus
    for reader in (0, 5):      # any node reads the same bitmap through its own doorbells
        assert bus.read(reader, DOORBELL_BASE + DB_HALTED, 4) == 0
        assert bus.read(reader, DOORBELL_BASE + DB_HALTED + 4, 4) == 1 << 1
    machine.resume_node(33)
    assert bus.read(0, DOORBELL_BASE + DB_HALTED + 4, 4) == 0


def test_restart_names_the_node_a_debugger_holds_and_how_to_release_it(kernel_elf: Path) -> None:
    run = KernelRun(3, elf=kernel_elf)
    run.boot()
    machine = run.machine
    machine.stop_node(1)                 # what lld does for gdb's attach or ctrl-C
    out = run.command("restart", timeout=60)
    assert "restart failed: only 1 of 2 nodes parked; not parked: 1\n" in out, out
    assert "node 1 did not answer: it is stopped by a debugger" in out, out
    assert "detach" in out and "`cont 1` in the mux console" in out, out
    assert "try restart again once the node is released" in out, out
    assert "node 2" not in out, out     # node 2 parked: nothing to say about it
    assert machine.nodes[1].state is NodeState.STOPPED
    # released, node 1 takes the restart interrupt still pending and parks; the restart goes through
    machine.resume_node(1)
    run.run_cycles(1_000_000)
    out = run.command("restart", timeout=60)
    assert "restarting 3 nodes without reloading" in out, out
    assert "3 nodes: 3 up, 0 panicked; boot 2" in run.command("status")
