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
# result, the instruction count and the digest of the whole final machine.
_CROSS_CHECK = """
import json, sys
sys.path.insert(0, "tests")
from machine_util import boot, run_to_result
from psyche.machine import hotpath, snapshot
out = {"mode": hotpath.mode()}
for path, nodes in json.loads(sys.argv[1]):
    machine, monitor = boot(path, nodes=nodes, quantum=53)
    result = run_to_result(machine, monitor)
    out[path] = [result.value, [n.cpu.instret for n in machine.nodes], snapshot.digest(machine)]
print(json.dumps(out))
"""


def _run(programs: list[tuple[str, int]], pure: bool) -> dict:
    env = dict(os.environ)
    env.pop("PSYCHE_PURE", None)
    if pure:
        env["PSYCHE_PURE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", _CROSS_CHECK, json.dumps(programs)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compiled_and_pure_cpus_agree_bit_for_bit(guest_programs, machine_guest) -> None:
    if hotpath.mode() != "compiled":
        pytest.skip("the CPU is not compiled here: nothing to compare against")
    programs = [(str(p), 1) for name, p in sorted(guest_programs.items()) if not name.startswith("cpubound")]
    programs.append((str(machine_guest["smp"]), 4))
    compiled = _run(programs, pure=False)
    pure = _run(programs, pure=True)
    assert compiled.pop("mode") == "compiled" and pure.pop("mode") == "pure"
    for path, _ in programs:
        assert compiled[path][0] == 1, f"{path} failed compiled"
        assert compiled[path] == pure[path], f"{path}: compiled and pure runs differ"


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
