"""Runs a scenario with real gdb against one target and returns its normalised transcript.

Two kinds of target run the same guest ELF, both halted before its first instruction:

  * qemu: qemu-system-riscv32 -machine spike, the CPU as close to a Psyche node as QEMU
    gets, the ELF loaded by `-device loader` (which starts the CPU at the ELF entry, not
    at the boot ROM), `-S -gdb tcp:...`;
  * mux:  `psyche up --halted --no-console --nodes 1`, gdb on node 0.

Every scenario gets fresh targets.  Starting `psyche up` takes most of a second, so a
spare of each kind is started ahead while the previous scenario runs (a halted target
costs no CPU while it waits).

`normalise()` applies DIFFERENCES, the one list of transcript filters, each naming its
entry under "Deliberate differences from QEMU" in docs/debug-semantics.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DRIVER = HERE / "gdb_driver.py"
GDB = shutil.which("gdb-multiarch")
QEMU = shutil.which("qemu-system-riscv32")
QEMU_CPU = "rv32,c=false,h=false,f=false,d=false"   # scripts/bench_mux, scripts/qemu_check_guest
KINDS = ("qemu", "mux")


# -- deliberate differences ------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """A transcript filter for one deliberate difference, applied to both transcripts."""

    doc: str            # the heading of its entry in docs/debug-semantics.md
    pattern: str        # a regular expression (re.MULTILINE)
    replacement: str


THREADS = "Thread and process identifiers"
DIFFERENCES = (
    # QEMU: "Thread 1.1 (CPU#0 [running])" in `info threads`, "Thread 1.1" elsewhere; the mux: "Thread 1".
    Difference(THREADS, r"Thread 1\.1(?: \(CPU#0 \[\w+\]\))?", "Thread 1"),
    # ... and `info threads` pads its Target Id column to the longest name.
    Difference(THREADS, r"^  Id   Target Id +Frame $", "  Id   Target Id  Frame"),
    Difference(THREADS, r"^(\*? +\d+ +Thread \d+) +", r"\1  "),
    # QEMU: "[Inferior 1 (process 1) detached]"; the mux: "[Inferior 1 (Remote target) detached]".
    Difference(THREADS, r"^\[Inferior 1 \((?:process 1|Remote target)\) detached\]", "[Inferior 1 detached]"),
)


def normalise(transcript: str) -> str:
    for difference in DIFFERENCES:
        transcript = re.sub(difference.pattern, difference.replacement, transcript, flags=re.MULTILINE)
    return transcript


# -- targets ----------------------------------------------------------------------------------

_ports_taken: set[int] = set()


def free_port() -> int:
    """A TCP and UDP port nobody listens on, and that this process has not handed out yet."""
    for port in range(35000 + os.getpid() % 97 * 97, 60000):
        if port in _ports_taken:
            continue
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _ports_taken.add(port)
        return port
    raise RuntimeError("no free port")


def _listening(port: int) -> bool:
    """True once something listens on TCP `port`, read from /proc without connecting
    (QEMU's stub serves one client: a probe connection would be it)."""
    table = Path("/proc/net/tcp").read_text()
    return any(f":{port:04X} " in line and line.split()[3] == "0A" for line in table.splitlines()[1:])


@dataclass
class Target:
    kind: str
    process: subprocess.Popen[bytes]
    port: int
    log: IO[str]
    last_output: str = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        """What the target printed (kept after stop())."""
        if self.log.closed:
            return self.last_output
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not (_listening(self.port) if self.kind == "qemu" else "attach gdb" in self.output()):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited ({self.process.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not listen within {timeout} s:\n{self.output()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.log.closed:
            self.last_output = self.output()
            self.log.close()


def start(kind: str, elf: Path) -> Target:
    """Start a target halted at the ELF entry; it is ready after wait_ready()."""
    port = free_port()
    if kind == "qemu":
        assert QEMU is not None
        command = [QEMU, "-machine", "spike", "-cpu", QEMU_CPU, "-bios", "none", "-display", "none",
                   "-monitor", "none", "-serial", "none", "-device", f"loader,file={elf},cpu-num=0",
                   "-S", "-gdb", f"tcp:127.0.0.1:{port}"]
    else:
        command = [sys.executable, "-m", "psyche.cli", "up", "--halted", "--no-console", "--no-udp",
                   "--nodes", "1", "--kernel", str(elf), "--gdb-port", str(port),
                   "--machine-port", "0"]
    # A file, not a pipe: nobody reads the output until the end, and a full pipe would stall it.
    log = tempfile.NamedTemporaryFile("w+", prefix=f"conformance-{kind}-", suffix=".log")  # noqa: SIM115
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT)
    return Target(kind, process, port, log)


class Spares:
    """Targets started one scenario ahead, by kind and ELF."""

    def __init__(self) -> None:
        self.spares: dict[tuple[str, Path], Target] = {}

    def take(self, kind: str, elf: Path) -> Target:
        target = self.spares.pop((kind, elf), None) or start(kind, elf)
        self.spares[(kind, elf)] = start(kind, elf)
        try:
            target.wait_ready()
        except BaseException:
            target.stop()
            raise
        return target

    def close(self) -> None:
        for target in self.spares.values():
            target.stop()
        self.spares.clear()


# -- running a scenario ---------------------------------------------------------------------------


def run_session(elf: Path, target: Target, commands: list[str], watchdog: float, timeout: float) -> str:
    """One gdb process: connect, run the commands; its transcript, raw."""
    assert GDB is not None
    with tempfile.NamedTemporaryFile("w", prefix="conformance-session-", suffix=".json") as spec:
        json.dump({"target": target.address, "commands": commands, "watchdog": watchdog}, spec)
        spec.flush()
        try:
            result = subprocess.run(
                [GDB, "-batch", "-nx", "-q", str(elf), "-x", str(DRIVER)], cwd=ROOT,
                env={**os.environ, "CONFORMANCE_SESSION": spec.name},
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return out + f"\n[gdb killed: the session took more than {timeout} s]\n"
    text = result.stdout
    if result.returncode == -signal.SIGKILL:
        text += "[gdb killed]\n"
    # gdb's own complaints outside any command (a broken driver, a lost connection) go to stderr.
    errors = "".join(f"[gdb stderr] {line}\n" for line in result.stderr.splitlines() if line.strip())
    return text + errors


def run_scenario(elf: Path, target: Target, sessions: list[list[str]], watchdog: float,
                 timeout: float) -> str:
    """Every gdb session of a scenario, one after the other, on one target: the normalised transcript."""
    parts = []
    for number, commands in enumerate(sessions, 1):
        if len(sessions) > 1:
            parts.append(f"=== gdb {number}\n")
        parts.append(run_session(elf, target, commands, watchdog, timeout))
    return normalise("".join(parts))
