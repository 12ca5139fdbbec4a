"""What each side sees when a process or the debug line dies (issue 13, items 4 and 5).

Real processes, killed for real: `psyche up` with its machine, real gdb-multiarch,
`kill -9`.  docs/failure-modes.md says what each side should see; these tests hold
the mux and the machine to it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gdb_util import GDB, needs_gdb

from gdbfront.machine import some_free_ports
from lld.testing import build_target_guest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PSYCHE = [sys.executable, "-m", "psyche.cli"]


def alive(pid: int) -> bool:
    """Whether a process exists and has not ended (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float) -> float | None:
    """How long `pid` took to end, or None if it still runs after `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not alive(pid):
            return time.monotonic() - start
        time.sleep(0.02)
    return None


@dataclass
class UpProcess:
    process: subprocess.Popen[str]
    machine: int
    base_port: int
    elf: Path
    head: str

    def port(self, node: int) -> int:
        return self.base_port + node

    def finish(self, timeout: float = 15) -> str:
        """Everything psyche up printed after its banner, once it has ended (killed if it lingers)."""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return out


def start_up(*extra: str, console: bool = False, nodes: int = 4) -> UpProcess:
    """`psyche up` on the labelled guest, its output (stdout and stderr) in one pipe.

    With `console`, the console reads commands from a pipe that stays open.
    """
    elf = build_target_guest().path
    base = some_free_ports(nodes)
    command = [*PSYCHE, "up", "--nodes", str(nodes), "--kernel", str(elf), "--gdb-port", str(base), *extra]
    if not console:
        command.append("--no-console")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    head = ""
    deadline = time.monotonic() + 60
    while "attach gdb" not in head:
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"psyche up did not come up:\n{head}{line}")
        head += line
    match = re.search(r"machine pid (\d+)", head)
    assert match, head
    return UpProcess(process, int(match.group(1)), base, elf, head)


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Pids to kill at the end of a test whatever happened (a machine a test failed to end)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- item 5: kill the mux, the machine goes with it ----------------------------------------------


@pytest.mark.parametrize("console", [False, True], ids=["no-console", "console"])
def test_killing_psyche_up_takes_its_machine_with_it(console: bool, cleanup: list[int]) -> None:
    up = start_up(console=console)
    cleanup.append(up.machine)
    assert alive(up.machine)
    up.process.kill()                       # kill -9: no finally, no atexit, no signal handler
    up.process.wait(timeout=10)
    took = wait_gone(up.machine, 2.0)
    assert took is not None, "the machine outlived psyche up"


def test_a_machine_started_with_exit_with_parent_ends_with_any_parent(cleanup: list[int]) -> None:
    """The machine's own flag, without psyche up's help: a plain Python parent, killed."""
    elf = build_target_guest().path
    machine = [*PSYCHE, "machine", "--nodes", "1", "--kernel", str(elf), "--console", "null",
               "--debug-line", "pty", "--quiet", "--exit-with-parent"]
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; child = subprocess.Popen(sys.argv[1:]); "
                               "print(child.pid, flush=True); child.wait()", *machine],
        stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    cleanup.append(pid)
    # Its banner (on the parent's stdout, which it shares) comes after the flag took effect,
    # however long a loaded host takes to import and start it.
    assert parent.stdout.readline().startswith("psyche machine: 1 nodes"), "the machine did not start"
    assert alive(pid)
    parent.kill()
    parent.wait(timeout=10)
    assert wait_gone(pid, 2.0) is not None, "the machine outlived its parent"


# -- item 4: the machine dies or hangs under a live gdb -------------------------------------------

#: What gdb says when its replies are out of step with its packets, or not replies at all.
GARBAGE = ("Invalid hex digit", "odd length", "Malformed response", "Ignoring packet error")


def gdb_args(elf: Path, target: str, *commands: str) -> list[str]:
    assert GDB is not None
    args = [GDB, "-batch", "-nx", str(elf), "-ex", "set confirm off", "-ex", f"target remote {target}"]
    for command in commands:
        args += ["-ex", command]
    return args


def marks(output: str) -> dict[str, float]:
    """`shell date +MARK=%s.%N` lines in gdb's output, as seconds."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"\b([A-Z_]+)=(\d+\.\d+)$", output, re.M)}


def mark(name: str) -> str:
    return f"shell date +{name}=%s.%N"


