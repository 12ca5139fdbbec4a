"""`psyche realms`, `psyche domains`, `psyche vps`, `psyche calls`, `psyche magic [N]`: the uniform
address space, protection domains, virtual processors and protected calls, as the kernel keeps
them (kernel.py says where the answers come from)."""

from __future__ import annotations

from typing import Any

import gdb

from .kernel import (
    Kernel,
    PsycheError,
    emit,
    fetched,
    hex_address,
    int_of,
    kernel_symbol,
    kernel_type,
    member_of,
    parse_args,
    table,
    thread_name,
)

# -- the uniform address space: realms, domains, VPs, protected calls ------------------------
#
# The kernel keeps all of it in one `struct vm` in the shared heap (kg.vm), named by official
# addresses, so any node's gdb reads it alike.  Table sizes come from the arrays' DWARF types; the
# flag values below are uapi/psyche.h's #defines, which DWARF does not carry (no -g3).

PSY_DEVICE = 0x200                       # PSY_REALM_DEVICE
REPLICATION = ((0x400, "create"), (0x800, "open"), (0x1000, "demand"))   # PSY_REPLICATE_*
RIGHTS = "rwxio"                         # PSY_R, PSY_W, PSY_X, PSY_INVOKE, PSY_OWNER: bits 0..4
VP_STATES = ("free", "ready", "running", "blocked")                   # PSY_VP_*
SWI_KINDS = ("init", "timer", "interval", "error", "call-out", "call-in", "return", "net",
             "console")  # PSY_SWI_*
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
    values = fetched(pointer.cast(array.pointer()).dereference(), what)
    return _array(values)


def _deref(pointer: gdb.Value, what: str) -> gdb.Value | None:
    return None if int(pointer) == 0 else fetched(pointer.dereference(), f"{what} at {int(pointer):#x}")


def _id_of(pointer: gdb.Value) -> int | None:
    """The `id` of the structure a pointer points at (domain, VP, call); None for NULL."""
    return None if int(pointer) == 0 else int_of(pointer.dereference(), "id")


def the_vm(kernel: Kernel) -> gdb.Value:
    vm = _deref(member_of(kernel.kg, "vm"), "the kernel map kg.vm")
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
    pointer = member_of(vm, "realms")
    has_ops = False
    while int(pointer) != 0 and len(rows) < MAX_REALMS:
        r = fetched(pointer.dereference(), f"realm at {int(pointer):#x}")
        flags = int_of(r, "flags")
        copies = member_of(r, "copies")
        ncopies = None
        if int(copies) != 0:
            ncopies = sum(int(c) != 0 for c in _pointed_array(copies, kernel.nnodes, "a realm's copies"))
        ops = _realm_ops(r)
        has_ops = has_ops or ops is not None
        rows.append({
            "address": int(pointer),
            "base": int_of(r, "base"), "size": int_of(r, "size"), "flags": flags,
            "device": bool(flags & PSY_DEVICE),
            "node": None if flags & PSY_DEVICE else int_of(r, "node"),
            "phys": int_of(r, "phys") if flags & PSY_DEVICE else None,
            "replication": [name for bit, name in REPLICATION if flags & bit],
            "copies": ncopies,
            "acl": [{"key": int(e["key"]), "rights": rights(int(e["rights"]))}
                    for e in _array(member_of(r, "acl")) if int(e["key"]) != 0],
            "open_in": [32 * i + bit for i, word in enumerate(_array(member_of(r, "opened")))
                        for bit in range(32) if int(word) & (1 << bit)],
            "home": _id_of(member_of(r, "home")),
            "ops": ops,
        })
        pointer = member_of(r, "next")
    return {"nrealms": int_of(vm, "nrealms"), "faults": int_of(vm, "faults"), "opens": int_of(vm, "opens"),
            "has_ops": has_ops, "realms": rows}


