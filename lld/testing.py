"""Test support for lld and its clients: a small multi-node guest with labelled spots.

The real kernel is written elsewhere; lld's tests (and the mux's) need a
target whose every interesting address has a name.  `TARGET_SOURCE` is a
bare-metal program on the common crt0: the king starts every other node,
then every node spins forever bumping its own counter in `counters[]`
(all nodes run the same physical code, in the king's RAM).  Writing
node+1 into `panic_request` sends that node into `panic`, a loop standing in
for a kernel's panic path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psyche import guestbuild
from psyche.machine.elf import ElfImage, load_elf
from psyche.machine.machine import Machine, MachineConfig

TARGET_SOURCE = r"""
#include "test.h"
#define DOORBELL 0x10003000

        .text
        .globl test_main
test_main:
        li s0, DOORBELL
        lw s1, 4(s0)                    /* node count */
        la t0, secondary
        sw t0, 0xC(s0)                  /* START_PC */
        li t1, 1
1:      bge t1, s1, spin
        sw t1, 8(s0)                    /* RING: start node t1 */
        addi t1, t1, 1
        j 1b

        .globl secondary
secondary:
        li s0, DOORBELL
        lw a0, 0(s0)
        addi t0, a0, 1
        slli t0, t0, 22
        li sp, 0x80000000
        add sp, sp, t0
        addi sp, sp, -16

        .globl spin, spin_loop, spin_store, spin_check, panic
spin:
        li s0, DOORBELL
        lw a0, 0(s0)                    /* a0 = node number */
        la s2, counters
        slli t1, a0, 2
        add s2, s2, t1                  /* s2 = &counters[node] */
        la s3, panic_request
        addi s4, a0, 1
spin_loop:
        lw t2, 0(s2)
        addi t2, t2, 1
spin_store:
        sw t2, 0(s2)
spin_check:
        lw t3, 0(s3)
        beq t3, s4, panic
        j spin_loop

panic:
        j panic

        .data
        .balign 64
        .globl counters, panic_request, scratch
counters:       .space 4 * 128
panic_request:  .word 0
        .balign 64
scratch:        .space 256
"""

SYMBOLS = ("test_main", "secondary", "spin", "spin_loop", "spin_store", "spin_check", "panic",
           "counters", "panic_request", "scratch", "tohost")


@dataclass(frozen=True)
class TargetGuest:
    path: Path
    image: ElfImage

    def sym(self, name: str) -> int:
        address = self.image.symbol(name)
        if address is None:
            raise KeyError(f"{self.path}: no symbol {name}")
        return address

    def counter(self, node: int) -> int:
        return self.sym("counters") + 4 * node

    def boot(self, nodes: int, quantum: int = 1000) -> Machine:
        machine = Machine(MachineConfig(nodes=nodes, quantum=quantum))
        machine.load(self.image)
        return machine


def build_target_guest(out_dir: Path = guestbuild.DEFAULT_OUT_DIR) -> TargetGuest:
    """Build (or reuse) the lld target guest in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / "lld-target.S"
    if not source.exists() or source.read_text() != TARGET_SOURCE:
        source.write_text(TARGET_SOURCE)
    path = guestbuild.build_program([source], out_dir / "lld-target.elf")
    return TargetGuest(path, load_elf(path))
