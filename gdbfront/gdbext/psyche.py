"""Psyche-aware gdb commands: `psyche nodes`, `psyche node N`, `psyche locks`, `psyche heap`,
and the convenience functions `$psyche_node()`, `$psyche_record([N])`, `$psyche_ticks([N])`
and `$psyche_pc(N)`.

    (gdb) source gdbfront/gdbext/psyche.py      # gdbfront's sessions do this themselves
    (gdb) psyche nodes
    (gdb) print $psyche_record(3).ticks

It runs inside gdb's own Python, so it imports nothing but gdb and the
standard library.

Where the answers come from.  A gdb is attached to ONE node, but the kernel
keeps what every node is doing in memory that any node can read: the king's
globals `kg`, replicated into every node's copy of the kernel, point at the
node table, and `kg.nodes[k]` is node k's `struct node` at its official
(kernel/kernel) address.  Every value is read through gdb's types from the
kernel's DWARF, by member name; nothing here knows an offset.  Program
counters of other nodes are in no memory at all: they come from the mux
(`monitor status`, which asks each node's lld), and show as unknown behind
any other stub.  Each command takes `-json` to print its data for programs
(gdbfront's tests read that).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import gdb

KG_MAGIC = 0x4B474C42    # node.h: kg.magic once the king has set up the shared data
NODE_MAGIC = 0x4E4F4445  # node.h: struct node .magic once the node has initialized it
MAX_THREADS = 256        # a longer thread list is taken to be corrupt
MAX_HEAP_BLOCKS = 4096

_STATUS_LINE = re.compile(r"^[* ]node\s+(\d+)\s+(\w+)(?: pc=(0x[0-9a-f]+))?(?:.* reason=(\w+))?")


class PsycheError(gdb.GdbError):
    """A failure gdb shows as a plain message: a missing symbol, unreadable memory."""


# -- reading the kernel through gdb's types -------------------------------------------------


def _symbol(name: str) -> gdb.Value:
    if gdb.current_progspace().filename is None:
        raise PsycheError("psyche: no program loaded: start gdb with the Psyche kernel's ELF "
                          "(gdb-multiarch build/kernel/psyche.elf) or `file` it")
    symbol = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
    if symbol is None:
        raise PsycheError(f"psyche: no symbol `{name}` in {gdb.current_progspace().filename}: this is not "
                          "the Psyche kernel, or it was built without debug information")
    return symbol.value()


def _type(name: str) -> gdb.Type:
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise PsycheError(f"psyche: no type `{name}` in the kernel's debug information") from None


def _member(value: gdb.Value, name: str) -> gdb.Value:
    try:
        return value[name]
    except gdb.error:
        raise PsycheError(f"psyche: {value.type} has no member `{name}` in the kernel's debug "
                          "information (kernel and gdbext out of step?)") from None


def _int(value: gdb.Value, name: str) -> int:
    return int(_member(value, name))


def _string(value: gdb.Value) -> str:
    """A C string from a char array (up to its first NUL) or a const char *; '' for NULL, '?' unreadable."""
    try:
        if value.type.strip_typedefs().code == gdb.TYPE_CODE_ARRAY:
            raw = bytes(gdb.selected_inferior().read_memory(value.address, value.type.sizeof))
            return raw.split(b"\0", 1)[0].decode(errors="replace")
        return "" if int(value) == 0 else value.string()
    except gdb.error:
        return "?"


def _enum_name(type_name: str, value: int) -> str:
    """The enumerator for value, without the common prefix, lower case (NODE_UP -> up)."""
    for field in _type(type_name).fields():
        if field.enumval == value:
            name: str = field.name
            return name.split("_", 1)[-1].lower()
    return str(value)


def _fetch(value: gdb.Value, what: str) -> gdb.Value:
    """Read a whole structure now, so an unreadable one fails here with a clear message."""
    try:
        value.fetch_lazy()
    except gdb.MemoryError as e:
        raise PsycheError(f"psyche: cannot read {what} ({e}): is gdb attached to a Psyche node "
                          "(target remote :PORT)?") from None
    return value


class Kernel:
    """The kernel's shared data, seen from the node gdb is attached to."""

    def __init__(self) -> None:
        kg = _symbol("kg")
        self.this_node = _symbol("this_node")
        if gdb.selected_inferior().pid == 0:
            raise PsycheError("psyche: gdb is not attached to a Psyche node: `target remote :PORT` "
                              "(the mux listens on base port + node number)")
        self.kg = _fetch(kg, "the king's globals `kg`")
        magic = _int(self.kg, "magic")
        if magic != KG_MAGIC:
            raise PsycheError(f"psyche: kg.magic is {magic:#x}, not {KG_MAGIC:#x}: the king has not set up "
                              "the shared data (and the node table) yet on this node's copy; "
                              "`print this_node` shows this node alone")
        self.nnodes = _int(self.kg, "nnodes")
        self._records: dict[int, gdb.Value | None] = {}

    def attached(self) -> int:
        """The node gdb is attached to: its hart id, or its record's id behind a stub without CSRs."""
        try:
            return int(gdb.parse_and_eval("$mhartid"))
        except gdb.error:
            return _int(self.this_node, "id")

    def check(self, node: int) -> None:
        if not 0 <= node < self.nnodes:
            raise PsycheError(f"psyche: no node {node}: this machine has nodes 0 to {self.nnodes - 1}")

    def record(self, node: int) -> gdb.Value | None:
        """Node's `struct node` through the node table; None until the node has published it."""
        self.check(node)
        if node not in self._records:
            pointer = _member(self.kg, "nodes")[node]
            record = None
            if int(pointer) != 0:
                record = _fetch(pointer.dereference(), f"node {node}'s record at {int(pointer):#x}")
                if _int(record, "magic") != NODE_MAGIC:
                    record = None
            self._records[node] = record
        return self._records[node]

    def must_record(self, node: int) -> gdb.Value:
        record = self.record(node)
        if record is None:
            raise PsycheError(f"psyche: node {node} is not in the node table yet (it has not published "
                              "its record: still held or early in startup)")
        return record

    def to_official(self, node: int, local: int) -> int:
        """A local-window address of `node` as its official address: the node's record sits at
        &this_node locally and at kg.nodes[node] officially, and the whole window moves alike."""
        return local + int(_member(self.kg, "nodes")[node]) - int(self.this_node.address)


