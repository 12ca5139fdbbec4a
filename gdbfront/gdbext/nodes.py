"""`psyche nodes`, `psyche node N`, `psyche locks`, `psyche heap`, and the convenience functions
`$psyche_node()`, `$psyche_record([N])`, `$psyche_ticks([N])`, `$psyche_pc(N)`: the nodes, their
threads, locks and heaps (kernel.py says where the answers come from)."""

from __future__ import annotations

from typing import Any

import gdb

from .kernel import (
    MAX_HEAP_BLOCKS,
    MAX_THREADS,
    Kernel,
    PsycheError,
    c_string,
    emit,
    enum_name,
    fetched,
    hex_address,
    int_of,
    kernel_type,
    lld_status,
    member_of,
    parse_args,
    thread_name,
    where,
)

# -- the data each command shows -------------------------------------------------------------


def threads(record: gdb.Value) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    thread = member_of(record, "threads")
    while int(thread) != 0 and len(out) < MAX_THREADS:
        t = fetched(thread.dereference(), f"thread at {int(thread):#x}")
        out.append({
            "name": c_string(member_of(t, "name")),
            "address": int(thread),
            "state": enum_name("enum thread_state", int_of(t, "state")),
            "runs": int_of(t, "runs"),
            "waiting_on": c_string(member_of(t, "waiting_on")),
        })
        thread = member_of(t, "all_next")
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
            else enum_name("enum node_state", int_of(record, "state")),
            "run": "stopped" if k == attached else lld.get("run", "?"),
            "reason": lld.get("reason"),
            "pc": pc,
            "where": where(pc),
            "ticks": None if record is None else int_of(record, "ticks"),
            "thread": "-" if record is None else thread_name(member_of(record, "current")),
        })
    return rows


def node_detail(kernel: Kernel, node: int) -> dict[str, Any]:
    record = kernel.must_record(node)
    row = node_rows(kernel)[node]
    heap = member_of(record, "heap")
    detail = dict(row)
    detail.update({
        "record": int(member_of(record, "official")),
        "ram_base": int_of(record, "ram_base"),
        "missed_ticks": int_of(record, "missed_ticks"),
        "preempt_level": int_of(record, "preempt_level"),
        "resched_pending": int_of(record, "resched_pending"),
        "in_interrupt": int_of(record, "in_interrupt"),
        "switches": int_of(record, "switches"),
        "preemptions": int_of(record, "preemptions"),
        "deferred_switches": int_of(record, "deferred_switches"),
        "deferred_honoured": int_of(record, "deferred_honoured"),
        "ipis_received": int_of(record, "ipis_received"),
        "ipi_pending": int_of(record, "ipi_pending"),
        "barriers_passed": int_of(record, "barriers_passed"),
        "peers_seen": int_of(record, "peers_seen"),
        "code_ok": bool(int_of(record, "code_ok")),
        "spaces_ok": bool(int_of(record, "spaces_ok")),
        "heap_used": int_of(heap, "used"),
        "heap_size": int_of(heap, "size"),
        "panic": c_string(member_of(record, "panic_msg")),
        "threads": threads(record),
    })
    return detail


def _is_struct(value_type: gdb.Type, tag: str) -> bool:
    t = value_type.strip_typedefs()
    is_struct: bool = t.code == gdb.TYPE_CODE_STRUCT and t.tag == tag
    return is_struct


def _lock_row(where_: str, lock: gdb.Value) -> dict[str, Any]:
    held = int_of(lock, "locked") != 0
    return {"where": where_, "name": c_string(member_of(lock, "name")), "held": held,
            "owner": int_of(lock, "owner") if held else None,
            "acquisitions": int_of(lock, "acquisitions"), "contended": int_of(lock, "contended")}


def _sem_row(where_: str, sem: gdb.Value) -> dict[str, Any]:
    waiters: list[str] = []
    thread = member_of(sem, "head")
    while int(thread) != 0 and len(waiters) < MAX_THREADS:
        t = thread.dereference()
        waiters.append(f"{c_string(member_of(t, 'name'))}@{int_of(t, 'home')}")
        thread = member_of(t, "next")
    return {"where": where_, "name": c_string(member_of(sem, "name")), "count": int_of(sem, "count"),
            "blocked": int_of(sem, "blocked"), "waiters": waiters,
            "lock": _lock_row(where_, member_of(sem, "lock"))}


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
        value = fetched(pointer.dereference(), f"kg.{field.name}")
        _walk(f"kg.{field.name}", "->", value, locks, sems)
        if _is_struct(target.target(), "selftest_shared") and int(value["tokens"]) != 0:
            for k in range(kernel.nnodes):
                sems.append(_sem_row(f"kg.{field.name}->tokens[{k}]", value["tokens"][k]))
    return {"spinlocks": locks, "semaphores": sems}


