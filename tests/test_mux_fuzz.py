"""In-process fuzzing of the RSP codec and of the mux's packet handling (issue 13).

Three levels, each a few seconds:

* the codec alone (`mux.rsp`), thousands of byte streams cut anywhere: it never raises,
  buffers at most one packet, and resends at most once per piece of input;
* packet parsing and the answers a session gives without lld (`parse_request`,
  `GdbSession.answer_now`), thousands of payloads: they never raise;
* whole gdb conversations against a real Mux, LldLink and an in-process machine
  (tests/mux_rig.py), hundreds of sequences of hostile and ordinary packets, ctrl-Cs,
  garbage and damaged frames: every packet gets exactly one reply (or none, for the
  ones that have none: `k`, a notification, a frame that was refused in ack mode,
  ctrl-C), nothing escapes into the event loop, and the node and lld stay consistent
  (lld holds only the breakpoints the session placed plus the machine's and the
  console's; a detach leaves exactly those; the register cache is the node's).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mux_rig import Client, MuxRig, live_rig

from lld import protocol as p
from lld.testing import TargetGuest, build_target_guest
from mux import packets as rsp
from mux.gdb import GdbSession
from mux.node import GENERAL_REGISTERS, NodeHandle
from mux.rsp import Ack, Event, Interrupt, Nack, Notification, Packet, RspConnection, encode_frame
from mux.server import PACKET_SIZE

pytestmark = pytest.mark.timeout(600)
#: More examples for a deep run: FUZZ_SCALE=20 .venv/bin/python -m pytest tests/test_mux_fuzz.py
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))

# -- numbers and payloads -------------------------------------------------------------------------

ADDRESSES = st.sampled_from([0, 4, 0x1000, 0x02000000, 0x10000000, 0x7FFFFFFC, 0x80000000, 0x80000040,
                             0x80001000, 0x803FFFFC, 0x80400000, 0x80800000, 0xC0009000, 0xFFFFFFFC,
                             0xFFFFFFFF, 1 << 32, (1 << 32) + 4, (1 << 64) - 1])
LENGTHS = st.one_of(st.sampled_from([0, 1, 2, 4, 8, 64, 0x100, 0x400, 0x401, 0x1000, 0x4000, 0x4001, 0x8000,
                                     0xFFFF, 0x10000, 0xFFFFFFFF, 1 << 32]), st.integers(0, 0x2000))
REGNUMS = st.one_of(st.integers(0, 40), st.sampled_from([65 + 0x300, 65 + 0x340, 65 + 0x180, 4161, 4162,
                                                          0xFFFF, 0x10000, 1 << 32]))


def hexnum(n: int) -> bytes:
    return b"%x" % n


def structured(guest: TargetGuest) -> st.SearchStrategy[bytes]:
    """gdb's packets, with numbers from the edges of every range (writes only where harmless)."""
    scratch = guest.sym("scratch")
    code = st.sampled_from([guest.sym(s) for s in ("spin_loop", "spin_store", "spin_check", "panic")])
    anywhere = st.one_of(ADDRESSES, code, st.just(scratch))
    writable = st.one_of(st.sampled_from([scratch, scratch + 3, scratch + 0x80, 0, 0x10000000, 0xFFFFFFF0,
                                          1 << 32]))
    data = st.binary(max_size=64)
    harmless_reg = st.one_of(st.integers(1, 31), st.sampled_from([65 + 0x340, 0xFFFF, 1 << 32]))
    monitor = st.sampled_from(["status", "stats", "breakpoints", "help", "step-interrupts on",
                               "step-interrupts off", "step-traps on", "step-traps off", "clear", "nonsense",
                               '"unterminated', "", "status extra args"])

    def join(*parts: bytes) -> bytes:
        return b"".join(parts)

    return st.one_of(
        st.sampled_from([b"?", b"g", b"k", b"D", b"D;1", b"qC", b"qfThreadInfo", b"qsThreadInfo",
                         b"qAttached", b"qOffsets", b"qSymbol::", b"qTStatus", b"vCont?", b"vMustReplyEmpty",
                         b"Hg0", b"Hc-1", b"T1", b"QStartNoAckMode", b"qSupported:multiprocess+;swbreak+",
                         b"c", b"s",
                         b"vCont;c", b"vCont;s", b"vCont;t", b"vCont;c:1", b"vCont;C05", b"C05", b"S05",
                         b"qXfer:features:read:target.xml:0,ffb", b"qXfer:features:read:nope.xml:0,10",
                         b"vCont;r80000000,80000010", b"vKill;1", b"!", b"R00", b"qRcmd,", b"Z9,0,4"]),
        st.builds(lambda a, n: join(b"m", hexnum(a), b",", hexnum(n)), anywhere, LENGTHS),
        st.builds(lambda a, d: join(b"M", hexnum(a), b",", hexnum(len(d)), b":", d.hex().encode()),
                  writable, data),
        st.builds(lambda a, d: join(b"X", hexnum(a), b",", hexnum(len(d)), b":", d), writable, data),
        st.builds(lambda a, n, d: join(b"M", hexnum(a), b",", hexnum(n), b":", d.hex().encode()), writable,
                  LENGTHS, data),
        st.builds(lambda z, t, a, k: join(z, hexnum(t), b",", hexnum(a), b",", hexnum(k)),
                  st.sampled_from([b"Z", b"z"]), st.sampled_from([0, 0, 1, 2, 3, 4, 5]), anywhere,
                  st.sampled_from([1, 2, 4, 8, 0x1000, 0x1001, 0x10000])),
        st.builds(lambda r: join(b"p", hexnum(r)), REGNUMS),
        st.builds(lambda r, v: join(b"P", hexnum(r), b"=", v.to_bytes(4, "little").hex().encode()),
                  harmless_reg, st.integers(0, 0xFFFFFFFF)),
        st.builds(lambda r, v: join(b"P", hexnum(r), b"=", v.hex().encode()), harmless_reg,
                  st.binary(max_size=6)),
        st.builds(lambda a: join(b"c", hexnum(a)), st.one_of(code, ADDRESSES)),
        st.builds(lambda a: join(b"s", hexnum(a)), st.one_of(code, ADDRESSES)),
        st.builds(lambda n: join(b"G", b"00" * n), st.integers(0, 140)),
        st.builds(lambda c: join(b"qRcmd,", c.encode().hex().encode()), monitor),
        st.builds(lambda o, n: join(b"qXfer:features:read:target.xml:", hexnum(o), b",", hexnum(n)),
                  LENGTHS, LENGTHS),
        st.binary(max_size=40),
    )


