"""Recording a machine's run, so that it can be replayed bit-exactly.

The machine is deterministic: between two points where the host may touch it,
its rounds depend on nothing but its own state.  The host touches it only at
the runner's service points, between rounds: bytes read from the console and
debug lines (what lld then does with them included), lld's frames forwarded to
another node's mailbox (served at a service point), and machine time moved on
with wall time while a debugger holds a node.  A recording is the machine at
its start plus every service point where any of that happened, each stamped
with the machine time it happened at (service points where nothing came in
changed nothing, and are left out).  Replaying restores the start and, for
each service point, runs rounds until machine time reaches its stamp and does
again what the host did there.  The bytes a line yields are recorded call by
call, so each read of the replay gets exactly what the same read got.

A recording is a directory:

* `recording.json`: the format version, the machine's shape, and what lld was
  told at the start (the panic breakpoint);
* `start.snap`: the machine at the start (psyche/machine/snapshot.py);
* `events.bin`: the service points, a header then one record each, every
  record with a CRC-32, so that a torn or corrupted file is refused where it
  goes wrong rather than replayed into a different machine;
* `end.json`, written when the run ends: machine time and the digest of the
  whole machine state then, and a hash of the console output, which a replay
  must reproduce.

Pure functions and small classes: nothing here reads a clock or a socket.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from psyche.machine import snapshot
from psyche.machine.hostline import DEFAULT_READ_SIZE, HostLine
from psyche.machine.machine import Machine
from psyche.machine.nic import Wire

FORMAT = 1
EVENTS_MAGIC = b"PSYREC1\n"
#: Line numbers in a record: what each chunk of input was read from.  Node k's NIC is NIC + k:
#: its chunks are the frames one poll of its wire gave, each with a 2-byte length before it.
CONSOLE, DEBUG, NIC = 0, 1, 16
MAX_NODES = 128


def line_name(line: int) -> str | None:
    if line == CONSOLE:
        return "console"
    if line == DEBUG:
        return "debug line"
    return f"node {line - NIC}'s NIC" if NIC <= line < NIC + MAX_NODES else None

_HEAD = struct.Struct("<QQIH")      # machine time, time advanced (cycles), flags, chunk count
_CHUNK = struct.Struct("<BI")       # line, length
_CRC = struct.Struct("<I")
FLAG_LLD_BUSY = 1                   # lld had forwarded frames to serve at this point


class RecordingError(ValueError):
    """A recording that cannot be replayed: missing, torn, corrupted, or of another machine."""


@dataclass
class ServicePoint:
    """What the host did at one service point."""

    time: int                                     # machine time (cycles) at the point
    advanced: int = 0                             # cycles machine time was moved on, first
    lld_busy: bool = False
    #: (line, bytes) per read, in order, empty reads included: a replay's reads at this point
    #: must get exactly these, call by call.
    chunks: list[tuple[int, bytes]] = field(default_factory=list)

    def eventful(self) -> bool:
        return bool(self.advanced or self.lld_busy or any(data for _, data in self.chunks))

    def encode(self) -> bytes:
        body = bytearray(_HEAD.pack(self.time, self.advanced, FLAG_LLD_BUSY if self.lld_busy else 0,
                                    len(self.chunks)))
        for line, data in self.chunks:
            body += _CHUNK.pack(line, len(data)) + data
        return _CRC.pack(len(body)) + bytes(body) + _CRC.pack(zlib.crc32(body))


def read_events(data: bytes) -> Iterator[ServicePoint]:
    """The service points of an events.bin; RecordingError where it is not one."""
    if not data.startswith(EVENTS_MAGIC):
        raise RecordingError("events.bin: not a Psyche recording (bad magic)")
    at = len(EVENTS_MAGIC)
    index = 0
    while at < len(data):
        if at + 4 > len(data):
            raise RecordingError(f"events.bin: torn after {index} service points (a partial length)")
        (length,) = _CRC.unpack_from(data, at)
        end = at + 4 + length + 4
        if end > len(data):
            raise RecordingError(f"events.bin: torn after {index} service points (record {index} "
                                 f"wants {length} bytes, {len(data) - at - 8} are there)")
        body = data[at + 4: at + 4 + length]
        (crc,) = _CRC.unpack_from(data, at + 4 + length)
        if zlib.crc32(body) != crc:
            raise RecordingError(f"events.bin: record {index} is corrupted (CRC mismatch)")
        yield _decode(body, index)
        at = end
        index += 1


def _decode(body: bytes, index: int) -> ServicePoint:
    try:
        time, advanced, flags, count = _HEAD.unpack_from(body, 0)
        at = _HEAD.size
        chunks = []
        for _ in range(count):
            line, length = _CHUNK.unpack_from(body, at)
            at += _CHUNK.size
            if line_name(line) is None or at + length > len(body):
                raise RecordingError(f"events.bin: record {index} has a bad chunk")
            chunks.append((line, body[at: at + length]))
            at += length
    except struct.error as e:
        raise RecordingError(f"events.bin: record {index} is malformed: {e}") from e
    return ServicePoint(time, advanced, bool(flags & FLAG_LLD_BUSY), chunks)


@dataclass(frozen=True)
class Header:
    """recording.json: what a replay must set up as the recording did."""

    nodes: int
    panic_pc: int | None
    format: int = FORMAT

    def dump(self) -> str:
        return json.dumps({"format": self.format, "nodes": self.nodes, "panic_pc": self.panic_pc},
                          indent=1) + "\n"

    @classmethod
    def load(cls, text: str) -> Header:
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT:
                raise RecordingError(f"recording.json: format {d.get('format')!r}, this psyche reads "
                                     f"{FORMAT}")
            return cls(int(d["nodes"]), None if d["panic_pc"] is None else int(d["panic_pc"]))
        except (ValueError, KeyError, TypeError) as e:
            if isinstance(e, RecordingError):
                raise
            raise RecordingError(f"recording.json: {e}") from e


@dataclass(frozen=True)
class End:
    """end.json: where the recorded run ended, and what the machine was then."""

    time: int
    digest: str
    console_sha256: str
    service_points: int
    #: Travels in the machine's history made while recording (reverse execution, lld/history/),
    #: and the service point and machine time of the first: a recording does not hold them, so
    #: a run that traveled cannot be replayed (`replay` says so, instead of diverging).
    travels: int = 0
    first_travel_point: int = -1
    first_travel_time: int = -1

    def dump(self) -> str:
        return json.dumps(self.__dict__, indent=1) + "\n"

    @classmethod
    def load(cls, text: str) -> End:
        try:
            d = json.loads(text)
            return cls(int(d["time"]), str(d["digest"]), str(d["console_sha256"]), int(d["service_points"]),
                       int(d.get("travels", 0)), int(d.get("first_travel_point", -1)),
                       int(d.get("first_travel_time", -1)))
        except (ValueError, KeyError, TypeError) as e:
            raise RecordingError(f"end.json: {e}") from e

    def unreplayable(self) -> str | None:
        """Why a replay cannot reproduce this run, if it cannot: it traveled in its history."""
        if not self.travels:
            return None
        return (f"the recorded run traveled in the machine's history {self.travels} time"
                f"{'s' if self.travels > 1 else ''} (reverse execution while recording), the first at "
                f"service point {self.first_travel_point}, machine time {self.first_travel_time}: a "
                f"recording does not hold the travels, so this one cannot be replayed")


class Recorder:
    """Collects the service points of a run into events.bin as they happen."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.out.write(EVENTS_MAGIC)
        self.point: ServicePoint | None = None
        self.written = 0
        self.console = hashlib.sha256()
        self.travels = 0
        self.first_travel: tuple[int, int] | None = None   # (service point, machine time)

    def begin(self, time: int, advanced: int, lld_busy: bool) -> None:
        """A service point begins (after machine time was moved on by `advanced`)."""
        self.point = ServicePoint(time, advanced, lld_busy)

    def read(self, line: int, data: bytes) -> None:
        if self.point is not None:
            self.point.chunks.append((line, data))

    def end(self) -> None:
        point, self.point = self.point, None
        if point is not None and point.eventful():
            self.out.write(point.encode())
            self.out.flush()
            self.written += 1

    def console_output(self, data: bytes) -> None:
        self.console.update(data)

    def note_travel(self, time: int) -> None:
        """The machine traveled in its history (lld/history/) at machine time `time`, in the
        service point being recorded: what follows cannot be replayed from the recording."""
        self.travels += 1
        if self.first_travel is None:
            self.first_travel = (self.written, time)


