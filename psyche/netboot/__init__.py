"""The machine's network boot loader (netboot.c): built here, loaded by `psyche machine --netboot`."""

from __future__ import annotations

from pathlib import Path

from psyche import guestbuild

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = (SOURCE_DIR / "start.S", SOURCE_DIR / "netboot.c")
LINKER_SCRIPT = SOURCE_DIR / "link.ld"
#: The NIC's registers, shared with the kernel's driver.
KERNEL_DIR = SOURCE_DIR.parent / "kernel"
DEFAULT_OUT = guestbuild.REPO_ROOT / "build" / "netboot" / "netboot.elf"


def build_netboot(out: Path = DEFAULT_OUT) -> Path:
    """The loader's ELF, rebuilt when a source is newer."""
    inputs = [*SOURCES, LINKER_SCRIPT, KERNEL_DIR / "nic.h", Path(__file__)]
    if out.exists() and all(out.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return out
    args = [*guestbuild.CFLAGS, "-Os", f"-I{KERNEL_DIR}", f"-Wl,-T,{LINKER_SCRIPT}", "-Wl,--build-id=none",
            *(str(s) for s in SOURCES)]
    guestbuild.compile_to(out, args, "building the network boot loader")
    return out
