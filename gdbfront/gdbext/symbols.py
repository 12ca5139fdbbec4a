"""`psyche symbols`: the symbols of every user program loaded, at its address.

Like Linux's `lx-symbols`.  Programs come to be in two ways, and this command reads both tables:

* the kernel's `run` or `spawn` notes each program it loads in `kg.vm->loaded` (name, domain,
  where its code and data realms begin: the code realm is where the ELF's address 0 is);
* user code that places programs publishes them (uapi/psyche.h, `struct psy_programs`): a
  domain descriptor's `programs` holds the address of its table.  The user-level loader does,
  and its table holds the servers init placed at boot too (docs/user-level.md).  The whole ELF
  is placed at the entry's `base`.  The command walks the kernel's domain table for every
  domain that publishes one, and reads the table through the kernel's own record of the realm
  it is in (its frames), so it needs no rights of the domain and reads alike on every node.

The loader's table also holds the reentrant library (`PSY_PROGRAM_LIBRARY`: libpsy.so, which init
placed at boot) and marks the programs linked against it (`PSY_PROGRAM_LINKED`): their ELFs are
`build/user/shared/NAME.elf`, not the statically linked `build/user/NAME.elf` the kernel's `run`
loads.  With the library's symbols at its realm, `break printf` stops in the one copy every
loaded program calls, and `step` from the program goes in (through its PLT slot).

A program is linked at 0, so its symbols are its ELF's (`build/user/NAME.elf`) offset by its
base: this command runs `add-symbol-file ELF -o BASE` for each program loaded now, and
`remove-symbol-file -a BASE` for each it added before that is gone.  After it, `break main`
stops in the programs' `main` too (`break lookup.c:main` for one of them).

    (gdb) psyche symbols                  # once
    (gdb) psyche symbols --auto           # and again at every stop where a table changed
    (gdb) psyche symbols --dir DIR        # ELFs from DIR (default: build/user beside the kernel)

It runs inside gdb (psyche.py registers its command), with gdb and the standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import gdb

PROGRAMS_MAGIC = 0x474F5250     # PSY_PROGRAMS_MAGIC, "PROG"
PROGRAM_BOOT = 1                # PSY_PROGRAM_BOOT: placed at boot by init
PROGRAM_LIBRARY = 2             # PSY_PROGRAM_LIBRARY: a shared library, not a program
PROGRAM_LINKED = 4              # PSY_PROGRAM_LINKED: linked against the library
SHARED = "shared"               # build/user/shared: the library and what is linked against it
MAX_PROGRAMS = 256              # a longer published table is taken to be garbage
MAX_REALMS = 4096
PAGE = 4096


@dataclass(frozen=True)
class Loaded:
    name: str
    domain: int
    code: int                   # where the ELF's address 0 is
    data: int | None            # the kernel's `run`: its data realm; None: placed whole at code
    by: str = "run"             # "run" (the kernel's table), "loader", or "init" (the loader's, at boot)
    shared: bool = False        # the library, or linked against it: its ELF is in shared/
    library: bool = False

    def elf(self, directory: str) -> str:
        return os.path.join(directory, SHARED, f"{self.name}.elf") if self.shared else \
            os.path.join(directory, f"{self.name}.elf")


def _kernel_loaded(vm: gdb.Value) -> list[Loaded]:
    table = vm["loaded"]
    low, high = table.type.strip_typedefs().range()
    programs = []
    for i in range(low, high + 1):
        slot = table[i]
        name = slot["name"].string(length=slot["name"].type.sizeof).split("\0", 1)[0]
        if name:
            programs.append(Loaded(name, int(slot["domain"]), int(slot["code"]), int(slot["data"])))
    return programs


class _Realms:
    """User addresses read through the kernel's map: the frame of the page an address is in."""

    def __init__(self, vm: gdb.Value) -> None:
        self.spans: list[tuple[int, int, int]] = []      # base, size, frames pointer
        pointer = vm["realms"]
        while int(pointer) != 0 and len(self.spans) < MAX_REALMS:
            realm = pointer.dereference()
            if int(realm["frames"]) != 0:
                self.spans.append((int(realm["base"]), int(realm["size"]), int(realm["frames"])))
            pointer = realm["next"]

    def official(self, addr: int) -> int | None:
        """The official address of the byte at user address addr; None if no frame holds it."""
        for base, size, frames in self.spans:
            if base <= addr < base + size:
                u32 = gdb.lookup_type("unsigned int")
                frame = int(gdb.Value(frames + 4 * ((addr - base) // PAGE)).cast(u32.pointer()).dereference())
                return frame + addr % PAGE if frame else None
        return None

    def value(self, addr: int, type_name: str) -> gdb.Value | None:
        """The structure of type_name at user address addr (not across a page); None if unreadable."""
        at = self.official(addr)
        t = gdb.lookup_type(type_name)
        if at is None or addr % PAGE + t.sizeof > PAGE:
            return None
        value = gdb.Value(at).cast(t.pointer()).dereference()
        value.fetch_lazy()
        return value


def _published(vm: gdb.Value) -> tuple[list[tuple[int, int]], list[Loaded]]:
    """Every published table of programs: (domain id, its gen) for each, and their programs."""
    realms: _Realms | None = None
    gens: list[tuple[int, int]] = []
    programs: list[Loaded] = []
    domains = vm["domains"]
    low, high = domains.type.strip_typedefs().range()
    pointers = [int(domains[i]) for i in range(low, high + 1)]
    descriptor = gdb.lookup_type("struct psy_domain").pointer()
    for pointer in pointers:
        if not pointer:
            continue
        d = gdb.Value(pointer).cast(gdb.lookup_type("struct domain").pointer()).dereference()
        desc = d["desc"]
        if int(desc) == 0 or int(desc.dereference()["frames"]) == 0:
            continue
        try:
            page = gdb.Value(int(desc.dereference()["frames"][0])).cast(descriptor).dereference()
            at = int(page["programs"])
        except gdb.MemoryError:
            continue
        if not at:
            continue
        realms = realms or _Realms(vm)
        try:
            header = realms.value(at, "struct psy_programs")
            if header is None or int(header["magic"]) != PROGRAMS_MAGIC:
                continue
            count, stride, first = int(header["count"]), int(header["stride"]), int(header["first"])
            entry_size = gdb.lookup_type("struct psy_program").sizeof
            if not 0 < count <= MAX_PROGRAMS or stride < entry_size:
                continue
            gens.append((int(d["id"]), int(header["gen"])))
            for i in range(count):
                e = realms.value(first + i * stride, "struct psy_program")
                if e is None or int(e["domain"]) == 0:
                    continue
                name = e["name"].string(length=e["name"].type.sizeof).split("\0", 1)[0]
                flags = int(e["flags"])
                programs.append(Loaded(name, int(e["domain_id"]), int(e["base"]), None,
                                       "init" if flags & PROGRAM_BOOT else "loader",
                                       bool(flags & (PROGRAM_LIBRARY | PROGRAM_LINKED)),
                                       bool(flags & PROGRAM_LIBRARY)))
        except gdb.MemoryError:
            continue
    return gens, programs


def _loaded_now() -> tuple[object, list[Loaded]]:
    """Every program loaded, the kernel's and those published, and a generation that moves on
    every change of any of the tables."""
    if not gdb.selected_inferior().threads():
        raise gdb.GdbError("psyche symbols: gdb is not attached to a Psyche node: `target remote :PORT` "
                           "first (the ELF alone has no programs loaded)")
    try:
        vm = gdb.parse_and_eval("kg.vm")
        if int(vm) == 0:
            raise gdb.GdbError("psyche symbols: kg.vm is NULL: the king has not set up realms yet")
        vm = vm.dereference()
        gen = int(vm["loaded_gen"])
        programs = _kernel_loaded(vm)
        published, placed = _published(vm)
    except gdb.error as e:
        raise gdb.GdbError(f"psyche symbols: cannot read the tables of loaded programs: {e}") from e
    return (gen, tuple(published)), programs + placed


def _default_dir() -> str:
    """build/user beside the kernel: the kernel is build/kernel/psyche.elf."""
    progspace = gdb.current_progspace()
    kernel = progspace.filename if progspace is not None else None
    if not kernel:
        raise gdb.GdbError("psyche symbols: no kernel ELF loaded: give --dir DIR")
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(kernel))), "user")


