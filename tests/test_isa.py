"""The ISA, trap, interrupt, delegation and Sv32 guest programs pass on one node."""

from __future__ import annotations

from pathlib import Path

import pytest
from machine_util import boot, run_to_result

from psyche import guestbuild

ISA_TESTS = sorted(p.stem for p in guestbuild.GUEST_DIR.glob("*.S"))


@pytest.mark.parametrize("name", ISA_TESTS)
def test_guest_program_passes(guest_programs: dict[str, Path], name: str) -> None:
    machine, monitor = boot(guest_programs[name])
    result = run_to_result(machine, monitor)
    assert result.passed, result.describe()
