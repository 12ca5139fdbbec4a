"""The ELF loader must accept real RV32 executables and reject everything else in one clear line."""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from psyche.machine.elf import ElfError, ElfImage, Segment, load_elf, write_image

ENTRY = 0x8000_0000

# -Wl,-Ttext=... is not accepted by zig 0.17's linker driver; a linker script is.
LINKER_SCRIPT = f"""
ENTRY(_start)
SECTIONS {{
  . = {ENTRY:#x};
  .text : {{ *(.text*) }}
  .data : {{ *(.data*) }}
  .bss : {{ *(.bss*) }}
}}
"""

SOURCE = """
    .section .text
    .globl _start
    .type _start, @function
_start:
    la t0, counter
    lw t1, 0(t0)
    addi t1, t1, 1
    sw t1, 0(t0)
    j _start
    .size _start, . - _start

    .section .data
    .globl message
    .type message, @object
message:
    .ascii "hello"
    .size message, 5

    .section .bss
    .globl counter
    .type counter, @object
    .balign 4
counter:
    .space 64
    .size counter, 64
"""

Compile = Callable[..., Path]


@pytest.fixture
def zig_cc(tmp_path: Path) -> Compile:
    """Compile SOURCE with zig cc; extra arguments go before the source file."""
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("ziglang is not installed: cannot build RISC-V test binaries")
    (tmp_path / "start.S").write_text(SOURCE)
    (tmp_path / "link.ld").write_text(LINKER_SCRIPT)

    def compile_(out: str, *args: str, target: str = "riscv32-freestanding-none") -> Path:
        cmd = [sys.executable, "-m", "ziglang", "cc", "-target", target, "-nostdlib",
               *args, "start.S", "-o", out]
        result = subprocess.run(
            cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        return tmp_path / out

    return compile_


@pytest.fixture
def rv32_elf(zig_cc: Compile) -> Path:
    return zig_cc("prog.elf", "-mcpu=generic_rv32+m+a", "-Wl,-T,link.ld")


@pytest.mark.timeout(120)
def test_loads_entry_segments_and_symbols(rv32_elf: Path) -> None:
    image = load_elf(rv32_elf)
    assert image.path == rv32_elf
    assert image.entry == ENTRY
    assert image.symbol("_start") == ENTRY
    assert image.symbol("nonexistent") is None
    assert {"_start", "message", "counter"} <= image.symbols.keys()
    assert not any(name.startswith((".L", "$")) for name in image.symbols)

    text = image.segments[0]
    assert text.paddr == ENTRY
    assert text.memsz == len(text.data) == 24  # five instructions, la is two
    assert text.data[:4] == struct.pack("<I", 0x00000297)  # auipc t0, 0

    data = next(s for s in image.segments if b"hello" in s.data)
    message = image.symbol("message")
    counter = image.symbol("counter")
    assert message is not None and counter is not None
    assert data.data[message - data.paddr:][:5] == b"hello"
    assert data.memsz > len(data.data)  # .bss rides along as zero fill
    assert data.paddr + data.memsz >= counter + 64


@pytest.mark.timeout(120)
def test_symbol_at(rv32_elf: Path) -> None:
    image = load_elf(rv32_elf)
    counter = image.symbol("counter")
    assert counter is not None
    assert image.symbol_at(ENTRY) == ("_start", 0)
    assert image.symbol_at(ENTRY + 20) == ("_start", 20)
    assert image.symbol_at(counter + 63) == ("counter", 63)
    assert image.symbol_at(counter + 64) is None
    assert image.symbol_at(0) is None


@pytest.mark.timeout(120)
def test_write_image_fills_memory_including_bss(rv32_elf: Path) -> None:
    image = load_elf(rv32_elf)
    memory = bytearray(b"\xAA" * 0x100)

    def write_phys(addr: int, data: bytes) -> None:
        offset = addr - ENTRY
        assert offset >= 0 and offset + len(data) <= len(memory)
        memory[offset:offset + len(data)] = data

    write_image(image, write_phys)
    message = image.symbol("message")
    counter = image.symbol("counter")
    assert message is not None and counter is not None
    assert memory[:24] == image.segments[0].data
    assert memory[message - ENTRY:][:5] == b"hello"
    assert memory[counter - ENTRY:][:64] == bytes(64)


def test_write_image_without_file_bytes() -> None:
    image = ElfImage(entry=0, segments=[Segment(paddr=0x100, data=b"", memsz=8)], symbols={},
                     path=Path("x"))
    writes: list[tuple[int, bytes]] = []
    write_image(image, lambda addr, data: writes.append((addr, data)))
    assert writes == [(0x100, bytes(8))]


def test_symbol_at_prefers_innermost() -> None:
    image = ElfImage(entry=0, segments=[], symbols={"outer": 0x100, "inner": 0x110, "label": 0x118},
                     path=Path("x"), symbol_sizes={"outer": 0x40, "inner": 0x10, "label": 0})
    assert image.symbol_at(0x114) == ("inner", 4)
    assert image.symbol_at(0x118) == ("inner", 8)  # zero-sized labels never match
    assert image.symbol_at(0x120) == ("outer", 0x20)


# ---- errors ------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ElfError, match="no such file"):
        load_elf(tmp_path / "absent.elf")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ElfError, match="directory"):
        load_elf(tmp_path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a program\n")
    with pytest.raises(ElfError, match="not an ELF file"):
        load_elf(path)


def test_truncated_elf(tmp_path: Path) -> None:
    path = tmp_path / "short.elf"
    path.write_bytes(b"\x7fELF\x01\x01\x01")
    with pytest.raises(ElfError, match="malformed ELF"):
        load_elf(path)


def test_wrong_machine() -> None:
    if not Path("/bin/ls").exists():
        pytest.skip("no /bin/ls to use as a foreign binary")
    with pytest.raises(ElfError, match="expected EM_RISCV") as info:
        load_elf("/bin/ls")
    assert "\n" not in str(info.value)


@pytest.mark.timeout(120)
def test_wrong_class(zig_cc: Compile) -> None:
    path = zig_cc("prog64.elf", "-Wl,-T,link.ld", target="riscv64-freestanding-none")
    with pytest.raises(ElfError, match="64-bit ELF, expected a 32-bit"):
        load_elf(path)


@pytest.mark.timeout(120)
def test_relocatable_object(zig_cc: Compile) -> None:
    path = zig_cc("start.o", "-mcpu=generic_rv32+m+a", "-c")
    with pytest.raises(ElfError, match="ET_REL is a relocatable object"):
        load_elf(path)


@pytest.mark.timeout(120)
def test_no_loadable_segments(rv32_elf: Path) -> None:
    # Turn every program header into PT_NULL: a well-formed ELF with nothing to load.
    raw = bytearray(rv32_elf.read_bytes())
    (phoff,) = struct.unpack_from("<I", raw, 0x1C)
    phentsize, phnum = struct.unpack_from("<HH", raw, 0x2A)
    for i in range(phnum):
        struct.pack_into("<I", raw, phoff + i * phentsize, 0)
    rv32_elf.write_bytes(bytes(raw))
    with pytest.raises(ElfError, match="no loadable"):
        load_elf(rv32_elf)
