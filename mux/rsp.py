"""gdb Remote Serial Protocol framing: a sans-IO codec in the manner of h11.

The mux speaks RSP to several gdb sessions at once over TCP and UDP
(one process, many connections), and protocol code must be testable and
fuzzable without sockets.  So this module only turns bytes into events
and payloads into bytes; whoever owns the socket moves the bytes.

On the wire a packet is ``$payload#cs``: ``cs`` is the sum of the payload
bytes as sent, mod 256, in two hex digits.  A notification is ``%payload#cs``
and is never acknowledged.  Outside a packet, ``+`` and ``-`` acknowledge the
peer's last packet and a bare 0x03 byte is gdb's ctrl-C.  Inside a payload,
``}`` escapes the next byte (sent XOR 0x20) so that ``#``, ``$``, ``}`` and
``*`` can travel in binary data, and ``X*n`` run-length encodes ``n - 29``
more copies of ``X``.  Decoding follows gdb's order (remote.c, read_frame):
expand runs on the raw bytes first, then undo escapes.

`RspConnection` is symmetric: it can sit on either end of a connection,
which is what lets the tests drive one with another.
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from dataclasses import dataclass, field
from enum import Enum, auto

INTERRUPT = 0x03
ACK = ord("+")
NACK = ord("-")
PACKET_START = ord("$")
NOTIFICATION_START = ord("%")
PACKET_END = ord("#")
ESCAPE = ord("}")
ESCAPE_XOR = 0x20
RUN = ord("*")
#: Bytes that never appear raw inside a payload we send.
SPECIAL = frozenset(b"#$}*")
#: A run count is sent as a printable character: repeats + 29.
RUN_BIAS = 29
#: '~' (126) is the largest count character.
MAX_REPEATS = 126 - RUN_BIAS
#: Default bound on a received payload as sent (escaped), in bytes.  The
#: stub advertises it as PacketSize, and gdb keeps whole frames below it.
DEFAULT_MAX_PACKET = 4096

_FRAME_STARTS = (PACKET_START, NOTIFICATION_START)
_BODY_STOP = re.compile(rb"[$#]")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class MalformedPayload(ValueError):
    """A payload whose escapes or runs cannot be undone."""


_ADLER_MOD = 65521                            # the prime Adler-32 sums its bytes modulo
_INVERSE = pow(_ADLER_MOD, -1, 255)
#: Longest piece whose byte sum is below 65521 * 255, so that its two residues give it exactly.
_EXACT_PIECE = 65519


def checksum(raw: bytes) -> int:
    """The RSP checksum of a payload as sent: byte sum mod 256.

    Summing a 64 KiB memory reply a byte at a time costs Python milliseconds.  The
    sum is found instead from two residues computed in C: modulo 65521 (Adler-32's
    first half is 1 + the byte sum modulo 65521) and modulo 255 (256 is 1 modulo
    255, so the payload read as one little-endian number has the byte sum's
    residue).  Both moduli are coprime and their product exceeds the byte sum of
    any piece of up to _EXACT_PIECE bytes, so the Chinese remainder theorem gives
    the sum itself.
    """
    if len(raw) < 512:
        return sum(raw) & 0xFF
    total = 0
    for start in range(0, len(raw), _EXACT_PIECE):
        piece = raw[start: start + _EXACT_PIECE]
        by_adler = ((zlib.adler32(piece) & 0xFFFF) - 1) % _ADLER_MOD
        by_255 = int.from_bytes(piece, "little") % 255
        total += by_adler + _ADLER_MOD * ((by_255 - by_adler) * _INVERSE % 255)
    return total & 0xFF


_SPECIAL_BYTES = [bytes((c,)) for c in sorted(SPECIAL)]
_ANY_SPECIAL = re.compile(b"[" + re.escape(bytes(sorted(SPECIAL))) + b"]")
#: Up to this long, one regular expression finds a special byte fastest; beyond, four scans in C.
_SHORT = 512


def escape(payload: bytes) -> bytes:
    """Escape the bytes that would end, restart or garble a frame."""
    if (_ANY_SPECIAL.search(payload) is None if len(payload) <= _SHORT
            else not any(special in payload for special in _SPECIAL_BYTES)):
        return payload
    # The escape character first, so that the escapes the others add are not escaped again.
    out = payload.replace(b"}", bytes((ESCAPE, ESCAPE ^ ESCAPE_XOR)))
    for special in _SPECIAL_BYTES:
        if special != b"}":
            out = out.replace(special, bytes((ESCAPE, special[0] ^ ESCAPE_XOR)))
    return out


def unescape(raw: bytes) -> bytes:
    """Undo `escape`; binary payloads (``X`` data, qXfer replies) arrive escaped."""
    if ESCAPE not in raw:
        return raw
    out = bytearray()
    pending = False
    for b in raw:
        if pending:
            out.append(b ^ ESCAPE_XOR)
            pending = False
        elif b == ESCAPE:
            pending = True
        else:
            out.append(b)
    if pending:
        raise MalformedPayload("payload ends inside an escape")
    return bytes(out)


#: The shortest run of '0' that `run_length_encode` compresses: 16 zero bytes in hex.
ZERO_RUN = 32
_ZEROS = b"0" * ZERO_RUN
_ZEROS_KIB = b"0" * 1024
_NOT_ZERO = re.compile(rb"[^0]")


def run_length_encode(raw: bytes) -> bytes:
    """Compress the long runs of '0' in a payload as sent: zero memory in an ``m`` reply.

    A run is ``0*n``: n more of the '0' before the star, 3 to 97 at a time, never a
    count whose character would be ``$`` or ``#`` (6 and 7: five are sent, and the
    rest as they are).  Only runs of ZERO_RUN or more '0's are looked for, at C's
    speed: gdbserver compresses every run of four (try_rle), but finding those in
    Python costs a step per byte of a 64 KiB reply, while memory's long runs are
    zeros.  gdb expands a run as it reads the packet, which costs it far less than
    reading the characters.
    """
    at = raw.find(_ZEROS)
    if at < 0:
        return raw
    out = bytearray()
    start = 0
    while at >= 0:
        end = at + ZERO_RUN
        while raw.startswith(_ZEROS_KIB, end):   # (a long run in few steps, the rest by the regex)
            end += len(_ZEROS_KIB)
        found = _NOT_ZERO.search(raw, end)
        end = found.start() if found else len(raw)
        out += raw[start:at]
        out += _zero_run(end - at)
        start = end
        at = raw.find(_ZEROS, start)
    out += raw[start:]
    return bytes(out)


_FULL_RUN = b"0" + bytes((RUN, MAX_REPEATS + RUN_BIAS))   # 98 '0's


def _zero_run(length: int) -> bytes:
    """`length` '0's as runs, each a '0' and its count, as gdbserver sends them."""
    full, rest = divmod(length, 1 + MAX_REPEATS)
    out = _FULL_RUN * full
    if rest < 4:
        return out + b"0" * rest
    repeats = rest - 1
    while repeats + RUN_BIAS in (PACKET_START, PACKET_END):
        repeats -= 1
    return out + b"0" + bytes((RUN, repeats + RUN_BIAS)) + b"0" * (rest - 1 - repeats)


def run_length_decode(raw: bytes) -> bytes:
    """Expand ``X*n`` runs.  gdb never sends them, but stubs' replies may."""
    if RUN not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        if b != RUN:
            out.append(b)
            i += 1
            continue
        if not out:
            raise MalformedPayload("run with nothing to repeat")
        if i + 1 >= len(raw):
            raise MalformedPayload("run without a count")
        repeats = raw[i + 1] - RUN_BIAS
        if repeats < 1:
            raise MalformedPayload(f"run count character 0x{raw[i + 1]:02x}")
        out += bytes((out[-1],)) * repeats
        i += 2
    return bytes(out)


