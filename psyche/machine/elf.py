"""Loading RV32 executables into simulated physical memory.

Only what a bare-metal loader needs is kept: the entry point, the PT_LOAD
segments at their physical addresses, and a symbol table for naming addresses
in traces and for finding well-known variables.  Every way a file can be
unusable is reported as one ElfError line, since it usually reaches a user who
passed the wrong file on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

_ELF_MAGIC = b"\x7fELF"
_SYMBOL_TYPES = {"STT_FUNC", "STT_OBJECT", "STT_NOTYPE"}


class ElfError(ValueError):
    """The file cannot be loaded as an RV32 executable; the message says why, in one line."""


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD segment: data goes at paddr, the rest up to memsz is zero (bss)."""

    paddr: int
    data: bytes
    memsz: int


@dataclass(frozen=True)
class ElfImage:
    """What load_elf() keeps of an executable."""

    entry: int
    segments: list[Segment]
    symbols: dict[str, int]
    path: Path
    symbol_sizes: dict[str, int] = field(default_factory=dict)
    """Size of each symbol in `symbols` (0 when unknown); used by symbol_at()."""

    def symbol(self, name: str) -> int | None:
        """Address of a symbol, or None if the image has no such symbol."""
        return self.symbols.get(name)

    def symbol_at(self, addr: int) -> tuple[str, int] | None:
        """Name of the sized symbol containing addr and addr's offset in it.

        If sized symbols nest, the innermost (highest start) wins.  Linear in
        the number of symbols: meant for traces and error messages.
        """
        best: tuple[str, int] | None = None
        for name, start in self.symbols.items():
            size = self.symbol_sizes.get(name, 0)
            if start <= addr < start + size and (best is None or addr - start < best[1]):
                best = (name, addr - start)
        return best


def load_elf(path: str | Path) -> ElfImage:
    """Read an RV32 little-endian ET_EXEC file; raise ElfError if it is anything else."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            if f.read(4) != _ELF_MAGIC:
                raise ElfError(f"{path}: not an ELF file")
            f.seek(0)
            return _read(path, ELFFile(f))
    except FileNotFoundError:
        raise ElfError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ElfError(f"{path}: is a directory, not an ELF file") from None
    except OSError as e:
        raise ElfError(f"{path}: cannot read: {e.strerror}") from None
    except _PyElfError as e:
        raise ElfError(f"{path}: malformed ELF file: {e}") from None


def _read(path: Path, elf: ELFFile) -> ElfImage:
    # Machine first: an x86-64 binary is better described as "not RISC-V" than as "64-bit".
    machine = elf["e_machine"]
    if machine != "EM_RISCV":
        raise ElfError(f"{path}: machine is {machine}, expected EM_RISCV (a RISC-V executable)")
    if elf.elfclass != 32:
        raise ElfError(
            f"{path}: {elf.elfclass}-bit ELF, expected a 32-bit RISC-V (RV32) executable"
        )
    if not elf.little_endian:
        raise ElfError(f"{path}: big-endian ELF, RISC-V executables are little-endian")
    kind = elf["e_type"]
    if kind != "ET_EXEC":
        what = "a relocatable object file" if kind == "ET_REL" else "not a fixed-address executable"
        raise ElfError(f"{path}: {kind} is {what}; expected an ET_EXEC executable (link it)")

    segments = []
    for seg in elf.iter_segments("PT_LOAD"):
        memsz = seg["p_memsz"]
        if memsz == 0:
            continue
        if seg["p_filesz"] > memsz:
            raise ElfError(f"{path}: segment at {seg['p_paddr']:#x} has filesz > memsz")
        segments.append(Segment(paddr=seg["p_paddr"], data=seg.data(), memsz=memsz))
    if not segments:
        raise ElfError(f"{path}: no loadable (PT_LOAD) segments")

    symbols, sizes = _read_symbols(elf)
    return ElfImage(
        entry=elf["e_entry"], segments=segments, symbols=symbols, path=path, symbol_sizes=sizes
    )


def _read_symbols(elf: ELFFile) -> tuple[dict[str, int], dict[str, int]]:
    """Named code and data symbols, with sizes (0 when unknown).

    NOTYPE symbols are kept because assembly labels and linker-script symbols
    (e.g. _start, __bss_start) have no type.  Compiler-local labels (.L*) and
    mapping symbols ($x, $d) are not names anyone looks up and are skipped.
    When a name occurs twice (static functions of different files), a global
    definition wins over a local one, otherwise the first one stays.
    """
    symbols: dict[str, int] = {}
    sizes: dict[str, int] = {}
    table = elf.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):  # stripped
        return symbols, sizes
    for sym in table.iter_symbols():
        name = sym.name
        if not name or name.startswith((".L", "$")):
            continue
        if sym["st_info"]["type"] not in _SYMBOL_TYPES or sym["st_shndx"] == "SHN_UNDEF":
            continue
        if name in symbols and sym["st_info"]["bind"] == "STB_LOCAL":
            continue
        symbols[name] = sym["st_value"]
        sizes[name] = sym["st_size"]
    return symbols, sizes


def write_image(image: ElfImage, write_phys: Callable[[int, bytes], None]) -> None:
    """Copy every segment into memory through write_phys, zero-filling each bss part."""
    for seg in image.segments:
        if seg.data:
            write_phys(seg.paddr, seg.data)
        if seg.memsz > len(seg.data):
            write_phys(seg.paddr + len(seg.data), bytes(seg.memsz - len(seg.data)))
