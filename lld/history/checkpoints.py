"""The checkpoint ring: the whole machine and lld's state, taken now and then, and the inputs
between them.

A checkpoint is a service point's state of the CPUs, devices and scheduler (snapshot.py's), every
node's RAM as 4 KiB pages (shared with the previous checkpoint when unchanged, so that the ring
costs what the machine wrote, not its size), and lld's state.  The ring keeps the `keep` latest
and the service points logged since the oldest: from a checkpoint and the log, re-execution
(reexecute.py) reaches any moment up to the next one.  The ring knows nothing of gdb, of searches
or of travels.
"""

from __future__ import annotations

import array
import copy
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lld.codec import Frame, FrameDecoder
from lld.history.progress import Progress, Where, progress
from psyche.machine import snapshot
from psyche.machine.isa import OP_UNDECODED
from psyche.machine.machine import Machine
from psyche.machine.physmem import NODE_RAM_SIZE, RAM_BASE
from psyche.machine.record import ServicePoint

if TYPE_CHECKING:
    from lld.attach import Lld
    from lld.stub import NodeDebugState

PAGE = 4096
_ZERO = bytes(PAGE)


@dataclass
class Checkpoint:
    """The whole machine and lld beneath it at one service point, RAM as pages shared with the
    checkpoint before when unchanged."""

    log_index: int                   # service points of the log before it
    time: int
    header: dict[str, Any]           # snapshot's state of CPUs, devices, scheduler (JSON text)
    pages: list[list[bytes]]         # per node, per page (shared with the previous checkpoint)
    lld: list[tuple[NodeDebugState, set[int], deque[Frame]]]
    watched: dict[int, int]
    decoder: FrameDecoder
    progress: list[Progress]
    bytes: int = 0                   # RAM bytes this checkpoint holds that its predecessor does not
    #: Machine time moved on with wall time in the service point the checkpoint was taken in,
    #: before it, when that point is not in the log (a travel's checkpoint of the present): the
    #: re-execution of the segment before it moves time on so too, as the only way to get there
    #: while every node is stopped.
    advanced: int = 0


@dataclass
class RingStats:
    """Checkpoints taken, the RAM page bytes they took (pages shared with their predecessor not
    counted), and the simulated cycles history covered (from the first checkpoint to the last)."""

    checkpoints: int = 0
    page_bytes: int = 0
    cycles: int = 0
    first_time: int | None = None