# -- what lld says (through the mux) -----------------------------------------------------------


def lld_status() -> dict[int, dict[str, Any]]:
    """Every node's run state and pc from the mux's `monitor status`; {} behind another stub."""
    try:
        text = gdb.execute("monitor status", to_string=True)
    except gdb.error:
        return {}
    nodes = {}
    for line in text.splitlines():
        match = _STATUS_LINE.match(line)
        if match:
            node, state, pc, reason = match.groups()
            nodes[int(node)] = {"run": state, "pc": int(pc, 16) if pc else None, "reason": reason}
    return nodes


def where(pc: int | None) -> str:
    """`function (file:line)` for a pc in the kernel, '??' outside it."""
    if pc is None:
        return "?"
    try:
        text = gdb.execute(f"info symbol {pc:#x}", to_string=True)
    except gdb.error:
        return "??"
    match = re.match(r"(\S+)(?: \+ \d+)? in section", text)
    if match is None:
        return "??"
    sal = gdb.find_pc_line(pc)
    if sal.symtab is None or not sal.line:
        return match.group(1)
    return f"{match.group(1)} ({os.path.basename(sal.symtab.filename)}:{sal.line})"


# -- the data each command shows -------------------------------------------------------------


def _thread_name(pointer: gdb.Value) -> str:
    if int(pointer) == 0:
        return "-"
    return _string(_member(pointer.dereference(), "name"))


def threads(record: gdb.Value) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    thread = _member(record, "threads")
    while int(thread) != 0 and len(out) < MAX_THREADS:
        t = _fetch(thread.dereference(), f"thread at {int(thread):#x}")
        out.append({
            "name": _string(_member(t, "name")),
            "address": int(thread),
            "state": _enum_name("enum thread_state", _int(t, "state")),
            "runs": _int(t, "runs"),
            "waiting_on": _string(_member(t, "waiting_on")),
        })
        thread = _member(t, "all_next")
    return out


