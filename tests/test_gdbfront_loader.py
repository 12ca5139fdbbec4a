"""Debugging a program the user-level loader placed, in real gdb, through the real shell.

The loader publishes its table (uapi/psyche.h, `struct psy_programs`; its domain descriptor's
`programs`), with the servers init placed at boot in it too.  `psyche symbols` reads it beside
the kernel's own table, so that gdb knows the loaded program and the name server at the
addresses they run at: a breakpoint in the program's main stops there, and one in the name
server's `lookup` stops there while the program calls it, a protected call into another domain.
The reentrant library is in the table too, at its realm: `step` goes from a loaded program into
the library function it calls, and a breakpoint in the library stops there.
"""

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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parent.parent
LOADER_C = REPO / "psyche" / "user" / "sys" / "loader.c"
LOOKUP_C = REPO / "psyche" / "user" / "progs" / "lookup.c"
ULIB_C = REPO / "psyche" / "user" / "ulib.c"
#: PSY_RETURN_VA: where an operation returns to; the fetch fault there ends the call.
RETURN_GATE = 0x7FFFE000


def thread_details(session: Any) -> list[dict[str, Any]]:
    info = session.command("-thread-info")
    return [{**t, "current": t["id"] == info["current-thread-id"]} for t in info["threads"]]


def line_of(source: Path, text: str) -> int:
    return next(i for i, line in enumerate(source.read_text().splitlines(), 1) if text in line)


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


def by_name(report: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report if "name" in r}


def test_break_in_a_loaded_program_and_in_the_name_server_it_calls(
        gdb: GdbSessions, machine: PsycheMachine) -> None:
    node0 = gdb(0)                 # init placed every server on node 0; `run` places there too
    report = by_name(node0.psyche_data("symbols"))
    assert {n: r["by"] for n, r in report.items()} == {
        "names": "init", "files": "init", "loader": "init", "sh": "init", "libpsy.so": "init"}, report
    assert all(r["action"] == "added" and r["data"] is None for r in report.values())
    names_base = report["names"]["code"]
    text = node0.psyche("symbols")
    assert re.search(r"names \(domain \d+, init, at boot\): .*names\.elf at 0x", text), text

    # stop in the loader once it has placed the program: now it is in the table
    placed = node0.breakpoint(f"loader.c:{line_of(LOADER_C, 'req->handle = (uint32_t)line;')}")
    node0.cont_nowait()
    machine.console.type("run lookup 2\r")
    stop = node0.wait_for_stop()
    assert stop.func == "load" and stop.file is not None and stop.file.endswith("loader.c"), stop
    report = by_name(node0.psyche_data("symbols"))
    lookup = report["lookup"]
    assert (lookup["by"], lookup["action"]) == ("loader", "added"), report
    base = lookup["code"]
    assert report["names"]["action"] == "kept"
    assert "lookup (domain" in node0.psyche("symbols") and "the loader)" in node0.psyche("symbols")
    node0.delete(placed.number)

    # the program's main, at the loader's address, with its source line
    main = node0.breakpoint("lookup.c:main")
    stop = node0.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "main"), stop
    assert stop.file is not None and stop.file.endswith("lookup.c") and stop.line is not None
    assert stop.addr is not None and base <= stop.addr < base + 0x10000
    assert node0.integer("$priv") == 0
    node0.delete(main.number)

    # across the protected call: a breakpoint in the name server's lookup stops there, in the names
    # domain, on the names VP's thread, while the program's VP waits in the kernel for the call
    server = node0.breakpoint("names.c:lookup")
    stop = node0.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "lookup"), stop
    assert stop.file is not None and stop.file.endswith("names.c")
    assert stop.addr is not None and names_base <= stop.addr < names_base + 0x10000
    threads = thread_details(node0)
    current = next(t for t in threads if t["current"])
    names_domain = report["names"]["domain"]
    assert re.fullmatch(rf"running, VP \d+ in domain {names_domain}", current["details"]), threads
    assert any(re.fullmatch(rf"blocked on protected call, VP \d+ in domain {lookup['domain']}", t["details"])
               for t in threads), threads
    # an operation returns to the kernel's return gate, not to its caller: gdb's `finish` cannot
    # follow it (docs/user-level.md); a breakpoint where the caller resumes does
    assert node0.backtrace()[1].addr == RETURN_GATE
    node0.delete(server.number)
    back = node0.breakpoint(f"lookup.c:{line_of(LOOKUP_C, 'if (err)')}")
    stop = node0.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "main") and stop.file.endswith("lookup.c"), stop
    assert node0.integer("err") == 0                     # names found files.get for it
    node0.delete(back.number)


