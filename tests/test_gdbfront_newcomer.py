"""Rough edges a newcomer hit, each checked with real gdb on a real machine: the console says why
it cannot answer when the node running the monitor is stopped, `$psyche_pc` prints as a code
address, and a failure report's gdb log does not carry gdb's whole register-number space."""

from __future__ import annotations

import re
import time

import pytest

from gdbfront.console import SILENCE_CHECK, ConsoleTimeout
from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions

pytestmark = [pytest.mark.psyche(nodes=2), pytest.mark.slow, pytest.mark.timeout(90)]


def test_a_console_command_says_the_monitor_node_is_stopped(gdb: GdbSessions,
                                                            psyche_machine: PsycheMachine) -> None:
    king = gdb(0)                                  # attaching stops node 0, where the monitor runs
    began = time.monotonic()
    with pytest.raises(ConsoleTimeout, match=r"node 0, which runs the kernel monitor, is not running "
                                             r"\(stopped .*\[gdb .*\]\)"):
        psyche_machine.console.command("ticks", timeout=30)
    assert time.monotonic() - began < SILENCE_CHECK + 5    # said at once, not after the 30 s
    king.cont_nowait()
    assert re.search(r"0:\d+", psyche_machine.console.command("ticks"))   # the typed line is answered


def test_psyche_pc_is_a_code_address_in_hex(gdb: GdbSessions) -> None:
    node1 = gdb(1)
    shown = node1.console("print $psyche_pc(1)")
    pc = node1.integer("$pc")
    assert re.fullmatch(rf"\$\d+ = \(void \*\) {pc:#x} <\w+(\+\d+)?>\n", shown)
    assert node1.integer("$psyche_pc(1)") == pc


def test_the_gdb_log_trims_the_register_name_list(gdb: GdbSessions) -> None:
    node1 = gdb(1)
    assert node1.registers("pc", "mstatus")["pc"] == node1.integer("$pc")
    record = next(line for line in node1.log if '"register-names"' in line)
    assert len(record) < 2000 and re.search(r'\d+ named of \d+: 0:zero 1:ra', record)
    assert '"", ""' not in record
