"""The Psyche console line: the king's console, opened with pyserial, always being read.

The console must read the line from the moment the machine starts, whether
or not the user is looking at it: so the kernel never blocks on a full line,
so the pass-through can show where the monitor is (its prompt) when the user
enters it, and so a script can type a monitor command and get its answer.
A reader thread keeps a bounded transcript and hands new bytes to whoever
listens (the pass-through).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import cast

import serial

from mux.link import BytePort

#: The kernel monitor's prompt (psyche/kernel/monitor.c).
PROMPT = "psyche> "
TRANSCRIPT_LIMIT = 64 * 1024

Listener = Callable[[bytes], None]


class ConsoleTimeout(TimeoutError):
    """The monitor did not answer in time; carries what it said so far."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class PsycheConsole:
    def __init__(self, port: BytePort, url: str) -> None:
        self.port = port
        self.url = url
        self._transcript = bytearray()
        self._received = 0            # bytes ever received, so a caller can mark a point in time
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read_forever, name="psyche-console-reader", daemon=True)

    @classmethod
    def open(cls, url: str) -> PsycheConsole:
        try:
            port = serial.serial_for_url(url, timeout=0.05)
        except (serial.SerialException, ValueError) as e:
            raise ValueError(f"cannot open the console line {url!r}: {e}") from e
        # Typed as SerialBase, which does not declare in_waiting; every port class
        # serial_for_url makes (a device, socket://, rfc2217://, loop://) has it.
        console = cls(cast(BytePort, port), url)
        console._reader.start()
        return console

    def close(self) -> None:
        self._closing.set()
        if self._reader.is_alive():
            self._reader.join(1.0)
        self.port.close()

    def _read_forever(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, TypeError):
                # The machine went away (or is going): nothing more will come.
                if self._closing.wait(0.1):
                    return
                continue
            if not data:
                continue
            with self._lock:
                self._transcript += data
                del self._transcript[:-TRANSCRIPT_LIMIT]
                self._received += len(data)
                listeners = list(self._listeners)
            for listener in listeners:
                listener(data)

    # -- what others use ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def add_listener(self, listener: Listener) -> None:
        """`listener(bytes)` is called on the reader thread with every new piece of output."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def transcript(self) -> bytes:
        with self._lock:
            return bytes(self._transcript)

    def _since(self, mark: int) -> bytes:
        with self._lock:
            new = self._received - mark
            return bytes(self._transcript[-new:]) if new > 0 else b""

    async def converse(self, text: str, timeout: float = 5.0) -> str:
        """Type one line at the monitor and return its answer, up to the next prompt.

        The echo of the line is left out; line ends are plain newlines.
        """
        with self._lock:
            mark = self._received
        self.write(text.encode() + b"\r")
        deadline = time.monotonic() + timeout
        while True:
            output = self._since(mark).decode(errors="replace").replace("\r\n", "\n").replace("\r", "")
            _echo, _, rest = output.partition("\n")
            if rest.endswith(PROMPT):
                return rest[: -len(PROMPT)]
            if time.monotonic() > deadline:
                raise ConsoleTimeout(f"the monitor did not answer {text!r} within {timeout:g} s", output)
            await asyncio.sleep(0.02)
