"""`psyche build`: build the guest test programs and the Psyche kernel."""

from __future__ import annotations

import argparse
from pathlib import Path

from psyche import guestbuild
from psyche.kernel import build as kernel_build


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build the guest test programs and the kernel")
    p.add_argument("--out", type=Path, default=guestbuild.DEFAULT_OUT_DIR,
                   help=f"output directory of the guest programs (default {guestbuild.DEFAULT_OUT_DIR})")
    p.add_argument("--kernel-out", type=Path, default=kernel_build.DEFAULT_KERNEL_ELF,
                   help=f"kernel ELF to build (default {kernel_build.DEFAULT_KERNEL_ELF})")
    p.add_argument("--kernel-only", action="store_true", help="build only the kernel")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.kernel_only:
        for name, path in sorted(guestbuild.build_all(args.out).items()):
            print(f"{name}\t{path}")
    try:
        kernel = kernel_build.build_kernel(args.kernel_out)
    except kernel_build.KernelBuildError as exc:
        raise ValueError(str(exc)) from exc
    print(f"kernel\t{kernel}")
    return 0
