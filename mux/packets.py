"""RSP packet payloads <-> typed requests and replies, for a bare-metal RV32 target.

`rsp` frames bytes; this module gives the payloads meaning.  `parse_request`
turns whatever gdb-multiarch sends into one of the request dataclasses below
and never raises: a packet it does not know becomes `Unsupported` (answer
with an empty reply, which tells gdb the packet is not supported), and a
known packet with bad syntax becomes `MalformedRequest` (answer with an
error, so gdb does not conclude the packet is unsupported for good).

The reply builders return payloads for `RspConnection.send_packet`.
Numbers in packets are hex; register values and memory are target-order
(little-endian) hex bytes.  Threads are hex numbers, -1 meaning all and 0
any; ``pPID.TID`` appears only if a stub advertises multiprocess+, which
this one does not, but it is parsed anyway.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum

SIGINT = 2
SIGTRAP = 5
SIGKILL = 9

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _hex(text: bytes) -> int:
    """A hex number, strictly: int(x, 16) would also take '0x', '_' and spaces."""
    if not text or not _HEX_DIGITS.issuperset(text):
        raise ValueError(f"{text!r} is not a hex number")
    return int(text, 16)


def _unhex(text: bytes) -> bytes:
    if len(text) % 2 or not _HEX_DIGITS.issuperset(text):
        raise ValueError(f"{text[:32]!r} is not hex-encoded bytes")
    return bytes.fromhex(text.decode("ascii"))


def _split(text: bytes, sep: bytes, what: str) -> tuple[bytes, bytes]:
    head, found, tail = text.partition(sep)
    if not found:
        raise ValueError(f"{what}: no {sep.decode()!r}")
    return head, tail


# -- threads --------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadId:
    """A thread id: `tid` -1 means all threads, 0 any thread."""

    tid: int
    pid: int | None = None

    @classmethod
    def parse(cls, text: bytes) -> ThreadId:
        if text.startswith(b"p"):
            pid, dot, tid = text[1:].partition(b".")
            return cls(_thread_number(tid) if dot else -1, _thread_number(pid))
        return cls(_thread_number(text))

    def encode(self) -> bytes:
        tid = b"-1" if self.tid == -1 else b"%x" % self.tid
        if self.pid is None:
            return tid
        pid = b"-1" if self.pid == -1 else b"%x" % self.pid
        return b"p" + pid + b"." + tid


def _thread_number(text: bytes) -> int:
    return -1 if text == b"-1" else _hex(text)


# -- requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class QuerySupported:
    """``qSupported:f1;f2...``: gdb's features; `f+` -> True, `f-` -> False, `f=v` -> "v"."""

    features: Mapping[str, bool | str] = field(default_factory=dict)


@dataclass(frozen=True)
class StartNoAckMode:
    """``QStartNoAckMode``: reply OK, then call `RspConnection.start_no_ack_mode`."""


@dataclass(frozen=True)
class MustReplyEmpty:
    """``vMustReplyEmpty``: gdb checks that unknown v-packets get an empty reply."""


@dataclass(frozen=True)
class HaltReason:
    """``?``: answer with the stop reply for why the target is stopped."""


@dataclass(frozen=True)
class ReadRegisters:
    """``g``: the register block, x0..x31 then pc."""


@dataclass(frozen=True)
class WriteRegisters:
    """``G``: a register block in `g` layout, as raw little-endian bytes."""

    data: bytes


@dataclass(frozen=True)
class ReadRegister:
    """``p n``: one register by gdb number (see target_xml)."""

    regnum: int


@dataclass(frozen=True)
class WriteRegister:
    """``P n=v``: `data` is the value's target-order bytes."""

    regnum: int
    data: bytes

    @property
    def value(self) -> int:
        return int.from_bytes(self.data, "little")


@dataclass(frozen=True)
class ReadMemory:
    """``m addr,len``.  A shorter reply than asked for is allowed."""

    addr: int
    length: int


