"""Network boot: the machine loads only the boot loader (psyche/netboot), which fetches the kernel
over TFTP through the NIC and starts it; gdb follows from the loader into the kernel."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gdb_util import gdb, needs_gdb, start_up

from psyche.netboot import build_netboot

PSYCHE = [sys.executable, "-m", "psyche.cli"]
pytestmark = pytest.mark.timeout(120)


def served(kernel_elf: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "tftp"
    directory.mkdir()
    shutil.copy(kernel_elf, directory / kernel_elf.name)
    return directory


def machine(kernel_elf: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PSYCHE, "machine", "--kernel", str(kernel_elf), "--console", "null",
                           "--debug-line", "null", "--until", "psyche> ", "--max-seconds", "60", *extra],
                          capture_output=True, text=True, timeout=100)


@pytest.mark.parametrize("loss", ["0", "0.05"])
def test_sixteen_nodes_boot_from_the_network(kernel_elf: Path, tmp_path: Path, loss: str) -> None:
    run = machine(kernel_elf, "--nodes", "16", "--netboot", str(served(kernel_elf, tmp_path)),
                  "--net-loss", loss, "--net-loss-seed", "3")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    size = (tmp_path / "tftp" / kernel_elf.name).stat().st_size
    assert f"netboot: fetching {kernel_elf.name} from 10.0.2.2:" in run.stdout
    assert f"netboot: {size} bytes; starting the kernel at 0x80000000" in run.stdout
    assert "boot complete: 16 nodes up" in run.stdout


def test_a_kernel_that_is_not_served_is_one_clear_error(kernel_elf: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = machine(kernel_elf, "--netboot", str(empty))
    assert run.returncode == 2
    assert f"--netboot {empty}: no {kernel_elf.name} there for the boot loader to fetch" in run.stderr


@needs_gdb
@pytest.mark.slow
def test_gdb_debugs_the_boot_loader_then_the_kernel_it_loaded(kernel_elf: Path, tmp_path: Path) -> None:
    up = start_up(kernel_elf, 2, "--netboot", str(served(kernel_elf, tmp_path)), "--halted")
    try:
        out = gdb(build_netboot(), f"127.0.0.1:{up.port(0)}",
                  "break load", "continue",              # the file is fetched: into the ELF
                  "break *0x80000000", "continue",       # the loader jumps to the kernel's entry
                  f"symbol-file {kernel_elf}",           # from here on, the kernel's symbols
                  "break clock_intr", "continue", "delete", "detach")
    finally:
        up.stop()
    assert re.search(r"Breakpoint 1, load \(size=\d+\) at .*netboot\.c:\d+", out), out
    # the kernel's entry, where the loader's symbols know nothing
    assert re.search(r"Breakpoint 2, 0x80000000 in \?\? \(\)", out), out
    assert re.search(r"Breakpoint 3, clock_intr \(\) at .*clock\.c:\d+", out), out
