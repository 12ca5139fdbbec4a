"""`psyche up`: a machine and its mux together, joined by a pseudo-terminal."""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mux import loop
from psyche import lifetime
from psyche.commands.machine_cmd import (
    add_network_arguments,
    add_reverse_arguments,
    network_argv,
    reverse_argv,
)
from psyche.commands.mux_cmd import add_mux_arguments, attach_help, report_to_stderr, serve_forever, start_mux


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("up", help="boot a machine and its mux, and say how to attach gdb")
    parser.add_argument("--nodes", type=node_count, default=4, help="number of nodes, 1 to 128 (default 4)")
    parser.add_argument("--kernel", type=Path, help="kernel ELF (default: the Psyche kernel, built if stale)")
    parser.add_argument("--restore", type=Path, metavar="SNAPSHOT",
                        help="start the machine from a snapshot (psyche machine --save-snapshot) instead of "
                             "booting; the node count is the snapshot's, --kernel only gives symbols "
                             "(for gdb, and for lld's stop at panic)")
    parser.add_argument("--no-console", action="store_true",
                        help="no interactive console: print how to attach and serve until interrupted")
    parser.add_argument("--console-script", type=Path, metavar="FILE",
                        help="run mux console commands from FILE, then shut down; exit status 1 if any "
                             "failed (without it, commands come from standard input when it is not a "
                             "terminal)")
    parser.add_argument("--debug-line-loss", type=float, default=0.0, metavar="RATE",
                        help="drop or corrupt this fraction of debug-line frames")
    parser.add_argument("--halted", action="store_true",
                        help="start halted, as QEMU's -S: the king stops at the ELF entry (with --restore, "
                             "every running node where it is) before any instruction, until a gdb "
                             "continues it; nodes the kernel has not started yet stay held")
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="record the machine's run into DIR, for `psyche replay DIR` (docs/replay.md)")
    parser.add_argument("--netboot", type=Path, metavar="DIR",
                        help="boot over the network: the machine loads only the boot loader, which "
                             "fetches the kernel from DIR by TFTP (docs/network.md)")
    parser.add_argument("--files", type=Path, metavar="DIR",
                        help="serve DIR as the host's file server and start the user level at boot: the "
                             "name server, file server, loader and shell (docs/user-level.md); the "
                             "default when booting the Psyche kernel this tree builds: build/user/files")
    parser.add_argument("--no-files", action="store_true",
                        help="no file server and no user level: the kernel monitor alone")
    parser.add_argument("--replay", type=Path, metavar="DIR",
                        help="replay the recording in DIR (checked bit-exact), then run on live from where "
                             "it ended, gdb and console and all (docs/replay.md)")
    parser.add_argument("--stoptime", action="store_true",
                        help="stop a node's clock while a debugger holds it (psyche machine --stoptime; "
                             "default: it goes on with the machine, docs/debug-semantics.md)")
    add_reverse_arguments(parser)
    add_network_arguments(parser)
    add_mux_arguments(parser)
    parser.set_defaults(handler=run, check=functools.partial(_check_ports, parser))


def node_count(text: str) -> int:
    """--nodes: 1 to 128, or argparse's usage error."""
    try:
        nodes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= nodes <= 128:
        raise argparse.ArgumentTypeError(f"{nodes} nodes: a machine has 1 to 128")
    return nodes


