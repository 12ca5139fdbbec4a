"""Sixteen gdb sessions on sixteen nodes at once, all through one mux and one debug line."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbSession

NODES = 16
pytestmark = [pytest.mark.psyche(nodes=NODES), pytest.mark.slow, pytest.mark.timeout(120)]


def stop_in_clock_intr(session: GdbSession) -> tuple[int, int, int]:
    """Break in this node's clock handler: (node, pc, ticks) there."""
    session.breakpoint("clock_intr")
    stop = session.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "clock_intr")
    node, ticks = session.integer("$psyche_node()"), session.integer("this_node.ticks")
    return node, session.registers("pc")["pc"], ticks


def test_sixteen_sessions_on_sixteen_nodes(psyche_machine: PsycheMachine, gdb: GdbSessions) -> None:
    with ThreadPoolExecutor(NODES) as pool:
        sessions = list(pool.map(gdb, range(NODES)))
        stops = list(pool.map(stop_in_clock_intr, sessions))
    assert [node for node, _, _ in stops] == list(range(NODES))   # each gdb is on its own node

    # Every node is stopped in its handler; any one gdb sees them all, as each own gdb does.
    nodes = sessions[5].psyche_data("nodes")
    assert [n["run"] for n in nodes] == ["stopped"] * NODES
    assert [(n["node"], n["pc"], n["ticks"]) for n in nodes] == stops
    assert [n["attached"] for n in nodes] == [k == 5 for k in range(NODES)]

    with ThreadPoolExecutor(NODES) as pool:
        list(pool.map(GdbSession.detach, sessions))
    # Detached, the whole machine runs on: the kernel monitor sees every clock tick.
    ticks = dict(re.findall(r"(\d+):(\d+)", psyche_machine.console.command("ticks")))
    assert {int(k): int(t) for k, t in ticks.items()}.keys() == set(range(NODES))
    assert all(int(ticks[str(node)]) > t for node, _, t in stops)
