"""The user-level ELF loader library (psyche/user/elfload.c), checked on the host.

A loader realm will read program files from a file server and place them itself, so the
library must accept exactly what psyche/user/build.py's linker produces, place it byte for
byte as the host path (build.py's `flatten`) does, and refuse anything else -- truncated,
for another machine, malformed so that a sum wraps -- with one clear line, never reading or
writing outside what it was given.  It is built for the host as a shared library (with
UBSan in trap mode, so undefined behaviour kills the test instead of passing silently) and
called through ctypes; it is also compiled for the guest so a change that breaks the guest
build fails here.
"""

from __future__ import annotations

import ctypes
import random
import re
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from psyche.guestbuild import PSYCHE_CFLAGS, compile_to
from psyche.user.build import (
    USER_DIR,
    UserProgram,
    build_library,
    build_program,
    build_shared_program,
    build_user_programs,
    program_sources,
)

REPO = Path(__file__).resolve().parent.parent
SOURCE = USER_DIR / "elfload.c"
HEADER = USER_DIR / "elfload.h"
HOST_BUILD = REPO / "build" / "host"

MAX_SEGMENTS = int(re.search(r"#define ELF_MAX_SEGMENTS (\d+)", HEADER.read_text())[1])
ETRUNC, ENOTPSY, EBAD, EBIG, EREL = -1, -2, -3, -4, -5
MiB = 1 << 20
EHDR, PHDR, RELA = 52, 32, 12
PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_RELA, DT_RELASZ, DT_RELAENT = 0, 7, 8, 9


class Segment(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("offset", "vaddr", "filesz", "memsz", "flags")]


class Image(ctypes.Structure):
    _fields_ = [
        ("memsz", ctypes.c_uint32),
        ("entry", ctypes.c_uint32),
        ("nsegs", ctypes.c_uint32),
        ("seg", Segment * MAX_SEGMENTS),
        ("rela_off", ctypes.c_uint32),
        ("nrela", ctypes.c_uint32),
        ("jmprel_off", ctypes.c_uint32),
        ("njmprel", ctypes.c_uint32),
        ("needed", ctypes.c_uint32),
        ("symtab", ctypes.c_uint32),
        ("symtab_off", ctypes.c_uint32),
        ("nsyms", ctypes.c_uint32),
        ("strtab", ctypes.c_uint32),
        ("strtab_off", ctypes.c_uint32),
        ("strsz", ctypes.c_uint32),
    ]


