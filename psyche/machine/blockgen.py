"""Translate a run of decoded instructions into the source of one Python function.

Used only when the CPU runs as plain Python (psyche/machine/blockcpu.py):
there, dispatching every instruction costs more than the instruction itself,
so straight-line code is turned into Python source once and compiled.

A block is a run of instructions from one page that complete without the
CPU's slow paths: ALU operations, loads and stores that hit the TLBs, and
conditional branches, which leave the block when taken (the block goes on
along the fall-through path), and jal to the same page, which the block
follows; it ends at jalr, at a jal it does not follow, at the end of the
page or after MAX_BLOCK instructions.  Its function does exactly what the interpreter
(Cpu._exec) does for the same instructions.  Registers live in Python
locals for the length of the block and are written back at every exit.  A
block with a branch back to its first instruction (a loop) makes further
passes itself while they fit in the cycles it is given.

The function takes the data-translation context and the room (cycles
before the limit; the caller checks that one pass fits) and returns a
tuple (pc, retired, references, remote, slow): where to go on, the
instructions retired, the data references made and how many of them went
to another node's RAM, and whether the instruction at pc needs a slow path
(TLB miss, misalignment, watched page, store into code; it has not started).

The source's globals (me, r, ram, rams, rtag, ...) are the CPU's number and
objects, bound by the caller (see BOUND_NAMES), so the same source serves
every node that runs the same code at the same addresses.  No reservation appears or goes while a
block runs (LR/SC are not in blocks, other nodes wait their turn), so a
block reads the machine's reservation count once.
"""

from __future__ import annotations

from dataclasses import dataclass

from psyche.machine import isa

M32 = 0xFFFFFFFF
SIGN = 0x80000000
MAX_BLOCK = 64

# The globals of every block function: the CPU's registers, RAM, TLBs...
BOUND_NAMES = (
    "me", "r", "ram", "rams", "rtag", "rval", "wtag", "wval", "local_reads", "local_writes", "mem", "alu",
)


def _signed_less(b: str = "{b}", result: str = "!=") -> str:
    """Template of signed {a} < b (result "==": {a} >= b) on unsigned 32-bit values.

    The unsigned order, reversed when the signs differ: no big-integer xor
    with 2**31, which allocates in CPython.
    """
    return f"({{a}} < {b}) {result} (({{a}} < 2147483648) != ({b} < 2147483648))"


_BRANCH_TESTS = {
    isa.OP_BEQ: "{a} == {b}",
    isa.OP_BNE: "{a} != {b}",
    isa.OP_BLT: _signed_less(),
    isa.OP_BGE: _signed_less(result="=="),
    isa.OP_BLTU: "{a} < {b}",
    isa.OP_BGEU: "{a} >= {b}",
}

# Register-register and register-immediate operations: an expression in the
# operands a, b and the immediate i (all unsigned 32-bit values).
_ALU = {
    isa.OP_AND: "{a} & {b}",
    isa.OP_OR: "{a} | {b}",
    isa.OP_XOR: "{a} ^ {b}",
    isa.OP_ANDI: "{a} & {i}",
    isa.OP_ORI: "{a} | {i}",
    isa.OP_XORI: "{a} ^ {i}",
    isa.OP_SLLI: "({a} << {i}) & 4294967295",
    isa.OP_SRLI: "{a} >> {i}",
    isa.OP_SRAI: "((({a} ^ 2147483648) - 2147483648) >> {i}) & 4294967295",
    isa.OP_SLL: "({a} << ({b} & 31)) & 4294967295",
    isa.OP_SRL: "{a} >> ({b} & 31)",
    isa.OP_SRA: "((({a} ^ 2147483648) - 2147483648) >> ({b} & 31)) & 4294967295",
    isa.OP_SLT: f"1 if {_signed_less()} else 0",
    isa.OP_SLTU: "1 if {a} < {b} else 0",
    isa.OP_SLTI: f"1 if {_signed_less('{i}')} else 0",
    isa.OP_SLTIU: "1 if {a} < {i} else 0",
    isa.OP_MUL: "({a} * {b}) & 4294967295",
    isa.OP_MULH: ("(((({a} ^ 2147483648) - 2147483648) * (({b} ^ 2147483648) - 2147483648)) >> 32)"
                  " & 4294967295"),
    isa.OP_MULHSU: "(((({a} ^ 2147483648) - 2147483648) * {b}) >> 32) & 4294967295",
    isa.OP_MULHU: "({a} * {b}) >> 32",
}
# Additions and subtractions: see _Emitter.write_wrapped.
_WRAPPING = (isa.OP_ADDI, isa.OP_ADD, isa.OP_SUB)
# Division keeps the interpreter's function (signs, division by zero, overflow).
_DIVISION = (isa.OP_DIV, isa.OP_DIVU, isa.OP_REM, isa.OP_REMU)

