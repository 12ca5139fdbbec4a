"""`psyche up` with its console, driven as a person drives it: keys into tmux, the screen read back.

Then the same console without a person: a script file, and commands piped
on standard input (with a real gdb attached meanwhile).  Every test checks
that nothing is left running afterwards.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdb_util import GDB, needs_gdb

from gdbfront.machine import some_free_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TMUX = shutil.which("tmux")
PSYCHE = [sys.executable, "-m", "psyche.cli"]


def up_command(kernel: Path, base_port: int) -> list[str]:
    return [*PSYCHE, "up", "--nodes", "4", "--kernel", str(kernel), "--gdb-port", str(base_port)]


def alive(pid: int) -> bool:
    """Whether a process exists and has not ended (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Tmux:
    """A command in a tmux pane on a private tmux server: keys in, screen out, then its exit status.

    The pane runs a shell that runs the command and writes its exit status to a file (tmux's own
    record of a dead pane's status is not always there).
    """

    def __init__(self, command: list[str], workdir: Path) -> None:
        assert TMUX is not None
        self.base = [TMUX, "-S", str(workdir / "tmux.socket"), "-f", "/dev/null"]
        self.status_file = workdir / "exit-status"
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(self.status_file))}"
        self._tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", "main", shell)
        self._tmux("set-option", "-t", "main", "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], check=True, capture_output=True, text=True).stdout

    def type(self, line: str) -> None:
        self._tmux("send-keys", "-t", "main", "-l", line)
        self._tmux("send-keys", "-t", "main", "Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "main", *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "main", "-S", "-500")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if match := re.search(pattern, screen):
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on the screen within {timeout} s:\n{screen}")
            time.sleep(0.1)

    def command_pid(self) -> int:
        """The command's process: the only child of the pane's shell."""
        shell = int(self._tmux("display-message", "-p", "-t", "main", "#{pane_pid}"))
        (pid,) = children(shell)
        return pid

    def exit_status(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while not (self.status_file.exists() and self.status_file.read_text().strip()):
            assert time.monotonic() < deadline, f"still running after {timeout} s:\n{self.screen()}"
            time.sleep(0.1)
        return int(self.status_file.read_text())

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment for `psyche up`: history in a temporary directory, the terminal's own size.

    (pytest sets COLUMNS and LINES, which rich would believe over the terminal.)
    """
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**env, "HOME": str(tmp_path), "PSYCHE_CONSOLE_HISTORY": str(tmp_path / "history")}


@pytest.fixture
def screen(kernel_elf: Path, home: dict[str, str], tmp_path: Path) -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    env = [f"{k}={home[k]}" for k in ("HOME", "PSYCHE_CONSOLE_HISTORY")]
    tmux = Tmux(["env", "-u", "COLUMNS", "-u", "LINES", *env, *up_command(kernel_elf, some_free_ports(4))],
                tmp_path)
    yield tmux
    tmux.close()


def test_a_person_at_the_console(screen: Tmux) -> None:
    machine = int(screen.wait_for(r"machine pid (\d+)").group(1))
    screen.wait_for(r"booted: 4 nodes up")
    screen.wait_for(r"4 nodes: 4 running, 0 stopped")                    # the toolbar, live
    up = screen.command_pid()
    assert machine in children(up)

    screen.type("nodes")
    screen.wait_for(r"(?s)┃ node.*(│ +\d │ running.*){4}")
    screen.type("stop 2")
    pc = screen.wait_for(r"node 2 stopped \(requested\) at (0x[0-9a-f]{8}) \w+").group(1)
    screen.type("regs 2")
    screen.wait_for(rf"node 2 stopped\s*\n\s*pc {pc} \w+")              # node 2's, where it stopped
    screen.wait_for(r"a0  0x[0-9a-f]{8}.*\n(.*\n)*sstatus 0x[0-9a-f]{8}")
    screen.keys("break 2 clock_in", "Tab")                               # completion of a symbol
    screen.wait_for(r"mux> break 2 clock_intr")
    screen.keys("Enter")
    screen.wait_for(r"node 2: breakpoint at 0x[0-9a-f]{8} clock_intr")
    screen.type("cont 2")
    screen.wait_for(r"node 2 stopped \(breakpoint\) at 0x[0-9a-f]{8} clock_intr")   # then, or announced
    screen.wait_for(r"3 running, 1 stopped \[2: breakpoint at clock_intr\]")

    screen.type("console")
    screen.wait_for(r"Ctrl-\] returns to the mux")
    screen.type("status")
    screen.wait_for(r"4 nodes: 4 up, 0 panicked")
    screen.keys("C-]")
    screen.wait_for(r"back in the mux console")
    screen.type("nodes")
    screen.wait_for(r"│ +2 │ stopped +│ 0x[0-9a-f]{8} │ clock_intr")

    screen.type("quit")
    assert screen.exit_status() == 0
    assert not alive(machine) and not alive(up) and not children(up)



def test_top_refreshes_in_place_and_q_comes_back_to_a_working_prompt(screen: Tmux) -> None:
    screen.wait_for(r"4 nodes: 4 running, 0 stopped")
    screen.type("stop 2")
    # where it stops is chance: in the idle loop, mostly, or in a clock tick
    func = screen.wait_for(r"node 2 stopped \(requested\) at 0x[0-9a-f]{8} (\w+)").group(1)
    screen.type("top 0.5")
    first = int(screen.wait_for(r"psyche top +4 nodes .* refresh (\d+)").group(1))
    screen.wait_for(rf"\n +2 +stopped +{func} +\S+ +\S+ +\d+ +0 +0 +0 +requested")
    # It refreshes by itself, and what it shows moves: node 0's instructions between two sweeps.
    screen.wait_for(rf"refresh (?!{first}\b)\d+")
    #   (node, state, function, thread, vp, run queue, then instructions/s: not 0, not "-")
    screen.wait_for(r"\n +0 +running(?: \(wfi\))? +\S+ +\S+ +\S+ +\d+ +[1-9][\d.]*[kMG]? ")
    screen.wait_for(r"q, Esc or Ctrl-C: back to the prompt")
    screen.keys("q")
    screen.wait_for(r"top: \d+ refreshes; the last read 4 nodes in \d+ ms\nmux>")
    screen.type("nodes")                                                  # the prompt works as before
    screen.wait_for(rf"│ +2 │ stopped +│ 0x[0-9a-f]{{8}} │ {func}\b")
    screen.type("top")
    screen.wait_for(r"psyche top +4 nodes")
    screen.keys("Escape")
    screen.wait_for(r"(?s)top: \d+ refreshes.*top: \d+ refreshes")
    screen.type("quit")
    assert screen.exit_status() == 0


def _run_up(kernel: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*up_command(kernel, some_free_ports(4)), *extra], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=90, env=env)


def _machine_pid(output: str) -> int:
    match = re.search(r"machine pid (\d+)", output)
    assert match, output
    return int(match.group(1))


SCRIPT = """\
# the issue's session, as a script
nodes
stop 2
regs 2
break 2 clock_intr
cont 2
wait 2
console status
delete 2
cont 2
quit
"""


def test_a_console_script_runs_then_everything_stops(kernel_elf: Path, home: dict[str, str],
                                                    tmp_path: Path) -> None:
    script = tmp_path / "session.mux"
    script.write_text(SCRIPT)
    result = _run_up(kernel_elf, home, "--console-script", str(script))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "mux> nodes" in out and out.count("running (wfi)") + out.count("running ") >= 4
    assert re.search(r"mux> wait 2\nnode 2 stopped \(breakpoint\) at 0x[0-9a-f]{8} clock_intr", out), out
    assert "4 nodes: 4 up" in out                                     # the monitor's answer to status
    assert "1 breakpoint deleted" in out
    assert not alive(_machine_pid(out))


def test_a_failing_script_exits_1(kernel_elf: Path, home: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "bad.mux"
    script.write_text("stop 9\nnodes\n")
    result = _run_up(kernel_elf, home, "--console-script", str(script))
    assert result.returncode == 1
    assert "error: no node '9'" in result.stdout and "mux> nodes" in result.stdout
    assert not alive(_machine_pid(result.stdout))


@needs_gdb
def test_commands_on_standard_input_see_a_gdb_session(kernel_elf: Path, home: dict[str, str]) -> None:
    assert GDB is not None
    base = some_free_ports(4)
    up = subprocess.Popen(up_command(kernel_elf, base), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=home)
    assert up.stdin is not None and up.stdout is not None
    try:
        head = ""
        while "booted:" not in head:
            line = up.stdout.readline()
            assert line, head
            head += line
        gdb = subprocess.Popen([GDB, "-batch", "-nx", str(kernel_elf),
                                "-ex", f"target remote 127.0.0.1:{base + 1}",
                                "-ex", "shell sleep 2", "-ex", "detach"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        up.stdin.write("sessions\nnodes\n")
        up.stdin.flush()
        assert gdb.wait(timeout=30) == 0            # detached while the mux still serves it
        up.stdin.close()                           # the end of the commands: the console quits
        out = up.stdout.read()
        assert up.wait(timeout=30) == 0, out
    finally:
        if up.poll() is None:
            up.kill()
    assert re.search(r"│ 1 +│ tcp +│ 127\.0\.0\.1:\d+ +│ " + str(base + 1), out), out
    assert re.search(r"│ +1 │ stopped +│ 0x[0-9a-f]{8} │ .* │ tcp 127\.0\.0\.1:\d+ │ requested", out), out
    assert not alive(_machine_pid(head))
