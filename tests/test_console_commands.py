"""The mux console's commands, completion, prompt and scripts, against a kernel booted in-process.

The machine runs inside the test: `LoopbackLink` gives the console the
LldLink interface over lld.loopback, so the machine advances only while a
request waits for its reply, and every run is the same run.  The prompt is
driven through prompt_toolkit's pipe input, as keys.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Callable, Iterator

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from lld import protocol as p
from lld.loopback import Loopback
from mux.console import commands
from mux.console.context import ConsoleContext, Terminal
from mux.console.line import PsycheConsole
from mux.console.passthrough import passthrough
from mux.console.repl import ConsoleCompleter, Repl, status_line
from mux.console.script import run_script
from mux.console.symbols import Symbols
from mux.console.view import count
from mux.console.watch import NodeWatcher, boot_state, wait_for_boot
from mux.kernel_layout import KernelLayout
from mux.link import LinkError, LldLink, NodeLinkStats
from mux.server import Mux, MuxConfig, SessionInfo
from mux.threads import NodeThreads
from psyche.kernel.harness import KernelRun, kernel_phys

pytestmark = pytest.mark.timeout(60)


class LoopbackLink:
    """What the console uses of an LldLink, over an in-process Loopback."""

    def __init__(self, lb: Loopback) -> None:
        self.lb = lb
        self.client = lb.client
        self.stats: dict[int, NodeLinkStats] = {}
        self.breakpoints: dict[int, dict[int, int]] = {}
        self._holds: dict[int, Callable[[], None]] = {}

    def _call(self, node: int, request: p.Request) -> p.Reply:
        if not isinstance(request, p.ReadMem):
            release = self._holds.pop(node, None)
            if release is not None:
                release()   # steps a handle answered ahead go first, as over the real link
        self.stats.setdefault(node, NodeLinkStats()).requests += 1
        reply = self.lb.call(node, request)
        LldLink._observe(self, node, request, reply)  # type: ignore[arg-type]  # keeps `breakpoints`
        return reply

    async def request(self, node: int, request: p.Request) -> p.Reply:
        return self._call(node, request)

    def submit(self, node: int, request: p.Request) -> asyncio.Future[p.Reply]:
        """Served at once, in order, as the real link queues them (the node handle's memory
        reads and the steps it answered ahead come this way)."""
        future = asyncio.get_running_loop().create_future()
        future.set_result(self._call(node, request))
        return future

    def hold(self, node: int, release: Callable[[], None]) -> None:
        self._holds[node] = release

    def unhold(self, node: int) -> None:
        self._holds.pop(node, None)

    async def ok(self, node: int, request: p.Request) -> object:
        reply = await self.request(node, request)
        if not reply.ok:
            raise LinkError(str(reply.error))
        return reply.value


@pytest.fixture(scope="module")
def machine() -> Iterator[tuple[Loopback, Symbols]]:
    run = KernelRun(nodes=4)
    run.boot()
    yield Loopback(run.machine, run=True), Symbols(run.elf)


def make_context(machine: tuple[Loopback, Symbols]) -> ConsoleContext:
    lb, symbols = machine
    link = LoopbackLink(lb)
    description = lb.ok(0, p.Describe())
    mux = Mux(MuxConfig(description.nodes), link)  # type: ignore[arg-type]  # the link's interface
    return ConsoleContext(link=link, mux=mux, description=description,  # type: ignore[arg-type]
                          symbols=symbols, out=Console(file=io.StringIO(), width=160))


def run(ctx: ConsoleContext, line: str) -> tuple[bool, str]:
    """One command: whether it succeeded, and what it printed."""
    outcome = asyncio.run(commands.execute(ctx, line))
    screen = Console(record=True, width=160, file=io.StringIO())
    if outcome.output is not None:
        screen.print(outcome.output)
    return outcome.ok, screen.export_text()


@pytest.fixture
def ctx(machine: tuple[Loopback, Symbols]) -> Iterator[ConsoleContext]:
    context = make_context(machine)
    yield context
    for node in range(context.nodes):      # leave the machine as the next test expects it: all running
        asyncio.run(commands.execute(context, f"delete {node}"))
        if context.statuses.get(node) and context.statuses[node].stopped:
            asyncio.run(commands.execute(context, f"cont {node}"))


# -- a session, as in the issue ---------------------------------------------------------------------


def test_nodes_stop_regs_break_cont_wait(ctx: ConsoleContext) -> None:
    ok, out = run(ctx, "nodes")
    assert ok and out.count("running") == 4, out
    assert "idle_loop" in out and "sched.c:" in out          # pc with symbol and source line
    assert "local refs" in out and "remote refs" in out
    ok, out = run(ctx, "stop 2")
    assert ok and "node 2 stopped (requested)" in out, out
    ok, out = run(ctx, "regs 2")
    assert ok and "node 2 stopped" in out and "sepc" in out, out
    assert "a0  0x00000002" in out                          # the kernel keeps the node number in a0
    ok, out = run(ctx, "break 2 clock_intr")
    assert ctx.symbols is not None
    assert ok and f"breakpoint at {ctx.symbols.address('clock_intr'):#010x} clock_intr" in out, out
    ok, out = run(ctx, "break 2")
    assert ok and "clock_intr" in out and "breakpoint" in out
    ok, out = run(ctx, "cont 2")   # (lld answers after a round: a tick due by then is the stop)
    assert ok and ("node 2 continued" in out or "node 2 stopped (breakpoint) at" in out), out
    ok, out = run(ctx, "wait 2 30")
    assert ok and "node 2 stopped (breakpoint)" in out and "clock_intr" in out, out
    ok, out = run(ctx, "nodes")
    assert ok and "breakpoint" in out and out.count("running") == 3
    ok, out = run(ctx, "step 2 3")
    assert ok and "(step)" in out and "clock_intr+0xc" in out, out
    ok, out = run(ctx, "delete 2 clock_intr")
    assert ok and "1 breakpoint deleted" in out
    ok, out = run(ctx, "cont all")
    assert ok and "node 2 continued" in out and "node 1" not in out


def test_a_change_made_stale_meanwhile_is_made_again_once(ctx: ConsoleContext,
                                                          machine: tuple[Loopback, Symbols]) -> None:
    lb, symbols = machine
    run(ctx, "stop 1")
    guards: list[int] = []

    def resume(gen: int) -> p.Request:
        if not guards:    # between the console's status and its resume, someone else changes node 1
            lb.ok(1, p.SetBreakpoint(p.ANY_GEN, symbols.address("clock_intr")))
        guards.append(gen)
        return p.Resume(gen)

    status = asyncio.run(ctx.change(1, resume))
    assert status.running and guards[1] == guards[0] + 1


def test_memory_by_symbol_in_pieces_matches_the_machine(ctx: ConsoleContext,
                                                       machine: tuple[Loopback, Symbols]) -> None:
    lb, symbols = machine
    ok, out = run(ctx, "x 3 this_node 16")
    assert ok and "this_node" in out and "45444f4e 03000000 04000000" in out, out   # magic, id 3, 4 nodes
    ok, out = run(ctx, f"x 1 _text_start {p.MAX_DATA + 3}")     # more than one request
    assert ok
    first_line = lb.machine.read_phys(kernel_phys(symbols.address("_text_start"), node=1), 16)
    assert " ".join(first_line[i:i + 4].hex() for i in range(0, 16, 4)) in out
    dump_lines = [line for line in out.splitlines() if line.startswith("0xc")]
    assert len(dump_lines) == (p.MAX_DATA + 3 + 15) // 16


def test_sessions_stats_log_help(ctx: ConsoleContext) -> None:
    assert run(ctx, "sessions") == (True, "no gdb sessions attached\n")
    run(ctx, "nodes")
    ok, out = run(ctx, "stats")
    assert ok and "p50 ms" in out and "retransmissions" in out
    ctx.log.add("gdb", "gdb attached to node 1 (tcp 127.0.0.1:5000)")
    ok, out = run(ctx, "log 5")
    assert ok and "gdb attached to node 1" in out
    ok, out = run(ctx, "help")
    assert ok and all(name in out for name in commands.names())
    ok, out = run(ctx, "help x")
    assert ok and "x N ADDR [LEN]" in out and "page fault" in out



def test_top_in_a_script_is_one_table_of_every_node_read_from_the_kernels_records(
        ctx: ConsoleContext) -> None:
    run(ctx, "stop 2")
    ok, out = run(ctx, "top 0.05")
    assert ok and "psyche top  4 nodes" in out, out
    rows = {int(line.split()[0]): line for line in out.splitlines() if line.split()[:1] in (["0"], ["1"],
                                                                                          ["2"], ["3"])}
    assert sorted(rows) == [0, 1, 2, 3], out
    assert "stopped" in rows[2] and rows[2].endswith("requested") and "running" in rows[1], out
    # The current thread as the mux's thread list (another reader, through the kernel's map) has it.
    assert ctx.symbols is not None
    threads = NodeThreads(ctx.mux.nodes[2], KernelLayout.load(ctx.symbols.path))
    (live,) = [t for t in asyncio.run(threads.threads()) if t.live]
    words = rows[2].split()
    assert words[2:4] == ["idle_loop", live.name], out
    assert words[4:6] == ["-", "0"], out          # no VP runs; nothing is ready
    assert words[6] == "0"                        # a stopped node executes nothing

# -- bad input: one line of error, a hint, and the console goes on ------------------------------------


@pytest.mark.parametrize(("line", "error", "hint"), [
    ("nodez", "unknown command 'nodez'", "did you mean `nodes`?"),
    ("stop 7", "no node '7': this machine has nodes 0 to 3", "`nodes` lists them"),
    ("regs two", "no node 'two'", "`nodes` lists them"),
    ("break 1 clok_intr", "unknown symbol 'clok_intr'", "did you mean clock_intr"),
    ("x 1 nosuchthing_at_all", "unknown symbol", "Tab completes symbol names"),
    ("x 1 0x10 16", "unmapped", "page tables do not map"),
    ("x 1 this_node 0", "length 0 is not between", "for example"),
    ("cont 1", "wrong state", "`stop 1` first"),
    ("stop", "stop takes 1 argument", "usage: stop N|all"),
    ("regs 1 2", "regs takes 1 argument", "usage: regs N"),
    ("wait 1 soon", "not a number of seconds", "for example"),
    ("wait 1 0.05", "node 1 still running", "`stop 1` stops it"),
    ("console status", "no console line", ""),
    ("break 1 'clock_intr", "cannot split the line", "close the quote"),
    ("help frobnicate", "unknown command 'frobnicate'", "`help` lists the commands"),
])
def test_bad_input_gets_an_error_and_a_hint(ctx: ConsoleContext, line: str, error: str, hint: str) -> None:
    ok, out = run(ctx, line)
    assert not ok
    assert out.startswith("error: ") and error in out.splitlines()[0], out
    assert hint in out


def test_a_bug_in_a_command_is_an_error_not_a_dead_console(ctx: ConsoleContext,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(ctx: ConsoleContext, args: list[str]) -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(commands, "COMMANDS", (commands.Command("boom", "boom", "fails", broken),
                                               *commands.COMMANDS))
    ok, out = run(ctx, "boom")
    assert not ok and "internal error: ZeroDivisionError: oops" in out
    assert "oops" in run(ctx, "log")[1]
    assert run(ctx, "sessions")[0]


def test_empty_lines_and_comments_do_nothing(ctx: ConsoleContext) -> None:
    assert run(ctx, "") == (True, "")
    assert run(ctx, "   # a comment") == (True, "")


# -- the watcher and the boot ------------------------------------------------------------------------


def test_the_watcher_announces_stops_and_sessions_it_did_not_make(ctx: ConsoleContext,
                                                                 machine: tuple[Loopback, Symbols]) -> None:
    lb, _ = machine
    said: list[str] = []
    ctx.notify = lambda renderable: said.append(str(renderable))
    watcher = NodeWatcher(ctx)
    asyncio.run(watcher.sweep())
    assert said == []
    lb.ok(3, p.Stop(p.ANY_GEN))                      # not the console: a gdb, a breakpoint
    ctx.mux.clients[1] = SessionInfo("127.0.0.1:5000", "tcp", None)  # type: ignore[arg-type]
    asyncio.run(watcher.sweep())
    assert said[0] == "gdb attached to node 1 (tcp 127.0.0.1:5000)"
    assert said[1].startswith("node 3 stopped (requested) at 0x") and len(said) == 2
    del ctx.mux.clients[1]
    asyncio.run(watcher.sweep())
    assert said[2:] == ["gdb detached from node 1 (tcp 127.0.0.1:5000)"]
    assert [e.source for e in ctx.log.tail(3)] == ["gdb", "node", "gdb"]


def test_boot_progress_follows_the_nodes_records() -> None:
    kernel = KernelRun(nodes=2)
    lb = Loopback(kernel.machine, run=True)
    ctx = make_context((lb, Symbols(kernel.elf)))
    first = asyncio.run(boot_state(ctx))
    assert first is not None and not first.done and first.barriers == [0, 0]
    assert asyncio.run(wait_for_boot(ctx)).startswith("booted: 2 nodes up")
    final = asyncio.run(boot_state(ctx))
    assert final is not None and final.done and final.steps == 8
    assert (final.up, final.barriers, final.stopped) == ([True, True], [3, 3], [])


# -- completion, the toolbar ----------------------------------------------------------------------


def completions(ctx: ConsoleContext, text: str) -> list[str]:
    return [c.text for c in ConsoleCompleter(ctx).get_completions(Document(text), None)]  # type: ignore[arg-type]


def test_completion_of_commands_nodes_and_symbols(ctx: ConsoleContext) -> None:
    assert completions(ctx, "st") == ["stop", "step", "stats"]
    assert completions(ctx, "") == commands.names()
    assert completions(ctx, "stop ") == ["all", "0", "1", "2", "3"]
    assert completions(ctx, "regs ") == ["0", "1", "2", "3"]
    assert completions(ctx, "break 2 clock_") == ["clock_intr", "clock_start"]
    assert completions(ctx, "x 1 this_") == ["this_node"]
    assert completions(ctx, "help no") == ["nodes"]
    assert completions(ctx, "nodes ") == []
    assert completions(ctx, "frob ") == []


def test_the_status_line_counts_states_and_names_stops(ctx: ConsoleContext) -> None:
    run(ctx, "nodes")
    assert "4 running, 0 stopped" in _plain(status_line(ctx))
    run(ctx, "stop 1")
    line = _plain(status_line(ctx))
    assert "3 running, 1 stopped [1: requested at " in line and "gdb: none" in line
    assert "requests" in line


def _plain(formatted: object) -> str:
    return "".join(text for _, text, *_ in formatted)  # type: ignore[attr-defined]


def test_counts_are_short() -> None:
    assert [count(n) for n in (None, 0, 999, 1000, 45_300, 123_456, 12_100_000, 3_400_000_000)] == \
        ["-", "0", "999", "1.0k", "45.3k", "123k", "12.1M", "3.4G"]


# -- the prompt, driven by keys ---------------------------------------------------------------------


def test_the_prompt_takes_keys_completes_and_quits(ctx: ConsoleContext) -> None:
    async def session() -> tuple[int, int]:
        with create_pipe_input() as keys:
            repl = Repl(ctx, input=keys, output=DummyOutput())
            running = asyncio.create_task(repl.run())
            keys.send_text("sta\t")             # Tab completes `stats` (the completer runs in the background)
            await asyncio.sleep(0.5)
            keys.send_text("\r")
            keys.send_text("nodez\r")           # a typo: an error, and the prompt goes on
            keys.send_text("stop 3\r")
            keys.send_text("\x03")              # Ctrl-C at the prompt clears the line
            keys.send_text("quit\r")
            status = await asyncio.wait_for(running, 30)
            return status, repl.failures

    status, failures = asyncio.run(session())
    printed = ctx.out.file.getvalue()  # type: ignore[attr-defined]
    assert "debug line, per node" in printed
    assert "unknown command 'nodez'" in printed
    assert "node 3 stopped (requested)" in printed
    assert ctx.quitting.is_set() and status == 0 and failures == 1


def test_ctrl_d_quits(ctx: ConsoleContext) -> None:
    async def session() -> int:
        with create_pipe_input() as keys:
            keys.send_text("\x04")
            return await asyncio.wait_for(Repl(ctx, input=keys, output=DummyOutput()).run(), 30)

    assert asyncio.run(session()) == 0 and ctx.quitting.is_set()


# -- scripts ----------------------------------------------------------------------------------------


def test_a_script_echoes_runs_everything_and_fails_if_anything_failed(ctx: ConsoleContext) -> None:
    script = io.StringIO("# check node 1\nstop 1\n\nregs 1\nbogus\ncont 1\n")
    assert asyncio.run(run_script(ctx, script)) == 1
    printed = ctx.out.file.getvalue()  # type: ignore[attr-defined]
    assert "mux> stop 1\nnode 1 stopped" in printed and "mux> regs 1" in printed
    assert "unknown command 'bogus'" in printed and "node 1 continued" in printed
    assert "check node 1" not in printed


def test_a_script_without_failures_exits_0_and_stops_at_quit(ctx: ConsoleContext) -> None:
    assert asyncio.run(run_script(ctx, io.StringIO("sessions\nquit\nbogus\n"))) == 0
    assert "bogus" not in ctx.out.file.getvalue()  # type: ignore[attr-defined]


# -- the console pass-through -----------------------------------------------------------------------


def test_pass_through_carries_keys_and_output_until_the_escape_key() -> None:
    machine_end, console_tty = os.openpty()     # the machine's console line
    user_end, terminal_tty = os.openpty()       # the user's terminal
    console = PsycheConsole.open(os.ttyname(console_tty))
    try:
        os.write(machine_end, b"boot complete\r\npsyche> ")
        deadline = time.monotonic() + 5
        while not console.transcript().endswith(b"psyche> "):
            assert time.monotonic() < deadline
            time.sleep(0.01)

        async def session() -> None:
            task = asyncio.create_task(passthrough(console, Terminal(terminal_tty, terminal_tty)))
            await _until(lambda: _drain(user_end), b"returns to the mux]\r\npsyche> ")
            os.write(user_end, b"ticks\r\x03")           # keys, Ctrl-C included, go to the line as typed
            await _until(lambda: _drain(machine_end), b"ticks\r\x03")
            os.write(machine_end, b"ticks (100 Hz)\r\n")
            await _until(lambda: _drain(user_end), b"ticks (100 Hz)")
            os.write(user_end, b"x\x1dy")                 # Ctrl-]: what comes before it is sent, not after
            await asyncio.wait_for(task, 5)
            assert await _until(lambda: _drain(machine_end), b"x") == b"x"

        asyncio.run(session())
    finally:
        console.close()
        for fd in (machine_end, console_tty, user_end, terminal_tty):
            os.close(fd)


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


async def _until(read: Callable[[], bytes], want: bytes, timeout: float = 5.0) -> bytes:
    """What `read` returned, gathered until it holds `want`."""
    got = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while want not in got:
        assert loop.time() < deadline, f"wanted {want!r}, got {got!r}"
        got += read()
        await asyncio.sleep(0.01)
    return got