@dataclass(frozen=True)
class WriteMemory:
    """``M addr,len:hex`` or ``X addr,len:binary``.  gdb probes X support with len 0."""

    addr: int
    data: bytes


@dataclass(frozen=True)
class Continue:
    """``c [addr]`` or ``C sig[;addr]``: resume; the stop reply comes when it stops."""

    addr: int | None = None
    signal: int | None = None


@dataclass(frozen=True)
class Step:
    """``s [addr]`` or ``S sig[;addr]``.  gdb 13 steps RISC-V with breakpoints instead."""

    addr: int | None = None
    signal: int | None = None


@dataclass(frozen=True)
class ReverseStep:
    """``bs``: step backwards one instruction (ReverseStep+); the stop reply as for a step."""


@dataclass(frozen=True)
class ReverseContinue:
    """``bc``: run backwards to the latest breakpoint hit (ReverseContinue+), or to the start of
    the history (``T05replaylog:begin;``)."""


@dataclass(frozen=True)
class VContQuery:
    """``vCont?``: answer `vcont_reply`."""


@dataclass(frozen=True)
class VContAction:
    """One action of ``vCont``: `kind` is c, s, t (stop) or r (range step).

    ``C sig``/``S sig`` are kind c/s with a `signal`; `step_range` is r's
    [start, end); no `thread` means every thread not named by another action.
    """

    kind: str
    thread: ThreadId | None = None
    signal: int | None = None
    step_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class VCont:
    """``vCont;action[:thread]...``"""

    actions: tuple[VContAction, ...]


class BreakpointType(IntEnum):
    SOFTWARE = 0
    HARDWARE = 1
    WRITE_WATCH = 2
    READ_WATCH = 3
    ACCESS_WATCH = 4


@dataclass(frozen=True)
class Breakpoint:
    """``Z type,addr,kind`` (insert) or ``z type,addr,kind`` (remove).

    For breakpoints `kind` is the instruction length (4 on RV32 without C);
    for watchpoints it is the watched length in bytes.
    """

    insert: bool
    type: BreakpointType
    addr: int
    kind: int


@dataclass(frozen=True)
class Detach:
    """``D`` (or ``D;pid``): remove breakpoints, let the target run, reply OK."""

    pid: int | None = None


@dataclass(frozen=True)
class Kill:
    """``k``: no reply expected.  A kernel cannot be killed; the mux decides what it means."""


@dataclass(frozen=True)
class QueryAttached:
    """``qAttached``: answer `ATTACHED` so gdb detaches rather than kills on quit."""

    pid: int | None = None


@dataclass(frozen=True)
class QueryCurrentThread:
    """``qC``: answer `current_thread`."""


@dataclass(frozen=True)
class QueryThreadInfo:
    """``qfThreadInfo`` (first=True) and ``qsThreadInfo``: answer `thread_list`, then `THREAD_LIST_END`."""

    first: bool


@dataclass(frozen=True)
class SetThread:
    """``H op thread``: op g selects the thread for register/memory access, c for resuming."""

    op: str
    thread: ThreadId


@dataclass(frozen=True)
class ThreadAlive:
    """``T thread``: reply OK if it exists, an error if not."""

    thread: ThreadId


@dataclass(frozen=True)
class QueryThreadExtraInfo:
    """``qThreadExtraInfo,thread``: answer `hex_bytes` of a line that describes the thread."""

    thread: ThreadId


@dataclass(frozen=True)
class ReadThreads:
    """``qXfer:threads:read::offset,length``: answer `xfer_chunk` of the thread list document."""

    offset: int
    length: int


@dataclass(frozen=True)
class ReadFeatures:
    """``qXfer:features:read:annex:offset,length``: answer `xfer_chunk` of the annex."""

    annex: str
    offset: int
    length: int


@dataclass(frozen=True)
class MonitorCommand:
    """``qRcmd,hex``: a ``monitor`` command; answer `console_output` packets, then OK."""

    command: str


