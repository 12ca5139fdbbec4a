"""Physical memory of the whole machine: every node's RAM, shared by all CPUs.

RAM is global, as on the Butterfly: node k's 4 MiB sit at
RAM_BASE + k * NODE_RAM_SIZE and every node reaches every node's RAM.  Each
node's RAM is a vector of 32-bit words (signed i32 slots holding the word's
bits; `read_word` and the CPU see them as unsigned values).

Besides the words themselves this module owns what must stay coherent across
nodes:

* decoded-instruction pages, keyed by global physical page, so code is
  decoded once and a store into it (by any node, the loader or lld) drops
  the stale decoding;
* LR/SC reservations, so a store by one node breaks another's reservation;
* watched pages, which CPUs must keep out of their fast paths so that every
  access to them reaches `watch_hook` (the riscv-tests `tohost` word,
  debugger watchpoints);
* an epoch that CPUs compare at the start of each block to learn that their
  TLBs hold fast-path entries that are no longer allowed.

Physical addresses outside RAM go to `bus`, the node-local device window.
"""

import sys
from typing import Any, Final

from librt.vecs import vec
from mypy_extensions import i32, i64

from psyche.machine.isa import OP_UNDECODED

RAM_BASE: Final = 0x80000000
NODE_RAM_SIZE: Final = 0x400000
NODE_WORDS: Final = 1 << 20
NODE_SHIFT: Final = 22
PAGE_WORDS: Final = 1024
MAX_NODES: Final = 128

_ZERO_RAM: vec[i32] | None = None

if sys.byteorder != "little":
    raise ImportError("the machine keeps RAM words in the host's byte order, which must be the "
                      "guest's: little-endian")


def to_i32(value: i64) -> i32:
    """The low 32 bits of value as a signed 32-bit RAM word (same bits, no overflow)."""
    v: i64 = value & 0xFFFFFFFF
    return i32(v - ((v & 0x80000000) << 1))


def _zeroed_ram() -> vec[i32]:
    """A fresh zero-filled node RAM; slicing a template is a memcpy."""
    global _ZERO_RAM
    template = _ZERO_RAM
    if template is None:
        template = vec[i32]([0] * NODE_WORDS)
        _ZERO_RAM = template
    return template[0:NODE_WORDS]


