"""Saving and restoring a whole machine, bit-exact.

A snapshot holds everything that determines what the machine does next:
every node's CPU, CSRs, clocks and devices, the scheduler's sleeping and
runnable sets, LR/SC reservations, and RAM (only the pages that are not all
zero).  Caches that are derived from that state (TLBs, decoded instructions)
are not saved; to make the saved and the continuing machine identical in
every respect, saving flushes the live machine's TLBs too.

Host lines, NIC wires and hooks (tohost, lld) are not machine state: whoever restores a
snapshot attaches its own.

File format: the magic line, a JSON header of length given in the next line,
then per saved page 8 bytes (node, page) and the page's words, the whole
payload zlib-compressed.
"""

from __future__ import annotations

import array
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

from psyche.machine.hostline import HostLine
from psyche.machine.machine import Machine, MachineConfig, NodeState
from psyche.machine.physmem import NODE_WORDS

MAGIC = b"PSYCHE-SNAPSHOT 1\n"
PAGE_WORDS = 1024
_PAGE_BYTES = PAGE_WORDS * 4
_ZERO_PAGE = bytes(_PAGE_BYTES)


class SnapshotError(ValueError):
    pass


def _cpu_state(machine: Machine, index: int) -> dict[str, Any]:
    node = machine.nodes[index]
    cpu = node.cpu
    dev = node.devices
    return {
        "state": node.state.value,
        "stop_reason": node.stop_reason,
        "stops": node.stops,
        "regs": list(cpu.regs),
        "pc": cpu.pc,
        "priv": cpu.priv,
        "cycles": cpu.cycles,
        "instret": cpu.instret,
        "csr": cpu.csr.state(),
        "mtimecmp": [cpu.mtimecmp_lo, cpu.mtimecmp_hi],
        "msip": cpu.msip,
        "waiting": cpu.waiting,
        "refs": [cpu.local_refs, cpu.remote_refs, cpu.remote_fetches],
        "trap_loop": [cpu.traps_without_progress, cpu.last_trap_instret],
        "skip_breakpoint_pc": cpu.skip_breakpoint_pc,
        "skip_watch": cpu.skip_watch,
        "intc": [dev.intc.levels, dev.intc.enable_m, dev.intc.enable_s],
        "doorbell": [dev.doorbell.start_pc, *dev.doorbell.pending_from],
        "onboard": dev.onboard.get_state(),
        "console": dev.console.get_state() if dev.console is not None else None,
        "nic": dev.nic.get_state() if dev.nic is not None else None,
    }


def _set_cpu_state(machine: Machine, index: int, s: dict[str, Any]) -> None:
    node = machine.nodes[index]
    cpu = node.cpu
    dev = node.devices
    node.state = NodeState(s["state"])
    node.stop_reason = s["stop_reason"]
    node.stops = s["stops"]
    for i, value in enumerate(s["regs"]):
        cpu.regs[i] = value
    cpu.pc = s["pc"]
    cpu.priv = s["priv"]
    cpu.cycles = s["cycles"]
    cpu.instret = s["instret"]
    cpu.csr.set_state(s["csr"])
    cpu.mtimecmp_lo, cpu.mtimecmp_hi = s["mtimecmp"]
    cpu.msip = s["msip"]
    cpu.waiting = s["waiting"]
    cpu.local_refs, cpu.remote_refs, cpu.remote_fetches = s["refs"]
    cpu.traps_without_progress, cpu.last_trap_instret = s["trap_loop"]
    cpu.skip_breakpoint_pc = s["skip_breakpoint_pc"]
    cpu.skip_watch = bool(s.get("skip_watch", False))
    dev.intc.levels, dev.intc.enable_m, dev.intc.enable_s = s["intc"]
    dev.doorbell.start_pc = s["doorbell"][0]
    dev.doorbell.pending_from = list(s["doorbell"][1:])
    dev.onboard.set_state(s["onboard"])
    if dev.console is not None and s["console"] is not None:
        dev.console.set_state(s["console"])
    if dev.nic is not None and s.get("nic") is not None:
        dev.nic.set_state(s["nic"])
    dev.intc.update()
    cpu.recompute_contexts()
    cpu.flush_tlb()


def _header(machine: Machine) -> dict[str, Any]:
    config = machine.config
    return {
        "config": {"nodes": config.nodes, "quantum": config.quantum,
                   "remote_penalty": config.remote_penalty, "stoptime": config.stoptime,
                   "trap_misaligned": config.trap_misaligned, "nic_nodes": list(config.nic_nodes)},
        "time": machine.time,
        "nodes": [_cpu_state(machine, i) for i in range(len(machine.nodes))],
        "reservations": list(machine.mem.reservations),
        "scheduler": machine.scheduler_state(),
    }


def _ram_pages(machine: Machine) -> bytes:
    out = bytearray()
    for node, ram in enumerate(machine.mem.rams):
        view = memoryview(ram).cast("B")
        for page in range(NODE_WORDS // PAGE_WORDS):
            chunk = view[page * _PAGE_BYTES:(page + 1) * _PAGE_BYTES]
            if chunk != _ZERO_PAGE:
                out += node.to_bytes(4, "little") + page.to_bytes(4, "little") + chunk
    return bytes(out)


def save(machine: Machine, path: str | Path) -> None:
    for node in machine.nodes:
        node.cpu.flush_tlb()
    header = json.dumps(_header(machine)).encode()
    payload = zlib.compress(_ram_pages(machine), 1)
    with open(path, "wb") as f:
        f.write(MAGIC + f"{len(header)}\n".encode() + header + payload)


def restore(path: str | Path, console: HostLine | None = None) -> Machine:
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{path}: not a Psyche machine snapshot")
    rest = data[len(MAGIC):]
    length_line, _, rest = rest.partition(b"\n")
    try:
        header = json.loads(rest[:int(length_line)])
        ram = zlib.decompress(rest[int(length_line):])
    except (ValueError, zlib.error) as e:
        raise SnapshotError(f"{path}: damaged snapshot ({e})") from e
    config = dict(header["config"])
    if "nic_nodes" in config:
        config["nic_nodes"] = tuple(config["nic_nodes"])
    machine = Machine(MachineConfig(**config), console=console)
    machine.time = header["time"]
    for index, state in enumerate(header["nodes"]):
        _set_cpu_state(machine, index, state)
    mem = machine.mem
    for node, addr in enumerate(header["reservations"]):
        mem.reservations[node] = addr
    mem.nreservations = sum(1 for a in header["reservations"] if a >= 0)
    record = 8 + _PAGE_BYTES
    for offset in range(0, len(ram), record):
        node = int.from_bytes(ram[offset:offset + 4], "little")
        page = int.from_bytes(ram[offset + 4:offset + 8], "little")
        words = array.array("i", ram[offset + 8:offset + record]).tolist()
        mem.load_words(node, page * PAGE_WORDS, words)
    machine.set_scheduler_state(header["scheduler"])
    return machine


def digest(machine: Machine) -> str:
    """A hash of the complete machine state: equal digests mean identical machines."""
    h = hashlib.sha256(json.dumps(_header(machine), sort_keys=True).encode())
    for ram in machine.mem.rams:
        h.update(memoryview(ram).cast("B"))
    return h.hexdigest()
