"""One gdb session on one node: gdb's requests mapped onto lld requests.

A `NodeSession` knows nothing of sockets: the transport feeds it parsed
requests and gets back reply payloads (or None when gdb expects none yet,
as while the node runs after a continue); stop replies that come later go
out through `send`.

Every lld request is a round trip over the debug line, and gdb is chatty:
a single `stepi` is about twenty packets (scripts/bench_mux counts them).
So the session answers what it can without the line and keeps the round
trips it cannot avoid off gdb's critical path:

* a cache, never the truth: the node's registers and aligned 64-byte memory
  blocks, valid while the node stays stopped (breakpoint changes, which lld
  keeps beside memory, do not invalidate it);
* at every stop, the bytes around the new pc are read ahead while gdb digests
  the stop reply (it always reads the instruction there next);
* breakpoints are gdb's to insert and remove, but only a running node needs
  them in lld: Z0/z0 are answered at once, and lld is brought in line with
  them just before the node runs (`_sync_breakpoints`).  gdb removes every
  breakpoint at every stop and inserts them again at every resume, so most of
  that traffic cancels out and never reaches the line;
* a continue whose first instruction can lead to a breakpoint starts with
  one STEP, and ends there if it does: gdb single-steps RISC-V by planting a
  breakpoint at the next instruction and continuing, so every `stepi` is one
  STEP instead of a RESUME, a STATUS poll and two breakpoint changes
  (`_continue`);
* long reads that follow one another (a dump) are read ahead, so the line
  works while gdb handles the piece before (`_bulk_done`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lld import protocol as p
from mux import packets as rsp
from mux import target_xml
from mux.link import LinkError, LldLink

# gdb's errno-style error numbers in E replies.
EFAULT = 0x0E
EINVAL = 0x16
EIO = 0x05
SIGSEGV = 0x0B

THREAD = rsp.ThreadId(1)
CACHE_BLOCK = 64          # memory is cached in aligned blocks of this size
CACHED_READ = p.MAX_DATA  # reads up to this long are kept in the block cache until the node changes
BULK_READ = 16384         # longer ones up to this go through it too, then leave it (see _bulk_done)
PREFETCH_SPAN = 256       # at a stop, this much around pc is read ahead (within pc's page)
PAGE = 4096
POLL_FIRST = 0.0005       # a continued node is polled at once, then after this, then less and less often
POLL_MAX = 0.05

_WATCH_KINDS = {
    rsp.BreakpointType.WRITE_WATCH: p.WATCH_WRITE,
    rsp.BreakpointType.READ_WATCH: p.WATCH_READ,
    rsp.BreakpointType.ACCESS_WATCH: p.WATCH_ACCESS,
}


@dataclass
class _Cache:
    """What is known of a stopped node until it runs or is written."""

    gen: int = -1
    registers: list[int] | None = None
    blocks: dict[int, bytes] = field(default_factory=dict)
    #: Reads in flight, by every block they will fill: a read that needs one of those waits for it.
    fetching: dict[int, asyncio.Future[p.Reply]] = field(default_factory=dict)
    #: Block reads not yet put in the cache: (first block, blocks, epoch when sent).
    reads: dict[asyncio.Future[p.Reply], tuple[int, int, int]] = field(default_factory=dict)
    #: Bumped at every clear, so that a read that was in flight across a clear fills nothing.
    epoch: int = 0

    def clear(self) -> None:
        self.gen = -1
        self.registers = None
        self.forget_memory()

    def forget_memory(self) -> None:
        self.blocks.clear()
        self.fetching.clear()
        self.reads.clear()
        self.epoch += 1


class NodeSession:
    def __init__(
        self,
        node: int,
        link: LldLink,
        send: Callable[[bytes], None],
        monitor: Callable[[NodeSession, str], Awaitable[str]],
        *,
        packet_size: int = 4096,
        no_ack_mode: bool = True,
    ) -> None:
        self.node = node
        self.link = link
        self.send = send
        self.monitor = monitor
        self.packet_size = packet_size
        self.no_ack_mode = no_ack_mode
        self.step_takes_interrupts = False
        self.status: p.Status | None = None
        self.cache = _Cache()
        self.watchpoints: dict[tuple[int, int], int] = {}   # (addr, length) -> lld kind
        self._running: asyncio.Task[None] | None = None
        self._interrupted = False
        self._poll_now = asyncio.Event()          # set by interrupt(): the waiting continue polls at once
        self._desired: set[int] = set()   # gdb's breakpoints: inserted (Z0/Z1) and not removed
        self._placed: set[int] = set()    # those this session set in lld, as far as it knows still there
        self._flush: asyncio.Task[str | None] | None = None   # close()'s last _sync_breakpoints
        self._read_end = -1   # where the last long read ended (a read starting there reads ahead)

    # -- the node ----------------------------------------------------------------

    async def _refresh(self) -> p.Status:
        status = await self.link.ok(self.node, p.GetStatus())
        assert isinstance(status, p.Status)
        self._note(status)
        return status

    def _note(self, status: p.Status) -> None:
        if self.cache.gen != status.gen:
            self.cache.clear()
            self.cache.gen = status.gen
        self.status = status

    def _note_breakpoint_change(self, status: p.Status) -> None:
        """Note the status a breakpoint or watchpoint change replied with, keeping the cache.

        Such a change advances gen but leaves registers and memory alone (lld keeps
        breakpoints beside memory, never in it), so the cache stays valid if nothing
        else happened: the node has not stopped again (same stops) and gen moved by at
        most this one change.  (Before this, every breakpoint change of gdb's software
        single step threw away the registers and code read at the stop, and the resume
        after it, guarded by the old gen, came back STALE: two more round trips.)
        """
        known = self.status
        if (known is not None and self.cache.gen == known.gen and status.stops == known.stops
                and status.state == known.state and 0 <= status.gen - known.gen <= 1):
            self.cache.gen = status.gen
        self._note(status)

    async def attach(self) -> p.Status:
        """Stop the node (only this one) and learn where it is."""
        status = await self.link.ok(self.node, p.Stop(p.ANY_GEN))
        assert isinstance(status, p.Status)
        self._note(status)
        return status

    async def _registers(self) -> list[int]:
        if self.cache.registers is None:
            epoch = self.cache.epoch
            values = await self.link.ok(self.node, p.ReadRegs(tuple(range(target_xml.G_REGISTER_COUNT))))
            assert isinstance(values, list)
            if self.cache.epoch != epoch:
                return values   # the node changed meanwhile: good for this answer, not for the cache
            self.cache.registers = values
        return self.cache.registers

    async def _change(self, make: Callable[[int], p.Request]) -> p.Reply:
        """Send a change guarded by the node's gen; refresh the gen and retry once if stale."""
        status = self.status or await self._refresh()
        reply = await self.link.request(self.node, make(status.gen))
        if reply.status == p.E_STALE:
            status = await self._refresh()
            reply = await self.link.request(self.node, make(status.gen))
        if reply.ok and isinstance(reply.value, p.Status):
            self._note(reply.value)
        return reply

    # -- breakpoints in lld ----------------------------------------------------------

    async def _lld_breakpoints(self) -> dict[int, int]:
        """lld's breakpoints on the node (address -> kind), listed once, then kept by the link."""
        known = self.link.breakpoints.get(self.node)
        if known is None:
            await self.link.ok(self.node, p.ListBreakpoints())
            known = self.link.breakpoints.get(self.node, {})
        return known

    async def _sync_breakpoints(self) -> str | None:
        """Make lld hold gdb's breakpoints, before the node runs; the first refusal, or None.

        Removes the ones this session set that gdb has removed since, and sets those
        gdb wants that lld does not hold.  A breakpoint already in lld (the machine's
        panic breakpoint, one another client set) is left as it is: setting it again
        would change its kind, and removing it would take it from its owner.
        """
        for addr in sorted(self._placed - self._desired):
            reply = await self.link.request(self.node, p.ClearBreakpoint(p.ANY_GEN, addr))
            self._placed.discard(addr)
            if reply.ok and isinstance(reply.value, p.Status):
                self._note_breakpoint_change(reply.value)
        known = await self._lld_breakpoints()
        for addr in sorted(self._desired):
            if addr in known:
                continue
            reply = await self.link.request(self.node, p.SetBreakpoint(p.ANY_GEN, addr))
            if not reply.ok:
                detail = reply.error.describe() if reply.error is not None else str(reply.status)
                return f"node {self.node}: cannot set the breakpoint at {addr:#x}: {detail}"
            self._placed.add(addr)
            if isinstance(reply.value, p.Status):
                self._note_breakpoint_change(reply.value)
            known = self.link.breakpoints.get(self.node, known)
        return None

    async def _synced(self) -> bool:
        """_sync_breakpoints, telling gdb's console of a refusal; False if there was one."""
        failure = await self._sync_breakpoints()
        if failure is not None:
            self.send(rsp.console_output(f"mux: {failure}\n".encode()))
        return failure is None

    # -- stop replies ----------------------------------------------------------------

    def _watch_kind(self, status: p.Status) -> rsp.StopKind:
        for (addr, length), kind in self.watchpoints.items():
            if addr <= status.data_addr < addr + length and kind == p.WATCH_ACCESS:
                return rsp.StopKind.ACCESS_WATCH
        if status.flags & p.FLAG_WATCH_READ:
            return rsp.StopKind.READ_WATCH
        return rsp.StopKind.WRITE_WATCH

    async def stop_reply(self, status: p.Status, announce: bool = True) -> bytes:
        """A T stop reply with the reason and every `g` register expedited.

        announce: say on gdb's console why the node stopped, for a panic or a trap
        loop.  Only for a stop that ends a resume: console output (`O` packets) may
        only come while the target runs, and gdb takes one in answer to `?` (when it
        connects to a stopped node) as the answer, out of step with everything after.

        Also starts reading the bytes around pc: gdb's first reads after any stop are
        the instruction at pc and its neighbours, and it spends a millisecond or more
        on the stop reply before it asks, time in which that read is already done.
        """
        registers = await self._registers()
        if status.stopped:
            self._prefetch(registers[target_xml.PC_REGNUM])
        expedited = dict(enumerate(registers))
        signal, reason = rsp.SIGTRAP, None
        if status.reason in (p.REASON_BREAKPOINT, p.REASON_PANIC):
            reason = rsp.StopReason(rsp.StopKind.SOFTWARE_BREAK)
        elif status.reason == p.REASON_WATCHPOINT:
            reason = rsp.StopReason(self._watch_kind(status), status.data_addr)
        elif status.reason == p.REASON_TRAP_LOOP:
            signal = SIGSEGV
        elif status.reason == p.REASON_REQUESTED and self._interrupted:
            signal = rsp.SIGINT
        self._interrupted = False
        if announce and status.reason in (p.REASON_PANIC, p.REASON_TRAP_LOOP):
            why = "the kernel's panic path" if status.reason == p.REASON_PANIC else "a trap loop"
            self.send(rsp.console_output(f"node {self.node} stopped in {why}\n".encode()))
        return rsp.stop_reply(signal, reason=reason, registers=expedited, thread=THREAD)

    # -- requests ------------------------------------------------------------------------

    async def handle(self, request: object) -> bytes | None:
        """The reply payload for one gdb request; None when the reply comes later or never."""
        reply = self.answer_now(request)
        if reply is not None:
            return reply
        try:
            return await self._handle(request)
        except LinkError as e:
            self.send(rsp.console_output(f"mux: {e}\n".encode()))
            return rsp.error(EIO)

    def answer_now(self, request: object) -> bytes | None:  # noqa: C901 - one arm per packet
        """The reply if it needs no waiting for lld (constant answers, the cache), else None.

        A transport may call this as soon as a packet arrives, when no earlier request
        of the same gdb is still being handled, and skip the trip through its queue.
        """
        match request:
            case rsp.QuerySupported():
                return rsp.supported_reply(self.packet_size, no_ack_mode=self.no_ack_mode)
            case rsp.StartNoAckMode():
                return rsp.OK if self.no_ack_mode else rsp.EMPTY
            case rsp.ReadRegisters():
                registers = self.cache.registers
                return None if registers is None else rsp.registers_reply(registers)
            case rsp.ReadRegister(regnum=regnum):
                registers = self.cache.registers
                if registers is None or not 0 <= regnum < target_xml.G_REGISTER_COUNT:
                    return None
                reg = target_xml.register(regnum)
                return None if reg is None else rsp.register_value(registers[regnum], reg.size)
            case rsp.ReadMemory(addr=addr, length=length):
                return self._read_now(addr, length)
            case rsp.Breakpoint(type=rsp.BreakpointType.SOFTWARE | rsp.BreakpointType.HARDWARE):
                return self._breakpoint_now(request)
            case rsp.VContQuery():
                return rsp.VCONT_ACTIONS
            case rsp.QueryAttached():
                return rsp.ATTACHED
            case rsp.QueryCurrentThread():
                return rsp.current_thread(THREAD)
            case rsp.QueryThreadInfo(first=first):
                return rsp.thread_list([THREAD]) if first else rsp.THREAD_LIST_END
            case rsp.SetThread() | rsp.ThreadAlive():
                return rsp.OK
            case rsp.ReadFeatures(annex=annex, offset=offset, length=length):
                document = target_xml.ANNEXES.get(annex)
                return rsp.error(EINVAL) if document is None else rsp.xfer_chunk(document, offset, length)
            case rsp.QueryOffsets():
                return rsp.NO_OFFSETS
            case rsp.QuerySymbol():
                return rsp.OK
            case rsp.MustReplyEmpty() | rsp.QueryTraceStatus() | rsp.Unsupported():
                return rsp.EMPTY
            case rsp.MalformedRequest():
                return rsp.error(EINVAL)
        return None

    async def _handle(self, request: object) -> bytes | None:  # noqa: C901 - one arm per packet
        match request:
            case rsp.HaltReason():
                known = self.status
                status = known if known is not None and known.stopped else await self.attach()
                return await self.stop_reply(status, announce=False)
            case rsp.ReadRegisters():
                return rsp.registers_reply(await self._registers())
            case rsp.WriteRegisters(data=data):
                values = rsp.register_block(data)[: target_xml.G_REGISTER_COUNT]
                return await self._write_registers(list(range(len(values))), values)
            case rsp.ReadRegister(regnum=regnum):
                return await self._read_register(regnum)
            case rsp.WriteRegister(regnum=regnum):
                return await self._write_register(regnum, request.value)
            case rsp.ReadMemory(addr=addr, length=length):
                return await self._read_memory(addr, length)
            case rsp.WriteMemory(addr=addr, data=data):
                return await self._write_memory(addr, data)
            case rsp.Continue(addr=addr):
                return await self._resume(addr, step=False)
            case rsp.Step(addr=addr):
                return await self._resume(addr, step=True)
            case rsp.VCont(actions=actions):
                kinds = {a.kind for a in actions}
                if "s" in kinds:
                    return await self._resume(None, step=True)
                if "c" in kinds:
                    return await self._resume(None, step=False)
                return rsp.OK
            case rsp.Breakpoint():
                return await self._breakpoint(request)
            case rsp.Detach():
                await self.detach()
                return rsp.OK
            case rsp.Kill():
                return None  # the node stays as it is, like a gdb that went away
            case rsp.MonitorCommand(command=command):
                await self._synced()   # so that what it shows (or clears) is what gdb set
                output = await self.monitor(self, command)
                if output:
                    self.send(rsp.console_output(output.encode()))
                return rsp.OK
        return rsp.EMPTY

    # -- registers ------------------------------------------------------------------

    @staticmethod
    def _lld_register(regnum: int) -> int | None:
        reg = target_xml.register(regnum)
        if reg is None:
            return None
        if reg.kind is target_xml.RegisterKind.CSR:
            assert reg.csr is not None
            return p.REG_CSR_BASE + reg.csr
        if reg.kind is target_xml.RegisterKind.PRIV:
            return p.REG_PRIV
        return regnum  # x0..x31 and pc (32) share gdb's numbers

    async def _read_register(self, regnum: int) -> bytes:
        reg = target_xml.register(regnum)
        lld_reg = self._lld_register(regnum)
        if reg is None or lld_reg is None:
            return rsp.error(EINVAL)
        if regnum < target_xml.G_REGISTER_COUNT:
            return rsp.register_value((await self._registers())[regnum], reg.size)
        reply = await self.link.request(self.node, p.ReadRegs((lld_reg,)))
        if not reply.ok:
            return rsp.register_value(None, reg.size)   # gdb shows it as unavailable
        assert isinstance(reply.value, list)
        return rsp.register_value(reply.value[0], reg.size)

    async def _write_register(self, regnum: int, value: int) -> bytes:
        lld_reg = self._lld_register(regnum)
        if lld_reg is None:
            return rsp.error(EINVAL)
        return await self._write_registers([lld_reg], [value])

    async def _write_registers(self, regs: list[int], values: list[int]) -> bytes:
        reply = await self._change(lambda gen: p.WriteRegs(gen, tuple(zip(regs, values, strict=True))))
        self.cache.clear()
        return rsp.OK if reply.ok else rsp.error(EINVAL)

    # -- memory -------------------------------------------------------------------------

    def _cached(self, addr: int, length: int) -> bytes | None:
        """The bytes if every block they lie in is cached, else None."""
        if not 0 < length <= BULK_READ or addr + length > 1 << 32:
            return None
        blocks = self.cache.blocks
        first = addr - addr % CACHE_BLOCK
        out = bytearray()
        for block in range(first, addr + length, CACHE_BLOCK):
            data = blocks.get(block)
            if data is None:
                return None
            out += data
        return bytes(out[addr - first: addr - first + length])

    def _fetch(self, first: int, count: int) -> asyncio.Future[p.Reply]:
        """Start one READ_MEM of `count` blocks from block address `first`; it fills the cache."""
        cache = self.cache
        future = self.link.submit(self.node, p.ReadMem(p.SPACE_VIRT, first, count * CACHE_BLOCK))
        cache.reads[future] = (first, count, cache.epoch)
        for i in range(count):
            cache.fetching[first + i * CACHE_BLOCK] = future
        future.add_done_callback(self._absorb)
        return future

    def _absorb(self, future: asyncio.Future[p.Reply]) -> None:
        """Put a finished block read into the cache (once; a read from before a clear is dropped).

        Runs as the future's callback, and again from whoever awaited it: a future
        that is already done when awaited returns at once, before its callbacks have
        had their turn in the event loop.
        """
        cache = self.cache
        read = cache.reads.pop(future, None)
        if read is None:
            return
        first, count, epoch = read
        if cache.epoch != epoch:
            return   # the node changed while the read was on the line: it is stale
        blocks = [first + i * CACHE_BLOCK for i in range(count)]
        for block in blocks:
            if cache.fetching.get(block) is future:
                del cache.fetching[block]
        if future.cancelled() or future.exception() is not None:
            return
        reply = future.result()
        if reply.ok and isinstance(reply.value, bytes) and len(reply.value) == count * CACHE_BLOCK:
            for i, block in enumerate(blocks):
                cache.blocks[block] = reply.value[i * CACHE_BLOCK: (i + 1) * CACHE_BLOCK]

    def _prefetch(self, pc: int) -> None:
        """Read the bytes around pc ahead of gdb, within pc's page (so the read cannot fail there)."""
        page = pc - pc % PAGE
        block = pc - pc % CACHE_BLOCK
        first = max(page, block - PREFETCH_SPAN // 2)
        last = min(page + PAGE, first + PREFETCH_SPAN) - CACHE_BLOCK
        if not self.cache.blocks and not self.cache.fetching:
            self._fetch(first, (last - first) // CACHE_BLOCK + 1)

    def _fetch_missing(self, addr: int, length: int) -> list[asyncio.Future[p.Reply]]:
        """Start reading every block of [addr, addr + length) that is neither cached nor on its way.

        Returns the reads that will bring the range in, those already in flight
        included.  Missing blocks go in runs of at most p.MAX_DATA bytes, all queued at
        once, so the link sends each as soon as the one before is answered.
        """
        cache = self.cache
        waits: list[asyncio.Future[p.Reply]] = []
        run: list[int] = []
        per_read = p.MAX_DATA // CACHE_BLOCK

        def flush() -> None:
            if run:
                waits.append(self._fetch(run[0], len(run)))
                run.clear()

        for block in range(addr - addr % CACHE_BLOCK, addr + length, CACHE_BLOCK):
            if block in cache.blocks:
                flush()
                continue
            in_flight = cache.fetching.get(block)
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

    async def _read_cached(self, addr: int, length: int) -> bytes | None:
        """Read through the block cache; None if any part is unreadable (or keeps changing)."""
        for _ in range(3):
            data = self._cached(addr, length)
            if data is not None:
                return data
            cache = self.cache
            epoch = cache.epoch
            for future in self._fetch_missing(addr, length):
                reply = await future
                self._absorb(future)
                if not reply.ok and cache.epoch == epoch:
                    return None   # unreadable (unmapped, not RAM): the uncached path sorts it out
            if cache.epoch == epoch:
                return self._cached(addr, length)
            # The node changed while we waited (a write, a resume): read it again.
        return None

    def _bulk_done(self, addr: int, length: int) -> None:
        """After a read longer than CACHED_READ: drop it from the cache, and read ahead if sequential.

        gdb reads big ranges (dump, x/1000x, a large structure) in packet-sized pieces,
        one after another, each asked for only when the last has arrived.  The line
        would sit idle while gdb handles each piece; instead the next piece is already
        being read when this one is answered.  (A read-ahead past what gdb wants costs
        one wasted read; reads change nothing.)  What gdb has had is dropped, so that
        a long dump does not fill the cache.
        """
        blocks = self.cache.blocks
        first = addr + (-addr) % CACHE_BLOCK
        for block in range(first, addr + length - CACHE_BLOCK + 1, CACHE_BLOCK):
            blocks.pop(block, None)
        if addr == self._read_end and addr + 2 * length <= 1 << 32:
            self._fetch_missing(addr + length, length)
        self._read_end = addr + length

    def _read_now(self, addr: int, length: int) -> bytes | None:
        """The reply to a read if the cache has it all, else None."""
        data = self._cached(addr, length)
        if data is None:
            return None
        if length > CACHED_READ:
            self._bulk_done(addr, length)
        return rsp.hex_bytes(data)

    async def _read_memory(self, addr: int, length: int) -> bytes:
        if 0 < length <= BULK_READ and addr + length <= 1 << 32:
            data = await self._read_cached(addr, length)
            if data is not None:
                if length > CACHED_READ:
                    self._bulk_done(addr, length)
                return rsp.hex_bytes(data)
        # Every piece is queued at once: the link sends each as soon as the one before is
        # answered, without a trip back through this coroutine in between.
        pieces = [self.link.submit(self.node, p.ReadMem(p.SPACE_VIRT, addr + offset,
                                                        min(p.MAX_DATA, length - offset)))
                  for offset in range(0, length, p.MAX_DATA)]
        out = bytearray()
        try:
            for piece in pieces:
                reply = await piece
                if not reply.ok:
                    break
                assert isinstance(reply.value, bytes)
                out += reply.value
        finally:
            for piece in pieces:
                piece.cancel()   # the rest, after a failure: the link drops them unsent
        # gdb accepts a short read; nothing readable at all is an error.
        return rsp.hex_bytes(bytes(out)) if out or length == 0 else rsp.error(EFAULT)

    async def _write_memory(self, addr: int, data: bytes) -> bytes:
        self.cache.forget_memory()   # (a read in flight may have been answered before the write)
        for offset in range(0, len(data), p.MAX_DATA):
            piece = data[offset: offset + p.MAX_DATA]
            write = p.WriteMem(p.ANY_GEN, p.SPACE_VIRT, addr + offset, piece)
            reply = await self.link.request(self.node, write)
            if not reply.ok:
                return rsp.error(EFAULT)
        return rsp.OK

    # -- breakpoints and watchpoints ------------------------------------------------------

    def _breakpoint_now(self, bp: rsp.Breakpoint) -> bytes:
        """Insert or remove a breakpoint in gdb's set; lld follows before the node runs.

        lld would refuse a misaligned address (no C extension), and more breakpoints
        than a node holds; those are refused here, at once, as lld would.
        """
        if bp.addr & 3:
            return rsp.error(EINVAL)
        if bp.insert:
            if bp.addr not in self._desired and len(self._desired) >= p.MAX_BREAKPOINTS:
                return rsp.error(EINVAL)
            self._desired.add(bp.addr)
        else:
            self._desired.discard(bp.addr)
        return rsp.OK

    async def _breakpoint(self, bp: rsp.Breakpoint) -> bytes:
        """Watchpoints go to lld at once: lld translates them when set, and may refuse."""
        if bp.type in (rsp.BreakpointType.SOFTWARE, rsp.BreakpointType.HARDWARE):
            return self._breakpoint_now(bp)
        request: p.Request
        kind = _WATCH_KINDS[bp.type]
        if bp.insert:
            request = p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, bp.addr, bp.kind, kind)
        else:
            request = p.ClearWatchpoint(p.ANY_GEN, bp.addr, bp.kind, kind)
        reply = await self.link.request(self.node, request)
        if not reply.ok:
            return rsp.error(EFAULT if reply.status == p.E_UNMAPPED else EINVAL)
        if isinstance(reply.value, p.Status):
            self._note_breakpoint_change(reply.value)
        if bp.insert:
            self.watchpoints[(bp.addr, bp.kind)] = kind
        else:
            self.watchpoints.pop((bp.addr, bp.kind), None)
        return rsp.OK

    # -- running ----------------------------------------------------------------------------

    async def _resume(self, addr: int | None, *, step: bool) -> bytes | None:
        if addr is not None:
            await self._write_registers([target_xml.PC_REGNUM], [addr])
        if step:
            reply = await self._change(lambda gen: p.Step(gen, self.step_takes_interrupts))
            if not reply.ok:
                return rsp.error(EINVAL)
            assert isinstance(reply.value, p.Status)
            return await self.stop_reply(reply.value)
        return await self._continue()

    async def _continue(self) -> bytes | None:
        """Resume the node: one STEP first where that may end it, RESUME if it did not.

        A continue stops before the first instruction at which lld holds a breakpoint.
        gdb single-steps RISC-V with a breakpoint at the next instruction (at both
        next instructions, for a branch) and a continue, which therefore ends after
        exactly one instruction.  So unless the instruction at pc surely leads to no
        breakpoint (`_cannot_end_in_one_step`; then it is RESUME at once), the session
        first steps one instruction, taking a pending interrupt as the running node
        would; then

        * if the node rests on one of gdb's breakpoints, or on one lld holds for
          someone else, the continue is over: one round trip, and gdb's breakpoints
          never had to go to lld;
        * if the step stopped for a reason of its own (a watchpoint, a trap loop),
          that is the stop the continue would have made;
        * otherwise lld gets gdb's breakpoints and the node runs on from there.

        A stop found by the step is reported to gdb as the breakpoint (or panic) stop
        it stands for; lld records it as a step.  A hart asleep in WFI is resumed as
        it is (a step would wake it).
        """
        status = self.status
        if status is None or not status.stopped or status.flags & p.FLAG_WAITING:
            return await self._run()
        known = await self._lld_breakpoints()
        if self._cannot_end_in_one_step(status.pc, self._desired | (known.keys() - self._placed)):
            return await self._run()
        reply = await self._change(lambda gen: p.Step(gen, True))
        if not reply.ok or not isinstance(reply.value, p.Status):
            return await self._run()   # not stopped after all, say: RESUME gives the right error
        stepped = reply.value
        if stepped.reason != p.REASON_STEP:
            return await self.stop_reply(stepped)
        known = await self._lld_breakpoints()   # (what the link knows now)
        if stepped.pc in self._desired or (stepped.pc in known and stepped.pc not in self._placed):
            reason = p.REASON_PANIC if known.get(stepped.pc) == p.BP_PANIC else p.REASON_BREAKPOINT
            return await self.stop_reply(dataclasses.replace(stepped, reason=reason))
        return await self._run()

    def _cannot_end_in_one_step(self, pc: int, breakpoints: set[int]) -> bool:
        """True if the instruction at pc (cached) surely does not lead to one of `breakpoints`.

        Then the STEP would be a wasted round trip, as for the continue that follows
        gdb's step over a breakpoint.  Only a sure answer counts: the next pc of a
        jump, branch (either way) or plain instruction, from the cached code and
        registers; anything else (a trap, mret, code not cached) takes the STEP.
        A wrong guess would only cost time: RESUME honours every breakpoint anyway.
        """
        if not breakpoints:
            return True
        code = self._cached(pc, 4)
        if code is None:
            return False
        insn = int.from_bytes(code, "little")
        opcode = insn & 0x7F
        nexts = {(pc + 4) & 0xFFFFFFFF}
        if opcode == 0x6F:   # JAL
            imm = ((insn >> 31) & 1) << 20 | ((insn >> 12) & 0xFF) << 12 | ((insn >> 20) & 1) << 11 \
                | ((insn >> 21) & 0x3FF) << 1
            nexts = {(pc + imm - ((imm & 1 << 20) << 1)) & 0xFFFFFFFF}
        elif opcode == 0x67:   # JALR
            registers = self.cache.registers
            if registers is None:
                return False
            imm = insn >> 20
            rs1 = (insn >> 15) & 31
            base = registers[rs1] if rs1 else 0
            nexts = {(base + imm - ((imm & 1 << 11) << 1)) & 0xFFFFFFFE}
        elif opcode == 0x63:   # branches: either way
            imm = ((insn >> 31) & 1) << 12 | ((insn >> 7) & 1) << 11 | ((insn >> 25) & 0x3F) << 5 \
                | ((insn >> 8) & 0xF) << 1
            nexts.add((pc + imm - ((imm & 1 << 12) << 1)) & 0xFFFFFFFF)
        elif opcode == 0x73:   # SYSTEM: ecall, ebreak, mret, sret, wfi... go where the CPU says
            return False
        return not nexts & breakpoints

    async def _run(self) -> bytes | None:
        """RESUME with gdb's breakpoints in lld; the stop reply comes from _wait_for_stop."""
        if not await self._synced():
            return rsp.error(EINVAL)
        reply = await self._change(lambda gen: p.Resume(gen))
        if not reply.ok:
            return rsp.error(EINVAL)
        self.cache.clear()
        self._running = asyncio.create_task(self._wait_for_stop())
        return None

    async def _wait_for_stop(self) -> None:
        """Poll the running node (lld never speaks first) and send the stop reply.

        The first poll goes at once: a continue that ends at a breakpoint a few
        instructions on (every software single step is one) has stopped by the time
        it arrives.  Then every POLL_FIRST, doubling up to POLL_MAX, so a long run
        costs the line little; a ctrl-C (interrupt) makes the next poll come at once.
        """
        delay = POLL_FIRST
        try:
            while True:
                status = await self._refresh()
                if not status.running:
                    self.send(await self.stop_reply(status))
                    return
                self._poll_now.clear()
                try:
                    await asyncio.wait_for(self._poll_now.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, POLL_MAX)
        except LinkError as e:
            self.send(rsp.console_output(f"mux: {e}\n".encode()))
            self.send(rsp.stop_reply(rsp.SIGTRAP, thread=THREAD))
        finally:
            self._running = None

    @property
    def running(self) -> bool:
        return self._running is not None

    async def interrupt(self) -> None:
        """gdb's ctrl-C: stop the node; the waiting continue reports the stop."""
        self._interrupted = True
        await self.link.request(self.node, p.Stop(p.ANY_GEN))
        self._poll_now.set()

    async def detach(self) -> None:
        """Remove every breakpoint and watchpoint on the node and let it run."""
        await self.link.request(self.node, p.ClearAll(p.ANY_GEN))
        self.watchpoints.clear()
        self._desired.clear()
        self._placed.clear()
        status = await self._refresh()
        if status.stopped:
            await self._change(lambda gen: p.Resume(gen))

    def close(self) -> None:
        """The gdb went away: stop waiting, and leave the node as gdb left it.

        That includes its breakpoints: gdb had removed them if the node was stopped,
        and left them in if it was running, and lld must hold exactly those.
        """
        if self._running is not None:
            self._running.cancel()
        if self._placed - self._desired or self._desired - self.link.breakpoints.get(self.node, {}).keys():
            self._flush = asyncio.get_running_loop().create_task(self._close_flush())

    async def _close_flush(self) -> str | None:
        try:
            return await self._sync_breakpoints()
        except LinkError as e:
            return str(e)
