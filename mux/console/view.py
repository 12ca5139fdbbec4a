"""How the console shows things: rich tables and text, built from plain data.

Nothing here asks the line anything: the commands gather, this formats, so
the formatting is tested with made-up data and the commands stay short.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from lld import protocol as p
from mux.console.context import Event
from mux.console.symbols import Location
from mux.link import NodeLinkStats
from mux.server import duration
from psyche import rv32

STATE_STYLES = {p.STATE_RUNNING: "green", p.STATE_STOPPED: "bold yellow", p.STATE_HELD: "dim"}


def count(n: int | None) -> str:
    """A counter in a few characters: 812, 45.3k, 12.1M, 3.40G."""
    if n is None:
        return "-"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return str(n)


def state_text(status: p.Status) -> Text:
    name = p.STATE_NAMES.get(status.state, str(status.state))
    if status.running and status.flags & p.FLAG_WAITING:
        name += " (wfi)"
    return Text(name, style=STATE_STYLES.get(status.state, ""))


def reason_text(status: p.Status) -> str:
    if not status.stopped:
        return ""
    text = p.REASON_NAMES.get(status.reason, str(status.reason))
    if status.reason == p.REASON_WATCHPOINT:
        text += f" {status.data_addr:#010x}"
    return text


def place(location: Location) -> Text:
    """`clock_intr+0x8 clock.c:41`, the symbol bold, the line dim."""
    text = Text(location.where or "?", style="bold" if location.where else "dim")
    if location.source:
        text.append(f" {location.source}", style="dim")
    return text


def stop_line(node: int, status: p.Status, location: Location) -> Text:
    """One line for a node that stopped: what the watcher and `wait` print."""
    text = Text(f"node {node} ", style="bold")
    text.append(state_text(status))
    if status.stopped:
        text.append(f" ({reason_text(status)})")
    text.append(f" at {status.pc:#010x} ")
    text.append(place(location))
    return text


@dataclass(frozen=True)
class NodeRow:
    """What `nodes` shows of one node: what lld said, or why it said nothing."""

    node: int
    status: p.Status | None
    location: Location | None
    counters: p.RefCounters | None
    session: str | None
    error: str | None = None


def nodes_table(rows: Iterable[NodeRow]) -> Table:
    table = Table(title="nodes", title_justify="left", header_style="bold")
    table.add_column("node", justify="right")
    table.add_column("state")
    table.add_column("pc")
    table.add_column("where")
    table.add_column("gdb")
    table.add_column("stop reason")
    table.add_column("local refs", justify="right")
    table.add_column("remote refs", justify="right")
    for row in rows:
        session = row.session or ""
        if row.status is None:
            table.add_row(str(row.node), Text("no answer", style="red"), "",
                          Text(row.error or "", style="red"), session, "", "", "")
            continue
        counters = row.counters
        table.add_row(
            str(row.node), state_text(row.status), f"{row.status.pc:#010x}",
            place(row.location) if row.location else "", session, reason_text(row.status),
            count(counters.local if counters else None), count(counters.remote if counters else None),
        )
    return table


def registers(node: int, status: p.Status, values: list[int], locate: dict[int, Location],
              csrs: list[tuple[str, int]]) -> Group:
    """x0-x31 in four columns, then pc, privilege and a few supervisor CSRs."""
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    for _ in range(4):
        table.add_column(style="cyan", justify="right")
        table.add_column()
    for row in range(8):
        cells: list[RenderableType] = []
        for col in range(4):
            reg = col * 8 + row
            cells += [f"{rv32.ABI_NAMES[reg]}", f"{values[reg]:#010x}"]
        table.add_row(*cells)
    heading = Text(f"node {node} ", style="bold")
    heading.append(state_text(status))
    if status.running:
        heading.append(" (a snapshot taken between two rounds)", style="dim")
    pc = Text(f"pc {values[32]:#010x} ", style="bold")
    pc.append(place(locate[values[32]]))
    pc.append(f"   priv {rv32.PRIV_NAMES.get(values[33], values[33])}   ra ")
    pc.append(place(locate[values[1]]))
    extra = Text("   ".join(f"{name} {value:#010x}" for name, value in csrs), style="dim")
    return Group(heading, pc, table, extra)


def hexdump(addr: int, data: bytes, heading: Text | None = None) -> Group:
    lines: list[RenderableType] = [heading] if heading is not None else []
    for offset in range(0, len(data), 16):
        chunk = data[offset:offset + 16]
        words = " ".join(chunk[i:i + 4].hex() for i in range(0, len(chunk), 4))
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        line = Text(f"{addr + offset:#010x}  ", style="cyan")
        line.append(f"{words:<35}  ")
        line.append(ascii_, style="dim")
        lines.append(line)
    return Group(*lines)


def breakpoints_table(items: list[tuple[int, p.BreakpointInfo, Location]]) -> Table:
    table = Table(title="breakpoints (held by lld)", title_justify="left", header_style="bold")
    table.add_column("node", justify="right")
    table.add_column("address")
    table.add_column("where")
    table.add_column("kind")
    for node, bp, location in items:
        kind = "panic" if bp.kind == p.BP_PANIC else "breakpoint"
        table.add_row(str(node), f"{bp.addr:#010x}", place(location), kind)
    return table


@dataclass(frozen=True)
class SessionRow:
    node: int
    transport: str
    peer: str
    port: int
    running: bool
    #: How long ago the client connected, and sent its last packet (None: it has sent none).
    connected: float = 0.0
    idle: float | None = None


def sessions_table(rows: list[SessionRow]) -> RenderableType:
    if not rows:
        return Text("no gdb sessions attached", style="dim")
    table = Table(title="gdb sessions", title_justify="left", header_style="bold")
    for name in ("node", "transport", "gdb at", "mux port", "connected", "last packet", "gdb waits for"):
        table.add_column(name)
    for row in rows:
        last = (Text("none yet", style="bold yellow") if row.idle is None
                else Text(f"{duration(row.idle)} ago"))
        table.add_row(str(row.node), row.transport, row.peer, str(row.port), duration(row.connected), last,
                      "a stop (continue)" if row.running else "-")
    return Group(table, Text("`kick N` ends a session; one that sends no packet is dropped by itself "
                             "(--gdb-idle-timeout)", style="dim"))


def stats_table(stats: dict[int, NodeLinkStats], line: str) -> Group:
    table = Table(title="debug line, per node", title_justify="left", header_style="bold")
    for name in ("node", "requests", "retransmissions", "failures", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(name, justify="right")
    for node, s in sorted(stats.items()):
        pct = s.percentiles()
        latency = ["-"] * 3 if pct is None else [f"{x * 1000:.2f}" for x in pct]
        table.add_row(str(node), str(s.requests), str(s.retransmissions), str(s.failures), *latency)
    return Group(Text(line), table)


def log_lines(events: list[Event]) -> RenderableType:
    if not events:
        return Text("nothing logged yet", style="dim")
    out = Text()
    for i, event in enumerate(events):
        stamp = time.strftime("%H:%M:%S", time.localtime(event.when))
        out.append(f"{stamp} ", style="dim")
        out.append(f"{event.source:8} ", style="cyan")
        out.append(event.text + ("\n" if i < len(events) - 1 else ""))
    return out


def help_table(commands: Iterable[tuple[str, str]]) -> Group:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan")
    table.add_column()
    for usage, summary in commands:
        table.add_row(usage, summary)
    return Group(table, Text("`help COMMAND` tells more; Tab completes commands, nodes and symbols.",
                             style="dim"))
