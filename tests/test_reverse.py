"""Reverse execution through plain gdb (lld's REVERSE, lld/history/; docs/replay.md).

Real gdb-multiarch against `psyche up --reverse`: the mux announces ReverseStep+ and
ReverseContinue+, and serves bs and bc by moving the whole machine back in the history the
machine keeps in memory.  Node 1 of a 2-node kernel, so every request crosses the king's
mailbox (and node 0 runs on while gdb talks: the history has both nodes' inputs to re-execute).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gdb_util import GDB, Up, gdb, needs_gdb, start_up
from test_kernel_user_gdb import Console

REGS = ("pc", "ra", "sp", "a0", "a1", "a5", "s0")
_PRINT = "printf \"STATE " + " ".join("%x" for _ in REGS) + "\\n\", " + ", ".join(f"${r}" for r in REGS)
_TICKS = 'printf "TICKS %d\\n", this_node.ticks'
#: A history long enough for a hundred gdb steps (each is ~1 M cycles of machine time: node 0
#: runs on while gdb talks), and cheap to re-execute (the machine mostly sleeps).
HISTORY = ("--reverse-interval", "5000000", "--reverse-keep", "64")

pytestmark = [needs_gdb, pytest.mark.slow]


def _states(out: str) -> list[tuple[str, ...]]:
    """The register tuples printed by the `printf` markers, in order."""
    return re.findall(r"STATE (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)", out)


def _ticks(out: str) -> list[int]:
    return [int(t) for t in re.findall(r"TICKS (\d+)", out)]


def _session(kernel: Path, *commands: str) -> str:
    up = start_up(kernel, 2, *HISTORY)
    try:
        return gdb(kernel, f"127.0.0.1:{up.port(1)}", *commands, "detach", timeout=50)
    finally:
        up.stop()


@pytest.mark.timeout(60)
def test_reverse_stepi_retraces_stepi_exactly(kernel_elf: Path) -> None:
    """100 stepi, 100 reverse-stepi, 100 stepi again: the registers at every point agree."""
    steps = 100
    commands = ["break clock_intr", "continue", "delete", _PRINT]
    commands += ["stepi", _PRINT] * steps
    commands += ["reverse-stepi", _PRINT] * steps
    commands += ["stepi", _PRINT] * steps
    out = _session(kernel_elf, *commands)
    states = _states(out)
    assert len(states) == 3 * steps + 1, out[-3000:]
    forward = states[: steps + 1]
    backward = states[steps: 2 * steps + 1]
    again = states[2 * steps:]
    assert backward == forward[::-1], out[-3000:]
    assert again == forward
    assert len(set(forward)) > 50   # it did move
    assert "No more reverse-execution history" not in out


@pytest.mark.timeout(60)
def test_reverse_continue_stops_at_the_latest_earlier_hit(kernel_elf: Path) -> None:
    """Four clock ticks forward; reverse-continue goes back hit by hit (the most recent first),
    continue replays forward to the next hit, and with no hit left the history's start is
    reported as gdb reports it: "No more reverse-execution history."."""
    commands = ["break clock_intr", "continue"]
    commands += ["continue", _TICKS] * 4
    commands += ["reverse-continue", _TICKS] * 2
    commands += ["continue", _TICKS]
    commands += ["delete", "break panic", "reverse-continue", "echo END\\n"]
    out = _session(kernel_elf, *commands)
    ticks = _ticks(out)
    assert len(ticks) == 7, out[-3000:]
    forward, back, again = ticks[:4], ticks[4:6], ticks[6]
    assert forward == sorted(forward) and len(set(forward)) == 4, forward
    assert back == [forward[2], forward[1]], (forward, back)   # the latest hit first, then the one before
    assert again == forward[2], (forward, again)                # forward again, through history
    assert "No more reverse-execution history." in out.split(f"TICKS {again}")[-1], out[-2000:]
    assert "END" in out


@pytest.mark.timeout(60)
def test_a_write_in_the_past_discards_the_future(kernel_elf: Path) -> None:
    """A memory write after reverse-stepi makes that past the present: gdb is told at the next
    stop, the write stays, the machine runs on from there, and history starts again there."""
    commands = ["break clock_intr", "continue", "delete"]
    commands += ["stepi"] * 10
    commands += ["reverse-stepi"] * 5
    commands += ["set var this_node.ticks = 4242", "stepi", _TICKS,
                 "reverse-stepi", _TICKS,            # back to the write (the new history's start)
                 "reverse-stepi", "echo END\\n"]
    out = _session(kernel_elf, *commands)
    assert "discarded its recorded future" in out, out[-3000:]
    assert _ticks(out) == [4242, 4242], out[-3000:]
    # The old future is gone: one step back is as far as the new history goes.
    assert out.count("No more reverse-execution history.") == 1, out[-3000:]
    assert "END" in out


_COUNTER = 'printf "COUNTER %d\\n", kg.selftest->spin_counter'


@pytest.mark.timeout(120)
def run_selftest(up: Up) -> None:
    """The console's lock self-test on every node (each increments a shared counter 20 times
    under a spin lock), run to its end: the history then holds every store."""
    console = Console(up.console)
    try:
        console.type("")
        console.wait_for(r"psyche> ")
        console.type("selftest")
        console.wait_for(r"selftest: (passed|FAILED)")
    finally:
        console.close()


def _watch_back_from_node_2(kernel_elf: Path) -> tuple[str, list[tuple[str, str]]]:
    """A fresh machine's self-test, then gdb on node 2 watching the counter back and forth: gdb's
    output, and the (node, pc) of each store the mux named."""
    up = start_up(kernel_elf, 4, *HISTORY)
    try:
        run_selftest(up)
        commands = ["watch -l kg.selftest->spin_counter", _COUNTER]
        commands += ["reverse-continue", _COUNTER] * 6
        commands += ["continue", _COUNTER]
        out = gdb(kernel_elf, f"127.0.0.1:{up.port(2)}", *commands, "detach", timeout=100)
    finally:
        up.stop()
    return out, re.findall(r"the access was made by node (\d) at pc (0x[0-9a-f]+) \(\w+\+0x[0-9a-f]+\)", out)


@pytest.mark.timeout(240)
def test_a_watchpoint_finds_another_nodes_store_in_reverse(kernel_elf: Path) -> None:
    """4 nodes run the lock self-test (each increments a shared counter in the king's RAM, 20
    times, under a spin lock).  gdb on node 2 watches that counter: reverse-continue stops at
    each store back in time, whichever node made it, with the values gdb shows for a reverse
    watchpoint (Old: after the store, New: before it); the mux names the node that made it and
    its pc; continue goes forward through history to the next store.

    How the nodes' stores interleave depends on when the console's input reached the machine:
    now and then node 2 makes all of the last seven, and there is no other node's to find.  The
    test then runs once more on a fresh machine."""
    out, makers = _watch_back_from_node_2(kernel_elf)
    if {int(n) for n, _ in makers} == {2}:
        out, makers = _watch_back_from_node_2(kernel_elf)
    counters = [int(c) for c in re.findall(r"COUNTER (\d+)", out)]
    assert counters[:7] == [80, 79, 78, 77, 76, 75, 74], out[-4000:]
    for new in range(79, 73, -1):
        assert re.search(rf"Old value = {new + 1}\s+New value = {new}\n", out), out[-4000:]
    # Forward again: the stop is at the next store (the 75th); gdb then steps node 2 over the
    # watchpoint, one instruction of node 2, and shows the value after that (node 0 may store
    # again before node 2's next instruction).
    assert len(counters) == 8 and counters[7] >= 75, out[-4000:]
    assert re.search(rf"Old value = 74\s+New value = {counters[7]}\n", out), out[-4000:]
    assert len(makers) == 7, out[-4000:]
    assert {int(n) for n, _ in makers} - {2}, makers   # another node's stores among them
    assert "No more reverse-execution history" not in out
    # The pc named is the store's: the line that increments the counter.
    assert GDB is not None
    lines = subprocess.run([GDB, "-batch", "-nx", str(kernel_elf)] + [
        a for _, pc in set(makers) for a in ("-ex", f"list *{pc},+0")], capture_output=True, text=True).stdout
    assert lines.count("st->spin_counter = v + 1;") == len(set(makers)), (makers, lines)


@pytest.mark.timeout(60)
def test_reverse_finish_out_of_the_clock_interrupt(kernel_elf: Path) -> None:
    """reverse-finish in clock_intr goes back to its call in the trap handler (gdb: a breakpoint
    at the function's entry, reverse-continue, one reverse step), and stepi from there enters
    clock_intr again: the same call, re-executed."""
    commands = ["break clock_intr", "continue", "continue", "delete", "next", _TICKS,
                "reverse-finish", "echo BACK\\n", "bt 1", "x/i $pc", _TICKS,
                "stepi", "echo FORWARD\\n", "x/i $pc", _TICKS]
    out = _session(kernel_elf, *commands)
    assert "BACK" in out and "FORWARD" in out, out[-3000:]
    back = out.split("BACK")[1].split("FORWARD")[0]
    forward = out.split("FORWARD")[1]
    # At the call: in trap(), at trap.c's `clock_intr();`, on the jump-and-link that makes it.
    assert re.search(r"#0 .* in trap \(.*trap\.c:\d+", back), back
    assert re.search(r"=> 0x[0-9a-f]+ <trap\+\d+>:\s+jalr?\s", back), back
    assert re.search(r"=> 0x[0-9a-f]+ <clock_intr>:", forward), forward
    # The same interrupt's call (an earlier one would have counted fewer ticks; clock_intr has
    # not counted this one yet at line 61).
    ticks = _ticks(out)
    assert len(ticks) == 3 and ticks[0] == ticks[1] == ticks[2], (ticks, out[-3000:])
    assert "No more reverse-execution history" not in out


def _record_stepping(kernel: Path, record: Path, steps: int) -> str:
    """Record a 2-node run in which gdb stops node 1 at clock_intr and steps it, and the run ends
    with node 1 still stopped there (gdb still attached: the recording's end is that moment)."""
    assert GDB is not None
    ready, go = record.parent / "ready", record.parent / "go"
    up = start_up(kernel, 2, "--record", str(record))
    commands = ["break clock_intr", "continue", "delete", _TICKS, _PRINT] + ["stepi", _PRINT] * steps
    commands += [f"shell touch {ready}", f"shell while [ ! -e {go} ]; do sleep 0.1; done"]
    args = [GDB, "-batch", "-nx", str(kernel), "-ex", "set confirm off",
            "-ex", f"target remote 127.0.0.1:{up.port(1)}"]
    for command in commands:
        args += ["-ex", command]
    session = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and session.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        up.stop()                 # the recording ends here, node 1 stopped where gdb left it
        go.touch()
        try:
            out, _ = session.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            session.kill()
            out, _ = session.communicate()
    assert ready.exists(), out[-3000:]
    return out


@pytest.mark.timeout(180)
def test_reverse_execution_goes_back_into_a_replayed_run(kernel_elf: Path, tmp_path: Path) -> None:
    """`psyche up --replay DIR --reverse` keeps the history while it replays: gdb, attached once the
    replay is over, steps node 1 back through the steps the recorded gdb made (the registers at
    every one are the recorded ones), forward again through them to the present, and on live."""
    steps = 20
    record = tmp_path / "run"
    recorded = _record_stepping(kernel_elf, record, steps)
    then = _states(recorded)
    assert len(then) == steps + 1, recorded[-3000:]
    assert len(set(then)) > steps // 2   # it did move
    ticks_then = _ticks(recorded)
    assert len(ticks_then) == 1, recorded[-3000:]
    commands = [_PRINT] + ["reverse-stepi", _PRINT] * steps + ["stepi", _PRINT] * steps
    commands += ["break clock_intr", "continue", _TICKS]
    live = start_up(kernel_elf, 2, "--replay", str(record), *HISTORY)
    try:
        out = gdb(kernel_elf, f"127.0.0.1:{live.port(1)}", *commands, "detach", timeout=100)
    finally:
        live.stop()
    now = _states(out)
    assert len(now) == 2 * steps + 1, out[-3000:]
    assert now[0] == then[-1], (now[0], then[-1])                  # where the recording left node 1
    assert now[: steps + 1] == then[::-1], out[-3000:]             # back through the replayed run
    assert now[steps:] == then, out[-3000:]                        # and forward again to the present
    assert "No more reverse-execution history" not in out, out[-3000:]
    ticks = _ticks(out)
    assert len(ticks) == 1 and ticks[0] > ticks_then[0], (ticks, ticks_then)   # then on, live


@pytest.mark.timeout(120)
def test_a_recording_that_traveled_says_it_cannot_be_replayed(kernel_elf: Path, tmp_path: Path) -> None:
    """--record with --reverse: a travel in the history is not in the recording, so the recording
    says it traveled (end.json: how often, where first), the run's end says it cannot be replayed,
    and `psyche replay` refuses it saying why, instead of diverging somewhere after the travel."""
    record = tmp_path / "run"
    up = start_up(kernel_elf, 2, "--record", str(record), *HISTORY)
    try:
        out = gdb(kernel_elf, f"127.0.0.1:{up.port(1)}", "break clock_intr", "continue", "delete",
                  "stepi", "stepi", "reverse-stepi", "reverse-stepi", "detach", timeout=50)
    finally:
        up.stop()
        tail = up.process.stdout.read() if up.process.stdout is not None else ""
    assert "No more reverse-execution history" not in out, out[-3000:]
    end = json.loads((record / "end.json").read_text())
    assert end["travels"] >= 2 and end["first_travel_point"] >= 0 and end["first_travel_time"] > 0, end
    assert "cannot be replayed" in tail, tail[-2000:]
    replayed = subprocess.run([sys.executable, "-m", "psyche.cli", "replay", str(record), "--quiet"],
                              capture_output=True, text=True, timeout=60)
    assert replayed.returncode == 1, replayed.stderr
    assert re.search(r"psyche replay: the recorded run traveled in the machine's history \d+ times "
                     r"\(reverse execution while recording\), the first at service point \d+, machine "
                     r"time \d+: a recording does not hold the travels, so this one cannot be replayed",
                     replayed.stderr), replayed.stderr
