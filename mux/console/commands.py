"""The console's commands: a table of names, usages and coroutines.

Each command takes the context and its words, and returns something rich
can print (or None), or raises CommandError(message, hint).  `execute` is
the one place a line becomes a command, for the REPL and for scripts alike,
and the one place every failure becomes a one-line error: the console never
dies on input.
"""

from __future__ import annotations

import asyncio
import difflib
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from lld import protocol as p
from mux.console import top, view
from mux.console.context import CommandError, ConsoleContext
from mux.console.line import ConsoleTimeout
from mux.console.passthrough import ESCAPE_NAME, passthrough
from psyche import rv32

Run = Callable[[ConsoleContext, list[str]], Awaitable[RenderableType | None]]

#: Largest `x`: a hex dump longer than this is not something to read on a terminal.
MAX_DUMP = 64 * 1024
#: A read this long shows a progress bar (on a 9600-baud line 4 KiB takes seconds).
PROGRESS_FROM = 4 * p.MAX_DATA
DEFAULT_WAIT = 10.0


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    run: Run
    #: What each argument position completes to: "node", "nodes" (a node or `all`), "symbol", "command".
    completes: tuple[str, ...] = ()
    min_args: int = 0
    max_args: int = 0
    details: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: RenderableType | None


# -- nodes -----------------------------------------------------------------------------------


def _session_of(ctx: ConsoleContext, node: int) -> str | None:
    info = ctx.mux.clients.get(node)
    return str(info) if info is not None else None


async def _row(ctx: ConsoleContext, node: int) -> view.NodeRow:
    try:
        status = await ctx.status(node)
    except CommandError as e:
        return view.NodeRow(node, None, None, None, _session_of(ctx, node), e.message)
    counters = await ctx.counters(node)
    return view.NodeRow(node, status, ctx.locate(node, status.pc), counters, _session_of(ctx, node))


