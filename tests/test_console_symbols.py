"""Kernel symbols and source lines for the mux console, checked against gdb's own reading of the ELF."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from gdb_util import GDB, needs_gdb

from lld import protocol as p
from mux.console.context import CommandError, ConsoleContext
from mux.console.symbols import Location, SymbolError, Symbols


@pytest.fixture(scope="module")
def symbols(kernel_elf: Path) -> Symbols:
    return Symbols(kernel_elf)


def test_names_and_addresses(symbols: Symbols) -> None:
    assert "clock_intr" in symbols.names() and "this_node" in symbols.names()
    assert not any(name.startswith((".L", "$")) for name in symbols.names())
    assert symbols.address("_entry") == 0xC000_0000
    assert symbols.load_offset == 0xC000_0000 - 0x8000_0000
    with pytest.raises(SymbolError) as e:
        symbols.address("clok_intr")
    assert e.value.suggestions[0] == "clock_intr"


def test_expressions(symbols: Symbols) -> None:
    clock = symbols.address("clock_intr")
    assert symbols.resolve("clock_intr") == clock
    assert symbols.resolve("clock_intr+0x10") == clock + 16
    assert symbols.resolve("clock_intr + 8") == clock + 8
    assert symbols.resolve("clock_intr-4") == clock - 4
    assert symbols.resolve("0xc0000010") == 0xC000_0010 and symbols.resolve("4096") == 4096
    for bad in ("clock_intr+", "1 2", "0x1_0000_0000", "0x100000000", "-5"):
        with pytest.raises(ValueError):
            symbols.resolve(bad)


def test_locations(symbols: Symbols) -> None:
    clock = symbols.address("clock_intr")
    assert symbols.locate(clock).where == "clock_intr"
    assert symbols.locate(clock + 8).where == "clock_intr+0x8"
    node = symbols.address("this_node")
    assert symbols.locate(node + 4).where == "this_node+0x4"      # data has symbols, not lines
    assert symbols.locate(node + 4).source == ""
    assert symbols.locate(0x1000) == Location(0x1000)            # nothing there
    assert str(symbols.locate(0x1000)) == "0x00001000"


@needs_gdb
def test_source_lines_are_the_ones_gdb_reports(symbols: Symbols, kernel_elf: Path) -> None:
    assert GDB is not None
    functions = ["clock_intr", "idle_loop", "startup", "panic", "barrier_sync", "trap"]
    addrs = [symbols.address(f) + 8 for f in functions]
    out = subprocess.run([GDB, "-batch", "-nx", str(kernel_elf),
                          *(arg for a in addrs for arg in ("-ex", f"info line *{a:#x}"))],
                         capture_output=True, text=True, timeout=60).stdout
    reported = re.findall(r'Line (\d+) of "([^"]+)"', out)
    assert len(reported) == len(addrs), out
    for addr, (line, file) in zip(addrs, reported, strict=True):
        located = symbols.locate(addr)
        assert (located.file, located.line) == (Path(file).name, int(line)), hex(addr)


def test_a_physical_pc_is_named_in_its_nodes_copy(symbols: Symbols) -> None:
    description = p.MachineDescription(1, 1, 4, 1100, 1024, 64, 16, 0x8000_0000, 0x40_0000, 1000,
                                       10_000_000, "rv32")
    ctx = ConsoleContext(link=None, mux=None, description=description, symbols=symbols)  # type: ignore[arg-type]
    entry_on_node_2 = 0x8000_0000 + 2 * 0x40_0000 + 4
    assert ctx.locate(2, entry_on_node_2).where == "_entry+0x4"
    assert ctx.locate(2, entry_on_node_2).addr == entry_on_node_2     # shown as it is, named as the kernel's
    assert ctx.locate(1, entry_on_node_2).where == ""                 # not node 1's RAM: no kernel there
    with pytest.raises(CommandError) as e:
        ctx.resolve("clock_intrr")
    assert e.value.hint.startswith("did you mean clock_intr or ")
