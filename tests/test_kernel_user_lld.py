"""A realm's first touch seen through lld, the debugging stub beneath the kernel.

A breakpoint on domain_fault stops node 1 in the fault that opens a shared
realm; the domain's page table on that node, read through lld's
page-table-root space (docs/lld-protocol.md, section 7), shows the page
unmapped before the fault is decided and the new PTE after.  lld's read of
the unmapped page is an error that changes no byte of the page tables (no
PTE made present, no A/D bit set: the paper's bus-error lesson).
"""

from __future__ import annotations

import re
from pathlib import Path

from lld import protocol as p
from lld.loopback import Loopback
from psyche.kernel.harness import KernelRun

A0, A1, RA = 10, 11, 1
SATP = p.REG_CSR_BASE + 0x180
PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_A, PTE_D = 1, 2, 4, 8, 16, 64, 128


def run_to_breakpoint(lb: Loopback, node: int, addr: int, rounds: int = 20_000) -> p.Status:
    for _ in range(rounds):
        lb.tick()
        status = lb.status(node)
        if status.stopped:
            assert status.reason == p.REASON_BREAKPOINT and status.pc == addr, status
            return status
    raise AssertionError(f"node {node} never reached {addr:#x}")


def resume_past(lb: Loopback, node: int, addr: int, keep: bool = True) -> None:
    """Resume a node stopped at a breakpoint at addr, keeping the breakpoint if asked.

    The node's clock ran on while it was stopped, so a clock interrupt is due: resumed
    in place, the node would take it first and come back to the breakpoint.  One step
    with interrupts held executes the instruction there first.
    """
    lb.ok(node, p.ClearBreakpoint(p.ANY_GEN, addr))
    lb.ok(node, p.Step(lb.status(node).gen))
    if keep:
        lb.ok(node, p.SetBreakpoint(p.ANY_GEN, addr))
    lb.ok(node, p.Resume(lb.status(node).gen))


def page_tables(lb: Loopback, node: int, satp: int, va: int) -> tuple[bytes, bytes | None]:
    """The domain's root table and the second-level table that va goes through, read physically."""
    root = (satp & 0x3FFFFF) << 12
    root_bytes = b"".join(lb.ok(node, p.ReadMem(p.SPACE_PHYS, root + off, 1024))
                          for off in range(0, 4096, 1024))
    l1 = int.from_bytes(root_bytes[(va >> 22) * 4:(va >> 22) * 4 + 4], "little")
    if not l1 & PTE_V:
        return root_bytes, None
    table = (l1 >> 10) << 12
    return root_bytes, b"".join(lb.ok(node, p.ReadMem(p.SPACE_PHYS, table + off, 1024))
                                for off in range(0, 4096, 1024))


def leaf_pte(tables: tuple[bytes, bytes | None], va: int) -> int:
    table = tables[1]
    if table is None:
        return 0
    index = (va >> 12) & 0x3FF
    return int.from_bytes(table[index * 4:index * 4 + 4], "little")


def test_first_touch_opens_the_realm_and_the_pte_appears_in_the_nodes_table(kernel_elf: Path) -> None:
    run = KernelRun(2, elf=kernel_elf)
    run.boot()
    made = run.command("run share make 0x1234")
    va = int(re.search(r"made realm (0x[0-9a-f]+)", made).group(1), 16)  # type: ignore[union-attr]
    lb = Loopback(run.machine, run=True)
    fault = run.symbol("domain_fault")
    lb.ok(1, p.SetBreakpoint(p.ANY_GEN, fault))
    start = len(run.console)
    run.type(f"spawn 1 share read {va:#x} 0x1234\r")

    # The program's own first touches (its code, its stack) come first: pass them.
    while True:
        run_to_breakpoint(lb, 1, fault)
        a1, satp, ra = lb.ok(1, p.ReadRegs((A1, SATP, RA)))
        if a1 == va:
            break
        resume_past(lb, 1, fault)

    # Stopped on the shared realm's first touch: not mapped in this domain on this node yet,
    # and lld's read through the domain's root says so without touching the tables.
    before = page_tables(lb, 1, satp, va)
    assert leaf_pte(before, va) & PTE_V == 0
    reply = lb.call(1, p.ReadMem(p.SPACE_ROOT, va, 4, satp))
    assert not reply.ok and reply.error is not None and reply.error.code == p.E_UNMAPPED
    assert page_tables(lb, 1, satp, va) == before

    # Let the kernel decide the fault: run to domain_fault's return.
    lb.ok(1, p.SetBreakpoint(p.ANY_GEN, ra))
    resume_past(lb, 1, fault, keep=False)
    run_to_breakpoint(lb, 1, ra)
    assert lb.ok(1, p.ReadRegs((A0,)))[0] == 0           # NULL: no error, the page is mapped

    after = page_tables(lb, 1, satp, va)
    pte = leaf_pte(after, va)
    assert pte & (PTE_V | PTE_R | PTE_W | PTE_U) == PTE_V | PTE_R | PTE_W | PTE_U
    assert pte & (PTE_X | PTE_A | PTE_D) == 0            # no execute right; not yet touched
    frame = (pte >> 10) << 12
    assert run.machine.read_phys(frame, 4) == (0x5EED0001).to_bytes(4, "little")
    assert lb.ok(1, p.ReadMem(p.SPACE_ROOT, va, 4, satp)) == (0x5EED0001).to_bytes(4, "little")
    assert page_tables(lb, 1, satp, va) == after          # lld's read set no A bit either

    # The retried load runs at full speed: the hardware sets A, and the program goes on.
    resume_past(lb, 1, ra, keep=False)
    for _ in range(20_000):
        lb.tick()
        if "share: exit 0" in run.console[start:]:
            break
    out = run.console[start:]
    assert f"read 5eed0001 at {va:#010x}" in out and f"wrote 5eed0002 at {va:#010x}" in out, out
    assert run.machine.read_phys(frame, 4) == (0x5EED0002).to_bytes(4, "little")
