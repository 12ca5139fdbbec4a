"""The host side of the wire: the gateway's protocols (sans-IO), its sockets, pcap files."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from psyche.machine.netbridge import (
    BROADCAST_MAC,
    ETH_ARP,
    ETH_IPV4,
    GATEWAY_IP,
    GATEWAY_MAC,
    GUEST_IP,
    IP_ICMP,
    IP_UDP,
    MAX_UDP_PAYLOAD,
    Bridge,
    Forward,
    HostDatagram,
    PcapWriter,
    UserNet,
    checksum,
    ethernet,
    ipv4,
    parse_forward,
    udp,
    udp_checksum,
)

GUEST_MAC = bytes.fromhex("525400123456")


def arp_request(target: bytes = GATEWAY_IP) -> bytes:
    body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + GUEST_MAC + GUEST_IP + bytes(6) + target
    return ethernet(BROADCAST_MAC, GUEST_MAC, ETH_ARP, body)


def guest_udp(sport: int, dport: int, payload: bytes, *, src: bytes = GUEST_IP,
              dst: bytes = GATEWAY_IP) -> bytes:
    return ethernet(GATEWAY_MAC, GUEST_MAC, ETH_IPV4, ipv4(src, dst, IP_UDP, udp(src, dst, sport, dport,
                                                                                 payload), 7))


def parse_udp_frame(frame: bytes) -> tuple[bytes, bytes, int, int, bytes]:
    """(src ip, dst ip, sport, dport, payload) of a frame to the guest, checking its checksums."""
    assert frame[:6] == GUEST_MAC and frame[6:12] == GATEWAY_MAC
    assert struct.unpack_from("!H", frame, 12)[0] == ETH_IPV4
    ip = frame[14:]
    assert checksum(ip[:20]) == 0
    total = struct.unpack_from("!H", ip, 2)[0]
    assert total == len(ip) and ip[9] == IP_UDP
    segment = ip[20:]
    assert udp_checksum(ip[12:16], ip[16:20], segment) == 0
    sport, dport, length, _ = struct.unpack_from("!HHHH", segment)
    assert length == len(segment)
    return ip[12:16], ip[16:20], sport, dport, segment[8:]


def test_arp_reply() -> None:
    bridge = Bridge(GUEST_MAC)
    assert bridge.from_guest(arp_request()) == []
    [reply] = bridge.take_frames()
    assert reply[:6] == GUEST_MAC and reply[6:12] == GATEWAY_MAC
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", reply, 14)
    assert (htype, ptype, hlen, plen, op) == (1, ETH_IPV4, 6, 4, 2)
    assert reply[22:28] == GATEWAY_MAC and reply[28:32] == GATEWAY_IP
    assert reply[32:38] == GUEST_MAC and reply[38:42] == GUEST_IP
    assert bridge.counters["arp_replies"] == 1
    # Questions about anyone else get no answer: nobody else is on this wire.
    bridge.from_guest(arp_request(bytes((10, 0, 2, 3))))
    assert bridge.take_frames() == [] and bridge.counters["drop_arp_not_for_gateway"] == 1


def test_udp_both_ways() -> None:
    bridge = Bridge(GUEST_MAC)
    [out] = bridge.from_guest(guest_udp(4000, 5555, b"hello host"))
    assert out == HostDatagram(4000, 5555, b"hello host")
    # Ethernet padding (a 60-byte minimum frame) is not part of the datagram.
    [out] = bridge.from_guest(guest_udp(4000, 5555, b"x") + bytes(20))
    assert out.payload == b"x"
    bridge.from_host(HostDatagram(4000, 5555, b"hello guest"))
    [frame] = bridge.take_frames()
    assert parse_udp_frame(frame) == (GATEWAY_IP, GUEST_IP, 5555, 4000, b"hello guest")
    # A zero UDP checksum means none was computed (RFC 768): accepted.
    raw = bytearray(guest_udp(4000, 5555, b"no sum"))
    raw[40:42] = b"\0\0"
    assert bridge.from_guest(bytes(raw)) == [HostDatagram(4000, 5555, b"no sum")]
    assert bridge.counters["udp_to_host"] == 3 and bridge.counters["udp_to_guest"] == 1


def test_datagram_loss_is_seeded_and_counted_each_way() -> None:
    def run(seed: int) -> tuple[list[int], list[int], Bridge]:
        bridge = Bridge(GUEST_MAC, loss=0.05, seed=seed)
        out = [i for i in range(2000) if bridge.from_guest(guest_udp(4000, 5555, b"%d" % i))]
        into = []
        for i in range(2000):
            bridge.from_host(HostDatagram(4000, 5555, b"%d" % i))
            if bridge.take_frames():
                into.append(i)
        return out, into, bridge

    out, into, bridge = run(7)
    lost_out, lost_in = 2000 - len(out), 2000 - len(into)
    assert 60 <= lost_out <= 140 and 60 <= lost_in <= 140          # about 5% each way
    counted = bridge.counters["drop_loss_to_host"], bridge.counters["drop_loss_to_guest"]
    assert counted == (lost_out, lost_in)
    assert run(7)[:2] == (out, into)                                  # the same seed loses the same ones
    assert run(8)[:2] != (out, into)
    # ARP is never lost: only datagrams are
    lossy = Bridge(GUEST_MAC, loss=1.0)
    lossy.from_guest(arp_request())
    assert len(lossy.take_frames()) == 1
    with pytest.raises(ValueError, match="loss 1.5 is not between 0 and 1"):
        Bridge(GUEST_MAC, loss=1.5)


def test_ping_the_gateway() -> None:
    bridge = Bridge(GUEST_MAC)
    echo = b"\x08\x00\x00\x00\x12\x34\x00\x01" + b"ping data"
    echo = echo[:2] + struct.pack("!H", checksum(echo)) + echo[4:]
    packet = ipv4(GUEST_IP, GATEWAY_IP, IP_ICMP, echo, 1)
    bridge.from_guest(ethernet(GATEWAY_MAC, GUEST_MAC, ETH_IPV4, packet))
    [reply] = bridge.take_frames()
    icmp = reply[34:]
    assert icmp[0] == 0 and checksum(icmp) == 0 and icmp[4:] == echo[4:]


def corrupt(frame: bytes, offset: int, value: int) -> bytes:
    out = bytearray(frame)
    out[offset] = value
    return bytes(out)


def test_bad_frames_are_counted_and_dropped() -> None:
    bridge = Bridge(GUEST_MAC)
    good = guest_udp(4000, 5555, b"payload")
    cases = {
        "runt": good[:10],
        "not_for_gateway": corrupt(good, 0, 0x02),
        "ethertype": corrupt(good, 12, 0x86),
        "ip_truncated": good[:30],
        "ip_malformed": corrupt(good, 14, 0x65),               # IP version 6
        "ip_checksum": corrupt(good, 22, 1),                  # TTL changed, checksum not
        "ip_fragment": guest_udp_fragment(),
        "ip_source": guest_udp(4000, 5555, b"p", src=bytes((10, 0, 2, 16))),
        "ip_destination": guest_udp(4000, 5555, b"p", dst=bytes((255, 255, 255, 255))),
        "udp_checksum": corrupt(good, len(good) - 1, 0),
        "udp_malformed": corrupt(good, 38, 0xFF),              # UDP length beyond the packet
        "arp_truncated": arp_request()[:30],
        "arp_malformed": corrupt(arp_request(), 15, 2),       # hardware type 2
        "ip_protocol": ethernet(GATEWAY_MAC, GUEST_MAC, ETH_IPV4,
                                ipv4(GUEST_IP, GATEWAY_IP, 6, bytes(20), 1)),   # TCP
    }
    for reason, frame in cases.items():
        before = bridge.counters[f"drop_{reason}"]
        assert bridge.from_guest(frame) == [], reason
        assert bridge.counters[f"drop_{reason}"] == before + 1, reason
    assert bridge.take_frames() == []
    assert bridge.dropped() == len(cases)
    bridge.from_host(HostDatagram(4000, 5555, bytes(MAX_UDP_PAYLOAD + 1)))
    assert bridge.counters["drop_host_oversize"] == 1 and bridge.take_frames() == []
    bridge.from_host(HostDatagram(4000, 5555, bytes(MAX_UDP_PAYLOAD)))
    assert len(bridge.take_frames()[0]) == 1514


def guest_udp_fragment() -> bytes:
    frame = bytearray(guest_udp(4000, 5555, b"frag"))
    frame[20] |= 0x20  # more fragments
    frame[24:26] = b"\0\0"
    frame[24:26] = struct.pack("!H", checksum(bytes(frame[14:34])))
    return bytes(frame)


def test_parse_forward() -> None:
    assert parse_forward("udp:5555-:69") == Forward(5555, 69)
    assert parse_forward("udp::5555-:69") == Forward(5555, 69)
    assert parse_forward("udp:127.0.0.1:5555-10.0.2.15:69,node=3") == Forward(5555, 69, 3)
    for bad in ("tcp:5555-:69", "udp:5555", "udp:0.0.0.0:5555-:69", "udp:5555-10.0.2.16:69",
                "udp:70000-:69", "udp:5555-:0"):
        with pytest.raises(ValueError):
            parse_forward(bad)


def wait_frames(net: UserNet, count: int) -> list[bytes]:
    frames: list[bytes] = []
    deadline = time.monotonic() + 5
    while len(frames) < count and time.monotonic() < deadline:
        frames += net.poll(0)
        time.sleep(0.005)
    return frames


def test_user_net_sockets(tmp_path: Path) -> None:
    """Outbound: guest -> 10.0.2.2:P reaches 127.0.0.1:P; forward: 127.0.0.1:H reaches guest port G."""
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host.bind(("127.0.0.1", 0))
    host.settimeout(5)
    port = host.getsockname()[1]
    net = UserNet(GUEST_MAC, [Forward(0, 69)])
    try:
        net.transmit(guest_udp(4000, port, b"to the host"), 0)
        data, (addr, bridge_port) = host.recvfrom(2048)
        assert (data, addr) == (b"to the host", "127.0.0.1")
        host.sendto(b"back to the guest", ("127.0.0.1", bridge_port))
        [frame] = wait_frames(net, 1)
        assert parse_udp_frame(frame) == (GATEWAY_IP, GUEST_IP, port, 4000, b"back to the guest")

        fwd_port = net.forwards[69].getsockname()[1]
        assert net.describe() == [f"udp 127.0.0.1:{fwd_port} -> 10.0.2.15:69"]
        host.sendto(b"request", ("127.0.0.1", fwd_port))
        [frame] = wait_frames(net, 1)
        assert parse_udp_frame(frame) == (GATEWAY_IP, GUEST_IP, port, 69, b"request")
        net.transmit(guest_udp(69, port, b"answer"), 0)   # the reply leaves from the forwarded port
        assert host.recvfrom(2048) == (b"answer", ("127.0.0.1", fwd_port))
        assert all(s.getsockname()[0] == "127.0.0.1" for s in [*net.forwards.values(),
                                                               *net.sessions.values()])
    finally:
        net.close()
        host.close()


def read_pcap(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    """A minimal reader of classic pcap: (linktype, [(timestamp, frame)])."""
    data = path.read_bytes()
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor) == (0xA1B2C3D4, 2, 4) and snaplen >= 1514
    records = []
    offset = 24
    while offset < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, offset)
        assert incl == orig and usec < 1_000_000
        records.append((sec + usec / 1e6, data[offset + 16:offset + 16 + incl]))
        offset += 16 + incl
    assert offset == len(data)
    return linktype, records


def test_pcap_records_both_directions(tmp_path: Path) -> None:
    path = tmp_path / "net.pcap"
    pcap = PcapWriter(path)
    net = UserNet(GUEST_MAC, pcap=pcap)
    try:
        request = arp_request()
        net.transmit(request, 15_000_000)      # 1.5 s of simulated time
        frames = net.poll(20_000_000)
    finally:
        net.close()
        pcap.close()
    linktype, records = read_pcap(path)
    assert linktype == 1
    assert records == [(1.5, request), (2.0, frames[0])]
