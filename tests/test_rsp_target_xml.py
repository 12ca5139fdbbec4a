"""mux.target_xml: the RV32 target description is well-formed and numbered the way gdb numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mux import target_xml as tx

pytestmark = pytest.mark.timeout(60)

XI_INCLUDE = "{http://www.w3.org/2001/XInclude}include"


def parse(annex: str) -> ET.Element:
    return ET.fromstring(tx.ANNEXES[annex])


def test_target_includes_every_feature_file() -> None:
    root = parse("target.xml")
    assert root.tag == "target"
    assert root.findtext("architecture") == "riscv:rv32"
    includes = [e.get("href", "") for e in root.iter(XI_INCLUDE)]
    assert sorted(includes) == sorted(a for a in tx.ANNEXES if a != "target.xml")


def test_features_list_every_register_once() -> None:
    seen: list[tuple[str, str, int, int]] = []
    for annex in tx.ANNEXES:
        if annex == "target.xml":
            continue
        root = parse(annex)
        assert root.tag == "feature"
        for element in root.iter("reg"):
            seen.append((root.get("name", ""), element.get("name", ""), int(element.get("regnum", "")),
                         int(element.get("bitsize", ""))))
    assert len({regnum for _, _, regnum, _ in seen}) == len(seen) == len(tx.REGISTERS)
    for feature, name, regnum, bitsize in seen:
        reg = tx.register(regnum)
        assert reg is not None and (reg.name, reg.bitsize) == (name, bitsize)
        assert feature == {tx.RegisterKind.GPR: tx.FEATURE_CPU, tx.RegisterKind.PC: tx.FEATURE_CPU,
                           tx.RegisterKind.CSR: tx.FEATURE_CSR,
                           tx.RegisterKind.PRIV: tx.FEATURE_VIRTUAL}[reg.kind]


def test_cpu_feature_is_gdbs() -> None:
    names = [r.get("name") for r in parse("riscv-32bit-cpu.xml").iter("reg")]
    assert names[:4] == ["zero", "ra", "sp", "gp"] and names[8] == "fp" and names[31:] == ["t6", "pc"]
    assert [tx.register(n) for n in range(33)] == list(tx.REGISTERS[:33])
    assert tx.REGISTERS[tx.PC_REGNUM].kind is tx.RegisterKind.PC


def test_csr_numbers_follow_gdb() -> None:
    # gdb: RISCV_FIRST_CSR_REGNUM = 65, so CSR n is 65 + n; packets then say p341 for mstatus.
    for name, number in (("mstatus", 0x300), ("mepc", 0x341), ("satp", 0x180), ("stimecmp", 0x14D),
                         ("mhartid", 0xF14), ("cycle", 0xC00), ("time", 0xC01), ("instret", 0xC02)):
        reg = tx.register(65 + number)
        assert reg is not None and reg.name == name and reg.csr == number
        assert reg.kind is tx.RegisterKind.CSR and reg.size == 4
    assert tx.CSR_REGNUM_BASE + tx.CSRS["mstatus"] == 0x341
    for needed in ("mstatus", "misa", "medeleg", "mideleg", "mie", "mtvec", "mscratch", "mepc", "mcause",
                   "mtval", "mip", "sstatus", "sie", "stvec", "sscratch", "sepc", "scause", "stval", "sip",
                   "satp", "mhartid", "cycle", "time", "instret", "mcounteren", "scounteren", "menvcfg",
                   "stimecmp"):
        assert needed in tx.CSRS


def test_priv_is_the_virtual_register() -> None:
    priv = tx.register(4161)
    assert priv is not None and priv.name == "priv" and priv.kind is tx.RegisterKind.PRIV
    assert priv.size == 1 and priv.csr is None
    assert tx.register(33) is None  # f0: there is no FPU
    assert tx.register(5000) is None
