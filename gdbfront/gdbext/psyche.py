"""Psyche-aware gdb commands: `psyche nodes`, `psyche node N`, `psyche locks`, `psyche heap`,
`psyche realms`, `psyche domains`, `psyche vps`, `psyche calls`, `psyche magic [N]`,
`psyche symbols` (symbols.py, beside this file), and the
convenience functions `$psyche_node()`, `$psyche_record([N])`, `$psyche_ticks([N])`
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

import importlib.util
import json
import os
import re
import sys
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


# -- the uniform address space: realms, domains, VPs, protected calls ------------------------
#
# The kernel keeps all of it in one `struct vm` in the shared heap (kg.vm), named by official
# addresses, so any node's gdb reads it alike.  Table sizes come from the arrays' DWARF types; the
# flag values below are uapi/psyche.h's #defines, which DWARF does not carry (no -g3).

PSY_DEVICE = 0x200                       # PSY_REALM_DEVICE
REPLICATION = ((0x400, "create"), (0x800, "open"), (0x1000, "demand"))   # PSY_REPLICATE_*
RIGHTS = "rwxio"                         # PSY_R, PSY_W, PSY_X, PSY_INVOKE, PSY_OWNER: bits 0..4
VP_STATES = ("free", "ready", "running", "blocked")                   # PSY_VP_*
SWI_KINDS = ("init", "timer", "interval", "error", "call-out", "call-in", "return")  # PSY_SWI_*
NO_VP = 0xFFFFFFFF                       # magic.vp_id when no VP runs
MAX_REALMS = 4096                        # a longer realm list is taken to be corrupt
MAX_QUEUE = 256                          # ... and a longer call queue


def rights(bits: int) -> str:
    """Rights as the kernel monitor prints them: `rw--o`."""
    return "".join(letter if bits & (1 << i) else "-" for i, letter in enumerate(RIGHTS))


def swi_kinds(bits: int) -> list[str]:
    return [SWI_KINDS[i] if i < len(SWI_KINDS) else str(i) for i in range(32) if bits & (1 << i)]


def _array(value: gdb.Value) -> list[gdb.Value]:
    """The elements of a C array member, as many as its DWARF type says."""
    low, high = value.type.strip_typedefs().range()
    return [value[i] for i in range(low, high + 1)]


def _pointed_array(pointer: gdb.Value, count: int, what: str) -> list[gdb.Value]:
    """count elements from where pointer points, read in one request (not one per element: each
    read of another node's memory is a round trip through the mux and lld)."""
    array = pointer.dereference().type.array(count - 1)
    values = _fetch(pointer.cast(array.pointer()).dereference(), what)
    return _array(values)


def _deref(pointer: gdb.Value, what: str) -> gdb.Value | None:
    return None if int(pointer) == 0 else _fetch(pointer.dereference(), f"{what} at {int(pointer):#x}")


def _id_of(pointer: gdb.Value) -> int | None:
    """The `id` of the structure a pointer points at (domain, VP, call); None for NULL."""
    return None if int(pointer) == 0 else _int(pointer.dereference(), "id")


def the_vm(kernel: Kernel) -> gdb.Value:
    vm = _deref(_member(kernel.kg, "vm"), "the kernel map kg.vm")
    if vm is None:
        raise PsycheError("psyche: kg.vm is NULL: the king has not set up realms and domains yet")
    return vm


def _realm_ops(realm: gdb.Value) -> list[int] | None:
    """A realm's declared operation entry points, if this kernel has them (`ops`, `nops`)."""
    names = {f.name for f in realm.type.strip_typedefs().fields()}
    if not {"ops", "nops"} <= names:
        return None
    ops = _array(realm["ops"])
    return [int(op) for op in ops[:max(0, min(int(realm["nops"]), len(ops)))]]


def realm_rows(kernel: Kernel) -> dict[str, Any]:
    """The kernel map: every realm in address order."""
    vm = the_vm(kernel)
    rows: list[dict[str, Any]] = []
    pointer = _member(vm, "realms")
    has_ops = False
    while int(pointer) != 0 and len(rows) < MAX_REALMS:
        r = _fetch(pointer.dereference(), f"realm at {int(pointer):#x}")
        flags = _int(r, "flags")
        copies = _member(r, "copies")
        ncopies = None
        if int(copies) != 0:
            ncopies = sum(int(c) != 0 for c in _pointed_array(copies, kernel.nnodes, "a realm's copies"))
        ops = _realm_ops(r)
        has_ops = has_ops or ops is not None
        rows.append({
            "address": int(pointer),
            "base": _int(r, "base"), "size": _int(r, "size"), "flags": flags,
            "device": bool(flags & PSY_DEVICE),
            "node": None if flags & PSY_DEVICE else _int(r, "node"),
            "phys": _int(r, "phys") if flags & PSY_DEVICE else None,
            "replication": [name for bit, name in REPLICATION if flags & bit],
            "copies": ncopies,
            "acl": [{"key": int(e["key"]), "rights": rights(int(e["rights"]))}
                    for e in _array(_member(r, "acl")) if int(e["key"]) != 0],
            "open_in": [32 * i + bit for i, word in enumerate(_array(_member(r, "opened")))
                        for bit in range(32) if int(word) & (1 << bit)],
            "home": _id_of(_member(r, "home")),
            "ops": ops,
        })
        pointer = _member(r, "next")
    return {"nrealms": _int(vm, "nrealms"), "faults": _int(vm, "faults"), "opens": _int(vm, "opens"),
            "has_ops": has_ops, "realms": rows}


def _domain_keys(domain: gdb.Value) -> list[int] | None:
    """The keys in a domain's descriptor page (struct psy_domain, in its first frame); None if
    the descriptor cannot be read."""
    desc = _member(domain, "desc")
    if int(desc) == 0:
        return None
    frames = _member(desc.dereference(), "frames")
    if int(frames) == 0:
        return None
    try:
        page = gdb.Value(int(frames[0])).cast(_type("struct psy_domain").pointer()).dereference()
        page.fetch_lazy()
        keys = _array(page["keys"])
        return [int(k) for k in keys[:max(0, min(int(page["nkeys"]), len(keys)))]]
    except gdb.MemoryError:
        return None


def domain_rows(kernel: Kernel) -> list[dict[str, Any]]:
    """Every protection domain: its descriptor and keys, the realms open in it (with the rights it
    opened them with), the nodes that have its page table, its protected-call linkages."""
    vm = the_vm(kernel)
    rows = []
    for pointer in _array(_member(vm, "domains")):
        d = _deref(pointer, "domain")
        if d is None:
            continue
        opens = _array(_member(d, "open"))[:max(0, _int(d, "nopen"))]
        desc = _member(d, "desc")
        roots = _array(_member(d, "root"))
        rows.append({
            "id": _int(d, "id"),
            "address": int(pointer),
            "devices": bool(_int(d, "devices")),
            "running": _int(d, "running"),
            "vps": _int(d, "nvps"),
            "descriptor": None if int(desc) == 0 else _int(desc.dereference(), "base"),
            "keys": _domain_keys(d),
            "open": [{"base": _int(o["realm"].dereference(), "base"), "rights": rights(int(o["rights"]))}
                     for o in opens if int(o["realm"]) != 0],
            "tables_on": [k for k in range(min(kernel.nnodes, len(roots))) if int(roots[k]) != 0],
            "links": [int(link["entry"]) for link in _array(_member(d, "links")) if int(link["entry"]) != 0],
        })
    return rows


def _queue_ids(head: gdb.Value, link: str) -> list[int]:
    """The ids of the calls on a VP's queue (calls_in through next_in, returns through next_ret)."""
    ids: list[int] = []
    while int(head) != 0 and len(ids) < MAX_QUEUE:
        call = head.dereference()
        ids.append(_int(call, "id"))
        head = _member(call, link)
    return ids


def vp_rows(kernel: Kernel) -> list[dict[str, Any]]:
    """Every virtual processor, by number."""
    vm = the_vm(kernel)
    rows = []
    for pointer in _array(_member(vm, "vps")):
        v = _deref(pointer, "VP")
        if v is None:
            continue
        state = _int(v, "state")
        thread = _member(v, "thread")
        rows.append({
            "id": _int(v, "id"),
            "address": int(pointer),
            "node": _int(v, "node"),
            "domain": _int(v, "dom_id"),
            "state": VP_STATES[state] if 0 <= state < len(VP_STATES) else str(state),
            "thread": _thread_name(thread),
            "first": bool(_int(v, "first")),
            "cycles": _int(v, "cycles"),
            "pending": swi_kinds(_int(v, "pending")),
            "descriptor": _int(v, "desc_va"),
            "dying": bool(_int(v, "dying")),
            "serving": _id_of(_member(v, "serving")),
            "awaiting": _id_of(_member(v, "awaiting")),
            "calls_in": _queue_ids(_member(v, "calls_in"), "next_in"),
            "returns": _queue_ids(_member(v, "returns"), "next_ret"),
        })
    return rows


def _call_state(call: gdb.Value) -> str:
    if _int(call, "done"):
        return "returned"
    return "running" if _int(call, "delivered") else "queued"


def call_rows(kernel: Kernel) -> dict[str, Any]:
    """Every protected call in progress, with its chain: the calls its process made one inside
    another (`parent`), outermost first."""
    vm = the_vm(kernel)
    calls: dict[int, dict[str, Any]] = {}
    for pointer in _array(_member(vm, "pcalls")):
        p = _deref(pointer, "protected call")
        if p is None:
            continue
        calls[_int(p, "id")] = {
            "id": _int(p, "id"),
            "address": int(pointer),
            "parent": _int(p, "parent"),
            "entry": _int(p, "entry"),
            "caller_domain": _id_of(_member(p, "caller")),
            "caller_vp": _id_of(_member(p, "caller_vp")),
            "process": _int(p, "caller_process"),
            "callee_domain": _id_of(_member(p, "callee")),
            "callee_vp": _id_of(_member(p, "callee_vp")),
            "async": bool(_int(p, "async")),
            "state": _call_state(p),
            "args": [int(a) for a in _array(_member(p, "args"))[:2]],
            "result": [int(a) for a in _array(_member(p, "result"))] if _int(p, "done") else None,
            "return_pc": _int(p, "ret_pc"),
        }
    for call in calls.values():
        call["chain"] = _chain(calls, call["id"])
    rows = sorted(calls.values(), key=lambda c: c["chain"])
    return {"made": _int(vm, "pcalls_made"), "slow": _int(vm, "pcalls_slow"), "calls": rows}


def _chain(calls: dict[int, dict[str, Any]], call: int) -> list[int]:
    """The ids from the outermost call of call's chain down to call.  A parent that has ended (or
    a loop, which would be corruption) ends the walk."""
    chain = [call]
    parent = calls[call]["parent"]
    while parent in calls and parent not in chain:
        chain.insert(0, parent)
        parent = calls[parent]["parent"]
    return chain


def magic_data(kernel: Kernel, node: int) -> dict[str, Any]:
    """Node's magic page (`magic`, one per node, at the same local address on every node: read at
    its official address through the node table)."""
    kernel.must_record(node)
    local = _symbol("magic")
    address = kernel.to_official(node, int(local.address))
    page = _fetch(gdb.Value(address).cast(local.type.pointer()).dereference(), f"node {node}'s magic page")
    nnodes = _int(page, "nnodes")
    runq = _array(_member(page, "runq"))
    vp_id = _int(page, "vp_id")
    stats = []
    for i, s in enumerate(_array(_member(page, "vps"))):
        state = int(s["state"])
        if state != 0:
            stats.append({"vp": i, "state": VP_STATES[state] if state < len(VP_STATES) else str(state),
                          "node": int(s["node"]), "domain": int(s["domain"]), "cycles": int(s["cycles"])})
    return {
        "node": node, "address": address,
        "page_node": _int(page, "node"), "nnodes": nnodes, "ticks": _int(page, "ticks"),
        "time": _int(page, "time"), "domain": _int(page, "domain"),
        "vp": _int(page, "vp"), "vp_id": None if vp_id == NO_VP else vp_id,
        "stats_tick": _int(page, "stats_tick"),
        "runq": [int(n) for n in runq[:min(nnodes, len(runq))]],
        "vps": stats,
    }


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


def table(columns: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    """An aligned table: each column as wide as its widest cell, two spaces apart.

    A title ending in '>' is right-aligned (numbers), the others left-aligned; the last column is
    not padded, so a long list there (keys, realms) runs on without widening the rest.  (Not rich:
    gdb runs its own Python, the system's, which has no rich in a clean install; docs/gdbfront.md.)
    """
    titles = [c.rstrip(">") for c in columns]
    right = [c.endswith(">") for c in columns]
    cells = [titles] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for row in cells:
        parts = [cell.rjust(widths[i]) if right[i] else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        if not right[-1]:
            parts[-1] = row[-1]
        lines.append((indent + "  ".join(parts)).rstrip())
    return "\n".join(lines)


def _listed(items: list[Any]) -> str:
    return " ".join(str(i) for i in items) if items else "-"


def render_realms(data: dict[str, Any]) -> str:
    columns = ["base", "end", "KiB>", "frames", "replicated", "home", "open in"]
    if data["has_ops"]:
        columns.append("ops")
    columns.append("access")
    rows = []
    for r in data["realms"]:
        frames = f"device {_hex(r['phys'])}" if r["device"] else f"node {r['node']}"
        replicated = ", ".join(x for x in ("/".join(r["replication"]), _copies(r["copies"])) if x) or "-"
        row = [_hex(r["base"]), _hex(r["base"] + r["size"] - 1), r["size"] // 1024, frames, replicated,
               r["home"], _listed(r["open_in"])]
        if data["has_ops"]:
            row.append(_listed([f"{op:#x}" for op in r["ops"] or []]))
        row.append(_listed([f"{e['key']:08x}:{e['rights']}" for e in r["acl"]]))
        rows.append(row)
    head = (f"{data['nrealms']} realms; {data['faults']} user page faults, {data['opens']} of them "
            "opened a realm")
    return head + ("\n" + table(columns, rows) if rows else "")


def _copies(n: int | None) -> str:
    return "" if n is None else f"{n} cop{'y' if n == 1 else 'ies'}"


def render_domains(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no protection domains"
    body = [[d["id"], d["vps"], d["running"], _hex(d["descriptor"]), "yes" if d["devices"] else "no",
             _listed(d["tables_on"]), _listed([f"{e:#x}" for e in d["links"]]),
             "?" if d["keys"] is None else _listed([f"{k:08x}" for k in d["keys"]]),
             _listed([f"{o['base']:#010x}:{o['rights']}" for o in d["open"]])]
            for d in rows]
    return table(["domain>", "vps>", "running>", "descriptor", "devices", "tables on", "links", "keys",
                  "open realms"], body)


def render_vps(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no virtual processors"
    body = []
    for v in rows:
        notes = [n for n, on in (("first", v["first"]), ("dying", v["dying"])) if on]
        body.append([v["id"], v["node"], v["domain"], v["state"], v["thread"], v["cycles"],
                     _listed(v["pending"]), _hex(v["descriptor"]) if v["descriptor"] else "-",
                     v["serving"], v["awaiting"], _listed(v["calls_in"]), _listed(v["returns"]),
                     _listed(notes)])
    return table(["vp>", "node>", "domain>", "state", "thread", "cycles>", "pending", "descriptor",
                  "serving", "awaiting", "calls in", "returns", "notes"], body)


def render_calls(data: dict[str, Any]) -> str:
    head = f"{data['made']} protected calls made, {data['slow']} on the slow path; in progress:"
    if not data["calls"]:
        return head + " none"
    body = []
    for c in data["calls"]:
        depth = len(c["chain"]) - 1
        body.append([" " * (2 * depth) + str(c["id"]), " > ".join(str(i) for i in c["chain"]),
                     _hex(c["entry"]), f"{c['caller_domain']}/{_or_dash(c['caller_vp'])}", c["process"],
                     f"{c['callee_domain']}/{_or_dash(c['callee_vp'])}", c["state"],
                     "async" if c["async"] else "sync", _hex(c["args"][0]), _hex(c["args"][1]),
                     _hex(c["return_pc"]),
                     "-" if c["result"] is None else " ".join(f"{x:#x}" for x in c["result"])])
    return head + "\n" + table(["call", "chain", "entry", "from dom/vp", "process>", "to dom/vp", "state",
                                "mode", "a0", "a1", "returns to", "result"], body)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def render_magic(d: dict[str, Any]) -> str:
    vp = "none" if d["vp_id"] is None else f"{d['vp_id']} (descriptor {_hex(d['vp'])})"
    runq = [f"{k}:{n}" for k, n in enumerate(d["runq"])]
    lines = [
        f"node {d['node']}'s magic page at {_hex(d['address'])} (official; 0x7ffff000 in user space)",
        table(["field", "value"], [
            ["node", f"{d['page_node']} of {d['nnodes']}"],
            ["ticks", d["ticks"]],
            ["time", f"{d['time']} cycles"],
            ["domain", f"descriptor {_hex(d['domain'])}" if d["domain"] else "none"],
            ["vp", vp],
            ["statistics", f"taken at tick {d['stats_tick']}"],
        ]),
        "  ready queues (node:length):",
    ]
    lines += ["    " + "  ".join(runq[i:i + 16]) for i in range(0, len(runq), 16)]
    if d["vps"]:
        lines.append("  virtual processors:")
        lines.append(table(["vp>", "state", "node>", "domain>", "cycles>"],
                           [[s["vp"], s["state"], s["node"], s["domain"], s["cycles"]] for s in d["vps"]],
                           indent="    "))
    else:
        lines.append("  virtual processors: none")
    return "\n".join(lines)


# -- gdb commands and functions ------------------------------------------------------------------


def _args(argument: str) -> tuple[list[str], bool]:
    words = gdb.string_to_argv(argument)
    flags = {"-json", "--json"}
    return [w for w in words if w not in flags], any(w in flags for w in words)


def _emit(data: Any, text: str, as_json: bool) -> None:
    gdb.write((json.dumps(data) if as_json else text) + "\n")


#: Every subcommand and its line in `psyche`'s list; an unknown one is an error naming these.
SUBCOMMANDS = {
    "nodes": ("", "every node: kernel state, lld state, pc and function, ticks, thread"),
    "node": ("N", "one node in detail: counters, threads, heap, panic"),
    "locks": ("", "every spin lock and semaphore: holder, waiters, counts"),
    "heap": ("", "the shared heap and every node's local heap"),
    "realms": ("", "the kernel map: every realm, its frames, access list, domains, operations"),
    "domains": ("", "every protection domain: descriptor, keys, open realms, page tables"),
    "vps": ("", "every virtual processor: node, domain, state, calls it serves and awaits"),
    "calls": ("", "protected calls in progress, chain by chain"),
    "magic": ("[N]", "a node's magic page: ticks, running VP, ready queues, VP statistics"),
    "symbols": ("[--auto]", "add-symbol-file for every user program loaded, at its address"),
}


class PsycheCommand(gdb.Command):
    """Psyche kernel commands: psyche nodes | node N | locks | heap | realms | domains | vps | calls |
magic [N] (each takes -json)."""

    def __init__(self) -> None:
        super().__init__("psyche", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, argument: str, from_tty: bool) -> None:
        if argument.strip():
            # gdb hands the prefix command whatever is not one of its subcommands: a typo is an
            # error (a script must not go on as if it had its table), not the help text.
            raise gdb.GdbError(f"psyche: no subcommand {argument.split()[0]!r}; the subcommands are "
                               f"{', '.join(SUBCOMMANDS)}")
        usages = {name: (name + " " + usage).strip() for name, (usage, _) in SUBCOMMANDS.items()}
        width = max(map(len, usages.values()))
        for name, (_, what) in SUBCOMMANDS.items():
            gdb.write(f"psyche {usages[name]:{width}} {what}\n")
        gdb.write("each takes -json; functions: $psyche_node(), $psyche_record([N]), $psyche_ticks([N]), "
                  "$psyche_pc(N)\n")


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


class _TableCommand(gdb.Command):
    """A `psyche NAME [-json]` command: data read from the kernel, shown as a table."""

    name = ""

    def __init__(self) -> None:
        super().__init__(f"psyche {self.name}", gdb.COMMAND_DATA)

    def data(self, kernel: Kernel) -> Any:
        raise NotImplementedError

    def render(self, data: Any) -> str:
        raise NotImplementedError

    def invoke(self, argument: str, from_tty: bool) -> None:
        words, as_json = _args(argument)
        if words:
            raise PsycheError(f"psyche {self.name}: takes no argument but -json (got {words[0]!r})")
        data = self.data(Kernel())
        _emit(data, self.render(data), as_json)


class RealmsCommand(_TableCommand):
    """The kernel map: every realm.

Usage: psyche realms [-json]
Address range, size, where its frames are (node, or device registers), replication and copies,
its distinguished domain (home: where protected calls run), the domains it is open in, its
operations (when the kernel declares them), and its access list (key:rights, rights rwxio)."""

    name = "realms"

    def data(self, kernel: Kernel) -> Any:
        return realm_rows(kernel)

    def render(self, data: Any) -> str:
        return render_realms(data)


class DomainsCommand(_TableCommand):
    """Every protection domain.

Usage: psyche domains [-json]
Its VPs (and threads running in it now), descriptor address, whether it may make device realms,
the nodes that have its page table, its protected-call linkages, the keys in its descriptor, and
the realms open in it with the rights it opened them with."""

    name = "domains"

    def data(self, kernel: Kernel) -> Any:
        return domain_rows(kernel)

    def render(self, data: Any) -> str:
        return render_domains(data)


class VpsCommand(_TableCommand):
    """Every virtual processor.

Usage: psyche vps [-json]
Node, domain, state, kernel thread, cycles run, pending software interrupts, descriptor, the
protected call it serves and the one it awaits, the calls queued for it and the returns queued
for it."""

    name = "vps"

    def data(self, kernel: Kernel) -> Any:
        return vp_rows(kernel)

    def render(self, data: Any) -> str:
        return render_vps(data)


class CallsCommand(_TableCommand):
    """Protected calls in progress.

Usage: psyche calls [-json]
Chain by chain: a call made while serving another is listed under it (chain: outermost first).
For each: the operation, caller domain/VP and process, callee domain/VP, state (queued, running,
returned), sync or async, the first two arguments, where the caller continues, the result."""

    name = "calls"

    def data(self, kernel: Kernel) -> Any:
        return call_rows(kernel)

    def render(self, data: Any) -> str:
        return render_calls(data)


class MagicCommand(gdb.Command):
    """A node's magic page (struct psy_magic, 0x7ffff000 in user space).

Usage: psyche magic [N] [-json]   (default: the node gdb is attached to)
Node, ticks, clock, the running domain and VP, every node's ready-queue length and every VP's
scheduling statistics as the node last copied them."""

    def __init__(self) -> None:
        super().__init__("psyche magic", gdb.COMMAND_DATA)

    def invoke(self, argument: str, from_tty: bool) -> None:
        words, as_json = _args(argument)
        kernel = Kernel()
        try:
            node = int(words[0], 0) if words else kernel.attached()
        except ValueError:
            raise PsycheError(f"psyche magic: {words[0]!r} is not a node number") from None
        data = magic_data(kernel, node)
        _emit(data, render_magic(data), as_json)


for _register in (PsycheCommand, NodesCommand, NodeCommand, LocksCommand, HeapCommand,
                  RealmsCommand, DomainsCommand, VpsCommand, CallsCommand, MagicCommand,
                  NodeFunction, RecordFunction, TicksFunction, PcFunction):
    _register()


def _load_sibling(name: str) -> None:
    """Run another file of this extension (it registers its own commands).  By path: the gdbfront
    package itself imports pygdbmi, which gdb's own Python does not have."""
    spec = importlib.util.spec_from_file_location(f"psyche_gdbext_{name}",
                                                  os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                               f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module    # (its dataclasses look their module up by name)
    spec.loader.exec_module(module)


_load_sibling("symbols")
