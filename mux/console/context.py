"""What every console command works against, and the node operations they share.

A `ConsoleContext` is made once per console and passed to every command;
nothing in the console package keeps state anywhere else.  It also holds
what the console last learned of each node (`statuses`), which the toolbar
and the watcher read without asking the line again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from rich.console import Console, RenderableType

from lld import protocol as p
from mux.console.line import PsycheConsole
from mux.console.symbols import Location, Symbols
from mux.link import LinkDown, LinkError, LldLink
from mux.node import NodeError
from mux.server import Mux

T = TypeVar("T")


class CommandError(Exception):
    """A command that could not do what was asked: one line of why, and a hint of what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Event:
    when: float        # wall time
    source: str        # "node", "gdb", "machine", "line", "console"
    text: str


@dataclass
class EventLog:
    """What happened, newest last: stops, gdb sessions coming and going, the machine's own messages."""

    events: deque[Event] = field(default_factory=lambda: deque(maxlen=2000))

    def add(self, source: str, text: str) -> None:
        # deque.append is atomic: the machine's stderr reader thread adds here too.
        self.events.append(Event(time.time(), source, text))

    def tail(self, count: int) -> list[Event]:
        return list(self.events)[-count:] if count > 0 else []


@dataclass(frozen=True)
class Terminal:
    """The user's terminal, for the console pass-through (None when commands come from a script)."""

    input_fd: int
    output_fd: int


