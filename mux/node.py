"""One node as the mux sees it: the handle every gdb front end, the monitor and the console share.

A `NodeHandle` is owned by the mux, one per node, for the mux's whole life; gdb
sessions come and go over it.  It knows nothing of the gdb protocol.  It keeps:

* the node's last known status and `gen` (lld's change counter), and the one
  guarded change-and-retry every change goes through (`change`);
* what is known of a stopped node until it changes: its registers and its
  memory, per address space (`MemoryCache`);
* lld's breakpoints on the node and who placed which (`BreakpointOwners`), so
  that one client's removal never takes another's breakpoint, nor the
  machine's own (the panic stop);
* the stop poller: lld never speaks first, so a running node is polled until
  it stops, once for everyone who waits (`wait_for_stop`);
* the steps it answers from the ISA before lld makes them (`mux.ahead`): a
  RESUME that follows makes them first, anything else sent sees them made.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from lld import protocol as p
from mux.ahead import StepNotMade, StepsAhead, predict, refusal
from mux.link import LinkDown, LinkError, LldLink
from mux.memory import CURRENT, PAGE, AddressSpace, MemoryCache, WorkingSet
from psyche import rv32

#: Registers in gdb's `g` block (x0..x31 and pc), which lld numbers the same way.
GENERAL_REGISTERS = 33
PC = 32
POLL_FIRST = 0.0005       # a running node is polled at once, then after this, then less and less often
POLL_MAX = 0.05
SATP = p.REG_CSR_BASE + rv32.CSRS["satp"]
SATP_MODE = 1 << 31       # Sv32 translation on
PRIV_M = 3


class NodeError(Exception):
    """lld refused a change; carries its reply."""

    def __init__(self, node: int, reply: p.Reply) -> None:
        detail = reply.error.describe() if reply.error is not None else ""
        super().__init__(f"node {node}: {p.ERROR_NAMES.get(reply.status, reply.status)} {detail}".strip())
        self.reply = reply


@dataclass
class BreakpointOwners:
    """Which client placed which of lld's breakpoints on one node.

    lld does not know owners; the mux does, for everything it placed itself.  A
    breakpoint lld holds that no client here placed (the machine's panic stop, one
    a previous mux left) belongs to nobody here and is never removed on anyone's
    behalf.
    """

    placed: dict[int, set[object]] = field(default_factory=dict)   # addr -> owners

    def owned_by(self, owner: object) -> set[int]:
        return {addr for addr, owners in self.placed.items() if owner in owners}

    def add(self, addr: int, owner: object) -> None:
        self.placed.setdefault(addr, set()).add(owner)

    def release(self, addr: int, owner: object) -> bool:
        """Drop owner's claim; True if nobody here wants the breakpoint any more."""
        owners = self.placed.get(addr)
        if owners is None:
            return False
        owners.discard(owner)
        if owners:
            return False
        del self.placed[addr]
        return True

    def forget(self) -> None:
        """lld's breakpoints were cleared wholesale (monitor clear): no claims are left."""
        self.placed.clear()

    def hand_over(self, owner: object, successor: object) -> None:
        """owner's claims become successor's (a gdb that went away leaves them to nobody)."""
        for owners in self.placed.values():
            if owner in owners:
                owners.discard(owner)
                owners.add(successor)


#: The owner of the breakpoints gdbs left in lld when they went away while the node ran:
#: they stay for nobody here, like the machine's panic stop, and hold no session alive.
GONE_GDB = "a gdb that went away"


