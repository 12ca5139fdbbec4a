"""Node-local devices: CLINT, interrupt controller, doorbells, serial lines, NIC.

Every node decodes the same device window (docs/memory-map.md); an access
reaches the devices of the node that made it.  Register accesses are rare
next to RAM references, so this is plain Python behind the CPU's slow path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from psyche.machine.cpu import Cpu
from psyche.machine.nic import NIC_BASE, NIC_SIZE, Nic
from psyche.machine.uart import Uart

CLINT_BASE = 0x0200_0000
CLINT_SIZE = 0x1_0000
INTC_BASE = 0x0C00_0000
INTC_SIZE = 0x1000
ONBOARD_UART_BASE = 0x1000_0000
CONSOLE_UART_BASE = 0x1000_1000
UART_SIZE = 0x100
DOORBELL_BASE = 0x1000_3000
DOORBELL_SIZE = 0x100

# Interrupt controller sources (bit numbers in PENDING/ENABLE registers).
SRC_DOORBELL = 1
SRC_ONBOARD_UART = 2
SRC_CONSOLE_UART = 3
SRC_NIC = 4


class Registers(Protocol):
    """A device with 32-bit registers at word offsets."""

    def read(self, offset: int) -> int: ...

    def write(self, offset: int, value: int) -> None: ...


@dataclass
class InterruptController:
    """Level-triggered sources routed to the hart's MEIP and SEIP lines."""

    cpu: Cpu
    # Called when a line rises, so that a node sleeping in WFI gets to run.
    wake: Callable[[], None]
    levels: int = 0
    enable_m: int = 0
    enable_s: int = 0

    def set_level(self, source: int, high: bool) -> None:
        bit = 1 << source
        self.levels = (self.levels | bit) if high else (self.levels & ~bit)
        self.update()

    def update(self) -> None:
        cpu = self.cpu
        was = (cpu.ext_m, cpu.ext_s)
        cpu.ext_m = (self.levels & self.enable_m) != 0
        cpu.ext_s = (self.levels & self.enable_s) != 0
        if (cpu.ext_m and not was[0]) or (cpu.ext_s and not was[1]):
            self.wake()

    def read(self, offset: int) -> int:
        return {0: self.levels, 4: self.enable_m, 8: self.enable_s}.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        if offset == 4:
            self.enable_m = value
        elif offset == 8:
            self.enable_s = value
        self.update()


@dataclass
class Doorbell:
    """Remote interrupts between nodes, and the start of held nodes.

    Registers: +0 NODE_ID, +4 NODE_COUNT, +8 RING (write a node number),
    +0xC START_PC (where a held node rung by this node starts),
    +0x10..+0x1C PENDING_FROM bitmap of ringing nodes (write 1 to clear),
    +0x20..+0x2C HALTED bitmap of nodes stopped by the host (a debugger), read only.
    """

    node: int
    node_count: int
    intc: InterruptController
    # ring(target, sender, start_pc) is supplied by the machine.
    ring: Callable[[int, int, int], None]
    start_pc: int = 0
    pending_from: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    # halted(word) is word `word` of the machine's bitmap of stopped nodes (derived, not state).
    halted: Callable[[int], int] = lambda word: 0

    def read(self, offset: int) -> int:
        if offset == 0:
            return self.node
        if offset == 4:
            return self.node_count
        if offset == 0xC:
            return self.start_pc
        if 0x10 <= offset < 0x20:
            return self.pending_from[(offset - 0x10) // 4]
        if 0x20 <= offset < 0x30:
            return self.halted((offset - 0x20) // 4)
        return 0

    def write(self, offset: int, value: int) -> None:
        if offset == 8:
            if value < self.node_count:  # a ring to a node that does not exist goes nowhere
                self.ring(value, self.node, self.start_pc)
        elif offset == 0xC:
            self.start_pc = value
        elif 0x10 <= offset < 0x20:
            self.pending_from[(offset - 0x10) // 4] &= ~value
            self.intc.set_level(SRC_DOORBELL, any(self.pending_from))

    def receive(self, sender: int) -> None:
        self.pending_from[sender // 32] |= 1 << (sender % 32)
        self.intc.set_level(SRC_DOORBELL, True)


@dataclass
class Clint:
    """SiFive-layout CLINT for one hart; the timer state itself lives in the CPU."""

    cpu: Cpu

    def read(self, offset: int) -> int:
        cpu = self.cpu
        if offset == 0:
            return 1 if cpu.msip else 0
        if offset == 0x4000:
            return cpu.mtimecmp_lo
        if offset == 0x4004:
            return cpu.mtimecmp_hi
        if offset == 0xBFF8:
            return cpu.cycles & 0xFFFFFFFF
        if offset == 0xBFFC:
            return (cpu.cycles >> 32) & 0xFFFFFFFF
        return 0

    def write(self, offset: int, value: int) -> None:
        cpu = self.cpu
        if offset == 0:
            cpu.msip = (value & 1) != 0
        elif offset == 0x4000:
            cpu.mtimecmp_lo = value
        elif offset == 0x4004:
            cpu.mtimecmp_hi = value
        # mtime is the node's clock: writes to it are ignored.


@dataclass
class NodeDevices:
    """The device window of one node."""

    clint: Clint
    intc: InterruptController
    doorbell: Doorbell
    onboard: Uart
    console: Uart | None = None
    nic: Nic | None = None

    def _decode(self, paddr: int) -> tuple[Registers | Uart, int] | None:
        if CLINT_BASE <= paddr < CLINT_BASE + CLINT_SIZE:
            return self.clint, paddr - CLINT_BASE
        if INTC_BASE <= paddr < INTC_BASE + INTC_SIZE:
            return self.intc, paddr - INTC_BASE
        if DOORBELL_BASE <= paddr < DOORBELL_BASE + DOORBELL_SIZE:
            return self.doorbell, paddr - DOORBELL_BASE
        if ONBOARD_UART_BASE <= paddr < ONBOARD_UART_BASE + UART_SIZE:
            return self.onboard, paddr - ONBOARD_UART_BASE
        if self.console is not None and CONSOLE_UART_BASE <= paddr < CONSOLE_UART_BASE + UART_SIZE:
            return self.console, paddr - CONSOLE_UART_BASE
        if self.nic is not None and NIC_BASE <= paddr < NIC_BASE + NIC_SIZE:
            return self.nic, paddr - NIC_BASE
        return None

    def read(self, paddr: int, size: int) -> int:
        """Register value, or -1 for an access fault."""
        target = self._decode(paddr)
        if target is None:
            return -1
        device, offset = target
        if isinstance(device, Uart):
            return device.read(offset) & 0xFF  # byte registers: any access size
        if size != 4 or offset & 3:
            return -1  # word registers take aligned word accesses only
        return device.read(offset) & 0xFFFFFFFF

    def write(self, paddr: int, size: int, value: int) -> bool:
        """False for an access fault."""
        target = self._decode(paddr)
        if target is None:
            return False
        device, offset = target
        if isinstance(device, Uart):
            device.write(offset, value & 0xFF)
            return True
        if size != 4 or offset & 3:
            return False
        device.write(offset, value)
        return True


class DeviceBus:
    """What the CPUs' slow paths call for any physical address outside RAM."""

    def __init__(self, nodes: list[NodeDevices]) -> None:
        self.nodes = nodes

    def read(self, node: int, paddr: int, size: int) -> int:
        return self.nodes[node].read(paddr, size)

    def write(self, node: int, paddr: int, size: int, value: int) -> bool:
        return self.nodes[node].write(paddr, size, value)
