"""`psyche build`: build the guest programs (and, once it exists, the kernel)."""

from __future__ import annotations

import argparse
from pathlib import Path

from psyche import guestbuild


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build the guest test programs")
    p.add_argument("--out", type=Path, default=guestbuild.DEFAULT_OUT_DIR,
                   help=f"output directory (default {guestbuild.DEFAULT_OUT_DIR})")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for name, path in sorted(guestbuild.build_all(args.out).items()):
        print(f"{name}\t{path}")
    return 0
