"""Following a protected call in real gdb, through the real shell: `psyche step-call` from the
line of lookup's main that looks a name up, into the name server's `lookup` (in the names domain,
on its VP's thread), and `psyche finish-call` back to the line after, with the operation's result;
and the errors when there is no call to follow (docs/user-level.md, "Debugging a program")."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from user_util import program_files, shell_machine

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import Frame, GdbError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parent.parent
LOADER_C = REPO / "psyche" / "user" / "sys" / "loader.c"
LOOKUP_C = REPO / "psyche" / "user" / "progs" / "lookup.c"


def line_of(source: Path, text: str) -> int:
    return next(i for i, line in enumerate(source.read_text().splitlines(), 1) if text in line)


def here(session: Any) -> Frame:
    """The selected frame (a stop inside a command that resumed the target itself is silent)."""
    return Frame.from_mi(session.command("-stack-info-frame")["frame"])


def current_thread(session: Any) -> dict[str, Any]:
    info = session.command("-thread-info")
    return next(t for t in info["threads"] if t["id"] == info["current-thread-id"])


def internal_breakpoints(session: Any) -> list[str]:
    """gdb's breakpoints of every kind, the extension's internal ones too (negative numbers)."""
    text = session.console("maint info breakpoints")
    return [line for line in text.splitlines() if re.match(r"-\d+\s+breakpoint", line)]


@pytest.fixture(scope="module")
def machine(kernel_elf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PsycheMachine]:
    if shutil.which("gdb-multiarch") is None:
        pytest.skip("gdb-multiarch is not installed")
    with shell_machine(kernel_elf, program_files(tmp_path_factory.mktemp("files"))) as m:
        yield m


@pytest.fixture
def gdb(machine: PsycheMachine) -> Iterator[GdbSessions]:
    sessions = GdbSessions(machine)
    try:
        yield sessions
    finally:
        sessions.close()


def test_step_into_the_name_server_and_back(gdb: GdbSessions, machine: PsycheMachine) -> None:
    node0 = gdb(0)
    # stopped in the kernel (the idle loop, at attach): neither has a call to follow
    for command in ("step-call", "finish-call"):
        with pytest.raises(GdbError, match=rf"psyche {command}: stopped in the kernel, not in user code"):
            node0.psyche(command)
    node0.psyche("symbols")
    placed = node0.breakpoint(f"loader.c:{line_of(LOADER_C, 'req->handle = (uint32_t)line;')}")
    node0.cont_nowait()
    machine.console.type("run lookup 2\r")
    node0.wait_for_stop()
    symbols = {r["name"]: r for r in node0.psyche_data("symbols") if "name" in r}
    node0.delete(placed.number)
    call_line = line_of(LOOKUP_C, "int err = ask(name, &link);")
    stop = node0.run_to(f"lookup.c:{call_line}")
    assert (stop.func, stop.line) == ("main", call_line), stop

    text = node0.console_resuming("psyche step-call")
    stop = here(node0)
    assert stop.func == "lookup" and stop.file is not None and stop.file.endswith("names.c"), (text, stop)
    names = symbols["names"]
    assert names["code"] <= stop.addr < names["code"] + 0x10000
    assert re.search(rf"into lookup \(names\.c:\d+\) in domain {names['domain']}, VP \d+ on node 0",
                     text), text
    assert re.fullmatch(rf"running, VP \d+ in domain {names['domain']}", current_thread(node0)["details"])
    assert internal_breakpoints(node0) == []

    text = node0.console_resuming("psyche finish-call")
    stop = here(node0)
    assert stop.func == "main" and stop.line == call_line + 1, (text, stop)
    lookup_domain = symbols["lookup"]["domain"]
    assert re.match(rf"running, VP \d+ in domain {lookup_domain}", current_thread(node0)["details"])
    match = re.search(r"a0 = (0x[0-9a-f]+)", text)
    assert match, text
    assert node0.integer("err") == 0
    assert internal_breakpoints(node0) == []

    # a line that makes no call: refused where it stands
    pc = node0.integer("$pc")
    with pytest.raises(GdbError, match=rf"psyche step-call: no call on line lookup.c:{call_line + 1}"):
        node0.console_resuming("psyche step-call")
    assert node0.integer("$pc") == pc and internal_breakpoints(node0) == []
    node0.cont_nowait()
    machine.console.wait_for(rf"lookup: files.get is op {int(match.group(1), 16):#010x}")
