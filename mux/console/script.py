"""The console without a person: commands from a file or from standard input.

Each command is echoed after the prompt, as a person would have seen it,
then its output; the run goes on after a failed command (so one transcript
shows everything) and its exit status is 1 if any command failed, 0 if none
did.  `quit` ends the run early; the end of the input ends it too.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import TextIO

from rich.text import Text

from mux.console import commands
from mux.console.context import ConsoleContext
from mux.console.repl import PROMPT


async def run_script(ctx: ConsoleContext, source: TextIO) -> int:
    """Run every line of `source` (read as it comes, so a pipe can feed it slowly)."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    # A daemon thread, not the executor: a read blocked on a silent pipe must not hold up the exit.
    threading.Thread(target=_read_lines, args=(source, loop, lines), name="console-script",
                     daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, ctx.quitting.set)
    failures = 0
    try:
        while not ctx.quitting.is_set():
            line = await _next(lines, ctx.quitting)
            if line is None:
                break
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            ctx.out.print(Text(PROMPT + line, style="bold"))
            outcome = await commands.execute(ctx, line)
            if outcome.output is not None:
                ctx.out.print(outcome.output)
            failures += not outcome.ok
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 1 if failures else 0


def _read_lines(source: TextIO, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    try:
        for line in source:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)
    except RuntimeError:  # the loop closed: the console has ended
        pass


async def _next(lines: asyncio.Queue[str | None], quitting: asyncio.Event) -> str | None:
    """The next line, or None at the end of the input or when told to quit meanwhile."""
    reading = asyncio.ensure_future(lines.get())
    told = asyncio.ensure_future(quitting.wait())
    done, _ = await asyncio.wait({reading, told}, return_when=asyncio.FIRST_COMPLETED)
    for future in (reading, told):
        future.cancel()
    return reading.result() if reading in done else None
