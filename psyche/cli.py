"""The `psyche` command: one entry point, one subcommand per task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from psyche.commands import build, fileserver_cmd, gdb_cmd, machine_cmd, mux_cmd, replay_cmd, run_elf, up_cmd


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psyche",
        description="Remote kernel debugging toolkit on a simulated Psyche multiprocessor.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run_elf, machine_cmd, mux_cmd, up_cmd, gdb_cmd, build, replay_cmd, fileserver_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)   # what one argument cannot say alone (`up`: every node's port exists)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as e:
        print(f"psyche {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