class RecordingLine(HostLine):
    """A host line whose input is recorded, read by read, as it is taken."""

    def __init__(self, inner: HostLine, line: int, recorder: Recorder) -> None:
        self.inner = inner
        self.line = line
        self.recorder = recorder

    def describe(self) -> str:
        return self.inner.describe()

    def fileno(self) -> int | None:
        return self.inner.fileno()

    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        data = self.inner.read_available(max_bytes)
        self.recorder.read(self.line, data)
        return data

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def pending_output(self) -> int:
        return self.inner.pending_output()

    def flush_some(self) -> None:
        self.inner.flush_some()

    def output_fileno(self) -> int | None:
        return self.inner.output_fileno()

    def close(self) -> None:
        self.inner.close()


class ReplayLine(HostLine):
    """A host line that gives each read what the same read got in the recording.

    then: the live line it becomes after `go_live` (reads, writes and descriptors go there);
    echo: also hand what the machine writes during the replay to that line (the console's
    history, for whoever watches it).
    """

    def __init__(self, name: str, then: HostLine | None = None, echo: bool = False) -> None:
        self.name = name
        self.reads: deque[bytes] = deque()
        self.then = then
        self.echo = echo
        self.live = False

    def go_live(self) -> None:
        """The replay is over: from now on this is the live line."""
        if self.then is None:
            raise RecordingError(f"the {self.name} has no live line to go on with")
        self.live = True

    def describe(self) -> str:
        return self.then.describe() if self.then is not None else f"replay ({self.name})"

    def fileno(self) -> int | None:
        return self.then.fileno() if self.live and self.then is not None else None

    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        if self.live and self.then is not None:
            return self.then.read_available(max_bytes)
        if not self.reads:
            return b""
        data = self.reads.popleft()
        if len(data) > max_bytes:
            raise RecordingError(f"replay diverged: the {self.name} was read for {max_bytes} bytes where "
                                 f"the recording read {len(data)}")
        return data

    def write(self, data: bytes) -> None:
        if self.then is not None and (self.live or self.echo):
            self.then.write(data)   # (otherwise what the replayed machine writes goes nowhere)

    def pending_output(self) -> int:
        return self.then.pending_output() if self.then is not None else 0

    def flush_some(self) -> None:
        if self.then is not None:
            self.then.flush_some()

    def output_fileno(self) -> int | None:
        return self.then.output_fileno() if self.then is not None else None

    def close(self) -> None:
        if self.then is not None:
            self.then.close()


