"""Host ends of the simulated serial lines.

A simulated UART talks to the outside world through a `HostLine`: a byte stream
that a program on the host (a terminal, a debugger front end, a test using
pyserial) opens like a real serial port.  The simulator is single-threaded and
must never stall on a slow or absent host, so every line here is non-blocking:
input is polled, and output is queued inside the line and handed to the OS
only as fast as the OS (and the optional baud throttle) accepts it.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import termios
import time
from abc import ABC, abstractmethod
from pathlib import Path

#: Largest read the host side is asked for at once, unless the caller asks for less.
DEFAULT_READ_SIZE = 65536

#: Default cap on output queued inside a line while the host side is slow;
#: beyond it new output is dropped (and counted) rather than growing without bound.
DEFAULT_MAX_PENDING = 256 * 1024

# Largest chunk handed to one OS write, so a large backlog is not copied whole each time.
_SEND_CHUNK = 65536

# A throttled line may send this many seconds' worth of bytes in one burst,
# so that a simulator calling flush_some() every few milliseconds still reaches the full rate.
_BURST_SECONDS = 0.1


class HostLine(ABC):
    """One serial line as the host sees it: a non-blocking byte stream.

    The defaults suit in-memory lines: nothing to select() on, no queued output.
    """

    @abstractmethod
    def describe(self) -> str:
        """What a user passes to pyserial to open this line (a pty path or a socket:// URL)."""

    def fileno(self) -> int | None:
        """A descriptor that select() reports readable when read_available() has something to do.

        None when there is nothing to wait on.
        """
        return None

    @abstractmethod
    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        """Return up to max_bytes of host input without blocking; b"" when there is none.

        Bytes beyond max_bytes stay with the host (in the OS), so a caller that
        only asks for what it has room for gets the OS's flow control for free.
        """

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send data towards the host without ever blocking (best effort)."""

    def pending_output(self) -> int:
        """Bytes accepted by write() but not yet handed to the OS."""
        return 0

    def flush_some(self) -> None:
        """Hand as much queued output to the OS as it (and the throttle) accepts now."""
        return None  # lines that never queue output have nothing to flush

    def output_fileno(self) -> int | None:
        """A descriptor that select() reports writable when flush_some() can send more, or None.

        None when nothing waits to go out, or when only time (a throttle) lets it go.
        """
        return None

    def close(self) -> None:
        """Release OS resources; the line is unusable afterwards."""
        return None  # lines without OS resources have nothing to release


class NullLine(HostLine):
    """A line with nothing on the far end: output vanishes, input never arrives."""

    def describe(self) -> str:
        return "null"

    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        pass


class BufferLine(HostLine):
    """An in-memory line, for tests and for capturing a console inside the simulator."""

    def __init__(self) -> None:
        self._input = bytearray()
        self._output = bytearray()

    def describe(self) -> str:
        return "buffer"

    def feed(self, data: bytes) -> None:
        """Make data available to read_available(), as if the host had typed it."""
        self._input += data

    def take_output(self) -> bytes:
        """Return and forget everything written so far."""
        out = bytes(self._output)
        self._output.clear()
        return out

    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        data = bytes(self._input[:max_bytes])
        del self._input[:max_bytes]
        return data

    def write(self, data: bytes) -> None:
        self._output += data


class _Throttle:
    """Token bucket limiting output to baud/10 bytes per second (8N1 framing: 10 bits a byte)."""

    def __init__(self, baud: int) -> None:
        if baud <= 0:
            raise ValueError(f"baud must be positive, not {baud}")
        self._rate = baud / 10
        self._burst = max(1.0, self._rate * _BURST_SECONDS)
        self._credit = self._burst
        self._stamp = time.monotonic()

    def allowance(self) -> int:
        """Whole bytes that may be sent now."""
        now = time.monotonic()
        self._credit = min(self._burst, self._credit + (now - self._stamp) * self._rate)
        self._stamp = now
        return int(self._credit)

    def spend(self, sent: int) -> None:
        self._credit -= sent


class _StreamLine(HostLine):
    """Output queueing and throttling shared by the lines backed by an OS descriptor."""

    def __init__(self, baud: int | None, max_pending: int) -> None:
        self._out = bytearray()
        self._max_pending = max_pending
        self._throttle = _Throttle(baud) if baud is not None else None
        #: Output bytes thrown away because the queue was full or nobody was listening.
        self.dropped_output = 0

    @abstractmethod
    def _send(self, data: bytes) -> int:
        """Write data to the OS without blocking; return how many bytes it took."""

    def write(self, data: bytes) -> None:
        room = self._max_pending - len(self._out)
        self._out += data[:room]
        self.dropped_output += max(0, len(data) - room)
        self.flush_some()

    def pending_output(self) -> int:
        return len(self._out)

    def output_fileno(self) -> int | None:
        if not self._out or self._throttle is not None:
            return None
        return self._output_fd()

    def _output_fd(self) -> int | None:
        """The descriptor output is written to, or None if there is none now."""
        return None

    def flush_some(self) -> None:
        budget = len(self._out)
        if self._throttle is not None:
            budget = min(budget, self._throttle.allowance())
        while budget > 0:
            sent = self._send(bytes(self._out[: min(budget, _SEND_CHUNK)]))
            if sent == 0:
                break
            del self._out[:sent]
            budget -= sent
            if self._throttle is not None:
                self._throttle.spend(sent)

    def _discard_output(self) -> None:
        self.dropped_output += len(self._out)
        self._out.clear()


def _make_raw(fd: int) -> None:
    """Put a tty in raw mode (like cfmakeraw): 8-bit clean, no echo, no signals, no CR/LF games."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
    iflag &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
        | termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF | termios.IXANY
    )
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])


