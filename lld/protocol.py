"""The lld request-reply protocol: codes, request and reply dataclasses, payload encodings.

Every request is one frame from the mux to one node's lld; every reply is one
frame back, carrying the request's node, seq and code.  lld never sends
anything unasked.  All integers are big-endian; memory contents are raw bytes
in address order.  docs/lld-protocol.md is the reference; this module is its
executable form, and both ends (lld and the mux) use it.

Exactly-once: every request that changes a node names the node's change
counter `gen` it was computed against (its *guard*).  lld applies it only if
the node's gen still has that value, and each applied change advances gen;
so a repeated, late or reordered request can never act twice.  A repeat of
the very change that produced the current gen is recognised and answered
as a duplicate (flag DUPLICATE), so a client whose reply was lost learns that
its request did take effect.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from lld.codec import MAX_PAYLOAD, VERSION

LLD_VERSION = 1

#: Largest memory transfer (READ_MEM length, WRITE_MEM data) in one request: large, because a
#: round trip costs far more than the bytes on an unthrottled line (a client on a slow line asks
#: for less).
MAX_DATA = 16384
MAX_BREAKPOINTS = 64
MAX_WATCHPOINTS = 16
#: Longest watched range (it may span two pages).
MAX_WATCH_LENGTH = 4096
#: Most registers in one READ_REGS or WRITE_REGS request.
MAX_REGS = 64

#: Guard value meaning "whatever the node's gen is" (only for idempotent requests).
ANY_GEN = 0xFFFFFFFF

# -- request codes -------------------------------------------------------------

DESCRIBE = 0x01
STATUS = 0x02
STOP = 0x03
RESUME = 0x04
STEP = 0x05
READ_REGS = 0x06
WRITE_REGS = 0x07
READ_MEM = 0x08
WRITE_MEM = 0x09
SET_BREAKPOINT = 0x0A
CLEAR_BREAKPOINT = 0x0B
LIST_BREAKPOINTS = 0x0C
SET_WATCHPOINT = 0x0D
CLEAR_WATCHPOINT = 0x0E
LIST_WATCHPOINTS = 0x0F
CLEAR_ALL = 0x10
TRANSLATE = 0x11
REVERSE = 0x12

# -- reply status (error) codes ----------------------------------------------------

OK = 0
E_BAD_REQUEST = 1     # unknown request code
E_BAD_PAYLOAD = 2     # payload malformed for its request (detail: ASCII text)
E_NO_NODE = 3         # the frame names a node this machine does not have (sent by the king)
E_STALE = 4           # the guard is not the node's gen: nothing done (detail: Status)
E_STATE = 5           # the node is not in a state that allows this (detail: Status)
E_UNMAPPED = 6        # a virtual address does not translate (detail: address, exception cause)
E_NOT_RAM = 7         # a physical address is not RAM (detail: address)
E_BAD_REGISTER = 8    # unknown or unwritable register (detail: register number)
E_TOO_LARGE = 9       # length over MAX_DATA / MAX_WATCH_LENGTH / MAX_REGS
E_LIMIT = 10          # too many breakpoints or watchpoints
E_VERSION = 11        # frame version not supported (detail: the supported version, one byte)
E_ALIGN = 12          # misaligned breakpoint address or pc value (detail: the value)
E_BAD_GUARD = 13      # ANY_GEN used on a request that must name a stop
E_INTERNAL = 14       # lld failed serving the request (a bug in lld; detail: text)
E_CODE_CHANGED = 15   # counted steps' code check failed: the code at pc changed (detail: text); nothing done

ERROR_NAMES = {
    OK: "ok", E_BAD_REQUEST: "bad request", E_BAD_PAYLOAD: "bad payload", E_NO_NODE: "no such node",
    E_STALE: "stale", E_STATE: "wrong state", E_UNMAPPED: "unmapped", E_NOT_RAM: "not RAM",
    E_BAD_REGISTER: "bad register", E_TOO_LARGE: "too large", E_LIMIT: "limit reached",
    E_VERSION: "unsupported version", E_ALIGN: "misaligned", E_BAD_GUARD: "guard required",
    E_INTERNAL: "internal error", E_CODE_CHANGED: "code changed",
}

# -- node states and stop reasons --------------------------------------------

STATE_HELD = 0
STATE_RUNNING = 1
STATE_STOPPED = 2
STATE_NAMES = {STATE_HELD: "held", STATE_RUNNING: "running", STATE_STOPPED: "stopped"}

REASON_NONE = 0
REASON_BREAKPOINT = 1
REASON_STEP = 2
REASON_WATCHPOINT = 3
REASON_REQUESTED = 4
REASON_TRAP_LOOP = 5
REASON_PANIC = 6
REASON_HOST = 7   # stopped by the simulator for a reason outside lld (e.g. the tohost monitor)
REASON_NAMES = {
    REASON_NONE: "none", REASON_BREAKPOINT: "breakpoint", REASON_STEP: "step",
    REASON_WATCHPOINT: "watchpoint", REASON_REQUESTED: "requested", REASON_TRAP_LOOP: "trap loop",
    REASON_PANIC: "panic", REASON_HOST: "host",
}

# Status flags
FLAG_DUPLICATE = 0x01   # this answers a repeat of the change that made the current gen
FLAG_WAITING = 0x02     # the hart sleeps in WFI
FLAG_WATCH_READ = 0x04  # the watchpoint hit was a read
FLAG_WATCH_WRITE = 0x08  # the watchpoint hit was a write (AMOs report as writes)
FLAG_HISTORY_BEGIN = 0x10  # a REVERSE stopped at the start of the machine's history (nothing earlier)
FLAG_PAST = 0x20       # the machine shows a state of its history (after REVERSE), not the present
FLAG_FUTURE_DISCARDED = 0x40  # this change, made in the past, discarded the recorded future
FLAG_ACCESSOR = 0x80   # in the past: this node made the access the last watchpoint stop found

# -- address spaces, breakpoint and watchpoint kinds, registers ---------------------

SPACE_PHYS = 0   # physical address: RAM only
SPACE_VIRT = 1   # the node's current translation, as its next data access would see it
SPACE_ROOT = 2   # the Sv32 tables of a given satp value, seen as S mode with SUM and MXR

BP_NORMAL = 0
BP_PANIC = 1     # a stop here reports REASON_PANIC (the kernel's panic path)

WATCH_READ = 1
WATCH_WRITE = 2
WATCH_ACCESS = 3

ACCESS_READ = 0
ACCESS_WRITE = 1
ACCESS_EXEC = 2

REG_PC = 32
REG_PRIV = 33
REG_CSR_BASE = 0x1000     # CSR n is register REG_CSR_BASE + n
#: Read-only pseudo-registers: the node's memory reference counters (the machine counts them per
#: node; the paper's NUMA costs made them worth watching), each a 64-bit count read as a low and a
#: high half (REG_X, REG_X + 1), like cycle and cycleh.  Read both in one READ_REGS: they are taken
#: at the same round boundary.
REG_LOCAL_REFS = 0x2000       # data references to the node's own RAM
REG_REMOTE_REFS = 0x2002      # data references to another node's RAM, through the switch
REG_REMOTE_FETCHES = 0x2004   # instruction fetches from another node's RAM
COUNTER_REGS = (REG_LOCAL_REFS, REG_LOCAL_REFS + 1, REG_REMOTE_REFS, REG_REMOTE_REFS + 1,
                REG_REMOTE_FETCHES, REG_REMOTE_FETCHES + 1)
#: The registers READ_REGS returns when it names none: x0-x31, pc, priv.
GENERAL_REGS = tuple(range(34))

STEP_TAKE_INTERRUPTS = 0x01
#: STEP, STATUS and RESUME flag: a stopped node's reply carries x0-x31 and pc after the status, and
#: the code around pc after them (when pc's page is mapped).  A RESUME's reply then waits for the
#: next round boundary, so that it says how the node's first round went.
EXPEDITE = 0x02
#: STEP, STATUS and RESUME flag, with EXPEDITE: the request ends with memory ranges to read (a
#: count u8, then each as READ_MEM's payload), and a stopped node's reply carries them after the
#: code: what the debugger read at its last stop, read again at this one in the same round trip.
PREFETCH = 0x04
#: STEP and RESUME flag: a count u16 follows the flags byte.  STEP makes that many steps (1 when
#: the flag is clear), each as one STEP would; RESUME makes that many masked steps first.  Both
#: stop early at a step that stops for a reason of its own (a watchpoint, a trap loop).
STEPS = 0x08
#: STEP and RESUME flag, with STEPS: a u32 follows the count, the CRC-32 of the code window at pc
#: as an expedited status gave it (`Status.code_crc`): the steps are made only if that code is
#: unchanged (E_CODE_CHANGED otherwise, and nothing is done).  A debugger that answered the steps
#: from that code knows they are the steps it answered.
CODE_CHECK = 0x10
MAX_PREFETCH = 16            # ranges a request
MAX_PREFETCH_BYTES = 2048    # bytes in all
#: How many registers an expedited status carries: x0-x31 and pc, gdb's `g` block.
EXPEDITED_REGS = 33
#: The code an expedited status carries: the aligned CODE_WINDOW bytes that hold pc.
CODE_WINDOW = 256
#: Code flags of an expedited status: every instruction in pc's page is fetched without a trap
#: or a side effect, so what one that touches only registers does is the ISA's alone.
CODE_PLAIN = 0x01


@dataclass(frozen=True)
class RefCounters:
    """A node's memory reference counters, from READ_REGS of COUNTER_REGS."""

    local: int
    remote: int
    remote_fetches: int

    @classmethod
    def from_values(cls, values: list[int]) -> RefCounters:
        lo_hi = [values[i] | values[i + 1] << 32 for i in range(0, len(COUNTER_REGS), 2)]
        return cls(*lo_hi)


