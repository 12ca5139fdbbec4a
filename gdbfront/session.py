"""A real gdb-multiarch driven from Python through its machine interface (MI), over pygdbmi.

    gdb = GdbSession(kernel_elf)
    gdb.connect("127.0.0.1:3336")          # node 3 of a mux on base port 3333
    gdb.breakpoint("clock_intr")
    stop = gdb.cont()                      # Stop(reason='breakpoint-hit', func='clock_intr', ...)
    ticks = gdb.integer("this_node.ticks")

Why MI and not batch scripts: a test must know *when* a node stopped and
*why*, then react.  MI answers every command with a result record carrying
the command's token (`^done`, `^error`), and reports every stop of the
target as a `*stopped` record.  So every resume here waits for that explicit
`*stopped`, with a deadline, and returns it as a `Stop`; nothing sleeps or
scrapes console text.  gdb runs with `mi-async on`, so `interrupt()` works
while the target runs, as ctrl-C does for a person.

Every line sent and every record received goes into the session's log; a
`GdbError` carries gdb's own message and the tail of that log, which is
usually enough to see what went wrong without rerunning.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pygdbmi.gdbcontroller import GdbController

GDB = "gdb-multiarch"
EXTENSION = Path(__file__).resolve().parent / "gdbext" / "psyche.py"
DEFAULT_TIMEOUT = 30.0
LOG_TAIL_LINES = 40
LOG_LIMIT = 100_000
_POLL_SECONDS = 0.05
# After a record arrives, pygdbmi waits this long for more before returning: short, since
# the session loops until it has the record it needs anyway.
_MORE_OUTPUT_SECONDS = 0.005
# No retrying a refused connection: the mux listens before anyone is told its ports.
_SETTINGS = ("mi-async on", "pagination off", "confirm off", "width 0", "height 0", "remotetimeout 10",
             "tcp auto-retry off")


class GdbError(Exception):
    """gdb refused a command, died, or misbehaved: gdb's message and the tail of the session's log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(f"{message}\n--- gdb log (tail) ---\n{log_tail}" if log_tail else message)
        self.message = message
        self.log_tail = log_tail


class GdbTimeout(GdbError):
    """A deadline passed before gdb produced what it owed: a command's result or a `*stopped`."""


def _mi_quote(text: str) -> str:
    """A C string for an MI argument (expressions with spaces, CLI command lines)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _address(value: int | str) -> str:
    return f"{value:#x}" if isinstance(value, int) else _mi_quote(value)


@dataclass(frozen=True)
class Frame:
    """One stack frame as gdb reports it; file is the full path when gdb knows it."""

    addr: int
    func: str | None
    file: str | None
    line: int | None
    level: int = 0

    @classmethod
    def from_mi(cls, d: dict[str, Any]) -> Frame:
        return cls(
            addr=int(d.get("addr", "0"), 16),
            func=d.get("func"),
            file=d.get("fullname") or d.get("file"),
            line=int(d["line"]) if "line" in d else None,
            level=int(d.get("level", 0)),
        )


@dataclass(frozen=True)
class Stop:
    """Why and where the target stopped: one `*stopped` record.

    reason is gdb's MI reason: breakpoint-hit, end-stepping-range,
    function-finished, watchpoint-trigger, read-watchpoint-trigger,
    access-watchpoint-trigger, signal-received (an interrupt), or
    "attached" for the stop gdb finds when it connects.
    """

    reason: str
    frame: Frame | None
    record: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_mi(cls, payload: dict[str, Any]) -> Stop:
        frame = payload.get("frame")
        return cls(payload.get("reason", "attached"), Frame.from_mi(frame) if frame else None, payload)

    @property
    def func(self) -> str | None:
        return self.frame.func if self.frame else None

    @property
    def file(self) -> str | None:
        return self.frame.file if self.frame else None

    @property
    def line(self) -> int | None:
        return self.frame.line if self.frame else None

    @property
    def addr(self) -> int | None:
        return self.frame.addr if self.frame else None

    @property
    def signal(self) -> str | None:
        return self.record.get("signal-name")

    @property
    def value(self) -> dict[str, str]:
        """A watchpoint's values: {'old': ..., 'new': ...} for writes, {'value': ...} for reads."""
        value: dict[str, str] = self.record.get("value", {})
        return value


