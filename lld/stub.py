"""The per-node lld: serves one request against one node and answers it.

lld holds no state about debugger sessions: any frame from any client at any
time gets the same answer.  What it does keep is state *of the node*, which
must outlive every debugger (the paper's section 5):

* breakpoints (address, kind) and watchpoints;
* `mutations`, the count of changes lld has made to the node, which with the
  machine's stop counter makes the node's change counter `gen`;
* the reason of the last stop, and the data address of a watchpoint hit;
* `recent_changes`: fingerprints of the last CHANGE_HISTORY requests that
  made a change, each with the gen it was made from, so a repeat of any of
  them is answered as a duplicate instead of as stale: the client learns
  for certain that its change took effect, even when its reply was lost and
  the node has stopped again since.

Breakpoints are not patched into memory: lld hands the CPU a per-node set of
virtual pcs, checked before each instruction (Cpu.breakpoints).  So the
instruction under a breakpoint never leaves memory (lld "keeps" it by never
overwriting it), memory read through lld shows the original bytes, another
node running the same physical code is not stopped, a dead debugger leaves
code that runs and restarts unmodified, and a breakpoint may be set on a
page that is not mapped yet.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lld import protocol as p
from lld.codec import MAX_PAYLOAD, VERSION, Frame
from lld.target import NodeTarget, Segment, TargetError
from psyche.machine.cpu import STOP_BREAKPOINT, STOP_NONE, STOP_REQUESTED, STOP_TRAP_LOOP, STOP_WATCH
from psyche.machine.machine import TIMEBASE_HZ
from psyche.machine.physmem import NODE_RAM_SIZE, RAM_BASE

if TYPE_CHECKING:
    from lld.history import History

M32 = 0xFFFFFFFF
#: How many of its latest changes a node's lld recognises when their requests come again.
CHANGE_HISTORY = 32
ISA = "rv32ima_zicsr_zifencei_sstc sv32 msu"


@dataclass
class Watchpoint:
    space: int
    addr: int
    length: int
    kind: int
    root: int
    #: Where the range lay in physical memory when it was set (it is not re-translated).
    segments: list[Segment]

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.addr, self.length, self.kind)

    def pages(self) -> list[int]:
        return sorted({ppn for seg in self.segments
                       for ppn in range(seg.paddr >> 12, ((seg.paddr + seg.length - 1) >> 12) + 1)})

    def match(self, paddr: int, size: int, is_write: bool) -> int | None:
        """The watched address an access touches, or None."""
        if not self.kind & (p.WATCH_WRITE if is_write else p.WATCH_READ):
            return None
        for seg in self.segments:
            if paddr < seg.paddr + seg.length and seg.paddr < paddr + size:
                return (self.addr + seg.voffset + max(paddr, seg.paddr) - seg.paddr) & M32
        return None


@dataclass
class NodeDebugState:
    """What lld remembers about one node.  None of it belongs to a debugger session."""

    breakpoints: dict[int, int] = field(default_factory=dict)          # addr -> kind
    watchpoints: dict[tuple[int, int, int], Watchpoint] = field(default_factory=dict)
    mutations: int = 0
    #: The machine stop counter value whose reason lld has recorded.
    reason_stops: int = 0
    reason: int = p.REASON_NONE
    data_addr: int = 0
    watch_flags: int = 0
    #: A watchpoint hit by the node since its last recorded stop: (address, flags).
    watch_hit: tuple[int, int] | None = None
    #: (fingerprint of the request, gen it was applied at) for the latest changes lld made.
    recent_changes: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=CHANGE_HISTORY))


@dataclass
class NodeStats:
    served: int = 0
    #: Requests served while the node was running: it was interrupted, not stopped, to answer.
    interruptions: int = 0
    dropped: int = 0
    #: Requests that raised inside lld (answered E_INTERNAL): always a bug, counted for the tests.
    internal_errors: int = 0


def _expedite(request: p.Request) -> bool:
    return isinstance(request, (p.Step, p.Reverse)) and request.expedite


def _prefetch(request: p.Request) -> tuple[p.ReadMem, ...]:
    return request.prefetch if isinstance(request, (p.Step, p.Resume, p.GetStatus)) else ()


def fingerprint(code: int, payload: bytes) -> int:
    return zlib.crc32(bytes((code,)) + payload)


class NodeLld:
    """lld on one node: node state plus the rules of the protocol."""

    def __init__(self, target: NodeTarget, mailbox_limit: int = 16) -> None:
        self.target = target
        self.index = target.index
        # -1: the first sync records the reason of whatever stop the node is in (say, after a restore).
        self.state = NodeDebugState(reason_stops=-1)
        self.stats = NodeStats()
        #: Frames the king forwarded across the switch, served at the next round boundary.
        self.mailbox: deque[Frame] = deque()
        self.mailbox_limit = mailbox_limit
        #: The machine's history (lld/history/), when reverse execution is on.
        self.history: History | None = None
        #: Status flags of the last travel (FLAG_HISTORY_BEGIN) or of a change made in the past.
        self.travel_flags = 0
        #: Expedited RESUMEs served at this boundary, answered at the next (`settled`), with the
        #: memory each asked to prefetch.
        self._settling: list[tuple[Frame, tuple[p.ReadMem, ...]]] = []
        #: Set while serving an expedited RESUME: its reply waits for the next boundary.
        self._deferring: tuple[p.ReadMem, ...] | None = None

    # -- the switch ---------------------------------------------------------------

    def waits_for_frames(self) -> bool:
        """True for a stopped node with nothing in its mailbox: its lld serves a frame at once (the
        paper's stopped node spins in lld), and nothing overtakes a frame forwarded before."""
        return self.target.state == p.STATE_STOPPED and not self.mailbox

    def deliver(self, frame: Frame) -> bool:
        """A remote interrupt from the king carrying a frame; False if the mailbox is full."""
        if len(self.mailbox) >= self.mailbox_limit:
            self.stats.dropped += 1
            return False
        self.mailbox.append(frame)
        return True

    def serve_mailbox(self) -> list[Frame]:
        replies = []
        while self.mailbox:
            reply = self.serve(self.mailbox.popleft())
            if reply is not None:
                replies.append(reply)
        return replies

    # -- answers that wait for a round ------------------------------------------------------

    @property
    def settling(self) -> bool:
        """True while an expedited RESUME waits for the next boundary to be answered."""
        return bool(self._settling)

    def settled(self) -> list[Frame]:
        """The replies to last boundary's expedited RESUMEs: the node's status now, a round on.

        On hardware lld would arm a timer for a quantum and resume the node; the node's next
        trap, a breakpoint's or the timer's, brings lld back to answer.  A node that stopped
        meanwhile is answered with its registers and code, as a STATUS with expedite would be.
        """
        settling, self._settling = self._settling, []
        return [Frame(node=f.node, seq=f.seq, code=f.code, reply=True, status=p.OK,
                      payload=self.status(expedite=True, prefetch=prefetch).encode())
                for f, prefetch in settling]

    # -- node state as the protocol sees it ----------------------------------------------

    def gen(self) -> int:
        """The node's change counter: every stop and every change lld makes advances it."""
        return (self.target.stops + self.state.mutations) & M32

    def sync(self) -> None:
        """Learn the reason of a stop lld did not make itself (a round ended in a stop)."""
        st = self.state
        if self.target.stops == st.reason_stops:
            return
        st.reason_stops = self.target.stops
        self._record_reason(self.target.machine_stop_reason, stepped=False)

    def stop_reason(self) -> int:
        """The reason (REASON_*) of the node's last stop, as its status would give it."""
        self.sync()
        return self.state.reason

    def _record_reason(self, cpu_reason: int, stepped: bool) -> None:
        st = self.state
        st.data_addr = 0
        st.watch_flags = 0
        hit, st.watch_hit = st.watch_hit, None
        if cpu_reason == STOP_BREAKPOINT:
            kind = st.breakpoints.get(self.target.cpu.pc & M32)
            st.reason = p.REASON_PANIC if kind == p.BP_PANIC else p.REASON_BREAKPOINT
        elif cpu_reason == STOP_WATCH:
            if hit is not None:
                st.reason = p.REASON_WATCHPOINT
                st.data_addr, st.watch_flags = hit
            else:
                st.reason = p.REASON_HOST  # another watch hook (e.g. tohost) stopped it
        elif cpu_reason == STOP_TRAP_LOOP:
            st.reason = p.REASON_TRAP_LOOP
        elif cpu_reason == STOP_REQUESTED:
            st.reason = p.REASON_REQUESTED
        elif cpu_reason == STOP_NONE and stepped:
            st.reason = p.REASON_STEP
        else:
            st.reason = p.REASON_HOST

    def status(self, flags: int = 0, expedite: bool = False,
               prefetch: tuple[p.ReadMem, ...] = ()) -> p.Status:
        """The node's status; with expedite, a stopped node's x0-x31 and pc come with it, its code
        around pc, and the memory `prefetch` names (read now, as READ_MEM would)."""
        self.sync()
        t = self.target
        cpu = t.cpu
        stopped = t.state == p.STATE_STOPPED
        if cpu.waiting:
            flags |= p.FLAG_WAITING
        if stopped:
            flags |= self.state.watch_flags | self.travel_flags
        if self.history is not None and self.history.in_past:
            flags |= p.FLAG_PAST
            if self.history.accessor(self.index):
                flags |= p.FLAG_ACCESSOR
        status = p.Status(
            state=t.state, reason=self.state.reason if stopped else p.REASON_NONE, priv=cpu.priv,
            flags=flags, stops=t.stops & M32, gen=self.gen(), pc=cpu.pc & M32,
            data_addr=self.state.data_addr if stopped else 0, cycles=cpu.cycles, instret=cpu.instret,
        )
        if not (expedite and stopped):
            return status
        code = self._code_window(status.code_addr)
        plain = code is not None and t.code_page_plain()
        return dataclasses.replace(status, registers=tuple(t.read_reg(r) for r in range(p.EXPEDITED_REGS)),
                                   code=code, memory=tuple(self._fetch(r) for r in prefetch),
                                   code_flags=p.CODE_PLAIN if plain else 0,
                                   code_crc=zlib.crc32(code) if plain and code is not None else 0)

    def _fetch(self, request: p.ReadMem) -> p.Fetched:
        data: bytes | None
        try:
            data = self.target.read_mem(request.space, request.addr, request.length, request.root)
        except TargetError:
            data = None
        return p.Fetched(request.space, request.addr, request.root, request.length, data)

    def _code_window(self, addr: int) -> bytes | None:
        """The expedited code at addr, or None if the node's page tables do not let it be read."""
        try:
            return self.target.read_mem(p.SPACE_VIRT, addr, p.CODE_WINDOW)
        except TargetError:
            return None

    def on_access(self, paddr: int, size: int, is_write: bool) -> bool:
        """Watch hook for this node's accesses to watched pages: True stops the CPU."""
        for wp in self.state.watchpoints.values():
            addr = wp.match(paddr, size, is_write)
            if addr is not None:
                self.state.watch_hit = (addr, p.FLAG_WATCH_WRITE if is_write else p.FLAG_WATCH_READ)
                return True
        return False

    # -- serving -----------------------------------------------------------------------

    def serve(self, frame: Frame) -> Frame | None:
        """The reply to one request frame addressed to this node, or None if it comes at the next
        boundary (an expedited RESUME that let the node run: `settled`)."""
        self.stats.served += 1
        if self.target.state == p.STATE_RUNNING:
            self.stats.interruptions += 1
        self._deferring = None
        try:
            status, payload = self.handle(frame.code, frame.payload, frame.version)
        except Exception as e:  # noqa: BLE001 - a bug in lld must not take the machine down with it
            self.stats.internal_errors += 1
            status, payload = p.E_INTERNAL, p.encode_error(p.E_INTERNAL, message=f"{type(e).__name__}: {e}")
        if self._deferring is not None and status == p.OK:
            self._settling.append((frame, self._deferring))
            self._deferring = None
            return None
        return Frame(node=frame.node, seq=frame.seq, code=frame.code, payload=payload, reply=True,
                     status=status)

    def handle(self, code: int, payload: bytes, version: int = VERSION) -> tuple[int, bytes]:
        """(status, reply payload) for a request: a function of the node and the request only."""
        if version != VERSION:
            return p.E_VERSION, p.encode_error(p.E_VERSION)
        try:
            request = p.decode_request(code, payload)
        except KeyError:
            return p.E_BAD_REQUEST, p.encode_error(p.E_BAD_REQUEST, message=f"unknown request {code:#x}")
        except p.PayloadError as e:
            return p.E_BAD_PAYLOAD, p.encode_error(p.E_BAD_PAYLOAD, message=str(e))
        self.sync()
        try:
            if request.mutating:
                return self._change(request, fingerprint(code, payload))
            return p.OK, self._read(request)
        except TargetError as e:
            return e.code, p.encode_error(e.code, status=self.status(), addr=e.addr, cause=e.cause,
                                          reg=e.reg, message=e.message)

    # -- requests that only look ------------------------------------------------------------

    def _read(self, request: p.Request) -> bytes:
        t = self.target
        if isinstance(request, p.Describe):
            m = t.machine
            return p.MachineDescription(
                lld_version=p.LLD_VERSION, frame_version=VERSION, nodes=len(m.nodes),
                max_payload=MAX_PAYLOAD, max_data=p.MAX_DATA, max_breakpoints=p.MAX_BREAKPOINTS,
                max_watchpoints=p.MAX_WATCHPOINTS, ram_base=RAM_BASE, node_ram_size=NODE_RAM_SIZE,
                quantum=m.config.quantum, timebase_hz=TIMEBASE_HZ, isa=ISA,
            ).encode()
        if isinstance(request, p.GetStatus):
            return self.status(expedite=request.expedite, prefetch=request.prefetch).encode()
        if isinstance(request, p.ReadRegs):
            regs = request.regs or p.GENERAL_REGS
            if len(regs) > p.MAX_REGS:
                raise TargetError(p.E_TOO_LARGE, message=f"at most {p.MAX_REGS} registers")
            return p.encode_values([t.read_reg(r) for r in regs])
        if isinstance(request, p.ReadMem):
            if request.length > p.MAX_DATA:
                raise TargetError(p.E_TOO_LARGE, message=f"at most {p.MAX_DATA} bytes")
            return t.read_mem(request.space, request.addr, request.length, request.root)
        if isinstance(request, p.ListBreakpoints):
            items = []
            for addr, kind in sorted(self.state.breakpoints.items()):
                try:
                    word = int.from_bytes(t.read_mem(p.SPACE_VIRT, addr, 4), "little")
                except TargetError:
                    word = None
                items.append(p.BreakpointInfo(addr, kind, word))
            return p.encode_breakpoints(items)
        if isinstance(request, p.ListWatchpoints):
            return p.encode_watchpoints([
                p.WatchpointInfo(wp.space, wp.kind, wp.addr, wp.length, wp.root, wp.segments[0].paddr)
                for _, wp in sorted(self.state.watchpoints.items())
            ])
        if isinstance(request, p.Translate):
            if request.space not in (p.SPACE_VIRT, p.SPACE_ROOT) or request.access not in (0, 1, 2):
                raise TargetError(p.E_BAD_PAYLOAD, message="translate needs a virtual space and an access")
            return t.translate(request.space, request.addr, request.access, request.root).to_bytes(4, "big")
        raise AssertionError(f"unhandled read request {request!r}")

    # -- requests that change the node ------------------------------------------------------

    def _change(self, request: p.Request, fp: int) -> tuple[int, bytes]:
        assert isinstance(request, p.Change)
        st = self.state
        guard = request.guard
        gen = self.gen()
        if guard == p.ANY_GEN:
            if request.needs_stop:
                return p.E_BAD_GUARD, self.status().encode()
        elif guard != gen:
            if (fp, guard) in st.recent_changes:
                # A repeat of a request that made a change from that very gen: it took effect already.
                return p.OK, self.status(p.FLAG_DUPLICATE, _expedite(request), _prefetch(request)).encode()
            return p.E_STALE, self.status().encode()
        self.travel_flags = 0
        if self._apply(request):
            st.recent_changes.append((fp, gen))
        return p.OK, self.status(expedite=_expedite(request), prefetch=_prefetch(request)).encode()

    def _count_change(self) -> bool:
        self.state.mutations += 1
        return True

    def _apply(self, request: p.Request) -> bool:
        """Make the change (or raise TargetError having changed nothing); True if anything changed."""
        t = self.target
        st = self.state
        if isinstance(request, p.Stop):
            if t.state != p.STATE_RUNNING:
                return False
            t.stop()
            st.reason_stops = t.stops
            st.watch_hit = None
            self._record_reason(STOP_REQUESTED, stepped=False)
            return True
        history = self.history
        if isinstance(request, p.Reverse):
            self._need_stopped()
            if history is None:
                raise TargetError(p.E_BAD_REQUEST,
                                  message="this machine keeps no history (psyche machine --reverse)")
            if request.op == p.REVERSE_STEP:
                history.reverse_step(self.index)
            else:
                history.reverse_continue(self.index)
            return True
        if isinstance(request, p.Resume):
            self._need_stopped()
            self._check_code(request.code_crc)
            self._deferring = request.prefetch if request.expedite else None
            if request.steps is not None and self._steps(request.steps, False):
                return True   # a step stopped for a reason of its own: the node stays there
            if history is not None and history.in_past and history.forward_continue(self.index):
                return True
            t.resume()
            return self._count_change()
        if isinstance(request, p.Step):
            self._need_stopped()
            self._check_code(request.code_crc)
            self._steps(request.count, request.take_interrupts)
            return True
        if isinstance(request, (p.WriteRegs, p.WriteMem)) and history is not None and history.in_past:
            history.discard_future()
            self.travel_flags = p.FLAG_FUTURE_DISCARDED
        if isinstance(request, p.WriteRegs):
            self._need_stopped()
            if len(request.values) > p.MAX_REGS:
                raise TargetError(p.E_TOO_LARGE, message=f"at most {p.MAX_REGS} registers")
            t.write_regs(request.values)
            return self._count_change()
        if isinstance(request, p.WriteMem):
            if len(request.data) > p.MAX_DATA:
                raise TargetError(p.E_TOO_LARGE, message=f"at most {p.MAX_DATA} bytes")
            t.write_mem(request.space, request.addr, request.data, request.root)
            return self._count_change()
        if isinstance(request, p.SetBreakpoint):
            return self.set_breakpoint(request.addr, request.kind)
        if isinstance(request, p.ClearBreakpoint):
            if request.addr not in st.breakpoints:
                return False
            del st.breakpoints[request.addr]
            t.remove_breakpoint(request.addr)
            return self._count_change()
        if isinstance(request, p.SetWatchpoint):
            return self._set_watchpoint(request)
        if isinstance(request, p.ClearWatchpoint):
            wp = st.watchpoints.pop((request.addr, request.length, request.kind), None)
            if wp is None:
                return False
            self._unwatch(wp)
            return self._count_change()
        if isinstance(request, p.ClearAll):
            if not st.breakpoints and not st.watchpoints:
                return False
            for addr in st.breakpoints:
                t.remove_breakpoint(addr)
            for wp in st.watchpoints.values():
                self._unwatch(wp)
            st.breakpoints.clear()
            st.watchpoints.clear()
            return self._count_change()
        raise AssertionError(f"unhandled change request {request!r}")

    def _check_code(self, crc: int | None) -> None:
        """A code check (CODE_CHECK): the code around pc must be what the debugger answered the
        steps from (the code window its status carried, by CRC)."""
        if crc is None:
            return
        pc = self.target.cpu.pc & M32
        code = self._code_window(pc - pc % p.CODE_WINDOW)
        if code is None or zlib.crc32(code) != crc:
            raise TargetError(p.E_CODE_CHANGED, message="the code at pc changed since the steps were "
                                                        "answered from it: none made")

    def _steps(self, count: int, take_interrupts: bool) -> bool:
        """Make count steps, each a stop; True if one stopped for a reason of its own (a
        watchpoint, a trap loop, a hit found in the machine's past), the rest unmade."""
        t = self.target
        st = self.state
        history = self.history
        for _ in range(count):
            if history is not None and history.in_past and history.forward_step(self.index):
                if st.reason != p.REASON_STEP:
                    return True
                continue
            reason = t.step(take_interrupts)
            st.reason_stops = t.stops
            self._record_reason(reason, stepped=True)
            if history is not None:
                history.after_step(self.index)
            if st.reason != p.REASON_STEP:
                return True
        return False

    def _need_stopped(self) -> None:
        if self.target.state != p.STATE_STOPPED:
            raise TargetError(p.E_STATE)

    def set_breakpoint(self, addr: int, kind: int) -> bool:
        st = self.state
        if kind not in (p.BP_NORMAL, p.BP_PANIC):
            raise TargetError(p.E_BAD_PAYLOAD, message=f"unknown breakpoint kind {kind}")
        if addr & 3:
            raise TargetError(p.E_ALIGN, addr=addr)
        if st.breakpoints.get(addr) == kind:
            return False
        if addr not in st.breakpoints and len(st.breakpoints) >= p.MAX_BREAKPOINTS:
            raise TargetError(p.E_LIMIT, message=f"at most {p.MAX_BREAKPOINTS} breakpoints a node")
        st.breakpoints[addr] = kind
        self.target.insert_breakpoint(addr)
        return self._count_change()

    def _set_watchpoint(self, r: p.SetWatchpoint) -> bool:
        st = self.state
        if r.kind not in (p.WATCH_READ, p.WATCH_WRITE, p.WATCH_ACCESS):
            raise TargetError(p.E_BAD_PAYLOAD, message=f"unknown watchpoint kind {r.kind}")
        if not 1 <= r.length <= p.MAX_WATCH_LENGTH:
            raise TargetError(p.E_TOO_LARGE, message=f"watch 1 to {p.MAX_WATCH_LENGTH} bytes")
        key = (r.addr, r.length, r.kind)
        if key not in st.watchpoints and len(st.watchpoints) >= p.MAX_WATCHPOINTS:
            raise TargetError(p.E_LIMIT, message=f"at most {p.MAX_WATCHPOINTS} watchpoints a node")
        # Translated once, now: the access kind does not matter to the debugger, only the mapping.
        segments = self.target.resolve(r.space, r.addr, r.length, p.ACCESS_READ, r.root)
        wp = Watchpoint(r.space, r.addr, r.length, r.kind, r.root, segments)
        old = st.watchpoints.get(key)
        if old is not None and (old.space, old.root, old.segments) == (wp.space, wp.root, wp.segments):
            return False
        st.watchpoints[key] = wp
        for ppn in wp.pages():
            self.target.watch_page(ppn)
        if old is not None:
            self._unwatch(old)
        return self._count_change()

    def _unwatch(self, wp: Watchpoint) -> None:
        for ppn in wp.pages():
            self.target.unwatch_page(ppn)
