"""Build the Psyche user level: the programs (``psyche/user/progs/*.c``) and the system
realms (``psyche/user/sys/*.c``).

The kernel image carries the programs, which the monitor's `run` starts, and init, the
primordial realm; init carries the system servers' files (``bootfiles.S``), which it places
in realms of their own; the host's file server serves the programs' files
(``build/user/files/NAME``) to the user-level loader.

Each program is C compiled with the same zig clang as the kernel, linked with
``link.ld`` at address 0 as a position-independent executable with its own
DWARF (``build/user/NAME.elf``).  The kernel needs only its loadable bytes and
its relocations: `flatten` turns the ELF into a flat image (``NAME.bin``,
everything from address 0 to the end of the initialized data), the size in
memory with .bss, the entry offset and the R_RISCV_RELATIVE relocations, and
`write_program_table` writes the assembly file that puts them into the kernel.

The programs the file server serves are built a second time, against the reentrant library
(``ulib.c`` as ``libpsy.so``, a shared object with no writable data, which init places in a
realm of its own that every loaded program shares): `build_library` makes it
(``build/user/shared/libpsy.so.elf``, and the file init carries), `build_shared_program` a
program linked against it (``build/user/shared/NAME.elf``), whose file is
``build/user/files/NAME``.  The kernel's own copies (for the monitor's `run`, which resolves no
symbols) stay statically linked.  zig cc links no shared objects for a freestanding target, so
these two are compiled with it and linked with its ld.lld.

Usage::

    python -m psyche.user.build [OUT_DIR]     # builds every program, prints paths
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from psyche.guestbuild import PSYCHE_CFLAGS, GuestBuildError, compile_to, compiler_command

USER_DIR = Path(__file__).resolve().parent
REPO_ROOT = USER_DIR.parent.parent
PROGS_DIR = USER_DIR / "progs"
SYS_DIR = USER_DIR / "sys"
SERVERS = ("names", "files", "loader", "sh")     # the initial realms init makes, in this order
UAPI_DIR = REPO_ROOT / "psyche" / "kernel"     # for "uapi/psyche.h"
DEFAULT_OUT_DIR = REPO_ROOT / "build" / "user"

R_RISCV_RELATIVE = 3

CFLAGS = (*PSYCHE_CFLAGS, "-fPIE")

LIBRARY = "libpsy.so"                           # the reentrant library's soname (DT_NEEDED)
LIBRARY_SOURCES = ("ulib.c",)                   # what it is made of: no writable data allowed
OWN_SOURCES = ("ulib_own.c",)                   # ulib.h's functions with state: every program's own
SHARED_SUBDIR = "shared"                        # build/user/shared: what is linked against it
SHF_WRITE = 1
FILE_PACKING = 16                               # segments' file offsets: 16-byte, not page, aligned


@dataclass(frozen=True)
class UserProgram:
    """A built program: its ELF (for gdb), flat image and what loading it needs."""

    name: str
    elf: Path
    image: Path
    codesz: int                         # code and read-only data: bytes before _data_start
    memsz: int                          # bytes from 0 to the end of .bss
    entry: int                          # offset of _start
    relocs: tuple[tuple[int, int], ...]  # (offset, addend): word at offset = base + addend


def program_sources() -> list[Path]:
    return sorted(PROGS_DIR.glob("*.c"))


def user_inputs() -> list[Path]:
    """Everything a program depends on, this module included."""
    common = [p for p in USER_DIR.iterdir() if p.suffix in (".c", ".h", ".S", ".ld", ".py")]
    return sorted([*common, *program_sources(), *SYS_DIR.glob("*.c"), *(UAPI_DIR / "uapi").glob("*.h")])


def flatten(name: str, elf: Path, image: Path) -> UserProgram:
    """Write the flat image of ``elf`` and describe how to load it; ValueError if it cannot be."""
    with open(elf, "rb") as f:
        e = ELFFile(f)
        loads = [s for s in e.iter_segments() if s["p_type"] == "PT_LOAD"]
        file_end = max(s["p_vaddr"] + s["p_filesz"] for s in loads)
        memsz = max(s["p_vaddr"] + s["p_memsz"] for s in loads)
        flat = bytearray(file_end)
        for seg in loads:
            if seg["p_filesz"]:
                flat[seg["p_vaddr"]:seg["p_vaddr"] + seg["p_filesz"]] = seg.data()
        relocs: list[tuple[int, int]] = []
        for section in e.iter_sections():
            if not isinstance(section, RelocationSection):
                continue
            for rel in section.iter_relocations():
                if rel["r_info_type"] != R_RISCV_RELATIVE:
                    raise ValueError(f"{elf}: relocation type {rel['r_info_type']} at "
                                     f"{rel['r_offset']:#x}; only R_RISCV_RELATIVE can be loaded")
                relocs.append((rel["r_offset"], rel["r_addend"]))
        entry = e.header["e_entry"]
    # The dynamic sections come after _end: keep only what is loaded below it.
    end = _symbol(elf, "_end")
    codesz = _symbol(elf, "_data_start")
    if any(offset < codesz for offset, _ in relocs):
        raise ValueError(f"{elf}: a relocation in the code part; the kernel relocates data only")
    image.write_bytes(bytes(flat[:min(file_end, end)]))
    return UserProgram(name, elf, image, codesz, min(memsz, end), entry, tuple(sorted(relocs)))


def _symbol(elf: Path, name: str) -> int:
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        symbols = symtab.get_symbol_by_name(name) if isinstance(symtab, SymbolTableSection) else None
        if not symbols:
            raise ValueError(f"{elf}: no symbol {name}")
        return int(symbols[0]["st_value"])


# The libraries, each linked into the programs that include its header (and their own headers'):
# only what a program uses is in its image.
LIBRARIES = {
    "uthread.h": ("uthread.c",),
    "tftpc.h": ("tftpc.c",),
    "place.h": ("place.c", "elfload.c"),
    "svc.h": ("svc.c",),
}


def library_sources(source: Path) -> list[str]:
    """The libraries `source` includes, and those they include, in a stable order."""
    wanted: list[str] = []
    todo = [source]
    while todo:
        text = todo.pop().read_text()
        for header, sources in LIBRARIES.items():
            if f'#include "{header}"' in text and sources[0] not in wanted:
                wanted.extend(sources)
                todo.extend(USER_DIR / s for s in sources)
    return [str(USER_DIR / s) for s in sorted(wanted)]


def build_program(source: Path, out_dir: Path, extra: tuple[Path, ...] = (),
                  deps: tuple[Path, ...] = ()) -> UserProgram:
    """Compile one program (skipped when its ELF is newer than every input): `extra` sources
    are compiled with it, `deps` are files they include."""
    name = source.stem
    elf = out_dir / f"{name}.elf"
    inputs = [*user_inputs(), *extra, *deps]
    if not elf.exists() or any(p.stat().st_mtime >= elf.stat().st_mtime for p in inputs):
        args = [
            *CFLAGS,
            f"-I{USER_DIR}",
            f"-I{UAPI_DIR}",
            f"-Wl,-T,{USER_DIR / 'link.ld'}",
            "-Wl,--build-id=none",
            # No RELRO: the image is flat and the kernel applies the relocations; without this
            # lld wants .dynamic next to .data.rel.ro, which a program's .bss keeps apart.
            "-Wl,-z,norelro",
            # The loaders copy segments, never map them: no page padding in the file (FILE_PACKING)
            f"-Wl,-z,max-page-size={FILE_PACKING}",
            str(USER_DIR / "crt0.S"),
            *(str(USER_DIR / src) for src in (*LIBRARY_SOURCES, *OWN_SOURCES)),
            str(USER_DIR / "prog.c"),
            *library_sources(source),
            *map(str, extra),
            str(source),
        ]
        warnings = compile_to(elf, args, f"building user program {name}")
        if warnings.strip():
            print(warnings, end="", file=sys.stderr)
    try:
        return flatten(name, elf, out_dir / f"{name}.bin")
    except ValueError as exc:
        raise GuestBuildError(str(exc)) from exc


def _stale(out: Path, inputs: list[Path]) -> bool:
    return not out.exists() or any(p.stat().st_mtime >= out.stat().st_mtime for p in inputs)


def _link(out: Path, args: list[str], what: str) -> None:
    """zig's ld.lld (zig cc links no shared objects for a freestanding target)."""
    ld = [*compiler_command()[:-1], "ld.lld"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    result = subprocess.run([*ld, *args, "-o", str(tmp)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise GuestBuildError(f"{what} failed (exit status {result.returncode}):\n"
                              f"{result.stderr}{result.stdout}")
    tmp.replace(out)


def _object(source: Path, obj_dir: Path, pic: str = "-fPIE") -> Path:
    """One source compiled for a shared build (cached beside its siblings)."""
    obj = obj_dir / f"{source.name}.o"
    if _stale(obj, [*user_inputs(), source]):
        warnings = compile_to(obj, [*PSYCHE_CFLAGS, pic, f"-I{USER_DIR}", f"-I{UAPI_DIR}", "-c", str(source)],
                              f"compiling {source.name}")
        if warnings.strip():
            print(warnings, end="", file=sys.stderr)
    return obj


def check_library(elf: Path) -> None:
    """A library every program shares may hold no state: no writable section, no relocation,
    nothing it needs from elsewhere.  GuestBuildError says what is there."""
    with open(elf, "rb") as f:
        e = ELFFile(f)
        for section in e.iter_sections():
            if section["sh_flags"] & SHF_WRITE and section["sh_size"]:
                raise GuestBuildError(f"{elf}: {section.name} ({section['sh_size']} bytes) is writable: "
                                      "the reentrant library may have no data (ulib_own.c is for what "
                                      "needs some)")
            if isinstance(section, RelocationSection) and section.num_relocations():
                raise GuestBuildError(f"{elf}: {section.num_relocations()} relocations in {section.name}: "
                                      "the library must run unchanged wherever it is placed")
        dynsym = e.get_section_by_name(".dynsym")
        if not isinstance(dynsym, SymbolTableSection):
            raise GuestBuildError(f"{elf}: no .dynsym: not a shared library")
        undefined = [s.name for s in dynsym.iter_symbols() if s.name and s["st_shndx"] == "SHN_UNDEF"]
        if undefined:
            raise GuestBuildError(f"{elf}: needs {', '.join(undefined)} from elsewhere")


def build_library(out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    """The reentrant library, ``shared/libpsy.so.elf`` (with its DWARF, for gdb, and what programs
    link against); checked by `check_library`."""
    shared = out_dir / SHARED_SUBDIR
    elf = shared / f"{LIBRARY}.elf"
    objs = [_object(USER_DIR / src, shared / "obj", "-fPIC") for src in LIBRARY_SOURCES]
    if _stale(elf, [*objs, USER_DIR / "lib.ld"]):
        # -Bsymbolic: the library's calls of its own functions go straight there, not through a
        # PLT (which would need a writable GOT); --hash-style=sysv: DT_HASH counts its symbols.
        _link(elf, ["-shared", "-T", str(USER_DIR / "lib.ld"), "-soname", LIBRARY, "-Bsymbolic",
                    "-z", f"max-page-size={FILE_PACKING}",
                    "-z", "rodynamic", "-z", "defs", "--hash-style=sysv", "--build-id=none", *map(str, objs)],
              "linking the library")
    check_library(elf)
    return elf


def build_shared_program(source: Path, library: Path, out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    """A program linked against the library: its references to ulib.c's functions are
    R_RISCV_JUMP_SLOT (or R_RISCV_32) relocations the loader resolves (``shared/NAME.elf``)."""
    shared = out_dir / SHARED_SUBDIR
    elf = shared / f"{source.stem}.elf"
    sources = [USER_DIR / "crt0.S", *(USER_DIR / s for s in OWN_SOURCES), USER_DIR / "prog.c",
               *map(Path, library_sources(source))]
    objs = [_object(s, shared / "obj") for s in sources]
    objs.append(_object(source, shared / "obj" / source.stem))
    if _stale(elf, [*objs, library, USER_DIR / "link.ld"]):
        _link(elf, ["-pie", "--no-dynamic-linker", "-T", str(USER_DIR / "link.ld"), "-z", "norelro",
                    "-z", f"max-page-size={FILE_PACKING}",
                    "--build-id=none", *map(str, objs), str(library)],
              f"linking {source.stem} against {LIBRARY}")
    return elf


def program_file(elf: Path, out: Path) -> Path:
    """The program's file as the loader reads it: the ELF without what only a debugger needs.

    Everything the loaded segments place in the file is kept (it all comes first); the
    section headers and the debug sections after it are dropped.
    """
    data = bytearray(elf.read_bytes())
    with open(elf, "rb") as f:
        e = ELFFile(f)
        # what the loaders read: the headers and the loaded and dynamic segments (not, say,
        # PT_RISCV_ATTRIBUTES, which the linker may put after the debug sections)
        end = max(e.header["e_phoff"] + e.header["e_phnum"] * e.header["e_phentsize"],
                  *(s["p_offset"] + s["p_filesz"] for s in e.iter_segments()
                    if s["p_type"] in ("PT_LOAD", "PT_DYNAMIC")))
    data[32:36] = (0).to_bytes(4, "little")                 # e_shoff
    data[46:52] = (0).to_bytes(6, "little")                 # e_shentsize, e_shnum, e_shstrndx
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.read_bytes() != data[:end]:
        out.write_bytes(bytes(data[:end]))
    return out


def write_boot_files(files: list[Path], out: Path) -> Path:
    """The assembly file that carries the system servers' files in init (struct bootfile)."""
    lines = [
        "/* Generated by psyche/user/build.py: the files init places at boot. */",
        '        .section .data.rel.ro, "aw"',
        "        .balign 4",
        "        .globl boot_files",
        "boot_files:",
    ]
    lines += [f"        .word bf_name_{i}, bf_data_{i}, {f.stat().st_size}" for i, f in enumerate(files)]
    lines += ["        .word 0, 0, 0", '        .section .rodata, "a"']
    for i, f in enumerate(files):
        lines += [f'bf_name_{i}: .asciz "{f.name}"', "        .balign 4", f'bf_data_{i}: .incbin "{f}"']
    text = "\n".join(lines) + "\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out


def build_user_programs(out_dir: Path = DEFAULT_OUT_DIR) -> list[UserProgram]:
    """Every program, the servers and init: the ones the kernel image carries (programs, init)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    library = build_library(out_dir)
    servers = [build_program(SYS_DIR / f"{name}.c", out_dir) for name in SERVERS]
    carried = [program_file(library, out_dir / "boot" / LIBRARY)]
    carried += [program_file(s.elf, out_dir / "boot" / s.name) for s in servers]
    boot = write_boot_files(carried, out_dir / "bootfiles.S")
    # bootfiles.S only names the files it .incbin's: a server that changed must rebuild init too
    init = build_program(SYS_DIR / "init.c", out_dir, extra=(boot,), deps=tuple(carried))
    programs = [build_program(src, out_dir) for src in program_sources()]
    for src in program_sources():
        program_file(build_shared_program(src, library, out_dir), out_dir / "files" / src.stem)
    return [*programs, init]


def write_program_table(programs: list[UserProgram], out: Path) -> None:
    """The assembly file that carries the programs in the kernel's read-only data.

    It defines ``user_programs``, an array of ``struct uprog`` (psyche/kernel/user.h)
    ended by an all-zero entry.
    """
    lines = [
        "/* Generated by psyche/user/build.py: the user programs in the kernel image. */",
        '        .section .userprogs, "a"',
        "        .balign 4",
        "        .globl user_programs",
        "user_programs:",
    ]
    for i, p in enumerate(programs):
        lines.append(f"        .word up_name_{i}, up_image_{i}, {p.image.stat().st_size}, {p.codesz}, "
                     f"{p.memsz}, {p.entry}, up_relocs_{i}, {len(p.relocs)}")
    lines.append("        .word 0, 0, 0, 0, 0, 0, 0, 0")
    for i, p in enumerate(programs):
        lines.append(f'up_name_{i}: .asciz "{p.name}"')
        lines.append("        .balign 4")
        lines.append(f"up_relocs_{i}:")
        lines.extend(f"        .word {off:#x}, {addend:#x}" for off, addend in p.relocs)
        lines.append(f'up_image_{i}: .incbin "{p.image}"')
        lines.append("        .balign 4")
    text = "\n".join(lines) + "\n"
    if not out.exists() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT_DIR
    try:
        programs = build_user_programs(out_dir)
    except GuestBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    for p in programs:
        print(f"{p.name}\t{p.elf}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
