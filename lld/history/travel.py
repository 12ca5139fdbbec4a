"""History: what lld serves a REVERSE from, and the recorder the runner reports inputs to.

`History` composes the parts: as a recorder (begin/read/end, after_service) it logs the inputs of
each service point into the ring (checkpoints.py) and takes a checkpoint when one is due; for
lld's requests it travels: it saves the present, puts re-execution's lines in place of the host's,
lets the navigator (navigate.py) move the machine where the request leads, carries the debugger's
state (breakpoints, watchpoints, frames on their way) across, and says to lld how the node
stopped there.

While the machine shows the past the runner runs no rounds and records no input (`in_past`).  A
change to the machine in the past (memory, registers) makes that past the present: the recorded
future is discarded, and the history starts again there (`discard_future`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lld import protocol as p
from lld.history.checkpoints import CheckpointRing
from lld.history.navigate import Found, Navigator
from lld.history.progress import Progress, Where, vector, where
from lld.history.reexecute import Hit, Inputs, Reexecution, Search
from psyche.machine.cpu import STOP_REQUESTED
from psyche.machine.hostline import HostLine
from psyche.machine.machine import TIMEBASE_HZ, Machine, NodeState
from psyche.machine.record import Recorder, RecordingWire, ReplayLine, ReplayWire, ServicePoint

if TYPE_CHECKING:
    from lld.attach import Lld

DEFAULT_INTERVAL = 2_000_000     # simulated cycles between checkpoints (0.2 s of machine time)
DEFAULT_KEEP = 16                # checkpoints in the ring


class _Sink(HostLine):
    """A line for a uart during re-execution: its output goes nowhere, it reads nothing."""

    def describe(self) -> str:
        return "re-execution"

    def read_available(self, max_bytes: int = 0) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        pass


class History(Recorder):
    """Checkpoints and inputs of a running machine, and travel in them (lld/history/__init__.py)."""

    machine: Machine
    lld: Lld
    ring: CheckpointRing
    engine: Reexecution
    nav: Navigator

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
        #: The access the last watchpoint stop in the past stands just before, the direction it
        #: was found in (-1 back, 1 forward) and every node's progress there: gdb steps over a
        #: watchpoint it stopped at (watchpoints removed) before it looks at the value, and that
        #: step is the access's (forward: it makes the access; back: the machine stays, as it is
        #: where the step back over the access leads).
        self._at_access: tuple[Hit, int, list[Progress]] | None = None
        #: The access the last watchpoint stop found, while the machine stands beside it.
        self.last_access: Hit | None = None
        self.travels = 0

    def attach(self, machine: Machine, lld: Lld, wires: bool = True) -> None:
        """Keep the history of machine, with lld beneath it; wires: record what each NIC takes
        from its wire here (a Recording does it itself when there is one, with this as recorder)."""
        self.machine = machine
        self.lld = lld
        self.ring = CheckpointRing(machine, lld, self.keep)
        self.engine = Reexecution(machine, lld, self.ring)
        self.nav = Navigator(machine, self.ring, self.engine)
        self._high_gen = [0] * len(machine.nodes)
        lld.history = self
        for n in lld.nodes:
            n.history = self
        machine.add_watch_hook(self.engine.watch_hook)
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

    def _checkpoint(self) -> None:
        self.ring.take(self.point.advanced if self.point is not None else 0)

    def describe(self) -> str:
        """One line for the end of a run: what history cost."""
        r = self.ring.stats
        e = self.engine.stats
        seconds = r.cycles / TIMEBASE_HZ
        rate = f", {r.page_bytes / seconds / 1e6:.2f} MB of pages per simulated second" if seconds else ""
        return (f"{r.checkpoints} checkpoints over {r.cycles} cycles ({r.page_bytes} bytes of "
                f"RAM pages{rate}); the ring holds {self.ring.memory_bytes()} bytes now; {self.travels} "
                f"travels re-executed {e.events} rounds and service points, "
                f"{e.instructions} instructions")

    # -- lld's requests ----------------------------------------------------------------------

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
        return self._back(k, lambda: self.nav.step_back(k, search))

    def reverse_continue(self, k: int) -> int:
        """Back to the latest hit before now of node k's breakpoints, or of any node's access to
        node k's watched ranges; or to the start of the history."""
        self._at_access = self.last_access = None
        search = self._new_search(k)
        return self._back(k, lambda: self.nav.continue_back(k, search))

    def _back(self, k: int, go: Callable[[], Found]) -> int:
        """Travel back as go says, node k stopping at what it found; FLAG_HISTORY_BEGIN if that
        is the start of the history."""
        found = self._travel(go)
        flags = p.FLAG_HISTORY_BEGIN if found.outcome == "begin" else 0
        self._stop_at(k, found.hit, -1, flags)
        return flags

    def forward_step(self, k: int) -> bool:
        """A STEP in the past: True if history had the step (the node stands after it); False if
        the machine is back at the present (the step is then done live).  Right after a
        watchpoint stop found going forward, the step is the access's (whichever node makes it:
        gdb steps over the watchpoint before it looks at the value): to just after it."""
        access = self._beside(1)
        search = self._watch_search(k) if access is None else None
        found = self._travel(lambda: self.nav.step_forward(k, search, access))
        if found.outcome == "hit":
            self._stop_at(k, found.hit, 1)
            return True
        self.in_past = found.outcome == "ok"
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
        found = self._travel(lambda: self.nav.continue_forward(k, search, standing))
        if found.outcome == "hit":
            self._stop_at(k, found.hit, 1)
        else:
            self.in_past = False
        return self.in_past

    def after_step(self, index: int) -> None:
        """lld stepped node index (during re-execution: a recorded STEP request)."""
        self.engine.after_step(index)

    def discard_future(self) -> None:
        """A change to the machine in the past: the past becomes the present, and the recorded
        future is gone (history starts again at the end of this service point)."""
        self.in_past = False
        self._at_access = self.last_access = None
        self._restart = True
        self._traveled = True

    def accessor(self, index: int) -> bool:
        """In the past, node index made the access the last watchpoint stop found (the machine
        stands just before or just after it)."""
        return self.in_past and self.last_access is not None and self.last_access.node == index

    # -- the debugger's side of a travel -----------------------------------------------------

    def _new_search(self, k: int) -> Search:
        """The debugger's breakpoints (kind NORMAL) and watchpoints on node k."""
        st = self.lld.nodes[k].state
        return Search(frozenset(a for a, kind in st.breakpoints.items() if kind == p.BP_NORMAL),
                      watchpoints=tuple(st.watchpoints.values()))

    def _watch_search(self, k: int) -> Search | None:
        """A search for accesses to node k's watched ranges only (for a step), if it has any."""
        watchpoints = tuple(self.lld.nodes[k].state.watchpoints.values())
        return Search(frozenset(), watchpoints=watchpoints) if watchpoints else None

    def _travel(self, go: Callable[[], Found]) -> Found:
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
        inputs = self.engine.inputs = Inputs(ReplayLine("console"), ReplayLine("debug line"), {})
        sink = _Sink()
        for u in uarts:
            u.line = sink
        m.console.line = inputs.console
        m.console._listeners = []
        lld.king.line = inputs.debug
        for node, nic in zip(m.nodes, nics, strict=True):
            if nic is not None:
                inputs.wires[node.index] = ReplayWire(node.index)
                nic.wire = inputs.wires[node.index]
        self._traveled = True
        self.travels += 1
        # Re-executed requests must do what they did live: a STEP steps, a WRITE_MEM writes.  Seen
        # from the past they would travel again, or discard the future (lld/stub.py asks in_past).
        self.in_past = False
        try:
            try:
                found = go()
            except BaseException:
                # Whatever went wrong, the machine must not be left in a state history never had:
                # back to the present, which the last checkpoint holds exactly.
                self.engine.restore(self.ring.checkpoints[-1])
                raise
        finally:
            self.engine.target = None
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
        return found

    def _beside(self, direction: int) -> Hit | None:
        """The access the last watchpoint stop found in the direction (-1 back, 1 forward), if the
        machine still stands just before it; forgets it either way (the next step is taken)."""
        at, self._at_access = self._at_access, None
        if at is None or at[1] != direction or at[2] != vector(self.machine):
            self.last_access = None
            return None
        return at[0]

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

    def _stop_here(self, k: int, reason: int, flags: int = 0, hit: Hit | None = None) -> None:
        """Node k stops where the machine stands, for reason (lld's REASON_*), as lld tells it."""
        node = self.machine.nodes[k]
        if node.state is NodeState.RUNNING:
            self.machine.stop_node(k, STOP_REQUESTED)
        st = self.lld.nodes[k].state
        st.reason_stops = node.stops
        st.reason = reason
        st.data_addr = hit.addr if hit is not None else 0
        st.watch_flags = hit.flags if hit is not None else 0
        self.lld.nodes[k].travel_flags = flags
