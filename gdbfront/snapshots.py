"""The machine states debug tests start from, saved once as snapshots.

* `booted`: the kernel booted to the monitor's `psyche> ` prompt, made the way
  a person would (`psyche machine --until 'psyche> ' --save-snapshot FILE`).
  Every test module's machine restores it instead of booting.
* `stopped`: the booted state with every node stopped, waiting for a
  debugger.  Restored, nothing moves until a gdb says so, so what gdb shows
  can be compared exactly with the same snapshot restored in-process and read
  through the machine's own Python API.
* `startup`: the kernel loaded and the king stopped on the first instruction
  of `startup`, before any node's initialization: for debugging the boot.

Snapshots hold no lld or host-line state (psyche/machine/snapshot.py), so a
restored machine gets a fresh lld and fresh lines, as a rebooted one would.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from psyche.machine import snapshot
from psyche.machine.elf import load_elf
from psyche.machine.machine import Machine, MachineConfig

KINDS = ("booted", "stopped", "startup")
PROMPT = "psyche> "
_STARTUP_CYCLES = 10_000_000


def boot_snapshot(kernel: Path, nodes: int, path: Path, timeout: float = 120.0) -> float:
    """Boot kernel to the prompt in `psyche machine` and save it at path; the wall seconds it took."""
    command = [sys.executable, "-m", "psyche.cli", "machine", "--nodes", str(nodes), "--kernel", str(kernel),
               "--console", "null", "--debug-line", "null", "--quiet", "--no-pace",
               "--until", PROMPT, "--max-seconds", str(timeout), "--save-snapshot", str(path)]
    began = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 30)
    if result.returncode != 0 or not path.exists():
        raise RuntimeError(f"booting {nodes} nodes for a snapshot failed ({result.returncode}): "
                           f"{' '.join(command)}\n{result.stdout}{result.stderr}")
    return time.monotonic() - began


#: At most this long for the booted machine to settle before it is stopped (a clock tick is 100_000).
_SETTLE_CYCLES = 1_000_000


def stopped_snapshot(source: Path, path: Path) -> None:
    """A copy of the snapshot at source, settled, with every running node stopped.

    The booted snapshot is cut where the prompt came out, and the king has more to do then
    (its monitor thread goes on to block for input, through the run queue's lock): it runs
    until every node waits, so that no node is stopped inside a lock or half way through
    anything, and a debugger's reading and the machine's own agree.
    """
    machine = snapshot.restore(source)
    machine.run(_SETTLE_CYCLES)          # returns early once every node is idle
    for node in machine.nodes:
        machine.stop_node(node.index)
    snapshot.save(machine, path)


def startup_snapshot(kernel: Path, nodes: int, path: Path, symbol: str = "startup") -> None:
    """The kernel loaded on `nodes` nodes, run until the king reaches symbol, and stopped there."""
    image = load_elf(kernel)
    address = image.symbol(symbol)
    if address is None:
        raise KeyError(f"{kernel}: no symbol {symbol}")
    machine = Machine(MachineConfig(nodes=nodes))
    machine.load(image)
    king = machine.nodes[0]
    king.cpu.breakpoints.add(address)       # the CPU's own breakpoint set, as lld uses it
    stopped = machine.run(_STARTUP_CYCLES)
    king.cpu.breakpoints.discard(address)
    if stopped != [king] or king.cpu.pc != address:
        raise RuntimeError(f"the king did not reach {symbol} ({address:#x}) within {_STARTUP_CYCLES} cycles; "
                           f"it is at {king.cpu.pc:#x}")
    snapshot.save(machine, path)
