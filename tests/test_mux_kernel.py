"""Real gdb-multiarch on node 2 of a 4-node machine running the Psyche kernel, through the mux.

The scenario of the mux issue: load the kernel's symbols, break on
clock_intr, stop there, backtrace, print a kernel struct, single-step
through the handler, read and write memory, watch the tick count, detach,
and see the node run on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdb_util import Up, gdb, needs_gdb, start_up

pytestmark = [needs_gdb, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def up(kernel_elf: Path) -> Iterator[Up]:
    machine = start_up(kernel_elf, 4)
    yield machine
    machine.stop()


def test_clock_intr_on_node_2(up: Up) -> None:
    out = gdb(
        up.kernel, f"127.0.0.1:{up.port(2)}",
        "break clock_intr",
        "continue",
        "bt",
        "p this_node.id",
        "p this_node.nnodes",
        "p/x this_node.ram_base",
        "ptype struct spinlock",
        "set var $before = this_node.ticks",
        "next",
        "next",
        "next",
        "p this_node.ticks == $before + 1",
        "stepi",
        "stepi",
        "info registers pc",
        "p/x this_node.magic",
        "set var this_node.missed_ticks = 4242",
        "p this_node.missed_ticks",
        "x/2wx &this_node",
        "delete",
        "watch this_node.ticks",
        "continue",
        "p $pc",
        "delete",
        "p $priv",
        "detach",
    )
    assert "Breakpoint 1, clock_intr ()" in out, out
    assert re.search(r"#1 .* in \w+", out), out                 # a backtrace beyond the handler
    assert "$1 = 2" in out and "$2 = 4" in out                  # node 2 of 4
    assert f"$3 = {hex(0x80000000 + 2 * 0x400000)}" in out      # its own RAM
    assert "struct spinlock {" in out
    assert "= true" in out or "$4 = 1" in out                   # stepping the handler bumped ticks
    assert "0x4e4f4445" in out                                  # NODE_MAGIC read through gdb
    assert "4242" in out                                        # memory written and read back
    assert "Hardware watchpoint 2: this_node.ticks" in out and "New value" in out
    assert "[Inferior 1 (Remote target) detached]" in out


def test_detached_node_runs_on(up: Up) -> None:
    first = gdb(up.kernel, f"127.0.0.1:{up.port(2)}", "p this_node.ticks", "detach")
    again = gdb(up.kernel, f"127.0.0.1:{up.port(2)}", "p this_node.ticks", "detach")
    ticks = [int(re.search(r"\$1 = (\d+)", out).group(1)) for out in (first, again)]  # type: ignore[union-attr]
    assert ticks[1] > ticks[0], (first, again)


def test_other_nodes_tick_while_node_3_is_stopped(up: Up) -> None:
    out = gdb(up.kernel, f"127.0.0.1:{up.port(3)}", "break clock_intr", "continue", "monitor status",
              "delete", "detach")
    assert "Breakpoint 1, clock_intr ()" in out
    assert re.search(r"\*node\s+3\s+stopped .*reason=breakpoint", out), out
    assert re.search(r" node\s+1\s+running", out), out
