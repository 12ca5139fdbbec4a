"""An in-process mux for tests: a machine ticking in the event loop, a real LldLink and a real Mux.

The machine runs a round and lld's service every tick of the event loop, as
the Runner does between rounds; the link reaches it through a BufferLine.
Tests talk to the mux through `Conversation`s fed directly (no sockets), or
through the Mux's real TCP and UDP listeners on free ports.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from gdbfront.machine import some_free_ports
from lld import protocol as p
from lld.attach import Lld
from lld.testing import TargetGuest
from mux.link import LldLink
from mux.rsp import Packet, RspConnection
from mux.server import Mux, MuxConfig, _Conversation, _MachinePort, _NodePort
from psyche.machine.hostline import BufferLine
from psyche.machine.machine import Machine


class LinePort:
    """The link's port, with the machine on the far side; nothing to read (the machine pushes)."""

    def __init__(self, line: BufferLine) -> None:
        self.line = line

    def read(self, size: int = 1) -> bytes:
        time.sleep(0.02)
        return b""

    def write(self, data: bytes) -> int:
        self.line.feed(data)
        return len(data)

    def close(self) -> None:
        return None

    @property
    def in_waiting(self) -> int:
        return 0


class CountingLink(LldLink):
    """An LldLink that counts the requests it is given, by type."""

    def __init__(self, port: LinePort, **kwargs: float) -> None:
        super().__init__(port, **kwargs)  # type: ignore[arg-type]
        self.sent: Counter[str] = Counter()
        self.requests: list[p.Request] = []

    def submit(self, node: int, request: p.Request) -> asyncio.Future[p.Reply]:
        future = super().submit(node, request)   # (first: steps held for the node are queued first)
        self.sent[type(request).__name__] += 1
        self.requests.append(request)
        return future


@dataclass
class MuxRig:
    machine: Machine
    lld: Lld
    link: CountingLink
    mux: Mux
    #: What escaped into the event loop (exceptions in callbacks, tasks' unretrieved exceptions)
    #: and what the mux logged as a failure: `running_mux` fails the test if anything is here.
    errors: list[str] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)

    def check(self) -> None:
        """Fail if anything escaped so far."""
        gc.collect()   # tasks and futures whose exception nobody retrieved report it when collected
        assert not self.errors, "\n".join(self.errors)

    def conversation(self, node: int = 0, *, no_ack_mode: bool = True) -> Client:
        """A gdb on node, fed straight into the mux's codec and session (no socket)."""
        client = Client(self)
        client.conversation = _Conversation(_NodePort(self.mux, node), client.received,
                                            no_ack_mode=no_ack_mode,
                                            peer=f"rig client {len(self.clients)}", transport="rig",
                                            hang_up=lambda why: None)
        self.clients.append(client)
        return client

    def machine_conversation(self, *, no_ack_mode: bool = True) -> Client:
        """A gdb on the whole-machine port (every node no other gdb holds), fed straight in."""
        client = Client(self)
        client.conversation = _Conversation(_MachinePort(self.mux), client.received,
                                            no_ack_mode=no_ack_mode,
                                            peer=f"rig client {len(self.clients)}", transport="rig",
                                            hang_up=lambda why: None)
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self.clients:
            if client.conversation is not None:
                client.conversation.close()
                client.conversation.release()
                client.conversation = None


@dataclass
class Client:
    """The gdb end of a Conversation: frames packets, decodes what the mux sends back."""

    rig: MuxRig
    conversation: _Conversation | None = None
    codec: RspConnection = field(default_factory=lambda: RspConnection(max_packet_size=1 << 20))
    wire: bytearray = field(default_factory=bytearray)
    packets: list[bytes] = field(default_factory=list)

    def received(self, data: bytes) -> None:
        self.wire += data
        self.codec.receive_data(data)
        while (event := self.codec.next_event()) is not None:
            if isinstance(event, Packet):
                self.packets.append(event.payload)

    def send(self, payload: bytes) -> None:
        assert self.conversation is not None
        self.conversation.feed(RspConnection().send_packet(payload))

    def feed(self, data: bytes) -> None:
        assert self.conversation is not None
        self.conversation.feed(data)

    async def replies(self, count: int, timeout: float = 10.0, *, skip_output: bool = True) -> list[bytes]:
        """Wait until `count` replies (console output packets aside) have come; returns them all."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = [m for m in self.packets if not (skip_output and m.startswith(b"O") and m != b"OK")]
            if len(got) >= count:
                return got
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(got)} replies of {count}: {got[-5:]!r}")
            await asyncio.sleep(0.001)

    async def ask(self, payload: bytes, timeout: float = 10.0) -> bytes:
        before = len([m for m in self.packets if not (m.startswith(b"O") and m != b"OK")])
        self.send(payload)
        return (await self.replies(before + 1, timeout))[before]


@asynccontextmanager
async def running_mux(guest: TargetGuest, nodes: int = 2, *, listen: bool = False,
                      timeout: float = 5.0, max_attempts: int = 40) -> AsyncIterator[MuxRig]:
    """A booted guest on `nodes` nodes with a Mux over it (listening on free ports if `listen`)."""
    machine = guest.boot(nodes)
    line = BufferLine()
    lld = Lld(machine, line)
    link = CountingLink(LinePort(line), timeout=timeout, max_attempts=max_attempts)
    await link.start()
    stop = asyncio.Event()

    async def tick_forever() -> None:   # the Runner's order: a round, then lld's service
        while not stop.is_set():
            if not machine.idle():
                machine.run_round()
            lld.service()
            out = line.take_output()
            if out:
                link._on_data(out)
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick_forever())
    for _ in range(20):
        await asyncio.sleep(0)   # the king starts the other nodes
    config = MuxConfig(nodes, some_free_ports(nodes) if listen else 0)
    mux = Mux(config, link)
    if listen:
        await mux.start()
    rig = MuxRig(machine, lld, link, mux)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: rig.errors.append(
        f"{context.get('message')}: {context.get('exception')!r} {context.get('task', '')}"))
    recorder = _Recorder(rig.errors)
    logging.getLogger("mux").addHandler(recorder)
    try:
        yield rig
        rig.close_clients()
        await asyncio.sleep(0.01)
        rig.check()
    finally:
        logging.getLogger("mux").removeHandler(recorder)
        await mux.close()
        stop.set()
        await ticker
        await link.close()
        loop.set_exception_handler(None)


class _Recorder(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(self.format(record))


LiveRig = tuple[asyncio.AbstractEventLoop, MuxRig, list[int]]


def live_rig(guest: TargetGuest, nodes: int = 2) -> Iterator[LiveRig]:
    """For a module-scoped fixture: one machine and mux on a loop of its own for every example of
    a fuzzing test (their state carries over, as in a long session), and node 0's registers as
    it started."""
    loop = asyncio.new_event_loop()
    context = running_mux(guest, nodes)
    rig = loop.run_until_complete(context.__aenter__())

    async def first_registers() -> list[int]:
        handle = rig.mux.nodes[0]
        await handle.stop()
        return list(await handle.registers())

    registers = loop.run_until_complete(first_registers())
    yield loop, rig, registers
    loop.run_until_complete(context.__aexit__(None, None, None))
    loop.close()
