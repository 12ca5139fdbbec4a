"""Control and status registers of one RV32 hart (M, S and U modes, Sstc).

The CSR file is plain state plus the access rules of the privileged spec:
privilege checks, read-only CSRs, WARL masks and the views (sstatus, sie,
sip) that S mode has of M-mode registers.  It knows nothing about the
interpreter; counters that depend on execution (cycle, time, instret) are
passed in by the caller.
"""

from typing import Final

from librt.vecs import vec
from mypy_extensions import i64

MASK32: Final = 0xFFFFFFFF

PRV_U: Final = 0
PRV_S: Final = 1
PRV_M: Final = 3

# mstatus bits (RV32)
MSTATUS_SIE: Final = 1 << 1
MSTATUS_MIE: Final = 1 << 3
MSTATUS_SPIE: Final = 1 << 5
MSTATUS_MPIE: Final = 1 << 7
MSTATUS_SPP: Final = 1 << 8
MSTATUS_MPP_SHIFT: Final = 11
MSTATUS_MPP: Final = 3 << 11
MSTATUS_MPRV: Final = 1 << 17
MSTATUS_SUM: Final = 1 << 18
MSTATUS_MXR: Final = 1 << 19
MSTATUS_TVM: Final = 1 << 20
MSTATUS_TW: Final = 1 << 21
MSTATUS_TSR: Final = 1 << 22
MSTATUS_WRITABLE: Final = (
    MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP
    | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
)
SSTATUS_MASK: Final = (
    MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR
)

# interrupt bits in mip / mie
IRQ_SSI: Final = 1
IRQ_MSI: Final = 3
IRQ_STI: Final = 5
IRQ_MTI: Final = 7
IRQ_SEI: Final = 9
IRQ_MEI: Final = 11
MIP_SSIP: Final = 1 << IRQ_SSI
MIP_MSIP: Final = 1 << IRQ_MSI
MIP_STIP: Final = 1 << IRQ_STI
MIP_MTIP: Final = 1 << IRQ_MTI
MIP_SEIP: Final = 1 << IRQ_SEI
MIP_MEIP: Final = 1 << IRQ_MEI
S_INTERRUPTS: Final = MIP_SSIP | MIP_STIP | MIP_SEIP
ALL_INTERRUPTS: Final = S_INTERRUPTS | MIP_MSIP | MIP_MTIP | MIP_MEIP

# exception causes whose delegation medeleg accepts (not ecall from M)
MEDELEG_MASK: Final = 0xB3FF

MISA: Final = (1 << 30) | (1 << 0) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20)

MENVCFGH_STCE: Final = 1 << 31
COUNTEREN_TM: Final = 1 << 1

# CSR write results
CSR_ILLEGAL: Final = -1
CSR_OK: Final = 0
CSR_TRANSLATION_CHANGED: Final = 1
# A PMP or trigger register changed: every TLB entry may now be wrong (an entry is only
# made for a page that PMP allows as a whole and while no data trigger is armed).
CSR_FLUSH_TLB: Final = 2

CSR_SATP: Final = 0x180


NEVER: Final = 1 << 62

# Physical memory protection (privileged spec, 3.7): 16 entries, 4-byte granularity (G = 0).
PMP_ENTRIES: Final = 16
PMP_R: Final = 0x01
PMP_W: Final = 0x02
PMP_X: Final = 0x04
PMP_A: Final = 0x18
PMP_L: Final = 0x80
PMP_OFF: Final = 0
PMP_TOR: Final = 1
PMP_NA4: Final = 2
PMP_NAPOT: Final = 3
PMP_CFG_MASK: Final = PMP_L | PMP_A | PMP_X | PMP_W | PMP_R  # bits 5-6 are reserved, read 0

# Debug triggers (Sdtrig, debug spec 1.0): two mcontrol (type 2) address match triggers.
TRIGGERS: Final = 2
MCONTROL_TYPE: Final = 2 << 28
MCONTROL_M: Final = 1 << 6
MCONTROL_S: Final = 1 << 4
MCONTROL_U: Final = 1 << 3
MCONTROL_EXECUTE: Final = 1 << 2
MCONTROL_STORE: Final = 1 << 1
MCONTROL_LOAD: Final = 1 << 0
# What tdata1 keeps of a write: the mode and access bits.  The rest is WARL with one legal
# value: dmode 0 (no debug mode), hit 0, select 0 (address), timing 0 (before), size 0 (any),
# action 0 (breakpoint exception), chain 0, match 0 (equal), maskmax 0.
MCONTROL_WRITABLE: Final = (
    MCONTROL_M | MCONTROL_S | MCONTROL_U | MCONTROL_EXECUTE | MCONTROL_STORE | MCONTROL_LOAD
)
TINFO: Final = 1 << 2  # type 2 only


