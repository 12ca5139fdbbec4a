"""One gdb on one node: the gdb remote protocol's requests mapped onto a node handle.

A `GdbSession` knows nothing of sockets: the transport feeds it parsed requests
and gets back reply payloads (or None when gdb expects none yet, as while the
node runs after a continue); stop replies that come later go out through `send`.
What it knows of the node (status, caches, lld's breakpoints) lives in the
node's `NodeHandle`, shared with the monitor, the console and later sessions.

The session is the front end: it dispatches gdb's requests and builds the replies,
stop replies included.  Beneath it, for its one gdb on its one node:

* `GdbBreakpoints` (`mux.breakpoints`): gdb's breakpoints, answered at once and
  brought into lld just before the node runs, and its watchpoints;
* `RunControl` (`mux.runcontrol`): continue, step, reverse execution and ctrl-C
  with the debug semantics of hardware (docs/debug-semantics.md says them for
  users), which says what stop each resume came to, and reports the stops of a
  node that ran back to the session (`report_stop`).

gdb's threads are the node's kernel threads (`mux.threads`): the running one is
live, the others are shown from the context they saved, read-only.  A resume
always resumes the node, whichever thread gdb names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from lld import protocol as p
from mux import packets as rsp
from mux import target_xml
from mux.breakpoints import GdbBreakpoints
from mux.link import LinkError
from mux.memory import AddressSpace
from mux.node import PC, NodeError, NodeHandle
from mux.runcontrol import DomainScope, Resumed, RunControl, StepSettings
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
    rsp.Feature(b"ReverseStep+"),        # bs: lld's REVERSE, the machine's history (lld/history/)
    rsp.Feature(b"ReverseContinue+"),    # bc
)

_WATCH_KINDS = {
    rsp.BreakpointType.WRITE_WATCH: p.WATCH_WRITE,
    rsp.BreakpointType.READ_WATCH: p.WATCH_READ,
    rsp.BreakpointType.ACCESS_WATCH: p.WATCH_ACCESS,
}
_CODE_BREAKPOINTS = (rsp.BreakpointType.SOFTWARE, rsp.BreakpointType.HARDWARE)

Monitor = Callable[["GdbSession", str], Awaitable[str]]


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
    """gdb's session with one node: RSP requests in, replies out; run control and breakpoints are
    its parts (`mux.runcontrol`, `mux.breakpoints`)."""

    def __init__(
        self,
        handle: NodeHandle,
        send: Callable[[bytes], None],
        monitor: Monitor,
        *,
        packet_size: int = 4096,
        no_ack_mode: bool = True,
        threads: NodeThreads | None = None,
        step: StepSettings | None = None,
        scope: DomainScope | None = None,
        accessor_note: bool = True,
    ) -> None:
        self.handle = handle
        self.threads = threads if threads is not None else NodeThreads(handle, None)
        #: The thread gdb selected for registers (Hg); 0: whichever runs.
        self.selected = 0
        self.send = send
        self.monitor = monitor
        self.packet_size = packet_size
        self.no_ack_mode = no_ack_mode
        #: After a watchpoint stop in the machine's past, name the node that made the access on
        #: gdb's console (the machine port reports the stop on that node's thread instead).
        self.accessor_note = accessor_note
        self.breakpoints = GdbBreakpoints(handle)
        self.run_control = RunControl(handle, self.threads, self.breakpoints, self,
                                      step=step if step is not None else StepSettings(),
                                      scope=scope if scope is not None else DomainScope())

    @property
    def node(self) -> int:
        return self.handle.node

    @property
    def running(self) -> bool:
        return self.run_control.running

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
                self.tell(f"{why}\n")
                return rsp.error(EIO)
            case rsp.MonitorCommand():
                self.tell(f"{why}\n")
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
            case rsp.ReadThreads(offset=offset, length=length):
                listed = self.threads.known_threads()
                return None if listed is None else rsp.xfer_chunk(threads_xml(listed), offset, length)
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
                # (nothing resumed: a ctrl-C sent with it has nothing to stop)
                self.run_control.take_interrupt()
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
                await self.run_control.synced()   # so that what it shows (or clears) is what gdb set
                output = await self.monitor(self, command)
                if output:
                    self.tell(output)
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
        interrupted = self.run_control.take_interrupt()
        if status.reason in (p.REASON_BREAKPOINT, p.REASON_PANIC) and status.pc in self.breakpoints:
            # Only for gdb's own: gdb takes a software-breakpoint stop where it has none for a
            # late report of one it removed, and silently resumes.  Anyone else's (the panic
            # stop, the console's) is a plain SIGTRAP, which gdb shows.
            reason = rsp.StopReason(rsp.StopKind.SOFTWARE_BREAK)
        elif status.reason == p.REASON_WATCHPOINT:
            reason = rsp.StopReason(self._watch_kind(status), status.data_addr)
        elif status.reason == p.REASON_TRAP_LOOP:
            signal = SIGSEGV
        elif status.reason == p.REASON_REQUESTED and interrupted is not None:
            signal = interrupted
        if announce and self.handle.future_discarded:
            self.handle.future_discarded = False
            self.tell(f"node {self.node}: a write made in the machine's past discarded its recorded future: "
                      f"the machine went on from there, and its history starts again there\n")
        if announce and status.reason == p.REASON_WATCHPOINT and status.flags & p.FLAG_PAST \
                and self.accessor_note:
            note = await self._accessor_note()
            if note is not None:
                self.tell(note)
        if announce and status.reason in (p.REASON_PANIC, p.REASON_TRAP_LOOP):
            why = "the kernel's panic path" if status.reason == p.REASON_PANIC else "a trap loop"
            self.tell(f"node {self.node} stopped in {why}\n")
        thread = rsp.ThreadId(await self.threads.current_tid())
        # gdb takes the stop's thread as the one its register reads now mean (remote.c's
        # record_currthread), without sending Hg: so do we, as QEMU's stub does with its CPU.
        self.selected = 0
        return rsp.stop_reply(signal, reason=reason, registers=dict(enumerate(registers)), thread=thread)

    async def _accessor_note(self) -> str | None:
        """After a watchpoint stop in the machine's past (found by history, lld/history/): which
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

    # -- running ----------------------------------------------------------------------------

    async def resume(self, addr: int | None, *, step: bool) -> bytes | None:
        """c, s, vCont: the stop reply, None while the node runs, or an error if it did not run."""
        outcome = await self.run_control.resume(addr, step=step)
        if outcome is Resumed.RUNNING:
            return None
        if outcome is Resumed.REFUSED:
            return rsp.error(EINVAL)
        return await self.stop_reply(outcome)

    async def reverse(self, op: int) -> bytes:
        """bs and bc: the whole machine goes back in its history (lld's REVERSE, lld/history/).

        At the start of the history the stop reply says `replaylog:begin`, and gdb prints "No
        more reverse-execution history."  A machine that keeps no history refuses (E16, with lld's
        reason on gdb's console: psyche machine --reverse)."""
        status = await self.run_control.reverse(op)
        if status is None:
            return rsp.error(EINVAL)
        stop = await self.stop_reply(status)
        if status.flags & p.FLAG_HISTORY_BEGIN:
            return stop[:3] + b"replaylog:begin;" + stop[3:]
        return stop

    async def interrupt(self) -> None:
        """gdb's ctrl-C: stop the node; the waiting continue reports the stop, with SIGINT."""
        await self.run_control.interrupt(rsp.SIGINT)

    # -- what run control reports (mux.runcontrol.Front) ------------------------------------

    def tell(self, text: str) -> None:
        """Show text on gdb's console (an `O` packet)."""
        self.send(rsp.console_output(text.encode()))

    async def report_stop(self, status: p.Status) -> None:
        self.send(await self.stop_reply(status))

    def report_lost(self, why: str) -> None:
        self.tell(f"mux: {why}\n")
        self.send(rsp.stop_reply(rsp.SIGTRAP, thread=self._known_current()))

    # -- the end ----------------------------------------------------------------------------

    async def detach(self) -> None:
        """Take this gdb's breakpoints and watchpoints out of lld and let the node run.

        Only this gdb's: a breakpoint lld holds for the machine (the panic stop) or for
        another client stays, and stops the node as before.  A continue still waiting
        for its stop ends here: a detached gdb gets no stop reply.
        """
        self.run_control.stop_waiting()
        await self.breakpoints.remove_all()
        if (await self.handle.refresh()).stopped:
            await self.handle.resume_off_breakpoint()

    def close(self) -> None:
        """The gdb went away: stop waiting, and leave the node as gdb left it.

        That includes its breakpoints: gdb had removed them if the node was stopped,
        and left them in if it was running, and lld must hold exactly those.
        """
        self.run_control.stop_waiting()
        self.breakpoints.close()
