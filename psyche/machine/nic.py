"""An Ethernet interface: descriptor rings in RAM, DMA, a receive interrupt.

The register map and descriptor format are in docs/memory-map.md ("Network
interface").  The model is the usual head/tail ring of a simple NIC: the
driver owns descriptors from TAIL up to HEAD-1, the NIC those from HEAD up to
TAIL-1; the NIC advances HEAD as it fills (receive) or sends (transmit) them
and writes each descriptor's status word back.

Time and determinism: transmission is instant, at the store to TX_TAIL (or to
CTRL turning the transmitter on), and hands the frame to the wire.  Frames
from the wire enter only through `poll()`, which the machine calls between
rounds (Machine.poll_host), as serial input does; so a run is a function of
its input and the rounds at which it arrived.  A frame that finds no free
receive descriptor is dropped and counted, as on a real NIC: the ring is the
only buffer.

The wire (the host side: psyche/machine/netbridge.py, or a test's) is not
machine state; link status is, and so are the registers and counters, saved
by get_state()/set_state() for snapshots.  The NIC's DMA is plain RAM access
(no watchpoints, no remote-reference cost).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psyche.machine.physmem import PhysMem

NIC_BASE = 0x1000_4000
NIC_SIZE = 0x100

NIC_ID = 0x4E49_4331  # "NIC1" read as a big-endian word
MAX_FRAME = 1514      # Ethernet header and 1500 bytes of payload; no FCS
MIN_FRAME = 14        # an Ethernet header
MAX_RING = 1024
DESC_SIZE = 16

# Registers (byte offsets).
REG_ID = 0x00
REG_MAC_LO = 0x04
REG_MAC_HI = 0x08
REG_STATUS = 0x0C
REG_CTRL = 0x10
REG_INT_STATUS = 0x14
REG_INT_ENABLE = 0x18
REG_MAX_FRAME = 0x1C
REG_RX_BASE = 0x20
REG_RX_SIZE = 0x24
REG_RX_HEAD = 0x28
REG_RX_TAIL = 0x2C
REG_TX_BASE = 0x30
REG_TX_SIZE = 0x34
REG_TX_HEAD = 0x38
REG_TX_TAIL = 0x3C
REG_COUNTERS = 0x40

STATUS_LINK = 1 << 0

CTRL_RX_EN = 1 << 0
CTRL_TX_EN = 1 << 1
CTRL_RESET = 1 << 31

INT_RX = 1 << 0        # a frame was received into the ring
INT_TX = 1 << 1        # transmit descriptors were completed
INT_RX_DROP = 1 << 2   # a received frame was dropped (ring full, oversize, receiver off)
INT_LINK = 1 << 3      # link status changed
INT_ERROR = 1 << 4     # a bad descriptor was met
INT_ALL = INT_RX | INT_TX | INT_RX_DROP | INT_LINK | INT_ERROR

# Descriptor status word (offset 8), written by the NIC.
DESC_DONE = 1 << 0
DESC_ERR_BAD = 1 << 1       # buffer not in RAM, or length out of range
DESC_ERR_OVERSIZE = 1 << 2  # receive: frame longer than the buffer; transmit: longer than MAX_FRAME
DESC_LEN_SHIFT = 16         # receive: the frame's length in bits 16..31

#: Counters at REG_COUNTERS + 4 * index, in this order.
COUNTERS = (
    "rx_frames", "rx_bytes", "tx_frames", "tx_bytes",
    "rx_drop_full", "rx_drop_oversize", "tx_drop_oversize", "bad_desc", "rx_drop_off",
)


def default_mac(node: int) -> bytes:
    """QEMU's first guest MAC, 52:54:00:12:34:56, plus the node number in the last byte."""
    return bytes((0x52, 0x54, 0x00, 0x12, 0x34, (0x56 + node) & 0xFF))


class Wire:
    """The far end of the cable; this one has nothing plugged in.  Not machine state."""

    def transmit(self, frame: bytes, when: int) -> None:
        """The guest sent `frame` at simulated time `when` (cycles)."""

    def poll(self, when: int) -> list[bytes]:
        """Frames for the guest, taken at the round boundary at time `when`."""
        return []

    def filenos(self) -> list[int]:
        """Descriptors that poll readable when poll() would have frames (for the runner's sleep)."""
        return []

    def close(self) -> None:
        """Release host resources."""


