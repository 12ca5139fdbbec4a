"""Replaying a recording: the machine at its start, then what the host did, point by point.

A recording (`psyche machine --record DIR`, `psyche up --record DIR`; the format is
psyche/machine/record.py's) holds the machine at its start and what the host did
at each service point.  The replay restores the start, puts lld beneath it as the
recording did, and for each service point runs rounds until machine time reaches
the point's, then gives every line read exactly what it got.  At the end the
machine must be what the recording's end.json says: the same digest of the whole
machine state, and the same console output (`Replay.check`).  Anything else is a
divergence, and is reported as one, with where it happened.

Lines may go on live afterwards (`ReplayLine.go_live`): `psyche machine --replay`
replays, then runs on with its console and debug line, so gdb can take the
machine where the recording left it.  With a `History` (`--replay DIR --reverse`),
the replay keeps the machine's history as a live run does (checkpoints between
rounds, every input of every replayed service point), so that gdb can go back
into the replayed run afterwards (lld/history/).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lld.attach import Lld
from psyche.machine import snapshot
from psyche.machine.hostline import HostLine
from psyche.machine.machine import Machine
from psyche.machine.record import (
    CONSOLE,
    DEBUG,
    NIC,
    End,
    Header,
    RecordingError,
    RecordingLine,
    RecordingWire,
    ReplayLine,
    ReplayWire,
    line_name,
    paths,
    read_events,
)

if TYPE_CHECKING:
    from lld.history import History


@dataclass
class Replay:
    """A replayed machine, where the recording ended, with lld beneath it."""

    machine: Machine
    lld: Lld
    service_points: int
    digest: str
    console_sha256: str
    end: End | None           # what the recording says the end was; None if it never ended
    #: The lines the machine reads (the console's and lld's): the ones given, or, with a history,
    #: the RecordingLines around them that hand every read to it, live ones included.
    console: HostLine | None = None
    debug: HostLine | None = None

    @property
    def time(self) -> int:
        return self.machine.time

    def verdict(self) -> tuple[bool, str]:
        """Whether the replay ended where the recording did, and a line that says so."""
        end = self.end
        if end is None:
            return False, ("the recording has no end.json (the recorded run never ended cleanly): "
                           "nothing to check the replay against")
        what = [w for w, same in (("machine state", self.digest == end.digest),
                                  ("console output", self.console_sha256 == end.console_sha256))
                if not same]
        if what:
            verb = "differ" if len(what) > 1 else "differs"
            return False, f"DIVERGED: the {' and '.join(what)} {verb} from the recording's end"
        return True, "identical to the recording: same machine state, same console output"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise RecordingError(f"{what}: {e.strerror or e}") from e


def _run_to(machine: Machine, time: int, index: int, between: Callable[[], None] | None = None) -> None:
    """Rounds until machine time is `time`, as in the recording; RecordingError if it cannot be.
    between: called after each round (a history's checkpoint, when one is due)."""
    while machine.time < time:
        before = machine.time
        machine.run_round()
        if between is not None:
            between()
        if machine.time == before:
            break   # nothing can run: time stands (checked below)
    if machine.time != time:
        raise RecordingError(f"replay diverged before service point {index}: machine time is "
                             f"{machine.time}, the recording has {time}")


def replay(directory: Path, echo: bool = False, console: ReplayLine | None = None,
           debug: ReplayLine | None = None, prepare: Callable[[Machine], object] | None = None,
           history: History | None = None) -> Replay:
    """Replay the recording in directory to its end; RecordingError if it cannot be.  The
    lines may be given, to go live afterwards (ReplayLine's `then`); `prepare` puts on the
    restored machine what the recorded run had on it besides lld (a test's tohost monitor).

    history: keep the machine's history while replaying, as a live run with --reverse does: the
    replayed service points are its inputs (read through RecordingLines and RecordingWires, call
    by call, as the live run's were), and a checkpoint is taken between rounds when one is due
    (never between a point's moving machine time on and the point itself: history re-executes
    that as one)."""
    files = paths(directory)
    if not directory.is_dir():
        raise RecordingError(f"{directory}: no such recording (not a directory)")
    header = Header.load(_read(files["recording.json"], "recording.json").decode(errors="replace"))
    end = End.load(files["end.json"].read_text()) if files["end.json"].exists() else None
    if end is not None and (why := end.unreplayable()) is not None:
        raise RecordingError(why)
    events = _read(files["events.bin"], "events.bin")
    console = console or ReplayLine("console")
    debug = debug or ReplayLine("debug line")
    console_line: HostLine = console
    debug_line: HostLine = debug
    if history is not None:
        console_line = RecordingLine(console, CONSOLE, history)
        debug_line = RecordingLine(debug, DEBUG, history)
    try:
        machine = snapshot.restore(files["start.snap"], console=console_line)
    except (OSError, ValueError, KeyError) as e:
        raise RecordingError(f"start.snap: {e}") from e
    if len(machine.nodes) != header.nodes:
        raise RecordingError(f"start.snap has {len(machine.nodes)} nodes, recording.json {header.nodes}")
    if prepare is not None:
        prepare(machine)
    lld = Lld(machine, debug_line)
    if header.panic_pc is not None:
        lld.arm_panic(header.panic_pc)
    console_hash = hashlib.sha256()
    machine.console.add_output_listener(console_hash.update)
    if echo:
        machine.console.add_output_listener(lambda data: (sys.stdout.buffer.write(data), sys.stdout.flush()))
    lines: dict[int, ReplayLine | ReplayWire] = {CONSOLE: console, DEBUG: debug}
    for node in machine.nodes:
        if node.devices.nic is not None:
            wire = ReplayWire(node.index)
            node.devices.nic.replace_wire(RecordingWire(wire, node.index, history) if history else wire)
            lines[NIC + node.index] = wire
    between = None
    if history is not None:
        history.attach(machine, lld, wires=False)
        history.after_service()        # the first checkpoint: the recording's start
        between = history.after_service
    count = 0
    for count, point in enumerate(read_events(events), start=1):
        _run_to(machine, point.time - point.advanced, count - 1, between)
        if point.advanced:
            machine.advance_time(point.advanced)
            _run_to(machine, point.time, count - 1)
        for line, data in point.chunks:
            if line not in lines:
                raise RecordingError(f"replay diverged at service point {count - 1}: the recording "
                                     f"read {line_name(line)}, which this machine does not have")
            lines[line].reads.append(data)
        if history is not None:
            history.begin(point.time, point.advanced, point.lld_busy)
        machine.poll_host()
        lld.service()
        if history is not None:
            history.end()
            history.after_service()
        left = [lines[n].name for n in lines if lines[n].reads]
        if left:
            raise RecordingError(f"replay diverged at service point {count - 1}: the {', '.join(left)} "
                                 f"was read less often than in the recording")
    if end is not None:
        _run_to(machine, end.time, count, between)
    return Replay(machine, lld, count, snapshot.digest(machine), console_hash.hexdigest(), end,
                  console_line, debug_line)


