"""CSR-level details of PMP, the debug triggers, counter writes and the trap_misaligned option.

The guest programs (tests/guest/pmp.S, triggers*.S, counters.S, misaligned*.S) check the
behaviour a program sees; these check the WARL corners and the state that snapshots keep.
"""

from __future__ import annotations

from pathlib import Path

from psyche.machine import snapshot
from psyche.machine.csr import PRV_M, PRV_S, PRV_U, CsrFile
from psyche.machine.machine import Machine, MachineConfig
from psyche.machine.physmem import RAM_BASE

READ, WRITE, EXEC = 0, 1, 2


def _csr(num: int, value: int, csr: CsrFile) -> int:
    """Write num as M mode, return what it reads back."""
    csr.write(num, value, PRV_M, 0, 0)
    return csr.read(num, PRV_M, 0, 0)


def test_pmp_at_reset_lets_m_through_and_stops_s_and_u() -> None:
    csr = CsrFile(0)
    assert csr.pmp_allows(RAM_BASE, 4, READ, PRV_M)
    assert not csr.pmp_allows(RAM_BASE, 4, READ, PRV_S)
    assert not csr.pmp_allows(RAM_BASE, 4, EXEC, PRV_U)


def test_pmpcfg_warl_fields() -> None:
    csr = CsrFile(0)
    # Bits 5-6 are reserved (read 0); R=0 W=1 is reserved (W reads back clear).
    assert _csr(0x3A0, 0x7F, csr) == 0x1F
    assert _csr(0x3A0, 0x1A, csr) == 0x18
    # pmpcfg4-15 and pmpaddr16-63 belong to entries this hart lacks.
    assert _csr(0x3A4, 0xFFFFFFFF, csr) == 0
    assert _csr(0x3C0, 0xFFFFFFFF, csr) == 0
    assert _csr(0x3BF, 0xFFFFFFFF, csr) == 0xFFFFFFFF


def test_napot_na4_and_tor_ranges() -> None:
    csr = CsrFile(0)
    csr.write(0x3B0, (0x80001000 >> 2) | 0x1FF, PRV_M, 0, 0)  # NAPOT 4 KiB at 0x80001000
    csr.write(0x3B1, 0x80003000 >> 2, PRV_M, 0, 0)  # NA4
    csr.write(0x3B2, 0x80004000 >> 2, PRV_M, 0, 0)
    csr.write(0x3B3, 0x80004010 >> 2, PRV_M, 0, 0)  # TOR [0x80004000, 0x80004010)
    csr.write(0x3A0, 0x0B001119, PRV_M, 0, 0)  # 0: NAPOT R, 1: NA4 R, 2: OFF, 3: TOR R|W
    assert csr.pmp_allows(0x80001000, 4, READ, PRV_S)
    assert csr.pmp_allows(0x80001FFC, 4, READ, PRV_S)
    assert not csr.pmp_allows(0x80001000, 4, WRITE, PRV_S)
    assert not csr.pmp_allows(0x80002000, 4, READ, PRV_S)  # no entry
    assert csr.pmp_allows(0x80003000, 4, READ, PRV_U)
    assert not csr.pmp_allows(0x80003000, 8, READ, PRV_U)  # matches in part: fails
    assert not csr.pmp_allows(0x80003000, 8, READ, PRV_M)  # even for M
    assert csr.pmp_allows(0x8000400C, 4, WRITE, PRV_S)
    assert not csr.pmp_allows(0x80004010, 4, WRITE, PRV_S)
    # A whole page is allowed only when one entry covers it all.
    assert csr.pmp_allows(0x80001000, 4096, READ, PRV_S)
    assert not csr.pmp_allows(0x80003000, 4096, READ, PRV_S)


