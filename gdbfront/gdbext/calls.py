"""`psyche step-call`, `psyche finish-call`: follow a protected call into its operation and back.

gdb's own `step` cannot cross a protected call and `finish` cannot come back out of one
(docs/user-level.md, "Debugging a program"): the call is a `jalr` whose fetch faults, the kernel
hands it to a VP of the callee's domain (another kernel thread, maybe on another node) and blocks
the caller's thread; the operation returns to PSY_RETURN_VA, which never executes.  These commands
do what a person would do by hand, from what the kernel keeps:

* `step-call` finds the protected call the current line makes (the next `jal`/`jalr` whose target
  is an operation of a realm whose distinguished domain is not this one and which this domain
  cannot execute), running there through the functions the line calls; puts a breakpoint at the
  operation that stops only when the VP there serves this VP's call; and continues.  gdb stops in
  the operation, on the callee VP's thread.
* `finish-call` finds the call this VP serves (its `serving`, in the kernel's table of calls
  `kg.vm->pcalls`), puts a breakpoint at the caller's return address that stops only on the
  caller's VP, and continues; gdb stops in the caller after the call, and the command prints the
  operation's results (a0, a1).  If `step-call` entered the call from an outer function, it goes
  on (gdb's `finish`, then `next`) to the line after the one `step-call` was given on.

Every breakpoint they plant is gdb's internal kind (not in `info breakpoints`), and is deleted
whatever happens: an error, a stop elsewhere, ctrl-C.  It runs inside gdb's own Python: gdb and
the standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gdb

from .kernel import Kernel, PsycheError, int_of, member_of
from .vm import domain_rows, realm_rows, the_vm

PSY_RETURN_VA = 0x7FFFE000   # where an operation returns to (uapi/psyche.h)
USER_END = 0x7FC00000        # user space is below this
RET = 0x00008067             # jalr x0, 0(ra)
RA = 1
#: How many moves (single steps, runs to the next transfer) the search for a call may make.
MAX_MOVES = 400
_MACHINE_THREAD = re.compile(r"node (\d+)$")


class CallError(PsycheError):
    pass


# -- instructions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """A jal or jalr: `call` (a link register written, or a jump through a register), or `ret`."""

    kind: str                 # "call", "jump" (jal x0: a branch within a function), "ret"
    rd: int
    target: int | None        # None: a jalr, whose target needs the registers


def decode(insn: int, pc: int) -> Transfer | None:
    """A control transfer that may leave the function: jal, jalr (RV32I, no compressed code)."""
    opcode, rd = insn & 0x7F, (insn >> 7) & 31
    if opcode == 0x6F:
        imm = ((insn >> 31) << 20) | (((insn >> 12) & 0xFF) << 12) | (((insn >> 20) & 1) << 11) \
            | (((insn >> 21) & 0x3FF) << 1)
        if imm & (1 << 20):
            imm -= 1 << 21
        return Transfer("call" if rd else "jump", rd, (pc + imm) & 0xFFFFFFFF)
    if opcode == 0x67 and (insn >> 12) & 7 == 0:
        return Transfer("ret" if insn == RET else "call", rd, None)
    return None


def jalr_target(insn: int, frame: gdb.Frame) -> int:
    rs1 = (insn >> 15) & 31
    imm = insn >> 20
    if imm & 0x800:
        imm -= 0x1000
    base = 0 if rs1 == 0 else int(frame.read_register(f"x{rs1}")) & 0xFFFFFFFF
    return (base + imm) & 0xFFFFFFFE


def read_words(start: int, count: int) -> list[int]:
    raw = bytes(gdb.selected_inferior().read_memory(start, 4 * count))
    return [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]


# -- the kernel's view -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Me:
    """The VP running on the node gdb has selected: the one whose code is at the stop."""

    vp: int                   # struct vp * (official address)
    vp_id: int
    domain: int
    node: int


def running_vp(kernel: Kernel, command: str) -> Me:
    current = member_of(kernel.this_node, "current")
    if int(current) == 0:
        raise CallError(f"psyche {command}: no thread runs on this node")
    vp = member_of(current.dereference(), "vp")
    if int(vp) == 0:
        name = current.dereference()["name"].string()
        raise CallError(f"psyche {command}: the running thread ({name}) is a kernel thread, not a VP: "
                        "stop in user code first")
    v = vp.dereference()
    return Me(int(vp), int_of(v, "id"), int_of(v, "dom_id"), int_of(v, "node"))


def check_user_mode(command: str) -> None:
    """The selected thread must be the one running, stopped in user code."""
    try:
        priv = int(gdb.parse_and_eval("$priv"))
    except (gdb.error, ValueError):
        raise CallError(f"psyche {command}: the selected thread is not the one running on the node (or "
                        "the stub shows no $priv): select it (`thread`) and stop in user code") from None
    if priv != 0:
        raise CallError(f"psyche {command}: stopped in the kernel, not in user code ($priv is {priv}): "
                        "break in the program (after `psyche symbols`) first")
    if gdb.selected_frame() != gdb.newest_frame():
        raise CallError(f"psyche {command}: select the innermost frame first (`frame 0`)")


def protected_ops(kernel: Kernel, domain: int) -> dict[int, dict[str, int]]:
    """Every operation `domain` can reach only by a protected call: of a realm whose
    distinguished domain is another and which `domain` has not open for execution."""
    executable = set()
    for d in domain_rows(kernel):
        if d["id"] == domain:
            executable = {o["base"] for o in d["open"] if o["rights"][2] == "x"}
    ops = {}
    for r in realm_rows(kernel)["realms"]:
        if r["home"] is None or r["home"] == domain or r["base"] in executable:
            continue
        for op in r["ops"] or []:
            ops[op] = {"realm": r["base"], "home": r["home"]}
    return ops


def predict_callee(kernel: Kernel, me: Me, entry: int, home: int) -> tuple[int, int] | None:
    """The VP (id, node) the kernel will hand a call of `entry` to, as pcall.c chooses: the
    caller domain's stored linkage if it is current, else a VP of `home` other than the caller,
    one on the caller's node if there is one."""
    vm = the_vm(kernel)
    gen = int_of(vm, "link_gen")
    domain = member_of(vm, "domains")[me.domain]
    if int(domain) != 0:
        links = member_of(domain.dereference(), "links")
        low, high = links.type.strip_typedefs().range()
        for i in range(low, high + 1):
            link = links[i]
            if int(link["entry"]) == entry and int(link["gen"]) == gen and int(link["vp"]) != 0:
                v = link["vp"].dereference()
                return int(v["id"]), int(v["node"])
    vps = member_of(vm, "vps")
    low, high = vps.type.strip_typedefs().range()
    found = None
    for i in range(low, high + 1):
        pointer = vps[i]
        if int(pointer) == 0 or int(pointer) == me.vp:
            continue
        v = pointer.dereference()
        if int(v["dom_id"]) != home or int(v["dying"]) or int(v["desc"]) == 0:
            continue
        if int(v["node"]) == me.node:
            return int(v["id"]), me.node
        found = found or (int(v["id"]), int(v["node"]))
    return found


