"""Where each of the debugger's requests leads in the history, and how to get there.

A moment is found by re-executing segments of the ring (reexecute.py) with hooks: "the first
moment node k's progress is at least P" (`goto`), "the last moment it is at P, just before its
next step" (`goto_before`), the hits of a search in a segment (`scan`); and the four requests put
them together (`step_back`, `continue_back`, `step_forward`, `continue_forward`), each leaving the
machine where the request leads and saying what it found.  What the debugger is then told (stop
reasons, flags, lld's state) is travel.py's business, not this module's.

* step back: find the progress node k had before its last step, then the first moment it had it;
  with watchpoints, the latest access to them on the way back stops it first, just before it;
* continue back: re-execute each segment between checkpoints, newest first, with the search
  armed; the latest hit before now wins, or the start of the history.  A watchpoint stop stands
  just before the access, and the node's next step that way is the access (gdb steps over a
  watchpoint before it reads the value);
* forward, in the past: a step or a resume re-executes toward the present the same way; what
  history does not reach is done live after returning to the present.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lld.history.checkpoints import CheckpointRing
from lld.history.progress import Progress, progress, vector
from lld.history.reexecute import Arrived, HistoryError, Hit, Missed, Reexecution, Search
from psyche.machine.cpu import Cpu
from psyche.machine.machine import Machine, NodeState

#: Where a request went: a search's hit, the start of the history, the moment asked for ("ok"), or
#: the present (history does not reach what was asked: the rest is done live).
Outcome = Literal["hit", "begin", "ok", "present"]


@dataclass(frozen=True)
class Found:
    """Where a request's search left the machine."""

    outcome: Outcome
    hit: Hit | None = None           # with outcome "hit"


