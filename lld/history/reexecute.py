"""Re-execution of a segment of the history: from one checkpoint to the next, again.

The machine is deterministic, so restoring a checkpoint and re-executing the logged inputs at the
same service points goes through the same states.  `Reexecution.replay` runs rounds as the machine
does; only from a given event on (the round or service point where a target lies) does node k run
step by step (`_fine_run`: the CPU's own run loop, one cycle limit at a time), so that a check
between two steps can stop it there, possibly in the middle of a round: the nodes before k have
run their quantum of that round, the ones after it have not.  That is a state the machine went
through (node order within a round is fixed), and if the debugger writes to it, the runner
finishes the round from there.

A replay can also carry a `Search`: the debugger's breakpoints of node k armed on top of the ones
history had (a hit that history did not stop at is noted and passed over), and every node's
accesses to the watched ranges noted by a machine watch hook, as `Hit`s in the order met.

Re-execution checks itself: every logged service point keeps each node's `Where`, and reaching
the point with anything else, or leaving an input unread, is a `HistoryError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lld import protocol as p
from lld.history.checkpoints import Checkpoint, CheckpointRing
from lld.history.progress import Progress, progress, where
from psyche.machine.cpu import STOP_BREAKPOINT, STOP_NONE, WATCH_IGNORE, Cpu
from psyche.machine.machine import Machine
from psyche.machine.record import CONSOLE, DEBUG, NIC, ReplayLine, ReplayWire

if TYPE_CHECKING:
    from lld.attach import Lld
    from lld.stub import Watchpoint


class Arrived(BaseException):
    """Re-execution reached its target (a BaseException: lld's serve() must not catch it)."""


class Missed(BaseException):
    """A re-execution looking for the moment before a step went past it (the step was lld's)."""


class HistoryError(RuntimeError):
    """Re-execution did not go where the recorded history went: a bug, or a non-deterministic machine."""


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
class Search:
    """What a search looks for (node k's breakpoints at pcs, every node's accesses to the
    watchpoints' ranges) and the hits the replay it is armed for met."""

    pcs: frozenset[int]
    hits: list[Hit] = field(default_factory=list)
    #: The debugger's watchpoints: every node's accesses to them are hits.
    watchpoints: tuple[Watchpoint, ...] = ()


@dataclass
class Inputs:
    """The lines a re-execution reads from, in place of the host's: each read gets what the same
    read got when the history was made (fed from the log, service point by service point)."""

    console: ReplayLine
    debug: ReplayLine
    wires: dict[int, ReplayWire]       # per node with a NIC

    def all(self) -> list[ReplayLine | ReplayWire]:
        return [self.console, self.debug, *self.wires.values()]

    def feed(self, line: int, data: bytes) -> None:
        if line == CONSOLE:
            self.console.reads.append(data)
        elif line == DEBUG:
            self.debug.reads.append(data)
        elif line >= NIC:
            self.wires[line - NIC].reads.append(data)


@dataclass
class ReexecutionStats:
    """What travels cost (History.describe reports it)."""

    events: int = 0                  # rounds and service points re-executed
    instructions: int = 0            # instructions re-executed (every node's)


class Reexecution:
    """Re-executes the ring's segments on machine (with lld beneath it), reading from `inputs`
    (which whoever travels puts in place of the host's lines)."""

    inputs: Inputs

    def __init__(self, machine: Machine, lld: Lld, ring: CheckpointRing) -> None:
        self.machine = machine
        self.lld = lld
        self.ring = ring
        #: The progress at which a fine re-execution of node k arrives (checked after each of its
        #: steps, unless the replay is given a check of its own); None: no target.  Whoever sets it
        #: clears it after its replay: a target left armed would end a later replay of another
        #: node at that node's own progress compared with node k's.
        self.target: Progress | None = None
        self.stats = ReexecutionStats()
        # What the replay running now arms (each one's for that replay only):
        self._fine_node = -1
        self._check: Callable[[Cpu], None] = self._check_target
        self._before: Progress | None = None
        self._search: Search | None = None
        self._search_node = -1

    def restore(self, cp: Checkpoint) -> None:
        """Restore checkpoint cp, with the pages of the armed search's watched ranges watched."""
        search = self._search
        self.ring.restore(cp, {ppn for wp in search.watchpoints for ppn in wp.pages()}
                          if search is not None else ())

    def replay(self, ci: int, k: int, *, fine_from: int | None = None,
               on_event: Callable[[int], None] | None = None,
               check: Callable[[Cpu], None] | None = None, before: Progress | None = None,
               search: Search | None = None) -> bool:
        """Restore checkpoint ci and re-execute to the next one; True if stopped by Arrived.

        Events (rounds and service points) are numbered from 0; on_event is called after each.
        From event fine_from on, node k runs step by step, and check (by default: has it reached
        `target`?) may end it between two steps; so may `before`: Arrived when the node is about
        to take the step from that progress, Missed if it is past it (that step was not made in
        a round).  search: node k's breakpoints and every node's watched accesses are noted in
        it as they are met."""
        self._search, self._search_node = search, (k if search is not None else -1)
        self._check = check if check is not None else self._check_target
        self._before = before
        try:
            return self._segment(ci, k, fine_from, on_event)
        finally:
            self._search, self._search_node = None, -1
            self._check = self._check_target
            self._before = None

    def _segment(self, ci: int, k: int, fine_from: int | None,
                 on_event: Callable[[int], None] | None) -> bool:
        m = self.machine
        cp = self.ring.checkpoints[ci]
        end_index, end_time, end_advanced = self.ring.segment_end(ci)
        self.restore(cp)
        # A replay that ended in the middle of a service point (Arrived) leaves that point's reads
        # behind: they are not this one's.
        for source in self.inputs.all():
            source.reads.clear()
        self._fine_node = -1
        event = 0

        def after_event() -> None:
            nonlocal event
            self.stats.events += 1
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
                now = where(m)
                if now != self.ring.wheres[li]:
                    raise HistoryError(f"re-execution diverged before logged point {li} at {point.time}: "
                                       f"{now} where history had {self.ring.wheres[li]}")
                for line, data in point.chunks:
                    self.inputs.feed(line, data)
                self._fine_node = k if fine_from is not None and event >= fine_from else -1
                m.poll_host()
                self.lld.service()
                left = [source.name for source in self.inputs.all() if source.reads]
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
            self.stats.instructions += sum(
                n.cpu.instret - at[0] for n, at in zip(m.nodes, cp.progress, strict=True))
        return False

    def _check_target(self, cpu: Cpu) -> None:
        target = self.target
        if target is not None and progress(cpu) >= target:
            raise Arrived

    def after_step(self, index: int) -> None:
        """lld stepped node index (during re-execution: a recorded STEP request)."""
        cpu = self.machine.nodes[index].cpu
        if self._search is not None and index == self._search_node and cpu.pc in self._search.pcs:
            self._search.hits.append(Hit(index, progress(cpu)))
        if index == self._fine_node:
            self._check(cpu)

    def _round(self, k: int) -> None:
        """Machine.run_round, with node k run step by step (fine) or with search breakpoints."""
        def run_node(index: int, cpu: Cpu, end: int) -> int:
            if index == k and self._fine_node == k:
                return self._fine_run(cpu, end)
            if index == k and self._search is not None:
                return self._search_run(cpu, end, self._search)
            return cpu.run(end)

        self.machine.run_round(run_node)

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
        """Arrived when the node is about to take the step from progress `before`; Missed if it
        is past it (that step was not made in a round)."""
        before = self._before
        if before is not None:
            at = progress(cpu)
            if at == before:
                raise Arrived
            if at > before:
                raise Missed

    def watch_hook(self, node: int, paddr: int, size: int, is_write: bool, value: int) -> int:
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
    def _search_run(cpu: Cpu, limit: int, search: Search) -> int:
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
