"""A Psyche machine and its mux in a child process: `psyche up --no-console`.

    with PsycheMachine.start(kernel, nodes=4, restore=snapshot) as machine:
        gdb = GdbSession(kernel)
        gdb.connect(machine.target(3))            # node 3, through the mux
        machine.console.command("ticks")          # the kernel monitor, on the console line

Why a child process and the real command: the machine and the mux are
separate processes in production (joined by real byte streams), and the gdbs a
test drives connect to the same ports a person's would.  The handle learns
the mux's node count and console pty from `psyche up`'s banner, captures the
console from the start, keeps psyche up's own output (which carries the
machine's messages, such as a node stopping), and stops the whole process
group, so nothing outlives a test.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gdbfront.console import ConsoleTap

HOST = "127.0.0.1"
OUTPUT_LINES = 2000
REPORT_CHARS = 12000
_PORT_ATTEMPTS = 5


def free_port_block(count: int, first: int = 20000, end: int = 60000) -> int:
    """A base port with `count` consecutive free TCP and UDP ports from it, and the one below it
    free too (the mux's whole-machine port), searching up from first (the whole block below end)."""
    for base in range(first + 1, end - count + 1, 97):
        sockets = []
        try:
            for port in range(base - 1, base + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(socket.AF_INET, kind)
                    sockets.append(s)
                    s.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no block of {count} free ports")


#: Where ports are chosen by default; PsycheMachine.start takes a narrower range (a pytest-xdist worker's).
PORT_RANGE = (20000, 50000)


def some_free_ports(count: int, ports: tuple[int, int] = PORT_RANGE) -> int:
    """A base port with `count` free TCP and UDP ports from it, the search starting at random in
    ports: other test runs on this machine (and pytest-xdist workers) look for ports too."""
    low, high = ports
    first = random.randrange(low, max(low + 1, high - count))
    try:
        return free_port_block(count, first, high)
    except RuntimeError:
        return free_port_block(count, low, high)


class PortsTaken(RuntimeError):
    """Another program took a port between our check and the mux's bind."""


@dataclass
class PsycheMachine:
    process: subprocess.Popen[str]
    kernel: Path
    nodes: int
    base_port: int
    console: ConsoleTap
    started_in: float                      # seconds from launch until the mux listened
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        kernel: Path,
        nodes: int = 4,
        *,
        restore: Path | None = None,
        base_port: int | None = None,
        ports: tuple[int, int] = PORT_RANGE,
        timeout: float = 60.0,
        extra: tuple[str, ...] = (),
    ) -> PsycheMachine:
        """Start psyche up, booting kernel on `nodes` nodes, or restoring a snapshot of that many.

        Without base_port, ports are chosen free in [ports[0], ports[1]), from a random place
        (test suites run side by side on one host), and chosen again if someone takes them
        before the mux binds them.  extra: more `psyche up` arguments (`--net udp:0-:7`, say).
        """
        if base_port is not None:
            return cls._start(kernel, nodes, restore, base_port, timeout, extra)
        for _ in range(_PORT_ATTEMPTS - 1):
            try:
                return cls._start(kernel, nodes, restore, some_free_ports(nodes, ports), timeout, extra)
            except PortsTaken:
                continue
        return cls._start(kernel, nodes, restore, some_free_ports(nodes, ports), timeout, extra)

    @classmethod
    def _start(cls, kernel: Path, nodes: int, restore: Path | None, base: int,
               timeout: float, extra: tuple[str, ...] = ()) -> PsycheMachine:
        image = ["--restore", str(restore)] if restore else ["--nodes", str(nodes)]
        command = [sys.executable, "-m", "psyche.cli", "up", "--kernel", str(kernel), *image,
                   "--no-console", "--gdb-port", str(base), *extra]
        began = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        lines: queue.Queue[str | None] = queue.Queue()
        output: list[str] = []
        threading.Thread(target=_collect, args=(process, lines, output), daemon=True).start()
        console, mux_nodes = None, None
        deadline = began + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or line == "":
                _stop_group(process)
                why = "exited" if line is None else f"did not come up within {timeout:g} s"
                error = PortsTaken if "address already in use" in "".join(output) else RuntimeError
                raise error(f"psyche up {why}: {' '.join(command)}\n" + "".join(output[-40:]))
            if match := re.search(r"console (\S+)", line):
                console = match.group(1)
            if match := re.search(r"mux: (\d+) nodes", line):
                mux_nodes = int(match.group(1))
            if "attach gdb" in line:
                break
        if console is None or mux_nodes != nodes:
            _stop_group(process)
            raise RuntimeError(f"psyche up: expected {nodes} nodes and a console, got {mux_nodes} nodes, "
                               f"console {console}:\n" + "".join(output))
        machine = cls(process, Path(kernel), nodes, base, ConsoleTap(console), time.monotonic() - began,
                      output)
        machine.console.why_silent = machine._why_console_is_silent
        return machine

    def mux_monitor(self, command: str, timeout: float = 5.0) -> str:
        """The output of a mux `monitor` command, asked without gdb and without stopping any node.

        It goes over the port of a node no gdb holds (the last first): a bare RSP exchange that
        never asks the halt reason, so the mux stops nothing, and hangs up without detaching.
        """
        for node in reversed(range(self.nodes)):
            output = ask_monitor(HOST, self.port(node), command, timeout)
            if output is not None:
                return output
        raise RuntimeError(f"mux: every node has a gdb session; `monitor {command}` could not be asked")

    def node_state(self, node: int) -> str:
        """lld's word for node's state (`running`, `stopped`, ...) and who holds it, from the mux."""
        for line in self.mux_monitor("status").splitlines():
            if re.match(rf"[* ]node +{node} ", line):
                return line[1:].split(None, 2)[2]
        raise RuntimeError(f"mux: no status for node {node}")

    def _why_console_is_silent(self) -> str | None:
        """Why the kernel monitor does not answer, if the mux knows: node 0, which runs it, is stopped."""
        try:
            state = self.node_state(0)
        except (OSError, RuntimeError, ValueError):
            return None   # nobody to ask: wait on
        if state.startswith("running"):
            return None
        return (f"node 0, which runs the kernel monitor, is not running ({state}): nothing answers on "
                f"the console until it runs again (continue it in its gdb, or detach)")

    def port(self, node: int) -> int:
        if not 0 <= node < self.nodes:
            raise IndexError(f"no node {node}: this machine has nodes 0 to {self.nodes - 1}")
        return self.base_port + node

    @property
    def machine_port(self) -> int:
        """The mux's whole-machine port, where one gdb sees every node as a thread."""
        return self.base_port - 1

    def machine_target(self) -> str:
        """What `target remote` takes for the whole-machine port."""
        return f"{HOST}:{self.machine_port}"

    def target(self, node: int, transport: str = "tcp") -> str:
        """What `target remote` takes for node: host:port, or udp:host:port."""
        if transport not in ("tcp", "udp"):
            raise ValueError(f"transport {transport!r} is not tcp or udp")
        return f"{'udp:' if transport == 'udp' else ''}{HOST}:{self.port(node)}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output_text(self) -> str:
        """What psyche up printed: its banner and the machine's messages."""
        return "".join(self.output[-OUTPUT_LINES:])

    def report_sections(self) -> list[tuple[str, str]]:
        """For a failing test's report: the console and psyche up's output."""
        return [("psyche console (tail)", self.console.text()[-REPORT_CHARS:]),
                ("psyche up output (tail)", self.output_text()[-REPORT_CHARS:])]

    def stop(self) -> None:
        self.console.close()
        _stop_group(self.process)

    def __enter__(self) -> PsycheMachine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _packet(payload: bytes) -> bytes:
    return b"$" + payload + b"#%02x" % (sum(payload) & 0xFF)


def ask_monitor(host: str, port: int, command: str, timeout: float) -> str | None:
    """`monitor command` over one RSP connection; None if the mux refused it (the node has a gdb)."""
    output = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(_packet(b"qRcmd," + command.encode().hex().encode()))
        pending = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return None
            pending += data
            while (match := re.search(rb"\$([^#]*)#[0-9a-fA-F]{2}", pending)) is not None:
                pending = pending[match.end():]
                conn.sendall(b"+")
                payload = match.group(1)
                if payload.startswith(b"O") and payload != b"OK":
                    output += bytes.fromhex(payload[1:].decode())
                elif payload == b"OK":
                    return output.decode(errors="replace")
                else:
                    return None   # E...: refused (another gdb holds the node) or failed


def _collect(process: subprocess.Popen[str], lines: queue.Queue[str | None], output: list[str]) -> None:
    """Read psyche up's output for its whole life (so its pipe never fills)."""
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        lines.put(line)
    lines.put(None)


def _stop_group(process: subprocess.Popen[str]) -> None:
    """SIGTERM psyche up (it stops its machine), then SIGKILL its whole group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)   # the group psyche up leads: its machine process
    except ProcessLookupError:
        pass
    process.wait()
