"""The NIC device model, driven through its registers as a driver would (no guest code)."""

from __future__ import annotations

import struct

import pytest

from psyche.machine import snapshot
from psyche.machine.devices import INTC_BASE, SRC_NIC
from psyche.machine.machine import Machine, MachineConfig
from psyche.machine.nic import (
    CTRL_RESET,
    CTRL_RX_EN,
    CTRL_TX_EN,
    DESC_DONE,
    DESC_ERR_BAD,
    DESC_ERR_OVERSIZE,
    INT_ERROR,
    INT_LINK,
    INT_RX,
    INT_RX_DROP,
    INT_TX,
    MAX_FRAME,
    NIC_BASE,
    NIC_ID,
    REG_COUNTERS,
    REG_CTRL,
    REG_ID,
    REG_INT_ENABLE,
    REG_INT_STATUS,
    REG_MAC_HI,
    REG_MAC_LO,
    REG_RX_BASE,
    REG_RX_HEAD,
    REG_RX_SIZE,
    REG_RX_TAIL,
    REG_STATUS,
    REG_TX_BASE,
    REG_TX_HEAD,
    REG_TX_SIZE,
    REG_TX_TAIL,
    Wire,
)
from psyche.machine.physmem import RAM_BASE

RX_RING = RAM_BASE + 0x1000
TX_RING = RAM_BASE + 0x2000
RX_BUFS = RAM_BASE + 0x10000
TX_BUFS = RAM_BASE + 0x20000
BUF = 2048


class ListWire(Wire):
    """A wire for tests: frames queued by the test, frames sent by the guest kept."""

    def __init__(self) -> None:
        self.inbound: list[bytes] = []
        self.sent: list[tuple[bytes, int]] = []

    def transmit(self, frame: bytes, when: int) -> None:
        self.sent.append((frame, when))

    def poll(self, when: int) -> list[bytes]:
        frames, self.inbound = self.inbound, []
        return frames


def reg(machine: Machine, offset: int, node: int = 0) -> int:
    return machine.mem.bus.read(node, NIC_BASE + offset, 4)


def wreg(machine: Machine, offset: int, value: int, node: int = 0) -> None:
    assert machine.mem.bus.write(node, NIC_BASE + offset, 4, value)


def counters(machine: Machine, node: int = 0) -> dict[str, int]:
    from psyche.machine.nic import COUNTERS
    return {name: reg(machine, REG_COUNTERS + 4 * i, node) for i, name in enumerate(COUNTERS)}


def setup_rings(machine: Machine, rx: int = 4, tx: int = 4) -> None:
    for i in range(rx):
        machine.write_phys(RX_RING + 16 * i, struct.pack("<IIII", RX_BUFS + BUF * i, BUF, 0, 0))
    wreg(machine, REG_RX_BASE, RX_RING)
    wreg(machine, REG_RX_SIZE, rx)
    wreg(machine, REG_TX_BASE, TX_RING)
    wreg(machine, REG_TX_SIZE, tx)
    wreg(machine, REG_RX_TAIL, rx - 1)  # every descriptor but one: head == tail means none
    wreg(machine, REG_CTRL, CTRL_RX_EN | CTRL_TX_EN)


def desc(machine: Machine, ring: int, i: int) -> tuple[int, int, int, int]:
    return struct.unpack("<IIII", machine.read_phys(ring + 16 * i, 16))


@pytest.fixture
def machine() -> Machine:
    m = Machine(MachineConfig(nodes=2))
    m.attach_wire(0, ListWire())
    return m


def wire(machine: Machine) -> ListWire:
    w = machine.nic(0).wire
    assert isinstance(w, ListWire)
    return w


def test_identity_and_link(machine: Machine) -> None:
    assert reg(machine, REG_ID) == NIC_ID
    mac = struct.pack("<IH", reg(machine, REG_MAC_LO), reg(machine, REG_MAC_HI))
    assert mac == bytes.fromhex("525400123456")
    assert reg(machine, REG_STATUS) == 1
    assert reg(machine, REG_INT_STATUS) == INT_LINK  # the link came up when the wire was attached
    # Only the king has a NIC by default: node 1's window faults there.
    assert machine.mem.bus.read(1, NIC_BASE + REG_ID, 4) == -1
    # Word registers take aligned word accesses only.
    assert machine.mem.bus.read(0, NIC_BASE + 1, 4) == -1
    assert machine.mem.bus.read(0, NIC_BASE, 2) == -1


def test_nic_on_other_nodes() -> None:
    m = Machine(MachineConfig(nodes=4, nic_nodes=(0, 3)))
    assert m.mem.bus.read(3, NIC_BASE + REG_ID, 4) == NIC_ID
    assert m.mem.bus.read(1, NIC_BASE + REG_ID, 4) == -1
    assert m.mem.bus.read(3, NIC_BASE + REG_MAC_HI, 4) == 0x5934
    assert reg(m, REG_STATUS, 3) == 0  # nothing attached: link down
    with pytest.raises(ValueError, match="NIC on node 5"):
        Machine(MachineConfig(nodes=4, nic_nodes=(5,)))
    assert not Machine(MachineConfig(nodes=2, nic_nodes=())).config.nic_nodes