@dataclass(frozen=True)
class QueryOffsets:
    """``qOffsets``: section relocation; answer `NO_OFFSETS` (the kernel runs where linked)."""


@dataclass(frozen=True)
class QuerySymbol:
    """``qSymbol::`` (gdb can look up symbols now) or ``qSymbol:value:hexname`` (an answer).

    Reply OK if the stub needs no symbol looked up.
    """

    name: str | None = None
    value: int | None = None


@dataclass(frozen=True)
class SetNonStop:
    """``QNonStop:1`` (non-stop mode: stops are notifications, resumes reply OK) or ``:0``."""

    enabled: bool


@dataclass(frozen=True)
class StopAck:
    """``vStopped``: gdb took the last stop notification; answer the next queued stop, or OK."""


@dataclass(frozen=True)
class CtrlC:
    """``vCtrlC``: gdb's ctrl-C in non-stop mode; answer OK, the stops come as notifications."""


@dataclass(frozen=True)
class QueryTraceStatus:
    """``qTStatus``: reply empty, which says this stub has no tracepoints."""


@dataclass(frozen=True)
class Unsupported:
    """Any other packet: reply empty."""

    payload: bytes


@dataclass(frozen=True)
class MalformedRequest:
    """A known packet with bad syntax: reply with an error."""

    payload: bytes
    reason: str


Request = (
    QuerySupported | StartNoAckMode | MustReplyEmpty | HaltReason | ReadRegisters | WriteRegisters
    | ReadRegister | WriteRegister | ReadMemory | WriteMemory | Continue | Step | ReverseStep
    | ReverseContinue | VContQuery | VCont
    | Breakpoint | Detach | Kill | QueryAttached | QueryCurrentThread | QueryThreadInfo | SetThread
    | ThreadAlive | QueryThreadExtraInfo | ReadThreads | ReadFeatures | MonitorCommand | QueryOffsets
    | QuerySymbol | SetNonStop | StopAck | CtrlC | QueryTraceStatus | Unsupported | MalformedRequest
)


# -- parsing --------------------------------------------------------------------------

_EXACT: dict[bytes, Request] = {
    b"?": HaltReason(),
    b"g": ReadRegisters(),
    b"k": Kill(),
    b"bs": ReverseStep(),
    b"bc": ReverseContinue(),
    b"D": Detach(),
    b"qC": QueryCurrentThread(),
    b"qfThreadInfo": QueryThreadInfo(first=True),
    b"qsThreadInfo": QueryThreadInfo(first=False),
    b"qAttached": QueryAttached(),
    b"qOffsets": QueryOffsets(),
    b"qSupported": QuerySupported(),
    b"qTStatus": QueryTraceStatus(),
    b"vCont?": VContQuery(),
    b"vMustReplyEmpty": MustReplyEmpty(),
    b"vStopped": StopAck(),
    b"vCtrlC": CtrlC(),
    b"QNonStop:0": SetNonStop(False),
    b"QNonStop:1": SetNonStop(True),
    b"QStartNoAckMode": StartNoAckMode(),
}


def _supported(body: bytes) -> Request:
    features: dict[str, bool | str] = {}
    for item in body.decode("ascii", "replace").split(";"):
        name, eq, value = item.partition("=")
        if eq:
            features[name] = value
        elif item.endswith(("+", "-")):
            features[item[:-1]] = item.endswith("+")
    return QuerySupported(features)


def _address_length(text: bytes) -> tuple[int, int]:
    addr, length = _split(text, b",", "address,length")
    return _hex(addr), _hex(length)


def _write_memory(body: bytes, binary: bool) -> Request:
    where, data = _split(body, b":", "memory write")
    addr, length = _address_length(where)
    data = data if binary else _unhex(data)
    if len(data) != length:
        raise ValueError(f"{len(data)} data bytes for length {length}")
    return WriteMemory(addr, data)


