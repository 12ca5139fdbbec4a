"""`top`: a live table of the nodes, refreshed in place until a key ends it.

Three small pieces, each usable alone:

* `Sampler` asks lld for what one row needs, for the nodes asked (the rows on
  the screen): the status (state, pc, instret), the reference counters, and
  three words of the kernel's own records (`this_node.runq_len` and
  `this_node.current`, then `magic.vp_id`), plus the current thread's name
  when the thread changed.  Everything is read by physical address in the
  node's own copy of the kernel, so it works in any mode and translation, and
  all of it is served by lld on a running node without stopping it.  Where
  those words are comes from the kernel ELF's symbols and DWARF
  (`KernelPlaces`), never from hard-coded offsets.
* `top_rows` turns two sweeps into rows: rates are the counters' deltas over
  the host's monotonic clock between the two status replies, so they say how
  fast the simulated machine runs on this host, not the speed of the
  simulated hardware.
* `TopScreen` shows them in a prompt_toolkit full-screen application (the
  console is a prompt_toolkit REPL), redrawn after every sweep, scrolled with
  the arrows, left with q, Escape or Ctrl-C.

The debug line is shared with gdb sessions, so a sweep reads only the rows
that fit on the screen (at most five requests a node), and the next sweep
waits at least twice as long as this one took: `top` never takes more than a
third of the line, however many nodes the machine has.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.output import Output
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lld import protocol as p
from mux.console.symbols import Location, Symbols
from mux.console.view import count, reason_text, state_text
from mux.kernel_layout import read_structs
from mux.link import LinkError

DEFAULT_INTERVAL = 1.0
#: Lines of the screen that are not node rows: the heading, the table's header and rule, the footer.
CHROME_LINES = 5
#: The kernel's fields `top` reads, per structure (struct psy_magic is the magic page).
_FIELDS = {"node": ("runq_len", "current"), "kthread": ("name",), "psy_magic": ("vp_id",)}
#: magic.vp_id when no VP runs on the node (vp_switch writes ~0).
NO_VP = 0xFFFFFFFF
PRIV_U = 0
#: The table is drawn at least this wide, so that no column is ever squeezed out.
WIDEST = 200


class Link(Protocol):
    """What `top` uses of an LldLink (tests give it a fake)."""

    async def request(self, node: int, request: p.Request) -> p.Reply: ...


# -- where the kernel keeps what `top` shows ------------------------------------------------------


@dataclass(frozen=True)
class KernelPlaces:
    """Offsets, from the start of a node's RAM, of the words `top` reads in the node's own copy of
    the kernel's local data; and where a thread's name is in its record."""

    node_fields: int        # this_node.runq_len: the span read holds runq_len and current
    node_span: int
    runq_at: int            # ... offsets of the two within that span
    current_at: int
    vp_id: int              # magic.vp_id
    name_offset: int        # kthread.name, from the record's (physical) address
    name_size: int

    @classmethod
    def load(cls, symbols: Symbols, ram_base: int) -> KernelPlaces | None:
        """The places in the kernel symbols describes; None if it is not a Psyche kernel with DWARF."""
        try:
            structs = read_structs(symbols.path, _FIELDS)
            this_node, magic = symbols.address("this_node"), symbols.address("magic")
        except (LookupError, OSError, ValueError):
            return None
        if set(structs) != set(_FIELDS):
            return None
        node, kthread = structs["node"], structs["kthread"]
        first = min(node.offsets["runq_len"], node.offsets["current"])
        span = max(node.end("runq_len"), node.end("current")) - first

        def image(addr: int) -> int:   # kernel-window address -> offset in a node's RAM
            return addr - symbols.load_offset - ram_base

        return cls(image(this_node) + first, span, node.offsets["runq_len"] - first,
                   node.offsets["current"] - first, image(magic) + structs["psy_magic"].offsets["vp_id"],
                   kthread.offsets["name"], kthread.sizes["name"])


async def load_places(symbols: Symbols | None, ram_base: int) -> KernelPlaces | None:
    """KernelPlaces.load off the event loop (reading the DWARF takes a tenth of a second)."""
    if symbols is None:
        return None
    return await asyncio.to_thread(KernelPlaces.load, symbols, ram_base)


# -- one sweep --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSample:
    """What one sweep learned of one node; None where it could not learn it, and why in `error`."""

    node: int
    when: float                       # host monotonic clock when the status came back
    status: p.Status | None = None
    counters: p.RefCounters | None = None
    runq: int | None = None
    thread: str | None = None
    vp: int | None = None             # the VP running on the node; None: none (or unknown)
    error: str | None = None


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "little")


@dataclass
class Sampler:
    """Reads the rows' data; remembers each node's current thread, to read a name only when it changes."""

    link: Link
    description: p.MachineDescription
    places: KernelPlaces | None
    clock: Callable[[], float] = field(default_factory=lambda: asyncio.get_running_loop().time)
    #: node -> (thread record, its name), as last read.
    _names: dict[int, tuple[int, str]] = field(default_factory=dict)

    async def sweep(self, nodes: Sequence[int]) -> tuple[list[NodeSample], float]:
        """A sample of each of nodes, and how long the sweep took (seconds)."""
        started = self.clock()
        samples = await asyncio.gather(*(self.sample(node) for node in nodes))
        return list(samples), self.clock() - started

    async def _ask(self, node: int, request: p.Request) -> object:
        reply = await self.link.request(node, request)
        if not reply.ok:
            raise LinkError(reply.error.describe() if reply.error is not None
                            else p.ERROR_NAMES.get(reply.status, str(reply.status)))
        return reply.value

    async def _read(self, node: int, offset: int, length: int) -> bytes:
        """length bytes at offset in node's own RAM (the node's copy of the kernel's local data)."""
        at = self.description.ram_of(node)[0] + offset
        data = await self._ask(node, p.ReadMem(p.SPACE_PHYS, at, length))
        assert isinstance(data, bytes)
        return data

    async def sample(self, node: int) -> NodeSample:
        # Sent together: the link sends each as soon as the one before is answered.
        status_reply = asyncio.ensure_future(self.link.request(node, p.GetStatus()))
        counters = asyncio.ensure_future(self._counters(node))
        kernel = asyncio.ensure_future(self._kernel(node))
        try:
            return await self._sample(node, status_reply, counters, kernel)
        finally:   # whatever a failed sample no longer needs
            for pending in (status_reply, counters, kernel):
                pending.cancel()
            await asyncio.gather(status_reply, counters, kernel, return_exceptions=True)

    async def _sample(self, node: int, status_reply: asyncio.Future[p.Reply],
                      counters: asyncio.Future[p.RefCounters | None],
                      kernel: asyncio.Future[tuple[int | None, str | None, int | None]]) -> NodeSample:
        try:
            reply = await status_reply
        except LinkError as e:
            return NodeSample(node, self.clock(), error=f"no answer: {e}")
        when = self.clock()
        if not reply.ok or not isinstance(reply.value, p.Status):
            error = reply.error.describe() if reply.error is not None else p.ERROR_NAMES.get(reply.status, "")
            return NodeSample(node, when, error=f"status refused: {error}")
        try:
            runq, thread, vp = await kernel
        except LinkError as e:
            return NodeSample(node, when, reply.value, await counters,
                              error=f"kernel records unreadable: {e}")
        return NodeSample(node, when, reply.value, await counters, runq, thread, vp)

    async def _counters(self, node: int) -> p.RefCounters | None:
        """The reference counters; None if this lld has none (or did not answer)."""
        try:
            values = await self._ask(node, p.ReadRegs(p.COUNTER_REGS))
        except LinkError:
            return None
        return p.RefCounters.from_values(values) if isinstance(values, list) else None

    async def _kernel(self, node: int) -> tuple[int | None, str | None, int | None]:
        """(run-queue length, current thread's name, running VP) from the node's kernel records."""
        places = self.places
        if places is None:
            return None, None, None
        fields, magic = await asyncio.gather(self._read(node, places.node_fields, places.node_span),
                                             self._read(node, places.vp_id, 4))
        vp = _u32(magic, 0)
        thread = await self._thread_name(node, _u32(fields, places.current_at))
        return _u32(fields, places.runq_at), thread, None if vp == NO_VP else vp

    async def _thread_name(self, node: int, record: int) -> str | None:
        if not record:
            return None                      # the kernel has no threads yet (early boot)
        known = self._names.get(node)
        if known is not None and known[0] == record:
            return known[1]
        assert self.places is not None
        # The record's address is official, which is physical: read it so, not through the kernel map.
        reply = await self.link.request(node, p.ReadMem(p.SPACE_PHYS, record + self.places.name_offset,
                                                        self.places.name_size))
        if not reply.ok or not isinstance(reply.value, bytes):
            return None
        name = reply.value.split(b"\0", 1)[0].decode("utf-8", "replace") or "?"
        self._names[node] = (record, name)
        return name


