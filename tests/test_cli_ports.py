"""`psyche up` and `psyche mux` with ports they cannot have, and a machine that does not start.

Issue 13, item 7: each printed a Python traceback, an error without the address, or two
lines that contradicted each other.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from mux_rig import free_base_port

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
        base = free_base_port(3)
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
