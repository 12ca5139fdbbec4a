"""`monitor` commands: what gdb's `monitor ...` (qRcmd) reaches in the mux.

Each command is a coroutine taking the session that asked and its
arguments, and returning text for gdb's console.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lld import protocol as p
from mux.gdb import GdbSession
from mux.link import LinkError, LldLink

_WATCH_NAMES = {p.WATCH_READ: "read", p.WATCH_WRITE: "write", p.WATCH_ACCESS: "access"}

Command = Callable[["Monitor", GdbSession, list[str]], Awaitable[str]]


@dataclass
class Monitor:
    link: LldLink
    node_count: int
    sessions: dict[int, object]   # node -> description of the attached client

    async def run(self, session: GdbSession, line: str) -> str:
        try:
            words = shlex.split(line)
        except ValueError as e:
            return f"monitor: {e}\n"
        if not words:
            words = ["help"]
        entry = COMMANDS.get(words[0])
        if entry is None:
            return f"monitor: unknown command {words[0]!r}; `monitor help` lists the commands\n"
        try:
            return await entry[0](self, session, words[1:])
        except LinkError as e:
            return f"monitor: {e}\n"


async def _help(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    lines = [f"  {name:18} {text}" for name, (_, text) in COMMANDS.items()]
    return "mux monitor commands:\n" + "\n".join(lines) + "\n"


async def _status(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    rows = []
    for node in range(monitor.node_count):
        try:
            status = await monitor.link.ok(node, p.GetStatus())
            assert isinstance(status, p.Status)
            text = status.describe()
        except LinkError as e:
            text = f"no answer ({e})"
        client = monitor.sessions.get(node)
        mark = "*" if node == session.node else " "
        rows.append(f"{mark}node {node:3}  {text}" + (f"  [gdb {client}]" if client else ""))
    return "\n".join(rows) + "\n"


async def _stats(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    client = monitor.link.client.stats
    lines = [f"line: {client.sent} frames sent, {client.retransmitted} retransmitted, "
             f"{client.replies} replies, {client.stale_replies} stale, {client.undecodable} undecodable"]
    for node, stats in sorted(monitor.link.stats.items()):
        pct = stats.percentiles()
        latency = "-" if pct is None else " / ".join(f"{x * 1000:.2f}" for x in pct)
        lines.append(f"node {node:3}: {stats.requests} requests, {stats.retransmissions} retransmissions, "
                     f"{stats.failures} failures, latency p50/p90/p99 {latency} ms")
    steps = session.handle.ahead.stats
    lines.append(f"node {session.node:3}: {steps.predicted} steps answered from the ISA before lld made them "
                 f"({steps.folded} made with the STEP or RESUME after them), "
                 f"{steps.mispredicted} made otherwise, {steps.lost} not made")
    return "\n".join(lines) + "\n"


async def _refs(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    rows = []
    for node in range(monitor.node_count):
        try:
            values = await monitor.link.ok(node, p.ReadRegs(p.COUNTER_REGS))
            assert isinstance(values, list)
            refs = p.RefCounters.from_values(values)
            text = f"{refs.local} local, {refs.remote} remote, {refs.remote_fetches} remote fetches"
        except LinkError as e:
            text = f"no answer ({e})"
        rows.append(f"node {node:3}: {text}")
    return "\n".join(rows) + "\n"


async def _breakpoints(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    bps = await monitor.link.ok(session.node, p.ListBreakpoints())
    wps = await monitor.link.ok(session.node, p.ListWatchpoints())
    assert isinstance(bps, list) and isinstance(wps, list)
    if not bps and not wps:
        return f"node {session.node}: no breakpoints or watchpoints in lld\n"
    lines = [f"node {session.node}: breakpoint at {bp.addr:#010x}" for bp in bps]
    lines += [f"node {session.node}: watchpoint ({_WATCH_NAMES.get(wp.kind, wp.kind)}) at "
              f"{wp.addr:#010x}, {wp.length} bytes" for wp in wps]
    return "\n".join(lines) + "\n"


async def _clear(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    await session.handle.clear_all()
    session.breakpoints.watchpoints.clear()
    return (f"node {session.node}: every breakpoint and watchpoint cleared, the machine's own "
            f"(the panic stop) and other clients' included\n")


def _step_setting(name: str, on: str, off: str) -> Command:
    """A command that sets (with `on` or `off`) or shows one of the session's step settings."""

    async def command(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
        if args and args[0] in ("on", "off"):
            setattr(session.run_control.step, name, args[0] == "on")
        return f"node {session.node}: {on if getattr(session.run_control.step, name) else off}\n"

    return command


async def _domains(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    """`domains`: show; `domains N ...`: user-code breakpoints stop only there; `domains all`."""
    scope = session.run_control.scope
    if args == ["all"]:
        scope.domains = None
    elif args:
        if not all(a.isdigit() for a in args):
            return f"usage: monitor domains [all | DOMAIN ...], not {' '.join(args)!r}\n"
        scope.domains = frozenset(int(a) for a in args)
    if scope.domains is None:
        where = "every domain"
    else:
        numbers = " ".join(map(str, sorted(scope.domains)))
        where = f"domain{'s' if len(scope.domains) > 1 else ''} {numbers}"
    return (f"node {session.node}: breakpoints in user code stop in {where}; "
            f"{scope.skipped} hits in other domains stepped over\n")


async def _sessions(monitor: Monitor, session: GdbSession, args: list[str]) -> str:
    """Every gdb session: who, connected how long, when its last packet came (see `kick` in the console)."""
    now = asyncio.get_running_loop().time()
    lines = []
    for node, info in sorted(monitor.sessions.items()):
        summary = getattr(info, "summary", None)
        text = summary(now) if callable(summary) else str(info)
        lines.append(f"{'*' if node == session.node else ' '}node {node:3}  {text}")
    return "\n".join(lines) + "\n" if lines else "no gdb sessions\n"


_step_interrupts = _step_setting(
    "interrupts", on="a single step takes a pending interrupt and stops in its handler",
    off="single steps run with interrupts masked")
_step_traps = _step_setting(
    "traps", on="a single step into a trap (ecall, a fault) stops at the trap vector",
    off="a single step into a trap runs the handler and ends where gdb expects")


COMMANDS: dict[str, tuple[Command, str]] = {
    "help": (_help, "this list"),
    "status": (_status, "every node: state, pc, stop reason, attached gdb"),
    "stats": (_stats, "debug line statistics per node, and this node's steps answered ahead of lld"),
    "sessions": (_sessions, "every gdb session: address, connected for, last packet"),
    "refs": (_refs, "every node's memory references since boot: local, remote, remote instruction fetches"),
    "breakpoints": (_breakpoints, "breakpoints and watchpoints lld holds for this node"),
    "clear": (_clear, "remove every breakpoint and watchpoint of this node from lld"),
    "step-interrupts": (_step_interrupts, "on|off: whether single steps take pending interrupts"),
    "domains": (_domains, "[all | DOMAIN ...]: the domains breakpoints in user code stop in"),
    "step-traps": (_step_traps, "on|off: whether a step into ecall or a fault stops at the trap vector"),
}
