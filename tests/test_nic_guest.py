"""A guest drives the NIC through the host bridge to a real socket on 127.0.0.1 and back.

Also: frames enter only at round boundaries, so the same datagrams at the same service points give
the same machine, and a snapshot taken with a frame in the receive ring resumes bit-exact.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from machine_util import boot, trace_hash

from psyche.machine import snapshot
from psyche.machine.elf import load_elf
from psyche.machine.machine import Machine
from psyche.machine.netbridge import Bridge, HostDatagram, PcapWriter, UserNet
from psyche.machine.nic import Wire
from psyche.machine.tohost import TohostMonitor

ANSWER = b"hello from the host"


def patch(machine: Machine, elf: Path, symbol: str, value: int) -> None:
    address = load_elf(elf).symbol(symbol)
    assert address is not None
    machine.write_phys(address, struct.pack("<I", value))


def test_guest_udp_round_trip(machine_guest, tmp_path: Path) -> None:
    elf = machine_guest["nic"]
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host.bind(("127.0.0.1", 0))
    host.setblocking(False)
    machine, monitor = boot(elf)
    patch(machine, elf, "host_port", host.getsockname()[1])
    pcap = PcapWriter(tmp_path / "guest.pcap")
    net = UserNet(machine.nic(0).mac, pcap=pcap)
    machine.attach_wire(0, net)
    got: list[tuple[bytes, tuple[str, int]]] = []
    try:
        for _ in range(20_000):
            machine.run_round()
            machine.poll_host()   # a service point after every round
            try:
                data, sender = host.recvfrom(2048)
            except BlockingIOError:
                pass
            else:
                got.append((data, sender))
                host.sendto(ANSWER, sender)
            if monitor.result is not None:
                break
    finally:
        net.close()
        pcap.close()
        host.close()
    assert monitor.result is not None, f"no result; king pc {machine.king.cpu.pc:#x}"
    assert monitor.result.passed, monitor.result.describe()
    assert [data for data, _ in got] == [b"hello from psyche"]
    assert got[0][1][0] == "127.0.0.1"
    nic = machine.nic(0)
    assert (nic.counter("tx_frames"), nic.counter("rx_frames")) == (2, 2)
    assert net.bridge.counters == {"arp_replies": 1, "udp_to_host": 1, "udp_to_guest": 1}
    # The capture has all four frames, in order: ARP request and reply, datagram out and in.
    data = (tmp_path / "guest.pcap").read_bytes()
    ethertypes, offset = [], 24
    while offset < len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        ethertypes.append(data[offset + 16 + 12:offset + 16 + 14].hex())
        offset += 16 + length
    assert ethertypes == ["0806", "0806", "0800", "0800"]


class ScriptedWire(Wire):
    """The bridge with a scripted host instead of sockets: the answer arrives at a chosen poll.

    (A poll, not a time: a machine whose nodes all sleep with no timer set does not advance
    its clock, so the boundary at which input enters is counted in service points.)
    """

    def __init__(self, machine: Machine, answer_poll: int) -> None:
        self.bridge = Bridge(machine.nic(0).mac)
        self.answer_poll = answer_poll
        self.polls = 0
        self.outbound: list[HostDatagram] = []

    def transmit(self, frame: bytes, when: int) -> None:
        self.outbound += self.bridge.from_guest(frame)

    def poll(self, when: int) -> list[bytes]:
        self.polls += 1
        if self.outbound and self.polls >= self.answer_poll:
            datagram = self.outbound.pop(0)
            self.bridge.from_host(HostDatagram(datagram.guest_port, datagram.host_port, ANSWER))
        return self.bridge.take_frames()


def scripted(machine_guest, answer_poll: int) -> tuple[Machine, TohostMonitor]:  # type: ignore[no-untyped-def]
    machine, monitor = boot(machine_guest["nic"], quantum=97)
    machine.attach_wire(0, ScriptedWire(machine, answer_poll))
    return machine, monitor


def run_serviced(machine: Machine, rounds: int) -> None:
    """Rounds with a service point after every round (the runner's are every poll_rounds)."""
    for _ in range(rounds):
        machine.run_round()
        machine.poll_host()


def test_same_input_at_same_rounds_same_machine(machine_guest) -> None:
    results = []
    for answer_poll in (400, 400):
        machine, monitor = scripted(machine_guest, answer_poll)
        run_serviced(machine, 600)
        assert monitor.result is not None and monitor.result.passed
        results.append((trace_hash(machine, monitor, 50), snapshot.digest(machine)))
    assert results[0] == results[1]


def test_snapshot_with_a_frame_in_the_ring(machine_guest, tmp_path: Path) -> None:
    machine, monitor = scripted(machine_guest, 300)
    # Run up to the boundary where the answer enters the ring, with the guest asleep.
    while not machine.nic(0).counter("rx_frames") == 2:
        run_serviced(machine, 1)
    assert monitor.result is None and machine.nic(0).irq_level
    saved = tmp_path / "nic.snap"
    snapshot.save(machine, saved)
    before = snapshot.digest(machine)
    run_serviced(machine, 200)
    continued = snapshot.digest(machine)
    assert monitor.result is not None and monitor.result.passed

    restored = snapshot.restore(saved)
    assert snapshot.digest(restored) == before
    restored_monitor = TohostMonitor(restored, load_elf(machine_guest["nic"]))
    restored.attach_wire(0, ScriptedWire(restored, 300))  # link already up: no new event
    assert snapshot.digest(restored) == before
    run_serviced(restored, 200)
    assert snapshot.digest(restored) == continued
    assert restored_monitor.result is not None and restored_monitor.result.passed
