"""Real gdb-multiarch through the mux following one protected call across two nodes.

Domain A (the program `pcall`, on the king) calls an operation of a realm whose distinguished
domain D has its VP on node 1. gdb on node 1 breaks where the call arrives (the kernel's
pcall_deliver), learns the operation's address, and breaks on the operation itself, in D, in U
mode: `bt` and the registers show the caller's arguments and the return through the kernel.
gdb on node 0 breaks where the call starts (pcall_start), learns the caller's return address, loads
the program's symbols at its code realm and breaks there: the caller continues in A, at the line
of the call, with the result. (gdb's own `finish` cannot do this: the operation's frame is on
another node and returns through a fault.) Node 2 runs on meanwhile.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gdb_util import GDB, Up, needs_gdb, start_up
from test_kernel_user_gdb import Console

PCALL_ELF = Path(__file__).resolve().parent.parent / "build" / "user" / "pcall.elf"

pytestmark = [needs_gdb, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def up(kernel_elf: Path) -> Iterator[Up]:
    machine = start_up(kernel_elf, 3)
    yield machine
    machine.stop()


def gdb_session(up: Up, node: int, *commands: str) -> subprocess.Popen[str]:
    args = [str(GDB), "-batch", "-nx", str(up.kernel), "-ex", "set confirm off",
            "-ex", f"target remote 127.0.0.1:{up.port(node)}"]
    for command in commands:
        args += ["-ex", command]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_gdb_sessions_follow_a_protected_call(up: Up) -> None:
    console = Console(up.console)
    try:
        console.type("")
        console.wait_for(r"psyche> ")
        console.type("ticks")
        before = int(console.wait_for(r" 2:(\d+)\s").group(1))
        callee = gdb_session(
            up, 1,
            "break pcall_deliver",
            "continue",
            "set var $op = v->calls_in->entry",
            "printf \"operation %#x\\n\", $op",
            "delete",
            "break *$op",
            "continue",
            "bt",
            "printf \"in D: pc %#x a0 %d a1 %d ra %#x\\n\", $pc, $a0, $a1, $ra",
            "p/x $priv",
            "delete",
            "detach",
        )
        time.sleep(3)                  # until the callee's gdb waits in `continue`
        caller = gdb_session(
            up, 0,
            "break pcall_start",
            f"shell printf 'run pcall call 1 1\\r' > {up.console}",
            "continue",
            "set var $ret = tf->ra",
            "printf \"returns to %#x\\n\", $ret",
            # A's code realm, opened by its first fetch (open[0] is its descriptor): the program's
            # own symbols, linked at 0, go there
            f"add-symbol-file {PCALL_ELF} -o this_node.current->dom->open[1].realm->base",
            "delete",
            "break *$ret",
            "continue",
            "printf \"back in A: pc %#x a0 %d\\n\", $pc, $a0",
            "bt 1",
            "info line *$pc",
            "delete",
            "detach",
        )
        out_callee, _ = callee.communicate(timeout=120)
        out_caller, _ = caller.communicate(timeout=120)
        op = int(re.search(r"operation (0x[0-9a-f]+)", out_callee).group(1), 16)
        ret = int(re.search(r"returns to (0x[0-9a-f]+)", out_caller).group(1), 16)
        # node 1 stopped on the operation in D, in U mode, with A's arguments and the kernel's
        # return address
        assert f"in D: pc {op:#x} a0 40 a1 2 ra 0x7fffe000" in out_callee, out_callee
        assert re.search(rf"#0 +0x0*{op:x} in \?\?", out_callee), out_callee
        assert "= 0x0" in out_callee.split("in D:")[1], out_callee          # $priv: U mode
        # node 0: the caller continued at its return address with the result
        assert f"back in A: pc {ret:#x} a0 42" in out_caller, out_caller
        # ... in the program's function that made the call, just after the call in its source
        # (node is dead after the call, so the optimizer may leave it "<optimized out>")
        assert re.search(r"#0 +calls \(.*node=[^,]+, n=1\) at .*pcall\.c:\d+\n", out_caller), \
            out_caller
        line = rf"Line \d+ of \".*pcall\.c\" starts at address {ret:#x}"
        assert re.search(line, out_caller), out_caller
        assert "uint32_t first = add(40, 2);" in out_caller
        console.wait_for(r"pcall: add\(40, 2\) = 42")
        console.wait_for(r"pcall: exit 0\n")
        console.type("ticks")
        after = int(console.wait_for(r" 2:(\d+)\s").group(1))
        assert after > before                                              # node 2 ran on
    finally:
        console.close()
