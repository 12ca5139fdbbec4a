"""The CPU as plain Python: the interpreter, with straight-line code translated into blocks.

When the hot path is not compiled (PSYCHE_PURE=1, or no C compiler), the
instruction-at-a-time interpreter in cpu.py runs at about 1 MIPS, too slow
to boot a kernel in reasonable time.  BlockCpu keeps the interpreter for
everything rare (first fetches of a page, TLB refills, CSRs, traps, atomics,
devices, watched pages, code on another node) and runs the rest as Python
functions made from runs of decoded instructions (blockgen.py), several
times faster.

Results are the interpreter's, bit for bit: the same instructions retire
at the same cycles with the same references counted.  The rules that make
it so:

* a block is entered only when its last instruction would still start
  before the limit if every data reference were remote; near the limit the
  interpreter runs the rest;
* a block gives way to the interpreter before any instruction that needs a
  slow path, and _exec returns after the interpreter ran, exactly where the
  interpreter would have re-checked interrupts or ended its own run (no
  instruction in a block can change what is pending);
* a block never covers a breakpoint (blocks are dropped when the set
  changes), and a store into a page drops the page's blocks (its code
  generation moves).

PSYCHE_BLOCKS=0 runs the plain interpreter instead (to compare the two).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import NamedTuple

from psyche.machine import blockgen, cpu, hotpath, isa
from psyche.machine.cpu import STOP_BREAKPOINT, TLB_MASK, Cpu
from psyche.machine.csr import MCONTROL_EXECUTE
from psyche.machine.physmem import PhysMem


class Block(NamedTuple):
    """A translated block, unpacked as a tuple by the dispatch loop."""

    run: Callable[[int, int], tuple[int, int, int, int, bool]]
    worst: int  # cycles before its last instruction starts if every reference is remote
    generation: int  # of the code page it was translated from


def _interpreter_at(pc: int) -> Callable[[int, int], tuple[int, int, int, int, bool]]:
    """The `run` of a place where no block starts: the interpreter runs the instruction at pc."""
    return lambda dctx, room: (pc, 0, 0, 0, True)


# What the interpreter does after the blocks: nothing, one instruction, a
# while (cold code), the rest of the run.
_NOTHING = 0
_ONE_INSTRUCTION = 1
_A_WHILE = 2
_TO_THE_LIMIT = 3
# A block is translated once its start has been reached _HOT times without
# one, so the third time (_HOT + 1); the first _HOT times the interpreter
# runs _COLD_RUN cycles from there instead (most code runs a few times only,
# and translating costs as much as interpreting ~1000 instructions).
_HOT = 2
_COLD_RUN = 64


# Compiled blocks, shared by every CPU in the process: nodes that run copies
# of the same code at the same addresses (every node's kernel) compile it once.
_CompiledKey = tuple[tuple[int, ...], tuple[int, ...], int]
_compiled_blocks: dict[_CompiledKey, tuple[CodeType, int]] = {}
_COMPILED_LIMIT = 50_000


def _compiled(pcs: list[int], decoded: list[int], penalty: int) -> tuple[CodeType, int]:
    """The code of the block function for these instructions, and its worst case."""
    key = (tuple(pcs), tuple(decoded), penalty)
    hit = _compiled_blocks.get(key)
    if hit is None:
        if len(_compiled_blocks) >= _COMPILED_LIMIT:
            _compiled_blocks.clear()
        block = blockgen.block_source(pcs, decoded, penalty)
        module = compile(block.source, f"<block {pcs[0]:#010x}>", "exec")
        code = next(c for c in module.co_consts if isinstance(c, CodeType))
        hit = _compiled_blocks[key] = (code, block.worst)
    return hit


def blocks_enabled() -> bool:
    return hotpath.mode() == "pure" and os.environ.get("PSYCHE_BLOCKS") != "0"


def make_cpu(node: int, mem: PhysMem) -> Cpu:
    """The node CPU for this process: compiled interpreter, or pure Python with blocks."""
    return BlockCpu(node, mem) if blocks_enabled() else Cpu(node, mem)


class BlockCpu(Cpu):
    def __init__(self, node: int, mem: PhysMem) -> None:
        super().__init__(node, mem)
        # Plain Python indexes lists faster than vectors; the values are the same.
        self.regs = list(self.regs)  # type: ignore[assignment]
        self.rtag, self.rval = list(self.rtag), list(self.rval)  # type: ignore[assignment]
        self.wtag, self.wval = list(self.wtag), list(self.wval)  # type: ignore[assignment]
        self.xtag, self.xval = list(self.xtag), list(self.xval)  # type: ignore[assignment]
        # Mirrors of the load and store TLBs' entries for this node's own RAM,
        # per data-translation context: page address -> index of the page's
        # first word.  Blocks look up the current context's (bound at each run).
        self._local_reads: dict[int, dict[int, int]] = {}
        self._local_writes: dict[int, dict[int, int]] = {}
        self._blocks: dict[int, Block] = {}
        # The block for a pc (and fetch context), found through the fetch TLB,
        # the breakpoints and the blocks above: valid until any of them changes.
        self._routes: dict[int, Block] = {}
        self._code_epoch_seen = mem.code_epoch
        self._heat: dict[int, int] = {}  # how often each block start was reached untranslated
        self._breakpoints_seen: set[int] = set()
        self._globals = dict(
            me=node, r=self.regs, ram=mem.rams[node], rams=mem.rams, rtag=self.rtag, rval=self.rval,
            wtag=self.wtag, wval=self.wval, local_reads={}, local_writes={}, mem=mem, alu=cpu._alu,
        )
        assert set(self._globals) == set(blockgen.BOUND_NAMES)

    def _exec(self, limit: int) -> None:
        if self.skip_breakpoint_pc != -1:
            Cpu._exec(self, min(limit, self.cycles + 1))  # resume over the stop: the interpreter's job
            return
        if self.csr.triggers_armed & MCONTROL_EXECUTE:
            Cpu._exec(self, limit)  # every fetch is checked against the triggers: the interpreter's job
            return
        mem = self.mem
        if self.epoch_seen != mem.epoch:
            self.flush_tlb()
        if self.breakpoints != self._breakpoints_seen:
            self._blocks.clear()
            self._routes.clear()
            self._breakpoints_seen = set(self.breakpoints)
        if self._code_epoch_seen != mem.code_epoch:
            self._drop_stale_blocks()
        # Nothing below changes code, breakpoints or TLB entries before the
        # interpreter runs, which is the end of this call.
        self._globals["local_reads"] = self._local_reads.setdefault(self.dctx, {})
        self._globals["local_writes"] = self._local_writes.setdefault(self.dctx, {})
        breakpoints = self.breakpoints
        blocks = self._blocks
        routes = self._routes
        heat = self._heat
        xtag, xval = self.xtag, self.xval
        xctx, dctx = self.xctx, self.dctx
        context = xctx << 12
        penalty = mem.remote_penalty
        pc, cycles = self.pc, self.cycles
        references = remote_refs = retired = 0
        then = _NOTHING
        while cycles < limit:
            block = routes.get(pc | context)
            if block is None:
                vpn = pc >> 12
                t = vpn & TLB_MASK
                entry = xval[t]
                if xtag[t] != vpn | xctx or entry & 1:
                    then = _ONE_INSTRUCTION  # fetch TLB miss, or code in another node's RAM
                    break
                if breakpoints and pc in breakpoints:
                    self.stop_reason = STOP_BREAKPOINT
                    break
                key = pc | entry >> 1 << 32
                block = blocks.get(key)
                if block is None:
                    if heat.get(key, 0) < _HOT:
                        heat[key] = heat.get(key, 0) + 1
                        then = _A_WHILE  # code seen rarely: not worth translating yet
                        break
                    block = blocks[key] = self._translate_block(pc, entry >> 1)
                routes[pc | context] = block
            run, worst, _ = block
            if cycles + worst >= limit:
                then = _TO_THE_LIMIT
                break
            pc, done, refs, remote, slow = run(dctx, limit - cycles)
            retired += done
            cycles += done + remote * penalty
            references += refs
            remote_refs += remote
            if slow:
                then = _ONE_INSTRUCTION  # the instruction at pc needs a slow path
                break
        self.pc, self.cycles, self.instret = pc, cycles, self.instret + retired
        self.local_refs += references - remote_refs
        self.remote_refs += remote_refs
        if then == _ONE_INSTRUCTION:
            Cpu._exec(self, cycles + 1)
        elif then == _A_WHILE:
            Cpu._exec(self, min(limit, cycles + _COLD_RUN))
        elif then == _TO_THE_LIMIT:
            Cpu._exec(self, limit)

    def _drop_stale_blocks(self) -> None:
        """Forget the blocks of pages where a store dropped decodings."""
        generations = self.mem.code_generations
        stale = [key for key, block in self._blocks.items() if block.generation != generations[key >> 32]]
        for key in stale:
            del self._blocks[key]
        self._routes.clear()
        self._code_epoch_seen = self.mem.code_epoch

    # -- the TLB mirrors ---------------------------------------------------

    def flush_tlb(self) -> None:
        super().flush_tlb()
        for local in (*self._local_reads.values(), *self._local_writes.values()):
            local.clear()
        self._routes.clear()

    def _fill_fetch(self, pc: int) -> int:
        self._routes.clear()  # the refill may take another page's entry
        return super()._fill_fetch(pc)

    def _load_slow(self, vaddr: int, size: int, signed: bool, rd: int) -> int:
        t = (vaddr >> 12) & TLB_MASK
        old = self.rtag[t]
        result = super()._load_slow(vaddr, size, signed, rd)
        self._mirror(self._local_reads, old, self.rtag[t], self.rval[t])
        return result

    def _store_slow(self, vaddr: int, size: int, value: int) -> int:
        t = (vaddr >> 12) & TLB_MASK
        old = self.wtag[t]
        result = super()._store_slow(vaddr, size, value)
        self._mirror(self._local_writes, old, self.wtag[t], self.wval[t])
        return result

    def _mirror(self, local: dict[int, dict[int, int]], old_tag: int, tag: int, location: int) -> None:
        """A slow path may have refilled a TLB entry (tag: context | page number): the mirror follows."""
        if tag != old_tag:
            if old_tag >= 0:
                local.get(old_tag & ~0xFFFFF, {}).pop((old_tag & 0xFFFFF) << 12, None)
            if location >> 20 == self.node:
                local.setdefault(tag & ~0xFFFFF, {})[(tag & 0xFFFFF) << 12] = location & 0xFFFFF

    # -- translation --------------------------------------------------------

    def _translate_block(self, pc: int, page: int) -> Block:
        """The block starting at pc, whose code is in decode page `page` (mapped, local)."""
        decodings = self.mem.code_pages[page]
        pcs: list[int] = []
        run: list[int] = []
        at = pc
        while len(run) < blockgen.MAX_BLOCK:
            if run and at in self.breakpoints:
                break
            index = (at & 0xFFF) >> 2
            if decodings[index] == isa.OP_UNDECODED:
                self._decode_into(decodings, index, at)
            d = decodings[index]
            if not blockgen.can_translate(d) or blockgen.branch_target_misaligned(at, d):
                break
            pcs.append(at)
            run.append(d)
            if d & 0xFF == isa.OP_JALR:
                break
            if d & 0xFF == isa.OP_JAL:
                # Follow a jump within the page, unless it goes back into the block.
                at = (at + (d >> 24)) & 0xFFFFFFFF
                if at >> 12 != pc >> 12 or at in pcs:
                    break
            else:
                at += 4
                if at & 0xFFF == 0:
                    break
        generation = self.mem.code_generations[page]
        if not run:  # the interpreter runs the instruction at pc
            return Block(_interpreter_at(pc), 0, generation)
        code, worst = _compiled(pcs, run, self.mem.remote_penalty)
        return Block(FunctionType(code, self._globals), worst, generation)

