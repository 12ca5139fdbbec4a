"""Hostile input to the mux (issue 13): every packet answered, nothing unbounded, nobody starved.

Each test sends the offending input first, to a real Mux over a real LldLink and an
in-process machine (tests/mux_rig.py); the rig fails the test if an exception
escaped into the event loop or the mux logged a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable

import pytest
from mux_rig import Client, MuxRig, running_mux

from lld import protocol as p
from lld.testing import TargetGuest, build_target_guest
from mux import server
from mux.link import RequestError
from mux.rsp import RspConnection, run_length_decode
from mux.server import PACKET_SIZE, UDP_PACKET_SIZE, WRITE_HIGH_WATER, _TcpClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


def run(guest: TargetGuest, test: Callable[[MuxRig], Awaitable[None]], *, nodes: int = 2,
        listen: bool = False) -> None:
    async def main() -> None:
        async with running_mux(guest, nodes, listen=listen) as rig:
            await test(rig)

    asyncio.run(main())


def frame(payload: bytes) -> bytes:
    return RspConnection().send_packet(payload)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """The process's largest resident size while running, sampled every 10 ms."""

    def __init__(self) -> None:
        self.before = rss_mb()
        self.peak = self.before
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(0.01)

    def growth(self) -> float:
        self._task.cancel()
        self.peak = max(self.peak, rss_mb())
        return self.peak - self.before


async def attach_and_detach(port: int) -> float:
    """Seconds for a fresh gdb on `port` to get a stop reply and detach."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"+" + frame(b"?"))
    data = b""
    while not data.startswith(b"+$T") and not data.startswith(b"$T") or not data.rstrip().count(b"#"):
        data += await asyncio.wait_for(reader.read(65536), 30)
    writer.write(b"+" + frame(b"D"))
    while b"$OK#" not in data:
        data += await asyncio.wait_for(reader.read(65536), 30)
    writer.close()
    return time.monotonic() - start


def tcp_client_of(rig: MuxRig, node: int) -> _TcpClient:
    return next(c for c in rig.mux._tcp
                if getattr(c.port, "node", None) == node and c.conversation is not None)


# -- item 1: one packet hung a session for good ------------------------------------------------------

#: Packets whose numbers do not fit lld's frames (32-bit addresses, 16-bit lengths), and their answer.
OUT_OF_RANGE = [
    (b"m100000000,4", b"E0e"),
    (b"m100000000,0", b"E0e"),
    (b"m1000000000000000000,4", b"E0e"),
    (b"M100000000,1:00", b"E0e"),
    (b"Mffffffff,2:0000", b"E0e"),
    (b"X100000000,1:a", b"E0e"),
    (b"Z0,100000000,4", b"E16"),
    (b"z0,100000000,4", b"E16"),
    (b"Z1,100000004,4", b"E16"),
    (b"Z2,c0009000,10000", b"E16"),
    (b"Z3,c0009000,ffffffff", b"E16"),
    (b"Z4,100000000,4", b"E16"),
    (b"c100000000", b"E16"),
    (b"C05;100000000", b"E16"),
    (b"s100000000", b"E16"),
    (b"P20=0000000001", b"E16"),      # a value of 40 bits for pc
    (b"G00", b"E16"),                 # not whole registers
    (b"G" + b"00" * 7, b"E16"),
    (b"p100000000", b"E16"),
    (b"Pffffffffff=00000000", b"E16"),
]


@pytest.mark.parametrize(("packet", "answer"), OUT_OF_RANGE, ids=[p.decode() for p, _ in OUT_OF_RANGE])
def test_a_number_that_does_not_fit_lld_gets_an_error_and_the_session_goes_on(
        guest: TargetGuest, packet: bytes, answer: bytes) -> None:
    async def test(rig: MuxRig) -> None:
        gdb = rig.conversation(0)
        assert (await gdb.ask(b"?")).startswith(b"T05")
        assert await gdb.ask(packet) == answer
        assert (await gdb.ask(b"g"))[:8] != b""            # still answered
        assert (await gdb.ask(b"?")).startswith(b"T05")
        assert await gdb.ask(b"D") == b"OK"

    run(guest, test)


def test_a_continue_after_a_refused_breakpoint_runs_and_stops(guest: TargetGuest) -> None:
    """The issue's `Z0,100000000,4` then `c`: the continue runs, ctrl-C stops it, detach detaches."""
    async def test(rig: MuxRig) -> None:
        gdb = rig.conversation(0)
        await gdb.ask(b"?")
        assert await gdb.ask(b"Z0,100000000,4") == b"E16"
        gdb.send(b"c")
        await asyncio.sleep(0.05)
        gdb.feed(b"\x03")
        assert (await gdb.replies(3))[2].startswith(b"T02")
        assert await gdb.ask(b"D") == b"OK"

    run(guest, test)


