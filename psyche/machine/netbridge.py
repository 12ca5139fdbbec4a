"""The host side of the NICs' wire: user-mode networking, as QEMU's `-netdev user`.

The guest sees a small Ethernet segment (docs/network.md):

    guest    10.0.2.15   (the NIC's MAC, 52:54:00:12:34:56 on the king)
    gateway  10.0.2.2    52:55:0a:00:02:02, played by this module

The gateway answers ARP for its own address and ICMP echo (ping) to it, and
carries UDP: a datagram the guest sends to 10.0.2.2:P leaves from a host
socket on 127.0.0.1 to 127.0.0.1:P, and what comes back to that socket
returns to the guest as from 10.0.2.2:<sender's port>.  Port forwards
(`--net udp:HOSTPORT-:GUESTPORT`) bind 127.0.0.1:HOSTPORT and deliver to
10.0.2.15:GUESTPORT; the guest's replies from GUESTPORT leave through that
same socket.  Every socket is bound to 127.0.0.1 and only ever sends there:
no traffic leaves the loopback interface.

`Bridge` is the protocol part, sans-IO: frames in, frames and host datagrams
out.  Whatever it cannot carry (other protocols, bad checksums, fragments,
truncated headers, other addresses) it counts by reason and drops.
`UserNet` is the thin socket side, a NIC `Wire`; `PcapWriter` records every
frame, both directions, for tcpdump and Wireshark.
"""

from __future__ import annotations

import ipaddress
import random
import re
import socket
import struct
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from psyche.machine.machine import TIMEBASE_HZ
from psyche.machine.nic import MAX_FRAME, Wire

GUEST_IP = bytes((10, 0, 2, 15))
GATEWAY_IP = bytes((10, 0, 2, 2))
GATEWAY_MAC = bytes.fromhex("52550a000202")
BROADCAST_MAC = b"\xff" * 6
LOOPBACK = "127.0.0.1"

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
IP_ICMP = 1
IP_UDP = 17
ETH_HEADER = 14
IP_HEADER = 20
UDP_HEADER = 8
#: The largest UDP payload that fits one frame without fragments (1500 - 20 - 8).
MAX_UDP_PAYLOAD = MAX_FRAME - ETH_HEADER - IP_HEADER - UDP_HEADER
#: Frames waiting for the guest beyond this many are dropped (counted as to_guest_overflow).
MAX_QUEUED = 256


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data: 0 when data holds a correct checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """Checksum of a UDP segment (header with checksum field as given, and payload)."""
    pseudo = src + dst + struct.pack("!BBH", 0, IP_UDP, len(segment))
    return checksum(pseudo + segment)


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src: bytes, dst: bytes, protocol: int, payload: bytes, ident: int) -> bytes:
    """An IPv4 packet with a correct header checksum; DF set, TTL 64, no options."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, IP_HEADER + len(payload), ident & 0xFFFF,
                         0x4000, 64, protocol, 0, src, dst)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP segment with its checksum (0 is sent as 0xFFFF, RFC 768)."""
    segment = struct.pack("!HHHH", sport, dport, UDP_HEADER + len(payload), 0) + payload
    sum_ = udp_checksum(src, dst, segment) or 0xFFFF
    return segment[:6] + struct.pack("!H", sum_) + segment[8:]


@dataclass(frozen=True)
class HostDatagram:
    """A UDP datagram between a guest port and a port on 127.0.0.1."""

    guest_port: int
    host_port: int
    payload: bytes