def serving_call(kernel: Kernel, me: Me) -> gdb.Value | None:
    vp = gdb.Value(me.vp).cast(gdb.lookup_type("struct vp").pointer()).dereference()
    serving = member_of(vp, "serving")
    return None if int(serving) == 0 else serving.dereference()


def where(pc: int) -> str:
    """`function (file:line)` for a user address, as far as gdb's symbols say."""
    block = _function_block(pc)
    name = block.function.name if block is not None and block.function is not None else None
    sal = gdb.find_pc_line(pc)
    place = f"{sal.symtab.filename.rsplit('/', 1)[-1]}:{sal.line}" if sal.symtab and sal.line else ""
    if name is None:
        return f"{pc:#x} (no symbols: psyche symbols)"
    return f"{name} ({place})" if place else name


def _function_block(pc: int) -> gdb.Block | None:
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        return None
    while block is not None and block.function is None:
        block = block.superblock
    return block


# -- where gdb is attached ---------------------------------------------------------------------------


def machine_port() -> bool:
    """True on the mux's whole-machine port, where node k is thread k + 1 named `node k`."""
    threads = gdb.selected_inferior().threads()
    return bool(threads) and all(_MACHINE_THREAD.match(t.name or "") for t in threads)


def ports(node: int) -> tuple[int | None, int | None]:
    """(node's own port, the machine port) from the address gdb is connected to; None if unknown."""
    connection = getattr(gdb.selected_inferior(), "connection", None)
    details = getattr(connection, "details", None) or ""
    match = re.search(r":(\d+)$", details)
    if match is None:
        return None, None
    port = int(match.group(1))
    base = port + 1 if machine_port() else port - Kernel().attached()
    return base + node, base - 1


def elsewhere(what: str, node: int, here: int, address: int) -> str:
    own, machine = ports(node)
    at = f"port {own}" if own is not None else f"base port + {node}"
    whole = f"port {machine}" if machine is not None else "base port - 1"
    return (f"{what} on node {node}, and this gdb is attached to node {here}, which is all it can stop: "
            f"attach a gdb to node {node} ({at}: `psyche gdb --node {node}`) and `break *{address:#x}` "
            f"there, or use the whole-machine port ({whole}), where node {node} is thread {node + 1}")


# -- breakpoints that stop only for one VP, and never stay behind ----------------------------------


class _Catch(gdb.Breakpoint):
    """An internal breakpoint that stops only when `wanted()` says so (else gdb runs on)."""

    def __init__(self, address: int, wanted: Callable[[], bool], hardware: bool) -> None:
        # hardware: gdb reads nothing to plant it (an operation's code, which the thread selected
        # now, the caller's, may have no right to read).
        kind = gdb.BP_HARDWARE_BREAKPOINT if hardware else gdb.BP_BREAKPOINT
        super().__init__(f"*{address:#x}", type=kind, internal=True)
        self.silent = True
        self.wanted = wanted
        self.hit = False

    def stop(self) -> bool:
        try:
            ok = self.wanted()
        except gdb.error:
            ok = True                # cannot tell: stop rather than miss it
        self.hit = self.hit or ok
        return ok


@contextmanager
def catches(addresses: list[int], wanted: Callable[[], bool],
            hardware: bool = False) -> Iterator[list[_Catch]]:
    made: list[_Catch] = []
    try:
        for address in addresses:
            made.append(_Catch(address, wanted, hardware))
        yield made
    finally:
        for catch in made:
            if catch.is_valid():
                catch.delete()


def on_vp(vp: int) -> Callable[[], bool]:
    """True while VP `vp` (a struct vp *) runs on the node that stopped."""
    def wanted() -> bool:
        current = gdb.parse_and_eval("this_node.current")
        return int(current) != 0 and int(current.dereference()["vp"]) == vp
    return wanted


def kernel_functions(*names: str) -> list[int]:
    """The kernel's own functions' addresses (not a user program's of the same name)."""
    kernel = gdb.current_progspace().filename
    objfile = next((o for o in gdb.objfiles() if o.filename == kernel), None)
    addresses = []
    for name in names:
        symbol = objfile.lookup_global_symbol(name) if objfile is not None else None
        if symbol is None:
            raise CallError(f"psyche: no function `{name}` in the kernel's symbols ({kernel})")
        addresses.append(int(symbol.value().address))
    return addresses


def _calls() -> list[gdb.Value]:
    pcalls = gdb.parse_and_eval("kg.vm->pcalls")
    low, high = pcalls.type.strip_typedefs().range()
    return [pcalls[i].dereference() for i in range(low, high + 1) if int(pcalls[i]) != 0]


def outstanding_call(me: Me, entry: int) -> gdb.Value | None:
    """The call VP `me` made to `entry` that has not been delivered to its callee yet (or, failing
    that, has not returned)."""
    mine = [c for c in _calls() if int(c["caller_vp"]) == me.vp and int(c["entry"]) == entry
            and not int(c["done"])]
    waiting = [c for c in mine if not int(c["delivered"])]
    return (waiting or mine or [None])[0]


def call_made(me: Me, entry: int) -> Callable[[], bool]:
    """True once VP `me`, running, has made its call to `entry` (sem_P: it waits for the return;
    vp_deliver: an asynchronous caller gets its call-out)."""
    running = on_vp(me.vp)

    def wanted() -> bool:
        return running() and outstanding_call(me, entry) is not None
    return wanted