def _domain_keys(domain: gdb.Value) -> list[int] | None:
    """The keys in a domain's descriptor page (struct psy_domain, in its first frame); None if
    the descriptor cannot be read."""
    desc = member_of(domain, "desc")
    if int(desc) == 0:
        return None
    frames = member_of(desc.dereference(), "frames")
    if int(frames) == 0:
        return None
    try:
        page = gdb.Value(int(frames[0])).cast(kernel_type("struct psy_domain").pointer()).dereference()
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
    for pointer in _array(member_of(vm, "domains")):
        d = _deref(pointer, "domain")
        if d is None:
            continue
        opens = _array(member_of(d, "open"))[:max(0, int_of(d, "nopen"))]
        desc = member_of(d, "desc")
        roots = _array(member_of(d, "root"))
        rows.append({
            "id": int_of(d, "id"),
            "address": int(pointer),
            "devices": bool(int_of(d, "devices")),
            "running": int_of(d, "running"),
            "vps": int_of(d, "nvps"),
            "descriptor": None if int(desc) == 0 else int_of(desc.dereference(), "base"),
            "keys": _domain_keys(d),
            "open": [{"base": int_of(o["realm"].dereference(), "base"), "rights": rights(int(o["rights"]))}
                     for o in opens if int(o["realm"]) != 0],
            "tables_on": [k for k in range(min(kernel.nnodes, len(roots))) if int(roots[k]) != 0],
            "links": [int(link["entry"]) for link in _array(member_of(d, "links"))
                      if int(link["entry"]) != 0],
        })
    return rows


def _queue_ids(head: gdb.Value, link: str) -> list[int]:
    """The ids of the calls on a VP's queue (calls_in through next_in, returns through next_ret)."""
    ids: list[int] = []
    while int(head) != 0 and len(ids) < MAX_QUEUE:
        call = head.dereference()
        ids.append(int_of(call, "id"))
        head = member_of(call, link)
    return ids


def vp_rows(kernel: Kernel) -> list[dict[str, Any]]:
    """Every virtual processor, by number."""
    vm = the_vm(kernel)
    rows = []
    for pointer in _array(member_of(vm, "vps")):
        v = _deref(pointer, "VP")
        if v is None:
            continue
        state = int_of(v, "state")
        thread = member_of(v, "thread")
        rows.append({
            "id": int_of(v, "id"),
            "address": int(pointer),
            "node": int_of(v, "node"),
            "domain": int_of(v, "dom_id"),
            "state": VP_STATES[state] if 0 <= state < len(VP_STATES) else str(state),
            "thread": thread_name(thread),
            "first": bool(int_of(v, "first")),
            "cycles": int_of(v, "cycles"),
            "pending": swi_kinds(int_of(v, "pending")),
            "descriptor": int_of(v, "desc_va"),
            "dying": bool(int_of(v, "dying")),
            "serving": _id_of(member_of(v, "serving")),
            "awaiting": _id_of(member_of(v, "awaiting")),
            "calls_in": _queue_ids(member_of(v, "calls_in"), "next_in"),
            "returns": _queue_ids(member_of(v, "returns"), "next_ret"),
        })
    return rows


def _call_state(call: gdb.Value) -> str:
    if int_of(call, "done"):
        return "returned"
    return "running" if int_of(call, "delivered") else "queued"


def call_rows(kernel: Kernel) -> dict[str, Any]:
    """Every protected call in progress, with its chain: the calls its process made one inside
    another (`parent`), outermost first."""
    vm = the_vm(kernel)
    calls: dict[int, dict[str, Any]] = {}
    for pointer in _array(member_of(vm, "pcalls")):
        p = _deref(pointer, "protected call")
        if p is None:
            continue
        calls[int_of(p, "id")] = {
            "id": int_of(p, "id"),
            "address": int(pointer),
            "parent": int_of(p, "parent"),
            "entry": int_of(p, "entry"),
            "caller_domain": _id_of(member_of(p, "caller")),
            "caller_vp": _id_of(member_of(p, "caller_vp")),
            "process": int_of(p, "caller_process"),
            "callee_domain": _id_of(member_of(p, "callee")),
            "callee_vp": _id_of(member_of(p, "callee_vp")),
            "async": bool(int_of(p, "async")),
            "state": _call_state(p),
            "args": [int(a) for a in _array(member_of(p, "args"))[:2]],
            "result": [int(a) for a in _array(member_of(p, "result"))] if int_of(p, "done") else None,
            "return_pc": int_of(p, "ret_pc"),
        }
    for call in calls.values():
        call["chain"] = _chain(calls, call["id"])
    rows = sorted(calls.values(), key=lambda c: c["chain"])
    return {"made": int_of(vm, "pcalls_made"), "slow": int_of(vm, "pcalls_slow"), "calls": rows}


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
    local = kernel_symbol("magic")
    address = kernel.to_official(node, int(local.address))
    page = fetched(gdb.Value(address).cast(local.type.pointer()).dereference(), f"node {node}'s magic page")
    nnodes = int_of(page, "nnodes")
    runq = _array(member_of(page, "runq"))
    vp_id = int_of(page, "vp_id")
    stats = []
    for i, s in enumerate(_array(member_of(page, "vps"))):
        state = int(s["state"])
        if state != 0:
            stats.append({"vp": i, "state": VP_STATES[state] if state < len(VP_STATES) else str(state),
                          "node": int(s["node"]), "domain": int(s["domain"]), "cycles": int(s["cycles"])})
    return {
        "node": node, "address": address,
        "page_node": int_of(page, "node"), "nnodes": nnodes, "ticks": int_of(page, "ticks"),
        "time": int_of(page, "time"), "domain": int_of(page, "domain"),
        "vp": int_of(page, "vp"), "vp_id": None if vp_id == NO_VP else vp_id,
        "stats_tick": int_of(page, "stats_tick"),
        "runq": [int(n) for n in runq[:min(nnodes, len(runq))]],
        "vps": stats,
    }



