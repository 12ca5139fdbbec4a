"""A node's kernel threads as gdb sees them: values read from the kernel's own records.

gdb's `info threads` on a node lists that node's kernel threads.  Each is a
`Thread` value: a name, a state, the address of its `struct kthread`, and either
nothing more (the node's current thread, whose registers are the node's own) or
the `SavedContext` that `swtch` left in the record when the thread last gave up
the processor.  A thread that is not running always has one: a thread blocked
on a semaphore stopped in `sched_switch` (called from `sched_block`), a thread
preempted by the clock stopped in `sched_switch` too (called from `yield`,
from the trap handler: gdb's backtrace continues through the trap frame by the
kernel's CFI), and a thread that never ran holds the start address
`thread_entry`.  A saved context has ra, sp and s0..s11 and nothing else; gdb
is told the other registers are unavailable, and the pc is the saved ra, where
the thread continues when it runs again.

Thread ids are given once per thread record, in the order the threads were
created (the boot thread is 1), and kept for the mux's life: the same thread
has the same id at every stop, and after a gdb reconnects.

Before the kernel has threads (early boot), on a kernel the mux has no layout
for, or when the records cannot be read, the node is one thread, `LIVE_THREAD`,
as it was before the mux knew of threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from lld import protocol as p
from mux.kernel_layout import KernelLayout
from mux.memory import AddressSpace
from mux.node import NodeHandle
from mux.processes import domain_processes

#: The one thread of a node whose kernel threads are not known.
LIVE_THREAD = 1
#: A longer thread list is taken to be corrupt (a cycle, garbage) and shown as one thread.
MAX_THREADS = 256
#: Thread records are named by official address, which is their physical address: read them so,
#: whatever translation the node has at the moment (user code's, say).
PHYSICAL = AddressSpace(p.SPACE_PHYS)
#: How much of a semaphore's name is shown in a blocked thread's state.
NAME_LIMIT = 32

#: satp's mode bit: a root page table address as lld's SPACE_ROOT takes it (ASID 0).
SATP_SV32 = 1 << 31

_GDB_REGISTERS = 33          # x0..x31 and pc, gdb's `g` order
_PC = 32
_SP, _RA = 2, 1
#: gdb's numbers of s0..s11 (x8, x9, x18..x27).
S_REGISTERS = (8, 9, *range(18, 28))


@dataclass(frozen=True)
class SavedContext:
    """The callee-saved registers `swtch` stored for a thread that is not running."""

    ra: int
    sp: int
    s: tuple[int, ...]
    #: False while the thread is still on its way out of the processor (swtch has not
    #: finished storing): what is there may be half old, half new.
    complete: bool = True

    def registers(self) -> list[int | None]:
        """gdb's `g` registers: the saved ones, x0, and the pc (the saved ra); None for the rest."""
        values: list[int | None] = [None] * _GDB_REGISTERS
        values[0] = 0
        values[_RA] = values[_PC] = self.ra
        values[_SP] = self.sp
        for regnum, value in zip(S_REGISTERS, self.s, strict=False):
            values[regnum] = value
        return values


@dataclass(frozen=True)
class Thread:
    tid: int
    name: str = ""
    state: str = ""
    #: Address of its struct kthread; None for the node as one thread.
    record: int | None = None
    #: None for the running thread, whose registers are the node's.
    context: SavedContext | None = None
    waiting_on: str | None = None
    #: The virtual processor this thread is, if it is one.
    vp: int | None = None
    #: The protection domain it runs user code in, and that domain's page table on this node
    #: (its user memory as the thread sees it); None for a kernel-only thread.
    domain: int | None = None
    space: AddressSpace | None = None
    #: The user-level process: the one a VP runs, or the one this thread is (record None).
    process: int | None = None

    @property
    def live(self) -> bool:
        return self.context is None

    def describe(self) -> str:
        """What gdb shows after the thread's name: its state, what a blocked thread waits on,
        and the virtual processor and domain of one that runs user code."""
        text = self.state
        if self.waiting_on:
            text += f" on {self.waiting_on}"
        if self.context is not None and not self.context.complete:
            text += ", being switched out"
        if self.vp is not None:
            text += f", VP {self.vp}"
        if self.domain is not None:
            text += f" in domain {self.domain}" if self.vp is not None else f", domain {self.domain}"
        if self.process is not None and self.vp is not None:
            text += f", process {self.process}"
        return text


