"""A gdb session's economies and debug semantics, checked request by request against an in-process machine.

gdb's software single step (a breakpoint at the next instruction and a
continue), its habit of removing every breakpoint at a stop and inserting them
again at a resume, and its many small reads must cost few lld round trips;
and none of those economies may change what the node does.  The machine runs
in the event loop (a round and lld's service a tick) behind a real LldLink, so
every lld request the session makes is seen and counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from mux_rig import CountingLink, LinePort

from lld import protocol as p
from lld.attach import Lld
from lld.testing import TargetGuest, build_target_guest
from mux import packets as rsp
from mux.ahead import HOLD_SECONDS, StepNotMade
from mux.gdb import GdbSession
from mux.memory import MAX_AGE, WORKING_SET_STOPS, AddressSpace, MemoryCache, WorkingSet
from mux.node import NodeHandle
from mux.server import PACKET_SIZE, Mux, MuxConfig
from psyche import rv32
from psyche.machine.hostline import BufferLine
from psyche.machine.machine import Machine

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


@dataclass
class Rig:
    machine: Machine
    lld: Lld
    link: CountingLink
    session: GdbSession
    sent_to_gdb: list[bytes] = field(default_factory=list)

    async def ask(self, request: object) -> bytes:
        """One gdb request; for a continue, waits for the stop reply."""
        before = len(self.sent_to_gdb)
        reply = await self.session.handle_request(request)  # type: ignore[arg-type]
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
        link = CountingLink(LinePort(line), timeout=5.0)
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

        async def no_monitor(session: GdbSession, command: str) -> str:
            return ""

        session = GdbSession(NodeHandle(node, link), sent.append, no_monitor, packet_size=PACKET_SIZE)
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
        # One STEP, whose reply carries the registers and the code around pc: nothing else,
        # no RESUME, no status poll, no register or code read, no breakpoint ever sent to lld.
        assert rig.link.sent == {"Step": 1}, rig.link.sent
        assert not {"Resume", "GetStatus", "ReadRegs", "SetBreakpoint", "ClearBreakpoint"} \
            & set(rig.link.sent)
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
        await to(rig, guest.sym("spin_check"))              # gdb's step over the breakpoint at pc
        await to(rig, spin_store)
        assert "SetBreakpoint" not in rig.link.sent and "ClearBreakpoint" not in rig.link.sent
        # The step over is one STEP; `lw` at spin_check cannot reach spin_store: straight to RESUME.
        assert rig.link.sent["Step"] == 1 and rig.link.sent["Resume"] == 1
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


def test_a_resume_at_a_breakpoint_stops_at_once_as_hardware_does(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        spin_store = guest.sym("spin_store")
        await to(rig, spin_store)
        counter = rig.machine.read_phys(guest.counter(0), 4)
        stops = rig.machine.nodes[0].stops
        rig.link.sent.clear()
        # `jump *$pc` with a breakpoint there: gdb resumes without stepping over it.
        reply = await to(rig, spin_store)
        assert reply.startswith(b"T05swbreak:;") and stop_pc(reply) == spin_store
        assert not {"Step", "Resume"} & set(rig.link.sent)
        assert rig.machine.read_phys(guest.counter(0), 4) == counter   # nothing executed
        assert rig.machine.nodes[0].stops == stops
        # With an explicit address (`c ADDR`) too.
        await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, guest.sym("spin_loop"), 4))
        reply = await rig.ask(rsp.Continue(guest.sym("spin_loop")))
        assert reply.startswith(b"T05swbreak:;") and stop_pc(reply) == guest.sym("spin_loop")
        assert rig.machine.read_phys(guest.counter(0), 4) == counter

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


def test_a_continue_from_someone_elses_breakpoint_gets_past_it_with_an_interrupt_pending(
        guest: TargetGuest) -> None:
    """The resume steps over it with interrupts masked, then the interrupt is taken.

    Resuming straight away would take the interrupt first, and its handler would
    return onto the breakpoint: the node would stop again where it was.
    """
    async def test(rig: Rig) -> None:
        spin_check, scratch = guest.sym("spin_check"), guest.sym("scratch")
        await to(rig, spin_check)
        await rig.link.ok(0, p.SetBreakpoint(p.ANY_GEN, spin_check, p.BP_PANIC))   # not gdb's
        # Handler at scratch: t0 = 2; clear mip.SSIP; mret.  Then a software interrupt pending.
        handler = (0x00200293, 0x3442B073, 0x30200073)
        rig.machine.write_phys(scratch, b"".join(w.to_bytes(4, "little") for w in handler))
        csr = p.REG_CSR_BASE
        await rig.session.handle.write_registers([(csr + 0x305, scratch), (csr + 0x303, 0),
                                                  (csr + 0x304, 2), (csr + 0x344, 2),
                                                  (csr + 0x300, 8)])
        reply = await to(rig, guest.sym("spin_loop"))
        assert stop_pc(reply) == guest.sym("spin_loop"), reply
        assert rig.machine.nodes[0].cpu.csr.read(0x344, 3, 0, 0) & 2 == 0   # the interrupt was taken

    run(guest, 1, test)


def test_detach_takes_out_this_gdbs_breakpoints_only(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        spin_check, spin_loop = guest.sym("spin_check"), guest.sym("spin_loop")
        await rig.link.ok(0, p.SetBreakpoint(p.ANY_GEN, guest.sym("panic"), p.BP_PANIC))   # the machine's
        await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, spin_check, 4))
        await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, guest.sym("panic"), 4))
        await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, spin_loop, 4))
        assert await rig.session.run_control.synced()   # as before the node runs
        assert set(rig.lld.nodes[0].state.breakpoints) == {spin_check, spin_loop, guest.sym("panic")}
        assert await rig.ask(rsp.Detach()) == rsp.OK
        assert rig.lld.nodes[0].state.breakpoints == {guest.sym("panic"): p.BP_PANIC}
        assert rig.machine.nodes[0].state.value == "running"

    run(guest, 1, test)


def test_what_gdb_read_at_one_stop_comes_with_the_next(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        await to(rig, guest.sym("spin_store"))
        data = rig.machine.nodes[0].ram_base + 0x20000        # far from the code: not in its window
        rig.machine.write_phys(data, b"before..")
        assert await rig.ask(rsp.ReadMemory(data, 8)) == b"before..".hex().encode()
        rig.machine.write_phys(data, b"after...")             # changed behind the stopped node
        rig.link.requests.clear()
        await to(rig, guest.sym("spin_check"))                # a stepi: one lld STEP ...
        steps = [r for r in rig.link.requests if isinstance(r, p.Step)]
        assert (data, 64) in [(m.addr, m.length) for s in steps for m in s.prefetch]
        rig.link.requests.clear()
        # ... whose reply brought the block gdb read last time, as it is now: no read of it.
        assert await rig.ask(rsp.ReadMemory(data, 8)) == b"after...".hex().encode()
        assert not [r for r in rig.link.requests if isinstance(r, p.ReadMem)]

    run(guest, 1, test)


def test_an_address_lld_cannot_read_is_asked_once_a_stop(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        await to(rig, guest.sym("spin_store"))
        reads_of_zero = lambda: [r for r in rig.link.requests if isinstance(r, p.ReadMem) and r.addr == 0]  # noqa: E731
        refused = await rig.ask(rsp.ReadMemory(0, 4))          # no RAM at 0: gdb unwinding too far
        assert refused.startswith(b"E") and len(reads_of_zero()) == 1
        assert await rig.ask(rsp.ReadMemory(0, 4)) == refused   # again at this stop: not asked again
        assert len(reads_of_zero()) == 1
        rig.link.requests.clear()
        await to(rig, guest.sym("spin_check"))                # the next stop brings lld's word with it
        steps = [r for r in rig.link.requests if isinstance(r, p.Step)]
        assert (0, 64) in [(m.addr, m.length) for s in steps for m in s.prefetch]
        assert await rig.ask(rsp.ReadMemory(0, 4)) == refused and not reads_of_zero()

    run(guest, 1, test)


def test_the_working_set_keeps_what_recent_stops_read_and_forgets_the_rest() -> None:
    current, physical = AddressSpace(), AddressSpace(p.SPACE_PHYS)
    caches = {space: MemoryCache(lambda request: None, space) for space in (current, physical)}  # type: ignore
    working = WorkingSet()
    window, stack, caller, threads = 0x8000_0400, 0x8010_0fc0, 0x8000_0080, 0x8046_2000

    def stop(reads: list[tuple[AddressSpace, int, int]]) -> set[tuple[int, int, int]]:
        """One stop that reads `reads` (space, address, length); what the next one asks for."""
        for space, addr, length in reads:
            caches[space].fill(addr - addr % 64, bytes(length + 64))
            assert caches[space].cached(addr, length) is not None
        asked = working.ranges(caches, window)
        working.stop_ends(caches, window)
        for cache in caches.values():
            cache.clear()
        return {(r.space, r.addr, r.length) for r in asked}

    every_stop = [(current, window + 8, 4), (current, stack, 64), (physical, threads, 128)]
    assert stop(every_stop) == {(p.SPACE_VIRT, stack, 64), (p.SPACE_PHYS, threads, 128)}   # not the code
    # The caller's code, read at every few stops (a frame change), stays in between ...
    assert (p.SPACE_VIRT, caller, 64) in stop([*every_stop, (current, caller, 4)])
    for _ in range(WORKING_SET_STOPS):
        assert (p.SPACE_VIRT, caller, 64) in stop(every_stop)
    # ... and goes once no stop has read it for WORKING_SET_STOPS stops.
    assert stop(every_stop) == {(p.SPACE_VIRT, stack, 64), (p.SPACE_PHYS, threads, 128)}


def test_memory_a_reply_brings_is_not_taken_if_a_write_came_while_it_was_on_the_line() -> None:
    handle = NodeHandle(0, None)  # type: ignore[arg-type]
    block = 0x8010_0000
    stopped = p.Status(p.STATE_STOPPED, p.REASON_STEP, 3, 0, 1, 5, 0x8000_0010, 0, 0, 0,
                       registers=(0,) * p.EXPEDITED_REGS, code=bytes(p.CODE_WINDOW),
                       memory=(p.Fetched(p.SPACE_VIRT, block, 0, 64, b"old!" * 16),))
    sent = handle.epoch
    handle.forget()                                   # a memory write, made meanwhile
    handle.note(stopped, sent)
    assert handle.memory().cached(block, 4) is None and handle.memory().cached(0x8000_0010, 4) is None
    handle.note(dataclasses.replace(stopped, gen=6), handle.epoch)   # read after it: taken
    assert handle.memory().cached(block, 4) == b"old!"


def test_a_gdb_that_detaches_while_its_node_runs_gets_no_stop_reply_later(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        assert await rig.session.handle_request(rsp.VCont((rsp.VContAction("c"),))) is None   # runs on
        assert await rig.ask(rsp.Detach()) == rsp.OK
        sent = len(rig.sent_to_gdb)
        await rig.link.ok(0, p.Stop(p.ANY_GEN))          # someone else stops the node afterwards
        await asyncio.sleep(0.1)
        assert not [m for m in rig.sent_to_gdb[sent:] if m.startswith(b"T")]
        assert not rig.session.running

    run(guest, 1, test)


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
        # A read longer than a packet holds is cut to what fits; gdb asks again for the rest.
        base = rig.machine.nodes[0].ram_base
        huge = await rig.ask(rsp.ReadMemory(base, 0xFFFFFFFF))
        assert huge == rsp.hex_bytes(rig.machine.read_phys(base, PACKET_SIZE // 2))

    run(guest, 1, test)


def test_a_gdb_that_goes_away_takes_its_removed_breakpoints_out_of_lld(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        spin_store = guest.sym("spin_store")
        await to(rig, spin_store)
        await to(rig, spin_store)                          # lld now holds it; gdb has removed it
        assert spin_store in rig.lld.nodes[0].state.breakpoints
        rig.session.close()
        assert rig.session.breakpoints._flush is not None
        assert await rig.session.breakpoints._flush is None
        assert rig.lld.nodes[0].state.breakpoints == {}

    run(guest, 1, test)


def test_next_pcs_predict_control_flow_as_gdb_does() -> None:
    base = 0x8000_0000
    registers = [0] * 33
    registers[1] = base + 0x200                                        # ra
    assert rv32.next_pcs(0x00100093, base, None) == {base + 4}         # addi: pc + 4
    assert rv32.next_pcs(0x0100006F, base, None) == {base + 16}        # jal +16: the target only
    assert rv32.next_pcs(0xFE0008E3, base, None) == {base + 4, base - 16}   # beq -16: both ways
    assert rv32.next_pcs(0xFE0008E3, base, registers) == {base - 16}        # ...x0 == x0: taken
    assert rv32.next_pcs(0xFE0018E3, base, registers) == {base + 4}         # bne x0, x0: not taken
    assert rv32.next_pcs(0xFE0098E3, base, registers) == {base - 16}        # bne ra, x0: taken
    assert rv32.next_pcs(0x00008067, base, registers) == {base + 0x200}     # jalr 0(ra)
    assert rv32.next_pcs(0x00008067, base, None) is None                     # ...needs the registers
    assert rv32.next_pcs(rv32.ECALL, base, None) is None                     # SYSTEM: the CPU decides


def test_a_continue_is_a_software_step_when_every_next_pc_holds_a_breakpoint() -> None:
    session = GdbSession(NodeHandle(0, None), lambda _: None, None)  # type: ignore[arg-type]
    control = session.run_control
    base = 0x8000_0000
    beq = 0xFE0008E3   # beq zero, zero, -16
    session.breakpoints.change(base + 4, insert=True)
    assert control._is_software_step(0x00100093, base)                 # addi, pc + 4
    assert not control._is_software_step(beq, base)                    # the other way is open
    session.breakpoints.change(base - 16, insert=True)
    assert control._is_software_step(beq, base)
    assert control._is_software_step(rv32.SRET, base)                  # gdb assumes pc + 4
    assert not control._is_software_step(rv32.WFI, base)               # sleeps until woken: run it
    assert not control._is_software_step(0x00008067, base)             # jalr, registers unknown


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
        assert rig.session.handle.memory().cached(base, piece) is None                 # delivered: dropped
        rig.machine.write_phys(base + 3 * piece, b"\xff" * 4)           # the node's memory is
        await to(rig, guest.sym("spin_store"))                          # re-read after it runs
        assert await rig.ask(rsp.ReadMemory(base + 3 * piece, 4)) == b"ffffffff"

    run(guest, 1, test)


def test_a_read_waiting_for_a_read_ahead_sends_nothing_more(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        base = rig.machine.nodes[0].ram_base + 0x10000
        await rig.ask(rsp.ReadMemory(base, 2048))
        await rig.ask(rsp.ReadMemory(base + 2048, 2048))   # sequential: the next piece is read ahead
        ahead = base + 4096
        rig.link.requests.clear()
        assert await rig.ask(rsp.ReadMemory(ahead, 2048)) == rsp.hex_bytes(rig.machine.read_phys(ahead, 2048))
        # Nothing read twice, on the line or back: the only read is the next read-ahead.
        assert [(r.addr, r.length) for r in rig.link.requests if isinstance(r, p.ReadMem)] == \
            [(ahead + 2048, 2048)]

    run(guest, 1, test)


# -- steps answered ahead of lld (mux/ahead.py) ------------------------------------------------


def _register(reply: bytes, regnum: int) -> int:
    value = reply.split(b";%02x:" % regnum)[1][:8]
    return int.from_bytes(bytes.fromhex(value.decode()), "little")


T2 = 7


async def _held_step(rig: Rig, guest: TargetGuest) -> int:
    """Stop at the loop's `addi t2, t2, 1` and stepi over it, as gdb does: the mux answers the
    step and holds it (the node is still at the addi).  The addi's address."""
    addi = guest.sym("spin_store") - 4
    await to(rig, addi)
    await to(rig, guest.sym("spin_store"))
    return addi