# -- the codec alone ----------------------------------------------------------------------------

stream_pieces = st.lists(st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"+", b"-", b"\x03", b"$", b"#", b"}", b"%", b"-" * 50, b"\x03" * 100]),
    st.binary(max_size=100).map(encode_frame),
    st.binary(max_size=100).map(lambda d: encode_frame(d)[:-1] + b"z"),
), max_size=30)


@settings(max_examples=int(3000 * SCALE), deadline=None)
@given(stream_pieces, st.booleans(), st.booleans())
def test_the_codec_takes_any_bytes_and_resends_at_most_once_a_piece(
        pieces: list[bytes], ack_mode: bool, hold: bool) -> None:
    conn = RspConnection(max_packet_size=256)
    if not ack_mode:
        conn.start_no_ack_mode()
    unacked = conn.send_packet(b"S05" * 30)
    conn.hold_resends = hold
    frame_ends = answers = 0
    for piece in pieces:
        out = conn.receive_data(piece)
        # At most one copy of the unacked packet a piece, none while held; otherwise an ack or
        # a nack (one byte) for each frame that ended.
        copies = out.count(unacked)
        assert copies <= (0 if hold or not ack_mode else 1)
        frame_ends += piece.count(b"#")
        answers += len(out.replace(unacked, b""))
        assert answers <= frame_ends
        assert len(conn._raw) <= conn.max_packet_size + 1 and len(conn._checksum) <= 2
        events: list[Event] = []
        while (event := conn.next_event()) is not None:
            events.append(event)
        assert len(events) <= len(piece)
        for a, b in zip(events, events[1:], strict=False):
            assert not (a == b and isinstance(a, (Ack, Interrupt)))   # runs coalesce
        for event in events:
            if isinstance(event, (Packet, Notification)):
                assert len(event.payload) <= 256 * 100   # runs expand, at most ~97x
    assert isinstance(Nack(), Event)


