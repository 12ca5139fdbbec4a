"""The console line bridged to the host: a pty and a TCP port that pyserial opens."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import serial

PSYCHE = [sys.executable, "-m", "psyche.cli"]


def _start(elf, console: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*PSYCHE, "machine", "--kernel", str(elf), "--console", console, "--debug-line", "null",
         "--max-seconds", "30", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    match = re.search(r"console (\S+);", banner)
    assert match, banner
    return proc, match.group(1)


def _talk(port: serial.Serial) -> bytes:
    """Send input and collect the echo (the greeting may predate opening the port)."""
    deadline = time.monotonic() + 15
    port.write(b"psyche!")
    reply = b""
    while b"PSYCHE" not in reply and time.monotonic() < deadline:
        reply += port.read(64)
    return reply


@pytest.mark.timeout(60)
@pytest.mark.parametrize("console", ["pty", "tcp:0"])
def test_console_echoes_through_interrupts(machine_guest, console: str) -> None:
    proc, where = _start(machine_guest["echo"], console)
    try:
        url = where if where.startswith("socket://") else where
        with serial.serial_for_url(url, timeout=0.2) as port:
            reply = _talk(port)
        assert b"PSYCHE" in reply
    finally:
        proc.kill()
        proc.wait()
