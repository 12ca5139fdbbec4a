"""Debug semantics through the mux, with real gdb-multiarch: each test is a bug once seen.

The guest (lld.testing) spins on every node bumping its own counter; lld holds
the machine's panic breakpoint on `panic`.  Trap handling is set up per test by
writing CSRs and a few instructions into `scratch` from gdb, so that each test
says in its own lines what the hart will do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from gdb_util import Up, gdb, needs_gdb, start_up

from lld.testing import TargetGuest, build_target_guest

pytestmark = [needs_gdb, pytest.mark.slow, pytest.mark.timeout(120)]

NODE = 1
MRET = 0x30200073
ECALL = 0x00000073
#: A machine-mode trap handler that returns past the trapping instruction.
SKIP_HANDLER = (0x341022F3,   # csrr t0, mepc
                0x00428293,   # addi t0, t0, 4
                0x34129073,   # csrw mepc, t0
                MRET)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


@pytest.fixture(scope="module")
def up(guest: TargetGuest) -> Iterator[Up]:
    machine = start_up(guest.path, 2)
    yield machine
    machine.stop()


def on_node(up: Up, *commands: str) -> str:
    return gdb(up.kernel, f"127.0.0.1:{up.port(NODE)}", *commands, "detach")


def values(out: str) -> list[str]:
    """What gdb printed for each `p`, in order."""
    return re.findall(r"^\$\d+ = (.*)$", out, re.M)


def test_stepi_right_after_a_breakpoint_stop_moves_one_instruction(up: Up, guest: TargetGuest) -> None:
    out = on_node(up, "break spin_store", "continue", "stepi", "p/x $pc", "stepi", "p/x $pc")
    assert out.count("Breakpoint 1, spin_store") == 1, out
    assert values(out) == [hex(guest.sym("spin_check")), hex(guest.sym("spin_check") + 4)], out


def test_an_ignore_count_lets_exactly_that_many_hits_pass(up: Up, guest: TargetGuest) -> None:
    counter = f"*(int*){guest.counter(NODE)}"
    out = on_node(up, "break spin_store", "continue", f"p {counter}", "continue 10", f"p {counter}")
    first, last = (int(v) for v in values(out))
    assert last - first == 10, out   # one store per pass, the pending one included


def test_a_resume_at_a_breakpoint_stops_there_before_executing_it(up: Up, guest: TargetGuest) -> None:
    counter = f"*(int*){guest.counter(NODE)}"
    out = on_node(up, "break spin_store", "continue", f"p {counter}", "jump *$pc", f"p {counter}",
                  "p/x $pc")
    before, after, pc = values(out)
    assert out.count("Breakpoint 1, spin_store") == 2, out
    assert before == after and pc == hex(guest.sym("spin_store")), out


def test_the_machines_panic_breakpoint_survives_a_gdb_session(up: Up, guest: TargetGuest) -> None:
    panic = f"0x{guest.sym('panic'):08x}"
    before = on_node(up, "monitor breakpoints")
    assert f"breakpoint at {panic}" in before, before
    # A session that sets, removes and replaces breakpoints (one on panic itself), then detaches.
    on_node(up, "break panic", "break spin_check", "continue", "delete", "break spin_loop", "continue")
    after = on_node(up, "monitor breakpoints")
    assert f"breakpoint at {panic}" in after and after.count("breakpoint at") == 1, after
    # ...and it still stops the node, which gdb shows (a plain SIGTRAP: not one of gdb's).
    request = f"*(int*){guest.sym('panic_request')}"
    out = on_node(up, f"set var {request} = {NODE + 1}", "continue", "p/x $pc", f"set var {request} = 0",
                  "set $pc = spin_loop")
    assert "stopped in the kernel's panic path" in out and "SIGTRAP" in out, out
    assert values(out)[0] == hex(guest.sym("panic")), out


#: Puts the hart back in its loop with no trap set up, for the next test.
RESTORE = ("set $priv = 3", "set $mip = 0", "set $mie = 0", "set $mstatus = 0", "set $mtvec = 0",
           "set $pc = spin_loop")


def _trap_setup(guest: TargetGuest, first: int) -> tuple[str, ...]:
    """gdb commands: `first` at scratch, SKIP_HANDLER at scratch + 16 as the M-mode trap vector."""
    scratch = guest.sym("scratch")
    words = [first, 0x13, 0x13, 0x13, *SKIP_HANDLER]   # first; nop; nop; nop; handler
    return (*(f"set var *(int*){scratch + 4 * i} = {w:#x}" for i, w in enumerate(words)),
            f"set $mtvec = {scratch + 16:#x}", f"set $pc = {scratch:#x}")


def test_a_pending_interrupt_is_masked_by_a_step_unless_asked_for(up: Up, guest: TargetGuest) -> None:
    scratch = guest.sym("scratch")
    # A supervisor software interrupt pending and enabled, taken in M mode (not delegated).
    pending = ("set $mideleg = 0", "set $mie = 2", "set $mip = 2", "set $mstatus = $mstatus | 8")
    common = ("break spin_store", "continue", *_trap_setup(guest, 0x13), *pending)
    masked = on_node(up, *common, "stepi", "p/x $pc", "p/x $mip & 2", *RESTORE)
    assert values(masked)[-2:] == [hex(scratch + 4), "0x2"], masked   # stepped; still pending
    taken = on_node(up, *common, "monitor step-interrupts on", "stepi", "p/x $pc", "p/x $mcause",
                    "monitor step-interrupts off", *RESTORE)
    assert "takes a pending interrupt" in taken
    assert values(taken)[-2:] == [hex(scratch + 16), "0x80000001"], taken   # at the vector


def test_stepi_on_mret_stops_where_the_return_goes(up: Up, guest: TargetGuest) -> None:
    out = on_node(up, "break spin_store", "continue", "delete", *_trap_setup(guest, MRET),
                  "set $mepc = spin_check", "stepi", "p/x $pc", *RESTORE)
    assert values(out)[-1] == hex(guest.sym("spin_check")), out


def test_stepi_into_ecall_runs_the_handler_unless_asked_to_stop_at_the_vector(
        up: Up, guest: TargetGuest) -> None:
    scratch = guest.sym("scratch")
    common = ("break spin_store", "continue", "delete", *_trap_setup(guest, ECALL))
    through = on_node(up, *common, "stepi", "p/x $pc", "p/x $mcause", *RESTORE)
    assert values(through)[-2:] == [hex(scratch + 4), "0xb"], through   # ecall from M, handled
    vector = on_node(up, *common, "monitor step-traps on", "stepi", "p/x $pc", "monitor step-traps off",
                     *RESTORE)
    assert values(vector)[-1] == hex(scratch + 16), vector
