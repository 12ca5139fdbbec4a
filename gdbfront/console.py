"""The king's console line as a test sees it: everything captured, commands typed.

The machine's console is a pseudo-terminal whose slave the machine already
keeps raw.  A thread reads it from the moment the machine is up, so no
output is lost however long a test spends in gdb, and the whole console can
be attached to a failing test's report.  The kernel monitor's prompt makes
`command()` exact: type a line, return what came before the next prompt.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Callable

PROMPT = "psyche> "
#: A command that has had no answer at all for this long makes the tap ask why (`why_silent`).
SILENCE_CHECK = 2.0


class ConsoleTimeout(AssertionError):
    """The console did not show what was expected in time; carries its tail."""


class ConsoleTap:
    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self._data = bytearray()
        self._changed = threading.Condition()
        self._mark = 0  # where the next wait_for starts looking, in text()
        self._closing = False
        #: Says why the console may stay silent (the node running the monitor is stopped), or None;
        #: asked when a wait has seen nothing for SILENCE_CHECK seconds (PsycheMachine sets it).
        self.why_silent: Callable[[], str | None] | None = None
        self._thread = threading.Thread(target=self._read, name=f"console {path}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closing:
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                return  # the machine closed the line
            if not data:
                return
            with self._changed:
                self._data += data
                self._changed.notify_all()

    def text(self) -> str:
        """Everything the console printed so far, with CR LF as LF."""
        with self._changed:
            return self._data.decode(errors="replace").replace("\r\n", "\n")

    def type(self, text: str) -> None:
        """Send text to the console line, as typed on a terminal (end lines with \\r)."""
        os.write(self._fd, text.encode())

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait until output since the last match matches pattern (a regular expression).

        A wait that sees no output at all for SILENCE_CHECK seconds asks `why_silent`: if the
        console cannot answer (node 0 is stopped), it fails at once, saying so.
        """
        regex = re.compile(pattern)
        began = time.monotonic()
        deadline = began + timeout
        silence_checked = self.why_silent is None
        with self._changed:
            seen = len(self._data)
            while True:
                match = regex.search(self.text(), self._mark)
                if match:
                    self._mark = match.end()
                    return match
                now = time.monotonic()
                if not silence_checked and len(self._data) == seen and now - began >= SILENCE_CHECK:
                    silence_checked = True
                    assert self.why_silent is not None
                    why = self.why_silent()
                    if why is not None:
                        raise ConsoleTimeout(f"no {pattern!r} on the console: {why}")
                remaining = deadline - now
                if remaining <= 0:
                    raise ConsoleTimeout(f"no {pattern!r} on the console within {timeout:g} s; console "
                                         f"tail:\n{self.text()[-3000:]}")
                wait = remaining if silence_checked else min(remaining, began + SILENCE_CHECK - now)
                self._changed.wait(max(wait, 0.01))

    def command(self, line: str, timeout: float = 30.0, prompt: str = PROMPT) -> str:
        """Type a command (the monitor's, or another prompt's); its output, up to the next prompt."""
        self.type(line + "\r")
        match = self.wait_for(re.escape(line) + r"\n((?:.|\n)*?)" + re.escape(prompt), timeout)
        return match.group(1)

    def close(self) -> None:
        self._closing = True
        self._thread.join(timeout=1)
        os.close(self._fd)
