"""The mux's listeners: node k's gdb sessions on TCP and UDP port base + k.

Each connection gets an RSP codec (mux.rsp) and a GdbSession over the node's
NodeHandle, which the mux owns for its whole life; this module only moves
bytes between sockets and those two.  One gdb per node: a second
client on a node that already has one is refused with an error naming the
first, and closed.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass

from mux import packets as rsp
from mux.gdb import GdbSession
from mux.link import LldLink
from mux.monitor import Monitor
from mux.node import NodeHandle
from mux.rsp import BadPacket, Interrupt, Packet, RspConnection

#: gdb's PacketSize: large, so that a big read is one `m` packet (gdb asks for about half of it,
#: hex doubling the reply) and one or two lld round trips, not dozens.
PACKET_SIZE = 0x10000
UDP_IDLE_SECONDS = 120.0  # a UDP client that stays silent this long is taken to be gone


@dataclass
class MuxConfig:
    nodes: int
    base_port: int = 3333
    host: str = "127.0.0.1"
    udp: bool = True


@dataclass
class SessionInfo:
    peer: str
    transport: str
    session: GdbSession

    def __str__(self) -> str:
        return f"{self.transport} {self.peer}"


class _Conversation:
    """The codec and session of one client, whatever carries its bytes."""

    def __init__(self, mux: Mux, node: int, write: Callable[[bytes], object], no_ack_mode: bool) -> None:
        self.mux = mux
        self.node = node
        self.codec = RspConnection(max_packet_size=PACKET_SIZE)
        self.write = write
        self.session = GdbSession(mux.nodes[node], self._send, mux.monitor.run,
                                  packet_size=PACKET_SIZE, no_ack_mode=no_ack_mode)
        self._queue: asyncio.Queue[rsp.Request] = asyncio.Queue()
        self._busy = False   # the worker is handling a request
        self._worker = asyncio.create_task(self._serve())

    def _send(self, payload: bytes) -> None:
        self.write(self.codec.send_packet(payload))

    def feed(self, data: bytes) -> None:
        immediate = self.codec.receive_data(data)
        if immediate:
            self.write(immediate)
        while (event := self.codec.next_event()) is not None:
            if isinstance(event, Interrupt):
                asyncio.create_task(self.session.interrupt())
            elif isinstance(event, Packet):
                request = rsp.parse_request(event.payload)
                # Answered on the spot when nothing of this gdb's is still in hand and the
                # session needs no lld for it (cached memory, thread queries...): a packet
                # then costs no task switch.  Otherwise in order, through the queue.
                if not self._busy and self._queue.empty():
                    reply = self.session.answer_now(request)
                    if reply is not None:
                        self._replied(request, reply)
                        continue
                self._queue.put_nowait(request)
            elif isinstance(event, BadPacket):
                continue

    def _replied(self, request: rsp.Request, reply: bytes | None) -> None:
        if reply is not None:
            self._send(reply)
        if isinstance(request, rsp.StartNoAckMode) and reply == rsp.OK:
            self.codec.start_no_ack_mode()
        if isinstance(request, rsp.Detach):
            self.mux.release(self.node, self.session)

    async def _serve(self) -> None:
        """Requests one at a time, in order, as gdb expects."""
        while True:
            request = await self._queue.get()
            self._busy = True
            try:
                self._replied(request, await self.session.handle_request(request))
            finally:
                self._busy = False

    def close(self) -> None:
        self._worker.cancel()
        self.session.close()


class Mux:
    def __init__(self, config: MuxConfig, link: LldLink) -> None:
        self.config = config
        self.link = link
        self.nodes = [NodeHandle(node, link) for node in range(config.nodes)]
        self.clients: dict[int, SessionInfo] = {}
        self.monitor = Monitor(link, config.nodes, self.clients)  # type: ignore[arg-type]
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: set[_TcpClient] = set()   # live gdb connections, closed with the mux

    def port_of(self, node: int) -> int:
        return self.config.base_port + node

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for node in range(self.config.nodes):
            server = await loop.create_server(
                functools.partial(_TcpClient, self, node), self.config.host, self.port_of(node))
            self._servers.append(server)
            if self.config.udp:
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_UdpEndpoint, self, node),
                    local_addr=(self.config.host, self.port_of(node)))
                self._udp.append(transport)

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

    def release(self, node: int, session: GdbSession) -> None:
        """The session's gdb detached: the node is free for another."""
        info = self.clients.get(node)
        if info is not None and info.session is session:
            del self.clients[node]

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

    def __init__(self, mux: Mux, node: int) -> None:
        self.mux = mux
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.conversation: _Conversation | None = None
        self.refused = False
        self.early = bytearray()   # what a refused client sent so far

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.mux._tcp.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.mux.refusal(self.node) is not None:
            self.refused = True   # answered at gdb's first packet, then closed
            return
        host, port = transport.get_extra_info("peername")[:2]
        self.conversation = _Conversation(self.mux, self.node, transport.write, no_ack_mode=True)
        self.mux.clients[self.node] = SessionInfo(f"{host}:{port}", "tcp", self.conversation.session)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.refused:
            # Wait for gdb's whole first packet (it may come after a lone '+'): closing with
            # its bytes unread would reset the connection before gdb reads the refusal.
            self.early += data
            end = self.early.find(b"#")
            if (end < 0 or len(self.early) < end + 3) and len(self.early) <= PACKET_SIZE:
                return
            refusal = self.mux.refusal(self.node) or b"E.busy"
            self.transport.write(b"+" + RspConnection().send_packet(refusal))
            self.transport.close()
            return
        if self.conversation is not None:
            self.conversation.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.mux._tcp.discard(self)
        if self.conversation is not None:
            self.conversation.close()
            self.mux.release(self.node, self.conversation.session)
            self.conversation = None


class _UdpEndpoint(asyncio.DatagramProtocol):
    """gdb's `target remote udp:host:port`: one datagram stream per node.

    UDP gives no close, so a client is replaced when it detaches and forgotten
    after UDP_IDLE_SECONDS of silence.  Acks stay on (no-ack mode is not
    offered): they are the only recovery UDP has.
    """

    def __init__(self, mux: Mux, node: int) -> None:
        self.mux = mux
        self.node = node
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
                    self.mux.refusal(self.node) or b"E.busy"))
                return
            self._forget()
            refusal = self.mux.refusal(self.node)
            if refusal is not None:
                self._send_to(addr, b"+" + RspConnection().send_packet(refusal))
                return
            self.peer = addr
            self.conversation = _Conversation(self.mux, self.node, functools.partial(self._send_to, addr),
                                              no_ack_mode=False)
            peer = f"{addr[0]}:{addr[1]}"
            self.mux.clients[self.node] = SessionInfo(peer, "udp", self.conversation.session)
            self._reaper = asyncio.create_task(self._reap())
        self.last_heard = loop.time()
        assert self.conversation is not None
        self.conversation.feed(data)

    def _detached(self) -> bool:
        return self.mux.clients.get(self.node) is None

    def _send_to(self, addr: tuple[str, int], data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def _forget(self) -> None:
        if self.conversation is not None:
            self.conversation.close()
            self.mux.release(self.node, self.conversation.session)
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
