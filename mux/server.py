"""The mux's listeners: node k's gdb sessions on TCP and UDP port base + k.

Each connection gets an RSP codec (mux.rsp) and a GdbSession over the node's
NodeHandle, which the mux owns for its whole life; this module only moves
bytes between sockets and those two.  One gdb per node: a second
client on a node that already has one is refused with an error naming the
first, and closed.

How long a client may hold a node (docs/failure-modes.md):

* a connection that sends no packet within `gdb_idle_timeout` seconds of
  connecting (10 by default) is dropped: four silent connections cannot hold
  four nodes for ever.  A gdb that has spoken and is merely idle is never
  dropped: a person debugging may think for an hour;
* `Mux.kick` ends a session on request (the console's `kick`);
* UDP has no connections: a UDP session is its source address and port, and
  ends when it detaches, after UDP_IDLE_SECONDS of silence, or when kicked;
* when the machine or the debug line is gone for good, `Mux.end` tells every
  gdb waiting for a stop why, closes every connection and stops listening.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from mux import packets as rsp
from mux.gdb import EIO, GdbSession
from mux.kernel_layout import KernelLayout
from mux.link import GIVE_UP_SILENT, LinkError, LldLink
from mux.machine_port import MachineSession
from mux.monitor import Monitor
from mux.node import NodeHandle
from mux.rsp import BadPacket, Event, Interrupt, Packet, RspConnection
from mux.threads import NodeThreads

#: gdb's PacketSize: large, so that a big read is one `m` packet (gdb asks for about half of it,
#: hex doubling the reply) and one or two lld round trips, not dozens.
PACKET_SIZE = 0x10000
#: Over UDP a packet must fit one datagram (at most 65507 bytes), replies included: half as large.
UDP_PACKET_SIZE = 0x8000
UDP_IDLE_SECONDS = 120.0  # a UDP client that stays silent this long is taken to be gone
#: A connection that sends no packet this long after connecting is dropped (MuxConfig.gdb_idle_timeout).
GDB_IDLE_TIMEOUT = 10.0
#: Requests of one gdb waiting for lld before its input waits too (gdb itself has one at a time).
MAX_QUEUED = 16
#: Input is decoded this much at a time, so that a flood stops where the backpressure begins ...
FEED_SLICE = 4096
#: ... and for about this long at once (seconds): then the other clients have their turn.
TURN = 0.005
#: A client's transport stops reading (and its requests wait) while this much output is unread.
WRITE_HIGH_WATER = 4 * PACKET_SIZE

_log = logging.getLogger(__name__)


class FrontEnd(Protocol):
    """What a connection's bytes drive: one node's GdbSession, or the machine port's session."""

    @property
    def running(self) -> bool: ...

    def answer_now(self, request: rsp.Request) -> bytes | None: ...

    async def handle_request(self, request: rsp.Request) -> bytes | None: ...

    def failure_reply(self, request: rsp.Request, why: str) -> bytes: ...

    async def interrupt(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class MuxConfig:
    nodes: int
    base_port: int = 3333
    host: str = "127.0.0.1"
    udp: bool = True
    #: Seconds a client may stay connected without sending a packet; 0 for no limit.
    gdb_idle_timeout: float = GDB_IDLE_TIMEOUT
    #: The kernel ELF the nodes run, if known: its DWARF says where the kernel keeps its threads,
    #: which gdb is then shown (mux.threads); without it each node is one thread.
    kernel: Path | None = None
    #: The whole-machine port (every free node a thread, mux.machine_port), TCP; None: none.
    machine_port: int | None = None


@dataclass
class SessionInfo:
    """A gdb's claim on a node: who, since when, how recently it spoke, and how to end it."""

    peer: str
    transport: str
    session: FrontEnd
    conversation: _Conversation | None = None
    #: Ends the session, saying why to a gdb that waits for a stop: TCP closes, UDP forgets.
    hang_up: Callable[[str], None] | None = None
    #: The check that drops it if it sends no packet in time (cancelled when it ends).
    idle_check: asyncio.TimerHandle | None = None

    def __str__(self) -> str:
        return f"{self.transport} {self.peer}"

    @property
    def connected_at(self) -> float:
        """When the client connected (UDP: its first datagram), in the event loop's time."""
        return self.conversation.connected_at if self.conversation is not None else 0.0

    @property
    def last_packet_at(self) -> float | None:
        """When its last packet (or ctrl-C) came, in the event loop's time; None if none has."""
        return self.conversation.last_packet_at if self.conversation is not None else None

    @property
    def packets(self) -> int:
        return self.conversation.packets if self.conversation is not None else 0

    def idle(self, now: float) -> float:
        """Seconds since the client last sent a packet (since it connected, if it never has)."""
        last = self.last_packet_at
        return now - (last if last is not None else self.connected_at)

    def summary(self, now: float) -> str:
        """One line: `tcp 127.0.0.1:5555, connected 12 s, last packet 3.0 s ago`."""
        last = self.last_packet_at
        spoke = "no packet yet" if last is None else f"last packet {duration(now - last)} ago"
        return f"{self}, connected {duration(now - self.connected_at)}, {spoke}"


def duration(seconds: float) -> str:
    """A length of time for people: 0.4 s, 12 s, 3m05s, 2h07m."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class _Conversation:
    """The codec and session of one client, whatever carries its bytes.

    Nothing a client sends may cost the mux without bound, nor hold up the other
    clients (docs/failure-modes.md, "Hostile input"):

    * its input is taken FEED_SLICE bytes at a time, and not at all while MAX_QUEUED of
      its requests wait for lld or while the client does not read what it was sent
      (the transport's write buffer is over its high-water mark): the transport is
      told to stop reading (`pause_input`), and TCP's own flow control holds the client;
    * ctrl-Cs coalesce: while one is being served, more change nothing; one that comes
      while the node is stopped and no resume is in hand is dropped, as QEMU drops it;
    * a nack resends the last packet at most once per piece of input, and never while
      the copy before it is still in the output buffer;
    * every request gets its reply, an error if handling it failed in a way nobody
      foresaw: no exception escapes into the transport's callbacks.
    """

    def __init__(self, port: _NodePort | _MachinePort, write: Callable[[bytes], object],
                 no_ack_mode: bool, *, peer: str, transport: str, hang_up: Callable[[str], None],
                 packet_size: int = PACKET_SIZE,
                 pause_input: Callable[[bool], object] | None = None) -> None:
        self.port = port
        # Long runs of '0' (zero memory) go run-length encoded, as gdbserver sends runs.
        self.codec = RspConnection(max_packet_size=packet_size, rle=True)
        self.write = write
        self.pause_input = pause_input
        self._claim = functools.partial(SessionInfo, peer, transport, hang_up=hang_up)
        self._packet_size = packet_size
        self._no_ack_mode = no_ack_mode
        self.session = self._new_session()
        self.attached = True   # False after a detach: the next packet attaches again, if it may
        self._queue: asyncio.Queue[rsp.Request] = asyncio.Queue()
        self._busy = False   # the worker is handling a request
        self._resumes = 0   # resume requests taken and not yet answered (or left waiting for a stop)
        self._input = bytearray()   # received, not yet given to the codec
        self._input_paused = False
        self._writable = asyncio.Event()   # the client takes what it is sent (see writing_paused)
        self._writable.set()
        self._interrupting: asyncio.Task[None] | None = None
        self._next_turn: asyncio.Handle | None = None
        self._worker = asyncio.create_task(self._serve())
        self.connected_at = asyncio.get_running_loop().time()
        self.last_packet_at: float | None = None
        self.packets = 0   # packets and ctrl-Cs taken from the client
        port.claim(self._claim(self.session, self))

    def _new_session(self) -> FrontEnd:
        return self.port.open(self._send, self._notify, self._packet_size, self._no_ack_mode)

    def _attach_again(self) -> bytes | None:
        """A client that detached and speaks again is a new session, as if it had just
        connected: gdb's extended-remote mode stays connected, and a UDP client's resend
        of its D (the OK was lost) must be answered.  None, or the refusal if another
        gdb has the node meanwhile."""
        refusal = self.port.refusal()
        if refusal is not None:
            return refusal
        self.session.close()
        self.session = self._new_session()
        self.attached = True
        self.port.claim(self._claim(self.session, self))
        return None

    def release(self) -> None:
        """The client is gone or detached: its nodes are free for others."""
        self.port.release(self.session)

    def _send(self, payload: bytes) -> None:
        self.write(self.codec.send_packet(payload))

    def _notify(self, payload: bytes) -> None:
        self.write(self.codec.send_notification(payload))

    # -- input, with backpressure --------------------------------------------------------

    @property
    def input_paused(self) -> bool:
        """True while the conversation takes no more input (a UDP endpoint drops datagrams)."""
        return self._input_paused

    def _blocked(self) -> bool:
        return not self._writable.is_set() or self._queue.qsize() >= MAX_QUEUED

    def writing_paused(self, paused: bool) -> None:
        """The transport's write buffer went over its high-water mark (True) or drained (False)."""
        if paused:
            self._writable.clear()
        else:
            self._writable.set()
        self.codec.hold_resends = paused
        if not paused and self._next_turn is None:
            self._pump()

    def feed(self, data: bytes) -> None:
        self._input += data
        if self._next_turn is None:   # (else the turn to come takes it)
            self._pump()

    def _pump(self) -> None:
        """Take events, and input a slice at a time, until there is none or the client must wait.

        For about TURN seconds at a time: the rest waits for the event loop's next pass,
        so that other clients (and the debug line) have their turn in between.
        """
        self._next_turn = None
        loop = asyncio.get_running_loop()
        end_of_turn = loop.time() + TURN
        try:
            while not self._blocked():
                event = self.codec.next_event()
                if event is not None:
                    self._take(event)
                    continue
                if not self._input:
                    break
                if loop.time() > end_of_turn:
                    self._next_turn = loop.call_soon(self._pump)
                    break
                piece = bytes(self._input[:FEED_SLICE])
                del self._input[:FEED_SLICE]
                immediate = self.codec.receive_data(piece)
                if immediate:
                    self.write(immediate)
        except Exception:  # noqa: BLE001 - a bug here must not close the transport or stop the loop
            _log.exception("mux: %s: handling gdb's input failed", self.port)
        paused = self._blocked() or bool(self._input)
        if paused != self._input_paused:
            self._input_paused = paused
            if self.pause_input is not None:
                self.pause_input(paused)

    def _take(self, event: Event) -> None:
        if isinstance(event, (Interrupt, Packet)):
            self.packets += 1
            self.last_packet_at = asyncio.get_running_loop().time()
        if isinstance(event, Interrupt):
            # Only while the node runs for this gdb or a resume of its is in hand; one
            # ctrl-C at a time is enough: the node is being stopped already.
            if not (self.attached and (self.session.running or self._resumes)):
                return
            if self._interrupting is None or self._interrupting.done():
                self._interrupting = asyncio.create_task(self._interrupt())
        elif isinstance(event, Packet):
            request = rsp.parse_request(event.payload)
            if isinstance(request, _RESUMES):
                self._resumes += 1
            # Answered on the spot when nothing of this gdb's is still in hand and the
            # session needs no lld for it (cached memory, thread queries...): a packet
            # then costs no task switch.  Otherwise in order, through the queue.
            if self.attached and not self._busy and self._queue.empty():
                reply = self.session.answer_now(request)
                if reply is not None:
                    self._replied(request, reply)
                    return
            self._queue.put_nowait(request)
        elif isinstance(event, BadPacket) and event.rejected and not self.codec.ack_mode:
            # Nothing nacks it in no-ack mode, and its sender waits: an error is its reply.
            self._queue.put_nowait(rsp.MalformedRequest(b"", event.reason))

    async def _interrupt(self) -> None:
        try:
            await self.session.interrupt()
        except Exception:  # noqa: BLE001 - see _serve
            _log.exception("mux: %s: ctrl-C failed", self.port)

    # -- requests ------------------------------------------------------------------------

    def _replied(self, request: rsp.Request, reply: bytes | None) -> None:
        if isinstance(request, _RESUMES):
            self._resumes -= 1
        if reply is not None:
            self._send(reply)
        if isinstance(request, rsp.StartNoAckMode) and reply == rsp.OK:
            self.codec.start_no_ack_mode()
        if isinstance(request, rsp.Detach) and self.attached:
            self.attached = False
            self.release()

    async def _serve(self) -> None:
        """Requests one at a time, in order, as gdb expects; each waits until the client reads."""
        while True:
            request = await self._queue.get()
            await self._writable.wait()
            self._busy = True
            try:
                try:
                    refusal = None if self.attached else self._attach_again()
                    reply: bytes | None
                    if refusal is not None:
                        reply = rsp.OK if isinstance(request, rsp.Detach) else refusal
                    else:
                        reply = await self.session.handle_request(request)
                except Exception as e:  # noqa: BLE001 - every request gets a reply, whatever went wrong
                    _log.exception("mux: %s: handling %r failed", self.port, request)
                    reply = self.session.failure_reply(request, f"mux: internal error: {e!r}")
                self._replied(request, reply)
            finally:
                self._busy = False
            if self._input_paused and self._next_turn is None:
                self._pump()

    def close(self) -> None:
        self._worker.cancel()
        if self._interrupting is not None:
            self._interrupting.cancel()
        if self._next_turn is not None:
            self._next_turn.cancel()
        self.session.close()


#: The requests that may set the node running (a ctrl-C behind one of them is for it).
_RESUMES = (rsp.Continue, rsp.Step, rsp.VCont)


class _NodePort:
    """Node k's own port: one gdb at a time on that node, shown its kernel threads."""

    def __init__(self, mux: Mux, node: int) -> None:
        self.mux = mux
        self.node = node

    def __str__(self) -> str:
        return f"node {self.node}"

    def refusal(self) -> bytes | None:
        return self.mux.refusal(self.node)

    def open(self, send: Callable[[bytes], None], notify: Callable[[bytes], None],
             packet_size: int, no_ack_mode: bool) -> GdbSession:
        return GdbSession(self.mux.nodes[self.node], send, self.mux.monitor.run,
                          packet_size=packet_size, no_ack_mode=no_ack_mode,
                          threads=self.mux.threads[self.node])

    def claim(self, info: SessionInfo) -> None:
        self.mux.attach(self.node, info)

    def release(self, session: FrontEnd) -> None:
        self.mux.release(self.node, session)


class _MachinePort:
    """The whole-machine port: one gdb on every node no other gdb holds (mux.machine_port)."""

    def __init__(self, mux: Mux) -> None:
        self.mux = mux

    def __str__(self) -> str:
        return "the machine port"

    def free_nodes(self) -> list[int]:
        return [n for n in range(self.mux.config.nodes) if n not in self.mux.clients]

    def refusal(self) -> bytes | None:
        if self.free_nodes():
            return None
        return b"E.every node already has a gdb session (monitor sessions on a node's port lists them)"

    def open(self, send: Callable[[bytes], None], notify: Callable[[bytes], None],
             packet_size: int, no_ack_mode: bool) -> MachineSession:
        handles = [self.mux.nodes[n] for n in self.free_nodes()]
        return MachineSession(handles, send, notify, self.mux.monitor.run,
                              packet_size=packet_size, no_ack_mode=no_ack_mode)

    def claim(self, info: SessionInfo) -> None:
        session = info.session
        assert isinstance(session, MachineSession)
        for i, node in enumerate(session.nodes):
            self.mux.attach(node, info, idle_check=i == 0)

    def release(self, session: FrontEnd) -> None:
        assert isinstance(session, MachineSession)
        for node in session.nodes:
            self.mux.release(node, session)


class Mux:
    def __init__(self, config: MuxConfig, link: LldLink) -> None:
        self.config = config
        self.link = link
        self.nodes = [NodeHandle(node, link) for node in range(config.nodes)]
        layout = KernelLayout.load(config.kernel) if config.kernel is not None else None
        #: Each node's threads, kept for the mux's life so that thread ids stay what gdb saw.
        self.threads = [NodeThreads(handle, layout) for handle in self.nodes]
        self.clients: dict[int, SessionInfo] = {}
        self.monitor = Monitor(link, config.nodes, self.clients)  # type: ignore[arg-type]
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: set[_TcpClient] = set()   # live gdb connections, closed with the mux
        #: Why the mux ended (the machine or its line is gone for good), or None while it serves.
        self.ended: str | None = None
        #: Set when the mux has ended: `psyche up` and `psyche mux` then exit.
        self.finished = asyncio.Event()
        self._listeners: list[Callable[[str, str], None]] = []
        add_listener = getattr(link, "add_listener", None)   # (a test's stand-in link may have none)
        if add_listener is not None:
            add_listener(self._line_event)

    # -- what happens, for people ---------------------------------------------------------------

    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        """Be told (source, sentence) of what the mux does on its own: the line's health, sessions
        dropped or kicked, the end.  `psyche up` prints them; the console logs them."""
        self._listeners.append(listener)

    def report(self, source: str, text: str) -> None:
        if not self._listeners:
            _log.warning("mux: %s", text)
        for listener in list(self._listeners):
            listener(source, text)

    def _line_event(self, text: str) -> None:
        if self.ended is not None:
            return   # (the end declared the line down itself, and says so)
        if self.link.down is not None:
            self.end(self.link.down)   # (which says so)
        else:
            self.report("line", text)

    # -- sessions -------------------------------------------------------------------------------

    def attach(self, node: int, info: SessionInfo, idle_check: bool = True) -> None:
        """A client holds node from now on: it must send a packet within gdb_idle_timeout
        (checked once per client: the machine port's holds many nodes)."""
        self.clients[node] = info
        limit = self.config.gdb_idle_timeout
        if limit > 0 and idle_check:
            info.idle_check = asyncio.get_running_loop().call_later(limit, self._drop_if_silent, node, info)

    def _drop_if_silent(self, node: int, info: SessionInfo) -> None:
        if self.clients.get(node) is not info or info.packets:
            return
        why = (f"sent no packet within {self.config.gdb_idle_timeout:g} s of connecting "
               f"(--gdb-idle-timeout)")
        self.report("gdb", f"node {node}: dropped the connection from {info}: it {why}")
        if info.hang_up is not None:
            info.hang_up(f"this connection {why}")

    def kick(self, node: int, why: str) -> SessionInfo | None:
        """End node's gdb session (the node stays as it is, as for a gdb that went away)."""
        info = self.clients.get(node)
        if info is None:
            return None
        self.report("gdb", f"node {node}: ended the session of {info}: {why}")
        if info.hang_up is not None:
            info.hang_up(why)
        self.release(node, info.session)
        return info

    def end(self, why: str) -> None:
        """The machine or its debug line is gone for good: nothing will be answered any more.

        Every gdb waiting for a stop is told why (console output, which gdb shows at
        once); every connection closes (gdb: "Remote connection closed"), and the mux
        stops listening, so a new gdb is refused at once instead of waiting on a dead line.
        """
        if self.ended is not None:
            return
        self.ended = why
        declare_down = getattr(self.link, "declare_down", None)
        if declare_down is not None:
            declare_down(why)
        for info in list(self.clients.values()):
            if info.hang_up is not None:
                info.hang_up(why)
        for client in list(self._tcp):
            client.hang_up(why)   # the refused ones, and any the loop above has not reached
        for server in self._servers:
            server.close()
        for transport in self._udp:
            transport.close()
        self.report("mux", f"{why}: every gdb connection is closed and the mux no longer listens")
        self.finished.set()

    def port_of(self, node: int) -> int:
        return self.config.base_port + node

    async def start(self) -> None:
        """Listen on every node's port; a ValueError or OSError naming the port if one cannot be had."""
        config = self.config
        last = self.port_of(config.nodes - 1)
        if not 1 <= config.base_port or last > 65535:
            raise ValueError(f"gdb ports {config.base_port}..{last} for {config.nodes} nodes do not fit "
                             f"1..65535: the base port must be at most {65536 - config.nodes}")
        try:
            for node in range(config.nodes):
                await self._listen(_NodePort(self, node), self.port_of(node), f"node {node}", config.udp)
            if config.machine_port:
                await self._listen(_MachinePort(self), config.machine_port,
                                   "the whole machine (--machine-port 0: none)", udp=False)
        except BaseException:
            await self.close()   # (the ports it did get)
            raise

    async def _listen(self, port: _NodePort | _MachinePort, number: int, what: str, udp: bool) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        address = f"{config.host}:{number}"
        kind = "tcp"
        try:
            server = await loop.create_server(functools.partial(_TcpClient, self, port), config.host, number)
            self._servers.append(server)
            if udp:
                assert isinstance(port, _NodePort)
                kind = "udp"
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_UdpEndpoint, self, port), local_addr=(config.host, number))
                self._udp.append(transport)
        except OSError as e:
            cause = e if e.errno else e.__cause__   # (uvloop's wraps the system's error)
            why = os.strerror(cause.errno) if isinstance(cause, OSError) and cause.errno else str(e)
            raise OSError(f"cannot listen on {kind} {address} for {what}: {why}") from e

    async def close(self) -> None:
        """Stop listening and hang up on every gdb (each sees its connection closed)."""
        for server in self._servers:
            server.close()
        for transport in self._udp:
            transport.close()
        for client in list(self._tcp):
            if client.transport is not None:
                client.transport.close()
        for info in list(self.clients.values()):
            info.session.close()
        await asyncio.sleep(0)   # let the closed connections' callbacks run
        # Steps answered ahead and still held are made: a gdb shown a step leaves it made.
        for handle in self.nodes:
            try:
                await asyncio.wait_for(handle.ahead.confirmed(), GIVE_UP_SILENT)
            except (LinkError, TimeoutError):
                pass   # the line is down or silent: nothing more can be made

    def release(self, node: int, session: FrontEnd) -> None:
        """The session's gdb detached: the node is free for another."""
        info = self.clients.get(node)
        if info is not None and info.session is session:
            del self.clients[node]
            if info.idle_check is not None:
                info.idle_check.cancel()   # (else it would keep the session's memory for the whole limit)

    def refusal(self, node: int) -> bytes | None:
        """The error for a client on a node that already has one, or None if it is free."""
        info = self.clients.get(node)
        if info is None:
            return None
        return f"E.node {node} already has a gdb session ({info}); detach it first".encode()