def decode_payload(raw: bytes) -> bytes:
    """Payload as received between the frame characters -> payload bytes."""
    return unescape(run_length_decode(raw))


def encode_frame(payload: bytes, *, notification: bool = False, rle: bool = False) -> bytes:
    """Bytes on the wire for one packet (``$...#cs``) or notification (``%...#cs``)."""
    raw = escape(payload)
    if rle:
        raw = run_length_encode(raw)
    start = b"%" if notification else b"$"
    return start + raw + b"#%02x" % checksum(raw)


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """A well-formed packet, escapes and runs undone.  It has been acked already."""

    payload: bytes


@dataclass(frozen=True)
class Notification:
    """A ``%`` notification (stub to debugger, e.g. ``Stop:T05`` in non-stop mode)."""

    payload: bytes


@dataclass(frozen=True)
class Interrupt:
    """gdb's ctrl-C: a 0x03 byte outside any packet.  The stub should stop the target."""


@dataclass(frozen=True)
class Ack:
    """The peer received our last packet."""


@dataclass(frozen=True)
class Nack:
    """The peer received our last packet damaged; it has been queued again."""


@dataclass(frozen=True)
class BadPacket:
    """A frame that was discarded; `reason` says why.  In ack mode it was nacked,
    unless it was torn off by the start of a new frame (nacking then would make
    the peer resend, and the stub would see the new packet twice).

    `rejected`: a whole packet (not a notification) that arrived and was refused
    (checksum, escapes, length): in no-ack mode nothing nacks it, and its sender
    waits for a reply, which the stub should give (an error).
    """

    reason: str
    rejected: bool = field(default=False, compare=False)


