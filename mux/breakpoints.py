"""One gdb's breakpoints and watchpoints on one node, and lld brought in line with them.

gdb's breakpoints are gdb's to insert and remove, but only a running node needs
them in lld: Z0/z0 change gdb's set at once (`change`), and lld is brought in
line with them just before the node runs (`sync`).  gdb removes every breakpoint
at every stop and inserts them again at every resume, so most of that traffic
cancels out and never reaches the line.  Watchpoints go to lld at once (`watch`).

What this places in lld it places as itself: the node's handle records who placed
which of lld's breakpoints, and a breakpoint lld holds for someone else (the
machine's panic stop, the console) is never removed here.
"""

from __future__ import annotations

import asyncio

from lld import protocol as p
from mux.link import LinkError
from mux.node import GONE_GDB, NodeHandle
from psyche import rv32


class GdbBreakpoints:
    """gdb's breakpoint set and watchpoints on one node (the module's docstring says when they reach lld)."""

    def __init__(self, handle: NodeHandle) -> None:
        self.handle = handle
        #: gdb's watchpoints, as lld holds them: (addr, length) -> lld's kind.
        self.watchpoints: dict[tuple[int, int], int] = {}
        self._desired: set[int] = set()   # gdb's breakpoints: inserted (Z0/Z1) and not removed
        self._flush: asyncio.Task[str | None] | None = None   # close()'s last sync

    def __contains__(self, addr: int) -> bool:
        """Whether gdb has a breakpoint inserted at addr."""
        return addr in self._desired

    def covers(self, pcs: frozenset[int]) -> bool:
        """Whether gdb has a breakpoint inserted at every one of pcs."""
        return pcs <= self._desired

    def change(self, addr: int, *, insert: bool) -> bool:
        """Insert or remove a breakpoint in gdb's set; lld follows before the node runs.

        lld would refuse a misaligned address (no C extension), and more breakpoints
        than a node holds; those are refused here (False), at once, as lld would.
        """
        if addr & 3 or addr > rv32.M32:
            return False
        if insert:
            if addr not in self._desired and len(self._desired) >= p.MAX_BREAKPOINTS:
                return False
            self._desired.add(addr)
        else:
            self._desired.discard(addr)
        return True

    async def watch(self, addr: int, length: int, kind: int, *, insert: bool) -> p.Reply:
        """Set or clear a watchpoint in lld at once (lld translates it when set, and may
        refuse); lld's reply."""
        request: p.SetWatchpoint | p.ClearWatchpoint
        if insert:
            request = p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, addr, length, kind)
        else:
            request = p.ClearWatchpoint(p.ANY_GEN, addr, length, kind)
        reply = await self.handle.watch(request)
        if reply.ok:
            if insert:
                self.watchpoints[(addr, length)] = kind
            else:
                self.watchpoints.pop((addr, length), None)
        return reply

    async def sync(self) -> str | None:
        """Make lld hold gdb's breakpoints, before the node runs; the first refusal, or None."""
        handle = self.handle
        for addr in sorted(handle.breakpoint_owners.owned_by(self) - self._desired):
            await handle.remove_breakpoint(addr, self)
        for addr in sorted(self._desired):
            failure = await handle.place_breakpoint(addr, self)
            if failure is not None:
                return f"node {handle.node}: cannot set the breakpoint at {addr:#x}: {failure}"
        return None

    async def remove_all(self) -> None:
        """Take gdb's breakpoints and watchpoints out of lld (a detach); only gdb's: a
        breakpoint lld holds for the machine (the panic stop) or another client stays."""
        self._desired.clear()
        await self.sync()
        for (addr, length), kind in sorted(self.watchpoints.items()):
            await self.handle.watch(p.ClearWatchpoint(p.ANY_GEN, addr, length, kind))
        self.watchpoints.clear()

    def close(self) -> None:
        """The gdb went away: lld keeps exactly the breakpoints gdb left inserted.

        gdb had removed them if the node was stopped, and left them in if it was
        running; what lld then holds for it is the gdb-that-went-away's.
        """
        owned = self.handle.breakpoint_owners.owned_by(self)
        if owned != self._desired:
            self._flush = asyncio.get_running_loop().create_task(self._close_flush())
        else:
            self.handle.breakpoint_owners.hand_over(self, GONE_GDB)

    async def _close_flush(self) -> str | None:
        try:
            return await self.sync()
        except LinkError as e:
            return str(e)
        finally:
            self.handle.breakpoint_owners.hand_over(self, GONE_GDB)
