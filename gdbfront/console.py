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

PROMPT = "psyche> "


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
        """Wait until output since the last match matches pattern (a regular expression)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = regex.search(self.text(), self._mark)
                if match:
                    self._mark = match.end()
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConsoleTimeout(f"no {pattern!r} on the console within {timeout:g} s; console "
                                         f"tail:\n{self.text()[-3000:]}")
                self._changed.wait(remaining)

    def command(self, line: str, timeout: float = 30.0) -> str:
        """Type a monitor command; its output, up to the next prompt."""
        self.type(line + "\r")
        match = self.wait_for(re.escape(line) + r"\n((?:.|\n)*?)" + re.escape(PROMPT), timeout)
        return match.group(1)

    def close(self) -> None:
        self._closing = True
        self._thread.join(timeout=1)
        os.close(self._fd)