class PayloadError(ValueError):
    """A payload that does not decode as its request or reply says."""


class _Reader:
    """Consumes a payload front to back; every shortfall is a PayloadError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        s = struct.Struct(">" + fmt)
        if self.pos + s.size > len(self.data):
            raise PayloadError(f"payload too short: wanted {s.size} bytes at offset {self.pos}")
        values = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return values

    def one(self, fmt: str) -> int:
        return self.take(fmt)[0]

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def raw(self, length: int) -> bytes:
        if self.pos + length > len(self.data):
            raise PayloadError(f"payload too short: wanted {length} bytes at offset {self.pos}")
        out = self.data[self.pos: self.pos + length]
        self.pos += length
        return out

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def done(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(f"{len(self.data) - self.pos} unexpected bytes at the end of the payload")


def _expedited(flags: int, expedite: bool, prefetch: tuple[ReadMem, ...], steps: int | None = None,
               code_crc: int | None = None) -> bytes:
    """A request's flags byte, with EXPEDITE (and PREFETCH) when asked, then its step count
    (with STEPS, when `steps` is given) and code check (CODE_CHECK), and its prefetch list."""
    count = b""
    if steps is not None:
        if not 1 <= steps <= 0xFFFF:
            raise ValueError(f"a step count is 1 to 65535, not {steps}")
        flags |= STEPS
        count = struct.pack(">H", steps)
        if code_crc is not None:
            flags |= CODE_CHECK
            count += struct.pack(">I", _u32(code_crc, "code CRC"))
    elif code_crc is not None:
        raise ValueError("a code check goes with a step count")
    if not expedite:
        return bytes((flags,)) + count
    if not prefetch:
        return bytes((flags | EXPEDITE,)) + count
    if len(prefetch) > MAX_PREFETCH or sum(r.length for r in prefetch) > MAX_PREFETCH_BYTES:
        raise ValueError(f"at most {MAX_PREFETCH} ranges and {MAX_PREFETCH_BYTES} bytes to prefetch")
    return (bytes((flags | EXPEDITE | PREFETCH,)) + count + bytes((len(prefetch),))
            + b"".join(r.encode() for r in prefetch))


def _decode_steps(r: _Reader, flags: int) -> tuple[int | None, int | None]:
    """The step count and code check (None, None without STEPS)."""
    if not flags & STEPS:
        if flags & CODE_CHECK:
            raise PayloadError("CODE_CHECK needs STEPS")
        return None, None
    count = r.one("H")
    if count == 0:
        raise PayloadError("a step count is 1 to 65535, not 0")
    return count, r.one("I") if flags & CODE_CHECK else None


def _decode_prefetch(r: _Reader, flags: int) -> tuple[ReadMem, ...]:
    if not flags & PREFETCH:
        return ()
    if not flags & EXPEDITE:
        raise PayloadError("PREFETCH needs EXPEDITE")
    count = r.one("B")
    if not 0 < count <= MAX_PREFETCH:
        raise PayloadError(f"prefetch 1 to {MAX_PREFETCH} ranges, not {count}")
    ranges = tuple(ReadMem(*r.take("BIHI")) for _ in range(count))
    if sum(m.length for m in ranges) > MAX_PREFETCH_BYTES:
        raise PayloadError(f"prefetch at most {MAX_PREFETCH_BYTES} bytes")
    return ranges


def _u32(value: int, what: str) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{what} {value} does not fit 32 bits")
    return value


# ==============================================================================
# Requests
# ==============================================================================


@dataclass(frozen=True)
class Request:
    """Base of all requests.  `code` identifies it on the wire.

    `mutating` requests change the node and carry a guard; the others are
    reads, safe to repeat any number of times.  `needs_stop` requests must
    name the node's gen: ANY_GEN is refused for them, because only the gen
    tells a repeat from a new request when the request is not idempotent.
    """

    code: ClassVar[int] = 0
    mutating: ClassVar[bool] = False
    needs_stop: ClassVar[bool] = False

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, payload: bytes) -> Request:
        _Reader(payload).done()
        return cls()


@dataclass(frozen=True)
class Change(Request):
    """A request that changes the node; `guard` is the node's gen it was computed against."""

    mutating: ClassVar[bool] = True
    guard: int = ANY_GEN


