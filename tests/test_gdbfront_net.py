"""Debugging the network: real gdb single-steps the king's NIC interrupt handler while host
datagrams keep coming and the other nodes run on; then the echo service goes on.

`udpecho 7` runs on node 1 (a VP there); the king (node 0) has the NIC, and its interrupt
handler queues each datagram for node 1's VP.  The test's host socket sends to the forwarded
port all along.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from gdbfront.machine import PsycheMachine
from gdbfront.plugin import GdbSessions
from gdbfront.session import GdbSession

pytestmark = [pytest.mark.psyche(nodes=2, args=("--net", "udp:0-:7")), pytest.mark.slow,
              pytest.mark.timeout(120)]

RX_N = 16                     # the kernel's receive ring (net.c's NET_RX_N)


def frames_waiting(king: GdbSession) -> int:
    """Receive descriptors the NIC has filled and the kernel not yet taken (their DONE bit), read
    from the ring in the king's RAM: the NIC writes it by DMA whether the king runs or not."""
    return sum(king.integer(f"kg.net->rx[{i}].status & 1") for i in range(RX_N))


class Pinger:
    """Sends a numbered datagram every 20 ms to the guest's echo port; counts the echoes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.02)
        self.port = port
        self.sent = self.echoed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            self.sock.sendto(b"ping %d" % self.sent, ("127.0.0.1", self.port))
            self.sent += 1
            try:
                while self.sock.recv(2048).startswith(b"ping"):
                    self.echoed += 1
            except TimeoutError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def wait_for(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_nic_interrupt_handler_is_stepped_while_datagrams_keep_coming(
        gdb: GdbSessions, psyche_machine: PsycheMachine) -> None:
    forwarded = re.search(r"udp 127\.0\.0\.1:(\d+) -> 10\.0\.2\.15:7", psyche_machine.output_text())
    assert forwarded, psyche_machine.output_text()[-2000:]
    psyche_machine.console.command("spawn 1 udpecho 7 0 quiet")   # for ever, without printing each
    psyche_machine.console.wait_for(r"udpecho: port 7 bound on node 1")
    pinger = Pinger(int(forwarded.group(1)))
    try:
        wait_for(lambda: pinger.echoed >= 3)                 # the echo service works

        king = gdb(0)
        king.breakpoint("net_intr")
        stop = king.cont()
        assert stop.func == "net_intr", stop
        waiting_at_stop = frames_waiting(king)
        ticks_at_stop = king.integer("$psyche_ticks(1)")
        for _ in range(5):
            king.stepi()
        assert king.next().func == "net_intr"               # still in the handler, a line on
        time.sleep(0.5)
        # the king stands still; the NIC takes what keeps coming, node 1's clock keeps ticking
        assert frames_waiting(king) > waiting_at_stop
        assert king.integer("$psyche_ticks(1)") > ticks_at_stop
        assert [f.func for f in king.backtrace()][:2] == ["net_intr", "external_intr"]

        king.delete()
        echoed = pinger.echoed
        king.detach()
        wait_for(lambda: pinger.echoed > echoed + 3)         # and the echoes go on
    finally:
        pinger.close()