def _write_register(body: bytes) -> Request:
    regnum, value = _split(body, b"=", "register write")
    return WriteRegister(_hex(regnum), _unhex(value))


def _resume(cls: type[Continue] | type[Step], body: bytes, with_signal: bool) -> Request:
    if with_signal:
        signal, _, addr = body.partition(b";")
        return cls(_hex(addr) if addr else None, _hex(signal))
    return cls(_hex(body) if body else None)


def _vcont_action(text: bytes) -> VContAction:
    action, colon, thread_text = text.partition(b":")
    thread = ThreadId.parse(thread_text) if colon else None
    letter, arg = action[:1], action[1:]
    if letter in (b"c", b"s", b"t") and not arg:
        return VContAction(letter.decode(), thread)
    if letter in (b"C", b"S"):
        return VContAction(letter.lower().decode(), thread, signal=_hex(arg))
    if letter == b"r":
        start, end = _address_length(arg)
        return VContAction("r", thread, step_range=(start, end))
    raise ValueError(f"vCont action {action!r}")


def _vcont(body: bytes) -> Request:
    if not body.startswith(b";"):
        return Unsupported(b"vCont" + body)
    return VCont(tuple(_vcont_action(a) for a in body[1:].split(b";")))


def _breakpoint(payload: bytes) -> Request:
    fields = payload[1:].split(b";", 1)[0].split(b",")
    if len(fields) != 3:
        raise ValueError("breakpoint needs type,addr,kind")
    kind = _hex(fields[0])
    if kind > max(BreakpointType):
        return Unsupported(payload)
    return Breakpoint(payload[:1] == b"Z", BreakpointType(kind), _hex(fields[1]), _hex(fields[2]))


def _set_thread(body: bytes) -> Request:
    op = body[:1].decode("ascii", "replace")
    if op not in ("g", "c"):
        raise ValueError(f"H op {op!r}")
    return SetThread(op, ThreadId.parse(body[1:]))


def _xfer(body: bytes) -> Request:
    if body.startswith(b"threads:read:"):
        annex, window = _split(body[len(b"threads:read:"):], b":", "qXfer annex")
        if annex:
            raise ValueError("qXfer:threads:read takes no annex")
        return ReadThreads(*_address_length(window))
    if not body.startswith(b"features:read:"):
        return Unsupported(b"qXfer:" + body)
    annex, window = _split(body[len(b"features:read:"):], b":", "qXfer annex")
    offset, length = _address_length(window)
    return ReadFeatures(annex.decode("ascii", "replace"), offset, length)


def _symbol(body: bytes) -> Request:
    value, name = _split(body, b":", "qSymbol")
    return QuerySymbol(_unhex(name).decode("utf-8", "replace") if name else None,
                       _hex(value) if value else None)


#: Prefix -> parser of the rest.  Longer prefixes first where one extends another.
_PREFIXED: tuple[tuple[bytes, Callable[[bytes], Request]], ...] = (
    (b"qSupported:", _supported),
    (b"qXfer:", _xfer),
    (b"qRcmd,", lambda b: MonitorCommand(_unhex(b).decode("utf-8", "replace"))),
    (b"qSymbol:", _symbol),
    (b"qThreadExtraInfo,", lambda b: QueryThreadExtraInfo(ThreadId.parse(b))),
    (b"qAttached:", lambda b: QueryAttached(_hex(b))),
    (b"vCont", _vcont),
    (b"D;", lambda b: Detach(_hex(b))),
)

#: The first bytes of _PREFIXED's prefixes: a packet starting otherwise skips them (an `m` is the
#: packet gdb sends most).
_PREFIX_FIRST = frozenset(prefix[:1] for prefix, _ in _PREFIXED)