class _TcpClient(asyncio.Protocol):
    """One gdb on TCP.

    A protocol rather than a stream reader: the bytes go to the conversation in
    the event loop's own callback, and a packet the session answers at once
    (most of gdb's are, from the cache) is answered there too, with no task to
    wake in between.
    """

    def __init__(self, mux: Mux, port: _NodePort | _MachinePort) -> None:
        self.mux = mux
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.conversation: _Conversation | None = None
        self.refused = False
        self.early = bytearray()   # what a refused client sent so far

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # (A cast, not an isinstance check: uvloop's transports are not asyncio's classes.)
        self.transport = transport = cast(asyncio.Transport, base)
        self.mux._tcp.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.port.refusal() is not None:
            self.refused = True   # answered at gdb's first packet, then closed
            if self.mux.config.gdb_idle_timeout > 0:   # (or at the idle limit, if none comes)
                asyncio.get_running_loop().call_later(self.mux.config.gdb_idle_timeout, self.hang_up,
                                                      "no packet")
            return
        peer = transport.get_extra_info("peername")
        if peer is None:   # the client went away before its connection was taken
            transport.close()
            return
        host, port = peer[:2]
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.conversation = _Conversation(self.port, transport.write, no_ack_mode=True,
                                          peer=f"{host}:{port}", transport="tcp", hang_up=self.hang_up,
                                          pause_input=self._pause_input)

    def hang_up(self, why: str) -> None:
        """Close the connection; a gdb waiting for a stop is told why first (it shows that at once).

        gdb then says "Remote connection closed"; the node stays as it is, as for a gdb
        that went away.
        """
        if self.transport is None or self.transport.is_closing():
            return
        conversation = self.conversation
        if conversation is not None and conversation.session.running:
            self.transport.write(conversation.codec.send_packet(rsp.console_output(f"mux: {why}\n".encode())))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.refused:
            # Wait for gdb's whole first packet (it may come after a lone '+'): closing with
            # its bytes unread would reset the connection before gdb reads the refusal.
            self.early += data
            end = self.early.find(b"#")
            if (end < 0 or len(self.early) < end + 3) and len(self.early) <= PACKET_SIZE:
                return
            refusal = self.port.refusal() or b"E.busy"
            self.transport.write(b"+" + RspConnection().send_packet(refusal))
            self.transport.close()
            return
        if self.conversation is not None:
            self.conversation.feed(data)

    def _pause_input(self, paused: bool) -> None:
        if self.transport is None:
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        if self.conversation is not None:
            self.conversation.writing_paused(True)

    def resume_writing(self) -> None:
        if self.conversation is not None:
            self.conversation.writing_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.mux._tcp.discard(self)
        if self.conversation is not None:
            self.conversation.close()
            self.conversation.release()
            self.conversation = None


