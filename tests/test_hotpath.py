"""The compiled CPU and the pure-Python CPU: same results bit for bit, and no stale builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from psyche.machine import hotpath

REPO = Path(__file__).resolve().parent.parent

# Runs guest programs to their tohost result and prints, per program, the
# result, the instruction count and the digest of the whole final machine;
# then boots the kernel with its self-test on 4 nodes for a fixed number of
# cycles (traps, timer interrupts, CSRs, remote references, inter-node calls)
# and prints the same for it, with the console output.
_CROSS_CHECK = """
import json, sys
sys.path.insert(0, "tests")
from machine_util import boot, run_to_result
from psyche.kernel.harness import KernelRun
from psyche.machine import blockcpu, hotpath, snapshot
out = {"mode": hotpath.mode(), "blocks": blockcpu.blocks_enabled()}
programs, kernel_cycles = json.loads(sys.argv[1]), int(sys.argv[2])
for path, nodes, quantum, penalty in programs:
    machine, monitor = boot(path, nodes=nodes, quantum=quantum, remote_penalty=penalty)
    result = run_to_result(machine, monitor)
    out[f"{path} q{quantum} p{penalty}"] = [
        result.value, [n.cpu.instret for n in machine.nodes], snapshot.digest(machine)]
run = KernelRun(nodes=4, selftest=True, quantum=997)
run.run_cycles(kernel_cycles)
out["kernel"] = [run.console, [n.cpu.instret for n in run.machine.nodes], snapshot.digest(run.machine)]
print(json.dumps(out))
"""

# (program, nodes, quantum, remote penalty) for every guest program.
Programs = list[tuple[str, int, int, int]]


def _run(programs: Programs, kernel_cycles: int, pure: bool, blocks: bool = True) -> dict:
    env = dict(os.environ)
    env.pop("PSYCHE_PURE", None)
    env.pop("PSYCHE_BLOCKS", None)
    if pure:
        env["PSYCHE_PURE"] = "1"
    if not blocks:
        env["PSYCHE_BLOCKS"] = "0"
    proc = subprocess.run(
        [sys.executable, "-c", _CROSS_CHECK, json.dumps(programs), str(kernel_cycles)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_compiled_pure_and_block_cpus_agree_bit_for_bit(guest_programs, machine_guest, kernel_elf) -> None:
    """The compiled interpreter, the plain-Python interpreter and the block translator."""
    if hotpath.mode() != "compiled":
        pytest.skip("the CPU is not compiled here: nothing to compare against")
    programs: Programs = [
        (str(p), 1, 53, 7) for name, p in sorted(guest_programs.items()) if not name.startswith("cpubound")
    ]
    # Odd quanta and penalties move where runs end relative to blocks.
    programs += [(str(machine_guest["smp"]), 4, 53, 7), (str(machine_guest["smp"]), 4, 7, 20),
                 (str(machine_guest["smp"]), 4, 1000, 0)]
    kernel_cycles = 1_600_000    # boot and self-test on 4 nodes, with room for a growing kernel image
    compiled = _run(programs, kernel_cycles, pure=False)
    blocks = _run(programs, kernel_cycles, pure=True)
    interpreted = _run(programs, kernel_cycles, pure=True, blocks=False)
    assert (compiled.pop("mode"), compiled.pop("blocks")) == ("compiled", False)
    assert (blocks.pop("mode"), blocks.pop("blocks")) == ("pure", True)
    assert (interpreted.pop("mode"), interpreted.pop("blocks")) == ("pure", False)
    assert "selftest: passed" in compiled["kernel"][0], compiled["kernel"][0][-500:]
    for key in compiled:
        if key != "kernel":
            assert compiled[key][0] == 1, f"{key} failed compiled"
        assert compiled[key] == interpreted[key], f"{key}: compiled and pure interpreter differ"
        assert compiled[key] == blocks[key], f"{key}: compiled interpreter and block translator differ"


def test_pure_switch_loads_the_sources() -> None:
    env = dict(os.environ, PSYCHE_PURE="1")
    proc = subprocess.run(
        [sys.executable, "-c", "import psyche.machine.cpu as c; from psyche.machine import hotpath;"
         " print(c.__file__, hotpath.mode())"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    path, mode = proc.stdout.split()
    assert path.endswith("cpu.py") and mode == "pure"


def test_an_edited_source_makes_the_compiled_build_refuse(monkeypatch) -> None:
    if not any(hotpath._compiled_file(name) for name, _ in hotpath.HOT_MODULES):
        pytest.skip("no compiled modules here")
    monkeypatch.setattr(hotpath, "source_hash", lambda: "an edited source")
    monkeypatch.delenv("PSYCHE_PURE", raising=False)
    with pytest.raises(hotpath.StaleBuildError, match="does not match its source.*scripts/build"):
        hotpath.check()
