"""The machine's recent history, kept in memory, and travel in it: lld's REVERSE request.

While the machine runs, `History` keeps a bounded ring of checkpoints (the whole machine and
lld's state, in memory, every `interval` simulated cycles at a service point) and every host
input since the oldest one: what a recording keeps (psyche/machine/record.py), service point by
service point.  The machine is deterministic, so any state between two checkpoints is reached
again by restoring the first and re-executing the inputs at the same service points.

A node's place in its own execution is its *progress*: (instret, traps taken since the last
retired instruction).  Every execution step of a hart (an instruction, or the entry into a trap
or interrupt handler) makes it strictly greater, and nothing else changes it, so "the state
before node k's last step" and "the first moment node k reached progress P" are well defined.
Re-execution runs rounds as the machine does; only in the one round (or service point) where the
target lies does node k run step by step (`_fine_run`: the CPU's own run loop, one cycle limit at
a time), and the machine stops there, possibly in the middle of a round: the nodes before k have
run their quantum of that round, the ones after it have not.  That is a state the machine went
through (node order within a round is fixed), and if the debugger writes to it, the runner
finishes the round from there.

* reverse step: find the progress node k had before its last step, then the first moment it had it;
* reverse continue: re-execute each segment between checkpoints, newest first, with the debugger's
  breakpoints of node k armed on top of the ones history had (a hit that history did not stop at
  is noted and passed over) and every node's accesses to node k's watched ranges noted (a machine
  watch hook); the latest hit before now wins, or the start of the history.  A watchpoint stop
  stands just before the access, and the node's next step that way is the access (gdb steps
  over a watchpoint before it reads the value);
* forward, in the past: a step or a resume re-executes toward the present the same way; what
  history does not reach is done live after returning to the present;
* a change to the machine in the past (memory, registers) makes that past the present: the
  recorded future is discarded, and the history starts again there.

While the machine shows the past the runner runs no rounds and records no input (`in_past`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lld import protocol as p
from lld.history.checkpoints import Checkpoint, CheckpointRing
from lld.history.progress import Progress, Where, progress, vector, where
from psyche.machine.cpu import STOP_BREAKPOINT, STOP_NONE, STOP_REQUESTED, WATCH_IGNORE, Cpu
from psyche.machine.csr import NEVER
from psyche.machine.hostline import HostLine
from psyche.machine.machine import TIMEBASE_HZ, Machine, NodeState
from psyche.machine.record import (
    CONSOLE,
    DEBUG,
    NIC,
    Recorder,
    RecordingWire,
    ReplayLine,
    ReplayWire,
    ServicePoint,
)

if TYPE_CHECKING:
    from lld.attach import Lld
    from lld.stub import Watchpoint

DEFAULT_INTERVAL = 2_000_000     # simulated cycles between checkpoints (0.2 s of machine time)
DEFAULT_KEEP = 16                # checkpoints in the ring


class Arrived(BaseException):
    """Re-execution reached its target (a BaseException: lld's serve() must not catch it)."""


class _Missed(BaseException):
    """_goto_before's re-execution went past the moment it looked for (the step was lld's)."""


class HistoryError(RuntimeError):
    """Re-execution did not go where the recorded history went: a bug, or a non-deterministic machine."""


class _Sink(HostLine):
    """A line for a uart during re-execution: its output goes nowhere, it reads nothing."""

    def describe(self) -> str:
        return "re-execution"

    def read_available(self, max_bytes: int = 0) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        pass


@dataclass(frozen=True)
class Hit:
    """What a search met, in the order re-execution met it: node `node`, at progress `at`, about
    to execute an instruction at a breakpoint (addr 0) or to make an access (of any node) to a
    watched range (addr: the debugger's address in it, flags: FLAG_WATCH_READ or _WRITE, pc: the
    instruction's, seen: the searching node's progress then)."""

    node: int
    at: Progress
    addr: int = 0
    flags: int = 0
    pc: int = 0
    seen: Progress = (0, 0)

    @property
    def watch(self) -> bool:
        return self.flags != 0

    def before(self, now: list[Progress]) -> bool:
        """Done before the moment whose progress vector is now (a breakpoint hit: passed)."""
        return self.at < now[self.node]


@dataclass
class _Search:
    pcs: frozenset[int]
    hits: list[Hit] = field(default_factory=list)
    #: The debugger's watchpoints: every node's accesses to them are hits.
    watchpoints: tuple[Watchpoint, ...] = ()


class History(Recorder):
    """Checkpoints and inputs of a running machine, and travel in them (module docstring)."""

    machine: Machine
    lld: Lld
    ring: CheckpointRing

    def __init__(self, interval: int = DEFAULT_INTERVAL, keep: int = DEFAULT_KEEP,
                 inner: Recorder | None = None) -> None:
        self.interval = max(1, interval)
        self.keep = max(2, keep)
        self.inner = inner             # a recording (--record) the inputs also go to
        self._where_now: Where = ()
        self.point: ServicePoint | None = None
        self.in_past = False
        self._traveled = False         # a travel happened in the current service point
        self._restart = False          # a change in the past: history starts again here
        self._high_gen: list[int] = []
        self._search: _Search | None = None
        self._target: Progress | None = None
        self._before: Progress | None = None
        self._fine_node = -1
        #: The access the last watchpoint stop in the past stands just before, the direction it
        #: was found in (-1 back, 1 forward) and every node's progress there: gdb steps over a
        #: watchpoint it stopped at (watchpoints removed) before it looks at the value, and that
        #: step is the access's (forward: it makes the access; back: the machine stays, as it is
        #: where the step back over the access leads).
        self._at_access: tuple[Hit, int, list[Progress]] | None = None
        #: The access the last watchpoint stop found, while the machine stands beside it.
        self.last_access: Hit | None = None
        #: travels made, rounds and service points re-executed (the ring counts its checkpoints).
        self.stats = {"travels": 0, "reexecuted_events": 0, "reexecuted_instructions": 0}

    def attach(self, machine: Machine, lld: Lld, wires: bool = True) -> None:
        """Keep the history of machine, with lld beneath it; wires: record what each NIC takes
        from its wire here (a Recording does it itself when there is one, with this as recorder)."""
        self.machine = machine
        self.lld = lld
        self.ring = CheckpointRing(machine, lld, self.keep)
        self._high_gen = [0] * len(machine.nodes)
        lld.history = self
        for n in lld.nodes:
            n.history = self
        machine.add_watch_hook(self._watch_hook)
        if wires:
            for node in machine.nodes:
                nic = node.devices.nic
                if nic is not None:
                    nic.replace_wire(RecordingWire(nic.wire, node.index, self))

    # -- the recorder interface (the runner's lines report their reads here) ---------------

    def begin(self, time: int, advanced: int, lld_busy: bool) -> None:
        self.point = ServicePoint(time, advanced, lld_busy)
        self._where_now = where(self.machine)
        if self.inner is not None:
            self.inner.begin(time, advanced, lld_busy)

    def read(self, line: int, data: bytes) -> None:
        if self.point is not None:
            self.point.chunks.append((line, data))
        if self.inner is not None:
            self.inner.read(line, data)

    def end(self) -> None:
        point, self.point = self.point, None
        if self.inner is not None:
            self.inner.end()
        if point is not None and point.eventful() and not self.in_past and not self._traveled:
            self.ring.log_point(point, self._where_now)

    def console_output(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.console_output(data)

    def after_service(self) -> None:
        """The end of a service point: a checkpoint when one is due (or after a travel)."""
        traveled, self._traveled = self._traveled, False
        if self.in_past:
            return
        if self._restart:
            self._restart = False
            self.ring.clear()
        checkpoints = self.ring.checkpoints
        if traveled or not checkpoints or self.machine.time - checkpoints[-1].time >= self.interval:
            self._checkpoint()

    # -- checkpoints ------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        self.ring.take(self.point.advanced if self.point is not None else 0)

    def _restore(self, cp: Checkpoint) -> None:
        search = self._search
        self.ring.restore(cp, {ppn for wp in search.watchpoints for ppn in wp.pages()}
                          if search is not None else ())

    def describe(self) -> str:
        """One line for the end of a run: what history cost."""
        s = self.stats
        r = self.ring.stats
        seconds = r.cycles / TIMEBASE_HZ
        rate = f", {r.page_bytes / seconds / 1e6:.2f} MB of pages per simulated second" if seconds else ""
        return (f"{r.checkpoints} checkpoints over {r.cycles} cycles ({r.page_bytes} bytes of "
                f"RAM pages{rate}); the ring holds {self.ring.memory_bytes()} bytes now; {s['travels']} "
                f"travels re-executed {s['reexecuted_events']} rounds and service points, "
                f"{s['reexecuted_instructions']} instructions")

    # -- re-execution -------------------------------------------------------------------------

    def _replay(self, ci: int, k: int, *, fine_from: int | None = None,
                on_event: Callable[[int], None] | None = None) -> bool:
        """Restore checkpoint ci and re-execute to the next one; True if stopped by Arrived.

        Events (rounds and service points) are numbered from 0; from event fine_from on,
        node k runs step by step and `_check` may end it between two steps."""
        m = self.machine
        cp = self.ring.checkpoints[ci]
        end_index, end_time, end_advanced = self.ring.segment_end(ci)
        self._restore(cp)
        # A replay that ended in the middle of a service point (Arrived) leaves that point's reads
        # behind: they are not this one's.
        for source in self._inputs():
            source.reads.clear()
        self._fine_node = -1
        event = 0

        def after_event() -> None:
            nonlocal event
            self.stats["reexecuted_events"] += 1
            if on_event is not None:
                on_event(event)
            event += 1

        def run_to(time: int) -> None:
            while m.time < time:
                before = m.time
                self._fine_node = k if fine_from is not None and event >= fine_from else -1
                self._round(k)
                after_event()
                if m.time == before:
                    break
            if m.time != time:
                raise HistoryError(f"re-execution went astray: machine time {m.time}, history has {time}")

        try:
            if fine_from is not None and fine_from <= 0:
                self._fine_node = k
                self._check(m.nodes[k].cpu)
            for li in range(cp.log_index, end_index):
                point = self.ring.log[li]
                run_to(point.time - point.advanced)
                if point.advanced:
                    m.advance_time(point.advanced)
                    run_to(point.time)
                now = where(self.machine)
                if now != self.ring.wheres[li]:
                    raise HistoryError(f"re-execution diverged before logged point {li} at {point.time}: "
                                       f"{now} where history had {self.ring.wheres[li]}")
                for line, data in point.chunks:
                    self._feed(line, data)
                self._fine_node = k if fine_from is not None and event >= fine_from else -1
                m.poll_host()
                self.lld.service()
                left = [source.name for source in self._inputs() if source.reads]
                if left:
                    raise HistoryError(f"re-execution diverged at the service point at {point.time}: "
                                       f"the {', '.join(left)} was read less often than history has")
                after_event()
            run_to(end_time - end_advanced)
            if end_advanced:
                m.advance_time(end_advanced)
                run_to(end_time)
        except Arrived:
            return True
        finally:
            self._fine_node = -1
            self.stats["reexecuted_instructions"] += sum(
                n.cpu.instret - at[0] for n, at in zip(m.nodes, cp.progress, strict=True))
        return False

    def _check(self, cpu: Cpu) -> None:
        target = self._target
        if target is not None and progress(cpu) >= target:
            raise Arrived

    def after_step(self, index: int) -> None:
        """lld stepped node index (during re-execution: a recorded STEP request)."""
        cpu = self.machine.nodes[index].cpu
        if self._search is not None and index == self._search_node and cpu.pc in self._search.pcs:
            self._search.hits.append(Hit(index, progress(cpu)))
        if index == self._fine_node:
            self._check(cpu)

    _search_node = -1

    def _round(self, k: int) -> None:
        """Machine.run_round, with node k run step by step (fine) or with search breakpoints."""
        m = self.machine
        quantum = m.config.quantum
        if not m._active and not m._woken:
            event = m.next_event()
            if event >= NEVER:
                return
            if event >= m.time + quantum:
                m.time = event - event % quantum
        end = m.time + quantum
        m._wake_due(end)
        for index in list(m._active):
            node = m.nodes[index]
            cpu = node.cpu
            if cpu.cycles < m.time:
                cpu.cycles = m.time
            if index == k and self._fine_node == k:
                reason = self._fine_run(cpu, end)
            elif index == k and self._search is not None:
                reason = self._search_run(cpu, end, self._search)
            else:
                reason = cpu.run(end)
            if reason != STOP_NONE:
                node.state = NodeState.STOPPED
                node.stop_reason = reason
                node.stops += 1
                m._active.remove(index)
            elif cpu.waiting:
                m._sleep(index, cpu.next_timer_event())
        m.time = end

    def _fine_run(self, cpu: Cpu, limit: int) -> int:
        """Cpu.run(limit), one step at a time, checking the target after each."""
        cpu.stop_reason = STOP_NONE
        while cpu.cycles < limit:
            self._check_before(cpu)
            took = cpu.check_interrupts()
            if cpu.stop_reason != STOP_NONE:
                break
            if took:
                self._check(cpu)
                self._check_before(cpu)
            if cpu.waiting:
                wake = cpu.next_timer_event()
                cpu.cycles = wake if wake < limit else limit
                continue
            cpu.step(False)
            if cpu.stop_reason != STOP_NONE:
                break
            self._check(cpu)
        return cpu.stop_reason

    def _check_before(self, cpu: Cpu) -> None:
        """In _goto_before's fine re-execution: Arrived when the node is about to take the step
        from progress _before; _Missed if it is past it (that step was not made in a round)."""
        before = self._before
        if before is not None:
            at = progress(cpu)
            if at == before:
                raise Arrived
            if at > before:
                raise _Missed

    def _watch_hook(self, node: int, paddr: int, size: int, is_write: bool, value: int) -> int:
        """During a search, note every node's access to the debugger's watched ranges (before it
        happens, with the node's progress before the instruction); it never stops anything."""
        search = self._search
        if search is None or not search.watchpoints:
            return WATCH_IGNORE
        for wp in search.watchpoints:
            addr = wp.match(paddr, size, is_write)
            if addr is not None:
                cpu = self.machine.nodes[node].cpu
                hit = Hit(node, progress(cpu), addr, p.FLAG_WATCH_WRITE if is_write else p.FLAG_WATCH_READ,
                          cpu.pc & 0xFFFFFFFF, progress(self.machine.nodes[self._search_node].cpu))
                last = search.hits[-1] if search.hits else None
                if last is not None and last.watch and (last.node, last.at) == (hit.node, hit.at):
                    # The same instruction again (an AMO reads, then writes; a split access; an
                    # instruction history stopped before and executed later): one hit, a write
                    # if it wrote.
                    if is_write:
                        search.hits[-1] = hit
                else:
                    search.hits.append(hit)
                break
        return WATCH_IGNORE

    @staticmethod
    def _search_run(cpu: Cpu, limit: int, search: _Search) -> int:
        """Cpu.run(limit) with the search's breakpoints armed too: a hit history did not stop
        at is noted and passed over."""
        history = cpu.breakpoints
        cpu.breakpoints = history | set(search.pcs)
        try:
            while True:
                reason = cpu.run(limit)
                if reason == STOP_BREAKPOINT and cpu.pc in search.pcs:
                    search.hits.append(Hit(cpu.node, progress(cpu)))
                    if cpu.pc not in history:
                        cpu.skip_breakpoint_pc = cpu.pc
                        continue
                return reason
        finally:
            cpu.breakpoints = history

    def _inputs(self) -> list[ReplayLine | ReplayWire]:
        return [self._console, self._debug, *self._wires.values()]

    def _feed(self, line: int, data: bytes) -> None:
        if line == CONSOLE:
            self._console.reads.append(data)
        elif line == DEBUG:
            self._debug.reads.append(data)
        elif line >= NIC:
            self._wires[line - NIC].reads.append(data)

    # -- travel ------------------------------------------------------------------------------

    _console: ReplayLine
    _debug: ReplayLine
    _wires: dict[int, ReplayWire]

    def _travel(self, k: int, go: Callable[[], tuple[str, int]]) -> tuple[str, int]:
        """Do one travel: save the present first if there, carry the debugger's state across."""
        m = self.machine
        lld = self.lld
        if not self.in_past:
            self._checkpoint()      # the present, exactly
        if self.inner is not None:
            self.inner.note_travel(m.time)   # a recording cannot hold it: it says so
        for j, n in enumerate(lld.nodes):
            self._high_gen[j] = max(self._high_gen[j], n.gen())
        kept = [(n.state, n.mailbox) for n in lld.nodes]
        kept_watched = dict(m.mem.watched_pages)
        kept_decoder, kept_line = lld.king.decoder, lld.king.line
        uarts = [node.devices.onboard for node in m.nodes] + [m.console]
        kept_lines = [u.line for u in uarts]
        kept_listeners = m.console._listeners
        nics = [node.devices.nic for node in m.nodes]
        kept_wires = [nic.wire if nic is not None else None for nic in nics]
        self._console = ReplayLine("console")
        self._debug = ReplayLine("debug line")
        self._wires = {}
        sink = _Sink()
        for u in uarts:
            u.line = sink
        m.console.line = self._console
        m.console._listeners = []
        lld.king.line = self._debug
        for node, nic in zip(m.nodes, nics, strict=True):
            if nic is not None:
                self._wires[node.index] = ReplayWire(node.index)
                nic.wire = self._wires[node.index]
        self._traveled = True
        self.stats["travels"] += 1
        # Re-executed requests must do what they did live: a STEP steps, a WRITE_MEM writes.  Seen
        # from the past they would travel again, or discard the future (lld/stub.py asks in_past).
        self.in_past = False
        try:
            try:
                outcome = go()
            except BaseException:
                # Whatever went wrong, the machine must not be left in a state history never had:
                # back to the present, which the last checkpoint holds exactly.
                self._restore(self.ring.checkpoints[-1])
                raise
        finally:
            self._search = None
            self._target = None
            self._search_node = -1
            for u, line in zip(uarts, kept_lines, strict=True):
                u.line = line
            m.console._listeners = kept_listeners
            for nic, wire in zip(nics, kept_wires, strict=True):
                if nic is not None and wire is not None:
                    nic.wire = wire
            lld.king.decoder, lld.king.line = kept_decoder, kept_line
            # The debugger's view carries over: its breakpoints and watchpoints, the frames on
            # their way; the node's change counter only ever grows.
            for j, (n, (state, mailbox)) in enumerate(zip(lld.nodes, kept, strict=True)):
                n.state = state
                n.mailbox = mailbox
                n.target.cpu.breakpoints = set(state.breakpoints)
                state.recent_changes.clear()
                state.mutations += self._high_gen[j] + 1 - n.gen()
                state.reason_stops = n.target.stops
                n.travel_flags = 0
            m.mem.watched_pages = kept_watched
            m.mem.epoch += 1
            for node in m.nodes:
                node.cpu.flush_tlb()
        return outcome

    def _stop_here(self, k: int, reason: int, flags: int = 0, hit: Hit | None = None) -> None:
        node = self.machine.nodes[k]
        if node.state is NodeState.RUNNING:
            self.machine.stop_node(k, STOP_REQUESTED)
        st = self.lld.nodes[k].state
        st.reason_stops = node.stops
        st.reason = reason
        st.data_addr = hit.addr if hit is not None else 0
        st.watch_flags = hit.flags if hit is not None else 0
        self.lld.nodes[k].travel_flags = flags

    def accessor(self, index: int) -> bool:
        """In the past, node index made the access the last watchpoint stop found (the machine
        stands just before or just after it)."""
        return self.in_past and self.last_access is not None and self.last_access.node == index

    def _begin(self, k: int) -> None:
        """The start of node k's history: the oldest checkpoint, or, if the node was not started
        yet there (held until another node starts it), the moment after its first step: a held
        node cannot stand stopped before a debugger."""
        self._restore(self.ring.checkpoints[0])
        if self.machine.nodes[k].state is NodeState.HELD:
            self._goto(k, (0, 1))

    def _goto(self, k: int, target: Progress) -> bool:
        """The first moment node k's progress is at least target (or the start of the history, if
        it is there already); False (and the machine at the present) if history never gets there.

        The first moment lies after the latest checkpoint where the node had not reached target:
        a checkpoint where it had may be long after it got there (a stopped node stands still)."""
        first = self.ring.latest(k, target, strict=True) or 0
        for ci in range(first, len(self.ring.checkpoints) - 1):
            if self.ring.checkpoints[ci].progress[k] >= target:
                self._restore(self.ring.checkpoints[ci])
                return True
            crossing: list[int] = []

            def on_event(e: int, crossing: list[int] = crossing) -> None:
                if progress(self.machine.nodes[k].cpu) >= target:
                    crossing.append(e)
                    raise Arrived

            self._target = None
            if not self._replay(ci, k, on_event=on_event):
                continue
            self._target = target
            arrived = self._replay(ci, k, fine_from=crossing[0])
            self._target = None
            if arrived:
                return True
            raise HistoryError("re-execution did not reach the step it reached before")
        self._restore(self.ring.checkpoints[-1])
        return False

    def _goto_before(self, k: int, at: Progress) -> None:
        """The last moment node k's progress is at: just before its next step, where the other
        nodes have done all they did before that step.  A step lld made (a recorded STEP, in a
        service point) has no such moment apart from the first one, which it then goes to."""
        after = (at[0], at[1] + 1)
        first = self.ring.latest(k, after, strict=True) or 0
        for ci in range(first, len(self.ring.checkpoints) - 1):
            crossing: list[int] = []

            def on_event(e: int, crossing: list[int] = crossing) -> None:
                if progress(self.machine.nodes[k].cpu) >= after:
                    crossing.append(e)
                    raise Arrived

            if not self._replay(ci, k, on_event=on_event):
                continue
            self._before = at
            try:
                if self._replay(ci, k, fine_from=crossing[0]):
                    return
            except _Missed:
                pass
            finally:
                self._before = None
            break
        if not self._goto(k, at):
            raise HistoryError("re-execution did not reach a step it reached before")

    def _beside(self, direction: int) -> Hit | None:
        """The access the last watchpoint stop found in the direction (-1 back, 1 forward), if the
        machine still stands just before it; forgets it either way (the next step is taken)."""
        at, self._at_access = self._at_access, None
        if at is None or at[1] != direction or at[2] != vector(self.machine):
            self.last_access = None
            return None
        return at[0]

    def _arrive(self, k: int, hit: Hit) -> None:
        """Go to a hit a search found: a breakpoint's (node k about to execute there), or an
        access's: just before it, in either direction (where gdb's step over the watchpoint
        leads going back, and where a watchpoint stops going forward)."""
        if hit.watch:
            self._goto_before(hit.node, hit.at)
        else:
            self._goto(k, hit.at)

    def _stop_at(self, k: int, hit: Hit | None, direction: int, flags: int = 0) -> None:
        """Stop node k where a search went: at a hit (a breakpoint's, or just before an access to
        a watched range), or not (the start of the history)."""
        self.in_past = True
        if hit is not None and hit.watch:
            self._stop_here(k, p.REASON_WATCHPOINT, flags, hit)
            self._at_access = (hit, direction, vector(self.machine))
            self.last_access = hit
        else:
            self._stop_here(k, p.REASON_BREAKPOINT if hit is not None else p.REASON_STEP, flags)

    def reverse_step(self, k: int) -> int:
        """Back to the state before node k's last step; returns the status flags.  With
        watchpoints on node k, an access to them (any node's) on the way back stops it first:
        the latest one, just before it.

        Right after a watchpoint stop found going back, the machine stands just before the
        access already, where gdb's step back over it would lead: it stays (node k stops with a
        step, and its change counter moves, as after any change)."""
        if self._beside(-1) is not None:
            self.lld.nodes[k].state.mutations += 1
            self._stop_here(k, p.REASON_STEP)
            return 0
        search = self._watch_search(k)
        found: list[Hit] = []

        def go() -> tuple[str, int]:
            moment = vector(self.machine)
            now = progress(self.machine.nodes[k].cpu)
            ci = self.ring.latest(k, now, strict=True)
            if ci is None:
                self._begin(k)
                return "begin", 0
            seen: list[Progress] = [self.ring.checkpoints[ci].progress[k]]

            def on_event(e: int) -> None:
                at = progress(self.machine.nodes[k].cpu)
                if at >= now:
                    raise Arrived
                seen.append(at)

            crossed = self._replay(ci, k, on_event=on_event)
            crossing = len(seen) - 1
            previous = seen[-1]
            if crossed:
                # The step that reached `now` is in event `crossing`: which progress came before it?
                last = [seen[-1]]

                def fine_check(cpu: Cpu) -> None:
                    at = progress(cpu)
                    if at >= now:
                        raise Arrived
                    last[0] = at

                self._check = fine_check  # type: ignore[method-assign]
                try:
                    self._target = now
                    self._replay(ci, k, fine_from=crossing)
                finally:
                    del self._check
                previous = last[0]
            hit = self._watch_behind(k, search, moment, previous) if search is not None else None
            if hit is not None:
                found.append(hit)
                self._arrive(k, hit)
                return "hit", 0
            self._goto(k, previous)
            if self.machine.nodes[k].state is NodeState.HELD:
                self._begin(k)   # before its first step the node was not started yet
                return "begin", 0
            return "ok", 0

        outcome, _ = self._travel(k, go)
        flags = p.FLAG_HISTORY_BEGIN if outcome == "begin" else 0
        self._stop_at(k, found[0] if found else None, -1, flags)
        return flags

    def _watch_search(self, k: int) -> _Search | None:
        """A search for accesses to node k's watched ranges only (for a step), if it has any."""
        watchpoints = tuple(self.lld.nodes[k].state.watchpoints.values())
        return _Search(frozenset(), watchpoints=watchpoints) if watchpoints else None

    def _watch_behind(self, k: int, search: _Search, now: list[Progress], previous: Progress) -> Hit | None:
        """The latest access to the search's ranges before the moment now and after the first
        moment node k had progress previous (its own last step's included)."""
        for c in range(self.ring.latest_all(now), -1, -1):
            hits = [h for h in self._scan(k, c, search, now)
                    if h.watch and h.before(now) and h.seen >= previous]
            if hits:
                return hits[-1]
            if self.ring.checkpoints[c].progress[k] < previous:
                break
        return None

    def _watch_ahead(self, k: int, search: _Search) -> Hit | None:
        """The first access to the search's ranges from now on, before node k's next step (or
        made by that step)."""
        now = vector(self.machine)
        mine = now[k]

        def passed() -> bool:
            return progress(self.machine.nodes[k].cpu) > mine

        for c in range(self.ring.latest_all(now), len(self.ring.checkpoints) - 1):
            hits = [h for h in self._scan(k, c, search, None, until=passed)
                    if h.watch and h.at >= now[h.node] and h.seen <= mine]
            if hits:
                return hits[0]
            if passed():
                break
        return None

    def _scan(self, k: int, ci: int, search: _Search, bound: list[Progress] | None,
              until: Callable[[], bool] | None = None) -> list[Hit]:
        """Re-execute segment ci with the search armed; stop after the event where every node
        has reached bound (no later hit can be before it), or where until() is true."""
        search.hits = []
        self._search = search
        self._search_node = k

        def on_event(e: int) -> None:
            if bound is not None and all(a >= b for a, b in zip(vector(self.machine), bound, strict=True)):
                raise Arrived
            if until is not None and until():
                raise Arrived

        try:
            self._replay(ci, k, on_event=on_event)
        finally:
            self._search = None
            self._search_node = -1
        return search.hits

    def _new_search(self, k: int) -> _Search:
        """The debugger's breakpoints (kind NORMAL) and watchpoints on node k."""
        st = self.lld.nodes[k].state
        return _Search(frozenset(a for a, kind in st.breakpoints.items() if kind == p.BP_NORMAL),
                       watchpoints=tuple(st.watchpoints.values()))

    def reverse_continue(self, k: int) -> int:
        """Back to the latest hit before now of node k's breakpoints, or of any node's access to
        node k's watched ranges; or to the start of the history."""
        self._at_access = self.last_access = None
        search = self._new_search(k)
        found: list[Hit] = []

        def go() -> tuple[str, int]:
            now = vector(self.machine)
            if search.watchpoints:
                ci: int | None = self.ring.latest_all(now)
            else:
                ci = self.ring.latest(k, now[k], strict=True)
            for c in range(ci if ci is not None else -1, -1, -1):
                hits = [h for h in self._scan(k, c, search, now) if h.before(now)]
                if hits:
                    found.append(hits[-1])
                    self._arrive(k, hits[-1])
                    return "hit", 0
            self._begin(k)
            return "begin", 0

        outcome, _ = self._travel(k, go)
        flags = p.FLAG_HISTORY_BEGIN if outcome == "begin" else 0
        self._stop_at(k, found[0] if found else None, -1, flags)
        return flags

    def forward_step(self, k: int) -> bool:
        """A STEP in the past: True if history had the step (the node stands after it); False if
        the machine is back at the present (the step is then done live).  Right after a
        watchpoint stop found going forward, the step is the access's (whichever node makes it:
        gdb steps over the watchpoint before it looks at the value): to just after it."""
        access = self._beside(1)
        search = self._watch_search(k) if access is None else None
        found: list[Hit] = []

        def go() -> tuple[str, int]:
            if access is not None:
                j, target = access.node, (access.at[0], access.at[1] + 1)
            else:
                j = k
                instret, traps = progress(self.machine.nodes[k].cpu)
                target = (instret, traps + 1)
                hit = self._watch_ahead(k, search) if search is not None else None
                if hit is not None:
                    found.append(hit)
                    self._arrive(k, hit)
                    return "hit", 0
            return ("ok" if self._goto(j, target) else "present"), 0

        outcome, _ = self._travel(k, go)
        if outcome == "hit":
            self._stop_at(k, found[0], 1)
            return True
        self.in_past = outcome == "ok"
        if self.in_past:
            self._stop_here(k, p.REASON_STEP)
        return self.in_past

    def forward_continue(self, k: int) -> bool:
        """A RESUME in the past: True if node k meets a breakpoint, or any node an access to node
        k's watched ranges, before the present (the machine stands there); False if the machine
        is back at the present (and the resume is done live)."""
        # A resume from a watchpoint stop made going forward does not stop at that access again
        # (as a live node's resume from one does not: gdb steps over it first anyway).
        standing = self._beside(1)
        self.last_access = None
        search = self._new_search(k)
        found: list[Hit] = []

        def go() -> tuple[str, int]:
            if not search.pcs and not search.watchpoints:
                # Nothing to stop at before the present (gdb's detach resumes): straight there.
                self._restore(self.ring.checkpoints[-1])
                return "present", 0
            now = vector(self.machine)
            if search.watchpoints:
                ci = self.ring.latest_all(now)
            else:
                ci = self.ring.latest(k, now[k], strict=False) or 0
            for c in range(ci, len(self.ring.checkpoints) - 1):
                # A breakpoint hit where node k stands is passed (as a resume steps over it); an
                # access about to be made is ahead.
                hits = [h for h in self._scan(k, c, search, None)
                        if (h.at >= now[h.node] and h != standing if h.watch else h.at > now[k])]
                if hits:
                    found.append(hits[0])
                    self._arrive(k, hits[0])
                    return "hit", 0
            self._restore(self.ring.checkpoints[-1])
            return "present", 0

        outcome, _ = self._travel(k, go)
        if outcome == "hit":
            self._stop_at(k, found[0], 1)
        else:
            self.in_past = False
        return self.in_past

    def discard_future(self) -> None:
        """A change to the machine in the past: the past becomes the present, and the recorded
        future is gone (history starts again at the end of this service point)."""
        self.in_past = False
        self._at_access = self.last_access = None
        self._restart = True
        self._traveled = True

