"""Time while a node is stopped (issue 12, bug 5; docs/debug-semantics.md).

By default a stopped node's clock goes on with the machine: a stepped node catches up with
machine time before each step, and the runner lets machine time pass with wall time while the
machine idles with a node stopped, so a loop that waits on `time` ends under gdb's `next`.
MachineConfig(stoptime=True) keeps the old frozen clock, like dcsr.stoptime.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gdb_util import gdb, needs_gdb, start_up

from psyche import guestbuild
from psyche.cli import main, make_parser
from psyche.kernel.harness import KernelRun, member_offset
from psyche.machine import snapshot
from psyche.machine.elf import ElfImage, load_elf
from psyche.machine.hostline import BufferLine
from psyche.machine.machine import TIMEBASE_HZ, Machine, MachineConfig, NodeState
from psyche.machine.runner import Runner

REPO = Path(__file__).resolve().parent.parent
TICKWAIT = REPO / "tests" / "guest" / "debug" / "tickwait.c"
TICK_CYCLES = TIMEBASE_HZ // 100

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tickwait() -> ElfImage:
    """The one-tick wait guest, at -O0 so its wait loop is a single line of single instructions."""
    out = guestbuild.build_program([TICKWAIT], REPO / "build" / "guest" / "debug-tickwait.elf", opt="-O0")
    return load_elf(out)


def _machine(image: ElfImage, *, stoptime: bool = False) -> Machine:
    machine = Machine(MachineConfig(nodes=1, stoptime=stoptime))
    machine.load(image)
    return machine


def _stop_in_wait_loop(machine: Machine, image: ElfImage) -> tuple[int, int]:
    """Run until node 0 is inside wait_one_tick's loop and stop it there; returns the loop's pc range."""
    start = image.symbol("wait_one_tick")
    assert start is not None
    end = start + image.symbol_sizes["wait_one_tick"]
    machine.run(3 * TICK_CYCLES)
    machine.stop_node(0)
    node = machine.king
    assert node.state is NodeState.STOPPED
    while not start <= node.cpu.pc < end:
        machine.step_node(0, take_interrupts=False)
    return start, end


# -- the machine ------------------------------------------------------------------------------

def test_a_stepped_node_catches_up_with_machine_time(tickwait: ElfImage) -> None:
    machine = _machine(tickwait)
    _stop_in_wait_loop(machine, tickwait)
    cpu = machine.king.cpu
    assert machine.advance_time(5 * TICK_CYCLES) == 5 * TICK_CYCLES
    assert cpu.cycles < machine.time
    machine.step_node(0, take_interrupts=False)
    assert cpu.cycles == machine.time + 1      # caught up, then one instruction


def test_with_stoptime_a_stepped_node_keeps_its_clock(tickwait: ElfImage) -> None:
    machine = _machine(tickwait, stoptime=True)
    _stop_in_wait_loop(machine, tickwait)
    cpu = machine.king.cpu
    before = cpu.cycles
    machine.advance_time(5 * TICK_CYCLES)
    machine.step_node(0, take_interrupts=False)
    assert cpu.cycles == before + 1


def test_stepping_a_time_wait_ends_as_machine_time_goes_on(tickwait: ElfImage) -> None:
    """The loop ends after about a tick of machine time, not after a tick's worth of steps."""
    machine = _machine(tickwait)
    start, end = _stop_in_wait_loop(machine, tickwait)
    cpu = machine.king.cpu
    steps = 0
    while start <= cpu.pc < end:
        machine.step_node(0, take_interrupts=False)
        machine.advance_time(machine.config.quantum)  # what wall time does in the runner
        steps += 1
        assert steps < 10_000, "the wait did not end: the stopped node's clock stands still"
    waited = int.from_bytes(machine.read_phys(tickwait.symbol("waited") or 0, 4), "little")
    assert waited >= TICK_CYCLES


def test_advance_time_stays_on_the_grid_and_before_the_next_wakeup(tickwait: ElfImage) -> None:
    machine = _machine(tickwait)
    quantum = machine.config.quantum
    assert machine.advance_time(1000 * quantum) == 0       # a runnable node: rounds move time
    _stop_in_wait_loop(machine, tickwait)
    t = machine.time
    assert machine.advance_time(quantum - 1) == 0           # less than a quantum: nothing
    assert machine.advance_time(5 * quantum + 7) == 5 * quantum
    assert machine.time == t + 5 * quantum and machine.time % quantum == 0


