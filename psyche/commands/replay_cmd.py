"""`psyche replay DIR`: run a recorded machine again, bit-exactly, and check that it was.

A recording (`psyche machine --record DIR`, `psyche up --record DIR`; the format is
psyche/machine/record.py's) holds the machine at its start and what the host did
at each service point.  The replay restores the start, puts lld beneath it as the
recording did, and for each service point runs rounds until machine time reaches
the point's, then gives every line read exactly what it got.  At the end the
machine must be what the recording's end.json says: the same digest of the whole
machine state, and the same console output.  Anything else is a divergence, and
is reported as one, with where it happened.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from lld.attach import Lld
from psyche.machine import snapshot
from psyche.machine.machine import Machine
from psyche.machine.record import CONSOLE, DEBUG, End, Header, RecordingError, ReplayLine, paths, read_events


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="run a recorded machine again, bit-exactly, and check it")
    p.add_argument("directory", type=Path, help="the recording (psyche machine --record DIR)")
    p.add_argument("--quiet", action="store_true", help="do not echo the console output")
    p.set_defaults(handler=run)


@dataclass(frozen=True)
class ReplayResult:
    service_points: int
    time: int
    digest: str
    console_sha256: str
    end: End | None           # what the recording says the end was; None if it never ended


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise RecordingError(f"{what}: {e.strerror or e}") from e


def _run_to(machine: Machine, time: int, index: int) -> None:
    """Rounds until machine time is `time`, as in the recording; RecordingError if it cannot be."""
    while machine.time < time:
        before = machine.time
        machine.run_round()
        if machine.time == before:
            break   # nothing can run: time stands (checked below)
    if machine.time != time:
        raise RecordingError(f"replay diverged before service point {index}: machine time is "
                             f"{machine.time}, the recording has {time}")


def replay(directory: Path, echo: bool = False) -> ReplayResult:
    files = paths(directory)
    if not directory.is_dir():
        raise RecordingError(f"{directory}: no such recording (not a directory)")
    header = Header.load(_read(files["recording.json"], "recording.json").decode(errors="replace"))
    end = End.load(files["end.json"].read_text()) if files["end.json"].exists() else None
    events = _read(files["events.bin"], "events.bin")
    console, debug = ReplayLine("console"), ReplayLine("debug line")
    try:
        machine = snapshot.restore(files["start.snap"], console=console)
    except (OSError, ValueError, KeyError) as e:
        raise RecordingError(f"start.snap: {e}") from e
    if len(machine.nodes) != header.nodes:
        raise RecordingError(f"start.snap has {len(machine.nodes)} nodes, recording.json {header.nodes}")
    lld = Lld(machine, debug)
    if header.panic_pc is not None:
        lld.arm_panic(header.panic_pc)
    console_hash = hashlib.sha256()
    machine.console.add_output_listener(console_hash.update)
    if echo:
        machine.console.add_output_listener(lambda data: (sys.stdout.buffer.write(data), sys.stdout.flush()))
    lines = {CONSOLE: console, DEBUG: debug}
    count = 0
    for count, point in enumerate(read_events(events), start=1):
        _run_to(machine, point.time - point.advanced, count - 1)
        if point.advanced:
            machine.advance_time(point.advanced)
            _run_to(machine, point.time, count - 1)
        for line, data in point.chunks:
            lines[line].reads.append(data)
        machine.poll_host()
        lld.service()
        left = [lines[n].name for n in lines if lines[n].reads]
        if left:
            raise RecordingError(f"replay diverged at service point {count - 1}: the {', '.join(left)} "
                                 f"was read less often than in the recording")
    if end is not None:
        _run_to(machine, end.time, count)
    return ReplayResult(count, machine.time, snapshot.digest(machine), console_hash.hexdigest(), end)


def run(args: argparse.Namespace) -> int:
    try:
        result = replay(args.directory, echo=not args.quiet)
    except RecordingError as e:
        print(f"psyche replay: {e}", file=sys.stderr)
        return 1
    end = result.end
    print(f"\npsyche replay: {result.service_points} service points, machine time {result.time}, "
          f"digest {result.digest[:16]}", file=sys.stderr)
    if end is None:
        print("psyche replay: the recording has no end.json (the recorded run never ended cleanly): "
              "nothing to check the replay against", file=sys.stderr)
        return 1
    if (result.digest, result.console_sha256) != (end.digest, end.console_sha256):
        what = [w for w, same in (("machine state", result.digest == end.digest),
                                  ("console output", result.console_sha256 == end.console_sha256))
                if not same]
        verb = "differ" if len(what) > 1 else "differs"
        print(f"psyche replay: DIVERGED: the {' and '.join(what)} {verb} from the recording's end",
              file=sys.stderr)
        return 1
    print("psyche replay: identical to the recording: same machine state, same console output",
          file=sys.stderr)
    return 0
