"""The Psyche gdb extension's tables and `psyche gdb`'s errors, without a machine (real gdb, fast).

The tables' data come from a running kernel (tests/test_gdbext_vm.py); here the renderers get
data made up to show what a live machine rarely does at the moment of a stop, such as protected
calls nested three deep, and `psyche gdb` meets nothing listening.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gdb_util import GDB, needs_gdb

from gdbfront.machine import some_free_ports
from psyche.commands.gdb_cmd import EXTENSION

pytestmark = [needs_gdb, pytest.mark.timeout(60)]

CALL = {"entry": 0x12D020, "caller_domain": 0, "caller_vp": 0, "process": 1, "callee_domain": 1,
        "callee_vp": 1, "async": False, "state": "running", "args": [40, 2], "result": None,
        "return_pc": 0x103EB0}


def in_gdb(python: str) -> str:
    """What `python print(...)` prints in gdb with the extension sourced (no program, no target)."""
    assert GDB is not None
    imports = ("import json; from gdbfront.gdbext.kernel import table; "
               "from gdbfront.gdbext.vm import render_calls, render_realms")
    result = subprocess.run([GDB, "-batch", "-nx", "-ex", f"source {EXTENSION}", "-ex", f"python {imports}",
                             "-ex", f"python {python}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def column_starts(header: str, titles: list[str]) -> list[int]:
    return [header.index(title) for title in titles]


def test_a_table_aligns_columns_to_their_widest_cell() -> None:
    out = in_gdb("print(table(['name', 'count>', 'list'], [['a', 5, 'x y'], ['longer name', 12345, None]]))")
    assert out.splitlines() == [
        "  name         count  list",
        "  a                5  x y",
        "  longer name  12345  -",
    ]


def test_nested_protected_calls_are_listed_chain_by_chain() -> None:
    # 5 was made while serving 2, itself made while serving 0; 7 stands alone; 9's parent has ended
    calls = [dict(CALL, id=i, parent=parent, chain=chain) for i, parent, chain in
             ((5, 2, [0, 2, 5]), (7, -1, [7]), (0, -1, [0]), (2, 0, [0, 2]), (9, 4, [9]))]
    calls.sort(key=lambda c: c["chain"])
    data = {"made": 12, "slow": 3, "calls": calls}
    out = in_gdb(f"print(render_calls(json.loads({json.dumps(json.dumps(data))})))").splitlines()
    assert out[0] == "12 protected calls made, 3 on the slow path; in progress:"
    header, *rows = out[1:]
    assert [row.split()[0] for row in rows] == ["0", "2", "5", "7", "9"]
    assert [row[2:8] for row in rows] == ["0     ", "  2   ", "    5 ", "7     ", "9     "]   # indented
    chain = header.index("chain")
    assert [row[chain:].split("  ")[0] for row in rows] == ["0", "0 > 2", "0 > 2 > 5", "7", "9"]
    for title in ("entry", "from dom/vp", "state", "returns to"):
        start = header.index(title)
        assert all(row[start - 2:start] == "  " and row[start] != " " for row in rows), (title, out)


def test_realms_show_operations_only_when_the_kernel_has_them() -> None:
    realm = {"base": 0x100000, "size": 8192, "device": False, "node": 0, "phys": None,
             "replication": ["demand"], "copies": 1, "home": 1, "open_in": [0, 1], "ops": None,
             "acl": [{"key": 0x7777, "rights": "rw--o"}, {"key": 0x1111, "rights": "---i-"}]}
    data = {"nrealms": 1, "faults": 3, "opens": 2, "has_ops": False, "realms": [realm]}
    without = in_gdb(f"print(render_realms(json.loads({json.dumps(json.dumps(data))})))").splitlines()
    assert without[1].split() == ["base", "end", "KiB", "frames", "replicated", "home", "open", "in",
                                  "access"]
    assert without[2].split() == ["0x00100000", "0x00101fff", "8", "node", "0", "demand,", "1", "copy", "1",
                                  "0", "1", "00007777:rw--o", "00001111:---i-"]
    data.update(has_ops=True, realms=[dict(realm, ops=[0x100000, 0x100008])])
    with_ops = in_gdb(f"print(render_realms(json.loads({json.dumps(json.dumps(data))})))").splitlines()
    assert " ops " in with_ops[1] and "0x100000 0x100008" in with_ops[2]


def psyche_gdb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "psyche.cli", "gdb", *args], capture_output=True, text=True,
                          timeout=30)


def test_psyche_gdb_says_when_nothing_listens(kernel_elf: Path) -> None:
    base = some_free_ports(4)
    result = psyche_gdb("--node", "2", "--gdb-port", str(base), "--kernel", str(kernel_elf))
    assert result.returncode == 2
    assert result.stderr == (f"psyche gdb: nothing listens on 127.0.0.1:{base + 2} (node 2 of a mux with "
                             f"base port {base}): start the machine first (psyche up), or give its "
                             "--gdb-port\n")
    assert result.stdout == ""


def test_psyche_gdb_machine_says_when_no_machine_port_listens(kernel_elf: Path) -> None:
    base = some_free_ports(4)
    result = psyche_gdb("--machine", "--gdb-port", str(base), "--kernel", str(kernel_elf))
    assert result.returncode == 2
    assert result.stderr.startswith(f"psyche gdb: nothing listens on 127.0.0.1:{base - 1}, the machine port "
                                    f"of a mux with base port {base}"), result.stderr


@pytest.mark.parametrize(("args", "error"), [
    (["--node", "128"], "argument --node: no node 128: a machine has nodes 0 to 127 at most"),
    (["--node", "two"], "argument --node: 'two' is not a node number"),
    (["--kernel", "/nonexistent.elf"], "no kernel ELF at /nonexistent.elf: build it (psyche build "
                                       "--kernel-only) or give --kernel"),
    (["--gdb", "no-such-gdb"], "no-such-gdb is not installed (apt-get install gdb-multiarch) or not on PATH"),
])
def test_psyche_gdb_refuses_bad_arguments_in_one_line(args: list[str], error: str) -> None:
    result = psyche_gdb(*args)
    assert result.returncode == 2
    assert error in result.stderr and "Traceback" not in result.stderr, result.stderr