def test_the_runner_lets_time_pass_while_a_node_is_stopped(tickwait: ElfImage) -> None:
    for stoptime in (False, True):
        machine = _machine(tickwait, stoptime=stoptime)
        _stop_in_wait_loop(machine, tickwait)
        before = machine.time
        Runner(machine, [BufferLine()], stop_on_node_stop=False).run(max_seconds=0.5)
        if stoptime:
            assert machine.time == before
        else:
            assert machine.time - before >= TIMEBASE_HZ // 10   # 0.1 s of the 0.5 s, at least
            assert machine.time % machine.config.quantum == 0


def test_the_runner_keeps_time_still_with_no_node_stopped() -> None:
    """Nothing changes for a machine nobody debugs: an idle machine's time does not move."""
    machine = Machine(MachineConfig(nodes=2))      # every node held: idle, none stopped
    Runner(machine, [BufferLine()], stop_on_node_stop=False).run(max_seconds=0.2)
    assert machine.time == 0


def test_stoptime_is_kept_in_snapshots_and_set_on_the_command_line(
    tickwait: ElfImage, tmp_path: Path,
) -> None:
    saved = tmp_path / "stoptime.snap"
    assert main(["machine", "--kernel", str(tickwait.path), "--stoptime", "--console", "null",
                 "--debug-line", "null", "--max-seconds", "0.1", "--quiet",
                 "--save-snapshot", str(saved)]) == 0
    assert snapshot.restore(saved).config.stoptime
    plain = tmp_path / "plain.snap"
    snapshot.save(_machine(tickwait), plain)
    assert not snapshot.restore(plain).config.stoptime
    up = make_parser().parse_args(["up", "--stoptime"])
    assert up.stoptime


# -- the kernel's clock after a long stop ----------------------------------------------------------

def test_clock_intr_counts_missed_ticks_without_replaying_them(kernel_elf: Path) -> None:
    """Node 1 held for 300 ticks: its next clock interrupt counts them in a few instructions."""
    run = KernelRun(2, elf=kernel_elf)
    run.boot()
    machine = run.machine
    node = machine.nodes[1]
    machine.stop_node(1)
    missed = run.node_field(1, "missed_ticks")
    machine.run(300 * TICK_CYCLES)                  # node 0 ticks on; node 1's clock goes on too
    clock_intr = run.symbol("clock_intr")
    node.cpu.breakpoints.add(clock_intr)
    machine.resume_node(1)                          # its timer interrupt is due at once
    machine.run(TICK_CYCLES, stop_when=lambda: node.state is NodeState.STOPPED)
    assert node.state is NodeState.STOPPED and node.cpu.pc == clock_intr
    node.cpu.breakpoints.discard(clock_intr)
    ra = node.cpu.regs[1]
    steps = 0
    while node.cpu.pc != ra:
        machine.step_node(1, take_interrupts=False)
        steps += 1
        assert steps < 2000, "clock_intr replays every missed tick"
    # A few hundred instructions, and up to twice that when this tick is also one of the every
    # tenth that copies the scheduling statistics into the magic page (which tick it is moves
    # with the length of the boot); replaying 300 ticks would take tens of thousands.
    assert steps < 1000, steps
    assert 295 <= run.node_field(1, "missed_ticks") - missed <= 305
    offset = member_offset(run.elf, "node", "next_tick")
    next_tick = int.from_bytes(machine.read_phys(run.phys("this_node", 1) + offset, 8), "little")
    assert node.cpu.cycles < next_tick <= node.cpu.cycles + TICK_CYCLES


# -- gdb through `psyche up` -------------------------------------------------------------------

@needs_gdb
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_gdb_next_over_a_one_tick_wait_finishes(tickwait: ElfImage) -> None:
    """`next` over a loop that waits one tick on rdtime, on a one-node machine held by gdb.

    Before the fix the stopped node's clock advanced one cycle per stepped instruction: the
    `next` stepped ~100 000 instructions (minutes).  pytest-timeout is the bound.
    """
    up = start_up(tickwait.path, 1)
    try:
        out = gdb(
            tickwait.path, f"127.0.0.1:{up.port(0)}",
            "break wait_one_tick",
            "continue",
            "next",                        # to the wait loop
            "next",                        # over it
            "next",                        # over `waited = ...`
            "p waited >= 100000",
            "delete",
            "detach",
            timeout=300,
        )
    finally:
        up.stop()
    assert "Breakpoint 1, wait_one_tick ()" in out, out
    assert re.search(r"^23\s+waited = RDTIME\(\) - start;", out, re.M), out
    assert "$1 = 1" in out, out
    assert "[Inferior 1 (Remote target) detached]" in out, out