# -- parsing and the answers without lld ---------------------------------------------------------


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


class _NoLink:
    breakpoints: dict[int, dict[int, int]] = {}

    def submit(self, node: int, request: p.Request) -> object:
        raise AssertionError("answer_now must not reach lld")


def test_parsing_and_the_answers_without_lld_never_raise(guest: TargetGuest) -> None:
    async def no_monitor(session: GdbSession, command: str) -> str:
        return ""

    handle = NodeHandle(0, _NoLink())  # type: ignore[arg-type]
    session = GdbSession(handle, lambda _: None, no_monitor, packet_size=PACKET_SIZE)

    @settings(max_examples=int(4000 * SCALE), deadline=None)
    @given(structured(guest))
    def check(payload: bytes) -> None:
        request = rsp.parse_request(payload)
        reply = session.answer_now(request)
        if reply is not None:
            assert len(reply) <= PACKET_SIZE
        assert len(session.breakpoints._desired) <= p.MAX_BREAKPOINTS

    check()


# -- whole conversations --------------------------------------------------------------------------

RESUMES = (rsp.Continue, rsp.Step, rsp.VCont)


@pytest.fixture(scope="module")
def live(guest: TargetGuest) -> Iterator[tuple[asyncio.AbstractEventLoop, MuxRig, list[int]]]:
    """One machine and mux for every example (their state carries over, as in a long session)."""
    yield from live_rig(guest)


CONSOLE = "console"   # the owner of a breakpoint the console placed


async def reset(rig: MuxRig, guest: TargetGuest, registers: list[int]) -> None:
    """Node 0 stopped where it started, with the machine's and the console's breakpoints in lld."""
    rig.close_clients()
    handle = rig.mux.nodes[0]
    await handle.stop()
    assert await handle.write_registers(list(enumerate(registers)))
    await rig.link.ok(0, p.SetBreakpoint(p.ANY_GEN, guest.sym("panic"), p.BP_PANIC))
    handle.breakpoint_owners.forget()   # (`monitor clear` may have cleared the console's)
    watched = await rig.link.ok(0, p.ListWatchpoints())   # a closed session leaves its own in lld
    assert isinstance(watched, list)
    for wp in watched:
        await rig.link.ok(0, p.ClearWatchpoint(p.ANY_GEN, wp.addr, wp.length, wp.kind))
    assert await handle.place_breakpoint(guest.sym("secondary"), CONSOLE) is None
    await handle.lld_breakpoints()


def machines_own(guest: TargetGuest) -> set[int]:
    return {guest.sym("panic"), guest.sym("secondary")}


def check_consistent(rig: MuxRig, guest: TargetGuest, gdb: Client) -> None:
    """lld, the link and the node handle agree; lld holds nothing the session did not place."""
    assert gdb.conversation is not None
    session = gdb.conversation.session
    handle = rig.mux.nodes[0]
    stub = rig.lld.nodes[0]
    held = set(stub.state.breakpoints)
    placed = handle.breakpoint_owners.owned_by(session.breakpoints)
    assert held <= machines_own(guest) | placed, (held, placed)
    assert placed <= held
    known = rig.link.breakpoints.get(0)
    if known is not None and not rig.link._in_flight.get(0):
        assert set(known) == held
    placed = {(addr, length) for (addr, length, _) in stub.state.watchpoints}
    assert placed <= set(session.breakpoints.watchpoints)
    # The registers the handle keeps are the node's, for the gen it keeps them for.
    status = handle.status
    registers = handle.cached_registers
    if (status is not None and status.stopped and registers is not None and handle._cached_gen == stub.gen()
            and stub.target.state == p.STATE_STOPPED):
        assert registers == [stub.target.read_reg(r) for r in range(GENERAL_REGISTERS)]


