"""gdb on a Psyche node behaves as gdb on QEMU's gdbstub: one test per scenario.

Each scenario (conformance_scenarios.py) runs through real gdb-multiarch against QEMU
and against the mux, on the same guest ELF, both started halted; the two transcripts
must be equal once the deliberate differences (docs/debug-semantics.md, filters in
conformance_run.DIFFERENCES) are filtered out.  The two targets run side by side.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import conformance_guest
import conformance_run
import pytest
from conformance_run import GDB, KINDS, QEMU, Spares
from conformance_scenarios import DELIBERATE, SCENARIOS, Scenario

pytestmark = pytest.mark.conformance
DOC = Path(__file__).resolve().parents[2] / "docs" / "debug-semantics.md"


@pytest.fixture(scope="module")
def spares() -> Iterator[Spares]:
    pool = Spares()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def guests() -> dict[str, Path]:
    return {name: conformance_guest.build(name) for name in conformance_guest.SOURCES}


def _param(s: Scenario) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=s.xfail)] if s.xfail else []
    return pytest.param(s, id=s.name, marks=marks)


def test_every_difference_is_documented() -> None:
    """Each filter and each deliberate difference names a heading of the doc's list."""
    text = DOC.read_text()
    section = text.split("## Deliberate differences from QEMU", 1)[1]
    headings = set(re.findall(r"^### (.+)$", section, re.MULTILINE))
    named = {d.doc for d in conformance_run.DIFFERENCES} | DELIBERATE
    assert named <= headings, f"not in docs/debug-semantics.md: {sorted(named - headings)}"


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.skipif(GDB is None, reason="gdb-multiarch is not installed")
@pytest.mark.skipif(QEMU is None, reason="qemu-system-riscv32 is not installed (apt: qemu-system-misc)")
@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
def test_same_transcript_as_qemu(scenario: Scenario, spares: Spares, guests: dict[str, Path]) -> None:
    elf = guests[scenario.guest]
    targets: dict[str, conformance_run.Target] = {}
    try:
        for kind in KINDS:
            targets[kind] = spares.take(kind, elf)
        with ThreadPoolExecutor(len(KINDS)) as pool:
            futures = {kind: pool.submit(conformance_run.run_scenario, elf, targets[kind], scenario.sessions,
                                         scenario.watchdog, 60.0) for kind in KINDS}
            transcripts = {kind: future.result() for kind, future in futures.items()}
    finally:
        for target in targets.values():
            target.stop()
    diff = "".join(difflib.unified_diff(transcripts["qemu"].splitlines(keepends=True),
                                        transcripts["mux"].splitlines(keepends=True), "qemu", "mux"))
    if diff:
        logs = "".join(f"\n--- {kind}: transcript\n{transcripts[kind]}\n--- {kind}: its output\n"
                       f"{targets[kind].output()[-3000:]}" for kind in KINDS)
        pytest.fail(f"gdb on the mux differs from gdb on QEMU:\n{diff}{logs}", pytrace=False)