def test_a_program_on_another_node_is_debugged_on_its_node(gdb: GdbSessions, machine: PsycheMachine) -> None:
    """`run @1`: the loader places the program's data on node 1 and its VP runs there; node 1's gdb
    finds it through the loader's table and stops in its main, on that node."""
    machine.console.type("run @1 lookup wait 1 &\r")
    machine.console.wait_for(r"lookup: waiting for a debugger")
    node1 = gdb(1)
    lookup = by_name(node1.psyche_data("symbols"))["lookup"]
    assert lookup["by"] == "loader", lookup
    after_wait = node1.breakpoint(f"lookup.c:{line_of(LOOKUP_C, 'int n = i < argc')}")
    node1.console("set var go = 1")                      # attaching stopped node 1: in its wait
    stop = node1.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "main") and stop.file.endswith("lookup.c"), stop
    assert lookup["code"] <= stop.addr < lookup["code"] + 0x10000
    assert node1.integer("$priv") == 0
    assert node1.integer("((struct psy_magic *)0x7ffff000)->node") == 1     # on node 1's magic page
    node1.delete(after_wait.number)
    node1.cont_nowait()
    machine.console.wait_for(r"lookup: files\.get is op 0x")
    machine.console.wait_for(r"\[\d\] lookup: exit 0")


def test_step_from_a_loaded_program_into_the_shared_library(gdb: GdbSessions, machine: PsycheMachine) -> None:
    """`lookup` is linked against libpsy.so: its parse_number and printf are the library's, in the
    library's realm, which `psyche symbols` adds from build/user/shared/libpsy.so.elf."""
    machine.console.type("run lookup wait 1 &\r")
    machine.console.wait_for(r"lookup: waiting for a debugger")
    node0 = gdb(0)
    report = by_name(node0.psyche_data("symbols"))
    lib, lookup = report["libpsy.so"], report["lookup"]
    assert lib["library"] and lib["elf"].endswith("shared/libpsy.so.elf"), lib
    assert lookup["elf"].endswith("shared/lookup.elf"), lookup
    assert re.search(r"libpsy\.so \(library, init, at boot\): .*shared/libpsy\.so\.elf at 0x",
                     node0.psyche("symbols"))
    at_parse = node0.breakpoint(f"lookup.c:{line_of(LOOKUP_C, 'int n = i < argc')}")
    node0.console("set var go = 1")
    stop = node0.cont()
    assert (stop.func, stop.line) == ("main", line_of(LOOKUP_C, "int n = i < argc")), stop
    node0.delete(at_parse.number)

    # step: through the program's PLT slot, into the library's parse_number, at the library's address
    stop = node0.step()
    assert stop.func == "parse_number" and stop.file is not None and stop.file.endswith("ulib.c"), stop
    assert stop.addr is not None and lib["code"] <= stop.addr < lib["code"] + 0x2000, (hex(stop.addr), lib)
    assert not lookup["code"] <= stop.addr < lookup["code"] + 0x10000
    frames = node0.backtrace()
    assert frames[1].func == "main" and frames[1].file is not None and frames[1].file.endswith("lookup.c")
    stop = node0.next()                                 # lines of the library's own source
    assert stop.func == "parse_number" and stop.file.endswith("ulib.c"), stop
    stop = node0.finish()
    assert stop.func == "main" and stop.file.endswith("lookup.c"), stop

    # a breakpoint in the library: the next printf lookup makes stops there (the servers' own
    # static copies of printf are other locations of the same breakpoint)
    printf = node0.breakpoint("ulib.c:printf")
    stop = node0.cont()
    assert stop.func == "printf" and lib["code"] <= stop.addr < lib["code"] + 0x2000, stop
    frames = node0.backtrace()
    assert frames[1].func == "main" and frames[1].file.endswith("lookup.c"), frames
    node0.delete(printf.number)
    node0.cont_nowait()
    machine.console.wait_for(r"\[\d\] lookup: exit 0")