def _check_ports(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every node's port must exist: node k listens on --gdb-port + k (with --restore the snapshot
    says how many nodes there are, and the mux checks when it knows)."""
    last = args.gdb_port + args.nodes - 1
    if not args.restore and last > 65535:
        parser.error(f"--gdb-port {args.gdb_port} with {args.nodes} nodes needs ports up to {last}, past "
                     f"65535: node k listens on BASE + k, so BASE must be at most {65536 - args.nodes}")


@dataclass
class MachineProcess:
    """`psyche machine` in a process of its own, joined to the mux by real byte streams."""

    process: subprocess.Popen[str]
    console: str
    debug_line: str
    _stopping: bool = field(default=False, init=False)

    @classmethod
    def start(cls, kernel: Path, nodes: int, loss: float, restore: Path | None = None,
              extra: tuple[str, ...] = (),
              stderr: int | None = None, own_session: bool = False) -> MachineProcess:
        # With a snapshot the kernel is read for its symbols only (lld's panic breakpoint).
        image = ["--restore", str(restore)] if restore else ["--nodes", str(nodes)]
        # --exit-with-parent and the preexec: the machine ends with this process however it
        # ends, kill -9 included (psyche/lifetime.py, docs/failure-modes.md).
        command = [sys.executable, "-m", "psyche.cli", "machine", "--kernel", str(kernel), *image,
                   "--console", "pty", "--debug-line", "pty", "--quiet", "--exit-with-parent"]
        if loss:
            command += ["--debug-line-loss", str(loss)]
        command += extra
        # Its error output is read here until it has started, so that a machine that does not start
        # says why in one line (it printed its reason, then this contradicted it: 'no output');
        # then, unless the caller reads it, it goes on to ours.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=own_session, preexec_fn=lifetime.preexec())
        assert process.stdout is not None and process.stderr is not None
        banner = process.stdout.readline()
        match = re.search(r"console (\S+); debug line (\S+)", banner)
        if match is None:
            try:
                _, errors = process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                _, errors = process.communicate()
            said = [line.removeprefix("psyche machine: ").strip() for line in (banner + errors).splitlines()]
            said = [line for line in said if line]
            why = said[-1] if said else f"it exited with status {process.returncode} and said nothing"
            raise ValueError(f"the machine did not start: {why}")
        if stderr is None:
            threading.Thread(target=_forward, args=(process.stderr,), name="machine-stderr",
                             daemon=True).start()
        return cls(process, match.group(1), match.group(2))

    def watch(self, loop: asyncio.AbstractEventLoop, ended: Callable[[str], None]) -> None:
        """Call `ended("the machine process ended (killed by signal 9, SIGKILL)")` in the loop when
        the process ends, unless `stop` ended it.  From a thread of its own, which reaps the process."""
        def wait() -> None:
            why = f"the machine process ended ({exit_description(self.process.wait())})"
            if not self._stopping:
                try:
                    loop.call_soon_threadsafe(ended, why)
                except RuntimeError:   # the loop has closed: psyche up is on its way out anyway
                    pass

        threading.Thread(target=wait, name="machine-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def exit_description(status: int) -> str:
    """A process's exit status for people: `exited with status 1`, `killed by signal 9, SIGKILL`."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        name = f", {signal.Signals(-status).name}"
    except ValueError:
        name = ""
    return f"killed by signal {-status}{name}"


def _forward(stream: IO[str]) -> None:
    """Copy the machine's error output to ours, line by line, until it ends."""
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()


def _default_kernel() -> Path:
    from psyche.kernel import build as kernel_build

    return kernel_build.build_kernel()


def _files(args: argparse.Namespace) -> Path | None:
    """The file server's directory: --files, or the programs this tree built when the kernel is
    this tree's own and booted from its image (the user level needs the kernel's boot arguments)."""
    if args.no_files:
        return None
    if args.files is not None:
        return Path(args.files).resolve()
    if args.kernel is None and not (args.restore or args.replay or args.netboot):
        from psyche.user.build import DEFAULT_OUT_DIR

        return DEFAULT_OUT_DIR / "files"
    return None


def run(args: argparse.Namespace) -> int:
    kernel = args.kernel or _default_kernel()
    files = _files(args)
    if args.console_script and args.no_console:
        raise ValueError("--console-script runs the console: it does not go with --no-console")
    # The console keeps the machine's messages for its log instead of letting them cross the prompt,
    # and the machine out of the terminal's reach: Ctrl-C there interrupts a console command.
    console = not args.no_console
    machine = MachineProcess.start(kernel, args.nodes, args.debug_line_loss, args.restore,
                                   (*(flag for flag, on in (("--stoptime", args.stoptime),
                                                            ("--halted", args.halted)) if on),
                                    *network_argv(args),
                                    *reverse_argv(args),
                                    *(("--record", str(args.record)) if args.record else ()),
                                    *(("--replay", str(args.replay)) if args.replay else ()),
                                    *(("--netboot", str(args.netboot)) if args.netboot else ()),
                                    *(("--files", str(files)) if files else ())),
                                   stderr=subprocess.PIPE if console else None, own_session=console)
    if console:
        from mux.console.app import run_console  # prompt_toolkit and rich: only for the console

        try:
            return loop.run(run_console(args, kernel, machine.process, machine.console,
                                           machine.debug_line,
                                           lambda ended: machine.watch(asyncio.get_running_loop(), ended)))
        finally:
            machine.stop()

    async def main() -> int:
        mux = await start_mux(machine.debug_line, args, kernel)
        report_to_stderr(mux, "psyche up")
        machine.watch(asyncio.get_running_loop(), mux.end)
        print(f"psyche up: machine pid {machine.process.pid}; console {machine.console}\n"
              + attach_help(mux, str(kernel)), flush=True)
        return await serve_forever(mux)

    try:
        return loop.run(main())
    finally:
        machine.stop()
