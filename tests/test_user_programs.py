"""The programs of issue 18, item 5, run at the user shell as a person runs them.

One machine of two nodes for the module, booted with the user level (`psyche up --files`), its
console handed to the shell.  Each program's output is checked for the right result, and where a
program makes VPs or realms, the kernel monitor's `!vps` and `!realms` show nothing left behind.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from user_util import SERVER_VPS, World, placed_by, program_files, user_world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def world(kernel_elf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with user_world(kernel_elf, program_files(tmp_path_factory.mktemp("files"))) as world:
        yield world


@pytest.fixture
def clean(world: World) -> Iterator[World]:
    """The test leaves no VP and no realm behind that was not there before it."""
    realms = world.realms()
    yield world
    assert len(world.vps()) == SERVER_VPS, world.sh("!vps")
    assert world.realms() == realms, world.sh("!realms")


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def xorshift_numbers(n: int, seed: int = 0x2545F491) -> list[int]:
    out, x = [], seed
    for _ in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(x)
    return out


def sort_checksum(n: int) -> int:
    return fnv1a(struct.pack(f"<{n}I", *sorted(xorshift_numbers(n))))


def test_sort_sorts_in_parallel_across_the_nodes(clean: World) -> None:
    out = clean.sh("run sort 10000")
    m = re.search(r"sort: 10000 numbers on 4 VPs across 2 nodes, sorted, checksum ([0-9a-f]+), "
                  r"in (\d+) cycles", out)
    assert m, out
    assert int(m.group(1), 16) == sort_checksum(10000)
    assert "exit" not in out


def test_sort_on_one_vp_and_odd_sizes(clean: World) -> None:
    out = clean.sh("run sort 1001 1 1")
    assert f"sort: 1001 numbers on 1 VPs across 1 nodes, sorted, checksum {sort_checksum(1001):x}" in out, out
    out = clean.sh("run @1 sort 7 2 3")
    assert f"sort: 7 numbers on 3 VPs across 2 nodes, sorted, checksum {sort_checksum(7):x}" in out, out


def filecheck_pattern(size: int) -> bytes:
    return bytes(((i * 2654435761) & 0xFFFFFFFF) >> 24 for i in range(size))


@pytest.mark.parametrize("size", [0, 1000, 70000])
def test_filecheck_writes_the_host_file_and_reads_it_back(clean: World, size: int) -> None:
    name = f"check{size}.bin"
    out = clean.sh(f"run filecheck {name} {size}")
    want = filecheck_pattern(size)
    assert f"filecheck: wrote and read back {size} bytes of {name}, hash {fnv1a(want):x}" in out, out
    assert (clean.files / name).read_bytes() == want


def test_a_wild_store_stops_the_program_and_the_shell_goes_on(clean: World) -> None:
    out = clean.sh("run buggy wild")
    assert "buggy: storing through a wild pointer 0x0badf00c" in out, out
    assert "no realm at this address" in out, out
    assert "buggy: stopped" in out, out
    assert "the store went through" not in out
    assert "hello from domain" in clean.sh("run hello")



def domains(pattern: str, out: str) -> list[str]:
    m = re.search(pattern, out)
    assert m, f"{pattern!r} not in\n{out}"
    return list(m.groups())


def test_board_and_pin_talk_through_a_shared_page_and_a_protected_call(clean: World) -> None:
    out = clean.sh("run pin hello-board")
    assert "pin: no board runs" in out, out
    pin, = domains(r"pin: no board runs; domain (\d+) starts one", out)
    board, page = domains(r"board: domain (\d+) serves on vp \d+, node 0; "
                          r"the shared page is (0x[0-9a-f]+)", out)
    assert board != pin
    # the shared page: pin wrote it, board read it, board wrote the reply, pin read it
    assert f'pin: domain {pin} wrote "hello-board" into the shared page {page} of domain {board}' in out, out
    took = f'took post 1 by protected call from domain {pin}: read "hello-board" in the shared page'
    assert f"board: domain {board} (vp " in out and took in out, out
    # the protected call: board.post ran in board's domain and returned its answer to pin's
    assert f"pin: domain {pin} called board.post by protected call: domain {board} took post 1" in out, out
    assert f'pin: domain {pin} read back in the shared page: board read "hello-board"' in out, out
    assert f"pin: domain {pin} told domain {board} to stop after 1 posts" in out, out
    assert f"board: domain {board} stopped after 1 posts" in out, out
    assert "exit" not in out
    services = clean.sh("services")
    assert "board." not in services, services          # board withdrew its names
    assert placed_by(clean.sh("programs"), "loader") == []   # and the loader unloaded it
    assert "post 1 by protected call" in clean.sh("run pin again")   # a second board starts afresh


def job(out: str, name: str) -> str:
    m = re.search(r"\[(\d+)\] " + re.escape(name), out)
    assert m, out
    return m.group(1)


def test_a_board_in_the_background_serves_two_pins_until_told_to_stop(clean: World) -> None:
    j = job(clean.sh("run board &"), "board")
    board, = domains(r"board: domain (\d+) serves on vp",
                     clean.console.wait_for(r"board: domain \d+ serves on vp \d+.*\n").group(0))
    first = clean.sh("run pin first")
    assert "no board runs" not in first, first
    assert f"called board.post by protected call: domain {board} took post 1" in first, first
    second = clean.sh("run @1 pin second")
    assert f"called board.post by protected call: domain {board} took post 2" in second, second
    assert 'read back in the shared page: board read "second"' in second, second
    assert f"told domain {board} to stop after 2 posts" in clean.sh("run pin stop")
    clean.console.wait_for(rf"board: domain {board} stopped after 2 posts")
    clean.console.wait_for(rf"\[{j}\] board: exit 0")           # its main returned: the job ends
    assert f"[{j}]" not in clean.sh("jobs")
    assert "board." not in clean.sh("services")


def test_a_deadlocked_program_in_the_background_is_killed(clean: World) -> None:
    j = job(clean.sh("run buggy deadlock &"), "buggy")
    line = r"buggy: process (\d+) on node (\d+) holds lock (\w), wants lock (\w)"
    out = clean.console.wait_for(line + r"(.|\n)*" + line).group(0)
    held = sorted(re.findall(line, out))
    assert [(lock, want) for _, _, lock, want in held] == [("A", "B"), ("B", "A")], held
    assert {node for _, node, _, _ in held} == {"0", "1"}          # on VPs on two nodes
    assert "buggy" in clean.sh("programs")
    clean.console.type(f"kill {j}\r")
    clean.console.wait_for(rf"\[{j}\] buggy: killed")
    assert "buggy" not in clean.sh("programs")
    assert f"[{j}]" not in clean.sh("jobs")
