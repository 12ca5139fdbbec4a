"""How long a gdb connection may hold a node, and how to end one (issue 13, item 6).

Four TCP connections that never sent a byte used to hold all four nodes for ever.
Now a connection that sends no packet within `gdb_idle_timeout` of connecting is
dropped; a gdb that has spoken is never dropped for being idle; the console lists
sessions with their idle time (`sessions`) and ends one (`kick N`); gdb sees them
with `monitor sessions`.  A real Mux on real sockets over an in-process machine
(tests/mux_rig.py).
"""

from __future__ import annotations

import asyncio
import gc
import io
import socket
from collections.abc import Awaitable, Callable

import pytest
from mux_rig import MuxRig, running_mux
from rich.console import Console

from lld import protocol as p
from lld.testing import TargetGuest, build_target_guest
from mux.console import commands
from mux.console.context import ConsoleContext
from mux.gdb import GdbSession
from mux.node import GONE_GDB
from mux.rsp import Packet, RspConnection

pytestmark = pytest.mark.timeout(60)

LIMIT = 0.5   # the idle limit these tests run with (the default is 10 s)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


def run(guest: TargetGuest, test: Callable[[MuxRig, list[tuple[str, str]]], Awaitable[None]],
        nodes: int = 4) -> None:
    async def main() -> None:
        async with running_mux(guest, nodes, listen=True) as rig:
            rig.mux.config.gdb_idle_timeout = LIMIT
            events: list[tuple[str, str]] = []
            rig.mux.add_listener(lambda source, text: events.append((source, text)))
            await test(rig, events)

    asyncio.run(main())


async def udp_exchange(sock: socket.socket, payload: bytes) -> bytes:
    """One packet from a connected UDP socket in ack mode, and the payload of its reply."""
    sock.send(RspConnection().send_packet(payload))
    while True:
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 70000), 10)
        if data != b"+":
            sock.send(b"+")
            return data[data.index(b"$") + 1: data.rindex(b"#")]


