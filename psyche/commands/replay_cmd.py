"""`psyche replay DIR`: run a recorded machine again, bit-exactly, and check that it was
(psyche/replay.py; docs/replay.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from psyche.machine.record import RecordingError
from psyche.replay import replay


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="run a recorded machine again, bit-exactly, and check it")
    p.add_argument("directory", type=Path, help="the recording (psyche machine --record DIR)")
    p.add_argument("--quiet", action="store_true", help="do not echo the console output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        done = replay(args.directory, echo=not args.quiet)
    except RecordingError as e:
        print(f"psyche replay: {e}", file=sys.stderr)
        return 1
    print(f"\npsyche replay: {done.service_points} service points, machine time {done.time}, "
          f"digest {done.digest[:16]}", file=sys.stderr)
    same, verdict = done.verdict()
    print(f"psyche replay: {verdict}", file=sys.stderr)
    return 0 if same else 1
