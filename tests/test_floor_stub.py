"""scripts/floor_stub, bench_mux's zero-cost column, answers gdb's opening packets.

It is a script nothing else runs in the suite: a change to mux.packets once left it
raising on gdb's first packet, and bench_mux failed only when next run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gdbfront.machine import some_free_ports
from lld.testing import build_target_guest
from mux.rsp import Packet, RspConnection

FLOOR = Path(__file__).resolve().parent.parent / "scripts" / "floor_stub"

pytestmark = pytest.mark.timeout(60)


def test_the_floor_stub_answers_gdbs_opening_packets() -> None:
    port = some_free_ports(1)
    stub = subprocess.Popen([sys.executable, str(FLOOR), str(port), str(build_target_guest().path)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and stub.poll() is None, "the floor stub did not listen"
                time.sleep(0.05)
        codec = RspConnection()

        def ask(payload: bytes) -> bytes:
            sock.sendall(codec.send_packet(payload))
            while True:
                event = codec.next_event()
                if isinstance(event, Packet):
                    return event.payload
                if event is None:
                    data = sock.recv(65536)
                    assert data, "the floor stub closed the connection"
                    sock.sendall(codec.receive_data(data))

        with sock:
            supported = ask(b"qSupported:swbreak+;vContSupported+")
            assert supported.startswith(b"PacketSize=") and b"qXfer:features:read+" in supported
            assert ask(b"vCont?") == b"vCont;c;C;s;S"
            assert ask(b"?").startswith(b"T05")
            assert ask(b"D") == b"OK"
    finally:
        stub.terminate()
        stub.wait(timeout=10)
