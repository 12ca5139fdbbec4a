"""Debugging the boot: the king stopped in barrier_sync (Figure 3's first barrier), the others inspected.

The module's machine starts from the `startup` snapshot: the kernel loaded on
4 nodes and the king stopped on the first instruction of `startup`, before
any node has initialized anything.  Nothing runs until gdb says so.
"""

from __future__ import annotations

import time

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbError

pytestmark = [pytest.mark.psyche(nodes=4, start="startup"), pytest.mark.slow, pytest.mark.timeout(90)]


def test_stop_the_king_in_barrier_sync_during_boot_and_inspect_the_others(psyche_machine: PsycheMachine,
                                                                          gdb: GdbSessions) -> None:
    king = gdb(0)
    assert king.last_stop is not None and king.last_stop.func == "startup"
    with pytest.raises(GdbError, match="has not set up the shared data"):
        king.psyche("nodes")                                # no node table yet, and it says so
    king.breakpoint("barrier_sync")
    stop = king.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "barrier_sync")
    assert [frame.func for frame in king.backtrace(2)] == ["barrier_sync", "startup"]
    assert "king: started 3 nodes" in psyche_machine.console.text()
    assert "barrier 1 of 3 passed" not in psyche_machine.console.text()

    # The king started the others before its barrier; they reach it and wait for the king.
    deadline = time.monotonic() + 10
    while king.integer("kg.barrier->arrived") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert king.integer("kg.barrier->arrived") == 3 and king.integer("kg.barrier->episode") == 0
    nodes = king.psyche_data("nodes")
    assert [n["state"] for n in nodes] == ["up"] * 4        # every record is in the node table
    assert [n["ticks"] for n in nodes] == [0] * 4           # clocks start in episode 3
    assert [n["run"] for n in nodes] == ["stopped", "running", "running", "running"]
    assert all(n["where"].startswith(("wait_step", "barrier_sync")) for n in nodes[1:]), nodes

    # One of them, up close: asleep in the barrier's wait, its boot thread current.
    node2 = gdb(2)
    assert [frame.func for frame in node2.backtrace(3)] == ["wait_step", "barrier_sync", "startup"]
    detail = node2.psyche_data("node")
    assert (detail["node"], detail["barriers_passed"], detail["thread"]) == (2, 0, "boot")
    assert "memory checks not done yet" in node2.psyche("node 2")
    node2.detach()

    # The king arrives last and lets everyone through; the boot then runs to the prompt.
    stop = king.finish()
    assert (stop.reason, stop.func) == ("function-finished", "startup")
    assert king.integer("kg.barrier->episode") == 1 and king.integer("this_node.barriers_passed") == 1
    king.delete()
    king.detach()
    psyche_machine.console.wait_for(r"barrier 1 of 3 passed: 4 nodes")
    psyche_machine.console.wait_for(r"boot complete: 4 nodes up")
