"""Builds the conformance suite's bare-metal guests, the same ELF for QEMU and for the mux.

A guest is C (compiled -O0 -g, so every line has code and every local a stack slot)
plus a little assembly, linked with the common start-up code of tests/guest
(common/crt0.S, common/link.ld): `_start` is first at 0x80000000, where QEMU's
`-device loader` and a Psyche node both start it.
"""

from __future__ import annotations

from pathlib import Path

from psyche import guestbuild

HERE = Path(__file__).resolve().parent
SOURCES = {
    "conformance": (HERE / "guest" / "conformance.c", HERE / "guest" / "conformance_asm.S"),
}
#: zig cc builds -O0 in its Debug mode, with UBSan calls the guest has no runtime for.
FLAGS = ("-O0", "-fno-sanitize=all")


def build(name: str = "conformance") -> Path:
    """The guest `name` (a key of SOURCES), rebuilt when a source or this module changed."""
    sources = SOURCES[name]
    out = guestbuild.DEFAULT_OUT_DIR / f"conformance-{name}.elf"
    inputs = [*sources, *sorted(guestbuild.COMMON_DIR.iterdir()), Path(__file__), Path(guestbuild.__file__)]
    if out.exists() and all(p.stat().st_mtime < out.stat().st_mtime for p in inputs):
        return out
    args = [*guestbuild.CFLAGS, *FLAGS, f"-I{guestbuild.COMMON_DIR}", f"-Wl,-T,{guestbuild.LINKER_SCRIPT}",
            "-Wl,--build-id=none", str(guestbuild.CRT0), *(str(s) for s in sources)]
    guestbuild.compile_to(out, args, f"building the {name} conformance guest")
    return out
