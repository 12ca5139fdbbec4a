"""Build the Psyche kernel ELF from the C and assembly sources in this directory.

The kernel is compiled with the C compiler bundled in the ``ziglang`` PyPI
package (clang) for RV32IMA + Zicsr + Zifencei, with full debug information
and frame pointers, and linked with ``kernel.ld``.  The user programs of
``psyche/user/`` are built first and carried in the image's read-only data
(``userprogs.S``, generated next to the ELF).

Usage::

    python -m psyche.kernel.build [OUT]      # builds if stale, prints the path
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

from psyche.guestbuild import PSYCHE_CFLAGS, GuestBuildError, compile_to
from psyche.user.build import build_user_programs, user_inputs, write_program_table

KERNEL_DIR = Path(__file__).resolve().parent
REPO_ROOT = KERNEL_DIR.parent.parent
LINKER_SCRIPT = KERNEL_DIR / "kernel.ld"

#: Where `psyche build`, scripts/run and the tests put the kernel.
DEFAULT_KERNEL_ELF = REPO_ROOT / "build" / "kernel" / "psyche.elf"

#: Virtual address the kernel is linked at, and where its image sits in the king's RAM.
KERNEL_VBASE = 0xC000_0000
KERNEL_PBASE = 0x8000_0000

CFLAGS = (*PSYCHE_CFLAGS, "-mcmodel=medany", "-fno-pic")


class KernelBuildError(RuntimeError):
    """Compiling or linking the kernel failed; the message holds the compiler's output."""


def kernel_sources() -> list[Path]:
    """The files compiled into the kernel: every ``*.c`` and ``*.S`` here."""
    return sorted([*KERNEL_DIR.glob("*.c"), *KERNEL_DIR.glob("*.S")])


def kernel_inputs() -> list[Path]:
    """Everything the ELF depends on: sources, headers, linker script, user programs, this module."""
    return sorted([*kernel_sources(), *KERNEL_DIR.glob("*.h"), *KERNEL_DIR.glob("uapi/*.h"),
                   LINKER_SCRIPT, Path(__file__), *user_inputs()])


def is_stale(out: Path) -> bool:
    """True if ``out`` is missing or older than any kernel input."""
    if not out.exists():
        return True
    built = out.stat().st_mtime
    return any(p.stat().st_mtime >= built for p in kernel_inputs())


def build_kernel(out: Path | None = None) -> Path:
    """Build the kernel into ``out`` (default DEFAULT_KERNEL_ELF) unless it is up to date.

    Returns the ELF's path.  Raises KernelBuildError with the compiler's
    messages when the build fails; a failed build leaves any previous ELF alone.
    """
    out = Path(out) if out is not None else DEFAULT_KERNEL_ELF
    if not is_stale(out):
        return out
    # Two processes that find it stale at once (pytest-xdist workers, a test run beside
    # `psyche up`) would build the same user programs into the same files: one at a time,
    # and the second finds the first's kernel up to date.
    out.parent.mkdir(parents=True, exist_ok=True)
    with (out.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_stale(out):
            return out
        _build(out)
    return out


def _build(out: Path) -> None:
    table = out.parent / "userprogs.S"
    try:
        write_program_table(build_user_programs(out.parent.parent / "user"), table)
    except GuestBuildError as exc:
        raise KernelBuildError(str(exc)) from exc
    args = [
        *CFLAGS,
        f"-I{KERNEL_DIR}",
        f"-Wl,-T,{LINKER_SCRIPT}",
        "-Wl,--entry=_entry_phys",  # zig's driver would ask for _start otherwise
        "-Wl,--build-id=none",
        *(str(s) for s in kernel_sources()),
        str(table),
    ]
    try:
        warnings = compile_to(out, args, "building the kernel")
    except GuestBuildError as exc:
        raise KernelBuildError(str(exc)) from exc
    if warnings.strip():
        print(warnings, end="", file=sys.stderr)  # the kernel should have none


def phys_of(vaddr: int) -> int:
    """Physical address in the king's RAM of a kernel virtual address (as loaded)."""
    if not KERNEL_VBASE <= vaddr < KERNEL_VBASE + 0x40_0000:
        raise ValueError(f"{vaddr:#x} is not in the kernel's local window")
    return vaddr - KERNEL_VBASE + KERNEL_PBASE


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else None
    try:
        path = build_kernel(out)
    except KernelBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
