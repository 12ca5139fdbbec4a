"""The node CPU: an RV32IMA hart with M/S/U modes, Sv32 and Sstc.

This module is the hot path.  It is written in plain, statically typed
Python that mypyc compiles into an extension module (see docs/cpu.md); the
same source runs unchanged, slower, under CPython.  Hence the style: native
integer locals, vectors instead of bytearrays, Final integer opcodes, no
closures, and all rare work (traps, CSRs, AMOs, TLB refills, devices) moved
out of `_exec` into methods that it calls.

Time: `cycles` is the node's local clock (mtime and the `time` CSR read it).
An instruction costs one cycle; a reference to another node's RAM costs
`remote_penalty` more.  `_exec` runs until the clock reaches a limit, so the
machine can interleave nodes in fixed quanta and end a quantum exactly at the
next timer event.

Translation: three direct-mapped software TLBs (load, store, fetch).  A tag is
the virtual page number with a context (effective privilege, SUM, MXR,
translation on/off) above bit 20, so privilege changes need no flush.  Load and
store entries hold the page's RAM location; fetch entries hold the page's
decode cache.  Pages that must be seen on every access (watched pages, and
for stores pages with decoded code) are never entered, so their accesses go
through the slow path.
"""

from typing import Final

from librt.vecs import vec
from mypy_extensions import i32, i64

from psyche.machine import isa
from psyche.machine.csr import (
    CSR_FLUSH_TLB,
    CSR_ILLEGAL,
    CSR_TRANSLATION_CHANGED,
    MCONTROL_EXECUTE,
    MCONTROL_LOAD,
    MCONTROL_STORE,
    MIP_MEIP,
    MIP_MSIP,
    MIP_MTIP,
    MIP_SEIP,
    MIP_STIP,
    MSTATUS_MIE,
    MSTATUS_MPIE,
    MSTATUS_MPP,
    MSTATUS_MPP_SHIFT,
    MSTATUS_MPRV,
    MSTATUS_MXR,
    MSTATUS_SIE,
    MSTATUS_SPIE,
    MSTATUS_SPP,
    MSTATUS_SUM,
    MSTATUS_TSR,
    MSTATUS_TVM,
    MSTATUS_TW,
    NEVER,
    PRV_M,
    PRV_S,
    PRV_U,
    CsrFile,
    timer_deadline,
)
from psyche.machine.isa import (
    OP_ADD,
    OP_ADDI,
    OP_AND,
    OP_ANDI,
    OP_AUIPC,
    OP_BEQ,
    OP_BGE,
    OP_BGEU,
    OP_BLT,
    OP_BLTU,
    OP_BNE,
    OP_DIV,
    OP_DIVU,
    OP_JAL,
    OP_JALR,
    OP_LB,
    OP_LBU,
    OP_LH,
    OP_LHU,
    OP_LUI,
    OP_LW,
    OP_MUL,
    OP_MULH,
    OP_MULHSU,
    OP_MULHU,
    OP_NOP,
    OP_OR,
    OP_ORI,
    OP_REM,
    OP_REMU,
    OP_SB,
    OP_SH,
    OP_SLL,
    OP_SLLI,
    OP_SLT,
    OP_SLTI,
    OP_SLTIU,
    OP_SLTU,
    OP_SRA,
    OP_SRAI,
    OP_SRL,
    OP_SRLI,
    OP_SUB,
    OP_SW,
    OP_XOR,
    OP_XORI,
)
from psyche.machine.mmu import (
    ACCESS_EXEC,
    ACCESS_READ,
    ACCESS_WRITE,
    access_fault,
    fault_cause,
    translate,
)
from psyche.machine.physmem import PhysMem, to_i32

M32: Final = 0xFFFFFFFF
SIGN: Final = 0x80000000
TLB_SIZE: Final = 256
TLB_MASK: Final = 255

# Why the CPU stopped (beyond simply reaching its cycle limit).
STOP_NONE: Final = 0
STOP_BREAKPOINT: Final = 1
STOP_WATCH: Final = 2
STOP_TRAP_LOOP: Final = 3
STOP_REQUESTED: Final = 4

# Which slow path the hot loop must take for the current instruction.
SLOW_NONE: Final = 0
SLOW_LOAD: Final = 1
SLOW_STORE: Final = 2
SLOW_MISALIGNED_JUMP: Final = 3
SLOW_SYSTEM: Final = 4

# idx value that makes the hot loop refill its fetch window at next_pc.
REFILL: Final = 1 << 20

# Slow-path results, read by the hot loop.
RETIRED: Final = 1
END_BLOCK: Final = 2
NOT_EXECUTED: Final = 4  # stopped before the instruction: no trap, no cycle

# What a watch hook answers about an access to a watched page.
WATCH_IGNORE: Final = 0
WATCH_STOP_AFTER: Final = 1   # complete the instruction, then stop (tohost)
WATCH_STOP_BEFORE: Final = 2  # stop with the instruction not executed (debugger watchpoints)

CAUSE_FETCH_MISALIGNED: Final = 0
CAUSE_FETCH_ACCESS: Final = 1
CAUSE_ILLEGAL: Final = 2
CAUSE_BREAKPOINT: Final = 3
CAUSE_LOAD_MISALIGNED: Final = 4
CAUSE_STORE_MISALIGNED: Final = 6
CAUSE_ECALL_U: Final = 8
INTERRUPT: Final = 1 << 31

# Interrupts in decreasing priority: MEI, MSI, MTI, SEI, SSI, STI.
_PRIORITY: Final = [11, 3, 7, 9, 1, 5]
# A trap whose handler traps again before retiring anything, this many times.
TRAP_LOOP_LIMIT: Final = 64


_NO_PAGE: Final = vec[i64]()


def _signed(x: i64) -> i64:
    return x - ((x & SIGN) << 1)