@dataclass(frozen=True)
class Describe(Request):
    code: ClassVar[int] = DESCRIBE


@dataclass(frozen=True)
class GetStatus(Request):
    """The node's status; with `expedite`, a stopped node's registers too (one round trip, not two)."""

    code: ClassVar[int] = STATUS
    expedite: bool = False
    #: Memory to read if the node is stopped, its bytes in the reply (PREFETCH; needs expedite).
    prefetch: tuple[ReadMem, ...] = ()

    def encode(self) -> bytes:
        return _expedited(0, True, self.prefetch) if self.expedite else b""

    @classmethod
    def decode(cls, payload: bytes) -> GetStatus:
        if not payload:
            return cls()
        r = _Reader(payload)
        flags = r.one("B")
        if flags & ~(EXPEDITE | PREFETCH):
            raise PayloadError(f"unknown status flags {flags:#x}")
        prefetch = _decode_prefetch(r, flags)
        r.done()
        return cls(bool(flags & EXPEDITE), prefetch)


@dataclass(frozen=True)
class Stop(Change):
    """Stop a running node (reason REQUESTED).  A stopped or held node is left as it is."""

    code: ClassVar[int] = STOP
    guard: int = ANY_GEN

    def encode(self) -> bytes:
        return struct.pack(">I", _u32(self.guard, "guard"))

    @classmethod
    def decode(cls, payload: bytes) -> Stop:
        r = _Reader(payload)
        guard = r.one("I")
        r.done()
        return cls(guard)