def resume(command: str, quiet: bool) -> None:
    """Run a resuming gdb command; it returns once the target stopped (gdb.execute is synchronous)."""
    if quiet:
        gdb.execute(command, to_string=True)
    else:
        gdb.execute(command)


# -- step-call ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where `step-call` was given: so that `finish-call` can come back to the line after it."""

    function: str
    sp: int
    line: int


#: (call id, caller VP id, operation) -> where step-call began
ORIGINS: dict[tuple[int, int, int], Origin] = {}


@dataclass(frozen=True)
class Found:
    pc: int
    entry: int
    ret_pc: int


def _calls_on_line(frame: gdb.Frame, line: int) -> bool:
    block = _function_block(frame.pc())
    if block is None:
        return False
    words = read_words(block.start, (block.end - block.start) // 4)
    for i, insn in enumerate(words):
        address = block.start + 4 * i
        t = decode(insn, address)
        if t is not None and t.kind == "call" and gdb.find_pc_line(address).line == line:
            return True
    return False


def find_call(me: Me, ops: dict[int, dict[str, int]], command: str) -> Found:
    """Run to the protected call the current line makes: single steps on the line itself, runs to
    the next jal/jalr/ret in the functions it calls.  The target stays in this VP's thread."""
    start = gdb.newest_frame()
    sal = start.find_sal()
    line = sal.line if sal.symtab is not None else 0
    here = f"line {sal.symtab.filename.rsplit('/', 1)[-1]}:{line}" if line else f"{start.pc():#x}"
    insn = read_words(start.pc(), 1)[0]
    if line and not _calls_on_line(start, line):
        raise CallError(f"psyche {command}: no call on {here} (a protected call is a jal/jalr to an "
                        "operation of another domain's realm): `next` to the line that makes it")
    for _ in range(MAX_MOVES):
        frame = gdb.newest_frame()
        pc = frame.pc()
        insn = read_words(pc, 1)[0]
        t = decode(insn, pc)
        if t is not None and t.kind != "ret":
            target = t.target if t.target is not None else jalr_target(insn, frame)
            if target in ops:
                ret_pc = pc + 4 if t.rd == RA else int(frame.read_register("ra")) & 0xFFFFFFFF
                return Found(pc, target, ret_pc)
        if frame == start:
            if not line or gdb.find_pc_line(pc).line not in (line, 0):
                raise CallError(f"psyche {command}: {here} made no protected call (now at "
                                f"{where(pc)}); the program has moved on to there")
            resume("stepi", quiet=True)
        elif not start.is_valid():
            raise CallError(f"psyche {command}: the function of {here} returned without making a "
                            f"protected call (now at {where(pc)})")
        elif t is not None or _function_block(pc) is None:
            resume("stepi", quiet=True)
        else:
            _run_to_transfer(me, pc, command)
        if gdb.newest_frame().pc() >= USER_END or int(gdb.parse_and_eval("$priv")) != 0:
            raise CallError(f"psyche {command}: left user code while looking for the call (now at "
                            f"{where(gdb.newest_frame().pc())})")
    raise CallError(f"psyche {command}: no protected call within {MAX_MOVES} moves from {here}; "
                    f"stopped at {where(gdb.newest_frame().pc())}")


def _run_to_transfer(me: Me, pc: int, command: str) -> None:
    """Continue, on this VP, to the next jal (call), jalr or ret of the function pc is in."""
    block = _function_block(pc)
    assert block is not None
    words = read_words(block.start, (block.end - block.start) // 4)
    stops = []
    for i, insn in enumerate(words):
        address = block.start + 4 * i
        t = decode(insn, address)
        if address != pc and t is not None and t.kind != "jump":
            stops.append(address)
    if not stops:
        resume("stepi", quiet=True)
        return
    with catches(stops, on_vp(me.vp)) as made:
        resume("continue", quiet=True)
        if not any(c.hit for c in made):
            raise CallError(f"psyche {command}: stopped at {where(int(gdb.parse_and_eval('$pc')))} "
                            "before reaching the call (another breakpoint, or interrupted)")


class StepCallCommand(gdb.Command):
    """Step into the protected call the current line makes, and stop in the operation it enters.

Usage: psyche step-call
Stopped in user code on (or at) a line that makes a protected call: runs to the call (into the
functions the line calls, if the call is in one of them), then stops at the operation's first
instruction, in the callee's domain, on the thread of the VP that serves the call.  The call's VP
must be on this gdb's node (or gdb on the whole-machine port).  psyche finish-call comes back."""

    def __init__(self) -> None:
        super().__init__("psyche step-call", gdb.COMMAND_RUNNING)

    def invoke(self, argument: str, from_tty: bool) -> None:
        if argument.strip():
            raise CallError(f"psyche step-call: takes no argument (got {argument.strip()!r})")
        command = "step-call"
        kernel = Kernel()
        check_user_mode(command)
        me = running_vp(kernel, command)
        ops = protected_ops(kernel, me.domain)
        if not ops:
            raise CallError("psyche step-call: no realm has operations this domain must call by protected "
                            "call (psyche realms: home, ops)")
        start = gdb.newest_frame()
        origin = None
        if start.function() is not None:
            origin = Origin(start.function().name, int(start.read_register("sp")) & 0xFFFFFFFF,
                            start.find_sal().line)
        found = find_call(me, ops, command)
        home = ops[found.entry]["home"]
        callee = predict_callee(kernel, me, found.entry, home)
        on_machine = machine_port()
        if callee is not None and callee[1] != me.node and not on_machine:
            raise CallError("psyche step-call: stopped at the call (" + where(found.pc) + "); " + elsewhere(
                f"its operation {found.entry:#x} runs in domain {home} on VP {callee[0]}", callee[1], me.node,
                found.entry))
        # First into the kernel, where the call is recorded: a breakpoint at the operation now would
        # stop the caller itself there (its pc is the operation's before the fetch faults), and gdb
        # cannot step it over, having no right to read the operation's code in the caller's domain.
        with catches(kernel_functions("sem_P", "vp_deliver"), call_made(me, found.entry)) as made:
            resume("continue", quiet=True)
            if not any(c.hit for c in made):
                raise CallError(f"psyche step-call: stopped at {where(int(gdb.parse_and_eval('$pc')))} "
                                f"before the call to {found.entry:#x} was made (another breakpoint, or "
                                "interrupted)")
        call = outstanding_call(me, found.entry)
        if call is None:
            raise CallError(f"psyche step-call: the call to {found.entry:#x} is not in the kernel's table")
        call_id = int_of(call, "id")
        callee_vp = member_of(call, "callee_vp")
        if int(callee_vp) != 0:
            v = callee_vp.dereference()
            callee = (int_of(v, "id"), int_of(v, "node"))
        if callee is not None and callee[1] != me.node and not on_machine:
            raise CallError(f"psyche step-call: call {call_id} is made, its caller (VP {me.vp_id}) waits in "
                            "the kernel; " + elsewhere(f"its operation {found.entry:#x} runs in domain "
                                                       f"{home} on VP {callee[0]}", callee[1], me.node,
                                                       found.entry))

        def serves_it() -> bool:
            current = gdb.parse_and_eval("this_node.current")
            if int(current) == 0 or int(current.dereference()["vp"]) == 0:
                return False
            serving = current.dereference()["vp"].dereference()["serving"]
            return int(serving) != 0 and int(serving.dereference()["id"]) == call_id and \
                int(serving.dereference()["caller_vp"]) == me.vp

        with catches([found.entry], serves_it, hardware=True) as into, \
                catches([found.ret_pc], on_vp(me.vp)) as back:
            resume("continue", quiet=True)
            if back[0].hit and not into[0].hit:
                raise CallError(f"psyche step-call: call {call_id} to {found.entry:#x} returned without its "
                                f"operation stopping on this node; back at {where(found.ret_pc)}, a0 = "
                                f"{int(gdb.parse_and_eval('$a0')) & 0xFFFFFFFF:#x}")
            if not into[0].hit:
                raise CallError(f"psyche step-call: stopped at {where(int(gdb.parse_and_eval('$pc')))} "
                                f"before call {call_id}'s operation (another breakpoint, or interrupted)")
        kernel = Kernel()
        callee_me = running_vp(kernel, command)
        if origin is not None:
            ORIGINS[(call_id, me.vp_id, found.entry)] = origin
        thread = gdb.selected_thread()
        gdb.write(f"psyche step-call: call {call_id} from domain {me.domain} (VP {me.vp_id}) into "
                  f"{where(found.entry)} in domain {callee_me.domain}, VP {callee_me.vp_id} on node "
                  f"{callee_me.node}, thread {thread.num} ({thread.name}); `psyche finish-call` returns\n")
        gdb.execute("frame 0")


# -- finish-call -----------------------------------------------------------------------------------------


class FinishCallCommand(gdb.Command):
    """Run until the protected call this VP serves returns, and stop in its caller.

Usage: psyche finish-call [-return]
Stopped in an operation that a protected call entered (or in a function it calls): finds the call
in the kernel's table (the one this VP serves), stops in the caller when it resumes after the call,
on the caller VP's thread, and prints the operation's results (a0, a1).  If `psyche step-call`
entered the call from a line of an outer function, goes on to the line after that one (`-return`:
stop right after the call instead)."""

    def __init__(self) -> None:
        super().__init__("psyche finish-call", gdb.COMMAND_RUNNING)

    def invoke(self, argument: str, from_tty: bool) -> None:
        words = gdb.string_to_argv(argument)
        if any(w != "-return" for w in words):
            raise CallError(f"psyche finish-call: unknown argument {words[0]!r}; "
                            "psyche finish-call [-return]")
        command = "finish-call"
        kernel = Kernel()
        check_user_mode(command)
        me = running_vp(kernel, command)
        call = serving_call(kernel, me)
        if call is None:
            raise CallError(f"psyche finish-call: VP {me.vp_id} (domain {me.domain}) serves no protected "
                            "call: not inside an operation (psyche calls lists the calls in progress)")
        call_id, entry, ret_pc = int_of(call, "id"), int_of(call, "entry"), int_of(call, "ret_pc")
        caller = member_of(call, "caller_vp")
        if int(caller) == 0:
            raise CallError(f"psyche finish-call: call {call_id}'s caller VP is gone; its result will be "
                            "dropped, there is nothing to return to")
        c = caller.dereference()
        caller_id, caller_node = int_of(c, "id"), int_of(c, "node")
        caller_domain = int_of(c, "dom_id")
        if caller_node != me.node and not machine_port():
            raise CallError("psyche finish-call: " + elsewhere(
                f"call {call_id}'s caller, VP {caller_id} of domain {caller_domain}, runs", caller_node,
                me.node, ret_pc))
        with catches([ret_pc], on_vp(int(caller))) as back:
            resume("continue", quiet=True)
            if not back[0].hit:
                raise CallError(f"psyche finish-call: stopped at {where(int(gdb.parse_and_eval('$pc')))} "
                                f"before call {call_id} returned (another breakpoint, or interrupted)")
        results = [int(gdb.parse_and_eval(f"$a{i}")) & 0xFFFFFFFF for i in (0, 1)]
        thread = gdb.selected_thread()
        gdb.write(f"psyche finish-call: call {call_id} to {where(entry)} returned to domain {caller_domain}, "
                  f"VP {caller_id}, thread {thread.num} ({thread.name}), at {where(ret_pc)}: "
                  f"a0 = {results[0]:#x} ({_signed(results[0])}), a1 = {results[1]:#x}\n")
        gdb.set_convenience_variable("psyche_call_result", results[0])
        origin = ORIGINS.pop((call_id, caller_id, entry), None)
        if origin is not None and "-return" not in words:
            self._back_to(origin)
        gdb.execute("frame 0")

    @staticmethod
    def _back_to(origin: Origin) -> None:
        """From the return point up to the frame step-call began in, then to the line after."""
        frame = gdb.newest_frame()
        inner = None
        while frame is not None:
            if frame.function() is not None and frame.function().name == origin.function and \
                    int(frame.read_register("sp")) & 0xFFFFFFFF == origin.sp:
                break
            inner, frame = frame, frame.older()
        if frame is None:
            return                          # not in a caller of here: stay at the return point
        if inner is not None:
            inner.select()
            resume("finish", quiet=True)
        if gdb.newest_frame().find_sal().line == origin.line:
            resume("next", quiet=True)


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


COMMANDS = (StepCallCommand, FinishCallCommand)
