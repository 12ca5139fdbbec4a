"""One gdb session on one node: gdb's requests mapped onto lld requests.

A `NodeSession` knows nothing of sockets: the transport feeds it parsed
requests and gets back reply payloads (or None when gdb expects none yet,
as while the node runs after a continue); stop replies that come later go
out through `send`.

What it keeps is a cache, never the truth: the node's registers and small
memory reads, valid while the node stays stopped at the same place, so that
gdb's many small reads at every stop (and at every software single step)
cost one lld round trip instead of dozens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lld import protocol as p
from mux import packets as rsp
from mux import target_xml
from mux.link import LinkError, LldLink

# gdb's errno-style error numbers in E replies.
EFAULT = 0x0E
EINVAL = 0x16
EIO = 0x05
SIGSEGV = 0x0B

THREAD = rsp.ThreadId(1)
CACHE_BLOCK = 64          # small memory reads are served from aligned blocks of this size
SMALL_READ = 16
POLL_FIRST = 0.002        # a continued node is polled this soon, then less and less often
POLL_MAX = 0.05

_WATCH_KINDS = {
    rsp.BreakpointType.WRITE_WATCH: p.WATCH_WRITE,
    rsp.BreakpointType.READ_WATCH: p.WATCH_READ,
    rsp.BreakpointType.ACCESS_WATCH: p.WATCH_ACCESS,
}


@dataclass
class _Cache:
    """What is known of a stopped node until it runs or is written."""

    gen: int = -1
    registers: list[int] | None = None
    blocks: dict[int, bytes] = field(default_factory=dict)

    def clear(self) -> None:
        self.gen = -1
        self.registers = None
        self.blocks.clear()


class NodeSession:
    def __init__(
        self,
        node: int,
        link: LldLink,
        send: Callable[[bytes], None],
        monitor: Callable[[NodeSession, str], Awaitable[str]],
        *,
        packet_size: int = 4096,
        no_ack_mode: bool = True,
    ) -> None:
        self.node = node
        self.link = link
        self.send = send
        self.monitor = monitor
        self.packet_size = packet_size
        self.no_ack_mode = no_ack_mode
        self.step_takes_interrupts = False
        self.status: p.Status | None = None
        self.cache = _Cache()
        self.watchpoints: dict[tuple[int, int], int] = {}   # (addr, length) -> lld kind
        self._running: asyncio.Task[None] | None = None
        self._interrupted = False

    # -- the node ----------------------------------------------------------------

    async def _refresh(self) -> p.Status:
        status = await self.link.ok(self.node, p.GetStatus())
        assert isinstance(status, p.Status)
        self._note(status)
        return status

    def _note(self, status: p.Status) -> None:
        if self.cache.gen != status.gen:
            self.cache.clear()
            self.cache.gen = status.gen
        self.status = status

    async def attach(self) -> p.Status:
        """Stop the node (only this one) and learn where it is."""
        status = await self.link.ok(self.node, p.Stop(p.ANY_GEN))
        assert isinstance(status, p.Status)
        self._note(status)
        return status

    async def _registers(self) -> list[int]:
        if self.cache.registers is None:
            values = await self.link.ok(self.node, p.ReadRegs(tuple(range(target_xml.G_REGISTER_COUNT))))
            assert isinstance(values, list)
            self.cache.registers = values
        return self.cache.registers

    async def _change(self, make: Callable[[int], p.Request]) -> p.Reply:
        """Send a change guarded by the node's gen; refresh the gen and retry once if stale."""
        status = self.status or await self._refresh()
        reply = await self.link.request(self.node, make(status.gen))
        if reply.status == p.E_STALE:
            status = await self._refresh()
            reply = await self.link.request(self.node, make(status.gen))
        if reply.ok and isinstance(reply.value, p.Status):
            self._note(reply.value)
        return reply

    # -- stop replies ----------------------------------------------------------------

    def _watch_kind(self, status: p.Status) -> rsp.StopKind:
        for (addr, length), kind in self.watchpoints.items():
            if addr <= status.data_addr < addr + length and kind == p.WATCH_ACCESS:
                return rsp.StopKind.ACCESS_WATCH
        if status.flags & p.FLAG_WATCH_READ:
            return rsp.StopKind.READ_WATCH
        return rsp.StopKind.WRITE_WATCH

    async def stop_reply(self, status: p.Status) -> bytes:
        """A T stop reply with the reason and every `g` register expedited."""
        registers = await self._registers()
        expedited = dict(enumerate(registers))
        signal, reason = rsp.SIGTRAP, None
        if status.reason in (p.REASON_BREAKPOINT, p.REASON_PANIC):
            reason = rsp.StopReason(rsp.StopKind.SOFTWARE_BREAK)
        elif status.reason == p.REASON_WATCHPOINT:
            reason = rsp.StopReason(self._watch_kind(status), status.data_addr)
        elif status.reason == p.REASON_TRAP_LOOP:
            signal = SIGSEGV
        elif status.reason == p.REASON_REQUESTED and self._interrupted:
            signal = rsp.SIGINT
        self._interrupted = False
        if status.reason in (p.REASON_PANIC, p.REASON_TRAP_LOOP):
            why = "the kernel's panic path" if status.reason == p.REASON_PANIC else "a trap loop"
            self.send(rsp.console_output(f"node {self.node} stopped in {why}\n".encode()))
        return rsp.stop_reply(signal, reason=reason, registers=expedited, thread=THREAD)

    # -- requests ------------------------------------------------------------------------

    async def handle(self, request: object) -> bytes | None:
        """The reply payload for one gdb request; None when the reply comes later or never."""
        try:
            return await self._handle(request)
        except LinkError as e:
            self.send(rsp.console_output(f"mux: {e}\n".encode()))
            return rsp.error(EIO)

    async def _handle(self, request: object) -> bytes | None:  # noqa: C901 - one arm per packet
        match request:
            case rsp.QuerySupported():
                return rsp.supported_reply(self.packet_size, no_ack_mode=self.no_ack_mode)
            case rsp.StartNoAckMode():
                return rsp.OK if self.no_ack_mode else rsp.EMPTY
            case rsp.HaltReason():
                known = self.status
                status = known if known is not None and known.stopped else await self.attach()
                return await self.stop_reply(status)
            case rsp.ReadRegisters():
                return rsp.registers_reply(await self._registers())
            case rsp.WriteRegisters(data=data):
                values = rsp.register_block(data)[: target_xml.G_REGISTER_COUNT]
                return await self._write_registers(list(range(len(values))), values)
            case rsp.ReadRegister(regnum=regnum):
                return await self._read_register(regnum)
            case rsp.WriteRegister(regnum=regnum):
                return await self._write_register(regnum, request.value)
            case rsp.ReadMemory(addr=addr, length=length):
                return await self._read_memory(addr, length)
            case rsp.WriteMemory(addr=addr, data=data):
                return await self._write_memory(addr, data)
            case rsp.Continue(addr=addr):
                return await self._resume(addr, step=False)
            case rsp.Step(addr=addr):
                return await self._resume(addr, step=True)
            case rsp.VContQuery():
                return rsp.VCONT_ACTIONS
            case rsp.VCont(actions=actions):
                kinds = {a.kind for a in actions}
                if "s" in kinds:
                    return await self._resume(None, step=True)
                if "c" in kinds:
                    return await self._resume(None, step=False)
                return rsp.OK
            case rsp.Breakpoint():
                return await self._breakpoint(request)
            case rsp.Detach():
                await self.detach()
                return rsp.OK
            case rsp.Kill():
                return None  # the node stays as it is, like a gdb that went away
            case rsp.QueryAttached():
                return rsp.ATTACHED
            case rsp.QueryCurrentThread():
                return rsp.current_thread(THREAD)
            case rsp.QueryThreadInfo(first=first):
                return rsp.thread_list([THREAD]) if first else rsp.THREAD_LIST_END
            case rsp.SetThread() | rsp.ThreadAlive():
                return rsp.OK
            case rsp.ReadFeatures(annex=annex, offset=offset, length=length):
                document = target_xml.ANNEXES.get(annex)
                return rsp.error(EINVAL) if document is None else rsp.xfer_chunk(document, offset, length)
            case rsp.MonitorCommand(command=command):
                output = await self.monitor(self, command)
                if output:
                    self.send(rsp.console_output(output.encode()))
                return rsp.OK
            case rsp.QueryOffsets():
                return rsp.NO_OFFSETS
            case rsp.QuerySymbol():
                return rsp.OK
            case rsp.MustReplyEmpty() | rsp.QueryTraceStatus() | rsp.Unsupported():
                return rsp.EMPTY
            case rsp.MalformedRequest():
                return rsp.error(EINVAL)
        return rsp.EMPTY

    # -- registers ------------------------------------------------------------------

    @staticmethod
    def _lld_register(regnum: int) -> int | None:
        reg = target_xml.register(regnum)
        if reg is None:
            return None
        if reg.kind is target_xml.RegisterKind.CSR:
            assert reg.csr is not None
            return p.REG_CSR_BASE + reg.csr
        if reg.kind is target_xml.RegisterKind.PRIV:
            return p.REG_PRIV
        return regnum  # x0..x31 and pc (32) share gdb's numbers

    async def _read_register(self, regnum: int) -> bytes:
        reg = target_xml.register(regnum)
        lld_reg = self._lld_register(regnum)
        if reg is None or lld_reg is None:
            return rsp.error(EINVAL)
        if regnum < target_xml.G_REGISTER_COUNT:
            return rsp.register_value((await self._registers())[regnum], reg.size)
        reply = await self.link.request(self.node, p.ReadRegs((lld_reg,)))
        if not reply.ok:
            return rsp.register_value(None, reg.size)   # gdb shows it as unavailable
        assert isinstance(reply.value, list)
        return rsp.register_value(reply.value[0], reg.size)

    async def _write_register(self, regnum: int, value: int) -> bytes:
        lld_reg = self._lld_register(regnum)
        if lld_reg is None:
            return rsp.error(EINVAL)
        return await self._write_registers([lld_reg], [value])

    async def _write_registers(self, regs: list[int], values: list[int]) -> bytes:
        reply = await self._change(lambda gen: p.WriteRegs(gen, tuple(zip(regs, values, strict=True))))
        self.cache.clear()
        return rsp.OK if reply.ok else rsp.error(EINVAL)

    # -- memory -------------------------------------------------------------------------

    async def _read_memory(self, addr: int, length: int) -> bytes:
        if length <= SMALL_READ and (addr % CACHE_BLOCK) + length <= CACHE_BLOCK:
            block = addr - addr % CACHE_BLOCK
            data = self.cache.blocks.get(block)
            if data is None:
                reply = await self.link.request(self.node, p.ReadMem(p.SPACE_VIRT, block, CACHE_BLOCK))
                if reply.ok:
                    assert isinstance(reply.value, bytes)
                    data = self.cache.blocks[block] = reply.value
            if data is not None:
                return rsp.hex_bytes(data[addr - block: addr - block + length])
        out = bytearray()
        while len(out) < length:
            chunk = min(p.MAX_DATA, length - len(out))
            reply = await self.link.request(self.node, p.ReadMem(p.SPACE_VIRT, addr + len(out), chunk))
            if not reply.ok:
                break
            assert isinstance(reply.value, bytes)
            out += reply.value
        # gdb accepts a short read; nothing readable at all is an error.
        return rsp.hex_bytes(bytes(out)) if out or length == 0 else rsp.error(EFAULT)

    async def _write_memory(self, addr: int, data: bytes) -> bytes:
        self.cache.blocks.clear()
        for offset in range(0, len(data), p.MAX_DATA):
            piece = data[offset: offset + p.MAX_DATA]
            write = p.WriteMem(p.ANY_GEN, p.SPACE_VIRT, addr + offset, piece)
            reply = await self.link.request(self.node, write)
            if not reply.ok:
                return rsp.error(EFAULT)
        return rsp.OK

    # -- breakpoints and watchpoints ------------------------------------------------------

    async def _breakpoint(self, bp: rsp.Breakpoint) -> bytes:
        request: p.Request
        if bp.type in (rsp.BreakpointType.SOFTWARE, rsp.BreakpointType.HARDWARE):
            if bp.insert:
                request = p.SetBreakpoint(p.ANY_GEN, bp.addr)
            else:
                request = p.ClearBreakpoint(p.ANY_GEN, bp.addr)
        else:
            kind = _WATCH_KINDS[bp.type]
            if bp.insert:
                request = p.SetWatchpoint(p.ANY_GEN, p.SPACE_VIRT, bp.addr, bp.kind, kind)
            else:
                request = p.ClearWatchpoint(p.ANY_GEN, bp.addr, bp.kind, kind)
        reply = await self.link.request(self.node, request)
        if not reply.ok:
            return rsp.error(EFAULT if reply.status == p.E_UNMAPPED else EINVAL)
        if bp.type not in (rsp.BreakpointType.SOFTWARE, rsp.BreakpointType.HARDWARE):
            if bp.insert:
                self.watchpoints[(bp.addr, bp.kind)] = _WATCH_KINDS[bp.type]
            else:
                self.watchpoints.pop((bp.addr, bp.kind), None)
        return rsp.OK

    # -- running ----------------------------------------------------------------------------

    async def _resume(self, addr: int | None, *, step: bool) -> bytes | None:
        if addr is not None:
            await self._write_registers([target_xml.PC_REGNUM], [addr])
        if step:
            reply = await self._change(lambda gen: p.Step(gen, self.step_takes_interrupts))
            if not reply.ok:
                return rsp.error(EINVAL)
            assert isinstance(reply.value, p.Status)
            return await self.stop_reply(reply.value)
        reply = await self._change(lambda gen: p.Resume(gen))
        if not reply.ok:
            return rsp.error(EINVAL)
        self.cache.clear()
        self._running = asyncio.create_task(self._wait_for_stop())
        return None

    async def _wait_for_stop(self) -> None:
        """Poll the running node (lld never speaks first) and send the stop reply."""
        delay = POLL_FIRST
        try:
            while True:
                status = await self._refresh()
                if not status.running:
                    self.send(await self.stop_reply(status))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, POLL_MAX)
        except LinkError as e:
            self.send(rsp.console_output(f"mux: {e}\n".encode()))
            self.send(rsp.stop_reply(rsp.SIGTRAP, thread=THREAD))
        finally:
            self._running = None

    @property
    def running(self) -> bool:
        return self._running is not None

    async def interrupt(self) -> None:
        """gdb's ctrl-C: stop the node; the waiting continue reports the stop."""
        self._interrupted = True
        await self.link.request(self.node, p.Stop(p.ANY_GEN))

    async def detach(self) -> None:
        """Remove every breakpoint and watchpoint on the node and let it run."""
        await self.link.request(self.node, p.ClearAll(p.ANY_GEN))
        self.watchpoints.clear()
        status = await self._refresh()
        if status.stopped:
            await self._change(lambda gen: p.Resume(gen))

    def close(self) -> None:
        """The gdb went away: stop waiting, and leave the node exactly as it is."""
        if self._running is not None:
            self._running.cancel()