# Loads: (size, the register value from the RAM word w, signed as stored).
_LOADS = {
    isa.OP_LW: (4, "{w}"),  # then made unsigned (see load)
    isa.OP_LBU: (1, "({w} >> ((a & 3) << 3)) & 255"),
    isa.OP_LB: (1, "(((({w} >> ((a & 3) << 3)) & 255) ^ 128) - 128) & 4294967295"),
    isa.OP_LHU: (2, "({w} >> ((a & 3) << 3)) & 65535"),
    isa.OP_LH: (2, "(((({w} >> ((a & 3) << 3)) & 65535) ^ 32768) - 32768) & 4294967295"),
}
_STORES = {isa.OP_SW: 4, isa.OP_SB: 1, isa.OP_SH: 2}


@dataclass(frozen=True)
class BlockSource:
    source: str  # defines the function `block`
    worst: int  # cycles before the last instruction starts if every reference is remote


def can_translate(d: int) -> bool:
    """Whether the decoded instruction d may appear in a block."""
    op = d & 0xFF
    return (op in _ALU or op in _WRAPPING or op in _DIVISION or op in _LOADS or op in _STORES
            or op in _BRANCH_TESTS or op in (isa.OP_LUI, isa.OP_AUIPC, isa.OP_NOP, isa.OP_JAL, isa.OP_JALR))


def ends_block(d: int) -> bool:
    """Whether d ends a block wherever it stands: only a jal the block follows does not."""
    op = d & 0xFF
    return op == isa.OP_JAL or op == isa.OP_JALR


def branch_target_misaligned(pc: int, d: int) -> bool:
    """A conditional branch or jal whose target traps: left to the interpreter."""
    op = d & 0xFF
    return (op in _BRANCH_TESTS or op == isa.OP_JAL) and ((pc + (d >> 24)) & 3) != 0


def _plus(register: str, imm: int) -> str:
    """register + imm (register values are 32-bit; the sum may carry into bit 32)."""
    if imm == 0:
        return register
    if register == "0":
        return str(imm)
    return f"{register} + {imm}"


