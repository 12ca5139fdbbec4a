"""Running `psyche up` and real gdb-multiarch from tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gdbfront.machine import some_free_ports

GDB = shutil.which("gdb-multiarch")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb-multiarch is not installed")


@dataclass
class Up:
    """A `psyche up` process: a machine and its mux."""

    process: subprocess.Popen[str]
    base_port: int
    kernel: Path
    console: str

    def port(self, node: int) -> int:
        return self.base_port + node

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_up(kernel: Path, nodes: int, *extra: str) -> Up:
    base = some_free_ports(nodes)
    process = subprocess.Popen(
        [sys.executable, "-m", "psyche.cli", "up", "--nodes", str(nodes), "--kernel", str(kernel),
         "--no-console", "--gdb-port", str(base), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    console = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"psyche up exited: {process.wait()}")
        if match := re.search(r"console (\S+)", line):
            console = match.group(1)
        if "attach gdb" in line:
            return Up(process, base, kernel, console)
    process.kill()
    raise RuntimeError("psyche up did not come up")


def gdb(elf: Path, target: str, *commands: str, timeout: float = 60) -> str:
    """Run gdb-multiarch in batch mode against `target` (host:port or udp:host:port)."""
    assert GDB is not None
    args = [GDB, "-batch", "-nx", str(elf), "-ex", "set confirm off", "-ex", f"target remote {target}"]
    for command in commands:
        args += ["-ex", command]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr
