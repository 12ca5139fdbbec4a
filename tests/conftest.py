"""Shared fixtures: guest programs built once per session, machines to run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from psyche import guestbuild
from psyche.kernel.build import build_kernel

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "guest"
MACHINE_GUESTS = REPO / "tests" / "guest" / "machine"


@pytest.fixture(scope="session")
def guest_programs() -> dict[str, Path]:
    """The ISA test programs and the benchmark, by name."""
    return guestbuild.build_all(BUILD)


@pytest.fixture(scope="session")
def kernel_elf() -> Path:
    """The Psyche kernel (build/kernel/psyche.elf), rebuilt once per session if stale."""
    return build_kernel()


@pytest.fixture(scope="session")
def machine_guest() -> MachineGuests:
    return MachineGuests()


class MachineGuests:
    """Builds the machine-level guest programs (tests/guest/machine/*.S or *.c) on demand."""

    def __getitem__(self, name: str) -> Path:
        source = MACHINE_GUESTS / f"{name}.S"
        if not source.exists():
            source = source.with_suffix(".c")
        return guestbuild.build_program([source], BUILD / f"machine-{name}.elf")
