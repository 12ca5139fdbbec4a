"""`psyche mux`: the gdb multiplexor on a machine's debug line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import cast

import serial

from lld import protocol as p
from mux import loop
from mux.link import GIVE_UP_SILENT, BytePort, LinkDown, LinkError, LldLink, SocketPort
from mux.server import GDB_IDLE_TIMEOUT, Mux, MuxConfig
from psyche.kernel.build import DEFAULT_KERNEL_ELF

#: Node k of a machine listens on DEFAULT_BASE_PORT + k unless --gdb-port says otherwise.
DEFAULT_BASE_PORT = 3333

#: How long the mux waits for lld's first answer: the machine may still be starting.
FIRST_ANSWER_SECONDS = 10.0


def port_number(text: str) -> int:
    """--gdb-port: a TCP/UDP port, 1 to 65535, or argparse's usage error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: 1 to 65535")
    return port


def machine_port_number(text: str) -> int:
    return 0 if text.strip() == "0" else port_number(text)


def machine_port(args: argparse.Namespace) -> int | None:
    """The whole-machine port: --machine-port, else the port below the nodes' (none below 2)."""
    if args.machine_port is not None:
        return args.machine_port or None
    return args.gdb_port - 1 if args.gdb_port > 1 else None


def add_mux_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gdb-port", type=port_number, default=DEFAULT_BASE_PORT, metavar="BASE",
                        help="node k listens on TCP and UDP port BASE + k (default 3333)")
    parser.add_argument("--machine-port", type=machine_port_number, metavar="PORT",
                        help="one gdb for the whole machine, every node a thread, on TCP port PORT "
                             "(default BASE - 1; 0: none)")
    parser.add_argument("--bind", default="127.0.0.1", metavar="HOST",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--no-udp", action="store_true", help="listen on TCP only")
    parser.add_argument("--lld-timeout", type=float, default=0.25, metavar="S",
                        help="retransmit an unanswered lld request after S seconds")
    parser.add_argument("--lld-give-up", type=float, default=GIVE_UP_SILENT, metavar="S",
                        help=f"fail an lld request when nothing at all has come from the debug line for S "
                             f"seconds (default {GIVE_UP_SILENT:g}: under gdb's remotetimeout of 2 s; raise "
                             f"both on a slow line)")
    parser.add_argument("--gdb-idle-timeout", type=float, default=GDB_IDLE_TIMEOUT, metavar="S",
                        help=f"drop a gdb connection that sends no packet within S seconds of connecting "
                             f"(default {GDB_IDLE_TIMEOUT:g}; 0: never); a gdb that has spoken is never "
                             f"dropped for being idle (docs/failure-modes.md)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("mux", help="serve gdb sessions for every node over one debug line")
    parser.add_argument("--line", required=True, metavar="URL",
                        help="the debug line: a pty path, socket://HOST:PORT, rfc2217://..., or a device")
    parser.add_argument("--kernel", type=Path, metavar="ELF",
                        help="the kernel ELF the machine runs: gdb is then shown each node's kernel threads "
                             "(without it, each node is one thread)")
    add_mux_arguments(parser)
    parser.set_defaults(handler=run)


def open_line(url: str) -> BytePort:
    try:
        if url.startswith("socket://"):
            return SocketPort.connect(url)
        port = serial.serial_for_url(url, timeout=0.05)
    except (serial.SerialException, ValueError, OSError) as e:
        raise ValueError(f"cannot open the debug line {url!r}: {e}") from e
    # Typed as SerialBase, which does not declare in_waiting; every port class
    # serial_for_url makes (a device, socket://, rfc2217://, loop://) has it.
    return cast(BytePort, port)


async def start_mux(url: str, args: argparse.Namespace, kernel: Path | None = None) -> Mux:
    """Open the line, ask lld how many nodes there are, and listen for gdb.

    kernel: the ELF the machine runs, whose DWARF tells the mux where the kernel's threads are.
    """
    link = LldLink(open_line(url), timeout=args.lld_timeout, give_up=args.lld_give_up)
    await link.start()
    deadline = asyncio.get_running_loop().time() + FIRST_ANSWER_SECONDS
    while True:
        try:
            description = await link.ok(0, p.Describe())
            break
        except LinkError as e:
            # A silent line fails a request in 1.5 s: ask again, while the machine may be starting.
            if isinstance(e, LinkDown) or asyncio.get_running_loop().time() > deadline:
                await link.close()
                raise ValueError(f"no lld answers on {url}: {e}") from e
    assert isinstance(description, p.MachineDescription)
    mux = Mux(MuxConfig(description.nodes, args.gdb_port, args.bind, udp=not args.no_udp,
                        gdb_idle_timeout=args.gdb_idle_timeout, kernel=kernel,
                        machine_port=machine_port(args)), link)
    await mux.start()
    return mux


def attach_help(mux: Mux, kernel: str | None) -> str:
    """The start-up banner: where each node listens, and one example node's gdb command lines.

    Every example line names the same node and that node's port (TCP and UDP share it); the UDP
    line is left out when the mux does not listen on UDP.  The last is `psyche gdb`, the same
    session with the Psyche commands loaded, for whoever has no .gdbinit sourcing them.
    """
    config = mux.config
    elf = kernel or "KERNEL.elf"
    last = config.nodes - 1
    node = min(2, last)
    port = mux.port_of(node)
    kinds = "tcp/udp" if config.udp else "tcp"
    gdb = f"gdb-multiarch {elf} -ex 'target remote"
    lines = [(f"attach gdb to node {node}:", f"{gdb} {config.host}:{port}'")]
    if config.udp:
        lines.append((f"node {node} over UDP:", f"{gdb} udp:{config.host}:{port}'"))
    if config.machine_port:
        lines.append(("the whole machine:", f"{gdb} {config.host}:{config.machine_port}'   "
                                            f"(node k is thread k + 1)"))
    options = [f"--node {node}"]
    if config.base_port != DEFAULT_BASE_PORT:
        options.append(f"--gdb-port {config.base_port}")
    if config.host != "127.0.0.1":
        options.append(f"--host {config.host}")
    if kernel is not None and Path(kernel).resolve() != DEFAULT_KERNEL_ELF:
        options.append(f"--kernel {kernel}")
    lines.append(("with the Psyche commands:", f"psyche gdb {' '.join(options)}"))
    width = max(len(label) for label, _ in lines)
    return (f"mux: {config.nodes} nodes; node k on {kinds} {config.host}:{config.base_port}+k "
            f"({config.base_port}..{config.base_port + last})\n"
            + "".join(f"  {label.ljust(width)}  {command}\n" for label, command in lines))


def report_to_stderr(mux: Mux, who: str) -> None:
    """What the mux does on its own (the line goes silent, a session is dropped, the end), on stderr."""
    mux.add_listener(lambda source, text: print(f"{who}: {text}", file=sys.stderr, flush=True))


async def serve_forever(mux: Mux) -> int:
    """Serve until SIGINT or SIGTERM (exit status 0) or until the mux ends by itself (1: the machine
    or its debug line is gone for good, docs/failure-modes.md)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    finished = asyncio.ensure_future(mux.finished.wait())
    await asyncio.wait({stopped, finished}, return_when=asyncio.FIRST_COMPLETED)
    for waiter in (stopped, finished):
        waiter.cancel()
    if mux.ended is not None:
        await asyncio.sleep(0.1)   # the last words to gdb (console output, the closes) go out
    await mux.close()
    await mux.link.close()
    return 1 if mux.ended is not None else 0


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        mux = await start_mux(args.line, args, args.kernel)
        report_to_stderr(mux, "psyche mux")
        print(attach_help(mux, str(args.kernel) if args.kernel else None), flush=True)
        return await serve_forever(mux)

    return loop.run(main())


