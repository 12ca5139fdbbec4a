"""A panic on a restored machine: it stops for the debugger, then runs its course.

lld stops a node that enters the kernel's `panic` (the machine reads the
kernel's symbols even when it starts from a snapshot); its gdb sees the
stop in `panic` with the message, and once continued the node reports and
halts, which another node's gdb sees through `psyche nodes` and
`psyche node N`.  A module of its own: the panicked node stays panicked
(it answers only a restart).
"""

from __future__ import annotations

import time

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions

pytestmark = [pytest.mark.psyche(nodes=4), pytest.mark.slow, pytest.mark.timeout(60)]


def test_a_panic_stops_for_gdb_then_the_king_sees_the_node_panicked(
    psyche_machine: PsycheMachine, gdb: GdbSessions
) -> None:
    psyche_machine.console.command("panic 2")
    deadline = time.monotonic() + 20
    while "node 2 stopped (panic)" not in psyche_machine.output_text():
        assert time.monotonic() < deadline, psyche_machine.output_text()
        time.sleep(0.05)
    node2 = gdb(2)
    assert node2.backtrace()[0].func == "panic"
    assert "panic requested on the console" in node2.evaluate("fmt")
    node2.cont_nowait()
    # The king prints what the node reports: it must be running (its gdb comes after).
    psyche_machine.console.wait_for(r"panic: node 2 stopped; the other nodes run on")

    king = gdb(0)
    nodes = king.psyche_data("nodes")
    assert [n["state"] for n in nodes] == ["up", "up", "panicked", "up"]
    assert nodes[2]["where"].startswith("halt_node")       # asleep for good, in its own copy
    detail = king.psyche_data("node 2")
    assert detail["panic"] == "panic requested on the console"
    assert "panic: panic requested on the console" in king.psyche("node 2")
    ticks = king.integer("$psyche_ticks(2)")
    assert king.integer("$psyche_ticks(1)") > ticks         # its clock stopped with it; the others' did not