def node_rows(kernel: Kernel) -> list[dict[str, Any]]:
    status = lld_status()
    attached = kernel.attached()
    rows = []
    for k in range(kernel.nnodes):
        record = kernel.record(k)
        lld = status.get(k, {})
        pc = int(gdb.parse_and_eval("$pc")) if k == attached else lld.get("pc")
        rows.append({
            "node": k,
            "attached": k == attached,
            "state": "unpublished" if record is None
            else _enum_name("enum node_state", _int(record, "state")),
            "run": "stopped" if k == attached else lld.get("run", "?"),
            "reason": lld.get("reason"),
            "pc": pc,
            "where": where(pc),
            "ticks": None if record is None else _int(record, "ticks"),
            "thread": "-" if record is None else _thread_name(_member(record, "current")),
        })
    return rows


def node_detail(kernel: Kernel, node: int) -> dict[str, Any]:
    record = kernel.must_record(node)
    row = node_rows(kernel)[node]
    heap = _member(record, "heap")
    detail = dict(row)
    detail.update({
        "record": int(_member(record, "official")),
        "ram_base": _int(record, "ram_base"),
        "missed_ticks": _int(record, "missed_ticks"),
        "preempt_level": _int(record, "preempt_level"),
        "resched_pending": _int(record, "resched_pending"),
        "in_interrupt": _int(record, "in_interrupt"),
        "switches": _int(record, "switches"),
        "preemptions": _int(record, "preemptions"),
        "deferred_switches": _int(record, "deferred_switches"),
        "deferred_honoured": _int(record, "deferred_honoured"),
        "ipis_received": _int(record, "ipis_received"),
        "ipi_pending": _int(record, "ipi_pending"),
        "barriers_passed": _int(record, "barriers_passed"),
        "peers_seen": _int(record, "peers_seen"),
        "code_ok": bool(_int(record, "code_ok")),
        "spaces_ok": bool(_int(record, "spaces_ok")),
        "heap_used": _int(heap, "used"),
        "heap_size": _int(heap, "size"),
        "panic": _string(_member(record, "panic_msg")),
        "threads": threads(record),
    })
    return detail


def _is_struct(value_type: gdb.Type, tag: str) -> bool:
    t = value_type.strip_typedefs()
    is_struct: bool = t.code == gdb.TYPE_CODE_STRUCT and t.tag == tag
    return is_struct


def _lock_row(where_: str, lock: gdb.Value) -> dict[str, Any]:
    held = _int(lock, "locked") != 0
    return {"where": where_, "name": _string(_member(lock, "name")), "held": held,
            "owner": _int(lock, "owner") if held else None,
            "acquisitions": _int(lock, "acquisitions"), "contended": _int(lock, "contended")}


def _sem_row(where_: str, sem: gdb.Value) -> dict[str, Any]:
    waiters: list[str] = []
    thread = _member(sem, "head")
    while int(thread) != 0 and len(waiters) < MAX_THREADS:
        t = thread.dereference()
        waiters.append(f"{_string(_member(t, 'name'))}@{_int(t, 'home')}")
        thread = _member(t, "next")
    return {"where": where_, "name": _string(_member(sem, "name")), "count": _int(sem, "count"),
            "blocked": _int(sem, "blocked"), "waiters": waiters,
            "lock": _lock_row(where_, _member(sem, "lock"))}


def _walk(where_: str, separator: str, value: gdb.Value,
          locks: list[dict[str, Any]], sems: list[dict[str, Any]]) -> None:
    """Every spin lock and semaphore embedded in value, found by type, not by name."""
    for field in value.type.strip_typedefs().fields():
        if field.name is None or field.type.strip_typedefs().code != gdb.TYPE_CODE_STRUCT:
            continue
        member = value[field.name]
        path = f"{where_}{separator}{field.name}"
        if _is_struct(field.type, "spinlock"):
            locks.append(_lock_row(path, member))
        elif _is_struct(field.type, "sem"):
            sems.append(_sem_row(path, member))
        else:
            _walk(path, ".", member, locks, sems)


