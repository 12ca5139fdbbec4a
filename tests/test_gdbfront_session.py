"""gdbfront's session API and the Psyche gdb extension without a machine, and the pytest plugin as a
user's project sees it (through its pytest11 entry point, from a directory without any conftest)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gdbfront.session import GDB, Frame, GdbError, GdbSession, GdbTimeout, Stop
from lld.testing import build_target_guest
from psyche.machine.elf import load_elf

needs_gdb = pytest.mark.skipif(shutil.which(GDB) is None, reason=f"{GDB} is not installed")


def test_a_stopped_record_becomes_a_stop() -> None:
    record = {"reason": "watchpoint-trigger", "wpt": {"number": "2", "exp": "x"},
              "value": {"old": "1", "new": "2"},
              "frame": {"addr": "0xc00003c8", "func": "clock_intr", "file": "psyche/kernel/clock.c",
                        "fullname": "/src/psyche/kernel/clock.c", "line": "38"}}
    stop = Stop.from_mi(record)
    assert stop.reason == "watchpoint-trigger"
    assert stop.frame == Frame(0xC00003C8, "clock_intr", "/src/psyche/kernel/clock.c", 38)
    assert (stop.func, stop.line, stop.addr) == ("clock_intr", 38, 0xC00003C8)
    assert stop.value == {"old": "1", "new": "2"}
    assert Stop.from_mi({"frame": {"addr": "0x0"}}).reason == "attached"   # the stop found on connecting


@needs_gdb
def test_expressions_come_from_the_kernels_dwarf(kernel_elf: Path) -> None:
    with GdbSession(kernel_elf) as gdb:
        assert gdb.integer("&this_node") == load_elf(kernel_elf).symbol("this_node")
        assert gdb.integer("sizeof(struct node)") > 100
        assert gdb.evaluate("NODE_UP") == "NODE_UP"


@needs_gdb
def test_errors_carry_gdbs_message_and_the_log_tail(kernel_elf: Path) -> None:
    with GdbSession(kernel_elf) as gdb:
        with pytest.raises(GdbError) as error:
            gdb.evaluate("no_such_symbol + 1")
        assert 'No symbol "no_such_symbol" in current context' in error.value.message
        assert "-data-evaluate-expression" in error.value.log_tail
        with pytest.raises(GdbTimeout) as timeout:
            gdb.wait_for_stop(timeout=0.3)             # nothing runs: no *stopped comes
        assert "no *stopped record" in str(timeout.value)
        with pytest.raises(GdbError, match="could not connect|Connection refused"):
            gdb.connect("127.0.0.1:1", timeout=10)


@needs_gdb
def test_a_dead_gdb_is_reported_not_waited_for(kernel_elf: Path) -> None:
    gdb = GdbSession(kernel_elf)
    gdb.kill()
    with pytest.raises(GdbError, match="gdb is not running"):
        gdb.evaluate("1")
    gdb.close()


@needs_gdb
def test_psyche_commands_say_clearly_what_is_missing(kernel_elf: Path) -> None:
    with GdbSession(None) as gdb:
        with pytest.raises(GdbError, match="no program loaded"):
            gdb.psyche("nodes")
    with GdbSession(build_target_guest().path) as gdb:
        with pytest.raises(GdbError, match="no symbol `kg`.*not the Psyche kernel"):
            gdb.psyche("locks")
    with GdbSession(kernel_elf) as gdb:
        with pytest.raises(GdbError, match="not attached to a Psyche node"):
            gdb.psyche("heap")
        with pytest.raises(GdbError, match="not attached"):
            gdb.evaluate("$psyche_node()")
        assert "psyche nodes" in gdb.psyche("")       # the prefix command lists the others
        with pytest.raises(GdbError, match="psyche: no subcommand 'nodse'; the subcommands are nodes, node, "
                                           "locks, heap, realms, domains, vps, calls, magic, symbols, "
                                           "step-call, finish-call\n"):
            gdb.psyche("nodse")
        for subcommand in ("realms", "domains", "vps", "calls", "magic", "step-call", "finish-call"):
            with pytest.raises(GdbError, match="not attached to a Psyche node"):
                gdb.psyche(subcommand)
        with pytest.raises(GdbError, match="psyche symbols: gdb is not attached to a Psyche node"):
            gdb.psyche("symbols")
        with pytest.raises(GdbError, match="psyche symbols: unknown argument '--atuo'"):
            gdb.psyche("symbols --atuo")


INNER_TEST = '''
    import pytest

    pytestmark = pytest.mark.psyche(nodes=2)

    def test_that_fails(gdb, psyche_machine):
        node1 = gdb(1)
        node1.breakpoint("clock_intr")
        assert node1.cont().func == "clock_intr"
        assert node1.integer("this_node.id") == 99
'''


@needs_gdb
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_plugin_attaches_logs_to_a_failing_tests_report(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_inner.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=110)
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "1 failed" in out, out
    for expected in (
        "assert 1 == 99",
        "psyche: gdb node 1 (tcp) log (tail)",                 # the gdb log section ...
        '*stopped {"reason": "breakpoint-hit"',                # ... with the records gdb sent
        "psyche: psyche console (tail)",
        "psyche: psyche up output (tail)",
        "2-node machine restored from 'booted'",               # the plugin's timing summary
    ):
        assert expected in out, out


XDIST_TEST = '''
    import os
    import pytest

    pytestmark = pytest.mark.psyche(nodes=2)

    @pytest.mark.parametrize("module_copy", [{n}])
    def test_a_breakpoint(gdb, psyche_machine, module_copy):
        node1 = gdb(1)
        node1.breakpoint("clock_intr")
        assert node1.cont().func == "clock_intr"
        with open("ports.txt", "a") as out:
            out.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{psyche_machine.base_port}}\\n")
'''


@needs_gdb
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_plugin_gives_each_xdist_worker_its_own_ports(tmp_path: Path) -> None:
    from gdbfront.machine import PORT_RANGE

    for n in (1, 2):
        (tmp_path / f"test_inner_{n}.py").write_text(textwrap.dedent(XDIST_TEST.format(n=n)))
    # This checkout's plugin (the installed one may be another worktree's), in pytest and its machines.
    repo = Path(__file__).resolve().parent.parent
    path = [str(repo), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
                             "--dist", "loadfile", "test_inner_1.py", "test_inner_2.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=170, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "2 passed" in out, out
    ports = dict(line.split() for line in (tmp_path / "ports.txt").read_text().splitlines())
    assert set(ports) == {"gw0", "gw1"}, ports       # one module on each worker, each with a machine
    half = PORT_RANGE[0] + (PORT_RANGE[1] - PORT_RANGE[0]) // 2
    assert int(ports["gw0"]) < half <= int(ports["gw1"])
