"""Host lines must be openable by pyserial, 8-bit clean, and never block the simulator."""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from psyche.machine.hostline import (
    BufferLine,
    HostLine,
    NullLine,
    PtyLine,
    TcpLine,
    open_host_line,
)

ALL_BYTES = bytes(range(256))


def pump_until(line: HostLine, want: int, deadline: float = 5.0) -> bytes:
    """Collect at least `want` bytes of host input from line, flushing its output meanwhile."""
    got = bytearray()
    end = time.monotonic() + deadline
    while len(got) < want and time.monotonic() < end:
        line.flush_some()
        got += line.read_available()
        if len(got) < want:
            time.sleep(0.002)
    return bytes(got)


def read_host(ser: serial.SerialBase, want: int, line: HostLine, deadline: float = 5.0) -> bytes:
    """Read `want` bytes on the host side, letting the line flush its queue meanwhile."""
    got = bytearray()
    end = time.monotonic() + deadline
    saved, ser.timeout = ser.timeout, 0  # poll: take whatever has arrived
    try:
        while len(got) < want and time.monotonic() < end:
            line.flush_some()
            chunk = ser.read(want - len(got))
            got += chunk
            if not chunk:
                time.sleep(0.001)
    finally:
        ser.timeout = saved
    return bytes(got)


def wait_for(cond: Callable[[], bool], deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def queued_input(fd: int) -> int:
    """Bytes waiting to be read from fd, without reading them."""
    (count,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))
    return int(count)


# ---- pty ---------------------------------------------------------------------


@pytest.fixture
def pty_line() -> Iterator[PtyLine]:
    line = PtyLine()
    yield line
    line.close()


@pytest.mark.timeout(10)
def test_pty_describe_is_openable_tty(pty_line: PtyLine) -> None:
    path = pty_line.describe()
    assert path.startswith("/dev/")
    assert os.path.exists(path)
    assert pty_line.fileno() is not None


@pytest.mark.timeout(10)
def test_pty_is_raw_before_anyone_opens_it(pty_line: PtyLine) -> None:
    fd = os.open(pty_line.describe(), os.O_RDWR | os.O_NOCTTY)
    try:
        iflag, oflag, _, lflag, _, _, _ = termios.tcgetattr(fd)
    finally:
        os.close(fd)
    assert not iflag & (termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON)
    assert not oflag & termios.OPOST
    assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)


