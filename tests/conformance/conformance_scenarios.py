"""The conformance scenarios, as data: gdb commands run against QEMU's gdbstub and against the mux.

Every scenario starts on a fresh target halted at `_start` (0x80000000) of the guest
(guest/conformance.c and guest/conformance_asm.S).  `commands` are gdb commands for one
gdb session (gdb_driver.py connects first); `then` holds further sessions, each a new gdb
process on the same target after the previous one exited or was killed.  In a command,
TARGET is the target's address, and `at("marker")` names the guest line marked
`/* @marker */` in conformance.c, so scenarios survive edits to the guest.

`xfail` says why a scenario's transcripts differ: a known mux bug, or a deliberate
difference in behaviour (a heading of docs/debug-semantics.md, "Deliberate differences from
QEMU").  The test is then `xfail(strict=True)`: it fails the day the mux behaves like QEMU,
and the mark goes (and the doc's entry with it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

GUEST_C = Path(__file__).resolve().parent / "guest" / "conformance.c"


@cache
def _markers() -> dict[str, int]:
    lines = GUEST_C.read_text().splitlines()
    return {m.group(1): n for n, line in enumerate(lines, 1) if (m := re.search(r"/\* @([\w-]+) \*/", line))}


def at(marker: str) -> str:
    """The guest source line marked /* @marker */, as a gdb location."""
    return f"conformance.c:{_markers()[marker]}"


@dataclass(frozen=True)
class Scenario:
    name: str
    commands: tuple[str, ...]
    then: tuple[tuple[str, ...], ...] = ()
    guest: str = "conformance"
    xfail: str | None = None
    #: seconds a command may run before the driver sends gdb a SIGINT (a target that never stops)
    watchdog: float = 6.0

    @property
    def sessions(self) -> list[list[str]]:
        return [list(self.commands), *(list(s) for s in self.then)]


def scenario(name: str, *commands: str, **options: object) -> Scenario:
    return Scenario(name, commands, **options)  # type: ignore[arg-type]


INTERRUPT = "python interrupt_in(0.5)"       # Ctrl-C half a second into the next command
KILL_GDB = "python kill_gdb()"               # kill -9 of this gdb

#: The headings of docs/debug-semantics.md that scenarios name as deliberate differences.
DELIBERATE: set[str] = set()


def deliberate(heading: str) -> str:
    """The xfail reason of a scenario that shows a deliberate difference in behaviour."""
    DELIBERATE.add(heading)
    return f'deliberate difference: docs/debug-semantics.md, "{heading}"'


# Why a scenario's transcripts differ, for as long as they do.
STEP_XRET = deliberate("Stepping mret and sret")
STEP_IRQ = deliberate("Interrupts during a single step")


SCENARIOS = [
    # -- a halted start, single instructions -------------------------------------------------
    scenario("halted_start", "p $pc", "x/2i $pc", "p/x $sp", "info program", "stepi", "p $pc", "p/x $sp"),
    scenario("stepi_from_entry", *["stepi", "x/i $pc"] * 6),
    scenario("stepi_count", "stepi 10", "p $pc", "nexti 3", "p $pc", "info line *$pc"),
    scenario("nexti_over_call", "break *test_main+28", "continue", "x/i $pc", "nexti", "x/i $pc",
             "nexti", "p $pc", "p/x $a0"),
    scenario("stepi_into_call", "break *test_main+28", "continue", "stepi", "stepi", "bt", "p $pc"),

    # -- source-level stepping -----------------------------------------------------------------
    scenario("step_into_function", "break test_main", "continue", "next", "step", "bt", "step", "step",
             "step", "info locals"),
    scenario("next_over_functions", "break test_main", "continue", "next", "next", "next", "next",
             "info locals"),
    scenario("next_count", "break test_main", "continue", "next 4", "p a", "p b", "p c"),
    scenario("step_from_breakpoint", "break add", "continue", "step", "step", "step", "step"),
    scenario("next_onto_breakpoint", "break test_main", "break square", "continue", "next", "next",
             "next", "bt 1", "next"),
    scenario("step_into_recursion", "break fact", "continue", "step", "step", "step", "bt", "info frame"),

    # -- breakpoints, and stepping from and onto them ----------------------------------------------
    scenario("stepi_after_breakpoint", "break square", "continue", "p $pc", "stepi", "p $pc", "stepi",
             "p $pc", "x/i $pc"),
    scenario("stepi_onto_breakpoint", "break square", "break *square+4", "break *square+8",
             "continue", "p $pc", "stepi", "p $pc", "stepi", "p $pc"),
    scenario("nexti_onto_breakpoint", "break *test_main+28", "break add", "continue", "nexti", "p $pc",
             "bt 1"),
    scenario("continue_from_breakpoint", "break tick", "continue", "p i", "continue", "p i",
             "continue", "p i", "info breakpoints"),
    scenario("two_breakpoints_one_instruction", "break tick", "break tick", "continue", "p i",
             "delete 1", "continue", "p i", "info breakpoints"),
    scenario("breakpoints_on_both_arms", f"break {at('then')}", f"break {at('else')}", "continue",
             "p x", "continue", "p x", "p counter"),
    scenario("tbreak", "tbreak square", "break sum_to", "continue", "info breakpoints", "continue",
             "bt 1", "info breakpoints"),
    scenario("breakpoint_condition", "break tick if i == 7", "continue", "p i", "p counter",
             "info breakpoints"),
    scenario("condition_command", "break tick", "condition 1 i == 12", "continue", "p i",
             "condition 1", "continue", "p i"),
    scenario("continue_with_ignore_count", "break tick", "continue", "p i", "continue 10", "p i",
             "info breakpoints"),
    scenario("ignore_command", "break tick", "ignore 1 5", "continue", "p i", "info breakpoints"),
    scenario("disable_enable", "break tick", "break scoped", "continue", "disable 1", "continue",
             "bt 1", "enable 1", "info breakpoints"),
    scenario("breakpoint_on_asm_label", "break *handler_body", "continue", "p/x $mcause", "p $pc",
             "bt 1"),
    scenario("stepi_self_loop_with_breakpoint", "break spin", "continue", "stepi", "p $pc", "stepi",
             "continue", "p $pc"),
    scenario("set_pc_onto_breakpoint", "break *square", "break add", "continue", "set var $pc = square",
             "continue", "p $pc", "bt 1"),

    # -- finish, until, advance, jump, return ------------------------------------------------------
    scenario("finish_from_breakpoint", "break square", "continue", "finish", "p $", "p $pc"),
    scenario("finish_after_stepping", "break square", "continue", "next", "finish", "next", "p b"),
    scenario("finish_out_of_recursion", "break fact if n == 2", "continue", "bt", "finish", "finish",
             "bt"),
    scenario("up_down_frames", "break fact if n == 1", "continue", "bt", "up", "p n", "up 2", "p n",
             "down", "p n", "frame 0", "p n"),
    scenario("until_loop", "break sum_to", "continue", "next", "next", "next", "until", "until",
             "p s", "p i"),
    scenario("until_location", "break sum_to", "continue", f"until {at('sum-return')}", "p s",
             "p i"),
    scenario("advance", "break test_main", "continue", "advance fact", "bt", f"advance {at('main-result')}",
             "p d"),
    scenario("jump_over_lines", "break test_main", "break fact", "continue", "next",
             f"jump {at('main-fact')}", "p a", "bt 1"),
    scenario("jump_to_pc_with_breakpoint", "break square", "continue", "p $pc", "jump *$pc", "p $pc",
             "p x"),
    scenario("jump_to_other_breakpoint", "break square", "break add", "continue", "jump add", "p $pc",
             "bt 1"),
    scenario("return_early", "break square", "continue", "return 99", "next", "p b", "p $pc"),

    # -- inferior calls ----------------------------------------------------------------------------
    scenario("print_inferior_calls", "break test_main", "continue", "print f(7)", "print add(40, 2)",
             "call square(9)", "print fact(6)", "p $pc", "next", "p a"),
    scenario("call_from_breakpoint", "break square", "continue", "print f(x)", "call sum_to(4)",
             "finish"),
    scenario("call_hits_breakpoint", "break test_main", "break f", "continue", "print f(1)", "bt",
             "p x"),

    # -- watchpoints ---------------------------------------------------------------------------------
    scenario("watch_global", "watch counter", "continue", "continue", "continue", "p counter"),
    scenario("watch_local_leaves_scope", "break scoped", "continue", "watch local", "continue",
             "continue", "continue", "continue", "continue", "bt 1", "p $pc"),
    scenario("rwatch", "rwatch watched", "continue", "p $pc", "continue", "p $pc"),
    scenario("awatch", "awatch watched", "continue", "continue", "continue", "continue", watchdog=3.0),
    scenario("watch_with_condition", "watch counter if counter > 50", "continue", "p counter",
             "bt 1"),
    scenario("stepi_onto_watched_store", "break writer", "continue", "watch watched", "stepi",
             "stepi", "stepi", "stepi", "p watched"),

    # -- display, memory, registers -----------------------------------------------------------------
    scenario("display", "break tick", "display i", "display/x counter", "continue", "continue",
             "undisplay 1", "continue", "info display"),
    scenario("examine_memory", "break test_main", "continue", "x/8xw values", "x/4dw &values[2]",
             "x/8xb &global_val", "x/3i test_main", "x/2xh values", "output values", "p values",
             "p *values@3", "p/x values[1]"),
    scenario("set_var_memory", "break square", "continue", "set var x = 11", "finish",
             "set var values[3] = 99", "p values", "p global_val = 77", "x/wx &global_val",
             "set {int}&values[0] = -5", "p values[0]"),
    scenario("registers", "break add", "continue", "p $ra", "p/x $sp", "p $a0", "p $a1",
             "info registers ra sp a0", "p/x $mstatus", "p/x $mtvec", "p $priv"),
    scenario("set_registers", "break add", "continue", "set var $t0 = 0x1234", "p/x $t0",
             "set var $a0 = 77", "p $a0", "stepi", "p/x $t0", "set var $pc = add", "p $pc", "stepi",
             "p $pc"),
    scenario("write_csr", "break test_main", "continue", "p/x $mscratch", "set var $mscratch = 0x5a5a",
             "p/x $mscratch", "stepi", "p/x $mscratch"),
    # Steps the mux answers ahead of lld, then a register write, a CSR read, a memory write and
    # a read of the code, each of which must see them made (docs/debug-semantics.md).
    scenario("writes_after_answered_steps", "break square", "continue", "stepi", "stepi",
             "set var $a0 = 9", "p $a0", "p/x $mstatus", "stepi", "p $a0", "p $pc", "set var x = 3",
             "p x", "stepi", "x/2i $pc", "info registers a0 a1 sp", "finish"),

    # -- traps, privilege, interrupts -----------------------------------------------------------------
    scenario("stepi_ecall", "break do_ecall", "continue", "stepi", "x/i $pc", "stepi", "p $pc",
             "p trap_total", "p/x last_cause"),
    scenario("ecall_into_handler", "break do_ecall", "continue", "break *handler_body", "continue",
             "p/x $mcause", "p/x $mepc", "stepi", "stepi", "p $pc", "advance *ecall_insn+4", "p trap_total"),
    scenario("stepi_ecall_onto_handler_breakpoint", "break *ecall_insn", "continue", "break *handler_body",
             "stepi", "p $pc", "p/x $mcause"),
    scenario("stepi_illegal_instruction", "break *illegal_insn", "continue", "x/i $pc", "stepi",
             "p $pc", "p trap_total", "p/x last_cause"),
    scenario("illegal_instruction_into_handler", "break *illegal_insn", "continue",
             "break *handler_body", "continue", "p/x $mcause", "p/x $mepc", "delete",
             "break *handler_return", "continue", "advance *illegal_insn+4", "p trap_total"),
    scenario("stepi_mret", "break *mret_insn", "continue", "x/i $pc", "stepi", "p $pc", "p $a0",
             xfail=STEP_XRET),
    scenario("stepi_sret", "break *sret_insn", "continue", "x/i $pc", "stepi", "p $pc", "p $a0",
             "p $priv", xfail=STEP_XRET),
    # gdb 13 does not know where mret goes: it steps it with a breakpoint after it, and a handler's
    # mret returns elsewhere, so the guest runs free (to `spin`, where the watchdog's Ctrl-C stops it).
    scenario("stepi_handler_mret_runs_free", "break *handler_return", "continue", "p/x $mepc", "stepi",
             "p $pc", watchdog=2.0, xfail=STEP_XRET),
    scenario("stepi_wfi", "break *wfi_insn", "continue", "x/i $pc", "stepi", "p $pc", "p trap_total"),
    scenario("timer_interrupt_mid_stepi", "break *timer_enable", "continue", "p trap_total", "stepi",
             "p $pc", "p trap_total", "p/x last_cause", xfail=STEP_IRQ),
    scenario("timer_interrupt_breakpoint_in_handler", "break *timer_enable", "continue",
             "break *handler_body", "continue", "p/x $mcause", "p/x $mepc", "bt 1"),

    # -- run control from outside ---------------------------------------------------------------------
    scenario("ctrl_c_while_running", "break spin", "continue", "delete", INTERRUPT, "continue",
             "p $pc", "stepi", "p $pc", "p result"),
    scenario("ctrl_c_then_breakpoint", "break spin", "continue", "delete", INTERRUPT, "continue",
             "break tick", "set var $pc = ticks", "continue", "p i"),
    scenario("info_threads", "info threads", "break add", "continue", "info threads", "thread",
             "thread 1"),
    scenario("detach_and_attach_again", "break spin", "continue", "detach", "target remote TARGET",
             "p $pc", "info breakpoints", "stepi", "p $pc", "p result"),
    # The pause lets QEMU's vCPU run after D: attaching at once may stop it before it moved.
    scenario("detach_from_breakpoint_runs_on", "break square", "continue", "detach",
             "shell sleep 0.5", "target remote TARGET", "p $pc", "p result"),
    scenario("second_gdb_after_kill", "break ticks", "continue", KILL_GDB,
             then=(("p $pc", "bt 1", "break tick", "continue", "p i", "detach"),)),
]

SCENARIO_NAMES = [s.name for s in SCENARIOS]
assert len(set(SCENARIO_NAMES)) == len(SCENARIO_NAMES), "scenario names must be unique"
