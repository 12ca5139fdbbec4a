"""A halted start (`psyche machine --halted`, `psyche up --halted`), as QEMU's -S gives.

The king stops before its first instruction, at the ELF entry, and reports a stop that
the mux turns into SIGTRAP; nodes the kernel has not started stay held.  Through gdb,
`p $pc` is the entry and `stepi` executes the first instruction.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from gdb_util import gdb, needs_gdb, start_up

from lld import protocol as p
from lld.attach import Lld
from lld.target import NodeTarget
from lld.testing import TargetGuest, build_target_guest
from psyche.commands.machine_cmd import _halt
from psyche.machine.machine import NodeState

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


def test_a_halted_machine_executes_nothing(guest: TargetGuest) -> None:
    machine = guest.boot(nodes=2)
    lld = Lld(machine)
    _halt(machine)
    machine.run(100_000)                                  # rounds pass: nothing may run
    king, other = machine.nodes
    assert (king.state, king.cpu.pc, king.cpu.instret) == (NodeState.STOPPED, guest.image.entry, 0)
    assert other.state is NodeState.HELD                  # the kernel has not started it
    status = lld.nodes[0].status()
    assert (status.state, status.reason, status.pc, status.instret) == (
        p.STATE_STOPPED, p.REASON_REQUESTED, guest.image.entry, 0)
    assert lld.nodes[1].status().state == p.STATE_HELD


def test_a_node_started_after_a_halted_start_runs(guest: TargetGuest) -> None:
    """Held nodes stay held, then run as soon as the king starts them (they are not halted)."""
    machine = guest.boot(nodes=2)
    _halt(machine)
    machine.resume_node(0)
    machine.run(20_000)
    assert machine.nodes[1].state is NodeState.RUNNING
    assert machine.nodes[1].cpu.instret > 0


def test_resuming_over_a_breakpoint_on_code_that_never_ran(guest: TargetGuest) -> None:
    """From a halted start a breakpoint sits on code never decoded: stepping or resuming from
    the stop there executes it (the CPU decoded it after the breakpoint check, then checked
    again and stopped without moving)."""
    machine = guest.boot(nodes=1)
    _halt(machine)
    target = NodeTarget(machine, 0)
    store = guest.sym("spin_store")
    target.insert_breakpoint(store)
    target.resume()
    assert machine.run(100_000) == [machine.nodes[0]]
    assert machine.nodes[0].cpu.pc == store
    target.step(take_interrupts=False)
    assert machine.nodes[0].cpu.pc == store + 4
    target.resume()                                       # and round the loop to the breakpoint again
    assert machine.run(100_000) == [machine.nodes[0]]
    assert machine.nodes[0].cpu.pc == store


def test_halted_needs_a_debug_line(guest: TargetGuest) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "psyche.cli", "machine", "--kernel", str(guest.path), "--halted",
         "--debug-line", "null", "--console", "null"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--halted needs a debug line" in result.stderr


@needs_gdb
@pytest.mark.slow
def test_gdb_finds_a_halted_node_at_the_entry_and_steps_its_first_instruction(guest: TargetGuest) -> None:
    up = start_up(guest.path, 2, "--halted")
    try:
        out = gdb(guest.path, f"127.0.0.1:{up.port(0)}", "p/x $pc", "p $instret", "stepi", "p/x $pc",
                  "p $instret", "detach")
    finally:
        up.stop()
    entry = guest.image.entry
    values = re.findall(r"^\$\d+ = (\S+)", out, re.MULTILINE)
    assert values == [f"{entry:#x}", "0", f"{entry + 4:#x}", "1"], out
    assert "SIGTRAP" not in out and "SIGINT" not in out   # attaching finds a plain stop (T05)
