"""Where the Psyche kernel keeps its threads, read from the kernel ELF's symbols and DWARF.

The mux lists a node's kernel threads by walking the kernel's own records
(`this_node.threads`, each `struct kthread` linked through `all_next`) over lld.
Nothing here is a hard-coded offset: the member offsets, the name array's size
and the names of the thread states come from the DWARF the compiler wrote, and
the address of `this_node` from the symbol table.  An ELF without them (a
bare-metal guest, a kernel built without debug information) has no layout, and
the mux shows gdb one thread per node, as it did before it knew of threads.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.dwarf.die import DIE
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

#: The structures the walk needs, and the members it reads of each.
_WANTED = {
    "node": ("current", "threads"),
    "kthread": ("ctx", "name", "state", "all_next", "waiting_on", "vp", "dom"),
    "context": ("ra", "sp", "s", "saved"),
    "vp": ("id", "desc"),          # a thread that is a virtual processor
    "domain": ("id", "root", "desc"),   # the protection domain a thread runs user code in
    "realm": ("frames",),          # (a domain's descriptor page is a realm)
    # What user code shares with the kernel and debuggers (uapi/psyche.h): the name of the
    # process a VP runs, and the table of processes a domain's thread package publishes.
    "psy_vp": ("process",),
    "psy_domain": ("processes",),
    "psy_processes": ("magic", "count", "stride", "first"),
    "psy_process": ("name", "state", "ctx"),
    "psy_context": ("ra", "sp", "s"),
}
#: The enumerations whose names the mux shows: kernel thread states, process states.
_ENUMS = ("thread_state", "psy_process_state")


@dataclass(frozen=True)
class Struct:
    """One structure's size and the offsets (and sizes) of the members the mux reads."""

    size: int
    offsets: dict[str, int]
    sizes: dict[str, int]

    def u32(self, record: bytes, member: str, index: int = 0) -> int:
        at = self.offsets[member] + 4 * index
        return int.from_bytes(record[at: at + 4], "little")

    def text(self, record: bytes, member: str) -> str:
        at = self.offsets[member]
        raw = record[at: at + self.sizes[member]]
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def end(self, member: str) -> int:
        """The offset just past member: how much of a record a reader needs to see it."""
        return self.offsets[member] + self.sizes[member]


@dataclass(frozen=True)
class KernelLayout:
    """The kernel's thread records as this ELF lays them out."""

    this_node: int                 # address of the per-node record (the same on every node)
    node: Struct
    kthread: Struct
    context: Struct
    vp: Struct
    domain: Struct
    realm: Struct
    psy_vp: Struct
    psy_domain: Struct
    psy_processes: Struct
    psy_process: Struct
    psy_context: Struct
    states: dict[int, str]         # enum thread_state: T_BLOCKED -> "blocked"
    process_states: dict[int, str]   # enum psy_process_state: PSY_PROC_READY -> "ready"
    saved_registers: int           # how many s registers a saved context holds (s0..)
    #: The ELF's functions, (start, size, name) by start: to name a pc in the mux's messages.
    functions: tuple[tuple[int, int, str], ...] = ()

    def function_at(self, pc: int) -> str | None:
        """`name+offset` of the function pc lies in, or None."""
        index = bisect.bisect_right(self.functions, (pc, 1 << 32, "")) - 1
        if index >= 0:
            start, size, name = self.functions[index]
            if start <= pc < start + max(size, 1):
                return f"{name}+{pc - start:#x}" if pc != start else name
        return None

    @classmethod
    def load(cls, path: Path) -> KernelLayout | None:
        """The layout of the kernel at path; None if it is not a Psyche kernel with DWARF."""
        try:
            with Path(path).open("rb") as f:
                elf = ELFFile(f)
                this_node = _symbol(elf, "this_node")
                if this_node is None or not elf.has_dwarf_info():
                    return None
                structs, enums = _read_types(elf)
                functions = _functions(elf)
        except (OSError, ELFError):
            return None
        if set(structs) != set(_WANTED) or set(enums) != set(_ENUMS):
            return None
        context = structs["context"]
        return cls(this_node, structs["node"], structs["kthread"], context, structs["vp"],
                   structs["domain"], structs["realm"], structs["psy_vp"], structs["psy_domain"],
                   structs["psy_processes"], structs["psy_process"], structs["psy_context"],
                   enums["thread_state"], enums["psy_process_state"], context.sizes["s"] // 4,
                   functions)


