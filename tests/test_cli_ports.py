"""`psyche up` and `psyche mux` with ports they cannot have, and a machine that does not start.

Issue 13, item 7: each printed a Python traceback, an error without the address, or two
lines that contradicted each other.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gdbfront.machine import some_free_ports
from lld.testing import build_target_guest
from mux.server import Mux, MuxConfig

pytestmark = pytest.mark.timeout(120)


class _NoLink:
    pass


@pytest.mark.parametrize(("nodes", "base"), [(4, 65534), (1, 65536), (2, -5), (2, 0), (128, 65500)])
def test_ports_past_65535_are_refused_before_listening(nodes: int, base: int) -> None:
    async def main() -> None:
        mux = Mux(MuxConfig(nodes, base), _NoLink())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"do not fit 1\.\.65535: the base port must be at most"):
            await mux.start()

    asyncio.run(main())


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_a_busy_port_is_named_with_its_address(kind: int) -> None:
    async def main() -> None:
        base = some_free_ports(3)
        with socket.socket(socket.AF_INET, kind) as squatter:
            squatter.bind(("127.0.0.1", base + 1))
            if kind == socket.SOCK_STREAM:
                squatter.listen()
            mux = Mux(MuxConfig(3, base), _NoLink())  # type: ignore[arg-type]
            with pytest.raises(OSError) as raised:
                await mux.start()
            transport = "tcp" if kind == socket.SOCK_STREAM else "udp"
            address = f"{transport} 127.0.0.1:{base + 1}"
            assert str(raised.value).startswith(f"cannot listen on {address} for node 1: ")
        # What it did get is let go: the ports are free again.
        for port in (base, base + 1):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))

    asyncio.run(main())


# -- through the command line -----------------------------------------------------------------------

PSYCHE = [sys.executable, "-m", "psyche.cli"]


def psyche(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PSYCHE, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "message"), [
    (["up", "--gdb-port", "65534"],
     "psyche up: error: --gdb-port 65534 with 4 nodes needs ports up to 65537, "
     "past 65535: node k listens on BASE + k, so BASE must be at most 65532"),
    (["up", "--nodes", "2", "--gdb-port", "65535"], "BASE must be at most 65534"),
    (["up", "--gdb-port", "-5"], "psyche up: error: argument --gdb-port: -5 is not a port: 1 to 65535"),
    (["up", "--gdb-port", "x"], "argument --gdb-port: 'x' is not a port number"),
    (["up", "--nodes", "200"], "psyche up: error: argument --nodes: 200 nodes: a machine has 1 to 128"),
    (["mux", "--line", "loop://", "--gdb-port", "70000"],
     "psyche mux: error: argument --gdb-port: 70000 is not"),
])
def test_ports_and_node_counts_out_of_range_are_usage_errors(args: list[str], message: str) -> None:
    result = psyche(*args, "--no-console") if args[0] == "up" else psyche(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("psyche ")
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("console", [False, True])
def test_a_machine_that_does_not_start_says_why_in_one_line(tmp_path: Path, console: bool) -> None:
    """It printed its reason, then `psyche up` printed 'the machine did not start: no output'."""
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"not an elf")
    result = psyche("up", "--kernel", str(bad), *([] if console else ["--no-console"]))
    assert result.returncode == 2
    one_line = f"psyche up: the machine did not start: {bad}: not an ELF file"
    assert result.stderr.strip().splitlines() == [one_line]


def test_a_busy_udp_port_is_named_by_psyche_up() -> None:
    base = some_free_ports(3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", base + 2))
        result = psyche("up", "--no-console", "--nodes", "3", "--gdb-port", str(base),
                        "--kernel", str(build_target_guest().path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"psyche up: cannot listen on udp 127.0.0.1:{base + 2} for node 2: Address already in use"
    assert "Traceback" not in result.stderr
