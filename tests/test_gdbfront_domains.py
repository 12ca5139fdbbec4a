"""Threads that run user code, in real gdb: their VP and domain, user memory as their domain sees
it, and breakpoints in user code that stop only in the domains asked for.

On node 1, `watch` runs in its domain W (the node's daemon thread is its first VP), and `park`
(started on node 2) has parked a second VP of its domain P, blocked for good.  gdb on node 1 shows
both as threads with their VP and domain; selecting P's VP reads P's memory through P's page
table on node 1, which W's view (the node's own, while watch runs) cannot reach.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbError, GdbSession

pytestmark = [pytest.mark.psyche(nodes=3), pytest.mark.slow, pytest.mark.timeout(120)]

KEY = 0x1234
WATCH_ELF = Path(__file__).resolve().parent.parent / "build" / "user" / "watch.elf"
VP_MAGIC = 0x50565350     # "PSVP", the first word of every VP descriptor


def thread_table(gdb: GdbSession) -> dict[str, dict[str, Any]]:
    info = gdb.command("-thread-info")
    return {t["name"]: {**t, "current": t["id"] == info["current-thread-id"]} for t in info["threads"]}


@dataclass(frozen=True)
class World:
    """What the module's programs made: watch in domain W on node 1, park's VP of domain P there."""

    watch_code: int
    domain_w: int
    vp: int
    desc: int
    domain_p: int


@pytest.fixture(scope="module")
def world(psyche_machine: PsycheMachine) -> World:
    console = psyche_machine.console
    made = re.search(r"made realm (0x[0-9a-f]+)", console.command(f"run share make {KEY:#x}"))
    assert made
    console.command("spawn 2 park 1")
    parked = console.wait_for(r"park: vp (\d+) on node 1, descriptor at (0x[0-9a-f]+), domain (\d+)")
    console.command(f"spawn 1 watch {made.group(1)} {KEY:#x}")
    code = int(console.wait_for(r"watch: domain \d+, code (0x[0-9a-f]+)-").group(1), 16)
    watching = console.wait_for(r"watch: domain (\d+) on node 1 sees")
    time.sleep(0.2)
    return World(code, int(watching.group(1)), int(parked.group(1)), int(parked.group(2), 16),
                 int(parked.group(3)))


def test_a_thread_of_another_domain_reads_memory_through_its_own_page_table(
        gdb: GdbSessions, world: World) -> None:
    vp, desc, domain_p, domain_w = world.vp, world.desc, world.domain_p, world.domain_w
    node1 = gdb(1)
    threads = thread_table(node1)
    daemon = threads["daemon"]
    parked_thread = threads[f"vp{vp}"]
    assert parked_thread["details"] == f"blocked on software interrupt, VP {vp} in domain {domain_p}"
    assert re.fullmatch(rf"running, VP \d+ in domain {domain_w}", daemon["details"]), daemon
    assert daemon["current"]
    assert threads["idle"]["details"] == "ready"      # kernel only: no VP, no domain

    # P's VP descriptor is in P's data: W's view cannot reach it (lld faults nothing in) ...
    node1.console(f"thread {daemon['id']}")
    with pytest.raises(GdbError, match="Cannot access memory"):
        node1.integer(f"*(unsigned int *){desc:#x}")
    # ... P's own page table on node 1 can, once P's thread is selected
    node1.console(f"thread {parked_thread['id']}")
    assert node1.integer(f"*(unsigned int *){desc:#x}") == VP_MAGIC
    assert node1.integer(f"((unsigned int *){desc:#x})[1]") == vp      # the kernel wrote its id
    # and its backtrace runs from the kernel's switch down into the VP's trap from user code
    frames = [f.func for f in node1.backtrace()]
    assert frames[0] == "sched_switch" and "trap_entry" in frames, frames



def test_a_breakpoint_in_user_code_stops_only_in_the_domains_asked_for(
        gdb: GdbSessions, world: World) -> None:
    node1 = gdb(1)
    node1.console(f"add-symbol-file {WATCH_ELF} -o {world.watch_code:#x}")
    other = world.domain_p                       # a domain that never runs watch's loop
    hit = node1.breakpoint("watch.c:21")         # in watch's loop, which only domain W runs
    stop = node1.cont()                          # every domain, by default
    assert stop.reason == "breakpoint-hit" and stop.line == 21, stop
    assert node1.integer("self->id") == world.domain_w

    # Resting on the instruction before it, whose only successor it is (the loop's back edge
    # lands there), a continue sends gdb's packets for a stepi onto it: that stops, whatever the
    # domain, rather than let a stepi run away (docs/debug-semantics.md).
    node1.stepi()
    node1.stepi()
    assert node1.integer("$pc") == hit.addr - 4
    assert f"stop in domain {other};" in node1.console(f"monitor domains {other}")
    stop = node1.cont()
    assert stop.reason == "breakpoint-hit" and stop.frame and stop.frame.addr == hit.addr, stop

    node1.cont_nowait()
    time.sleep(1.5)                              # (on a loaded host the loop comes round slowly)
    stop = node1.interrupt()                     # it never stopped there: W is not asked for
    assert stop.reason == "signal-received", stop
    skipped = int(re.search(r"(\d+) hits in other domains stepped over",
                            node1.console("monitor domains")).group(1))
    assert skipped > 10                          # ... though the loop met it many times

    assert f"stop in domains {min(other, world.domain_w)} {max(other, world.domain_w)};" in \
        node1.console(f"monitor domains {other} {world.domain_w}")
    stop = node1.cont()
    assert stop.reason == "breakpoint-hit" and stop.line == 21, stop
    assert node1.integer("self->id") == world.domain_w
    assert "stop in every domain" in node1.console("monitor domains all")
    assert "usage: monitor domains" in node1.console("monitor domains two")
    node1.delete()
