"""The debug line failing under the mux's LldLink: silent, hung up, declared down (issue 13, item 4).

gdb gives up on a reply after 3 x remotetimeout (2 s by default) and is out of step from
then on; the link used to retry for 10 s.  A silent line must fail each request in time,
a line that hung up must fail everything at once, and listeners must hear of both.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from lld import protocol as p
from lld.codec import Frame, encode_frame
from mux.link import GIVE_UP_SILENT, LinkDown, LinkError, LldLink
from psyche.commands.mux_cmd import open_line

pytestmark = pytest.mark.timeout(30)


class DeadPort:
    """A line into which requests vanish: a machine stopped (SIGSTOP) or hung, a cable pulled."""

    def __init__(self) -> None:
        self.written = bytearray()

    def read(self, size: int = 1) -> bytes:
        time.sleep(0.02)
        return b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def close(self) -> None:
        return None

    @property
    def in_waiting(self) -> int:
        return 0


async def _timed(link: LldLink, node: int, request: p.Request) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        await link.request(node, request)
    except LinkError as e:
        return time.monotonic() - started, e
    return time.monotonic() - started, None


def test_a_silent_line_fails_each_request_within_gdbs_timeout_and_recovers() -> None:
    async def main() -> None:
        port = DeadPort()
        link = LldLink(port)  # type: ignore[arg-type]  # a BytePort
        heard: list[str] = []
        link.add_listener(heard.append)
        await link.start()
        try:
            took, error = await _timed(link, 2, p.GetStatus())
            assert isinstance(error, LinkError) and not isinstance(error, LinkDown)
            assert "nothing has come from the debug line" in str(error)
            assert GIVE_UP_SILENT <= took < 2.0, took          # gdb's remotetimeout is 2 s
            assert link.silent and link.down is None
            assert heard and "silent" in heard[0]
            # Still silent: the next request is sent again, and fails in the same time.
            sent = len(port.written)
            took, error = await _timed(link, 1, p.GetStatus())
            assert isinstance(error, LinkError) and took < 2.0 and len(port.written) > sent
            # The line comes back: the first byte ends the silence; a reply is a reply again.
            waiting = link.submit(1, p.GetStatus())
            await asyncio.sleep(0.05)
            (pending,) = link.client.outstanding()
            status = p.Status(p.STATE_RUNNING, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            link._on_data(encode_frame(Frame(node=1, seq=pending.seq, code=p.GetStatus.code,
                                             status=p.OK, payload=status.encode(), reply=True)))
            assert (await waiting).ok
            assert not link.silent and heard[-1] == "the debug line answers again"
        finally:
            await link.close()

    asyncio.run(main())


def test_a_pty_whose_machine_side_closes_fails_everything_at_once() -> None:
    """The machine process ends: its pty master closes, and the mux's side reads EIO for good."""
    async def main() -> None:
        master, slave = os.openpty()
        link = LldLink(open_line(os.ttyname(slave)))
        os.close(slave)
        heard: list[str] = []
        link.add_listener(heard.append)
        await link.start()
        try:
            waiting = [link.submit(node, p.GetStatus()) for node in (0, 1, 1)]
            await asyncio.sleep(0.05)
            started = time.monotonic()
            os.close(master)
            for future in waiting:
                with pytest.raises(LinkDown, match="hung up"):
                    await future
            assert time.monotonic() - started < 0.5
            assert link.down is not None and heard == [link.down]
            with pytest.raises(LinkDown):           # and anything asked afterwards, at once
                await asyncio.wait_for(link.request(2, p.GetStatus()), 0.1)
        finally:
            await link.close()

    asyncio.run(main())


def test_declare_down_fails_what_waits_and_what_comes() -> None:
    async def main() -> None:
        link = LldLink(DeadPort())  # type: ignore[arg-type]  # a BytePort
        await link.start()
        try:
            waiting = [link.submit(0, p.GetStatus()), link.submit(0, p.ReadRegs())]
            link.declare_down("the machine process ended (killed by signal 9)")
            for future in waiting:
                with pytest.raises(LinkDown, match="killed by signal 9"):
                    await future
            with pytest.raises(LinkDown, match="killed by signal 9"):
                await link.request(3, p.GetStatus())
            assert link.stats[0].failures == 2 and link.stats[3].failures == 1
        finally:
            await link.close()

    asyncio.run(main())


def test_gdb_gets_replies_it_takes_as_errors_when_the_line_is_down() -> None:
    """Each packet's failure reply as gdb-multiarch 13 takes it (docs/failure-modes.md).

    Console output (`O`) only where gdb expects it (a resume, a monitor command): anywhere
    else gdb parses it as the hex of its reply ("Invalid hex digit 116").  Never an error
    to `?`: gdb 13 spins forever on one.
    """
    from mux import packets as rsp
    from mux.gdb import GdbSession
    from mux.node import NodeHandle

    async def main() -> None:
        link = LldLink(DeadPort())  # type: ignore[arg-type]  # a BytePort
        await link.start()
        link.declare_down("the machine process ended (killed by signal 9)")
        sent: list[bytes] = []

        async def monitor(session: GdbSession, line: str) -> str:
            raise LinkError("unreachable")

        session = GdbSession(NodeHandle(2, link), sent.append, monitor)

        async def ask(packet: bytes) -> tuple[bytes | None, list[bytes]]:
            sent.clear()
            reply = await session.handle_request(rsp.parse_request(packet))
            return reply, list(sent)

        try:
            assert await ask(b"?") == (b"T05thread:1;", [])
            reply, output = await ask(b"g")
            assert reply == b"E.mux: the machine process ended (killed by signal 9)" and not output
            assert await ask(b"m80000000,4") == (b"E05", [])
            assert await ask(b"p20") == (b"E05", [])
            reply, output = await ask(b"vCont;c")
            assert reply == b"E05" and output == [rsp.console_output(
                b"mux: the machine process ended (killed by signal 9)\n")]
            reply, output = await ask(b"qRcmd," + b"status".hex().encode())
            assert reply == b"OK" and len(output) == 1 and output[0].startswith(b"O")
            assert await ask(b"D") == (b"OK", [])
        finally:
            await link.close()

    asyncio.run(main())