class Symbols:
    """What this gdb has added: code address -> ELF, so that a program gone is removed."""

    def __init__(self) -> None:
        self.added: dict[int, str] = {}
        self.directory: str | None = None
        self.auto = False
        self.seen_gen: object = None

    def update(self) -> list[dict[str, object]]:
        """Add every loaded program's symbols, remove those of programs gone; what was done."""
        gen, programs = _loaded_now()
        directory = self.directory or _default_dir()
        report: list[dict[str, object]] = []
        current = {p.code: p for p in programs}
        for code, elf in sorted(self.added.items()):
            if code not in current or current[code].elf(directory) != elf:
                gdb.execute(f"remove-symbol-file -a {code:#x}", to_string=True)
                del self.added[code]
                report.append({"action": "removed", "elf": elf, "code": code})
        for program in programs:
            elf = program.elf(directory)
            entry: dict[str, object] = {"name": program.name, "domain": program.domain,
                                        "code": program.code, "data": program.data, "by": program.by,
                                        "elf": elf, "library": program.library}
            if program.code in self.added:
                entry["action"] = "kept"
            elif not os.path.exists(elf):
                entry["action"] = "no ELF"
            else:
                gdb.execute(f"add-symbol-file {elf} -o {program.code:#x}", to_string=True)
                self.added[program.code] = elf
                entry["action"] = "added"
            report.append(entry)
        self.seen_gen = gen
        return report

    def on_stop(self, event: object) -> None:
        """--auto: at a stop, update if a table moved since the last update.  Later,
        when gdb is idle: while the stop is being announced gdb still takes the target to run,
        and refuses to read its memory."""
        gdb.post_event(self._update_if_moved)

    def _update_if_moved(self) -> None:
        try:
            gen, _ = _loaded_now()
            if gen != self.seen_gen:
                for line in render(self.update()):
                    gdb.write(line + "\n")
        except gdb.GdbError as e:
            gdb.write(f"{e}\n")


