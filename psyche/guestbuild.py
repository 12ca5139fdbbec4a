"""Build the bare-metal RV32 guest test programs under ``tests/guest/``.

The programs are compiled with the C compiler bundled in the ``ziglang``
PyPI package (clang), for RV32IMA + Zicsr + Zifencei without the C
extension, and linked with ``tests/guest/common/link.ld`` together with the
common start-up code ``tests/guest/common/crt0.S``.

Usage::

    python -m psyche.guestbuild [OUT_DIR]     # builds everything, prints paths
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GUEST_DIR = REPO_ROOT / "tests" / "guest"
COMMON_DIR = GUEST_DIR / "common"
LINKER_SCRIPT = COMMON_DIR / "link.ld"
CRT0 = COMMON_DIR / "crt0.S"
BENCH_SOURCES = (GUEST_DIR / "bench" / "cpubound.c",)
# Runs the same benchmark in S mode under Sv32 translation.
PAGED_BENCH_START = GUEST_DIR / "bench" / "paged.S"
DEFAULT_OUT_DIR = REPO_ROOT / "build" / "guest"

#: -mcpu value: generic RV32 plus M, A, Zicsr, Zifencei (no C, no F/D).
MCPU = "generic_rv32+m+a+zicsr+zifencei"

CFLAGS = (
    "-target",
    "riscv32-freestanding-none",
    f"-mcpu={MCPU}",
    "-mabi=ilp32",
    "-nostdlib",
    "-ffreestanding",
    "-g",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-fno-stack-protector",
    # pc-relative addressing: a program copied into another node's RAM runs there.
    "-mcmodel=medany",
    "-Wall",
)


#: The flags the Psyche kernel and its user programs share: freestanding C built for
#: source-level debugging (-O1, frame pointers, no builtins a debugger cannot step into).
#: Each adds its code model: the kernel medany without PIC, user programs PIE.
PSYCHE_CFLAGS = (
    "-target",
    "riscv32-freestanding-none",
    f"-mcpu={MCPU}",
    "-mabi=ilp32",
    "-mno-relax",
    "-nostdlib",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-fno-omit-frame-pointer",
    "-g",
    "-O1",
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
)


class GuestBuildError(RuntimeError):
    """Compiling or linking a guest program failed."""


def compiler_command() -> list[str]:
    """The command that runs zig's C compiler driver (``zig cc``).

    Uses the running interpreter if it has the ``ziglang`` package, else the
    project's virtual environment.
    """
    python = sys.executable
    if importlib.util.find_spec("ziglang") is None:
        venv_python = REPO_ROOT / ".venv" / "bin" / "python"
        if venv_python.exists():
            python = str(venv_python)
    return [python, "-m", "ziglang", "cc"]


def _common_inputs() -> list[Path]:
    """Files every program depends on (headers, crt0, linker script)."""
    return sorted(p for p in COMMON_DIR.iterdir() if p.is_file())


def _up_to_date(out: Path, inputs: list[Path]) -> bool:
    if not out.exists():
        return False
    out_mtime = out.stat().st_mtime
    return all(p.stat().st_mtime < out_mtime for p in inputs)


def build_program(
    sources: list[Path], out: Path, *, opt: str = "-O2", defines: tuple[str, ...] = ()
) -> Path:
    """Compile and link ``sources`` (+ common crt0) into the ELF file ``out``.

    The build is skipped when ``out`` is newer than every source, every file
    in ``tests/guest/common/`` and this module. Raises GuestBuildError with
    the compiler's output if the compiler fails.
    """
    sources = [Path(s) for s in sources]
    out = Path(out)
    for src in sources:
        if not src.is_file():
            raise GuestBuildError(f"no such guest source: {src}")
    inputs = [*sources, *_common_inputs(), Path(__file__)]
    if _up_to_date(out, inputs):
        return out
    args = [
        *CFLAGS,
        opt,
        *(f"-D{d}" for d in defines),
        f"-I{COMMON_DIR}",
        f"-Wl,-T,{LINKER_SCRIPT}",
        "-Wl,--build-id=none",
        str(CRT0),
        *(str(s) for s in sources),
    ]
    names = ", ".join(s.name for s in sources)
    compile_to(out, args, f"building {out.name} from {names}")
    return out


def compile_to(out: Path, args: list[str], what: str) -> str:
    """Run zig cc with `args`, writing `out` atomically; returns the compiler's warnings.

    A failed build raises GuestBuildError naming `what` with the compiler's
    output, and leaves any previous `out` alone.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        result = subprocess.run([*compiler_command(), *args, "-o", str(tmp)],
                                capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GuestBuildError(f"cannot run the compiler: {exc}") from exc
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise GuestBuildError(
            f"{what} failed (exit status {result.returncode}):\n{result.stderr}{result.stdout}")
    os.replace(tmp, out)  # atomic: concurrent builds never see half a file
    return result.stderr


def guest_test_sources() -> list[Path]:
    """All assembly test programs: ``tests/guest/*.S``."""
    return sorted(GUEST_DIR.glob("*.S"))


def build_all(out_dir: Path = DEFAULT_OUT_DIR) -> dict[str, Path]:
    """Build every ``tests/guest/*.S`` test and the benchmark into ``out_dir``.

    Returns a mapping from program name (file stem, e.g. ``"rv32i_alu"`` or
    ``"cpubound"``) to the ELF path.
    """
    out_dir = Path(out_dir)
    built: dict[str, Path] = {}
    for src in guest_test_sources():
        built[src.stem] = build_program([src], out_dir / f"{src.stem}.elf")
    bench_name = BENCH_SOURCES[0].stem
    built[bench_name] = build_program(list(BENCH_SOURCES), out_dir / f"{bench_name}.elf")
    built[f"{bench_name}_paged"] = build_program(
        [*BENCH_SOURCES, PAGED_BENCH_START], out_dir / f"{bench_name}_paged.elf", defines=("PAGED",)
    )
    return built


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT_DIR
    try:
        programs = build_all(out_dir)
    except GuestBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    for name, path in programs.items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