def _functions(elf: ELFFile) -> tuple[tuple[int, int, str], ...]:
    table = elf.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):
        return ()
    return tuple(sorted((int(s["st_value"]), int(s["st_size"]), s.name) for s in table.iter_symbols()
                        if s["st_info"]["type"] == "STT_FUNC" and s.name))


def _symbol(elf: ELFFile, name: str) -> int | None:
    table = elf.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):
        return None
    symbols = table.get_symbol_by_name(name)
    return int(symbols[0]["st_value"]) if symbols else None


def read_structs(path: Path, wanted: Mapping[str, tuple[str, ...]]) -> dict[str, Struct]:
    """The layout of each wanted structure (and members) that the ELF at path describes."""
    with Path(path).open("rb") as f:
        structs, _ = _read_types(ELFFile(f), wanted, enums=())
    return structs


def _read_types(elf: ELFFile, wanted: Mapping[str, tuple[str, ...]] = _WANTED,
                enums: tuple[str, ...] = _ENUMS) -> tuple[dict[str, Struct], dict[str, dict[int, str]]]:
    """The wanted structures, and each wanted enumeration's values and names."""
    structs: dict[str, Struct] = {}
    found: dict[str, dict[int, str]] = {}
    for die in _all_dies(elf):
        name = _name(die)
        if die.tag == "DW_TAG_structure_type" and name in wanted and name not in structs:
            struct = _struct(die, wanted[name])
            if struct is not None:
                structs[name] = struct
        elif die.tag == "DW_TAG_enumeration_type" and name in enums and name not in found:
            found[name] = {int(e.attributes["DW_AT_const_value"].value): _enumerator_name(_name(e))
                           for e in die.iter_children() if e.tag == "DW_TAG_enumerator"}
        if len(structs) == len(wanted) and len(found) == len(enums):
            break
    return structs, found


def _all_dies(elf: ELFFile) -> Iterator[DIE]:
    for cu in elf.get_dwarf_info().iter_CUs():
        yield from cu.iter_DIEs()


def _name(die: DIE) -> str:
    attr = die.attributes.get("DW_AT_name")
    value: Any = attr.value if attr is not None else b""
    return value.decode() if isinstance(value, bytes) else str(value)


def _enumerator_name(enumerator: str) -> str:
    return enumerator.rsplit("_", 1)[-1].lower()   # T_BLOCKED -> blocked, PSY_PROC_AWAY -> away


def _struct(die: DIE, members: tuple[str, ...]) -> Struct | None:
    """A complete structure's layout (a declaration has no size and is skipped)."""
    size = die.attributes.get("DW_AT_byte_size")
    if size is None:
        return None
    offsets: dict[str, int] = {}
    sizes: dict[str, int] = {}
    if not _collect(die, members, 0, offsets, sizes) or set(offsets) != set(members):
        return None
    return Struct(int(size.value), offsets, sizes)


def _collect(die: DIE, members: tuple[str, ...], base: int,
             offsets: dict[str, int], sizes: dict[str, int]) -> bool:
    """Add the wanted members of a structure or union at base, looking into anonymous ones
    (C11's unnamed struct and union members); False if one's place cannot be read."""
    for child in die.iter_children():
        if child.tag != "DW_TAG_member":
            continue
        name = _name(child)
        location = child.attributes.get("DW_AT_data_member_location")
        at = base + (location.value if location is not None else 0)
        if location is not None and not isinstance(location.value, int):
            return False
        if not name and "DW_AT_type" in child.attributes:
            inner = child.get_DIE_from_attribute("DW_AT_type")
            if not _collect(inner, members, at, offsets, sizes):
                return False
        elif name in members:
            member_size = _type_size(child)
            if member_size is None:
                return False
            offsets[name] = at
            sizes[name] = member_size
    return True


def _type_size(die: DIE) -> int | None:
    """The byte size of a member's type, through typedefs, qualifiers and arrays."""
    t = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
    count = 1
    while t is not None:
        if t.tag == "DW_TAG_pointer_type":
            return count * int(t.cu["address_size"])
        if "DW_AT_byte_size" in t.attributes:
            return count * int(t.attributes["DW_AT_byte_size"].value)
        if t.tag == "DW_TAG_array_type":
            for sub in t.iter_children():
                if sub.tag == "DW_TAG_subrange_type":
                    if "DW_AT_count" in sub.attributes:
                        count *= int(sub.attributes["DW_AT_count"].value)
                    elif "DW_AT_upper_bound" in sub.attributes:
                        count *= int(sub.attributes["DW_AT_upper_bound"].value) + 1
        t = t.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in t.attributes else None
    return None
