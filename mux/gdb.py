"""One gdb on one node: the gdb remote protocol's requests mapped onto a node handle.

A `GdbSession` knows nothing of sockets: the transport feeds it parsed requests
and gets back reply payloads (or None when gdb expects none yet, as while the
node runs after a continue); stop replies that come later go out through `send`.
What it knows of the node (status, caches, lld's breakpoints) lives in the
node's `NodeHandle`, shared with the monitor, the console and later sessions.

Debug semantics follow hardware (docs/debug-semantics.md says it for users):

* gdb's breakpoints are gdb's to insert and remove, but only a running node
  needs them in lld: Z0/z0 are answered at once, and lld is brought in line
  with them just before the node runs (`mux.breakpoints`).  gdb removes every
  breakpoint at every stop and inserts them again at every resume, so most of
  that traffic cancels out and never reaches the line.
* A resume whose pc holds one of gdb's breakpoints stops at once, before the
  instruction, as hardware does (gdb removes the breakpoint it steps over, so
  one still inserted there is meant to be hit: `jump *$pc`).
* gdb 13 single-steps RISC-V in software: a breakpoint at every next pc of the
  instruction and a continue.  The session recognises that pattern and runs it
  as one lld STEP, with interrupts masked unless `monitor step-interrupts on`
  (`_software_step`).  So `stepi` is exact and costs one round trip, a step on
  `mret`/`sret` stops where the return goes, and a step into `ecall` or a
  faulting instruction runs the handler as it does on QEMU unless
  `monitor step-traps on`.
* gdb's threads are the node's kernel threads (`mux.threads`): the running one
  is live, the others are shown from the context they saved, read-only.  A
  resume always resumes the node, whichever thread gdb names.
* A breakpoint lld holds for someone else (the machine's panic stop, the
  console) stops a continue and is stepped over, masked, when the node resumes
  from it; gdb's requests never remove it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet

from lld import protocol as p
from mux import packets as rsp
from mux import target_xml
from mux.breakpoints import GdbBreakpoints
from mux.link import LinkError
from mux.memory import AddressSpace
from mux.node import PC, NodeError, NodeHandle
from mux.threads import NodeThreads, Thread, threads_xml
from psyche import rv32

# gdb's errno-style error numbers in E replies.
EFAULT = 0x0E
EINVAL = 0x16
EIO = 0x05
SIGSEGV = 0x0B

#: What this front end implements, announced through qSupported and vCont?.
FEATURES = (
    rsp.Feature(b"qXfer:features:read+"),   # the target description (target_xml)
    rsp.Feature(b"qXfer:threads:read+"),    # threads with names and states
    rsp.Feature(b"swbreak+"),
    rsp.Feature(b"hwbreak+"),
    rsp.Feature(b"vContSupported+", vcont=("c", "C", "s", "S")),
    rsp.Feature(b"QStartNoAckMode+", reliable_only=True),
    rsp.Feature(b"ReverseStep+"),        # bs: lld's REVERSE, the machine's history (lld/history.py)
    rsp.Feature(b"ReverseContinue+"),    # bc
)

_WATCH_KINDS = {
    rsp.BreakpointType.WRITE_WATCH: p.WATCH_WRITE,
    rsp.BreakpointType.READ_WATCH: p.WATCH_READ,
    rsp.BreakpointType.ACCESS_WATCH: p.WATCH_ACCESS,
}
_CODE_BREAKPOINTS = (rsp.BreakpointType.SOFTWARE, rsp.BreakpointType.HARDWARE)

Monitor = Callable[["GdbSession", str], Awaitable[str]]


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


def lld_register(regnum: int) -> int | None:
    """lld's number for gdb's register regnum, or None if there is no such register."""
    reg = target_xml.register(regnum)
    if reg is None:
        return None
    if reg.kind is target_xml.RegisterKind.CSR:
        assert reg.csr is not None
        return p.REG_CSR_BASE + reg.csr
    if reg.kind is target_xml.RegisterKind.PRIV:
        return p.REG_PRIV
    return regnum  # x0..x31 and pc (32) share gdb's numbers


class GdbSession:
    def __init__(
        self,
        handle: NodeHandle,
        send: Callable[[bytes], None],
        monitor: Monitor,
        *,
        packet_size: int = 4096,
        no_ack_mode: bool = True,
        threads: NodeThreads | None = None,
    ) -> None:
        self.handle = handle
        self.threads = threads if threads is not None else NodeThreads(handle, None)
        #: The thread gdb selected for registers (Hg); 0: whichever runs.
        self.selected = 0
        self.send = send
        self.monitor = monitor
        self.packet_size = packet_size
        self.no_ack_mode = no_ack_mode
        self.step = StepSettings()
        self.scope = DomainScope()
        #: After a watchpoint stop in the machine's past, name the node that made the access on
        #: gdb's console (the machine port reports the stop on that node's thread instead).
        self.accessor_note = True
        self.breakpoints = GdbBreakpoints(handle)
        self._running: asyncio.Task[None] | None = None
        #: The signal a stop this gdb asked for is reported with (a ctrl-C's), while one is asked.
        self._interrupted: int | None = None

    @property
    def node(self) -> int:
        return self.handle.node

    @property
    def running(self) -> bool:
        return self._running is not None

    # -- requests ------------------------------------------------------------------------

    async def handle_request(self, request: rsp.Request) -> bytes | None:
        """The reply payload for one gdb request; None when the reply comes later or never."""
        reply = self.answer_now(request)
        if reply is not None:
            return reply
        try:
            return await self._handle(request)
        except (LinkError, NodeError) as e:
            return self.failure_reply(request, f"mux: {e}")

    def failure_reply(self, request: rsp.Request, why: str) -> bytes:
        """The reply to a request lld could not serve: one gdb takes as an error, for that packet.

        As gdb-multiarch 13 takes them (docs/failure-modes.md):

        * `?`: a plain stop, S05, never an error: gdb spins forever on an error reply to
          `?`.  Its register read that follows fails, saying why.
        * `g`: `E.reason`, which gdb shows: "Could not read registers; remote failure
          reply 'E.mux: ...'".
        * a resume: gdb waits for a stop reply and shows console output meanwhile: the
          reason, then E05 ("Remote failure reply: E05", and gdb takes the node as stopped).
        * `monitor`: the reason as the command's output.
        * `D`: OK.  The mux lets the node go whatever lld said (the node stays as it was,
          as for a gdb that vanished); an error would leave gdb attached to nothing.
        * anything else: E05 alone.  gdb parses most replies as hex, so console output or
          a text error there would be garbage to it ("Invalid hex digit 116").
        """
        match request:
            case rsp.HaltReason():
                return rsp.stop_reply(rsp.SIGTRAP, thread=self._known_current())
            case rsp.ReadRegisters():
                return b"E." + why.encode("ascii", "replace")
            case rsp.Continue() | rsp.Step() | rsp.VCont():
                self.send(rsp.console_output(f"{why}\n".encode()))
                return rsp.error(EIO)
            case rsp.MonitorCommand():
                self.send(rsp.console_output(f"{why}\n".encode()))
                return rsp.OK
            case rsp.Detach():
                return rsp.OK
        return rsp.error(EIO)

    def answer_now(self, request: rsp.Request) -> bytes | None:  # noqa: C901 - one arm per packet
        """The reply if it needs no waiting for lld (constant answers, the cache), else None.

        A transport may call this as soon as a packet arrives, when no earlier request
        of the same gdb is still being handled, and skip the trip through its queue.
        """
        match request:
            case rsp.QuerySupported():
                return rsp.supported_reply(self.packet_size, FEATURES, reliable=self.no_ack_mode)
            case rsp.StartNoAckMode():
                return rsp.OK if self.no_ack_mode else rsp.EMPTY
            case rsp.ReadRegisters():
                registers = self.handle.cached_registers if self._live_now() else None
                return None if registers is None else rsp.registers_reply(registers)
            case rsp.ReadRegister(regnum=regnum):
                registers = self.handle.cached_registers if self._live_now() else None
                reg = target_xml.register(regnum)
                if registers is None or reg is None or regnum >= target_xml.G_REGISTER_COUNT:
                    return None
                return rsp.register_value(registers[regnum], reg.size)
            case rsp.ReadMemory(addr=addr, length=length) if self._live_now():
                data = self.handle.memory().read_now(addr, length)
                return None if data is None else rsp.hex_bytes(data)
            case rsp.Breakpoint(type=kind) if kind in _CODE_BREAKPOINTS:
                return self.breakpoint_now(request)
            case rsp.VContQuery():
                return rsp.vcont_reply(FEATURES)
            case rsp.QueryAttached():
                return rsp.ATTACHED
            case rsp.QueryCurrentThread():
                current = self.threads.known_current()
                return None if current is None else rsp.current_thread(rsp.ThreadId(current))
            case rsp.QueryThreadInfo(first=False):
                return rsp.THREAD_LIST_END   # (the first answer lists them all)
            case rsp.SetThread(op="c"):
                return rsp.OK   # a resume resumes the node, whichever thread it names
            case rsp.SetThread(thread=thread) if thread.tid in (0, -1):
                self.selected = 0
                return rsp.OK
            case rsp.ReadFeatures(annex=annex, offset=offset, length=length):
                document = target_xml.ANNEXES.get(annex)
                return rsp.error(EINVAL) if document is None else rsp.xfer_chunk(document, offset, length)
            case rsp.QueryOffsets():
                return rsp.NO_OFFSETS
            case rsp.QuerySymbol():
                return rsp.OK
            case rsp.MustReplyEmpty() | rsp.QueryTraceStatus() | rsp.Unsupported():
                return rsp.EMPTY
            case rsp.MalformedRequest():
                return rsp.error(EINVAL)
        return None

    async def _handle(self, request: rsp.Request) -> bytes | None:  # noqa: C901 - one arm per packet
        match request:
            case rsp.HaltReason():
                known = self.handle.status
                status = known if known is not None and known.stopped else await self.handle.stop()
                return await self.stop_reply(status, announce=False)
            case rsp.ReadRegisters():
                thread = await self._selected_thread()
                if thread.context is not None:
                    return rsp.registers_reply(thread.context.registers())
                return rsp.registers_reply(await self.handle.registers())
            case rsp.WriteRegisters(data=data):
                if len(data) % 4:
                    return rsp.error(EINVAL)   # not whole registers
                if (refusal := await self._saved_refusal()) is not None:
                    return refusal
                values = rsp.register_block(data)[: target_xml.G_REGISTER_COUNT]
                return self._ok(await self.handle.write_registers(list(enumerate(values))))
            case rsp.ReadRegister(regnum=regnum):
                return await self._read_register(regnum)
            case rsp.WriteRegister(regnum=regnum, value=value):
                if (refusal := await self._saved_refusal()) is not None:
                    return refusal
                lld_reg = lld_register(regnum)
                if lld_reg is None or value > rv32.M32:
                    return rsp.error(EINVAL)
                return self._ok(await self.handle.write_registers([(lld_reg, value)]))
            case rsp.ReadMemory(addr=addr, length=length):
                if addr > rv32.M32:
                    return rsp.error(EFAULT)   # no such address: lld's addresses are 32 bits
                # A reply fits the packet size gdb was told; gdb asks again for the rest.
                length = min(length, self.packet_size // 2, (1 << 32) - addr)
                space = await self._selected_space()
                if space is not None:
                    data = await self.handle.read_memory(addr, length, space)
                else:
                    data = await self.handle.read_as_debugger(addr, length)
                # gdb accepts a short read; nothing readable at all is an error.
                return rsp.hex_bytes(data) if data or length == 0 else rsp.error(EFAULT)
            case rsp.WriteMemory(addr=addr, data=data):
                if addr + len(data) > 1 << 32 or addr > rv32.M32:
                    return rsp.error(EFAULT)
                space = await self._selected_space()
                if space is not None:
                    written = await self.handle.write_memory(addr, data, space)
                else:
                    written = await self.handle.write_as_debugger(addr, data)
                return rsp.OK if written else rsp.error(EFAULT)
            case rsp.Continue(addr=addr):
                return await self.resume(addr, step=False)
            case rsp.Step(addr=addr):
                return await self.resume(addr, step=True)
            case rsp.ReverseStep():
                return await self.reverse(p.REVERSE_STEP)
            case rsp.ReverseContinue():
                return await self.reverse(p.REVERSE_CONTINUE)
            case rsp.VCont(actions=actions):
                kinds = {a.kind for a in actions}
                if "s" in kinds:
                    return await self.resume(None, step=True)
                if "c" in kinds:
                    return await self.resume(None, step=False)
                self._interrupted = None   # (nothing resumed: a ctrl-C sent with it has nothing to stop)
                return rsp.OK
            case rsp.Breakpoint():
                return await self.watchpoint(request)
            case rsp.QueryCurrentThread():
                return rsp.current_thread(rsp.ThreadId(await self.threads.current_tid()))
            case rsp.QueryThreadInfo():
                return rsp.thread_list([rsp.ThreadId(t.tid) for t in await self.threads.threads()])
            case rsp.SetThread(thread=thread):
                if await self.threads.get(thread.tid) is None:
                    return rsp.error(EINVAL)
                self.selected = thread.tid
                return rsp.OK
            case rsp.ThreadAlive(thread=thread):
                alive = thread.tid in (0, -1) or await self.threads.get(thread.tid) is not None
                return rsp.OK if alive else rsp.error(EINVAL)
            case rsp.QueryThreadExtraInfo(thread=thread):
                found = await self.threads.get(thread.tid)
                return rsp.error(EINVAL) if found is None else rsp.hex_bytes(found.describe().encode())
            case rsp.ReadThreads(offset=offset, length=length):
                return rsp.xfer_chunk(threads_xml(await self.threads.threads()), offset, length)
            case rsp.Detach():
                await self.detach()
                return rsp.OK
            case rsp.Kill():
                return None  # the node stays as it is, like a gdb that went away
            case rsp.MonitorCommand(command=command):
                await self.synced()   # so that what it shows (or clears) is what gdb set
                output = await self.monitor(self, command)
                if output:
                    self.send(rsp.console_output(output.encode()))
                return rsp.OK
        return rsp.EMPTY

    @staticmethod
    def _ok(done: bool) -> bytes:
        return rsp.OK if done else rsp.error(EINVAL)

    async def _read_register(self, regnum: int) -> bytes:
        reg = target_xml.register(regnum)
        lld_reg = lld_register(regnum)
        if reg is None or lld_reg is None:
            return rsp.error(EINVAL)
        thread = await self._selected_thread()
        if thread.context is not None:   # a saved context: what it holds, the rest unavailable
            saved = thread.context.registers()
            return rsp.register_value(saved[regnum] if regnum < len(saved) else None, reg.size)
        # A register lld cannot read is shown by gdb as unavailable.
        return rsp.register_value(await self.handle.read_register(lld_reg), reg.size)

    # -- threads ------------------------------------------------------------------------

    def _known_current(self) -> rsp.ThreadId:
        """The running thread's id for a reply that cannot wait for lld (the last known)."""
        return rsp.ThreadId(self.threads.known_current() or self.threads.last_current)

    def _live_now(self) -> bool:
        """True if the selected thread is surely the running one, without asking lld."""
        return self.selected == 0 or self.selected == self.threads.known_current()

    async def _selected_thread(self) -> Thread:
        """The thread gdb selected; the running one if it selected none, or one that is gone."""
        if self.selected:
            thread = await self.threads.get(self.selected)
            if thread is not None:
                return thread
        current = await self.threads.get(await self.threads.current_tid())
        assert current is not None
        return current

    async def _selected_space(self) -> AddressSpace | None:
        """The address space of a selected thread that is not running but runs user code: its
        domain's page table on this node.  None: the node's own view (the running thread's, or a
        kernel thread's, which is the same kernel everywhere)."""
        if self._live_now():
            return None
        thread = await self._selected_thread()
        return thread.space if thread.context is not None else None

    async def _saved_refusal(self) -> bytes | None:
        """The error for a register write to a thread that is not running, else None."""
        thread = await self._selected_thread()
        if thread.context is None:
            return None
        why = (f"mux: thread {thread.tid} ({thread.name}) is {thread.describe()}, not running: its "
               f"registers are the context it saved, shown read-only; select the running thread "
               f"to change registers")
        return b"E." + why.encode("ascii", "replace")

    # -- stop replies ----------------------------------------------------------------

    def _watch_kind(self, status: p.Status) -> rsp.StopKind:
        for (addr, length), kind in self.breakpoints.watchpoints.items():
            if addr <= status.data_addr < addr + length and kind == p.WATCH_ACCESS:
                return rsp.StopKind.ACCESS_WATCH
        if status.flags & p.FLAG_WATCH_READ:
            return rsp.StopKind.READ_WATCH
        return rsp.StopKind.WRITE_WATCH

    async def stop_reply(self, status: p.Status, announce: bool = True) -> bytes:
        """A T stop reply with the reason and every `g` register expedited.

        announce: say on gdb's console why the node stopped, for a panic or a trap
        loop.  Only for a stop that ends a resume: console output (`O` packets) may
        only come while the target runs, and gdb takes one in answer to `?` (when it
        connects to a stopped node) as the answer, out of step with everything after.

        Also starts reading the bytes around pc: gdb's first reads after any stop are
        the instruction at pc and its neighbours, and it spends a millisecond or more
        on the stop reply before it asks, time in which that read is already done.
        """
        registers = await self.handle.registers()
        if status.stopped:
            self.handle.memory().prefetch(registers[PC])
        signal, reason = rsp.SIGTRAP, None
        if status.reason in (p.REASON_BREAKPOINT, p.REASON_PANIC) and status.pc in self.breakpoints:
            # Only for gdb's own: gdb takes a software-breakpoint stop where it has none for a
            # late report of one it removed, and silently resumes.  Anyone else's (the panic
            # stop, the console's) is a plain SIGTRAP, which gdb shows.
            reason = rsp.StopReason(rsp.StopKind.SOFTWARE_BREAK)
        elif status.reason == p.REASON_WATCHPOINT:
            reason = rsp.StopReason(self._watch_kind(status), status.data_addr)
        elif status.reason == p.REASON_TRAP_LOOP:
            signal = SIGSEGV
        elif status.reason == p.REASON_REQUESTED and self._interrupted is not None:
            signal = self._interrupted
        self._interrupted = None
        if announce and self.handle.future_discarded:
            self.handle.future_discarded = False
            self.send(rsp.console_output(
                f"node {self.node}: a write made in the machine's past discarded its recorded future: "
                f"the machine went on from there, and its history starts again there\n".encode()))
        if announce and status.reason == p.REASON_WATCHPOINT and status.flags & p.FLAG_PAST \
                and self.accessor_note:
            note = await self._accessor_note()
            if note is not None:
                self.send(rsp.console_output(note.encode()))
        if announce and status.reason in (p.REASON_PANIC, p.REASON_TRAP_LOOP):
            why = "the kernel's panic path" if status.reason == p.REASON_PANIC else "a trap loop"
            self.send(rsp.console_output(f"node {self.node} stopped in {why}\n".encode()))
        thread = rsp.ThreadId(await self.threads.current_tid())
        # gdb takes the stop's thread as the one its register reads now mean (remote.c's
        # record_currthread), without sending Hg: so do we, as QEMU's stub does with its CPU.
        self.selected = 0
        return rsp.stop_reply(signal, reason=reason, registers=dict(enumerate(registers)), thread=thread)

    async def _accessor_note(self) -> str | None:
        """After a watchpoint stop in the machine's past (found by history, lld/history.py): which
        node makes the access it found, and where (that node stands just before it, at the
        instruction that makes it: FLAG_ACCESSOR on its status)."""
        link = self.handle.link
        try:
            description = await link.ok(self.node, p.Describe())
            assert isinstance(description, p.MachineDescription)
            replies = await asyncio.gather(*(link.request(n, p.GetStatus())
                                             for n in range(description.nodes)))
        except LinkError:
            return None
        for n, reply in enumerate(replies):
            status = reply.value
            if reply.ok and isinstance(status, p.Status) and status.flags & p.FLAG_ACCESSOR:
                layout = self.threads.layout
                name = layout.function_at(status.pc) if layout is not None else None
                where = f"{status.pc:#010x}" + (f" ({name})" if name else "")
                return f"mux: watchpoint: the access was made by node {n} at pc {where}\n"
        return None

    async def _breakpoint_stop(self, status: p.Status) -> bytes:
        """The stop reply for a node resting on a breakpoint: gdb's, or the kind lld holds there."""
        kind = (await self.handle.lld_breakpoints()).get(status.pc)
        theirs = kind == p.BP_PANIC and status.pc not in self.breakpoints
        reason = p.REASON_PANIC if theirs else p.REASON_BREAKPOINT
        return await self.stop_reply(dataclasses.replace(status, reason=reason))

    # -- breakpoints and watchpoints ------------------------------------------------------

    def breakpoint_now(self, bp: rsp.Breakpoint) -> bytes:
        """Z0/Z1, z0/z1: gdb's set changes at once; lld follows before the node runs."""
        return rsp.OK if self.breakpoints.change(bp.addr, insert=bp.insert) else rsp.error(EINVAL)

    async def watchpoint(self, bp: rsp.Breakpoint) -> bytes:
        """Watchpoints go to lld at once: lld translates them when set, and may refuse."""
        kind = _WATCH_KINDS[bp.type]
        if bp.addr > rv32.M32 or not 1 <= bp.kind <= p.MAX_WATCH_LENGTH:
            return rsp.error(EINVAL)
        reply = await self.breakpoints.watch(bp.addr, bp.kind, kind, insert=bp.insert)
        if not reply.ok:
            return rsp.error(EFAULT if reply.status == p.E_UNMAPPED else EINVAL)
        return rsp.OK

    async def synced(self) -> bool:
        """Make lld hold gdb's breakpoints, telling gdb's console of a refusal; False if there was one."""
        failure = await self.breakpoints.sync()
        if failure is not None:
            self.send(rsp.console_output(f"mux: {failure}\n".encode()))
        return failure is None

    # -- running ----------------------------------------------------------------------------

    async def resume(self, addr: int | None, *, step: bool) -> bytes | None:
        reply = await self._resumed(addr, step=step)
        if reply is not None and not reply.startswith((b"T", b"S")):
            self._interrupted = None   # refused: the node did not run, and a ctrl-C has nothing to stop
        return reply

    async def _resumed(self, addr: int | None, *, step: bool) -> bytes | None:
        if addr is not None and (addr > rv32.M32 or not await self.handle.write_registers([(PC, addr)])):
            return rsp.error(EINVAL)
        status = self.handle.status or await self.handle.refresh()
        if not status.stopped:
            return rsp.error(EINVAL)
        if step:
            # A hardware single step (gdb 13 never asks for one on RISC-V; other clients do).
            return await self.stop_reply(await self.handle.step(self.step.interrupts))
        return await self._continue(status)

    async def reverse(self, op: int) -> bytes:
        """bs and bc: the whole machine goes back in its history (lld's REVERSE, lld/history.py).

        At the start of the history the stop reply says `replaylog:begin`, and gdb prints "No
        more reverse-execution history."  A machine that keeps no history refuses (E16, with lld's
        reason on gdb's console: psyche machine --reverse)."""
        status = self.handle.status or await self.handle.refresh()
        if not status.stopped:
            return rsp.error(EINVAL)
        if op == p.REVERSE_CONTINUE and not await self.synced():
            return rsp.error(EINVAL)   # gdb's breakpoints must be in lld: they are what bc looks for
        reply = await self.handle.change(lambda gen: p.Reverse(gen, op, expedite=True))
        self.handle.forget()
        if not reply.ok or not isinstance(reply.value, p.Status):
            # Why, on gdb's console (bs and bc are resumes: console output may come first).
            why = reply.error.message or reply.error.describe() if reply.error is not None else "no status"
            self.send(rsp.console_output(f"mux: reverse execution: {why}\n".encode()))
            return rsp.error(EINVAL)
        status = reply.value
        self.handle.note(status)
        stop = await self.stop_reply(status)
        if status.flags & p.FLAG_HISTORY_BEGIN:
            return stop[:3] + b"replaylog:begin;" + stop[3:]
        return stop

    async def _continue(self, status: p.Status) -> bytes | None:
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
            return rsp.error(EINVAL)
        known = await self.handle.lld_breakpoints()
        if pc in known:
            # Someone else's breakpoint (the panic stop, say), which the node rests on: the
            # handle gets past it before anything else can happen, as gdb does over its own.
            stopped = await self.handle.resume_off_breakpoint()
            if stopped is not None:
                return await self._stop_after_step(stopped)
            await self._wait_for_stop()
            return None
        if insn is not None and not rv32.is_wfi(insn) and self._may_reach(insn, pc, known.keys(),
                                                                          self.handle.cached_registers):
            # One instruction may end this continue: a STEP, taking a pending interrupt as a
            # running node would, costs one round trip where RESUME and a poll cost two.
            stepped = await self.handle.step(True)
            if stepped.reason != p.REASON_STEP or stepped.pc in known:
                return await self._stop_after_step(stepped)
        return await self._run()

    async def _stop_after_step(self, status: p.Status) -> bytes | None:
        """The stop reply for a STEP that ended a continue: its own reason, or the breakpoint it
        met (unless that is one of gdb's in user code, met outside the domains gdb asked for: then
        the continue goes on)."""
        if status.reason != p.REASON_STEP:
            return await self.stop_reply(status)
        if await self._outside_scope(status):
            stopped = await self.handle.resume_off_breakpoint()
            if stopped is not None:
                return await self._stop_after_step(stopped)
            await self._wait_for_stop()
            return None
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
        return None if code is None else int.from_bytes(code, "little")

    def _is_software_step(self, insn: int, pc: int) -> bool:
        """True if this continue is gdb's software single step of the instruction at pc.

        gdb plants a breakpoint at every pc its own decoder says the instruction may
        go to (pc + 4 for SYSTEM instructions, whose real destination it cannot know)
        and continues.  A continue for which every one of those pcs holds one of gdb's
        breakpoints can only end after that one instruction, unless it traps; running
        it as one STEP is exact.  WFI is left to run: the hart must sleep until an
        interrupt wakes it, as it would on QEMU.
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

    async def _software_step(self, insn: int, before: p.Status) -> bytes | None:
        """gdb's software single step of insn, as one lld STEP (see _is_software_step)."""
        stepped = await self.handle.step(self.step.interrupts)
        if stepped.reason != p.REASON_STEP:
            return await self.stop_reply(stepped)   # a watchpoint, a trap loop
        known = await self.handle.lld_breakpoints()
        if stepped.pc in self.breakpoints or stepped.pc in known:
            return await self._breakpoint_stop(stepped)
        if rv32.is_trap_return(insn) or stepped.instret != before.instret:
            return await self.stop_reply(stepped)   # where mret/sret went, which gdb cannot know
        # The step entered a trap handler instead of completing the instruction.
        if self.step.traps or await self._entered_interrupt(stepped):
            return await self.stop_reply(stepped)   # at the vector, as a hardware single step stops
        return await self._continue(stepped)   # ecall, a fault: the handler runs, as on QEMU

    async def _entered_interrupt(self, status: p.Status) -> bool:
        cause_csr = rv32.CSR_MCAUSE if status.priv == 3 else rv32.CSR_SCAUSE
        cause = await self.handle.read_register(p.REG_CSR_BASE + cause_csr)
        return cause is not None and bool(cause & rv32.CAUSE_INTERRUPT)

    async def _run(self) -> bytes | None:
        """RESUME with gdb's breakpoints in lld; the stop reply comes from _report_stop."""
        if not await self.synced():
            return rsp.error(EINVAL)
        await self.handle.resume()
        await self._wait_for_stop()
        return None

    async def _wait_for_stop(self) -> None:
        """The node runs: its stop reply goes out when the handle's poller sees it stop.

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
            self.send(await self.stop_reply(status))
        except (LinkError, NodeError) as e:
            self.send(rsp.console_output(f"mux: {e}\n".encode()))
            self.send(rsp.stop_reply(rsp.SIGTRAP, thread=self._known_current()))
        finally:
            self._running = None

    async def interrupt(self, signal: int = rsp.SIGINT) -> None:
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
            self.send(rsp.console_output(f"mux: {e}\n".encode()))

    async def detach(self) -> None:
        """Take this gdb's breakpoints and watchpoints out of lld and let the node run.

        Only this gdb's: a breakpoint lld holds for the machine (the panic stop) or for
        another client stays, and stops the node as before.  A continue still waiting
        for its stop ends here: a detached gdb gets no stop reply.
        """
        if self._running is not None:
            self._running.cancel()
            self._running = None   # (a task cancelled before its first step never reaches its finally)
        await self.breakpoints.remove_all()
        if (await self.handle.refresh()).stopped:
            await self.handle.resume_off_breakpoint()

    def close(self) -> None:
        """The gdb went away: stop waiting, and leave the node as gdb left it.

        That includes its breakpoints: gdb had removed them if the node was stopped,
        and left them in if it was running, and lld must hold exactly those.
        """
        if self._running is not None:
            self._running.cancel()
        self.breakpoints.close()
