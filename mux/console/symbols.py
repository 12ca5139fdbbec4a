"""Kernel symbols and source lines from the ELF's symbol table and DWARF (pyelftools).

The console names places the way a person thinks of them: `clock_intr+0x8
(clock.c:41)` rather than `0xc00003d0`, and accepts `break 2 clock_intr`.
Everything is read once, when a `Symbols` is made, into sorted tables that
answer with a bisection: the kernel is small (a few thousand line rows), and
the toolbar and the `nodes` table ask for locations several times a second.

One symbol table serves every node: the kernel is linked at its local
window, which every node maps onto its own copy (docs/kernel.md).
"""

from __future__ import annotations

import bisect
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import Symbol, SymbolTableSection

#: Symbol types, best first, when several symbols share an address.
_TYPE_RANK = {"STT_FUNC": 0, "STT_OBJECT": 1, "STT_NOTYPE": 2}
_EXPRESSION = re.compile(r"^(?P<base>[A-Za-z_.$][\w.$]*|0[xX][0-9a-fA-F]+|\d+)"
                         r"(?:\s*(?P<sign>[+-])\s*(?P<offset>0[xX][0-9a-fA-F]+|\d+))?$")


class SymbolError(LookupError):
    """A name that is not a symbol of the kernel; carries the closest names."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        super().__init__(f"unknown symbol {name!r}")
        self.name = name
        self.suggestions = suggestions


@dataclass(frozen=True)
class Location:
    """Where an address is: the symbol containing it and the source line it came from."""

    addr: int
    symbol: str | None = None
    offset: int = 0
    file: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        """`clock_intr+0x8`, or '' if no symbol contains the address."""
        if self.symbol is None:
            return ""
        return self.symbol + (f"+{self.offset:#x}" if self.offset else "")

    @property
    def source(self) -> str:
        """`clock.c:41`, or '' without line information."""
        return f"{self.file}:{self.line}" if self.file and self.line else ""

    def __str__(self) -> str:
        text = f"{self.addr:#010x}"
        if self.where:
            text += f" {self.where}"
        if self.source:
            text += f" ({self.source})"
        return text


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    name: str


@dataclass(frozen=True)
class _Row:
    start: int
    end: int
    file: str
    line: int


class Symbols:
    """A kernel ELF's symbols (name <-> address) and line table (address -> file:line)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as f:
            elf = ELFFile(f)
            self._names = self._read_symbols(elf)
            self._spans = self._make_spans(elf)
            self._rows = self._read_lines(elf) if elf.has_dwarf_info() else []
            self.load_offset = self._load_offset(elf)
        self._span_starts = [s.start for s in self._spans]
        self._row_starts = [r.start for r in self._rows]

    # -- reading the ELF --------------------------------------------------------------

    @staticmethod
    def _wanted(sym: Symbol) -> bool:
        name = sym.name
        return (bool(name) and not name.startswith((".L", "$"))
                and sym["st_info"]["type"] in _TYPE_RANK
                and sym["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS"))

    @staticmethod
    def _table(elf: ELFFile) -> SymbolTableSection | None:
        table = elf.get_section_by_name(".symtab")
        return table if isinstance(table, SymbolTableSection) else None

    def _read_symbols(self, elf: ELFFile) -> dict[str, int]:
        table = self._table(elf)
        if table is None:
            return {}
        return {sym.name: sym["st_value"] for sym in table.iter_symbols() if self._wanted(sym)}

    def _make_spans(self, elf: ELFFile) -> list[_Span]:
        """Non-overlapping address spans, one per address, named by the best symbol there.

        A symbol without a size (an assembly label) covers up to the next
        symbol, but never beyond the end of its section, and a symbol outside
        its own section (a linker-made alias such as `_entry_phys`) names nothing.
        """
        table = self._table(elf)
        if table is None:
            return []
        best: dict[int, tuple[tuple[int, bool, int], _Span]] = {}
        for sym in table.iter_symbols():
            if not self._wanted(sym):
                continue
            section = elf.get_section(sym["st_shndx"])
            start, size, name = sym["st_value"], sym["st_size"], sym.name
            section_end = section["sh_addr"] + section["sh_size"]
            if not section["sh_addr"] <= start < section_end:
                continue
            rank = (_TYPE_RANK[sym["st_info"]["type"]], name.endswith(("_start", "_end")), len(name))
            if start not in best or rank < best[start][0]:
                best[start] = (rank, _Span(start, start + size if size else section_end, name))
        starts = sorted(best)
        following = starts[1:] + [0xFFFFFFFF + 1]
        return [_Span(start, min(best[start][1].end, nxt), best[start][1].name)
                for start, nxt in zip(starts, following, strict=True)]

    @staticmethod
    def _read_lines(elf: ELFFile) -> list[_Row]:
        """Address ranges of the DWARF line programs, each with its file and line."""
        dwarf = elf.get_dwarf_info()
        rows: list[_Row] = []
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            files = program["file_entry"]
            base = 0 if program["version"] >= 5 else 1
            previous = None
            for entry in program.get_entries():
                state = entry.state
                if state is None:
                    continue
                if previous is not None and state.address > previous.address:
                    index = previous.file - base
                    name = files[index].name.decode(errors="replace") if 0 <= index < len(files) else "?"
                    rows.append(_Row(previous.address, state.address, Path(name).name, previous.line))
                previous = None if state.end_sequence else state
        rows.sort(key=lambda r: r.start)
        return rows

    @staticmethod
    def _load_offset(elf: ELFFile) -> int:
        """Virtual minus physical address of the loaded image (0 if they are the same)."""
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_LOAD":
                return int(segment["p_vaddr"]) - int(segment["p_paddr"])
        return 0

    # -- questions ----------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._names)

    def address(self, name: str) -> int:
        """The address of a symbol; SymbolError with the closest names if there is none."""
        try:
            return self._names[name]
        except KeyError:
            raise SymbolError(name, self.suggest(name)) from None

    def suggest(self, name: str) -> list[str]:
        """Up to three symbol names that look like `name` (for a hint after a typo)."""
        prefixed = [n for n in self.names() if n.startswith(name)] if name else []
        return prefixed[:3] or difflib.get_close_matches(name, self._names, n=3, cutoff=0.6)

    def resolve(self, text: str) -> int:
        """An address from `0xc0001000`, `4096`, `clock_intr` or `clock_intr+0x10`."""
        match = _EXPRESSION.match(text.strip())
        if match is None:
            raise ValueError(f"not an address or symbol: {text!r}")
        base = match.group("base")
        value = int(base, 0) if base[0].isdigit() else self.address(base)
        if match.group("offset"):
            offset = int(match.group("offset"), 0)
            value += offset if match.group("sign") == "+" else -offset
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"{text!r} is outside the 32-bit address space")
        return value

    def locate(self, addr: int) -> Location:
        """The symbol and source line of an address (either may be missing)."""
        symbol, offset = None, 0
        i = bisect.bisect_right(self._span_starts, addr) - 1
        if i >= 0 and addr < self._spans[i].end:
            symbol, offset = self._spans[i].name, addr - self._spans[i].start
        file, line = None, None
        j = bisect.bisect_right(self._row_starts, addr) - 1
        if j >= 0 and addr < self._rows[j].end:
            file, line = self._rows[j].file, self._rows[j].line
        return Location(addr, symbol, offset, file, line)