class PtyLine(_StreamLine):
    """A pseudo-terminal: the host opens the slave path as if it were /dev/ttyS0.

    The simulator keeps the master, and also keeps its own descriptor on the
    slave: without it, the master reads EIO (Linux) from the moment the host
    closes the port until it reopens it.  Output written while no host program
    has the port open collects in the kernel's tty buffer and then in our
    queue; pyserial discards the kernel part when it opens the port.

    `symlink`, if given, is (re)pointed at the slave so users get a stable
    name; it is removed on close() if it still points at this line.
    """

    def __init__(
        self,
        symlink: Path | None = None,
        baud: int | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if symlink is not None and symlink.exists() and not symlink.is_symlink():
            raise FileExistsError(f"{symlink} exists and is not a symlink; not replacing it")
        super().__init__(baud, max_pending)
        self._master, self._slave = os.openpty()
        os.set_blocking(self._master, False)
        _make_raw(self._slave)
        self.path = os.ttyname(self._slave)
        self.symlink = symlink
        if symlink is not None:
            try:
                self._link(symlink)
            except OSError:
                self.close()
                raise

    def _link(self, symlink: Path) -> None:
        """Point symlink at the slave atomically, so a user never sees a missing name."""
        staging = symlink.with_name(f".{symlink.name}.{os.getpid()}")
        staging.unlink(missing_ok=True)
        staging.symlink_to(self.path)
        os.replace(staging, symlink)

    def describe(self) -> str:
        return self.path

    def fileno(self) -> int | None:
        return self._master

    def _output_fd(self) -> int | None:
        return self._master

    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        if max_bytes <= 0:
            return b""
        try:
            return os.read(self._master, max_bytes)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EIO:  # no slave open: nobody is there to send anything
                return b""
            raise

    def _send(self, data: bytes) -> int:
        try:
            return os.write(self._master, data)
        except BlockingIOError:
            return 0

    def close(self) -> None:
        link = self.symlink
        if link is not None and link.is_symlink() and os.readlink(link) == self.path:
            link.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1


class TcpLine(_StreamLine):
    """A listening TCP socket; the host connects with pyserial's socket:// URL.

    One client at a time: a newly connecting client replaces the current one,
    whose connection is closed (so a user can always get the console back, even
    from a terminal that died without closing its socket).  Output queued for
    a client that goes away is discarded, and output written while no client
    is connected is dropped, as on a serial line with nothing plugged in.
    Both count in `dropped_output`.

    fileno() is an epoll descriptor covering both the listening socket and the
    client, so one select() notices new connections as well as new data
    (Linux only).  host is an IPv4 address or host name; port 0 picks a free port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        baud: int | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        super().__init__(baud, max_pending)
        self._listener = socket.create_server((host, port))
        self._listener.setblocking(False)
        self._client: socket.socket | None = None
        self._poller = select.epoll()
        self._poller.register(self._listener, select.EPOLLIN)
        self.host, self.port = self._listener.getsockname()[:2]

    def describe(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def fileno(self) -> int | None:
        return self._poller.fileno()

    def _output_fd(self) -> int | None:
        return None if self._client is None else self._client.fileno()

    @property
    def connected(self) -> bool:
        """Whether a client is connected (as of the last accept check)."""
        self._accept()
        return self._client is not None

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except BlockingIOError:
                return
            self._drop_client()
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._poller.register(client, select.EPOLLIN)
            self._client = client

    def _drop_client(self) -> None:
        if self._client is not None:
            self._poller.unregister(self._client)
            self._client.close()
            self._client = None
        self._discard_output()

    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        self._accept()
        if self._client is None or max_bytes <= 0:
            return b""
        try:
            data = self._client.recv(max_bytes)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:  # orderly shutdown or reset by the client
            self._drop_client()
        return data

    def write(self, data: bytes) -> None:
        self._accept()
        if self._client is None:
            self.dropped_output += len(data)
            return
        super().write(data)

    def flush_some(self) -> None:
        self._accept()
        super().flush_some()

    def _send(self, data: bytes) -> int:
        if self._client is None:
            return 0
        try:
            return self._client.send(data)
        except BlockingIOError:
            return 0
        except OSError:  # client went away mid-stream
            self._drop_client()
            return 0

    def close(self) -> None:
        self._drop_client()
        self._poller.close()
        self._listener.close()


def open_host_line(spec: str, *, baud: int | None = None) -> HostLine:
    """Build a line from a command-line spec: 'pty', 'tcp:PORT', 'tcp:HOST:PORT' or 'null'.

    baud throttles output of pty and tcp lines; a null line has no throughput to limit.
    """
    usage = "expected 'pty', 'tcp:PORT', 'tcp:HOST:PORT' or 'null'"
    if spec == "pty":
        return PtyLine(baud=baud)
    if spec == "null":
        return NullLine()
    kind, _, rest = spec.partition(":")
    if kind != "tcp" or not rest:
        raise ValueError(f"unknown host line {spec!r}: {usage}")
    host, _, port_text = rest.rpartition(":")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad port in host line {spec!r}: {port_text!r} is not 0..65535; {usage}")
    if ":" in rest and not host:
        raise ValueError(f"empty host in host line {spec!r}: {usage}")
    return TcpLine(host or "127.0.0.1", int(port_text), baud=baud)
