"""Control and status registers of one RV32 hart (M, S and U modes, Sstc).

The CSR file is plain state plus the access rules of the privileged spec:
privilege checks, read-only CSRs, WARL masks and the views (sstatus, sie,
sip) that S mode has of M-mode registers.  It knows nothing about the
interpreter; counters that depend on execution (cycle, time, instret) are
passed in by the caller.
"""

from typing import Final

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

CSR_SATP: Final = 0x180


NEVER: Final = 1 << 62


def timer_deadline(lo: i64, hi: i64) -> i64:
    """A 64-bit timer compare value as an i64; values past 2**62 never arrive."""
    if hi >= 0x40000000:
        return NEVER
    return (hi << 32) | lo


def _counter_offset(now: i64, offset: i64, value: i64, high: bool) -> i64:
    """New offset so that a counter reading `now + offset` has one half replaced.

    Computed with Python ints: 64-bit counter values do not fit an i64.
    """
    current: int = (int(now) + int(offset)) & 0xFFFFFFFFFFFFFFFF
    if high:
        wanted: int = (int(value) << 32) | (current & 0xFFFFFFFF)
    else:
        wanted = (current & ~0xFFFFFFFF) | int(value)
    if wanted >= 1 << 63:
        wanted -= 1 << 64
    return i64(wanted - int(now))


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
            return 0  # no PMP: reads as zero, writes ignored
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

    def write(self, num: i64, value: i64, priv: i64, cycles: i64, instret: i64) -> i64:
        """Write CSR `num`; returns CSR_ILLEGAL, CSR_OK or CSR_TRANSLATION_CHANGED."""
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
            self.cycle_offset = _counter_offset(cycles, self.cycle_offset, value, num == 0xB80)
        elif num == 0xB02 or num == 0xB82:
            self.instret_offset = _counter_offset(
                instret, self.instret_offset, value, num == 0xB82)
        elif num >= 0x3A0 and num <= 0x3EF:
            return CSR_OK
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

    # -- snapshots -------------------------------------------------------

    def state(self) -> list[int]:
        return [
            self.mstatus, self.mtvec, self.mepc, self.mcause, self.mtval, self.mscratch,
            self.medeleg, self.mideleg, self.mie, self.mip_sw, self.mip_hw, self.mcounteren,
            self.menvcfg, self.menvcfgh, self.stvec, self.sepc, self.scause, self.stval,
            self.sscratch, self.scounteren, self.senvcfg, self.satp, self.stimecmp_lo,
            self.stimecmp_hi, self.cycle_offset, self.instret_offset,
        ]

    def set_state(self, s: list[int]) -> None:
        (
            self.mstatus, self.mtvec, self.mepc, self.mcause, self.mtval, self.mscratch,
            self.medeleg, self.mideleg, self.mie, self.mip_sw, self.mip_hw, self.mcounteren,
            self.menvcfg, self.menvcfgh, self.stvec, self.sepc, self.scause, self.stval,
            self.sscratch, self.scounteren, self.senvcfg, self.satp, self.stimecmp_lo,
            self.stimecmp_hi, self.cycle_offset, self.instret_offset,
        ) = s