class Nic:
    """One node's network interface."""

    def __init__(self, mem: PhysMem, irq: Callable[[bool], None], mac: bytes,
                 clock: Callable[[], int]) -> None:
        self.mem = mem
        self._irq = irq
        self.mac = mac
        self._clock = clock
        self.wire = Wire()
        self.link = False
        self._level = False
        self._reset()

    def _reset(self) -> None:
        self.ctrl = 0
        self.int_status = 0
        self.int_enable = 0
        self.rx = [0, 0, 0, 0]  # base, size, head, tail
        self.tx = [0, 0, 0, 0]
        self.counters = [0] * len(COUNTERS)

    # ---- host side -----------------------------------------------------------

    def attach(self, wire: Wire) -> None:
        """Plug a cable in (between rounds): the link comes up."""
        self.wire = wire
        self._set_link(True)

    def detach(self) -> None:
        self.wire = Wire()
        self._set_link(False)

    def replace_wire(self, wire: Wire) -> None:
        """Swap the far end without touching the link: a recording's wire for the live one, or the
        reverse (psyche/machine/record.py)."""
        self.wire = wire

    def _set_link(self, up: bool) -> None:
        if up != self.link:
            self.link = up
            self._raise(INT_LINK)

    def poll(self, when: int) -> None:
        """Take the wire's frames into the receive ring (between rounds only)."""
        if not self.link:
            return
        for frame in self.wire.poll(when):
            self.receive(frame)

    def counter(self, name: str) -> int:
        return self.counters[COUNTERS.index(name)]

    # ---- registers -------------------------------------------------------------

    def read(self, offset: int) -> int:
        if offset >= REG_COUNTERS:
            index = (offset - REG_COUNTERS) // 4
            return self.counters[index] if index < len(self.counters) else 0
        if REG_RX_BASE <= offset < REG_TX_BASE:
            return self.rx[(offset - REG_RX_BASE) // 4]
        if REG_TX_BASE <= offset < REG_COUNTERS:
            return self.tx[(offset - REG_TX_BASE) // 4]
        return {
            REG_ID: NIC_ID,
            REG_MAC_LO: int.from_bytes(self.mac[:4], "little"),
            REG_MAC_HI: int.from_bytes(self.mac[4:], "little"),
            REG_STATUS: STATUS_LINK if self.link else 0,
            REG_CTRL: self.ctrl,
            REG_INT_STATUS: self.int_status,
            REG_INT_ENABLE: self.int_enable,
            REG_MAX_FRAME: MAX_FRAME,
        }.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset == REG_CTRL:
            self._write_ctrl(value)
        elif offset == REG_INT_STATUS:
            self.int_status &= ~value
        elif offset == REG_INT_ENABLE:
            self.int_enable = value & INT_ALL
        elif offset in (REG_RX_BASE, REG_RX_SIZE, REG_TX_BASE, REG_TX_SIZE):
            ring = self.rx if offset < REG_TX_BASE else self.tx
            # A new ring starts empty: both indices back to 0.
            if offset in (REG_RX_BASE, REG_TX_BASE):
                ring[0] = value & ~(DESC_SIZE - 1)
            else:
                ring[1] = min(value, MAX_RING)
            ring[2] = ring[3] = 0
        elif offset == REG_RX_TAIL:
            self.rx[3] = value % self.rx[1] if self.rx[1] else 0
        elif offset == REG_TX_TAIL:
            self.tx[3] = value % self.tx[1] if self.tx[1] else 0
            self._transmit_ring()
        self._update_irq()

    def _write_ctrl(self, value: int) -> None:
        if value & CTRL_RESET:
            self._reset()
            return
        self.ctrl = value & (CTRL_RX_EN | CTRL_TX_EN)
        self._transmit_ring()

    # ---- interrupt -------------------------------------------------------------

    def _raise(self, bits: int) -> None:
        self.int_status |= bits
        self._update_irq()

    def _update_irq(self) -> None:
        level = (self.int_status & self.int_enable) != 0
        if level != self._level:
            self._level = level
            self._irq(level)

    @property
    def irq_level(self) -> bool:
        return self._level

    # ---- DMA -------------------------------------------------------------------

    def _bump(self, name: str, by: int = 1) -> None:
        index = COUNTERS.index(name)
        self.counters[index] = (self.counters[index] + by) & 0xFFFFFFFF

    def _descriptor(self, ring: list[int]) -> int | None:
        """Address of the descriptor at ring's HEAD, or None if it is not in RAM."""
        addr = ring[0] + DESC_SIZE * ring[2]
        return addr if self.mem.range_is_ram(addr, DESC_SIZE) else None

    def _advance(self, ring: list[int]) -> None:
        ring[2] = (ring[2] + 1) % ring[1]

    def _write_word(self, paddr: int, value: int) -> None:
        self.mem.write_word(paddr, value, -1)

    def _dma_in(self, paddr: int, data: bytes) -> None:
        """Copy data into RAM: whole words where aligned, as a DMA engine bursts."""
        mem = self.mem
        head = min(len(data), (-paddr) & 3)
        mem.write_bytes(paddr, data[:head], -1)
        body_end = head + ((len(data) - head) & ~3)
        for i in range(head, body_end, 4):
            mem.write_word(paddr + i, int.from_bytes(data[i:i + 4], "little"), -1)
        mem.write_bytes(paddr + body_end, data[body_end:], -1)

    def receive(self, frame: bytes) -> None:
        """DMA one frame into the next free receive descriptor, or drop and count it."""
        ring = self.rx
        if not self.ctrl & CTRL_RX_EN:
            self._drop("rx_drop_off")
            return
        if ring[1] == 0 or ring[2] == ring[3]:
            self._drop("rx_drop_full")
            return
        desc = self._descriptor(ring)
        self._advance(ring)
        if desc is None:
            self._bump("bad_desc")
            self._raise(INT_ERROR)
            return
        buf = self.mem.read_word(desc)
        capacity = self.mem.read_word(desc + 4)
        if capacity == 0 or not self.mem.range_is_ram(buf, capacity):
            self._bump("bad_desc")
            self._write_word(desc + 8, DESC_DONE | DESC_ERR_BAD)
            self._raise(INT_ERROR)
            return
        if len(frame) > capacity:
            self._write_word(desc + 8, DESC_DONE | DESC_ERR_OVERSIZE | len(frame) << DESC_LEN_SHIFT)
            self._drop("rx_drop_oversize")
            return
        self._dma_in(buf, frame)
        self._write_word(desc + 8, DESC_DONE | len(frame) << DESC_LEN_SHIFT)
        self._bump("rx_frames")
        self._bump("rx_bytes", len(frame))
        self._raise(INT_RX)

    def _drop(self, counter: str) -> None:
        self._bump(counter)
        self._raise(INT_RX_DROP)

    def _transmit_ring(self) -> None:
        """Send every descriptor from HEAD up to TAIL, now (transmission is instant)."""
        ring = self.tx
        sent = False
        while self.ctrl & CTRL_TX_EN and ring[1] and ring[2] != ring[3]:
            desc = self._descriptor(ring)
            self._advance(ring)
            sent = True
            if desc is None:
                self._bump("bad_desc")
                self._raise(INT_ERROR)
                continue
            self._write_word(desc + 8, DESC_DONE | self._transmit_one(desc))
        if sent:
            self._raise(INT_TX)

    def _transmit_one(self, desc: int) -> int:
        """Send the frame of one descriptor; the error bits of its status."""
        buf = self.mem.read_word(desc)
        length = self.mem.read_word(desc + 4)
        if length < MIN_FRAME or not self.mem.range_is_ram(buf, length):
            self._bump("bad_desc")
            self._raise(INT_ERROR)
            return DESC_ERR_BAD
        if length > MAX_FRAME:
            self._bump("tx_drop_oversize")
            return DESC_ERR_OVERSIZE
        frame = self.mem.read_bytes(buf, length)
        self._bump("tx_frames")
        self._bump("tx_bytes", length)
        if self.link:  # a frame sent with no cable plugged in is gone all the same
            self.wire.transmit(frame, self._clock())
        return 0

    # ---- snapshots ---------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        return {
            "mac": self.mac.hex(), "link": self.link, "ctrl": self.ctrl,
            "int_status": self.int_status, "int_enable": self.int_enable,
            "rx": list(self.rx), "tx": list(self.tx), "counters": list(self.counters),
        }

    def set_state(self, s: dict[str, Any]) -> None:
        """Restore get_state() output, then report the interrupt level (as Uart.set_state does)."""
        self.mac = bytes.fromhex(s["mac"])
        self.link = s["link"]
        self.ctrl = s["ctrl"]
        self.int_status = s["int_status"]
        self.int_enable = s["int_enable"]
        self.rx = list(s["rx"])
        self.tx = list(s["tx"])
        self.counters = list(s["counters"])
        self._level = (self.int_status & self.int_enable) != 0
        self._irq(self._level)
