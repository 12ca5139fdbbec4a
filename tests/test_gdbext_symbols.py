"""`psyche symbols` in real gdb: a user program's symbols at the address the kernel loaded it, so
that `break main` stops in the program, and symbols of programs gone are dropped again."""

from __future__ import annotations

import re
import time

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions

pytestmark = [pytest.mark.psyche(nodes=2), pytest.mark.slow, pytest.mark.timeout(120)]


def test_psyche_symbols_lets_break_main_stop_in_a_user_program(
        gdb: GdbSessions, psyche_machine: PsycheMachine) -> None:
    node1 = gdb(1)
    assert node1.psyche("symbols") == "psyche symbols: no program is loaded\n"

    # stop where the kernel enters a program it has just loaded on node 1
    node1.breakpoint("user_run")
    node1.cont_nowait()
    psyche_machine.console.command("spawn 1 hello")
    assert node1.wait_for_stop().func == "user_run"
    code = int(psyche_machine.console.wait_for(r"hello: domain \d+, code (0x[0-9a-f]+)-").group(1), 16)

    report = node1.psyche_data("symbols")
    assert [(r["name"], r["action"], r["code"]) for r in report] == [("hello", "added", code)]
    node1.delete()
    bp = node1.breakpoint("main")            # the kernel has no main: this is hello's, at its address
    stop = node1.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "main") and stop.file.endswith("hello.c")
    assert stop.addr is not None and code <= stop.addr < code + 0x10000
    assert node1.integer("$priv") == 0                     # in user mode, in the program
    node1.delete(bp.number)

    # --auto: once hello has exited, the next stop drops its symbols
    node1.psyche("symbols --auto")
    node1.cont_nowait()
    psyche_machine.console.wait_for(r"hello: exit 0")
    node1.interrupt()
    # (gdb runs its stop observers, and then the update they post, around the commands that follow)
    for _ in range(3):
        node1.evaluate("1")
        time.sleep(0.1)
    text = node1.log_text()
    assert re.search(r"psyche symbols: removed .*hello\.elf \(at 0x[0-9a-f]+: its program is gone\)", text), \
        text[-3000:]
    assert node1.psyche("symbols") == "psyche symbols: no program is loaded\n"
