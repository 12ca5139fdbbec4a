"""`console`: the user's terminal joined to the Psyche console line, until Ctrl-].

Like telnet: the terminal is put in raw mode, so every key (Ctrl-C, Ctrl-U,
arrows) goes to the kernel monitor as typed, and the monitor's output comes
straight back; only the escape key, Ctrl-] (0x1d, which nothing on the
Psyche console uses), is kept, and brings the user back to the mux prompt.
"""

from __future__ import annotations

import asyncio
import os

from prompt_toolkit.input.vt100 import raw_mode

from mux.console.context import Terminal
from mux.console.line import PsycheConsole

ESCAPE = 0x1D
ESCAPE_NAME = "Ctrl-]"


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


async def passthrough(console: PsycheConsole, terminal: Terminal) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def show(data: bytes) -> None:
        if not done.is_set():
            _write_all(terminal.output_fd, data)

    def on_output(data: bytes) -> None:          # the console line's reader thread
        loop.call_soon_threadsafe(show, data)

    def on_keys() -> None:
        data = os.read(terminal.input_fd, 1024)
        cut = data.find(bytes((ESCAPE,)))
        if cut >= 0 or not data:
            data = data[:max(cut, 0)]
            done.set()
        if data:
            console.write(data)

    # Where the monitor is: the unfinished last line of its output, normally its prompt.
    tail = console.transcript().rsplit(b"\n", 1)[-1]
    _write_all(terminal.output_fd, f"[Psyche console on {console.url}; {ESCAPE_NAME} returns to the mux]\n"
               .encode() + tail)
    with raw_mode(terminal.input_fd):
        console.add_listener(on_output)
        loop.add_reader(terminal.input_fd, on_keys)
        try:
            await done.wait()
        finally:
            loop.remove_reader(terminal.input_fd)
            console.remove_listener(on_output)
    _write_all(terminal.output_fd, b"\n")
