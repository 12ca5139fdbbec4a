"""lld end to end: `psyche machine` serving the debug line to a client in another process."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import serial

from lld import protocol as p
from lld.client import LldClient
from lld.testing import TargetGuest, build_target_guest
from psyche.commands.machine_cmd import StopReporter

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


def start_machine(guest: TargetGuest, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "psyche.cli", "machine", "--kernel", str(guest.path), "--nodes", "3",
         "--console", "null", "--quiet", "--no-pace", "--max-seconds", "50", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    assert "debug line" in banner, banner + (proc.stderr.read() if proc.stderr else "")
    return proc, banner.rsplit("debug line ", 1)[1].strip()


class Conversation:
    """A blocking client over a byte stream, with the sans-IO LldClient inside."""

    def __init__(self, send: Callable[[bytes], None], recv: Callable[[], bytes], fd: int,
                 timeout: float = 0.2) -> None:
        self.send, self.recv, self.fd = send, recv, fd
        self.client = LldClient(timeout=timeout, max_attempts=100)

    def call(self, node: int, request: p.Request) -> p.Reply:
        seq, wire = self.client.send(node, request, time.monotonic())
        self.send(wire)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.02)[0]:
                for done in self.client.receive(self.recv()):
                    if done.seq == seq:
                        return done.reply
            again, failed = self.client.poll(time.monotonic())
            assert not failed, "lld stopped answering"
            if again:
                self.send(again)
        raise AssertionError(f"no reply to {request!r}")

    def ok(self, node: int, request: p.Request) -> Any:
        reply = self.call(node, request)
        assert reply.ok, reply.error.describe() if reply.error else reply
        return reply.value

    def status(self, node: int) -> p.Status:
        value = self.ok(node, p.GetStatus())
        assert isinstance(value, p.Status)
        return value

    def wait_stopped(self, node: int) -> p.Status:
        for _ in range(500):
            status = self.status(node)
            if status.stopped:
                return status
            time.sleep(0.01)
        raise AssertionError(f"node {node} did not stop")


def session(conv: Conversation, guest: TargetGuest) -> None:
    d = conv.ok(1, p.Describe())
    assert isinstance(d, p.MachineDescription) and d.nodes == 3
    bp = guest.sym("spin_store")
    conv.ok(2, p.SetBreakpoint(conv.status(2).gen, bp))
    hit = conv.wait_stopped(2)
    assert (hit.reason, hit.pc) == (p.REASON_BREAKPOINT, bp)
    assert conv.status(1).running
    counter = conv.ok(2, p.ReadMem(p.SPACE_VIRT, guest.counter(2), 4))
    s = hit
    for _ in range(4):                        # one trip round the loop, one instruction at a time
        s = conv.ok(2, p.Step(s.gen))
        assert isinstance(s, p.Status) and s.reason == p.REASON_STEP
    assert s.instret == hit.instret + 4
    after = conv.ok(2, p.ReadMem(p.SPACE_VIRT, guest.counter(2), 4))
    assert int.from_bytes(after, "little") == int.from_bytes(counter, "little") + 1
    conv.ok(2, p.ClearBreakpoint(s.gen, bp))
    conv.ok(2, p.Resume(s.gen + 1))
    assert conv.status(2).running
    # The machine armed the kernel's `panic` symbol: send node 1 down its panic path.
    conv.ok(0, p.WriteMem(p.ANY_GEN, p.SPACE_PHYS, guest.sym("panic_request"), (2).to_bytes(4, "little")))
    panicked = conv.wait_stopped(1)
    assert (panicked.reason, panicked.pc) == (p.REASON_PANIC, guest.sym("panic"))
    assert conv.call(9, p.GetStatus()).status == p.E_NO_NODE


def test_machine_serves_lld_on_a_tcp_debug_line_that_loses_frames(guest: TargetGuest) -> None:
    proc, url = start_machine(guest, "--debug-line", "tcp:0", "--debug-line-loss", "0.2",
                              "--debug-line-seed", "7")
    try:
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as sock:
            conv = Conversation(sock.sendall, lambda: sock.recv(65536), sock.fileno(), timeout=0.1)
            session(conv, guest)
            assert conv.client.stats.retransmitted > 0
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    # A panic is always said; the breakpoint's stop was the debugger's own, while it talked.
    assert "node 1 stopped (panic)" in err and "node 2 stopped (breakpoint)" not in err


def test_machine_serves_lld_on_a_pty_opened_with_pyserial(guest: TargetGuest) -> None:
    proc, path = start_machine(guest, "--debug-line", "pty")
    try:
        assert os.path.exists(path)
        with serial.Serial(path, timeout=0) as port:
            conv = Conversation(port.write, lambda: port.read(65536), port.fileno())
            session(conv, guest)
            assert conv.client.stats.retransmitted == 0
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_the_mux_reads_a_tcp_debug_line_in_whole_chunks(guest: TargetGuest) -> None:
    """pyserial's socket:// port says one byte is waiting whatever has come, and the link's reader
    thread took a 16 KiB frame a byte at a time: gdb gave up on a 32 KiB read. The link now reads
    the socket itself, in the event loop, as it reads a pty."""
    import asyncio

    from mux.link import LldLink
    from psyche.commands.mux_cmd import open_line

    proc, url = start_machine(guest, "--debug-line", "tcp:0")

    async def main() -> None:
        link = LldLink(open_line(url))
        await link.start()
        pieces: list[int] = []
        on_data = link._on_data
        link._on_data = lambda data: (pieces.append(len(data)), on_data(data))[1]  # type: ignore[method-assign]
        try:
            assert link._fd >= 0                                # read by the event loop, no thread
            base = guest.image.entry   # (code: the same in both reads while the nodes run)
            data = await link.ok(1, p.ReadMem(p.SPACE_PHYS, base, p.MAX_DATA))
            expected = await link.ok(1, p.ReadMem(p.SPACE_PHYS, base, 256))
            assert isinstance(data, bytes) and len(data) == p.MAX_DATA and data[:256] == expected
            assert len(pieces) < 40, f"the reply came in {len(pieces)} pieces"
        finally:
            await link.close()

    try:
        asyncio.run(main())
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_stop_is_said_on_stderr_when_no_debugger_talks_and_a_panic_always(
        capsys: pytest.CaptureFixture[str]) -> None:
    heard_at = [float("-inf")]
    reasons = {0: p.REASON_BREAKPOINT, 1: p.REASON_PANIC}
    lld = SimpleNamespace(heard_at=lambda: heard_at[0], nodes=[
        SimpleNamespace(status=lambda n=n: p.Status(p.STATE_STOPPED, reasons[n], 3, 0, 1, 1, 0x80000000 + n,
                                                    0, 0, 0),
                        stop_reason=lambda n=n: reasons[n]) for n in reasons])
    nodes = [SimpleNamespace(index=n) for n in reasons]
    report = StopReporter(lld)   # type: ignore[arg-type]
    report(nodes)                # type: ignore[arg-type]
    said = capsys.readouterr().err
    assert "node 0 stopped (breakpoint) at pc 0x80000000" in said and "node 1 stopped (panic)" in said
    heard_at[0] = time.monotonic()   # a debugger talks on the line
    report(nodes)                # type: ignore[arg-type]
    said = capsys.readouterr().err
    assert "node 0" not in said and "node 1 stopped (panic)" in said