class Cpu:
    def __init__(self, node: i64, mem: PhysMem) -> None:
        self.node: i64 = node
        self.mem: PhysMem = mem
        self.regs: vec[i64] = vec[i64]([0] * 33)
        self.pc: i64 = 0
        self.priv: i64 = PRV_M
        self.csr: CsrFile = CsrFile(node)
        self.cycles: i64 = 0
        self.instret: i64 = 0
        # CLINT state lives here because it drives this hart's interrupts.
        self.mtimecmp_lo: i64 = M32
        self.mtimecmp_hi: i64 = M32
        self.msip: bool = False
        # Levels of the external interrupt lines from the interrupt controller.
        self.ext_m: bool = False
        self.ext_s: bool = False
        self.waiting: bool = False
        self.stop_reason: i64 = STOP_NONE
        self.breakpoints: set[int] = set()
        # A breakpoint stop at this pc is not taken again by the next instruction
        # (resume over it); nor a watchpoint stop, if skip_watch (the node stopped at one).
        self.skip_breakpoint_pc: i64 = -1
        self.skip_watch: bool = False
        self.resume_pc: i64 = -1
        self.resume_instret: i64 = -1
        # Per-node reference counts: data references local and remote, remote fetches.
        self.local_refs: i64 = 0
        self.remote_refs: i64 = 0
        self.remote_fetches: i64 = 0
        self.traps_without_progress: i64 = 0
        self.last_trap_instret: i64 = -1
        self.rtag: vec[i64] = vec[i64]([-1] * TLB_SIZE)
        self.rval: vec[i64] = vec[i64]([0] * TLB_SIZE)
        self.wtag: vec[i64] = vec[i64]([-1] * TLB_SIZE)
        self.wval: vec[i64] = vec[i64]([0] * TLB_SIZE)
        self.xtag: vec[i64] = vec[i64]([-1] * TLB_SIZE)
        self.xval: vec[i64] = vec[i64]([0] * TLB_SIZE)
        self.epoch_seen: i64 = -1
        # Misaligned loads and stores: performed (the default) or trapped (MachineConfig).
        self.trap_misaligned: bool = False
        # Set by _fill_fetch: PMP does not allow the whole page, so every fetch from it is checked.
        self.fetch_partial: bool = False
        # The two parts of the misaligned access in progress (_misaligned_parts).
        self.misaligned_pa1: i64 = 0
        self.misaligned_pa2: i64 = -1
        self.dctx: i64 = 0
        self.xctx: i64 = 0
        self.recompute_contexts()

    # -- translation contexts and TLBs -----------------------------------

    def _context(self, priv: i64) -> i64:
        """TLB tag bits (above the 20-bit page number) for accesses at priv.

        Untranslated accesses keep the privilege in their tag too: PMP may
        allow a page to M mode and not to S or U.
        """
        if priv == PRV_M or (self.csr.satp & SIGN) == 0:
            return (16 | priv) << 20
        st: i64 = self.csr.mstatus
        sum_bit: i64 = 1 if (st & MSTATUS_SUM) != 0 else 0
        mxr: i64 = 1 if (st & MSTATUS_MXR) != 0 else 0
        return (8 | priv | (sum_bit << 1) | (mxr << 2)) << 20

    def data_priv(self) -> i64:
        """Effective privilege of loads and stores (MPRV applies in M mode)."""
        st: i64 = self.csr.mstatus
        if self.priv == PRV_M and (st & MSTATUS_MPRV) != 0:
            return (st & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
        return self.priv

    def recompute_contexts(self) -> None:
        self.dctx = self._context(self.data_priv())
        self.xctx = self._context(self.priv)

    def flush_tlb(self) -> None:
        i: i64 = 0
        while i < TLB_SIZE:
            self.rtag[i] = -1
            self.wtag[i] = -1
            self.xtag[i] = -1
            i += 1
        self.epoch_seen = self.mem.epoch

    def translate_data(self, vaddr: i64, access: i64) -> i64:
        """Physical address for a load or store by the guest, or a fault code."""
        priv: i64 = self.data_priv()
        return self._translate(vaddr, access, priv)

    def _translate(self, vaddr: i64, access: i64, priv: i64) -> i64:
        satp: i64 = self.csr.satp
        if priv == PRV_M or (satp & SIGN) == 0:
            return vaddr
        st: i64 = self.csr.mstatus
        return translate(
            self.mem, satp, vaddr, access, priv,
            (st & MSTATUS_SUM) != 0, (st & MSTATUS_MXR) != 0, True, self.csr,
        )

    def debug_translate(self, vaddr: i64, access: i64) -> i64:
        """Translate as the current data access would, with no side effects."""
        priv: i64 = self.data_priv()
        satp: i64 = self.csr.satp
        if priv == PRV_M or (satp & SIGN) == 0:
            return vaddr
        st: i64 = self.csr.mstatus
        return translate(
            self.mem, satp, vaddr, access, priv,
            (st & MSTATUS_SUM) != 0, (st & MSTATUS_MXR) != 0, False,
        )

    # -- time and interrupts ---------------------------------------------

    def mtimecmp(self) -> i64:
        return timer_deadline(self.mtimecmp_lo, self.mtimecmp_hi)

    def next_timer_event(self) -> i64:
        """Earliest future cycle at which a timer interrupt becomes pending."""
        best: i64 = NEVER
        m: i64 = self.mtimecmp()
        if m > self.cycles:
            best = m
        if self.csr.sstc_enabled():
            s: i64 = self.csr.stimecmp_deadline()
            if self.cycles < s < best:
                best = s
        return best

    def update_mip(self) -> None:
        hw: i64 = 0
        if self.msip:
            hw |= MIP_MSIP
        if self.cycles >= self.mtimecmp():
            hw |= MIP_MTIP
        if self.ext_m:
            hw |= MIP_MEIP
        if self.ext_s:
            hw |= MIP_SEIP
        if self.csr.sstc_enabled() and self.cycles >= self.csr.stimecmp_deadline():
            hw |= MIP_STIP
        self.csr.mip_hw = hw

    def pending_interrupt(self) -> i64:
        """The interrupt to take now (its number), or -1."""
        csr = self.csr
        pending: i64 = csr.mip() & csr.mie
        if pending == 0:
            return -1
        m_on: bool = self.priv < PRV_M or (csr.mstatus & MSTATUS_MIE) != 0
        s_on: bool = self.priv < PRV_S or (self.priv == PRV_S and (csr.mstatus & MSTATUS_SIE) != 0)
        m_pending: i64 = pending & ~csr.mideleg if m_on else 0
        s_pending: i64 = pending & csr.mideleg if s_on else 0
        for bits in (m_pending, s_pending):
            if bits != 0:
                for irq in _PRIORITY:
                    if (bits >> irq) & 1:
                        return irq
        return -1

    def check_interrupts(self) -> bool:
        """Wake from WFI and take a pending, enabled interrupt; True if one was taken."""
        self.update_mip()
        csr = self.csr
        if self.waiting and (csr.mip() & csr.mie) != 0:
            self.waiting = False
        irq: i64 = self.pending_interrupt()
        if irq < 0:
            return False
        self.waiting = False
        self.take_trap(INTERRUPT | irq, 0)
        return True

    # -- traps -----------------------------------------------------------

    def take_trap(self, cause: i64, tval: i64) -> None:
        """Enter the trap handler for cause (bit 31 set for interrupts) at self.pc."""
        csr = self.csr
        if self.instret == self.last_trap_instret:
            self.traps_without_progress += 1
            if self.traps_without_progress >= TRAP_LOOP_LIMIT:
                self.stop_reason = STOP_TRAP_LOOP
        else:
            self.traps_without_progress = 0
        self.last_trap_instret = self.instret
        interrupt: bool = (cause & INTERRUPT) != 0
        code: i64 = cause & 0x7FFFFFFF
        deleg: i64 = csr.mideleg if interrupt else csr.medeleg
        st: i64 = csr.mstatus
        if self.priv <= PRV_S and ((deleg >> code) & 1) != 0:
            csr.scause = cause
            csr.sepc = self.pc
            csr.stval = tval & M32
            st = st & ~(MSTATUS_SPP | MSTATUS_SPIE)
            if self.priv == PRV_S:
                st |= MSTATUS_SPP
            if (st & MSTATUS_SIE) != 0:
                st |= MSTATUS_SPIE
            csr.mstatus = st & ~MSTATUS_SIE
            self.priv = PRV_S
            self.pc = self._vector(csr.stvec, interrupt, code)
        else:
            csr.mcause = cause
            csr.mepc = self.pc
            csr.mtval = tval & M32
            st = st & ~(MSTATUS_MPP | MSTATUS_MPIE)
            st |= self.priv << MSTATUS_MPP_SHIFT
            if (st & MSTATUS_MIE) != 0:
                st |= MSTATUS_MPIE
            csr.mstatus = st & ~MSTATUS_MIE
            self.priv = PRV_M
            self.pc = self._vector(csr.mtvec, interrupt, code)
        self.recompute_contexts()

    def _vector(self, tvec: i64, interrupt: bool, code: i64) -> i64:
        base: i64 = tvec & ~3
        if interrupt and (tvec & 3) == 1:
            return (base + 4 * code) & M32
        return base

    def _return_from_trap(self, to_machine_level: bool) -> None:
        csr = self.csr
        st: i64 = csr.mstatus
        if to_machine_level:
            new_priv: i64 = (st & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
            st = st & ~(MSTATUS_MIE | MSTATUS_MPP)
            if (st & MSTATUS_MPIE) != 0:
                st |= MSTATUS_MIE
            st |= MSTATUS_MPIE
            self.pc = csr.mepc
        else:
            new_priv = PRV_S if (st & MSTATUS_SPP) != 0 else PRV_U
            st = st & ~(MSTATUS_SIE | MSTATUS_SPP)
            if (st & MSTATUS_SPIE) != 0:
                st |= MSTATUS_SIE
            st |= MSTATUS_SPIE
            self.pc = csr.sepc
        if new_priv != PRV_M:
            st = st & ~MSTATUS_MPRV
        csr.mstatus = st
        self.priv = new_priv
        self.recompute_contexts()

    # -- running ---------------------------------------------------------

    def run(self, limit: i64) -> i64:
        """Run until the local clock reaches limit or the CPU stops; returns the stop reason.

        A CPU waiting in WFI sleeps until its next timer event or the limit,
        whichever is first: idle time costs no host work.
        """
        self.stop_reason = STOP_NONE
        while self.cycles < limit:
            self.check_interrupts()
            if self.stop_reason != STOP_NONE:
                break
            if self.waiting:
                wake: i64 = self.next_timer_event()
                self.cycles = wake if wake < limit else limit
                continue
            event: i64 = self.next_timer_event()
            self._exec(event if event < limit else limit)
            if self.stop_reason != STOP_NONE:
                break
        return self.stop_reason

    def step(self, take_interrupts: bool) -> i64:
        """Execute one instruction (or enter one interrupt handler); returns the stop reason."""
        self.stop_reason = STOP_NONE
        if take_interrupts:
            if self.check_interrupts():
                return self.stop_reason
        self.waiting = False
        self._exec(self.cycles + 1)
        return self.stop_reason

    def _sync(self, pc: i64, start_cycles: i64, start_instret: i64, n: i64, extra: i64) -> None:
        self.pc = pc
        self.cycles = start_cycles + n + extra
        self.instret = start_instret + n

    def _exec(self, limit: i64) -> None:
        """The interpreter loop: run instructions until the clock reaches limit.

        The fetch window is one decoded page: `cur` holds the decodings of
        virtual page `base` and `idx` indexes it, so the pc is implicit
        (base + 4 * idx) and sequential execution only bumps idx.  idx >= 1024
        means "refill the window": at 1024 from falling off the page, at
        REFILL for a jump to `next_pc` elsewhere or after a slow path.

        Common instructions complete inline.  Anything else sets `slow` and
        falls through to one place that synchronizes state into self, calls
        the slow path, and reloads what the slow path may have changed.
        """
        if self.epoch_seen != self.mem.epoch:
            self.flush_tlb()
        mem = self.mem
        regs = self.regs
        ram: vec[i32] = mem.rams[self.node]
        rams = mem.rams
        code_pages = mem.code_pages
        rtag = self.rtag
        rval = self.rval
        wtag = self.wtag
        wval = self.wval
        xtag = self.xtag
        xval = self.xval
        me: i64 = self.node
        penalty: i64 = mem.remote_penalty
        start_cycles: i64 = self.cycles
        start_instret: i64 = self.instret
        # Cycles left before the limit, and cycles spent beyond one per retired
        # instruction (remote references, traps): instructions retired so far
        # are initial_left - left - extra.
        left: i64 = limit - start_cycles
        initial_left: i64 = left
        extra: i64 = 0
        dctx: i64 = self.dctx
        xctx: i64 = self.xctx
        base: i64 = 0
        idx: i64 = REFILL
        next_pc: i64 = self.pc
        cur: vec[i64] = _NO_PAGE
        cur_remote: bool = False
        local_refs: i64 = 0
        remote_refs: i64 = 0
        remote_fetches: i64 = 0
        # Execute triggers are checked where breakpoints are: before every instruction.
        check_triggers: bool = (self.csr.triggers_armed & MCONTROL_EXECUTE) != 0
        check_bp: bool = len(self.breakpoints) > 0 or check_triggers
        cur_partial: bool = False
        # The fast path runs while idx < window_end: 1024 (the end of the page), or 0
        # when every instruction needs a fetch hook (breakpoints, code on another node).
        window_end: i64 = 1024
        skip_bp: i64 = self.skip_breakpoint_pc
        self.skip_breakpoint_pc = -1
        # The instruction at skip_bp runs first and resumes past whatever stopped it there: its
        # breakpoint, and its watchpoint if that is what stopped it (a watchpoint hit by the
        # first instruction after any other stop is a new hit, and stops).
        self.resume_pc = skip_bp if self.skip_watch else -1
        self.skip_watch = False
        self.resume_instret = start_instret
        # Operands of the pending slow path.
        slow: i64 = SLOW_NONE
        a: i64 = 0
        size: i64 = 0
        v: i64 = 0
        target: i64 = 0
        t: i64 = 0
        loc: i64 = 0
        taken: bool = False
        while left > 0:
            if idx >= window_end:
                if idx >= 1024:
                    pc: i64 = base + 4096 if idx == 1024 else next_pc
                    vpn: i64 = pc >> 12
                    t = vpn & TLB_MASK
                    entry: i64 = -1
                    cur_partial = False
                    if xtag[t] == (vpn | xctx):
                        entry = xval[t]
                    else:
                        self._sync(pc, start_cycles, start_instret, initial_left - left - extra, extra)
                        entry = self._fill_fetch(pc)
                        if entry < 0:
                            left -= 1  # a trap costs a cycle
                            extra += 1
                            next_pc = self.pc
                            idx = REFILL
                            dctx = self.dctx
                            xctx = self.xctx
                            if self.stop_reason != STOP_NONE:
                                break
                            continue
                        cur_partial = self.fetch_partial
                    cur = code_pages[entry >> 1]
                    cur_remote = (entry & 1) != 0
                    window_end = 0 if check_bp or cur_remote or cur_partial else 1024
                    base = pc & 0xFFFFF000
                    idx = (pc & 0xFFF) >> 2
                if window_end == 0:
                    if check_bp:
                        pc = base + (idx << 2)
                        if pc != skip_bp and pc in self.breakpoints:
                            self.stop_reason = STOP_BREAKPOINT
                            break
                        skip_bp = -1
                    if check_triggers or cur_partial:
                        pc = base + (idx << 2)
                        self._sync(pc, start_cycles, start_instret, initial_left - left - extra, extra)
                        if self._fetch_trapped(pc, check_triggers, cur_partial):
                            left -= 1  # a trap costs a cycle
                            extra += 1
                            next_pc = self.pc
                            idx = REFILL
                            dctx = self.dctx
                            xctx = self.xctx
                            if self.stop_reason != STOP_NONE:
                                break
                            continue
                    if cur_remote:
                        remote_fetches += 1
                        left -= penalty
                        extra += penalty
            d: i64 = cur[idx]
            op: i64 = d & 0xFF
            if op == OP_ADDI:
                regs[(d >> 8) & 63] = (regs[(d >> 14) & 31] + (d >> 24)) & M32
            elif op == OP_ADD:
                regs[(d >> 8) & 63] = (regs[(d >> 14) & 31] + regs[(d >> 19) & 31]) & M32
            elif op == OP_LW:
                a = (regs[(d >> 14) & 31] + (d >> 24)) & M32
                t = (a >> 12) & TLB_MASK
                if (a & 3) == 0 and rtag[t] == ((a >> 12) | dctx):
                    loc = rval[t] + ((a >> 2) & 1023)
                    if (loc >> 20) == me:
                        regs[(d >> 8) & 63] = i64(ram[loc & 0xFFFFF]) & M32
                        local_refs += 1
                    else:
                        regs[(d >> 8) & 63] = i64(rams[loc >> 20][loc & 0xFFFFF]) & M32
                        remote_refs += 1
                        left -= penalty
                        extra += penalty
                else:
                    slow = SLOW_LOAD
                    size = 4
            elif op == OP_SW:
                a = (regs[(d >> 14) & 31] + (d >> 24)) & M32
                v = regs[(d >> 19) & 31]
                t = (a >> 12) & TLB_MASK
                if (a & 3) == 0 and wtag[t] == ((a >> 12) | dctx):
                    loc = wval[t] + ((a >> 2) & 1023)
                    if (loc >> 20) == me:
                        ram[loc & 0xFFFFF] = to_i32(v)
                        local_refs += 1
                    else:
                        rams[loc >> 20][loc & 0xFFFFF] = to_i32(v)
                        remote_refs += 1
                        left -= penalty
                        extra += penalty
                    if mem.nreservations != 0:
                        mem.break_reservations(a, me)
                else:
                    slow = SLOW_STORE
                    size = 4
            elif op <= OP_BGEU:
                # Conditional branches (OP_BNE .. OP_BGEU are contiguous).
                x: i64 = regs[(d >> 14) & 31]
                y: i64 = regs[(d >> 19) & 31]
                if op == OP_BNE:
                    taken = x != y
                elif op == OP_BLTU:
                    taken = x < y
                elif op == OP_BEQ:
                    taken = x == y
                elif op == OP_BLT:
                    taken = (x ^ SIGN) < (y ^ SIGN)
                elif op == OP_BGE:
                    taken = (x ^ SIGN) >= (y ^ SIGN)
                else:
                    taken = x >= y
                if taken:
                    target = (base + (idx << 2) + (d >> 24)) & M32
                    if (target & 0xFFFFF003) == base:
                        idx = (target & 0xFFF) >> 2
                        left -= 1
                        continue
                    if (target & 3) != 0:
                        slow = SLOW_MISALIGNED_JUMP
                    else:
                        next_pc = target
                        idx = REFILL
                        left -= 1
                        continue
            elif op == OP_SB or op == OP_SH:
                size = 1 if op == OP_SB else 2
                a = (regs[(d >> 14) & 31] + (d >> 24)) & M32
                v = regs[(d >> 19) & 31]
                t = (a >> 12) & TLB_MASK
                if (a & (size - 1)) == 0 and wtag[t] == ((a >> 12) | dctx):
                    loc = wval[t] + ((a >> 2) & 1023)
                    shift: i64 = (a & 3) * 8
                    mask: i64 = 0xFF if size == 1 else 0xFFFF
                    mask = mask << shift
                    word_vec = ram if (loc >> 20) == me else rams[loc >> 20]
                    old_word: i64 = i64(word_vec[loc & 0xFFFFF])
                    word_vec[loc & 0xFFFFF] = to_i32((old_word & ~mask) | ((v << shift) & mask))
                    if (loc >> 20) == me:
                        local_refs += 1
                    else:
                        remote_refs += 1
                        left -= penalty
                        extra += penalty
                    if mem.nreservations != 0:
                        mem.break_reservations(a & ~3, me)
                else:
                    slow = SLOW_STORE
            elif op == OP_MUL:
                x = regs[(d >> 14) & 31]
                y = regs[(d >> 19) & 31]
                regs[(d >> 8) & 63] = ((x - ((x & SIGN) << 1)) * (y - ((y & SIGN) << 1))) & M32
            elif op <= OP_JALR:
                if op == OP_JAL:
                    target = (base + (idx << 2) + (d >> 24)) & M32
                else:
                    target = (regs[(d >> 14) & 31] + (d >> 24)) & 0xFFFFFFFE
                if (target & 3) != 0:
                    slow = SLOW_MISALIGNED_JUMP
                else:
                    regs[(d >> 8) & 63] = (base + (idx << 2) + 4) & M32
                    if (target & 0xFFFFF000) == base:
                        idx = (target & 0xFFF) >> 2
                    else:
                        next_pc = target
                        idx = REFILL
                    left -= 1
                    continue
            elif op == OP_LBU or op == OP_LB or op == OP_LH or op == OP_LHU:
                size = 1 if (op == OP_LBU or op == OP_LB) else 2
                a = (regs[(d >> 14) & 31] + (d >> 24)) & M32
                t = (a >> 12) & TLB_MASK
                if (a & (size - 1)) == 0 and rtag[t] == ((a >> 12) | dctx):
                    loc = rval[t] + ((a >> 2) & 1023)
                    w: i64 = 0
                    if (loc >> 20) == me:
                        w = i64(ram[loc & 0xFFFFF])
                        local_refs += 1
                    else:
                        w = i64(rams[loc >> 20][loc & 0xFFFFF])
                        remote_refs += 1
                        left -= penalty
                        extra += penalty
                    w = w >> ((a & 3) * 8)
                    if op == OP_LBU:
                        w = w & 0xFF
                    elif op == OP_LB:
                        w = w & 0xFF
                        if (w & 0x80) != 0:
                            w |= 0xFFFFFF00
                    elif op == OP_LHU:
                        w = w & 0xFFFF
                    else:
                        w = w & 0xFFFF
                        if (w & 0x8000) != 0:
                            w |= 0xFFFF0000
                    regs[(d >> 8) & 63] = w
                else:
                    slow = SLOW_LOAD
            elif op == OP_AUIPC:
                regs[(d >> 8) & 63] = (base + (idx << 2) + (d >> 24)) & M32
            elif op == OP_SRLI:
                regs[(d >> 8) & 63] = regs[(d >> 14) & 31] >> (d >> 24)
            elif op == OP_XOR:
                regs[(d >> 8) & 63] = regs[(d >> 14) & 31] ^ regs[(d >> 19) & 31]
            elif op == OP_SLLI:
                regs[(d >> 8) & 63] = (regs[(d >> 14) & 31] << (d >> 24)) & M32
            elif op == OP_ANDI:
                regs[(d >> 8) & 63] = regs[(d >> 14) & 31] & (d >> 24)
            elif op == OP_LUI:
                regs[(d >> 8) & 63] = d >> 24
            elif op == OP_NOP:
                pass
            elif op < isa.OP_FIRST_SYSTEM:
                regs[(d >> 8) & 63] = _alu(op, regs[(d >> 14) & 31], regs[(d >> 19) & 31], d >> 24)
            elif op == isa.OP_UNDECODED:
                self._decode_into(cur, idx, base + (idx << 2))
                if cur_remote:  # the fetch is charged when the decoding executes
                    remote_fetches -= 1
                    left += penalty
                    extra -= penalty
                # This pc passed the breakpoint check already: the check must not stop it
                # when it comes round again, decoded (a resume over a breakpoint on code
                # that never ran would stop on it again, without moving).
                skip_bp = base + (idx << 2)
                continue
            else:
                slow = SLOW_SYSTEM
            if slow == SLOW_NONE:
                idx += 1
                left -= 1
                continue
            # The slow path: state goes to self and comes back.
            self._sync(base + (idx << 2), start_cycles, start_instret, initial_left - left - extra, extra)
            r: i64 = 0
            if slow == SLOW_LOAD:
                r = self._load_slow(a, size, op == OP_LB or op == OP_LH, (d >> 8) & 63)
            elif slow == SLOW_STORE:
                r = self._store_slow(a, size, v)
            elif slow == SLOW_MISALIGNED_JUMP:
                self.take_trap(CAUSE_FETCH_MISALIGNED, target)
            else:
                r = self._exec_system(d)
            slow = SLOW_NONE
            # Slow paths charge remote references to self.cycles directly.
            charged: i64 = self.cycles - (start_cycles + initial_left - left)
            left -= charged
            extra += charged
            next_pc = self.pc
            idx = REFILL
            dctx = self.dctx
            xctx = self.xctx
            if (r & RETIRED) != 0:
                left -= 1
            elif (r & NOT_EXECUTED) == 0:
                left -= 1  # a trap costs a cycle
                extra += 1
            if (r & END_BLOCK) != 0 or self.stop_reason != STOP_NONE:
                break
            if self.epoch_seen != mem.epoch:
                self.flush_tlb()
        self._sync(base + (idx << 2) if idx < 1024 else (base + 4096 if idx == 1024 else next_pc),
                   start_cycles, start_instret, initial_left - left - extra, extra)
        self.local_refs += local_refs
        self.remote_refs += remote_refs
        self.remote_fetches += remote_fetches

    # -- slow paths ------------------------------------------------------

    def _fill_fetch(self, pc: i64) -> i64:
        """Fetch TLB refill for pc: code page index * 2 + remote bit, or -1 after a trap."""
        pa: i64 = self._translate(pc, ACCESS_EXEC, self.priv)
        if pa < 0:
            self.take_trap(fault_cause(pa), pc)
            return -1
        mem = self.mem
        if not mem.is_ram(pa) or not self.csr.pmp_allows(pa, 4, ACCESS_EXEC, self.priv):
            self.take_trap(CAUSE_FETCH_ACCESS, pc)
            return -1
        before: i64 = mem.epoch
        index: i64 = mem.code_page(pa >> 12)
        if mem.epoch != before:
            self.flush_tlb()
        remote: i64 = 0 if mem.node_of(pa) == self.node else 1
        entry: i64 = index * 2 + remote
        # A page that PMP allows only in part gets no TLB entry: each fetch from it is checked.
        self.fetch_partial = not self.csr.pmp_allows(pa & ~0xFFF, 4096, ACCESS_EXEC, self.priv)
        if not self.fetch_partial:
            t: i64 = (pc >> 12) & TLB_MASK
            self.xtag[t] = (pc >> 12) | self.xctx
            self.xval[t] = entry
        return entry

    def _fetch_trapped(self, pc: i64, triggers: bool, partial: bool) -> bool:
        """Before the instruction at pc: take an execute trigger's trap or PMP's; True if taken."""
        if triggers and self.csr.trigger_fires(MCONTROL_EXECUTE, pc, 4, self.priv):
            self.take_trap(CAUSE_BREAKPOINT, pc)
            return True
        if partial:
            pa: i64 = self._translate(pc, ACCESS_EXEC, self.priv)
            if pa < 0 or not self.csr.pmp_allows(pa, 4, ACCESS_EXEC, self.priv):
                self.take_trap(CAUSE_FETCH_ACCESS, pc)
                return True
        return False

    def _decode_into(self, page: vec[i64], index: i64, pc: i64) -> None:
        """Decode the instruction at pc (whose page is mapped) into page[index]."""
        pa: i64 = self._translate(pc, ACCESS_EXEC, self.priv)
        page[index] = isa.decode(self.mem.read_word(pa))

    def _data_fault(self, result: i64, vaddr: i64) -> i64:
        self.take_trap(fault_cause(result), vaddr)
        return 0

    def _data_address(self, vaddr: i64, size: i64, access: i64) -> i64:
        """Physical address of a load or store within one page, or -1 after taking its fault."""
        pa: i64 = self.translate_data(vaddr, access)
        if pa < 0:
            self._data_fault(pa, vaddr)
            return -1
        if not self.csr.pmp_allows(pa, size, access, self.data_priv()):
            self._data_fault(access_fault(access), vaddr)
            return -1
        return pa

    def _data_trap_first(self, vaddr: i64, size: i64, kinds: i64) -> bool:
        """Take what comes before translation: a data trigger, or a misaligned trap; True if taken."""
        csr = self.csr
        if (csr.triggers_armed & kinds) != 0 and csr.trigger_fires(kinds, vaddr, size, self.priv):
            self.take_trap(CAUSE_BREAKPOINT, vaddr)
            return True
        if (vaddr & (size - 1)) != 0 and self.trap_misaligned:
            self.take_trap(CAUSE_LOAD_MISALIGNED if kinds == MCONTROL_LOAD else CAUSE_STORE_MISALIGNED, vaddr)
            return True
        return False

    def _may_cache(self, pa: i64, access: i64) -> bool:
        """Whether a TLB entry may stand for pa's page: no data trigger armed, PMP allows it all."""
        csr = self.csr
        if (csr.triggers_armed & (MCONTROL_LOAD | MCONTROL_STORE)) != 0:
            return False
        return csr.pmp_allows(pa & ~0xFFF, 4096, access, self.data_priv())

    def _load_slow(self, vaddr: i64, size: i64, signed: bool, rd: i64) -> i64:
        if self._data_trap_first(vaddr, size, MCONTROL_LOAD):
            return 0
        if (vaddr & (size - 1)) != 0:
            return self._misaligned_load(vaddr, size, signed, rd)
        pa: i64 = self._data_address(vaddr, size, ACCESS_READ)
        if pa < 0:
            return 0
        mem = self.mem
        result: i64 = RETIRED
        if mem.is_ram(pa):
            ppn: i64 = pa >> 12
            if mem.is_watched(ppn):
                action: i64 = self._watch(pa, size, False, 0)
                if action == WATCH_STOP_BEFORE:
                    return NOT_EXECUTED | END_BLOCK
                if action == WATCH_STOP_AFTER:
                    result |= END_BLOCK
            elif self._may_cache(pa, ACCESS_READ):
                t: i64 = (vaddr >> 12) & TLB_MASK
                self.rtag[t] = (vaddr >> 12) | self.dctx
                self.rval[t] = mem.location(pa & ~0xFFF)
            w: i64 = self._ram_read(pa)
            w = (w >> ((pa & 3) * 8)) & (M32 if size == 4 else (1 << (size * 8)) - 1)
        else:
            w = mem.bus.read(self.node, pa, size)
            if w < 0:
                return self._data_fault(access_fault(ACCESS_READ), vaddr)
            result |= END_BLOCK
        if signed:
            sign: i64 = 1 << (size * 8 - 1)
            w = ((w ^ sign) - sign) & M32
        self.regs[rd] = w
        self.pc = (self.pc + 4) & M32
        return result

    def _count_reference(self, pa: i64) -> None:
        """Charge a data reference made outside the hot loop: local, or through the switch."""
        if self.mem.node_of(pa) == self.node:
            self.local_refs += 1
        else:
            self.remote_refs += 1
            self.cycles += self.mem.remote_penalty

    def _ram_read(self, pa: i64) -> i64:
        self._count_reference(pa)
        return self.mem.read_word(pa)

    def _ram_write(self, pa: i64, size: i64, value: i64) -> None:
        self._count_reference(pa)
        mem = self.mem
        if size == 4:
            mem.write_word(pa, value, self.node)
            return
        shift: i64 = (pa & 3) * 8
        mask: i64 = ((1 << (size * 8)) - 1) << shift
        old: i64 = mem.read_word(pa)
        mem.write_word(pa, (old & ~mask) | ((value << shift) & mask), self.node)

    def _store_slow(self, vaddr: i64, size: i64, value: i64) -> i64:
        if self._data_trap_first(vaddr, size, MCONTROL_STORE):
            return 0
        if (vaddr & (size - 1)) != 0:
            return self._misaligned_store(vaddr, size, value)
        pa: i64 = self._data_address(vaddr, size, ACCESS_WRITE)
        if pa < 0:
            return 0
        mem = self.mem
        result: i64 = RETIRED
        if mem.is_ram(pa):
            ppn: i64 = pa >> 12
            if mem.is_watched(ppn):
                action: i64 = self._watch(pa, size, True, value)
                if action == WATCH_STOP_BEFORE:
                    return NOT_EXECUTED | END_BLOCK
                if action == WATCH_STOP_AFTER:
                    result |= END_BLOCK
            elif ppn not in mem.code_page_index and self._may_cache(pa, ACCESS_WRITE):
                t: i64 = (vaddr >> 12) & TLB_MASK
                self.wtag[t] = (vaddr >> 12) | self.dctx
                self.wval[t] = mem.location(pa & ~0xFFF)
            self._ram_write(pa, size, value)
        else:
            if not mem.bus.write(self.node, pa, size, value & M32):
                return self._data_fault(access_fault(ACCESS_WRITE), vaddr)
            result |= END_BLOCK
        self.pc = (self.pc + 4) & M32
        return result

    # -- misaligned loads and stores ----------------------------------------
    # Performed as up to two parts, one per page, each translated and checked (PMP,
    # RAM) before any byte moves: a fault reports the first byte of the part
    # that faults (the access's own address, or the start of its second page).

    def _part_address(self, vaddr: i64, size: i64, access: i64) -> i64:
        """Physical address of one page's part of a misaligned access, or -1 after its trap."""
        pa: i64 = self._data_address(vaddr, size, access)
        if pa < 0:
            return -1
        if not self.mem.is_ram(pa) or not self.mem.is_ram(pa + size - 1):
            # Device registers take aligned accesses only.
            self._data_fault(access_fault(access), vaddr)
            return -1
        return pa

    def _watch_part(self, pa: i64, size: i64, is_write: bool, value: i64, action: i64) -> i64:
        """The watch action after one part: the stronger of action and this part's."""
        if action == WATCH_STOP_BEFORE or not self.mem.is_watched(pa >> 12):
            return action
        mine: i64 = self._watch(pa, size, is_write, value)
        return mine if mine > action else action

    def _read_part(self, pa: i64, size: i64) -> i64:
        """size bytes from RAM at pa, little-endian; one reference per word touched."""
        value: i64 = 0
        word_pa: i64 = -1
        word: i64 = 0
        i: i64 = 0
        while i < size:
            p: i64 = pa + i
            if (p & ~3) != word_pa:
                word_pa = p & ~3
                word = self._ram_read(word_pa)
            value |= ((word >> ((p & 3) * 8)) & 0xFF) << (8 * i)
            i += 1
        return value

    def _write_part(self, pa: i64, size: i64, value: i64) -> None:
        """size bytes of value to RAM at pa, a word at a time (one reference per word)."""
        i: i64 = 0
        while i < size:
            p: i64 = pa + i
            n: i64 = 4 - (p & 3)  # bytes of this word
            if n > size - i:
                n = size - i
            shift: i64 = (p & 3) * 8
            mask: i64 = (M32 >> (32 - 8 * n)) << shift
            bits: i64 = ((value >> (8 * i)) << shift) & mask
            self._count_reference(p)
            old: i64 = self.mem.read_word(p)
            self.mem.write_word(p & ~3, (old & ~mask) | bits, self.node)
            i += n

    def _misaligned_parts(self, vaddr: i64, size: i64, access: i64) -> i64:
        """Translate and check both parts; first part's size (0 after a trap).

        The parts' physical addresses are left in misaligned_pa1/misaligned_pa2.
        """
        first: i64 = 4096 - (vaddr & 0xFFF)
        if first > size:
            first = size
        pa1: i64 = self._part_address(vaddr, first, access)
        if pa1 < 0:
            return 0
        pa2: i64 = -1
        if first < size:
            pa2 = self._part_address((vaddr + first) & M32, size - first, access)
            if pa2 < 0:
                return 0
        self.misaligned_pa1 = pa1
        self.misaligned_pa2 = pa2
        return first

    def _misaligned_load(self, vaddr: i64, size: i64, signed: bool, rd: i64) -> i64:
        first: i64 = self._misaligned_parts(vaddr, size, ACCESS_READ)
        if first == 0:
            return 0
        pa1: i64 = self.misaligned_pa1
        pa2: i64 = self.misaligned_pa2
        action: i64 = self._watch_part(pa1, first, False, 0, WATCH_IGNORE)
        if pa2 >= 0:
            action = self._watch_part(pa2, size - first, False, 0, action)
        if action == WATCH_STOP_BEFORE:
            return NOT_EXECUTED | END_BLOCK
        w: i64 = self._read_part(pa1, first)
        if pa2 >= 0:
            w |= self._read_part(pa2, size - first) << (8 * first)
        if signed:
            sign: i64 = SIGN >> (32 - 8 * size)
            w = ((w ^ sign) - sign) & M32
        self.regs[rd] = w
        self.pc = (self.pc + 4) & M32
        return RETIRED | END_BLOCK if action == WATCH_STOP_AFTER else RETIRED

    def _misaligned_store(self, vaddr: i64, size: i64, value: i64) -> i64:
        first: i64 = self._misaligned_parts(vaddr, size, ACCESS_WRITE)
        if first == 0:
            return 0
        pa1: i64 = self.misaligned_pa1
        pa2: i64 = self.misaligned_pa2
        # (Masks come from M32: mypyc shifts i64(1) as a C int, wrong from 32 bits up.)
        value = value & (M32 >> (32 - 8 * size))
        action: i64 = self._watch_part(pa1, first, True, value & (M32 >> (32 - 8 * first)), WATCH_IGNORE)
        if pa2 >= 0:
            action = self._watch_part(pa2, size - first, True, value >> (8 * first), action)
        if action == WATCH_STOP_BEFORE:
            return NOT_EXECUTED | END_BLOCK
        self._write_part(pa1, first, value)
        if pa2 >= 0:
            self._write_part(pa2, size - first, value >> (8 * first))
        self.pc = (self.pc + 4) & M32
        return RETIRED | END_BLOCK if action == WATCH_STOP_AFTER else RETIRED

    def _illegal(self, d: i64) -> i64:
        self.take_trap(CAUSE_ILLEGAL, _raw_of(d))
        return 0

    def _exec_system(self, d: i64) -> i64:
        """Everything outside the hot loop: CSRs, privileged instructions, atomics."""
        op: i64 = d & 0xFF
        if op >= isa.OP_CSRRW and op <= isa.OP_CSRRCI:
            return self._exec_csr(d)
        if op >= isa.OP_LR and op <= isa.OP_AMOMAXU:
            return self._exec_atomic(d)
        csr = self.csr
        if op == isa.OP_ECALL:
            self.take_trap(CAUSE_ECALL_U + self.priv, 0)
            return 0
        if op == isa.OP_EBREAK:
            self.take_trap(CAUSE_BREAKPOINT, 0)  # mtval 0, as QEMU 7.2 (the spec allows pc or 0)
            return 0
        if op == isa.OP_FENCE_I:
            self.pc = (self.pc + 4) & M32
            return RETIRED
        if op == isa.OP_MRET:
            if self.priv != PRV_M:
                return self._illegal(d)
            self._return_from_trap(True)
            return RETIRED | END_BLOCK
        if op == isa.OP_SRET:
            if self.priv < PRV_S or (self.priv == PRV_S and (csr.mstatus & MSTATUS_TSR) != 0):
                return self._illegal(d)
            self._return_from_trap(False)
            return RETIRED | END_BLOCK
        if op == isa.OP_WFI:
            if self.priv == PRV_U or (self.priv == PRV_S and (csr.mstatus & MSTATUS_TW) != 0):
                return self._illegal(d)
            self.pc = (self.pc + 4) & M32
            self.update_mip()
            if (csr.mip() & csr.mie) == 0:
                self.waiting = True
            return RETIRED | END_BLOCK
        if op == isa.OP_SFENCE_VMA:
            if self.priv == PRV_U or (self.priv == PRV_S and (csr.mstatus & MSTATUS_TVM) != 0):
                return self._illegal(d)
            self.flush_tlb()
            self.pc = (self.pc + 4) & M32
            return RETIRED
        return self._illegal(d)

    def _exec_csr(self, d: i64) -> i64:
        op: i64 = d & 0xFF
        rd: i64 = (d >> 8) & 63
        rs1: i64 = (d >> 14) & 31
        num: i64 = (d >> 24) & 0xFFF
        csr = self.csr
        immediate: bool = op >= isa.OP_CSRRWI
        operand: i64 = rs1 if immediate else self.regs[rs1]
        kind: i64 = op - (isa.OP_CSRRWI if immediate else isa.OP_CSRRW)  # 0 rw, 1 rs, 2 rc
        reads: bool = kind != 0 or rd != isa.SINK
        writes: bool = kind == 0 or rs1 != 0
        old: i64 = 0
        if reads or writes:
            self.update_mip()
            old = csr.read(num, self.priv, self.cycles, self.instret)
            if old < 0:
                return self._illegal(d)
        if writes:
            new: i64 = operand
            if kind == 1:
                new = old | operand
            elif kind == 2:
                new = old & ~operand
            status: i64 = csr.write(num, new, self.priv, self.cycles, self.instret, True)
            if status == CSR_ILLEGAL:
                return self._illegal(d)
            if status == CSR_FLUSH_TLB:
                self.flush_tlb()
            if status == CSR_TRANSLATION_CHANGED:
                if num == 0x180:
                    self.flush_tlb()
                self.recompute_contexts()
        self.regs[rd] = old & M32
        self.pc = (self.pc + 4) & M32
        return RETIRED | END_BLOCK if writes else RETIRED

    def _exec_atomic(self, d: i64) -> i64:
        op: i64 = d & 0xFF
        rd: i64 = (d >> 8) & 63
        vaddr: i64 = self.regs[(d >> 14) & 31]
        src: i64 = self.regs[(d >> 19) & 31]
        mem = self.mem
        kinds: i64 = MCONTROL_LOAD if op == isa.OP_LR else MCONTROL_STORE if op == isa.OP_SC else (
            MCONTROL_LOAD | MCONTROL_STORE)  # an AMO both loads and stores
        if (self.csr.triggers_armed & kinds) != 0 and self.csr.trigger_fires(kinds, vaddr, 4, self.priv):
            self.take_trap(CAUSE_BREAKPOINT, vaddr)
            return 0
        if op == isa.OP_LR:
            if (vaddr & 3) != 0:
                self.take_trap(CAUSE_LOAD_MISALIGNED, vaddr)
                return 0
            pa: i64 = self._data_address(vaddr, 4, ACCESS_READ)
            if pa < 0:
                return 0
            if not mem.is_ram(pa):
                return self._data_fault(access_fault(ACCESS_READ), vaddr)
            action: i64 = self._watch(pa, 4, False, 0) if mem.is_watched(pa >> 12) else WATCH_IGNORE
            if action == WATCH_STOP_BEFORE:
                return NOT_EXECUTED | END_BLOCK
            self.regs[rd] = self._ram_read(pa)
            mem.reserve(self.node, pa)
            self.pc = (self.pc + 4) & M32
            return RETIRED | END_BLOCK if action == WATCH_STOP_AFTER else RETIRED
        if (vaddr & 3) != 0:
            self.take_trap(CAUSE_STORE_MISALIGNED, vaddr)
            return 0
        pa = self._data_address(vaddr, 4, ACCESS_WRITE)
        if pa < 0:
            return 0
        if op != isa.OP_SC and not self.csr.pmp_allows(pa, 4, ACCESS_READ, self.data_priv()):
            return self._data_fault(access_fault(ACCESS_WRITE), vaddr)  # AMOs fault as stores
        if not mem.is_ram(pa):
            return self._data_fault(access_fault(ACCESS_WRITE), vaddr)
        action = WATCH_IGNORE
        if op == isa.OP_SC:
            if mem.reservation_of(self.node) != pa:
                mem.take_reservation(self.node, pa)
                self.regs[rd] = 1
                self.pc = (self.pc + 4) & M32
                return RETIRED
            if mem.is_watched(pa >> 12):
                action = self._watch(pa, 4, True, src)
                if action == WATCH_STOP_BEFORE:
                    return NOT_EXECUTED | END_BLOCK
            mem.take_reservation(self.node, pa)
            self._ram_write(pa, 4, src)
            self.regs[rd] = 0
        else:
            old: i64 = mem.read_word(pa)
            new: i64 = _amo(op, old, src)
            if mem.is_watched(pa >> 12):
                # An AMO reads and writes: read and write watchpoints both see it.
                action = self._watch(pa, 4, False, 0)
                if action != WATCH_STOP_BEFORE:
                    second: i64 = self._watch(pa, 4, True, new)
                    action = second if second > action else action
                if action == WATCH_STOP_BEFORE:
                    return NOT_EXECUTED | END_BLOCK
            self._ram_read(pa)
            self._ram_write(pa, 4, new)
            self.regs[rd] = old
        self.pc = (self.pc + 4) & M32
        return RETIRED | END_BLOCK if action == WATCH_STOP_AFTER else RETIRED

    def _watch(self, pa: i64, size: i64, is_write: bool, value: i64) -> i64:
        """Ask the watch hooks about an access to a watched page, before it happens.

        A stop before the access is not taken again by the first instruction
        after a resume: that instruction is the one that stopped.
        """
        action: i64 = self.mem.watch_hook(self.node, pa, size, is_write, value & M32)
        if action == WATCH_STOP_BEFORE and self.pc == self.resume_pc and self.instret == self.resume_instret:
            return WATCH_IGNORE
        if action != WATCH_IGNORE:
            self.stop_reason = STOP_WATCH
        return action


def _alu(op: i64, x: i64, y: i64, imm: i64) -> i64:
    """The less frequent register-register and register-immediate operations (not those inline in _exec)."""
    if op == OP_SUB:
        return (x - y) & M32
    if op == OP_AND:
        return x & y
    if op == OP_OR:
        return x | y
    if op == OP_ORI:
        return x | imm
    if op == OP_XORI:
        return x ^ imm
    if op == OP_SRAI:
        return (_signed(x) >> imm) & M32
    if op == OP_SLL:
        return (x << (y & 31)) & M32
    if op == OP_SRL:
        return x >> (y & 31)
    if op == OP_SRA:
        return (_signed(x) >> (y & 31)) & M32
    if op == OP_SLT:
        return 1 if (x ^ SIGN) < (y ^ SIGN) else 0
    if op == OP_SLTU:
        return 1 if x < y else 0
    if op == OP_SLTI:
        return 1 if (x ^ SIGN) < (imm ^ SIGN) else 0
    if op == OP_SLTIU:
        return 1 if x < imm else 0
    if op == OP_MULH:
        return ((_signed(x) * _signed(y)) >> 32) & M32
    if op == OP_MULHSU:
        return ((_signed(x) * y) >> 32) & M32
    if op == OP_MULHU:
        # The full 64-bit unsigned product does not fit an i64: split y.
        return ((x * (y >> 16) + ((x * (y & 0xFFFF)) >> 16)) >> 16) & M32
    if op == OP_DIV or op == OP_REM:
        return _divide_signed(op == OP_DIV, _signed(x), _signed(y))
    if op == OP_DIVU:
        return M32 if y == 0 else x // y
    if op == OP_REMU:
        return x if y == 0 else x % y
    return 0


def _divide_signed(quotient: bool, x: i64, y: i64) -> i64:
    if y == 0:
        return M32 if quotient else x & M32
    if x == -SIGN and y == -1:
        return x & M32 if quotient else 0
    ax: i64 = x if x >= 0 else -x
    ay: i64 = y if y >= 0 else -y
    q: i64 = ax // ay
    if (x < 0) != (y < 0):
        q = -q
    if quotient:
        return q & M32
    return (x - q * y) & M32


def _amo(op: i64, old: i64, src: i64) -> i64:
    if op == isa.OP_AMOSWAP:
        return src
    if op == isa.OP_AMOADD:
        return (old + src) & M32
    if op == isa.OP_AMOXOR:
        return old ^ src
    if op == isa.OP_AMOAND:
        return old & src
    if op == isa.OP_AMOOR:
        return old | src
    if op == isa.OP_AMOMIN:
        return old if (old ^ SIGN) < (src ^ SIGN) else src
    if op == isa.OP_AMOMAX:
        return old if (old ^ SIGN) > (src ^ SIGN) else src
    if op == isa.OP_AMOMINU:
        return old if old < src else src
    return old if old > src else src


def _raw_of(d: i64) -> i64:
    """The instruction word behind an illegal decoding, for mtval."""
    op: i64 = d & 0xFF
    if op == isa.OP_ILLEGAL:
        return (d >> 24) & M32
    if op >= isa.OP_CSRRW and op <= isa.OP_CSRRCI:
        funct3: i64 = [1, 2, 3, 5, 6, 7][op - isa.OP_CSRRW]
        rd: i64 = (d >> 8) & 63
        if rd == isa.SINK:
            rd = 0
        return (((d >> 24) & 0xFFF) << 20) | (((d >> 14) & 31) << 15) | (funct3 << 12) | (rd << 7) | 0x73
    fixed: dict[int, int] = {
        isa.OP_MRET: 0x30200073, isa.OP_SRET: 0x10200073, isa.OP_WFI: 0x10500073,
    }
    if op == isa.OP_SFENCE_VMA:
        return (0x09 << 25) | (((d >> 19) & 31) << 20) | (((d >> 14) & 31) << 15) | 0x73
    return fixed.get(op, 0)
