"""The user level of the paper's Figure 4, through the console as a person uses it.

At boot, init (the primordial realm) places the name server, the network file server, the
loader and the shell, each in a realm and a protection domain of its own; the monitor's `shell`
hands the console to the shell; `run` has the loader read the program's file from the host's
file server (TFTP), check it, place it in a fresh realm, and the shell calls its main.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from user_util import SH, World, placed_by, program_files, user_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

def bad_programs(files: Path) -> None:
    """Files that are not programs this machine may load, beside the real ones."""
    hello = (files / "hello").read_bytes()
    (files / "truncated").write_bytes(hello[:300])
    x86 = bytearray(hello)
    x86[18:20] = struct.pack("<H", 62)                     # e_machine: x86-64
    (files / "x86").write_bytes(x86)
    big = bytearray(hello)
    phoff, phnum = struct.unpack_from("<I", big, 28)[0], struct.unpack_from("<H", big, 44)[0]
    loads = [phoff + 32 * i for i in range(phnum) if struct.unpack_from("<I", big, phoff + 32 * i)[0] == 1]
    struct.pack_into("<I", big, loads[-1] + 20, 0x200000)  # the last PT_LOAD's p_memsz: 2 MiB
    (files / "huge").write_bytes(big)
    (files / "notes.txt").write_text("a file on the host\nsecond line\n")


@pytest.fixture(scope="module")
def world(kernel_elf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    files = program_files(tmp_path_factory.mktemp("files"))
    bad_programs(files)
    with user_world(kernel_elf, files) as world:
        yield world


def test_the_servers_init_placed_are_in_the_loaders_table(world: World) -> None:
    out = world.sh("programs")
    # and the reentrant library, which init places first and the loader's programs share
    assert placed_by(out, "init") == ["names", "files", "loader", "sh", "libpsy.so"], out


def test_a_program_runs_from_the_file_server_in_a_domain_of_its_own(world: World) -> None:
    out = world.sh("run hello")
    assert "hello from domain" in out and "on node 0 of 2" in out, out
    out = world.sh("run @1 hello")
    assert "on node 1 of 2" in out, out
    assert "exit" not in out                               # main returned 0


def test_a_parallel_program_ends_with_every_vp_its_thread_package_made(world: World) -> None:
    out = world.sh("run threads 4 1000 rr")
    assert "threads: total 2002000 want 2002000, 4 processes done" in out, out
    assert "on node 1:" in out                             # VPs on both nodes
    assert "unloading" not in out and "exit" not in out
    vps = world.sh("!vps")
    rows = [line.split() for line in vps.splitlines() if line[:1].isdigit()]
    assert len(rows) == 4, vps                             # names, files, loader, sh: nothing left


def test_the_shell_lists_the_kernels_realms_domains_and_vps(world: World) -> None:
    realms = world.sh("realms")
    homes = re.findall(r"^  0x[0-9a-f]+-0x[0-9a-f]+ +\d+K +(\d+) ", realms, re.M)
    assert {"1", "2", "3", "4"} <= set(homes), realms          # each server's code realm has its home
    assert re.search(r" -----:?|r-x-- [0-9a-f]+:---i-|---i-", realms), realms   # keys we lack are hidden
    domains = world.sh("domains")
    assert len(re.findall(r"^ +\d+  0x[0-9a-f]+ +1 ", domains, re.M)) >= 4, domains
    vps = world.sh("vps")
    rows = re.findall(r"^ +(\d+) +(\d+) +(\d+) +(blocked|running|ready) ", vps, re.M)
    assert len(rows) == 4, vps
    assert ("4", "0", "4", "running") in rows, vps              # the shell itself, listing


def test_the_services_are_found_by_name(world: World) -> None:
    out = world.sh("services")
    for name in ("names.lookup", "files.get", "files.put", "loader.load", "loader.unload", "loader.table"):
        assert name in out, out


@pytest.mark.parametrize(("name", "reason"), [
    ("nosuch", "File not found"),
    ("truncated", "truncated"),
    ("x86", "RISC-V"),
    ("huge", "too big"),
    ("notes.txt", "not ELF"),
])
def test_a_bad_file_is_refused_with_a_reason_and_nothing_else_changes(world: World, name: str,
                                                                     reason: str) -> None:
    out = world.sh(f"run {name}")
    assert f"run: {name}: " in out and reason.lower() in out.lower(), out
    assert placed_by(world.sh("programs"), "loader") == [], "a refused file left a program behind"
    assert "hello from domain" in world.sh("run hello")


def host_file(path: Path, timeout: float = 5.0) -> str:
    """The file the host's TFTP server wrote: it may close it a moment after the last ACK went."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_files_go_to_the_host_and_back(world: World) -> None:
    assert "second line" in world.sh("cat notes.txt")
    assert "put: 21 bytes" in world.sh("put written.txt written by the shell")
    assert host_file(world.files / "written.txt") == "written by the shell\n"
    assert "written by the shell" in world.sh("cat written.txt")


def test_the_monitor_stays_reachable(world: World) -> None:
    out = world.sh("!vps")
    assert "console reader: vp" in out, out
    world.console.type("!monitor\r")
    world.console.wait_for(r"the monitor has the input(.|\n)*psyche> ")
    assert "ticks (100 Hz)" in world.console.command("ticks")
    world.console.type("shell\r")
    world.console.wait_for(r"shell: input goes to vp \d+(.|\n)*" + SH)


def test_a_program_in_the_background_can_be_killed(world: World) -> None:
    out = world.sh("run @1 udpecho 7000 0 &")               # waits for datagrams for ever
    assert "[0] udpecho" in out, out
    world.console.wait_for(r"udpecho: port 7000 bound on node 1")
    assert "hello from domain" in world.sh("run hello")     # the shell is free meanwhile
    assert "[0] udpecho, domain" in world.sh("jobs")
    assert "udpecho" in world.sh("programs")
    world.console.type("kill 0\r")
    world.console.wait_for(r"\[0\] udpecho: killed")
    assert "[0]" not in world.sh("jobs")
    assert placed_by(world.sh("programs"), "loader") == []
    assert "no job 3" in world.sh("kill 3")