class Bridge:
    """The gateway's protocol logic for one NIC: no sockets, no clock."""

    def __init__(self, guest_mac: bytes, loss: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"datagram loss {loss} is not between 0 and 1")
        self.guest_mac = guest_mac
        #: The fraction of UDP datagrams lost, each way (testing what runs over UDP), decided by a
        #: seeded generator in the order datagrams come: the same traffic loses the same ones.
        self.loss = loss
        self._rng = random.Random(seed)
        self.to_guest: deque[bytes] = deque()
        #: What happened to frames and datagrams: deliveries, and drops by reason ("drop_*").
        self.counters: Counter[str] = Counter()
        self._ident = 0

    def _lost(self) -> bool:
        return self.loss > 0 and self._rng.random() < self.loss

    def dropped(self) -> int:
        return sum(n for name, n in self.counters.items() if name.startswith("drop_"))

    def _drop(self, reason: str) -> list[HostDatagram]:
        self.counters[f"drop_{reason}"] += 1
        return []

    def _send(self, frame: bytes) -> None:
        if len(self.to_guest) >= MAX_QUEUED:
            self._drop("to_guest_overflow")
            return
        self.to_guest.append(frame)

    def take_frames(self) -> list[bytes]:
        frames = list(self.to_guest)
        self.to_guest.clear()
        return frames

    # ---- guest to host -------------------------------------------------------

    def from_guest(self, frame: bytes) -> list[HostDatagram]:
        """Handle one frame the guest sent; returns what should go out to host sockets."""
        if len(frame) < ETH_HEADER:
            return self._drop("runt")
        dst, ethertype = frame[:6], struct.unpack_from("!H", frame, 12)[0]
        if dst not in (GATEWAY_MAC, BROADCAST_MAC):
            return self._drop("not_for_gateway")
        self.guest_mac = frame[6:12]  # reply to whichever MAC the guest uses, as a switch learns
        if ethertype == ETH_ARP:
            return self._arp(frame[ETH_HEADER:])
        if ethertype == ETH_IPV4:
            return self._ipv4(frame[ETH_HEADER:])
        return self._drop("ethertype")

    def _arp(self, packet: bytes) -> list[HostDatagram]:
        if len(packet) < 28:
            return self._drop("arp_truncated")
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", packet)
        if (htype, ptype, hlen, plen) != (1, ETH_IPV4, 6, 4) or op not in (1, 2):
            return self._drop("arp_malformed")
        sha, spa, tpa = packet[8:14], packet[14:18], packet[24:28]
        if op != 1 or tpa != GATEWAY_IP:
            # Replies, gratuitous ARP and questions about other addresses: nobody else is here.
            return self._drop("arp_not_for_gateway")
        reply = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + GATEWAY_MAC + GATEWAY_IP + sha + spa
        self._send(ethernet(sha, GATEWAY_MAC, ETH_ARP, reply))
        self.counters["arp_replies"] += 1
        return []

    def _ipv4(self, packet: bytes) -> list[HostDatagram]:
        if len(packet) < IP_HEADER:
            return self._drop("ip_truncated")
        ihl = (packet[0] & 0xF) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        if packet[0] >> 4 != 4 or ihl < IP_HEADER or total < ihl or total > len(packet):
            return self._drop("ip_malformed")
        if checksum(packet[:ihl]):
            return self._drop("ip_checksum")
        flags_frag = struct.unpack_from("!H", packet, 6)[0]
        if flags_frag & 0x3FFF:  # more fragments, or a fragment offset: no reassembly here
            return self._drop("ip_fragment")
        protocol, src, dst = packet[9], packet[12:16], packet[16:20]
        if src != GUEST_IP:
            return self._drop("ip_source")
        if dst != GATEWAY_IP:
            return self._drop("ip_destination")
        body = packet[ihl:total]  # Ethernet padding after `total` is not the packet's
        if protocol == IP_UDP:
            return self._udp(body)
        if protocol == IP_ICMP:
            return self._icmp(body)
        return self._drop("ip_protocol")

    def _udp(self, segment: bytes) -> list[HostDatagram]:
        if len(segment) < UDP_HEADER:
            return self._drop("udp_truncated")
        sport, dport, length, sum_ = struct.unpack_from("!HHHH", segment)
        if length < UDP_HEADER or length > len(segment):
            return self._drop("udp_malformed")
        segment = segment[:length]
        if sum_ != 0 and udp_checksum(GUEST_IP, GATEWAY_IP, segment):  # 0: sender computed none
            return self._drop("udp_checksum")
        if sport == 0 or dport == 0:
            return self._drop("udp_port_zero")
        if self._lost():
            return self._drop("loss_to_host")
        self.counters["udp_to_host"] += 1
        return [HostDatagram(sport, dport, segment[UDP_HEADER:])]

    def _icmp(self, message: bytes) -> list[HostDatagram]:
        if len(message) < 8 or checksum(message):
            return self._drop("icmp_malformed")
        if message[0] != 8:  # only echo requests are answered
            return self._drop("icmp_type")
        reply = b"\0\0\0\0" + message[4:]
        reply = reply[:2] + struct.pack("!H", checksum(reply)) + reply[4:]
        self._send_ip(IP_ICMP, reply)
        self.counters["icmp_echo_replies"] += 1
        return []

    # ---- host to guest -------------------------------------------------------

    def _send_ip(self, protocol: int, payload: bytes) -> None:
        self._ident = (self._ident + 1) & 0xFFFF
        packet = ipv4(GATEWAY_IP, GUEST_IP, protocol, payload, self._ident)
        self._send(ethernet(self.guest_mac, GATEWAY_MAC, ETH_IPV4, packet))

    def from_host(self, datagram: HostDatagram) -> None:
        """Queue a host datagram for the guest, as from 10.0.2.2:host_port."""
        if len(datagram.payload) > MAX_UDP_PAYLOAD:
            self._drop("host_oversize")
            return
        if self._lost():
            self._drop("loss_to_guest")
            return
        segment = udp(GATEWAY_IP, GUEST_IP, datagram.host_port, datagram.guest_port, datagram.payload)
        self._send_ip(IP_UDP, segment)
        self.counters["udp_to_guest"] += 1


# ---- port forwards ------------------------------------------------------------------

_FORWARD = re.compile(
    r"udp:(?:(?P<haddr>[^:-]*):)?(?P<hport>\d+)-(?P<gaddr>[^:]*):(?P<gport>\d+)(?:,node=(?P<node>\d+))?")


@dataclass(frozen=True)
class Forward:
    """`--net udp:HOSTPORT-:GUESTPORT`: 127.0.0.1:host_port reaches 10.0.2.15:guest_port on `node`."""

    host_port: int
    guest_port: int
    node: int | None = None  # None: the first node with a NIC


