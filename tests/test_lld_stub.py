"""Every lld request against a live machine, routing at the king, stop reasons, VM side-effect freedom."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from lld import protocol as p
from lld.codec import MAX_PAYLOAD, Frame, FrameDecoder, encode_frame
from lld.loopback import Loopback
from lld.stub import CHANGE_HISTORY
from lld.testing import TargetGuest, build_target_guest
from psyche.machine.cpu import WATCH_IGNORE, WATCH_STOP_AFTER
from psyche.machine.csr import MCONTROL_EXECUTE, MCONTROL_S, PRV_M
from psyche.machine.machine import Machine, MachineConfig, NodeState
from psyche.machine.physmem import NODE_RAM_SIZE, RAM_BASE

pytestmark = pytest.mark.timeout(60)

CSR = p.REG_CSR_BASE
MSTATUS, MIE, MTVEC, MSCRATCH, MEPC, MCAUSE, MTVAL, MIP = (CSR + n for n in (
    0x300, 0x304, 0x305, 0x340, 0x341, 0x342, 0x343, 0x344))
SEPC, SCAUSE, STVAL, SATP, MHARTID = (CSR + n for n in (0x141, 0x142, 0x143, 0x180, 0xF14))


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


def started(guest: TargetGuest, nodes: int = 4, run: bool = True) -> Loopback:
    """A machine whose king has started every node, all running the spin loop."""
    lb = Loopback(guest.boot(nodes), run=True)
    for _ in range(3):
        lb.tick()
    assert all(n.state is NodeState.RUNNING for n in lb.machine.nodes)
    lb.run = run
    return lb


def stop(lb: Loopback, node: int) -> p.Status:
    status = lb.ok(node, p.Stop(lb.status(node).gen))
    assert isinstance(status, p.Status) and status.stopped
    return status


def counter(lb: Loopback, guest: TargetGuest, node: int) -> int:
    return int.from_bytes(lb.machine.read_phys(guest.counter(node), 4), "little")


def run_until(lb: Loopback, cond: Callable[[], bool], ticks: int = 200) -> None:
    for _ in range(ticks):
        if cond():
            return
        lb.tick()
    raise AssertionError("condition not reached")


def raw_exchange(lb: Loopback, frame_bytes: bytes, services: int = 2) -> list[Frame]:
    """Put bytes on the line and return the reply frames, bypassing the client."""
    lb.wire.feed(frame_bytes)
    out = b""
    for _ in range(services):
        lb.lld.service()
        out += lb.wire.take_output()
    return [e for e in FrameDecoder().feed(out) if isinstance(e, Frame)]


def raw_request(lb: Loopback, node: int, request: p.Request) -> p.Reply:
    """A request the client would refuse to send, sent anyway."""
    (reply,) = raw_exchange(lb, encode_frame(Frame(node=node, seq=999, code=request.code,
                                                    payload=request.encode())))
    return p.decode_reply(reply.code, reply.status, reply.payload)


# -- describe and status -------------------------------------------------------------------


def test_describe_tells_every_client_the_same_machine(guest: TargetGuest) -> None:
    lb = started(guest, nodes=3)
    answers = [lb.ok(n, p.Describe()) for n in range(3)]
    assert answers[0] == answers[1] == answers[2]
    d = answers[0]
    assert isinstance(d, p.MachineDescription)
    assert (d.nodes, d.lld_version, d.max_payload, d.max_data) == (3, p.LLD_VERSION, MAX_PAYLOAD, p.MAX_DATA)
    assert d.isa.startswith("rv32ima") and "sv32" in d.isa
    assert d.ram_of(2) == (RAM_BASE + 2 * NODE_RAM_SIZE, NODE_RAM_SIZE)


def test_status_of_held_running_and_stopped_nodes(guest: TargetGuest) -> None:
    lb = Loopback(guest.boot(3))
    assert lb.status(0).state == p.STATE_RUNNING
    held = lb.status(2)
    assert (held.state, held.stops, held.gen) == (p.STATE_HELD, 0, 0)
    assert lb.call(2, p.Resume(0)).status == p.E_STATE
    lb.run = True
    run_until(lb, lambda: lb.machine.nodes[2].state is NodeState.RUNNING)
    s = stop(lb, 2)
    assert (s.reason, s.stops, s.gen, s.pc) == (p.REASON_REQUESTED, 1, 1, lb.machine.nodes[2].cpu.pc)
    assert s.instret == lb.machine.nodes[2].cpu.instret and s.priv == 3


# -- stop, resume, step ------------------------------------------------------------------------


def test_stop_and_resume_one_node_while_the_others_run(guest: TargetGuest) -> None:
    lb = started(guest)
    s = stop(lb, 2)
    frozen = counter(lb, guest, 2)
    before = [counter(lb, guest, n) for n in (1, 3)]
    for _ in range(5):
        lb.tick()
    assert counter(lb, guest, 2) == frozen
    assert all(counter(lb, guest, n) > b for n, b in zip((1, 3), before, strict=True))
    # A stale guard changes nothing; ANY_GEN may not resume.
    assert lb.call(2, p.Resume(s.gen - 1)).status == p.E_STALE
    assert raw_request(lb, 2, p.Resume(p.ANY_GEN)).status == p.E_BAD_GUARD
    r = lb.ok(2, p.Resume(s.gen))
    assert isinstance(r, p.Status) and r.running and r.gen == s.gen + 1 and r.stops == s.stops
    for _ in range(3):
        lb.tick()
    assert counter(lb, guest, 2) > frozen
    # Stopping a stopped node, or resuming a running one, is refused or a no-op, never a change.
    s2 = stop(lb, 2)
    assert lb.ok(2, p.Stop(s2.gen)) == s2
    assert lb.call(2, p.Resume(s2.gen + 7)).status == p.E_STALE


def test_step_executes_exactly_one_instruction_and_a_repeat_does_nothing(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    s = stop(lb, 1)
    cpu = lb.machine.nodes[1].cpu
    step = p.Step(s.gen)
    a = lb.ok(1, step)
    assert isinstance(a, p.Status)
    assert (a.instret, a.stops, a.gen, a.reason) == (s.instret + 1, s.stops + 1, s.gen + 1, p.REASON_STEP)
    assert a.pc == cpu.pc != s.pc
    again = lb.call(1, step)        # the same request again, as after a lost reply
    assert again.ok and isinstance(again.value, p.Status) and again.value.duplicate
    assert cpu.instret == a.instret
    b = lb.ok(1, p.Step(a.gen))
    assert isinstance(b, p.Status) and b.instret == a.instret + 1
    older = lb.call(1, step)                           # older still: lld remembers it, no step
    assert older.ok and isinstance(older.value, p.Status) and older.value.duplicate
    assert cpu.instret == b.instret
    # A different request from an old gen was never applied, and will not be now.
    other = lb.call(1, p.Step(s.gen, take_interrupts=True))
    assert other.status == p.E_STALE and cpu.instret == b.instret
    assert other.error is not None and other.error.status == lb.status(1)
    lb.ok(1, p.Resume(b.gen))
    assert lb.call(1, p.Step(b.gen + 1)).status == p.E_STATE   # running: no stepping


def test_a_counted_step_is_so_many_steps_and_ends_early_at_a_stop_of_its_own(guest: TargetGuest) -> None:
    one, many = started(guest, run=False), started(guest, run=False)
    start = stop(one, 1)
    assert stop(many, 1) == start
    single = start
    for _ in range(7):
        single = one.ok(1, p.Step(single.gen, expedite=True))
    counted = many.ok(1, p.Step(start.gen, expedite=True, count=7))
    assert counted == single and counted.instret == start.instret + 7 and counted.stops == start.stops + 7
    # A write watchpoint on the loop's counter: the steps end before the store, as a STEP would.
    many.ok(1, p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, guest.counter(1), 4, p.WATCH_WRITE))
    before = many.status(1)
    watched = many.ok(1, p.Step(before.gen, count=1000))
    assert (watched.reason, watched.pc) == (p.REASON_WATCHPOINT, guest.sym("spin_store"))
    assert before.instret <= watched.instret < before.instret + 1000
    # A RESUME's steps pass that store and stop at the next, and the node does not run.
    resumed = many.ok(1, p.Resume(watched.gen, steps=1000))
    assert resumed.stopped and (resumed.reason, resumed.pc) == (p.REASON_WATCHPOINT, guest.sym("spin_store"))
    assert resumed.instret > watched.instret
    # A code check: the steps are made only if pc's page is what the status said it was.
    stopped = many.ok(1, p.GetStatus(expedite=True))
    assert stopped.code_flags & p.CODE_PLAIN
    refused = many.call(1, p.Step(stopped.gen, count=2, code_crc=stopped.code_crc ^ 1))
    assert refused.status == p.E_CODE_CHANGED and refused.error is not None
    assert "none made" in refused.error.message
    assert many.status(1).instret == stopped.instret
    checked = many.ok(1, p.Step(stopped.gen, count=2, code_crc=stopped.code_crc))
    assert checked.instret == stopped.instret + 2
    window = checked.pc - checked.pc % p.CODE_WINDOW
    many.machine.write_phys(window + p.CODE_WINDOW - 4, b"\x13\x00\x00\x00")   # a nop: a new CRC
    changed = many.call(1, p.Resume(checked.gen, steps=1, code_crc=checked.code_crc))
    assert changed.status == p.E_CODE_CHANGED and many.status(1).stopped
    # Steps that end without a stop of their own: the node runs from where they end.
    many.ok(1, p.ClearWatchpoint(p.ANY_GEN, guest.counter(1), 4, p.WATCH_WRITE))
    before_run = many.status(1)
    ran = many.ok(1, p.Resume(before_run.gen, steps=3))
    assert ran.running and ran.instret == before_run.instret + 3


def test_an_expedited_step_or_status_carries_the_registers_of_a_stopped_node(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    assert lb.ok(1, p.GetStatus(expedite=True)).registers is None     # running: nothing to expedite
    s = stop(lb, 1)
    cpu = lb.machine.nodes[1].cpu
    step = p.Step(s.gen, expedite=True)
    a = lb.ok(1, step)
    assert isinstance(a, p.Status) and a.registers is not None
    assert list(a.registers) == [0, *(cpu.regs[i] & 0xFFFFFFFF for i in range(1, 32)), cpu.pc]
    assert a.code_addr == cpu.pc - cpu.pc % p.CODE_WINDOW <= cpu.pc
    assert a.code == lb.machine.read_phys(a.code_addr, p.CODE_WINDOW)         # the code around pc
    again = lb.ok(1, step)                                  # a repeat is a duplicate, registers and all
    assert again.duplicate and again.registers == a.registers
    assert lb.ok(1, p.GetStatus(expedite=True)).registers == a.registers
    assert lb.ok(1, p.GetStatus()).registers is None
    assert p.decode_request(p.STEP, step.encode()) == step
    assert p.decode_request(p.STATUS, p.GetStatus(True).encode()) == p.GetStatus(True)
    with pytest.raises(p.PayloadError):
        p.decode_request(p.STATUS, b"\x04")


def test_step_with_interrupts_masked_or_taken(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    s = stop(lb, 1)
    handler = guest.sym("panic")
    mstatus = lb.ok(1, p.ReadRegs((MSTATUS,)))[0]
    # A pending, enabled supervisor software interrupt taken in M mode.
    s = lb.ok(1, p.WriteRegs(s.gen, ((MTVEC, handler), (MIE, 1 << 1), (MIP, 1 << 1),
                                     (MSTATUS, mstatus | 1 << 3))))
    assert isinstance(s, p.Status)
    masked = lb.ok(1, p.Step(s.gen, take_interrupts=False))
    assert isinstance(masked, p.Status)
    assert masked.pc == s.pc + 4 or masked.pc != handler
    assert masked.instret == s.instret + 1
    taken = lb.ok(1, p.Step(masked.gen, take_interrupts=True))
    assert isinstance(taken, p.Status)
    assert taken.pc == handler and taken.instret == masked.instret
    mcause, mepc = lb.ok(1, p.ReadRegs((MCAUSE, MEPC)))
    assert mcause == 0x80000001 and mepc == masked.pc


def test_lld_remembers_its_last_changes_and_no_more(guest: TargetGuest) -> None:
    lb = started(guest, nodes=2, run=False)
    s = stop(lb, 1)
    first = p.Step(s.gen)
    gen = lb.ok(1, first).gen
    for _ in range(CHANGE_HISTORY - 1):
        gen = lb.ok(1, p.Step(gen)).gen
    assert lb.ok(1, first).duplicate            # still within the history
    gen = lb.ok(1, p.Step(gen)).gen
    instret = lb.machine.nodes[1].cpu.instret
    r = lb.call(1, first)                       # forgotten: stale, and still no second step
    assert r.status == p.E_STALE and lb.machine.nodes[1].cpu.instret == instret


# -- registers ------------------------------------------------------------------------------------


def test_read_and_write_registers(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    cpu = lb.machine.nodes[2].cpu
    values = lb.ok(2, p.ReadRegs())        # running: a node answers without stopping
    assert isinstance(values, list) and len(values) == 34
    assert values[:32] == [cpu.regs[i] for i in range(32)] and values[10] == 2   # a0 = node number
    assert values[32:] == [cpu.pc, 3]
    assert lb.ok(2, p.ReadRegs((MHARTID, SATP, MTVEC))) == [2, 0, cpu.csr.mtvec]
    assert lb.call(2, p.WriteRegs(0, ((5, 1),))).status in (p.E_STATE, p.E_STALE)
    s = stop(lb, 2)
    writes = ((5, 0xDEADBEEF), (0, 7), (MSCRATCH, 0x1234), (p.REG_PC, guest.sym("spin")))
    w = lb.ok(2, p.WriteRegs(s.gen, writes))
    assert isinstance(w, p.Status) and w.gen == s.gen + 1 and w.pc == guest.sym("spin")
    assert lb.ok(2, p.ReadRegs((5, 0, MSCRATCH))) == [0xDEADBEEF, 0, 0x1234]
    # All or nothing: a bad register in the batch leaves even the good ones unwritten.
    for bad, code in (((CSR + 0x7FF, 1), p.E_BAD_REGISTER), ((p.REG_PC, 0x80000002), p.E_ALIGN),
                      ((p.REG_PRIV, 2), p.E_BAD_REGISTER), ((CSR + 0xF14, 9), p.E_BAD_REGISTER)):
        r = lb.call(2, p.WriteRegs(w.gen, ((5, 1), (MSCRATCH, 2), bad)))
        assert r.status == code, bad
    assert lb.ok(2, p.ReadRegs((5, MSCRATCH))) == [0xDEADBEEF, 0x1234]
    assert lb.status(2).gen == w.gen
    r = lb.call(2, p.ReadRegs((CSR + 0x7FF,)))
    assert r.status == p.E_BAD_REGISTER and r.error is not None and r.error.reg == CSR + 0x7FF
    # Privilege and satp are registers too.
    lb.ok(2, p.WriteRegs(w.gen, ((p.REG_PRIV, 1),)))
    assert cpu.priv == 1


def test_reference_counters_are_read_only_pseudo_registers(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    cpu = lb.machine.nodes[2].cpu
    counters = p.RefCounters.from_values(lb.ok(2, p.ReadRegs(p.COUNTER_REGS)))   # running, unstopped
    assert counters == p.RefCounters(cpu.local_refs, cpu.remote_refs, cpu.remote_fetches)
    assert counters.local + counters.remote > 0
    cpu.local_refs = (7 << 32) + 5              # 64-bit counts come as low and high halves
    assert lb.ok(2, p.ReadRegs((p.REG_LOCAL_REFS, p.REG_LOCAL_REFS + 1))) == [5, 7]
    s = stop(lb, 2)
    r = lb.call(2, p.WriteRegs(s.gen, ((p.REG_REMOTE_REFS, 0),)))
    assert r.status == p.E_BAD_REGISTER and r.error is not None and r.error.reg == p.REG_REMOTE_REFS
    assert lb.call(2, p.ReadRegs((p.REG_REMOTE_FETCHES + 2,))).status == p.E_BAD_REGISTER


# -- memory ----------------------------------------------------------------------------------------


def test_physical_memory(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    scratch = guest.sym("scratch")
    w = lb.ok(3, p.WriteMem(p.ANY_GEN, p.SPACE_PHYS, scratch, bytes(range(200))))
    assert isinstance(w, p.Status)
    assert lb.ok(1, p.ReadMem(p.SPACE_PHYS, scratch + 10, 5)) == bytes(range(10, 15))
    assert lb.machine.read_phys(scratch, 200) == bytes(range(200))
    # Any node's RAM, across the boundary between two nodes' RAM.
    edge = RAM_BASE + NODE_RAM_SIZE - 4
    lb.ok(0, p.WriteMem(p.ANY_GEN, p.SPACE_PHYS, edge, b"ABCDEFGH"))
    assert lb.ok(3, p.ReadMem(p.SPACE_PHYS, edge, 8)) == b"ABCDEFGH"
    assert lb.ok(0, p.ReadMem(p.SPACE_PHYS, scratch, 0)) == b""
    for addr in (0x10000000, 0x0, RAM_BASE + 4 * NODE_RAM_SIZE - 2):
        r = lb.call(0, p.ReadMem(p.SPACE_PHYS, addr, 4))
        assert r.status == p.E_NOT_RAM and r.error is not None
    assert lb.call(0, p.ReadMem(p.SPACE_PHYS, scratch, p.MAX_DATA + 1)).status == p.E_TOO_LARGE
    assert lb.call(0, p.ReadMem(9, scratch, 4)).status == p.E_BAD_PAYLOAD
    assert lb.call(0, p.WriteMem(p.ANY_GEN, p.SPACE_PHYS, 0xFFFFFFFE, b"1234")).status == p.E_NOT_RAM


def test_writing_code_through_lld_changes_what_the_node_executes(guest: TargetGuest) -> None:
    """lld's writes keep the CPUs' decoded-instruction caches coherent."""
    lb = started(guest, run=False)
    s = stop(lb, 1)
    incr = guest.sym("spin_loop") + 4          # addi t2, t2, 1
    word = int.from_bytes(lb.ok(1, p.ReadMem(p.SPACE_VIRT, incr, 4)), "little")
    assert word == 0x00138393
    s = lb.ok(1, p.WriteMem(s.gen, p.SPACE_VIRT, incr, (0x00538393).to_bytes(4, "little")))  # addi 5
    assert isinstance(s, p.Status)
    s = lb.ok(1, p.WriteRegs(s.gen, ((p.REG_PC, guest.sym("spin_loop")),)))
    assert isinstance(s, p.Status)
    lb.ok(1, p.SetBreakpoint(s.gen, guest.sym("spin_check")))
    s = lb.status(1)
    lb.run = True
    before = counter(lb, guest, 1)
    for _ in range(3):
        s = lb.ok(1, p.Resume(s.gen))
        run_until(lb, lambda: lb.machine.nodes[1].state is NodeState.STOPPED)
        s = lb.status(1)
    assert counter(lb, guest, 1) == before + 15


def test_an_expedited_resume_is_answered_a_round_later_with_the_stop_it_came_to(guest: TargetGuest) -> None:
    lb = started(guest, nodes=2)
    s = stop(lb, 1)
    s = lb.ok(1, p.SetBreakpoint(s.gen, guest.sym("spin_check")))
    king = lb.lld.king
    # Served at one boundary, answered at the next: the node ran a round and met the breakpoint.
    seq = lb.send(1, p.Resume(s.gen, expedite=True))
    assert not lb.tick() and king.busy()   # node 1's lld, stopped, serves it at once: the node runs
    (done,) = [d for d in lb.tick() if d.seq == seq]   # a round, and the reply comes at the next
    hit = done.reply.value
    assert isinstance(hit, p.Status) and hit.stopped and hit.reason == p.REASON_BREAKPOINT
    assert hit.pc == guest.sym("spin_check") and hit.registers is not None and hit.code is not None
    assert hit.registers[32] == hit.pc and not king.busy()
    # The same request again (its reply lost) is a duplicate, answered at once, not resumed twice.
    again = lb.call(1, p.Resume(s.gen, expedite=True))
    assert again.ok and isinstance(again.value, p.Status) and again.value.duplicate
    assert again.value.stops == hit.stops
    # Without a breakpoint ahead, the answer a round on says the node runs.
    lb.ok(1, p.ClearAll(hit.gen))
    running = lb.ok(1, p.Resume(lb.status(1).gen, expedite=True))
    assert isinstance(running, p.Status) and running.running and running.registers is None
    # A refused resume is answered at once, as before.
    assert lb.call(1, p.Resume(running.gen, expedite=True)).status == p.E_STATE


def test_a_stop_brings_the_memory_the_request_names(guest: TargetGuest) -> None:
    lb = started(guest, nodes=2)
    s = stop(lb, 1)
    counters = p.ReadMem(p.SPACE_VIRT, guest.counter(0), 8)
    nowhere = p.ReadMem(p.SPACE_PHYS, 0x10, 4)                # no RAM there
    step = lb.ok(1, p.Step(s.gen, expedite=True, prefetch=(counters, nowhere)))
    first, second = step.memory
    assert (first.space, first.addr, first.root) == (p.SPACE_VIRT, guest.counter(0), 0)
    assert first.data == lb.machine.read_phys(guest.counter(0), 8) and second.data is None
    assert lb.ok(1, p.GetStatus(expedite=True, prefetch=(counters,))).memory[0].data is not None
    # A running node brings nothing; a RESUME answered a round later brings it if it stopped.
    assert lb.ok(0, p.GetStatus(expedite=True, prefetch=(counters,))).memory == ()
    s = lb.ok(1, p.SetBreakpoint(step.gen, guest.sym("spin_check")))
    hit = lb.ok(1, p.Resume(s.gen, expedite=True, prefetch=(counters,)))
    assert hit.stopped and hit.memory[0].data == lb.machine.read_phys(guest.counter(0), 8)
    # Any list at all (spaces that do not exist, roots that are not tables) gets an answer.
    rng = random.Random(5)
    for _ in range(100):
        ranges = tuple(p.ReadMem(rng.randrange(256), rng.randrange(1 << 32), rng.randrange(129),
                                 rng.randrange(1 << 32)) for _ in range(rng.randrange(1, p.MAX_PREFETCH + 1)))
        assert len(lb.ok(1, p.GetStatus(expedite=True, prefetch=ranges)).memory) == len(ranges)
    assert lb.lld.nodes[1].stats.internal_errors == 0


def _paged_node() -> tuple[Machine, Loopback, dict[str, int]]:
    """Node 1 stopped in S mode under Sv32 tables built in its RAM (see the table below)."""
    machine = Machine(MachineConfig(nodes=2))
    base = machine.nodes[1].ram_base
    root, leaf = base + 0x10000, base + 0x11000
    data, ro, user, xonly = base + 0x20000, base + 0x21000, base + 0x22000, base + 0x23000
    V, R, W, X, U, A, D = 1, 2, 4, 8, 16, 64, 128

    def pte(paddr: int, flags: int) -> bytes:
        return (((paddr >> 12) << 10) | flags).to_bytes(4, "little")

    machine.write_phys(root + 4 * 0x100, pte(leaf, V))                 # 0x40000000: 4 MiB through leaf
    machine.write_phys(leaf + 0, pte(data, V | R | W))                 # A=0, D=0
    machine.write_phys(leaf + 8, pte(ro, V | R | A))                   # 0x40002000 read-only
    machine.write_phys(leaf + 12, pte(0x10000000, V | R | W | A | D))  # 0x40003000 a device page
    machine.write_phys(leaf + 16, pte(user, V | R | W | U | A | D))    # 0x40004000 user page
    machine.write_phys(leaf + 20, pte(xonly, V | X | A))               # 0x40005000 execute-only
    machine.write_phys(leaf + 24, pte(data + 0x1000, V | R | W | A | D))    # 0x40006000 and
    machine.write_phys(leaf + 28, pte(data + 0x2000, V | R | W | A | D))    # 0x40007000: contiguous
    machine.write_phys(data, b"data page!")
    machine.write_phys(ro, b"read only")
    machine.write_phys(user, b"user page")
    machine.write_phys(xonly, b"\x13\x00\x00\x00")
    cpu = machine.nodes[1].cpu
    machine.start_node(1, base)
    machine.stop_node(1)
    satp = 0x80000000 | (root >> 12)
    cpu.csr.satp = satp
    cpu.priv = 1
    cpu.recompute_contexts()
    cpu.flush_tlb()
    lb = Loopback(machine)
    return machine, lb, {"root": root, "leaf": leaf, "data": data, "ro": ro, "satp": satp}


def test_code_is_plain_only_where_a_fetch_cannot_trap_or_write() -> None:
    """CODE_PLAIN (what lets the mux answer a step itself) is set exactly where a fetch of any
    instruction in pc's page goes through without a trap and without setting an A bit, and the
    code is there for the debugger to read (it answers steps from it)."""
    machine, lb, at = _paged_node()
    cpu = machine.nodes[1].cpu
    V, R, X, A = 1, 2, 8, 64

    def leaf(slot: int, paddr: int, flags: int) -> None:
        machine.write_phys(at["leaf"] + 4 * slot, (((paddr >> 12) << 10) | flags).to_bytes(4, "little"))

    leaf(8, at["ro"], V | X)                 # 0x40008000: executable, A clear
    leaf(9, 0x10000000, V | X | A)           # 0x40009000: executable, a device behind it
    leaf(10, at["ro"], V | R | X | A)        # 0x4000a000: readable and executable code
    cpu.flush_tlb()

    def plain(pc: int) -> bool:
        cpu.pc = pc
        status = lb.ok(1, p.GetStatus(expedite=True))
        assert status.registers is not None
        assert (status.code_crc != 0) == bool(status.code_flags & p.CODE_PLAIN)
        return bool(status.code_flags & p.CODE_PLAIN)

    assert not plain(0x4000a000)            # code, A set; but PMP shuts S mode out at reset
    cpu.csr.write(0x3B0, 0xFFFFFFFF, PRV_M, 0, 0)   # pmpaddr0: NAPOT over everything
    cpu.csr.write(0x3A0, 0x1F, PRV_M, 0, 0)         # pmpcfg0: R W X
    assert plain(0x4000affc)
    assert not plain(0x40005000)            # execute-only: the debugger cannot read the code
    assert not plain(0x40008000)            # executable, but a fetch would set its A bit
    assert not plain(0x40000000)            # not executable
    assert not plain(0x40001000)            # not mapped
    assert not plain(0x40009000)            # executable, but a device (UART) behind it
    cpu.csr.write(0x7A1, 2 << 28 | MCONTROL_S | MCONTROL_EXECUTE, PRV_M, 0, 0)
    cpu.csr.write(0x7A2, 0x4000aabc, PRV_M, 0, 0)   # an execute trigger somewhere in the page
    assert not plain(0x4000a000)
    cpu.priv = PRV_M                        # M mode: no translation, and the trigger is S mode's
    cpu.recompute_contexts()
    assert plain(machine.nodes[1].ram_base)
    assert not lb.ok(1, p.GetStatus()).code_flags   # only an expedited status says


def test_virtual_access_never_goes_through_vm(guest: TargetGuest) -> None:
    machine, lb, at = _paged_node()
    uart = machine.nodes[1].devices.onboard
    uart.feed(b"x")       # a byte waiting in the UART behind 0x40003000: reading RBR would consume it
    tables_before = machine.read_phys(at["root"], 0x2000)
    trap_regs = (MCAUSE, MEPC, MTVAL, SCAUSE, SEPC, STVAL, p.REG_PC, p.REG_PRIV)
    traps_before = lb.ok(1, p.ReadRegs(trap_regs))
    uart_before = uart.get_state()
    gen = lb.status(1).gen

    assert lb.ok(1, p.ReadMem(p.SPACE_VIRT, 0x40000000, 10)) == b"data page!"
    w = lb.ok(1, p.WriteMem(gen, p.SPACE_VIRT, 0x40000000, b"DATA"))
    assert isinstance(w, p.Status)
    assert machine.read_phys(at["data"], 10) == b"DATA page!"
    assert lb.ok(1, p.Translate(p.SPACE_VIRT, 0x40000123)) == at["data"] + 0x123

    def error(request: p.Request) -> p.ErrorDetail:
        r = lb.call(1, request)
        assert not r.ok and r.error is not None, request
        return r.error

    e = error(p.ReadMem(p.SPACE_VIRT, 0x40001000, 4))          # not mapped
    assert (e.code, e.addr, e.cause) == (p.E_UNMAPPED, 0x40001000, 13)
    e = error(p.WriteMem(w.gen, p.SPACE_VIRT, 0x40002000, b"x"))  # read-only
    assert (e.code, e.cause) == (p.E_UNMAPPED, 15)
    e = error(p.ReadMem(p.SPACE_VIRT, 0x40003000, 1))          # a device behind the mapping
    assert (e.code, e.addr) == (p.E_NOT_RAM, 0x10000000)
    assert error(p.ReadMem(p.SPACE_VIRT, 0x40004000, 4)).code == p.E_UNMAPPED    # user page, no SUM
    assert error(p.ReadMem(p.SPACE_VIRT, 0x40005000, 4)).code == p.E_UNMAPPED    # execute-only, no MXR
    assert error(p.ReadMem(p.SPACE_VIRT, 0x50000000, 4)).code == p.E_UNMAPPED    # no second-level table
    e = error(p.ReadMem(p.SPACE_VIRT, 0x40000FF8, 16))         # runs off the end of a mapped page
    assert (e.code, e.addr) == (p.E_UNMAPPED, 0x40001000)
    assert lb.ok(1, p.Translate(p.SPACE_VIRT, 0x40005000, p.ACCESS_EXEC)) == at["ro"] + 0x2000
    # A given root, seen as S mode with SUM and MXR: user and execute-only pages are readable.
    assert lb.ok(1, p.ReadMem(p.SPACE_ROOT, 0x40004000, 9, at["satp"])) == b"user page"
    assert lb.ok(1, p.ReadMem(p.SPACE_ROOT, 0x40005000, 4, at["satp"])) == b"\x13\x00\x00\x00"
    assert error(p.ReadMem(p.SPACE_ROOT, 0x40000000, 4, 0)).code == p.E_NOT_RAM     # bare: physical
    assert lb.ok(0, p.ReadMem(p.SPACE_ROOT, 0x40000000, 4, at["satp"])) == b"DATA"   # from another node

    # Nothing behind the debugger's back: no A/D bits, no traps, no device reads, no new mappings.
    assert machine.read_phys(at["root"], 0x2000) == tables_before
    assert lb.ok(1, p.ReadRegs(trap_regs)) == traps_before
    assert uart.get_state() == uart_before
    assert lb.status(1).stops == 1


def test_m_mode_and_bare_translation_are_the_identity(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    spin = guest.sym("spin")
    assert lb.ok(2, p.ReadMem(p.SPACE_VIRT, spin, 8)) == lb.ok(2, p.ReadMem(p.SPACE_PHYS, spin, 8))
    assert lb.ok(2, p.ReadMem(p.SPACE_ROOT, spin, 8, 0)) == lb.machine.read_phys(spin, 8)
    assert lb.ok(2, p.Translate(p.SPACE_VIRT, spin, p.ACCESS_EXEC)) == spin
    assert lb.call(2, p.Translate(p.SPACE_PHYS, spin)).status == p.E_BAD_PAYLOAD


# -- breakpoints -----------------------------------------------------------------------------------


def test_a_breakpoint_stops_only_its_node_and_memory_shows_the_original(guest: TargetGuest) -> None:
    lb = started(guest)
    bp = guest.sym("spin_store")
    original = lb.machine.read_phys(bp, 4)
    s = lb.ok(2, p.SetBreakpoint(lb.status(2).gen, bp))
    assert isinstance(s, p.Status)
    run_until(lb, lambda: lb.machine.nodes[2].state is NodeState.STOPPED)
    hit = lb.status(2)
    assert (hit.reason, hit.pc) == (p.REASON_BREAKPOINT, bp)
    # The same physical code runs on every node; only node 2 stops.
    others = [counter(lb, guest, n) for n in (0, 1, 3)]
    for _ in range(5):
        lb.tick()
    assert all(counter(lb, guest, n) > c for n, c in zip((0, 1, 3), others, strict=True))
    assert [lb.status(n).state for n in range(4)] == [p.STATE_RUNNING, p.STATE_RUNNING,
                                                      p.STATE_STOPPED, p.STATE_RUNNING]
    assert lb.ok(2, p.ReadMem(p.SPACE_VIRT, bp, 4)) == original == lb.machine.read_phys(bp, 4)
    word = int.from_bytes(original, "little")
    assert lb.ok(2, p.ListBreakpoints()) == [p.BreakpointInfo(bp, p.BP_NORMAL, word)]
    assert lb.ok(1, p.ListBreakpoints()) == []
    # Resuming steps over the breakpoint: one more store per resume, then the next hit.
    c = counter(lb, guest, 2)
    for i in range(1, 4):
        lb.ok(2, p.Resume(lb.status(2).gen))
        run_until(lb, lambda: lb.machine.nodes[2].state is NodeState.STOPPED)
        assert lb.status(2).pc == bp and counter(lb, guest, 2) == c + i
    lb.ok(2, p.ClearBreakpoint(lb.status(2).gen, bp))
    lb.ok(2, p.Resume(lb.status(2).gen))
    for _ in range(5):
        lb.tick()
    assert lb.status(2).running and counter(lb, guest, 2) > c + 5


def test_breakpoints_outlive_their_debugger(guest: TargetGuest) -> None:
    lb = started(guest)
    bp = guest.sym("spin_check")
    lb.ok(1, p.SetBreakpoint(p.ANY_GEN, bp))
    lb.ok(3, p.SetBreakpoint(p.ANY_GEN, guest.sym("spin_loop")))
    lb.ok(3, p.SetWatchpoint(p.ANY_GEN, p.SPACE_PHYS, guest.counter(0), 4, p.WATCH_READ))
    run_until(lb, lambda: lb.machine.nodes[1].state is NodeState.STOPPED)
    lb.ok(1, p.Resume(lb.status(1).gen))
    # The debugger dies here: nobody talks to lld for a while, and the breakpoint still works.
    lb.client = type(lb.client)(timeout=4, max_attempts=50, seq=40000)
    for _ in range(20):
        lb.machine.run_round()
    assert lb.machine.nodes[1].state is NodeState.STOPPED and lb.machine.nodes[1].cpu.pc == bp
    # A fresh debugger finds everything, clears it, and the node runs free.
    assert [b.addr for b in lb.ok(1, p.ListBreakpoints())] == [bp]
    assert lb.ok(3, p.ListWatchpoints()) == [
        p.WatchpointInfo(p.SPACE_PHYS, p.WATCH_READ, guest.counter(0), 4, 0, guest.counter(0))]
    for node in (1, 3):
        lb.ok(node, p.ClearAll(p.ANY_GEN))
        assert lb.ok(node, p.ListBreakpoints()) == [] and lb.ok(node, p.ListWatchpoints()) == []
    lb.ok(1, p.Resume(lb.status(1).gen))
    c = counter(lb, guest, 1)
    for _ in range(5):
        lb.tick()
    assert lb.status(1).running and counter(lb, guest, 1) > c + 10
    assert lb.machine.nodes[1].cpu.breakpoints == set() and lb.machine.mem.watched_pages.get(
        guest.counter(0) >> 12, 0) == (1 if guest.sym("tohost") >> 12 == guest.counter(0) >> 12 else 0)


def test_breakpoint_rules(guest: TargetGuest) -> None:
    lb = Loopback(guest.boot(2))
    bp = guest.sym("spin_loop")
    # A held node takes breakpoints, and they work when it starts.
    s = lb.ok(1, p.SetBreakpoint(0, bp))
    assert isinstance(s, p.Status) and s.gen == 1 and s.state == p.STATE_HELD
    assert lb.ok(1, p.SetBreakpoint(1, bp)).gen == 1          # already set
    assert lb.call(1, p.SetBreakpoint(1, bp + 2)).status == p.E_ALIGN
    assert lb.call(1, p.SetBreakpoint(1, bp, kind=9)).status == p.E_BAD_PAYLOAD
    assert lb.ok(1, p.ClearBreakpoint(1, bp + 4)).gen == 1    # not set: no change
    for i in range(p.MAX_BREAKPOINTS - 1):
        lb.ok(1, p.SetBreakpoint(p.ANY_GEN, 0x1000 + 4 * i))
    assert lb.call(1, p.SetBreakpoint(p.ANY_GEN, 0x9000)).status == p.E_LIMIT
    assert len(lb.ok(1, p.ListBreakpoints())) == p.MAX_BREAKPOINTS
    lb.run = True
    run_until(lb, lambda: lb.machine.nodes[1].state is NodeState.STOPPED)
    assert lb.status(1).pc == bp and lb.status(1).reason == p.REASON_BREAKPOINT


# -- watchpoints -----------------------------------------------------------------------------------


def test_watchpoints_write_read_access_on_their_own_node(guest: TargetGuest) -> None:
    lb = started(guest)
    mine = guest.counter(2)
    # Node 1 watches node 2's counter: node 1 never touches it, so node 1 never stops.
    lb.ok(1, p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, mine, 4, p.WATCH_ACCESS))
    lb.ok(2, p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, mine, 4, p.WATCH_WRITE))
    run_until(lb, lambda: lb.machine.nodes[2].state is NodeState.STOPPED)
    s = lb.status(2)
    # The CPU stops before the access, at the storing instruction, as gdb expects on RISC-V
    # (it steps over the access itself); lld's own read does not trigger anything.
    assert (s.reason, s.data_addr, s.pc) == (p.REASON_WATCHPOINT, mine, guest.sym("spin_store"))
    assert s.flags & p.FLAG_WATCH_WRITE
    assert lb.ok(2, p.ReadMem(p.SPACE_VIRT, mine, 4)) == lb.machine.read_phys(mine, 4)
    lb.ok(2, p.ClearWatchpoint(p.ANY_GEN, mine, 4, p.WATCH_WRITE))
    lb.ok(2, p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, mine + 2, 1, p.WATCH_READ))   # inside the word
    lb.ok(2, p.Resume(lb.status(2).gen))
    run_until(lb, lambda: lb.machine.nodes[2].state is NodeState.STOPPED)
    s = lb.status(2)
    assert (s.reason, s.data_addr, s.pc) == (p.REASON_WATCHPOINT, mine + 2, guest.sym("spin_loop"))
    assert s.flags & p.FLAG_WATCH_READ
    assert lb.status(1).running
    wps = lb.ok(2, p.ListWatchpoints())
    assert wps == [p.WatchpointInfo(p.SPACE_VIRT, p.WATCH_READ, mine + 2, 1, 0, mine + 2)]
    lb.ok(2, p.ClearAll(p.ANY_GEN))
    lb.ok(1, p.ClearAll(p.ANY_GEN))
    lb.ok(2, p.Resume(lb.status(2).gen))
    for _ in range(5):
        lb.tick()
    assert lb.status(2).running and lb.status(1).running


def test_the_first_instruction_after_a_stop_hits_a_watchpoint_unless_it_stopped_there(
        guest: TargetGuest) -> None:
    lb = started(guest)
    mine, spin_store = guest.counter(1), guest.sym("spin_store")
    lb.ok(1, p.SetBreakpoint(p.ANY_GEN, spin_store))
    lb.ok(1, p.Resume(stop(lb, 1).gen))
    run_until(lb, lambda: lb.status(1).stopped)
    assert lb.status(1).pc == spin_store                          # at the store, by a breakpoint
    lb.ok(1, p.ClearBreakpoint(p.ANY_GEN, spin_store))
    lb.ok(1, p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, mine, 4, p.WATCH_WRITE))
    hit = lb.ok(1, p.Step(lb.status(1).gen))                      # the store is a new hit
    assert (hit.reason, hit.pc, hit.data_addr) == (p.REASON_WATCHPOINT, spin_store, mine)
    past = lb.ok(1, p.Step(hit.gen))                              # the hit it stopped for: passed
    assert (past.reason, past.pc) == (p.REASON_STEP, guest.sym("spin_check"))


def test_watchpoint_rules(guest: TargetGuest) -> None:
    machine, lb, at = _paged_node()
    gen = lb.status(1).gen
    assert lb.call(1, p.SetWatchpoint(gen, p.SPACE_VIRT, 0x40001000, 4)).status == p.E_UNMAPPED
    assert lb.call(1, p.SetWatchpoint(gen, p.SPACE_VIRT, 0x40000000, 0)).status == p.E_TOO_LARGE
    assert lb.call(1, p.SetWatchpoint(gen, p.SPACE_VIRT, 0x40000000, 4, kind=0)).status == p.E_BAD_PAYLOAD
    # A range across a page boundary watches both physical pages (translated once, when set).
    s = lb.ok(1, p.SetWatchpoint(gen, p.SPACE_VIRT, 0x40006FFE, 4, p.WATCH_WRITE))
    assert isinstance(s, p.Status) and s.gen == gen + 1
    pages = {(at["data"] + 0x1FFE) >> 12, (at["data"] + 0x2000) >> 12}
    assert pages <= set(machine.mem.watched_pages)
    assert lb.ok(1, p.ListWatchpoints())[0].paddr == at["data"] + 0x1FFE
    # Setting it again is no change; clearing releases the pages.
    assert lb.ok(1, p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, 0x40006FFE, 4, p.WATCH_WRITE)).gen == s.gen
    lb.ok(1, p.ClearWatchpoint(s.gen, 0x40006FFE, 4, p.WATCH_WRITE))
    assert not pages & set(machine.mem.watched_pages)
    for i in range(p.MAX_WATCHPOINTS):
        lb.ok(1, p.SetWatchpoint(p.ANY_GEN, p.SPACE_PHYS, at["data"] + 8 * i, 4))
    assert lb.call(1, p.SetWatchpoint(p.ANY_GEN, p.SPACE_PHYS, at["data"] + 512, 4)).status == p.E_LIMIT


# -- stop reasons ------------------------------------------------------------------------------------


def test_panic_and_trap_loop_are_reported(guest: TargetGuest) -> None:
    lb = started(guest)
    lb.lld.arm_panic(guest.sym("panic"))
    assert lb.ok(2, p.ListBreakpoints()) == [p.BreakpointInfo(guest.sym("panic"), p.BP_PANIC, 0x0000006F)]
    lb.ok(0, p.WriteMem(p.ANY_GEN, p.SPACE_PHYS, guest.sym("panic_request"), (3).to_bytes(4, "little")))
    run_until(lb, lambda: lb.machine.nodes[2].state is NodeState.STOPPED)
    s = lb.status(2)
    assert (s.reason, s.pc) == (p.REASON_PANIC, guest.sym("panic"))
    # Node 3: a trap vector that cannot be fetched; every trap faults again at once.
    s3 = stop(lb, 3)
    lb.ok(3, p.WriteRegs(s3.gen, ((MTVEC, 0x40000000), (p.REG_PC, 0x40000000))))
    lb.ok(3, p.Resume(s3.gen + 1))
    run_until(lb, lambda: lb.machine.nodes[3].state is NodeState.STOPPED)
    s3 = lb.status(3)
    assert s3.reason == p.REASON_TRAP_LOOP
    assert lb.ok(3, p.ReadRegs((MCAUSE,))) == [1]
    assert lb.status(1).running and lb.status(0).running


def test_a_stop_by_another_watch_hook_is_reported_as_host(guest: TargetGuest) -> None:
    lb = started(guest, nodes=2)
    lb.machine.add_watch_hook(
        lambda node, paddr, size, is_write, value: WATCH_STOP_AFTER if node == 1 and paddr == guest.counter(1)
        else WATCH_IGNORE)
    lb.machine.mem.watch_page(guest.counter(1) >> 12)
    run_until(lb, lambda: lb.machine.nodes[1].state is NodeState.STOPPED)
    assert lb.status(1).reason == p.REASON_HOST


# -- routing at the king -------------------------------------------------------------------------


def test_king_serves_itself_at_once_and_forwards_to_the_next_boundary(guest: TargetGuest) -> None:
    lb = started(guest, run=False)
    stop(lb, 2)
    forwarded = lb.lld.king.stats.forwarded
    # Node 0 and a stopped node (its lld waits for frames) at once; a running node a boundary on.
    for node, services in ((0, 1), (2, 1), (3, 2)):
        lb.send(node, p.GetStatus())
        ticks = 0
        while not lb.client.receive(lb.wire.take_output()):
            lb.lld.service()
            ticks += 1
        assert ticks == services, node
        lb.client.cancel(node)
    r = lb.call(77, p.GetStatus())
    assert r.status == p.E_NO_NODE and r.error is not None and "4 nodes" in r.error.message
    assert lb.lld.king.stats.no_node == 1 and lb.lld.king.stats.forwarded == forwarded + 1


def test_protocol_errors_get_replies(guest: TargetGuest) -> None:
    lb = started(guest, nodes=2, run=False)
    cases = [
        (Frame(node=1, seq=1, code=0x7F), p.E_BAD_REQUEST),
        (Frame(node=1, seq=2, code=p.STEP, payload=b"\x00"), p.E_BAD_PAYLOAD),
        (Frame(node=0, seq=3, code=p.STATUS, payload=b"extra"), p.E_BAD_PAYLOAD),
        (Frame(node=0, seq=4, code=p.STATUS, version=2), p.E_VERSION),
    ]
    for frame, code in cases:
        replies = raw_exchange(lb, encode_frame(frame))
        assert [(r.node, r.seq, r.code, r.status, r.reply) for r in replies] == \
            [(frame.node, frame.seq, frame.code, code, True)]
    # Replies on the input (a line that echoes) and corrupted frames get no answer at all.
    echoed = Frame(node=0, seq=5, code=p.STATUS, reply=True)
    assert raw_exchange(lb, encode_frame(echoed)) == []
    assert raw_exchange(lb, encode_frame(Frame(node=0, seq=6, code=p.STATUS))[:-3] + b"\x00\x00\x7e") == []


def test_a_running_node_is_interrupted_not_stopped(guest: TargetGuest) -> None:
    lb = started(guest)
    last = 0
    for _ in range(20):
        s = lb.status(1)
        assert s.running and s.instret > last
        last = s.instret
        lb.ok(1, p.ReadRegs())
    assert lb.lld.nodes[1].stats.interruptions == 40
    assert lb.machine.nodes[1].stops == 0


def test_reads_cost_the_machine_no_simulated_time(guest: TargetGuest) -> None:
    """Serving a request between rounds perturbs nothing: same run with and without a busy debugger."""

    def trace(busy: bool) -> list[tuple[int, ...]]:
        lb = started(guest)
        out = []
        for i in range(40):
            if busy:
                node = i % 4
                lb.send(node, [p.GetStatus(), p.ReadRegs(), p.ReadMem(p.SPACE_VIRT, guest.sym("spin"), 64),
                               p.ListBreakpoints()][i % 4])
            lb.tick()
            for c in lb.client.outstanding():
                lb.client.cancel(c.node)
            out.append(tuple(x for n in lb.machine.nodes for x in (n.cpu.pc, n.cpu.cycles, n.cpu.instret)))
        return out

    assert trace(True) == trace(False)


def test_the_runner_serves_the_debug_line_and_keeps_running_when_a_node_stops(guest: TargetGuest) -> None:
    from lld.attach import Lld
    from lld.client import LldClient
    from psyche.machine.hostline import BufferLine
    from psyche.machine.runner import Runner, RunOutcome

    machine = guest.boot(2)
    line = BufferLine()
    lld = Lld(machine, line)
    client = LldClient()
    stops: list[int] = []
    _, wire = client.send(1, p.SetBreakpoint(p.ANY_GEN, guest.sym("spin_check")), now=0)
    line.feed(wire)
    runner = Runner(machine, [line], pace=False, debug=lld, stop_on_node_stop=False,
                    on_stop=lambda nodes: stops.extend(n.index for n in nodes))
    result = runner.run(max_seconds=0.5)
    assert result.outcome is RunOutcome.TIMEOUT          # node 1 stopped; the run went on
    (done,) = client.receive(line.take_output())
    assert done.reply.ok and stops == [1]
    assert machine.nodes[1].state is NodeState.STOPPED and machine.nodes[0].state is NodeState.RUNNING
    _, wire = client.send(1, p.GetStatus(), now=0)
    line.feed(wire)
    runner.run(max_seconds=0.2)
    (done,) = client.receive(line.take_output())
    assert isinstance(done.reply.value, p.Status) and done.reply.value.reason == p.REASON_BREAKPOINT


def test_a_bug_in_lld_is_an_error_reply_not_a_dead_machine(
        guest: TargetGuest, monkeypatch: pytest.MonkeyPatch) -> None:
    lb = started(guest, nodes=2)

    def broken(reg: int) -> int:
        raise RuntimeError("simulated lld bug")

    monkeypatch.setattr(lb.lld.nodes[1].target, "read_reg", broken)
    r = lb.call(1, p.ReadRegs())
    assert r.status == p.E_INTERNAL and r.error is not None and "simulated lld bug" in r.error.message
    assert lb.lld.nodes[1].stats.internal_errors == 1
    assert lb.status(1).running and lb.ok(0, p.ReadRegs())
