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
* A line from which nothing at all comes (a machine stopped or hung, a cable
  pulled) fails each request after `give_up` seconds (1.5), well within gdb's
  `remotetimeout` (2 s): gdb gets an error reply in time and stays in step,
  where the client's 40 attempts (10 s) would outlast it.  The line is only
  *silent*: the next request is sent again, and the first byte back ends it.
* A line that hangs up (a pty whose machine process ended reads EIO, a socket
  reads EOF), or that the owner of the machine declares dead (`declare_down`),
  is *down* for good: every request, waiting or new, fails at once with
  `LinkDown`.  Listeners (`add_listener`) hear of silence, recovery and the
  end (docs/failure-modes.md).
* Per-node statistics: requests, retransmissions, failures, latency.
* A node's handle may hold steps it answered ahead of lld (`hold`, mux/ahead.py):
  the first request anyone then makes for that node, READ_MEM aside, has them
  sent first, so it sees the node after them; a REVERSE (the whole machine)
  has every node's sent first.
* Per-node knowledge of lld's breakpoints (`breakpoints`), kept from the
  replies that pass: every client in this process reaches lld through this
  link, so what it has seen set, cleared and listed is what lld holds.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import statistics
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lld import protocol as p
from lld.client import LldClient

#: A request fails when nothing at all has come from the line for this long since it was first
#: sent (and it went out SILENT_ATTEMPTS times): under gdb's default remotetimeout of 2 s.
GIVE_UP_SILENT = 1.5
SILENT_ATTEMPTS = 3
#: A REVERSE keeps the machine busy re-executing its history, silent, for as long as that takes
#: (seconds on a busy machine with a long history): gdb waits for its stop reply as for a continue.
REVERSE_GIVE_UP = 60.0
#: A line that hangs up is declared down this much later: whoever owns the machine process
#: (psyche up) learns at about the same moment how it ended, and can say so first (declare_down).
HANGUP_GRACE = 0.25


class LinkError(Exception):
    """A request got no answer: the node or the line is not responding."""


class RequestError(LinkError):
    """A request that cannot be put in a frame (an address over 32 bits, a length over 16): never sent.

    Callers should refuse such requests before they reach the link; this is the last
    line of defence, so that one bad request fails alone instead of raising in the
    dispatcher and leaving every later request of its node unsent.
    """


