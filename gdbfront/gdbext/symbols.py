"""`psyche symbols`: the symbols of every user program the kernel has loaded, at its address.

Like Linux's `lx-symbols`.  The kernel notes each program `run` or `spawn`
loads in `kg.vm->loaded` (name, domain, where its code and data realms
begin).  A program is linked at 0, so its symbols are its ELF's
(`build/user/NAME.elf`) offset by its code realm's address: this command runs
`add-symbol-file ELF -o CODE` for each program loaded now, and
`remove-symbol-file -a CODE` for each it added before that is gone.  After it,
`break main` stops in the programs' `main` too.

    (gdb) psyche symbols                  # once
    (gdb) psyche symbols --auto           # and again at every stop where the table changed
    (gdb) psyche symbols --dir DIR        # ELFs from DIR (default: build/user beside the kernel)

It runs inside gdb (psyche.py registers its command), with gdb and the standard library only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import gdb


@dataclass(frozen=True)
class Loaded:
    name: str
    domain: int
    code: int
    data: int


def _loaded_now() -> tuple[int, list[Loaded]]:
    """The kernel's table of loaded programs, and its generation (it moves on every change)."""
    if not gdb.selected_inferior().threads():
        raise gdb.GdbError("psyche symbols: gdb is not attached to a Psyche node: `target remote :PORT` "
                           "first (the ELF alone has no programs loaded)")
    try:
        vm = gdb.parse_and_eval("kg.vm")
        if int(vm) == 0:
            raise gdb.GdbError("psyche symbols: kg.vm is NULL: the king has not set up realms yet")
        vm = vm.dereference()
        gen = int(vm["loaded_gen"])
        table = vm["loaded"]
        low, high = table.type.strip_typedefs().range()
        programs = []
        for i in range(low, high + 1):
            slot = table[i]
            name = slot["name"].string(length=slot["name"].type.sizeof).split("\0", 1)[0]
            if name:
                programs.append(Loaded(name, int(slot["domain"]), int(slot["code"]), int(slot["data"])))
    except gdb.error as e:
        raise gdb.GdbError(f"psyche symbols: cannot read the kernel's table of loaded programs: {e}") from e
    return gen, programs


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
        self.seen_gen: int | None = None

    def update(self) -> list[dict[str, object]]:
        """Add every loaded program's symbols, remove those of programs gone; what was done."""
        gen, programs = _loaded_now()
        directory = self.directory or _default_dir()
        report: list[dict[str, object]] = []
        current = {p.code: p for p in programs}
        for code, elf in sorted(self.added.items()):
            if code not in current or current[code].name != os.path.basename(elf)[:-4]:
                gdb.execute(f"remove-symbol-file -a {code:#x}", to_string=True)
                del self.added[code]
                report.append({"action": "removed", "elf": elf, "code": code})
        for program in programs:
            elf = os.path.join(directory, f"{program.name}.elf")
            entry: dict[str, object] = {"name": program.name, "domain": program.domain,
                                        "code": program.code, "data": program.data, "elf": elf}
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
        """--auto: at a stop, update if the kernel's table moved since the last update.  Later,
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


def render(report: list[dict[str, object]]) -> list[str]:
    lines = []
    for r in report:
        code = int(str(r["code"]))
        if r["action"] == "removed":
            lines.append(f"psyche symbols: removed {r['elf']} (at {code:#x}: its program is gone)")
        elif r["action"] == "no ELF":
            lines.append(f"psyche symbols: {r['name']} (domain {r['domain']}, code {code:#x}): "
                         f"no {r['elf']}")
        else:
            lines.append(f"psyche symbols: {r['name']} (domain {r['domain']}): {r['elf']} at {code:#x}"
                         + (" (already)" if r["action"] == "kept" else ""))
    return lines or ["psyche symbols: no program is loaded"]


SYMBOLS = Symbols()


class SymbolsCommand(gdb.Command):
    """Load the symbols of every user program the kernel has loaded, at its address:
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
