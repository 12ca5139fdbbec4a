"""A stopped node's memory as the mux caches it: aligned blocks, read ahead, never the truth.

Every lld request is a round trip over the debug line, and gdb reads memory in
many small pieces (the instruction at pc, its neighbours, a frame, a variable).
`MemoryCache` answers repeats without the line and keeps the round trips it
cannot avoid off gdb's critical path:

* memory is kept in aligned CACHE_BLOCK-byte blocks while the node stays
  stopped (the node handle clears it whenever the node may have changed), for
  MAX_AGE at most: the other nodes run on and may write it; the code around pc
  is kept for the whole stop, as gdb keeps code;
* at every stop, the bytes around the new pc are read ahead (`prefetch`)
  while gdb digests the stop reply;
* long reads (a dump, `x/1000x`) bypass the blocks: they go to lld in pieces
  of its largest transfer and are kept only until delivered; one that follows
  the one before is read ahead, so the line works while gdb handles the piece
  before (`_read_ahead_after`).

One cache serves one address space (`AddressSpace`): two protection domains
mapping the same virtual address never share a block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lld import protocol as p

CACHE_BLOCK = 64          # memory is cached in aligned blocks of this size
CACHED_READ = 1024        # reads up to this long are kept in the cache until the node changes
BULK_READ = 65536         # longer ones up to this are long reads, read ahead when sequential
PREFETCH_SPAN = 256       # at a stop, this much around pc is read ahead (within pc's page)
PAGE = 4096
ADDRESS_END = 1 << 32
#: How long what was read of a stopped node's memory is trusted.  The other nodes run on and may
#: write it (shared data: a barrier's count, a lock), as may a device; gdb reads the same bytes
#: many times in the few milliseconds after a stop, and a person or a script asks again later.
MAX_AGE = 0.02


@dataclass(frozen=True)
class AddressSpace:
    """Which translation an address goes through: lld's space code and, for SPACE_ROOT, a satp."""

    space: int = p.SPACE_VIRT
    root: int = 0

    def read(self, addr: int, length: int) -> p.ReadMem:
        return p.ReadMem(self.space, addr, length, self.root)

    def write(self, guard: int, addr: int, data: bytes) -> p.WriteMem:
        return p.WriteMem(guard, self.space, addr, data, self.root)


#: The node's current translation, as its next data access would see it.
CURRENT = AddressSpace()

Submit = Callable[[p.Request], "asyncio.Future[p.Reply]"]


def _seen(future: asyncio.Future[p.Reply]) -> None:
    """Take a read's failure, so that one nobody awaits (the link went down) is not reported."""
    if not future.cancelled():
        future.exception()


@dataclass
class LongRead:
    """A long read on the line (or back): its pieces, lld's largest transfer each, in order."""

    addr: int
    length: int
    epoch: int
    pieces: list[asyncio.Future[p.Reply]]
    started: float = field(default_factory=time.monotonic)

    def done(self) -> bool:
        return all(piece.done() for piece in self.pieces)

    def answers(self, addr: int, length: int, epoch: int) -> bool:
        """Whether this read is the one asked for now, and not older than MAX_AGE (a dump asks
        for its next piece within milliseconds; a person's next `x` may come much later)."""
        return ((self.addr, self.length, self.epoch) == (addr, length, epoch)
                and time.monotonic() - self.started <= MAX_AGE)

    def data(self) -> bytes | None:
        """The bytes, once done; None if any piece failed (unreadable: the caller goes page by page)."""
        out = []
        for piece in self.pieces:
            if piece.cancelled() or piece.exception() is not None:
                return None
            reply = piece.result()
            if not reply.ok or not isinstance(reply.value, bytes):
                return None
            out.append(reply.value)
        data = b"".join(out)
        return data if len(data) == self.length else None

    async def result(self) -> bytes | None:
        try:
            await asyncio.wait(self.pieces)
        finally:
            self.cancel()   # (only what is not done yet: a read whose reader went away)
        return self.data()

    def cancel(self) -> None:
        """Drop the pieces not yet answered: the link sends none still waiting for the line."""
        for piece in self.pieces:
            piece.cancel()