@dataclass(frozen=True)
class Resume(Change):
    """Let a stopped node run.  With `expedite`, lld answers at the next round boundary, once
    the node has run a round: a continue that ends a few instructions on (at a breakpoint)
    has its stop, registers and code in the reply, one round trip instead of two.  With
    `steps`, the node first makes that many steps with interrupts masked, as STEP would: a
    debugger that answered gdb's step over a breakpoint itself makes it with the continue."""

    code: ClassVar[int] = RESUME
    needs_stop: ClassVar[bool] = True
    guard: int = 0
    expedite: bool = False
    prefetch: tuple[ReadMem, ...] = ()
    steps: int | None = None
    #: With steps: make them only if the code window at pc still has this CRC-32 (CODE_CHECK).
    code_crc: int | None = None

    def encode(self) -> bytes:
        guard = struct.pack(">I", _u32(self.guard, "guard"))
        if not self.expedite and self.steps is None and self.code_crc is None:
            return guard
        return guard + _expedited(0, self.expedite, self.prefetch, self.steps, self.code_crc)

    @classmethod
    def decode(cls, payload: bytes) -> Resume:
        r = _Reader(payload)
        guard = r.one("I")
        flags = r.one("B") if len(payload) > 4 else 0
        if flags & ~(EXPEDITE | PREFETCH | STEPS | CODE_CHECK):
            raise PayloadError(f"unknown resume flags {flags:#x}")
        steps, code_crc = _decode_steps(r, flags)
        prefetch = _decode_prefetch(r, flags)
        r.done()
        return cls(guard, bool(flags & EXPEDITE), prefetch, steps, code_crc)


@dataclass(frozen=True)
class Step(Change):
    """Execute one instruction, or enter one interrupt handler if interrupts are taken; `count`
    of them, stopping early at a step that stops for a reason of its own."""

    code: ClassVar[int] = STEP
    needs_stop: ClassVar[bool] = True
    guard: int = 0
    take_interrupts: bool = False
    #: Reply with the registers after the status: the step's result in one round trip.
    expedite: bool = False
    prefetch: tuple[ReadMem, ...] = ()
    count: int = 1
    #: Make the steps only if the code window at pc still has this CRC-32 (CODE_CHECK; it sends the count).
    code_crc: int | None = None

    def encode(self) -> bytes:
        flags = STEP_TAKE_INTERRUPTS if self.take_interrupts else 0
        counted = self.count != 1 or self.code_crc is not None
        return struct.pack(">I", _u32(self.guard, "guard")) + _expedited(
            flags, self.expedite, self.prefetch, self.count if counted else None, self.code_crc)

    @classmethod
    def decode(cls, payload: bytes) -> Step:
        r = _Reader(payload)
        guard, flags = r.take("IB")
        if flags & ~(STEP_TAKE_INTERRUPTS | EXPEDITE | PREFETCH | STEPS | CODE_CHECK):
            raise PayloadError(f"unknown step flags {flags:#x}")
        count, code_crc = _decode_steps(r, flags)
        prefetch = _decode_prefetch(r, flags)
        r.done()
        return cls(guard, bool(flags & STEP_TAKE_INTERRUPTS), bool(flags & EXPEDITE), prefetch,
                   1 if count is None else count, code_crc)


@dataclass(frozen=True)
class ReadRegs(Request):
    code: ClassVar[int] = READ_REGS
    regs: tuple[int, ...] = ()

    def encode(self) -> bytes:
        if len(self.regs) > MAX_REGS:
            raise ValueError(f"at most {MAX_REGS} registers a request")
        return struct.pack(f">B{len(self.regs)}H", len(self.regs), *self.regs)

    @classmethod
    def decode(cls, payload: bytes) -> ReadRegs:
        r = _Reader(payload)
        count = r.one("B")
        regs = r.take(f"{count}H")
        r.done()
        return cls(tuple(regs))