class Gdb:
    """A gdb's end of one TCP connection to the mux, in no-ack mode after `attach`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.codec = RspConnection()
        self.packets: list[bytes] = []
        self.text = ""   # console output (O packets) the mux sent
        self.closed = False

    @classmethod
    async def connect(cls, port: int) -> Gdb:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        return cls(sock)

    def send(self, payload: bytes) -> None:
        self.sock.send(RspConnection().send_packet(payload))

    async def _read(self, timeout: float) -> None:
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65536), timeout)
        if not data:
            self.closed = True
            return
        self.codec.receive_data(data)
        while (event := self.codec.next_event()) is not None:
            if isinstance(event, Packet):
                if event.payload.startswith(b"O") and event.payload != b"OK":
                    self.text += bytes.fromhex(event.payload[1:].decode()).decode()
                else:
                    self.packets.append(event.payload)

    async def reply(self, timeout: float = 10.0) -> bytes:
        """The next packet that is not console output."""
        while not self.packets:
            assert not self.closed, "the mux closed the connection"
            await self._read(timeout)
        return self.packets.pop(0)

    async def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        return await self.reply()

    async def until_closed(self, timeout: float) -> None:
        while not self.closed:
            await self._read(timeout)

    async def attach(self) -> None:
        self.sock.send(b"+")
        assert b"PacketSize" in await self.ask(b"qSupported:swbreak+")
        assert await self.ask(b"QStartNoAckMode") == b"OK"
        assert (await self.ask(b"?")).startswith(b"T05")

    def close(self) -> None:
        self.sock.close()


def test_connections_that_never_speak_are_dropped_and_free_their_nodes(guest: TargetGuest) -> None:
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        mux = rig.mux
        silent = [await Gdb.connect(mux.port_of(node)) for node in range(4)]
        await asyncio.sleep(0.05)
        assert sorted(mux.clients) == [0, 1, 2, 3]                   # every node held: the failure
        await asyncio.gather(*(gdb.until_closed(LIMIT + 2) for gdb in silent))
        assert not mux.clients
        dropped = [text for source, text in events if source == "gdb"]
        assert len(dropped) == 4 and all(f"sent no packet within {LIMIT:g} s" in t for t in dropped), events
        gdb = await Gdb.connect(mux.port_of(2))                     # the node is free for a real gdb
        await gdb.attach()
        assert mux.clients[2].packets == 3
        for one in [*silent, gdb]:
            one.close()

    run(guest, test)


def test_an_attached_gdb_that_is_merely_idle_is_never_dropped(guest: TargetGuest) -> None:
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        gdb = await Gdb.connect(rig.mux.port_of(1))
        await gdb.attach()
        await asyncio.sleep(3 * LIMIT)                                # thinking, for a long time
        assert 1 in rig.mux.clients and not events
        assert (await gdb.ask(b"qC")) == b"QC1"
        # A second client on the node is refused; one that never sends its first packet is closed.
        second = await Gdb.connect(rig.mux.port_of(1))
        await second.until_closed(LIMIT + 2)
        assert rig.mux.clients[1].session is not None and (await gdb.ask(b"qC")) == b"QC1"
        assert (await gdb.ask(b"D")) == b"OK"
        gdb.close()
        second.close()

    run(guest, test)


def test_sessions_show_idle_time_and_kick_ends_one(guest: TargetGuest) -> None:
    """The console's `sessions` and `kick`, and gdb's `monitor sessions`."""
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        mux = rig.mux
        description = await rig.link.ok(0, p.Describe())
        assert isinstance(description, p.MachineDescription)
        ctx = ConsoleContext(link=rig.link, mux=mux, description=description,
                             out=Console(file=io.StringIO(), width=200))

        async def console(line: str) -> tuple[bool, str]:
            outcome = await commands.execute(ctx, line)
            screen = Console(record=True, width=200, file=io.StringIO())
            if outcome.output is not None:
                screen.print(outcome.output)
            return outcome.ok, screen.export_text()

        talker = await Gdb.connect(mux.port_of(0))
        await talker.attach()
        waiting = await Gdb.connect(mux.port_of(3))
        await waiting.attach()
        waiting.send(b"vCont;c")                                   # gdb waits for a stop
        await asyncio.sleep(0.3)
        mute = await Gdb.connect(mux.port_of(1))
        await asyncio.sleep(0.1)

        ok, out = await console("sessions")
        assert ok, out
        rows = {int(line.split("│")[1]): line for line in out.splitlines() if line.startswith("│ ")}
        assert sorted(rows) == [0, 1, 3], out
        assert "none yet" in rows[1] and "ago" in rows[0] and "a stop (continue)" in rows[3], out

        talker.send(b"qRcmd," + b"sessions".hex().encode())
        assert await talker.reply() == b"OK"
        shown = talker.text
        assert "*node   0  tcp 127.0.0.1:" in shown, shown
        assert "node   1" in shown and "no packet yet" in shown, shown
        assert "node   3" in shown and "last packet" in shown, shown

        ok, out = await console("kick 3")
        assert ok and "node 3: ended the gdb session of tcp 127.0.0.1:" in out, out
        await waiting.until_closed(5)
        assert "mux: the mux console ended this session (kick)" in waiting.text
        assert 3 not in mux.clients
        status = await rig.link.ok(3, p.GetStatus())
        assert isinstance(status, p.Status) and status.running            # left as the session left it
        assert any("ended the session" in text for source, text in events if source == "gdb")

        ok, out = await console("kick 3")
        assert not ok and "node 3 has no gdb session" in out and "`sessions` lists them" in out
        assert (await talker.ask(b"D")) == b"OK"
        for one in (talker, waiting, mute):
            one.close()

    run(guest, test)


def test_a_udp_session_is_its_address_and_a_datagram_of_junk_holds_nothing(guest: TargetGuest) -> None:
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        loop = asyncio.get_running_loop()
        port = rig.mux.port_of(2)

        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        junk.setblocking(False)
        junk.connect(("127.0.0.1", port))
        junk.send(b"hello?")                                         # not a packet: holds the node ...
        await asyncio.sleep(0.1)
        assert 2 in rig.mux.clients
        await asyncio.sleep(LIMIT + 0.3)                             # ... only until the idle limit
        assert 2 not in rig.mux.clients
        gdb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        gdb.setblocking(False)
        gdb.connect(("127.0.0.1", port))
        assert (await udp_exchange(gdb, b"?")).startswith(b"T05")
        first = rig.mux.clients[2]
        assert rig.mux.kick(2, "test") is first and 2 not in rig.mux.clients
        # The same address and port speaks again: a new session, as UDP knows no connections.
        assert (await udp_exchange(gdb, b"qC")) == b"QC1"
        assert rig.mux.clients[2] is not first
        # Kicked while it waits for a stop: told why, and an error ends its wait (no close to see).
        gdb.send(RspConnection().send_packet(b"vCont;c"))
        await asyncio.sleep(0.2)
        assert rig.mux.clients[2].session.running
        rig.mux.kick(2, "kicked by a test")
        data = b""
        while b"$E05#" not in data:
            data += await asyncio.wait_for(loop.sock_recv(gdb, 70000), 10)
        gdb.send(b"+")
        assert b"$O" + b"mux: kicked by a test\n".hex().encode() + b"#" in data
        assert (await udp_exchange(gdb, b"?")).startswith(b"T05")
        assert await udp_exchange(gdb, b"D") == b"OK"
        junk.close()
        gdb.close()

    run(guest, test)


def test_a_tcp_client_that_detached_holds_nothing_and_attaches_again_when_it_speaks(
        guest: TargetGuest) -> None:
    """After D the connection's old session must not drive the node (another gdb may hold it);
    its next packet is a new session if the node is free, the refusal if not."""
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        mux = rig.mux
        first = await Gdb.connect(mux.port_of(1))
        await first.attach()
        assert (await first.ask(b"D")) == b"OK" and 1 not in mux.clients
        second = await Gdb.connect(mux.port_of(1))
        await second.attach()
        held = mux.clients[1]
        before = await second.ask(b"m80000000,4")
        refused = await first.ask(b"M80000000,4:00000000")           # still connected, detached
        assert refused.startswith(b"E.node 1 already has a gdb session (tcp 127.0.0.1:"), refused
        assert (await first.ask(b"D")) == b"OK"                       # (a D resent is still OK)
        assert mux.clients[1] is held and (await second.ask(b"m80000000,4")) == before
        assert (await second.ask(b"D")) == b"OK"
        assert (await first.ask(b"?")).startswith(b"T05")             # free again: a new session
        assert mux.clients[1].conversation is not held.conversation
        assert (await first.ask(b"D")) == b"OK" and 1 not in mux.clients
        first.close()
        second.close()

    run(guest, test)


def test_a_udp_address_that_detached_is_a_new_session_when_it_sends_a_packet(guest: TargetGuest) -> None:
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        port = rig.mux.port_of(3)

        gdb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        gdb.setblocking(False)
        gdb.connect(("127.0.0.1", port))
        assert (await udp_exchange(gdb, b"?")).startswith(b"T05")
        first = rig.mux.clients[3]
        assert await udp_exchange(gdb, b"D") == b"OK"                   # (its ack came after it)
        gdb.send(b"+")
        await asyncio.sleep(0.1)
        assert 3 not in rig.mux.clients                               # an ack holds nothing
        other = await Gdb.connect(port)                               # so another gdb may have it
        await other.attach()
        refused = await udp_exchange(gdb, b"g")
        assert refused.startswith(b"E.node 3 already has a gdb session (tcp "), refused
        assert (await other.ask(b"D")) == b"OK"
        assert (await udp_exchange(gdb, b"qC")) == b"QC1"
        assert rig.mux.clients[3] is not first and rig.mux.clients[3].transport == "udp"
        assert await udp_exchange(gdb, b"D") == b"OK"
        gdb.close()
        other.close()

    run(guest, test)


def test_a_ctrl_c_right_behind_the_continue_stops_the_node(guest: TargetGuest) -> None:
    """gdb may send ctrl-C before the mux has even started the node: it must not be lost.
    A ctrl-C while the node is stopped and nothing runs is dropped, as QEMU drops it."""
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        gdb = await Gdb.connect(rig.mux.port_of(2))
        await gdb.attach()
        for resume in (b"c", b"vCont;c", b"vCont;c:1"):
            gdb.sock.send(RspConnection().send_packet(resume) + b"\x03")   # one write
            assert (await gdb.reply(5)).startswith(b"T02"), resume
            status = await rig.link.ok(2, p.GetStatus())
            assert isinstance(status, p.Status) and status.stopped
        gdb.sock.send(b"\x03")                                        # stopped, nothing in hand
        assert (await gdb.ask(b"qC")) == b"QC1"                       # no stop reply for it ...
        gdb.send(b"c")
        with pytest.raises(TimeoutError):                             # ... nor a stop left over
            await gdb.reply(0.3)
        gdb.sock.send(b"\x03")
        assert (await gdb.reply(5)).startswith(b"T02")
        assert (await gdb.ask(b"D")) == b"OK"
        gdb.close()

    run(guest, test)


def test_a_client_that_left_is_not_kept_alive_by_its_idle_check(guest: TargetGuest) -> None:
    """The idle check was a timer holding the session (codec, buffers, cache) for the whole
    limit: at hundreds of connections a second the mux grew by tens of MB."""
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        rig.mux.config.gdb_idle_timeout = 60.0
        for _ in range(30):
            gdb = await Gdb.connect(rig.mux.port_of(0))
            await gdb.attach()
            gdb.close()
            await asyncio.sleep(0.01)
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, GdbSession)]
        assert len(alive) <= 1, f"{len(alive)} sessions of clients that left are still alive"

    run(guest, test)


def test_gdbs_that_vanish_while_running_leave_their_breakpoints_but_not_themselves(
        guest: TargetGuest) -> None:
    """Breakpoints a gdb leaves in lld when it goes away mid-continue stay there, for nobody
    here; the mux used to keep every such session (codec, buffers, cache) as their owner."""
    async def test(rig: MuxRig, events: list[tuple[str, str]]) -> None:
        never_run = guest.sym("scratch")
        for _ in range(20):
            gdb = await Gdb.connect(rig.mux.port_of(1))
            await gdb.attach()
            assert (await gdb.ask(b"Z0,%x,4" % never_run)) == b"OK"
            gdb.send(b"c")
            await asyncio.sleep(0.05)
            gdb.close()                                                 # gone mid-continue
            await asyncio.sleep(0.05)
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, GdbSession)]
        assert not alive, f"{len(alive)} sessions of gdbs that went away are still alive"
        assert rig.mux.nodes[1].breakpoint_owners.placed == {never_run: {GONE_GDB}}
        assert never_run in await rig.mux.nodes[1].lld_breakpoints()   # still in lld, as docs say
        last = await Gdb.connect(rig.mux.port_of(1))
        await last.attach()
        assert (await last.ask(b"Z0,%x,4" % never_run)) == b"OK"
        assert (await last.ask(b"z0,%x,4" % never_run)) == b"OK"
        assert (await last.ask(b"D")) == b"OK"
        assert never_run in await rig.mux.nodes[1].lld_breakpoints()   # not this gdb's to remove
        last.close()

    run(guest, test)
