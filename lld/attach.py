"""Putting lld beneath a machine: one NodeLld per node, the king on the debug line.

    lld = attach(machine, debug_line)
    ...between rounds: lld.service()

`service()` is the only entry point from the simulator loop (the Runner calls
it at each of its host-line service points); nothing in lld runs during a
round except the watch hook, which the CPU calls on accesses to watched pages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lld import protocol as p
from lld.king import King
from lld.stub import NodeLld
from lld.target import NodeTarget, TargetError
from psyche.machine.cpu import WATCH_IGNORE, WATCH_STOP_BEFORE
from psyche.machine.hostline import HostLine, NullLine
from psyche.machine.machine import Machine

if TYPE_CHECKING:
    from lld.history import History


class Lld:
    """All the lld instances of one machine, and the king's routing."""

    def __init__(self, machine: Machine, line: HostLine | None = None, *, mailbox_limit: int = 16) -> None:
        self.machine = machine
        self.line: HostLine = line if line is not None else NullLine()
        self.nodes = [NodeLld(NodeTarget(machine, i), mailbox_limit) for i in range(len(machine.nodes))]
        self.king = King(self.line, self.nodes)
        #: The machine's history, when reverse execution is on (History.attach, lld/history/, sets it).
        self.history: History | None = None
        machine.add_watch_hook(self._watch)

    def _watch(self, node: int, paddr: int, size: int, is_write: bool, value: int) -> int:
        # Each node's watchpoints are its own: another node touching the range does not stop.
        # gdb expects RISC-V watchpoints to stop before the access (it then steps over it).
        return WATCH_STOP_BEFORE if self.nodes[node].on_access(paddr, size, is_write) else WATCH_IGNORE

    def service(self) -> None:
        self.king.service()

    def busy(self) -> bool:
        """True when a forwarded frame or a reply waits for the next boundary: the caller should
        run one round and come back without sleeping."""
        return self.king.busy()

    def heard_at(self) -> float:
        """When the debug line last delivered bytes (time.monotonic(); -inf if never): the
        runner's and the stop reporter's sign that a debugger is talking."""
        return self.king.heard_at

    def last_reply_bytes(self) -> int:
        """Length of the last reply sent on the debug line (a large one is a bulk transfer)."""
        return self.king.last_reply_bytes

    def fileno(self) -> int | None:
        """The debug line's descriptor, for a runner that polls it between rounds."""
        return self.line.fileno()

    def arm_panic(self, pc: int) -> None:
        """Make a stop at pc, the kernel's panic entry, report REASON_PANIC on every node."""
        for node in self.nodes:
            try:
                node.set_breakpoint(pc & 0xFFFFFFFF, p.BP_PANIC)
            except TargetError as e:
                raise ValueError(f"cannot arm the panic breakpoint at {pc:#x}: {e}") from e


def attach(machine: Machine, line: HostLine | None = None, **kwargs: int) -> Lld:
    return Lld(machine, line, **kwargs)