@dataclass
class ConsoleContext:
    link: LldLink
    mux: Mux
    description: p.MachineDescription
    symbols: Symbols | None = None
    console: PsycheConsole | None = None
    terminal: Terminal | None = None
    #: Where live displays (progress bars) draw; command output is returned, not printed.
    out: Console = field(default_factory=Console)
    log: EventLog = field(default_factory=EventLog)
    #: The latest status the console has seen of each node, from any command or the watcher.
    statuses: dict[int, p.Status] = field(default_factory=dict)
    #: Shows something to the user outside a command's output (a node that stopped by itself).
    notify: Callable[[RenderableType], None] = lambda renderable: None
    #: Set by `quit` (or a signal): the console ends after the current command.
    quitting: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def nodes(self) -> int:
        return self.description.nodes

    # -- places -------------------------------------------------------------------------

    def kernel_address(self, node: int, addr: int) -> int:
        """The kernel-window address of a physical pc in node's own copy of the kernel.

        A node runs its kernel at the local window, but before its start stub
        turns on translation (or parked in M mode) its pc is physical, in its
        own RAM; the symbols are those of the same copy.
        """
        base, size = self.description.ram_of(node)
        if self.symbols is not None and base <= addr < base + size:
            return addr - base + self.description.ram_base + self.symbols.load_offset
        return addr

    def locate(self, node: int, addr: int) -> Location:
        if self.symbols is None:
            return Location(addr)
        located = self.symbols.locate(self.kernel_address(node, addr))
        return Location(addr, located.symbol, located.offset, located.file, located.line)

    def resolve(self, text: str) -> int:
        """An address from a number or a kernel symbol (with an optional +offset)."""
        if self.symbols is None:
            try:
                return int(text, 0)
            except ValueError:
                raise CommandError(f"not an address: {text!r}",
                                   "no kernel symbols are loaded: give a number such as 0xc0000000") from None
        try:
            return self.symbols.resolve(text)
        except ValueError as e:
            raise CommandError(str(e),
                               "an address is a number (0xc00003c8) or a symbol (clock_intr+8)") from None
        except LookupError as e:
            suggestions = getattr(e, "suggestions", [])
            hint = (f"did you mean {' or '.join(suggestions)}?" if suggestions
                    else "Tab completes symbol names")
            raise CommandError(str(e), hint) from None

    def node_number(self, text: str) -> int:
        try:
            node = int(text, 0)
        except ValueError:
            node = -1
        if not 0 <= node < self.nodes:
            raise CommandError(f"no node {text!r}: this machine has nodes 0 to {self.nodes - 1}",
                               "`nodes` lists them")
        return node

    def node_numbers(self, text: str) -> list[int]:
        """`all`, or one node number."""
        return list(range(self.nodes)) if text == "all" else [self.node_number(text)]

    # -- talking to lld ------------------------------------------------------------------

    async def ask(self, node: int, request: p.Request) -> object:
        """The value of a successful reply; CommandError naming the node and the error otherwise."""
        try:
            reply = await self.link.request(node, request)
        except LinkError as e:
            raise CommandError(str(e), _link_hint(e)) from None
        if not reply.ok:
            assert reply.error is not None
            if reply.error.status is not None:
                self.statuses[node] = reply.error.status
            raise CommandError(f"node {node}: {reply.error.describe()}", _hint_for(reply.status, node))
        if isinstance(reply.value, p.Status):
            self.statuses[node] = reply.value
        return reply.value

    async def status(self, node: int) -> p.Status:
        status = await self.ask(node, p.GetStatus())
        assert isinstance(status, p.Status)
        return status

    async def change(self, node: int, make: Callable[[int], p.Request]) -> p.Status:
        """A guarded change (resume, step) through the node's handle, shared with gdb sessions.

        If the node moved on between the status and the change (a stop of its own, or a
        gdb session's request), the handle makes it once more against the new gen.
        """
        return await self._through_handle(node, self.mux.nodes[node].changed(make))

    async def resume(self, node: int) -> p.Status | None:
        """Resume the node, stepping off a breakpoint it rests on; the stop if it stopped again,
        at once or within the round lld lets it run before it answers (docs/lld-protocol.md)."""
        handle = self.mux.nodes[node]
        stopped = await self._through_handle(node, handle.resume_off_breakpoint())
        if stopped is None and handle.status is not None and handle.status.stopped:
            return handle.status
        return stopped

    async def wait_for_stop(self, node: int) -> p.Status:
        """The running node's next stop, from the poller its gdb session (if any) shares."""
        return await self._through_handle(node, self.mux.nodes[node].wait_for_stop())

    async def _through_handle(self, node: int, work: Awaitable[T]) -> T:
        try:
            result = await work
        except LinkError as e:
            raise CommandError(str(e), _link_hint(e)) from None
        except NodeError as e:
            error = e.reply.error
            if error is not None and error.status is not None:
                self.statuses[node] = error.status
            detail = error.describe() if error is not None else p.ERROR_NAMES.get(e.reply.status, "")
            raise CommandError(f"node {node}: {detail}", _hint_for(e.reply.status, node)) from None
        status = self.mux.nodes[node].status
        if status is not None:
            self.statuses[node] = status
        return result

    async def counters(self, node: int) -> p.RefCounters | None:
        """The node's reference counters, or None if its lld does not have them (or does not answer)."""
        try:
            reply = await self.link.request(node, p.ReadRegs(p.COUNTER_REGS))
        except LinkError:
            return None
        if not reply.ok or not isinstance(reply.value, list):
            return None
        return p.RefCounters.from_values(reply.value)


def _link_hint(error: LinkError) -> str:
    if isinstance(error, LinkDown):
        return "the machine or its debug line is gone: `log` says how; `quit` leaves"
    return "the debug line is not answering: `stats` shows retransmissions, `log` when it went silent"


def _hint_for(error: int, node: int) -> str:
    return {
        p.E_STATE: f"`stop {node}` first, or `nodes` to see its state",
        p.E_STALE: "the node moved on meanwhile (a gdb session?): try again",
        p.E_UNMAPPED: "the node's page tables do not map that address",
        p.E_NOT_RAM: "only RAM can be read through lld, not device registers",
        p.E_ALIGN: "breakpoints go on 4-byte aligned instructions",
        p.E_LIMIT: f"`delete {node}` removes this node's breakpoints",
        p.E_TOO_LARGE: f"at most {p.MAX_DATA} bytes a request",
    }.get(error, "")
