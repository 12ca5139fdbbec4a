"""A panicked node, seen from another node's gdb: `psyche nodes` and `psyche node N` tell why.

A module of its own: the panicked node stays panicked (it answers only a restart).
"""

from __future__ import annotations

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions

pytestmark = [pytest.mark.psyche(nodes=4), pytest.mark.slow, pytest.mark.timeout(60)]


def test_a_panicked_node_seen_from_the_kings_gdb(psyche_machine: PsycheMachine, gdb: GdbSessions) -> None:
    psyche_machine.console.command("panic 2")
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