def _by(r: dict[str, object]) -> str:
    return {"run": "the kernel's run", "loader": "the loader", "init": "init, at boot"}.get(str(r.get("by")),
                                                                                          str(r.get("by")))


def render(report: list[dict[str, object]]) -> list[str]:
    lines = []
    for r in report:
        code = int(str(r["code"]))
        if r["action"] == "removed":
            lines.append(f"psyche symbols: removed {r['elf']} (at {code:#x}: its program is gone)")
        elif r["action"] == "no ELF":
            lines.append(f"psyche symbols: {r['name']} (domain {r['domain']}, {_by(r)}, at {code:#x}): "
                         f"no {r['elf']}")
        else:
            whose = f"library, {_by(r)}" if r.get("library") else f"domain {r['domain']}, {_by(r)}"
            lines.append(f"psyche symbols: {r['name']} ({whose}): {r['elf']} "
                         f"at {code:#x}" + (" (already)" if r["action"] == "kept" else ""))
    return lines or ["psyche symbols: no program is loaded"]


SYMBOLS = Symbols()


class SymbolsCommand(gdb.Command):
    """Load the symbols of every user program loaded (by the kernel's run, or published by the
user-level loader), at its address:
psyche symbols [--auto | --no-auto] [--dir DIR] [-json]"""

    def __init__(self) -> None:
        super().__init__("psyche symbols", gdb.COMMAND_FILES)

    def invoke(self, argument: str, from_tty: bool) -> None:
        words = gdb.string_to_argv(argument)
        as_json = False
        while words:
            word = words.pop(0)
            if word in ("-json", "--json"):
                as_json = True
            elif word in ("--auto", "--no-auto"):
                self._auto(word == "--auto")
            elif word == "--dir" and words:
                SYMBOLS.directory = words.pop(0)
            else:
                raise gdb.GdbError(f"psyche symbols: unknown argument {word!r}; "
                                   "psyche symbols [--auto | --no-auto] [--dir DIR] [-json]")
        report = SYMBOLS.update()
        gdb.write((json.dumps(report) if as_json else "\n".join(render(report))) + "\n")

    @staticmethod
    def _auto(on: bool) -> None:
        if on and not SYMBOLS.auto:
            gdb.events.stop.connect(SYMBOLS.on_stop)
        elif not on and SYMBOLS.auto:
            gdb.events.stop.disconnect(SYMBOLS.on_stop)
        SYMBOLS.auto = on


COMMANDS = (SymbolsCommand,)