@dataclass(frozen=True)
class Breakpoint:
    number: int
    addr: int | None
    func: str | None
    file: str | None
    line: int | None

    @classmethod
    def from_mi(cls, d: dict[str, Any]) -> Breakpoint:
        addr = d.get("addr", "")
        return cls(int(d["number"]), int(addr, 16) if addr.startswith("0x") else None, d.get("func"),
                   d.get("fullname") or d.get("file"), int(d["line"]) if "line" in d else None)


@dataclass(frozen=True)
class Watchpoint:
    number: int
    expression: str


class GdbSession:
    """One gdb-multiarch in MI mode: the kernel's symbols, the Psyche extension, one target."""

    def __init__(
        self,
        elf: Path | str | None,
        *,
        gdb: str = GDB,
        extension: Path | None = EXTENSION,
        timeout: float = DEFAULT_TIMEOUT,
        name: str = "gdb",
    ) -> None:
        if shutil.which(gdb) is None:
            raise GdbError(f"{gdb} is not installed (apt-get install gdb-multiarch)")
        self.name = name
        self.timeout = timeout
        self.log: list[str] = []
        self.last_stop: Stop | None = None
        self.target: str | None = None        # what connect() reached
        self.connected = False
        self.detached_cleanly = False         # the node was left running, without our breakpoints
        self.running = False
        self.non_stop = False                 # gdb's non-stop mode: each thread runs and stops alone
        self._records: deque[dict[str, Any]] = deque()
        self._stops: deque[Stop] = deque()
        self._captured: list[str] | None = None
        self._tokens = itertools.count(1)
        self._register_names: list[str] | None = None
        command = [gdb, "--nx", "--quiet", "--interpreter=mi3", *([str(elf)] if elf else [])]
        self._controller = GdbController(command,
                                         time_to_check_for_additional_output_sec=_MORE_OUTPUT_SECONDS)
        self._log(f"## {name}: {' '.join(command)} (pid {self.pid})")
        try:
            for setting in _SETTINGS:
                self.command(f"-gdb-set {setting}")
            if extension is not None:
                self.console(f"source {extension}")
        except GdbError:
            self.close(detach=False)      # nobody else holds this gdb yet: do not leave it behind
            raise

    # -- the process and its log ---------------------------------------------------------

    @property
    def _process(self) -> subprocess.Popen[bytes]:
        process = self._controller.gdb_process
        if process is None:
            raise GdbError(f"{self.name}: gdb has been closed", self.log_tail())
        return process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        process = self._controller.gdb_process
        return process is not None and process.poll() is None

    def _log(self, line: str) -> None:
        self.log.append(f"{time.monotonic():.3f} {line}")
        if len(self.log) > LOG_LIMIT:     # a long-lived session keeps its recent history only
            del self.log[: LOG_LIMIT // 2]

    def log_text(self) -> str:
        return "\n".join(self.log) + "\n"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log[-lines:])

    def _error(self, message: str, kind: type[GdbError] = GdbError) -> GdbError:
        return kind(f"{self.name}: {message}", self.log_tail())

    # -- records --------------------------------------------------------------------------

    def _write(self, line: str) -> None:
        self._log(f"-> {line}")
        if not self.alive:
            raise self._error(f"gdb is not running (status {self._process.poll()}); cannot send {line!r}")
        try:
            self._controller.write(line, read_response=False)
        except OSError as e:
            raise self._error(f"cannot send {line!r} to gdb: {e}") from e

    def _pump(self, timeout: float) -> None:
        """Move what gdb has written within timeout into the record queue (and the log)."""
        records = self._controller.get_gdb_response(timeout_sec=timeout, raise_error_on_timeout=False)
        for record in records:
            self._log(_describe(record))
            self._records.append(record)
        if not records and not self.alive:
            raise self._error(f"gdb exited (status {self._process.poll()})")

    def _note(self, record: dict[str, Any]) -> None:
        """Side effects of a record, whoever waits for it: run state, stops, console text."""
        kind, message = record["type"], record.get("message")
        if kind == "notify" and message == "running":
            self.running = True
        elif kind == "notify" and message == "stopped":
            self.running = False
            self.last_stop = Stop.from_mi(record.get("payload") or {})
            self._stops.append(self.last_stop)
        elif kind in ("console", "target") and self._captured is not None:   # target: `monitor` output
            self._captured.append(record["payload"])

    def _wait(self, wanted: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while self._records:
                record = self._records.popleft()
                self._note(record)
                if wanted(record):
                    return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(f"{what} within {timeout:g} s", GdbTimeout)
            self._pump(min(remaining, _POLL_SECONDS))

    # -- commands ---------------------------------------------------------------------------

    def command(self, mi: str, timeout: float | None = None) -> dict[str, Any]:
        """Run one MI command; its result's payload, or GdbError with gdb's message."""
        token = next(self._tokens)
        self._write(f"{token}{mi}")
        record = self._wait(lambda r: r["type"] == "result" and r.get("token") == token,
                            timeout or self.timeout, f"no answer to {mi!r}")
        payload = record.get("payload") or {}
        if record["message"] == "error":
            raise self._error(f"{mi}: {payload.get('msg', 'error')}")
        return payload

    def console(self, line: str, timeout: float | None = None) -> str:
        """Run a CLI command (as typed at the (gdb) prompt); the text it printed."""
        self._captured = []
        try:
            self.command(f"-interpreter-exec console {_mi_quote(line)}", timeout)
            return "".join(self._captured)
        finally:
            self._captured = None

    def console_resuming(self, line: str, timeout: float | None = None) -> str:
        """A CLI command that resumes the target itself and ends stopped (`psyche step-call`).

        MI answers such a command `^running` as soon as it first resumes the target, while the
        command goes on; but gdb reads no other command before it has ended, so a marker sent
        behind it is answered only then.  The text it printed; its stops are in `last_stop`.  An
        error it ends with, after `^running`, is GdbError with gdb's message, as for console()."""
        self._captured = []
        try:
            token = next(self._tokens)
            self._write(f"{token}-interpreter-exec console {_mi_quote(line)}")
            record = self._wait(lambda r: r["type"] == "result" and r.get("token") == token,
                                timeout or self.timeout, f"no answer to {line!r}")
            if record["message"] == "error":
                raise self._error(f"{line}: {(record.get('payload') or {}).get('msg', 'error')}")
            if record["message"] == "running":
                marker = next(self._tokens)
                self._write(f"{marker}-data-evaluate-expression 0")
                # the command's own ^error (after its ^running), then the marker's answer
                ended = self._wait(lambda r: r["type"] == "result" and (r.get("token") == marker or (
                    r.get("token") == token and r["message"] == "error")),
                    timeout or self.timeout, f"{line!r} did not end")
                if ended.get("token") == token:
                    self._wait(lambda r: r["type"] == "result" and r.get("token") == marker,
                               timeout or self.timeout, f"no answer to the marker behind {line!r}")
                    raise self._error(f"{line}: {(ended.get('payload') or {}).get('msg', 'error')}")
            return "".join(self._captured)
        finally:
            self._captured = None

    def psyche(self, subcommand: str, timeout: float | None = None) -> str:
        """A Psyche command as a person sees it: psyche("nodes") runs `psyche nodes`."""
        return self.console(f"psyche {subcommand}", timeout)

    def psyche_data(self, subcommand: str, timeout: float | None = None) -> Any:
        """A Psyche command's data: psyche_data("nodes") is `psyche nodes -json`, decoded."""
        return json.loads(self.psyche(f"{subcommand} -json", timeout))

    # -- the target ---------------------------------------------------------------------------

    def connect(self, target: str, timeout: float | None = None) -> Stop:
        """`target remote TARGET` (host:port, or udp:host:port); the stop gdb finds there."""
        self._stops.clear()
        self.command(f"-target-select remote {target}", timeout)
        self.target = target
        self.connected = True
        self.detached_cleanly = False
        return self._stops.pop() if self._stops else self.wait_for_stop(timeout)

    def connect_non_stop(self, target: str, timeout: float | None = None) -> None:
        """`target remote TARGET` in gdb's non-stop mode: nothing stops; each thread is resumed,
        interrupted and waited for on its own (`-exec-interrupt --thread N`, wait_for_stop)."""
        self.command("-gdb-set non-stop on", timeout)
        self.non_stop = True
        self._stops.clear()
        self.command(f"-target-select remote {target}", timeout)
        self.target = target
        self.connected = True
        self.detached_cleanly = False

    def detach(self, timeout: float | None = None) -> None:
        """Detach: the mux clears this node's breakpoints and watchpoints and lets it run."""
        self.command("-target-detach", timeout)
        self.connected = False
        self.running = False
        self.detached_cleanly = True

    # -- run control: every resume waits for *stopped ------------------------------------------

    def _resume(self, mi: str, timeout: float | None) -> Stop:
        self._stops.clear()
        self.command(mi, timeout)
        return self.wait_for_stop(timeout)

    def wait_for_stop(self, timeout: float | None = None) -> Stop:
        """The next `*stopped` record; GdbTimeout if none arrives within timeout."""
        if not self._stops:
            self._wait(lambda r: r["type"] == "notify" and r.get("message") == "stopped",
                       timeout or self.timeout, "the target did not stop (no *stopped record)")
        return self._stops.popleft()

    def cont(self, timeout: float | None = None) -> Stop:
        """`continue`, until the target stops again."""
        return self._resume("-exec-continue", timeout)

    def cont_nowait(self) -> None:
        """`continue` without waiting: the node runs until interrupt() or wait_for_stop()."""
        self._stops.clear()
        self.command("-exec-continue")

    def step(self, timeout: float | None = None) -> Stop:
        return self._resume("-exec-step", timeout)

    def next(self, timeout: float | None = None) -> Stop:
        return self._resume("-exec-next", timeout)

    def stepi(self, timeout: float | None = None) -> Stop:
        return self._resume("-exec-step-instruction", timeout)

    def finish(self, timeout: float | None = None) -> Stop:
        """Run until the current function returns (reason function-finished)."""
        return self._resume("-exec-finish", timeout)

    def run_to(self, location: str, timeout: float | None = None) -> Stop:
        """A temporary breakpoint at location, then continue to it."""
        self.tbreak(location)
        return self.cont(timeout)

    def interrupt(self, timeout: float | None = None) -> Stop:
        """Stop a running target, as ctrl-C does (reason signal-received, SIGINT)."""
        self.command("-exec-interrupt", timeout)
        return self.wait_for_stop(timeout)

    # -- breakpoints and watchpoints -------------------------------------------------------------

    def breakpoint(self, location: str, *, condition: str | None = None,
                   temporary: bool = False) -> Breakpoint:
        options = ("-t " if temporary else "") + (f"-c {_mi_quote(condition)} " if condition else "")
        payload = self.command(f"-break-insert {options}{_mi_quote(location)}")
        return Breakpoint.from_mi(payload["bkpt"])

    def tbreak(self, location: str) -> Breakpoint:
        return self.breakpoint(location, temporary=True)

    def watch(self, expression: str, kind: str = "write") -> Watchpoint:
        """A hardware watchpoint: kind write, read or access."""
        flags = {"write": "", "read": "-r ", "access": "-a "}
        if kind not in flags:
            raise ValueError(f"watchpoint kind {kind!r} is not write, read or access")
        payload = self.command(f"-break-watch {flags[kind]}{_mi_quote(expression)}")
        found = payload.get("wpt") or payload.get("hw-rwpt") or payload.get("hw-awpt") or {}
        return Watchpoint(int(found["number"]), found.get("exp", expression))

    def delete(self, *numbers: int) -> None:
        """Delete these breakpoints and watchpoints, or all of them."""
        self.command("-break-delete" + "".join(f" {n}" for n in numbers))

    # -- looking at the target ---------------------------------------------------------------------

    def evaluate(self, expression: str) -> str:
        """An expression's value as gdb prints it."""
        value: str = self.command(f"-data-evaluate-expression {_mi_quote(expression)}")["value"]
        return value

    def integer(self, expression: str) -> int:
        """An integer or pointer expression's value."""
        return int(self.evaluate(f"(unsigned long long)({expression})"))

    def backtrace(self, limit: int | None = None) -> list[Frame]:
        bounds = f" 0 {limit - 1}" if limit else ""
        return [Frame.from_mi(f) for f in self.command(f"-stack-list-frames{bounds}")["stack"]]

    def registers(self, *names: str) -> dict[str, int]:
        """Registers by name (default: x0..x31 under their ABI names, and pc)."""
        if self._register_names is None:
            self._register_names = self.command("-data-list-register-names")["register-names"]
        all_names = self._register_names
        wanted = list(names) if names else [n for n in all_names[:33] if n]
        unknown = [n for n in wanted if n not in all_names]
        if unknown:
            raise self._error(f"no register named {', '.join(unknown)}")
        numbers = " ".join(str(all_names.index(n)) for n in wanted)
        values = self.command(f"-data-list-register-values x {numbers}")["register-values"]
        return {all_names[int(v["number"])]: int(v["value"], 16) for v in values}

    def read_memory(self, address: int | str, length: int) -> bytes:
        blocks = self.command(f"-data-read-memory-bytes {_address(address)} {length}")["memory"]
        return b"".join(bytes.fromhex(block["contents"]) for block in blocks)

    def write_memory(self, address: int | str, data: bytes) -> None:
        self.command(f"-data-write-memory-bytes {_address(address)} {data.hex()}")

    # -- ending ----------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL gdb, as a crash would: no detach, the node stays as gdb left it."""
        process = self._process
        self._log("## killed with SIGKILL")
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.connected = False

    def close(self, detach: bool = True) -> None:
        """Detach (interrupting a running target first) unless told not to, and end gdb."""
        if self.alive and self.connected and detach:
            try:
                if self.running and not self.non_stop:   # (non-stop: a detach takes running threads)
                    self.interrupt(timeout=10)
                self.detach(timeout=10)
            except GdbError as e:
                self._log(f"## detach failed: {e.message}")
        process = self._controller.gdb_process
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self._controller.gdb_process = None
            self._log(f"## gdb ended (status {process.returncode})")

    def __enter__(self) -> GdbSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Register names a log line shows of gdb's list (x0..x31, pc and the first CSRs).
SHOWN_REGISTER_NAMES = 40


def _trimmed(payload: Any) -> Any:
    """A result payload as the log shows it: gdb's register names without the thousands of
    unnamed register numbers between them (the CSR space is sparse; the record is ~10 KB of "")."""
    if isinstance(payload, dict) and isinstance(payload.get("register-names"), list):
        names = payload["register-names"]
        named = [f"{number}:{name}" for number, name in enumerate(names) if name]
        shown = " ".join(named[:SHOWN_REGISTER_NAMES]) + (" ..." if len(named) > SHOWN_REGISTER_NAMES else "")
        return {**payload, "register-names": f"{len(named)} named of {len(names)}: {shown}"}
    return payload


def _describe(record: dict[str, Any]) -> str:
    """One record as a log line, close to what gdb wrote."""
    kind, message, payload = record["type"], record.get("message"), record.get("payload")
    token = record.get("token") or ""
    prefix = "stderr " if record.get("stream") == "stderr" else ""
    if kind == "result":
        return f"{prefix}<- {token}^{message} {json.dumps(_trimmed(payload)) if payload else ''}".rstrip()
    if kind == "notify":  # pygdbmi folds exec records (*running, *stopped) and notifications (=...) together
        sigil = "*" if message in ("running", "stopped") else "="
        return f"{prefix}<- {sigil}{message} {json.dumps(payload) if payload else ''}".rstrip()
    marks = {"console": "~", "log": "&", "target": "@"}
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"{prefix}{marks.get(kind, kind)} {text.rstrip()}"
