"""One gdb for the whole machine: the mux's machine port, every node a thread, all-stop and non-stop.

Real gdb-multiarch through gdbfront, on a 4-node machine; node k is thread k + 1.
"""

from __future__ import annotations

import re
import time

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbError, GdbSession

NODES = 4
pytestmark = [pytest.mark.psyche(nodes=NODES), pytest.mark.timeout(120)]


def threads(session: GdbSession) -> dict[int, dict[str, str]]:
    """gdb's thread list: thread id -> {name, state, pc (if stopped)}."""
    listed = session.command("-thread-info")["threads"]
    return {int(t["id"]): {"name": t.get("name", ""), "state": t["state"],
                           "pc": t.get("frame", {}).get("addr", "")} for t in listed}


def node_of_thread(session: GdbSession, thread: int) -> int:
    """The node whose memory gdb reads when thread is selected: the kernel's own record says."""
    session.console(f"thread {thread}")
    return session.integer("this_node.id")


def ticks_of(session: GdbSession, thread: int) -> int:
    """A node's clock ticks, read through its thread whether it runs or not."""
    return int(session.command(f"-data-evaluate-expression --thread {thread} this_node.ticks")["value"])


def test_every_node_is_a_thread_and_a_stop_stops_them_all(gdb: GdbSessions) -> None:
    whole = gdb.machine_port()
    listed = threads(whole)
    assert {t: v["name"] for t, v in listed.items()} == {k + 1: f"node {k}" for k in range(NODES)}
    assert all(v["state"] == "stopped" for v in listed.values())        # attaching stops every node
    # each thread reads its own node's memory: the kernel's per-node record at one address
    assert [node_of_thread(whole, k + 1) for k in range(NODES)] == list(range(NODES))

    # a breakpoint is the machine's: whichever node reaches the clock handler first stops there,
    # and every other node stops with it
    whole.breakpoint("clock_intr")
    stop = whole.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "clock_intr")
    assert all(v["state"] == "stopped" for v in threads(whole).values())
    status = whole.console("monitor status")
    assert len(re.findall(r"node +\d+ +stopped", status)) == NODES, status

    # with scheduler-locking, stepi moves the selected node by one instruction and no other
    whole.delete()
    whole.console("set scheduler-locking on")
    before = {t: v["pc"] for t, v in threads(whole).items()}
    whole.console("thread 3")
    whole.stepi()
    after = {t: v["pc"] for t, v in threads(whole).items()}
    assert after[3] != before[3]
    assert {t: pc for t, pc in after.items() if t != 3} == {t: pc for t, pc in before.items() if t != 3}
    whole.console("set scheduler-locking off")

    # ctrl-C while the machine runs: the node gdb is on reports SIGINT, and all of them stop
    whole.cont_nowait()
    time.sleep(0.3)
    stop = whole.interrupt()
    assert stop.reason == "signal-received" and stop.signal == "SIGINT"
    assert all(v["state"] == "stopped" for v in threads(whole).values())


def test_a_node_held_by_its_own_gdb_is_not_in_the_machine_session(
        psyche_machine: PsycheMachine, gdb: GdbSessions) -> None:
    own = gdb(2)
    whole = gdb.machine_port()
    assert {v["name"] for v in threads(whole).values()} == {"node 0", "node 1", "node 3"}
    # and a node the machine session holds refuses a gdb on its own port, naming who has it
    with pytest.raises(GdbError, match=r"node 1 already has a gdb session \(tcp .*\)"):
        gdb(1)
    own.detach()
    whole.detach()
    # detached, every node runs again: the kernel monitor sees all of them tick
    assert "4 up" in psyche_machine.console.command("status")


def test_non_stop_mode_stops_one_node_while_the_others_run(gdb: GdbSessions) -> None:
    whole = gdb.machine_port(non_stop=True)
    assert all(v["state"] == "running" for v in threads(whole).values())   # connecting stopped nothing

    whole.command("-exec-interrupt --thread 3")            # node 2 only
    stop = whole.wait_for_stop()
    assert stop.record.get("thread-id") == "3" and stop.signal in (None, "0")
    listed = threads(whole)
    assert listed[3]["state"] == "stopped"
    assert all(listed[t]["state"] == "running" for t in (1, 2, 4))

    # node 3's clock keeps ticking while node 2 stands still
    stopped_at, running_at = ticks_of(whole, 3), ticks_of(whole, 4)
    time.sleep(0.5)
    assert ticks_of(whole, 3) == stopped_at
    assert ticks_of(whole, 4) > running_at

    # a breakpoint reaches the running nodes at once: the next to take a clock tick stops there
    whole.breakpoint("clock_intr")
    stop = whole.wait_for_stop()
    assert stop.reason == "breakpoint-hit" and stop.func == "clock_intr"
    assert stop.record.get("thread-id") in ("1", "2", "4")
    whole.delete()
    time.sleep(0.3)       # other nodes may have met it in the same clock tick: their stops come too
    deadline = time.monotonic() + 5
    while not all(v["state"] == "running" for v in threads(whole).values()):
        assert time.monotonic() < deadline, threads(whole)
        whole.command("-exec-continue --all")     # (again, for a stop told after the last one)
        time.sleep(0.1)


def test_stepi_moves_the_thread_gdb_is_on_after_thread_apply(gdb: GdbSessions) -> None:
    """gdb 13 steps RISC-V in software: a breakpoint at the next pc, then `vCont;c` for every
    thread, naming none.  After `thread apply` it is back on its thread without an `Hg`, but it
    reads the instruction to step through that thread (`Hg` first), which tells the mux.  (A
    `reverse-stepi` reads nothing first: docs/replay.md says what that means.)"""
    whole = gdb.machine_port()
    whole.breakpoint("clock_intr")
    whole.cont()
    whole.delete()
    whole.console("thread 3")
    for _ in range(3):
        before = {t: v["pc"] for t, v in threads(whole).items()}
        whole.console("thread apply all p $pc")          # ends on thread 3, the last Hg for thread 1
        stop = whole.stepi()
        after = {t: v["pc"] for t, v in threads(whole).items()}
        assert (stop.reason, stop.record.get("thread-id")) == ("end-stepping-range", "3"), stop.record
        assert after[3] != before[3], (before, after)