def encode_frames(frames: list[bytes]) -> bytes:
    return b"".join(len(f).to_bytes(2, "little") + f for f in frames)


def decode_frames(data: bytes) -> list[bytes]:
    frames, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at: at + 2], "little")
        if at + 2 + length > len(data):
            raise RecordingError("events.bin: a NIC chunk's frames run past its end")
        frames.append(data[at + 2: at + 2 + length])
        at += 2 + length
    return frames


class RecordingWire(Wire):
    """A NIC's far end whose frames for the guest are recorded, poll by poll, as they are taken."""

    def __init__(self, inner: Wire, node: int, recorder: Recorder) -> None:
        self.inner = inner
        self.line = NIC + node
        self.recorder = recorder

    def transmit(self, frame: bytes, when: int) -> None:
        self.inner.transmit(frame, when)

    def poll(self, when: int) -> list[bytes]:
        frames = self.inner.poll(when)
        self.recorder.read(self.line, encode_frames(frames))
        return frames

    def filenos(self) -> list[int]:
        return self.inner.filenos()

    def close(self) -> None:
        self.inner.close()


class ReplayWire(Wire):
    """A NIC's far end that gives each poll what the same poll got in the recording; what the
    guest sends goes nowhere."""

    def __init__(self, node: int) -> None:
        self.name = line_name(NIC + node) or "a NIC"
        self.reads: deque[bytes] = deque()

    def poll(self, when: int) -> list[bytes]:
        return decode_frames(self.reads.popleft()) if self.reads else []


def paths(directory: Path) -> dict[str, Path]:
    return {name: directory / name for name in ("recording.json", "start.snap", "events.bin", "end.json")}


class Recording:
    """A recording being made into a new directory: create it, `start` it once the machine is set
    up (its lines wrapped in RecordingLines on `recorder`), run, then `end` it."""

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True)
        except FileExistsError:
            raise ValueError(f"--record {directory}: it exists already; a recording goes into a new "
                             f"directory") from None
        self.directory = directory
        self.files = paths(directory)
        self.recorder = Recorder(self.files["events.bin"].open("wb"))

    def start(self, machine: Machine, panic_pc: int | None, recorder: Recorder | None = None) -> None:
        """The machine as the run starts, and what lld was told: a replay begins from exactly
        this.  From now on every NIC's frames for the guest are recorded too."""
        for node in machine.nodes:
            nic = node.devices.nic
            if nic is not None:
                nic.replace_wire(RecordingWire(nic.wire, node.index, recorder or self.recorder))
        self.files["recording.json"].write_text(Header(len(machine.nodes), panic_pc).dump())
        snapshot.save(machine, self.files["start.snap"])
        machine.console.add_output_listener((recorder or self.recorder).console_output)

    def end(self, machine: Machine) -> End:
        """The run is over (at a service point): what a replay must end in."""
        recorder = self.recorder
        recorder.out.close()
        point, time = recorder.first_travel or (-1, -1)
        end = End(machine.time, snapshot.digest(machine), recorder.console.hexdigest(), recorder.written,
                  recorder.travels, point, time)
        self.files["end.json"].write_text(end.dump())
        return end
