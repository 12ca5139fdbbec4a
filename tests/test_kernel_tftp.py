"""The machine's file service from user space: the `tftp` program reads and writes files of
several hundred KiB through the kernel's UDP and the host's `psyche fileserver`, with and without
5% of the datagrams lost on the way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gdb_util import start_up

from gdbfront.console import ConsoleTap
from gdbfront.machine import some_free_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


@pytest.mark.parametrize("loss", ["0", "0.05"])
def test_files_of_hundreds_of_kib_go_both_ways(kernel_elf: Path, tmp_path: Path, loss: str) -> None:
    served = tmp_path / "served"
    served.mkdir()
    data = bytes((i * 7919 + 13) & 0xFF for i in range(400_000))
    (served / "data.bin").write_bytes(data)
    port = some_free_ports(1)
    server = subprocess.Popen([sys.executable, "-m", "psyche.cli", "fileserver", str(served), "--port",
                               str(port), "--timeout", "0.2", "--retries", "100"],
                              stderr=subprocess.PIPE, text=True)
    up = start_up(kernel_elf, 2, "--net-loss", loss, "--net-loss-seed", "5")
    console = ConsoleTap(up.console)
    try:
        assert server.stderr is not None and "over TFTP" in server.stderr.readline()
        console.type("\r")
        console.wait_for(r"psyche> ")
        console.command("ticks")
        got = console.command(f"run tftp get {port} data.bin", timeout=120)
        assert f"tftp: got {len(data)} bytes, hash {fnv1a(data):x}" in got, got
        put = console.command(f"run tftp put {port} up.bin 300000", timeout=120)
        pattern = bytes((i * 31 + 7) & 0xFF for i in range(300_000))
        assert f"tftp: put 300000 bytes, hash {fnv1a(pattern):x}" in put, put
        assert (served / "up.bin").read_bytes() == pattern
        assert "tftp: exit 0" in got and "tftp: exit 0" in put
    finally:
        console.close()
        up.stop()
        server.terminate()
        server.wait(timeout=10)
