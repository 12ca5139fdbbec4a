"""The mux's end of the debug line: lld requests with retransmission, shared fairly.

`LldLink` puts the sans-IO `lld.client.LldClient` on a real byte stream (a
pyserial port: a pty, `socket://`, `rfc2217://` or a device).  Every gdb
session, the monitor and the console call `await link.request(node, req)`.

* One request per node is on the line at a time (the protocol's guards
  assume stop-and-wait); requests for the same node queue in order.
* Nodes take turns: when several nodes have requests waiting, they are
  sent round-robin, at most `max_in_flight` at once, so one busy session
  cannot starve another on a slow line.
* Lost or corrupted frames are retransmitted by the client's timer; a node
  that never answers fails its request with `LinkError` after the client's
  last attempt.
* Per-node statistics: requests, retransmissions, failures, latency.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from lld import protocol as p
from lld.client import LldClient


class LinkError(Exception):
    """A request got no answer: the node or the line is not responding."""


class BytePort(Protocol):
    """What the link needs of a pyserial port."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...


@dataclass
class NodeLinkStats:
    requests: int = 0
    retransmissions: int = 0
    failures: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=4096))

    def percentiles(self) -> tuple[float, float, float] | None:
        """Latency p50, p90, p99 in seconds over the recent requests, or None."""
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            only = self.latencies[0]
            return only, only, only
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[49], cuts[89], cuts[98]


@dataclass
class _Waiting:
    request: p.Request
    future: asyncio.Future[p.Reply]
    queued_at: float


class LldLink:
    def __init__(
        self,
        port: BytePort,
        *,
        timeout: float = 0.25,
        max_attempts: int = 40,
        max_in_flight: int = 16,
    ) -> None:
        self.port = port
        self.client = LldClient(timeout=timeout, max_attempts=max_attempts)
        self.max_in_flight = max_in_flight
        self.stats: dict[int, NodeLinkStats] = {}
        self._queues: dict[int, deque[_Waiting]] = {}
        self._in_flight: dict[int, _Waiting] = {}
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake_timer = asyncio.Event()
        self._reader: threading.Thread | None = None
        self._closing = threading.Event()

    # -- lifetime ------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = threading.Thread(target=self._read_forever, name="lld-line-reader", daemon=True)
        self._reader.start()
        self._timer = asyncio.create_task(self._retransmit_forever())

    async def close(self) -> None:
        self._closing.set()
        if self._timer is not None:
            self._timer.cancel()
        for waiting in [*self._in_flight.values(), *(w for q in self._queues.values() for w in q)]:
            if not waiting.future.done():
                waiting.future.set_exception(LinkError("the mux is shutting down"))
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._reader.join, 1.0)
        self.port.close()

    def _read_forever(self) -> None:
        """Blocking reads on a thread of their own; bytes go to the event loop."""
        assert self._loop is not None
        while not self._closing.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except Exception:  # noqa: BLE001 - a port that died: the link stays up, requests fail
                if self._closing.is_set():
                    return
                time.sleep(0.05)
                continue
            if data:
                self._loop.call_soon_threadsafe(self._on_data, data)

    # -- requests --------------------------------------------------------------

    async def request(self, node: int, request: p.Request) -> p.Reply:
        """Send a request to node's lld and wait for its reply (an error reply is a reply)."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, loop.create_future(), time.monotonic())
        self._queues.setdefault(node, deque()).append(waiting)
        self.stats.setdefault(node, NodeLinkStats()).requests += 1
        self._dispatch()
        return await waiting.future

    async def ok(self, node: int, request: p.Request) -> object:
        """The value of a successful reply; a LinkError naming the error otherwise."""
        reply = await self.request(node, request)
        if not reply.ok:
            detail = reply.error.message if reply.error is not None else ""
            raise LinkError(f"node {node}: {p.ERROR_NAMES.get(reply.status, reply.status)} {detail}".strip())
        return reply.value

    def _dispatch(self) -> None:
        """Send waiting requests, nodes in turn, within the in-flight limit."""
        nodes = sorted(n for n, q in self._queues.items() if q and n not in self._in_flight)
        if not nodes:
            return
        start = next((i for i, n in enumerate(nodes) if n >= self._turn), 0)
        for node in nodes[start:] + nodes[:start]:
            if len(self._in_flight) >= self.max_in_flight:
                break
            waiting = self._queues[node].popleft()
            if waiting.future.cancelled():
                continue
            _, wire = self.client.send(node, waiting.request, time.monotonic())
            self._in_flight[node] = waiting
            self._turn = node + 1
            self._write(wire)
        self._wake_timer.set()

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except Exception:  # noqa: BLE001 - the retransmission timer tries again
            pass

    def _on_data(self, data: bytes) -> None:
        now = time.monotonic()
        for done in self.client.receive(data):
            waiting = self._in_flight.pop(done.node, None)
            if waiting is None:
                continue
            stats = self.stats[done.node]
            stats.latencies.append(now - waiting.queued_at)
            if not waiting.future.done():
                waiting.future.set_result(done.reply)
        self._dispatch()

    async def _retransmit_forever(self) -> None:
        while True:
            deadline = self.client.next_deadline()
            self._wake_timer.clear()
            delay = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._wake_timer.wait(), delay)
                continue
            except TimeoutError:
                pass
            before = {w.node: w.attempts for w in self.client.outstanding()}
            data, failed = self.client.poll(time.monotonic())
            for pending in self.client.outstanding():
                if pending.attempts > before.get(pending.node, pending.attempts):
                    self.stats[pending.node].retransmissions += 1
            if data:
                self._write(data)
            for failure in failed:
                self.stats[failure.node].failures += 1
                waiting = self._in_flight.pop(failure.node, None)
                if waiting is not None and not waiting.future.done():
                    waiting.future.set_exception(LinkError(
                        f"node {failure.node} did not answer after {failure.attempts} attempts"))
            self._dispatch()