#: First byte -> parser of the rest, for the one-letter packets.
_LETTERS: dict[bytes, Callable[[bytes], Request]] = {
    b"G": lambda b: WriteRegisters(_unhex(b)),
    b"p": lambda b: ReadRegister(_hex(b)),
    b"P": _write_register,
    b"m": lambda b: ReadMemory(*_address_length(b)),
    b"M": lambda b: _write_memory(b, binary=False),
    b"X": lambda b: _write_memory(b, binary=True),
    b"c": lambda b: _resume(Continue, b, with_signal=False),
    b"C": lambda b: _resume(Continue, b, with_signal=True),
    b"s": lambda b: _resume(Step, b, with_signal=False),
    b"S": lambda b: _resume(Step, b, with_signal=True),
    b"H": _set_thread,
    b"T": lambda b: ThreadAlive(ThreadId.parse(b)),
}


def parse_request(payload: bytes) -> Request:
    """The request a packet payload (as decoded by `rsp`) stands for.  Never raises."""
    exact = _EXACT.get(payload)
    if exact is not None:
        return exact
    try:
        if payload[:1] in _PREFIX_FIRST:
            for prefix, parse in _PREFIXED:
                if payload.startswith(prefix):
                    return parse(payload[len(prefix):])
        if payload[:1] in (b"Z", b"z"):
            return _breakpoint(payload)
        letter = _LETTERS.get(payload[:1])
        if letter is not None:
            return letter(payload[1:])
    except ValueError as e:
        return MalformedRequest(payload, str(e))
    return Unsupported(payload)


# -- replies --------------------------------------------------------------------------

OK = b"OK"
#: The empty reply: "packet not supported".
EMPTY = b""
#: qAttached: the target existed before gdb came, so quitting gdb detaches.
ATTACHED = b"1"
THREAD_LIST_END = b"l"
NO_OFFSETS = b"Text=0;Data=0;Bss=0"


def error(code: int) -> bytes:
    """``Exx``; gdb only reports the number, so the code is a hint for logs."""
    return b"E%02x" % (code & 0xFF)


@dataclass(frozen=True)
class Feature:
    """One thing a stub implements, as gdb learns of it: its qSupported entry, its vCont actions."""

    #: The qSupported entry that announces it ("swbreak+"); None if gdb needs no announcement.
    supported: bytes | None = None
    #: The vCont actions it brings ("c", "C").
    vcont: tuple[str, ...] = ()
    #: Only on a transport that loses no packets (no-ack mode: over UDP the acks recover losses).
    reliable_only: bool = False


def supported_reply(packet_size: int, features: Sequence[Feature], *, reliable: bool = True) -> bytes:
    """The qSupported answer for a stub that implements `features`.

    `packet_size` must not exceed what the codec accepts (gdb keeps whole
    frames below it).
    """
    entries = [b"PacketSize=%x" % packet_size]
    entries += [f.supported for f in features
                if f.supported is not None and (reliable or not f.reliable_only)]
    return b";".join(entries)


def vcont_reply(features: Sequence[Feature]) -> bytes:
    """The vCont? answer: every action of `features`."""
    return b"vCont" + b"".join(b";" + action.encode() for f in features for action in f.vcont)


def hex_bytes(data: bytes) -> bytes:
    """Memory contents for an ``m`` reply."""
    return data.hex().encode()


def register_value(value: int | None, size: int = 4) -> bytes:
    """One register in target order; None (unreadable) is sent as ``xx`` per byte."""
    if value is None:
        return b"xx" * size
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex().encode()


def registers_reply(values: Sequence[int | None]) -> bytes:
    """A ``g`` reply from 32-bit values in register-number order."""
    known = [v for v in values if v is not None]
    if len(known) == len(values):
        return struct.pack(f"<{len(known)}I", *(v & 0xFFFFFFFF for v in known)).hex().encode()
    return b"".join(register_value(v) for v in values)


def register_block(data: bytes, size: int = 4) -> list[int]:
    """The values in a ``G`` block (`WriteRegisters.data`), in register-number order."""
    if len(data) % size:
        raise ValueError(f"register block of {len(data)} bytes is not whole registers")
    return [int.from_bytes(data[i:i + size], "little") for i in range(0, len(data), size)]