def _heap_row(label: str, heap: gdb.Value, to_official: int) -> dict[str, Any]:
    """One heap's counters and its free list (block addresses moved by to_official)."""
    hblock = kernel_type("struct hblock").pointer()
    free_blocks, largest = 0, 0
    block = int(member_of(heap, "free"))
    while block != 0 and free_blocks < MAX_HEAP_BLOCKS:
        b = gdb.Value(block + to_official).cast(hblock).dereference()
        size = int_of(b, "size")
        free_blocks += 1
        largest = max(largest, size)
        block = int(member_of(b, "next"))
    return {"heap": label, "name": c_string(member_of(heap, "name")), "base": int_of(heap, "base"),
            "size": int_of(heap, "size"), "used": int_of(heap, "used"), "peak": int_of(heap, "peak"),
            "allocs": int_of(heap, "allocs"), "free_blocks": free_blocks, "largest_free": largest}


def heap_rows(kernel: Kernel) -> list[dict[str, Any]]:
    shared = fetched(member_of(kernel.kg, "shared_heap").dereference(), "the shared heap")
    rows = [_heap_row("shared", shared, 0)]
    for k in range(kernel.nnodes):
        record = kernel.record(k)
        if record is not None:
            rows.append(_heap_row(f"node {k}", member_of(record, "heap"), kernel.to_official(k, 0)))
    return rows


# -- rendering ---------------------------------------------------------------------------------


def render_nodes(rows: list[dict[str, Any]]) -> str:
    lines = [f"  {'node':>4}  {'kernel':11} {'lld':20} {'pc':10}  {'ticks':>7}  {'thread':10} where"]
    for r in rows:
        run = r["run"] + (f" ({r['reason']})" if r["reason"] and r["run"] == "stopped" else "")
        ticks = "-" if r["ticks"] is None else str(r["ticks"])
        mark = "*" if r["attached"] else " "
        lines.append(f"{mark} {r['node']:>4}  {r['state']:11} {run:20} {hex_address(r['pc'])}"
                     f"  {ticks:>7}  {r['thread']:10} {r['where']}")
    return "\n".join(lines)


def render_node(d: dict[str, Any]) -> str:
    lines = [
        f"node {d['node']}{' (attached)' if d['attached'] else ''}: {d['state']}; lld {d['run']}"
        f"{' (' + d['reason'] + ')' if d['reason'] and d['run'] == 'stopped' else ''} "
        f"at {hex_address(d['pc'])} "
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



class NodesCommand(gdb.Command):
    """Every node: kernel state, lld run state, pc and function, ticks, current thread.

Usage: psyche nodes [-json]
Read through the kernel's node table (kg.nodes), so one gdb sees all nodes;
pcs of other nodes come from the mux (monitor status).  * marks this gdb's node."""

    def __init__(self) -> None:
        super().__init__("psyche nodes", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _, as_json = parse_args(argument)
        rows = node_rows(Kernel())
        emit(rows, render_nodes(rows), as_json)


class NodeCommand(gdb.Command):
    """One node in detail: state, counters, threads, local heap, panic message.

Usage: psyche node [N] [-json]   (default: the node gdb is attached to)"""

    def __init__(self) -> None:
        super().__init__("psyche node", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        words, as_json = parse_args(argument)
        kernel = Kernel()
        node = kernel.node_argument(words, "node")
        detail = node_detail(kernel, node)
        emit(detail, render_node(detail), as_json)


class LocksCommand(gdb.Command):
    """Every spin lock and semaphore in the node records and the shared objects.

Usage: psyche locks [-json]
Locks are found by type (struct spinlock, struct sem), wherever they are embedded."""

    def __init__(self) -> None:
        super().__init__("psyche locks", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _, as_json = parse_args(argument)
        data = lock_rows(Kernel())
        emit(data, render_locks(data), as_json)


class HeapCommand(gdb.Command):
    """The shared heap and every node's local heap: usage and free list.

Usage: psyche heap [-json]"""

    def __init__(self) -> None:
        super().__init__("psyche heap", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        _, as_json = parse_args(argument)
        rows = heap_rows(Kernel())
        emit(rows, render_heaps(rows), as_json)


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
        return int_of(kernel.must_record(kernel.attached() if node is None else int(node)), "ticks")


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


COMMANDS = (NodesCommand, NodeCommand, LocksCommand, HeapCommand,
            NodeFunction, RecordFunction, TicksFunction, PcFunction)
