"""pytest plugin for debug regression tests: real gdb against a real Psyche machine.

Installed through the `pytest11` entry point (`psyche = "gdbfront.plugin"`), so
any test file in a project with psyche-debug installed can write:

    pytestmark = pytest.mark.psyche(nodes=4)        # this module's machine

    def test_the_clock_ticks_once(gdb):
        node3 = gdb(3)                              # gdb-multiarch on node 3, through the mux
        node3.breakpoint("clock_intr")
        assert node3.cont().func == "clock_intr"

Fixtures:

* `psyche_kernel` (session): the kernel ELF, rebuilt if stale.
* `psyche_snapshots` (session): snapshot files by kind and node count
  (gdbfront.snapshots), each made once per session, on first use.
* `psyche_machine` (module): the module's machine and mux (`psyche up
  --restore`), restored from a snapshot, so every module starts from the
  same state in a fraction of a boot; stopped after the module, pass or fail.
* `gdb` (function): `gdb(node, transport="tcp")` opens a GdbSession on the
  module's machine.  After the test every session is detached and ended; a
  node whose last gdb did not detach cleanly (killed, timed out) is released
  by a fresh gdb, so the next test finds every node running, without
  breakpoints.  `gdb.machine_port(non_stop=False)` opens one on the mux's
  whole-machine port instead: every node a thread (node k is thread k + 1).

Marker `psyche(nodes=4, start="booted", args=())` chooses the module's machine;
start is booted (at the monitor prompt), stopped (booted, every node stopped) or
startup (the king stopped at `startup`); args are more `psyche up` arguments
(`args=("--net", "udp:0-:7")`: a host port forwarded to the guest's UDP port 7).

A failing test's report gets every gdb log of the test, the console and
psyche up's output as extra sections.

Under pytest-xdist (`pytest -n 2`) every worker is a pytest session of its
own: it makes its own snapshots (in its own temporary directory) and starts
its machines on ports from its own slice of the port range, so workers never
race for a port; the kernel is built by one worker at a time (build_kernel
takes a lock beside the kernel it builds).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gdbfront.machine import PORT_RANGE, PsycheMachine
from gdbfront.session import DEFAULT_TIMEOUT, GDB, GdbSession

REPORT_LOG_LINES = 400
_TIMINGS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "psyche(nodes=4, start='booted'): the Psyche machine a test "
                            "module shares: its node count and the snapshot it starts from "
                            "(booted, stopped, startup)")
    config.addinivalue_line("markers", "slow: end-to-end tests that boot machines or drive real gdb "
                            "(deselect with -m 'not slow')")
    config.stash[_TIMINGS] = []


@dataclass
class Snapshots:
    """Snapshot files by (kind, nodes), made on first use and kept for the session."""

    kernel: Path
    directory: Path
    timings: list[str]
    made: dict[tuple[str, int], Path] = field(default_factory=dict)

    def get(self, kind: str, nodes: int) -> Path:
        # Imported here, not at the top: the plugin loads in every pytest run of the environment,
        # and only runs that use these fixtures need the simulator (whose import checks its build).
        from gdbfront import snapshots

        if kind not in snapshots.KINDS:
            raise ValueError(f"no snapshot kind {kind!r}: one of {', '.join(snapshots.KINDS)}")
        key = (kind, nodes)
        if key not in self.made:
            path = self.directory / f"{kind}-{nodes}.snapshot"
            if kind == "booted":
                seconds = snapshots.boot_snapshot(self.kernel, nodes, path)
                self.timings.append(f"booted {nodes} nodes to the prompt and saved the snapshot in "
                                    f"{seconds:.2f} s")
            elif kind == "stopped":
                snapshots.stopped_snapshot(self.get("booted", nodes), path)
            else:
                snapshots.startup_snapshot(self.kernel, nodes, path)
            self.made[key] = path
        return self.made[key]


def worker_ports() -> tuple[int, int]:
    """This pytest-xdist worker's slice of the port range (all of it outside xdist)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker is None or count is None:
        return PORT_RANGE
    low, high = PORT_RANGE
    size = (high - low) // max(int(count), 1)
    index = int(worker.removeprefix("gw"))
    return low + index * size, low + (index + 1) * size


@pytest.fixture(scope="session")
def psyche_kernel() -> Path:
    from psyche.kernel.build import build_kernel

    return build_kernel()   # (one process at a time: xdist workers wait for the first)


