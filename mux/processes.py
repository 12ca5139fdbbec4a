"""A domain's user-level processes, read from the table its thread package publishes.

Processes are the user's: the kernel neither makes nor schedules them (the
paper's section 2.3).  A thread package that wants them debugged publishes a
table, as uapi/psyche.h describes: the domain descriptor's `processes` holds
the address of a `struct psy_processes`, whose entries each begin with a
`struct psy_process` (name, state, and the callee-saved registers of a process
that is not running).  The mux reads it the way the domain would, through the
domain's page table on the node, with every offset from the kernel's DWARF.
lld faults nothing in: a table on a page the domain has not touched on this
node cannot be read, and then the domain shows no processes here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lld import protocol as p
from mux.kernel_layout import KernelLayout
from mux.memory import AddressSpace
from mux.node import NodeHandle

#: The kernel's records are named by official address, which is their physical address.
PHYSICAL = AddressSpace(p.SPACE_PHYS)
#: The magic number of a published table (PSY_PROCESSES_MAGIC, "PROS").
PROCESSES_MAGIC = 0x534F5250
#: A longer table is taken to be garbage.
MAX_PROCESSES = 256


@dataclass(frozen=True)
class Process:
    entry: int                 # address of its entry, in the domain's space
    name: int                  # what a VP descriptor's `process` holds while it runs
    state: str                 # enum psy_process_state's name: ready, running, away, ...
    ra: int
    sp: int
    s: tuple[int, ...]


async def _u32(handle: NodeHandle, addr: int, space: AddressSpace) -> int | None:
    raw = await handle.read_memory(addr, 4, space)
    return int.from_bytes(raw, "little") if len(raw) == 4 else None


async def published_table(handle: NodeHandle, layout: KernelLayout, domain_record: int) -> int | None:
    """The address of the domain's published table, from its descriptor page; None if none."""
    desc = await _u32(handle, domain_record + layout.domain.offsets["desc"], PHYSICAL)
    frames = await _u32(handle, desc + layout.realm.offsets["frames"], PHYSICAL) if desc else None
    page = await _u32(handle, frames, PHYSICAL) if frames else None   # the descriptor's one frame
    if not page:
        return None
    return await _u32(handle, page + layout.psy_domain.offsets["processes"], PHYSICAL) or None


async def domain_processes(handle: NodeHandle, layout: KernelLayout, domain_record: int,
                           space: AddressSpace) -> list[Process]:
    """The processes domain_record's domain publishes, free entries left out."""
    at = await published_table(handle, layout, domain_record)
    header = layout.psy_processes
    raw = await handle.read_memory(at, header.size, space) if at else b""
    if len(raw) < header.size or header.u32(raw, "magic") != PROCESSES_MAGIC:
        return []
    count, stride, first = header.u32(raw, "count"), header.u32(raw, "stride"), header.u32(raw, "first")
    entry = layout.psy_process
    if not 0 < count <= MAX_PROCESSES or stride < entry.size:
        return []
    table = await handle.read_memory(first, (count - 1) * stride + entry.size, space)
    processes = []
    for i in range(min(count, (len(table) + stride - entry.size) // stride)):
        process = _process(layout, first + i * stride, table[i * stride: i * stride + entry.size])
        if process.state != "free":
            processes.append(process)
    return processes


def _process(layout: KernelLayout, addr: int, raw: bytes) -> Process:
    entry, context = layout.psy_process, layout.psy_context
    state = entry.u32(raw, "state")
    ctx = raw[entry.offsets["ctx"]:]
    saved = context.sizes["s"] // 4
    return Process(addr, entry.u32(raw, "name"), layout.process_states.get(state, f"state {state}"),
                   context.u32(ctx, "ra"), context.u32(ctx, "sp"),
                   tuple(context.u32(ctx, "s", i) for i in range(saved)))