class _Emitter:
    """Python source for one block, with registers cached in locals.

    Registers are loaded into locals before the code (`preload`) and written
    back at every exit: those written so far, or in a loop every register the
    body writes (a later pass may exit where an earlier pass wrote them).
    In a loop, c counts the passes completed before the current one; they
    all took the one branch back (`back`: after instructions 0..back-1), or
    if there are several, n and refs count their instructions and references.
    """

    def __init__(
        self, pcs: list[int], decoded: list[int], penalty: int, written: set[int]
    ) -> None:
        self.pcs = pcs
        self.start = pcs[0]
        self.penalty = penalty
        backs = _back_edges(pcs, decoded)
        self.loop = bool(backs)
        self.back = backs[0] if len(backs) == 1 else 0
        self.lines: list[str] = []
        self.reads: set[int] = set()
        self.dirty: set[int] = set(written) if self.loop else set()
        # memops[k]: data references made by instructions 0..k-1 of a pass.
        self.memops = [0]
        for d in decoded:
            self.memops.append(self.memops[-1] + ((d & 0xFF) in _LOADS or (d & 0xFF) in _STORES))
        self.depth = 2 if self.loop else 1
        # Cycles before the last instruction starts if every reference is remote.
        self.worst = len(decoded) - 1 + penalty * self.memops[len(decoded) - 1]

    def emit(self, line: str, depth: int = 0) -> None:
        self.lines.append("    " * (self.depth + depth) + line)

    def read(self, reg: int) -> str:
        if reg == 0:
            return "0"
        self.reads.add(reg)
        return f"x{reg}"

    def write(self, reg: int, expr: str) -> None:
        self.emit(f"x{reg} = {expr}")
        self.dirty.add(reg)

    def exit(self, pc: str, k: int, slow: bool, depth: int = 0) -> None:
        """Leave with instructions 0..k-1 of this pass done; slow: pc needs the interpreter."""
        for reg in sorted(self.dirty):
            self.emit(f"r[{reg}] = x{reg}", depth)
        self.emit(f"return {pc}, {self.done(k)}, {slow}", depth)

    def done(self, k: int) -> str:
        """Retired instructions, references, remote references, after instructions 0..k-1 of this pass."""
        if not self.loop:
            return f"{k}, {self.memops[k]}, rem"
        if self.back:
            return f"c * {self.back} + {k}, c * {self.memops[self.back]} + {self.memops[k]}, rem"
        return f"n + {k}, refs + {self.memops[k]}, rem"

    def slow_path_at(self, k: int, condition: str) -> None:
        self.emit(f"if {condition}:")
        self.exit(str(self.pcs[k]), k, True, 1)

    def again(self, k: int) -> None:
        """After instructions 0..k-1 of a pass, back at the start: another pass if it fits the room.

        The room was reduced by the worst case of a pass at the start.
        """
        remote = f" + rem * {self.penalty}" if self.penalty and self.memops[-1] else ""
        if self.back:
            self.emit("c += 1", 1)
            self.emit(f"if c * {k}{remote} < room:", 1)
        else:
            self.emit(f"n += {k}", 1)
            if self.memops[k]:
                self.emit(f"refs += {self.memops[k]}", 1)
            self.emit(f"if n{remote} < room:", 1)
        self.emit("continue", 2)
        self.exit(str(self.start), 0, False, 1)

    def access(self, k: int, address: str, size: int, kind: str, local: str, other: str) -> None:
        """Emit `local` for a word of this node's RAM, `other` for another node's.

        Both use {words} and {i}, the RAM vector and the word's index.  Pages
        of this node's RAM that the TLB holds for the current translation
        context are found in one dict (local_reads, local_writes: page
        address -> first word of the page), whose key also keeps the
        address's misaligned low bits, so that a misaligned access misses.
        A miss takes the TLB's own path, where a hit can only be another
        node's RAM.  The address may carry a 33rd bit from the addition; the
        fast path drops it with the key's mask (its low 12 bits are right),
        the other path first.
        """
        self.emit(f"a = {address}")
        self.emit("try:")
        key = f"a & {0xFFFFF000 | (size - 1)}"
        self.emit(local.format(words="ram", i=f"local_{kind}s[{key}] | ((a >> 2) & 1023)"), 1)
        self.emit("except KeyError:")
        self.depth += 1
        self.emit("a &= 4294967295")
        self.emit("p = a >> 12")
        aligned = "" if size == 1 else f"a & {size - 1} or "
        self.slow_path_at(k, f"{aligned}{kind[0]}tag[p & 255] != p | dctx")
        self.emit(f"loc = {kind[0]}val[p & 255] + ((a >> 2) & 1023)")
        self.emit(other.format(words="rams[loc >> 20]", i="loc & 1048575"))
        self.emit("rem += 1")
        self.depth -= 1

    def load(self, k: int, d: int, op: int) -> None:
        size, value = _LOADS[op]
        rd, rs1, imm = (d >> 8) & 63, (d >> 14) & 31, d >> 24
        assignment = f"x{rd} = " + value.format(w="{words}[{i}]")
        self.access(k, _plus(self.read(rs1), imm), size, "read", assignment, assignment)
        self.dirty.add(rd)
        if op == isa.OP_LW:  # RAM words are signed
            self.emit(f"if x{rd} < 0:")
            self.emit(f"x{rd} += 4294967296", 1)

    def store(self, k: int, d: int, op: int) -> None:
        size = _STORES[op]
        rs1, rs2, imm = (d >> 14) & 31, (d >> 19) & 31, d >> 24
        value = self.read(rs2)
        address = _plus(self.read(rs1), imm)
        if size == 4:
            assignment = f"{{words}}[{{i}}] = {value} if {value} < 2147483648 else {value} - 4294967296"
            self.access(k, address, size, "write", assignment, assignment)
        else:
            where = "words, i = {words}, {i}"
            self.access(k, address, size, "write", where, where)
            mask = 0xFF if size == 1 else 0xFFFF
            self.emit(f"m = {mask} << ((a & 3) << 3)")
            self.emit(f"v = ((words[i] & ~m) | (({value} << ((a & 3) << 3)) & m)) & 4294967295")
            self.emit("words[i] = v if v < 2147483648 else v - 4294967296")
        self.emit("if reservations:")
        self.emit(f"mem.break_reservations(a & {0xFFFFFFFF if size == 4 else 0xFFFFFFFC}, me)", 1)

    def write_wrapped(self, reg: int, a: str, sign: str, b: str) -> None:
        """reg = a + b or a - b, modulo 2**32.

        Big integers are slow in CPython: a mask with 4294967295 costs a
        two-digit operation and an allocation every time, a test only when
        the result left the 32 bits.
        """
        if b == "0":
            self.write(reg, a)
            return
        if a == "0" and sign == "+":
            self.write(reg, b)
            return
        self.write(reg, f"{a} {sign} {b}")
        if sign == "+":
            self.emit(f"if x{reg} > 4294967295:")
            self.emit(f"x{reg} -= 4294967296", 1)
        else:
            self.emit(f"if x{reg} < 0:")
            self.emit(f"x{reg} += 4294967296", 1)

    def alu(self, d: int, op: int) -> None:
        rd, rs1, rs2, imm = (d >> 8) & 63, (d >> 14) & 31, (d >> 19) & 31, d >> 24
        if op in _DIVISION:
            self.write(rd, f"alu({op}, {self.read(rs1)}, {self.read(rs2)}, 0)")
        elif op == isa.OP_ADDI:
            if imm < SIGN:
                self.write_wrapped(rd, self.read(rs1), "+", str(imm))
            else:
                self.write_wrapped(rd, self.read(rs1), "-", str((1 << 32) - imm))
        elif op == isa.OP_ADD:
            self.write_wrapped(rd, self.read(rs1), "+", self.read(rs2))
        elif op == isa.OP_SUB:
            self.write_wrapped(rd, self.read(rs1), "-", self.read(rs2))
        else:
            template = _ALU[op]
            a = self.read(rs1) if "{a}" in template else ""
            b = self.read(rs2) if "{b}" in template else ""
            self.write(rd, template.format(a=a, b=b, i=imm))

    def branch(self, k: int, pc: int, d: int, op: int) -> None:
        """Instruction k: leave (or loop) when taken, go on along the block otherwise."""
        rs1, rs2 = (d >> 14) & 31, (d >> 19) & 31
        target = (pc + (d >> 24)) & M32
        self.emit(f"if {_BRANCH_TESTS[op].format(a=self.read(rs1), b=self.read(rs2))}:")
        if self.loop and target == self.start:
            self.again(k + 1)
        else:
            self.exit(str(target), k + 1, False, 1)

    def jump(self, k: int, pc: int, d: int, op: int) -> None:
        rd = (d >> 8) & 63
        if op == isa.OP_JAL:
            self.write(rd, str((pc + 4) & M32))
            target = (pc + (d >> 24)) & M32
            if k + 1 < len(self.pcs):
                return  # the block goes on at the target
            if self.loop and target == self.start:
                self.emit("if True:")
                self.again(k + 1)
            else:
                self.exit(str(target), k + 1, False)
            return
        self.emit(f"j = ({_plus(self.read((d >> 14) & 31), d >> 24)}) & 4294967294")
        self.slow_path_at(k, "j & 3")
        self.write(rd, str((pc + 4) & M32))
        self.exit("j", k + 1, False)