@pytest.fixture(scope="session")
def psyche_snapshots(psyche_kernel: Path, tmp_path_factory: pytest.TempPathFactory,
                     pytestconfig: pytest.Config) -> Snapshots:
    return Snapshots(psyche_kernel, tmp_path_factory.mktemp("psyche-snapshots"), pytestconfig.stash[_TIMINGS])


@pytest.fixture(scope="module")
def psyche_machine(request: pytest.FixtureRequest, psyche_kernel: Path,
                   psyche_snapshots: Snapshots) -> Iterator[PsycheMachine]:
    marker = request.node.get_closest_marker("psyche")
    options = dict(marker.kwargs) if marker else {}
    nodes, start = int(options.get("nodes", 4)), str(options.get("start", "booted"))
    snapshot = psyche_snapshots.get(start, nodes)
    machine = PsycheMachine.start(psyche_kernel, nodes, restore=snapshot, ports=worker_ports(),
                                  extra=tuple(options.get("args", ())))
    psyche_snapshots.timings.append(f"{request.node.name}: {nodes}-node machine restored from '{start}', "
                                    f"mux listening, in {machine.started_in:.2f} s")
    try:
        yield machine
    finally:
        machine.stop()


#: The node number a whole-machine session is listed under.
WHOLE_MACHINE = -1


class GdbSessions:
    """The `gdb` fixture's value: call it with a node number for a connected GdbSession."""

    def __init__(self, machine: PsycheMachine) -> None:
        self.machine = machine
        self.sessions: list[tuple[int, GdbSession]] = []

    def __call__(self, node: int, transport: str = "tcp", timeout: float | None = None) -> GdbSession:
        session = GdbSession(self.machine.kernel, name=f"gdb node {node} ({transport})",
                             timeout=timeout or DEFAULT_TIMEOUT)
        self.sessions.append((node, session))   # before connecting: a refusal's log is kept too
        session.connect(self.machine.target(node, transport))
        return session

    def machine_port(self, *, non_stop: bool = False, timeout: float | None = None) -> GdbSession:
        """A GdbSession on the mux's whole-machine port: every node no other gdb holds is a
        thread, node k thread k + 1.  All-stop by default (connecting stops every node); with
        non_stop, gdb's non-stop mode, where connecting stops nothing."""
        session = GdbSession(self.machine.kernel, name=f"gdb machine{' non-stop' if non_stop else ''}",
                             timeout=timeout or DEFAULT_TIMEOUT)
        self.sessions.append((WHOLE_MACHINE, session))
        target = self.machine.machine_target()
        if non_stop:
            session.connect_non_stop(target)
        else:
            session.connect(target)
        return session

    def close(self) -> None:
        """Detach and end every session; release nodes their last gdb left stopped."""
        for _, session in self.sessions:
            session.close()
        last: dict[int, GdbSession] = {}
        for node, session in self.sessions:
            if session.target is not None:
                for held in range(self.machine.nodes) if node == WHOLE_MACHINE else [node]:
                    last[held] = session
        for node, session in sorted(last.items()):
            if not session.detached_cleanly and self.machine.alive:
                self._release(node)

    def _release(self, node: int) -> None:
        """A fresh gdb's detach clears the node's breakpoints and watchpoints in lld and resumes it."""
        session = GdbSession(self.machine.kernel, extension=None, name=f"gdb node {node} (release)")
        self.sessions.append((node, session))
        try:
            session.connect(self.machine.target(node))
        finally:
            session.close()

    def report_sections(self) -> list[tuple[str, str]]:
        return [(f"{session.name} log (tail)", "\n".join(session.log[-REPORT_LOG_LINES:]))
                for _, session in self.sessions]


@pytest.fixture
def gdb(psyche_machine: PsycheMachine) -> Iterator[GdbSessions]:
    if shutil.which(GDB) is None:
        pytest.skip(f"{GDB} is not installed")
    sessions = GdbSessions(psyche_machine)
    try:
        yield sessions
    finally:
        sessions.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the logs of a failing test's gdbs and machine to its report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    for value in (getattr(item, "funcargs", None) or {}).values():
        if isinstance(value, GdbSessions | PsycheMachine):
            for title, text in value.report_sections():
                report.sections.append((f"psyche: {title}", text))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    timings = config.stash.get(_TIMINGS, [])
    if timings:
        terminalreporter.section("psyche machines")
        for line in timings:
            terminalreporter.write_line(line)
