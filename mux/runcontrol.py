"""One gdb's resumes of one node, with the debug semantics of hardware.

`RunControl` turns gdb's continue, step, reverse step or continue and ctrl-C into
lld requests on the node's handle, and says what came of each: the stop to report
now (a `p.Status`), or that the node runs (its stop goes to the front end's
`report_stop` when it comes), or that it was refused.  Building replies from stops
is the gdb front end's (`mux.gdb`).

The debug semantics (docs/debug-semantics.md says them for users):

* A resume whose pc holds one of gdb's breakpoints stops at once, before the
  instruction, as hardware does (gdb removes the breakpoint it steps over, so
  one still inserted there is meant to be hit: `jump *$pc`).
* gdb 13 single-steps RISC-V in software: a breakpoint at every next pc of the
  instruction and a continue.  Run control recognises that pattern and runs it
  as one lld STEP, with interrupts masked unless `monitor step-interrupts on`
  (`_software_step`).  So `stepi` is exact and costs one round trip, a step on
  `mret`/`sret` stops where the return goes, and a step into `ecall` or a
  faulting instruction runs the handler as it does on QEMU unless
  `monitor step-traps on`.
* A breakpoint lld holds for someone else (the machine's panic stop, the
  console) stops a continue and is stepped over, masked, when the node resumes
  from it; gdb's requests never remove it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Set as AbstractSet
from typing import Protocol

from lld import protocol as p
from mux.breakpoints import GdbBreakpoints
from mux.link import LinkError
from mux.node import PC, NodeError, NodeHandle
from mux.threads import NodeThreads
from psyche import rv32


@dataclasses.dataclass
class StepSettings:
    """How a single step treats traps, set with `monitor step-interrupts` and `monitor step-traps`."""

    #: Take a pending interrupt: the step ends at the first instruction of its handler.
    interrupts: bool = False
    #: Stop at the trap vector when the stepped instruction traps (ecall, a fault), instead of
    #: running the handler to where gdb expects the step to end, as QEMU does.
    traps: bool = False


#: Where user space ends (PSY_USER_END): a breakpoint below it is in user code.
USER_END = 0x7FC0_0000


@dataclasses.dataclass
class DomainScope:
    """Which protection domains gdb's breakpoints in user code stop in (`monitor domains`).

    User code has one address in the whole machine, but a realm's code runs in every domain
    that opened it for execution (a library, shared code).  A breakpoint there stops only
    while a domain of `domains` runs; in any other it is stepped over without gdb knowing
    (`skipped` counts those).  None: every domain.  Kernel breakpoints are never filtered.
    """

    domains: frozenset[int] | None = None
    skipped: int = 0


class Resumed(enum.Enum):
    """What came of a resume that has no stop to report now."""

    #: The node runs: its stop goes to the front end's `report_stop` when it comes.
    RUNNING = enum.auto()
    #: The node did not run (why, if lld said, is on gdb's console already).
    REFUSED = enum.auto()


class Front(Protocol):
    """What run control needs of the gdb front end over it."""

    def tell(self, text: str) -> None:
        """Show text on gdb's console."""

    async def report_stop(self, status: p.Status) -> None:
        """Send gdb the stop of a node that ran (after RUNNING, or `follow`)."""

    def report_lost(self, why: str) -> None:
        """Waiting for the stop of a node that ran failed: end gdb's wait all the same."""


