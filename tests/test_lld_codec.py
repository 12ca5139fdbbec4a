"""lld's sans-IO layers without a machine: frame codec, payload encodings, client, loss injector."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lld import protocol as p
from lld.client import LldClient, retransmit_safe
from lld.codec import (
    END,
    ESC,
    MAX_FRAME,
    MAX_PAYLOAD,
    MAX_WIRE_FRAME,
    BadFrame,
    Frame,
    FrameDecoder,
    encode_frame,
)
from lld.lossy import FrameMangler

pytestmark = pytest.mark.timeout(60)

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
u8 = st.integers(0, 0xFF)
_EVERY_BYTE = bytes(range(256)) * (MAX_PAYLOAD // 256 + 2)
# Payloads rich in the two bytes that need escaping.
payloads = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from([END, ESC, 0x00, 0x5E, 0x5D, 0xFF]), max_size=64).map(bytes),
    # Full-size payloads, built rather than drawn byte by byte (hypothesis would refuse to
    # generate that much data): every byte value, END and ESC included, from a drawn start.
    st.builds(lambda start, cut: _EVERY_BYTE[start:start + MAX_PAYLOAD - cut],
              st.integers(0, 255), st.integers(0, 4)),
)
frames = st.builds(Frame, node=u8, seq=u16, code=u8, payload=payloads, reply=st.booleans(),
                   status=u8, version=st.integers(0, 15))


def decode_all(data: bytes, chunks: list[int] | None = None) -> list[Frame | BadFrame]:
    decoder = FrameDecoder()
    events: list[Frame | BadFrame] = []
    if chunks is None:
        return decoder.feed(data)
    pos = 0
    for size in chunks:
        events += decoder.feed(data[pos:pos + size])
        pos += size
    return events + decoder.feed(data[pos:])


def good(events: list[Frame | BadFrame]) -> list[Frame]:
    return [e for e in events if isinstance(e, Frame)]


# -- frame codec ---------------------------------------------------------------------


@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    wire = encode_frame(frame)
    assert wire[0] == END and wire[-1] == END
    assert END not in wire[1:-1], "the terminator never occurs inside a frame"
    assert len(wire) <= MAX_WIRE_FRAME
    assert decode_all(wire) == [frame]


@given(st.lists(frames, max_size=6), st.lists(st.integers(1, 50), max_size=40))
def test_any_chunking_gives_the_same_frames(items: list[Frame], chunks: list[int]) -> None:
    wire = b"".join(encode_frame(f) for f in items)
    assert decode_all(wire, chunks) == items


@given(st.binary(max_size=3000), frames)
def test_resynchronizes_after_any_garbage(garbage: bytes, frame: Frame) -> None:
    events = decode_all(garbage + encode_frame(frame))
    assert good(events)[-1] == frame


@given(frames, frames, st.data())
def test_a_torn_frame_costs_only_itself(first: Frame, second: Frame, data: st.DataObject) -> None:
    wire = encode_frame(first)
    cut = data.draw(st.integers(1, len(wire) - 2))
    events = decode_all(wire[:cut] + encode_frame(second))
    assert good(events) == [second]


@given(frames, st.data())
def test_every_single_bit_error_is_caught(frame: Frame, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(frame))
    i = data.draw(st.integers(1, len(wire) - 2))
    wire[i] ^= 1 << data.draw(st.integers(0, 7))
    # Whatever the flip did to the framing (even making or unmaking a terminator), no frame comes out.
    assert good(decode_all(bytes(wire) + bytes((END,)))) == []


def test_overlong_input_is_bounded_and_skipped() -> None:
    decoder = FrameDecoder()
    events = decoder.feed(bytes((END,)) + b"\x01" * (3 * MAX_FRAME))
    assert events == [] and decoder.buffered == 0
    frame = Frame(node=1, seq=2, code=3, payload=b"ok")
    events = decoder.feed(encode_frame(frame))
    assert isinstance(events[0], BadFrame) and events[0].reason == "overlong"
    assert good(events) == [frame]
    assert decoder.stats.bad == 1 and decoder.stats.frames == 1


def test_bad_escape_and_empty_frames() -> None:
    frame = Frame(node=0, seq=1, code=2)
    events = decode_all(bytes((END, END, END, ESC, 0x41, END, ESC, END)) + encode_frame(frame))
    assert [e.reason for e in events if isinstance(e, BadFrame)] == ["escape", "escape"]
    assert good(events) == [frame]


def test_frame_fields_are_checked() -> None:
    with pytest.raises(ValueError):
        Frame(node=0, seq=0, code=0, payload=bytes(MAX_PAYLOAD + 1))
    with pytest.raises(ValueError):
        Frame(node=256, seq=0, code=0)
    with pytest.raises(ValueError):
        Frame(node=0, seq=0x10000, code=0)


# -- payload encodings ------------------------------------------------------------------

prefetches = st.lists(st.builds(p.ReadMem, u8, u32, st.integers(0, p.MAX_PREFETCH_BYTES // p.MAX_PREFETCH),
                                u32), max_size=p.MAX_PREFETCH).map(tuple)
requests = st.one_of(
    st.builds(p.Describe), st.builds(p.GetStatus), st.builds(p.GetStatus, st.just(True), prefetches),
    st.builds(p.ListBreakpoints), st.builds(p.ListWatchpoints),
    st.builds(p.Stop, u32), st.builds(p.Resume, u32), st.builds(p.Resume, u32, st.just(True), prefetches),
    st.builds(p.Resume, u32, st.booleans(), st.just(()), st.integers(1, 0xFFFF)),
    st.builds(p.Resume, u32, st.just(True), prefetches, st.one_of(st.none(), st.integers(1, 0xFFFF))),
    st.builds(p.ClearAll, u32),
    st.builds(p.Step, u32, st.booleans()), st.builds(p.Step, u32, st.booleans(), st.just(True), prefetches),
    st.builds(p.Step, u32, st.booleans(), st.booleans(), st.just(()), st.integers(1, 0xFFFF)),
    st.builds(p.Step, u32, st.booleans(), st.just(True), prefetches, st.integers(1, 0xFFFF)),
    st.builds(p.Step, u32, st.booleans(), st.just(True), prefetches, st.integers(1, 0xFFFF), u32),
    st.builds(p.Resume, u32, st.booleans(), st.just(()), st.integers(1, 0xFFFF), u32),
    st.builds(p.ReadRegs, st.lists(u16, max_size=p.MAX_REGS).map(tuple)),
    st.builds(p.WriteRegs, u32, st.lists(st.tuples(u16, u32), max_size=p.MAX_REGS).map(tuple)),
    st.builds(p.ReadMem, u8, u32, u16, u32),
    st.builds(p.WriteMem, u32, u8, u32, st.binary(max_size=p.MAX_DATA), u32),
    st.builds(p.SetBreakpoint, u32, u32, u8), st.builds(p.ClearBreakpoint, u32, u32),
    st.builds(p.SetWatchpoint, u32, u8, u32, u16, u8, u32), st.builds(p.ClearWatchpoint, u32, u32, u16, u8),
    st.builds(p.Translate, u8, u32, u8, u32),
)
u64 = st.integers(0, 2**64 - 1)
statuses = st.one_of(
    st.builds(p.Status, u8, u8, u8, u8, u32, u32, u32, u32, u64, u64),
    st.builds(p.Status, u8, u8, u8, u8, u32, u32, u32, u32, u64, u64,
              st.tuples(*[u32] * p.EXPEDITED_REGS),
              st.one_of(st.none(), st.binary(min_size=p.CODE_WINDOW, max_size=p.CODE_WINDOW)),
              st.lists(st.binary(max_size=128).flatmap(lambda data: st.builds(
                  p.Fetched, u8, u32, u32, st.just(len(data)), st.sampled_from((None, data)))),
                       max_size=p.MAX_PREFETCH).map(tuple),
              st.sampled_from((0, p.CODE_PLAIN))).map(
                  lambda s: dataclasses.replace(s, code_crc=s.pc ^ 0x5A5A5A5A) if s.code_flags else s))


@given(requests)
def test_request_round_trip(request: p.Request) -> None:
    payload = request.encode()
    assert len(payload) <= MAX_PAYLOAD
    assert p.decode_request(request.code, payload) == request


@given(u8, st.binary(max_size=80))
def test_any_payload_decodes_or_raises_payload_error(code: int, payload: bytes) -> None:
    try:
        p.decode_request(code, payload)
    except KeyError:
        assert code not in p.REQUEST_TYPES
    except p.PayloadError:
        pass
    for status in (p.OK, p.E_STALE, p.E_UNMAPPED, p.E_BAD_PAYLOAD):
        try:
            p.decode_reply(code, status, payload)
        except p.PayloadError:
            pass


@given(statuses)
def test_status_round_trip(status: p.Status) -> None:
    assert p.Status.decode(status.encode()) == status
    reply = p.decode_reply(p.STEP, p.OK, status.encode())
    assert reply.ok and reply.value == status
    assert p.decode_reply(p.STEP, p.E_STALE, status.encode()).error == p.ErrorDetail(p.E_STALE, status=status)


def test_a_step_count_is_one_to_65535() -> None:
    for bad in (0, 0x10000):
        with pytest.raises(ValueError):
            p.Step(1, count=bad).encode()
        with pytest.raises(ValueError):
            p.Resume(1, steps=bad).encode()
    assert p.Step(1).encode() == p.Step(1, count=1).encode() == bytes((0, 0, 0, 1, 0))  # one: no count
    with pytest.raises(p.PayloadError, match="not 0"):
        p.decode_request(p.STEP, bytes((0, 0, 0, 1, p.STEPS, 0, 0)))
    with pytest.raises(p.PayloadError, match="needs STEPS"):
        p.decode_request(p.STEP, bytes((0, 0, 0, 1, p.CODE_CHECK, 0, 0, 0, 0)))
    with pytest.raises(ValueError, match="goes with a step count"):
        p.Resume(1, code_crc=7).encode()
    assert p.Step(1, code_crc=7).encode() == bytes((0, 0, 0, 1, p.STEPS | p.CODE_CHECK, 0, 1, 0, 0, 0, 7))
    with pytest.raises(p.PayloadError, match="code flags"):
        p.Status.decode(dataclasses.replace(p.Status(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (0,) * p.EXPEDITED_REGS),
                                            code_flags=0x80).encode())


def test_a_prefetch_list_is_bounded_and_needs_expedite() -> None:
    block = p.ReadMem(p.SPACE_VIRT, 0x1000, 64)
    with pytest.raises(ValueError):
        p.Step(1, expedite=True, prefetch=(block,) * (p.MAX_PREFETCH + 1)).encode()
    with pytest.raises(ValueError):
        p.GetStatus(True, (p.ReadMem(p.SPACE_VIRT, 0, p.MAX_PREFETCH_BYTES + 1),)).encode()
    payload = bytes((p.PREFETCH,)) + bytes((1,)) + block.encode()   # PREFETCH without EXPEDITE
    with pytest.raises(p.PayloadError, match="needs EXPEDITE"):
        p.decode_request(p.STATUS, payload)
    with pytest.raises(p.PayloadError, match="ranges"):
        p.decode_request(p.STATUS, bytes((p.EXPEDITE | p.PREFETCH, 0)))


@given(st.lists(st.builds(p.BreakpointInfo, u32, u8, st.one_of(st.none(), u32)), max_size=p.MAX_BREAKPOINTS),
       st.lists(st.builds(p.WatchpointInfo, u8, u8, u32, u16, u32, u32), max_size=p.MAX_WATCHPOINTS))
def test_list_round_trips(bps: list[p.BreakpointInfo], wps: list[p.WatchpointInfo]) -> None:
    assert len(p.encode_breakpoints(bps)) <= MAX_PAYLOAD
    assert p.decode_breakpoints(p.encode_breakpoints(bps)) == bps
    assert p.decode_watchpoints(p.encode_watchpoints(wps)) == wps


def test_description_and_error_details_round_trip() -> None:
    d = p.MachineDescription(1, 1, 128, MAX_PAYLOAD, p.MAX_DATA, 64, 16, 0x80000000, 0x400000, 1000,
                             10_000_000, "rv32ima")
    assert p.MachineDescription.decode(d.encode()) == d
    assert d.ram_of(3) == (0x80C00000, 0x400000)
    assert p.decode_error(p.E_UNMAPPED, p.encode_error(p.E_UNMAPPED, addr=0x1234, cause=13)) == \
        p.ErrorDetail(p.E_UNMAPPED, addr=0x1234, cause=13)
    assert p.decode_error(p.E_BAD_REGISTER, p.encode_error(p.E_BAD_REGISTER, reg=0x1FFF)).reg == 0x1FFF
    assert "no such node" in p.decode_error(p.E_NO_NODE, b"4 nodes").describe()


# -- the client ------------------------------------------------------------------------------


def reply_bytes(node: int, seq: int, code: int, status: int = p.OK, payload: bytes = b"") -> bytes:
    return encode_frame(Frame(node=node, seq=seq, code=code, payload=payload, reply=True, status=status))


def test_client_matches_replies_and_retransmits_the_same_frame() -> None:
    client = LldClient(timeout=1.0, max_attempts=3)
    seq, wire = client.send(2, p.GetStatus(), now=0)
    assert client.busy(2) and not client.busy(1)
    with pytest.raises(RuntimeError):
        client.send(2, p.GetStatus(), now=0)
    assert client.poll(0.5) == (b"", [])
    again, failed = client.poll(1.0)
    assert again == wire and failed == []
    status = p.Status(2, 1, 3, 0, 1, 1, 0x80000000, 0, 10, 5)
    # A reply for another seq, node or code is not this request's answer.
    assert client.receive(reply_bytes(2, seq + 1, p.STATUS, payload=status.encode())) == []
    assert client.receive(reply_bytes(1, seq, p.STATUS, payload=status.encode())) == []
    assert client.receive(reply_bytes(2, seq, p.STEP, payload=status.encode())) == []
    done = client.receive(reply_bytes(2, seq, p.STATUS, payload=status.encode()))
    assert len(done) == 1 and done[0].reply.value == status and done[0].attempts == 2
    # The answer to the retransmission comes too, and is ignored.
    assert client.receive(reply_bytes(2, seq, p.STATUS, payload=status.encode())) == []
    assert client.stats.stale_replies == 4 and not client.busy(2)


def test_client_gives_up_after_max_attempts() -> None:
    client = LldClient(timeout=1.0, max_attempts=2)
    client.send(5, p.Describe(), now=0)
    client.poll(1)
    again, failed = client.poll(2)
    assert again == b"" and len(failed) == 1 and failed[0].node == 5 and not client.busy(5)


def test_client_refuses_requests_unsafe_to_repeat() -> None:
    assert retransmit_safe(p.Stop(p.ANY_GEN)) and retransmit_safe(p.WriteMem(p.ANY_GEN))
    assert retransmit_safe(p.Step(7)) and not retransmit_safe(p.Step(p.ANY_GEN))
    with pytest.raises(ValueError):
        LldClient().send(0, p.Resume(p.ANY_GEN), now=0)


# -- the loss injector ------------------------------------------------------------------------


def _stream(n: int) -> bytes:
    return b"".join(encode_frame(Frame(node=i % 4, seq=i, code=2, payload=bytes(i % 50))) for i in range(n))


def test_mangler_at_rate_zero_is_transparent_and_at_rate_one_damages_everything() -> None:
    data = _stream(200)
    assert FrameMangler(0.0).process(data) == data
    mangler = FrameMangler(1.0, seed=3)
    out = mangler.process(data)
    assert good(decode_all(out)) == []
    assert mangler.stats.frames == 200 and mangler.stats.damaged == 200
    assert min(mangler.stats.dropped, mangler.stats.corrupted, mangler.stats.torn) > 30


def test_mangler_is_seeded_and_keeps_frames_whole_across_chunks() -> None:
    data = _stream(300)
    rng = random.Random(9)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    a = FrameMangler(0.25, seed=5)
    chunked = b"".join(a.process(data[i:j]) for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True))
    b = FrameMangler(0.25, seed=5)
    assert chunked == b.process(data)
    survivors = good(decode_all(chunked))
    assert 0.6 * 300 < len(survivors) < 0.9 * 300
    assert len(survivors) == 300 - a.stats.damaged
    with pytest.raises(ValueError):
        FrameMangler(1.5)


@settings(max_examples=30)
@given(st.floats(0.0, 1.0), st.integers(0, 1000))
def test_mangled_streams_never_yield_foreign_frames(rate: float, seed: int) -> None:
    items = [Frame(node=i % 3, seq=i, code=5, payload=bytes([i]) * (i % 20)) for i in range(60)]
    out = FrameMangler(rate, seed).process(b"".join(encode_frame(f) for f in items))
    survivors = good(decode_all(out))
    assert all(f in items for f in survivors)
    assert [f.seq for f in survivors] == sorted(f.seq for f in survivors)


class _ByteByByteDecoder(FrameDecoder):
    """The decoder's exact per-byte rules alone: the reference for its whole-segment fast path."""

    def _absorb(self, segment: bytes) -> None:
        self._absorb_bytes(segment)


_NEAR_FRAMES = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\x7e", b"\x7d", b"\x7d\x5e", b"\x7d\x5d", b"\x7d\x7d", b"\x7d\x00"]),
        st.builds(lambda n, s: encode_frame(Frame(node=n, seq=s, code=2, payload=bytes(range(n)))),
                  st.integers(0, 127), st.integers(0, 65535)),
        st.builds(lambda n: b"\x00" * n, st.integers(1300, 1500)),   # overlong
    ),
    max_size=12,
)


@given(_NEAR_FRAMES, st.lists(st.integers(1, 64), max_size=20))
def test_fast_path_decodes_exactly_like_byte_by_byte(pieces: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pieces)
    fast, slow = FrameDecoder(), _ByteByByteDecoder()
    got_fast, got_slow = [], []
    start = 0
    for cut in [*cuts, len(stream)]:
        chunk = stream[start:start + cut]
        got_fast += fast.feed(chunk)
        got_slow += slow.feed(chunk)
        start += cut
    got_fast += fast.feed(stream[start:])
    got_slow += slow.feed(stream[start:])
    assert got_fast == got_slow
    assert fast.stats == slow.stats and fast.buffered == slow.buffered