def lock_rows(kernel: Kernel) -> dict[str, list[dict[str, Any]]]:
    """Locks in every node's record and in every shared object `kg` points at.

    Pointers are not followed beyond kg's own: records hold local-window
    pointers that mean something only on their own node.  The one array the
    types cannot reveal is the self-test's token ring, one semaphore per node
    (selftest.c).
    """
    locks: list[dict[str, Any]] = []
    sems: list[dict[str, Any]] = []
    for k in range(kernel.nnodes):
        record = kernel.record(k)
        if record is not None:
            _walk(f"node {k}", " ", record, locks, sems)
    for field in kernel.kg.type.strip_typedefs().fields():
        pointer = kernel.kg[field.name]
        target = pointer.type.strip_typedefs()
        if target.code != gdb.TYPE_CODE_PTR or target.target().strip_typedefs().code != gdb.TYPE_CODE_STRUCT:
            continue
        if int(pointer) == 0:
            continue
        value = _fetch(pointer.dereference(), f"kg.{field.name}")
        _walk(f"kg.{field.name}", "->", value, locks, sems)
        if _is_struct(target.target(), "selftest_shared") and int(value["tokens"]) != 0:
            for k in range(kernel.nnodes):
                sems.append(_sem_row(f"kg.{field.name}->tokens[{k}]", value["tokens"][k]))
    return {"spinlocks": locks, "semaphores": sems}


def _heap_row(label: str, heap: gdb.Value, to_official: int) -> dict[str, Any]:
    """One heap's counters and its free list (block addresses moved by to_official)."""
    hblock = _type("struct hblock").pointer()
    free_blocks, largest = 0, 0
    block = int(_member(heap, "free"))
    while block != 0 and free_blocks < MAX_HEAP_BLOCKS:
        b = gdb.Value(block + to_official).cast(hblock).dereference()
        size = _int(b, "size")
        free_blocks += 1
        largest = max(largest, size)
        block = int(_member(b, "next"))
    return {"heap": label, "name": _string(_member(heap, "name")), "base": _int(heap, "base"),
            "size": _int(heap, "size"), "used": _int(heap, "used"), "peak": _int(heap, "peak"),
            "allocs": _int(heap, "allocs"), "free_blocks": free_blocks, "largest_free": largest}


def heap_rows(kernel: Kernel) -> list[dict[str, Any]]:
    shared = _fetch(_member(kernel.kg, "shared_heap").dereference(), "the shared heap")
    rows = [_heap_row("shared", shared, 0)]
    for k in range(kernel.nnodes):
        record = kernel.record(k)
        if record is not None:
            rows.append(_heap_row(f"node {k}", _member(record, "heap"), kernel.to_official(k, 0)))
    return rows


# -- rendering ---------------------------------------------------------------------------------


def _hex(value: int | None) -> str:
    return "?" if value is None else f"{value:#010x}"


def render_nodes(rows: list[dict[str, Any]]) -> str:
    lines = [f"  {'node':>4}  {'kernel':11} {'lld':20} {'pc':10}  {'ticks':>7}  {'thread':10} where"]
    for r in rows:
        run = r["run"] + (f" ({r['reason']})" if r["reason"] and r["run"] == "stopped" else "")
        ticks = "-" if r["ticks"] is None else str(r["ticks"])
        mark = "*" if r["attached"] else " "
        lines.append(f"{mark} {r['node']:>4}  {r['state']:11} {run:20} {_hex(r['pc'])}"
                     f"  {ticks:>7}  {r['thread']:10} {r['where']}")
    return "\n".join(lines)


