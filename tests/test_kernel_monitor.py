"""Synchronization self-test, the monitor, panics and restart without reloading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from psyche.kernel.harness import KernelRun

EBREAK = 0x0010_0073
SELFTEST_PARTS = ("spin lock", "locked-out interrupts", "preemption level", "semaphore",
                  "semaphore token ring")


def selftest_passed(out: str, nodes: int) -> None:
    assert f"selftest: passed on {nodes} nodes" in out, out
    assert "FAILED" not in out, out
    for part in SELFTEST_PARTS:
        assert re.search(rf"selftest: {part}: .*: ok\n", out), (part, out)


@pytest.mark.parametrize("nodes", [2, 16])
def test_selftest_at_boot_contends_from_every_node(kernel_elf: Path, nodes: int) -> None:
    run = KernelRun(nodes, selftest=True, elf=kernel_elf)
    log = run.boot()
    selftest_passed(log, nodes)
    assert log.index("barrier 3 of 3 passed") < log.index("selftest: run 1") < log.index("boot complete")
    assert f"counter {20 * nodes} of {20 * nodes}, 0 overlaps" in log
    if nodes > 2:
        # the locks really were contended across nodes, and semaphore waiters really blocked
        contended = int(re.search(r"(\d+) contended acquisitions", log).group(1))
        blocked = int(re.search(r"(\d+) blocked waits", log).group(1))
        assert contended > 0 and blocked > 0
    assert all(node.cpu.remote_fetches == 0 for node in run.machine.nodes)


def test_no_selftest_unless_asked(kernel_elf: Path) -> None:
    run = KernelRun(2, elf=kernel_elf)
    assert "selftest" not in run.boot()


def test_selftest_from_the_monitor_twice(kernel_elf: Path) -> None:
    run = KernelRun(4, elf=kernel_elf)
    run.boot()
    first = run.command("selftest")
    selftest_passed(first, 4)
    second = run.command("selftest")
    assert "selftest: run 2 on 4 nodes" in second
    selftest_passed(second, 4)


def test_monitor_commands(kernel_elf: Path) -> None:
    run = KernelRun(3, elf=kernel_elf)
    run.boot()
    helptext = run.command("help")
    for name in ("status", "ticks", "threads", "selftest", "restart", "panic", "heap"):
        assert re.search(rf"^\s+{name}\s", helptext, re.M), helptext
    run.run_cycles(200_000)
    status = run.command("status")
    assert re.search(r"3 nodes: 3 up, 0 panicked; boot 1", status), status
    rows = re.findall(r"^\s+(\d+)\s+up\s+(\d+)\s+(\S+)", status, re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2]
    assert rows[0][2] == "monitor"
    assert all(int(r[1]) > 0 for r in rows)
    threads = run.command("threads 1")
    assert "daemon" in threads and "waits on daemon work" in threads and "idle" in threads
    assert "no node" in run.command("threads 7")
    assert "shared heap at 0x802" in run.command("heap")
    assert "unknown command" in run.command("frobnicate")
    assert "usage: panic NODE" in run.command("panic")
    # line editing: delete removes the typo
    run.type("statuz\x7fs\r")
    run.wait_for(r"statuz\x08 \x08s\n3 nodes: 3 up")


def test_panic_reports_node_cause_and_pc_and_stops_only_that_node(kernel_elf: Path) -> None:
    run = KernelRun(4, elf=kernel_elf)
    run.boot()
    clock_intr = run.symbol("clock_intr")
    run.write_word(run.phys("clock_intr", node=2), EBREAK)  # node 2's copy only
    match = run.wait_for(r"panic: node (\d+): kernel trap: breakpoint \(scause 0x3\) at pc (0x[0-9a-f]+)")
    assert match.group(1) == "2" and int(match.group(2), 16) == clock_intr
    run.wait_for(r"panic: node 2 stopped; the other nodes run on")
    ticks = [run.node_field(k, "ticks") for k in range(4)]
    run.run_cycles(300_000)
    after = [run.node_field(k, "ticks") for k in range(4)]
    assert after[2] == ticks[2]                               # stopped
    assert all(after[k] > ticks[k] for k in (0, 1, 3))        # the others run on
    status = run.command("status")
    assert "4 nodes: 3 up, 1 panicked" in status
    assert re.search(r"^\s+2\s+panicked", status, re.M)
    # a restart re-replicates the king's (intact) code, and node 2 comes back
    out = run.command("restart")
    assert "restarting 4 nodes without reloading" in out
    assert "4 nodes: 4 up, 0 panicked; boot 2" in run.command("status")


def test_panic_command(kernel_elf: Path) -> None:
    run = KernelRun(2, elf=kernel_elf)
    run.boot()
    run.type("panic 1\r")
    run.wait_for(r"panic: node 1: panic requested on the console \(called from pc 0x[0-9a-f]+\)")
    assert "2 nodes: 1 up, 1 panicked" in run.command("status")


def test_restart_without_reloading(kernel_elf: Path) -> None:
    run = KernelRun(4, elf=kernel_elf)
    run.boot()
    run.command("selftest")  # leave some state behind: counters, a helper thread per node
    out = run.command("restart", timeout=60)
    assert "restart: kernel code checksum" in out and "ok; parking 3 other nodes" in out
    assert "restart 1: code checksum" in out and "initialized data restored" in out
    for episode in (1, 2, 3):
        assert f"barrier {episode} of 3 passed: 4 nodes" in out
    status = run.command("status")
    assert "4 nodes: 4 up, 0 panicked; boot 2" in status
    # fresh data: two threads per node again (the self-test helpers are gone)
    assert "st-helper" not in run.command("threads 3")
    assert all(node.cpu.remote_fetches == 0 for node in run.machine.nodes)
    # and it can be done again
    out = run.command("restart", timeout=60)
    assert "restart 2: code checksum" in out
    selftest_passed(run.command("selftest"), 4)


def test_restart_keeps_the_boot_flags(kernel_elf: Path) -> None:
    """The data restored are those first loaded, host-set boot flags included."""
    run = KernelRun(2, selftest=True, elf=kernel_elf)
    selftest_passed(run.boot(), 2)
    out = run.command("restart", timeout=60)
    selftest_passed(out, 2)


def test_restart_refused_when_code_is_corrupted(kernel_elf: Path) -> None:
    run = KernelRun(4, elf=kernel_elf)
    run.boot()
    # a breakpoint instruction left in the king's code, in a function boot runs
    run.write_word(run.phys("barrier_sync"), EBREAK)
    out = run.command("restart")
    assert "restart refused: kernel code checksum is" in out
    assert "corrupted" in out and "reload the kernel" in out
    # nothing was disturbed: every node is still up, and the monitor still answers
    assert "4 nodes: 4 up, 0 panicked; boot 1" in run.command("status")
