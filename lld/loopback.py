"""An in-process debug line between an LldClient and a machine: for tests, not for users.

The mux talks to lld over a pty; tests want the same conversation without
processes or wall time.  `Loopback` puts a BufferLine (optionally lossy)
between an LldClient and the machine's lld and advances the simulation one
*tick* at a time: a round of the machine (if `run` is on and anything can
run) followed by lld's round-boundary service, exactly the order the Runner
uses.  Time for the client's retransmission timer is counted in ticks, so a
lossy run is reproducible to the instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lld import protocol as p
from lld.attach import Lld
from lld.client import Completed, LldClient
from lld.lossy import LossyLine
from psyche.machine.hostline import BufferLine
from psyche.machine.machine import Machine


class NoReply(AssertionError):
    """The request got no reply within the tick budget."""


@dataclass
class LoopbackStats:
    ticks: int = 0
    rounds: int = 0


class Loopback:
    def __init__(
        self,
        machine: Machine,
        *,
        loss: float = 0.0,
        seed: int = 0,
        run: bool = False,
        timeout_ticks: int = 4,
        max_attempts: int = 200,
    ) -> None:
        self.machine = machine
        self.wire = BufferLine()
        self.line = LossyLine(self.wire, loss, seed) if loss else self.wire
        self.lld = Lld(machine, self.line)
        self.client = LldClient(timeout=timeout_ticks, max_attempts=max_attempts)
        self.run = run
        self.stats = LoopbackStats()

    def tick(self) -> list[Completed]:
        """One round of the machine (when running) and one lld service; replies that completed."""
        if self.run and not self.machine.idle():
            self.machine.run_round()
            self.stats.rounds += 1
        self.lld.service()
        self.stats.ticks += 1
        done = self.client.receive(self.wire.take_output())
        again, failed = self.client.poll(self.stats.ticks)
        if again:
            self.wire.feed(again)
        if failed:
            raise NoReply(f"no reply from node {failed[0].node} to {failed[0].request!r}")
        return done

    def send(self, node: int, request: p.Request) -> int:
        seq, wire = self.client.send(node, request, self.stats.ticks)
        self.wire.feed(wire)
        return seq

    def call(self, node: int, request: p.Request, max_ticks: int = 100_000) -> p.Reply:
        """Send a request and tick until its reply arrives."""
        seq = self.send(node, request)
        for _ in range(max_ticks):
            for done in self.tick():
                if done.node == node and done.seq == seq:
                    return done.reply
        raise NoReply(f"no reply from node {node} to {request!r} within {max_ticks} ticks")

    def inject(self, data: bytes) -> None:
        """Put raw bytes on the line towards the machine (garbage, old frames, ...)."""
        self.wire.feed(data)

    # -- conveniences, each one request ---------------------------------------------------

    def ok(self, node: int, request: p.Request) -> Any:
        """The value of a successful reply (typed Any for the tests' convenience); raises otherwise."""
        reply = self.call(node, request)
        if not reply.ok:
            assert reply.error is not None
            raise AssertionError(f"{request!r} on node {node}: {reply.error.describe()}")
        return reply.value

    def status(self, node: int) -> p.Status:
        value = self.ok(node, p.GetStatus())
        assert isinstance(value, p.Status)
        return value