@needs_gdb
def test_an_idle_gdb_hears_the_machine_died_and_psyche_up_says_so(cleanup: list[int]) -> None:
    up = start_up()
    cleanup.append(up.machine)
    target = f"127.0.0.1:{up.port(2)}"
    result = subprocess.run(gdb_args(up.elf, target, "p/x $pc", f"shell kill -9 {up.machine}", mark("KILLED"),
                                     "shell sleep 1", mark("ASK"), "x/x 0x80001000", mark("ANSWERED"),
                                     "p/x $pc"),
                            capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    assert not any(garbage in out for garbage in GARBAGE), out
    assert "Remote connection closed" in out, out
    times = marks(out)
    assert times["ANSWERED"] - times["ASK"] < 1.0, out
    # psyche up said why, reaped its machine, stopped listening and ended.
    assert up.process.wait(timeout=5) == 1
    said = up.finish()
    assert "the machine process ended (killed by signal 9, SIGKILL)" in said, said
    assert not alive(up.machine)
    with pytest.raises(ConnectionRefusedError):   # a new gdb is refused at once (gdb retries for 15 s)
        socket.create_connection(("127.0.0.1", up.port(1)), timeout=5).close()


@needs_gdb
def test_a_gdb_in_continue_is_told_the_machine_died_at_once(cleanup: list[int]) -> None:
    up = start_up()
    cleanup.append(up.machine)
    gdb = subprocess.Popen(gdb_args(up.elf, f"127.0.0.1:{up.port(1)}", "continue", "p 1 + 1"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3.0)                     # attached, continued: waiting for a stop
        os.kill(up.machine, signal.SIGKILL)
        killed = time.monotonic()
        out, _ = gdb.communicate(timeout=30)
        took = time.monotonic() - killed
    finally:
        if gdb.poll() is None:
            gdb.kill()
    assert "mux: the machine process ended (killed by signal 9, SIGKILL)" in out, out
    assert "Remote connection closed" in out, out
    assert not any(garbage in out for garbage in GARBAGE), out
    assert took < 2.0, (took, out)
    assert up.process.wait(timeout=5) == 1


@needs_gdb
def test_a_hung_machine_gets_gdb_errors_in_time_and_in_step(cleanup: list[int]) -> None:
    """SIGSTOP: the machine lives but answers nothing.  Each request that needs lld fails
    within gdb's 2-s remotetimeout, and gdb stays in step: when the machine is continued,
    the same gdb goes on as if nothing had happened."""
    up = start_up()
    cleanup.append(up.machine)
    try:
        result = subprocess.run(
            gdb_args(up.elf, f"127.0.0.1:{up.port(2)}", "p/x $pc", f"shell kill -STOP {up.machine}",
                     mark("READ"), "x/x 0x80001000", mark("READ_DONE"),
                     "stepi", mark("STEP_DONE"),
                     f"shell kill -CONT {up.machine}", "shell sleep 0.5",
                     "x/x 0x80001000", "stepi", "p/x $pc", "detach"),
            capture_output=True, text=True, timeout=60)
        out = result.stdout + result.stderr
    finally:
        os.kill(up.machine, signal.SIGCONT)
        up.process.terminate()
        up.finish()
    assert not any(garbage in out for garbage in GARBAGE), out
    times = marks(out)
    assert times["READ_DONE"] - times["READ"] < 2.0, out
    assert times["STEP_DONE"] - times["READ_DONE"] < 2.0, out
    assert "Cannot access memory at address 0x80001000" in out, out
    assert "no answer: nothing has come from the debug line" in out, out   # the stepi, on gdb's console
    assert re.search(r"0x80001000 <\w+(\+\d+)?>:\s+0x[0-9a-f]+", out), out   # answered again after SIGCONT
    assert "[Inferior 1 (Remote target) detached]" in out, out


def test_the_console_says_the_machine_died_and_its_commands_fail_at_once(cleanup: list[int]) -> None:
    up = start_up(console=True)
    cleanup.append(up.machine)
    assert up.process.stdin is not None
    os.kill(up.machine, signal.SIGKILL)
    time.sleep(1.0)
    started = time.monotonic()
    up.process.stdin.write("nodes\nregs 1\nsessions\nlog 5\n")
    out = up.finish()                        # (closes stdin: the end of the commands, the console quits)
    assert time.monotonic() - started < 10, out
    assert up.process.returncode == 1, out   # the machine died
    assert "the machine process ended (killed by signal 9, SIGKILL): every gdb connection is" in out, out
    assert "hint: the machine or its debug line is gone" in out, out
    assert re.search(r"mux +the machine process ended \(killed by signal 9, SIGKILL\)", out), out   # in `log`
    assert not alive(up.machine)


@needs_gdb
def test_a_continue_outlasts_a_machine_that_stops_answering_for_a_while(cleanup: list[int]) -> None:
    """gdb waits for a continue without a timeout: a line silent for a few seconds (the machine
    stopped, or busy) must not end it with a stop that never happened."""
    up = start_up()
    cleanup.append(up.machine)
    gdb = subprocess.Popen(gdb_args(up.elf, f"127.0.0.1:{up.port(1)}", "continue", "p 1 + 1"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2.5)                     # attached, continued: waiting for a stop
        os.kill(up.machine, signal.SIGSTOP)
        time.sleep(3.0)
        os.kill(up.machine, signal.SIGCONT)
        time.sleep(1.0)
        assert gdb.poll() is None, gdb.communicate()[0]
        gdb.send_signal(signal.SIGINT)      # ctrl-C: the continue ends as it should
        out, _ = gdb.communicate(timeout=30)
    finally:
        os.kill(up.machine, signal.SIGCONT)
        if gdb.poll() is None:
            gdb.kill()
        up.process.terminate()
        up.finish()
    assert "Program received signal SIGINT" in out, out
    assert "SIGTRAP" not in out and "no answer" not in out, out