def test_a_request_lld_cannot_frame_fails_alone_and_the_next_goes(guest: TargetGuest) -> None:
    async def test(rig: MuxRig) -> None:
        link = rig.link
        bad = [link.submit(0, p.ReadMem(p.SPACE_PHYS, 1 << 32, 4)),
               link.submit(0, p.ReadMem(p.SPACE_PHYS, 0x80000000, 0x10000)),
               link.submit(0, p.WriteMem(p.ANY_GEN, p.SPACE_PHYS, 0x80000000, bytes(20000))),
               link.submit(0, p.SetBreakpoint(p.ANY_GEN, -4))]
        good = link.submit(0, p.GetStatus())
        for future in bad:
            with pytest.raises(RequestError, match="cannot be sent to lld"):
                await future
        assert (await good).ok
        assert link.stats[0].failures == len(bad)

    run(guest, test)


def test_over_udp_a_bad_packet_is_answered_and_the_node_is_free_at_once(guest: TargetGuest) -> None:
    """It used to stay locked for UDP_IDLE_SECONDS (120 s) behind the hung session."""
    async def test(rig: MuxRig) -> None:
        loop = asyncio.get_running_loop()
        port = rig.mux.port_of(1)

        async def exchange(sock: socket.socket, payload: bytes) -> bytes:
            sock.send(frame(payload))
            while True:
                data = await asyncio.wait_for(loop.sock_recv(sock, 70000), 10)
                if data != b"+":
                    sock.send(b"+")
                    return data[data.index(b"$") + 1: data.rindex(b"#")]

        first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        first.setblocking(False)
        first.connect(("127.0.0.1", port))
        assert (await exchange(first, b"?")).startswith(b"T05")
        for packet, answer in OUT_OF_RANGE[:12]:
            assert await exchange(first, packet) == answer
        # A 32 KiB read over UDP: the reply must fit one datagram (it used to be lost, EMSGSIZE).
        assert f"PacketSize={UDP_PACKET_SIZE:x}".encode() in await exchange(first, b"qSupported")
        memory = await exchange(first, b"m80000000,8000")
        assert b"0*~" in memory   # (the zeros in it go run-length encoded)
        assert len(run_length_decode(memory)) == UDP_PACKET_SIZE
        assert await exchange(first, b"D") == b"OK"
        second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        second.setblocking(False)
        second.connect(("127.0.0.1", port))
        assert (await exchange(second, b"?")).startswith(b"T05")
        assert await exchange(second, b"D") == b"OK"
        first.close()
        second.close()

    run(guest, test, listen=True)


def test_in_no_ack_mode_a_damaged_or_overlong_packet_gets_an_error(guest: TargetGuest) -> None:
    async def test(rig: MuxRig) -> None:
        gdb = rig.conversation(0)
        assert await gdb.ask(b"QStartNoAckMode") == b"OK"
        gdb.feed(b"+")
        gdb.feed(b"$g#00")                                   # bad checksum: nobody nacks it
        assert (await gdb.replies(2))[1] == b"E16"
        gdb.feed(frame(b"X80000000,1:" + b"\x00" * PACKET_SIZE))   # longer than PacketSize
        assert (await gdb.replies(3))[2] == b"E16"
        assert (await gdb.ask(b"?")).startswith(b"T05")
        assert await gdb.ask(b"D") == b"OK"

    run(guest, test)


# -- item 2: one packet froze the mux ---------------------------------------------------------------


