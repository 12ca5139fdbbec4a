"""The whole machine on one gdb connection: every node a thread, in all-stop or non-stop mode.

QEMU shows a multiprocessor guest to gdb as one process whose threads are the
CPUs, and its users expect the same of any multiprocessor.  The machine port
(the base port - 1) gives one gdb every node that no other gdb holds, node k as
thread k + 1, named "node k".  Each node is driven by a `GdbSession` of its own,
exactly as on its own port (the debug semantics of docs/debug-semantics.md);
this front end decides which nodes run, and turns their stops into what gdb's
mode expects:

* **all-stop** (gdb's default): a resume runs the nodes gdb names (all, unless
  scheduler-locking names one), the node gdb is on first.  The first node to
  stop stops all the others, and its stop is reported.  Another node that met
  a breakpoint of its own meanwhile keeps that stop, reported at the next
  resume instead of running it (as gdbserver does).  A resume whose first node
  stops at once (gdb's software single step, run as one lld STEP; a breakpoint
  at pc) runs no other node: a `stepi` moves one node one instruction, and the
  others not at all.
* **non-stop** (`set non-stop on`): each node runs and stops alone.  A resume is
  answered OK; every stop is a `%Stop` notification that gdb drains with
  `vStopped`; `vCont;t` stops a node, reported with signal 0.  Connecting stops
  nothing: `?` reports the nodes that are stopped already.

Breakpoints are the machine's: gdb's one set is placed on every node (the
kernel's code has the same addresses everywhere), brought into lld before a
node runs and, in non-stop mode, at once on the nodes that run.  The nodes'
kernel threads are not shown here: each node's own port shows them.

Reverse execution (a machine with a history, lld/history/), in all-stop mode:
`bs` and `bc` go back for the node of the thread gdb resumes (`Hc`, else the one
it is on), and the whole machine goes back with it, so every thread then shows
the past.  A resume while the machine shows its past moves the machine forward
through its history for the first node it names only (the others go where the
machine goes); once that reaches the present, the others run on live as usual.
A watchpoint stop in the past is reported on the thread of the node that made
the access.  Non-stop mode refuses `bs` and `bc`: its nodes run and stop alone,
and the machine can only move back as a whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable
from xml.sax.saxutils import quoteattr

from lld import protocol as p
from mux import packets as rsp
from mux.gdb import EINVAL, FEATURES, GdbSession, Monitor
from mux.link import LinkError
from mux.node import PC, NodeError, NodeHandle
from mux.runcontrol import DomainScope, StepSettings
from mux.threads import NodeThreads
from psyche import rv32

#: What the machine port implements beyond a node's port: non-stop mode, and vCont's stop.
MACHINE_FEATURES = (
    *(f for f in FEATURES if not f.vcont),
    rsp.Feature(b"vContSupported+", vcont=("c", "C", "s", "S", "t")),
    rsp.Feature(b"QNonStop+"),
)

#: The signal of a stop the machine port made (another node stopped first, or `t`).
QUIET = 0


def thread_of(node: int) -> rsp.ThreadId:
    return rsp.ThreadId(node + 1)


def _is_stop(reply: bytes) -> bool:
    return reply[:1] in (b"T", b"S")


def _is_quiet(reply: bytes) -> bool:
    return reply.startswith(b"T%02x" % QUIET)


class MachineSession:
    """One gdb on many nodes: the nodes as threads, each driven by its own GdbSession."""

    def __init__(self, handles: list[NodeHandle], send: Callable[[bytes], None],
                 notify: Callable[[bytes], None], monitor: Monitor, *,
                 packet_size: int = 4096, no_ack_mode: bool = True) -> None:
        assert handles, "a machine session needs a node"
        self.nodes = [h.node for h in handles]
        self.send = send
        self.notify = notify
        self.packet_size = packet_size
        self.no_ack_mode = no_ack_mode
        #: One set of step settings and one domain scope for the whole machine (`monitor
        #: step-interrupts`, `monitor domains`).
        self.step = StepSettings()
        self.scope = DomainScope()
        self.engines: dict[int, GdbSession] = {}
        for h in handles:
            self.engines[h.node] = GdbSession(
                h, self._sender(h.node), monitor, packet_size=packet_size, no_ack_mode=no_ack_mode,
                threads=NodeThreads(h, None, live_tid=h.node + 1), step=self.step, scope=self.scope,
                accessor_note=False)   # the stop goes to the accessor's thread (_after_past_move)
        self.non_stop = False
        #: The node gdb reads registers and memory of (Hg), and whose stop it saw last.
        self.current = self.nodes[0]
        #: The node gdb's `Hc` named for resuming (bs, bc); None: any (the current one).
        self.resumed: int | None = None
        #: A resume moved the machine through its past: the other nodes' views are stale.
        self._moved_in_past = False
        self._running: set[int] = set()     # nodes a resume of ours runs, their stop not yet in
        self._stops: list[tuple[int, bytes]] = []   # all-stop: stops in, not yet settled
        self._pending: dict[int, bytes] = {}   # all-stop: stops of nodes gdb has not been told of
        self._waiting = False               # all-stop: gdb waits for a stop reply
        self._resuming = False              # all-stop: a resume is still starting nodes
        self._settle: asyncio.Task[None] | None = None
        self._node_stopped = asyncio.Event()
        self._queue: deque[bytes] = deque()  # non-stop: stops to tell, the first one told
        self._closed = False

    @property
    def node(self) -> int:
        return self.current

    @property
    def running(self) -> bool:
        """True while gdb waits for a stop reply (a ctrl-C is then meant for this session)."""
        return self._waiting

    def _engine(self) -> GdbSession:
        return self.engines[self.current]

    # -- requests ------------------------------------------------------------------------

    def answer_now(self, request: rsp.Request) -> bytes | None:  # noqa: C901 - one arm per packet
        match request:
            case rsp.QuerySupported():
                return rsp.supported_reply(self.packet_size, MACHINE_FEATURES, reliable=self.no_ack_mode)
            case rsp.VContQuery():
                return rsp.vcont_reply(MACHINE_FEATURES)
            case rsp.QueryCurrentThread():
                return rsp.current_thread(thread_of(self.current))
            case rsp.QueryThreadInfo(first=first):
                return rsp.thread_list([thread_of(n) for n in self.nodes]) if first else rsp.THREAD_LIST_END
            case rsp.SetThread(op="c", thread=thread):
                self.resumed = None if thread.tid in (0, -1) else self._node_of(thread)
                return rsp.OK
            case rsp.SetThread(thread=thread):
                node = self._node_of(thread)
                if node is None:
                    return rsp.error(EINVAL)
                self.current = node
                return rsp.OK
            case rsp.ThreadAlive(thread=thread):
                return rsp.OK if self._node_of(thread) is not None else rsp.error(EINVAL)
            case rsp.QueryThreadExtraInfo(thread=thread):
                node = self._node_of(thread)
                return rsp.error(EINVAL) if node is None else rsp.hex_bytes(self._state(node).encode())
            case rsp.ReadThreads(offset=offset, length=length):
                return rsp.xfer_chunk(self._threads_xml(), offset, length)
            case rsp.SetNonStop(enabled=enabled) if enabled or not self._running:
                self.non_stop = enabled
                return rsp.OK
            case rsp.StopAck():
                return self._next_notified()
            case rsp.Breakpoint(type=kind) if kind in (rsp.BreakpointType.SOFTWARE,
                                                       rsp.BreakpointType.HARDWARE):
                if self._running:
                    return None   # running nodes get it at once: lld is needed
                return self._breakpoint_everywhere(request)
            case rsp.ReadMemory() if self._runs(self.current):
                return None   # not from the cache: the node changes it as it runs
            case (rsp.ReadRegisters() | rsp.ReadRegister() | rsp.ReadMemory() | rsp.StartNoAckMode()
                  | rsp.QueryAttached() | rsp.ReadFeatures() | rsp.QueryOffsets() | rsp.QuerySymbol()
                  | rsp.MustReplyEmpty() | rsp.QueryTraceStatus() | rsp.Unsupported()
                  | rsp.MalformedRequest()):
                return self._engine().answer_now(request)
        return None

    async def handle_request(self, request: rsp.Request) -> bytes | None:
        reply = self.answer_now(request)
        if reply is not None:
            return reply
        try:
            return await self._handle(request)
        except (LinkError, NodeError) as e:
            return self.failure_reply(request, f"mux: {e}")

    def failure_reply(self, request: rsp.Request, why: str) -> bytes:
        return self._engine().failure_reply(request, why)

    async def _handle(self, request: rsp.Request) -> bytes | None:  # noqa: C901 - one arm per packet
        match request:
            case rsp.HaltReason():
                return await (self._halt_reason_non_stop() if self.non_stop else self._attach_all_stop())
            case rsp.SetNonStop(enabled=False):
                await self._stop_running()   # entering all-stop stops every node
                self.non_stop = False
                return rsp.OK
            case rsp.VCont(actions=actions):
                return await self._resume(self._plan(actions))
            case rsp.ReverseStep():
                return await self._reverse(p.REVERSE_STEP)
            case rsp.ReverseContinue():
                return await self._reverse(p.REVERSE_CONTINUE)
            case rsp.Continue(addr=addr) | rsp.Step(addr=addr):
                # (`c ADDR`, `s ADDR`: the node gdb is on goes on from ADDR; the old-style
                # continue runs every node, the step that one)
                if addr is not None and (addr > rv32.M32 or not await self._engine().handle.write_registers(
                        [(PC, addr)])):
                    return rsp.error(EINVAL)
                step = isinstance(request, rsp.Step)
                return await self._resume({self.current: "s"} if step else {n: "c" for n in self.nodes})
            case rsp.Breakpoint(type=kind) if kind in (rsp.BreakpointType.SOFTWARE,
                                                       rsp.BreakpointType.HARDWARE):
                reply = self._breakpoint_everywhere(request)
                for node in sorted(self._running):
                    await self.engines[node].run_control.synced()
                return reply
            case rsp.Breakpoint():
                return await self._watchpoint_everywhere(request)
            case rsp.ReadMemory() if self._runs(self.current):
                engine = self._engine()
                engine.handle.forget()   # lld reads a running node as it is now; nothing is kept
                read = await engine.handle_request(request)
                engine.handle.forget()
                return read
            case rsp.CtrlC():
                await self._stop_running(rsp.SIGINT)
                return rsp.OK
            case rsp.Detach():
                await self.detach()
                return rsp.OK
            case rsp.Kill():
                return None
        return await self._engine().handle_request(request)

    def _node_of(self, thread: rsp.ThreadId) -> int | None:
        """The node gdb's thread id names; any (0) or all (-1): the current one."""
        if thread.tid in (0, -1):
            return self.current
        node = thread.tid - 1
        return node if node in self.engines else None

    # -- threads --------------------------------------------------------------------------

    def _runs(self, node: int) -> bool:
        status = self.engines[node].handle.status
        return node in self._running or (status is not None and status.running)

    def _state(self, node: int) -> str:
        if self._runs(node):
            return "running"
        return "stopped" if self.engines[node].handle.status is not None else "not yet seen"

    def _threads_xml(self) -> bytes:
        lines = ['<?xml version="1.0"?>', "<threads>"]
        for node in self.nodes:
            lines.append(f'<thread id="{thread_of(node).tid:x}" name={quoteattr(f"node {node}")}>'
                         f"{self._state(node)}</thread>")
        lines.append("</threads>")
        return "\n".join(lines).encode()

    # -- breakpoints ----------------------------------------------------------------------

    def _breakpoint_everywhere(self, bp: rsp.Breakpoint) -> bytes:
        replies = {self.engines[n].breakpoint_now(bp) for n in self.nodes}
        return rsp.OK if replies == {rsp.OK} else rsp.error(EINVAL)

    async def _watchpoint_everywhere(self, bp: rsp.Breakpoint) -> bytes:
        """A watchpoint on every node; if one refuses, the ones already set are taken back."""
        done: list[int] = []
        for node in self.nodes:
            reply = await self.engines[node].watchpoint(bp)
            if reply != rsp.OK and bp.insert:
                for other in done:
                    await self.engines[other].watchpoint(rsp.Breakpoint(False, bp.type, bp.addr, bp.kind))
                return reply
            done.append(node)
        return rsp.OK

    # -- stops from the nodes --------------------------------------------------------------

    def _sender(self, node: int) -> Callable[[bytes], None]:
        def send(payload: bytes) -> None:
            if not _is_stop(payload) and not payload.startswith(b"E"):
                self.send(payload)   # console output
                return
            self._running.discard(node)
            self._node_stopped.set()
            if self.non_stop:
                self._tell(payload)
            else:
                self._stops.append((node, payload))
                if not self._resuming:
                    self._start_settling()
        return send

    def _start_settling(self) -> None:
        if self._waiting and (self._settle is None or self._settle.done()):
            self._settle = asyncio.get_running_loop().create_task(self._settle_all_stop())

    async def _settle_all_stop(self) -> None:
        """A node stopped: stop the rest, then report one stop and keep the others' events."""
        try:
            await self._stop_running()
        except (LinkError, NodeError) as e:
            self.send(rsp.console_output(f"mux: {e}\n".encode()))
        stops, self._stops = self._stops, []
        events = [(n, r) for n, r in stops if not _is_quiet(r)] or stops
        node, reply = next(((n, r) for n, r in events if n == self.current), events[0])
        for other, event in events:
            if other != node and not _is_quiet(event):
                self._pending[other] = event
        try:
            node, reply = await self._after_past_move(node, reply)
        except (LinkError, NodeError) as e:
            self.send(rsp.console_output(f"mux: {e}\n".encode()))
        self.current = node
        self._waiting = False
        self.send(reply)

    async def _stop_running(self, signal: int = QUIET) -> None:
        """Stop every node a resume of ours runs, and wait until each has reported its stop."""
        running = sorted(self._running)
        await asyncio.gather(*(self.engines[n].run_control.interrupt(signal if n == self.current else QUIET)
                               for n in running))
        while self._running:
            self._node_stopped.clear()
            await self._node_stopped.wait()

    async def interrupt(self) -> None:
        """gdb's ctrl-C (all-stop): stop every node; the one gdb is on (or the first running)
        reports SIGINT, the others stop quietly."""
        if not self._running:
            return
        if self.current not in self._running:
            self.current = min(self._running)
        await self._stop_running(rsp.SIGINT)

    # -- all-stop -------------------------------------------------------------------------

    async def _attach_all_stop(self) -> bytes:
        """`?`: every node stops, as a multiprocessor under a debugger does; gdb sees the current."""
        engines = [self.engines[n] for n in self.nodes]
        statuses = await asyncio.gather(*(e.handle.stop() for e in engines))
        status = statuses[self.nodes.index(self.current)]
        return await self._engine().stop_reply(status, announce=False)

    def _plan(self, actions: tuple[rsp.VContAction, ...]) -> dict[int, str]:
        """Each node's action (c, s or t) under vCont's rule: the first action that names it."""
        plan: dict[int, str] = {}
        for action in actions:
            named = self.nodes if action.thread is None or action.thread.tid == -1 else \
                [n for n in [self._node_of(action.thread)] if n is not None]
            for node in named:
                plan.setdefault(node, action.kind)
        return plan

    async def _resume(self, plan: dict[int, str]) -> bytes | None:
        return await (self._resume_non_stop(plan) if self.non_stop else self._resume_all_stop(plan))

    async def _resume_all_stop(self, plan: dict[int, str]) -> bytes | None:
        plan = {n: kind for n, kind in plan.items() if kind in ("c", "s")}
        if not plan:
            return rsp.OK
        for node in plan:
            event = self._pending.pop(node, None)
            if event is not None and self._still_pending(node, event):
                self.current = node   # a stop gdb has not seen yet: that first, nothing runs
                return event
        past = self._in_past()
        self._moved_in_past = past
        self._waiting = True
        self._resuming = True
        try:
            for index, node in enumerate(sorted(plan, key=lambda n: n != self.current)):
                if past and index > 0:
                    # The first node went forward through the machine's history.  Still there
                    # (it met a breakpoint or a watched access on the way): the machine moved as
                    # a whole, and the others are where it went.  At the present: they run on.
                    status = await self.engines[node].handle.refresh()
                    if status.flags & p.FLAG_PAST:
                        break
                    past = False
                    await self._refresh_all()
                reply = await self.engines[node].resume(None, step=plan[node] == "s")
                if reply is None:
                    self._running.add(node)
                    continue
                if self._running:
                    await self._stop_running()   # stopped (or refused) at once: the others stop too
                    self._pending.update((n, r) for n, r in self._stops if not _is_quiet(r))
                    self._stops = []
                if _is_stop(reply):
                    node, reply = await self._after_past_move(node, reply)
                    self.current = node
                self._waiting = False
                return reply
        finally:
            self._resuming = False
        if self._stops:
            self._start_settling()
        return None

    def _still_pending(self, node: int, event: bytes) -> bool:
        """Whether a kept stop is still news: not a breakpoint hit whose breakpoint gdb has
        removed since (gdb would take it for a stray trap; gdbserver discards those too)."""
        if b"swbreak:" not in event:
            return True
        engine = self.engines[node]
        status = engine.handle.status
        return status is not None and status.pc in engine.breakpoints

    # -- reverse execution ----------------------------------------------------------------

    def _in_past(self) -> bool:
        """The machine shows a state of its history (as the last status seen of it says)."""
        status = self.engines[self.current].handle.status
        return status is not None and bool(status.flags & p.FLAG_PAST)

    async def _reverse(self, op: int) -> bytes:
        """bs, bc (all-stop only): back for the node gdb resumes; the whole machine goes with it."""
        node = self.resumed if self.resumed is not None else self.current
        if self.non_stop:
            return await self._refuse_reverse(node)
        self._pending.clear()   # stops of the present gdb was not told of: the machine leaves it
        self._moved_in_past = True
        reply = await self.engines[node].reverse(op)
        if not _is_stop(reply):
            self._moved_in_past = False
            return reply
        node, reply = await self._after_past_move(node, reply)
        self.current = node
        return reply

    async def _refuse_reverse(self, node: int) -> bytes:
        """Non-stop mode: bs and bc are refused.  gdb waits for a stop notification after either
        (whatever the reply), so the node's stop is told again, as the start of the history (gdb:
        "No more reverse-execution history."): the command ends where it began."""
        engine = self.engines[node]
        status = await engine.handle.refresh()
        if status.stopped:
            stop = await engine.stop_reply(status, announce=False)
            told = stop[:3] + b"replaylog:begin;" + stop[3:]
            # after the refusal has gone out (the reply is sent as soon as this returns)
            asyncio.get_running_loop().call_soon(self._tell, told)
        return (b"E.mux: reverse execution on the machine port needs all-stop mode (set non-stop "
                b"off): the whole machine goes back together, and in non-stop mode its nodes run "
                b"and stop alone")

    async def _after_past_move(self, node: int, reply: bytes) -> tuple[int, bytes]:
        """A stop after the machine moved through its past: every other node is stopped where it
        stands (in the past, the nodes that were running at that moment are running in lld's
        eyes; in all-stop mode gdb holds them all) and read again, and a watchpoint stop goes to
        the thread of the node that made the access."""
        if not self._moved_in_past:
            return node, reply
        self._moved_in_past = False
        for other in self.nodes:
            if other != node:
                handle = self.engines[other].handle
                handle.forget()
                await handle.stop()   # (a stop in the past changes no history: no round runs there)
        status = self.engines[node].handle.status
        if status is None or status.reason != p.REASON_WATCHPOINT or not status.flags & p.FLAG_PAST:
            return node, reply
        for other in self.nodes:
            mine = self.engines[other].handle.status
            if other != node and mine is not None and mine.flags & p.FLAG_ACCESSOR:
                flags = mine.flags | (status.flags & (p.FLAG_WATCH_READ | p.FLAG_WATCH_WRITE))
                moved = dataclasses.replace(mine, reason=p.REASON_WATCHPOINT, data_addr=status.data_addr,
                                            flags=flags)
                return other, await self.engines[other].stop_reply(moved, announce=False)
        return node, reply

    async def _refresh_all(self, except_node: int = -1) -> None:
        """Read every node's status again, dropping what was kept of it (the machine moved)."""
        for node in self.nodes:
            if node != except_node:
                handle = self.engines[node].handle
                handle.forget()
                await handle.refresh()

    # -- non-stop -------------------------------------------------------------------------

    async def _resume_non_stop(self, plan: dict[int, str]) -> bytes:
        for node, kind in sorted(plan.items()):
            engine = self.engines[node]
            if kind == "t":
                await self._halt(node)
                continue
            status = engine.handle.status or await engine.handle.refresh()
            if node in self._running or not status.stopped:
                continue   # running already
            reply = await engine.resume(None, step=kind == "s")
            if reply is None:
                self._running.add(node)
            elif _is_stop(reply):
                self._tell(reply)
            else:
                return reply
        return rsp.OK

    async def _halt(self, node: int) -> None:
        """`t`: stop a running node; its stop is told with signal 0 (nothing for a stopped one)."""
        engine = self.engines[node]
        if node in self._running:
            await engine.run_control.interrupt(QUIET)
            return
        status = engine.handle.status or await engine.handle.refresh()
        if status.stopped:
            return
        await engine.run_control.interrupt(QUIET)   # (sets the signal its stop is reported with)
        self._tell(await engine.stop_reply(await engine.handle.stop(), announce=False))

    async def _halt_reason_non_stop(self) -> bytes:
        """`?` in non-stop mode: a new sequence of every stopped node's stop, or OK if all run.

        Nodes that run (they ran before gdb came) are followed from now on, as if gdb had
        resumed them: their stops are told, and gdb's breakpoints reach them at once.
        """
        self._queue.clear()
        for node in self.nodes:
            if node in self._running:
                continue
            engine = self.engines[node]
            status = await engine.handle.refresh()
            if status.stopped:
                self._queue.append(await engine.stop_reply(status, announce=False))
            else:
                await engine.run_control.follow()
                self._running.add(node)
        return self._queue[0] if self._queue else rsp.OK

    def _tell(self, reply: bytes) -> None:
        """Queue a stop; the first of a sequence goes out as a notification at once."""
        self._queue.append(reply)
        if len(self._queue) == 1 and not self._closed:
            self.notify(b"Stop:" + reply)

    def _next_notified(self) -> bytes:
        """`vStopped`: gdb has the first queued stop; the next one, or OK at the end."""
        if self._queue:
            self._queue.popleft()
        return self._queue[0] if self._queue else rsp.OK

    # -- the end --------------------------------------------------------------------------

    async def detach(self) -> None:
        """Every node: gdb's breakpoints and watchpoints out of lld, and running again."""
        self._waiting = False
        self._running.clear()
        for node in self.nodes:
            await self.engines[node].detach()

    def close(self) -> None:
        """The gdb went away: every node stays as gdb left it (see GdbSession.close)."""
        if self._closed:
            return
        self._closed = True
        if self._settle is not None:
            self._settle.cancel()
        for engine in self.engines.values():
            engine.close()