def render_node(d: dict[str, Any]) -> str:
    lines = [
        f"node {d['node']}{' (attached)' if d['attached'] else ''}: {d['state']}; lld {d['run']}"
        f"{' (' + d['reason'] + ')' if d['reason'] and d['run'] == 'stopped' else ''} at {_hex(d['pc'])} "
        f"{d['where']}",
        f"  record at {d['record']:#010x} (official), RAM at {d['ram_base']:#010x}",
        f"  ticks {d['ticks']} (missed {d['missed_ticks']}); preemption level {d['preempt_level']}, "
        f"resched pending {d['resched_pending']}, in interrupt {d['in_interrupt']}",
        f"  switches {d['switches']}, clock preemptions {d['preemptions']}, deferred "
        f"{d['deferred_switches']} (honoured {d['deferred_honoured']}); remote interrupts "
        f"{d['ipis_received']}, pending {d['ipi_pending']:#x}",
        f"  boot: {d['barriers_passed']} barriers passed; {_memory_checks(d)}; "
        f"local heap {d['heap_used']} of {d['heap_size']} bytes used",
        f"  threads ({len(d['threads'])}):",
    ]
    for t in d["threads"]:
        waiting = f", waiting on {t['waiting_on']}" if t["state"] == "blocked" and t["waiting_on"] else ""
        lines.append(f"    {t['name']:15} {t['state']:8} runs {t['runs']}{waiting}"
                     f"{'  <- current' if t['name'] == d['thread'] else ''}")
    if d["panic"]:
        lines.append(f"  panic: {d['panic']}")
    return "\n".join(lines)


def _memory_checks(d: dict[str, Any]) -> str:
    """Episode 2's results, which mean something only once barrier 2 is passed (main.c)."""
    if d["barriers_passed"] < 2:
        return "memory checks not done yet (episode 2)"
    return (f"{d['peers_seen']} peers seen, code {'ok' if d['code_ok'] else 'NOT ok'}, "
            f"spaces {'ok' if d['spaces_ok'] else 'NOT ok'}")


def render_locks(data: dict[str, list[dict[str, Any]]]) -> str:
    lines = [f"spin locks:\n  {'where':34} {'name':16} {'holder':8} {'taken':>8} {'contended':>10}"]
    for r in data["spinlocks"]:
        holder = f"node {r['owner']}" if r["held"] else "-"
        lines.append(f"  {r['where']:34} {r['name']:16} {holder:8} {r['acquisitions']:>8} "
                     f"{r['contended']:>10}")
    lines.append(f"semaphores:\n  {'where':34} {'name':16} {'count':>5} {'blocked':>8}  waiters")
    for r in data["semaphores"]:
        lines.append(f"  {r['where']:34} {r['name']:16} {r['count']:>5} {r['blocked']:>8}  "
                     f"{' '.join(r['waiters']) or '-'}")
    return "\n".join(lines)


def render_heaps(rows: list[dict[str, Any]]) -> str:
    lines = [f"  {'heap':8} {'base':10} {'size':>8} {'used':>8} {'peak':>8} {'allocs':>7} {'free blocks':>11}"
             f" {'largest free':>12}"]
    for r in rows:
        lines.append(f"  {r['heap']:8} {r['base']:#010x} {r['size']:>8} {r['used']:>8} {r['peak']:>8} "
                     f"{r['allocs']:>7} {r['free_blocks']:>11} {r['largest_free']:>12}")
    return "\n".join(lines)


# -- gdb commands and functions ------------------------------------------------------------------


def _args(argument: str) -> tuple[list[str], bool]:
    words = gdb.string_to_argv(argument)
    return [w for w in words if w != "-json"], "-json" in words


def _emit(data: Any, text: str, as_json: bool) -> None:
    gdb.write((json.dumps(data) if as_json else text) + "\n")


class PsycheCommand(gdb.Command):
    """Psyche kernel commands: psyche nodes | node N | locks | heap (each takes -json)."""

    def __init__(self) -> None:
        super().__init__("psyche", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, argument: str, from_tty: bool) -> None:
        if argument.strip():
            # gdb hands the prefix command whatever is not one of its subcommands: a typo is an
            # error (a script must not go on as if it had its table), not the help text.
            raise gdb.GdbError(f"psyche: no subcommand {argument.split()[0]!r}; `psyche` lists them")
        gdb.write("psyche nodes    every node: kernel state, lld state, pc and function, ticks, thread\n"
                  "psyche node N   one node in detail: counters, threads, heap, panic\n"
                  "psyche locks    every spin lock and semaphore: holder, waiters, counts\n"
                  "psyche heap     the shared heap and every node's local heap\n"
                  "functions: $psyche_node(), $psyche_record([N]), $psyche_ticks([N]), $psyche_pc(N)\n")


