"""The `psyche` command: run-elf's exit codes, machine --until, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from psyche import guestbuild

PSYCHE = [sys.executable, "-m", "psyche.cli"]


def psyche(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PSYCHE, *args], capture_output=True, text=True, timeout=timeout)


def _program(tmp_path: Path, name: str, body: str) -> Path:
    source = tmp_path / f"{name}.S"
    source.write_text('#include "test.h"\n        .text\n        .globl test_main\ntest_main:\n' + body)
    return guestbuild.build_program([source], tmp_path / f"{name}.elf")


def test_run_elf_passes(guest_programs) -> None:
    result = psyche("run-elf", str(guest_programs["rv32i_alu"]))
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout


def test_run_elf_names_the_failing_test(tmp_path: Path) -> None:
    body = "        li a0, 5\n        CHECK_EQ 7, a0, 6\n        li a0, 0\n        ret\n"
    elf = _program(tmp_path, "fails", body)
    result = psyche("run-elf", str(elf))
    assert result.returncode == 1
    assert "test 7 failed" in result.stdout


def test_run_elf_gives_up_after_max_instructions(tmp_path: Path) -> None:
    elf = _program(tmp_path, "spins", "1:      j 1b\n")
    result = psyche("run-elf", str(elf), "--max-instructions", "5000")
    assert result.returncode == 3
    assert "no result after" in result.stderr


def test_run_elf_reports_a_trap_loop(tmp_path: Path) -> None:
    # mtvec points at unmapped memory: every trap faults fetching its handler.
    elf = _program(tmp_path, "loops", "        li t0, 0x40000000\n        csrw mtvec, t0\n        ecall\n")
    result = psyche("run-elf", str(elf))
    assert result.returncode == 4
    assert "trap loop" in result.stderr and "mcause 0x1" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello, not an elf\n", "not an ELF file"), (None, "EM_X86_64")],
)
def test_run_elf_rejects_bad_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad"
    if content is None:
        path = Path(sys.executable).resolve()
    else:
        path.write_bytes(content)
    result = psyche("run-elf", str(path))
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize("nodes", ["0", "129", "-3"])
def test_machine_rejects_node_counts_out_of_range(guest_programs, nodes: str) -> None:
    result = psyche("machine", "--nodes", nodes, "--kernel", str(guest_programs["rv32i_alu"]),
                    "--console", "null", "--debug-line", "null")
    assert result.returncode == 2
    assert "out of range: 1 to 128" in result.stderr


def test_machine_until_matches_console_output(machine_guest) -> None:
    result = psyche("machine", "--nodes", "3", "--kernel", str(machine_guest["echo"]),
                    "--until", r"machine of 3 nodes", "--max-seconds", "20",
                    "--console", "null", "--debug-line", "null")
    assert result.returncode == 0, result.stderr
    assert "hello from a machine of 3 nodes" in result.stdout


def test_machine_until_timeout_shows_console_tail(machine_guest) -> None:
    result = psyche("machine", "--kernel", str(machine_guest["echo"]), "--until", "never printed",
                    "--max-seconds", "1", "--console", "null", "--debug-line", "null", "--quiet")
    assert result.returncode == 1
    assert "no match for 'never printed'" in result.stderr
    assert "hello from a machine of 1 nodes" in result.stderr
