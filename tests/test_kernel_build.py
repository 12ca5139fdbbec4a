"""The kernel builds with zig's C compiler into an ELF that gdb reads with source and types."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from psyche.kernel import build

PSYCHE = [sys.executable, "-m", "psyche.cli"]


def test_build_is_skipped_when_up_to_date(kernel_elf: Path) -> None:
    before = kernel_elf.stat().st_mtime_ns
    assert build.build_kernel() == kernel_elf
    assert kernel_elf.stat().st_mtime_ns == before


def test_an_older_elf_is_stale(kernel_elf: Path, tmp_path: Path) -> None:
    copy = tmp_path / "psyche.elf"
    shutil.copy(kernel_elf, copy)
    assert not build.is_stale(copy)
    newest = max(p.stat().st_mtime for p in build.kernel_inputs())
    os.utime(copy, (newest - 10, newest - 10))
    assert build.is_stale(copy)
    assert build.is_stale(tmp_path / "missing.elf")


def test_elf_layout(kernel_elf: Path) -> None:
    """Linked in the local kernel window, loaded into the king's RAM, entered physically."""
    with kernel_elf.open("rb") as f:
        elf = ELFFile(f)
        assert elf["e_entry"] == build.KERNEL_PBASE
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert loads
        for seg in loads:
            assert seg["p_vaddr"] - build.KERNEL_VBASE == seg["p_paddr"] - build.KERNEL_PBASE
        names = {s.name for s in elf.iter_sections()}
        assert {".debug_info", ".debug_line", ".debug_frame"} <= names
        symbols = elf.get_section_by_name(".symtab")
        for name in ("startup", "barrier_sync", "clock_intr", "this_node", "bootargs", "_entry"):
            (sym,) = symbols.get_symbol_by_name(name)
            assert build.KERNEL_VBASE <= sym["st_value"] < build.KERNEL_VBASE + 0x40_0000, name


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch is not installed")
def test_gdb_reads_source_and_types(kernel_elf: Path) -> None:
    result = subprocess.run(
        ["gdb-multiarch", "-batch", "-nx",
         "-ex", "info functions clock_intr",
         "-ex", "ptype struct node",
         "-ex", "info line barrier_sync",
         "-ex", "info scope startup",
         str(kernel_elf)],
        capture_output=True, text=True, timeout=60,
    )
    out = result.stdout
    assert "clock.c" in out and "void clock_intr(void);" in out
    assert "volatile uint32_t ticks;" in out and "volatile int preempt_level;" in out
    assert 'barrier.c"' in out
    assert "Symbol id is" in out  # startup's argument, with its location


def test_psyche_build_builds_the_kernel(kernel_elf: Path) -> None:
    result = subprocess.run([*PSYCHE, "build", "--kernel-only"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"kernel\t{kernel_elf}" in result.stdout


def test_trap_frames_unwind_for_debuggers(kernel_elf: Path) -> None:
    """trap_entry has call-frame information whose return address is the saved sepc, so a gdb
    backtrace from an interrupt handler continues into the interrupted code."""
    sepc_dwarf = 4096 + 0x141
    with kernel_elf.open("rb") as f:
        elf = ELFFile(f)
        symbols = elf.get_section_by_name(".symtab")
        wanted = {name: symbols.get_symbol_by_name(name)[0]["st_value"]
                  for name in ("trap_entry", "thread_entry", "s_entry")}
        fdes = {entry.header["initial_location"]: entry
                for entry in elf.get_dwarf_info().CFI_entries() if "initial_location" in entry.header}
        assert fdes[wanted["trap_entry"]].cie.header["return_address_register"] == sepc_dwarf
        assert wanted["thread_entry"] in fdes and wanted["s_entry"] in fdes
