"""The Runner serves a talking debugger within a round or two, however long its poll interval.

Host input still enters only between rounds (tests/test_determinism.py); what
changes is which boundary: while debug frames keep coming, the runner looks at
the debug line after every round, and a frame forwarded to another node's
mailbox is served at the very next boundary.
"""

from __future__ import annotations

import os
import select
import threading
import time

import pytest

from lld import protocol as p
from lld.attach import Lld
from lld.client import LldClient
from lld.loopback import Loopback
from lld.testing import build_target_guest
from psyche.machine.hostline import PtyLine
from psyche.machine.physmem import RAM_BASE
from psyche.machine.runner import ConsoleMatcher, Runner

pytestmark = pytest.mark.timeout(120)

POLL_ROUNDS = 200_000   # seconds of rounds: a request served only at poll points would wait that long


def test_a_talking_debugger_is_served_between_any_two_rounds() -> None:
    machine = build_target_guest().boot(2)
    line = PtyLine()
    lld = Lld(machine, line)
    runner = Runner(machine, [line], pace=False, poll_rounds=POLL_ROUNDS, debug=lld,
                    stop_on_node_stop=False)
    done = ConsoleMatcher("(?!)")   # matches nothing: set .matched to end the run
    thread = threading.Thread(target=runner.run, kwargs={"max_seconds": 60, "until": done}, daemon=True)
    fd = os.open(line.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    client = LldClient()
    quantum = machine.config.quantum

    def call(node: int, request: p.Request) -> tuple[p.Reply, int]:
        """The reply, and how many rounds the machine ran while the request was out."""
        before = machine.time
        _, wire = client.send(node, request, 0)
        os.write(fd, wire)
        while True:
            select.select([fd], [], [], 1.0)
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            for done in client.receive(data):
                return done.reply, (machine.time - before) // quantum

    try:
        thread.start()
        call(0, p.GetStatus())                 # the first may wait for a poll point
        rounds = [call(node, p.GetStatus())[1] for _ in range(10) for node in (0, 1)]
        reply, _ = call(1, p.GetStatus())
        assert isinstance(reply.value, p.Status) and reply.value.running
        # Rounds also pass while this thread waits for the GIL; a poll point is POLL_ROUNDS away.
        assert max(rounds) < POLL_ROUNDS // 20, rounds
    finally:
        done.matched = True
        thread.join(timeout=70)
        os.close(fd)
        line.close()


def test_the_idle_machine_spins_for_a_quick_exchange_but_not_after_a_bulk_read() -> None:
    """A stopped machine waits for a talking debugger's next frame without sleeping, except
    after a long reply: gdb takes a millisecond or more to read one, the spin would take
    that core from the mux reading ahead."""
    lb = Loopback(build_target_guest().boot(1), run=True)
    runner = Runner(lb.machine, [lb.wire], debug=lb.lld, stop_on_node_stop=False)
    for _ in range(3):
        lb.tick()
    lb.ok(0, p.Stop(lb.status(0).gen))

    def spin_after(request: p.Request) -> float:
        lb.ok(0, request)
        runner._note_debug_traffic()
        return runner._spin_seconds(time.monotonic())

    assert spin_after(p.GetStatus()) > 0
    assert spin_after(p.ReadMem(p.SPACE_PHYS, RAM_BASE, 16384)) == 0
    assert spin_after(p.ReadMem(p.SPACE_PHYS, RAM_BASE, 64)) > 0