async def cmd_nodes(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    rows = await asyncio.gather(*(_row(ctx, node) for node in range(ctx.nodes)))
    return view.nodes_table(rows)


def _gdb_note(ctx: ConsoleContext, nodes: list[int]) -> list[Text]:
    """A word for the gdb sessions on nodes the console changes behind their backs."""
    return [Text(f"note: node {n} has a gdb session ({ctx.mux.clients[n]}); it sees the change at its "
                 f"next request", style="dim") for n in nodes if n in ctx.mux.clients]


async def cmd_stop(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    nodes = ctx.node_numbers(args[0])

    async def stop(node: int) -> Text:
        status = await ctx.ask(node, p.Stop(p.ANY_GEN))
        assert isinstance(status, p.Status)
        return view.stop_line(node, status, ctx.locate(node, status.pc))

    return Group(*await asyncio.gather(*(stop(n) for n in nodes)), *_gdb_note(ctx, nodes))


async def cmd_cont(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    nodes = ctx.node_numbers(args[0])

    async def cont(node: int) -> Text | None:
        if len(nodes) > 1 and not (await ctx.status(node)).stopped:
            return None          # `cont all` continues the stopped ones and leaves the rest alone
        stopped = await ctx.resume(node)
        if stopped is not None:   # already: a breakpoint a few instructions on, a watchpoint
            return view.stop_line(node, stopped, ctx.locate(node, stopped.pc))
        return Text(f"node {node} continued")

    lines = [line for line in await asyncio.gather(*(cont(n) for n in nodes)) if line is not None]
    return Group(*(lines or [Text("no node was stopped")]), *_gdb_note(ctx, nodes))


async def cmd_step(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    node = ctx.node_number(args[0])
    steps = _number(args[1], "step count") if len(args) > 1 else 1
    status = None
    for _ in range(steps):
        status = await ctx.change(node, lambda gen: p.Step(gen, take_interrupts=False))
    assert status is not None
    return Group(view.stop_line(node, status, ctx.locate(node, status.pc)), *_gdb_note(ctx, [node]))


async def cmd_wait(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    node = ctx.node_number(args[0])
    timeout = _seconds(args[1]) if len(args) > 1 else DEFAULT_WAIT
    try:
        status = await asyncio.wait_for(ctx.wait_for_stop(node), timeout)
    except TimeoutError:
        raise CommandError(f"node {node} still running after {timeout:g} s",
                           f"`stop {node}` stops it; `wait {node} SECONDS` waits longer") from None
    return view.stop_line(node, status, ctx.locate(node, status.pc))


_CSRS = tuple((name, rv32.CSRS[name]) for name in ("sstatus", "sepc", "scause", "stval", "satp"))


async def cmd_regs(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    node = ctx.node_number(args[0])
    status = await ctx.status(node)
    values = await ctx.ask(node, p.ReadRegs())
    csrs = await ctx.ask(node, p.ReadRegs(tuple(p.REG_CSR_BASE + n for _, n in _CSRS)))
    assert isinstance(values, list) and isinstance(csrs, list)
    places = {values[32]: ctx.locate(node, values[32]), values[1]: ctx.locate(node, values[1])}
    return view.registers(node, status, values, places,
                          [(name, value) for (name, _), value in zip(_CSRS, csrs, strict=True)])


async def cmd_x(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    node = ctx.node_number(args[0])
    addr = ctx.resolve(args[1])
    length = _number(args[2], "length") if len(args) > 2 else 64
    if not 1 <= length <= MAX_DUMP:
        raise CommandError(f"length {length} is not between 1 and {MAX_DUMP}",
                           "for example: x 2 this_node 256")
    data = bytearray()
    with Progress(TextColumn(f"node {node}: reading"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=ctx.out, transient=True, disable=length < PROGRESS_FROM) as progress:
        task = progress.add_task("read", total=length)
        while len(data) < length:
            piece = min(p.MAX_DATA, length - len(data))
            chunk = await ctx.ask(node, p.ReadMem(p.SPACE_VIRT, addr + len(data), piece))
            assert isinstance(chunk, bytes)
            data += chunk
            progress.update(task, completed=len(data))
    heading = Text(f"node {node}, {length} bytes at ", style="bold")
    heading.append(view.place(ctx.locate(node, addr)))
    return view.hexdump(addr, bytes(data), heading)


async def cmd_break(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    if len(args) < 2:
        nodes = ctx.node_numbers(args[0]) if args else list(range(ctx.nodes))
        return await _list_breakpoints(ctx, nodes)
    node = ctx.node_number(args[0])
    addr = ctx.resolve(args[1])
    await ctx.ask(node, p.SetBreakpoint(p.ANY_GEN, addr))
    text = Text(f"node {node}: breakpoint at {addr:#010x} ")
    text.append(view.place(ctx.locate(node, addr)))
    return text


async def _breakpoints(ctx: ConsoleContext, node: int) -> list[p.BreakpointInfo]:
    items = await ctx.ask(node, p.ListBreakpoints())
    assert isinstance(items, list)
    return items


async def _list_breakpoints(ctx: ConsoleContext, nodes: list[int]) -> RenderableType:
    lists = await asyncio.gather(*(_breakpoints(ctx, n) for n in nodes))
    items = [(n, bp, ctx.locate(n, bp.addr)) for n, bps in zip(nodes, lists, strict=True) for bp in bps]
    if not items:
        return Text("no breakpoints", style="dim")
    return view.breakpoints_table(items)


async def cmd_delete(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    nodes = ctx.node_numbers(args[0])
    addr = ctx.resolve(args[1]) if len(args) > 1 else None
    lists = await asyncio.gather(*(_breakpoints(ctx, n) for n in nodes))
    removed = 0
    for node, bps in zip(nodes, lists, strict=True):
        for bp in bps:
            # Without an address, every breakpoint the user set: the machine's panic breakpoints stay.
            if bp.addr == addr if addr is not None else bp.kind == p.BP_NORMAL:
                await ctx.ask(node, p.ClearBreakpoint(p.ANY_GEN, bp.addr))
                removed += 1
    if addr is not None and not removed:
        raise CommandError(f"no breakpoint at {args[1]} on node {args[0]}", f"`break {args[0]}` lists them")
    return Text(f"{removed} breakpoint{'s' if removed != 1 else ''} deleted")


# -- the mux and the line ------------------------------------------------------------------------


async def cmd_sessions(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    now = asyncio.get_running_loop().time()
    rows = [view.SessionRow(node, info.transport, info.peer, ctx.mux.port_of(node), info.session.running,
                            now - info.connected_at,
                            None if info.last_packet_at is None else now - info.last_packet_at)
            for node, info in sorted(ctx.mux.clients.items())]
    return view.sessions_table(rows)


async def cmd_kick(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    node = ctx.node_number(args[0])
    info = ctx.mux.kick(node, "the mux console ended this session (kick)")
    if info is None:
        raise CommandError(f"node {node} has no gdb session", "`sessions` lists them")
    status = ctx.statuses.get(node)
    state = "" if status is None else f" ({p.STATE_NAMES.get(status.state, status.state)})"
    return Text(f"node {node}: ended the gdb session of {info}; the node stays as it is{state}, "
                f"with the breakpoints lld holds (`break {node}` lists them)")


async def cmd_stats(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    c = ctx.link.client.stats
    line = (f"line: {c.sent} frames sent, {c.retransmitted} retransmitted, {c.replies} replies, "
            f"{c.stale_replies} stale, {c.undecodable} undecodable (the console's own polling included)")
    return view.stats_table(ctx.link.stats, line)


async def cmd_log(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    return view.log_lines(ctx.log.tail(_number(args[0], "count") if args else 20))


async def cmd_console(ctx: ConsoleContext, args: list[str]) -> RenderableType | None:
    if ctx.console is None:
        raise CommandError("this machine has no console line", "")
    if args:
        line = " ".join(args)
        try:
            answer = await ctx.console.converse(line)
        except ConsoleTimeout as e:
            king = ctx.statuses.get(0)
            hint = ("node 0, which runs the monitor, is stopped: `cont 0`"
                    if king is not None and king.stopped
                    else "`console` alone opens the console to see what it is doing")
            raise CommandError(str(e), hint) from None
        ctx.log.add("console", f"psyche> {line}")
        return Text(answer.rstrip("\n"))
    if ctx.terminal is None:
        raise CommandError("the console pass-through needs a terminal",
                           "in a script, give the line to type: console status")
    await passthrough(ctx.console, ctx.terminal)
    return Text("back in the mux console", style="dim")


def _sessions(ctx: ConsoleContext) -> dict[int, str]:
    return {node: str(info) for node, info in ctx.mux.clients.items()}


async def cmd_top(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    interval = _seconds(args[0]) if args else top.DEFAULT_INTERVAL
    places = await top.load_places(ctx.symbols, ctx.description.ram_base)
    sampler = top.Sampler(ctx.link, ctx.description, places)
    if ctx.terminal is None:
        # A script: one table, like `top -b -n 1`: two sweeps of every node, interval apart (the rates).
        nodes = range(ctx.nodes)
        before, _ = await sampler.sweep(nodes)
        await asyncio.sleep(interval)
        after, took = await sampler.sweep(nodes)
        rows = top.top_rows({s.node: s for s in before}, after, ctx.locate, _sessions(ctx))
        heading = top.Heading(ctx.nodes, 0, ctx.nodes, interval, took, 2)
        return Group(top.heading_text(heading), top.top_table(rows))
    screen = top.TopScreen(sampler, ctx.nodes, interval, ctx.locate, lambda: _sessions(ctx))
    await screen.run()
    state = screen.state
    return Text(f"top: {state.refreshes} refreshes; the last read {len(state.in_view())} nodes in "
                f"{state.sweep * 1000:.0f} ms", style="dim")


async def cmd_help(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    if args:
        command = find(args[0])
        text = Text(command.usage, style="bold cyan")
        text.append(f"\n{command.summary}")
        if command.details:
            text.append(f"\n{command.details}")
        if command.aliases:
            text.append(f"\nalso: {', '.join(command.aliases)}", style="dim")
        return text
    return view.help_table((c.usage, c.summary) for c in COMMANDS)


async def cmd_quit(ctx: ConsoleContext, args: list[str]) -> RenderableType:
    ctx.quitting.set()
    return Text("stopping the mux and the machine", style="dim")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise CommandError(f"not a number of seconds: {text!r}", "for example: wait 2 5")
    return value


def _number(text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {text!r}",
                           "numbers are decimal or 0x hex") from None
    if value < 0:
        raise CommandError(f"{what} must not be negative", "")
    return value


COMMANDS: tuple[Command, ...] = (
    Command("nodes", "nodes", "every node: state, pc and source line, gdb session, stop reason, references",
            cmd_nodes,
            details="References are the node's data references to its own RAM and to other nodes' RAM "
                    "(through the switch), counted by the machine since boot."),
    Command("stop", "stop N|all", "stop a node (or every node) between two rounds", cmd_stop,
            ("nodes",), 1, 1),
    Command("cont", "cont N|all", "let a stopped node (or every stopped node) run", cmd_cont,
            ("nodes",), 1, 1, "The console says when a node stops again (a breakpoint, a panic); "
            "`wait N` waits for it.", ("continue",)),
    Command("step", "step N [COUNT]", "execute one instruction (or COUNT) on a stopped node", cmd_step,
            ("node",), 1, 2, "Interrupts stay masked during the step, as gdb's stepi does by default."),
    Command("wait", "wait N [SECONDS]", "wait until a running node stops (for scripts)", cmd_wait,
            ("node",), 1, 2, f"Fails if the node still runs after SECONDS (default {DEFAULT_WAIT:g})."),
    Command("regs", "regs N", "a node's registers, pc with its symbol and line, supervisor CSRs", cmd_regs,
            ("node",), 1, 1, "A running node answers too: a snapshot taken between two rounds."),
    Command("x", "x N ADDR [LEN]", "memory of a node at a virtual address or symbol (default 64 bytes)",
            cmd_x, ("node", "symbol"), 2, 3,
            f"ADDR is a number or a symbol, with an optional +offset (this_node+0x10); at most "
            f"{MAX_DUMP} bytes.  Reads go through the node's page tables without side effects: an "
            "unmapped address is an error, never a page fault."),
    Command("break", "break [N [SYMBOL|ADDR]]", "set a breakpoint on a node; with no address, list them",
            cmd_break, ("nodes", "symbol"), 0, 2,
            "Breakpoints live in lld, per node: they outlive gdb sessions and the console."),
    Command("delete", "delete N|all [SYMBOL|ADDR]", "remove a breakpoint, or every breakpoint you set",
            cmd_delete, ("nodes", "symbol"), 1, 2,
            "Without an address the panic breakpoints the machine armed stay in place."),
    Command("sessions", "sessions", "the gdb sessions: address, port, connected for, last packet",
            cmd_sessions, details="A connection that sends no packet within --gdb-idle-timeout seconds of "
            "connecting (default 10) is dropped by itself; a gdb that has spoken is never dropped for "
            "being idle.  `kick N` ends a session."),
    Command("kick", "kick N", "end node N's gdb session (its gdb sees the connection close)", cmd_kick,
            ("node",), 1, 1,
            "The node stays as the session left it, breakpoints included, as when a gdb goes away; a gdb "
            "waiting for a stop is told why.  Over UDP a gdb that sends again starts a new session."),
    Command("top", "top [SECONDS]", "a live table of the nodes, refreshed in place; q leaves", cmd_top,
            (), 0, 1,
            f"Per node: state, function at pc, current thread, VP, run-queue length, instructions, remote "
            f"data references and remote fetches per second; refreshed every SECONDS (default "
            f"{top.DEFAULT_INTERVAL:g}), or less often if one sweep takes longer than a third of that.  "
            "q, Escape or Ctrl-C come back to the prompt; the arrows and PgUp/PgDn scroll.  Only the rows "
            "on the screen are read.  Rates are per host second.  In a script: one table, after "
            "SECONDS."),
    Command("stats", "stats", "debug line: requests, retransmissions, failures, latency per node", cmd_stats),
    Command("console", "console [LINE]", f"the Psyche console; {ESCAPE_NAME} comes back", cmd_console,
            ("console",), 0, 100,
            f"Alone: pass-through between this terminal and the king's console line until {ESCAPE_NAME}.  "
            "With a LINE: type it at the kernel monitor and show its answer (for scripts)."),
    Command("log", "log [COUNT]", "recent events: stops, gdb sessions, the machine's messages", cmd_log,
            (), 0, 1),
    Command("help", "help [COMMAND]", "the commands, or one command in full", cmd_help, ("command",), 0, 1,
            aliases=("?",)),
    Command("quit", "quit", "stop the mux and the machine, and leave (also Ctrl-D)", cmd_quit,
            aliases=("exit",)),
)


def names() -> list[str]:
    return [c.name for c in COMMANDS]


def find(name: str) -> Command:
    for command in COMMANDS:
        if name == command.name or name in command.aliases:
            return command
    close = difflib.get_close_matches(name, names(), n=1, cutoff=0.5)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise CommandError(f"unknown command {name!r}", hint + "`help` lists the commands")


async def execute(ctx: ConsoleContext, line: str) -> Outcome:
    """Run one line; every failure becomes an error and a hint, never an exception."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as e:
        return _failure(CommandError(f"cannot split the line: {e}", "close the quote"))
    if not words:
        return Outcome(True, None)
    try:
        command = find(words[0])
        args = words[1:]
        if not command.min_args <= len(args) <= command.max_args:
            raise CommandError(f"{command.name} takes {_arity(command)}", f"usage: {command.usage}")
        return Outcome(True, await command.run(ctx, args))
    except CommandError as e:
        return _failure(e)
    except Exception as e:  # noqa: BLE001 - a console that dies on a bug loses the user's machine
        ctx.log.add("console", f"{line!r} failed: {type(e).__name__}: {e}")
        return _failure(CommandError(f"internal error: {type(e).__name__}: {e}", "`log` has the details"))


def _arity(command: Command) -> str:
    if command.min_args == command.max_args:
        return f"{command.min_args} argument{'s' if command.min_args != 1 else ''}"
    return f"{command.min_args} to {command.max_args} arguments"


def _failure(error: CommandError) -> Outcome:
    text = Text("error: ", style="bold red")
    text.append(error.message)
    if error.hint:
        text.append("\n  hint: ", style="dim")
        text.append(error.hint, style="dim")
    return Outcome(False, text)