class _UdpEndpoint(asyncio.DatagramProtocol):
    """gdb's `target remote udp:host:port`: one datagram stream per node.

    UDP gives no close, so a client is replaced when it detaches and forgotten
    after UDP_IDLE_SECONDS of silence.  Acks stay on (no-ack mode is not
    offered): they are the only recovery UDP has.  Packets are at most
    UDP_PACKET_SIZE, so that every reply fits one datagram; a datagram that
    arrives while the conversation takes no input (see _Conversation) is
    dropped unacknowledged, and gdb sends it again.
    """

    def __init__(self, mux: Mux, port: _NodePort) -> None:
        self.mux = mux
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[str, int] | None = None
        self.conversation: _Conversation | None = None
        self.last_heard = 0.0
        self._reaper: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        if self.peer != addr:
            if self.conversation is not None and loop.time() - self.last_heard < UDP_IDLE_SECONDS \
                    and not self._detached():
                self._send_to(addr, b"+" + RspConnection().send_packet(
                    self.port.refusal() or b"E.busy"))
                return
            self._forget()
            refusal = self.port.refusal()
            if refusal is not None:
                self._send_to(addr, b"+" + RspConnection().send_packet(refusal))
                return
            self.peer = addr
            self.conversation = _Conversation(self.port, functools.partial(self._send_to, addr),
                                              no_ack_mode=False, peer=f"{addr[0]}:{addr[1]}", transport="udp",
                                              hang_up=self.hang_up, packet_size=UDP_PACKET_SIZE)
            self._reaper = asyncio.create_task(self._reap())
        self.last_heard = loop.time()
        assert self.conversation is not None
        if not self.conversation.input_paused:
            self.conversation.feed(data)

    def pause_writing(self) -> None:
        if self.conversation is not None:
            self.conversation.writing_paused(True)

    def resume_writing(self) -> None:
        if self.conversation is not None:
            self.conversation.writing_paused(False)

    def _detached(self) -> bool:
        return self.conversation is None or not self.conversation.attached

    def hang_up(self, why: str) -> None:
        """Forget the client.  There is no connection to close: a gdb waiting for a stop is told
        why and gets an error for a stop reply, which ends its wait ("Remote failure reply:
        E05"); a gdb that sends again from the same address and port starts a new session."""
        conversation = self.conversation
        if conversation is not None and conversation.session.running:
            conversation._send(rsp.console_output(f"mux: {why}\n".encode()))
            conversation._send(rsp.error(EIO))
        self._forget()

    def _send_to(self, addr: tuple[str, int], data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def _forget(self) -> None:
        if self.conversation is not None:
            self.conversation.close()
            self.conversation.release()
        if self._reaper is not None:
            self._reaper.cancel()
        self.conversation = None
        self.peer = None

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(5.0)
            if loop.time() - self.last_heard > UDP_IDLE_SECONDS:
                self._forget()
                return
