"""Running a machine against the host: serial lines, pacing, stop conditions.

The machine itself never touches the host.  The runner takes host input into
the serial lines and NICs between rounds (every `poll_rounds` rounds, so input enters
at well-defined points in simulated time), flushes their output, and sleeps
on the host lines' file descriptors when the machine has nothing to do.

Pacing: busy nodes run as fast as the host allows, but when every node is
waiting for a timer the runner does not let simulated time run ahead of wall
time (at TIMEBASE_HZ), so an idle kernel with a ticking clock costs little
host CPU.  `pace=False` skips idle time at full speed instead.

Time while a debugger holds a node: unless the machine's config says stoptime,
a machine that is idle only because a node is stopped still lets simulated
time pass with wall time (see Runner._stopped_time), so a stopped node's clock
goes on with the machine (docs/debug-semantics.md).
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from psyche.machine.csr import NEVER
from psyche.machine.hostline import HostLine
from psyche.machine.machine import TIMEBASE_HZ, Machine, Node
from psyche.machine.record import Recorder

if TYPE_CHECKING:
    from lld.history import History


class RunOutcome(Enum):
    MATCHED = "matched"        # the console printed what --until waited for
    STOPPED = "stopped"        # a node stopped (see RunResult.stopped)
    TIMEOUT = "timeout"        # max_seconds of wall time passed
    IDLE = "idle"              # nothing can run and nothing can wake it
    INTERRUPTED = "interrupted"


@dataclass
class RunResult:
    outcome: RunOutcome
    stopped: list[Node] = field(default_factory=list)
    wall_seconds: float = 0.0


class ConsoleMatcher:
    """Watches console output for a regular expression."""

    def __init__(self, pattern: str, window: int = 65536) -> None:
        self.regex = re.compile(pattern.encode())
        self.window = window
        self.buffer = bytearray()
        self.matched = False

    def feed(self, data: bytes) -> None:
        if self.matched:
            return
        self.buffer += data
        if self.regex.search(self.buffer):
            self.matched = True
        elif len(self.buffer) > self.window:
            del self.buffer[: len(self.buffer) - self.window]


#: For this long after the debug line last delivered bytes, the runner looks at the line after
#: every round instead of every poll_rounds rounds (see Runner.run).
DEBUG_ACTIVE_SECONDS = 0.5
#: How long after the debugger's last frame an idle machine waits for the next one without sleeping,
#: and how long when that frame came within DEBUG_BURST_GAP of the one before (a debugger in a quick
#: exchange, gdb stepping or hitting breakpoints in a script: see Runner._wait_host).
DEBUG_SPIN_SECONDS = 0.002
DEBUG_SPIN_BURST_SECONDS = 0.02
DEBUG_BURST_GAP = 0.005
#: After a reply at least this long (a memory read of a page or more) the machine does not spin.
DEBUG_BULK_BYTES = 4096


class DebugService(Protocol):
    """What the runner needs from lld (lld.attach.Lld), without importing it."""

    def service(self) -> None:
        """Serve the debug line at a round boundary."""

    def busy(self) -> bool:
        """True while work waits for the next boundary (do not sleep on the host)."""

    def heard_at(self) -> float:
        """When the debug line last delivered bytes (time.monotonic(), -inf if never)."""

    def last_reply_bytes(self) -> int:
        """Length of the last reply sent on the debug line."""

    def fileno(self) -> int | None:
        """A descriptor that polls readable when debug input waits, or None."""


class Runner:
    """Runs the machine and services its host lines between rounds.

    With `debug` (lld), the debug line is served at the same points as the
    other lines.  A node that stops then waits for a debugger, so callers
    usually pass stop_on_node_stop=False and learn of stops through on_stop.
    """

    def __init__(
        self,
        machine: Machine,
        lines: list[HostLine],
        *,
        pace: bool = True,
        poll_rounds: int = 32,
        stop_on_node_stop: bool = True,
        debug: DebugService | None = None,
        on_stop: Callable[[list[Node]], None] | None = None,
        recorder: Recorder | None = None,
        history: History | None = None,
    ) -> None:
        self.machine = machine
        self.lines = lines
        self.pace = pace
        self.poll_rounds = poll_rounds
        self.stop_on_node_stop = stop_on_node_stop
        self.debug = debug
        self.on_stop = on_stop
        self._wall_origin = time.monotonic()
        self._sim_origin = machine.time
        # Debug-line promptness (see run): a poller on the line, and when it last spoke.
        self._debug_poll: select.poll | None = None
        fd = debug.fileno() if debug is not None else None
        if fd is not None:
            self._debug_poll = select.poll()
            self._debug_poll.register(fd, select.POLLIN)
        self._debug_heard_at = float("-inf")   # (the debug line's, as of the last service point)
        self._debug_spin = DEBUG_SPIN_SECONDS
        # (wall, simulated) time when the machine became idle with a node stopped, or None.
        self._stopped_since: tuple[float, int] | None = None
        #: With a recorder, every service point where the host changed something is recorded
        #: (psyche/machine/record.py): its lines are RecordingLines.
        self.recorder = recorder
        #: With a history (reverse execution, lld/history/): it is the recorder, checkpoints are
        #: taken after service points, and while it shows the past no round runs.
        self.history = history
        self._advanced = 0   # cycles _stopped_time moved machine time on, before this service point
        self._stop_requested = False

    def request_stop(self) -> None:
        """End run() at the next service point, between rounds (safe from a signal handler): a
        recording's end must be a state a replay reaches, never the middle of a round."""
        self._stop_requested = True

    def _service_lines(self) -> None:
        if self.recorder is not None:
            busy = self.debug is not None and self.debug.busy()
            self.recorder.begin(self.machine.time, self._advanced, busy)
        self._advanced = 0
        self.machine.poll_host()
        if self.debug is not None:
            self.debug.service()
        if self.recorder is not None:
            self.recorder.end()
        if self.history is not None:
            self.history.after_service()
        for line in self.lines:
            if line.pending_output():
                line.flush_some()

    def _wait_host(self, seconds: float) -> None:
        """Sleep until host input arrives, or a line can take more of its queued output.

        The second matters to a debugger: a large reply (lld's 16 KiB memory frames) does
        not fit a pty's buffer at once, and an idle machine would otherwise send the rest
        only after its next timeout, once per buffer-full.
        """
        fds = [fd for fd in (line.fileno() for line in self.lines) if fd is not None]
        fds += [fd for wire in self.machine.wires() for fd in wire.filenos()]
        writers = [fd for fd in (line.output_fileno() for line in self.lines) if fd is not None]
        if seconds <= 0:
            return
        if not fds and not writers:
            time.sleep(seconds)
            return
        now = time.monotonic()
        spin = min(seconds, self._spin_seconds(now))
        if spin > 0:
            # A debugger is talking: wait without sleeping, for a while.  A process asleep in
            # select takes tens of microseconds to be woken and scheduled (a halted virtual CPU
            # far more), on every one of the debugger's requests; the debugger waits for each
            # answer before it asks again.  In a quick exchange the next frame is a millisecond
            # or two away, after gdb's own turn: spinning through that turn keeps it cheap.
            end = now + spin
            while time.monotonic() < end:
                ready, writable, _ = select.select(fds, writers, [], 0)
                if ready or writable:
                    return
            seconds -= spin
            if seconds <= 0:
                return
        select.select(fds, writers, [], seconds)

    def _spin_seconds(self, now: float) -> float:
        """How much longer to wait for the debugger's next frame without sleeping (_wait_host).

        Not at all after a bulk reply: gdb then spends a millisecond or more taking it in,
        against tens of microseconds for a sleeping machine to wake, and on a two-core host
        a spinning machine takes the core the mux needs to read ahead meanwhile.
        """
        if self.debug is None or self.debug.last_reply_bytes() >= DEBUG_BULK_BYTES:
            return 0.0
        return self._debug_heard_at + self._debug_spin - now

    def _sim_ahead_seconds(self, sim_time: int) -> float:
        sim_elapsed = (sim_time - self._sim_origin) / TIMEBASE_HZ
        return sim_elapsed - (time.monotonic() - self._wall_origin)

    def run(
        self,
        max_seconds: float | None = None,
        until: ConsoleMatcher | None = None,
    ) -> RunResult:
        machine = self.machine
        start = time.monotonic()
        deadline = start + max_seconds if max_seconds is not None else None
        try:
            while True:
                rounds, probe = self._next_stretch()
                if self.history is not None and self.history.in_past:
                    rounds = 0   # the machine shows its past: only the debugger moves it
                for _ in range(rounds):
                    stopped = machine.run_round()
                    if stopped and self.stop_on_node_stop:
                        self._service_lines()
                        return RunResult(RunOutcome.STOPPED, stopped, time.monotonic() - start)
                    if stopped and self.on_stop is not None:
                        self.on_stop(stopped)
                    if machine.idle() or self._idle_ahead():
                        break
                    if probe is not None and probe.poll(0):
                        break  # a debug frame waits: take it at this boundary
                self._stopped_time()
                self._service_lines()
                self._note_debug_traffic()
                if self._stop_requested:
                    return RunResult(RunOutcome.INTERRUPTED, [], time.monotonic() - start)
                if until is not None and until.matched:
                    return RunResult(RunOutcome.MATCHED, [], time.monotonic() - start)
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return RunResult(RunOutcome.TIMEOUT, [], now - start)
                if self.debug is not None and self.debug.busy():
                    continue  # a forwarded debug frame is due at the next boundary
                if self.history is not None and self.history.in_past:
                    self._wait_host(0.05)
                elif machine.idle():
                    if not self.lines and not any(wire.filenos() for wire in machine.wires()):
                        return RunResult(RunOutcome.IDLE, [], now - start)
                    self._wait_host(0.05 if deadline is None else min(0.05, deadline - now))
                elif self._idle_ahead():
                    ahead = self._sim_ahead_seconds(machine.next_event())
                    self._wait_host(min(ahead, 0.05))
        except KeyboardInterrupt:
            return RunResult(RunOutcome.INTERRUPTED, [], time.monotonic() - start)

    def _next_stretch(self) -> tuple[int, select.poll | None]:
        """How many rounds to run before the next service point, and whether to watch the debug line.

        Host input enters only at service points, between rounds (determinism), but
        which boundary becomes a service point is the runner's choice.  Every
        poll_rounds rounds is cheap for a machine nobody debugs; but a debugger waits
        for the answer to every request before it sends the next, and a gdb command
        is several of them.  So:

        * frames forwarded to another node's mailbox are served at the next service
          point: make it the very next boundary (one round), not poll_rounds later;
        * while a debugger is talking (bytes on the debug line within the last
          DEBUG_ACTIVE_SECONDS), poll the line after every round (a poll(0), well
          under a microsecond against a round's ten or more) and serve it at the first
          boundary after a frame arrives.  When the debugger falls silent the machine
          is back to polling every poll_rounds rounds, at no cost.
        """
        if self.debug is None:
            return self.poll_rounds, None
        if self.debug.busy():
            return 1, None
        if time.monotonic() - self._debug_heard_at < DEBUG_ACTIVE_SECONDS:
            return self.poll_rounds, self._debug_poll
        return self.poll_rounds, None

    def _note_debug_traffic(self) -> None:
        if self.debug is None:
            return
        heard_at = self.debug.heard_at()
        if heard_at != self._debug_heard_at:
            quick = heard_at - self._debug_heard_at < DEBUG_BURST_GAP
            self._debug_spin = DEBUG_SPIN_BURST_SECONDS if quick else DEBUG_SPIN_SECONDS
            self._debug_heard_at = heard_at

    def _stopped_time(self) -> None:
        """Let simulated time go on with wall time while the machine idles with a node stopped.

        When a debugger holds a node and nothing else can run, no round advances machine
        time, so a node stepped in a loop that waits on `time` would wait forever.  Here,
        just before host input (a debugger's step) is served, machine time is brought to
        where wall time says it would be since the machine became idle this way, on the
        quantum grid (Machine.advance_time).  Nothing changes for a machine with no node
        stopped, nor with stoptime set: a run nobody debugs stays deterministic.
        """
        machine = self.machine
        if self.history is not None and self.history.in_past:
            self._stopped_since = None
            return
        if machine.config.stoptime or not machine.idle() or not machine.has_stopped():
            self._stopped_since = None
            return
        now = time.monotonic()
        if self._stopped_since is None:
            self._stopped_since = (now, machine.time)
            return
        wall, sim = self._stopped_since
        before = machine.time
        machine.advance_time(sim + int((now - wall) * TIMEBASE_HZ) - machine.time)
        self._advanced += machine.time - before   # (wall time is the host's: a recording keeps it)

    def _idle_ahead(self) -> bool:
        """True when all nodes sleep and the next event lies ahead of wall time."""
        machine = self.machine
        if not self.pace or machine.has_runnable():
            return False
        event = machine.next_event()
        return event < NEVER and self._sim_ahead_seconds(event) > 0
