"""`psyche fileserver DIR`: the host side of the machine's file service, a TFTP server.

TFTP (RFC 1350) with the option negotiation, block size and transfer size options (RFC 2347,
2348, 2349), over the loopback interface, where the machine's user-mode network forwards the
guest's datagrams (docs/network.md).  The server is tftpy's, a maintained pure-Python one, so
any TFTP client checks it and nothing runs as a system daemon.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import tftpy

from psyche.commands.mux_cmd import port_number

DEFAULT_PORT = 6969   # TFTP's own port, 69, needs root


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fileserver", help="serve a directory to the machine over TFTP (docs/network.md)")
    p.add_argument("directory", type=Path, help="the files to serve; uploads land here too")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, metavar="PORT",
                   help=f"UDP port on 127.0.0.1 (default {DEFAULT_PORT}; the guest reaches it as "
                        f"10.0.2.2:PORT)")
    p.add_argument("--bind", default="127.0.0.1", metavar="HOST", help="address to listen on")
    p.add_argument("--timeout", type=float, default=1.0, metavar="S",
                   help="send a block again after S seconds without its ACK (default 1)")
    p.add_argument("--retries", type=int, default=20, metavar="N",
                   help="give a transfer up after N sends without an answer (default 20)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    directory = args.directory.resolve()
    if not directory.is_dir():
        raise ValueError(f"{args.directory}: no such directory")
    logging.getLogger("tftpy").setLevel(logging.WARNING)   # (it logs every packet at INFO)
    server = tftpy.TftpServer(str(directory))
    print(f"psyche fileserver: serving {directory} over TFTP on udp {args.bind}:{args.port}",
          file=sys.stderr, flush=True)
    try:
        server.listen(args.bind, args.port, timeout=args.timeout, retries=args.retries)
    except tftpy.TftpException as e:
        raise ValueError(f"TFTP server: {e}") from e
    return 0
