"""`psyche up`: a machine and its mux together, joined by a pseudo-terminal."""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from psyche.commands.mux_cmd import add_mux_arguments, attach_help, serve_forever, start_mux


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("up", help="boot a machine and its mux, and say how to attach gdb")
    parser.add_argument("--nodes", type=int, default=4, help="number of nodes, 1 to 128 (default 4)")
    parser.add_argument("--kernel", type=Path, help="kernel ELF (default: the Psyche kernel, built if stale)")
    parser.add_argument("--no-console", action="store_true",
                        help="no interactive console: print how to attach and serve until interrupted")
    parser.add_argument("--debug-line-loss", type=float, default=0.0, metavar="RATE",
                        help="drop or corrupt this fraction of debug-line frames")
    add_mux_arguments(parser)
    parser.set_defaults(handler=run)


@dataclass
class MachineProcess:
    """`psyche machine` in a process of its own (DESIGN.md, decision 4)."""

    process: subprocess.Popen[str]
    console: str
    debug_line: str

    @classmethod
    def start(cls, kernel: Path, nodes: int, loss: float) -> MachineProcess:
        command = [sys.executable, "-m", "psyche.cli", "machine", "--nodes", str(nodes),
                   "--kernel", str(kernel), "--console", "pty", "--debug-line", "pty", "--quiet"]
        if loss:
            command += ["--debug-line-loss", str(loss)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"console (\S+); debug line (\S+)", banner)
        if match is None:
            process.kill()
            raise ValueError(f"the machine did not start: {banner.strip() or 'no output'}")
        return cls(process, match.group(1), match.group(2))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _default_kernel() -> Path:
    from psyche.kernel import build as kernel_build

    return kernel_build.build_kernel()


def run(args: argparse.Namespace) -> int:
    kernel = args.kernel or _default_kernel()
    machine = MachineProcess.start(kernel, args.nodes, args.debug_line_loss)

    async def main() -> None:
        mux = await start_mux(machine.debug_line, args)
        print(f"psyche up: machine pid {machine.process.pid}; console {machine.console}\n"
              + attach_help(mux, str(kernel)), flush=True)
        await serve_forever(mux)

    try:
        asyncio.run(main())
    finally:
        machine.stop()
    return 0