def parse_forward(spec: str) -> Forward:
    """Parse QEMU's hostfwd syntax, UDP only: udp:[127.0.0.1]:HOSTPORT-[10.0.2.15]:GUESTPORT[,node=N]."""
    usage = "expected udp:HOSTPORT-:GUESTPORT (QEMU's hostfwd syntax), optionally ',node=N'"
    match = _FORWARD.fullmatch(spec)
    if match is None:
        raise ValueError(f"bad --net {spec!r}: {usage}")
    if match["haddr"] not in (None, "", LOOPBACK, "localhost"):
        raise ValueError(f"bad --net {spec!r}: the host side is always {LOOPBACK}, never another address")
    if match["gaddr"] not in ("", str(ipaddress.IPv4Address(GUEST_IP))):
        raise ValueError(f"bad --net {spec!r}: the guest is 10.0.2.15")
    host_port, guest_port = int(match["hport"]), int(match["gport"])
    if not 0 <= host_port <= 65535 or not 1 <= guest_port <= 65535:
        raise ValueError(f"bad --net {spec!r}: ports are 1 to 65535 (host port 0: any free one)")
    return Forward(host_port, guest_port, int(match["node"]) if match["node"] else None)


# ---- pcap ----------------------------------------------------------------------------

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1


class PcapWriter:
    """A classic pcap file (microsecond timestamps, linktype Ethernet).

    Timestamps are simulated time (cycles at TIMEBASE_HZ from power-on), so the same
    run writes the same file.
    """

    def __init__(self, path: str | Path) -> None:
        self._file: BinaryIO = open(path, "wb")  # open as long as the machine runs
        self._file.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        self._file.flush()

    def write(self, frame: bytes, when: int) -> None:
        seconds, rest = divmod(when, TIMEBASE_HZ)
        micros = rest * 1_000_000 // TIMEBASE_HZ
        self._file.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
        self._file.flush()  # so that tcpdump -r on a running machine sees every frame so far

    def close(self) -> None:
        self._file.close()


# ---- the socket side --------------------------------------------------------------------

#: Outbound sessions (guest ports with a host socket of their own) per NIC.
MAX_SESSIONS = 64
#: Datagrams taken from the host per NIC at one round boundary; the rest wait in the OS.
MAX_PER_POLL = 64


def _udp_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class UserNet(Wire):
    """One NIC's user-mode network: a Bridge and the host sockets it talks through."""

    def __init__(self, mac: bytes, forwards: list[Forward] | None = None,
                 pcap: PcapWriter | None = None, loss: float = 0.0, seed: int = 0) -> None:
        self.bridge = Bridge(mac, loss, seed)
        self.pcap = pcap
        # Guest port -> socket: the forwards' sockets (bound to their host ports) and the
        # outbound sessions' (bound to a free port when the guest first sends from that port).
        self.forwards: dict[int, socket.socket] = {}
        self.sessions: dict[int, socket.socket] = {}
        try:
            for fwd in forwards or []:
                if fwd.guest_port in self.forwards:
                    raise ValueError(f"guest port {fwd.guest_port} is forwarded twice")
                self.forwards[fwd.guest_port] = _udp_socket(fwd.host_port)
        except (OSError, ValueError):
            self.close()
            raise

    def describe(self) -> list[str]:
        return [f"udp {LOOPBACK}:{sock.getsockname()[1]} -> 10.0.2.15:{port}"
                for port, sock in sorted(self.forwards.items())]

    def transmit(self, frame: bytes, when: int) -> None:
        if self.pcap is not None:
            self.pcap.write(frame, when)
        for datagram in self.bridge.from_guest(frame):
            self._to_host(datagram)

    def _to_host(self, datagram: HostDatagram) -> None:
        sock = self.forwards.get(datagram.guest_port) or self.sessions.get(datagram.guest_port)
        if sock is None:
            if len(self.sessions) >= MAX_SESSIONS:
                self.bridge.counters["drop_too_many_sessions"] += 1
                return
            sock = self.sessions[datagram.guest_port] = _udp_socket()
        try:
            sock.sendto(datagram.payload, (LOOPBACK, datagram.host_port))
        except OSError:  # e.g. a full socket buffer: UDP may lose it
            self.bridge.counters["drop_host_send"] += 1

    def poll(self, when: int) -> list[bytes]:
        budget = MAX_PER_POLL
        for guest_port, sock in sorted([*self.forwards.items(), *self.sessions.items()]):
            while budget > 0:
                try:
                    data, (addr, port) = sock.recvfrom(65536)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                budget -= 1
                if addr == LOOPBACK:  # bound to loopback, so always; but never carry anything else
                    self.bridge.from_host(HostDatagram(guest_port, port, data))
        frames = self.bridge.take_frames()
        if self.pcap is not None:
            for frame in frames:
                self.pcap.write(frame, when)
        return frames

    def filenos(self) -> list[int]:
        return [sock.fileno() for sock in [*self.forwards.values(), *self.sessions.values()]]

    def close(self) -> None:
        for sock in [*self.forwards.values(), *self.sessions.values()]:
            sock.close()
        self.forwards.clear()
        self.sessions.clear()
