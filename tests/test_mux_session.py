"""The mux session's economies, checked request by request against an in-process machine.

gdb's software single step (a breakpoint at the next instruction and a
continue), its habit of removing every breakpoint at a stop and inserting them
again at a resume, and its many small reads must cost few lld round trips;
and none of those economies may change what the node does.  The machine runs
in the event loop (a round and lld's service a tick) behind a real LldLink, so
every lld request the session makes is seen and counted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from lld import protocol as p
from lld.attach import Lld
from lld.testing import TargetGuest, build_target_guest
from mux import packets as rsp
from mux.link import LldLink
from mux.session import NodeSession
from psyche.machine.hostline import BufferLine
from psyche.machine.machine import Machine

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


class _Port:
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

    def __init__(self, port: _Port) -> None:
        super().__init__(port, timeout=5.0)
        self.sent: Counter[str] = Counter()
        self.requests: list[p.Request] = []

    def submit(self, node: int, request: p.Request) -> asyncio.Future[p.Reply]:
        self.sent[type(request).__name__] += 1
        self.requests.append(request)
        return super().submit(node, request)


@dataclass
class Rig:
    machine: Machine
    lld: Lld
    link: CountingLink
    session: NodeSession
    sent_to_gdb: list[bytes] = field(default_factory=list)

    async def ask(self, request: object) -> bytes:
        """One gdb request; for a continue, waits for the stop reply."""
        before = len(self.sent_to_gdb)
        reply = await self.session.handle(request)
        if reply is not None:
            return reply
        for _ in range(2000):
            stops = [m for m in self.sent_to_gdb[before:] if m.startswith(b"T")]
            if stops:
                return stops[0]
            await asyncio.sleep(0.001)
        raise AssertionError("no stop reply")

    def pc(self) -> int:
        return self.machine.nodes[self.session.node].cpu.pc


def run(guest: TargetGuest, nodes: int, test: Callable[[Rig], Awaitable[None]], node: int = 0) -> None:
    async def main() -> None:
        machine = guest.boot(nodes)
        line = BufferLine()
        lld = Lld(machine, line)
        link = CountingLink(_Port(line))
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
        sent: list[bytes] = []

        async def no_monitor(session: NodeSession, command: str) -> str:
            return ""

        session = NodeSession(node, link, sent.append, no_monitor)
        rig = Rig(machine, lld, link, session, sent)
        try:
            await rig.ask(rsp.HaltReason())
            await test(rig)
        finally:
            stop.set()
            await ticker
            await link.close()

    asyncio.run(main())


def stop_pc(reply: bytes) -> int:
    """The pc a T stop reply expedites (register 0x20)."""
    value = reply.split(b";20:")[1][:8]
    return int.from_bytes(bytes.fromhex(value.decode()), "little")


async def to(rig: Rig, addr: int) -> bytes:
    """Continue to addr the way gdb does: insert, continue, remove."""
    assert await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, addr, 4)) == rsp.OK
    reply = await rig.ask(rsp.VCont((rsp.VContAction("c"),)))
    assert await rig.ask(rsp.Breakpoint(False, rsp.BreakpointType.SOFTWARE, addr, 4)) == rsp.OK
    return reply


def test_a_gdb_single_step_is_one_lld_step(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        await to(rig, guest.sym("spin_store"))
        assert rig.pc() == guest.sym("spin_store")
        rig.link.sent.clear()
        reply = await to(rig, guest.sym("spin_check"))      # gdb's stepi over `sw`
        assert reply.startswith(b"T05swbreak:;") and stop_pc(reply) == guest.sym("spin_check")
        assert rig.pc() == guest.sym("spin_check")
        # One STEP and the stop reply's registers (and a read-ahead of the code at pc);
        # no RESUME, no status poll, no breakpoint ever sent to lld.
        assert rig.link.sent["Step"] == 1 and rig.link.sent["ReadRegs"] == 1
        assert not {"Resume", "GetStatus", "SetBreakpoint", "ClearBreakpoint"} & set(rig.link.sent)
        assert guest.sym("spin_check") not in rig.lld.nodes[0].state.breakpoints

    run(guest, 1, test)


def test_a_continue_that_goes_further_gives_lld_the_breakpoints_first(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        spin_store = guest.sym("spin_store")
        await to(rig, guest.sym("spin_check"))
        rig.link.sent.clear()
        reply = await to(rig, spin_store)                   # round the loop
        assert reply.startswith(b"T05swbreak:;") and stop_pc(reply) == spin_store
        assert rig.link.sent["SetBreakpoint"] == 1 and rig.link.sent["Resume"] == 1
        counter = rig.machine.read_phys(guest.counter(0), 4)
        # gdb removed it at the stop; lld keeps it until the node is about to run again,
        # and a second lap needs no breakpoint traffic at all.
        assert spin_store in rig.lld.nodes[0].state.breakpoints
        rig.link.sent.clear()
        await to(rig, spin_store)
        assert "SetBreakpoint" not in rig.link.sent and "ClearBreakpoint" not in rig.link.sent
        assert "Step" not in rig.link.sent   # `sw` cannot reach spin_store: straight to RESUME
        assert int.from_bytes(rig.machine.read_phys(guest.counter(0), 4), "little") == \
            int.from_bytes(counter, "little") + 1
        # Before the node runs without it, lld loses it.
        await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, guest.sym("spin_check"), 4))
        await rig.ask(rsp.VCont((rsp.VContAction("c"),)))
        assert rig.pc() == guest.sym("spin_check")
        await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, guest.sym("spin_loop"), 4))
        await rig.ask(rsp.Breakpoint(False, rsp.BreakpointType.SOFTWARE, guest.sym("spin_check"), 4))
        await rig.ask(rsp.VCont((rsp.VContAction("c"),)))
        assert rig.pc() == guest.sym("spin_loop")
        assert set(rig.lld.nodes[0].state.breakpoints) == {guest.sym("spin_loop")}

    run(guest, 1, test)


def test_a_breakpoint_someone_else_set_stops_a_continue_and_stays(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        await to(rig, guest.sym("spin_store"))
        spin_check = guest.sym("spin_check")
        await rig.link.ok(1, p.SetBreakpoint(p.ANY_GEN, spin_check, p.BP_PANIC))   # not gdb's
        reply = await rig.ask(rsp.VCont((rsp.VContAction("c"),)))
        assert stop_pc(reply) == spin_check and rig.pc() == spin_check
        assert any(b"panic path" in bytes.fromhex(m[1:].decode()) for m in rig.sent_to_gdb
                   if m.startswith(b"O"))
        await to(rig, guest.sym("spin_loop"))   # the node runs on past it...
        assert rig.lld.nodes[1].state.breakpoints.get(spin_check) == p.BP_PANIC   # ...and it stays

    run(guest, 2, test, node=1)


def test_breakpoint_changes_do_not_cost_the_cached_code(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        spin_store = guest.sym("spin_store")
        await to(rig, spin_store)
        await rig.ask(rsp.ReadMemory(spin_store, 4))
        rig.link.sent.clear()
        for _ in range(3):
            await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, spin_store + 4, 4))
            assert rsp.hex_bytes(rig.machine.read_phys(spin_store, 4)) == \
                await rig.ask(rsp.ReadMemory(spin_store, 4))
            await rig.ask(rsp.Breakpoint(False, rsp.BreakpointType.SOFTWARE, spin_store + 4, 4))
            await rig.ask(rsp.ReadRegisters())
        assert sum(rig.link.sent.values()) == 0

    run(guest, 1, test)


def test_a_large_read_is_whole_and_a_failed_one_short(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        counters = guest.sym("counters")
        want = rig.machine.read_phys(counters, 3000)
        assert await rig.ask(rsp.ReadMemory(counters, 3000)) == rsp.hex_bytes(want)
        ram_end = rig.machine.nodes[0].ram_base + 0x400000 * len(rig.machine.nodes)
        got = await rig.ask(rsp.ReadMemory(ram_end - 1024, 4096))   # runs off the end of RAM
        assert got == rsp.hex_bytes(rig.machine.read_phys(ram_end - 1024, 1024))
        assert await rig.ask(rsp.ReadMemory(counters, 8)) == rsp.hex_bytes(want[:8])   # link not stuck

    run(guest, 1, test)


def test_a_gdb_that_goes_away_takes_its_removed_breakpoints_out_of_lld(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        spin_store = guest.sym("spin_store")
        await to(rig, spin_store)
        await to(rig, spin_store)                          # lld now holds it; gdb has removed it
        assert spin_store in rig.lld.nodes[0].state.breakpoints
        rig.session.close()
        assert rig.session._flush is not None
        assert await rig.session._flush is None
        assert rig.lld.nodes[0].state.breakpoints == {}

    run(guest, 1, test)


def test_a_continue_steps_first_only_where_one_instruction_can_reach_a_breakpoint() -> None:
    session = NodeSession(0, None, lambda _: None, None)  # type: ignore[arg-type]
    base = 0x8000_0000
    registers = [0] * 33
    registers[1] = base + 0x200                       # ra
    session.cache.registers = registers
    code = {
        0x00: 0x00100093,   # addi ra, zero, 1
        0x04: 0x0100006F,   # jal zero, +16
        0x08: 0xFE0008E3,   # beq zero, zero, -16
        0x0C: 0x00008067,   # jalr zero, 0(ra)
        0x10: 0x00000073,   # ecall
    }
    block = b"".join(code.get(i, 0x13).to_bytes(4, "little") for i in range(0, 64, 4))
    session.cache.blocks[base] = block

    def sure_not(offset: int, *targets: int) -> bool:
        return session._cannot_end_in_one_step(base + offset, {base + t for t in targets})

    assert sure_not(0x00, 0x40) and not sure_not(0x00, 0x04)          # plain: pc + 4
    assert sure_not(0x04, 0x08) and not sure_not(0x04, 0x14)          # jal: the target only
    assert not sure_not(0x08, 0x0C) and not sure_not(0x08, -0x08)     # branch: both ways
    assert sure_not(0x08, 0x10)
    assert not sure_not(0x0C, 0x200) and sure_not(0x0C, 0x10)         # jalr: through ra
    assert not sure_not(0x10, 0x40)                                   # ecall: who knows
    assert not session._cannot_end_in_one_step(base + 0x100, {base})  # code not cached
    assert session._cannot_end_in_one_step(base + 0x100, set())       # no breakpoints at all


def test_sequential_long_reads_are_read_ahead_and_not_hoarded(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        base = rig.machine.nodes[0].ram_base + 0x10000
        rig.machine.write_phys(base, bytes(range(256)) * 64)           # 16 KiB of pattern
        piece = 2048
        for i in range(2):
            assert await rig.ask(rsp.ReadMemory(base + i * piece, piece)) == \
                rsp.hex_bytes(rig.machine.read_phys(base + i * piece, piece))
        for _ in range(200):                                            # the read-ahead lands
            if rig.session.answer_now(rsp.ReadMemory(base + 2 * piece, piece)) is not None:
                break
            await asyncio.sleep(0.001)
        else:
            raise AssertionError("the third piece was not read ahead")
        assert rig.session._cached(base, piece) is None                 # delivered: dropped
        rig.machine.write_phys(base + 3 * piece, b"\xff" * 4)           # the node's memory is
        await to(rig, guest.sym("spin_store"))                          # re-read after it runs
        assert await rig.ask(rsp.ReadMemory(base + 3 * piece, 4)) == b"ffffffff"

    run(guest, 1, test)


def test_a_read_waiting_for_a_read_ahead_sends_nothing_more(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        base = rig.machine.nodes[0].ram_base + 0x10000
        session = rig.session
        await rig.ask(rsp.ReadMemory(base, 2048))
        await rig.ask(rsp.ReadMemory(base + 2048, 2048))
        ahead = base + 4096   # being read ahead: catch its second half answered, not yet absorbed
        for _ in range(10_000):
            second = session.cache.fetching.get(ahead + 1024)
            if second is not None and second.done():
                break
            await asyncio.sleep(0)
        else:
            raise AssertionError("never caught the read-ahead in flight")
        rig.link.requests.clear()
        assert await rig.ask(rsp.ReadMemory(ahead, 2048)) == rsp.hex_bytes(rig.machine.read_phys(ahead, 2048))
        # Nothing read twice: the only reads are the next read-ahead's.
        assert [r.addr for r in rig.link.requests if isinstance(r, p.ReadMem)] == [ahead + 2048, ahead + 3072]

    run(guest, 1, test)
