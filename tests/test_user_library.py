"""The reentrant library realm (issue 18, the paper's Figure 4), through the shell.

init places libpsy.so (ulib.c: printf, strings, the kernel-call helpers...) at boot in a realm
of its own; the programs the file server serves are linked against it, and the loader resolves
their calls against its exported symbols (docs/user-level.md, "The library realm").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from user_util import World, placed_by, program_files, user_world

from gdbfront.machine import ask_monitor
from psyche.user.build import DEFAULT_OUT_DIR, program_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def unresolved(files: Path) -> None:
    """hello, calling `prinzz` instead of printf: a name the library does not export."""
    hello = (files / "hello").read_bytes()
    assert hello.count(b"\0printf\0") == 1
    (files / "badsym").write_bytes(hello.replace(b"\0printf\0", b"\0prinzz\0"))


@pytest.fixture(scope="module")
def world(kernel_elf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    files = program_files(tmp_path_factory.mktemp("files"))
    unresolved(files)
    with user_world(kernel_elf, files) as world:
        yield world


def library_line(world: World) -> list[str]:
    rows = [line.split() for line in world.sh("programs").splitlines()[1:]]
    return next(row for row in rows if len(row) > 6 and row[1] == "libpsy.so")


def test_loaded_programs_are_smaller_than_their_static_builds(tmp_path: Path) -> None:
    """The file the loader reads holds the program and PLT slots; the static build (what the
    kernel carries for the monitor's run) holds ulib too."""
    sizes = {}
    for name in ("hello", "lookup", "sort", "pin", "filecheck", "threads"):
        shared = (DEFAULT_OUT_DIR / "files" / name).stat().st_size
        static = program_file(DEFAULT_OUT_DIR / f"{name}.elf", tmp_path / name).stat().st_size
        sizes[name] = (static, shared)
    print(sizes)
    assert all(shared < static for static, shared in sizes.values()), sizes


def test_a_loaded_program_runs_on_the_library(world: World) -> None:
    line = library_line(world)
    assert line[5] == "init" and line[3] == "0" and line[4] == "-1", line   # no domain, no VP
    assert "libpsy.so" in world.sh("services")
    out = world.sh("run hello")
    assert re.search(r"hello from domain \d+ on node 0 of 2", out), out
    out = world.sh("run @1 sort 1000 2 2")
    assert "sort: 1000 numbers on 2 VPs across 2 nodes, sorted" in out, out


def test_two_programs_on_two_nodes_share_the_one_library_realm(world: World) -> None:
    base = int(library_line(world)[6], 16)
    realms_before = world.realms()
    assert sum(r.startswith(f"{base:#010x}-") for r in realms_before) == 1, realms_before
    start = len(world.console.text())
    world.sh("run @0 udpecho 7101 0 &")
    world.sh("run @1 udpecho 7102 0 &")
    for _ in range(50):                                 # each prints through the library's printf
        said = world.console.text()[start:]
        if "port 7101 bound on node 0" in said and "port 7102 bound on node 1" in said:
            break
        world.sh("jobs")
    assert "port 7101 bound on node 0" in said and "port 7102 bound on node 1" in said, said
    loaded = placed_by(world.sh("programs"), "loader")
    assert loaded.count("udpecho") == 2, loaded
    realms = world.realms()
    # the programs' realms are new; the library's is still the one
    assert sum(r.startswith(f"{base:#010x}-") for r in realms) == 1, realms
    listing = world.sh("realms")
    assert len(re.findall(rf"^  {base:#010x}-", listing, re.M)) == 1, listing
    start = len(world.console.text())
    for job in (0, 1):
        world.sh(f"kill {job}")
    for _ in range(50):                                 # the jobs say so when their calls end
        if all(f"[{job}] udpecho: killed" in world.console.text()[start:] for job in (0, 1)):
            break
        world.sh("jobs")
    assert placed_by(world.sh("programs"), "loader") == []
    assert world.realms() == realms_before


def test_an_unresolved_symbol_is_refused_in_one_line_and_nothing_changes(world: World) -> None:
    realms, programs = world.realms(), world.sh("programs")
    out = world.sh("run badsym")
    assert out.strip() == "run: badsym: unresolved symbol prinzz", out
    assert world.realms() == realms and world.sh("programs") == programs
    assert "hello from domain" in world.sh("run hello")


def remote_fetches(world: World, node: int) -> int:
    """Instructions node has fetched from another node's memory since boot (`monitor refs`, asked
    over node 0's port, which no gdb holds: nothing stops)."""
    out = ask_monitor("127.0.0.1", world.up.port(0), "refs", 10)
    assert out is not None
    found = re.search(rf"^node +{node}: .*, (\d+) remote fetches$", out, re.M)
    assert found, out
    return int(found.group(1))


def test_each_node_runs_the_library_from_its_own_copy(world: World) -> None:
    """The library realm lives on node 0, where init placed it; node 1 runs a program that calls
    it all the time (printf, memcpy, the kernel-call helpers) without a single instruction
    fetched across the switch: its pages were copied to node 1 at their first fetch there."""
    base = int(library_line(world)[6], 16)
    before = remote_fetches(world, 1)
    out = world.sh("run @1 sort 3000 1 1")
    assert "sort: 3000 numbers on 1 VPs across 1 nodes, sorted" in out, out
    assert remote_fetches(world, 1) == before
    listing = world.sh("!realms").splitlines()
    line = next(line for line in listing if line.strip().startswith(f"{base:#010x}-"))
    assert "node 0 (1 copy)" in line, line               # node 1's, made at its first fetch there