@dataclass(frozen=True)
class WriteRegs(Change):
    """Write registers of a stopped node, all or none."""

    code: ClassVar[int] = WRITE_REGS
    needs_stop: ClassVar[bool] = True
    guard: int = 0
    values: tuple[tuple[int, int], ...] = ()

    def encode(self) -> bytes:
        if len(self.values) > MAX_REGS:
            raise ValueError(f"at most {MAX_REGS} registers a request")
        out = struct.pack(">IB", _u32(self.guard, "guard"), len(self.values))
        for reg, value in self.values:
            out += struct.pack(">HI", reg, _u32(value, "register value"))
        return out

    @classmethod
    def decode(cls, payload: bytes) -> WriteRegs:
        r = _Reader(payload)
        guard, count = r.take("IB")
        values = tuple((r.one("H"), r.one("I")) for _ in range(count))
        r.done()
        return cls(guard, values)


@dataclass(frozen=True)
class ReadMem(Request):
    code: ClassVar[int] = READ_MEM
    space: int = SPACE_PHYS
    addr: int = 0
    length: int = 0
    root: int = 0

    def encode(self) -> bytes:
        return struct.pack(">BIHI", self.space, _u32(self.addr, "address"), self.length,
                           _u32(self.root, "root"))

    @classmethod
    def decode(cls, payload: bytes) -> ReadMem:
        r = _Reader(payload)
        space, addr, length, root = r.take("BIHI")
        r.done()
        return cls(space, addr, length, root)


@dataclass(frozen=True)
class WriteMem(Change):
    """Write bytes; idempotent, so ANY_GEN is allowed (but then not safe against reordering)."""

    code: ClassVar[int] = WRITE_MEM
    guard: int = ANY_GEN
    space: int = SPACE_PHYS
    addr: int = 0
    data: bytes = b""
    root: int = 0

    def encode(self) -> bytes:
        return struct.pack(">IBII", _u32(self.guard, "guard"), self.space, _u32(self.addr, "address"),
                           _u32(self.root, "root")) + self.data

    @classmethod
    def decode(cls, payload: bytes) -> WriteMem:
        r = _Reader(payload)
        guard, space, addr, root = r.take("IBII")
        return cls(guard, space, addr, r.rest(), root)


@dataclass(frozen=True)
class SetBreakpoint(Change):
    code: ClassVar[int] = SET_BREAKPOINT
    guard: int = ANY_GEN
    addr: int = 0
    kind: int = BP_NORMAL

    def encode(self) -> bytes:
        return struct.pack(">IIB", _u32(self.guard, "guard"), _u32(self.addr, "address"), self.kind)

    @classmethod
    def decode(cls, payload: bytes) -> SetBreakpoint:
        r = _Reader(payload)
        guard, addr, kind = r.take("IIB")
        r.done()
        return cls(guard, addr, kind)


@dataclass(frozen=True)
class ClearBreakpoint(Change):
    code: ClassVar[int] = CLEAR_BREAKPOINT
    guard: int = ANY_GEN
    addr: int = 0

    def encode(self) -> bytes:
        return struct.pack(">II", _u32(self.guard, "guard"), _u32(self.addr, "address"))

    @classmethod
    def decode(cls, payload: bytes) -> ClearBreakpoint:
        r = _Reader(payload)
        guard, addr = r.take("II")
        r.done()
        return cls(guard, addr)


@dataclass(frozen=True)
class ListBreakpoints(Request):
    code: ClassVar[int] = LIST_BREAKPOINTS


@dataclass(frozen=True)
class SetWatchpoint(Change):
    code: ClassVar[int] = SET_WATCHPOINT
    guard: int = ANY_GEN
    space: int = SPACE_VIRT
    addr: int = 0
    length: int = 4
    kind: int = WATCH_WRITE
    root: int = 0

    def encode(self) -> bytes:
        return struct.pack(">IBIHBI", _u32(self.guard, "guard"), self.space, _u32(self.addr, "address"),
                           self.length, self.kind, _u32(self.root, "root"))

    @classmethod
    def decode(cls, payload: bytes) -> SetWatchpoint:
        r = _Reader(payload)
        guard, space, addr, length, kind, root = r.take("IBIHBI")
        r.done()
        return cls(guard, space, addr, length, kind, root)


@dataclass(frozen=True)
class ClearWatchpoint(Change):
    code: ClassVar[int] = CLEAR_WATCHPOINT
    guard: int = ANY_GEN
    addr: int = 0
    length: int = 4
    kind: int = WATCH_WRITE

    def encode(self) -> bytes:
        return struct.pack(">IIHB", _u32(self.guard, "guard"), _u32(self.addr, "address"),
                           self.length, self.kind)

    @classmethod
    def decode(cls, payload: bytes) -> ClearWatchpoint:
        r = _Reader(payload)
        guard, addr, length, kind = r.take("IIHB")
        r.done()
        return cls(guard, addr, length, kind)


@dataclass(frozen=True)
class ListWatchpoints(Request):
    code: ClassVar[int] = LIST_WATCHPOINTS


