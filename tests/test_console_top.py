"""`top`'s pieces against a fake debug line: the sampler, the rows and rates, the table, the screen.

No machine: `FakeLine` answers STATUS, READ_REGS of the counters and READ_MEM
of the kernel's records from plain data, counts what it was asked, and fails
on the nodes told to.  The real console's `top` is driven in
test_console_commands.py (a script's table) and test_console_e2e.py (tmux).
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from lld import protocol as p
from mux.console.symbols import Location
from mux.console.top import (
    CHROME_LINES,
    NO_VP,
    KernelPlaces,
    NodeSample,
    Sampler,
    TopScreen,
    top_rows,
    top_table,
)
from mux.link import LinkError

pytestmark = pytest.mark.timeout(30)

RAM = 0x8000_0000
NODE_RAM = 0x40_0000
PLACES = KernelPlaces(node_fields=0x1000, node_span=8, runq_at=0, current_at=4, vp_id=0x2000,
                      name_offset=0x10, name_size=16)
DESCRIPTION = p.MachineDescription(1, 1, 4, 4096, 4096, 16, 4, RAM, NODE_RAM, 10000, 10_000_000, "rv32ima")
THREAD = 0x8000_3000          # a thread record (physical), in node 0's RAM for every node: it does not matter


@dataclass
class FakeNode:
    state: int = p.STATE_RUNNING
    reason: int = p.REASON_NONE
    pc: int = 0xC000_0100
    priv: int = 1
    instret: int = 0
    remote: int = 0
    fetches: int = 0
    runq: int = 0
    current: int = THREAD
    vp: int = NO_VP
    silent: bool = False        # the line times out on this node
    unreadable: bool = False    # lld refuses its memory reads


@dataclass
class FakeLine:
    nodes: list[FakeNode]
    asked: list[tuple[int, str]] = field(default_factory=list)
    names: dict[int, bytes] = field(default_factory=lambda: {THREAD: b"daemon\0"})

    async def request(self, node: int, request: p.Request) -> p.Reply:
        self.asked.append((node, type(request).__name__))
        n = self.nodes[node]
        if n.silent:
            raise LinkError(f"node {node}: no reply after 40 attempts")
        if isinstance(request, p.GetStatus):
            status = p.Status(n.state, n.reason, n.priv, 0, 0, 0, n.pc, 0, 0, n.instret)
            return p.Reply(p.STATUS, p.OK, status)
        if isinstance(request, p.ReadRegs):
            return p.Reply(p.READ_REGS, p.OK, [0, 0, n.remote, 0, n.fetches, 0])
        assert isinstance(request, p.ReadMem)
        if n.unreadable:
            return p.Reply(p.READ_MEM, p.E_NOT_RAM, error=p.ErrorDetail(p.E_NOT_RAM, addr=request.addr))
        base = DESCRIPTION.ram_of(node)[0]
        if request.addr == base + PLACES.node_fields:
            data = n.runq.to_bytes(4, "little") + n.current.to_bytes(4, "little")
        elif request.addr == base + PLACES.vp_id:
            data = n.vp.to_bytes(4, "little")
        else:
            data = self.names[request.addr - PLACES.name_offset].ljust(request.length, b"\0")
        return p.Reply(p.READ_MEM, p.OK, data[:request.length])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def locate(node: int, pc: int) -> Location:
    return Location(pc, "clock_intr" if pc == 0xC000_0100 else None)


def screen_text(rows: object) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(rows)
    return console.export_text()


def two_sweeps(line: FakeLine, between: float = 2.0,
               sessions: dict[int, str] | None = None) -> tuple[str, Sampler]:
    clock = Clock()
    sampler = Sampler(line, DESCRIPTION, PLACES, clock=clock)
    nodes = range(len(line.nodes))

    async def go() -> str:
        before, _ = await sampler.sweep(nodes)
        clock.now += between
        for n in line.nodes:
            n.instret += 3_000_000
            n.remote += 500
            n.fetches += 20
        after, _ = await sampler.sweep(nodes)
        rows = top_rows({s.node: s for s in before}, after, locate, sessions or {})
        return screen_text(top_table(rows))

    return asyncio.run(go()), sampler


def row_of(text: str, node: int) -> str:
    return next(line for line in text.splitlines() if line.split()[:1] == [str(node)])


def test_rows_show_state_function_thread_vp_queue_and_rates_over_the_clock() -> None:
    line = FakeLine([FakeNode(runq=2, vp=5),
                     FakeNode(state=p.STATE_STOPPED, reason=p.REASON_BREAKPOINT, pc=0xC000_0200),
                     FakeNode(state=p.STATE_HELD), FakeNode(priv=0, pc=0x0012_7074)])
    text, _ = two_sweeps(line, between=2.0, sessions={1: "tcp 127.0.0.1:5000"})
    running = row_of(text, 0).split()
    assert running[:6] == ["0", "running", "clock_intr", "daemon", "5", "2"]
    assert running[6:9] == ["1.5M", "250", "10"]       # 3 M instructions, 500 and 20 references in 2 s
    stopped = row_of(text, 1)
    assert stopped.split()[1:4] == ["stopped", "gdb", "0xc0000200"]
    assert "breakpoint; gdb tcp 127.0.0.1:5000" in stopped
    assert row_of(text, 2).split()[1] == "held"
    assert row_of(text, 3).split()[2:4] == ["user", "0x00127074"]   # user code: no kernel symbol


def test_a_node_that_does_not_answer_or_refuses_reads_says_why_in_its_row() -> None:
    line = FakeLine([FakeNode(), FakeNode(silent=True), FakeNode(unreadable=True)])
    text, _ = two_sweeps(line)
    assert "no answer: node 1: no reply after 40 attempts" in row_of(text, 1)
    unreadable = row_of(text, 2)
    assert "running" in unreadable and "kernel records unreadable: not RAM at 0x80801000" in unreadable
    assert unreadable.split()[3:6] == ["-", "-", "-"]   # thread, vp, runq unknown; the rates still shown
    assert "1.5M" in unreadable


def test_a_rate_needs_two_readings_and_a_counter_that_went_back_is_a_restart() -> None:
    now = NodeSample(0, 10.0, p.Status(1, 0, 1, 0, 0, 0, 0, 0, 0, 100), p.RefCounters(0, 5, 0))
    (first,) = top_rows({}, [now], locate, {})
    assert (first.instructions, first.remote) == ("-", "-")
    later = NodeSample(0, 11.0, p.Status(1, 0, 1, 0, 0, 0, 0, 0, 0, 50), p.RefCounters(0, 5, 0))
    (second,) = top_rows({0: now}, [later], locate, {})
    assert (second.instructions, second.remote) == ("-", "0")


def test_a_steady_node_costs_four_requests_a_sweep_and_a_new_thread_one_more() -> None:
    line = FakeLine([FakeNode()])
    _, sampler = two_sweeps(line)
    assert len(line.asked) == 5 + 4                # the name once, then status, counters, two words
    line.asked.clear()
    line.names[0x8000_4000] = b"vp 3\0"
    line.nodes[0].current = 0x8000_4000
    (sample,), _ = asyncio.run(sampler.sweep([0]))
    assert sample.thread == "vp 3" and len(line.asked) == 5


def test_the_screen_reads_only_the_rows_that_fit_and_quits_with_q() -> None:
    line = FakeLine([FakeNode() for _ in range(128)])
    fits = DummyOutput().get_size().rows - CHROME_LINES

    async def session() -> TopScreen:
        with create_pipe_input() as keys:
            screen = TopScreen(Sampler(line, DESCRIPTION, PLACES), 128, 0.05, locate, dict,
                               input=keys, output=DummyOutput())

            async def press() -> None:
                while screen.state.refreshes < 3:      # it refreshes by itself
                    await asyncio.sleep(0.01)
                keys.send_text("\x1b[B")                 # Down: one row further
                while screen.state.first != 1 or screen.state.refreshes < 5:
                    await asyncio.sleep(0.01)
                keys.send_text("q")

            await asyncio.gather(screen.run(), press())
            return screen

    screen = asyncio.run(asyncio.wait_for(session(), 10))
    asked = {node for node, _ in line.asked}
    assert asked == set(range(fits + 1)) and screen.state.in_view() == range(1, fits + 1)


@pytest.mark.parametrize("key", ["\x1b", "\x03", "q"])
def test_escape_ctrl_c_and_q_quit(key: str) -> None:
    line = FakeLine([FakeNode()])

    async def session() -> int:
        with create_pipe_input() as keys:
            screen = TopScreen(Sampler(line, DESCRIPTION, PLACES), 1, 10.0, locate, dict,
                               input=keys, output=DummyOutput())
            running = asyncio.ensure_future(screen.run())
            while screen.state.refreshes < 1:
                await asyncio.sleep(0.01)
            keys.send_text(key)
            await running
            return screen.state.refreshes

    assert asyncio.run(asyncio.wait_for(session(), 10)) == 1    # (and not a wait for the 10 s rest)


def test_a_line_gone_for_good_ends_the_screen_with_the_error() -> None:
    class Gone:
        async def request(self, node: int, request: p.Request) -> p.Reply:
            raise RuntimeError("the line is gone")

    async def session() -> None:
        with create_pipe_input() as keys:
            await TopScreen(Sampler(Gone(), DESCRIPTION, PLACES), 1, 0.05, locate, dict,
                            input=keys, output=DummyOutput()).run()

    with pytest.raises(RuntimeError, match="the line is gone"):
        asyncio.run(asyncio.wait_for(session(), 10))