def _mode_bit(priv: i64) -> i64:
    """The mcontrol bit that enables a trigger in privilege mode priv."""
    if priv == PRV_M:
        return MCONTROL_M
    if priv == PRV_S:
        return MCONTROL_S
    return MCONTROL_U


def _napot_range(addr: i64) -> tuple[i64, i64]:
    """[start, end) of a NAPOT region: trailing ones of pmpaddr give its size (8 bytes and up)."""
    size: i64 = 8
    rest: i64 = addr
    while (rest & 1) != 0:
        size = size * 2
        rest = rest >> 1
    start: i64 = (addr * 4) & ~(size - 1)
    return start, start + size


def timer_deadline(lo: i64, hi: i64) -> i64:
    """A 64-bit timer compare value as an i64; values past 2**62 never arrive."""
    if hi >= 0x40000000:
        return NEVER
    return (hi << 32) | lo


def _counter_offset(now: i64, offset: i64, value: i64, high: bool, by_instruction: bool) -> i64:
    """New offset so that a counter reading `now + offset` has one half replaced.

    The other half keeps its value, and a later carry out of the low half
    reaches the high half (the two are one 64-bit counter).  When an
    instruction writes, the raw count moves on by one as it retires, and the
    value written must still be what the next instruction reads: the offset
    takes that step back.  Computed with Python ints: 64-bit counter values do
    not fit an i64.
    """
    current: int = (int(now) + int(offset)) & 0xFFFFFFFFFFFFFFFF
    if high:
        wanted: int = (int(value) << 32) | (current & 0xFFFFFFFF)
    else:
        wanted = (current & ~0xFFFFFFFF) | int(value)
    if wanted >= 1 << 63:
        wanted -= 1 << 64
    step: int = 1 if by_instruction else 0
    return i64(wanted - int(now) - step)


