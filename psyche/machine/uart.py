"""A 16550-subset UART, the device behind every serial line of a node.

Only what a polled or interrupt-driven driver needs is modelled.  Transmission
is instant (THRE and TEMT always read 1), so the guest can never observe the
host being slow; the HostLine absorbs that.  Reception goes through a bounded
rx FIFO that is filled only by feed()/poll_host(), which the simulator calls at
points it chooses in simulated time, so a run is reproducible from its inputs.

Simplifications, each invisible to a driver that follows the register contract:
  * the rx-data interrupt fires whenever the FIFO is non-empty (no trigger
    levels, no character-timeout or line-status interrupt sources);
  * IIR does not report the FIFO-enabled bits (0xC0): it reads exactly 0x01,
    0x04 or 0x02;
  * the divisor latch (DLL/DLM, LCR bit 7) is stored and read back but has no
    effect, nor have LCR and MCR (loopback included) beyond being stored;
  * MSR reads CTS, DSR and DCD asserted, so a driver honouring modem control
    sees a peer that is ready;
  * reading RBR with the FIFO empty returns 0; offsets 8 and up read 0 and
    ignore writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psyche.machine.hostline import HostLine

RBR = THR = DLL = 0
IER = DLM = 1
IIR = FCR = 2
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7

IER_RX = 0x01
IER_THRE = 0x02

IIR_NONE = 0x01
IIR_THRE = 0x02
IIR_RX = 0x04

FCR_CLEAR_RX = 0x02

LCR_DLAB = 0x80

LSR_DR = 0x01
LSR_OE = 0x02
LSR_THRE = 0x20
LSR_TEMT = 0x40

MSR_READY = 0xB0  # DCD | DSR | CTS

DEFAULT_RX_CAPACITY = 4096
DEFAULT_TAIL_SIZE = 65536


class Uart:
    """One UART: byte registers at offsets 0..7, host I/O through a HostLine.

    `irq(level)` is called each time the interrupt output changes level (and
    once after set_state()).

    Overflow: when the rx FIFO is full, further incoming bytes are dropped (the
    bytes already queued are kept, as in a 16550), each dropped byte counts in
    `overruns`, and LSR's overrun bit is set until LSR is next read.
    poll_host() only takes from the host what fits, so overruns come from
    feed() callers; a host writing to a pty or socket is held back by the OS.
    """

    def __init__(
        self,
        line: HostLine,
        irq: Callable[[bool], None],
        rx_capacity: int = DEFAULT_RX_CAPACITY,
        tail_size: int = DEFAULT_TAIL_SIZE,
    ) -> None:
        self.line = line
        self._irq = irq
        self._rx_capacity = rx_capacity
        self._tail_size = tail_size
        self._tail = bytearray()
        self._listeners: list[Callable[[bytes], None]] = []
        self._rx = bytearray()
        self._ier = 0
        self._lcr = 0
        self._mcr = 0
        self._scr = 0
        self._dll = 0
        self._dlm = 0
        # A THR-empty interrupt is latched when the THR empties (instantly, after
        # each write) or when it is enabled, and consumed by reading it from IIR.
        self._thre_pending = False
        self._overrun = False
        self.overruns = 0
        self._level = False

    # ---- host side ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Queue host input for the guest; bytes that do not fit are dropped (see class doc)."""
        room = self._rx_capacity - len(self._rx)
        self._rx += data[:room]
        dropped = max(0, len(data) - room)
        if dropped:
            self.overruns += dropped
            self._overrun = True
        self._update_irq()

    def poll_host(self) -> None:
        """Move whatever host input fits from the line into the rx FIFO."""
        room = self._rx_capacity - len(self._rx)
        if room > 0:
            data = self.line.read_available(room)
            if data:
                self.feed(data)

    def add_output_listener(self, cb: Callable[[bytes], None]) -> None:
        """Call cb with every chunk the guest transmits (e.g. to match --until against it)."""
        self._listeners.append(cb)

    def output_tail(self, n: int) -> bytes:
        """The last n transmitted bytes (fewer if less was sent or kept)."""
        return bytes(self._tail[-n:]) if n > 0 else b""

    # ---- guest side --------------------------------------------------------

    def read(self, offset: int) -> int:
        """Read a byte register; reading RBR, IIR and LSR has side effects as on a 16550."""
        dlab = self._lcr & LCR_DLAB
        if offset == RBR:
            return self._dll if dlab else self._pop_rx()
        if offset == IER:
            return self._dlm if dlab else self._ier
        if offset == IIR:
            return self._read_iir()
        if offset == LCR:
            return self._lcr
        if offset == MCR:
            return self._mcr
        if offset == LSR:
            lsr = LSR_THRE | LSR_TEMT
            if self._rx:
                lsr |= LSR_DR
            if self._overrun:
                lsr |= LSR_OE
                self._overrun = False
            return lsr
        if offset == MSR:
            return MSR_READY
        if offset == SCR:
            return self._scr
        return 0

    def write(self, offset: int, value: int) -> None:
        """Write a byte register (value is truncated to 8 bits)."""
        value &= 0xFF
        dlab = self._lcr & LCR_DLAB
        if offset == THR:
            if dlab:
                self._dll = value
            else:
                self._transmit(value)
        elif offset == IER:
            if dlab:
                self._dlm = value
            else:
                if value & IER_THRE and not self._ier & IER_THRE:
                    self._thre_pending = True  # THR is always empty, so enabling fires at once
                self._ier = value & (IER_RX | IER_THRE)
        elif offset == FCR:
            if value & FCR_CLEAR_RX:
                self._rx.clear()
            # Bit 2 (clear tx FIFO) has nothing to clear: transmission is instant.
        elif offset == LCR:
            self._lcr = value
        elif offset == MCR:
            self._mcr = value & 0x1F
        elif offset == SCR:
            self._scr = value
        self._update_irq()

    def _pop_rx(self) -> int:
        if not self._rx:
            return 0
        byte = self._rx[0]
        del self._rx[:1]
        self._update_irq()
        return byte

    def _read_iir(self) -> int:
        if self._ier & IER_RX and self._rx:
            return IIR_RX
        if self._ier & IER_THRE and self._thre_pending:
            self._thre_pending = False
            self._update_irq()
            return IIR_THRE
        return IIR_NONE

    def _transmit(self, value: int) -> None:
        data = bytes((value,))
        self.line.write(data)
        self._tail += data
        if len(self._tail) > self._tail_size:
            del self._tail[: len(self._tail) - self._tail_size]
        for cb in self._listeners:
            cb(data)
        self._thre_pending = True

    def _compute_level(self) -> bool:
        return bool(
            (self._ier & IER_RX and self._rx) or (self._ier & IER_THRE and self._thre_pending)
        )

    def _update_irq(self) -> None:
        level = self._compute_level()
        if level != self._level:
            self._level = level
            self._irq(level)

    @property
    def irq_level(self) -> bool:
        """The current level of the interrupt output."""
        return self._level

    # ---- snapshots ---------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Device state as JSON-able data (host-side capture such as the output tail excluded)."""
        return {
            "rx": self._rx.hex(),
            "ier": self._ier,
            "lcr": self._lcr,
            "mcr": self._mcr,
            "scr": self._scr,
            "dll": self._dll,
            "dlm": self._dlm,
            "thre_pending": self._thre_pending,
            "overrun": self._overrun,
            "overruns": self.overruns,
        }

    def set_state(self, d: dict[str, Any]) -> None:
        """Restore get_state() output, then report the interrupt level to irq.

        The level is reported even if unchanged, so an interrupt controller
        rebuilt from scratch ends up seeing the restored level.
        """
        rx = bytes.fromhex(d["rx"])
        if len(rx) > self._rx_capacity:
            raise ValueError(
                f"snapshot rx FIFO holds {len(rx)} bytes, capacity is {self._rx_capacity}"
            )
        self._rx = bytearray(rx)
        self._ier = d["ier"]
        self._lcr = d["lcr"]
        self._mcr = d["mcr"]
        self._scr = d["scr"]
        self._dll = d["dll"]
        self._dlm = d["dlm"]
        self._thre_pending = d["thre_pending"]
        self._overrun = d["overrun"]
        self.overruns = d["overruns"]
        self._level = self._compute_level()
        self._irq(self._level)