class RunControl:
    """The resumes of one gdb on one node (the module's docstring says how they behave)."""

    def __init__(self, handle: NodeHandle, threads: NodeThreads, breakpoints: GdbBreakpoints,
                 front: Front, *, step: StepSettings, scope: DomainScope) -> None:
        self.handle = handle
        self.threads = threads
        self.breakpoints = breakpoints
        self.front = front
        self.step = step
        self.scope = scope
        self._running: asyncio.Task[None] | None = None
        #: The signal a stop this gdb asked for is reported with (a ctrl-C's), while one is asked.
        self._interrupted: int | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    def take_interrupt(self) -> int | None:
        """The signal of the stop a ctrl-C asked for (None if none was asked), no longer asked."""
        signal, self._interrupted = self._interrupted, None
        return signal

    async def synced(self) -> bool:
        """Make lld hold gdb's breakpoints, telling gdb's console of a refusal; False if there was one."""
        failure = await self.breakpoints.sync()
        if failure is not None:
            self.front.tell(f"mux: {failure}\n")
        return failure is None

    async def resume(self, addr: int | None, *, step: bool) -> p.Status | Resumed:
        outcome = await self._resumed(addr, step=step)
        if outcome is Resumed.REFUSED:
            self._interrupted = None   # refused: the node did not run, and a ctrl-C has nothing to stop
        return outcome

    async def _resumed(self, addr: int | None, *, step: bool) -> p.Status | Resumed:
        if addr is not None and (addr > rv32.M32 or not await self.handle.write_registers([(PC, addr)])):
            return Resumed.REFUSED
        status = self.handle.status or await self.handle.refresh()
        if not status.stopped:
            return Resumed.REFUSED
        if step:
            # A hardware single step (gdb 13 never asks for one on RISC-V; other clients do).
            return await self.handle.step(self.step.interrupts)
        return await self._continue(status)

    async def reverse(self, op: int) -> p.Status | None:
        """bs and bc: the whole machine goes back in its history (lld's REVERSE, lld/history.py).

        The stop, or None: a machine that keeps no history refuses (with lld's reason on
        gdb's console: psyche machine --reverse)."""
        status = self.handle.status or await self.handle.refresh()
        if not status.stopped:
            return None
        if op == p.REVERSE_CONTINUE and not await self.synced():
            return None   # gdb's breakpoints must be in lld: they are what bc looks for
        reply = await self.handle.change(lambda gen: p.Reverse(gen, op, expedite=True))
        self.handle.forget()
        if not reply.ok or not isinstance(reply.value, p.Status):
            # Why, on gdb's console (bs and bc are resumes: console output may come first).
            why = reply.error.message or reply.error.describe() if reply.error is not None else "no status"
            self.front.tell(f"mux: reverse execution: {why}\n")
            return None
        status = reply.value
        self.handle.note(status)
        return status

    async def _continue(self, status: p.Status) -> p.Status | Resumed:
        """gdb's continue, with the debug semantics of hardware (see the module's docstring)."""
        pc = status.pc
        if pc in self.breakpoints and not await self._outside_scope(status, resuming=True):
            return await self._breakpoint_stop(status)
        if status.flags & p.FLAG_WAITING:
            return await self._run()   # asleep in WFI: a step would wake it
        insn = await self._instruction(pc)
        if insn is not None and self._is_software_step(insn, pc):
            return await self._software_step(insn, status)
        if not await self.synced():
            return Resumed.REFUSED
        known = await self.handle.lld_breakpoints()
        if pc in known:
            # Someone else's breakpoint (the panic stop, say), which the node rests on: the
            # handle gets past it before anything else can happen, as gdb does over its own.
            stopped = await self.handle.resume_off_breakpoint()
            if stopped is not None:
                return await self._stop_after_step(stopped)
            await self._wait_for_stop()
            return Resumed.RUNNING
        if insn is not None and not rv32.is_wfi(insn) and self._may_reach(insn, pc, known.keys(),
                                                                          self.handle.cached_registers):
            # One instruction may end this continue: a STEP, taking a pending interrupt as a
            # running node would, costs one round trip where RESUME and a poll cost two.
            stepped = await self.handle.step(True)
            if stepped.reason != p.REASON_STEP or stepped.pc in known:
                return await self._stop_after_step(stepped)
        return await self._run(synced=True)

    async def _stop_after_step(self, status: p.Status) -> p.Status | Resumed:
        """The stop for a STEP that ended a continue: its own reason, or the breakpoint it met
        (unless that is one of gdb's in user code, met outside the domains gdb asked for: then
        the continue goes on)."""
        if status.reason != p.REASON_STEP:
            return status
        if await self._outside_scope(status):
            stopped = await self.handle.resume_off_breakpoint()
            if stopped is not None:
                return await self._stop_after_step(stopped)
            await self._wait_for_stop()
            return Resumed.RUNNING
        return await self._breakpoint_stop(status)

    async def _outside_scope(self, status: p.Status, resuming: bool = False) -> bool:
        """True (and counted) for a stop at one of gdb's user-code breakpoints while a domain
        runs that `monitor domains` left out; the caller steps over it and runs on.  resuming:
        the node rests on the breakpoint and gdb resumes it (a resume there would stop at once)."""
        domains = self.scope.domains
        if (domains is None or not status.stopped or status.pc not in self.breakpoints
                or status.pc >= USER_END):
            return False
        if not resuming and status.reason not in (p.REASON_BREAKPOINT, p.REASON_STEP):
            return False
        domain = await self.threads.current_domain()
        if domain is None or domain in domains:
            return False   # (a domain it cannot tell: stop, rather than miss one asked for)
        self.scope.skipped += 1
        return True

    async def _instruction(self, pc: int) -> int | None:
        code = await self.handle.memory().read(pc, 4)
        return None if code is None or len(code) < 4 else int.from_bytes(code, "little")

    def _is_software_step(self, insn: int, pc: int) -> bool:
        """True if this continue is gdb's software single step of the instruction at pc.

        gdb plants a breakpoint at every pc its own decoder says the instruction may
        go to (pc + 4 for SYSTEM instructions, whose real destination it cannot know)
        and continues.  A continue for which every one of those pcs holds one of gdb's
        breakpoints can only end after that one instruction, unless it traps; running
        it as one STEP is exact.  WFI is left to run: the hart must sleep until an
        interrupt wakes it, as it would on QEMU.

        A continue from an instruction whose only successor holds one of gdb's breakpoints
        sends the very same packets as a stepi onto it, so it is run as a step too, and
        stops there even where `monitor domains` would filter the hit: a stepi must not
        run away.
        """
        if rv32.is_wfi(insn):
            return False
        nexts = rv32.next_pcs(insn, pc, self.handle.cached_registers)
        if nexts is None:
            if insn & 0x7F != rv32.OP_SYSTEM:
                return False   # a jalr without the registers: do not guess
            nexts = frozenset({(pc + 4) & rv32.M32})
        return self.breakpoints.covers(nexts)

    @staticmethod
    def _may_reach(insn: int, pc: int, breakpoints: AbstractSet[int], registers: list[int] | None) -> bool:
        """False if the instruction at pc surely leads to none of `breakpoints` (no STEP needed)."""
        if not breakpoints:
            return False
        nexts = rv32.next_pcs(insn, pc, registers)
        return nexts is None or bool(nexts & breakpoints)

    async def _software_step(self, insn: int, before: p.Status) -> p.Status | Resumed:
        """gdb's software single step of insn, as one lld STEP (see _is_software_step)."""
        stepped = await self.handle.step(self.step.interrupts)
        if stepped.reason != p.REASON_STEP:
            return stepped   # a watchpoint, a trap loop
        known = await self.handle.lld_breakpoints()
        if stepped.pc in self.breakpoints or stepped.pc in known:
            return await self._breakpoint_stop(stepped)
        if rv32.is_trap_return(insn) or stepped.instret != before.instret:
            return stepped   # where mret/sret went, which gdb cannot know
        # The step entered a trap handler instead of completing the instruction.
        if self.step.traps or await self._entered_interrupt(stepped):
            return stepped   # at the vector, as a hardware single step stops
        return await self._continue(stepped)   # ecall, a fault: the handler runs, as on QEMU

    async def _entered_interrupt(self, status: p.Status) -> bool:
        cause_csr = rv32.CSR_MCAUSE if status.priv == 3 else rv32.CSR_SCAUSE
        cause = await self.handle.read_register(p.REG_CSR_BASE + cause_csr)
        return cause is not None and bool(cause & rv32.CAUSE_INTERRUPT)

    async def _breakpoint_stop(self, status: p.Status) -> p.Status:
        """The stop of a node resting on a breakpoint: gdb's, or the kind lld holds there."""
        kind = (await self.handle.lld_breakpoints()).get(status.pc)
        theirs = kind == p.BP_PANIC and status.pc not in self.breakpoints
        reason = p.REASON_PANIC if theirs else p.REASON_BREAKPOINT
        return dataclasses.replace(status, reason=reason)

    async def _run(self, *, synced: bool = False) -> p.Status | Resumed:
        """RESUME with gdb's breakpoints in lld (`synced`: they are, just now).  A stop lld's
        reply brought (the node met a breakpoint in its first round) is the one to report now,
        unless `monitor domains` may filter it: _report_stop reports every other, and runs on
        from a filtered hit."""
        if not synced and not await self.synced():
            return Resumed.REFUSED
        status = await self.handle.resume()
        if status.stopped and self.scope.domains is None:
            return status
        await self._wait_for_stop()
        return Resumed.RUNNING

    async def _wait_for_stop(self) -> None:
        """The node runs: its stop is reported when the handle's poller sees it stop.

        A ctrl-C that came while this resume was still in hand (gdb may send it right
        behind the continue) could not stop a node that was not yet running: it stops
        it now, and the stop is reported as the ctrl-C's.
        """
        self._running = asyncio.create_task(self._report_stop())
        if self._interrupted is not None:
            await self.handle.stop()

    async def follow(self) -> None:
        """Report the next stop of a node that runs without a resume of this gdb's (it ran
        before gdb came), with gdb's breakpoints in lld from now on."""
        if self._running is None:
            await self.synced()
            self._running = asyncio.create_task(self._report_stop())

    async def _report_stop(self) -> None:
        try:
            status = await self.handle.wait_for_stop()
            while await self._outside_scope(status):
                if self._interrupted is not None:   # a ctrl-C came: this stop is its
                    status = dataclasses.replace(status, reason=p.REASON_REQUESTED)
                    break
                status = await self.handle.resume_off_breakpoint() or await self.handle.wait_for_stop()
            await self.front.report_stop(status)
        except (LinkError, NodeError) as e:
            self.front.report_lost(str(e))
        finally:
            self._running = None

    async def interrupt(self, signal: int) -> None:
        """gdb's ctrl-C: stop the node; the waiting continue reports the stop, with signal.

        Called only while the node runs for this gdb or a resume of its is in hand
        (the server drops any other ctrl-C, as QEMU does).  A resume in hand has not
        started the node yet: it stops it itself once it has (_wait_for_stop).  (The
        whole-machine port stops nodes with signal 0, as gdb's non-stop `t` asks.)  The
        first signal asked stays: a later, quieter request does not hide a ctrl-C.
        """
        if self._interrupted is None:
            self._interrupted = signal
        if self._running is None:
            return
        try:
            await self.handle.stop()
        except LinkError as e:
            self.front.tell(f"mux: {e}\n")

    def stop_waiting(self) -> None:
        """Report no stop any more (gdb detached or went away); the node stays as it is."""
        if self._running is not None:
            self._running.cancel()
            self._running = None   # (a task cancelled before its first step never reaches its finally)