class NodeHandle:
    def __init__(self, node: int, link: LldLink) -> None:
        self.node = node
        self.link = link
        self.status: p.Status | None = None
        self.breakpoint_owners = BreakpointOwners()
        #: The gen the cached registers and memory belong to (-1: nothing cached).
        self._cached_gen = -1
        #: Bumped whenever the cache is dropped, so a read in flight across that fills nothing.
        self._epoch = 0
        self._registers: list[int] | None = None
        self._memory: dict[AddressSpace, MemoryCache] = {}
        self._poller: asyncio.Task[p.Status] | None = None
        self._waiters = 0
        self._poll_now = asyncio.Event()
        #: A write made while the machine showed its past discarded the recorded future (lld's
        #: FLAG_FUTURE_DISCARDED): gdb is told at the next stop that ends a resume.
        self.future_discarded = False
        #: The stop a resume's reply brought (the node stopped within its first round), which
        #: the next wait for a stop takes instead of polling; dropped by any newer status.
        self._stop_at_resume: p.Status | None = None
        #: What the debugger read at the last stops, asked for with the next one's status.
        self._working_set = WorkingSet()
        #: Where the code lld sent with this stop starts (-1: none), which the working set leaves out.
        self._code_window = -1
        #: Steps answered from the ISA before lld made them.
        self.ahead = StepsAhead(node, link, made=self.note, lost=self._lose_track, prefetch=self._prefetch,
                                epoch=lambda: self._epoch)

    # -- status and gen ---------------------------------------------------------------

    def note(self, status: p.Status, sent_at_epoch: int | None = None) -> None:
        """Take a status lld replied with; a new gen means the cache is stale.

        sent_at_epoch: the epoch when the request was sent.  If the cache has been dropped
        since (a memory write was made while the request was on the line), the memory the
        reply carries (the code, the prefetched blocks) was read before that write: it is
        not taken.
        """
        if status.flags & p.FLAG_FUTURE_DISCARDED:
            self.future_discarded = True
        before_write = sent_at_epoch is not None and sent_at_epoch != self._epoch
        if self._cached_gen != status.gen:
            self.forget()
            self._cached_gen = status.gen
        if status.registers is not None:
            self._registers = list(status.registers)
        self.memory().pc = status.pc if status.stopped else -1
        if status.code is not None and not before_write:
            self.memory().fill(status.code_addr, status.code)
            self._code_window = status.code_addr
        for fetched in () if before_write else status.memory:
            cache = self.memory(AddressSpace(fetched.space, fetched.root))
            if fetched.data is not None:
                cache.fill(fetched.addr, fetched.data)
            else:
                cache.fill_unreadable(fetched.addr, fetched.length)
        self.status = status
        self._stop_at_resume = None

    def note_breakpoint_change(self, status: p.Status) -> None:
        """Note the status a breakpoint or watchpoint change replied with, keeping the cache.

        Such a change advances gen but leaves registers and memory alone (lld keeps
        breakpoints beside memory, never in it), so the cache stays valid if nothing
        else happened: the node has not stopped again (same stops) and gen moved by at
        most this one change.  (Otherwise every breakpoint change of gdb's software
        single step would throw away the registers and code read at the stop.)
        """
        known = self.status
        if (known is not None and self._cached_gen == known.gen and status.stops == known.stops
                and status.state == known.state and 0 <= status.gen - known.gen <= 1):
            self._cached_gen = status.gen
            # What lld said of the code at pc holds too: breakpoints are not in the code.
            status = dataclasses.replace(status, code_flags=known.code_flags, code_crc=known.code_crc)
        self.note(status)

    @property
    def epoch(self) -> int:
        """Changes whenever what was read of the node may be stale (it ran, something was written)."""
        return self._epoch

    def forget(self) -> None:
        """Drop everything cached: the node may have changed."""
        self._working_set.stop_ends(self._memory, self._code_window)
        self._code_window = -1
        self._cached_gen = -1
        self._epoch += 1
        self._registers = None
        for cache in self._memory.values():
            cache.clear()

    def _prefetch(self) -> tuple[p.ReadMem, ...]:
        return self._working_set.ranges(self._memory, self._code_window)

    async def refresh(self, expedite: bool = False) -> p.Status:
        """Ask lld for the node's status (with its registers, if stopped and `expedite`, and the
        working set's memory)."""
        await self.ahead.confirmed()
        request = p.GetStatus(expedite, self._prefetch()) if expedite else p.GetStatus()
        epoch = self._epoch
        status = await self.link.ok(self.node, request)
        assert isinstance(status, p.Status)
        self.note(status, epoch)
        return status

    async def change(self, make: Callable[[int], p.Request]) -> p.Reply:
        """Send a change guarded by the node's gen; refresh the gen and retry once if stale.

        Behind steps answered ahead (`mux.ahead`), the change goes at once, guarded by the
        gen they leave (the answer's): the link sends it the moment lld's reply to them is
        in.  If they were not made, the change finds the gen stale, and the retry's refresh
        raises StepNotMade.
        """
        self.ahead.release()
        if not self.ahead.in_flight:
            await self.ahead.settled()
        status = self.status or await self.refresh()
        epoch = self._epoch
        reply = await self._send_change(make(status.gen))
        if reply.status == p.E_STALE:
            status = await self.refresh()
            epoch = self._epoch
            reply = await self._send_change(make(status.gen))
        if reply.ok and isinstance(reply.value, p.Status):
            self.note(reply.value, epoch)
        return reply

    async def _send_change(self, request: p.Request) -> p.Reply:
        """lld's reply to a request that may change the node.

        If whoever waits for it goes away first (a gdb that vanished mid-continue, its
        request cancelled), the request may be on the line already, and lld makes it all
        the same: what the handle knew of the node is then no more, and the next to ask
        learns where the node is (behind that request, on the link).
        """
        try:
            return await self.link.request(self.node, request)
        except asyncio.CancelledError:
            self._lose_track()
            raise

    async def changed(self, make: Callable[[int], p.Request]) -> p.Status:
        """`change`, raising NodeError if lld refused it; the status it left the node in."""
        reply = await self.change(make)
        if not reply.ok or not isinstance(reply.value, p.Status):
            raise NodeError(self.node, reply)
        return reply.value

    # -- run control ----------------------------------------------------------------------

    async def stop(self) -> p.Status:
        """Stop the node (only this one); a stopped node stays as it is."""
        await self.ahead.confirmed()
        status = await self.link.ok(self.node, p.Stop(p.ANY_GEN))
        assert isinstance(status, p.Status)
        self.note(status)
        self._poll_now.set()
        return status

    async def step(self, take_interrupts: bool) -> p.Status:
        """One instruction, or the entry into one pending interrupt's handler if they are taken.

        A masked step the ISA alone decides is answered at once and held (`mux.ahead`);
        one it does not decide goes to lld with the held steps before it, in one STEP.
        """
        await self.ahead.settled()
        if not take_interrupts:
            answered = self._answer_ahead()
            if answered is not None:
                return answered
            held = self.ahead.fold()
            if held is not None:
                step = p.Step(held.guard, False, True, self._prefetch(), held.count + 1, held.code_crc)
                return await self._after_held(step)
        return await self.changed(lambda gen: p.Step(gen, take_interrupts, expedite=True,
                                                     prefetch=self._prefetch()))

    def _answer_ahead(self) -> p.Status | None:
        """The status a masked step leaves the node in, answered from the ISA and the step held, if
        the ISA alone decides it: the status lld's reply will bring; memory is as it was."""
        status, registers = self.status, self._registers
        if status is None or registers is None or self._cached_gen != status.gen:
            return None
        predicted = predict(status, registers, self.memory().cached(status.pc, 4))
        if predicted is None:
            return None
        self.ahead.hold(status, predicted)
        self.status = predicted
        self.memory().pc = predicted.pc
        self._registers = list(predicted.registers or ())
        self._cached_gen = predicted.gen   # what is cached stays true: no memory was written
        return predicted

    def _lose_track(self) -> None:
        """What the handle knew of the node may be wrong (steps answered ahead were not made, or
        a change went out that nobody waits for): whoever asks next learns where the node is."""
        self.forget()
        self.status = None

    async def resume(self) -> p.Status:
        """Let the node run.  lld answers after the node's first round: a node that stopped in it
        (a breakpoint a few instructions on) has its stop in the reply, registers and code too,
        and the next `wait_for_stop` has it without a poll."""
        held = self.ahead.fold()
        if held is None:
            status = await self.changed(lambda gen: p.Resume(gen, expedite=True, prefetch=self._prefetch()))
        else:
            status = await self._after_held(p.Resume(held.guard, expedite=True, prefetch=self._prefetch(),
                                                     steps=held.count, code_crc=held.code_crc))
        if status.running:
            self.forget()
        else:
            self._stop_at_resume = status
        return status

    async def _after_held(self, request: p.Step | p.Resume) -> p.Status:
        """A STEP or RESUME that makes the steps answered ahead (`ahead.fold`) first, guarded by the
        gen they start from: they and it are one round trip."""
        epoch = self._epoch
        try:
            reply = await self._send_change(request)
        except LinkError as e:
            raise self.ahead.failed(str(e)) from e
        if not reply.ok or not isinstance(reply.value, p.Status):
            raise self.ahead.failed(refusal(reply))
        self.note(reply.value, epoch)
        return reply.value

    async def resume_off_breakpoint(self) -> p.Status | None:
        """Resume a node that may rest on a breakpoint; the status if it stopped again at once.

        A node resting on one of lld's breakpoints first steps off it with interrupts
        masked: resumed straight away it would take a pending interrupt first, and the
        handler would return onto the breakpoint.  If that step stops for a reason of
        its own (a watchpoint) or lands on another breakpoint, the node stays stopped.
        """
        status = self.status or await self.refresh()
        if status.stopped and status.pc in await self.lld_breakpoints():
            status = await self.step(False)
            if status.reason != p.REASON_STEP or status.pc in await self.lld_breakpoints():
                return status
        await self.resume()
        return None

    def wait_for_stop(self) -> asyncio.Future[p.Status]:
        """The status of the running node's next stop: one poller, however many wait.

        lld never speaks first.  A stop the resume's reply brought needs no poll.
        Otherwise the first poll goes at once: a continue that ends at a breakpoint a
        few instructions on has often stopped by the time it arrives.  Then every
        POLL_FIRST, doubling up to
        POLL_MAX, so a long run costs the line little; `stop` makes the next poll
        come at once.
        """
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        self._waiters += 1
        waiter = asyncio.shield(self._poller)
        waiter.add_done_callback(self._waiter_gone)
        return waiter

    def _waiter_gone(self, _: object) -> None:
        """A waiter had its stop, or gave up: with nobody left, the polling ends."""
        self._waiters -= 1
        if self._waiters == 0 and self._poller is not None and not self._poller.done():
            self._poller.cancel()

    async def _poll(self) -> p.Status:
        stopped, self._stop_at_resume = self._stop_at_resume, None
        if stopped is not None:
            return stopped
        delay = POLL_FIRST
        while True:
            try:
                status = await self.refresh(expedite=True)   # a stop's registers come with it
            except LinkDown:
                raise
            except LinkError:
                # The line is silent (the machine stopped, hung or busy for a while): as far as
                # anyone knows the node still runs, and gdb waits for a continue without a
                # timeout.  Keep asking; the wait ends with a stop, a ctrl-C or a line down.
                delay = POLL_MAX
            else:
                if not status.running:
                    return status
            self._poll_now.clear()
            try:
                await asyncio.wait_for(self._poll_now.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, POLL_MAX)

    # -- registers --------------------------------------------------------------------------

    @property
    def cached_registers(self) -> list[int] | None:
        return self._registers

    async def registers(self) -> list[int]:
        """x0..x31 and pc, read once per stop."""
        if self._registers is None:
            epoch = self._epoch
            values = await self.link.ok(self.node, p.ReadRegs(tuple(range(GENERAL_REGISTERS))))
            assert isinstance(values, list)
            if self._epoch != epoch:
                return values   # the node changed meanwhile: good for this answer, not for the cache
            self._registers = values
        return self._registers

    async def read_register(self, lld_reg: int) -> int | None:
        """One register by lld's number (CSRs too); None if lld cannot read it."""
        if 0 <= lld_reg < GENERAL_REGISTERS:
            return (await self.registers())[lld_reg]
        reply = await self.link.request(self.node, p.ReadRegs((lld_reg,)))
        if not reply.ok or not isinstance(reply.value, list):
            return None
        return int(reply.value[0])

    async def write_registers(self, values: list[tuple[int, int]]) -> bool:
        """Write registers by lld's numbers, all or none; True if lld took them."""
        reply = await self.change(lambda gen: p.WriteRegs(gen, tuple(values)))
        self.forget()
        if reply.ok and isinstance(reply.value, p.Status):
            self.note(reply.value)   # what is read from now on belongs to the gen after the write
        return reply.ok

    # -- memory -------------------------------------------------------------------------------

    def memory(self, space: AddressSpace = CURRENT) -> MemoryCache:
        cache = self._memory.get(space)
        if cache is None:
            cache = MemoryCache(lambda request: self.link.submit(self.node, request), space)
            self._memory[space] = cache
        return cache

    async def read_memory(self, addr: int, length: int, space: AddressSpace = CURRENT) -> bytes:
        """As much of [addr, addr + length) as is readable from its start (maybe nothing)."""
        data = await self.memory(space).read(addr, length)
        if data is not None:
            return data
        # Uncached, piece by piece: every piece is queued at once, so the link sends each as
        # soon as the one before is answered, without a trip back through this coroutine.
        pieces = [self.link.submit(self.node, space.read(addr + offset, min(p.MAX_DATA, length - offset)))
                  for offset in range(0, length, p.MAX_DATA)]
        out = bytearray()
        try:
            for piece in pieces:
                reply = await piece
                if not reply.ok:
                    out += await self._readable_pages(addr + len(out), min(p.MAX_DATA, length - len(out)),
                                                      space)
                    break
                assert isinstance(reply.value, bytes)
                out += reply.value
        finally:
            for piece in pieces:
                piece.cancel()   # the rest, after a failure: the link drops them unsent
        return bytes(out)

    async def _readable_pages(self, addr: int, length: int, space: AddressSpace) -> bytes:
        """The readable start of a range lld refused as a whole, a page at a time.

        What makes an address unreadable (no mapping, no RAM) comes in whole pages.
        """
        out = bytearray()
        while len(out) < length:
            at = addr + len(out)
            piece = min(PAGE - at % PAGE, length - len(out))
            reply = await self.link.request(self.node, space.read(at, piece))
            if not reply.ok or not isinstance(reply.value, bytes):
                break
            out += reply.value
        return bytes(out)

    async def page_table(self) -> AddressSpace | None:
        """The node's page table as its kernel sees it: lld's SPACE_ROOT with the node's satp.

        None in M mode (whose view is the identity, or MPRV's) or with translation off,
        where the current translation is the only view there is.
        """
        status = self.status or await self.refresh()
        if status.priv == PRIV_M:
            return None
        satp = await self.read_register(SATP)
        return AddressSpace(p.SPACE_ROOT, satp) if satp is not None and satp & SATP_MODE else None

    async def read_as_debugger(self, addr: int, length: int) -> bytes:
        """What a debugger reads at addr: the node's current translation, and where it refuses, the
        same page table as the kernel sees it (user pages and supervisor pages alike).

        A node stopped in U mode cannot read the kernel's pages through its current view,
        nor one stopped in the kernel (SUM clear) its domain's user pages; both go through
        the table in satp, the domain's own.  Neither view faults a page in or sets an A or
        D bit (lld's translation has no side effects): a page the domain has not mapped
        stays unreadable.
        """
        data = await self.read_memory(addr, length)
        if len(data) < length and (space := await self.page_table()) is not None:
            data = max(data, await self.read_memory(addr, length, space), key=len)
        return data

    async def write_as_debugger(self, addr: int, data: bytes) -> bool:
        """Write as `read_as_debugger` reads: the current view, else the node's page table."""
        if await self.write_memory(addr, data):
            return True
        space = await self.page_table()
        return space is not None and await self.write_memory(addr, data, space)

    async def write_memory(self, addr: int, data: bytes, space: AddressSpace = CURRENT) -> bool:
        """Write all of data; False at the first piece lld refuses."""
        await self.ahead.confirmed()
        self.forget()   # (a read in flight may have been answered before the write)
        for offset in range(0, len(data), p.MAX_DATA):
            request = space.write(p.ANY_GEN, addr + offset, data[offset: offset + p.MAX_DATA])
            reply = await self.link.request(self.node, request)
            if not reply.ok:
                return False
            if isinstance(reply.value, p.Status) and reply.value.flags & p.FLAG_FUTURE_DISCARDED:
                self.future_discarded = True
        return True

    # -- breakpoints and watchpoints in lld ------------------------------------------------------

    async def lld_breakpoints(self) -> dict[int, int]:
        """lld's breakpoints on the node (address -> kind), listed once, then kept by the link."""
        known = self.link.breakpoints.get(self.node)
        if known is None:
            await self.link.ok(self.node, p.ListBreakpoints())
            known = self.link.breakpoints.get(self.node, {})
        return known

    async def place_breakpoint(self, addr: int, owner: object) -> str | None:
        """Have lld hold a breakpoint at addr for owner; None, or why lld refused.

        A breakpoint lld already holds that nobody here placed (the machine's panic
        stop) is left as it is: setting it again would change its kind.
        """
        known = await self.lld_breakpoints()
        if addr in known and addr not in self.breakpoint_owners.placed:
            return None
        if addr not in known:
            reply = await self.link.request(self.node, p.SetBreakpoint(p.ANY_GEN, addr))
            if not reply.ok:
                return reply.error.describe() if reply.error is not None else p.ERROR_NAMES.get(
                    reply.status, str(reply.status))
            if isinstance(reply.value, p.Status):
                self.note_breakpoint_change(reply.value)
        self.breakpoint_owners.add(addr, owner)
        return None

    async def remove_breakpoint(self, addr: int, owner: object) -> None:
        """Drop owner's breakpoint at addr; lld loses it when nobody else here holds it."""
        if not self.breakpoint_owners.release(addr, owner):
            return
        reply = await self.link.request(self.node, p.ClearBreakpoint(p.ANY_GEN, addr))
        if reply.ok and isinstance(reply.value, p.Status):
            self.note_breakpoint_change(reply.value)

    async def watch(self, request: p.SetWatchpoint | p.ClearWatchpoint) -> p.Reply:
        reply = await self.link.request(self.node, request)
        if reply.ok and isinstance(reply.value, p.Status):
            self.note_breakpoint_change(reply.value)
        return reply

    async def clear_all(self) -> None:
        """Every breakpoint and watchpoint off the node, whoever set them (an explicit request)."""
        await self.link.ok(self.node, p.ClearAll(p.ANY_GEN))
        self.breakpoint_owners.forget()


__all__ = ["GENERAL_REGISTERS", "PC", "LinkError", "NodeError", "NodeHandle", "StepNotMade"]
