"""The kernel's UDP stack (docs/kernel.md, "The network"; the calls in docs/kernel-interface.md).

The user program udpecho binds a port and echoes datagrams; a host socket talks to it through the
machine's user-mode network (netbridge.UserNet with a `--net udp:0-:PORT` forward), on the king and
from a VP on another node. Then a few thousand mutated frames go straight into the NIC: the kernel
stays up and every frame is counted exactly once.
"""

from __future__ import annotations

import random
import re
import socket
import struct
from pathlib import Path

import pytest

from psyche.kernel.harness import KernelRun
from psyche.machine.netbridge import (
    GATEWAY_MAC,
    UserNet,
    checksum,
    ethernet,
    ipv4,
    parse_forward,
    udp,
)
from psyche.machine.nic import Wire, default_mac

GUEST_IP = bytes((10, 0, 2, 15))
GATEWAY_IP = bytes((10, 0, 2, 2))
PORT = 7
RX_OUTCOMES = (
    "bad_desc", "runt", "not_for_us", "ethertype", "arp_truncated", "arp_malformed",
    "arp_not_for_us", "arp_requests", "arp_replies", "ip_truncated", "ip_malformed", "ip_checksum",
    "ip_fragment", "ip_not_for_us", "ip_protocol", "udp_truncated", "udp_malformed", "udp_checksum",
    "udp_no_port", "udp_queue_full", "udp_delivered",
)