def _listed(items: list[Any]) -> str:
    return " ".join(str(i) for i in items) if items else "-"


def render_realms(data: dict[str, Any]) -> str:
    columns = ["base", "end", "KiB>", "frames", "replicated", "home", "open in"]
    if data["has_ops"]:
        columns.append("ops")
    columns.append("access")
    rows = []
    for r in data["realms"]:
        frames = f"device {hex_address(r['phys'])}" if r["device"] else f"node {r['node']}"
        replicated = ", ".join(x for x in ("/".join(r["replication"]), _copies(r["copies"])) if x) or "-"
        row = [hex_address(r["base"]), hex_address(r["base"] + r["size"] - 1), r["size"] // 1024, frames,
               replicated, r["home"], _listed(r["open_in"])]
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
    body = [[d["id"], d["vps"], d["running"], hex_address(d["descriptor"]), "yes" if d["devices"] else "no",
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
                     _listed(v["pending"]), hex_address(v["descriptor"]) if v["descriptor"] else "-",
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
                     hex_address(c["entry"]), f"{c['caller_domain']}/{_or_dash(c['caller_vp'])}",
                     c["process"],
                     f"{c['callee_domain']}/{_or_dash(c['callee_vp'])}", c["state"],
                     "async" if c["async"] else "sync", hex_address(c["args"][0]), hex_address(c["args"][1]),
                     hex_address(c["return_pc"]),
                     "-" if c["result"] is None else " ".join(f"{x:#x}" for x in c["result"])])
    return head + "\n" + table(["call", "chain", "entry", "from dom/vp", "process>", "to dom/vp", "state",
                                "mode", "a0", "a1", "returns to", "result"], body)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def render_magic(d: dict[str, Any]) -> str:
    vp = "none" if d["vp_id"] is None else f"{d['vp_id']} (descriptor {hex_address(d['vp'])})"
    runq = [f"{k}:{n}" for k, n in enumerate(d["runq"])]
    lines = [
        f"node {d['node']}'s magic page at {hex_address(d['address'])} (official; 0x7ffff000 in user space)",
        table(["field", "value"], [
            ["node", f"{d['page_node']} of {d['nnodes']}"],
            ["ticks", d["ticks"]],
            ["time", f"{d['time']} cycles"],
            ["domain", f"descriptor {hex_address(d['domain'])}" if d["domain"] else "none"],
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
        words, as_json = parse_args(argument)
        if words:
            raise PsycheError(f"psyche {self.name}: takes no argument but -json (got {words[0]!r})")
        data = self.data(Kernel())
        emit(data, self.render(data), as_json)


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
        words, as_json = parse_args(argument)
        kernel = Kernel()
        node = kernel.node_argument(words, "magic")
        data = magic_data(kernel, node)
        emit(data, render_magic(data), as_json)


COMMANDS = (RealmsCommand, DomainsCommand, VpsCommand, CallsCommand, MagicCommand)