@dataclass(frozen=True)
class ClearAll(Change):
    """Remove every breakpoint and watchpoint of the node (a fresh debugger's clean slate)."""

    code: ClassVar[int] = CLEAR_ALL
    guard: int = ANY_GEN

    def encode(self) -> bytes:
        return struct.pack(">I", _u32(self.guard, "guard"))

    @classmethod
    def decode(cls, payload: bytes) -> ClearAll:
        r = _Reader(payload)
        guard = r.one("I")
        r.done()
        return cls(guard)


@dataclass(frozen=True)
class Translate(Request):
    """Where a virtual address leads, without side effects (SPACE_VIRT or SPACE_ROOT)."""

    code: ClassVar[int] = TRANSLATE
    space: int = SPACE_VIRT
    addr: int = 0
    access: int = ACCESS_READ
    root: int = 0

    def encode(self) -> bytes:
        return struct.pack(">BIBI", self.space, _u32(self.addr, "address"), self.access,
                           _u32(self.root, "root"))

    @classmethod
    def decode(cls, payload: bytes) -> Translate:
        r = _Reader(payload)
        space, addr, access, root = r.take("BIBI")
        r.done()
        return cls(space, addr, access, root)


#: REVERSE operations.
REVERSE_STEP = 0        # back to the state before the node's last instruction (or trap entry)
REVERSE_CONTINUE = 1    # back to the node's latest breakpoint hit, or the start of history


@dataclass(frozen=True)
class Reverse(Change):
    """Move the whole machine back in its history, as node `node` sees it (docs/lld-protocol.md)."""

    code: ClassVar[int] = REVERSE
    needs_stop: ClassVar[bool] = True
    guard: int = 0
    op: int = REVERSE_STEP
    expedite: bool = False

    def encode(self) -> bytes:
        return struct.pack(">IBB", _u32(self.guard, "guard"), self.op, 2 if self.expedite else 0)

    @classmethod
    def decode(cls, payload: bytes) -> Reverse:
        r = _Reader(payload)
        guard, op, flags = r.take("IBB")
        r.done()
        if op not in (REVERSE_STEP, REVERSE_CONTINUE):
            raise PayloadError(f"unknown reverse operation {op}")
        return cls(guard, op, bool(flags & 2))


REQUEST_TYPES: dict[int, type[Request]] = {
    cls.code: cls
    for cls in (Describe, GetStatus, Stop, Resume, Step, ReadRegs, WriteRegs, ReadMem, WriteMem,
                SetBreakpoint, ClearBreakpoint, ListBreakpoints, SetWatchpoint, ClearWatchpoint,
                ListWatchpoints, ClearAll, Translate, Reverse)
}


def decode_request(code: int, payload: bytes) -> Request:
    """The request a frame carries; KeyError for an unknown code, PayloadError for a bad payload."""
    cls = REQUEST_TYPES[code]
    try:
        return cls.decode(payload)
    except (struct.error, ValueError) as e:
        if isinstance(e, PayloadError):
            raise
        raise PayloadError(str(e)) from e


# ==============================================================================
# Replies
# ==============================================================================


@dataclass(frozen=True)
class Fetched:
    """One prefetched range in an expedited status: its bytes, or None where lld could not read it."""

    space: int
    addr: int
    root: int
    length: int
    data: bytes | None

    def encode(self) -> bytes:
        readable = self.data is not None
        head = struct.pack(">BIIBH", self.space, self.addr, self.root, readable, self.length)
        return head + (self.data or b"")

    @classmethod
    def read(cls, r: _Reader) -> Fetched:
        space, addr, root, readable, length = r.take("BIIBH")
        return cls(space, addr, root, length, r.raw(length) if readable else None)


