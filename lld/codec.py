"""lld frames <-> bytes on the debug line: a sans-IO codec shared by lld and the mux.

The debug line is a plain byte stream that may lose, tear or corrupt data
(it is a serial line), and the king node must find frame boundaries by
scanning for one terminator character.  So a frame is:

    END  escape(header + payload + crc32)  END

with HDLC-style byte stuffing: END (0x7E) and ESC (0x7D) inside the frame are
sent as ESC followed by the byte XOR 0x20, so END never occurs inside a
frame.  Senders put an END before every frame as well as after it, so that
garbage left on the line by a torn frame is flushed as a (rejected) frame of
its own instead of swallowing the next good one.  Empty frames (two ENDs in a
row) are ignored.

Nothing here does I/O: `encode_frame` returns bytes and `FrameDecoder.feed`
takes whatever bytes arrived and returns the events they completed.  The
layout is documented in docs/lld-protocol.md.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

END = 0x7E
ESC = 0x7D
ESC_XOR = 0x20

VERSION = 1
FLAG_REPLY = 0x01

#: Largest payload of any frame, request or reply: a WRITE_MEM of lld's largest transfer (16 KiB)
#: and its header, with room to spare.
MAX_PAYLOAD = 16384 + 256

_HEADER = struct.Struct(">BBHBBH")  # version<<4|flags, node, seq, code, status, length
HEADER_SIZE = _HEADER.size
CRC_SIZE = 4
MIN_FRAME = HEADER_SIZE + CRC_SIZE
#: Largest unescaped frame; the decoder never buffers more than this.
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
#: Largest frame on the wire: every byte escaped, plus both terminators.
MAX_WIRE_FRAME = 2 * MAX_FRAME + 2

_STUFF = {END: bytes((ESC, END ^ ESC_XOR)), ESC: bytes((ESC, ESC ^ ESC_XOR))}
_ESCAPED_END = _STUFF[END]
_ESCAPED_ESC = _STUFF[ESC]


@dataclass(frozen=True)
class Frame:
    """One decoded frame: a request (mux -> lld) or a reply (lld -> mux)."""

    node: int
    seq: int
    code: int
    payload: bytes = b""
    reply: bool = False
    status: int = 0
    version: int = VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.node <= 0xFF:
            raise ValueError(f"node {self.node} does not fit a byte")
        if not 0 <= self.seq <= 0xFFFF:
            raise ValueError(f"seq {self.seq} does not fit 16 bits")
        if not 0 <= self.code <= 0xFF or not 0 <= self.status <= 0xFF:
            raise ValueError("code and status are bytes")
        if not 0 <= self.version <= 0xF:
            raise ValueError("version is a nibble")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")


@dataclass(frozen=True)
class BadFrame:
    """Bytes between two terminators that are not a frame; `reason` says why."""

    reason: str
    size: int


def frame_body(frame: Frame) -> bytes:
    """The unescaped frame: header, payload and CRC-32 over both."""
    flags = FLAG_REPLY if frame.reply else 0
    head = _HEADER.pack((frame.version << 4) | flags, frame.node, frame.seq, frame.code,
                        frame.status, len(frame.payload))
    body = head + frame.payload
    return body + struct.pack(">I", zlib.crc32(body))


def stuff(body: bytes) -> bytes:
    """Escape END and ESC so that END never occurs inside a frame.

    ESC goes first, so the ESCs that the second replacement adds are not escaped again.
    """
    esc, end = bytes((ESC,)), bytes((END,))
    return body.replace(esc, _STUFF[ESC]).replace(end, _STUFF[END])


def encode_frame(frame: Frame) -> bytes:
    """Bytes to put on the line for one frame, terminators included."""
    return bytes((END,)) + stuff(frame_body(frame)) + bytes((END,))


def parse_body(body: bytes) -> Frame | BadFrame:
    """Check and split an unescaped frame."""
    if len(body) < MIN_FRAME:
        return BadFrame("short", len(body))
    (crc,) = struct.unpack_from(">I", body, len(body) - CRC_SIZE)
    if zlib.crc32(body[:-CRC_SIZE]) != crc:
        return BadFrame("crc", len(body))
    vflags, node, seq, code, status, length = _HEADER.unpack_from(body)
    if length != len(body) - MIN_FRAME:
        return BadFrame("length", len(body))
    return Frame(node=node, seq=seq, code=code, payload=bytes(body[HEADER_SIZE:-CRC_SIZE]),
                 reply=bool(vflags & FLAG_REPLY), status=status, version=vflags >> 4)


@dataclass
class DecoderStats:
    frames: int = 0
    bad: int = 0
    #: Bytes thrown away: rejected frames and the overlong remainders of torn ones.
    discarded_bytes: int = 0


@dataclass
class FrameDecoder:
    """Incremental decoder: feed it any chunking of the byte stream.

    It buffers at most MAX_FRAME unescaped bytes.  A frame that grows beyond
    that (a lost terminator, or garbage) is marked bad and skipped up to the
    next END, which is where decoding resynchronizes; so is a frame with a
    bad escape.  Nothing a sender does can make it raise or grow unbounded.
    """

    _buf: bytearray = field(default_factory=bytearray)
    _escaped: bool = False
    _broken: str | None = None
    _skipped: int = 0
    stats: DecoderStats = field(default_factory=DecoderStats)

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        events: list[Frame | BadFrame] = []
        start = 0
        while start <= len(data):
            end = data.find(END, start)
            self._absorb(data[start:] if end < 0 else data[start:end])
            if end < 0:
                break
            event = self._finish()
            if event is not None:
                events.append(event)
            start = end + 1
        return events

    def _absorb(self, segment: bytes) -> None:
        """Take bytes that hold no END: whole, when they are well formed, else byte by byte.

        A pair split between two feeds (a large frame comes in several reads, and one in
        eight of them ends on an ESC) costs its two bytes the exact way, not the feed.
        """
        if segment and self._escaped and self._broken is None:
            self._absorb_bytes(segment[:1])
            segment = segment[1:]
        if not segment:
            return
        if self._broken is None and not self._escaped:
            split = segment[-1] == ESC   # the first byte of a pair the next feed ends
            body = segment[:-1] if split else segment
            if body.count(ESC) == body.count(_ESCAPED_END) + body.count(_ESCAPED_ESC):
                # Every ESC starts a valid pair.
                plain = body.replace(_ESCAPED_END, bytes((END,))).replace(_ESCAPED_ESC, bytes((ESC,)))
                if len(self._buf) + len(plain) <= MAX_FRAME:
                    self._buf += plain
                    self._escaped = split
                    return
        self._absorb_bytes(segment)

    def _absorb_bytes(self, segment: bytes) -> None:
        """The exact rules, one byte at a time: escapes split across feeds, bad escapes, overlong frames."""
        buf = self._buf
        for b in segment:
            if self._broken is not None:
                self._skipped += 1
                continue
            if self._escaped:
                self._escaped = False
                b ^= ESC_XOR
                if b not in (END, ESC):
                    self._break("escape")
                    continue
            elif b == ESC:
                self._escaped = True
                continue
            if len(buf) >= MAX_FRAME:
                self._break("overlong")
                continue
            buf.append(b)

    def _break(self, reason: str) -> None:
        self._broken = reason
        self._skipped += len(self._buf) + 1
        self._buf.clear()

    def _finish(self) -> Frame | BadFrame | None:
        broken, skipped = self._broken, self._skipped
        body = bytes(self._buf)
        escaped = self._escaped
        self._buf.clear()
        self._escaped = False
        self._broken = None
        self._skipped = 0
        if broken is not None:
            event: Frame | BadFrame = BadFrame(broken, skipped)
        elif escaped:
            event = BadFrame("escape", len(body) + 1)
        elif not body:
            return None
        else:
            event = parse_body(body)
        if isinstance(event, BadFrame):
            self.stats.bad += 1
            self.stats.discarded_bytes += event.size
        else:
            self.stats.frames += 1
        return event

    @property
    def buffered(self) -> int:
        """Unescaped bytes of the frame in progress."""
        return len(self._buf)
