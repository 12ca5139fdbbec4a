"""Running a machine against the host: serial lines, pacing, stop conditions.

The machine itself never touches the host.  The runner takes host input into
the serial lines between rounds (every `poll_rounds` rounds, so input enters
at well-defined points in simulated time), flushes their output, and sleeps
on the host lines' file descriptors when the machine has nothing to do.

Pacing: busy nodes run as fast as the host allows, but when every node is
waiting for a timer the runner does not let simulated time run ahead of wall
time (at TIMEBASE_HZ), so an idle kernel with a ticking clock costs little
host CPU.  `pace=False` skips idle time at full speed instead.
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from psyche.machine.csr import NEVER
from psyche.machine.hostline import HostLine
from psyche.machine.machine import TIMEBASE_HZ, Machine, Node


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


class DebugService(Protocol):
    """What the runner needs from lld (lld.attach.Lld), without importing it."""

    def service(self) -> None:
        """Serve the debug line at a round boundary."""

    def busy(self) -> bool:
        """True while work waits for the next boundary (do not sleep on the host)."""


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

    def _service_lines(self) -> None:
        self.machine.poll_host()
        if self.debug is not None:
            self.debug.service()
        for line in self.lines:
            if line.pending_output():
                line.flush_some()

    def _wait_host(self, seconds: float) -> None:
        fds = [fd for fd in (line.fileno() for line in self.lines) if fd is not None]
        if seconds <= 0:
            return
        if fds:
            select.select(fds, [], [], seconds)
        else:
            time.sleep(seconds)

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
                for _ in range(self.poll_rounds):
                    stopped = machine.run_round()
                    if stopped and self.stop_on_node_stop:
                        self._service_lines()
                        return RunResult(RunOutcome.STOPPED, stopped, time.monotonic() - start)
                    if stopped and self.on_stop is not None:
                        self.on_stop(stopped)
                    if machine.idle() or self._idle_ahead():
                        break
                self._service_lines()
                if until is not None and until.matched:
                    return RunResult(RunOutcome.MATCHED, [], time.monotonic() - start)
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return RunResult(RunOutcome.TIMEOUT, [], now - start)
                if self.debug is not None and self.debug.busy():
                    continue  # a forwarded debug frame is due at the next boundary
                if machine.idle():
                    if not self.lines:
                        return RunResult(RunOutcome.IDLE, [], now - start)
                    self._wait_host(0.05 if deadline is None else min(0.05, deadline - now))
                elif self._idle_ahead():
                    ahead = self._sim_ahead_seconds(machine.next_event())
                    self._wait_host(min(ahead, 0.05))
        except KeyboardInterrupt:
            return RunResult(RunOutcome.INTERRUPTED, [], time.monotonic() - start)

    def _idle_ahead(self) -> bool:
        """True when all nodes sleep and the next event lies ahead of wall time."""
        machine = self.machine
        if not self.pace or machine.has_runnable():
            return False
        event = machine.next_event()
        return event < NEVER and self._sim_ahead_seconds(event) > 0
