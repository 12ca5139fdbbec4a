"""A domain's user-level processes in real gdb: the threads its thread package publishes.

`park 1 5`, spawned on node 1, runs five processes of the thread package (psyche/user/uthread.c)
that yield to each other for ever.  gdb on node 1 names the one the VP runs on the VP's thread;
the others are threads of their own, backtraced from the context they saved.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbError, GdbSession

pytestmark = [pytest.mark.psyche(nodes=2), pytest.mark.slow, pytest.mark.timeout(120)]

PARK_ELF = Path(__file__).resolve().parent.parent / "build" / "user" / "park.elf"


def thread_table(gdb: GdbSession) -> dict[str, dict[str, Any]]:
    info = gdb.command("-thread-info")
    return {t["name"]: {**t, "current": t["id"] == info["current-thread-id"]} for t in info["threads"]}


def test_a_domains_processes_are_threads_with_the_context_they_saved(
        gdb: GdbSessions, psyche_machine: PsycheMachine) -> None:
    console = psyche_machine.console
    console.command("spawn 1 park 1 5")
    code = int(console.wait_for(r"park: domain \d+, code (0x[0-9a-f]+)-").group(1), 16)
    console.wait_for(r"park: 5 processes")
    # The processes start running just after that line; on a loaded host the machine may not have
    # got so far yet, and a process that has never run has not given way anywhere: look again.
    deadline = time.monotonic() + 20
    while True:
        time.sleep(0.2)
        node1 = gdb(1)
        threads = thread_table(node1)
        # the VP runs one of them, or (caught between two) its scheduler loop, which is no process
        details = threads["daemon"]["details"]
        running = re.fullmatch(r"running, VP \d+ in domain (\d+)(?:, process (\d))?", details)
        assert running, threads
        domain = running.group(1)
        on_vp = int(running.group(2)) if running.group(2) else None
        waiting = {name: t for name, t in threads.items() if name.startswith("process ")}
        assert set(waiting) == {f"process {n}" for n in range(1, 6) if n != on_vp}
        assert all(t["details"] == f"ready, domain {domain}" for t in waiting.values()), waiting

        # with the program's symbols, a waiting process unwinds from where it gave way
        node1.console(f"add-symbol-file {PARK_ELF} -o {code:#x}")
        node1.console(f"thread {next(iter(waiting.values()))['id']}")
        frames = [f.func for f in node1.backtrace()]
        if "ut_yield" in frames or time.monotonic() > deadline:
            break
        node1.detach()
    assert frames[frames.index("ut_yield"):] == ["ut_yield", "yielder", "ut_start", "ut_entry"], frames
    assert "Backtrace stopped" not in node1.console("bt")      # ut_entry is the outermost frame
    with pytest.raises(GdbError, match=r"not running: its registers are the context it saved"):
        node1.console("set $s0 = 1")

    # Caught in the middle of a switch, in or out, each process shows exactly once: on the VP
    # that names it, or among the waiting ones (once, a process marked running that no VP
    # named was shown nowhere).
    node1.console("thread 1")
    for after in ("vp->desc.process = p->pub.name;", "if (p->pub.state == UT_RUNNING) {"):
        line = uthread_line(after) + 1
        node1.tbreak(f"uthread.c:{line}")
        stop = node1.cont(timeout=30)
        assert stop.line == line, stop
        threads = thread_table(node1)
        named = re.fullmatch(r"running, VP \d+ in domain \d+, process (\d)", threads["daemon"]["details"])
        assert named, threads["daemon"]
        waiting = {name for name in threads if name.startswith("process ")}
        assert waiting == {f"process {n}" for n in range(1, 6) if n != int(named.group(1))}, threads


def uthread_line(text: str) -> int:
    """The line of the scheduler loop's switch (psyche/user/uthread.c) that is text."""
    source = (Path(__file__).resolve().parent.parent / "psyche" / "user" / "uthread.c").read_text()
    return next(i for i, line in enumerate(source.splitlines(), 1) if line.strip() == text)
