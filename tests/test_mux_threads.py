"""The mux's view of a node's kernel threads, without a machine: the layout it reads from the
kernel's DWARF (checked against gdb's reading of the same DWARF), the thread values it makes of
the kernel's records, and how a gdb session serves a thread that is not running."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gdbfront.session import GDB, GdbSession
from lld import protocol as p
from lld.testing import build_target_guest
from mux import packets as rsp
from mux.gdb import GdbSession as MuxSession
from mux.kernel_layout import KernelLayout
from mux.memory import AddressSpace
from mux.node import NodeHandle
from mux.threads import LIVE_THREAD, S_REGISTERS, NodeThreads, Thread, threads_xml
from psyche import rv32

needs_gdb = pytest.mark.skipif(shutil.which(GDB) is None, reason=f"{GDB} is not installed")

THREADS = 0x8000_2000          # where the fake node keeps its thread records (official addresses)
SEM_NAME = 0xC000_3000
KERNEL_BASE = 0xC000_0000     # kernel virtual addresses: supervisor pages
SATP = 0x8008_0123


@pytest.fixture(scope="module")
def layout(kernel_elf: Path) -> KernelLayout:
    found = KernelLayout.load(kernel_elf)
    assert found is not None
    return found


@needs_gdb
def test_the_layout_is_what_gdb_reads_in_the_same_dwarf(kernel_elf: Path, layout: KernelLayout) -> None:
    with GdbSession(kernel_elf) as gdb:
        assert layout.this_node == gdb.integer("&this_node")
        tables = (("node", layout.node), ("kthread", layout.kthread), ("context", layout.context))
        for struct, table in tables:
            assert table.size == gdb.integer(f"sizeof(struct {struct})")
            for member, offset in table.offsets.items():
                assert offset == gdb.integer(f"(int)&((struct {struct} *)0)->{member}"), (struct, member)
        assert layout.kthread.sizes["name"] == gdb.integer("sizeof(((struct kthread *)0)->name)")
        states = {gdb.integer(f"(int)T_{name.upper()}"): name for name in layout.states.values()}
        assert layout.states == states


def test_an_elf_that_is_not_the_kernel_has_no_layout(tmp_path: Path) -> None:
    assert KernelLayout.load(build_target_guest().path) is None
    assert KernelLayout.load(tmp_path / "missing.elf") is None
    (tmp_path / "junk.elf").write_bytes(b"not an elf")
    assert KernelLayout.load(tmp_path / "junk.elf") is None


class FakeNode:
    """A stopped node's memory and registers, as a NodeHandle serves them."""

    def __init__(self) -> None:
        self.node = 1
        self.epoch = 0
        self.memory: dict[int, int] = {}
        self.live = list(range(100, 133))    # x0..x31, pc of the running thread
        self.reads = 0
        self.user_mode = False
        self.spaces: set[AddressSpace | None] = set()

    async def read_register(self, lld_reg: int) -> int | None:
        return SATP if lld_reg == p.REG_CSR_BASE + rv32.CSRS["satp"] else None

    def put(self, addr: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            self.memory[addr + i] = byte

    async def read_memory(self, addr: int, length: int, space: AddressSpace | None = None) -> bytes:
        self.reads += 1
        self.spaces.add(space)
        if self.user_mode and addr >= KERNEL_BASE and (space is None or space.space == p.SPACE_VIRT):
            return b""        # a supervisor page, read as user code would
        out = bytearray()
        while len(out) < length and addr + len(out) in self.memory:
            out.append(self.memory[addr + len(out)])
        return bytes(out)

    @property
    def status(self) -> SimpleNamespace:
        return SimpleNamespace(priv=0 if self.user_mode else 1)   # U or S mode

    # The handle's own way of reading as a debugger does, over this node's memory.
    page_table = NodeHandle.page_table
    read_as_debugger = NodeHandle.read_as_debugger

    @property
    def cached_registers(self) -> list[int]:
        return self.live

    async def registers(self) -> list[int]:
        return self.live


class Kernel:
    """Writes thread records into a FakeNode the way the kernel lays them out."""

    def __init__(self, node: FakeNode, layout: KernelLayout) -> None:
        self.node, self.layout = node, layout
        self.records: list[int] = []          # oldest first
        node.put(layout.this_node, bytes(layout.node.size))
        node.put(SEM_NAME, b"daemon work\0")

    def u32(self, addr: int, value: int) -> None:
        self.node.put(addr, value.to_bytes(4, "little"))

    def thread(self, name: str, state: str, *, ra: int = 0, sp: int = 0, waiting: bool = False) -> int:
        k, c = self.layout.kthread, self.layout.context
        addr = THREADS + len(self.records) * 0x100
        self.node.put(addr, bytes(k.size))
        self.node.put(addr + k.offsets["name"], name.encode() + b"\0")
        state_value = next(v for v, n in self.layout.states.items() if n == state)
        self.u32(addr + k.offsets["state"], state_value)
        ctx = addr + k.offsets["ctx"]
        self.u32(ctx + c.offsets["ra"], ra)
        self.u32(ctx + c.offsets["sp"], sp)
        for i in range(self.layout.saved_registers):
            self.u32(ctx + c.offsets["s"] + 4 * i, 0x50 + i)
        self.u32(ctx + c.offsets["saved"], 1)
        self.u32(addr + k.offsets["waiting_on"], SEM_NAME if waiting else 0)
        previous = self.records[-1] if self.records else 0
        self.u32(addr + k.offsets["all_next"], previous)      # the kernel links the newest first
        self.records.append(addr)
        self.u32(self.layout.this_node + self.layout.node.offsets["threads"], addr)
        self.node.epoch += 1
        return addr

    def run(self, addr: int) -> None:
        self.u32(self.layout.this_node + self.layout.node.offsets["current"], addr)
        self.node.epoch += 1


def make(layout: KernelLayout) -> tuple[FakeNode, Kernel, NodeThreads]:
    node = FakeNode()
    return node, Kernel(node, layout), NodeThreads(node, layout)  # type: ignore[arg-type]


def test_threads_are_values_with_ids_kept_across_stops(layout: KernelLayout) -> None:
    async def test() -> None:
        node, kernel, threads = make(layout)
        assert [t.tid for t in await threads.threads()] == [LIVE_THREAD]   # no threads yet: the node
        daemon = kernel.thread("daemon", "blocked", ra=0xC000_1000, sp=0xC002_0000, waiting=True)
        idle = kernel.thread("idle", "running")
        kernel.run(idle)
        listed = await threads.threads()
        assert [(t.tid, t.name, t.state, t.live) for t in listed] == [
            (1, "daemon", "blocked", False), (2, "idle", "running", True)]
        assert listed[0].describe() == "blocked on daemon work"
        saved = listed[0].context
        assert saved is not None
        registers = saved.registers()
        assert (registers[32], registers[1], registers[2], registers[0]) == (0xC000_1000, 0xC000_1000,
                                                                               0xC002_0000, 0)
        assert [registers[r] for r in S_REGISTERS] == [0x50 + i for i in range(layout.saved_registers)]
        assert registers[10] is None and registers[5] is None     # a0, t0: not saved
        assert await threads.current_tid() == 2

        # The node runs on: a new thread appears at the head of the kernel's list, the daemon
        # runs.  Every thread keeps its id.
        kernel.thread("worker", "ready", ra=0xC000_2000)
        kernel.run(daemon)
        listed = await threads.threads()
        assert [(t.tid, t.name) for t in listed] == [(1, "daemon"), (2, "idle"), (3, "worker")]
        assert await threads.current_tid() == 1 and listed[0].live
        assert (await threads.get(3)) == listed[2] and await threads.get(9) is None

        # Asked again at the same stop: no memory read at all.
        reads = node.reads
        await threads.threads()
        assert await threads.current_tid() == 1 and node.reads == reads

    asyncio.run(test())


def test_a_node_stopped_in_user_code_reads_the_kernel_through_its_page_table(layout: KernelLayout) -> None:
    async def test() -> None:
        node, kernel, threads = make(layout)
        kernel.thread("daemon", "running")
        kernel.run(kernel.records[0])
        node.user_mode = True
        assert [(t.name, t.live) for t in await threads.threads()] == [("daemon", True)]
        assert AddressSpace(p.SPACE_ROOT, SATP) in node.spaces   # as S mode sees the same table

    asyncio.run(test())


def test_a_corrupt_list_shows_the_node_as_one_thread(layout: KernelLayout) -> None:
    async def test() -> None:
        node, kernel, threads = make(layout)
        first = kernel.thread("a", "running")
        kernel.thread("b", "ready")
        kernel.run(first)
        kernel.u32(first + layout.kthread.offsets["all_next"], kernel.records[1])   # a cycle
        node.epoch += 1
        assert [(t.tid, t.live) for t in await threads.threads()] == [(LIVE_THREAD, True)]

    asyncio.run(test())


Ask = Callable[[bytes], Awaitable[bytes | None]]


def daemon_and_idle(layout: KernelLayout) -> tuple[Any, MuxSession, Ask]:
    """A session on a node whose daemon is blocked (thread 1, its context saved) and whose idle
    thread runs (thread 2); and a function that asks it one packet."""
    node, kernel, threads = make(layout)
    kernel.thread("daemon", "blocked", ra=0xC000_1000, sp=0xC002_0000, waiting=True)
    idle = kernel.thread("idle", "running")
    kernel.run(idle)
    session = MuxSession(node, lambda _: None, None, threads=threads)  # type: ignore[arg-type]

    async def ask(packet: bytes) -> bytes | None:
        return await session.handle_request(rsp.parse_request(packet))

    return node, session, ask


def test_a_session_shows_a_saved_context_and_refuses_to_change_it(layout: KernelLayout) -> None:
    async def test() -> None:
        node, session, ask = daemon_and_idle(layout)

        assert await ask(b"qfThreadInfo") == b"m1,2"
        assert await ask(b"qC") == b"QC2"
        assert bytes.fromhex((await ask(b"qThreadExtraInfo,1") or b"").decode()) == b"blocked on daemon work"
        xml = await ask(b"qXfer:threads:read::0,fff") or b""
        assert b'<thread id="1" name="daemon">blocked on daemon work</thread>' in xml
        assert await ask(b"Hg7") == rsp.error(0x16) and await ask(b"T7") == rsp.error(0x16)

        assert await ask(b"Hg1") == rsp.OK
        assert await ask(b"p20") == rsp.register_value(0xC000_1000)      # pc: where it resumes
        assert await ask(b"pa") == b"xxxxxxxx"                           # a0: not saved
        g = await ask(b"g") or b""
        assert g[8 * 2: 8 * 3] == rsp.register_value(0xC002_0000) and g[8 * 10: 8 * 11] == b"xxxxxxxx"
        refusal = await ask(b"P9=05000000") or b""
        assert refusal.startswith(b"E.") and b"thread 1 (daemon) is blocked on daemon work" in refusal
        assert (await ask(b"G" + b"00" * 4 * 33) or b"").startswith(b"E.")

        assert await ask(b"Hg2") == rsp.OK                               # the running thread: live
        assert await ask(b"pa") == rsp.register_value(node.live[10])

    asyncio.run(test())


def test_a_stop_makes_the_stopped_thread_the_one_register_reads_mean(layout: KernelLayout) -> None:
    """gdb records the stop reply's thread as the stub's selected one and reads its registers
    without an Hg: the mux must serve the running thread's then, not the one selected before."""
    async def test() -> None:
        node, session, ask = daemon_and_idle(layout)

        assert await ask(b"Hg1") == rsp.OK
        assert await ask(b"pa") == b"xxxxxxxx"                           # the blocked daemon's a0
        stopped = SimpleNamespace(stopped=False, reason=p.REASON_REQUESTED, pc=node.live[32])
        reply = await session.stop_reply(stopped, announce=False)        # type: ignore[arg-type]
        assert b"thread:2;" in reply
        assert await ask(b"pa") == rsp.register_value(node.live[10])     # idle's, live: no Hg came

    asyncio.run(test())


def test_a_thread_list_known_at_this_stop_is_answered_on_the_spot(layout: KernelLayout) -> None:
    """gdb reads the thread list at every stop.  With a kernel it is read through lld once per
    stop, and a repeat is answered without waiting; without one it is the node alone, always."""
    async def test() -> None:
        node, session, ask = daemon_and_idle(layout)
        request = rsp.parse_request(b"qXfer:threads:read::0,fff")
        assert session.answer_now(request) is None                       # not read at this stop
        xml = await ask(b"qXfer:threads:read::0,fff")
        reads = node.reads
        assert session.answer_now(request) == xml and node.reads == reads
        node.epoch += 1                                                  # the node moved on
        assert session.answer_now(request) is None

        alone = FakeNode()
        lone = MuxSession(alone, lambda _: None, None, threads=NodeThreads(alone, None))  # type: ignore[arg-type]
        assert lone.answer_now(request) == rsp.xfer_chunk(threads_xml([Thread(LIVE_THREAD)]), 0, 0xFFF)

    asyncio.run(test())


def test_the_node_as_one_thread_has_no_name_in_the_thread_list() -> None:
    async def test() -> None:
        node = FakeNode()
        threads = NodeThreads(node, None)  # type: ignore[arg-type]
        assert threads_xml(await threads.threads()) == (b'<?xml version="1.0"?>\n<threads>\n'
                                                        b'<thread id="1"></thread>\n</threads>')

    asyncio.run(test())


def test_psyche_mux_and_up_hand_the_kernel_to_the_mux(kernel_elf: Path) -> None:
    from mux.server import Mux, MuxConfig
    from psyche.cli import make_parser

    args = make_parser().parse_args(["mux", "--line", "loop://", "--kernel", str(kernel_elf)])
    assert args.kernel == kernel_elf

    class NoLink:
        pass

    with_kernel = Mux(MuxConfig(2, kernel=kernel_elf), NoLink())  # type: ignore[arg-type]
    assert [t.layout for t in with_kernel.threads] == [KernelLayout.load(kernel_elf)] * 2
    assert with_kernel.threads[1].handle is with_kernel.nodes[1]
    assert Mux(MuxConfig(2), NoLink()).threads[0].layout is None  # type: ignore[arg-type]
