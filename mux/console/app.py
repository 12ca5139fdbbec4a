"""The console as `psyche up` runs it: machine lines, mux, symbols, boot, then prompt or script.

`psyche up` owns the machine process; this owns everything the console
opened (the console line, the mux and its link) and closes all of it on the
way out, whatever way that is: `quit`, Ctrl-D, the end of a script, SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from lld import protocol as p
from mux.console.context import ConsoleContext, EventLog, Terminal
from mux.console.line import PsycheConsole
from mux.console.repl import Repl
from mux.console.script import run_script
from mux.console.symbols import Symbols
from mux.console.watch import wait_for_boot
from psyche.commands.mux_cmd import attach_help, start_mux

#: Where the prompt keeps its history (override with PSYCHE_CONSOLE_HISTORY).
HISTORY = "~/.psyche_console_history"


def _follow_machine_stderr(process: subprocess.Popen[str], log: EventLog) -> None:
    """The machine's own messages ("node 2 stopped ...; waiting for a debugger") go to the log."""
    stream = process.stderr
    if stream is None:
        return

    def read() -> None:
        for line in stream:   # (how the process ended is psyche up's to say: MachineProcess.watch)
            log.add("machine", line.rstrip())

    threading.Thread(target=read, name="machine-stderr", daemon=True).start()


def _log_loop_errors(log: EventLog) -> None:
    """Errors in background tasks (a gdb connection's handler) go to `log`, not across the prompt.

    This includes the connection handlers of gdbs still attached when the console quits, which
    asyncio cancels on the way out and (on Python 3.11) reports as errors.
    """
    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        log.add("mux", context.get("message", "") + (f": {type(error).__name__}: {error}" if error else ""))

    asyncio.get_running_loop().set_exception_handler(handler)


def _screen(interactive: bool) -> Console:
    if interactive or sys.stdout.isatty():
        return Console(highlight=False)
    # A script's transcript: no colours, and wide enough that tables do not wrap in a log file.
    return Console(highlight=False, width=int(os.environ.get("COLUMNS", 160)), no_color=True)


async def run_console(args: argparse.Namespace, kernel: Path, process: subprocess.Popen[str],
                      console_url: str, debug_line: str,
                      watch: Callable[[Callable[[str], None]], None] | None = None) -> int:
    """The console on a running machine process; the exit status for `psyche up`.

    `watch(ended)` has `ended` called, in the event loop, with how the machine process
    ended, if it ends by itself (MachineProcess.watch).
    """
    script: TextIO | None = None
    if args.console_script is not None:
        script = open(args.console_script)     # closed below, with everything else the console opened
    elif not sys.stdin.isatty():
        script = sys.stdin
    out = _screen(interactive=script is None)
    log = EventLog()
    _log_loop_errors(log)
    _follow_machine_stderr(process, log)
    line = PsycheConsole.open(console_url)    # first, to miss as little of the boot as possible
    try:
        mux = await start_mux(debug_line, args, kernel)
        try:
            description = await mux.link.ok(0, p.Describe())
            assert isinstance(description, p.MachineDescription)
            symbols = _symbols(kernel, log)
            terminal = Terminal(sys.stdin.fileno(), sys.stdout.fileno()) if script is None else None
            ctx = ConsoleContext(link=mux.link, mux=mux, description=description, symbols=symbols,
                                 console=line, terminal=terminal, out=out, log=log)
            _tell_what_the_mux_does(ctx, interactive=script is None)
            if watch is not None:
                watch(mux.end)
            out.print(f"psyche up: machine pid {process.pid}; console {console_url}\n"
                      + attach_help(mux, str(kernel)).rstrip(), highlight=False)
            booted = await wait_for_boot(ctx)
            log.add("machine", booted)
            out.print(booted)
            if script is not None:
                status = await run_script(ctx, script)
            else:
                history = Path(os.environ.get("PSYCHE_CONSOLE_HISTORY", HISTORY)).expanduser()
                status = await Repl(ctx, Repl.history_file(history)).run()
            return 1 if mux.ended is not None else status   # the machine died under the console
        finally:
            await mux.close()
            await mux.link.close()
    finally:
        line.close()
        if script is not None and script is not sys.stdin:
            script.close()


def _tell_what_the_mux_does(ctx: ConsoleContext, interactive: bool) -> None:
    """The mux's own events (the line silent, a session dropped, the machine gone) go to `log`; the
    ones that need the user go to the screen too: above the prompt, or into a script's transcript."""
    def tell(source: str, text: str) -> None:
        ctx.log.add(source, text)
        if source == "gdb":
            return   # (the watcher announces sessions coming and going)
        message = Text(text, style="bold red" if ctx.mux.ended is not None else "yellow")
        if ctx.mux.ended is not None:
            message.append("\n  `log` shows the machine's last messages; `quit` leaves", style="dim")
        if interactive:
            ctx.notify(message)
        else:
            ctx.out.print(message)

    ctx.mux.add_listener(tell)


def _symbols(kernel: Path, log: EventLog) -> Symbols | None:
    try:
        return Symbols(kernel)
    except Exception as e:  # noqa: BLE001 - a console without symbols is still a console
        log.add("console", f"no symbols from {kernel}: {e}")
        return None