@dataclass(frozen=True)
class Status:
    """A node's run state as lld sees it: the answer to STATUS and to every change."""

    state: int
    reason: int
    priv: int
    flags: int
    stops: int
    gen: int
    pc: int
    data_addr: int
    cycles: int
    instret: int
    #: x0-x31 and pc, when the request asked to expedite them and the node is stopped.
    registers: tuple[int, ...] | None = None
    #: With the registers, the CODE_WINDOW bytes at `code_addr` (pc rounded down), if readable.
    code: bytes | None = None
    #: With the registers, the ranges the request asked to prefetch, read at the stop.
    memory: tuple[Fetched, ...] = ()
    #: With the registers, what lld knows of the code at pc (CODE_PLAIN).
    code_flags: int = 0
    #: With CODE_PLAIN, the CRC-32 of `code`: what a code check (CODE_CHECK) names.
    code_crc: int = 0

    _S: ClassVar[struct.Struct] = struct.Struct(">BBBBIIIIQQ")
    _EXPEDITED: ClassVar[struct.Struct] = struct.Struct(f">{EXPEDITED_REGS}I")

    def encode(self) -> bytes:
        head = self._S.pack(self.state, self.reason, self.priv, self.flags, self.stops, self.gen,
                            self.pc, self.data_addr, self.cycles, self.instret)
        if self.registers is None:
            return head
        code = self.code or b""
        return b"".join((head, self._EXPEDITED.pack(*self.registers), struct.pack(">H", len(code)), code,
                         bytes((self.code_flags,)),
                         struct.pack(">I", self.code_crc) if self.code_flags & CODE_PLAIN else b"",
                         bytes((len(self.memory),)), *(fetched.encode() for fetched in self.memory)))

    @classmethod
    def decode(cls, payload: bytes) -> Status:
        r = _Reader(payload)
        state, reason, priv, flags, stops, gen, pc, data_addr, cycles, instret = r.take("BBBBIIIIQQ")
        if not r.left:
            return cls(state, reason, priv, flags, stops, gen, pc, data_addr, cycles, instret)
        registers = r.take(f"{EXPEDITED_REGS}I")
        code_length = r.one("H")
        if code_length not in (0, CODE_WINDOW):
            raise PayloadError(f"an expedited status carries {CODE_WINDOW} bytes of code or none, "
                               f"not {code_length}")
        code = r.raw(code_length) or None
        code_flags = r.one("B")
        if code_flags & ~CODE_PLAIN:
            raise PayloadError(f"unknown code flags {code_flags:#x}")
        code_crc = r.one("I") if code_flags & CODE_PLAIN else 0
        memory = tuple(Fetched.read(r) for _ in range(r.one("B")))
        r.done()
        return cls(state, reason, priv, flags, stops, gen, pc, data_addr, cycles, instret, registers, code,
                   memory, code_flags, code_crc)

    @property
    def code_addr(self) -> int:
        """Where `code` starts: pc rounded down to CODE_WINDOW."""
        return self.pc - self.pc % CODE_WINDOW

    @property
    def stopped(self) -> bool:
        return self.state == STATE_STOPPED

    @property
    def running(self) -> bool:
        return self.state == STATE_RUNNING

    @property
    def duplicate(self) -> bool:
        return bool(self.flags & FLAG_DUPLICATE)

    def describe(self) -> str:
        state = STATE_NAMES.get(self.state, self.state)
        text = f"{state} pc={self.pc:#010x} stops={self.stops} gen={self.gen}"
        if self.state == STATE_STOPPED:
            text += f" reason={REASON_NAMES.get(self.reason, self.reason)}"
            if self.reason == REASON_WATCHPOINT:
                text += f" data={self.data_addr:#010x}"
        if self.flags & FLAG_ACCESSOR:
            text += " (made the access the watchpoint stop found)"
        return text


@dataclass(frozen=True)
class MachineDescription:
    lld_version: int
    frame_version: int
    nodes: int
    max_payload: int
    max_data: int
    max_breakpoints: int
    max_watchpoints: int
    ram_base: int
    node_ram_size: int
    quantum: int
    timebase_hz: int
    isa: str

    _S: ClassVar[struct.Struct] = struct.Struct(">HBHHHBBIIII")

    def encode(self) -> bytes:
        isa = self.isa.encode()
        return self._S.pack(self.lld_version, self.frame_version, self.nodes, self.max_payload,
                            self.max_data, self.max_breakpoints, self.max_watchpoints, self.ram_base,
                            self.node_ram_size, self.quantum, self.timebase_hz) + bytes((len(isa),)) + isa

    @classmethod
    def decode(cls, payload: bytes) -> MachineDescription:
        r = _Reader(payload)
        version, frame_version, nodes, max_payload, max_data, max_bps, max_wps, ram_base, node_ram, \
            quantum, timebase = r.take("HBHHHBBIIII")
        n = r.one("B")
        isa = r.rest()
        if len(isa) != n:
            raise PayloadError("ISA string length mismatch")
        return cls(version, frame_version, nodes, max_payload, max_data, max_bps, max_wps, ram_base,
                   node_ram, quantum, timebase, isa.decode(errors="replace"))

    def ram_of(self, node: int) -> tuple[int, int]:
        """(base, size) of node's RAM in the regular map."""
        return self.ram_base + node * self.node_ram_size, self.node_ram_size


@dataclass(frozen=True)
class BreakpointInfo:
    addr: int
    kind: int
    #: The instruction word now at addr, read like READ_MEM(SPACE_VIRT); None if unmapped.
    word: int | None


@dataclass(frozen=True)
class WatchpointInfo:
    space: int
    kind: int
    addr: int
    length: int
    root: int
    #: Physical address the first byte was resolved to when the watchpoint was set.
    paddr: int


def encode_breakpoints(items: list[BreakpointInfo]) -> bytes:
    out = bytes((len(items),))
    for bp in items:
        out += struct.pack(">IBBI", bp.addr, bp.kind, 0 if bp.word is None else 1,
                           0 if bp.word is None else bp.word)
    return out


