"""The target interface: what lld needs from one node of the machine, and nothing more.

In the spirit of the gdbstub crate's `Target` trait: registers, memory,
run control, breakpoints and watched pages, each as a small method over the
simulator's Machine and Node.  The protocol layer (stub.py) never touches the
CPU or physical memory directly, so its rules (what is allowed when, what a
request changes) are readable apart from how the simulator does things.

Every access here is side-effect free for the guest unless it is a write the
debugger asked for:

* virtual addresses are translated by walking the page tables without
  setting A/D bits and without faulting (cpu.debug_translate, or
  mmu.translate with update_ad=False): an unmapped page is an error, never a
  fault and never a page made present (the paper's lesson: a debugger that
  faults pages in changes what it debugs);
* only RAM is read or written: device registers have side effects (reading
  a UART's receive register consumes a byte), so they are refused;
* lld's own reads and writes do not go through watch hooks, so the debugger
  never trips a watchpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from lld import protocol as p
from psyche import rv32
from psyche.machine.cpu import STOP_WATCH, Cpu
from psyche.machine.csr import MCONTROL_EXECUTE, PRV_M, PRV_S
from psyche.machine.machine import Machine, Node, NodeState
from psyche.machine.mmu import PTE_A, fault_cause, leaf_pte, translate

M32 = 0xFFFFFFFF
PAGE = 4096
_CSR_ILLEGAL = -1


class TargetError(Exception):
    """A request the target refuses; carries the protocol error code and its detail."""

    def __init__(self, code: int, *, addr: int | None = None, cause: int = 0, reg: int | None = None,
                 message: str = "") -> None:
        super().__init__(p.ERROR_NAMES.get(code, str(code)) + (f": {message}" if message else ""))
        self.code = code
        self.addr = addr
        self.cause = cause
        self.reg = reg
        self.message = message


@dataclass(frozen=True)
class Segment:
    """A piece of a virtual range that lies in one physical page."""

    voffset: int   # offset of this piece from the start of the range
    paddr: int
    length: int


class NodeTarget:
    """One node seen from beneath its kernel."""

    def __init__(self, machine: Machine, index: int) -> None:
        self.machine = machine
        self.index = index
        self.node: Node = machine.node(index)

    @property
    def cpu(self) -> Cpu:
        return self.node.cpu

    # -- run state ----------------------------------------------------------

    @property
    def state(self) -> int:
        return {NodeState.HELD: p.STATE_HELD, NodeState.RUNNING: p.STATE_RUNNING,
                NodeState.STOPPED: p.STATE_STOPPED}[self.node.state]

    @property
    def stops(self) -> int:
        return self.node.stops

    @property
    def machine_stop_reason(self) -> int:
        """The simulator's STOP_* code of the node's last stop."""
        return self.node.stop_reason

    def stop(self) -> None:
        self.machine.stop_node(self.index)

    def _resume_over_stop(self) -> None:
        """The instruction at pc must not stop again for what stopped it there.

        Its breakpoint is passed; its watchpoint only if a watchpoint stopped it (the
        access is then the one already reported): after any other stop, the first
        instruction's access to a watched range is a new hit.
        """
        cpu = self.cpu
        cpu.skip_breakpoint_pc = cpu.pc
        cpu.skip_watch = self.node.stop_reason == STOP_WATCH

    def resume(self) -> None:
        self._resume_over_stop()
        self.machine.resume_node(self.index)

    def step(self, take_interrupts: bool) -> int:
        """One instruction (or the entry into one interrupt handler); the CPU's stop reason."""
        cpu = self.cpu
        self._resume_over_stop()
        try:
            return self.machine.step_node(self.index, take_interrupts)
        finally:
            # Unused if the step entered an interrupt handler instead: never let it linger.
            cpu.skip_breakpoint_pc = -1
            cpu.skip_watch = False

    # -- registers ------------------------------------------------------------

    def read_reg(self, reg: int) -> int:
        cpu = self.cpu
        if 0 <= reg < 32:
            return cpu.regs[reg] & M32 if reg else 0
        if reg == p.REG_PC:
            return cpu.pc & M32
        if reg == p.REG_PRIV:
            return cpu.priv
        if reg in p.COUNTER_REGS:
            return self._counter(reg)
        num = reg - p.REG_CSR_BASE
        if 0 <= num <= 0xFFF:
            if num in (rv32.CSR_MIP, rv32.CSR_SIP):
                cpu.update_mip()  # mip's device bits are derived state; bring them up to date
            value = cpu.csr.read(num, PRV_M, cpu.cycles, cpu.instret)
            if value >= 0:
                return value & M32
        raise TargetError(p.E_BAD_REGISTER, reg=reg)

    def _counter(self, reg: int) -> int:
        """Half of a reference counter pseudo-register (read only: writes find no such register)."""
        cpu = self.cpu
        base = reg & ~1
        count = (cpu.local_refs if base == p.REG_LOCAL_REFS
                 else cpu.remote_refs if base == p.REG_REMOTE_REFS else cpu.remote_fetches)
        return (count >> 32 if reg & 1 else count) & M32

    def write_regs(self, values: tuple[tuple[int, int], ...]) -> None:
        """Write all the registers, or none of them if any write is refused."""
        cpu = self.cpu
        saved = (list(cpu.regs), cpu.pc, cpu.priv, cpu.csr.state())
        try:
            for reg, value in values:
                self._write_reg(reg, value & M32)
        except TargetError:
            regs, pc, priv, csr = saved
            for i, v in enumerate(regs):
                cpu.regs[i] = v
            cpu.pc, cpu.priv = pc, priv
            cpu.csr.set_state(csr)
            raise
        finally:
            # CSRs such as satp and mstatus decide translation: make the TLBs forget.
            cpu.flush_tlb()
            cpu.recompute_contexts()

    def _write_reg(self, reg: int, value: int) -> None:
        cpu = self.cpu
        if 0 <= reg < 32:
            if reg:
                cpu.regs[reg] = value
            return
        if reg == p.REG_PC:
            if value & 3:
                raise TargetError(p.E_ALIGN, addr=value)
            cpu.pc = value
            return
        if reg == p.REG_PRIV:
            if value not in (0, 1, 3):
                raise TargetError(p.E_BAD_REGISTER, reg=reg, message="priv must be 0, 1 or 3")
            cpu.priv = value
            return
        num = reg - p.REG_CSR_BASE
        if 0 <= num <= 0xFFF:
            if cpu.csr.write(num, value, PRV_M, cpu.cycles, cpu.instret) != _CSR_ILLEGAL:
                return
        raise TargetError(p.E_BAD_REGISTER, reg=reg)

    # -- translation ------------------------------------------------------------

    def translate(self, space: int, vaddr: int, access: int, root: int = 0) -> int:
        """Physical address of vaddr in the given space, without side effects, or TargetError."""
        vaddr &= M32
        if space == p.SPACE_PHYS:
            return vaddr
        cpu = self.cpu
        mem = self.machine.mem
        if space == p.SPACE_VIRT:
            if access == p.ACCESS_EXEC:
                satp = cpu.csr.satp
                if cpu.priv == PRV_M or not satp & rv32.SATP_MODE_SV32:
                    result = vaddr
                else:
                    st = cpu.csr.mstatus
                    result = translate(mem, satp, vaddr, access, cpu.priv,
                                       bool(st & rv32.MSTATUS_SUM), bool(st & rv32.MSTATUS_MXR), False)
            else:
                result = cpu.debug_translate(vaddr, access)
        elif space == p.SPACE_ROOT:
            if not root & rv32.SATP_MODE_SV32:
                result = vaddr
            else:
                result = translate(mem, root, vaddr, access, PRV_S, True, True, False)
        else:
            raise TargetError(p.E_BAD_PAYLOAD, message=f"unknown address space {space}")
        if result < 0:
            raise TargetError(p.E_UNMAPPED, addr=vaddr, cause=fault_cause(result))
        return result

    def code_page_plain(self) -> bool:
        """True if every instruction in pc's page is fetched as a step fetches it, without a trap
        and without touching memory: the page executes at the node's privilege, its A bit is set
        already (a fetch would set it), it is RAM, PMP lets all of it execute, and no execute
        trigger watches any of it.  What such an instruction does is then the ISA's alone."""
        cpu = self.cpu
        mem = self.machine.mem
        page = cpu.pc & M32 & ~(PAGE - 1)
        try:
            paddr = self.translate(p.SPACE_VIRT, page, p.ACCESS_EXEC)
        except TargetError:
            return False
        satp = cpu.csr.satp
        if cpu.priv != PRV_M and satp & rv32.SATP_MODE_SV32 and not leaf_pte(mem, satp, page) & PTE_A:
            return False
        return (mem.range_is_ram(paddr, PAGE)
                and cpu.csr.pmp_allows(paddr, PAGE, p.ACCESS_EXEC, cpu.priv)
                and not cpu.csr.trigger_fires(MCONTROL_EXECUTE, page, PAGE, cpu.priv))

    def resolve(self, space: int, addr: int, length: int, access: int, root: int = 0) -> list[Segment]:
        """Split [addr, addr+length) into RAM pieces, one per page; TargetError if any is not RAM."""
        if space not in (p.SPACE_PHYS, p.SPACE_VIRT, p.SPACE_ROOT):
            raise TargetError(p.E_BAD_PAYLOAD, message=f"unknown address space {space}")
        if addr + length > 1 << 32:
            raise TargetError(p.E_UNMAPPED if space != p.SPACE_PHYS else p.E_NOT_RAM,
                              addr=(1 << 32) - 1 if space != p.SPACE_PHYS else addr)
        segments: list[Segment] = []
        mem = self.machine.mem
        offset = 0
        while offset < length:
            va = addr + offset
            piece = min(length - offset, PAGE - (va & (PAGE - 1)))
            pa = self.translate(space, va, access, root)
            if not mem.range_is_ram(pa, piece):
                raise TargetError(p.E_NOT_RAM, addr=pa)
            segments.append(Segment(offset, pa, piece))
            offset += piece
        return segments

    # -- memory -----------------------------------------------------------------

    def read_mem(self, space: int, addr: int, length: int, root: int = 0) -> bytes:
        out = bytearray()
        for seg in self.resolve(space, addr, length, p.ACCESS_READ, root):
            out += self.machine.read_phys(seg.paddr, seg.length)
        return bytes(out)

    def write_mem(self, space: int, addr: int, data: bytes, root: int = 0) -> None:
        """Write data, all or nothing: every page is resolved before the first byte is written.

        Physical writes go through PhysMem.write_bytes, which drops stale
        instruction decodings and breaks LR/SC reservations like any store.
        """
        segments = self.resolve(space, addr, len(data), p.ACCESS_WRITE, root)
        for seg in segments:
            self.machine.write_phys(seg.paddr, data[seg.voffset:seg.voffset + seg.length])

    # -- breakpoints and watched pages -----------------------------------------------

    def insert_breakpoint(self, addr: int) -> None:
        """The CPU stops before executing addr (a virtual pc) on this node only."""
        self.cpu.breakpoints.add(addr)

    def remove_breakpoint(self, addr: int) -> None:
        self.cpu.breakpoints.discard(addr)

    def watch_page(self, ppn: int) -> None:
        self.machine.mem.watch_page(ppn)

    def unwatch_page(self, ppn: int) -> None:
        self.machine.mem.unwatch_page(ppn)