class CheckpointRing:
    """The `keep` latest checkpoints of machine (with lld beneath it), and the service points
    logged since the oldest, each with every node's `Where` when it began."""

    def __init__(self, machine: Machine, lld: Lld, keep: int) -> None:
        self.machine = machine
        self.lld = lld
        self.keep = keep
        self.checkpoints: list[Checkpoint] = []
        self.log: list[ServicePoint] = []
        self.wheres: list[Where] = []
        self.stats = RingStats()

    def log_point(self, point: ServicePoint, where: Where) -> None:
        """A service point with input, after the latest checkpoint."""
        self.log.append(point)
        self.wheres.append(where)

    def clear(self) -> None:
        """Forget every checkpoint and input: history starts again with the next checkpoint."""
        self.log.clear()
        self.wheres.clear()
        self.checkpoints.clear()

    def take(self, advanced: int) -> Checkpoint:
        """A checkpoint of the machine as it is now (advanced: Checkpoint.advanced), the oldest
        dropped (with the inputs before the next one) if the ring is full."""
        m = self.machine
        prev = self.checkpoints[-1] if self.checkpoints else None
        pages: list[list[bytes]] = []
        fresh = 0
        for node, ram in enumerate(m.mem.rams):
            image = bytes(memoryview(ram).cast("B"))
            old = prev.pages[node] if prev is not None else None
            mine = []
            for index in range(NODE_RAM_SIZE // PAGE):
                page = image[index * PAGE:(index + 1) * PAGE]
                if old is not None and page == old[index]:
                    page = old[index]
                elif page == _ZERO:
                    page = _ZERO
                else:
                    fresh += PAGE
                mine.append(page)
            pages.append(mine)
        lld = self.lld
        cp = Checkpoint(
            log_index=len(self.log), time=m.time,
            header=json.loads(json.dumps(snapshot._header(m))),
            pages=pages,
            lld=[(copy.deepcopy(n.state), set(n.target.cpu.breakpoints), deque(n.mailbox))
                 for n in lld.nodes],
            watched=dict(m.mem.watched_pages),
            decoder=copy.deepcopy(lld.king.decoder),
            progress=[progress(n.cpu) for n in m.nodes],
            bytes=fresh,
            advanced=advanced,
        )
        self.checkpoints.append(cp)
        s = self.stats
        s.checkpoints += 1
        s.page_bytes += fresh
        if s.first_time is None:
            s.first_time = m.time
        s.cycles = max(s.cycles, m.time - s.first_time)
        while len(self.checkpoints) > self.keep:
            self.checkpoints.pop(0)
            drop = self.checkpoints[0].log_index
            del self.log[:drop]
            del self.wheres[:drop]
            for c in self.checkpoints:
                c.log_index -= drop
        return cp

    def restore(self, cp: Checkpoint, watch_pages: Iterable[int] = ()) -> None:
        """Put the machine and lld back to checkpoint cp; watch_pages: pages to watch on top of
        the ones watched then (a search's)."""
        m = self.machine
        mem = m.mem
        header = json.loads(json.dumps(cp.header))
        m.time = header["time"]
        for index, state in enumerate(header["nodes"]):
            snapshot._set_cpu_state(m, index, state)
        for node, addr in enumerate(header["reservations"]):
            mem.reservations[node] = addr
        mem.nreservations = sum(1 for a in header["reservations"] if a >= 0)
        m.set_scheduler_state(header["scheduler"])
        for node, ram in enumerate(mem.rams):
            image = bytes(memoryview(ram).cast("B"))
            for index, page in enumerate(cp.pages[node]):
                at = index * PAGE
                if image[at:at + PAGE] != page:
                    mem.load_words(node, at // 4, array.array("i", page).tolist())
                    code = mem.code_page_index.get((RAM_BASE + node * NODE_RAM_SIZE + at) >> 12)
                    if code is not None:
                        decoded = mem.code_pages[code]
                        for w in range(PAGE // 4):
                            decoded[w] = OP_UNDECODED
                        mem.code_generations[code] += 1
                        mem.code_epoch += 1
        mem.epoch += 1
        for n, (state, bps, mailbox) in zip(self.lld.nodes, cp.lld, strict=True):
            n.state = copy.deepcopy(state)
            n.target.cpu.breakpoints = set(bps)
            n.mailbox = deque(mailbox)
        mem.watched_pages = dict(cp.watched)
        for ppn in watch_pages:
            mem.watch_page(ppn)
        self.lld.king.decoder = copy.deepcopy(cp.decoder)
        for each in m.nodes:
            each.cpu.flush_tlb()

    def segment_end(self, ci: int) -> tuple[int, int, int]:
        """Where segment ci (from checkpoint ci to the next) ends: the next checkpoint's log
        index, time and Checkpoint.advanced."""
        nxt = self.checkpoints[ci + 1]
        return nxt.log_index, nxt.time, nxt.advanced

    def latest(self, k: int, bound: Progress, strict: bool) -> int | None:
        """The latest checkpoint (not the present one) where node k's progress is before bound
        (or at it, unless strict)."""
        found = None
        for i, cp in enumerate(self.checkpoints[:-1]):
            if cp.progress[k] < bound or (not strict and cp.progress[k] == bound):
                found = i
        return found

    def latest_all(self, now: list[Progress]) -> int:
        """The latest checkpoint (not the present one) at or before the moment now."""
        found = 0
        for i, cp in enumerate(self.checkpoints[:-1]):
            if all(a <= b for a, b in zip(cp.progress, now, strict=True)):
                found = i
        return found

    def memory_bytes(self) -> int:
        """RAM the ring holds (each distinct page once; zero pages are free) plus the inputs."""
        pages = {id(page) for cp in self.checkpoints for node in cp.pages for page in node
                 if page is not _ZERO}
        return len(pages) * PAGE + sum(24 + sum(len(d) for _, d in pt.chunks) for pt in self.log)