class StopKind(Enum):
    SOFTWARE_BREAK = "swbreak"
    HARDWARE_BREAK = "hwbreak"
    WRITE_WATCH = "watch"
    READ_WATCH = "rwatch"
    ACCESS_WATCH = "awatch"


@dataclass(frozen=True)
class StopReason:
    """Why a ``T`` stop reply stopped; watchpoints carry the data address."""

    kind: StopKind
    address: int | None = None


_EXPEDITED_PREFIX = [b"%02x:" % regnum for regnum in range(256)]
#: The stop reply's registers when they are gdb's `g` block, x0..x31 and pc (0x20), in order: the
#: common case, filled in one formatting.
_G_COUNT = 33
_G_TEMPLATE = b"".join(b"%02x:%%s;" % regnum for regnum in range(_G_COUNT))
_G_STRUCT = struct.Struct(f"<{_G_COUNT}I")
_G_HEX = struct.Struct("8s" * _G_COUNT)   # the hex of the packed block, cut into registers
_G_NUMBERS = list(range(_G_COUNT))


def stop_reply(signal: int = SIGTRAP, *, reason: StopReason | None = None,
               registers: Mapping[int, int] | None = None, thread: ThreadId | None = None) -> bytes:
    """``TSSreason:;NN:value;...thread:id;``.

    Expedite pc (0x20), sp (2) and ra (1) at least: gdb reads them before
    anything else.  Expediting all 33 `g` registers saves gdb a ``g`` after
    every stop.  Every RV32 register worth expediting is 32 bits wide.
    """
    out = bytearray(b"T%02x" % signal)
    if reason is not None:
        address = b"" if reason.address is None else b"%x" % reason.address
        out += reason.kind.value.encode() + b":" + address + b";"
    if registers:
        # Packed and hex-encoded at once: a stop reply is on the critical path of every step.
        values = [v & 0xFFFFFFFF for v in registers.values()]
        if len(values) == _G_COUNT and list(registers) == _G_NUMBERS:
            out += _G_TEMPLATE % _G_HEX.unpack(_G_STRUCT.pack(*values).hex().encode())
        else:
            hexed = struct.pack(f"<{len(values)}I", *values).hex()
            for i, regnum in enumerate(registers):
                out += _EXPEDITED_PREFIX[regnum] if regnum < 256 else b"%02x:" % regnum
                out += hexed[8 * i: 8 * i + 8].encode() + b";"
    if thread is not None:
        out += b"thread:" + thread.encode() + b";"
    return bytes(out)


def signal_stop(signal: int = SIGTRAP) -> bytes:
    """``SSS``: a stop reply with nothing but the signal."""
    return b"S%02x" % signal


def exited(status: int) -> bytes:
    """``Wxx``: the program exited (gdb then forgets the target)."""
    return b"W%02x" % (status & 0xFF)


def terminated(signal: int) -> bytes:
    """``Xxx``: the program was ended by a signal."""
    return b"X%02x" % signal


def console_output(text: bytes) -> bytes:
    """``O hex``: text for gdb's console, while running or during ``monitor``."""
    return b"O" + text.hex().encode()


def thread_list(threads: Sequence[ThreadId]) -> bytes:
    """One qfThreadInfo/qsThreadInfo answer: ``m id,id...``."""
    return b"m" + b",".join(t.encode() for t in threads)


def current_thread(thread: ThreadId) -> bytes:
    return b"QC" + thread.encode()


def xfer_chunk(document: bytes, offset: int, length: int) -> bytes:
    """A qXfer read answer: ``m`` + data if more follows, ``l`` + data for the last piece.

    `length` counts data bytes before escaping; the codec escapes them.
    """
    piece = document[offset:offset + length]
    more = offset + len(piece) < len(document)
    return (b"m" if more else b"l") + piece
