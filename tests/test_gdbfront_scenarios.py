"""Debug regression scenarios on a booted 4-node machine, each a few lines of gdbfront.

The module's machine is restored from the booted snapshot once; the `gdb`
fixture detaches every session after each test, so each starts with every
node running and no breakpoints, whatever the test before it did.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbTimeout

pytestmark = [pytest.mark.psyche(nodes=4), pytest.mark.slow, pytest.mark.timeout(90)]

CLOCK_C = Path(__file__).resolve().parent.parent / "psyche" / "kernel" / "clock.c"


def source_line(path: Path, text: str) -> int:
    """The line number of the first line of path containing text."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {path}")


def eventually(probe, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    """probe()'s first true value, trying until timeout (for values that other nodes change)."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(0.05)
    return value


def monitor_ticks(machine: PsycheMachine) -> dict[int, int]:
    """Every node's tick count as the kernel monitor prints it (`ticks` on the console)."""
    return {int(k): int(t) for k, t in re.findall(r"(\d+):(\d+)", machine.console.command("ticks"))}


def test_step_through_clock_intr_on_node_3_while_the_others_run(gdb: GdbSessions) -> None:
    node3 = gdb(3)
    node3.breakpoint("clock_intr")
    stop = node3.cont()
    assert (stop.reason, stop.func, Path(stop.file or "").name) == ("breakpoint-hit", "clock_intr", "clock.c")
    assert node3.integer("$psyche_node()") == 3 == node3.integer("this_node.id")
    others = {k: node3.integer(f"$psyche_ticks({k})") for k in (0, 1, 2)}

    # Line by line to the end of the handler: the tick count goes up by one, on its own line.
    increment = source_line(CLOCK_C, "this_node.ticks++")
    ticks = node3.integer("this_node.ticks")
    changes = []
    while stop.func == "clock_intr":
        line = stop.line
        stop = node3.next()
        now = node3.integer("this_node.ticks")
        if now != ticks:
            changes.append((line, now - ticks))
        ticks = now
    assert changes == [(increment, 1)]
    assert stop.func == "trap"                          # stepped out, back into the trap dispatcher
    assert node3.integer("magic.ticks") == ticks        # the handler copied it to the magic page

    # Node 3 stayed stopped while the others ran on: their clocks ticked, seen from node 3.
    eventually(lambda: all(node3.integer(f"$psyche_ticks({k})") > t for k, t in others.items()))
    nodes = node3.psyche_data("nodes")
    assert [n["run"] for n in nodes] == ["running", "running", "running", "stopped"]
    assert nodes[3]["ticks"] == ticks and nodes[3]["attached"]


def test_instruction_steps_memory_and_finish_in_the_clock_handler(gdb: GdbSessions) -> None:
    node2 = gdb(2)
    entry = node2.run_to("clock_intr")
    assert entry.func == "clock_intr"
    assert node2.stepi().addr == entry.addr + 4          # RV32 without C: every instruction is 4 bytes
    assert [frame.func for frame in node2.backtrace(2)] == ["rdtime", "clock_intr"]   # inlined: riscv.h
    node2.write_memory("&this_node.missed_ticks", (4242).to_bytes(4, "little"))
    assert node2.integer("this_node.missed_ticks") == 4242
    assert node2.read_memory("&this_node.magic", 4) == (0x4E4F4445).to_bytes(4, "little")   # "NODE"

    assert node2.run_to("clock_intr").addr == entry.addr      # the next tick, at the handler's entry
    stop = node2.finish()
    assert (stop.reason, stop.func) == ("function-finished", "trap")
    assert [frame.func for frame in node2.backtrace(2)] == ["trap", "trap_entry"]
    registers = node2.registers("pc", "sp")
    assert registers["pc"] == stop.addr and 0xC0000000 <= registers["sp"] < 0xC0400000
    assert node2.step().reason == "end-stepping-range"


def test_detach_over_udp_leaves_the_machine_running(psyche_machine: PsycheMachine, gdb: GdbSessions) -> None:
    node1 = gdb(1, transport="udp")
    node1.breakpoint("clock_intr")
    assert node1.cont().func == "clock_intr"
    stopped_at = node1.integer("this_node.ticks")
    node1.detach()

    # The kernel's own monitor, on the console, sees node 1's clock tick on.
    first = monitor_ticks(psyche_machine)[1]
    assert first >= stopped_at
    eventually(lambda: monitor_ticks(psyche_machine)[1] > first)
    # And the detach took gdb's breakpoint out of lld, and only gdb's: a new gdb on node 1 finds
    # the machine's own stop at panic and nothing else.
    again = gdb(1)
    listing = again.console("monitor breakpoints")
    panic = again.integer("(unsigned int)&panic")
    assert listing.count("breakpoint at") == 1 and f"breakpoint at {panic:#010x}" in listing, listing


def test_gdb_killed_and_replaced_mid_session(gdb: GdbSessions) -> None:
    first = gdb(2)
    # A condition gdb itself evaluates: node 2 stops at every tick and gdb resumes it, busily.
    first.breakpoint("clock_intr", condition="this_node.ticks == 0")
    first.cont_nowait()
    time.sleep(0.3)
    first.kill()                                         # mid-conversation, no detach: gdb just vanishes

    # Whenever gdb died in that loop, node 2 is left stopped in the handler, waiting for a debugger.
    second = gdb(2)                                      # the mux freed the node when the socket closed
    assert "clock_intr" in [frame.func for frame in second.backtrace(3)]
    ticks = second.integer("this_node.ticks")
    time.sleep(0.3)
    assert second.integer("this_node.ticks") == ticks    # it does not run on its own
    assert re.search(r"\*node\s+2\s+stopped", second.console("monitor status"))

    # The new gdb carries on: the interrupted handler finishes once, the next tick stops again.
    second.console("monitor clear")                      # whatever the dead gdb left in lld
    second.breakpoint("clock_intr")
    stop = second.cont()
    assert (stop.reason, stop.func) == ("breakpoint-hit", "clock_intr")
    assert second.integer("this_node.ticks") == ticks + 1


def test_a_watchpoint_on_a_shared_variable_another_node_writes(psyche_machine: PsycheMachine,
                                                                gdb: GdbSessions) -> None:
    """Node 3's tick count lives in its record, which node 3 writes 100 times a second and the king
    reads for the monitor's `ticks`.  A watchpoint belongs to the node whose gdb set it: the king's
    stops only for the king's own accesses, and sees node 3's writes as a changed value."""
    king = gdb(0)
    address = king.integer("&kg.nodes[3]->ticks")
    king.watch(f"*(unsigned int *){address:#x}", kind="access")
    king.cont_nowait()
    with pytest.raises(GdbTimeout):
        king.wait_for_stop(timeout=0.5)                   # node 3 writes it all the while: no stop
    seen = []
    for _ in range(2):
        psyche_machine.console.type("ticks\r")
        stop = king.wait_for_stop()
        assert stop.reason == "access-watchpoint-trigger" and stop.func == "cmd_ticks", stop
        king.cont_nowait()
        output = psyche_machine.console.wait_for(r"ticks\n((?:.|\n)*?)psyche> ").group(1)
        seen.append(int(re.search(r"\b3:(\d+)", output).group(1)))  # type: ignore[union-attr]
        time.sleep(0.1)
    assert seen[1] > seen[0]                             # node 3 wrote it between the king's reads
    king.interrupt()
    king.delete()
