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
* Per-node knowledge of lld's breakpoints (`breakpoints`), kept from the
  replies that pass: every client in this process reaches lld through this
  link, so what it has seen set, cleared and listed is what lld holds.
"""

from __future__ import annotations

import asyncio
import os
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
        #: node -> lld's breakpoints (address -> kind) as the replies through this link show them;
        #: a node is absent until a LIST_BREAKPOINTS (or CLEAR_ALL) reply makes them known.
        self.breakpoints: dict[int, dict[int, int]] = {}
        self._queues: dict[int, deque[_Waiting]] = {}
        self._in_flight: dict[int, _Waiting] = {}
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake_timer = asyncio.Event()
        self._reader: threading.Thread | None = None
        self._fd = -1          # the port's descriptor when the event loop reads it (see start)
        self._closing = threading.Event()

    # -- lifetime ------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        fd = self._pollable_fd()
        if fd is not None:
            self._fd = fd
            self._loop.add_reader(fd, self._read_ready)
        else:
            self._reader = threading.Thread(target=self._read_forever, name="lld-line-reader", daemon=True)
            self._reader.start()
        self._timer = asyncio.create_task(self._retransmit_forever())

    def _pollable_fd(self) -> int | None:
        """The port's descriptor if the event loop can read it directly, else None.

        A local serial port or pty (pyserial's posix Serial: a non-blocking descriptor)
        is read by the event loop itself when it becomes readable.  That saves, on
        every reply, the reader thread's wake-up, its GIL hand-over and the
        call_soon_threadsafe hop into the loop: about a quarter of a millisecond a
        round trip, which a single step pays several times.  Other ports (socket://,
        rfc2217://, test doubles) keep the blocking reader thread.
        """
        fileno = getattr(self.port, "fileno", None)
        if fileno is None or not hasattr(self.port, "fd"):
            return None
        try:
            fd = fileno()
        except Exception:  # noqa: BLE001 - a port type that has no descriptor
            return None
        if not isinstance(fd, int) or fd < 0:
            return None
        try:
            os.set_blocking(fd, False)
        except OSError:
            return None
        return fd

    def _read_ready(self) -> None:
        """The event loop says the line is readable: take everything there is."""
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            # The far end went away (a pty reads EIO while nobody holds the other side):
            # stop watching for a moment instead of spinning; retransmission carries on.
            self._pause_reading()
            return
        if data:
            self._on_data(data)
        else:
            self._pause_reading()

    def _pause_reading(self) -> None:
        assert self._loop is not None
        self._loop.remove_reader(self._fd)
        if not self._closing.is_set():
            self._loop.call_later(0.05, self._resume_reading)

    def _resume_reading(self) -> None:
        if not self._closing.is_set() and self._loop is not None:
            self._loop.add_reader(self._fd, self._read_ready)

    async def close(self) -> None:
        self._closing.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._fd)
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
        return await self.submit(node, request)

    def submit(self, node: int, request: p.Request) -> asyncio.Future[p.Reply]:
        """Queue a request now and return the future of its reply.

        The request takes its place in the node's queue before this returns, so a
        caller can start a request without waiting for it and still know that every
        request it makes afterwards goes to the node after this one.
        """
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, loop.create_future(), time.monotonic())
        self._queues.setdefault(node, deque()).append(waiting)
        self.stats.setdefault(node, NodeLinkStats()).requests += 1
        self._dispatch()
        return waiting.future

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
            queue = self._queues[node]
            while queue and queue[0].future.cancelled():
                queue.popleft()   # its caller no longer wants it: never sent
            if not queue:
                continue
            waiting = queue.popleft()
            _, wire = self.client.send(node, waiting.request, time.monotonic())
            self._in_flight[node] = waiting
            self._turn = node + 1
            self._write(wire)
        self._wake_timer.set()

    def _write(self, data: bytes) -> None:
        try:
            if self._fd >= 0:
                # Straight to the descriptor when it takes it all (it nearly always does);
                # pyserial's write, with its select and timeout bookkeeping, for the rest.
                try:
                    sent = os.write(self._fd, data)
                except BlockingIOError:
                    sent = 0
                data = data[sent:]
            if data:
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
            self._observe(done.node, done.request, done.reply)
            if not waiting.future.done():
                waiting.future.set_result(done.reply)
        self._dispatch()

    def _observe(self, node: int, request: p.Request, reply: p.Reply) -> None:
        """Keep `breakpoints` in step with what a successful reply says lld now holds."""
        if not reply.ok:
            return
        if isinstance(request, p.ListBreakpoints) and isinstance(reply.value, list):
            self.breakpoints[node] = {bp.addr: bp.kind for bp in reply.value}
        elif isinstance(request, p.ClearAll):
            self.breakpoints[node] = {}
        elif (known := self.breakpoints.get(node)) is not None:
            if isinstance(request, p.SetBreakpoint):
                known[request.addr] = request.kind
            elif isinstance(request, p.ClearBreakpoint):
                known.pop(request.addr, None)

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
                if isinstance(failure.request, (p.SetBreakpoint, p.ClearBreakpoint, p.ClearAll)):
                    self.breakpoints.pop(failure.node, None)   # it may or may not have taken effect
                waiting = self._in_flight.pop(failure.node, None)
                if waiting is not None and not waiting.future.done():
                    waiting.future.set_exception(LinkError(
                        f"node {failure.node} did not answer after {failure.attempts} attempts"))
            self._dispatch()