class PhysMem:
    def __init__(self, nnodes: i64, remote_penalty: i64) -> None:
        if nnodes < 1 or nnodes > MAX_NODES:
            raise ValueError(f"node count {nnodes} out of range 1..{MAX_NODES}")
        self.nnodes: i64 = nnodes
        self.ram_end: i64 = RAM_BASE + nnodes * NODE_RAM_SIZE
        self.rams: list[vec[i32]] = [_zeroed_ram() for _ in range(nnodes)]
        # Extra simulated cycles a reference to another node's RAM costs.
        self.remote_penalty: i64 = remote_penalty
        self.code_page_index: dict[int, int] = {}
        self.code_pages: list[vec[i64]] = []
        # Per code page, how many times a store dropped one of its decodings
        # (code translated from the page is stale when this moves; stores to
        # words never decoded, data beside code, leave it alone).
        self.code_generations: list[int] = []
        self.code_epoch: i64 = 0  # moves with any page's generation
        self.reservations: vec[i64] = vec[i64]([-1] * nnodes)
        self.nreservations: i64 = 0
        self.watched_pages: dict[int, int] = {}
        self.epoch: i64 = 0
        # Called before an access to a watched page as
        # watch_hook(node, paddr, size, is_write, value) -> WATCH_* action (cpu.py).
        self.watch_hook: Any = None
        # Node-local devices: bus.read(node, paddr, size) -> int (-1: access fault),
        # bus.write(node, paddr, size, value) -> bool (False: access fault).
        self.bus: Any = None

    # -- address decoding ------------------------------------------------

    def is_ram(self, paddr: i64) -> bool:
        return paddr >= RAM_BASE and paddr < self.ram_end

    def node_of(self, paddr: i64) -> i64:
        return (paddr - RAM_BASE) >> NODE_SHIFT

    def location(self, paddr: i64) -> i64:
        """Location of a RAM address: node << 20 | word index, or -1 outside RAM."""
        if paddr < RAM_BASE or paddr >= self.ram_end:
            return -1
        off: i64 = paddr - RAM_BASE
        return ((off >> NODE_SHIFT) << 20) | ((off & (NODE_RAM_SIZE - 1)) >> 2)

    # -- word access used by the CPU's slow paths, lld and loaders -------

    def read_word(self, paddr: i64) -> i64:
        """The aligned word containing paddr (which must be RAM)."""
        loc: i64 = self.location(paddr)
        return i64(self.rams[loc >> 20][loc & 0xFFFFF]) & 0xFFFFFFFF

    def write_word(self, paddr: i64, value: i64, node: i64) -> None:
        """Store a word on behalf of `node` (-1: not a CPU), keeping caches coherent."""
        loc: i64 = self.location(paddr)
        self.rams[loc >> 20][loc & 0xFFFFF] = to_i32(value)
        self.after_store(paddr, node)

    def after_store(self, paddr: i64, node: i64) -> None:
        """Break other nodes' reservations and drop stale decodings of paddr."""
        if self.nreservations != 0:
            self.break_reservations(paddr & ~3, node)
        index = self.code_page_index.get(paddr >> 12)
        if index is not None:
            page = self.code_pages[index]
            if page[(paddr >> 2) & 1023] != OP_UNDECODED:
                page[(paddr >> 2) & 1023] = OP_UNDECODED
                self.code_generations[index] += 1
                self.code_epoch += 1

    def read_bytes(self, paddr: i64, length: i64) -> bytes:
        """length bytes of RAM from paddr, a node's RAM at a time.

        Each piece is a copy of the vector's own bytes: its i32 words are stored in the
        host's byte order, which is the guest's (little-endian, checked at import), so a
        debugger's 16 KiB read is one memcpy, not 4096 words converted one by one.
        """
        out = bytearray()
        a: i64 = paddr
        end: i64 = paddr + length
        while a < end:
            node: i64 = self.location(a) >> 20
            base: i64 = RAM_BASE + node * NODE_RAM_SIZE
            stop: i64 = end if end < base + NODE_RAM_SIZE else base + NODE_RAM_SIZE
            with memoryview(self.rams[node]) as words, words.cast("B") as raw:
                out += raw[a - base: stop - base]
            a = stop
        return bytes(out)

    def write_bytes(self, paddr: i64, data: bytes, node: i64) -> None:
        a: i64 = paddr
        for b in data:
            w: i64 = self.read_word(a)
            shift: i64 = (a & 3) * 8
            self.write_word(a, (w & ~(0xFF << shift)) | (i64(b) << shift), node)
            a += 1

    def load_words(self, node: i64, start: i64, words: list[int]) -> None:
        """Fill node's RAM from word index start (snapshot restore; no coherence work)."""
        ram = self.rams[node]
        i: i64 = start
        for w in words:
            ram[i] = to_i32(w)
            i += 1

    def range_is_ram(self, paddr: i64, length: i64) -> bool:
        return length >= 0 and self.is_ram(paddr) and paddr + length <= self.ram_end

    # -- decoded code pages ----------------------------------------------

    def code_page(self, ppn: i64) -> i64:
        """Index of the decode cache for global physical page ppn, creating it."""
        index = self.code_page_index.get(ppn)
        if index is not None:
            return index
        new_index: i64 = len(self.code_pages)
        self.code_pages.append(vec[i64]([OP_UNDECODED] * PAGE_WORDS))
        self.code_generations.append(0)
        self.code_page_index[ppn] = new_index
        # Any CPU may hold this page in its write TLB: stores must now take
        # the slow path that drops stale decodings.
        self.epoch += 1
        return new_index

    # -- LR/SC -----------------------------------------------------------

    def reserve(self, node: i64, paddr: i64) -> None:
        if self.reservations[node] < 0:
            self.nreservations += 1
        self.reservations[node] = paddr

    def reservation_of(self, node: i64) -> i64:
        """The word node holds a reservation on, or -1."""
        return self.reservations[node]

    def take_reservation(self, node: i64, paddr: i64) -> bool:
        """Consume node's reservation; True if it was held on paddr."""
        held: i64 = self.reservations[node]
        if held < 0:
            return False
        self.reservations[node] = -1
        self.nreservations -= 1
        return held == paddr

    def break_reservations(self, word_addr: i64, node: i64) -> None:
        i: i64 = 0
        while i < self.nnodes:
            if i != node and self.reservations[i] == word_addr:
                self.reservations[i] = -1
                self.nreservations -= 1
            i += 1

    # -- watched pages ---------------------------------------------------

    def watch_page(self, ppn: i64) -> None:
        self.watched_pages[ppn] = self.watched_pages.get(ppn, 0) + 1
        self.epoch += 1

    def unwatch_page(self, ppn: i64) -> None:
        count = self.watched_pages.get(ppn, 0) - 1
        if count <= 0:
            self.watched_pages.pop(ppn, None)
        else:
            self.watched_pages[ppn] = count
        self.epoch += 1

    def is_watched(self, ppn: i64) -> bool:
        return ppn in self.watched_pages
