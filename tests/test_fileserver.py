"""`psyche fileserver DIR`: a TFTP server any client can check (the guest's client comes with the
kernel's UDP).  Here tftpy's client fetches and stores files of several hundred KiB with the block
size option, as the guest will."""

from __future__ import annotations

import filecmp
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tftpy

from gdbfront.machine import some_free_ports

pytestmark = pytest.mark.timeout(60)


def test_files_go_both_ways_with_the_block_size_option(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "kernel.elf").write_bytes(bytes(range(256)) * 1600)     # 400 KiB
    port = some_free_ports(1)
    server = subprocess.Popen([sys.executable, "-m", "psyche.cli", "fileserver", str(served),
                               "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        assert f"over TFTP on udp 127.0.0.1:{port}" in server.stderr.readline()
        client = tftpy.TftpClient("127.0.0.1", port, options={"blksize": 1428})
        client.download("kernel.elf", str(tmp_path / "got.elf"))
        assert filecmp.cmp(served / "kernel.elf", tmp_path / "got.elf", shallow=False)
        client.upload("back.elf", str(tmp_path / "got.elf"))
        deadline = time.monotonic() + 5
        while not (served / "back.elf").exists() or (served / "back.elf").stat().st_size < 409600:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert filecmp.cmp(served / "kernel.elf", served / "back.elf", shallow=False)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_directory_that_is_not_there_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "psyche.cli", "fileserver", str(tmp_path / "nope")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == f"psyche fileserver: {tmp_path / 'nope'}: no such directory\n"