def test_a_locked_entry_binds_m_and_ignores_writes() -> None:
    csr = CsrFile(0)
    csr.write(0x3B1, 0x80000000 >> 2, PRV_M, 0, 0)
    csr.write(0x3A0, (0x80 | 0x08 | 0x01) << 8, PRV_M, 0, 0)  # entry 1: locked TOR, R
    assert not csr.pmp_allows(0x7FFFFFF0, 4, WRITE, PRV_M)
    assert csr.pmp_allows(0x7FFFFFF0, 4, READ, PRV_M)
    assert _csr(0x3A0, 0x1F1F, csr) == 0x891F  # entry 0 takes it, entry 1 does not
    assert _csr(0x3B1, 0, csr) == 0x80000000 >> 2
    assert _csr(0x3B0, 0x1234, csr) == 0  # below a locked TOR entry


def test_triggers_warl_and_armed_bits() -> None:
    csr = CsrFile(0)
    assert _csr(0x7A0, 2, csr) == 0  # no trigger 2: selection unchanged
    assert _csr(0x7A1, 0xFFFFFFFF, csr) == 0x20000000  # type 15 is not one this hart has: ignored
    assert _csr(0x7A1, 0x2FFFFFFF, csr) == 0x2000005F  # type 2: only m s u execute store load stay
    assert csr.triggers_armed == 0x7
    csr.write(0x7A1, 0, PRV_M, 0, 0)
    assert csr.triggers_armed == 0
    assert csr.read(0x7A1, PRV_M, 0, 0) == 0x20000000
    assert csr.read(0x7A0, PRV_S, 0, 0) == -1  # M-mode CSRs


def test_counter_writes_by_an_instruction_and_by_a_debugger() -> None:
    csr = CsrFile(0)
    # An instruction writes at instret 10 and retires: the next one (instret 11) reads 1000.
    csr.write(0xB02, 1000, PRV_M, 50, 10, True)
    assert csr.read(0xB02, PRV_M, 51, 11) == 1000
    # A debugger writes at instret 11: the next read, still at 11, sees the value.
    csr.write(0xB02, 7, PRV_M, 51, 11)
    assert csr.read(0xB02, PRV_M, 51, 11) == 7
    # The high half alone; the low half keeps its value, and carries into the high one.
    csr.write(0xB02, 0xFFFFFFFF, PRV_M, 51, 11)
    csr.write(0xB82, 4, PRV_M, 51, 11)
    assert csr.read(0xB82, PRV_M, 51, 11) == 4
    assert csr.read(0xB02, PRV_M, 51, 11) == 0xFFFFFFFF
    assert (csr.read(0xB82, PRV_M, 51, 12), csr.read(0xB02, PRV_M, 51, 12)) == (5, 0)


def test_snapshots_keep_pmp_triggers_and_the_misaligned_option(tmp_path: Path) -> None:
    machine = Machine(MachineConfig(trap_misaligned=True))
    csr = machine.nodes[0].cpu.csr
    csr.write(0x3B0, 0xFFFFFFFF, PRV_M, 0, 0)
    csr.write(0x3A0, 0x1F, PRV_M, 0, 0)
    csr.write(0x7A2, 0x80000100, PRV_M, 0, 0)
    csr.write(0x7A1, 0x20000041, PRV_M, 0, 0)
    path = tmp_path / "s.snap"
    snapshot.save(machine, path)
    restored = snapshot.restore(path)
    assert restored.config.trap_misaligned
    again = restored.nodes[0].cpu
    assert again.trap_misaligned
    assert again.csr.state() == csr.state()
    assert again.csr.pmp_allows(RAM_BASE, 4, WRITE, PRV_U)
    assert again.csr.triggers_armed == 0x1


def test_an_old_snapshot_state_resets_pmp_and_triggers() -> None:
    csr = CsrFile(0)
    old = csr.state()[:26]
    csr.write(0x3A0, 0x1F, PRV_M, 0, 0)
    csr.set_state(old)
    assert csr.read(0x3A0, PRV_M, 0, 0) == 0 and csr.pmp_active == 0
