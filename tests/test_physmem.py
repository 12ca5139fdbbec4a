"""PhysMem's bulk read (a debugger's memory reads) against its word-by-word view."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from psyche.machine.physmem import NODE_RAM_SIZE, RAM_BASE, PhysMem

NODES = 3


def _filled() -> PhysMem:
    mem = PhysMem(NODES, 0)
    rng = random.Random(7)
    # Words near both node boundaries and at the very end, with their sign bits set and clear.
    for node in range(NODES):
        base = RAM_BASE + node * NODE_RAM_SIZE
        for addr in [*range(base, base + 64, 4), *range(base + NODE_RAM_SIZE - 64, base + NODE_RAM_SIZE, 4)]:
            mem.write_word(addr, rng.getrandbits(32), -1)
    return mem


MEM = _filled()


def _by_words(mem: PhysMem, paddr: int, length: int) -> bytes:
    return bytes((mem.read_word(a & ~3) >> 8 * (a & 3)) & 0xFF for a in range(paddr, paddr + length))


@settings(max_examples=300, deadline=None)
@given(node=st.integers(0, NODES - 1), near_end=st.booleans(), offset=st.integers(0, 63),
       length=st.integers(0, 200))
def test_read_bytes_is_the_words_in_guest_byte_order(node: int, near_end: bool, offset: int,
                                                     length: int) -> None:
    """Unaligned starts and ends, and ranges across a node boundary, byte for byte."""
    base = RAM_BASE + node * NODE_RAM_SIZE + (NODE_RAM_SIZE - 64 if near_end else 0)
    paddr = base + offset
    length = min(length, MEM.ram_end - paddr)
    assert MEM.read_bytes(paddr, length) == _by_words(MEM, paddr, length)


def test_a_write_shows_in_the_next_read() -> None:
    mem = PhysMem(1, 0)
    mem.write_word(RAM_BASE + 8, 0x80402010, -1)
    assert mem.read_bytes(RAM_BASE + 6, 6) == bytes((0, 0, 0x10, 0x20, 0x40, 0x80))