def replies_of(gdb: Client) -> list[bytes]:
    return [m for m in gdb.packets if not (m.startswith(b"O") and m != b"OK")]


async def settle(gdb: Client, expected: int, timeout: float) -> bool:
    """Wait up to timeout for the expected number of replies; False if they did not all come."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(replies_of(gdb)) < expected:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.0005)
    return True


Action = tuple[str, bytes]


def actions(guest: TargetGuest) -> st.SearchStrategy[list[Action]]:
    packet = structured(guest).map(lambda payload: ("packet", payload))
    garbage = st.binary(max_size=200).map(lambda g: ("garbage", g.replace(b"$", b"")))
    torn = st.binary(max_size=30).map(lambda g: ("garbage", b"$" + g.replace(b"$", b"").replace(b"#", b"")))
    damaged = structured(guest).map(lambda payload: ("damaged", payload))
    flood = st.sampled_from([("garbage", b"\x03" * 5000), ("garbage", b"-" * 300), ("garbage", b"+" * 3000),
                             ("notification", b"Stop:T05")])
    return st.lists(st.one_of(packet, packet, packet, packet, garbage, torn, damaged, flood), max_size=14)


def test_every_packet_gets_one_reply_and_lld_stays_consistent(
        live: tuple[asyncio.AbstractEventLoop, MuxRig, list[int]], guest: TargetGuest) -> None:
    loop, rig, registers = live

    async def conversation(steps: list[Action]) -> None:
        await reset(rig, guest, registers)
        gdb = rig.conversation(0)
        expected = 0
        no_ack = False
        for kind, payload in steps:
            if kind == "packet":
                request = rsp.parse_request(payload)
                gdb.feed(encode_frame(payload))
                if isinstance(request, rsp.Kill):
                    continue
                expected += 1
                if isinstance(request, RESUMES) and not await settle(gdb, expected, 0.02):
                    gdb.feed(b"\x03")    # a continue: its reply is the stop ctrl-C brings
                assert await settle(gdb, expected, 10), (payload, replies_of(gdb)[-3:])
                if isinstance(request, rsp.StartNoAckMode) and replies_of(gdb)[-1] == b"OK":
                    no_ack = True
            elif kind == "damaged":
                wire = encode_frame(payload)
                gdb.feed(wire[:-2] + b"%02x" % ((int(wire[-2:], 16) + 1) % 256))
                expected += no_ack      # nacked in ack mode; an error reply in no-ack mode
            elif kind == "notification":
                gdb.feed(encode_frame(payload, notification=True))
            else:
                before = list(gdb.packets)
                gdb.feed(payload)       # no '$' in it, but maybe a torn frame's start
                resent = gdb.packets[len(before):]
                if resent:              # a nack in ack mode: the last packet again, once
                    assert not no_ack and b"-" in payload and resent == before[-1:], resent
                    del gdb.packets[len(before):]
            assert len(replies_of(gdb)) <= expected, (kind, payload, replies_of(gdb)[-3:])
            check_consistent(rig, guest, gdb)
        gdb.feed(encode_frame(b"D"))
        expected += 1
        assert await settle(gdb, expected, 10)
        await asyncio.sleep(0.005)
        assert len(replies_of(gdb)) == expected, replies_of(gdb)[-4:]
        assert replies_of(gdb)[-1] == b"OK"
        # Detached: lld holds the machine's and the console's breakpoints, nothing of the session's.
        assert gdb.conversation is not None
        session = gdb.conversation.session
        assert not rig.mux.nodes[0].breakpoint_owners.owned_by(session.breakpoints)
        assert set(rig.lld.nodes[0].state.breakpoints) <= machines_own(guest)
        assert not rig.lld.nodes[0].state.watchpoints
        rig.check()

    @settings(max_examples=int(150 * SCALE), deadline=None, suppress_health_check=list(HealthCheck))
    @given(actions(guest))
    def check(steps: list[Action]) -> None:
        loop.run_until_complete(conversation(steps))

    check()
