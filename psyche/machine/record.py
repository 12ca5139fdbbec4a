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

from psyche.machine.hostline import DEFAULT_READ_SIZE, HostLine

FORMAT = 1
EVENTS_MAGIC = b"PSYREC1\n"
#: Line numbers in a record: what each chunk of input was read from.
CONSOLE, DEBUG = 0, 1
LINE_NAMES = {CONSOLE: "console", DEBUG: "debug line"}

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
            if line not in LINE_NAMES or at + length > len(body):
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

    def dump(self) -> str:
        return json.dumps(self.__dict__, indent=1) + "\n"

    @classmethod
    def load(cls, text: str) -> End:
        try:
            d = json.loads(text)
            return cls(int(d["time"]), str(d["digest"]), str(d["console_sha256"]), int(d["service_points"]))
        except (ValueError, KeyError, TypeError) as e:
            raise RecordingError(f"end.json: {e}") from e


class Recorder:
    """Collects the service points of a run into events.bin as they happen."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.out.write(EVENTS_MAGIC)
        self.point: ServicePoint | None = None
        self.written = 0
        self.console = hashlib.sha256()

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


def paths(directory: Path) -> dict[str, Path]:
    return {name: directory / name for name in ("recording.json", "start.snap", "events.bin", "end.json")}