def net_counters(run: KernelRun) -> dict[str, dict[str, int]]:
    """The monitor's `net`: the NIC's counters, and the stack's."""
    out = run.command("net")
    nic, stack = out.split("stack:", 1)
    return {"nic": {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", nic)},
            "stack": {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", stack)}}


def host_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def echo(run: KernelRun, sock: socket.socket, port: int, payload: bytes,
         rounds: int = 20_000) -> bytes:
    """Send payload to the forward at host port `port` and run until the answer comes."""
    sock.sendto(payload, ("127.0.0.1", port))
    for _ in range(rounds):
        run.run_round()
        try:
            return sock.recv(2048)
        except BlockingIOError:
            pass
    raise AssertionError(f"no echo of {payload!r} within {rounds} rounds; console:\n"
                         f"{run.console[-1500:]}")


def wired(kernel_elf: Path, nodes: int, nic: int = 0) -> tuple[KernelRun, UserNet, int]:
    run = KernelRun(nodes, elf=kernel_elf, nic_nodes=(nic,))
    wire = UserNet(default_mac(nic), [parse_forward(f"udp:0-:{PORT}")])
    run.attach_wire(nic, wire)
    run.boot()
    return run, wire, wire.forwards[PORT].getsockname()[1]


@pytest.mark.parametrize("nodes, nic, where", [(1, 0, None), (2, 0, 1), (3, 2, 1)],
                         ids=["king", "vp-on-node-1", "nic-on-node-2"])
def test_udpecho_answers_a_host_socket(kernel_elf: Path, nodes: int, nic: int,
                                       where: int | None) -> None:
    run, wire, port = wired(kernel_elf, nodes, nic)
    try:
        assert f"net: NIC of node {nic}, MAC {default_mac(nic).hex(':')}" in run.command("net")
        if where is None:
            run.type(f"run udpecho {PORT} 3\r")
        else:
            run.command(f"spawn {where} udpecho {PORT} 3")
        run.wait_for(rf"udpecho: port {PORT} bound on node {where or 0}, vp \d+\n")
        sock = host_socket()
        for payload in [b"hello guest", b"x" * 1472, b"three"]:
            assert echo(run, sock, port, payload) == payload
            assert f"bytes from 10.0.2.2:{sock.getsockname()[1]}: " in run.console
        run.wait_for("udpecho: exit 0\n")
        counters = net_counters(run)
        stack = counters["stack"]
        assert stack["udp_delivered"] == 3 and stack["tx_udp"] == 3
        assert stack["tx_arp_requests"] == 1 and stack["arp_replies"] == 1    # once, then cached
        assert stack["rx_frames"] == counters["nic"]["rx_frames"] == 4
        assert sum(stack[k] for k in RX_OUTCOMES) == stack["rx_frames"]
        # the port went with the program's VP: it can be bound again
        assert not re.search(r"^port \d+:", run.command("net"), re.M)
        assert wire.bridge.dropped() == 0, wire.bridge.counters
        sock.close()
    finally:
        wire.close()


class FuzzWire(Wire):
    """Feeds mutated frames into the NIC a few at a time, and keeps what the guest sends."""

    def __init__(self, frames: list[bytes], per_round: int) -> None:
        self.frames = frames
        self.per_round = per_round
        self.fed = 0
        self.started = False      # not while the kernel boots: its driver resets the NIC
        self.sent: list[bytes] = []

    def transmit(self, frame: bytes, when: int) -> None:
        self.sent.append(frame)

    def poll(self, when: int) -> list[bytes]:
        if not self.started:
            return []
        batch = self.frames[self.fed:self.fed + self.per_round]
        self.fed += len(batch)
        return batch


def templates(mac: bytes) -> list[bytes]:
    """Frames the stack accepts: datagrams to the bound port (with and without a UDP checksum), to
    an unbound one, an ARP request for the guest and an ARP reply from the gateway."""
    def dgram(dport: int, payload: bytes, ident: int) -> bytes:
        return ethernet(mac, GATEWAY_MAC, 0x0800,
                        ipv4(GATEWAY_IP, GUEST_IP, 17, udp(GATEWAY_IP, GUEST_IP, 5000, dport, payload),
                             ident))

    def arp(op: int, target_mac: bytes) -> bytes:
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, GATEWAY_MAC, GATEWAY_IP,
                           target_mac, GUEST_IP)
        return ethernet(mac if op == 2 else b"\xff" * 6, GATEWAY_MAC, 0x0806, body)

    no_sum = bytearray(dgram(PORT, b"no checksum", 3))
    no_sum[40:42] = b"\0\0"
    return [dgram(PORT, b"fuzz", 1), dgram(PORT, b"y" * 300, 2), bytes(no_sum),
            dgram(9, b"nobody", 4), arp(1, b"\0" * 6), arp(2, mac)]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    f = bytearray(frame)
    how = rng.randrange(8)
    if how == 0:
        return bytes(f)                                    # as it is
    if how == 1:                                           # a few bytes flipped
        for _ in range(rng.randint(1, 3)):
            f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
    elif how == 2:                                         # truncated, runts included
        del f[rng.randrange(len(f)):]
    elif how == 3:                                         # junk appended
        f += rng.randbytes(rng.randint(1, 200))
    elif how == 4 and len(f) > 42:                         # a length field lies
        at = rng.choice([16, 38])                          # IPv4 total length, UDP length
        f[at:at + 2] = rng.randrange(65536).to_bytes(2, "big")
    elif how == 5 and len(f) > 34:                         # version/IHL, flags/fragment offset
        at = rng.choice([14, 20, 21])
        f[at] = rng.randrange(256)
    elif how == 6:                                         # anything
        f = bytearray(rng.randbytes(rng.randint(0, 1514)))
    else:                                                  # a header field, byte-wise
        f[rng.randrange(min(len(f), 42))] = rng.randrange(256)
    return bytes(f)


def fix_ip_checksum(frame: bytes) -> bytes:
    """Half the mutated IPv4 frames get a right header checksum again, so the layers past it are
    reached too."""
    f = bytearray(frame)
    if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[14] >> 4 == 4:
        ihl = (f[14] & 15) * 4
        if 20 <= ihl and len(f) >= 14 + ihl:
            f[24:26] = b"\0\0"
            f[24:26] = checksum(bytes(f[14:14 + ihl])).to_bytes(2, "big")
    return bytes(f)


FUZZ_FRAMES = 3000


def test_mutated_frames_are_counted_and_dropped_and_the_kernel_stays_up(kernel_elf: Path) -> None:
    rng = random.Random(17)
    mac = default_mac(0)
    base = templates(mac)
    frames = []
    for _ in range(FUZZ_FRAMES):
        frame = mutate(rng, rng.choice(base))
        frames.append(fix_ip_checksum(frame) if rng.random() < 0.5 else frame)
    frames = [f[:1514] for f in frames]
    run = KernelRun(2, elf=kernel_elf)
    wire = FuzzWire(frames, per_round=2)
    run.attach_wire(0, wire)
    run.boot()
    run.command(f"spawn 1 udpecho {PORT} 0 quiet")        # a bound port on another node
    run.wait_for(rf"udpecho: port {PORT} bound on node 1")
    wire.started = True
    while wire.fed < len(frames):
        assert not run.run_round()
    for _ in range(200):
        run.run_round()
    counters = net_counters(run)
    nic, stack = counters["nic"], counters["stack"]
    print("\nNIC:", nic, "\nstack:", stack)

    # The kernel is up, on every node, and still answers.
    status = run.command("status")
    assert "2 nodes: 2 up, 0 panicked" in status and "PANIC" not in run.console.upper().replace(
        "0 PANICKED", ""), status
    # Every frame reached the ring and the stack, and ended in exactly one counter.
    assert nic["rx_frames"] + nic["rx_drop_full"] == len(frames)
    assert nic["rx_drop_full"] < len(frames) // 100     # the handler keeps the ring nearly empty
    assert stack["rx_frames"] == nic["rx_frames"]
    assert sum(stack[k] for k in RX_OUTCOMES) == stack["rx_frames"]
    # The mutations reached every layer.
    for name in ("runt", "not_for_us", "ethertype", "arp_truncated", "arp_malformed",
                 "arp_requests", "arp_replies", "ip_truncated", "ip_malformed", "ip_checksum",
                 "ip_fragment", "ip_not_for_us", "ip_protocol", "udp_malformed", "udp_checksum",
                 "udp_no_port", "udp_delivered"):
        assert stack[name] > 0, name
    # What the guest sent back is well formed: ARP replies, echoes with right checksums.
    assert stack["tx_udp"] + stack["tx_arp_requests"] + stack["tx_arp_replies"] == \
        nic["tx_frames"] + stack["tx_ring_full"]
    for frame in wire.sent:
        assert frame[6:12] == mac
        if frame[12:14] == b"\x08\x00":
            ihl = (frame[14] & 15) * 4
            assert checksum(frame[14:14 + ihl]) == 0
