"""Reverse execution on the machine port (one gdb, every node a thread; mux/machine_port.py).

Real gdb-multiarch against `psyche up --reverse`, on the whole-machine port (base port - 1): bs
and bc go back for the node of the thread gdb is on, the whole machine with it, so every
thread shows the past; a watchpoint stop in the past is reported on the thread of the node
that made the access; non-stop mode refuses reverse execution.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from gdb_util import GDB, gdb, needs_gdb, start_up
from test_reverse import run_selftest

#: As tests/test_reverse.py: a long history that is cheap to re-execute.
HISTORY = ("--reverse-interval", "5000000", "--reverse-keep", "64")
_STATE = ('printf "STATE %d %x %x %x %x %x TICKS %d %d\\n", this_node.id, $pc, $ra, $sp, $a0, $a5, '
          'this_node.ticks, (int)(this_node.next_tick / 1000)')
#: Each node's state, read through its thread.  gdb stays on its thread, but the stub was last
#: told (Hg) of the other one: the flush makes gdb read its registers again, with Hg, so that the
#: mux knows which node gdb means when it resumes all of them (vCont;c) for a software step.
_BOTH = ["thread apply 1 2 -q " + _STATE, "maintenance flush register-cache", "p/x $pc"]
_COUNTER = 'printf "COUNTER %d\\n", kg.selftest->spin_counter'

pytestmark = [needs_gdb, pytest.mark.slow]

State = tuple[str, ...]


def _pairs(out: str) -> list[tuple[State, State]]:
    """(node 0's, node 1's) state at each _BOTH."""
    states = re.findall(r"STATE (\d) (\S+) (\S+) (\S+) (\S+) (\S+) TICKS (\d+) (\d+)", out)
    assert all(a[0] == "0" and b[0] == "1" for a, b in zip(states[::2], states[1::2], strict=True)), states
    return list(zip(states[::2], states[1::2], strict=True))


@pytest.mark.timeout(120)
def test_reverse_stepi_and_continue_move_the_whole_machine(kernel_elf: Path) -> None:
    """All-stop, 2 nodes: stepi on the thread that hit clock_intr, reverse-stepi back, stepi again:
    both threads read the same registers at every point (the other node stands still while one
    steps, back and forth).  reverse-continue then goes back to that node's earlier clock ticks,
    and the other node's thread shows the past too (it ran until the machine stopped); continue
    goes forward through the history to the next hit, where every register is as it was."""
    steps = 25
    commands = ["break clock_intr", "continue", "delete", *_BOTH]
    commands += ["stepi", *_BOTH] * steps
    commands += ["reverse-stepi", *_BOTH] * steps
    commands += ["stepi", *_BOTH] * steps
    commands += ["break clock_intr", "echo BACK\\n"]
    commands += ["reverse-continue", *_BOTH] * 3
    commands += ["continue", *_BOTH]
    # on through the rest of the history (every node stopped at its end: re-execution reaches
    # its end only by moving machine time on as the runner did, with wall time), then live
    commands += ["continue"] * 5 + ["echo LIVE\\n", *_BOTH]
    up = start_up(kernel_elf, 2, *HISTORY)
    try:
        out = gdb(kernel_elf, f"127.0.0.1:{up.base_port - 1}", *commands, "detach", timeout=110)
    finally:
        up.stop()
    me = int(re.search(r'Thread \d "node (\d)" hit Breakpoint 1', out).group(1))   # stops, then steps
    other = 1 - me
    before, after = out.split("BACK")
    after, live = after.split("LIVE")
    pairs = _pairs(before)
    assert len(pairs) == 3 * steps + 1, out[-3000:]
    forward, backward, again = pairs[: steps + 1], pairs[steps: 2 * steps + 1], pairs[2 * steps:]
    # After the first step every node is stopped: each step back is exactly where the machine
    # was.  The last one goes to the first moment the node stood at its breakpoint (reverse-stepi
    # goes to the first moment of a node's progress), before the other node was stopped.
    assert backward[:steps] == forward[1:][::-1], out[-3000:]
    assert backward[steps][me] == forward[0][me], out[-3000:]
    assert again[1:] == forward[1:], out[-3000:]
    assert len({p[me] for p in forward}) > steps // 2      # the node gdb is on moved
    assert len({p[other] for p in forward}) == 1           # the other did not
    assert "No more reverse-execution history" not in out, out[-3000:]
    assert "error" not in out.lower(), out[-3000:]

    now = pairs[-1]
    back = _pairs(after)
    assert len(back) == 4, out[-3000:]
    ticks = [int(b[me][6]) for b in back[:3]]
    # back hit by hit, the latest first (at clock_intr's entry, the tick is not counted yet)
    assert ticks == [ticks[0], ticks[0] - 1, ticks[0] - 2] and ticks[0] <= int(now[me][6]), (now, back)
    # the other node went back with it: three ticks earlier, its clock was behind where it stopped
    assert int(back[2][other][7]) < int(now[other][7]), (now, back)
    assert back[2][other] != now[other]
    # forward again through the history to the next hit: the very moment of the second stop back
    assert back[3] == back[1], (back[3], back[1])
    # and on, live: later ticks than any the history had
    assert sum(int(n[6]) for n in _pairs(live)[0]) > sum(int(n[6]) for n in now), (now, live)
    assert "HistoryError" not in out, out[-3000:]


def _watch_back_on_the_machine_port(kernel_elf: Path) -> tuple[str, list[int]]:
    """A fresh machine's self-test, then gdb on the machine port watching the counter back and
    forth from thread 3 (node 2): gdb's output, and the node each stop's thread reads."""
    up = start_up(kernel_elf, 4, *HISTORY)
    try:
        run_selftest(up)
        stop = ["echo STOP\\n", _COUNTER, "printf \"NODE %d\\n\", this_node.id", "list *$pc,+0"]
        commands = ["thread 3", "watch -l kg.selftest->spin_counter", _COUNTER]
        commands += ["reverse-continue", *stop] * 5
        commands += ["continue", *stop]
        out = gdb(kernel_elf, f"127.0.0.1:{up.base_port - 1}", *commands, "detach", timeout=140)
    finally:
        up.stop()
    return out, [int(n) for n in re.findall(r"NODE (\d)", out)]


@pytest.mark.timeout(300)
def test_a_reverse_watchpoint_stop_is_reported_on_the_accessors_thread(kernel_elf: Path) -> None:
    """4 nodes run the lock self-test (each increments a shared counter 20 times under a spin
    lock).  gdb on the machine port watches the counter: each reverse-continue stops at the store
    before, on the thread of the node that made it, which stands at that store (gdb shows its pc
    directly: no note of the mux's is needed); continue goes forward through history to the
    next store, reported the same way.

    Now and then node 2, whose thread gdb starts on, makes all of the last stores (how the
    nodes interleave depends on when the console's input reached the machine), and no stop
    moves gdb to another thread: the test then runs once more on a fresh machine."""
    out, nodes = _watch_back_on_the_machine_port(kernel_elf)
    if set(nodes) == {2}:
        out, nodes = _watch_back_on_the_machine_port(kernel_elf)
    counters = [int(c) for c in re.findall(r"COUNTER (\d+)", out)]
    assert counters[:6] == [80, 79, 78, 77, 76, 75], out[-4000:]
    for new in range(79, 74, -1):
        assert re.search(rf"Old value = {new + 1}\s+New value = {new}\n", out), out[-4000:]
    assert len(counters) == 7 and counters[6] >= 76, out[-4000:]
    stops = out.split("STOP")[1:]
    assert len(stops) == 6, out[-4000:]
    reporters = []
    for text in stops:
        # the stop names the accessor's thread; that thread (now selected) reads its own node
        reporters.append(int(re.search(r"NODE (\d)", text).group(1)))
    for text in stops[:5]:
        # going back, it stands at its store (gdb's step back over the watchpoint leaves it there);
        # going forward gdb steps it over the store first
        assert "st->spin_counter = v + 1;" in text, text
    hits = re.findall(r'Thread (\d) "node (\d)" hit Hardware watchpoint', out)
    assert len(hits) == 6 and all(int(t) == int(n) + 1 for t, n in hits), hits
    assert [int(n) for _, n in hits] == reporters, (hits, reporters)
    assert set(reporters) - {2}, reporters       # other nodes' stores, not only node 2's (thread 3)
    assert "the access was made by node" not in out
    assert "No more reverse-execution history" not in out


@pytest.mark.timeout(90)
def test_non_stop_mode_refuses_reverse_execution(kernel_elf: Path) -> None:
    """In non-stop mode each node runs and stops alone; the machine only goes back as a whole:
    bs and bc are refused, saying why, and the command ends where it began (the stop told again
    as the start of the history: gdb waits for one).  (A halted machine: gdb finds the king
    stopped at its entry when it connects, as non-stop mode leaves it.)"""
    assert GDB is not None
    up = start_up(kernel_elf, 1, "--halted", *HISTORY)
    try:
        args = [GDB, "-batch", "-nx", str(kernel_elf), "-ex", "set confirm off", "-ex", "set non-stop on",
                "-ex", f"target remote 127.0.0.1:{up.base_port - 1}"]
        for command in ["stepi", 'printf "PC %x\\n", $pc', "reverse-stepi", 'printf "PC %x\\n", $pc',
                        "reverse-continue", 'printf "PC %x\\n", $pc', "detach"]:
            args += ["-ex", command]
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
    finally:
        up.stop()
    assert text.count("reverse execution on the machine port needs all-stop mode") == 2, text[-3000:]
    assert text.count("No more reverse-execution history.") == 2, text[-3000:]
    pcs = re.findall(r"PC ([0-9a-f]+)", text)
    assert len(pcs) == 3 and len(set(pcs)) == 1, text[-3000:]     # nothing moved
    assert "detached" in text, text[-3000:]
