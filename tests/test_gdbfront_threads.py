"""A node's kernel threads in real gdb: `info threads`, `thread N` + `bt` from a saved context,
ids kept across stops, and the registers of a thread that is not running read-only."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbError, GdbSession

pytestmark = [pytest.mark.psyche(nodes=2), pytest.mark.slow, pytest.mark.timeout(120)]

WORKERS = 30          # with the monitor and the idle thread: 32 threads on node 0


def thread_table(gdb: GdbSession) -> dict[str, dict[str, Any]]:
    """gdb's thread list (-thread-info) by thread name, the current one with current=True."""
    info = gdb.command("-thread-info")
    return {t["name"]: {**t, "current": t["id"] == info["current-thread-id"]} for t in info["threads"]}


def functions(gdb: GdbSession) -> list[str | None]:
    return [frame.func for frame in gdb.backtrace()]


def ends_cleanly(gdb: GdbSession) -> bool:
    return "Backtrace stopped" not in gdb.console("bt")


def test_a_blocked_thread_is_listed_and_backtraced_from_its_saved_context(gdb: GdbSessions) -> None:
    node1 = gdb(1)
    threads = thread_table(node1)
    assert set(threads) == {"daemon", "idle"}
    daemon, idle = threads["daemon"], threads["idle"]
    assert daemon["details"] == "blocked on daemon work" and not daemon["current"]
    assert idle["details"] == "running" and idle["current"]   # a node with nothing to do idles

    node1.console(f"thread {daemon['id']}")
    assert functions(node1)[:4] == ["sched_switch", "sched_block", "sem_P", "daemon_loop"]
    assert ends_cleanly(node1)
    with pytest.raises(GdbError, match=r"Could not write register \"s1\".*thread \d+ \(daemon\) is blocked "
                                       r"on daemon work, not running"):
        node1.console("set $s1 = 5")
    assert "<unavailable>" in node1.console("info registers a0")   # caller-saved: not in the context
    node1.console(f"thread {idle['id']}")                          # the running thread: all live
    assert "<unavailable>" not in node1.console("info registers a0")
    assert functions(node1)[-2:] == ["thread_start", "thread_entry"] and ends_cleanly(node1)


def test_many_threads_keep_their_ids_and_a_preempted_one_unwinds_through_its_trap(
        gdb: GdbSessions, psyche_machine: PsycheMachine) -> None:
    assert "started on node 0" in psyche_machine.console.command(f"workers {WORKERS}")
    node0 = gdb(0)
    first = {name: t["id"] for name, t in thread_table(node0).items()}
    assert len(first) == WORKERS + 2 and {"worker0", "worker1", f"worker{WORKERS - 1}"} <= set(first)

    for _ in range(3):
        node0.cont_nowait()
        time.sleep(0.2)
        node0.interrupt()
        threads = thread_table(node0)
        assert {name: t["id"] for name, t in threads.items()} == first
        current = [name for name, t in threads.items() if t["current"]]
        assert len(current) == 1 and threads[current[0]]["details"] == "running"
        assert all(t["details"] != "running" for t in threads.values() if not t["current"])

    # The two computing workers are preempted by the clock: whichever does not run now was
    # switched out inside a trap, and its backtrace goes through the trap frame into its loop.
    preempted = next(name for name in ("worker0", "worker1") if not threads[name]["current"])
    assert threads[preempted]["details"] == "ready"
    node0.console(f"thread {first[preempted]}")
    frames = functions(node0)
    assert frames[:3] == ["sched_switch", "yield", "preempt"]
    assert frames[frames.index("trap_entry") + 1] == "worker_loop"
    assert frames[-2:] == ["thread_start", "thread_entry"] and ends_cleanly(node0)

    waiting = threads[f"worker{WORKERS - 1}"]
    assert waiting["details"] == "blocked on workers idle"
    node0.console(f"thread {waiting['id']}")
    assert functions(node0)[:4] == ["sched_switch", "sched_block", "sem_P", "worker_loop"]


def test_a_node_stopped_in_user_code_still_lists_its_threads(gdb: GdbSessions,
                                                             psyche_machine: PsycheMachine) -> None:
    node1 = gdb(1)
    node1.breakpoint("user_exception")    # the program's first instruction faults its page in
    node1.cont_nowait()
    psyche_machine.console.command("spawn 1 hello")
    node1.wait_for_stop()
    entry = node1.integer("tf->sepc")
    node1.delete()
    node1.breakpoint(f"*{entry:#x}")
    node1.cont()
    assert node1.integer("$priv") == 0 and node1.integer("$pc") == entry
    threads = thread_table(node1)
    # the daemon runs the program: a VP of the program's domain
    assert threads["daemon"]["current"]
    assert re.fullmatch(r"running, VP \d+ in domain \d+", threads["daemon"]["details"]), threads
    assert threads["idle"]["details"] == "ready"