class Navigator:
    """Moves machine through the ring's history by re-executing it with engine."""

    def __init__(self, machine: Machine, ring: CheckpointRing, engine: Reexecution) -> None:
        self.machine = machine
        self.ring = ring
        self.engine = engine

    # -- the requests ----------------------------------------------------------------------

    def step_back(self, k: int, search: Search | None) -> Found:
        """To the state before node k's last step, or, with a search (node k's watchpoints), just
        before the latest access to them on the way there (its own last step's included)."""
        moment = vector(self.machine)
        now = progress(self.machine.nodes[k].cpu)
        ci = self.ring.latest(k, now, strict=True)
        if ci is None:
            self.begin(k)
            return Found("begin")
        seen: list[Progress] = [self.ring.checkpoints[ci].progress[k]]

        def on_event(e: int) -> None:
            at = progress(self.machine.nodes[k].cpu)
            if at >= now:
                raise Arrived
            seen.append(at)

        crossed = self.engine.replay(ci, k, on_event=on_event)
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

            self.engine.replay(ci, k, fine_from=crossing, check=fine_check)
            previous = last[0]
        hit = self.watch_behind(k, search, moment, previous) if search is not None else None
        if hit is not None:
            self.arrive(k, hit)
            return Found("hit", hit)
        self.goto(k, previous)
        if self.machine.nodes[k].state is NodeState.HELD:
            self.begin(k)   # before its first step the node was not started yet
            return Found("begin")
        return Found("ok")

    def continue_back(self, k: int, search: Search) -> Found:
        """To the latest hit of the search before now, or to the start of the history."""
        now = vector(self.machine)
        if search.watchpoints:
            ci: int | None = self.ring.latest_all(now)
        else:
            ci = self.ring.latest(k, now[k], strict=True)
        for c in range(ci if ci is not None else -1, -1, -1):
            hits = [h for h in self.scan(k, c, search, now) if h.before(now)]
            if hits:
                self.arrive(k, hits[-1])
                return Found("hit", hits[-1])
        self.begin(k)
        return Found("begin")

    def step_forward(self, k: int, search: Search | None, access: Hit | None) -> Found:
        """To after node k's next step, or, with a search (node k's watchpoints), just before the
        first access to them on the way; right beside an access found going forward (access),
        to just after it, whichever node makes it."""
        if access is not None:
            j, target = access.node, (access.at[0], access.at[1] + 1)
        else:
            j = k
            instret, traps = progress(self.machine.nodes[k].cpu)
            target = (instret, traps + 1)
            hit = self.watch_ahead(k, search) if search is not None else None
            if hit is not None:
                self.arrive(k, hit)
                return Found("hit", hit)
        return Found("ok" if self.goto(j, target) else "present")

    def continue_forward(self, k: int, search: Search, standing: Hit | None) -> Found:
        """To the first hit of the search from now on (not the access the machine is standing
        beside, if any), or to the present."""
        if not search.pcs and not search.watchpoints:
            # Nothing to stop at before the present (gdb's detach resumes): straight there.
            self.engine.restore(self.ring.checkpoints[-1])
            return Found("present")
        now = vector(self.machine)
        if search.watchpoints:
            ci = self.ring.latest_all(now)
        else:
            ci = self.ring.latest(k, now[k], strict=False) or 0
        for c in range(ci, len(self.ring.checkpoints) - 1):
            # A breakpoint hit where node k stands is passed (as a resume steps over it); an
            # access about to be made is ahead.
            hits = [h for h in self.scan(k, c, search, None)
                    if (h.at >= now[h.node] and h != standing if h.watch else h.at > now[k])]
            if hits:
                self.arrive(k, hits[0])
                return Found("hit", hits[0])
        self.engine.restore(self.ring.checkpoints[-1])
        return Found("present")

    # -- moments ---------------------------------------------------------------------------

    def begin(self, k: int) -> None:
        """The start of node k's history: the oldest checkpoint, or, if the node was not started
        yet there (held until another node starts it), the moment after its first step: a held
        node cannot stand stopped before a debugger."""
        self.engine.restore(self.ring.checkpoints[0])
        if self.machine.nodes[k].state is NodeState.HELD:
            self.goto(k, (0, 1))

    def goto(self, k: int, target: Progress) -> bool:
        """The first moment node k's progress is at least target (or the start of the history, if
        it is there already); False (and the machine at the present) if history never gets there.

        The first moment lies after the latest checkpoint where the node had not reached target:
        a checkpoint where it had may be long after it got there (a stopped node stands still)."""
        checkpoints = self.ring.checkpoints
        first = self.ring.latest(k, target, strict=True) or 0
        for ci in range(first, len(checkpoints) - 1):
            if checkpoints[ci].progress[k] >= target:
                self.engine.restore(checkpoints[ci])
                return True
            crossing: list[int] = []

            def on_event(e: int, crossing: list[int] = crossing) -> None:
                if progress(self.machine.nodes[k].cpu) >= target:
                    crossing.append(e)
                    raise Arrived

            self.engine.target = None
            if not self.engine.replay(ci, k, on_event=on_event):
                continue
            self.engine.target = target
            arrived = self.engine.replay(ci, k, fine_from=crossing[0])
            self.engine.target = None
            if arrived:
                return True
            raise HistoryError("re-execution did not reach the step it reached before")
        self.engine.restore(checkpoints[-1])
        return False

    def goto_before(self, k: int, at: Progress) -> None:
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

            if not self.engine.replay(ci, k, on_event=on_event):
                continue
            try:
                if self.engine.replay(ci, k, fine_from=crossing[0], before=at):
                    return
            except Missed:
                pass
            break
        if not self.goto(k, at):
            raise HistoryError("re-execution did not reach a step it reached before")

    def arrive(self, k: int, hit: Hit) -> None:
        """Go to a hit a search found: a breakpoint's (node k about to execute there), or an
        access's: just before it, in either direction (where gdb's step over the watchpoint
        leads going back, and where a watchpoint stops going forward)."""
        if hit.watch:
            self.goto_before(hit.node, hit.at)
        else:
            self.goto(k, hit.at)

    # -- searches --------------------------------------------------------------------------

    def scan(self, k: int, ci: int, search: Search, bound: list[Progress] | None,
             until: Callable[[], bool] | None = None) -> list[Hit]:
        """Re-execute segment ci with the search armed; stop after the event where every node
        has reached bound (no later hit can be before it), or where until() is true."""
        search.hits = []

        def on_event(e: int) -> None:
            if bound is not None and all(a >= b for a, b in zip(vector(self.machine), bound, strict=True)):
                raise Arrived
            if until is not None and until():
                raise Arrived

        self.engine.replay(ci, k, on_event=on_event, search=search)
        return search.hits

    def watch_behind(self, k: int, search: Search, now: list[Progress], previous: Progress) -> Hit | None:
        """The latest access to the search's ranges before the moment now and after the first
        moment node k had progress previous (its own last step's included)."""
        for c in range(self.ring.latest_all(now), -1, -1):
            hits = [h for h in self.scan(k, c, search, now)
                    if h.watch and h.before(now) and h.seen >= previous]
            if hits:
                return hits[-1]
            if self.ring.checkpoints[c].progress[k] < previous:
                break
        return None

    def watch_ahead(self, k: int, search: Search) -> Hit | None:
        """The first access to the search's ranges from now on, before node k's next step (or
        made by that step)."""
        now = vector(self.machine)
        mine = now[k]

        def passed() -> bool:
            return progress(self.machine.nodes[k].cpu) > mine

        for c in range(self.ring.latest_all(now), len(self.ring.checkpoints) - 1):
            hits = [h for h in self.scan(k, c, search, None, until=passed)
                    if h.watch and h.at >= now[h.node] and h.seen <= mine]
            if hits:
                return hits[0]
            if passed():
                break
        return None