class BytePort(Protocol):
    """What the link needs of a pyserial port."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...


class SocketPort:
    """A debug line over TCP (`socket://HOST:PORT`): the socket itself, read by the event loop.

    pyserial's socket:// port says one byte is waiting whatever has arrived, so a
    thread reading it took a 16 KiB frame a byte at a time, each byte a hop into the
    event loop: a 32 KiB read took seconds and gdb gave up on it.  This port has the
    descriptor the link reads whenever it is readable, as it reads a pty.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()

    @classmethod
    def connect(cls, url: str, timeout: float = 5.0) -> SocketPort:
        """Connect to `socket://HOST:PORT`; OSError or ValueError saying what is wrong."""
        host, sep, port = url.removeprefix("socket://").rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected socket://HOST:PORT, not {url!r}")
        return cls(socket.create_connection((host, int(port)), timeout=timeout))

    def fileno(self) -> int:
        return self.fd

    def read(self, size: int = 1) -> bytes:
        try:
            return self.sock.recv(size)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> int:
        """All of data: what the socket cannot take at once waits for it to drain."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)
        return len(data)

    def close(self) -> None:
        self.sock.close()

    @property
    def in_waiting(self) -> int:
        return 0   # (only a reader thread asks; the event loop reads this port)


class LinkDown(LinkError):
    """The debug line is gone for good (it hung up, or its machine ended): nothing will be answered."""


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
        give_up: float = GIVE_UP_SILENT,
    ) -> None:
        self.port = port
        self.give_up = give_up
        #: Why the line is down for good, or None while it is up (see declare_down).
        self.down: str | None = None
        #: True from a request failing for the line's silence until the next byte from it.
        self.silent = False
        self._last_heard = time.monotonic()
        self._first_sent: dict[tuple[int, int], float] = {}   # (node, seq) -> first send
        self._listeners: list[Callable[[str], None]] = []
        self.client = LldClient(timeout=timeout, max_attempts=max_attempts)
        self.max_in_flight = max_in_flight
        self.stats: dict[int, NodeLinkStats] = {}
        #: node -> lld's breakpoints (address -> kind) as the replies through this link show them;
        #: a node is absent until a LIST_BREAKPOINTS (or CLEAR_ALL) reply makes them known.
        self.breakpoints: dict[int, dict[int, int]] = {}
        self._queues: dict[int, deque[_Waiting]] = {}
        self._holds: dict[int, Callable[[], None]] = {}
        self._in_flight: dict[int, _Waiting] = {}
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake_timer = asyncio.Event()
        #: When the retransmission timer looks next, unless woken sooner.
        self._timer_looks_at = 0.0
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
        except OSError as e:
            # The far end closed: a pty whose other side (the machine's) is gone reads EIO,
            # and stays so: the machine process owns that side for its whole life.
            self._hung_up(f"the debug line hung up ({os.strerror(e.errno) if e.errno else e}): "
                          "the machine's end of it closed")
            return
        if data:
            self._on_data(data)
        else:
            self._hung_up("the debug line hung up (end of file): the machine's end of it closed")

    def _hung_up(self, reason: str) -> None:
        """The line will never carry anything again: down, after HANGUP_GRACE."""
        assert self._loop is not None
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
        self._loop.call_later(HANGUP_GRACE, self.declare_down, reason)

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Be told, in a sentence, when the line goes silent, answers again, or goes down."""
        self._listeners.append(listener)

    def _tell(self, message: str) -> None:
        for listener in list(self._listeners):
            listener(message)

    def declare_down(self, reason: str) -> None:
        """The line is gone for good: fail everything waiting, and everything asked from now on.

        Called by the link itself when the line hangs up, and by whoever owns the machine
        when it learns the machine ended (`psyche up` watches its process).
        """
        if self.down is not None or self._closing.is_set():
            return
        self.down = reason
        if self._fd >= 0 and self._loop is not None:
            self._loop.remove_reader(self._fd)
        for node in list(self._in_flight):
            self.client.cancel(node)
        self._fail_all(LinkDown(reason))
        self._tell(reason)

    def _fail_all(self, error: LinkError) -> None:
        waiting = [*self._in_flight.items(), *((n, w) for n, q in self._queues.items() for w in q)]
        self._in_flight.clear()
        self._queues.clear()
        for node, item in waiting:
            if not item.future.done():
                self.stats[node].failures += 1
                item.future.set_exception(error)

    async def close(self) -> None:
        self._closing.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._fd >= 0 and self._loop is not None and self.down is None:
            self._loop.remove_reader(self._fd)
        self._fail_all(LinkDown("the mux is shutting down"))
        if self._reader is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._reader.join, 1.0)
        self.port.close()

    def _read_forever(self) -> None:
        """Blocking reads on a thread of their own; bytes go to the event loop."""
        assert self._loop is not None
        while not self._closing.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except Exception as e:  # noqa: BLE001 - a port that died (socket:// at EOF raises)
                if not self._closing.is_set():
                    self._from_thread(self._hung_up, f"the debug line failed: {e}")
                return
            if data:
                self._from_thread(self._on_data, data)

    def _from_thread(self, callback: Callable[[Any], None], argument: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, argument)
        except RuntimeError:   # the event loop has closed: nobody is left to tell
            self._closing.set()

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
        releases: list[Callable[[], None]] = []
        if isinstance(request, p.Reverse):   # the whole machine goes back: every node's steps first
            releases, self._holds = list(self._holds.values()), {}
        elif not isinstance(request, p.ReadMem) and node in self._holds:
            releases = [self._holds.pop(node)]
        for release in releases:
            release()   # (it submits its node's held steps: they take their place first)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(request, loop.create_future(), time.monotonic())
        stats = self.stats.setdefault(node, NodeLinkStats())
        stats.requests += 1
        if self.down is not None or self._closing.is_set():
            stats.failures += 1
            waiting.future.set_exception(LinkDown(self.down or "the mux is shutting down"))
            return waiting.future
        self._queues.setdefault(node, deque()).append(waiting)
        self._dispatch()
        return waiting.future

    def hold(self, node: int, release: Callable[[], None]) -> None:
        """Call release (once) before the next request for node other than a READ_MEM is queued."""
        self._holds[node] = release

    def unhold(self, node: int) -> None:
        self._holds.pop(node, None)

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
            while queue:
                waiting = queue.popleft()
                if waiting.future.cancelled():
                    continue   # its caller no longer wants it: never sent
                try:
                    _, wire = self.client.send(node, waiting.request, time.monotonic())
                except (ValueError, OverflowError, struct.error) as e:
                    # The request does not fit a frame: it fails alone, and the next one goes.
                    self.stats[node].failures += 1
                    waiting.future.set_exception(RequestError(
                        f"node {node}: {type(waiting.request).__name__} cannot be sent to lld: {e}"))
                    continue
                self._in_flight[node] = waiting
                self._turn = node + 1
                self._write(wire)
                break
        deadline = self.client.next_deadline()
        if deadline is not None and deadline < self._timer_looks_at:
            # (Only then: a request behind one already out never needs an earlier look, and waking
            # the timer for each request would cost every round trip two turns of the loop.)
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
        self._last_heard = now
        if self.silent:
            self.silent = False
            self._tell("the debug line answers again")
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
            self._timer_looks_at = time.monotonic() + delay
            try:
                await asyncio.wait_for(self._wake_timer.wait(), delay)
                continue
            except TimeoutError:
                pass
            now = time.monotonic()
            outstanding = self.client.outstanding()
            # Every request is seen here before its first retransmission: its first send is its sent_at.
            self._first_sent = {(w.node, w.seq): self._first_sent.get((w.node, w.seq), w.sent_at)
                                for w in outstanding}
            before = {w.node: w.attempts for w in outstanding}
            data, failed = self.client.poll(now)
            for pending in self.client.outstanding():
                if pending.attempts > before.get(pending.node, pending.attempts):
                    self.stats[pending.node].retransmissions += 1
            if data:
                self._write(data)
            for failure in failed:
                self._fail(failure.node, failure.request,
                           LinkError(f"node {failure.node} did not answer after {failure.attempts} attempts"))
            self._give_up_if_silent(now)
            self._dispatch()

    def _give_up_if_silent(self, now: float) -> None:
        """Fail the requests sent into a line from which nothing has come since (see GIVE_UP_SILENT)."""
        for pending in self.client.outstanding():
            since = max(self._first_sent.get((pending.node, pending.seq), pending.sent_at), self._last_heard)
            give_up = REVERSE_GIVE_UP if isinstance(pending.request, p.Reverse) else self.give_up
            if pending.attempts < SILENT_ATTEMPTS or now - since < give_up:
                continue
            self.client.cancel(pending.node)
            quiet = now - self._last_heard
            self._fail(pending.node, pending.request, LinkError(
                f"node {pending.node}: no answer: nothing has come from the debug line for {quiet:.1f} s "
                f"(is the machine running?)"))
            if not self.silent:
                self.silent = True
                self._tell(f"the debug line is silent: nothing from it for {quiet:.1f} s; requests fail "
                           f"after {self.give_up:g} s until it answers again")

    def _fail(self, node: int, request: p.Request, error: LinkError) -> None:
        self.stats[node].failures += 1
        if isinstance(request, (p.SetBreakpoint, p.ClearBreakpoint, p.ClearAll)):
            self.breakpoints.pop(node, None)   # it may or may not have taken effect
        waiting = self._in_flight.pop(node, None)
        if waiting is not None and not waiting.future.done():
            waiting.future.set_exception(error)
