"""Recording a machine's run and replaying it bit-exactly (psyche/machine/record.py, `psyche replay`).

The format's own checks run without a machine; the end-to-end tests record real runs (a 16-node
boot; a 4-node machine driven through its console and by real gdb through the mux) and replay
them: the replay must end in the recorded machine state and console output, and a recording
that was torn, corrupted or tampered with must be refused, saying where.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gdb_util import gdb, needs_gdb, start_up
from machine_util import boot

from gdbfront.console import ConsoleTap
from psyche.machine.elf import load_elf
from psyche.machine.netbridge import UserNet
from psyche.machine.record import (
    CONSOLE,
    DEBUG,
    EVENTS_MAGIC,
    End,
    Header,
    Recording,
    RecordingError,
    ServicePoint,
    read_events,
)
from psyche.machine.runner import Runner
from psyche.machine.tohost import TohostMonitor
from psyche.replay import replay

PSYCHE = [sys.executable, "-m", "psyche.cli"]


def psyche(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PSYCHE, *args], capture_output=True, text=True, timeout=timeout)


# -- the format ---------------------------------------------------------------------------

POINTS = [
    ServicePoint(1000, 0, False, [(CONSOLE, b"ticks\r"), (DEBUG, b"")]),
    ServicePoint(2000, 500, True, [(DEBUG, b"\x7e\x01\x02\x7e"), (DEBUG, b"")]),
    ServicePoint(2500, 0, True, []),
]


def events(points: list[ServicePoint]) -> bytes:
    return EVENTS_MAGIC + b"".join(p.encode() for p in points)


def test_service_points_read_back_as_written() -> None:
    assert list(read_events(events(POINTS))) == POINTS
    assert not ServicePoint(5, 0, False, [(CONSOLE, b""), (DEBUG, b"")]).eventful()   # (never written)


@pytest.mark.parametrize(("damage", "error"), [
    (lambda data: b"NOTAREC\n" + data[8:], "not a Psyche recording"),
    (lambda data: data[:-3], "torn after 2 service points"),
    (lambda data: data[:-(len(POINTS[2].encode()) + 2)], "torn after 1 service points"),
    (lambda data: data[:20] + bytes([data[20] ^ 0x40]) + data[21:], "record 0 is corrupted"),
])
def test_a_damaged_events_file_is_refused_where_it_goes_wrong(damage, error: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecordingError, match=error):
        list(read_events(damage(events(POINTS))))


def test_headers_read_back_and_refuse_another_format() -> None:
    assert Header.load(Header(16, 0xC0001234).dump()) == Header(16, 0xC0001234)
    end = End(123, "ab" * 32, "cd" * 32, 7)
    assert End.load(end.dump()) == end
    with pytest.raises(RecordingError, match="format 99, this psyche reads 1"):
        Header.load(json.dumps({"format": 99, "nodes": 1, "panic_pc": None}))


# -- real runs ----------------------------------------------------------------------------------

def test_a_recorded_16_node_boot_replays_to_the_same_digest(kernel_elf: Path, tmp_path: Path) -> None:
    record = tmp_path / "boot"
    made = psyche("machine", "--nodes", "16", "--kernel", str(kernel_elf), "--console", "null",
                  "--debug-line", "null", "--until", "psyche> ", "--quiet", "--record", str(record))
    assert made.returncode == 0, made.stderr
    end = json.loads((record / "end.json").read_text())
    replayed = psyche("replay", str(record), "--quiet")
    assert replayed.returncode == 0, replayed.stderr
    assert f"digest {end['digest'][:16]}" in replayed.stderr
    assert "identical to the recording" in replayed.stderr

    # a recording is never overwritten
    again = psyche("machine", "--nodes", "1", "--kernel", str(kernel_elf), "--console", "null",
                   "--debug-line", "null", "--until", "psyche> ", "--record", str(record))
    assert again.returncode == 2 and "it exists already" in again.stderr


@needs_gdb
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_run_driven_by_the_console_and_gdb_replays_bit_exactly(kernel_elf: Path, tmp_path: Path) -> None:
    record = tmp_path / "session"
    up = start_up(kernel_elf, 4, "--record", str(record))
    try:
        console = ConsoleTap(up.console)
        console.type("\r")
        console.wait_for(r"psyche> ")
        console.command("ticks")          # (past whichever prompts the boot and the return printed)
        assert "hello: exit 0" in console.command("run hello")
        out = gdb(kernel_elf, f"127.0.0.1:{up.port(1)}",
                  "break clock_intr", "continue", "stepi", "stepi", "next",
                  "set var this_node.ticks = 1000", "print this_node.ticks", "delete", "detach")
        assert "$1 = 1000" in out, out
        time.sleep(0.3)
        ticks = console.command("ticks")
    finally:
        up.stop()
        console.close()
    # node 1's tick count went on from the 1000 gdb wrote
    assert re.search(r"\b1:10\d\d\b", ticks), ticks
    end = json.loads((record / "end.json").read_text())
    assert end["service_points"] > 10      # the console's bytes, gdb's requests, lld's forwarding

    replayed = psyche("replay", str(record))
    assert replayed.returncode == 0, replayed.stderr
    assert "identical to the recording: same machine state, same console output" in replayed.stderr
    assert "hello: exit 0" in replayed.stdout and "psyche> ticks" in replayed.stdout

    # replayed under psyche up, the machine then runs on live from where the recording ended:
    # gdb finds node 1's clock going on from the count gdb wrote in the recorded run
    live = start_up(kernel_elf, 4, "--replay", str(record))
    try:
        out = gdb(kernel_elf, f"127.0.0.1:{live.port(1)}", "print this_node.ticks", "detach")
    finally:
        live.stop()
    ticks_now = int(re.search(r"\$1 = (\d+)", out).group(1))
    assert 1000 <= ticks_now < 5000, out

    # tampered with, it is refused, and says how
    events = (record / "events.bin").read_bytes()
    (record / "events.bin").write_bytes(events[:-5])
    torn = psyche("replay", str(record), "--quiet")
    assert torn.returncode == 1 and "psyche replay: events.bin: torn after" in torn.stderr, torn.stderr
    (record / "events.bin").write_bytes(events)
    (record / "end.json").write_text(json.dumps({**end, "digest": "0" * 64}))
    diverged = psyche("replay", str(record), "--quiet")
    assert diverged.returncode == 1 and "DIVERGED: the machine state differs" in diverged.stderr
    missing = psyche("replay", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "no such recording" in missing.stderr


def test_frames_a_nic_took_from_the_host_are_recorded_and_replayed(machine_guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The NIC guest's UDP round trip through a real socket, recorded; the replay has no network,
    and ends in the same machine: the frames came from the recording."""
    elf = machine_guest["nic"]
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host.bind(("127.0.0.1", 0))
    host.settimeout(5)
    machine, monitor = boot(elf)
    machine.write_phys(load_elf(elf).symbol("host_port"), struct.pack("<I", host.getsockname()[1]))
    net = UserNet(machine.nic(0).mac)
    machine.attach_wire(0, net)
    recording = Recording(tmp_path / "nic")
    recording.start(machine, None)
    answered = threading.Event()

    def answer() -> None:
        data, sender = host.recvfrom(2048)
        host.sendto(b"hello from the host", sender)
        answered.set()

    threading.Thread(target=answer, daemon=True).start()
    runner = Runner(machine, [], pace=False, recorder=recording.recorder)
    try:
        deadline = time.monotonic() + 20
        while monitor.result is None and time.monotonic() < deadline:
            runner.run(max_seconds=0.05)
    finally:
        net.close()
        host.close()
    assert monitor.result is not None and monitor.result.passed and answered.is_set()
    end = recording.end(machine)
    assert machine.nic(0).counter("rx_frames") == 2      # the ARP reply and the datagram

    done = replay(tmp_path / "nic", prepare=lambda m: TohostMonitor(m, load_elf(elf)))
    assert done.verdict() == (True, "identical to the recording: same machine state, same console output")
    assert done.digest == end.digest
    assert done.machine.nic(0).counter("rx_frames") == 2
