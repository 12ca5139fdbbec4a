"""`psyche mux`: the gdb multiplexor on a machine's debug line."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import serial

from lld import protocol as p
from mux.link import BytePort, LinkError, LldLink
from mux.server import Mux, MuxConfig


def port_number(text: str) -> int:
    """--gdb-port: a TCP/UDP port, 1 to 65535, or argparse's usage error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: 1 to 65535")
    return port


def add_mux_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gdb-port", type=port_number, default=3333, metavar="BASE",
                        help="node k listens on TCP and UDP port BASE + k (default 3333)")
    parser.add_argument("--bind", default="127.0.0.1", metavar="HOST",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--no-udp", action="store_true", help="listen on TCP only")
    parser.add_argument("--lld-timeout", type=float, default=0.25, metavar="S",
                        help="retransmit an unanswered lld request after S seconds")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("mux", help="serve gdb sessions for every node over one debug line")
    parser.add_argument("--line", required=True, metavar="URL",
                        help="the debug line: a pty path, socket://HOST:PORT, rfc2217://..., or a device")
    add_mux_arguments(parser)
    parser.set_defaults(handler=run)


def open_line(url: str) -> BytePort:
    try:
        port = serial.serial_for_url(url, timeout=0.05)
    except (serial.SerialException, ValueError) as e:
        raise ValueError(f"cannot open the debug line {url!r}: {e}") from e
    # Typed as SerialBase, which does not declare in_waiting; every port class
    # serial_for_url makes (a device, socket://, rfc2217://, loop://) has it.
    return cast(BytePort, port)


async def start_mux(url: str, args: argparse.Namespace) -> Mux:
    """Open the line, ask lld how many nodes there are, and listen for gdb."""
    link = LldLink(open_line(url), timeout=args.lld_timeout)
    await link.start()
    try:
        description = await link.ok(0, p.Describe())
    except LinkError as e:
        await link.close()
        raise ValueError(f"no lld answers on {url}: {e}") from e
    assert isinstance(description, p.MachineDescription)
    mux = Mux(MuxConfig(description.nodes, args.gdb_port, args.bind, udp=not args.no_udp), link)
    await mux.start()
    return mux


def attach_help(mux: Mux, kernel: str | None) -> str:
    """The start-up banner: where each node listens, and one example node's gdb command lines.

    Both example lines name the same node and that node's port (TCP and UDP share it); the UDP
    line is left out when the mux does not listen on UDP.
    """
    config = mux.config
    elf = kernel or "KERNEL.elf"
    last = config.nodes - 1
    node = min(2, last)
    port = mux.port_of(node)
    kinds = "tcp/udp" if config.udp else "tcp"
    tcp_label = f"  attach gdb to node {node}:"
    udp_label = f"  node {node} over UDP:".ljust(len(tcp_label))
    text = (f"mux: {config.nodes} nodes; node k on {kinds} {config.host}:{config.base_port}+k "
            f"({config.base_port}..{config.base_port + last})\n"
            f"{tcp_label}  gdb-multiarch {elf} -ex 'target remote {config.host}:{port}'\n")
    if config.udp:
        text += f"{udp_label}  gdb-multiarch {elf} -ex 'target remote udp:{config.host}:{port}'\n"
    return text


async def serve_forever(mux: Mux) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await mux.close()
    await mux.link.close()


def run(args: argparse.Namespace) -> int:
    async def main() -> None:
        mux = await start_mux(args.line, args)
        print(attach_help(mux, None), flush=True)
        await serve_forever(mux)

    asyncio.run(main())
    return 0


