"""What each side sees when a process or the debug line dies (issue 13, items 4 and 5).

Real processes, killed for real: `psyche up` with its machine, real gdb-multiarch,
`kill -9`.  docs/failure-modes.md says what each side should see; these tests hold
the mux and the machine to it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gdb_util import free_port_block

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
    base = free_port_block(nodes)
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
    deadline = time.monotonic() + 30
    while not Path(f"/proc/{pid}/cmdline").read_bytes().count(b"machine"):   # past the exec
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)   # past its start-up, where the flag takes effect
    assert alive(pid)
    parent.kill()
    parent.wait(timeout=10)
    assert wait_gone(pid, 2.0) is not None, "the machine outlived its parent"