@pytest.mark.timeout(10)
def test_a_pty_with_output_the_os_could_not_take_is_waited_on_for_writing(pty_line: PtyLine) -> None:
    far = os.open(pty_line.describe(), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        assert pty_line.output_fileno() is None                  # nothing queued: nothing to wait for
        pty_line.write(bytes(64 * 1024))                          # more than a pty holds
        assert pty_line.pending_output() > 0
        fd = pty_line.output_fileno()
        assert fd == pty_line.fileno()
        got = 0
        while pty_line.pending_output():
            try:
                got += len(os.read(far, 65536))                   # the far end reads...
            except BlockingIOError:
                pass
            select.select([], [fd], [], 0.1)                      # ...and the line can go on
            pty_line.flush_some()
        assert pty_line.output_fileno() is None
    finally:
        os.close(far)


@pytest.mark.timeout(10)
def test_pty_both_directions_binary_clean(pty_line: PtyLine) -> None:
    with serial.Serial(pty_line.describe(), timeout=0.2) as ser:
        ser.write(ALL_BYTES)
        assert pump_until(pty_line, 256) == ALL_BYTES

        pty_line.write(ALL_BYTES)
        assert read_host(ser, 256, pty_line) == ALL_BYTES
        # Raw mode: no echo of what the host sent, no CR/LF translation either way.
        assert pty_line.read_available() == b""
        ser.write(b"a\r\nb\n")
        assert pump_until(pty_line, 5) == b"a\r\nb\n"
        pty_line.write(b"c\nd\r")
        assert read_host(ser, 4, pty_line) == b"c\nd\r"


@pytest.mark.timeout(10)
def test_pty_no_input_reads_empty(pty_line: PtyLine) -> None:
    assert pty_line.read_available() == b""
    with serial.Serial(pty_line.describe(), timeout=0.1):
        assert pty_line.read_available() == b""
    assert pty_line.read_available() == b""


@pytest.mark.timeout(10)
def test_pty_read_respects_max_bytes(pty_line: PtyLine) -> None:
    with serial.Serial(pty_line.describe(), timeout=0.2) as ser:
        ser.write(b"0123456789")
        ser.flush()
        fd = pty_line.fileno()
        assert fd is not None
        wait_for(lambda: queued_input(fd) == 10)
        assert pty_line.read_available(4) == b"0123"
        assert pty_line.read_available(0) == b""
        assert pump_until(pty_line, 6) == b"456789"


@pytest.mark.timeout(10)
def test_pty_host_can_close_and_reopen(pty_line: PtyLine) -> None:
    for round_ in range(3):
        with serial.Serial(pty_line.describe(), timeout=0.2) as ser:
            message = f"round {round_}".encode()
            ser.write(message)
            assert pump_until(pty_line, len(message)) == message
            pty_line.write(message)
            assert read_host(ser, len(message), pty_line) == message
        # Host side closed: the simulator must see "no data", not an error.
        assert pty_line.read_available() == b""


@pytest.mark.timeout(10)
def test_pty_large_write_does_not_block(pty_line: PtyLine) -> None:
    payload = ALL_BYTES * 1024  # 256 KiB, far more than the kernel's tty buffer
    with serial.Serial(pty_line.describe(), timeout=0.2) as ser:
        start = time.monotonic()
        pty_line.write(payload)
        assert time.monotonic() - start < 1.0
        assert pty_line.pending_output() > 0
        assert read_host(ser, len(payload), pty_line, deadline=8.0) == payload
    assert pty_line.pending_output() == 0
    assert pty_line.dropped_output == 0


@pytest.mark.timeout(10)
def test_pty_output_beyond_queue_cap_is_dropped_and_counted() -> None:
    line = PtyLine(max_pending=1000)
    try:
        line.write(bytes(1_000_000))  # nobody reads: kernel buffer fills, then our queue
        assert line.pending_output() <= 1000
        assert line.dropped_output > 0
    finally:
        line.close()


@pytest.mark.timeout(10)
def test_pty_symlink(tmp_path: Path) -> None:
    link = tmp_path / "ttyPSY0"
    line = PtyLine(symlink=link)
    try:
        assert os.readlink(link) == line.describe()
        with serial.Serial(str(link), timeout=0.2) as ser:
            ser.write(b"via link")
            assert pump_until(line, 8) == b"via link"
    finally:
        line.close()
    assert not link.exists() and not link.is_symlink()


@pytest.mark.timeout(10)
def test_pty_symlink_replaces_stale_link_but_not_a_file(tmp_path: Path) -> None:
    link = tmp_path / "console"
    link.symlink_to("/nonexistent/old-pty")
    line = PtyLine(symlink=link)
    try:
        assert os.readlink(link) == line.describe()
    finally:
        line.close()

    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(FileExistsError):
        PtyLine(symlink=regular)
    assert regular.read_text() == "keep me"


@pytest.mark.timeout(10)
def test_pty_baud_throttles_output() -> None:
    line = PtyLine(baud=9600)  # 960 bytes/s, bursts of 96
    try:
        with serial.Serial(line.describe(), timeout=0.2) as ser:
            start = time.monotonic()
            line.write(bytes(480))
            assert line.pending_output() >= 480 - 96 - 10
            assert read_host(ser, 480, line) == bytes(480)
            assert time.monotonic() - start >= 0.3  # (480 - 96) / 960 = 0.4 s
    finally:
        line.close()


# ---- tcp ---------------------------------------------------------------------


@pytest.fixture
def tcp_line() -> Iterator[TcpLine]:
    line = TcpLine(port=0)
    yield line
    line.close()


def connect(line: TcpLine) -> serial.SerialBase:
    ser = serial.serial_for_url(line.describe(), timeout=0.2)
    wait_for(lambda: line.connected)
    return ser


@pytest.mark.timeout(10)
def test_tcp_describe_gives_real_port(tcp_line: TcpLine) -> None:
    assert tcp_line.port != 0
    assert tcp_line.describe() == f"socket://127.0.0.1:{tcp_line.port}"
    assert not tcp_line.connected


@pytest.mark.timeout(10)
def test_tcp_both_directions_binary_clean(tcp_line: TcpLine) -> None:
    ser = connect(tcp_line)
    try:
        ser.write(ALL_BYTES)
        assert pump_until(tcp_line, 256) == ALL_BYTES
        tcp_line.write(ALL_BYTES + b"\r\n")
        assert read_host(ser, 258, tcp_line) == ALL_BYTES + b"\r\n"
    finally:
        ser.close()


@pytest.mark.timeout(10)
def test_tcp_output_without_client_is_dropped(tcp_line: TcpLine) -> None:
    tcp_line.write(b"nobody hears this")
    assert tcp_line.pending_output() == 0
    assert tcp_line.dropped_output == len(b"nobody hears this")
    ser = connect(tcp_line)
    try:
        tcp_line.write(b"X")
        assert read_host(ser, 1, tcp_line) == b"X"
        assert ser.read(10) == b""
    finally:
        ser.close()


@pytest.mark.timeout(10)
def test_tcp_client_reconnect(tcp_line: TcpLine) -> None:
    for round_ in range(3):
        ser = connect(tcp_line)
        message = f"round {round_}".encode()
        ser.write(message)
        assert pump_until(tcp_line, len(message)) == message
        tcp_line.write(message)
        assert read_host(ser, len(message), tcp_line) == message
        ser.close()
        wait_for(lambda: tcp_line.read_available() == b"" and not tcp_line.connected)


@pytest.mark.timeout(10)
def test_tcp_new_client_replaces_old(tcp_line: TcpLine) -> None:
    old = socket.create_connection(("127.0.0.1", tcp_line.port))
    wait_for(lambda: tcp_line.connected)
    new = serial.serial_for_url(tcp_line.describe(), timeout=0.2)
    old.setblocking(False)

    def old_closed() -> bool:
        tcp_line.read_available()  # lets the line accept the new client
        try:
            return old.recv(1) == b""
        except BlockingIOError:
            return False

    try:
        wait_for(old_closed)
        tcp_line.write(b"to new")
        assert read_host(new, 6, tcp_line) == b"to new"
    finally:
        old.close()
        new.close()


@pytest.mark.timeout(10)
def test_tcp_fileno_wakes_select_for_connection_and_data(tcp_line: TcpLine) -> None:
    fd = tcp_line.fileno()
    assert fd is not None
    assert select.select([fd], [], [], 0)[0] == []
    client = socket.create_connection(("127.0.0.1", tcp_line.port))
    try:
        assert select.select([fd], [], [], 5)[0] == [fd]
        assert tcp_line.read_available() == b""  # accepts the connection
        assert select.select([fd], [], [], 0)[0] == []
        client.sendall(b"hi")
        assert select.select([fd], [], [], 5)[0] == [fd]
        assert pump_until(tcp_line, 2) == b"hi"
    finally:
        client.close()


@pytest.mark.timeout(10)
def test_tcp_large_write_does_not_block(tcp_line: TcpLine) -> None:
    payload = ALL_BYTES * 1024
    ser = connect(tcp_line)
    try:
        start = time.monotonic()
        tcp_line.write(payload)
        assert time.monotonic() - start < 1.0
        assert read_host(ser, len(payload), tcp_line, deadline=8.0) == payload
    finally:
        ser.close()


# ---- in-memory lines and specs ----------------------------------------------------


def test_null_line() -> None:
    line = NullLine()
    line.write(b"gone")
    assert line.read_available() == b""
    assert line.fileno() is None
    assert line.pending_output() == 0
    assert line.describe() == "null"
    line.flush_some()
    line.close()


def test_buffer_line() -> None:
    line = BufferLine()
    assert line.read_available() == b""
    line.feed(b"abc")
    line.feed(b"def")
    assert line.read_available(2) == b"ab"
    assert line.read_available() == b"cdef"
    line.write(b"x")
    line.write(b"yz")
    assert line.take_output() == b"xyz"
    assert line.take_output() == b""
    assert line.fileno() is None


@pytest.mark.timeout(10)
def test_open_host_line_specs() -> None:
    for spec, kind in [("null", NullLine), ("pty", PtyLine), ("tcp:0", TcpLine),
                       ("tcp:127.0.0.1:0", TcpLine), ("tcp:localhost:0", TcpLine)]:
        line = open_host_line(spec)
        try:
            assert isinstance(line, kind), spec
        finally:
            line.close()


@pytest.mark.parametrize(
    "spec", ["", "serial", "pty:", "tcp", "tcp:", "tcp:abc", "tcp:70000", "tcp:-1", "tcp::80",
             "tcp:1.2.3.4:", "TCP:80", "tcp:٣"]
)
def test_open_host_line_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="expected 'pty', 'tcp:PORT', 'tcp:HOST:PORT' or 'null'"):
        open_host_line(spec)


def test_bad_baud_rejected() -> None:
    with pytest.raises(ValueError, match="baud"):
        open_host_line("tcp:0", baud=0)