def test_receive_dma_interrupt_and_counters(machine: Machine) -> None:
    setup_rings(machine)
    wreg(machine, REG_INT_STATUS, 0xFFFFFFFF)
    wreg(machine, REG_INT_ENABLE, INT_RX)
    intc = machine.king.devices.intc
    assert not intc.levels & (1 << SRC_NIC)
    frame = bytes(range(60)) + b"odd"
    wire(machine).inbound = [frame]
    machine.poll_host()
    assert machine.read_phys(RX_BUFS, len(frame)) == frame
    assert desc(machine, RX_RING, 0)[2] == DESC_DONE | len(frame) << 16
    assert reg(machine, REG_RX_HEAD) == 1
    assert reg(machine, REG_INT_STATUS) == INT_RX
    assert intc.levels & (1 << SRC_NIC)
    assert machine.mem.bus.read(0, INTC_BASE, 4) & (1 << SRC_NIC)
    wreg(machine, REG_INT_STATUS, INT_RX)  # write 1 to clear: the line falls
    assert not intc.levels & (1 << SRC_NIC)
    c = counters(machine)
    assert (c["rx_frames"], c["rx_bytes"]) == (1, len(frame))


def test_receive_ring_full_oversize_and_off(machine: Machine) -> None:
    setup_rings(machine, rx=4)
    machine.write_phys(RX_RING + 16 * 1 + 4, struct.pack("<I", 100))  # a small buffer
    wire(machine).inbound = [b"a" * 64, b"b" * 200, b"c" * 64, b"d" * 64]
    machine.poll_host()
    # Three descriptors were given (tail 3): the first took a frame, the second was too
    # small (consumed, flagged), the third took a frame, and the fourth frame found none.
    assert desc(machine, RX_RING, 1)[2] == DESC_DONE | DESC_ERR_OVERSIZE | 200 << 16
    assert machine.read_phys(RX_BUFS + 2 * BUF, 64) == b"c" * 64
    c = counters(machine)
    assert (c["rx_frames"], c["rx_drop_oversize"], c["rx_drop_full"]) == (2, 1, 1)
    assert reg(machine, REG_INT_STATUS) & INT_RX_DROP
    wreg(machine, REG_CTRL, CTRL_TX_EN)  # receiver off
    wire(machine).inbound = [b"e" * 64]
    machine.poll_host()
    assert counters(machine)["rx_drop_off"] == 1


def test_bad_receive_descriptor(machine: Machine) -> None:
    setup_rings(machine)
    machine.write_phys(RX_RING, struct.pack("<II", 0x1000, BUF))  # a buffer outside RAM
    wire(machine).inbound = [b"x" * 64]
    machine.poll_host()
    assert desc(machine, RX_RING, 0)[2] == DESC_DONE | DESC_ERR_BAD
    assert counters(machine)["bad_desc"] == 1
    assert reg(machine, REG_INT_STATUS) & INT_ERROR


def test_transmit(machine: Machine) -> None:
    setup_rings(machine, tx=4)
    frames = [b"\x01" * 60, b"\x02" * (MAX_FRAME + 1), b"\x03" * 5, b"\x04" * 1514]
    for i, frame in enumerate(frames):
        machine.write_phys(TX_BUFS + BUF * i, frame)
    # Three descriptors now (the ring holds at most size - 1), the fourth after wrapping.
    for i, frame in enumerate(frames[:3]):
        machine.write_phys(TX_RING + 16 * i, struct.pack("<IIII", TX_BUFS + BUF * i, len(frame), 0, 0))
    wreg(machine, REG_TX_TAIL, 3)
    assert reg(machine, REG_TX_HEAD) == 3
    assert [f for f, _ in wire(machine).sent] == [frames[0]]
    assert desc(machine, TX_RING, 0)[2] == DESC_DONE
    assert desc(machine, TX_RING, 1)[2] == DESC_DONE | DESC_ERR_OVERSIZE
    assert desc(machine, TX_RING, 2)[2] == DESC_DONE | DESC_ERR_BAD
    machine.write_phys(TX_RING + 16 * 3, struct.pack("<IIII", TX_BUFS + BUF * 3, 1514, 0, 0))
    wreg(machine, REG_TX_TAIL, 0)
    assert [f for f, _ in wire(machine).sent] == [frames[0], frames[3]]
    c = counters(machine)
    assert (c["tx_frames"], c["tx_bytes"], c["tx_drop_oversize"], c["bad_desc"]) == (2, 1574, 1, 1)
    assert reg(machine, REG_INT_STATUS) & INT_TX


def test_transmitter_off_holds_descriptors(machine: Machine) -> None:
    setup_rings(machine)
    wreg(machine, REG_CTRL, CTRL_RX_EN)
    machine.write_phys(TX_BUFS, b"\x05" * 60)
    machine.write_phys(TX_RING, struct.pack("<IIII", TX_BUFS, 60, 0, 0))
    wreg(machine, REG_TX_TAIL, 1)
    assert not wire(machine).sent and reg(machine, REG_TX_HEAD) == 0
    wreg(machine, REG_CTRL, CTRL_RX_EN | CTRL_TX_EN)
    assert len(wire(machine).sent) == 1


def test_reset(machine: Machine) -> None:
    setup_rings(machine)
    wire(machine).inbound = [b"x" * 64]
    machine.poll_host()
    wreg(machine, REG_CTRL, CTRL_RESET)
    assert reg(machine, REG_CTRL) == 0 and reg(machine, REG_RX_SIZE) == 0
    assert counters(machine)["rx_frames"] == 0
    assert reg(machine, REG_STATUS) == 1  # the link stays up


def test_snapshot_keeps_nic_state(machine: Machine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup_rings(machine)
    wreg(machine, REG_INT_ENABLE, INT_RX)
    wire(machine).inbound = [b"y" * 80]
    machine.poll_host()
    path = tmp_path / "nic.snap"
    snapshot.save(machine, path)
    restored = snapshot.restore(path)
    assert snapshot.digest(restored) == snapshot.digest(machine)
    assert reg(restored, REG_RX_HEAD) == 1 and counters(restored) == counters(machine)
    assert restored.king.devices.intc.levels & (1 << SRC_NIC)
    assert restored.config.nic_nodes == (0,)