def _back_edges(pcs: list[int], decoded: list[int]) -> list[int]:
    """For each branch or jal back to the block's first instruction, the instructions a pass takes."""
    backs = []
    for k, (at, d) in enumerate(zip(pcs, decoded, strict=True)):
        op = d & 0xFF
        if (op in _BRANCH_TESTS or op == isa.OP_JAL) and ((at + (d >> 24)) & M32) == pcs[0]:
            backs.append(k + 1)
    return backs


def _generate(out: _Emitter, pcs: list[int], decoded: list[int]) -> None:
    for k, (at, d) in enumerate(zip(pcs, decoded, strict=True)):
        op = d & 0xFF
        if op in _LOADS:
            out.load(k, d, op)
        elif op in _STORES:
            out.store(k, d, op)
        elif op in _BRANCH_TESTS:
            out.branch(k, at, d, op)
        elif op == isa.OP_JAL or op == isa.OP_JALR:
            out.jump(k, at, d, op)
        elif op == isa.OP_LUI:
            out.write((d >> 8) & 63, str(d >> 24))
        elif op == isa.OP_AUIPC:
            out.write((d >> 8) & 63, str((at + (d >> 24)) & M32))
        elif op != isa.OP_NOP:
            out.alu(d, op)
    if not ends_block(decoded[-1]):
        out.exit(str((pcs[-1] + 4) & M32), len(decoded), False)


def block_source(pcs: list[int], decoded: list[int], penalty: int) -> BlockSource:
    """The function for the instructions decoded[k] at pcs[k].

    Each instruction is the one after its predecessor or, after a jal, the
    jal's target; all are accepted by can_translate and only the last ends
    the block (a jal that the block follows does not).  penalty is the
    cycles a remote reference adds.
    """
    probe = _Emitter(pcs, decoded, penalty, set())
    _generate(probe, pcs, decoded)
    out = _Emitter(pcs, decoded, penalty, probe.dirty)
    _generate(out, pcs, decoded)
    head = ["def block(dctx, room):", "    rem = 0"]
    if any((d & 0xFF) in _STORES for d in decoded):
        head.append("    reservations = mem.nreservations")
    preload = probe.reads | (probe.dirty if out.loop else set())
    head += [f"    x{reg} = r[{reg}]" for reg in sorted(preload)]
    if out.loop:
        head += [f"    room -= {out.worst}", "    c = 0" if out.back else "    n = refs = 0"]
        head.append("    while True:")
    return BlockSource("\n".join([*head, *out.lines, ""]), out.worst)