# -- rows and the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopRow:
    node: int
    state: Text
    where: str
    thread: str
    vp: str
    runq: str
    instructions: str        # per second
    remote: str              # remote data references per second
    fetches: str             # remote instruction fetches per second
    note: Text


def _rate(before: int | None, now: int | None, seconds: float) -> str:
    """A counter's rate between two sweeps; `-` without two readings (or if it went back: a restart)."""
    if before is None or now is None or seconds <= 0 or now < before:
        return "-"
    return count(round((now - before) / seconds))


def _state(sample: NodeSample, session: str | None) -> Text:
    if sample.status is None:
        return Text("no answer", style="red")
    text = state_text(sample.status)
    if session is not None:
        text.append(" gdb", style="cyan")
    return text


def top_row(before: NodeSample | None, now: NodeSample, location: Location | None,
            session: str | None) -> TopRow:
    status = now.status
    seconds = now.when - before.when if before is not None else 0.0
    old_status = before.status if before is not None else None
    old = before.counters if before is not None else None
    new = now.counters

    def rate(field_name: str) -> str:
        return _rate(getattr(old, field_name) if old else None, getattr(new, field_name) if new else None,
                     seconds)

    where = ""
    if location is not None and location.symbol:
        where = location.symbol
    elif status is not None:   # user code (whose symbols the kernel ELF has not), or no symbol
        where = f"{'user ' if status.priv == PRIV_U else ''}{status.pc:#010x}"
    return TopRow(
        now.node, _state(now, session), where,
        now.thread if now.thread is not None else "-",
        str(now.vp) if now.vp is not None else "-",
        str(now.runq) if now.runq is not None else "-",
        _rate(old_status.instret if old_status else None, status.instret if status else None, seconds),
        rate("remote"), rate("remote_fetches"), _note(now, session))