class Library(ctypes.Structure):
    """struct elf_library: the exports a program's symbols are resolved against."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("base", ctypes.c_uint32),
        ("symtab", ctypes.c_char_p),
        ("nsyms", ctypes.c_uint32),
        ("strtab", ctypes.c_char_p),
        ("strsz", ctypes.c_uint32),
    ]


def build_host_library() -> Path:
    """elfload.c as an x86_64 shared library, rebuilt when the source or header changes."""
    out = HOST_BUILD / "elfload-ubsan.so"
    inputs = (SOURCE, HEADER, Path(__file__))
    if not out.exists() or any(p.stat().st_mtime >= out.stat().st_mtime for p in inputs):
        # -fsanitize-trap: no UBSan runtime needed inside a library that ctypes loads.
        warnings = compile_to(out, ["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror",
                                    "-fsanitize=undefined", "-fsanitize-trap=undefined",
                                    str(SOURCE)], "building elfload for the host")
        assert not warnings.strip(), warnings
    return out


class Loader:
    """elf_check and elf_place through ctypes."""

    def __init__(self, path: Path) -> None:
        self.lib = ctypes.CDLL(str(path))
        self.lib.elf_check.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                       ctypes.POINTER(Library), ctypes.POINTER(Image), ctypes.c_char_p,
                                       ctypes.c_uint32]
        self.lib.elf_check.restype = ctypes.c_int
        self.lib.elf_place.argtypes = [ctypes.c_char_p, ctypes.POINTER(Image), ctypes.c_void_p,
                                       ctypes.c_uint32, ctypes.POINTER(Library)]
        self.lib.elf_place.restype = None

    def check(self, data: bytes, max_memsz: int = MiB, lib: Library | None = None) -> tuple[int, Image, str]:
        img = Image()
        why = ctypes.create_string_buffer(160)
        rc = self.lib.elf_check(data, len(data), max_memsz, lib, ctypes.byref(img), why, len(why))
        return rc, img, why.value.decode()

    def place(self, data: bytes, img: Image, base: int, guard: int = 64, lib: Library | None = None) -> bytes:
        """The placed image; asserts that nothing was written past its end."""
        dest = ctypes.create_string_buffer(b"\xaa" * (img.memsz + guard), img.memsz + guard)
        self.lib.elf_place(data, ctypes.byref(img), dest, base, lib)
        out = dest.raw
        assert out[img.memsz:] == b"\xaa" * guard, "elf_place wrote past the image"
        return out[:img.memsz]


@pytest.fixture(scope="module")
def loader() -> Loader:
    return Loader(build_host_library())


@pytest.fixture(scope="module")
def programs() -> list[UserProgram]:
    return build_user_programs()


@pytest.fixture(scope="module")
def by_name(programs: list[UserProgram]) -> dict[str, bytes]:
    return {p.name: p.elf.read_bytes() for p in programs}


# --- reading and patching a file in Python, independently of the library -----------------

def u32(data: bytes, off: int) -> int:
    return struct.unpack_from("<I", data, off)[0]


def phdrs(data: bytes) -> list[tuple[int, ...]]:
    """(type, offset, vaddr, paddr, filesz, memsz, flags, align) of each program header."""
    phoff, = struct.unpack_from("<I", data, 28)
    phnum, = struct.unpack_from("<H", data, 44)
    return [struct.unpack_from("<8I", data, phoff + i * PHDR) for i in range(phnum)]


def phdr_at(data: bytes, index: int) -> int:
    return u32(data, 28) + index * PHDR


def load_indices(data: bytes) -> list[int]:
    return [i for i, ph in enumerate(phdrs(data)) if ph[0] == PT_LOAD]


def dynamic(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """The file offset of the dynamic section and its (tag, value) entries up to DT_NULL."""
    ph = next(ph for ph in phdrs(data) if ph[0] == PT_DYNAMIC)
    entries = []
    for off in range(ph[1], ph[1] + ph[4], 8):
        tag, val = struct.unpack_from("<II", data, off)
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    return ph[1], entries


def rela_offset(data: bytes) -> int:
    """File offset of the first relocation: DT_RELA translated through its PT_LOAD."""
    rela = dict(dynamic(data)[1])[DT_RELA]
    for ph in phdrs(data):
        if ph[0] == PT_LOAD and ph[2] <= rela < ph[2] + ph[4]:
            return ph[1] + rela - ph[2]
    raise AssertionError("DT_RELA in no segment")


def patch(data: bytes, off: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, off, *values)
    return bytes(out)


def patch_dyn(data: bytes, tag: int, new_tag: int, new_val: int) -> bytes:
    start, entries = dynamic(data)
    index = [t for t, _ in entries].index(tag)
    return patch(data, start + 8 * index, "<II", new_tag, new_val)


def loadable_prefix(data: bytes) -> bytes:
    """The file up to the end of its last loaded byte: all that the library reads."""
    return data[:max(ph[1] + ph[4] for ph in phdrs(data) if ph[0] == PT_LOAD)]


# --- (1) every program we build is accepted and placed as the host path places it ----------

def expected_image(p: UserProgram, elf: bytes, memsz: int, base: int) -> bytes:
    """What the kernel's loader makes of `p` at `base`: flatten's image, zeros, relocations.

    flatten stops at _end; a program without .bss has the linker's symbol and hash tables
    (loaded, unused) just past _end, which the library cannot tell from anything else and
    copies: those bytes come straight from the segments.
    """
    out = bytearray(memsz)
    for ph in phdrs(elf):
        if ph[0] == PT_LOAD:
            out[ph[2]:ph[2] + ph[4]] = elf[ph[1]:ph[1] + ph[4]]
    flat = p.image.read_bytes()
    out[:p.memsz] = flat + bytes(p.memsz - len(flat))
    for off, addend in p.relocs:
        struct.pack_into("<I", out, off, (base + addend) & 0xFFFF_FFFF)
    return bytes(out)


def test_every_program_is_accepted_and_placed_like_flatten(loader: Loader, programs) -> None:
    assert len(programs) >= 10
    for p in programs:
        elf = p.elf.read_bytes()
        rc, img, why = loader.check(elf)
        assert (rc, why) == (0, ""), p.name
        with open(p.elf, "rb") as f:
            loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
        assert [(s.offset, s.vaddr, s.filesz, s.memsz, s.flags) for s in img.seg[:img.nsegs]] == [
            (s["p_offset"], s["p_vaddr"], s["p_filesz"], s["p_memsz"], s["p_flags"]) for s in loads]
        assert img.entry == p.entry
        assert img.memsz >= p.memsz and img.memsz - p.memsz < 0x100, p.name
        relocs = [struct.unpack_from("<IIi", elf, img.rela_off + RELA * i) for i in range(img.nrela)]
        assert sorted((off, addend) for off, _, addend in relocs) == list(p.relocs)
        for base in (0x4000_0000, 0x8123_4000):
            placed = loader.place(elf, img, base)
            assert placed == expected_image(p, elf, img.memsz, base), (p.name, hex(base))
        # .bss really is zeroed (place starts from a buffer of 0xaa).
        for s in img.seg[:img.nsegs]:
            assert placed[s.vaddr + s.filesz:s.vaddr + s.memsz] == bytes(s.memsz - s.filesz)


def test_memsz_limit_is_inclusive(loader: Loader, by_name) -> None:
    elf = by_name["threads"]
    memsz = loader.check(elf)[1].memsz
    assert loader.check(elf, memsz)[0] == 0
    rc, _, why = loader.check(elf, memsz - 1)
    assert rc == EBIG
    assert why == f"too big: {memsz:#x} bytes in memory, at most {memsz - 1:#x}"


def test_a_file_without_dynamic_section_has_no_relocations(loader: Loader, by_name) -> None:
    elf = by_name["hello"]
    index = next(i for i, ph in enumerate(phdrs(elf)) if ph[0] == PT_DYNAMIC)
    rc, img, why = loader.check(patch(elf, phdr_at(elf, index), "<I", 4))   # now a PT_NOTE
    assert (rc, why, img.nrela) == (0, "", 0)


def test_why_is_cut_to_its_buffer_and_may_be_absent(loader: Loader, by_name) -> None:
    bad = patch(by_name["hello"], 18, "<H", 62)
    img = Image()
    why = ctypes.create_string_buffer(b"\xff" * 8, 8)
    assert loader.lib.elf_check(bad, len(bad), MiB, None, ctypes.byref(img), why, 8) == ENOTPSY
    assert why.raw == b"not RIS\0"
    assert loader.lib.elf_check(bad, len(bad), MiB, None, ctypes.byref(img), None, 0) == ENOTPSY


# --- (2) refusals, each with its reason -----------------------------------------------------

def test_truncated_anywhere_in_the_headers(loader: Loader, by_name) -> None:
    elf = by_name["threads"]
    ph_end = u32(elf, 28) + len(phdrs(elf)) * PHDR
    for length in range(0, ph_end + 64):
        rc, _, why = loader.check(elf[:length])
        assert rc == ETRUNC, (length, why)
        assert why.startswith("truncated: "), why
        if length < EHDR:
            assert why == f"truncated: the ELF header ends at 0x34, the file at {length:#x}"
        elif length < ph_end:
            assert why == f"truncated: the program headers end at {ph_end:#x}, the file at {length:#x}"


def test_truncated_inside_segments(loader: Loader, by_name) -> None:
    elf = by_name["threads"]
    loads = [ph for ph in phdrs(elf) if ph[0] == PT_LOAD]
    rela = rela_offset(elf)
    for length in (loads[0][1], loads[0][1] + 1, loads[0][1] + loads[0][4] - 1,
                   loads[2][1] + 8, rela + 5, loads[-1][1] - 1):
        rc, _, why = loader.check(elf[:length])
        assert rc == ETRUNC, (length, why)
        assert re.match(r"truncated: segment \d ends at 0x[0-9a-f]+, the file at 0x", why), why
    # Past the loaded bytes (section headers, debug information) nothing is read.
    assert loader.check(loadable_prefix(elf))[0] == 0


def refusal_cases(elf: bytes) -> list[tuple[str, bytes, int, str]]:
    """(name, the file made wrong, expected code, what the reason must say)."""
    loads = load_indices(elf)
    first, data, last = phdr_at(elf, loads[0]), phdr_at(elf, loads[2]), phdr_at(elf, loads[-1])
    rela = rela_offset(elf)
    data_vaddr = phdrs(elf)[loads[2]][2]
    rodata_end = phdrs(elf)[loads[1]][2] + phdrs(elf)[loads[1]][5]
    dyn = phdr_at(elf, next(i for i, ph in enumerate(phdrs(elf)) if ph[0] == PT_DYNAMIC))
    no_loads = elf
    for i in loads:
        no_loads = patch(no_loads, phdr_at(elf, i), "<I", 4)
    other = next(i for i, ph in enumerate(phdrs(elf)) if ph[0] not in (PT_LOAD, PT_DYNAMIC))
    return [
        ("bad magic", patch(elf, 1, "<B", ord("X")), ENOTPSY, "not ELF: bad magic"),
        ("ELFCLASS64", patch(elf, 4, "<B", 2), ENOTPSY, "not 32-bit: ELF class 2 (ELFCLASS64)"),
        ("big-endian", patch(elf, 5, "<B", 2), ENOTPSY, "not little-endian"),
        ("EI_VERSION", patch(elf, 6, "<B", 0), ENOTPSY, "bad ELF version 0/1"),
        ("e_version", patch(elf, 20, "<I", 2), ENOTPSY, "bad ELF version 1/2"),
        ("ET_EXEC", patch(elf, 16, "<H", 2), ENOTPSY, "not position-independent: ET_EXEC"),
        ("ET_REL", patch(elf, 16, "<H", 1), ENOTPSY, "not a program: ELF type 1 (ET_REL"),
        ("x86", patch(elf, 18, "<H", 62), ENOTPSY, "not RISC-V: e_machine 62"),
        ("RVE", patch(elf, 36, "<I", 8), ENOTPSY, "RVE program"),
        ("RVC", patch(elf, 36, "<I", 1), ENOTPSY, "compressed"),
        ("e_phentsize", patch(elf, 42, "<H", 40), EBAD, "bad e_phentsize 40, want 32"),
        ("no phdrs", patch(elf, 44, "<H", 0), EBAD, "no program headers"),
        ("absurd e_phnum", patch(elf, 44, "<H", 0xFFFF), EBAD,
         "too many program headers: 65535, at most 32"),
        ("e_phoff wraps", patch(elf, 28, "<I", 0xFFFF_FFF0), EBAD,
         "bad offsets: the program headers at 0xfffffff0 + size 0x"),
        ("e_phoff past the end", patch(elf, 28, "<I", len(elf) - 16), ETRUNC,
         "truncated: the program headers end at"),
        ("segment past the end", patch(elf, data + 4, "<I", len(elf) - 4), ETRUNC,
         "truncated: segment 2 ends at"),
        ("segment offset wraps", patch(elf, first + 4, "<I", 0xFFFF_FFF0), EBAD,
         "bad offsets: segment 0 at 0xfffffff0 + size"),
        ("segment address wraps", patch(elf, last + 20, "<I", 0xFFFF_FF00), EBAD,
         "wraps past 2^32"),
        ("filesz > memsz", patch(elf, data + 20, "<I", 4), EBAD,
         "segment 2: file size 0x"),
        ("overlapping segments", patch(elf, data + 8, "<I", rodata_end - 4), EBAD, "overlaps"),
        ("too big", patch(elf, last + 20, "<I", 2 * MiB), EBIG, "too big: 0x"),
        ("entry in data", patch(elf, 24, "<I", data_vaddr), EBAD, "not in an executable segment"),
        ("entry past the code", patch(elf, 24, "<I", 0x10_0000), EBAD, "not in an executable"),
        ("entry misaligned", patch(elf, 24, "<I", 2), EBAD, "entry 0x2 is not 4-aligned"),
        ("PT_INTERP", patch(elf, phdr_at(elf, other), "<I", 3), ENOTPSY, "PT_INTERP"),
        ("PT_TLS", patch(elf, phdr_at(elf, other), "<I", 7), ENOTPSY, "PT_TLS"),
        ("two PT_DYNAMIC", patch(elf, phdr_at(elf, other), "<I", PT_DYNAMIC), EBAD,
         "more than one PT_DYNAMIC"),
        ("no PT_LOAD", no_loads, EBAD, "no PT_LOAD segment"),
        ("dynamic past the end", patch(elf, dyn + 4, "<I", len(elf) - 8), ETRUNC,
         "truncated: the dynamic entries end at"),
        ("R_RISCV_32", patch(elf, rela + 4, "<I", 1), EREL,
         "relocation 0: type 1, only R_RISCV_RELATIVE (3) can be applied"),
        ("R_RISCV_JUMP_SLOT", patch(elf, rela + 12 + 4, "<I", 5), EREL, "relocation 1: type 5"),
        ("symbol", patch(elf, rela + 4, "<I", 0x103), EREL, "with symbol 1"),
        ("target outside", patch(elf, rela, "<I", 0x40_0000), EREL,
         "relocation 0: target 0x400000 is outside"),
        ("target past memsz", patch(elf, rela, "<I", 0xFFFF_FFFC), EREL, "outside"),
        ("target misaligned", patch(elf, rela, "<I", data_vaddr + 2), EREL, "is misaligned"),
        ("target in code", patch(elf, rela, "<I", 0), EREL, "target 0x0 is in code (segment 0)"),
        ("DT_RELAENT", patch_dyn(elf, DT_RELAENT, DT_RELAENT, 8), EBAD, "DT_RELAENT 8, want 12"),
        ("DT_RELASZ", patch_dyn(elf, DT_RELASZ, DT_RELASZ, 13), EBAD, "not a multiple of 12"),
        ("DT_RELASZ huge", patch_dyn(elf, DT_RELASZ, DT_RELASZ, 0xFFFF_FFF0), EBAD,
         "not in the file part of a segment"),
        ("DT_RELA nowhere", patch_dyn(elf, DT_RELA, DT_RELA, 0x1_0000), EBAD,
         "relocations at 0x10000"),
        ("no DT_RELAENT", patch_dyn(elf, DT_RELAENT, 0x15, 0), EBAD, "incomplete dynamic"),
        ("DT_NEEDED", patch_dyn(elf, DT_RELAENT, 1, 1), ENOTPSY, "DT_NEEDED"),
        ("DT_REL", patch_dyn(elf, DT_RELAENT, 17, 0), EREL, "DT_REL)"),
        ("DT_TEXTREL", patch_dyn(elf, DT_RELAENT, 22, 0), EREL, "DT_TEXTREL"),
        ("DT_PLTRELSZ", patch_dyn(elf, DT_RELAENT, 2, 12), EREL, "PLT relocations"),
    ]


@pytest.mark.parametrize("program", ["threads", "hello"])
def test_refusals_say_why(loader: Loader, by_name, program: str) -> None:
    elf = by_name[program]
    assert loader.check(elf)[0] == 0
    for name, bad, code, reason in refusal_cases(elf):
        rc, _, why = loader.check(bad)
        assert (rc, reason in why) == (code, True), f"{name}: {rc} {why!r}"
        assert "\n" not in why and len(why) < 120, why


def test_unsorted_segments_are_refused(loader: Loader, by_name) -> None:
    elf = by_name["hello"]
    a, b = phdr_at(elf, load_indices(elf)[0]), phdr_at(elf, load_indices(elf)[1])
    swapped = bytearray(elf)
    swapped[a:a + PHDR], swapped[b:b + PHDR] = elf[b:b + PHDR], elf[a:a + PHDR]
    rc, _, why = loader.check(bytes(swapped))
    assert rc == EBAD and "segment 1 at 0x0 overlaps or precedes segment 0" in why, why


def test_too_many_segments(loader: Loader, by_name) -> None:
    """MAX_SEGMENTS + 1 PT_LOADs, each a page, made from a copy of the first."""
    elf = bytearray(loadable_prefix(by_name["hello"]))
    phoff = len(elf)
    for i in range(MAX_SEGMENTS + 1):
        elf += struct.pack("<8I", PT_LOAD, 0, i * 0x1000, i * 0x1000, 0, 0x1000, 5, 0x1000)
    struct.pack_into("<I", elf, 28, phoff)
    struct.pack_into("<H", elf, 44, MAX_SEGMENTS + 1)
    rc, _, why = loader.check(bytes(elf))
    assert rc == EBAD and why == f"too many PT_LOAD segments: more than {MAX_SEGMENTS}", why


# --- (3) mutation fuzz: never a crash, and what is accepted is inside what was given ----------

def assert_sound(data: bytes, img: Image, max_memsz: int) -> None:
    """Recheck in Python everything an accepted image promises."""
    assert 1 <= img.nsegs <= MAX_SEGMENTS
    assert img.memsz <= max_memsz
    end = 0
    for s in img.seg[:img.nsegs]:
        assert s.filesz <= s.memsz
        assert s.offset + s.filesz <= len(data)
        assert s.vaddr >= end
        end = s.vaddr + s.memsz
    assert end == img.memsz
    assert any(s.flags & 1 and s.vaddr <= img.entry and img.entry + 4 <= s.vaddr + s.filesz
               for s in img.seg[:img.nsegs])
    assert img.rela_off + img.nrela * RELA <= len(data)
    for i in range(img.nrela):
        target, info = struct.unpack_from("<II", data, img.rela_off + RELA * i)
        assert info == 3 and target % 4 == 0 and target + 4 <= img.memsz
        assert any(s.vaddr <= target and target + 4 <= s.vaddr + s.memsz and not s.flags & 1
                   for s in img.seg[:img.nsegs])


def mutate(rng: random.Random, elf: bytes, hot: list[tuple[int, int]]) -> bytes:
    """A few random changes, most of them where the library looks (the header, program
    headers, dynamic section and relocations); sometimes a truncation."""
    out = bytearray(elf)
    for _ in range(rng.randint(1, 4)):
        start, stop = rng.choice(hot) if rng.random() < 0.8 else (0, len(out))
        choice = rng.random()
        if choice < 0.5:
            out[rng.randrange(start, stop)] ^= 1 << rng.randrange(8)
        elif choice < 0.8:
            off = rng.randrange(start, stop - 3) & ~3
            value = rng.choice([0, 1, 2, 3, 4, 0x7F, 0x80, 0xFFF, 0x1000, len(out), len(out) - 1,
                                0x10_0000, 0x10_0004, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFC, 0xFFFF_FFFF,
                                rng.getrandbits(32)])
            struct.pack_into("<I", out, off, value)
        else:
            out[rng.randrange(len(out))] = rng.getrandbits(8)
    if rng.random() < 0.1:
        del out[rng.randrange(len(out)):]
    return bytes(out)


def test_mutation_fuzz(loader: Loader, by_name) -> None:
    rng = random.Random(0x5EED)
    counts = {0: 0}
    for name in ("threads", "hello"):
        elf = loadable_prefix(by_name[name])
        dyn_start, entries = dynamic(elf)
        rela = rela_offset(elf)
        hot = [(0, EHDR), (u32(elf, 28), u32(elf, 28) + len(phdrs(elf)) * PHDR),
               (dyn_start, dyn_start + 8 * (len(entries) + 1)),
               (rela, rela + dict(entries)[DT_RELASZ])]
        for _ in range(6000):
            bad = mutate(rng, elf, hot)
            rc, img, why = loader.check(bad, MiB)
            counts[rc] = counts.get(rc, 0) + 1
            if rc == 0:
                assert_sound(bad, img, MiB)
                loader.place(bad, img, rng.getrandbits(32) & ~3)
            else:
                assert rc in (ETRUNC, ENOTPSY, EBAD, EBIG, EREL) and why, (rc, why)
    # The fuzz reached both sides, and every kind of refusal.
    assert counts[0] > 100 and all(counts.get(code, 0) > 10 for code in
                                   (ETRUNC, ENOTPSY, EBAD, EBIG, EREL)), counts


# --- the guest build ----------------------------------------------------------------------

def test_builds_for_the_guest_without_warnings(tmp_path: Path) -> None:
    warnings = compile_to(tmp_path / "elfload.o",
                          [*PSYCHE_CFLAGS, "-fPIE", f"-I{USER_DIR}", "-c", str(SOURCE)],
                          "compiling elfload for the guest")
    assert not warnings.strip(), warnings


def test_links_into_a_user_program(tmp_path: Path) -> None:
    """Linked into a program as build.py links one, flatten must accept it: only
    R_RISCV_RELATIVE relocations, none in the code (a switch's jump table, say)."""
    source = tmp_path / "elfuser.c"
    source.write_text('#include "elfload.c"\n'
                      "int main(void)\n{\n    static struct elf_image img;\n    char why[80];\n"
                      "    return elf_check(why, sizeof why, 0, 0, &img, why, sizeof why);\n}\n")
    program = build_program(source, tmp_path)
    assert program.memsz > 0


# --- (4) programs linked against the reentrant library: symbol relocations -----------------------

R_RISCV_32, R_RISCV_RELATIVE, R_RISCV_JUMP_SLOT = 1, 3, 5
ESYM = -6
DT_JMPREL, DT_PLTREL, DT_PLTRELSZ, DT_STRSZ = 23, 20, 2, 10
LIB_BASE = 0x0012_8000


@pytest.fixture(scope="module")
def library() -> tuple[bytes, bytes, dict[str, int]]:
    """The library's .dynsym and .dynstr, and its exports (name -> offset), from its ELF."""
    elf = build_library()
    with open(elf, "rb") as f:
        e = ELFFile(f)
        dynsym, dynstr = e.get_section_by_name(".dynsym"), e.get_section_by_name(".dynstr")
        exports = {s.name: s["st_value"] for s in dynsym.iter_symbols()
                   if s.name and s["st_shndx"] != "SHN_UNDEF"}
        return dynsym.data(), dynstr.data(), exports


def lib_struct(library: tuple[bytes, bytes, dict[str, int]], name: bytes = b"libpsy.so",
               dynstr: bytes | None = None) -> Library:
    symtab, strtab, _ = library
    strtab = strtab if dynstr is None else dynstr
    return Library(name, LIB_BASE, symtab, len(symtab) // 16, strtab, len(strtab))


@pytest.fixture(scope="module")
def linked() -> dict[str, bytes]:
    """Every program as the file server serves it: linked against the library (its full ELF)."""
    lib = build_library()
    return {src.stem: build_shared_program(src, lib).read_bytes() for src in program_sources()}


def symbol_relocs(data: bytes, img: Image) -> list[tuple[int, int, int, str]]:
    """(target, type, addend, symbol name) of every relocation of both tables, read in Python."""
    out = []
    for off, n in ((img.rela_off, img.nrela), (img.jmprel_off, img.njmprel)):
        for i in range(n):
            target, info, addend = struct.unpack_from("<IIi", data, off + RELA * i)
            name = ""
            if info >> 8:
                st_name = u32(data, img.symtab_off + 16 * (info >> 8))
                name = data[img.strtab_off + st_name:].split(b"\0", 1)[0].decode()
            out.append((target, info & 0xFF, addend, name))
    return out


def test_linked_programs_are_resolved_against_the_library(loader: Loader, linked, library) -> None:
    lib, exports = lib_struct(library), library[2]
    for name, elf in linked.items():
        rc, img, why = loader.check(elf, lib=lib)
        assert (rc, why) == (0, ""), name
        assert img.needed == 1 and img.njmprel > 0, name          # printf at least, through the PLT
        base = 0x4000_0000
        placed = loader.place(elf, img, base, lib=lib)
        for target, kind, addend, symbol in symbol_relocs(elf, img):
            word = u32(placed, target)
            if kind == R_RISCV_RELATIVE:
                assert word == base + addend
            else:
                assert kind in (R_RISCV_32, R_RISCV_JUMP_SLOT) and symbol in exports, (name, symbol)
                assert word == LIB_BASE + exports[symbol] + (addend if kind == R_RISCV_32 else 0), symbol
        # no copy of the library's functions in the program: it only calls them
        with open(build_shared_program(USER_DIR / "progs" / f"{name}.c", build_library()), "rb") as f:
            own = {s.name for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                   if s["st_shndx"] != "SHN_UNDEF"}
        assert not own & {"printf", "memcpy", "strcmp", "error_name"}, (name, own & set(exports))


def strtab_offset(elf: bytes) -> int:
    entries = dict(dynamic(elf)[1])
    for ph in phdrs(elf):
        if ph[0] == PT_LOAD and ph[2] <= entries[5] < ph[2] + ph[4]:
            return ph[1] + entries[5] - ph[2]
    raise AssertionError("DT_STRTAB in no segment")


def rename(elf: bytes, old: bytes, new: bytes) -> bytes:
    """The file with one name of its string table changed (same length)."""
    at = elf.index(b"\0" + old + b"\0", strtab_offset(elf)) + 1
    return elf[:at] + new + elf[at + len(new):]


def linked_refusals(elf: bytes, img: Image) -> list[tuple[str, bytes, int, str]]:
    jmprel = img.jmprel_off
    first_plt = img.nrela                                   # numbered on after DT_RELA's
    code_target = 0
    return [
        ("unresolved", rename(elf, b"printf", b"prinzz"), ESYM, "unresolved symbol prinzz"),
        ("a control character in a name", rename(elf, b"printf", b"prin\nz"), ESYM,
         "unresolved symbol prin?z"),
        ("symbol past the table", patch(elf, jmprel + 4, "<I", (0xFFFF << 8) | 5), EREL,
         f"relocation {first_plt}: symbol 65535 is outside the symbol table"),
        ("no symbol", patch(elf, jmprel + 4, "<I", 5), EREL, "type 5 without a symbol"),
        ("name past the strings", patch(elf, img.symtab_off + 16, "<I", 0xFFFF_FFF0), EREL,
         "name at 0xfffffff0 is not in the string table"),
        ("a defined symbol", patch(elf, img.symtab_off + 16 + 14, "<H", 1), EREL, "the program's own"),
        ("slot in code", patch(elf, jmprel, "<I", code_target), EREL, "is in code"),
        ("slot outside", patch(elf, jmprel, "<I", 0x7FFF_FFFC), EREL, "outside the image"),
        ("unknown type", patch(elf, jmprel + 4, "<I", (1 << 8) | 2), EREL,
         "type 2, only R_RISCV_RELATIVE (3), R_RISCV_32 (1) and R_RISCV_JUMP_SLOT (5)"),
        ("DT_PLTREL REL", patch_dyn(elf, DT_PLTREL, DT_PLTREL, 17), EREL, "DT_PLTREL"),
        ("DT_JMPREL nowhere", patch_dyn(elf, DT_JMPREL, DT_JMPREL, 0x10_0000), EBAD,
         "relocations at 0x100000"),
        ("DT_PLTRELSZ huge", patch_dyn(elf, DT_PLTRELSZ, DT_PLTRELSZ, 0xFFFF_FFF0), EBAD,
         "not in the file part"),
        ("no DT_JMPREL", patch_dyn(elf, DT_JMPREL, 0x15, 0), EBAD, "DT_JMPREL and DT_PLTRELSZ go together"),
        ("DT_STRSZ huge", patch_dyn(elf, DT_STRSZ, DT_STRSZ, 0xFFFF_FF00), EBAD, "the string table at"),
        ("another library", rename(elf, b"libpsy.so", b"libxyz.so"), ENOTPSY,
         "needs the shared library libxyz.so; only libpsy.so is here"),
    ]


def test_linked_refusals_say_why(loader: Loader, linked, library) -> None:
    lib = lib_struct(library)
    for program in ("hello", "sort"):
        elf = linked[program]
        rc, img, _ = loader.check(elf, lib=lib)
        assert rc == 0
        for name, bad, code, reason in linked_refusals(elf, img):
            rc, _, why = loader.check(bad, lib=lib)
            assert (rc, reason in why) == (code, True), f"{program}: {name}: {rc} {why!r}"
            assert "\n" not in why and len(why) < 120, why


def test_a_linked_program_needs_the_library_and_the_library_its_symbols(loader: Loader, linked,
                                                                        library) -> None:
    elf = linked["hello"]
    assert loader.check(elf)[:3:2] == (ENOTPSY, "needs a shared library (DT_NEEDED), and none is here")
    rc, _, why = loader.check(elf, lib=lib_struct(library, b"libother.so"))
    assert (rc, why) == (ENOTPSY, "needs the shared library libpsy.so; only libother.so is here")
    # a library without printf (its name changed in its own table)
    dynstr = library[1].replace(b"\0printf\0", b"\0printg\0")
    rc, _, why = loader.check(elf, lib=lib_struct(library, dynstr=dynstr))
    assert (rc, why) == (ESYM, "unresolved symbol printf")


def test_linked_mutation_fuzz(loader: Loader, linked, library) -> None:
    """As test_mutation_fuzz, with the symbol table, strings and PLT relocations hot too: what is
    accepted resolves every symbol to the library's address and writes only inside the image."""
    rng = random.Random(0x11B)
    lib, exports = lib_struct(library), library[2]
    counts: dict[int, int] = {0: 0}
    for name in ("hello", "sort"):
        elf = loadable_prefix(linked[name])
        _, img, _ = loader.check(elf, lib=lib)
        dyn_start, entries = dynamic(elf)
        hot = [(0, EHDR), (u32(elf, 28), u32(elf, 28) + len(phdrs(elf)) * PHDR),
               (dyn_start, dyn_start + 8 * (len(entries) + 1)),
               (img.jmprel_off, img.jmprel_off + RELA * img.njmprel),
               (img.symtab_off, img.symtab_off + 16 * img.nsyms),
               (img.strtab_off, img.strtab_off + img.strsz)]
        for _ in range(4000):
            bad = mutate(rng, elf, hot)
            rc, got, why = loader.check(bad, MiB, lib=lib)
            counts[rc] = counts.get(rc, 0) + 1
            if rc != 0:
                assert rc in (ETRUNC, ENOTPSY, EBAD, EBIG, EREL, ESYM) and why, (rc, why)
                continue
            base = rng.getrandbits(32) & ~3
            placed = loader.place(bad, got, base, lib=lib)
            want: dict[int, int] = {}                   # applied in order: a later one wins
            for target, kind, addend, symbol in symbol_relocs(bad, got):
                assert target % 4 == 0 and target + 4 <= got.memsz
                if kind == R_RISCV_RELATIVE:
                    want[target] = base + addend
                else:
                    assert kind in (R_RISCV_32, R_RISCV_JUMP_SLOT) and symbol in exports, symbol
                    want[target] = LIB_BASE + exports[symbol] + (addend if kind == R_RISCV_32 else 0)
            assert all(u32(placed, t) == v & 0xFFFF_FFFF for t, v in want.items())
    assert counts[0] > 100 and all(counts.get(code, 0) > 10 for code in (EBAD, EREL, ESYM)), counts
