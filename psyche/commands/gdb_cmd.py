"""`psyche gdb`: gdb-multiarch on one node of a running machine, ready to use.

    psyche gdb --node 2                     # kernel symbols, the Psyche commands, node 2's session
    psyche gdb --node 2 -- -batch -ex 'psyche vps'
    psyche gdb --machine                    # the whole machine: node k is thread k + 1

It starts gdb with the kernel ELF, sources the Psyche extension (gdbfront/gdbext/psyche.py) and
connects to the node's port on the mux (BASE + node, as `psyche up` listens), so nobody needs a
.gdbinit.  Before that it checks that something listens there, so that a machine that is not up,
a wrong --gdb-port or a node the machine does not have is one clear line, not a gdb prompt after
"Connection refused".
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import gdbfront.gdbext
from gdbfront.machine import ask_monitor
from psyche.commands.mux_cmd import DEFAULT_BASE_PORT, port_number
from psyche.kernel import build as kernel_build

EXTENSION = Path(gdbfront.gdbext.__file__).resolve().parent / "psyche.py"
MAX_NODES = 128
PROBE_SECONDS = 2.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "gdb", help="gdb-multiarch on a node: kernel symbols, the Psyche commands, connected",
        description="Start gdb-multiarch with the kernel's symbols and the Psyche gdb commands "
                    "(psyche nodes, realms, vps, ...), connected to one node through the mux. "
                    "Arguments after -- go to gdb (e.g. -- -batch -ex 'psyche vps').")
    parser.add_argument("--node", type=node_number, default=0, metavar="N", help="the node (default 0)")
    parser.add_argument("--gdb-port", type=port_number, default=DEFAULT_BASE_PORT, metavar="BASE",
                        help="the mux's base port: node k listens on BASE + k (default 3333, as psyche up)")
    parser.add_argument("--machine", action="store_true",
                        help="the whole machine instead of one node: every node a thread, on the mux's "
                             "machine port (BASE - 1)")
    parser.add_argument("--host", default="127.0.0.1", help="where the mux listens (default 127.0.0.1)")
    parser.add_argument("--kernel", type=Path, metavar="ELF",
                        help=f"the kernel the machine runs (default {kernel_build.DEFAULT_KERNEL_ELF})")
    parser.add_argument("--gdb", default="gdb-multiarch", metavar="PROGRAM", help="the gdb to run")
    parser.add_argument("gdb_args", nargs=argparse.REMAINDER, metavar="-- GDB-ARGS",
                        help="more arguments for gdb, after --")
    parser.set_defaults(handler=run)


def node_number(text: str) -> int:
    """--node: 0 to 127, or argparse's usage error."""
    try:
        node = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a node number") from None
    if not 0 <= node < MAX_NODES:
        raise argparse.ArgumentTypeError(f"no node {node}: a machine has nodes 0 to {MAX_NODES - 1} at most")
    return node


def _listens(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port is accepted.  The mux takes a connection that sends
    nothing and closes as a gdb that came and went: it changes nothing on the node."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def _machine_nodes(host: str, base: int, below: int) -> int | None:
    """How many nodes the mux at base serves, from `monitor status` on the port of a node below
    `below` that no gdb holds (a bare request that stops nothing); None if none answers."""
    for node in range(below):
        try:
            status = ask_monitor(host, base + node, "status", PROBE_SECONDS)
        except OSError:
            return None
        if status is not None:
            return len(re.findall(r"^[* ]node\s+\d+", status, re.MULTILINE))
    return None


def check_target(host: str, base: int, node: int) -> None:
    """Raise ValueError saying what is wrong unless something listens on node's port."""
    port = base + node
    if port > 65535:
        raise ValueError(f"node {node} would be on port {port}, past 65535: --gdb-port is the base port")
    if _listens(host, port):
        return
    if node > 0 and _listens(host, base):
        nodes = _machine_nodes(host, base, node)
        have = f"it has nodes 0 to {nodes - 1}" if nodes else f"it has fewer than {node + 1} nodes"
        raise ValueError(f"no node {node}: the mux at {host}:{base} answers, but nothing listens on "
                         f"{host}:{port} ({have}; node k is on port {base} + k)")
    raise ValueError(f"nothing listens on {host}:{port} (node {node} of a mux with base port {base}): "
                     f"start the machine first (psyche up), or give its --gdb-port")


def find_kernel(given: Path | None) -> Path:
    """The kernel ELF for gdb's symbols: the one given, or the one `psyche up` boots by default.

    Never rebuilt here: gdb needs the symbols of the kernel the machine runs, which a rebuild from
    newer sources would no longer be.  A stale default is used with a warning.
    """
    kernel = given or kernel_build.DEFAULT_KERNEL_ELF
    if not kernel.is_file():
        raise ValueError(f"no kernel ELF at {kernel}: build it (psyche build --kernel-only) or give --kernel")
    if given is None and kernel_build.is_stale(kernel):
        print(f"psyche gdb: warning: {kernel} is older than the kernel's sources; if the machine runs a "
              "newer build, its symbols will not match (give --kernel)", file=sys.stderr)
    return kernel


def gdb_command(gdb: str, kernel: Path, host: str, port: int, extra: list[str]) -> list[str]:
    if extra and extra[0] == "--":
        extra = extra[1:]
    return [gdb, str(kernel), "-ex", f"source {EXTENSION}", "-ex", f"target remote {host}:{port}", *extra]


def run(args: argparse.Namespace) -> int:
    gdb = shutil.which(args.gdb)
    if gdb is None:
        raise ValueError(f"{args.gdb} is not installed (apt-get install gdb-multiarch) or not on PATH")
    kernel = find_kernel(args.kernel)
    if args.machine:
        port = args.gdb_port - 1
        if not _listens(args.host, port):
            raise ValueError(f"nothing listens on {args.host}:{port}, the machine port of a mux with base "
                             f"port {args.gdb_port}: start the machine first (psyche up), or give its "
                             f"--gdb-port (a mux started with --machine-port 0 has none)")
    else:
        check_target(args.host, args.gdb_port, args.node)
        port = args.gdb_port + args.node
    command = gdb_command(gdb, kernel, args.host, port, args.gdb_args)
    sys.stdout.flush()
    sys.stderr.flush()
    # gdb takes this process's place: the terminal, its Ctrl-C and the exit status are gdb's alone.
    os.execv(gdb, command)
    return 0   # (not reached)
