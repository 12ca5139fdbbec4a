"""Real gdb-multiarch sessions through the mux, on a 4-node machine running a labelled guest.

The guest (lld.testing) runs the same loop on every node, each bumping its
own counter; the kernel-level scenarios (clock_intr, kernel structs) are in
test_mux_kernel.py.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdb_util import GDB, Up, gdb, needs_gdb, start_up

from lld.testing import build_target_guest

pytestmark = [needs_gdb, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    machine = start_up(build_target_guest().path, 4)
    yield machine
    machine.stop()


def session(node: int) -> tuple[str, ...]:
    """A debugging session on node: breakpoint, steps, memory, registers, a watchpoint, detach."""
    return (
    "break spin_store",
    "continue",
    "p/x $pc",
    "bt 1",
    "stepi",
    "p/x $pc",
    "x/i $pc",
    "set var *(int*)&scratch = 0x12345678",
    "x/wx &scratch",
    "p $priv",
    "p/x $mhartid",
    "delete",
    f"watch *(int*)((char*)&counters + {4 * node})",   # this node's own counter
    "continue",
    "p/x $pc",
    "detach",
    )


def _stable(output: str) -> list[str]:
    """The lines of a session's output that do not depend on timing (not counter values)."""
    keep = []
    for line in output.splitlines():
        if re.match(r"^(\$\d+ = |Breakpoint \d|Hardware watchpoint|=> |0x[0-9a-f]+ <scratch>:|#0 )", line):
            keep.append(re.sub(r"Old value = .*|New value = .*", "", line))
    return keep


def test_a_full_session_on_node_2(up: Up) -> None:
    out = gdb(up.kernel, f"127.0.0.1:{up.port(2)}", *session(2))
    assert "Breakpoint 1, spin_store ()" in out
    assert "0x12345678" in out                       # memory written and read back
    assert "$5 = 3" in out or "= 3" in out           # priv: machine mode
    assert re.search(r"\$\d+ = 0x2\b", out)          # mhartid: this is node 2
    assert "Hardware watchpoint 2" in out and "Old value" in out and "New value" in out, out
    assert "Detaching" in out or "detached" in out
    # Detached: the node runs on (a new session finds it somewhere in its loop, not stopped at the watch).
    again = gdb(up.kernel, f"127.0.0.1:{up.port(2)}", "monitor status", "detach")
    assert re.search(r"\*node\s+2\s+stopped pc=0x[0-9a-f]+ stops=\d+ gen=\d+ reason=requested", again), again


def test_the_same_session_over_udp_gives_the_same_results(up: Up) -> None:
    tcp = _stable(gdb(up.kernel, f"127.0.0.1:{up.port(1)}", *session(1)))
    udp = _stable(gdb(up.kernel, f"udp:127.0.0.1:{up.port(1)}", *session(1)))
    assert tcp == udp
    assert any("spin_store" in line for line in tcp)


def test_four_gdbs_on_four_nodes_at_once(up: Up) -> None:
    assert GDB is not None
    procs = [
        subprocess.Popen(
            [GDB, "-batch", "-nx", str(up.kernel), "-ex", f"target remote 127.0.0.1:{up.port(node)}",
             "-ex", "break spin_check", "-ex", "continue", "-ex", "p/x $mhartid", "-ex", "stepi",
             "-ex", "p/x $pc", "-ex", "detach"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for node, out in enumerate(outputs):
        assert "Breakpoint 1, spin_check ()" in out, out
        assert f"= 0x{node:x}" in out, out


def test_zero_memory_sent_run_length_encoded_reads_back_exact(up: Up, tmp_path: Path) -> None:
    """The mux sends long runs of '0' compressed (gdb expands them as it reads): a dump of a
    range of zeros with one word in it comes back byte for byte."""
    guest = build_target_guest()
    dump = tmp_path / "zeros.bin"
    # counters[8:] belong to nodes this 4-node machine does not have: zero, but for the word set here.
    out = gdb(guest.path, f"127.0.0.1:{up.port(3)}", "set var *(int*)((char*)&counters + 400) = 0x01020304",
              f"dump binary memory {dump} (char*)&counters+32 (char*)&counters+512",
              "set var *(int*)((char*)&counters + 400) = 0", "detach")
    assert "Detaching" in out or "detached" in out, out
    assert dump.read_bytes() == bytes(368) + bytes((4, 3, 2, 1)) + bytes(108)


def test_a_second_gdb_on_a_node_is_refused(up: Up) -> None:
    assert GDB is not None
    first = subprocess.Popen(
        [GDB, "-nx", "-q", str(up.kernel), "-ex", f"target remote 127.0.0.1:{up.port(3)}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)
        second = gdb(up.kernel, f"127.0.0.1:{up.port(3)}", "p $pc", timeout=30)
        assert "already has a gdb session" in second
    finally:
        first.kill()
        first.wait()


def test_gdb_killed_mid_session_leaves_its_breakpoints_for_the_next(up: Up) -> None:
    assert GDB is not None
    # gdb inserts its breakpoints when it resumes the target: kill it while the node runs.
    victim = subprocess.Popen(
        [GDB, "-nx", "-q", str(up.kernel), "-ex", f"target remote 127.0.0.1:{up.port(0)}",
         "-ex", "break panic", "-ex", "continue"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    seen = ""
    assert victim.stdout is not None
    while "Continuing." not in seen and time.monotonic() < deadline:
        seen += victim.stdout.readline()
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    time.sleep(0.5)
    out = gdb(up.kernel, f"127.0.0.1:{up.port(0)}", "monitor breakpoints", "p/x &panic",
              "monitor clear", "monitor breakpoints", "detach")
    found = re.search(r"node 0: breakpoint at (0x[0-9a-f]+)", out)
    assert found, out                                 # the dead gdb's breakpoint is still in lld
    assert f"= {found.group(1)}" in out               # and it is the one on panic
    assert "no breakpoints or watchpoints" in out     # the fresh gdb cleared it


@pytest.mark.timeout(240)
def test_a_lossy_line_gives_identical_results() -> None:
    guest = build_target_guest().path
    lossy = start_up(guest, 4, "--debug-line-loss", "0.05")
    clean = start_up(guest, 4)
    try:
        a = _stable(gdb(guest, f"127.0.0.1:{clean.port(2)}", *session(2), "monitor stats"))
        out = gdb(guest, f"127.0.0.1:{lossy.port(2)}", *session(2)[:-1], "monitor stats", "detach")
        assert _stable(out) == a
        retransmitted = int(re.search(r"(\d+) retransmitted", out).group(1))  # type: ignore[union-attr]
        assert retransmitted > 0, out
    finally:
        lossy.stop()
        clean.stop()