def decode_breakpoints(payload: bytes) -> list[BreakpointInfo]:
    r = _Reader(payload)
    items = []
    for _ in range(r.one("B")):
        addr, kind, valid, word = r.take("IBBI")
        items.append(BreakpointInfo(addr, kind, word if valid else None))
    r.done()
    return items


def encode_watchpoints(items: list[WatchpointInfo]) -> bytes:
    out = bytes((len(items),))
    for wp in items:
        out += struct.pack(">BBHIII", wp.space, wp.kind, wp.length, wp.addr, wp.root, wp.paddr)
    return out


def decode_watchpoints(payload: bytes) -> list[WatchpointInfo]:
    r = _Reader(payload)
    items = []
    for _ in range(r.one("B")):
        space, kind, length, addr, root, paddr = r.take("BBHIII")
        items.append(WatchpointInfo(space, kind, addr, length, root, paddr))
    r.done()
    return items


def encode_values(values: list[int]) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def decode_values(payload: bytes) -> list[int]:
    if len(payload) % 4:
        raise PayloadError("register values come in 4-byte words")
    return list(struct.unpack(f">{len(payload) // 4}I", payload))


@dataclass(frozen=True)
class ErrorDetail:
    """What an error reply's payload says, decoded by error code."""

    code: int
    status: Status | None = None
    addr: int | None = None
    cause: int | None = None
    reg: int | None = None
    message: str = ""

    def describe(self) -> str:
        parts = [ERROR_NAMES.get(self.code, f"error {self.code}")]
        if self.addr is not None:
            parts.append(f"at {self.addr:#010x}")
        if self.cause is not None:
            parts.append(f"(cause {self.cause})")
        if self.reg is not None:
            parts.append(f"register {self.reg:#x}")
        if self.message:
            parts.append(self.message)
        if self.status is not None:
            parts.append(f"[{self.status.describe()}]")
        return " ".join(parts)


def encode_error(code: int, *, status: Status | None = None, addr: int | None = None,
                 cause: int = 0, reg: int | None = None, message: str = "") -> bytes:
    if code in (E_STALE, E_STATE, E_BAD_GUARD):
        assert status is not None
        return status.encode()
    if code == E_UNMAPPED:
        assert addr is not None
        return struct.pack(">IB", addr, cause)
    if code in (E_NOT_RAM, E_ALIGN):
        assert addr is not None
        return struct.pack(">I", addr)
    if code == E_BAD_REGISTER:
        assert reg is not None
        return struct.pack(">H", reg)
    if code == E_VERSION:
        return bytes((VERSION,))
    return message.encode()[:200]


def decode_error(code: int, payload: bytes) -> ErrorDetail:
    try:
        if code in (E_STALE, E_STATE, E_BAD_GUARD):
            return ErrorDetail(code, status=Status.decode(payload))
        if code == E_UNMAPPED:
            addr, cause = struct.unpack(">IB", payload)
            return ErrorDetail(code, addr=addr, cause=cause)
        if code in (E_NOT_RAM, E_ALIGN):
            (addr,) = struct.unpack(">I", payload)
            return ErrorDetail(code, addr=addr)
        if code == E_BAD_REGISTER:
            (reg,) = struct.unpack(">H", payload)
            return ErrorDetail(code, reg=reg)
    except struct.error as e:
        raise PayloadError(str(e)) from e
    return ErrorDetail(code, message=payload.decode(errors="replace"))


@dataclass
class Reply:
    """A decoded reply frame: `status` OK with a value, or an error with its detail."""

    code: int
    status: int
    value: object = None
    error: ErrorDetail | None = None
    raw: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.status == OK


def decode_reply(code: int, status: int, payload: bytes) -> Reply:
    """Interpret a reply payload given the request code it answers."""
    if status != OK:
        return Reply(code, status, error=decode_error(status, payload), raw=payload)
    value: object
    if code == DESCRIBE:
        value = MachineDescription.decode(payload)
    elif code in (STATUS, STOP, RESUME, STEP, REVERSE, WRITE_REGS, WRITE_MEM, SET_BREAKPOINT,
                  CLEAR_BREAKPOINT, SET_WATCHPOINT, CLEAR_WATCHPOINT, CLEAR_ALL):
        value = Status.decode(payload)
    elif code == READ_REGS:
        value = decode_values(payload)
    elif code == READ_MEM:
        value = payload
    elif code == LIST_BREAKPOINTS:
        value = decode_breakpoints(payload)
    elif code == LIST_WATCHPOINTS:
        value = decode_watchpoints(payload)
    elif code == TRANSLATE:
        if len(payload) != 4:
            raise PayloadError("a translation is 4 bytes")
        (value,) = struct.unpack(">I", payload)
    else:
        raise PayloadError(f"no reply format for request code {code:#x}")
    return Reply(code, status, value=value, raw=payload)


assert MAX_DATA + 13 <= MAX_PAYLOAD  # a WRITE_MEM of MAX_DATA bytes fits one frame