@dataclass
class MemoryCache:
    """Blocks of one address space of one node, valid until `clear`."""

    submit: Submit
    space: AddressSpace = CURRENT
    blocks: dict[int, bytes] = field(default_factory=dict)
    #: Blocks kept for the whole stop, whatever their age: the code around pc.
    code: dict[int, bytes] = field(default_factory=dict)
    #: The stopped node's pc (-1: none known), which says what the code around pc is.
    pc: int = -1
    #: Reads in flight, by every block they will fill: a read that needs one of those waits for it.
    fetching: dict[int, asyncio.Future[p.Reply]] = field(default_factory=dict)
    #: Block reads not yet put in the cache: (first block, blocks, epoch when sent).
    reads: dict[asyncio.Future[p.Reply], tuple[int, int, int]] = field(default_factory=dict)
    #: Bumped at every clear, so that a read that was in flight across a clear fills nothing.
    epoch: int = 0
    #: Where the last long read ended (a read starting there reads ahead).
    read_end: int = -1
    #: The long read gdb will probably ask for next, on the line or back.
    ahead: LongRead | None = None
    #: The blocks read from the cache since it was last cleared: what this stop needed.
    touched: set[int] = field(default_factory=set)
    #: Blocks lld could not read at this stop: a read that starts in one is refused without the
    #: line (gdb unwinding past the outermost frame reads address 0 and -4 at every stop).
    unreadable: set[int] = field(default_factory=set)
    #: When the oldest of the blocks (and of the unreadable ones) was read: all go MAX_AGE after.
    read_at: float = 0.0

    def clear(self) -> None:
        self.blocks.clear()
        self.code.clear()
        self.pc = -1
        self.fetching.clear()
        self.reads.clear()
        self.touched.clear()
        self.unreadable.clear()
        self.epoch += 1
        if self.ahead is not None:
            self.ahead.cancel()
            self.ahead = None

    def _expire(self) -> None:
        """Drop what was read more than MAX_AGE ago (the blocks read at this stop stay touched)."""
        if (self.blocks or self.unreadable) and time.monotonic() - self.read_at > MAX_AGE:
            self.blocks.clear()
            self.unreadable.clear()

    def _filling(self) -> None:
        """Blocks are about to come in: what has expired goes, and the first block after an
        expiry or a clear starts the clock."""
        self._expire()
        if not self.blocks and not self.unreadable:
            self.read_at = time.monotonic()

    def _keep(self, block: int, data: bytes) -> None:
        """Cache a block: the code around pc for the whole stop (gdb caches code for a stop too,
        and steps answered ahead are made only if lld finds that code unchanged), the rest
        for MAX_AGE."""
        if self.pc >= 0 and abs(block - self.pc) < PREFETCH_SPAN:
            self.code[block] = data
        else:
            self.blocks[block] = data

    def fill(self, addr: int, data: bytes) -> None:
        """Take bytes that came without asking (the code and the memory a stop's reply carries)."""
        self._filling()
        for offset in range(-addr % CACHE_BLOCK, len(data) - CACHE_BLOCK + 1, CACHE_BLOCK):
            self._keep(addr + offset, data[offset: offset + CACHE_BLOCK])

    def fill_unreadable(self, addr: int, length: int) -> None:
        """Take lld's word that [addr, addr + length) could not be read (a prefetched range):
        kept when the range is one block, the only case that says which block."""
        if addr % CACHE_BLOCK == 0 and length == CACHE_BLOCK:
            self._filling()
            self.unreadable.add(addr)

    # -- answers without the line ------------------------------------------------

    def cached(self, addr: int, length: int) -> bytes | None:
        """The bytes if every block they lie in is cached, else None."""
        if not 0 < length <= BULK_READ or addr + length > ADDRESS_END:
            return None
        self._expire()
        first = addr - addr % CACHE_BLOCK
        out = bytearray()
        blocks = range(first, addr + length, CACHE_BLOCK)
        for block in blocks:
            data = self.blocks.get(block) or self.code.get(block)
            if data is None:
                return None
            out += data
        if length <= CACHED_READ:
            self.touched.update(blocks)
        return bytes(out[addr - first: addr - first + length])

    def read_now(self, addr: int, length: int) -> bytes | None:
        """The bytes of a read if the cache has them all, or a long read was read ahead and is back."""
        if length <= CACHED_READ:
            return self.cached(addr, length)
        ahead = self.ahead
        if ahead is None or not ahead.answers(addr, length, self.epoch) or not ahead.done():
            return None
        data = ahead.data()
        if data is not None:
            self.ahead = None
            self._read_ahead_after(addr, length)
        return data

    # -- reads through the line -------------------------------------------------------

    async def read(self, addr: int, length: int) -> bytes | None:
        """Read through the cache; None if any part is unreadable (or keeps changing), and no
        bytes if lld could not read the block it starts in."""
        if not 0 < length <= BULK_READ or addr + length > ADDRESS_END:
            return None
        if length > CACHED_READ:
            return await self._read_long(addr, length)
        first = addr - addr % CACHE_BLOCK
        for _ in range(3):
            self._expire()
            if first in self.unreadable:
                self.touched.add(first)
                return b""   # nothing readable from the start: lld said so at this stop
            data = self.cached(addr, length)
            if data is not None:
                break
            epoch = self.epoch
            for future in self._fetch_missing(addr, length):
                reply = await future
                self._absorb(future)
                if not reply.ok and self.epoch == epoch:
                    if first in self.unreadable:
                        self.touched.add(first)   # (so the next stop's working set asks lld again)
                        return b""
                    return None   # unreadable (unmapped, not RAM): the caller reads it piece by piece
            if self.epoch == epoch:
                data = self.cached(addr, length)
                break
            # The node changed while we waited (a write, a resume): read it again.
        else:
            return None
        return data

    async def _read_long(self, addr: int, length: int) -> bytes | None:
        for _ in range(3):
            epoch = self.epoch
            read, self.ahead = self.ahead, None
            if read is None or not read.answers(addr, length, epoch):
                if read is not None:
                    read.cancel()
                read = self._start(addr, length)
            self._read_ahead_after(addr, length)   # (queued behind this one's pieces)
            data = await read.result()
            if self.epoch == epoch:
                return data
            # The node changed while we waited (a write, a resume): read it again.
        return None

    def prefetch(self, pc: int) -> None:
        """Read the bytes around pc ahead of gdb, within pc's page (so the read cannot fail there)."""
        page = pc - pc % PAGE
        block = pc - pc % CACHE_BLOCK
        first = max(page, block - PREFETCH_SPAN // 2)
        last = min(page + PAGE, first + PREFETCH_SPAN) - CACHE_BLOCK
        if not self.blocks and not self.code and not self.fetching:
            self._fetch(first, (last - first) // CACHE_BLOCK + 1)

    def _start(self, addr: int, length: int) -> LongRead:
        pieces = [self.submit(self.space.read(addr + offset, min(p.MAX_DATA, length - offset)))
                  for offset in range(0, length, p.MAX_DATA)]
        for piece in pieces:
            piece.add_done_callback(_seen)   # (a read ahead nobody asks for may fail unheard)
        return LongRead(addr, length, self.epoch, pieces)

    def _read_ahead_after(self, addr: int, length: int) -> None:
        """A long read of [addr, addr + length): if it follows the one before, read the next ahead.

        gdb reads big ranges (dump, x/1000x, a large structure) in packet-sized pieces,
        one after another, each asked for only when the last has arrived.  The line
        would sit idle while gdb handles each piece; instead the next piece is already
        being read when this one is answered.  (A read-ahead past what gdb wants costs
        one wasted read, or none if the node resumes first: reads change nothing.)
        """
        sequential = addr == self.read_end
        self.read_end = addr + length
        if sequential and self.ahead is None and addr + 2 * length <= ADDRESS_END:
            self.ahead = self._start(addr + length, length)

    def _fetch(self, first: int, count: int) -> asyncio.Future[p.Reply]:
        """Start one READ_MEM of `count` blocks from block address `first`; it fills the cache."""
        future = self.submit(self.space.read(first, count * CACHE_BLOCK))
        self.reads[future] = (first, count, self.epoch)
        for i in range(count):
            self.fetching[first + i * CACHE_BLOCK] = future
        future.add_done_callback(self._absorb)
        return future

    def _absorb(self, future: asyncio.Future[p.Reply]) -> None:
        """Put a finished block read into the cache (once; a read from before a clear is dropped).

        Runs as the future's callback, and again from whoever awaited it: a future
        that is already done when awaited returns at once, before its callbacks have
        had their turn in the event loop.
        """
        read = self.reads.pop(future, None)
        if read is None:
            return
        first, count, epoch = read
        if self.epoch != epoch:
            return   # the node changed while the read was on the line: it is stale
        blocks = [first + i * CACHE_BLOCK for i in range(count)]
        for block in blocks:
            if self.fetching.get(block) is future:
                del self.fetching[block]
        if future.cancelled() or future.exception() is not None:
            return
        reply = future.result()
        self._filling()
        if reply.ok and isinstance(reply.value, bytes) and len(reply.value) == count * CACHE_BLOCK:
            for i, block in enumerate(blocks):
                self._keep(block, reply.value[i * CACHE_BLOCK: (i + 1) * CACHE_BLOCK])
        elif reply.status in (p.E_UNMAPPED, p.E_NOT_RAM) and count == 1:
            self.unreadable.add(first)

    def _fetch_missing(self, addr: int, length: int) -> list[asyncio.Future[p.Reply]]:
        """Start reading every block of [addr, addr + length) that is neither cached nor on its way.

        Returns the reads that will bring the range in, those already in flight
        included.  Missing blocks go in runs of at most p.MAX_DATA bytes, all queued at
        once, so the link sends each as soon as the one before is answered.
        """
        self._expire()
        waits: list[asyncio.Future[p.Reply]] = []
        run: list[int] = []
        per_read = p.MAX_DATA // CACHE_BLOCK

        def flush() -> None:
            if run:
                waits.append(self._fetch(run[0], len(run)))
                run.clear()

        for block in range(addr - addr % CACHE_BLOCK, addr + length, CACHE_BLOCK):
            if block in self.blocks or block in self.code:
                flush()
                continue
            in_flight = self.fetching.get(block)
            if in_flight is not None:
                flush()
                if in_flight not in waits:
                    waits.append(in_flight)
                continue
            run.append(block)
            if len(run) == per_read:
                flush()
        flush()
        return waits


def _runs(blocks: set[int]) -> list[tuple[int, int]]:
    """Blocks as runs of adjacent ones: (first block, how many)."""
    runs: list[tuple[int, int]] = []
    for block in sorted(blocks):
        if runs and runs[-1][0] + runs[-1][1] * CACHE_BLOCK == block:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((block, 1))
    return runs


#: A block stays in the working set until this many stops in a row have not read it.
WORKING_SET_STOPS = 8


@dataclass
class WorkingSet:
    """What a debugger read at its last stops, asked for with the next one (lld's PREFETCH).

    A debugger reads much the same at every stop: the stack at sp, the kernel's current
    thread, the structures the thread list is built from; and gdb reads a caller's code
    every few steps, whenever a step changes the frame.  So every block read at one of
    the last WORKING_SET_STOPS stops, outside the code lld sends with every stop anyway,
    is asked for with the next one; a block no stop has read for that long drops out.
    """

    #: (address space, block) -> how many stops have ended since one read it.
    idle: dict[tuple[AddressSpace, int], int] = field(default_factory=dict)

    @staticmethod
    def _read_at_this_stop(caches: dict[AddressSpace, MemoryCache],
                           window: int) -> set[tuple[AddressSpace, int]]:
        """The blocks read since the caches were cleared, but the code window (at `window`, or -1)."""
        return {(space, block) for space, cache in caches.items() for block in cache.touched
                if not (space == CURRENT and 0 <= window <= block < window + p.CODE_WINDOW)}

    def stop_ends(self, caches: dict[AddressSpace, MemoryCache], window: int) -> None:
        """The node leaves the stop the caches hold (they are about to be cleared)."""
        if not any(cache.touched for cache in caches.values()):
            return   # (no stop: a write, a resume before anything was read)
        read = self._read_at_this_stop(caches, window)
        self.idle = {key: idle + 1 for key, idle in self.idle.items() if idle + 1 < WORKING_SET_STOPS}
        self.idle.update(dict.fromkeys(read, 0))

    def ranges(self, caches: dict[AddressSpace, MemoryCache], window: int) -> tuple[p.ReadMem, ...]:
        """The reads to ask for with the next stop, within lld's limits (when they do not all fit,
        the address space read most recently goes first)."""
        wanted = dict(self.idle)
        wanted.update(dict.fromkeys(self._read_at_this_stop(caches, window), 0))
        by_space: dict[AddressSpace, set[int]] = {}
        for space, block in sorted(wanted, key=wanted.__getitem__):
            by_space.setdefault(space, set()).add(block)
        ranges: list[p.ReadMem] = []
        budget = p.MAX_PREFETCH_BYTES
        for space, blocks in by_space.items():
            for first, count in _runs(blocks):
                length = min(count * CACHE_BLOCK, budget)
                if length <= 0 or len(ranges) == p.MAX_PREFETCH:
                    return tuple(ranges)
                ranges.append(space.read(first, length))
                budget -= length
        return tuple(ranges)
