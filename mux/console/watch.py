"""Watching the machine from the console: the boot, then every node, all the time.

lld never speaks first (it only answers requests), so the console learns that a
running node stopped, or that a gdb session came or went, by looking.  The
watcher asks every node for its status in one sweep, then rests for twice
as long as the sweep took (at least `interval`), so it never takes more than
a third of the debug line however slow the line is.  A stop the user did not
ask for from the console (a breakpoint, a panic) is announced; nodes driven
by a gdb session are only logged, or a stepping gdb would flood the screen.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from lld import protocol as p
from mux.console import view
from mux.console.context import ConsoleContext
from mux.link import LinkError
from psyche.kernel.harness import member_offset

#: enum node_state in psyche/kernel/node.h: NODE_UP and after (panicked, parked) have finished booting.
NODE_UP = 2
BARRIER_EPISODES = 3


class NodeWatcher:
    def __init__(self, ctx: ConsoleContext, interval: float = 0.25) -> None:
        self.ctx = ctx
        self.interval = interval
        self._sessions: dict[int, str] = {}
        self._silent: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.ctx.mux.ended is None:   # (once the machine is gone there is nothing to watch)
            started = loop.time()
            await self.sweep()
            await asyncio.sleep(max(self.interval, 2 * (loop.time() - started)))

    async def sweep(self) -> None:
        """One look at every node and at the gdb sessions; what changed is logged and announced."""
        self._check_sessions()
        await asyncio.gather(*(self._check_node(node) for node in range(self.ctx.nodes)))

    async def _check_node(self, node: int) -> None:
        ctx = self.ctx
        try:
            reply = await ctx.link.request(node, p.GetStatus())
        except LinkError as e:
            if node not in self._silent:
                self._silent.add(node)
                ctx.log.add("line", str(e))
            return
        if node in self._silent:
            self._silent.discard(node)
            ctx.log.add("line", f"node {node} answers again")
        if not reply.ok or not isinstance(reply.value, p.Status):
            return
        status, before = reply.value, ctx.statuses.get(node)
        ctx.statuses[node] = status
        if before is None or not status.stopped or status.stops == before.stops:
            return
        line = view.stop_line(node, status, ctx.locate(node, status.pc))
        ctx.log.add("node", line.plain)
        if node not in ctx.mux.clients:
            ctx.notify(line)

    def _check_sessions(self) -> None:
        ctx = self.ctx
        now = {node: str(info) for node, info in ctx.mux.clients.items()}
        for node, who in now.items():
            if self._sessions.get(node) != who:
                self._say("gdb", f"gdb attached to node {node} ({who})")
        for node, who in self._sessions.items():
            if node not in now:
                self._say("gdb", f"gdb detached from node {node} ({who})")
        self._sessions = now

    def _say(self, source: str, text: str) -> None:
        self.ctx.log.add(source, text)
        self.ctx.notify(Text(text, style="cyan"))


@dataclass(frozen=True)
class BootState:
    """How far each node's boot is: its record published (`up`), then the three barriers."""

    up: list[bool]
    barriers: list[int]
    stopped: list[int]

    @property
    def steps(self) -> int:
        return sum(self.up) + sum(min(b, BARRIER_EPISODES) for b in self.barriers)

    @property
    def done(self) -> bool:
        return all(self.up) and min(self.barriers) >= BARRIER_EPISODES


async def boot_state(ctx: ConsoleContext) -> BootState | None:
    """Each node's `this_node.state` and `this_node.barriers_passed`, through lld.

    Read from each node's own copy of the record, by physical address, so it
    works before the node has page tables; None if the kernel has no such
    record (another kernel) or the line does not answer.
    """
    if ctx.symbols is None:
        return None
    try:
        record = ctx.symbols.address("this_node")
        state_at = member_offset(ctx.symbols.path, "node", "state")
        barriers_at = member_offset(ctx.symbols.path, "node", "barriers_passed")
    except (LookupError, OSError):
        return None
    first, length = min(state_at, barriers_at), abs(barriers_at - state_at) + 4
    image_offset = record - ctx.symbols.load_offset - ctx.description.ram_base + first

    async def fields(node: int) -> tuple[bool, int]:
        phys = ctx.description.ram_of(node)[0] + image_offset
        reply = await ctx.link.request(node, p.ReadMem(p.SPACE_PHYS, phys, length))
        data = reply.value
        if not reply.ok or not isinstance(data, bytes):
            raise LinkError(f"node {node}: cannot read its node record")
        return _word(data, state_at - first) >= NODE_UP, _word(data, barriers_at - first)

    try:
        records = await asyncio.gather(*(fields(n) for n in range(ctx.nodes)))
        statuses = await asyncio.gather(*(ctx.link.request(n, p.GetStatus()) for n in range(ctx.nodes)))
    except LinkError:
        return None
    stopped = [n for n, r in enumerate(statuses) if isinstance(r.value, p.Status) and r.value.stopped]
    return BootState([up for up, _ in records], [b for _, b in records], stopped)


def _word(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "little")


async def wait_for_boot(ctx: ConsoleContext, timeout: float = 60.0) -> str:
    """Show the boot's progress until every node has passed the last barrier; how it went."""
    started = time.monotonic()
    state = await boot_state(ctx)
    if state is None:
        return "boot progress unknown: the kernel has no node records the console can read"
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=ctx.out, transient=True) as progress:
        task = progress.add_task("booting", total=ctx.nodes * (1 + BARRIER_EPISODES))
        while state is not None:
            up = sum(state.up)
            progress.update(task, completed=state.steps,
                            description=f"booting: {up} of {ctx.nodes} nodes up, "
                                        f"barrier {min(state.barriers)} of {BARRIER_EPISODES} passed")
            if state.done:
                return f"booted: {ctx.nodes} nodes up in {time.monotonic() - started:.1f} s"
            if state.stopped:
                return (f"boot stopped: node(s) {', '.join(map(str, state.stopped))} stopped with "
                        f"{up} of {ctx.nodes} up; `nodes` shows where")
            if time.monotonic() - started > timeout:
                return f"boot not finished after {timeout:g} s: {up} of {ctx.nodes} nodes up"
            await asyncio.sleep(0.05)
            state = await boot_state(ctx)
    return "boot progress unknown: the debug line stopped answering"