class CsrFile:
    """The CSR state of one hart, with the rules for reading and writing it."""

    def __init__(self, hartid: i64) -> None:
        self.hartid: i64 = hartid
        self.mstatus: i64 = 0
        self.mtvec: i64 = 0
        self.mepc: i64 = 0
        self.mcause: i64 = 0
        self.mtval: i64 = 0
        self.mscratch: i64 = 0
        self.medeleg: i64 = 0
        self.mideleg: i64 = 0
        self.mie: i64 = 0
        # Software-writable pending bits (SSIP, SEIP, and STIP while Sstc is off).
        self.mip_sw: i64 = 0
        # Pending bits driven by devices: MSIP, MTIP, MEIP, SEIP, and STIP under Sstc.
        self.mip_hw: i64 = 0
        self.mcounteren: i64 = 0
        self.menvcfg: i64 = 0
        self.menvcfgh: i64 = 0
        self.stvec: i64 = 0
        self.sepc: i64 = 0
        self.scause: i64 = 0
        self.stval: i64 = 0
        self.sscratch: i64 = 0
        self.scounteren: i64 = 0
        self.senvcfg: i64 = 0
        self.satp: i64 = 0
        # Sstc compare value as two 32-bit halves: 64-bit values do not fit an i64.
        self.stimecmp_lo: i64 = MASK32
        self.stimecmp_hi: i64 = MASK32
        self.cycle_offset: i64 = 0
        self.instret_offset: i64 = 0
        # PMP: one configuration byte and one address register per entry, and, derived from
        # them, each entry's byte range [pmp_start, pmp_end) (empty when OFF).
        self.pmpcfg: vec[i64] = vec[i64]([0] * PMP_ENTRIES)
        self.pmpaddr: vec[i64] = vec[i64]([0] * PMP_ENTRIES)
        self.pmp_start: vec[i64] = vec[i64]([0] * PMP_ENTRIES)
        self.pmp_end: vec[i64] = vec[i64]([0] * PMP_ENTRIES)
        self.pmp_active: i64 = 0  # entries that are not OFF
        # Triggers, and the union of the armed ones' access bits (execute, store, load).
        self.tselect: i64 = 0
        self.tdata1: vec[i64] = vec[i64]([0] * TRIGGERS)
        self.tdata2: vec[i64] = vec[i64]([0] * TRIGGERS)
        self.triggers_armed: i64 = 0

    # -- derived state ---------------------------------------------------

    def mip(self) -> i64:
        return self.mip_sw | self.mip_hw

    def stimecmp_deadline(self) -> i64:
        """The Sstc compare value, clamped far in the future when it cannot be reached."""
        return timer_deadline(self.stimecmp_lo, self.stimecmp_hi)

    def sstc_enabled(self) -> bool:
        return (self.menvcfgh & MENVCFGH_STCE) != 0

    def mpp(self) -> i64:
        return (self.mstatus >> MSTATUS_MPP_SHIFT) & 3

    # -- access ----------------------------------------------------------

    def read(self, num: i64, priv: i64, cycles: i64, instret: i64) -> i64:
        """Value of CSR `num` read at privilege `priv`, or -1 if the read is illegal."""
        if ((num >> 8) & 3) > priv:
            return -1
        if num >= 0xC00 and num <= 0xC9F:
            return self._read_counter(num, priv, cycles, instret)
        v: i64 = self._read_plain(num, priv, cycles, instret)
        return v

    def _counter_enabled(self, index: i64, priv: i64) -> bool:
        bit: i64 = 1 << index
        if priv < PRV_M and (self.mcounteren & bit) == 0:
            return False
        if priv < PRV_S and (self.scounteren & bit) == 0:
            return False
        return True

    def _read_counter(self, num: i64, priv: i64, cycles: i64, instret: i64) -> i64:
        index: i64 = num & 0x1F
        high: bool = num >= 0xC80
        if index > 2:
            return -1
        if not self._counter_enabled(index, priv):
            return -1
        value: i64 = cycles
        if index == 0:
            value = cycles + self.cycle_offset
        elif index == 2:
            value = instret + self.instret_offset
        return (value >> 32) & MASK32 if high else value & MASK32

    def _read_plain(self, num: i64, priv: i64, cycles: i64, instret: i64) -> i64:
        if num == 0x300:
            return self.mstatus
        if num == 0x310:
            return 0
        if num == 0x305:
            return self.mtvec
        if num == 0x341:
            return self.mepc
        if num == 0x342:
            return self.mcause
        if num == 0x343:
            return self.mtval
        if num == 0x340:
            return self.mscratch
        if num == 0x302:
            return self.medeleg
        if num == 0x303:
            return self.mideleg
        if num == 0x304:
            return self.mie
        if num == 0x344:
            return self.mip()
        if num == 0x306:
            return self.mcounteren
        if num == 0x30A:
            return self.menvcfg
        if num == 0x31A:
            return self.menvcfgh
        if num == 0x301:
            return MISA
        if num == 0xF14:
            return self.hartid
        if num == 0xF11 or num == 0xF12 or num == 0xF13 or num == 0xF15:
            return 0
        if num == 0x320:
            return 0
        if num == 0xB00:
            return (cycles + self.cycle_offset) & MASK32
        if num == 0xB80:
            return ((cycles + self.cycle_offset) >> 32) & MASK32
        if num == 0xB02:
            return (instret + self.instret_offset) & MASK32
        if num == 0xB82:
            return ((instret + self.instret_offset) >> 32) & MASK32
        if num >= 0x3A0 and num <= 0x3EF:
            return self._read_pmp(num)
        if num >= 0x7A0 and num <= 0x7A4:
            return self._read_trigger(num)
        if num == 0x100:
            return self.mstatus & SSTATUS_MASK
        if num == 0x104:
            return self.mie & self.mideleg
        if num == 0x144:
            return self.mip() & self.mideleg
        if num == 0x105:
            return self.stvec
        if num == 0x141:
            return self.sepc
        if num == 0x142:
            return self.scause
        if num == 0x143:
            return self.stval
        if num == 0x140:
            return self.sscratch
        if num == 0x106:
            return self.scounteren
        if num == 0x10A:
            return self.senvcfg
        if num == CSR_SATP:
            if priv == PRV_S and (self.mstatus & MSTATUS_TVM) != 0:
                return -1
            return self.satp
        if num == 0x14D or num == 0x15D:
            if not self._stimecmp_accessible(priv):
                return -1
            return self.stimecmp_lo if num == 0x14D else self.stimecmp_hi
        return -1

    def _stimecmp_accessible(self, priv: i64) -> bool:
        if priv == PRV_M:
            return True
        return self.sstc_enabled() and (self.mcounteren & COUNTEREN_TM) != 0

    def write(self, num: i64, value: i64, priv: i64, cycles: i64, instret: i64,
              by_instruction: bool = False) -> i64:
        """Write CSR `num`; returns CSR_ILLEGAL, CSR_OK, CSR_TRANSLATION_CHANGED or CSR_FLUSH_TLB.

        by_instruction: a CSR instruction writes, and retires in the same cycle.  A
        counter it writes does not count that instruction as well: the write
        is done instead of the increment, so the next instruction reads the
        value written (privileged spec, "CSR Instructions").  A debugger's
        write takes effect as it is: the value is what the next read sees.
        """
        if ((num >> 8) & 3) > priv or ((num >> 10) & 3) == 3:
            return CSR_ILLEGAL
        value = value & MASK32
        if num == 0x300:
            return self._write_mstatus(value, MSTATUS_WRITABLE)
        if num == 0x100:
            return self._write_mstatus(value, SSTATUS_MASK)
        if num == 0x310 or num == 0x301 or num == 0x320:
            return CSR_OK
        if num == 0x305:
            self.mtvec = value if (value & 3) < 2 else value & ~3
        elif num == 0x341:
            self.mepc = value & ~3
        elif num == 0x342:
            self.mcause = value
        elif num == 0x343:
            self.mtval = value
        elif num == 0x340:
            self.mscratch = value
        elif num == 0x302:
            self.medeleg = value & MEDELEG_MASK
        elif num == 0x303:
            self.mideleg = value & S_INTERRUPTS
        elif num == 0x304:
            self.mie = value & ALL_INTERRUPTS
        elif num == 0x344:
            self._write_mip(value, MIP_SSIP | MIP_STIP | MIP_SEIP)
        elif num == 0x306:
            self.mcounteren = value & 7
        elif num == 0x30A:
            self.menvcfg = value & 1
        elif num == 0x31A:
            self.menvcfgh = value & MENVCFGH_STCE
        elif num == 0xB00 or num == 0xB80:
            self.cycle_offset = _counter_offset(
                cycles, self.cycle_offset, value, num == 0xB80, by_instruction)
        elif num == 0xB02 or num == 0xB82:
            self.instret_offset = _counter_offset(
                instret, self.instret_offset, value, num == 0xB82, by_instruction)
        elif num >= 0x3A0 and num <= 0x3EF:
            self._write_pmp(num, value)
            return CSR_FLUSH_TLB
        elif num >= 0x7A0 and num <= 0x7A4:
            self._write_trigger(num, value)
            return CSR_FLUSH_TLB
        elif num == 0x104:
            self.mie = (self.mie & ~self.mideleg) | (value & self.mideleg)
        elif num == 0x144:
            self._write_mip(value, MIP_SSIP & self.mideleg)
        elif num == 0x105:
            self.stvec = value if (value & 3) < 2 else value & ~3
        elif num == 0x141:
            self.sepc = value & ~3
        elif num == 0x142:
            self.scause = value
        elif num == 0x143:
            self.stval = value
        elif num == 0x140:
            self.sscratch = value
        elif num == 0x106:
            self.scounteren = value & 7
        elif num == 0x10A:
            self.senvcfg = value & 1
        elif num == CSR_SATP:
            return self._write_satp(value, priv)
        elif num == 0x14D or num == 0x15D:
            if not self._stimecmp_accessible(priv):
                return CSR_ILLEGAL
            if num == 0x14D:
                self.stimecmp_lo = value
            else:
                self.stimecmp_hi = value
        else:
            return CSR_ILLEGAL
        return CSR_OK

    def _write_mstatus(self, value: i64, mask: i64) -> i64:
        new: i64 = (self.mstatus & ~mask) | (value & mask)
        if ((new >> MSTATUS_MPP_SHIFT) & 3) == 2:
            new = new & ~MSTATUS_MPP  # MPP is WARL: the reserved value 2 reads as U
        changed: i64 = new ^ self.mstatus
        self.mstatus = new
        if changed & (MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_MPP) != 0:
            return CSR_TRANSLATION_CHANGED
        return CSR_OK

    def _write_mip(self, value: i64, mask: i64) -> None:
        if self.sstc_enabled():
            mask = mask & ~MIP_STIP
        self.mip_sw = (self.mip_sw & ~mask) | (value & mask)

    def _write_satp(self, value: i64, priv: i64) -> i64:
        if priv == PRV_S and (self.mstatus & MSTATUS_TVM) != 0:
            return CSR_ILLEGAL
        # Only ASID 0 is implemented: ASID bits are WARL and read as zero.
        self.satp = value & 0x803FFFFF
        return CSR_TRANSLATION_CHANGED

    # -- physical memory protection ----------------------------------------

    def _read_pmp(self, num: i64) -> i64:
        if num < 0x3A4:  # pmpcfg0-3: four entries' bytes each
            first: i64 = (num - 0x3A0) * 4
            value: i64 = 0
            k: i64 = 0
            while k < 4:
                value |= self.pmpcfg[first + k] << (8 * k)
                k += 1
            return value
        if num >= 0x3B0 and num < 0x3B0 + PMP_ENTRIES:
            return self.pmpaddr[num - 0x3B0]
        return 0  # pmpcfg4-15, pmpaddr16-63: entries this hart does not have (WARL zero)

    def _pmp_locked(self, entry: i64) -> bool:
        return (self.pmpcfg[entry] & PMP_L) != 0

    def _write_pmp(self, num: i64, value: i64) -> None:
        if num < 0x3A4:
            first: i64 = (num - 0x3A0) * 4
            k: i64 = 0
            while k < 4:
                if not self._pmp_locked(first + k):
                    cfg: i64 = (value >> (8 * k)) & PMP_CFG_MASK
                    if (cfg & (PMP_R | PMP_W)) == PMP_W:
                        cfg = cfg & ~PMP_W  # R=0 W=1 is reserved: WARL, read back as no access
                    self.pmpcfg[first + k] = cfg
                k += 1
        elif num >= 0x3B0 and num < 0x3B0 + PMP_ENTRIES:
            entry: i64 = num - 0x3B0
            # A locked entry's address is locked, and so is the bottom of a locked TOR above it.
            above_locked_tor: bool = entry + 1 < PMP_ENTRIES and self._pmp_locked(entry + 1) and (
                (self.pmpcfg[entry + 1] & PMP_A) >> 3) == PMP_TOR
            if not self._pmp_locked(entry) and not above_locked_tor:
                self.pmpaddr[entry] = value
        self._pmp_ranges()

    def _pmp_ranges(self) -> None:
        """Recompute each entry's byte range after a write."""
        active: i64 = 0
        i: i64 = 0
        while i < PMP_ENTRIES:
            mode: i64 = (self.pmpcfg[i] & PMP_A) >> 3
            addr: i64 = self.pmpaddr[i]
            start: i64 = 0
            end: i64 = 0
            if mode == PMP_TOR:
                start = self.pmpaddr[i - 1] << 2 if i > 0 else 0
                end = addr << 2
            elif mode == PMP_NA4:
                start = addr << 2
                end = start + 4
            elif mode == PMP_NAPOT:
                start, end = _napot_range(addr)
            if mode != PMP_OFF:
                active += 1
            self.pmp_start[i] = start
            self.pmp_end[i] = end
            i += 1
        self.pmp_active = active

    def pmp_allows(self, paddr: i64, size: i64, access: i64, priv: i64) -> bool:
        """Whether PMP lets an access of `size` bytes at paddr through (access: 0 R, 1 W, 2 X).

        The lowest-numbered entry that matches any byte decides: all bytes
        inside it, its permissions (not binding on M mode unless locked);
        only some, the access fails.  No entry matches: M mode passes, S and
        U fail (this hart implements PMP entries).  Also asked for whole pages
        before a TLB entry is made, so a page's entry stands for every access in it.
        """
        if self.pmp_active == 0:
            return priv == PRV_M
        last: i64 = paddr + size
        i: i64 = 0
        while i < PMP_ENTRIES:
            start: i64 = self.pmp_start[i]
            end: i64 = self.pmp_end[i]
            if start < end and paddr < end and last > start:
                if paddr < start or last > end:
                    return False
                cfg: i64 = self.pmpcfg[i]
                if priv == PRV_M and (cfg & PMP_L) == 0:
                    return True
                return ((cfg >> access) & 1) != 0
            i += 1
        return priv == PRV_M

    # -- debug triggers ----------------------------------------------------

    def _read_trigger(self, num: i64) -> i64:
        if num == 0x7A0:
            return self.tselect
        if num == 0x7A1:
            return MCONTROL_TYPE | self.tdata1[self.tselect]
        if num == 0x7A2:
            return self.tdata2[self.tselect]
        if num == 0x7A4:
            return TINFO
        return 0  # tdata3: mcontrol has no third register (no context matching)

    def _write_trigger(self, num: i64, value: i64) -> None:
        if num == 0x7A0:
            if value < TRIGGERS:  # WARL: a trigger that does not exist is not selected
                self.tselect = value
        elif num == 0x7A1:
            kind: i64 = (value >> 28) & 0xF
            # Type 0 disables the trigger; types this hart lacks (mcontrol6, icount...) are ignored.
            if kind == 0:
                self.tdata1[self.tselect] = 0
            elif kind == 2:
                self.tdata1[self.tselect] = value & MCONTROL_WRITABLE
        elif num == 0x7A2:
            self.tdata2[self.tselect] = value
        armed: i64 = 0
        i: i64 = 0
        while i < TRIGGERS:
            control: i64 = self.tdata1[i]
            if (control & (MCONTROL_M | MCONTROL_S | MCONTROL_U)) != 0:
                armed |= control & (MCONTROL_EXECUTE | MCONTROL_STORE | MCONTROL_LOAD)
            i += 1
        self.triggers_armed = armed

    def trigger_fires(self, kinds: i64, vaddr: i64, size: i64, priv: i64) -> bool:
        """Whether an armed trigger for one of `kinds` (mcontrol access bits) matches an access.

        Match 0 (equal) with any size: the trigger's address is one of the bytes accessed.
        """
        mode: i64 = _mode_bit(priv)
        i: i64 = 0
        while i < TRIGGERS:
            control: i64 = self.tdata1[i]
            if (control & kinds) != 0 and (control & mode) != 0:
                address: i64 = self.tdata2[i]
                if vaddr <= address < vaddr + size:
                    return True
            i += 1
        return False

    # -- snapshots -------------------------------------------------------

    def state(self) -> list[int]:
        return [
            self.mstatus, self.mtvec, self.mepc, self.mcause, self.mtval, self.mscratch,
            self.medeleg, self.mideleg, self.mie, self.mip_sw, self.mip_hw, self.mcounteren,
            self.menvcfg, self.menvcfgh, self.stvec, self.sepc, self.scause, self.stval,
            self.sscratch, self.scounteren, self.senvcfg, self.satp, self.stimecmp_lo,
            self.stimecmp_hi, self.cycle_offset, self.instret_offset,
            *self.pmpcfg, *self.pmpaddr, self.tselect, *self.tdata1, *self.tdata2,
        ]

    def set_state(self, s: list[int]) -> None:
        (
            self.mstatus, self.mtvec, self.mepc, self.mcause, self.mtval, self.mscratch,
            self.medeleg, self.mideleg, self.mie, self.mip_sw, self.mip_hw, self.mcounteren,
            self.menvcfg, self.menvcfgh, self.stvec, self.sepc, self.scause, self.stval,
            self.sscratch, self.scounteren, self.senvcfg, self.satp, self.stimecmp_lo,
            self.stimecmp_hi, self.cycle_offset, self.instret_offset,
        ) = s[:26]
        # Snapshots from before PMP and triggers have neither: reset values.
        rest: list[int] = s[26:] or [0] * (2 * PMP_ENTRIES + 1 + 2 * TRIGGERS)
        self.pmpcfg = vec[i64](rest[:PMP_ENTRIES])
        self.pmpaddr = vec[i64](rest[PMP_ENTRIES:2 * PMP_ENTRIES])
        self.tselect = rest[2 * PMP_ENTRIES]
        self.tdata1 = vec[i64](rest[2 * PMP_ENTRIES + 1:2 * PMP_ENTRIES + 1 + TRIGGERS])
        self.tdata2 = vec[i64](rest[2 * PMP_ENTRIES + 1 + TRIGGERS:])
        self._pmp_ranges()
        self._write_trigger(0x7A3, 0)  # recompute triggers_armed (tdata3 writes change nothing)
