"""Drive the Psyche kernel on a simulated machine from Python (tests, tools).

    run = KernelRun(nodes=16, selftest=True)
    run.wait_for(r"selftest: passed")
    out = run.command("status")

The console is captured in memory; input is typed into the king's console
UART between scheduling rounds, as the host would.  Everything here goes
through the machine's public API (Machine, read_phys, write_phys), so a test
sees the kernel exactly as a debugger would.
"""

from __future__ import annotations

import re
import time
from functools import cache
from pathlib import Path

from elftools.elf.elffile import ELFFile

from psyche.kernel.build import KERNEL_PBASE, KERNEL_VBASE, build_kernel
from psyche.machine.elf import ElfImage, load_elf
from psyche.machine.machine import Machine, MachineConfig, Node
from psyche.machine.nic import Wire
from psyche.machine.physmem import NODE_RAM_SIZE

PROMPT = "psyche> "
BOOTARGS_MAGIC = 0x42415247


class KernelTimeout(AssertionError):
    """The console did not show what was expected in time; carries the console tail."""


def kernel_phys(vaddr: int, node: int = 0) -> int:
    """Physical address of a kernel virtual address in node ``node``'s copy of the kernel."""
    if not KERNEL_VBASE <= vaddr < KERNEL_VBASE + NODE_RAM_SIZE:
        raise ValueError(f"{vaddr:#x} is not in the kernel's local window")
    return vaddr - KERNEL_VBASE + KERNEL_PBASE + node * NODE_RAM_SIZE


@cache
def _struct_members(elf_path: str, mtime: float) -> dict[str, dict[str, int]]:
    """Byte offsets of the members of every named struct, from the DWARF."""
    structs: dict[str, dict[str, int]] = {}
    with open(elf_path, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag != "DW_TAG_structure_type" or "DW_AT_name" not in die.attributes:
                    continue
                name = die.attributes["DW_AT_name"].value.decode()
                if name in structs or "DW_AT_declaration" in die.attributes:
                    continue
                members = {}
                for child in die.iter_children():
                    if child.tag == "DW_TAG_member" and "DW_AT_name" in child.attributes:
                        loc = child.attributes.get("DW_AT_data_member_location")
                        if loc is not None and isinstance(loc.value, int):
                            members[child.attributes["DW_AT_name"].value.decode()] = loc.value
                structs[name] = members
    return structs


def member_offset(elf: Path, struct: str, member: str) -> int:
    """Offset of ``member`` in ``struct <struct>`` of the kernel ELF (from its debug info)."""
    elf = Path(elf)
    members = _struct_members(str(elf), elf.stat().st_mtime)
    try:
        return members[struct][member]
    except KeyError:
        raise KeyError(f"struct {struct} has no member {member} in {elf}") from None


class KernelRun:
    """A machine booting the kernel, with its console captured."""

    def __init__(
        self,
        nodes: int = 1,
        *,
        selftest: bool = False,
        elf: Path | None = None,
        quantum: int = 1000,
        remote_penalty: int = 7,
        nic_nodes: tuple[int, ...] = (0,),
    ) -> None:
        self.elf = Path(elf) if elf is not None else build_kernel()
        self.image: ElfImage = load_elf(self.elf)
        self.machine = Machine(MachineConfig(nodes=nodes, quantum=quantum, remote_penalty=remote_penalty,
                                             nic_nodes=nic_nodes))
        self._wired = False  # a wire is attached: take its frames between rounds
        self._out = bytearray()
        self._mark = 0  # index into self.console where the next wait_for starts
        self.machine.console.add_output_listener(self._out.extend)
        self.machine.load(self.image)
        if selftest:
            self.set_boot_flag("selftest", 1)

    # -- memory ---------------------------------------------------------------

    def symbol(self, name: str) -> int:
        addr = self.image.symbol(name)
        if addr is None:
            raise KeyError(f"no symbol {name} in {self.elf}")
        return addr

    def phys(self, name: str, node: int = 0) -> int:
        """Physical address of a kernel symbol in node ``node``'s copy."""
        return kernel_phys(self.symbol(name), node)

    def read_word(self, paddr: int) -> int:
        return int.from_bytes(self.machine.read_phys(paddr, 4), "little")

    def write_word(self, paddr: int, value: int) -> None:
        self.machine.write_phys(paddr, value.to_bytes(4, "little"))

    def node_field(self, node: int, member: str) -> int:
        """A 32-bit member of node ``node``'s ``struct node this_node``."""
        return self.read_word(self.phys("this_node", node) + member_offset(self.elf, "node", member))

    def set_boot_flag(self, member: str, value: int) -> None:
        """Patch ``bootargs.<member>`` in the loaded image; only before the king runs far."""
        base = self.phys("bootargs")
        if self.read_word(base) != BOOTARGS_MAGIC:
            raise RuntimeError("bootargs not found where the symbol table says")
        self.write_word(base + member_offset(self.elf, "bootargs", member), value)

    def attach_wire(self, node: int, wire: Wire) -> None:
        """Plug `wire` into node `node`'s NIC; from now on its frames enter between rounds, as
        `psyche machine`'s runner takes them (Machine.poll_host)."""
        self.machine.attach_wire(node, wire)
        self._wired = True

    def run_round(self) -> list[Node]:
        """One scheduling round (after the wires' frames, if any are attached)."""
        if self._wired:
            self.machine.poll_host()
        return self.machine.run_round()

    # -- console --------------------------------------------------------------

    @property
    def console(self) -> str:
        """Everything the console printed so far, newlines without CR."""
        return self._out.decode(errors="replace").replace("\r\n", "\n")

    def type(self, text: str) -> None:
        """Send text to the console line, as typed on the host."""
        self.machine.console.feed(text.encode())

    def run_cycles(self, cycles: int) -> None:
        self.machine.run(cycles)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Run until console output printed since the last match matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        machine = self.machine
        while True:
            match = regex.search(self.console, self._mark)
            if match:
                self._mark = match.end()
                return match
            for _ in range(64):
                stopped = self.run_round()
                if stopped:
                    raise KernelTimeout(f"node(s) stopped {[n.index for n in stopped]} while waiting for "
                                        f"{pattern!r}; console:\n{self.console[-3000:]}")
                if machine.idle():
                    raise KernelTimeout(f"machine idle while waiting for {pattern!r}; "
                                        f"console:\n{self.console[-3000:]}")
            if time.monotonic() > deadline:
                raise KernelTimeout(f"no {pattern!r} on the console within {timeout} s; "
                                    f"console:\n{self.console[-3000:]}")

    def boot(self, timeout: float = 60.0) -> str:
        """Run to the monitor's first prompt; returns the boot log."""
        start = len(self.console)
        self.wait_for(re.escape(PROMPT), timeout)
        return self.console[start:]

    def command(self, line: str, timeout: float = 30.0) -> str:
        """Type a monitor command and return its output (up to the next prompt)."""
        self.type(line + "\r")
        match = self.wait_for(re.escape(line) + r"\n((?:.|\n)*?)" + re.escape(PROMPT), timeout)
        return match.group(1)