@pytest.mark.parametrize("packet", [b"m0,ffffffff", b"m80000000,ffffffff", b"m80000000,100000",
                                    b"m803ff000,ffffffff", b"mffffff00,ffffffff"])
def test_a_huge_read_is_capped_and_costs_few_lld_requests(guest: TargetGuest, packet: bytes) -> None:
    async def test(rig: MuxRig) -> None:
        gdb = rig.conversation(0)
        await gdb.ask(b"?")
        before = rig.link.sent["ReadMem"]
        start = time.monotonic()
        reply = await gdb.ask(packet)
        assert time.monotonic() - start < 2
        assert len(reply) <= PACKET_SIZE
        assert reply.startswith(b"E") or len(reply) % 2 == 0
        # Two 16 KiB reads at most for the reply, two ahead, and the pages of a failed piece.
        assert rig.link.sent["ReadMem"] - before <= 10
        assert await gdb.ask(b"D") == b"OK"

    run(guest, test)


def test_huge_writes_are_refused_or_bounded(guest: TargetGuest) -> None:
    async def test(rig: MuxRig) -> None:
        gdb = rig.conversation(0)
        await gdb.ask(b"?")
        scratch = guest.sym("scratch")
        assert await gdb.ask(b"M%x,ffffffff:00" % scratch) == b"E16"          # length and data disagree
        assert await gdb.ask(b"X%x,100000000:" % scratch) == b"E16"
        before = rig.link.sent["WriteMem"]
        data = bytes(range(256)) * 128      # 32 KiB (escaped in the packet): two lld writes
        assert await gdb.ask(b"X80100000,%x:" % len(data) + data) == b"OK"
        assert rig.link.sent["WriteMem"] - before == 2
        assert await gdb.ask(b"D") == b"OK"

    run(guest, test)


def test_a_session_streaming_big_reads_does_not_starve_another(guest: TargetGuest) -> None:
    async def test(rig: MuxRig) -> None:
        busy, other = rig.conversation(0), rig.conversation(1)
        await busy.ask(b"?")
        await other.ask(b"?")
        stop = False

        async def stream() -> None:
            address = 0x80000000
            while not stop:
                await busy.ask(b"m%x,8000" % address)
                address = 0x80000000 + (address + 0x8000) % 0x400000

        streamer = asyncio.create_task(stream())
        worst = 0.0
        for i in range(40):
            start = time.monotonic()
            assert (await other.ask(b"m%x,4" % (0x80200000 + 64 * i))) != b""
            worst = max(worst, time.monotonic() - start)
        stop = True
        await streamer
        assert worst < 0.5, worst
        assert await busy.ask(b"D") == b"OK"
        assert await other.ask(b"D") == b"OK"

    run(guest, test)


# -- item 3: floods ---------------------------------------------------------------------------------


def test_a_megabyte_of_ctrl_c_is_one_stop_and_costs_nothing(guest: TargetGuest) -> None:
    """It queued a million STOP requests (1.44 GB), and another node's attach took 14 s."""
    async def test(rig: MuxRig) -> None:
        loop = asyncio.get_running_loop()
        rss = PeakRss()
        with socket.create_connection(("127.0.0.1", rig.mux.port_of(0))) as sock:
            sock.setblocking(False)
            await loop.sock_sendall(sock, b"+" + frame(b"?"))
            await asyncio.sleep(0.1)
            await loop.sock_sendall(sock, frame(b"c"))
            await asyncio.sleep(0.1)
            stops = rig.link.sent["Stop"]
            await loop.sock_sendall(sock, b"\x03" * (1 << 20))
            attach = await attach_and_detach(rig.mux.port_of(1))
            await asyncio.sleep(0.2)
            assert rig.link.sent["Stop"] - stops <= 4
            assert attach < 1.0, attach
        assert rss.growth() < 50

    run(guest, test, listen=True)


