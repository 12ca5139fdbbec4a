"""Virtual processors, software interrupts, the magic page and the user-level thread package.

The programs are psyche/user/progs/swi.c and threads.c (docs/kernel-interface.md says what the
kernel promises them); each test runs them with the monitor's `run` and checks what they print,
then what the kernel says afterwards (`vps`, `realms`, `threads`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from psyche.kernel.harness import KernelRun

TICK = 100_000          # cycles per clock tick (100 Hz at 10 MHz)
SWI_TIMER, SWI_ERROR = 1, 3


def boot(kernel_elf: Path, nodes: int = 2) -> KernelRun:
    run = KernelRun(nodes, elf=kernel_elf)
    run.boot()
    return run


def free_frames(run: KernelRun) -> str:
    return re.search(r"free frames: (.*)\n", run.command("realms")).group(1)


def no_vps_left(run: KernelRun) -> bool:
    table = run.command("vps").split("vp  node  domain")[1]
    return table.strip().splitlines()[1:] == []


@pytest.mark.parametrize("how, ahead", [("timer", 50_000), ("timer", 3 * TICK + 123), ("spin", 250_000)])
def test_a_timer_software_interrupt_arrives_on_time(kernel_elf: Path, how: str, ahead: int) -> None:
    """Set by a store to the descriptor: delivered after its time, long before the next tick."""
    run = boot(kernel_elf, 1)
    out = run.command(f"run swi {how} {ahead}")
    m = re.search(r"swi: timer kinds ([0-9a-f]+) due (\d+) arrived (\d+) late (\d+) early (\d+)\n", out)
    assert m, out
    assert int(m.group(1), 16) == 1 << SWI_TIMER
    assert int(m.group(5)) == 0                       # never early
    assert int(m.group(4)) < 3000 < TICK              # delivery and the handler's first lines only
    assert "swi: exit 0" in out


@pytest.mark.parametrize("addr", [0x4000_0000, 0xC000_0000, 0x10])
def test_a_wild_pointer_is_an_error_software_interrupt(kernel_elf: Path, addr: int) -> None:
    run = boot(kernel_elf, 1)
    out = run.command(f"run swi wild {addr:#x}")
    # store page fault (15) at the address, handled by the program, which carries on
    assert f"swi: error kinds 8 cause 15 addr {addr:#010x}, and on we go\nswi: exit 0\n" in out, out
    assert "stopped" not in out
    assert re.search(r"node 0: \d+ software interrupts delivered, 1 of them errors\n",
                     run.command("vps"))
    # the kernel stays up: the next program runs, every node is up, nothing leaked
    assert "hello: exit 0" in run.command("run hello")
    assert "panic" not in run.console
    assert free_frames(run) == "0:224/224"


def test_an_error_without_a_handler_still_stops_the_program(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 1)
    out = run.command("run crash null")
    assert "domain 0: stopped: load page fault at 0x00000000" in out and "crash: stopped" in out


def test_vps_made_and_destroyed_on_another_node_leave_nothing(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 2)
    before = free_frames(run)
    out = run.command("run swi vps 1 6")
    # the magic page (refreshed by the clock) shows us running and the new VP waiting on node 1
    m = re.search(r"swi: magic page: me vp (\d+) at (0x[0-9a-f]+) \(mine (0x[0-9a-f]+)\); "
                  r"vp (\d+) on node 1, state 3, domain (\d+)\n", out)
    assert m, out
    assert m.group(2) == m.group(3) and m.group(1) != m.group(4)
    assert "swi: made and destroyed 6 VPs on node 1; destroy again: ENOVP\nswi: exit 0" in out
    assert no_vps_left(run)
    assert free_frames(run) == before
    # one thread record served all six, and it is dead now
    threads = run.command("threads 1")
    assert re.search(r"vp\d+\s+dead\s+runs 7\s", threads), threads


def test_a_vp_descriptor_keeps_its_realm(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 1)
    out = run.command("run swi busy")
    assert "swi: busy: vp 1; destroy_realm EBUSY, destroy_vp ok, destroy_realm ok" in out, out
    assert free_frames(run) == "0:224/224"


def threads_result(out: str) -> tuple[int, int, list[tuple[int, int, int, int, str]]]:
    total = re.search(r"threads: total (\d+) want (\d+), 32 processes done", out)
    assert total, out
    vps = [(int(a), int(b), int(c), int(d), e) for a, b, c, d, e in re.findall(
        r"threads: vp \d+ on node (\d+): (\d+) processes done, \d+ switches, (\d+) preemptions, "
        r"(\d+) priority inversions, (rr|fifo)\n", out)]
    return int(total.group(1)), int(total.group(2)), vps


def test_32_threads_on_4_vps_on_2_nodes_under_both_schedulers(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 2)
    before = free_frames(run)

    rr = run.command("run threads 32 10000 rr", timeout=120)
    total, want, vps = threads_result(rr)
    assert total == want == 32 * 10000 * 10001 // 2
    assert [(node, done) for node, done, *_ in vps] == [(0, 8), (0, 8), (1, 8), (1, 8)]
    assert all(pre > 0 and s == "rr" for _, _, pre, _, s in vps)     # the interval timer preempts
    assert "threads: exit 0" in rr

    fifo = run.command("run threads 32 10000 fifo", timeout=120)
    total, want, vps = threads_result(fifo)
    assert total == want and len(vps) == 4
    # equal or lower priorities never preempt; higher ones finish first on every VP
    assert all(done == 8 and pre == 0 and inv == 0 and s == "fifo" for _, done, pre, inv, s in vps)

    switched = run.command("run threads 32 10000 switch", timeout=120)
    total, want, vps = threads_result(switched)
    assert total == want and "switched to fifo" in switched
    assert all(done == 8 and s == "fifo" for _, done, _, _, s in vps)
    assert sum(pre for _, _, pre, _, _ in vps) > 0       # round-robin ran before the switch

    # every VP ended with its program: none left, no frame kept
    assert no_vps_left(run)
    assert free_frames(run) == before


def pcall_result(out: str) -> dict[str, int]:
    """Cycles per call of each measurement the program reports (in scripts/bench_kernel's form)."""
    return {name: int(cycles) // int(count)
            for name, count, cycles in re.findall(r"bench: ([\w-]+) end (\d+) (\d+)\n", out)}


@pytest.mark.parametrize("node", [0, 1])
def test_a_protected_call_is_a_plain_call_into_another_domain(kernel_elf: Path, node: int) -> None:
    run = boot(kernel_elf, 2)
    before = free_frames(run)
    out = run.command(f"run pcall call {node} 20")
    # the operations ran in D and returned their results to A through the kernel
    assert "pcall: add(40, 2) = 42, load 0; 20 calls sum 210 (plain 210)" in out, out
    # D may touch P, A may not: A's own load is an error software interrupt (load page fault)
    assert "pcall: through D: store 0, load 5eed; A's own load: cause 13" in out
    # a call into the middle of an operation is refused: an error software interrupt for A
    # (an instruction page fault at the call's target), and D never ran it
    assert "pcall: a call into op_add: cause 12 at op_add+4" in out
    # realm_info: R's five operations and distinguished domain; of the access list, A sees the
    # keys it holds (KR owner+rw, KI invoke) and only the rights of D's key (KX: rx)
    assert "pcall: R: 5 ops, the first op_add yes, home D; access 7777:13 1111:8 0:5" in out
    assert "destroy_vp ok, destroy_domain ok, destroy_realm ok ok ok\npcall: exit 0" in out
    cycles = pcall_result(out)
    assert cycles["pcall-later"] < cycles["pcall-link"] < cycles["pcall-first"]
    assert cycles["plain-call"] < 50
    # 24 calls, the first of each of the three operations on the slow path; none in progress
    assert run.command("pcalls").splitlines() == ["24 protected calls, 3 on the slow path"]
    assert no_vps_left(run) and free_frames(run) == before


def test_a_vp_destroyed_inside_a_protected_call_is_cleaned_up(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 2)
    before = free_frames(run)
    out = run.command("run pcall destroy 1")
    # the caller's VP was waiting for a call that never returns; D's VP was running it on node 1
    assert "pcall: vp 2 destroyed inside its call: ok (in_call 1)" in out, out
    assert "destroy_vp ok, destroy_domain ok, destroy_realm ok ok ok\npcall: exit 0" in out
    assert run.command("pcalls").splitlines() == ["1 protected calls, 1 on the slow path"]
    assert no_vps_left(run)
    assert free_frames(run) == before            # every frame counted back, on both nodes


@pytest.mark.parametrize("node", [0, 1])
def test_a_process_in_a_protected_call_gives_its_vp_to_another(kernel_elf: Path, node: int) -> None:
    """With call-out and return handlers (the thread package's), the call is asynchronous for
    the caller's VP: its scheduler runs the worker while the callers' operations run in D."""
    run = boot(kernel_elf, 2)
    before = free_frames(run)
    out = run.command(f"run pcall threads {node} 4", timeout=120)
    m = re.search(r"pcall: threads: 12 calls by 4 processes, 0 wrong; the worker ran (\d+) times, "
                  r"(\d+) of them while a process was away\n", out)
    assert m, out
    assert int(m.group(2)) > 100
    assert "destroy_realm ok ok ok\npcall: exit 0" in out
    assert run.command("pcalls").splitlines() == ["12 protected calls, 1 on the slow path"]
    assert no_vps_left(run) and free_frames(run) == before
