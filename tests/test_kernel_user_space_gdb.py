"""Real gdb-multiarch through the mux on a node stopped in a user program: the domain's own space.

A `watch` program spawned on node 1 reads a shared realm for ever.  gdb on
node 1, with the program's symbols added at the code realm's address, breaks
in its loop (U mode) and reads the program's variables through the domain's
page table, and the kernel's too (supervisor pages, read through the same
table as the kernel sees it).  A realm the domain has not opened is not
mapped in it: gdb's read of it is refused, and the domain's tables stay byte
for byte as they were, A and D bits included (lld never faults a page in).
A word gdb writes into the mapped realm is what the program sees next.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdb_util import Up, gdb, needs_gdb, start_up
from test_kernel_user_gdb import Console, pte_expr

pytestmark = [needs_gdb, pytest.mark.slow, pytest.mark.timeout(180)]

SEEN, HIDDEN = 0x1234, 0x5678      # the keys of the realm the program reads, and of one it never opens
PTE_V, PTE_A, PTE_D = 1, 64, 128


@pytest.fixture
def up(kernel_elf: Path) -> Iterator[Up]:
    machine = start_up(kernel_elf, 2)
    yield machine
    machine.stop()


def make_realm(console: Console, key: int) -> int:
    console.type(f"run share make {key:#x}")
    va = int(console.wait_for(r"made realm (0x[0-9a-f]+), wrote").group(1), 16)
    console.wait_for(r"share: exit 0\n")
    return va


def tables(label: str, seen: int, hidden: int) -> list[str]:
    """gdb commands that dump the domain's root table and the second-level tables of seen and hidden,
    then print their two leaf PTEs."""
    l2 = "((((unsigned *)$root)[{}] >> 10) << 12)"
    return [f"echo {label} begin\\n", "x/1024wx $root", f"x/1024wx {l2.format(seen >> 22)}",
            f"x/1024wx {l2.format(hidden >> 22)}",
            f"echo {label} end\\n",
            f"printf \"{label} ptes %#x %#x\\n\", {pte_expr(seen)}, {pte_expr(hidden)}"]


def test_gdb_in_a_user_program_reads_and_writes_its_domains_space(up: Up) -> None:
    console = Console(up.console)
    try:
        console.type("")
        console.wait_for(r"psyche> ")
        seen, hidden = make_realm(console, SEEN), make_realm(console, HIDDEN)
        console.type(f"spawn 1 watch {seen:#x} {SEEN:#x}")
        code = int(console.wait_for(r"watch: domain \d+, code (0x[0-9a-f]+)-").group(1), 16)
        domain = int(console.wait_for(rf"watch: domain (\d+) on node 1 sees 5eed0001 at {seen:#010x}\n")
                     .group(1))
        program = up.kernel.parent.parent / "user" / "watch.elf"
        out = gdb(
            up.kernel, f"127.0.0.1:{up.port(1)}",
            f"add-symbol-file {program} -o {code:#x}",
            "break watch.c:21",
            "continue",
            "p $priv",
            "p/x *p",
            "p/x last",
            "p self->id",
            "p this_node.id",                      # a kernel page, from U mode
            "p *(unsigned *)0x7ffff00c == (unsigned)self",   # the magic page names the running domain
            "set var $root = ($satp & 0x3fffff) << 12",
            *tables("before", seen, hidden),
            f"x/wx {hidden:#x}",
            "set var *p = 0x5eed0077",             # (drops what the mux had read of the node)
            *tables("after", seen, hidden),
            "delete",
            "detach",
        )
        assert re.search(r"Breakpoint 1, main \(.*\) at .*watch\.c:21", out), out
        assert "$1 = 0x0" in out or "$1 = 0" in out, out      # U mode
        assert "$2 = 0x5eed0001" in out and "$3 = 0x5eed0001" in out, out
        assert f"$4 = {domain}" in out and "$5 = 1" in out and "$6 = 1" in out, out
        assert f"Cannot access memory at address {hidden:#x}" in out, out
        before = re.search(r"before begin\n(.*)before end\n", out, re.S)
        after = re.search(r"after begin\n(.*)after end\n", out, re.S)
        assert before and after, out
        assert "Cannot access" not in before.group(1), out
        assert before.group(1) == after.group(1)
        ptes = re.search(r"before ptes (0x[0-9a-f]+) (0x[0-9a-f]+|0)\n", out)
        assert ptes, out
        seen_pte, hidden_pte = int(ptes.group(1), 16), int(ptes.group(2), 16)
        assert seen_pte & (PTE_V | PTE_A | PTE_D) == PTE_V | PTE_A   # read by the program, never written
        assert hidden_pte & PTE_V == 0
        # detached, node 1 runs on, and the program reads what gdb wrote
        console.wait_for(rf"watch: domain {domain} sees 5eed0077 at {seen:#010x}\n")
    finally:
        console.close()