def _note(sample: NodeSample, session: str | None) -> Text:
    """Why the node stopped and who debugs it, or why its row is incomplete."""
    if sample.error:
        return Text(sample.error, style="red")
    parts = []
    if sample.status is not None and sample.status.stopped:
        parts.append(reason_text(sample.status))
    if session is not None:
        parts.append(f"gdb {session}")
    return Text("; ".join(parts), style="dim")


def top_rows(before: Mapping[int, NodeSample], now: Sequence[NodeSample],
             locate: Callable[[int, int], Location], sessions: Mapping[int, str]) -> list[TopRow]:
    """The rows of a sweep, with rates against the sweep before it."""
    return [top_row(before.get(s.node), s, locate(s.node, s.status.pc) if s.status else None,
                    sessions.get(s.node)) for s in now]


def top_table(rows: Sequence[TopRow]) -> Table:
    # Natural widths, never squeezed: the full-screen view clips at the terminal's right edge, so a
    # narrow terminal loses the note first, then the rarest rate, as top does.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold reverse", pad_edge=False,
                  padding=(0, 1, 0, 0), expand=False)
    for name in ("node", "state", "function", "thread", "vp", "runq", "instr/s", "remote/s", "rfetch/s"):
        numeric = name not in ("state", "function", "thread")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    table.add_column("note", no_wrap=True)
    for r in rows:
        table.add_row(str(r.node), r.state, r.where, r.thread, r.vp, r.runq, r.instructions, r.remote,
                      r.fetches, r.note)
    return table


@dataclass(frozen=True)
class Heading:
    nodes: int
    first: int
    shown: int
    interval: float
    sweep: float          # seconds the last sweep took
    refreshes: int


def heading_text(h: Heading) -> Text:
    text = Text("psyche top", style="bold")
    last = h.first + h.shown - 1
    text.append(f"  nodes {h.first}-{last} of {h.nodes}" if h.shown < h.nodes else f"  {h.nodes} nodes")
    text.append(f"  every {h.interval:g} s  last sweep {h.sweep * 1000:.0f} ms  refresh {h.refreshes}",
                style="dim")
    return text


FOOTER = Text("q, Esc or Ctrl-C: back to the prompt   Up/Down, PgUp/PgDn: scroll   "
              "rates per host second", style="dim")


def render(renderable: RenderableType, width: int) -> str:
    """A rich renderable as ANSI text for prompt_toolkit, width columns wide."""
    console = Console(file=io.StringIO(), force_terminal=True, width=width, color_system="standard",
                      highlight=False)
    console.print(renderable, end="")
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