class NodesCommand(gdb.Command):
    """Every node: kernel state, lld run state, pc and function, ticks, current thread.

Usage: psyche nodes [-json]
Read through the kernel's node table (kg.nodes), so one gdb sees all nodes;
pcs of other nodes come from the mux (monitor status).  * marks this gdb's node."""

    def __init__(self) -> None:
        super().__init__("psyche nodes", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _, as_json = _args(argument)
        rows = node_rows(Kernel())
        _emit(rows, render_nodes(rows), as_json)


class NodeCommand(gdb.Command):
    """One node in detail: state, counters, threads, local heap, panic message.

Usage: psyche node [N] [-json]   (default: the node gdb is attached to)"""

    def __init__(self) -> None:
        super().__init__("psyche node", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        words, as_json = _args(argument)
        kernel = Kernel()
        try:
            node = int(words[0], 0) if words else kernel.attached()
        except ValueError:
            raise PsycheError(f"psyche node: {words[0]!r} is not a node number") from None
        detail = node_detail(kernel, node)
        _emit(detail, render_node(detail), as_json)


class LocksCommand(gdb.Command):
    """Every spin lock and semaphore in the node records and the shared objects.

Usage: psyche locks [-json]
Locks are found by type (struct spinlock, struct sem), wherever they are embedded."""

    def __init__(self) -> None:
        super().__init__("psyche locks", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _, as_json = _args(argument)
        data = lock_rows(Kernel())
        _emit(data, render_locks(data), as_json)


class HeapCommand(gdb.Command):
    """The shared heap and every node's local heap: usage and free list.

Usage: psyche heap [-json]"""

    def __init__(self) -> None:
        super().__init__("psyche heap", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _, as_json = _args(argument)
        rows = heap_rows(Kernel())
        _emit(rows, render_heaps(rows), as_json)


class NodeFunction(gdb.Function):
    """$psyche_node(): the number of the node this gdb is attached to."""

    def __init__(self) -> None:
        super().__init__("psyche_node")

    def invoke(self) -> int:
        return Kernel().attached()


class RecordFunction(gdb.Function):
    """$psyche_record([N]): node N's struct node, read through the node table (default: this node)."""

    def __init__(self) -> None:
        super().__init__("psyche_record")

    def invoke(self, node: gdb.Value | None = None) -> gdb.Value:
        kernel = Kernel()
        return kernel.must_record(kernel.attached() if node is None else int(node))


class TicksFunction(gdb.Function):
    """$psyche_ticks([N]): node N's tick count, from its record (default: this node)."""

    def __init__(self) -> None:
        super().__init__("psyche_ticks")

    def invoke(self, node: gdb.Value | None = None) -> int:
        kernel = Kernel()
        return _int(kernel.must_record(kernel.attached() if node is None else int(node)), "ticks")


class PcFunction(gdb.Function):
    """$psyche_pc(N): node N's pc as its lld reports it (through the mux's monitor status)."""

    def __init__(self) -> None:
        super().__init__("psyche_pc")

    def invoke(self, node: gdb.Value) -> gdb.Value:
        status = lld_status().get(int(node))
        if status is None or status["pc"] is None:
            raise PsycheError(f"psyche: no pc for node {int(node)}: the mux's `monitor status` did not "
                              "report one (is gdb attached through the Psyche mux?)")
        # A code address, as gdb shows $pc: in hex, with the function it is in.
        return gdb.Value(status["pc"]).cast(gdb.lookup_type("void").pointer())


for _register in (PsycheCommand, NodesCommand, NodeCommand, LocksCommand, HeapCommand,
                  NodeFunction, RecordFunction, TicksFunction, PcFunction):
    _register()