class NodeThreads:
    """One node's threads, read through its handle; ids kept for the mux's life.

    live_tid: the id of the node as one thread, when its kernel threads are not
    shown (the whole-machine port gives every node its own).
    """

    def __init__(self, handle: NodeHandle, layout: KernelLayout | None,
                 live_tid: int = LIVE_THREAD) -> None:
        self.handle = handle
        self.layout = layout
        self.live_tid = live_tid
        self._node_as_thread = Thread(live_tid)
        #: thread record (or ("process", domain record, entry) for a process) -> tid
        self._ids: dict[object, int] = {}
        self._listed: tuple[int, list[Thread]] | None = None   # (handle epoch, threads)
        self._current: tuple[int, int] | None = None   # (handle epoch, current tid)

    @property
    def last_current(self) -> int:
        """The running thread's id as last read (maybe stale), for a reply that cannot wait."""
        return self._current[1] if self._current is not None else self.live_tid

    def known_current(self) -> int | None:
        """The current thread's id if known without asking lld, else None."""
        if self.layout is None:
            return self.live_tid
        if self._current is not None and self._current[0] == self.handle.epoch:
            return self._current[1]
        return None

    def known_threads(self) -> list[Thread] | None:
        """Every thread of the node if known without asking lld (read at this stop already, or
        the node as one thread when no kernel is shown), else None."""
        if self.layout is None:
            return [self._node_as_thread]
        if self._listed is not None and self._listed[0] == self.handle.epoch:
            return self._listed[1]
        return None

    async def current_tid(self) -> int:
        """The id of the thread running on the node: one memory read at most, per stop."""
        known = self.known_current()
        if known is not None:
            return known
        epoch = self.handle.epoch
        record = await self._current_record()
        tid = self._ids.get(record) if record else None
        if tid is None:
            tid = next((t.tid for t in await self.threads() if t.live), self.live_tid)
        self._current = (epoch, tid)
        return tid

    async def get(self, tid: int) -> Thread | None:
        return next((t for t in await self.threads() if t.tid == tid), None)

    async def threads(self) -> list[Thread]:
        """Every thread of the node, oldest first; the node as one thread if none can be read."""
        known = self.known_threads()
        if known is not None:
            return known
        epoch = self.handle.epoch
        threads = await self._read_threads() if self.layout is not None else None
        listed = threads or [self._node_as_thread]
        self._listed = (epoch, listed)
        self._current = (epoch, next((t.tid for t in listed if t.live), self.live_tid))
        return listed

    async def current_domain(self) -> int | None:
        """The number of the domain whose code the node's running thread runs; None for a
        kernel-only thread, or if the kernel's records cannot be read."""
        if self.layout is None:
            return None
        record = await self._current_record()
        dom = await self._u32(record + self.layout.kthread.offsets["dom"]) if record else None
        return await self._u32(dom + self.layout.domain.offsets["id"]) if dom else None

    # -- reading the kernel's records -------------------------------------------------------

    async def _u32(self, addr: int) -> int | None:
        raw = await self.handle.read_memory(addr, 4, PHYSICAL)
        return int.from_bytes(raw, "little") if len(raw) == 4 else None

    async def _current_record(self) -> int:
        assert self.layout is not None
        node = self.layout.node
        data = await self.handle.read_as_debugger(self.layout.this_node + node.offsets["current"], 4)
        return int.from_bytes(data, "little") if len(data) == 4 else 0

    async def _read_threads(self) -> list[Thread] | None:
        layout = self.layout
        assert layout is not None
        node = layout.node
        start = min(node.offsets["current"], node.offsets["threads"])
        size = max(node.end("current"), node.end("threads")) - start
        data = await self.handle.read_as_debugger(layout.this_node + start, size)
        if len(data) < size:
            return None
        record = bytes(start) + data
        current = node.u32(record, "current")
        addr = node.u32(record, "threads")
        if not current or not addr:
            return None   # the kernel has no threads yet
        records: list[tuple[int, bytes]] = []
        while addr and len(records) < MAX_THREADS:
            raw = await self.handle.read_memory(addr, layout.kthread.size, PHYSICAL)
            if len(raw) < layout.kthread.size or any(addr == seen for seen, _ in records):
                return None
            records.append((addr, raw))
            addr = layout.kthread.u32(raw, "all_next")
        if addr:
            return None
        for addr, _ in reversed(records):   # the list is newest first; ids go oldest first
            self._ids.setdefault(addr, len(self._ids) + 1)
        threads = [await self._thread(addr, raw, addr == current) for addr, raw in reversed(records)]
        return threads + await self._processes(threads, records)

    async def _processes(self, threads: list[Thread], records: list[tuple[int, bytes]]) -> list[Thread]:
        """The user-level processes of the domains this node runs VPs of, but those running
        (a VP shows the one it runs, even caught in the middle of the switch; one running on
        another node is that node's to show)."""
        assert self.layout is not None
        kthread = self.layout.kthread
        domains: dict[int, tuple[int | None, AddressSpace]] = {}   # record -> (number, space)
        for thread, (_, raw) in zip(threads, records[::-1], strict=True):
            record = kthread.u32(raw, "dom")
            if thread.vp is not None and thread.space is not None and record:
                domains.setdefault(record, (thread.domain, thread.space))
        on_vps = {(t.domain, t.process) for t in threads if t.process is not None}
        found: list[Thread] = []
        for record, (domain, space) in domains.items():
            for process in await domain_processes(self.handle, self.layout, record, space):
                if process.state in ("running", "done") or (domain, process.name) in on_vps:
                    continue
                key = ("process", record, process.entry)
                tid = self._ids.setdefault(key, len(self._ids) + 1)
                found.append(Thread(tid, f"process {process.name}", process.state,
                                    context=SavedContext(process.ra, process.sp, process.s),
                                    domain=domain, space=space, process=process.name))
        return found

    async def _thread(self, addr: int, raw: bytes, running: bool) -> Thread:
        layout = self.layout
        assert layout is not None
        kthread = layout.kthread
        state_value = kthread.u32(raw, "state")
        state = layout.states.get(state_value, f"state {state_value}")
        waiting = kthread.u32(raw, "waiting_on")
        context = None if running else self._context(raw)
        domain, space = await self._domain(kthread.u32(raw, "dom"))
        vp, process = await self._vp(kthread.u32(raw, "vp"))
        return Thread(self._ids[addr], kthread.text(raw, "name"), state, addr, context,
                      await self._string(waiting) if waiting and state == "blocked" else None,
                      vp=vp, domain=domain, space=space, process=process)

    async def _vp(self, addr: int) -> tuple[int | None, int | None]:
        """The number of the struct vp at addr (an official address), and the name of the
        process it runs (its descriptor's `process`; None for 0 or no descriptor)."""
        assert self.layout is not None
        if not addr:
            return None, None
        vp = self.layout.vp
        length = max(vp.end("id"), vp.end("desc"))
        raw = await self.handle.read_memory(addr, length, PHYSICAL)
        if len(raw) < length:
            return None, None
        desc = vp.u32(raw, "desc")
        at = self.layout.psy_vp.offsets["process"]
        name = await self.handle.read_memory(desc + at, 4, PHYSICAL) if desc else b""
        process = int.from_bytes(name, "little") if len(name) == 4 else 0
        return vp.u32(raw, "id"), process or None

    async def _domain(self, addr: int) -> tuple[int | None, AddressSpace | None]:
        """The number of the struct domain at addr, and its page table on this node."""
        assert self.layout is not None
        if not addr:
            return None, None
        domain = self.layout.domain
        length = max(domain.end("id"), domain.offsets["root"] + 4 * (self.handle.node + 1))
        raw = await self.handle.read_memory(addr, length, PHYSICAL)
        if len(raw) < length:
            return None, None
        root = domain.u32(raw, "root", self.handle.node)
        space = AddressSpace(p.SPACE_ROOT, SATP_SV32 | root >> 12) if root else None
        return domain.u32(raw, "id"), space

    def _context(self, raw: bytes) -> SavedContext:
        layout = self.layout
        assert layout is not None
        ctx = raw[layout.kthread.offsets["ctx"]:]
        context = layout.context
        s = tuple(context.u32(ctx, "s", i) for i in range(layout.saved_registers))
        return SavedContext(context.u32(ctx, "ra"), context.u32(ctx, "sp"), s,
                            complete=context.u32(ctx, "saved") != 0)

    async def _string(self, addr: int) -> str | None:
        data = await self.handle.read_as_debugger(addr, min(NAME_LIMIT, (1 << 32) - addr))
        text = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        return text or None


def threads_xml(threads: list[Thread]) -> bytes:
    """The qXfer:threads:read document: every thread with its name and state (none for the node
    as one thread, which gdb then shows as plain "Thread 1", as before)."""
    lines = ['<?xml version="1.0"?>', "<threads>"]
    for t in threads:
        name = f" name={quoteattr(t.name)}" if t.name else ""
        lines.append(f'<thread id="{t.tid:x}"{name}>{escape(t.describe())}</thread>')
    lines.append("</threads>")
    return "\n".join(lines).encode()

