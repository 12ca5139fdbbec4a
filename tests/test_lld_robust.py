"""lld on a bad line: fuzzed frames, repeated and reordered requests, lost and corrupted frames.

The claims under test (docs/lld-protocol.md):
* nothing a line delivers can crash lld or change a node, unless it is a
  well-formed request that lld accepts;
* every change takes effect exactly once however often, late or out of
  order its frame arrives;
* with frames dropped, corrupted or torn at random, a debugging session ends
  in exactly the state it reaches on a perfect line: no double step, no
  double resume, no lost breakpoint.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lld import protocol as p
from lld.codec import END, ESC, Frame, encode_frame
from lld.loopback import Loopback
from lld.lossy import LossyLine
from lld.testing import TargetGuest, build_target_guest
from psyche.machine.machine import NodeState

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


def node_fingerprint(lb: Loopback, index: int) -> tuple[object, ...]:
    node = lb.machine.nodes[index]
    cpu = node.cpu
    st_ = lb.lld.nodes[index].state
    return (node.state, node.stops, cpu.pc, cpu.priv, tuple(cpu.regs[i] for i in range(32)),
            tuple(cpu.csr.state()), cpu.cycles, cpu.instret, tuple(sorted(cpu.breakpoints)),
            tuple(sorted(st_.breakpoints.items())), tuple(sorted(st_.watchpoints)), st_.mutations)


def fingerprint(lb: Loopback) -> tuple[object, ...]:
    return (tuple(node_fingerprint(lb, i) for i in range(len(lb.machine.nodes))),
            tuple(sorted(lb.machine.mem.watched_pages.items())))


def memory_digest(lb: Loopback) -> str:
    h = hashlib.sha256()
    for ram in lb.machine.mem.rams:
        h.update(repr(list(ram)).encode())
    return h.hexdigest()


def stopped_machine(guest: TargetGuest, nodes: int = 4) -> Loopback:
    """Every node started, then stopped, with some breakpoints and watchpoints set."""
    lb = Loopback(guest.boot(nodes), run=True)
    for _ in range(3):
        lb.tick()
    lb.run = False
    for n in range(nodes):
        lb.ok(n, p.Stop(lb.status(n).gen))
    lb.ok(1, p.SetBreakpoint(p.ANY_GEN, guest.sym("spin_store")))
    lb.ok(2, p.SetWatchpoint(p.ANY_GEN, p.SPACE_PHYS, guest.counter(2), 4, p.WATCH_WRITE))
    return lb


def replies_of(lb: Loopback) -> list[Frame]:
    from lld.codec import FrameDecoder

    return [e for e in FrameDecoder().feed(lb.wire.take_output()) if isinstance(e, Frame)]


# -- fuzzing the king ------------------------------------------------------------------------------


def _valid_harmless_frames(lb: Loopback, guest: TargetGuest, rng: random.Random) -> list[bytes]:
    """Frames that lld may serve but that change nothing: reads, and changes with stale guards."""
    gens = [lb.status(n).gen for n in range(4)]
    out = []
    for i in range(200):
        node = rng.randrange(4)
        stale = (gens[node] + 1 + rng.randrange(1000)) & 0xFFFFFFFF
        request = rng.choice([
            p.GetStatus(), p.Describe(), p.ReadRegs(), p.ReadMem(p.SPACE_VIRT, guest.sym("spin"), 64),
            p.ListBreakpoints(), p.ListWatchpoints(), p.Translate(p.SPACE_VIRT, guest.sym("spin")),
            p.Step(stale), p.Resume(stale), p.Stop(stale), p.WriteRegs(stale, ((5, 1), (p.REG_PC, 0))),
            p.WriteMem(stale, p.SPACE_PHYS, guest.sym("spin"), b"\x00" * 16), p.ClearAll(stale),
            p.SetBreakpoint(stale, guest.sym("spin")), p.ClearBreakpoint(stale, guest.sym("spin_store")),
            p.ClearWatchpoint(stale, guest.counter(2), 4, p.WATCH_WRITE),
        ])
        out.append(encode_frame(Frame(node=node, seq=i, code=request.code, payload=request.encode())))
    return out


def _mutate(frame: bytes, rng: random.Random) -> bytes:
    b = bytearray(frame)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(5)
        i = rng.randrange(len(b))
        if kind == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del b[i:i + rng.randrange(1, 8)]
        elif kind == 2:
            b.insert(i, rng.choice([END, ESC, rng.randrange(256)]))
        elif kind == 3:
            b[i:i] = b[rng.randrange(len(b)):][: rng.randrange(1, 20)]
        else:
            b[i] = rng.randrange(256)
    return bytes(b)


def test_fuzzed_frames_crash_nothing_and_change_nothing(guest: TargetGuest) -> None:
    lb = stopped_machine(guest)
    before, memory = fingerprint(lb), memory_digest(lb)
    rng = random.Random(1234)
    frames = _valid_harmless_frames(lb, guest, rng)
    stream = bytearray()
    intact = 0
    for _ in range(3000):
        choice = rng.random()
        if choice < 0.3:
            stream += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        elif choice < 0.9:
            stream += _mutate(rng.choice(frames), rng)
        else:
            stream += rng.choice(frames)
            intact += 1
    pos = 0
    replies = 0
    while pos < len(stream):
        size = rng.randrange(1, 4096)
        lb.wire.feed(bytes(stream[pos:pos + size]))
        pos += size
        lb.lld.service()
        replies += len(replies_of(lb))
    for _ in range(2):
        lb.lld.service()
        replies += len(replies_of(lb))
    assert fingerprint(lb) == before
    assert memory_digest(lb) == memory
    assert sum(n.stats.internal_errors for n in lb.lld.nodes) == 0
    king = lb.lld.king
    assert king.bad_frames > 1000
    # Every intact frame was answered (mutations occasionally leave a frame intact too),
    # unless a flood filled a mailbox, in which case the frame is dropped like a lost one.
    assert intact - king.stats.dropped_full <= replies <= king.stats.requests
    # And lld still works.
    assert lb.status(3).stopped and lb.ok(1, p.ListBreakpoints())


def test_arbitrary_bytes_never_change_a_node(guest: TargetGuest) -> None:
    lb = stopped_machine(guest, nodes=3)
    before = fingerprint(lb)
    memory = memory_digest(lb)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.one_of(st.binary(max_size=200),
                              st.lists(st.sampled_from([END, ESC, 0, 1, 2, 0xFF]), max_size=50).map(bytes)),
                    max_size=8))
    def feed(chunks: list[bytes]) -> None:
        for chunk in chunks:
            lb.wire.feed(chunk)
            lb.lld.service()
        lb.lld.service()
        lb.lld.service()
        lb.wire.take_output()
        assert fingerprint(lb) == before

    feed()
    assert memory_digest(lb) == memory


def _random_request(rng: random.Random, guest: TargetGuest, gen: int) -> tuple[int, bytes]:
    """A request with fields drawn from values that matter: valid, edge and nonsense alike."""
    guard = rng.choice([gen, gen, gen + 1, p.ANY_GEN, rng.randrange(1 << 32)]) & 0xFFFFFFFF
    addr = rng.choice([guest.sym("spin"), guest.sym("scratch") + rng.randrange(64), guest.counter(1),
                       0x10000000, 0x80000000 + 4 * 0x400000 - 2, 0xFFFFFFFC, rng.randrange(1 << 32)])
    length = rng.choice([0, 1, 4, 7, 1024, 1025, 4096, 5000, 0xFFFF])
    space, kind = rng.randrange(4), rng.randrange(5)
    reg = rng.choice([0, 5, 31, 32, 33, 34, p.REG_CSR_BASE + 0x300, p.REG_CSR_BASE + 0x180,
                      p.REG_CSR_BASE + 0xF14, p.REG_CSR_BASE + 0x7C0, rng.randrange(1 << 16)])
    value = rng.choice([0, 3, 0x80000000, rng.randrange(1 << 32)])
    request = rng.choice([
        p.GetStatus(), p.Describe(), p.ReadRegs((reg,) * rng.randrange(3)), p.ListBreakpoints(),
        p.ListWatchpoints(), p.ReadMem(space, addr, length), p.Translate(space, addr, kind),
        p.Stop(guard), p.Resume(guard), p.Step(guard, rng.random() < 0.5), p.ClearAll(guard),
        p.WriteRegs(guard, ((reg, value),) * rng.randrange(1, 3)),
        p.WriteMem(guard, space, addr, rng.randbytes(min(length, 1100))),
        p.SetBreakpoint(guard, addr, kind), p.ClearBreakpoint(guard, addr),
        p.SetWatchpoint(guard, space, addr, length, kind), p.ClearWatchpoint(guard, addr, length, kind),
    ])
    payload = request.encode()
    if rng.random() < 0.2:   # and some torn or padded payloads
        payload = payload[: rng.randrange(len(payload) + 1)] if rng.random() < 0.5 else payload + b"\x00"
    return request.code, payload


def test_well_framed_nonsense_changes_a_node_only_when_accepted(guest: TargetGuest) -> None:
    """Structure-aware fuzzing: good frames, random requests, half of them with the right guard."""
    lb = stopped_machine(guest, nodes=3)
    rng = random.Random(99)
    accepted_changes = refused = 0
    for i in range(3000):
        node = rng.randrange(4)          # node 3 does not exist
        if rng.random() < 0.1:
            code, payload = rng.choice([0, 0x12, 0xFF, p.STEP]), rng.randbytes(rng.randrange(10))
        else:
            code, payload = _random_request(rng, guest, lb.lld.nodes[min(node, 2)].gen())
        before = fingerprint(lb)
        lb.wire.feed(encode_frame(Frame(node=node, seq=i, code=code, payload=payload)))
        lb.lld.service()
        lb.lld.service()
        (reply,) = replies_of(lb)
        assert (reply.node, reply.seq, reply.code, reply.reply) == (node, i, code, True)
        if reply.status != p.OK:
            refused += 1
            assert fingerprint(lb) == before, (code, payload.hex(), reply.status)
        else:
            p.decode_reply(code, reply.status, reply.payload)
            if fingerprint(lb) != before:
                assert p.REQUEST_TYPES[code].mutating
                accepted_changes += 1
    assert accepted_changes > 100 and refused > 1000
    assert sum(n.stats.internal_errors for n in lb.lld.nodes) == 0


# -- one scripted debugging session, over good and bad lines -----------------------------------------


@dataclass
class Session:
    """A debugger that knows only what replies tell it, as the mux will."""

    lb: Loopback
    after_call: Callable[[Session], None] | None = None
    sent: list[bytes] = field(default_factory=list)
    gens: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0      # changes answered as repeats of one that had taken effect

    def call(self, node: int, request: p.Request) -> p.Reply:
        seq, wire = self.lb.client.send(node, request, self.lb.stats.ticks)
        self.sent.append(wire)
        self.lb.wire.feed(wire)
        for _ in range(100_000):
            for done in self.lb.tick():
                if done.node == node and done.seq == seq:
                    if self.after_call is not None:
                        self.after_call(self)
                    return done.reply
        raise AssertionError("no reply")

    def status(self, node: int) -> p.Status:
        reply = self.call(node, p.GetStatus())
        assert reply.ok and isinstance(reply.value, p.Status)
        self.gens[node] = reply.value.gen
        return reply.value

    def change(self, node: int, make: Callable[[int], p.Request]) -> p.Status:
        """Make a change against the gen last seen.  With one debugger and retransmission of the
        same frame, the answer is always OK: applied now, or (DUPLICATE) by an earlier copy."""
        if node not in self.gens:
            self.status(node)
        reply = self.call(node, make(self.gens[node]))
        assert reply.ok, (make(self.gens[node]), reply.error)
        status = reply.value
        assert isinstance(status, p.Status)
        self.duplicates += status.duplicate
        self.gens[node] = status.gen
        return status

    def resume_to_stop(self, node: int) -> p.Status:
        self.change(node, p.Resume)
        for _ in range(1000):
            status = self.status(node)
            if status.stopped:
                return status
        raise AssertionError("node did not stop")

    def read(self, node: int, request: p.Request) -> object:
        reply = self.call(node, request)
        assert reply.ok, reply.error
        return reply.value


def script(s: Session, guest: TargetGuest) -> list[object]:
    """Stop everything, then debug nodes 1 and 2; returns what the debugger saw."""
    seen: list[object] = []
    for n in range(4):
        s.change(n, p.Stop)
    s.change(1, lambda g: p.SetBreakpoint(g, guest.sym("spin_store")))
    for _ in range(3):
        seen.append(s.resume_to_stop(1).pc)
    for _ in range(5):
        seen.append(s.change(1, p.Step).pc)
    s.change(1, lambda g: p.WriteRegs(g, ((7, 1000),)))
    for _ in range(3):
        seen.append(s.change(1, lambda g: p.Step(g, take_interrupts=True)).pc)
    s.change(1, lambda g: p.WriteMem(g, p.SPACE_PHYS, guest.sym("scratch"), b"written once"))
    s.change(1, lambda g: p.ClearBreakpoint(g, guest.sym("spin_store")))
    s.change(1, lambda g: p.SetWatchpoint(g, p.SPACE_VIRT, guest.counter(1), 4, p.WATCH_WRITE))
    seen.append(s.resume_to_stop(1).data_addr)
    seen.append(s.read(1, p.ReadRegs()))
    s.change(2, lambda g: p.SetBreakpoint(g, guest.sym("spin_check")))
    for _ in range(10):
        seen.append(s.change(2, p.Step).pc)
    seen.append(s.resume_to_stop(2).pc)
    s.change(2, lambda g: p.WriteMem(g, p.SPACE_VIRT, guest.sym("scratch") + 64, bytes(range(100))))
    for _ in range(4):
        seen.append(s.resume_to_stop(2).instret)
    s.change(1, p.ClearAll)
    seen.append(s.read(2, p.ListBreakpoints()))
    seen.append(s.read(1, p.ListWatchpoints()))
    seen.append(s.read(0, p.ReadMem(p.SPACE_PHYS, guest.sym("counters"), 16)))
    return seen


def final_state(lb: Loopback, guest: TargetGuest) -> tuple[object, ...]:
    nodes = tuple(
        (n.state, n.cpu.pc, n.cpu.instret, tuple(n.cpu.regs[i] for i in range(32)), n.stops,
         tuple(sorted(lb.lld.nodes[n.index].state.breakpoints.items())),
         tuple(sorted(lb.lld.nodes[n.index].state.watchpoints)))
        for n in lb.machine.nodes
    )
    memory = lb.machine.read_phys(guest.sym("counters"), 16), lb.machine.read_phys(guest.sym("scratch"), 256)
    return nodes, *memory


Reference = tuple[list[object], tuple[object, ...]]


def session_machine(guest: TargetGuest, loss: float = 0.0, seed: int = 0, timeout_ticks: int = 4) -> Loopback:
    """All four nodes started and then stopped at a fixed point, so that a session is reproducible."""
    machine = guest.boot(4)
    for _ in range(3):
        machine.run_round()
    for n in range(4):
        machine.stop_node(n)
    return Loopback(machine, run=True, loss=loss, seed=seed, timeout_ticks=timeout_ticks)


def run_session(guest: TargetGuest, loss: float = 0.0, seed: int = 0) -> tuple[Session, list[object],
                                                                              tuple[object, ...]]:
    lb = session_machine(guest, loss, seed)
    session = Session(lb)
    seen = script(session, guest)
    assert all(n.state is NodeState.STOPPED for n in lb.machine.nodes)
    return session, seen, final_state(lb, guest)


@pytest.fixture(scope="module")
def reference(guest: TargetGuest) -> Reference:
    session, seen, final = run_session(guest)
    assert session.lb.client.stats.retransmitted == 0
    return seen, final


def test_reference_session_does_what_it_says(guest: TargetGuest, reference: Reference) -> None:
    seen, final = reference
    assert seen[:3] == [guest.sym("spin_store")] * 3
    assert seen[11] == guest.counter(1)
    nodes, _, scratch = final
    assert isinstance(nodes, tuple) and isinstance(scratch, bytes)
    assert scratch.startswith(b"written once") and scratch[64:164] == bytes(range(100))
    assert nodes[1][3][7] != 1000     # x7 was overwritten, then the loop went on with it


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_repeated_and_reordered_requests_take_effect_exactly_once(
        guest: TargetGuest, reference: Reference, seed: int) -> None:
    """After every reply, old frames of the session come back: repeats, late and out of order."""
    rng = random.Random(seed)

    def replay(session: Session) -> None:
        if not session.sent:
            return
        old = rng.sample(session.sent, min(len(session.sent), rng.randrange(0, 6)))
        old.append(session.sent[-1])           # and the request just answered, once more
        rng.shuffle(old)
        session.lb.wire.feed(b"".join(old))

    lb = session_machine(guest)
    session = Session(lb, after_call=replay)
    seen = script(session, guest)
    assert (seen, final_state(lb, guest)) == reference
    assert lb.client.stats.stale_replies > 100     # the replays were served, and answered


@pytest.mark.parametrize("loss", [0.1, 0.25, 0.4, 0.6])
def test_lost_and_corrupted_frames_never_double_step_or_lose_a_breakpoint(
        guest: TargetGuest, reference: Reference, loss: float) -> None:
    """Frames dropped, bit-flipped or torn at `loss` per frame in both directions, five seeds each."""
    damaged = retransmitted = duplicates = 0
    for seed in range(5):
        session, seen, final = run_session(guest, loss=loss, seed=seed)
        assert (seen, final) == reference, f"seed {seed}"
        line = session.lb.line
        assert isinstance(line, LossyLine)
        damaged += line.incoming.stats.damaged + line.outgoing.stats.damaged
        retransmitted += session.lb.client.stats.retransmitted
        duplicates += session.duplicates
    # The line really was bad, and lld really did see repeats of changes it had already made.
    assert damaged > 20 and retransmitted > 20 and duplicates > 5
