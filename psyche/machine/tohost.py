"""The riscv-tests `tohost` convention: a guest program reports its result.

Writing 1 to `tohost` means pass; `(n << 1) | 1` means test n failed.  The
page holding `tohost` is watched, so the store that writes it stops the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from psyche.machine.cpu import WATCH_IGNORE, WATCH_STOP_AFTER
from psyche.machine.elf import ElfImage
from psyche.machine.machine import Machine


@dataclass
class TohostResult:
    value: int

    @property
    def passed(self) -> bool:
        return self.value == 1

    @property
    def failed_test(self) -> int | None:
        return None if self.passed else self.value >> 1

    def describe(self) -> str:
        if self.passed:
            return "PASS"
        return f"FAIL: test {self.failed_test} failed (tohost = {self.value:#x})"


class TohostMonitor:
    def __init__(self, machine: Machine, image: ElfImage) -> None:
        address = image.symbol("tohost")
        if address is None:
            raise ValueError(
                f"{image.path}: no `tohost` symbol; it does not follow the riscv-tests convention")
        self.address = address
        self.machine = machine
        self.result: TohostResult | None = None
        machine.mem.watch_page(address >> 12)
        machine.add_watch_hook(self._on_access)

    def _on_access(self, node: int, paddr: int, size: int, is_write: bool, value: int) -> int:
        """A non-zero word written to tohost ends the run once the store is done."""
        if not is_write or size != 4 or paddr != self.address or value == 0:
            return WATCH_IGNORE
        self.result = TohostResult(value)
        return WATCH_STOP_AFTER
