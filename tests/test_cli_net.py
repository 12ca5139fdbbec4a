"""`psyche machine --nic-nodes/--net/--pcap`, and `psyche up` passing them on."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from psyche.cli import make_parser
from psyche.commands.machine_cmd import network_argv

PSYCHE = [sys.executable, "-m", "psyche.cli"]


def read_pcap(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert struct.unpack_from("<IHHiIII", data)[::6] == (0xA1B2C3D4, 1)  # magic, linktype Ethernet
    frames, offset = [], 24
    while offset < len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        frames.append(data[offset + 16:offset + 16 + length])
        offset += 16 + length
    return frames


def test_port_forwards_reach_each_nic_and_the_capture(machine_guest, tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    process = subprocess.Popen(
        [*PSYCHE, "machine", "--nodes", "2", "--kernel", str(machine_guest["echo"]), "--nic-nodes", "0,1",
         "--net", "udp:0-:4000", "--net", "udp:127.0.0.1:0-10.0.2.15:4001,node=1", "--pcap", str(pcap),
         "--max-seconds", "3", "--console", "null", "--debug-line", "null", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    ports = {}
    try:
        while len(ports) < 2:
            line = process.stderr.readline()
            assert line, "the machine ended before describing its NICs"
            match = re.search(r"NIC on node (\d+): guest 10\.0\.2\.15, gateway 10\.0\.2\.2; "
                              r"udp 127\.0\.0\.1:(\d+) -> 10\.0\.2\.15:(\d+)", line)
            if match:
                ports[int(match[1])] = (int(match[2]), int(match[3]))
        assert ports[0][1] == 4000 and ports[1][1] == 4001
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as host:
            host.bind(("127.0.0.1", 0))
            host.sendto(b"to node 0", ("127.0.0.1", ports[0][0]))
            time.sleep(0.2)
            host.sendto(b"to node 1", ("127.0.0.1", ports[1][0]))
            sender = host.getsockname()[1]
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.communicate()
    frames = read_pcap(pcap)
    assert len(frames) == 2
    for node, frame in enumerate(frames):
        assert frame[:6] == bytes.fromhex("525400123456")[:5] + bytes([0x56 + node])
        sport, dport = struct.unpack_from("!HH", frame, 34)
        assert (sport, dport, frame[42:]) == (sender, 4000 + node, f"to node {node}".encode())


def test_bad_network_options(machine_guest) -> None:
    base = [*PSYCHE, "machine", "--kernel", str(machine_guest["echo"]), "--console", "null",
            "--debug-line", "null", "--max-seconds", "1"]
    for extra, message in ((["--net", "tcp:22-:22"], "QEMU's hostfwd syntax"),
                           (["--net", "udp:0.0.0.0:5555-:69"], "always 127.0.0.1"),
                           (["--net", "udp:0-:69,node=1"], "no NIC on node 1"),
                           (["--nodes", "2", "--nic-nodes", "0,2"], "NIC on node 2")):
        result = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (extra, result.stderr)
        assert message in result.stderr, (extra, result.stderr)


def test_up_passes_network_options_to_the_machine() -> None:
    args = make_parser().parse_args(["up", "--nic-nodes", "0,3", "--net", "udp:5555-:69",
                                     "--net", "udp:5556-:70,node=3", "--pcap", "x.pcap"])
    assert network_argv(args) == ["--nic-nodes", "0,3", "--net", "udp:5555-:69",
                                  "--net", "udp:5556-:70,node=3", "--pcap", "x.pcap"]
    none = make_parser().parse_args(["up", "--nic-nodes", "none"])
    assert network_argv(none)[:2] == ["--nic-nodes", "none"]
    again = make_parser().parse_args(["machine", "--kernel", "k", *network_argv(args)])
    assert (again.nic_nodes, again.net, again.pcap) == (args.nic_nodes, args.net, args.pcap)
