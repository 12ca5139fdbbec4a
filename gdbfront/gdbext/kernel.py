"""The Psyche kernel as the gdb extension reads it: through gdb's types, from the kernel's DWARF.

Shared by the extension's commands (nodes.py, vm.py).  A gdb is attached to ONE node, but the
kernel keeps what every node is doing in memory that any node can read: the king's globals
`kg`, replicated into every node's copy of the kernel, point at the node table, and
`kg.nodes[k]` is node k's `struct node` at its official (kernel/kernel) address.  Every value is
read by member name; nothing here knows an offset.  Program counters of other nodes are in no
memory at all: they come from the mux (`monitor status`, which asks each node's lld), and show
as unknown behind any other stub.  It runs inside gdb's own Python: gdb and the standard
library only.
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


def kernel_symbol(name: str) -> gdb.Value:
    if gdb.current_progspace().filename is None:
        raise PsycheError("psyche: no program loaded: start gdb with the Psyche kernel's ELF "
                          "(gdb-multiarch build/kernel/psyche.elf) or `file` it")
    symbol = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
    if symbol is None:
        raise PsycheError(f"psyche: no symbol `{name}` in {gdb.current_progspace().filename}: this is not "
                          "the Psyche kernel, or it was built without debug information")
    return symbol.value()


def kernel_type(name: str) -> gdb.Type:
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        raise PsycheError(f"psyche: no type `{name}` in the kernel's debug information") from None


def member_of(value: gdb.Value, name: str) -> gdb.Value:
    try:
        return value[name]
    except gdb.error:
        raise PsycheError(f"psyche: {value.type} has no member `{name}` in the kernel's debug "
                          "information (kernel and gdbext out of step?)") from None


def int_of(value: gdb.Value, name: str) -> int:
    return int(member_of(value, name))


def c_string(value: gdb.Value) -> str:
    """A C string from a char array (up to its first NUL) or a const char *; '' for NULL, '?' unreadable."""
    try:
        if value.type.strip_typedefs().code == gdb.TYPE_CODE_ARRAY:
            raw = bytes(gdb.selected_inferior().read_memory(value.address, value.type.sizeof))
            return raw.split(b"\0", 1)[0].decode(errors="replace")
        return "" if int(value) == 0 else value.string()
    except gdb.error:
        return "?"


def enum_name(type_name: str, value: int) -> str:
    """The enumerator for value, without the common prefix, lower case (NODE_UP -> up)."""
    for field in kernel_type(type_name).fields():
        if field.enumval == value:
            name: str = field.name
            return name.split("_", 1)[-1].lower()
    return str(value)


def fetched(value: gdb.Value, what: str) -> gdb.Value:
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
        kg = kernel_symbol("kg")
        self.this_node = kernel_symbol("this_node")
        if gdb.selected_inferior().pid == 0:
            raise PsycheError("psyche: gdb is not attached to a Psyche node: `target remote :PORT` "
                              "(the mux listens on base port + node number)")
        self.kg = fetched(kg, "the king's globals `kg`")
        magic = int_of(self.kg, "magic")
        if magic != KG_MAGIC:
            raise PsycheError(f"psyche: kg.magic is {magic:#x}, not {KG_MAGIC:#x}: the king has not set up "
                              "the shared data (and the node table) yet on this node's copy; "
                              "`print this_node` shows this node alone")
        self.nnodes = int_of(self.kg, "nnodes")
        self._records: dict[int, gdb.Value | None] = {}

    def node_argument(self, words: list[str], command: str) -> int:
        """The node a command names (its first word), or the one gdb is attached to."""
        try:
            return int(words[0], 0) if words else self.attached()
        except ValueError:
            raise PsycheError(f"psyche {command}: {words[0]!r} is not a node number") from None

    def attached(self) -> int:
        """The node gdb is attached to: its hart id, or its record's id behind a stub without CSRs."""
        try:
            return int(gdb.parse_and_eval("$mhartid"))
        except gdb.error:
            return int_of(self.this_node, "id")

    def check(self, node: int) -> None:
        if not 0 <= node < self.nnodes:
            raise PsycheError(f"psyche: no node {node}: this machine has nodes 0 to {self.nnodes - 1}")

    def record(self, node: int) -> gdb.Value | None:
        """Node's `struct node` through the node table; None until the node has published it."""
        self.check(node)
        if node not in self._records:
            pointer = member_of(self.kg, "nodes")[node]
            record = None
            if int(pointer) != 0:
                record = fetched(pointer.dereference(), f"node {node}'s record at {int(pointer):#x}")
                if int_of(record, "magic") != NODE_MAGIC:
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
        return local + int(member_of(self.kg, "nodes")[node]) - int(self.this_node.address)


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


def thread_name(pointer: gdb.Value) -> str:
    if int(pointer) == 0:
        return "-"
    return c_string(member_of(pointer.dereference(), "name"))


def hex_address(value: int | None) -> str:
    return "?" if value is None else f"{value:#010x}"


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




def parse_args(argument: str) -> tuple[list[str], bool]:
    words = gdb.string_to_argv(argument)
    flags = {"-json", "--json"}
    return [w for w in words if w not in flags], any(w in flags for w in words)


def emit(data: Any, text: str, as_json: bool) -> None:
    gdb.write((json.dumps(data) if as_json else text) + "\n")