Event = Packet | Notification | Interrupt | Ack | Nack | BadPacket

_ACK = Ack()
_NACK = Nack()
_INTERRUPT = Interrupt()
#: Between frames: a frame start, a run of acks, of nacks or of ctrl-Cs, or a run of anything else.
_IDLE_RUN = re.compile(rb"[$%]|\++|-+|\x03+|[^$%+\-\x03]+")


class _State(Enum):
    IDLE = auto()  # between frames: acks, ctrl-C, garbage
    BODY = auto()  # after '$' or '%'
    CHECKSUM = auto()  # after '#'


class RspConnection:
    """One end of an RSP connection.

    Feed received bytes to `receive_data`, which returns the bytes to send
    straight away (acks, nacks and retransmissions), then drain `next_event`.
    Frame outgoing payloads with `send_packet` / `send_notification`.

    Nothing a peer sends can make it raise or buffer without bound: a payload
    longer than `max_packet_size` is dropped as it arrives, and bytes that
    belong to no frame are skipped until the next ``$`` or ``%``.
    """

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET, rle: bool = False) -> None:
        self.max_packet_size = max_packet_size
        #: Run-length encode outgoing payloads.  Off by default: it saves
        #: little on fast links and makes traffic harder to read.
        self.rle = rle
        self._ack_mode = True
        self._events: deque[Event] = deque()
        self._state = _State.IDLE
        self._notification = False
        self._raw = bytearray()
        self._overlong = False
        self._checksum = bytearray()
        self._unacked: bytes | None = None
        #: Answer no nack with a resend (the owner sets it while the last copy has not left its
        #: output buffer: a nack then cannot be about that copy, and resending would only pile up).
        self.hold_resends = False
        self._resent = False   # a resend went out in this call of receive_data

    @property
    def ack_mode(self) -> bool:
        """Whether packets are still acknowledged (see `start_no_ack_mode`)."""
        return self._ack_mode

    def start_no_ack_mode(self) -> None:
        """Stop acknowledging and expecting acks.

        The stub calls this right after sending ``OK`` to ``QStartNoAckMode``:
        gdb still acks that ``OK`` (and it is still resent on a nack), but
        nothing after it.
        """
        self._ack_mode = False

    def send_packet(self, payload: bytes) -> bytes:
        """Frame a packet; in ack mode it is kept for retransmission until acked."""
        frame = encode_frame(payload, rle=self.rle)
        if self._ack_mode:
            self._unacked = frame
        return frame

    def send_notification(self, payload: bytes) -> bytes:
        """Frame a notification.  Notifications are neither acked nor resent."""
        return encode_frame(payload, notification=True, rle=self.rle)

    def next_event(self) -> Event | None:
        """The oldest event not yet taken, or None when more data is needed."""
        return self._events.popleft() if self._events else None

    def receive_data(self, data: bytes) -> bytes:
        """Consume received bytes; returns the bytes to send in answer, possibly empty.

        A run of nacks in one call resends the unacked packet once: each nack answers a
        copy the peer received, and it cannot have received the resend before it sent them.
        """
        out = bytearray()
        self._resent = False
        i = 0
        while i < len(data):
            if self._state is _State.BODY:
                i = self._take_body(data, i)
                continue
            if self._state is _State.IDLE:
                # Between frames, in one step: the bytes that mean nothing, or a run of one
                # of the bytes that do (a flood costs a regular expression, not a loop).
                run = _IDLE_RUN.match(data, i)
                assert run is not None
                i = run.end()
                out += self._idle(data[run.start()], run.end() - run.start())
                continue
            b = data[i]
            i += 1
            if b in _FRAME_STARTS:
                self._bad("frame torn in its checksum")
                self._start(b)
            else:
                self._checksum.append(b)
                if len(self._checksum) == 2:
                    out += self._finish()
        return bytes(out)

    def _idle(self, b: int, count: int) -> bytes:
        """`count` bytes between frames, all `b` if it means something (a frame start is one)."""
        if b in _FRAME_STARTS:
            self._start(b)
        elif b == ACK:
            self._unacked = None
            self._coalesce(_ACK)
        elif b == NACK:
            self._events.extend([_NACK] * count)
            if self._unacked is None or self._resent or self.hold_resends:
                return b""
            self._resent = True
            return self._unacked
        elif b == INTERRUPT:
            self._coalesce(_INTERRUPT)
        return b""

    def _coalesce(self, event: Ack | Interrupt) -> None:
        """Queue an ack or a ctrl-C, unless the event queued last is the same: two mean one."""
        if not self._events or self._events[-1] != event:
            self._events.append(event)

    def _start(self, b: int) -> None:
        self._state = _State.BODY
        self._notification = b == NOTIFICATION_START
        self._raw.clear()
        self._overlong = False

    def _take_body(self, data: bytes, i: int) -> int:
        """Append payload bytes up to the next '#' or '$'; returns where it stopped."""
        stop = _BODY_STOP.search(data, i)
        end = len(data) if stop is None else stop.start()
        if not self._overlong:
            self._raw += data[i:end]
            if len(self._raw) > self.max_packet_size:
                self._overlong = True
                self._raw.clear()
        if stop is None:
            return end
        if data[end] == PACKET_END:
            self._state = _State.CHECKSUM
            self._checksum.clear()
        else:
            self._bad("frame torn by a new '$'")
            self._start(PACKET_START)
        return end + 1

    def _finish(self) -> bytes:
        """A whole frame has arrived: check it, queue its event, say what to answer."""
        self._state = _State.IDLE
        raw = bytes(self._raw)
        self._raw.clear()
        if self._overlong:
            return self._reject(f"payload longer than {self.max_packet_size} bytes")
        if not _HEX.issuperset(self._checksum):
            return self._reject(f"checksum {bytes(self._checksum)!r} is not hex")
        sent = int(self._checksum, 16)
        if sent != checksum(raw):
            return self._reject(f"checksum {sent:02x}, payload sums to {checksum(raw):02x}")
        try:
            payload = decode_payload(raw)
        except MalformedPayload as e:
            return self._reject(str(e))
        if self._notification:
            self._events.append(Notification(payload))
            return b""
        self._events.append(Packet(payload))
        return b"+" if self._ack_mode else b""

    def _reject(self, reason: str) -> bytes:
        self._bad(reason, rejected=not self._notification)
        return b"-" if self._ack_mode and not self._notification else b""

    def _bad(self, reason: str, rejected: bool = False) -> None:
        self._events.append(BadPacket(reason, rejected))