def test_a_step_over_a_register_only_instruction_is_answered_without_lld(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        addi = guest.sym("spin_store") - 4                    # addi t2, t2, 1
        before = await to(rig, addi)
        rig.link.requests.clear()
        rig.link.sent.clear()
        after = await to(rig, guest.sym("spin_store"))        # gdb's stepi over it
        assert stop_pc(after) == guest.sym("spin_store")
        assert _register(after, T2) == _register(before, T2) + 1
        assert not rig.link.sent and rig.pc() == addi           # answered; the node has not moved yet
        # The next stepi (over `sw`, which the mux leaves to lld) makes both, in one STEP.
        counter = int.from_bytes(rig.machine.read_phys(guest.counter(0), 4), "little")
        reply = await to(rig, guest.sym("spin_check"))
        assert stop_pc(reply) == rig.pc() == guest.sym("spin_check")
        assert [type(r).__name__ for r in rig.link.requests] == ["Step"]
        assert rig.link.requests[0].count == 2
        assert int.from_bytes(rig.machine.read_phys(guest.counter(0), 4), "little") == counter + 1
        stats = rig.session.handle.ahead.stats
        assert (stats.predicted, stats.folded, stats.mispredicted, stats.lost) == (1, 1, 0, 0)

    run(guest, 1, test)


def test_a_stopped_nodes_memory_is_read_again_once_it_is_old(guest: TargetGuest) -> None:
    """The other nodes run on while one is stopped, and write memory it sees (here node 1's
    counter): what the mux read of it is trusted for MAX_AGE, then read from lld again."""
    async def test(rig: Rig) -> None:
        await to(rig, guest.sym("spin_store"))               # node 0 stops; node 1 spins on
        handle = rig.session.handle
        counter = guest.counter(1)
        first = await handle.read_memory(counter, 4)
        rig.link.requests.clear()
        assert await handle.read_memory(counter, 4) == first and not rig.link.requests   # cached
        await asyncio.sleep(2 * MAX_AGE)
        assert await handle.read_memory(counter, 4) != first and rig.link.requests

    run(guest, 2, test)


def test_a_long_read_read_ahead_is_not_used_once_it_is_old(guest: TargetGuest) -> None:
    """A long read has the next piece read ahead, for gdb's next packet of a dump; a read of that
    piece much later (a person's next `x`) goes to lld again: the other nodes ran meanwhile."""
    async def test(rig: Rig) -> None:
        await to(rig, guest.sym("spin_store"))               # node 0 stops; node 1 spins on
        handle = rig.session.handle
        piece = 2048
        await handle.read_memory(guest.counter(1) - 2 * piece, piece)
        await handle.read_memory(guest.counter(1) - piece, piece)   # the next: [counter, +piece) ahead
        for _ in range(50):
            await asyncio.sleep(0)                            # (the read ahead comes back)
        await asyncio.sleep(2 * MAX_AGE)
        rig.link.requests.clear()
        await handle.read_memory(guest.counter(1), piece)
        assert any(isinstance(r, p.ReadMem) and r.addr == guest.counter(1) for r in rig.link.requests)

    run(guest, 2, test)


def test_a_resume_sent_for_a_gdb_that_went_away_is_not_forgotten(guest: TargetGuest) -> None:
    """gdb vanished (its request cancelled) after the mux had put a RESUME on the line: lld makes
    it all the same, so the node's handle must not go on showing the stop from before."""
    async def test(rig: Rig) -> None:
        await to(rig, guest.sym("spin_store"))
        loop = guest.sym("spin_loop")
        assert await rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, loop, 4)) == rsp.OK
        rig.link.requests.clear()
        task = asyncio.create_task(rig.session.handle_request(rsp.VCont((rsp.VContAction("c"),))))
        while not any(isinstance(r, p.Resume) for r in rig.link.requests):
            await asyncio.sleep(0)
        task.cancel()                                         # gdb is gone; the frame is not
        for _ in range(200):
            await asyncio.sleep(0)
        assert rig.pc() == loop                               # lld ran the node to the breakpoint
        handle = rig.session.handle
        status = handle.status or await handle.refresh()
        assert status.pc == loop

    run(guest, 1, test)