# -- the screen -------------------------------------------------------------------------------------------


@dataclass
class TopState:
    """Which rows are in view, and what the last sweeps found."""

    nodes: int
    rows_fit: int
    first: int = 0
    samples: dict[int, NodeSample] = field(default_factory=dict)
    sweep: float = 0.0
    refreshes: int = 0

    def in_view(self) -> range:
        shown = max(1, min(self.rows_fit, self.nodes))
        self.first = max(0, min(self.first, self.nodes - shown))
        return range(self.first, self.first + shown)

    def scroll(self, by: int) -> None:
        self.first = max(0, min(self.first + by, self.nodes - 1))


class TopScreen:
    """The full-screen view: a sweep, a redraw, a rest, until a quit key."""

    def __init__(self, sampler: Sampler, nodes: int, interval: float,
                 locate: Callable[[int, int], Location], sessions: Callable[[], Mapping[int, str]],
                 *, input: Input | None = None, output: Output | None = None) -> None:
        self.sampler = sampler
        self.interval = interval
        self.locate = locate
        self.sessions = sessions
        self.state = TopState(nodes, rows_fit=nodes)
        self._text = ANSI("")
        self._again = asyncio.Event()
        self.app: Application[None] = Application(
            layout=Layout(Window(FormattedTextControl(lambda: self._text), wrap_lines=False)),
            key_bindings=self._keys(), full_screen=True, input=input, output=output)

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()

        @keys.add("q")
        @keys.add("Q")
        @keys.add("escape", eager=True)
        @keys.add("c-c")
        def _quit(event: KeyPressEvent) -> None:
            event.app.exit()

        def scroller(by: Callable[[], int]) -> Callable[[KeyPressEvent], None]:
            def scroll(event: KeyPressEvent) -> None:
                self.state.scroll(by())
                self._again.set()          # read the rows that came into view now
            return scroll

        def page() -> int:
            return max(1, self.state.rows_fit - 1)

        keys.add("down")(scroller(lambda: 1))
        keys.add("up")(scroller(lambda: -1))
        keys.add("pagedown")(scroller(page))
        keys.add("pageup")(scroller(lambda: -page()))
        keys.add("home")(scroller(lambda: -self.state.nodes))
        keys.add("end")(scroller(lambda: self.state.nodes))
        return keys

    def _size(self) -> tuple[int, int]:
        size = self.app.output.get_size()
        return size.columns, size.rows

    async def refresh_once(self) -> None:
        """One sweep of the rows in view, and the screen redrawn from it."""
        columns, lines = self._size()
        self.state.rows_fit = max(1, lines - CHROME_LINES)
        samples, took = await self.sampler.sweep(self.state.in_view())
        rows = top_rows(self.state.samples, samples, self.locate, self.sessions())
        self.state.samples.update((s.node, s) for s in samples)
        self.state.sweep = took
        self.state.refreshes += 1
        heading = Heading(self.state.nodes, self.state.first, len(samples), self.interval, took,
                          self.state.refreshes)
        # Drawn wider than the terminal rather than squeezed: the window clips what does not fit.
        self._text = ANSI(render(Group(heading_text(heading), top_table(rows), FOOTER), max(columns, WIDEST)))
        self.app.invalidate()

    async def _refresh_forever(self) -> None:
        try:
            while True:
                await self.refresh_once()
                # At least twice the sweep's own time: top never takes more than a third of the line.
                rest = max(self.interval, 2 * self.state.sweep)
                self._again.clear()
                try:
                    await asyncio.wait_for(self._again.wait(), rest)
                except TimeoutError:
                    pass
        except Exception as e:   # (a line gone for good, a bug): leave the screen, say why at the prompt
            if self.app.future is not None and not self.app.future.done():
                self.app.exit(exception=e)

    async def run(self) -> None:
        """Until a quit key; the screen is the console's again afterwards."""
        refresher: list[asyncio.Future[None]] = []

        def start() -> None:   # once the application runs, so that the refresher can end it
            refresher.append(asyncio.ensure_future(self._refresh_forever()))

        try:
            # The console keeps SIGINT (Ctrl-C here is a key, the terminal being raw) and its
            # error handler (errors go to `log`).
            await self.app.run_async(pre_run=start, handle_sigint=False, set_exception_handler=False)
        finally:
            for task in refresher:
                task.cancel()
            await asyncio.gather(*refresher, return_exceptions=True)
