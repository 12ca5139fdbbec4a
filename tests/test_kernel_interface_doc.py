"""docs/kernel-interface.md says what the kernel does: its tables must agree with the kernel built.

User programs are written against that document, so a structure table whose offsets drifted from
`uapi/psyche.h`, or a kernel call listed under the wrong number, is a bug in the interface. The
offsets come from the kernel ELF's DWARF, the call numbers from the header the kernel and the
programs share.
"""

from __future__ import annotations

import re
from pathlib import Path

from mux.kernel_layout import read_structs

REPO = Path(__file__).resolve().parent.parent
DOC = (REPO / "docs" / "kernel-interface.md").read_text()
UAPI = (REPO / "psyche" / "kernel" / "uapi" / "psyche.h").read_text()

#: A structure's section: "### Title (`struct NAME`, ..." then its table up to the next heading.
SECTION = re.compile(r"^### [^\n]*\(`struct (\w+)`([^\n]*)\n(.*?)(?=^#)", re.M | re.S)
ROW = re.compile(r"^\| (\d+) \| `(\w+)(?:\[\d+\])?` \|", re.M)


def documented_structs() -> dict[str, tuple[dict[str, int], int | None]]:
    """Each documented structure's member offsets, and its size when the heading gives one."""
    found = {}
    for name, heading, body in SECTION.findall(DOC):
        size = re.search(r"(\d+) bytes", heading)
        found[name] = ({m: int(o) for o, m in ROW.findall(body)}, int(size[1]) if size else None)
    return found


def test_every_shared_structure_is_laid_out_as_documented(kernel_elf: Path) -> None:
    documented = documented_structs()
    assert {"psy_realm", "psy_domain", "psy_vp", "psy_magic"} <= set(documented)
    actual = read_structs(kernel_elf, {name: tuple(members)
                                       for name, (members, _) in documented.items()})
    for name, (members, size) in documented.items():
        assert name in actual, f"struct {name}: a documented member is missing from the kernel"
        assert actual[name].offsets == members, f"struct {name}"
        if size is not None:
            assert actual[name].size == size, f"struct {name}"


def test_every_kernel_call_has_its_documented_number() -> None:
    table = DOC[:DOC.index("\n### ")]          # the call table comes before the calls' sections
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| ", table, re.M)
    numbers = {f"PSY_{name.upper()}": int(n) for n, name in rows}
    defined = {name: int(n) for name, n in re.findall(r"#define (PSY_\w+)\s+(\d+)\s+/\* \(", UAPI)}
    assert numbers == defined
    assert len(numbers) == int(re.search(r"#define PSY_NCALLS\s+(\d+)", UAPI)[1])