def test_a_step_over_a_branch_is_answered_without_lld(guest: TargetGuest) -> None:
    """gdb plants its single-step breakpoint only where the registers send a branch: that is
    a software step like any other, and answered from the ISA."""
    async def test(rig: Rig) -> None:
        # `beq t3, s4, panic`, assembled as `bne t3, s4, .+8; j panic`: taken while no panic is asked.
        branch = guest.sym("spin_check") + 4
        await to(rig, branch)
        rig.link.requests.clear()
        rig.link.sent.clear()
        after = await to(rig, branch + 8)                     # gdb's stepi over it
        assert stop_pc(after) == branch + 8
        assert not rig.link.sent and rig.pc() == branch        # answered; the node has not moved yet

    run(guest, 1, test)


def test_a_step_over_a_breakpoint_and_the_continue_after_it_are_one_lld_request(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        addi = guest.sym("spin_store") - 4
        insert = lambda addr: rig.ask(rsp.Breakpoint(True, rsp.BreakpointType.SOFTWARE, addr, 4))  # noqa: E731
        remove = lambda addr: rig.ask(rsp.Breakpoint(False, rsp.BreakpointType.SOFTWARE, addr, 4))  # noqa: E731
        await to(rig, guest.sym("spin_check"))
        await insert(addi)
        first = await rig.ask(rsp.VCont((rsp.VContAction("c"),)))   # a run: lld holds the breakpoint
        assert stop_pc(first) == addi and addi in rig.lld.nodes[0].state.breakpoints
        counter = int.from_bytes(rig.machine.read_phys(guest.counter(0), 4), "little")
        rig.link.requests.clear()
        # gdb's `continue` from a breakpoint: step over it (its own breakpoint out, one at the
        # next pc in), then the breakpoint back in and a continue; the loop comes round to it.
        await remove(addi)
        await insert(addi + 4)
        assert stop_pc(await rig.ask(rsp.VCont((rsp.VContAction("c"),)))) == addi + 4
        await remove(addi + 4)
        await insert(addi)
        again = await rig.ask(rsp.VCont((rsp.VContAction("c"),)))
        assert stop_pc(again) == rig.pc() == addi
        assert [type(r).__name__ for r in rig.link.requests] == ["Resume"]
        assert rig.link.requests[0].steps == 1
        assert int.from_bytes(rig.machine.read_phys(guest.counter(0), 4), "little") == counter + 1
        assert _register(again, T2) == counter + 1               # loaded again, round the loop

    run(guest, 1, test)


def test_whatever_anyone_asks_of_the_node_sees_the_held_steps_made(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        addi = await _held_step(rig, guest)
        rig.link.requests.clear()
        # A memory read does not need them (they wrote no memory) ...
        await rig.link.request(0, p.ReadMem(p.SPACE_VIRT, guest.counter(0), 4))
        assert [type(r).__name__ for r in rig.link.requests] == ["ReadMem"] and rig.pc() == addi
        # ... anything else (the console, the monitor, another client) has them sent first.
        status = await rig.link.ok(0, p.GetStatus())
        assert isinstance(status, p.Status) and status.pc == rig.pc() == guest.sym("spin_store")
        assert [type(r).__name__ for r in rig.link.requests] == ["ReadMem", "Step", "GetStatus"]

    run(guest, 1, test)


def test_held_steps_are_made_on_their_own_after_a_moment(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        addi = await _held_step(rig, guest)
        assert rig.pc() == addi
        await asyncio.sleep(HOLD_SECONDS * 5)
        assert rig.pc() == guest.sym("spin_store")
        assert rig.session.handle.ahead.stats.mispredicted == 0

    run(guest, 1, test)


def test_a_held_step_lld_refuses_is_reported_once_and_forgotten(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        await _held_step(rig, guest)
        rig.machine.step_node(0, False)     # behind the mux's back: lld's gen moves on
        handle = rig.session.handle
        with pytest.raises(StepNotMade, match="shown but not made"):
            await handle.refresh()
        status = await handle.refresh()     # the failure is told once; the node is where lld says
        assert status.pc == rig.pc() and handle.ahead.stats.lost == 1

    run(guest, 1, test)


def test_a_reverse_on_any_node_has_every_nodes_held_steps_made_first(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        await _held_step(rig, guest)
        rig.link.requests.clear()
        # The whole machine goes back in its history (this one keeps none, and says so).
        reply = await rig.link.request(1, p.Reverse(rig.lld.nodes[1].gen(), p.REVERSE_STEP))
        assert not reply.ok
        assert [type(r).__name__ for r in rig.link.requests] == ["Step", "Reverse"]
        assert rig.pc() == guest.sym("spin_store")

    run(guest, 2, test)


def test_steps_held_when_the_mux_closes_are_made(guest: TargetGuest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mux.ahead.HOLD_SECONDS", 60.0)   # only the close makes them

    async def test(rig: Rig) -> None:
        addi = await _held_step(rig, guest)
        assert rig.pc() == addi
        mux = Mux(MuxConfig(1, 0), rig.link)
        mux.nodes[0] = rig.session.handle
        await mux.close()
        assert rig.pc() == guest.sym("spin_store")

    run(guest, 1, test)


def test_held_steps_are_not_made_from_code_that_changed_under_them(guest: TargetGuest) -> None:
    async def test(rig: Rig) -> None:
        addi = await _held_step(rig, guest)
        # Behind everyone's back (as another node might): the answered step's code changes.
        rig.machine.write_phys(addi, (0x00500393).to_bytes(4, "little"))   # li t2, 5
        handle = rig.session.handle
        with pytest.raises(StepNotMade, match="code at pc changed"):
            await handle.refresh()
        assert rig.pc() == addi and handle.ahead.stats.lost == 1
        steps = [r for r in rig.link.requests if isinstance(r, p.Step)]
        assert steps[-1].code_crc is not None

    run(guest, 1, test)
