"""Sv32 address translation.

A/D-bit policy: the hardware (this walker) sets A on any permitted access and
D on a permitted store, with the page-table write done as part of the walk, as
QEMU does.  A walk done for a debugger (`update_ad=False`) has no side effects
at all: it neither sets A/D bits nor faults; it only reports.

Physical addresses in Sv32 have 34 bits; anything at or above 4 GiB lies
outside this machine's map and is reported as an access fault.
"""

from typing import Final

from mypy_extensions import i64

from psyche.machine.csr import PRV_S, CsrFile
from psyche.machine.physmem import PhysMem

ACCESS_READ: Final = 0
ACCESS_WRITE: Final = 1
ACCESS_EXEC: Final = 2

PTE_V: Final = 1
PTE_R: Final = 2
PTE_W: Final = 4
PTE_X: Final = 8
PTE_U: Final = 16
PTE_A: Final = 64
PTE_D: Final = 128

# Negative results: -(cause + 1), so callers recover the exception cause.
FAULT_BASE: Final = 1

_PAGE_FAULT: Final = [13, 15, 12]
_ACCESS_FAULT: Final = [5, 7, 1]


def page_fault(access: i64) -> i64:
    return -(_PAGE_FAULT[access] + FAULT_BASE)


def access_fault(access: i64) -> i64:
    return -(_ACCESS_FAULT[access] + FAULT_BASE)


def fault_cause(result: i64) -> i64:
    return -result - FAULT_BASE


def translate(
    mem: PhysMem, satp: i64, vaddr: i64, access: i64, priv: i64,
    sum_bit: bool, mxr: bool, update_ad: bool, pmp: CsrFile | None = None,
) -> i64:
    """Physical address for vaddr under satp, or a negative fault code.

    `priv` is the effective privilege of the access (0 U, 1 S); callers handle
    M mode and bare translation themselves.  With `pmp`, the walk's own reads
    of page-table entries are checked by PMP as S-mode reads (privileged spec:
    implicit accesses), and one it refuses is an access fault of the access.
    """
    table: i64 = (satp & 0x3FFFFF) << 12
    level: i64 = 1
    while True:
        index: i64 = (vaddr >> (12 + 10 * level)) & 0x3FF
        pte_addr: i64 = table + index * 4
        if not mem.is_ram(pte_addr):
            return access_fault(access)
        if pmp is not None and not pmp.pmp_allows(pte_addr, 4, ACCESS_READ, PRV_S):
            return access_fault(access)
        pte: i64 = mem.read_word(pte_addr)
        if (pte & PTE_V) == 0 or ((pte & PTE_R) == 0 and (pte & PTE_W) != 0):
            return page_fault(access)
        if (pte & (PTE_R | PTE_X)) != 0:
            break
        level -= 1
        if level < 0:
            return page_fault(access)
        table = ((pte >> 10) & 0x3FFFFF) << 12
    if not _permitted(pte, access, priv, sum_bit, mxr):
        return page_fault(access)
    ppn: i64 = (pte >> 10) & 0x3FFFFF
    if level == 1 and (ppn & 0x3FF) != 0:
        return page_fault(access)  # misaligned megapage
    if update_ad:
        wanted: i64 = pte | PTE_A | (PTE_D if access == ACCESS_WRITE else 0)
        if wanted != pte:
            mem.write_word(pte_addr, wanted, -1)
    if level == 1:
        paddr: i64 = ((ppn >> 10) << 22) | (vaddr & 0x3FFFFF)
    else:
        paddr = (ppn << 12) | (vaddr & 0xFFF)
    if paddr > 0xFFFFFFFF:
        return access_fault(access)
    return paddr


def leaf_pte(mem: PhysMem, satp: i64, vaddr: i64) -> i64:
    """The leaf page-table entry of a vaddr that `translate` maps (the walk is known to succeed).

    For a debugger asking what a fetch would do to it (its A bit), without doing the fetch.
    """
    pte: i64 = mem.read_word(((satp & 0x3FFFFF) << 12) + (vaddr >> 22) * 4)
    if (pte & (PTE_R | PTE_X)) != 0:
        return pte
    return mem.read_word((((pte >> 10) & 0x3FFFFF) << 12) + ((vaddr >> 12) & 0x3FF) * 4)


def _permitted(pte: i64, access: i64, priv: i64, sum_bit: bool, mxr: bool) -> bool:
    user_page: bool = (pte & PTE_U) != 0
    if priv == 0 and not user_page:
        return False
    if priv == 1 and user_page and (access == ACCESS_EXEC or not sum_bit):
        return False
    if access == ACCESS_READ:
        return (pte & PTE_R) != 0 or (mxr and (pte & PTE_X) != 0)
    if access == ACCESS_WRITE:
        return (pte & PTE_W) != 0
    return (pte & PTE_X) != 0