def test_nacks_after_a_big_reply_to_a_client_that_never_reads_resend_nothing(guest: TargetGuest) -> None:
    """200 `-` after a 2 MiB reply to a client that never read took 1.35 GB."""
    async def test(rig: MuxRig) -> None:
        loop = asyncio.get_running_loop()
        rss = PeakRss()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", rig.mux.port_of(0)))
        sock.setblocking(False)
        await loop.sock_sendall(sock, b"+" + frame(b"?"))            # ack mode (no QStartNoAckMode)
        await asyncio.sleep(0.1)
        client = tcp_client_of(rig, 0)
        assert client.transport is not None
        worst = 0
        for _ in range(4):
            await loop.sock_sendall(sock, frame(b"m80000000,8000"))
            await asyncio.sleep(0.05)
        for _ in range(200):
            await loop.sock_sendall(sock, b"-")
            await asyncio.sleep(0.001)
            worst = max(worst, client.transport.get_write_buffer_size())
        # The high-water mark and one reply more, not 200 copies of it.
        assert worst <= WRITE_HIGH_WATER + 2 * PACKET_SIZE + 64, worst
        assert rss.growth() < 50
        assert (await attach_and_detach(rig.mux.port_of(1))) < 1.0
        sock.close()

    run(guest, test, listen=True)


def test_a_client_that_never_reads_is_held_at_the_door(guest: TargetGuest) -> None:
    """Requests it sends wait in its own socket, not in the mux: the mux stops reading it."""
    async def test(rig: MuxRig) -> None:
        loop = asyncio.get_running_loop()
        # Cached small reads (answered on the spot) and uncached big ones (through lld): 34 MB,
        # far more than the sockets' buffers hold.
        flood = (frame(b"m80000000,400") * 2000 + frame(b"m80100000,8000") * 2000) * 500
        rss = PeakRss()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", rig.mux.port_of(0)))
        sock.setblocking(False)
        await loop.sock_sendall(sock, b"+" + frame(b"QStartNoAckMode"))
        await asyncio.sleep(0.05)
        await loop.sock_sendall(sock, b"+" + frame(b"?"))
        await asyncio.sleep(0.1)
        client = tcp_client_of(rig, 0)
        conversation = client.conversation
        assert client.transport is not None and conversation is not None
        sender = asyncio.create_task(loop.sock_sendall(sock, flood))
        for _ in range(100):
            await asyncio.sleep(0.01)
            assert client.transport.get_write_buffer_size() <= WRITE_HIGH_WATER + 2 * PACKET_SIZE + 64
            assert conversation._queue.qsize() <= server.MAX_QUEUED
            assert len(conversation._input) <= 1 << 20
            assert len(rig.link._queues.get(0, ())) <= 8
        assert conversation.input_paused
        assert not sender.done()                     # the rest waits in the sockets' buffers
        assert rss.growth() < 50
        assert (await attach_and_detach(rig.mux.port_of(1))) < 1.0
        sender.cancel()
        sock.close()

    run(guest, test, listen=True)


def test_a_flood_of_tiny_packets_from_a_reading_client_leaves_others_their_turn(guest: TargetGuest) -> None:
    async def test(rig: MuxRig) -> None:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.mux.port_of(0))
        writer.write(b"+" + frame(b"QStartNoAckMode"))
        await asyncio.sleep(0.05)
        stop = False

        async def drain() -> None:
            while not stop:
                if not await reader.read(1 << 20):
                    return

        async def flood() -> None:
            while not stop:
                writer.write(frame(b"qC") * 20000)
                await writer.drain()

        tasks = [asyncio.create_task(drain()), asyncio.create_task(flood())]
        other = rig.conversation(1)
        await other.ask(b"?")
        worst = 0.0
        for i in range(30):
            start = loop.time()
            await other.ask(b"m%x,4" % (0x80200000 + 64 * i))
            worst = max(worst, loop.time() - start)
        stop = True
        writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert worst < 0.5, worst
        await other.ask(b"D")

    run(guest, test, listen=True)


def test_garbage_between_packets_is_answered_by_nothing_but_the_packets(guest: TargetGuest) -> None:
    async def test(rig: MuxRig) -> None:
        gdb: Client = rig.conversation(0)
        gdb.feed(b"+" + b"\x00junk#ff" * 10000 + b"+" * 100000 + b"%Stop:T05#00" + frame(b"?"))
        replies = await gdb.replies(1)
        assert len(replies) == 1 and replies[0].startswith(b"T05")
        assert await gdb.ask(b"D") == b"OK"

    run(guest, test)
