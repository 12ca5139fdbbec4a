"""The UART must behave like the 16550 subset a driver is written against, and snapshot exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from psyche.machine.hostline import BufferLine
from psyche.machine.uart import (
    FCR,
    IER,
    IER_RX,
    IER_THRE,
    IIR,
    IIR_NONE,
    IIR_RX,
    IIR_THRE,
    LCR,
    LCR_DLAB,
    LSR,
    LSR_DR,
    LSR_OE,
    LSR_TEMT,
    LSR_THRE,
    MCR,
    MSR,
    RBR,
    SCR,
    THR,
    Uart,
)


class IrqLog:
    def __init__(self) -> None:
        self.levels: list[bool] = []

    def __call__(self, level: bool) -> None:
        self.levels.append(level)


def make_uart(rx_capacity: int = 4096) -> tuple[Uart, BufferLine, IrqLog]:
    line = BufferLine()
    irq = IrqLog()
    return Uart(line, irq, rx_capacity=rx_capacity), line, irq


def test_reset_state() -> None:
    uart, _, irq = make_uart()
    assert uart.read(LSR) == LSR_THRE | LSR_TEMT
    assert uart.read(IIR) == IIR_NONE
    assert uart.read(IER) == 0
    assert uart.read(RBR) == 0  # empty FIFO
    assert irq.levels == []
    assert not uart.irq_level


def test_transmit_goes_to_line_tail_and_listeners() -> None:
    uart, line, _ = make_uart()
    heard: list[bytes] = []
    uart.add_output_listener(heard.append)
    for b in b"hi\x00\xff\n":
        uart.write(THR, b)
    assert line.take_output() == b"hi\x00\xff\n"
    assert b"".join(heard) == b"hi\x00\xff\n"
    assert uart.output_tail(3) == b"\x00\xff\n"
    assert uart.output_tail(100) == b"hi\x00\xff\n"
    assert uart.output_tail(0) == b""
    assert uart.read(LSR) & (LSR_THRE | LSR_TEMT) == LSR_THRE | LSR_TEMT


def test_output_tail_is_bounded() -> None:
    uart = Uart(BufferLine(), lambda level: None, tail_size=4)
    for b in b"abcdefgh":
        uart.write(THR, b)
    assert uart.output_tail(10) == b"efgh"


def test_receive_and_dr_toggling() -> None:
    uart, _, _ = make_uart()
    uart.feed(b"ab")
    assert uart.read(LSR) & LSR_DR
    assert uart.read(RBR) == ord("a")
    assert uart.read(LSR) & LSR_DR
    assert uart.read(RBR) == ord("b")
    assert not uart.read(LSR) & LSR_DR


def test_poll_host_pulls_line_input() -> None:
    uart, line, _ = make_uart()
    uart.poll_host()
    assert not uart.read(LSR) & LSR_DR
    line.feed(b"xyz")
    uart.poll_host()
    assert bytes(uart.read(RBR) for _ in range(3)) == b"xyz"


def test_poll_host_takes_only_what_fits() -> None:
    """The rest stays with the line (the OS), so polling never causes overruns."""
    uart, line, _ = make_uart(rx_capacity=4)
    line.feed(b"0123456789")
    uart.poll_host()
    uart.poll_host()  # FIFO full: takes nothing
    assert bytes(uart.read(RBR) for _ in range(4)) == b"0123"
    uart.poll_host()
    assert bytes(uart.read(RBR) for _ in range(4)) == b"4567"
    uart.poll_host()
    assert bytes(uart.read(RBR) for _ in range(2)) == b"89"
    assert uart.overruns == 0


def test_fifo_overflow_drops_newest_and_counts() -> None:
    uart, _, _ = make_uart(rx_capacity=4)
    uart.feed(b"abc")
    uart.feed(b"defg")
    assert uart.overruns == 3
    assert uart.read(LSR) & LSR_OE
    assert not uart.read(LSR) & LSR_OE  # cleared by reading LSR
    assert bytes(uart.read(RBR) for _ in range(4)) == b"abcd"
    assert not uart.read(LSR) & LSR_DR


def test_scratch_lcr_mcr_msr() -> None:
    uart, _, _ = make_uart()
    uart.write(SCR, 0x5A)
    uart.write(LCR, 0x03)
    uart.write(MCR, 0xFF)
    assert uart.read(SCR) == 0x5A
    assert uart.read(LCR) == 0x03
    assert uart.read(MCR) == 0x1F
    assert uart.read(MSR) == 0xB0
    uart.write(SCR, 0x1A5)
    assert uart.read(SCR) == 0xA5
    assert uart.read(8) == 0
    uart.write(8, 1)


def test_divisor_latch_does_not_disturb_data_registers() -> None:
    uart, line, _ = make_uart()
    uart.write(IER, IER_RX)
    uart.feed(b"Q")
    uart.write(LCR, LCR_DLAB | 0x03)
    uart.write(RBR, 0x01)  # DLL
    uart.write(IER, 0x00)  # DLM
    assert uart.read(RBR) == 0x01
    assert uart.read(IER) == 0x00
    uart.write(LCR, 0x03)
    assert line.take_output() == b""
    assert uart.read(IER) == IER_RX
    assert uart.read(RBR) == ord("Q")


def test_rx_interrupt_levels() -> None:
    uart, _, irq = make_uart()
    uart.feed(b"a")
    assert irq.levels == []  # not enabled
    uart.write(IER, IER_RX)
    assert irq.levels == [True]
    assert uart.read(IIR) == IIR_RX
    assert uart.read(IIR) == IIR_RX  # stays until the data is read
    uart.read(RBR)
    assert irq.levels == [True, False]
    assert uart.read(IIR) == IIR_NONE
    uart.feed(b"bc")
    uart.read(RBR)
    assert irq.levels == [True, False, True]
    uart.write(IER, 0)
    assert irq.levels == [True, False, True, False]


def test_thre_interrupt_fires_on_enable_and_after_each_write() -> None:
    uart, _, irq = make_uart()
    uart.write(IER, IER_THRE)
    assert irq.levels == [True]
    assert uart.read(IIR) == IIR_THRE
    assert irq.levels == [True, False]  # reading IIR consumed it
    assert uart.read(IIR) == IIR_NONE
    uart.write(THR, ord("x"))  # transmitted at once: THR empty again
    assert irq.levels == [True, False, True]
    uart.write(IER, IER_THRE)  # already enabled: no new edge
    assert irq.levels == [True, False, True]
    uart.write(IER, 0)
    assert irq.levels == [True, False, True, False]


def test_rx_has_priority_over_thre() -> None:
    uart, _, irq = make_uart()
    uart.write(IER, IER_RX | IER_THRE)
    uart.feed(b"z")
    assert uart.read(IIR) == IIR_RX
    uart.read(RBR)
    assert uart.irq_level  # THRE still pending, not consumed by the IIR read above
    assert uart.read(IIR) == IIR_THRE
    assert not uart.irq_level
    assert irq.levels == [True, False]


def test_fcr_clears_rx_fifo() -> None:
    uart, _, irq = make_uart()
    uart.write(IER, IER_RX)
    uart.feed(b"junk")
    uart.write(FCR, 0x01)
    assert uart.read(LSR) & LSR_DR
    uart.write(FCR, 0x07)
    assert not uart.read(LSR) & LSR_DR
    assert irq.levels == [True, False]


def test_snapshot_round_trip_is_exact() -> None:
    uart, _, _ = make_uart()
    uart.write(LCR, LCR_DLAB)
    uart.write(THR, 0x0C)
    uart.write(IER, 0x00)
    uart.write(LCR, 0x03)
    uart.write(IER, IER_RX | IER_THRE)
    uart.write(MCR, 0x0B)
    uart.write(SCR, 0x42)
    uart.feed(bytes(range(256)) * 17)  # overflows a 4096-byte FIFO
    state = json.loads(json.dumps(uart.get_state()))

    irq = IrqLog()
    copy = Uart(BufferLine(), irq)
    copy.set_state(state)
    assert copy.get_state() == uart.get_state()
    assert irq.levels == [True]  # level reported after restore
    for offset in (IER, LCR, MCR, SCR, MSR, LSR, IIR):
        assert copy.read(offset) == uart.read(offset), offset
    assert [copy.read(RBR) for _ in range(4100)] == [uart.read(RBR) for _ in range(4100)]


def test_snapshot_rejects_oversized_fifo() -> None:
    uart, _, _ = make_uart(rx_capacity=8)
    uart.feed(b"12345678")
    small, _, _ = make_uart(rx_capacity=4)
    with pytest.raises(ValueError, match="capacity"):
        small.set_state(uart.get_state())


Op = tuple[Any, ...]

ops = st.one_of(
    st.tuples(st.just("feed"), st.binary(max_size=12)),
    st.tuples(st.just("read"), st.integers(0, 7)),
    st.tuples(st.just("write"), st.integers(0, 7), st.integers(0, 255)),
)


@given(st.lists(ops, max_size=40))
def test_snapshot_mid_run_then_same_future(script: list[Op]) -> None:
    """Restoring a snapshot into a fresh UART gives the same register reads from then on."""
    uart, _, _ = make_uart(rx_capacity=16)
    half = len(script) // 2

    def run(u: Uart, steps: list[Op]) -> list[int]:
        reads = []
        for op in steps:
            if op[0] == "feed":
                u.feed(op[1])
            elif op[0] == "read":
                reads.append(u.read(op[1]))
            else:
                u.write(op[1], op[2])
        return reads

    run(uart, script[:half])
    copy, _, _ = make_uart(rx_capacity=16)
    copy.set_state(json.loads(json.dumps(uart.get_state())))
    assert run(copy, script[half:]) == run(uart, script[half:])
    assert copy.get_state() == uart.get_state()
    assert copy.irq_level == uart.irq_level
