"""The RV32 target description the mux serves to gdb, and gdb's register numbering.

gdb learns a target's registers from XML fetched with
``qXfer:features:read``.  For RISC-V it looks for three features by name
(gdb riscv-tdep.c): ``org.gnu.gdb.riscv.cpu`` (x0..x31 under their ABI
names, then pc), ``org.gnu.gdb.riscv.csr`` (CSRs by their assembler names)
and ``org.gnu.gdb.riscv.virtual`` (``priv``, the privilege level the hart
stopped in).  There is no FPU feature: the nodes have no F or D.

The ``regnum`` attributes fix the numbers gdb uses in ``p``/``P`` packets.
They follow gdb's own internal numbering, as OpenOCD does: x0..x31 are 0..31,
pc 32, CSR n is 65 + n (33..64 would be f0..f31), priv is 65 + 4096 = 4161.
So a number in a packet, in gdb's ``maint print remote-registers`` and in
the RISC-V debug spec all agree.  The ``g`` packet carries registers 0..32
only; gdb reads the others one at a time with ``p``.

`ANNEXES` holds the documents by annex name: ``target.xml`` includes the
three feature files, as gdb's own and QEMU's descriptions do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from psyche import rv32

FEATURE_CPU = "org.gnu.gdb.riscv.cpu"
FEATURE_CSR = "org.gnu.gdb.riscv.csr"
FEATURE_VIRTUAL = "org.gnu.gdb.riscv.virtual"

PC_REGNUM = 32
#: Registers in a ``g``/``G`` block: x0..x31 and pc.
G_REGISTER_COUNT = 33
CSR_REGNUM_BASE = 65
PRIV_REGNUM = CSR_REGNUM_BASE + 4096


class RegisterKind(Enum):
    GPR = "gpr"
    PC = "pc"
    CSR = "csr"
    PRIV = "priv"


@dataclass(frozen=True)
class Register:
    """One register as gdb sees it.  `csr` is the CSR number of a CSR."""

    name: str
    regnum: int
    kind: RegisterKind
    bitsize: int = 32
    type: str = "int"
    csr: int | None = None

    @property
    def size(self) -> int:
        """Bytes in a ``p`` reply or ``P`` value."""
        return self.bitsize // 8


#: gdb's 32bit-cpu.xml names x8 fp, and gives pointer types to these, so `p $sp` prints as a pointer.
_GPR_NAMES = tuple("fp" if i == 8 else name for i, name in enumerate(rv32.ABI_NAMES))
_GPR_TYPES = {"ra": "code_ptr", "sp": "data_ptr", "gp": "data_ptr", "tp": "data_ptr", "fp": "data_ptr"}
#: The CSRs a kernel debugger wants: every one the node CPU implements.
CSRS = rv32.CSRS


def _registers() -> tuple[Register, ...]:
    gprs = [Register(name, i, RegisterKind.GPR, type=_GPR_TYPES.get(name, "int"))
            for i, name in enumerate(_GPR_NAMES)]
    pc = Register("pc", PC_REGNUM, RegisterKind.PC, type="code_ptr")
    csrs = [Register(name, CSR_REGNUM_BASE + num, RegisterKind.CSR, csr=num)
            for name, num in sorted(CSRS.items(), key=lambda item: item[1])]
    # 8 bits, as OpenOCD has it: gdb takes any width and prints it as prv:N [Mode].
    priv = Register("priv", PRIV_REGNUM, RegisterKind.PRIV, bitsize=8, type="uint8")
    return (*gprs, pc, *csrs, priv)


REGISTERS: tuple[Register, ...] = _registers()
_BY_REGNUM = {r.regnum: r for r in REGISTERS}


def register(regnum: int) -> Register | None:
    """The register gdb means by `regnum` in ``p``/``P``/expedited stop registers."""
    return _BY_REGNUM.get(regnum)


def _feature(name: str, kinds: tuple[RegisterKind, ...]) -> bytes:
    regs = "".join(
        f'  <reg name="{r.name}" bitsize="{r.bitsize}" type="{r.type}" regnum="{r.regnum}"/>\n'
        for r in REGISTERS if r.kind in kinds
    )
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE feature SYSTEM "gdb-target.dtd">\n'
        f'<feature name="{name}">\n{regs}</feature>\n'
    ).encode()


_FEATURE_FILES = {
    "riscv-32bit-cpu.xml": _feature(FEATURE_CPU, (RegisterKind.GPR, RegisterKind.PC)),
    "riscv-32bit-csr.xml": _feature(FEATURE_CSR, (RegisterKind.CSR,)),
    "riscv-32bit-virtual.xml": _feature(FEATURE_VIRTUAL, (RegisterKind.PRIV,)),
}

_TARGET = (
    '<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n<target version="1.0" xmlns:xi="http://www.w3.org/2001/XInclude">\n'
    "  <architecture>riscv:rv32</architecture>\n"
    + "".join(f'  <xi:include href="{annex}"/>\n' for annex in _FEATURE_FILES)
    + "</target>\n"
).encode()

#: Annex name -> document, for qXfer:features:read.
ANNEXES: dict[str, bytes] = {"target.xml": _TARGET, **_FEATURE_FILES}
