"""mux.rsp: RSP framing, escapes, run-length encoding, acks and resynchronisation, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mux.rsp import (
    Ack,
    BadPacket,
    Event,
    Interrupt,
    MalformedPayload,
    Nack,
    Notification,
    Packet,
    RspConnection,
    checksum,
    decode_payload,
    encode_frame,
    escape,
    run_length_decode,
    run_length_encode,
    unescape,
)

pytestmark = pytest.mark.timeout(60)

# Payloads rich in the bytes that need escaping, in runs, and in frame characters.
payloads = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(b"#$}*%+-\x03\x00]0a"), max_size=200).map(bytes),
    st.lists(st.tuples(st.sampled_from(b"0f}*#"), st.integers(1, 120)), max_size=5).map(
        lambda runs: b"".join(bytes([b]) * n for b, n in runs)),
)


def drain(conn: RspConnection) -> list[Event]:
    events: list[Event] = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    return events


def feed(data: bytes, conn: RspConnection | None = None) -> tuple[bytes, list[Event]]:
    """Bytes answered and events produced by feeding `data` in one go."""
    conn = conn or RspConnection()
    out = conn.receive_data(data)
    return out, drain(conn)


# -- framing --------------------------------------------------------------------------


def test_frames_match_gdb_traffic() -> None:
    assert encode_frame(b"OK") == b"$OK#9a"
    assert encode_frame(b"") == b"$#00"
    assert encode_frame(b"vMustReplyEmpty") == b"$vMustReplyEmpty#3a"
    assert encode_frame(b"Stop:T05", notification=True) == b"%Stop:T05#" + b"%02x" % checksum(b"Stop:T05")


def test_binary_write_from_gdb_is_unescaped() -> None:
    # gdb writing 0x2a7d2423 ('#', '$', '}', '*'), byte for byte from `set debug remote 1`.
    out, events = feed(b"$X80000004,4:}\x03}\x04}]}\n#e0")
    assert out == b"+"
    assert events == [Packet(b"X80000004,4:#$}*")]
    assert encode_frame(b"X80000004,4:#$}*") == b"$X80000004,4:}\x03}\x04}]}\n#e0"


def test_escape_round_trip_of_every_byte() -> None:
    every = bytes(range(256))
    escaped = escape(every)
    assert not set(b"#$*").intersection(escaped)
    assert unescape(escaped) == every
    with pytest.raises(MalformedPayload):
        unescape(b"abc}")


@given(st.binary(max_size=1200), st.lists(st.sampled_from(b"#$}*"), max_size=3), st.integers(0, 1200))
def test_escape_finds_a_special_byte_in_a_short_payload_and_a_long_one(body: bytes, specials: list[int],
                                                                       at: int) -> None:
    """Short payloads are searched with one regular expression, long ones with four scans."""
    payload = body[:at] + bytes(specials) + body[at:]
    escaped = escape(payload)
    assert not set(b"#$*").intersection(escaped) and unescape(escaped) == payload
    assert (escaped == payload) == (not set(b"#$}*").intersection(payload))


def test_run_length_decoding() -> None:
    # The protocol manual's example: "0* " is "0000" (' ' is 32 = 3 repeats + 29).
    assert run_length_decode(b"0* ") == b"0000"
    assert run_length_decode(b"x0*\"y") == b"x000000y"
    assert feed(b"$T0*!#" + b"%02x" % checksum(b"T0*!")) == (b"+", [Packet(b"T00000")])
    for bad in (b"*!", b"0*", b"0*\x1c"):
        with pytest.raises(MalformedPayload):
            run_length_decode(bad)


def test_long_zero_runs_are_compressed_as_gdbserver_sends_runs() -> None:
    assert run_length_encode(b"0" * 31) == b"0" * 31      # shorter runs go as they are
    assert run_length_encode(b"f" * 200) == b"f" * 200    # only runs of '0' are looked for
    assert run_length_encode(b"0" * 32) == b"0*<"         # a '0' and 31 more ('<' is 31 + 29)
    assert run_length_encode(b"0" * 200) == b"0*~0*~0* "  # 98 + 98 + 4
    assert run_length_encode(b"0" * (98 + 7)) == b"0*~0*\"0"   # 6 repeats would be '#'
    assert run_length_encode(b"0" * (98 + 8)) == b"0*~0*\"00"  # 7 repeats would be '$'
    assert run_length_encode(b"12" + b"0" * 40 + b"34") == b"120*D34"
    assert run_length_encode(b"10" + b"0" * 40) == b"10*E"  # the run takes the '0' of "10" too


@given(st.lists(st.one_of(st.binary(max_size=24), st.integers(0, 3000).map(lambda n: b"0" * n)), max_size=12))
def test_zero_runs_expand_to_what_was_compressed(pieces: list[bytes]) -> None:
    raw = escape(b"".join(pieces))
    assert run_length_decode(run_length_encode(raw)) == raw
    assert len(run_length_encode(raw)) <= len(raw)


@given(payloads, st.booleans())
def test_any_payload_survives_a_connection(payload: bytes, rle: bool) -> None:
    frame = RspConnection(rle=rle).send_packet(payload)
    assert b"$" not in frame[1:] and frame[-3:-2] == b"#"
    out, events = feed(frame, RspConnection(max_packet_size=len(frame)))
    assert out == b"+" and events == [Packet(payload)]


@given(payloads)
def test_run_length_encoding_inverts(payload: bytes) -> None:
    raw = escape(payload)
    assert run_length_decode(run_length_encode(raw)) == raw
    assert decode_payload(run_length_encode(raw)) == payload


# -- acks and retransmission ------------------------------------------------------------


def test_ack_mode_acks_and_resends_until_acked() -> None:
    conn = RspConnection()
    assert conn.receive_data(b"$?#3f") == b"+"
    reply = conn.send_packet(b"S05")
    assert conn.receive_data(b"-") == reply  # damaged: send it again
    assert conn.receive_data(b"-") == reply
    assert conn.receive_data(b"+") == b""
    assert conn.receive_data(b"-") == b""  # nothing left to resend
    assert drain(conn) == [Packet(b"?"), Nack(), Nack(), Ack(), Nack()]


def test_bad_checksum_is_nacked_and_dropped() -> None:
    out, events = feed(b"$g#00$g#67")
    assert out == b"-+"
    assert isinstance(events[0], BadPacket) and "checksum" in events[0].reason
    assert events[1:] == [Packet(b"g")]


def test_checksum_digits_may_be_upper_case() -> None:
    assert feed(b"$qC#B4") == (b"+", [Packet(b"qC")])


def test_no_ack_mode_starts_after_the_ok() -> None:
    conn = RspConnection()
    conn.receive_data(b"$QStartNoAckMode#b0")
    ok = conn.send_packet(b"OK")
    conn.start_no_ack_mode()
    assert not conn.ack_mode
    assert conn.receive_data(b"-") == ok  # gdb still acks the OK itself
    assert conn.receive_data(b"+$Hg0#df") == b""  # ... and nothing after it
    reply = conn.send_packet(b"OK")
    assert reply == b"$OK#9a"
    assert conn.receive_data(b"-$g#00") == b""  # no resend, no nack
    assert drain(conn) == [Packet(b"QStartNoAckMode"), Nack(), Ack(), Packet(b"Hg0"), Nack(),
                           BadPacket("checksum 00, payload sums to 67")]


def test_interrupt_only_outside_packets() -> None:
    out, events = feed(b"\x03$X0,1:\x03#" + b"%02x" % checksum(b"X0,1:\x03") + b"\x03")
    assert out == b"+"
    assert events == [Interrupt(), Packet(b"X0,1:\x03"), Interrupt()]


def test_notifications_are_not_acked() -> None:
    conn = RspConnection()
    frame = conn.send_notification(b"Stop:T05")
    assert frame.startswith(b"%")
    assert conn.receive_data(b"-") == b""  # notifications are never resent
    out, events = feed(frame + b"%Stop:T05#00")
    assert out == b""
    assert events[0] == Notification(b"Stop:T05") and isinstance(events[1], BadPacket)


# -- damage and resynchronisation --------------------------------------------------------


def test_overlong_packet_is_skipped_whole() -> None:
    conn = RspConnection(max_packet_size=8)
    body = b"X0,9:+-\x03+-\x03+-\x03"  # acks and ctrl-C inside must not count
    out, events = feed(encode_frame(body) + b"$g#67", conn)
    assert out == b"-+"
    assert events == [BadPacket("payload longer than 8 bytes"), Packet(b"g")]


def test_torn_packet_is_dropped_without_a_nack() -> None:
    # A nack would make gdb resend its packet, and the stub would serve it twice.
    out, events = feed(b"$m800$m0,4#fd")
    assert out == b"+"
    assert events == [BadPacket("frame torn by a new '$'"), Packet(b"m0,4")]
    out, events = feed(b"$m0,4#f$m0,4#fd")
    assert events == [BadPacket("frame torn in its checksum"), Packet(b"m0,4")]


def test_malformed_payloads_are_nacked() -> None:
    for raw, reason in ((b"ab}", "escape"), (b"*!", "nothing to repeat"), (b"a*", "without a count")):
        out, events = feed(b"$" + raw + b"#%02x" % checksum(raw))
        assert out == b"-"
        assert len(events) == 1 and isinstance(events[0], BadPacket) and reason in events[0].reason
    out, events = feed(b"$g#zz")
    assert out == b"-" and events == [BadPacket("checksum b'zz' is not hex")]


def test_garbage_between_frames_is_skipped() -> None:
    assert feed(b"junk\r\n#99 $g#67 more") == (b"+", [Packet(b"g")])


# -- properties ---------------------------------------------------------------------------

tokens = st.one_of(
    payloads.map(lambda data: ("packet", data)),
    payloads.map(lambda data: ("notification", data)),
    st.sampled_from([("ack", b""), ("nack", b""), ("interrupt", b"")]),
)


def wire(token: tuple[str, bytes]) -> bytes:
    kind, data = token
    if kind in ("packet", "notification"):
        return encode_frame(data, notification=kind == "notification")
    return {"ack": b"+", "nack": b"-", "interrupt": b"\x03"}[kind]


@given(st.lists(tokens, max_size=12), st.lists(st.integers(1, 64), max_size=30))
def test_chunking_does_not_matter(stream: list[tuple[str, bytes]], cuts: list[int]) -> None:
    data = b"".join(wire(t) for t in stream)
    whole_out, whole_events = feed(data)
    conn = RspConnection()
    out = bytearray()
    pos = 0
    for size in [*cuts, len(data)]:
        out += conn.receive_data(data[pos:pos + size])
        pos += size
    assert (bytes(out), drain(conn)) == (whole_out, whole_events)
    expected = {"packet": Packet, "notification": Notification, "ack": Ack, "nack": Nack,
                "interrupt": Interrupt}
    kinds: list[type] = []
    for kind, _ in stream:
        # Acks and ctrl-Cs in a row, not yet taken, are one event: two of them mean no more than one.
        if not (kind in ("ack", "interrupt") and kinds and kinds[-1] is expected[kind]):
            kinds.append(expected[kind])
    assert [type(e) for e in whole_events] == kinds


def test_a_run_of_ctrl_cs_or_acks_is_one_event_and_a_run_of_nacks_one_resend() -> None:
    conn = RspConnection()
    reply = conn.send_packet(b"S05")
    assert conn.receive_data(b"\x03" * 100_000 + b"-" * 1000) == reply   # one copy, not a thousand
    assert drain(conn) == [Interrupt()] + [Nack()] * 1000
    assert conn.receive_data(b"\x03") == b""
    assert conn.receive_data(b"\x03") == b""
    assert drain(conn) == [Interrupt()]                 # not yet taken: coalesced
    conn.receive_data(b"\x03")
    assert drain(conn) == [Interrupt()]                 # taken before the next: each one counts
    assert conn.receive_data(b"-") == reply             # a later nack: the packet again
    conn.hold_resends = True                            # (the last copy is still in the output)
    assert conn.receive_data(b"-") == b""
    conn.hold_resends = False
    assert conn.receive_data(b"+" * 5000 + b"-") == b""   # acked: nothing to resend
    assert drain(conn) == [Nack(), Nack(), Ack(), Nack()]


# Garbage: anything but the bytes that mean something between frames.
garbage = st.binary(max_size=40).map(lambda g: bytes(b for b in g if b not in b"$%+-\x03"))


@given(st.lists(st.tuples(garbage, payloads), max_size=8), garbage)
def test_garbage_between_packets_is_skipped(items: list[tuple[bytes, bytes]], tail: bytes) -> None:
    data = b"".join(junk + encode_frame(payload) for junk, payload in items) + tail
    out, events = feed(data)
    assert events == [Packet(payload) for _, payload in items]
    assert out == b"+" * len(items)


@given(st.lists(payloads, min_size=1, max_size=6), st.data())
def test_corrupted_checksum_gives_a_nack_and_no_packet(packets: list[bytes], data: st.DataObject) -> None:
    bad = data.draw(st.integers(0, len(packets) - 1))
    frames = [encode_frame(payload) for payload in packets]
    good_sum = int(frames[bad][-2:], 16)
    wrong = data.draw(st.integers(0, 255).filter(lambda v: v != good_sum))
    frames[bad] = frames[bad][:-2] + b"%02x" % wrong
    out, events = feed(b"".join(frames))
    assert out == b"+" * bad + b"-" + b"+" * (len(packets) - bad - 1)
    delivered = [e for e in events if isinstance(e, Packet)]
    assert delivered == [Packet(x) for i, x in enumerate(packets) if i != bad]
    assert isinstance(events[bad], BadPacket)


@given(st.binary(max_size=600), payloads, st.booleans())
def test_random_bytes_never_raise_and_the_next_frame_still_decodes(
        noise: bytes, payload: bytes, ack_mode: bool) -> None:
    conn = RspConnection(max_packet_size=256)
    if not ack_mode:
        conn.start_no_ack_mode()
    conn.receive_data(noise)
    drain(conn)
    frame = encode_frame(payload)
    conn.receive_data(frame)
    events = drain(conn)
    if len(frame) - 4 <= 256:
        assert events[-1] == Packet(payload)
    else:
        assert events[-1] == BadPacket("payload longer than 256 bytes")


@given(st.integers(0, 140_000), st.integers(0, 255), st.binary(max_size=64))
def test_the_checksum_of_a_long_payload_is_its_byte_sum(length: int, fill: int, head: bytes) -> None:
    # Long runs of one byte (0xff at worst) and the sizes around the exact-piece limit included.
    raw = (head + bytes((fill,)) * length)[:length]
    assert checksum(raw) == sum(raw) & 0xFF
    assert checksum(bytes(range(256)) * 300) == sum(bytes(range(256)) * 300) & 0xFF
