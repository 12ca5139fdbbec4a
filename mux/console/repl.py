"""The interactive console: a prompt_toolkit prompt in the mux's asyncio loop.

The prompt runs with `prompt_async`, so gdb sessions, the link and the
watcher go on while the user types; `patch_stdout` lets the watcher's news
(a node stopped at a breakpoint, a gdb attached) appear above the prompt.
The bottom toolbar is the live view: it redraws twice a second from what
the watcher last saw, without asking the line anything itself.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from rich.console import RenderableType
from rich.text import Text

from lld import protocol as p
from mux.console import commands
from mux.console.context import CommandError, ConsoleContext
from mux.console.watch import NodeWatcher

PROMPT = "mux> "


class ConsoleCompleter(Completer):
    """Commands, then each argument as its command says: node numbers (with `all`), symbols, commands."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if text.endswith(" ") or not words:
            words.append("")
        word = words[-1]
        if len(words) == 1:
            for command in commands.COMMANDS:
                if command.name.startswith(word):
                    yield Completion(command.name, -len(word), display_meta=command.summary)
            return
        try:
            command = commands.find(words[0])
        except CommandError:
            return
        position = len(words) - 2
        kind = command.completes[position] if position < len(command.completes) else ""
        for candidate, meta in self._candidates(kind):
            if candidate.startswith(word):
                yield Completion(candidate, -len(word), display_meta=meta)

    def _candidates(self, kind: str) -> Iterable[tuple[str, str]]:
        ctx = self.ctx
        if kind in ("node", "nodes"):
            if kind == "nodes":
                yield "all", "every node"
            for node in range(ctx.nodes):
                status = ctx.statuses.get(node)
                state = p.STATE_NAMES.get(status.state, "") if status else ""
                yield str(node), state
        elif kind == "symbol" and ctx.symbols is not None:
            for name in ctx.symbols.names():
                yield name, ""
        elif kind == "command":
            for command in commands.COMMANDS:
                yield command.name, command.summary


def status_line(ctx: ConsoleContext) -> FormattedText:
    """The toolbar: node states, where stopped nodes are, gdb sessions, the line's health."""
    if ctx.mux.ended is not None:
        return FormattedText([("bold fg:ansired", f" {ctx.mux.ended}"),
                              ("", " | `log` says what happened, Ctrl-D quits ")])
    states = [ctx.statuses.get(node) for node in range(ctx.nodes)]
    running = sum(1 for s in states if s is not None and s.running)
    stopped = [node for node, s in enumerate(states) if s is not None and s.stopped]
    parts: list[tuple[str, str]] = [("bold", f" {ctx.nodes} nodes: "), ("", f"{running} running")]
    parts.append(("bold fg:ansiyellow" if stopped else "", f", {len(stopped)} stopped"))
    for node in stopped[:3]:
        status = states[node]
        assert status is not None
        where = ctx.locate(node, status.pc).where or f"{status.pc:#x}"
        parts.append(("", f" [{node}: {p.REASON_NAMES.get(status.reason, '?')} at {where}]"))
    if len(stopped) > 3:
        parts.append(("", " ..."))
    sessions = sorted(ctx.mux.clients)
    parts.append(("", f" | gdb: {', '.join(f'node {n}' for n in sessions) if sessions else 'none'}"))
    link = ctx.link.stats.values()
    retx = sum(s.retransmissions for s in link)
    failures = sum(s.failures for s in link)
    parts.append(("fg:ansired" if failures else "",
                  f" | line: {sum(s.requests for s in link)} requests, {retx} retransmitted"
                  + (f", {failures} failed" if failures else "")))
    if getattr(ctx.link, "silent", False):
        parts.append(("bold fg:ansired", ", SILENT"))
    parts.append(("", " | Tab completes, `help`, Ctrl-D quits "))
    return FormattedText(parts)


class Repl:
    """The prompt loop.  `input`/`output` are for tests (prompt_toolkit's pipe input, DummyOutput)."""

    def __init__(self, ctx: ConsoleContext, history: History | None = None, *,
                 input: Input | None = None, output: Output | None = None) -> None:
        self.ctx = ctx
        self.session: PromptSession[str] = PromptSession(
            PROMPT, history=history or InMemoryHistory(), completer=ConsoleCompleter(ctx),
            complete_while_typing=False, bottom_toolbar=lambda: status_line(ctx), refresh_interval=0.5,
            input=input, output=output)
        self.failures = 0
        self._at_prompt = False
        self._held: list[RenderableType] = []
        self._command: asyncio.Task[commands.Outcome] | None = None

    @staticmethod
    def history_file(path: Path) -> History:
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileHistory(str(path))

    def notify(self, renderable: RenderableType) -> None:
        """News from the watcher: shown above the prompt, or after the command that is running."""
        if self._at_prompt:
            self.ctx.out.print(renderable)
        else:
            self._held.append(renderable)

    def _quit_now(self) -> None:
        """SIGTERM or SIGHUP (the terminal closed): leave now, whatever the console was doing."""
        self.ctx.quitting.set()
        self._interrupt()
        if self.session.app.is_running:
            self.session.app.exit(exception=EOFError())

    def _interrupt(self) -> None:
        """Ctrl-C outside the prompt cancels the running command (a long read, a wait), nothing more."""
        if self._command is not None:
            self._command.cancel()

    async def run(self) -> int:
        """Prompt and run commands until `quit`, Ctrl-D, SIGTERM or SIGHUP.

        The status is 0: a person's typing errors were answered, they are not failures.
        """
        ctx = self.ctx
        ctx.notify = self.notify
        loop = asyncio.get_running_loop()
        handlers = {signal.SIGTERM: self._quit_now, signal.SIGHUP: self._quit_now,
                    signal.SIGINT: self._interrupt}
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        watcher = NodeWatcher(ctx)
        watcher.start()
        try:
            while not ctx.quitting.is_set():
                try:
                    self._at_prompt = True
                    with patch_stdout(raw=True):
                        # The console keeps SIGINT (Ctrl-C cancels a command) and the loop's
                        # error handler (errors go to `log`) for itself, prompt or not.
                        line = await self.session.prompt_async(handle_sigint=False,
                                                               set_exception_handler=False)
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    line = "quit"
                finally:
                    self._at_prompt = False
                await self._run_one(line)
                for renderable in self._held:
                    ctx.out.print(renderable)
                self._held.clear()
        finally:
            await watcher.stop()
            for sig in handlers:
                loop.remove_signal_handler(sig)
        return 0

    async def _run_one(self, line: str) -> None:
        self._command = asyncio.create_task(commands.execute(self.ctx, line))
        try:
            outcome = await self._command
        except asyncio.CancelledError:
            outcome = commands.Outcome(False, Text("interrupted", style="dim"))
        finally:
            self._command = None
        if outcome.output is not None:
            self.ctx.out.print(outcome.output)
        self.failures += not outcome.ok
