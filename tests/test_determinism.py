"""Same inputs, same interleaving: trace hashes, and snapshots that resume bit-exact."""

from __future__ import annotations

from pathlib import Path

from machine_util import boot, run_to_result, trace_hash

from psyche.machine import snapshot
from psyche.machine.elf import load_elf
from psyche.machine.tohost import TohostMonitor


def test_two_runs_give_the_same_trace(machine_guest) -> None:
    hashes = []
    for _ in range(2):
        machine, monitor = boot(machine_guest["smp"], nodes=4, quantum=37)
        hashes.append((trace_hash(machine, monitor, 2000), snapshot.digest(machine)))
    assert hashes[0] == hashes[1]


def test_quantum_changes_the_interleaving_not_the_result(machine_guest) -> None:
    a, ma = boot(machine_guest["smp"], nodes=4, quantum=37)
    b, mb = boot(machine_guest["smp"], nodes=4, quantum=41)
    assert trace_hash(a, ma, 50) != trace_hash(b, mb, 50)
    assert run_to_result(a, ma).passed and run_to_result(b, mb).passed


def test_snapshot_resumes_bit_exact(machine_guest, tmp_path: Path) -> None:
    path = machine_guest["smp"]
    machine, monitor = boot(path, nodes=4, quantum=37)
    for _ in range(300):
        machine.run_round()
    saved = tmp_path / "m.snap"
    snapshot.save(machine, saved)
    before = snapshot.digest(machine)
    for _ in range(500):
        machine.run_round()
    continued = snapshot.digest(machine)

    restored = snapshot.restore(saved)
    assert snapshot.digest(restored) == before
    TohostMonitor(restored, load_elf(path))
    for _ in range(500):
        restored.run_round()
    assert snapshot.digest(restored) == continued
    assert continued != before


def test_snapshot_rejects_other_files(tmp_path: Path) -> None:
    import pytest

    bad = tmp_path / "bad"
    bad.write_bytes(b"not a snapshot")
    with pytest.raises(snapshot.SnapshotError, match="not a Psyche machine snapshot"):
        snapshot.restore(bad)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(snapshot.MAGIC + b"99\n{")
    with pytest.raises(snapshot.SnapshotError, match="damaged"):
        snapshot.restore(truncated)
