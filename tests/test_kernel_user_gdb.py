"""Real gdb-multiarch through the mux on a node running user code: a realm's first touch.

gdb on node 1 breaks in domain_fault on the first touch of a shared realm by
a program spawned on node 1, reads the domain's page table on that node (its
root is in the kernel map, reachable in the domain's own space), finishes the
fault, and sees the new PTE and the realm's word through the domain's table
(the kernel's own view, without SUM, has no access to user pages); the
program then reads the realm.
"""

from __future__ import annotations

import os
import re
import select
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdb_util import Up, gdb, needs_gdb, start_up

pytestmark = [needs_gdb, pytest.mark.slow, pytest.mark.timeout(180)]

KEY = 0x1234
PTE_V, PTE_R, PTE_W, PTE_X, PTE_U = 1, 2, 4, 8, 16


class Console:
    """The machine's console line, as a terminal program would use it."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.raw = b""
        self.mark = 0     # where the next wait_for starts looking

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\r").encode())

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.raw.decode(errors="replace").replace("\r\n", "\n")
            if match := re.compile(pattern).search(seen, self.mark):
                self.mark = match.end()
                return match
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                self.raw += os.read(self.fd, 4096)
        raise AssertionError(f"no {pattern!r} on the console:\n{seen[-2000:]}")

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def up(kernel_elf: Path) -> Iterator[Up]:
    machine = start_up(kernel_elf, 2)
    yield machine
    machine.stop()


def pte_expr(va: int) -> str:
    """The leaf PTE of va in the table whose root is in gdb's $root, as a gdb expression."""
    l1 = f"((unsigned *)$root)[{va >> 22}]"
    return f"((unsigned *)((({l1}) >> 10) << 12))[{(va >> 12) & 0x3FF}]"


def test_gdb_breaks_in_the_fault_and_sees_the_new_pte(up: Up) -> None:
    console = Console(up.console)
    try:
        console.type("")
        console.wait_for(r"psyche> ")
        console.type(f"run share make {KEY:#x}")
        va = int(console.wait_for(r"made realm (0x[0-9a-f]+), wrote").group(1), 16)
        console.wait_for(r"share: exit 0\n")
        spawn = f"spawn 1 share read {va:#x} {KEY:#x}"
        out = gdb(
            up.kernel, f"127.0.0.1:{up.port(1)}",
            f"break domain_fault if va == {va:#x}",
            f"shell printf '{spawn}\\r' > {up.console}",
            "continue",
            "set var $root = d->root[1]",
            f"printf \"pte before %#x\\n\", {pte_expr(va)}",
            f"x/wx {va:#x}",
            "delete",
            "finish",
            f"printf \"pte after %#x\\n\", {pte_expr(va)}",
            f"x/wx {va:#x}",
            "detach",
        )
        assert re.search(rf"Breakpoint 1, domain_fault \(d=.*, va={va}", out), out
        ptes = re.search(r"pte before (0x[0-9a-f]+|0)\n(?:.|\n)*pte after (0x[0-9a-f]+)\n", out)
        assert ptes, out
        before, after = int(ptes.group(1), 16), int(ptes.group(2), 16)
        assert before & PTE_V == 0, out
        # the kernel's own view has no access to an unopened user page, and gdb says so
        assert f"Cannot access memory at address {va:#x}" in out, out
        assert "Value returned is $1 = 0x0" in out, out       # NULL: the page is mapped
        assert after & (PTE_V | PTE_R | PTE_W | PTE_U | PTE_X) == PTE_V | PTE_R | PTE_W | PTE_U, out
        # still in the kernel (SUM clear), gdb reads the user page through the domain's table
        assert re.search(rf"{va:#x}:\s+0x5eed0001\n", out), out
        # detached, node 1 runs on: the program reads what the first domain wrote
        console.wait_for(rf"share: domain \d+ read 5eed0001 at {va:#010x}\n")
        console.wait_for(r"share: exit 0\n")
    finally:
        console.close()
