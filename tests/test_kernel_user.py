"""User mode, kernel calls, realms and protection domains (docs/kernel-interface.md).

Each test boots the kernel and runs the user programs of psyche/user/progs
with the monitor's `run`, then checks what they printed and what the kernel
says about its realms and frames.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from psyche.kernel.harness import KernelRun

ERRORS = {-1: "EINVAL", -2: "EALIGN", -3: "ERANGE", -4: "ENOREALM", -5: "EKEY", -6: "ENOMEM",
          -7: "EBUSY", -8: "ENOSYS", -9: "EFAULT", -10: "EPERM", -11: "ENOVP"}


def boot(kernel_elf: Path, nodes: int = 1) -> KernelRun:
    run = KernelRun(nodes, elf=kernel_elf)
    run.boot()
    return run


def realms_state(run: KernelRun) -> str:
    """`realms` without its first line (fault counters, which every run changes)."""
    return run.command("realms").split("\n", 1)[1]


def make_shared(run: KernelRun, key: int) -> int:
    out = run.command(f"run share make {key:#x}")
    match = re.search(r"share: domain (\d+) made realm (0x[0-9a-f]+), wrote 5eed0001\n", out)
    assert match, out
    assert "share: exit 0" in out
    return int(match.group(2), 16)


def test_run_prints_the_programs_output(kernel_elf: Path) -> None:
    run = boot(kernel_elf)
    out = run.command("run hello one two")
    banner = re.search(r"hello: domain (\d+), code (0x[0-9a-f]+)-(0x[0-9a-f]+) on node 0, "
                       r"data (0x[0-9a-f]+)-0x[0-9a-f]+ on node 0\n", out)
    assert banner, out
    base, last = int(banner.group(2), 16), int(banner.group(3), 16)
    assert int(banner.group(4), 16) == last + 1     # the data realm follows the code realm
    # putc's "h", then printf through puts; main is inside the program's code realm
    main = re.search(rf"hello from domain {banner.group(1)} on node 0 of 1, main at (0x[0-9a-f]+)\n",
                     out)
    assert main, out
    assert base <= int(main.group(1), 16) <= last
    assert "hello: argument 1: one\nhello: argument 2: two\nhello: exit 2\n" in out
    # the program ran its own copy from its own node's memory, and its realm is gone
    assert all(node.cpu.remote_fetches == 0 for node in run.machine.nodes)
    assert realms_state(run).startswith("free frames: 0:224/224")


def test_run_without_a_known_name_lists_the_programs(kernel_elf: Path) -> None:
    run = boot(kernel_elf)
    helptext = run.command("help")
    for name in ("run", "spawn", "replicate", "realms"):
        assert re.search(rf"^\s+{name}\s", helptext, re.M), helptext
    out = run.command("run nosuch")
    assert "run: no program nosuch" in out
    names = re.search(r"programs: (.*)\n", out).group(1).split()
    assert {"hello", "share", "badcalls", "device", "crash"} <= set(names)


def test_two_domains_share_a_realm_at_the_same_address(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 2)
    va = make_shared(run, 0x1234)
    seen = []
    for _ in range(2):
        out = run.command(f"run share read {va:#x} 0x1234")
        read = re.search(rf"share: domain (\d+) read ([0-9a-f]+) at {va:#010x}\n", out)
        wrote = re.search(rf"share: domain (\d+) wrote ([0-9a-f]+) at {va:#010x}\n", out)
        assert read and wrote, out
        seen.append((int(read.group(1)), int(read.group(2), 16), int(wrote.group(2), 16)))
    # each domain saw the write of the one before, at the same address
    assert [(v, w) for _, v, w in seen] == [(0x5EED0001, 0x5EED0002), (0x5EED0002, 0x5EED0003)]
    assert seen[0][0] != seen[1][0]
    state = realms_state(run)
    assert re.search(rf"{va:#010x}-{va + 0xFFF:#010x}\s+4 KiB node 0  access 00001234:rw--o", state)
    assert run.command(f"run share destroy {va:#x} 0x1234").count("destroy_realm") == 1
    assert realms_state(run).startswith("free frames: 0:224/224 1:496/496")


def test_a_domain_without_the_key_is_stopped_with_a_logged_reason(kernel_elf: Path) -> None:
    run = boot(kernel_elf)
    va = make_shared(run, 0x1234)
    out = run.command(f"run share read {va:#x} 0x999")
    match = re.search(rf"domain (\d+): stopped: load page fault at {va:#010x} \(pc 0x[0-9a-f]+\): "
                      rf"no key of the domain is on realm {va:#010x}'s access list\n", out)
    assert match, out
    assert "share: stopped" in out and "wrote" not in out
    out = run.command("run share read 0x00500000 0x1234")
    assert "stopped: load page fault at 0x00500000" in out and "no realm at this address" in out
    # nothing was written, and the right key still opens the realm
    assert f"read 5eed0001 at {va:#010x}" in run.command(f"run share read {va:#x} 0x1234")
    assert "panic" not in run.console


def test_bad_kernel_call_arguments_return_errors_and_change_nothing(kernel_elf: Path) -> None:
    run = boot(kernel_elf)
    va = make_shared(run, 0x1234)     # a realm that must survive untouched
    before = realms_state(run)
    out = run.command("run badcalls")
    results = dict(re.findall(r"badcalls: (.+) = (\w+)\n", out))
    assert results == {
        "make_realm unaligned size": "EALIGN",
        "make_realm size 0": "EINVAL",
        "make_realm 2 MiB": "EINVAL",
        "make_realm no rights": "EINVAL",
        "make_realm key 0": "EINVAL",
        "make_realm unknown flag": "EINVAL",
        "make_realm at kernel": "ERANGE",
        "make_realm at 0x1000": "ERANGE",
        "make_realm at unaligned": "EALIGN",
        "make_realm at own realm": "EBUSY",
        "make_realm node 200": "ERANGE",
        "make_realm two replications": "EINVAL",
        "make_realm device in RAM": "ERANGE",
        "make_realm too many frames": "ENOMEM",
        "destroy_realm unknown": "ENOREALM",
        "destroy_realm wrong key": "EKEY",
        "destroy_realm not the base": "ENOREALM",
        "set_access wrong key": "EKEY",
        "set_access bad rights": "EINVAL",
        "set_ops unknown realm": "ENOREALM",
        "set_ops wrong key": "EKEY",
        "set_ops 17 ops": "EINVAL",
        "set_ops list in kernel": "EFAULT",
        "set_ops op past the realm": "EINVAL",
        "set_ops op unaligned": "EINVAL",
        "realm_info unknown": "ENOREALM",
        "realm_info into kernel": "EFAULT",
        "realm_info into code": "EFAULT",
        "realm_info unknown flags": "EINVAL",
        "realm_info next past the end": "ENOREALM",
        "vp_info 64": "ENOVP",
        "vp_info into kernel": "EFAULT",
        "domain_info 64": "ENOREALM",
        "domain_info own into code": "EFAULT",
        "make_domain key 0": "EINVAL",
        "destroy_domain unknown": "ENOREALM",
        "destroy_domain own, wrong key": "EKEY",
        "destroy_domain unknown flags": "EINVAL",
        "puts null": "EFAULT",
        "puts kernel": "EFAULT",
        "puts too long": "EINVAL",
        "call 99": "ENOSYS",
    }, out
    assert set(results.values()) <= set(ERRORS.values())
    assert "badcalls: after them, realm_info ok, 0 ops" in out    # the bad set_ops set nothing
    assert "badcalls: exit 0" in out
    # the same realms with the same access lists, and every frame back in its pool
    assert realms_state(run) == before
    assert f"read 5eed0001 at {va:#010x}" in run.command(f"run share read {va:#x} 0x1234")


@pytest.mark.parametrize(("how", "reason"), [
    ("null", r"load page fault at 0x00000000 \(pc 0x[0-9a-f]+\): no realm at this address"),
    ("kernel", r"load page fault at 0xc0000000 \(pc 0x[0-9a-f]+\): no realm at this address"),
    ("illegal", r"illegal instruction \(pc 0x[0-9a-f]+, stval 0x0\)"),
    ("magic", r"store page fault at 0x7ffff000 \(pc 0x[0-9a-f]+\): the magic page is read-only"),
    ("misaligned", r"load address misaligned \(pc 0x[0-9a-f]+, stval 0x[0-9a-f]+2\)"),
    ("jump", r"instruction page fault at 0x40000000 \(pc 0x40000000\): no realm at this address"),
    ("readonly", r"store page fault at (0x[0-9a-f]+) \(pc 0x[0-9a-f]+\): "
                 r"the domain's keys give no write right on realm \1"),
    ("invoke", r"instruction page fault at (0x[0-9a-f]+) \(pc \1\): protected invocation of \1, "
               r"which is not an operation of realm \1 \(it has 0\)"),
])
def test_a_user_error_stops_the_program_never_the_kernel(kernel_elf: Path, how: str,
                                                         reason: str) -> None:
    run = boot(kernel_elf, 2)
    out = run.command(f"run crash {how}")
    assert re.search(rf"domain \d+: stopped: {reason}\n", out), out
    assert "crash: stopped" in out
    assert ("crash: read 0\n" in out) == (how == "readonly")   # reading was allowed
    assert "2 up, 0 panicked" in run.command("status")
    assert "hello: exit 0" in run.command("run hello")
    state = realms_state(run)
    if how in ("readonly", "invoke"):
        # the realm the program made outlives it, open nowhere now, with the rights it was made with
        rights = {"readonly": "r---o", "invoke": "---io"}[how]
        assert re.search(rf"access 000c4a54:{rights}  open in\n", state), state
        assert "free frames: 0:223/224 1:496/496" in state
    else:
        assert state.startswith("free frames: 0:224/224 1:496/496")


def test_a_device_realm_reads_the_nodes_registers_from_user_mode(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 4)
    out = run.command("run device")
    assert re.search(r"device: doorbells at 0x[0-9a-f]+: NODE_ID 0, NODE_COUNT 4; "
                     r"magic page: node 0 of 4\n", out), out
    assert "device: exit 0" in out
    # a domain that make_domain made is not allowed devices: its VP's request is refused
    out = run.command("run device child")
    assert "device: a domain not allowed devices: make_realm: EPERM\n" in out, out
    assert "device: exit 0" in out, out
    # the same physical address from a domain on node 3 reaches node 3's own registers
    start = len(run.console)
    assert run.command("spawn 3 device") == ""
    wait_console(run, r"device: doorbells at 0x[0-9a-f]+: NODE_ID 3, NODE_COUNT 4; "
                      r"magic page: node 3 of 4\n", start)
    wait_console(run, r"device: exit 0\n", start)


def wait_console(run: KernelRun, pattern: str, start: int, rounds: int = 4000) -> re.Match[str]:
    """Run until pattern shows anywhere in the console after index start.

    Programs spawned on other nodes print through the king's console ring, so
    their lines may come before or after the monitor's prompt.
    """
    regex = re.compile(pattern)
    for _ in range(rounds):
        match = regex.search(run.console, start)
        if match:
            return match
        run.run_cycles(10_000)
    raise AssertionError(f"no {pattern!r} in the console:\n{run.console[start:]}")


def spawn_watcher(run: KernelRun, node: int, va: int, key: int) -> int:
    """`watch` on another node, reading va with key; returns its domain number."""
    start = len(run.console)
    assert run.command(f"spawn {node} watch {va:#x} {key:#x}") == ""
    seen = wait_console(run, rf"watch: domain (\d+) on node {node} sees 5eed0001 at {va:#010x}\n",
                        start)
    return int(seen.group(1))


def test_domains_on_two_nodes_see_each_others_writes(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 4)
    va = make_shared(run, 0x1234)
    watcher = spawn_watcher(run, 2, va, 0x1234)
    start = len(run.console)
    out = run.command(f"run share read {va:#x} 0x1234")
    writer = int(re.search(rf"share: domain (\d+) wrote 5eed0002 at {va:#010x}", out).group(1))
    assert writer != watcher
    # the watcher, running meanwhile on node 2 in its own domain, sees the write at the same address
    wait_console(run, rf"watch: domain {watcher} sees 5eed0002 at {va:#010x}\n", start)
    assert "spawn: node 2 is running a program" in run.command("spawn 2 hello")


@pytest.mark.parametrize("how", ["destroy", "revoke"])
def test_shootdown_makes_the_other_nodes_fault_instead_of_reading_stale_memory(
        kernel_elf: Path, how: str) -> None:
    run = boot(kernel_elf, 4)
    va = make_shared(run, 0x1234)
    key = 0x1234
    if how == "revoke":
        key = 0x77     # a read-only key that the owner grants, then revokes
        assert "): ok" in run.command(f"run share grant {va:#x} 0x1234 0x77 1")
    watchers = {node: spawn_watcher(run, node, va, key) for node in (1, 2, 3)}
    flushes = [run.node_field(node, "tlb_flushes") for node in (1, 2, 3)]
    start = len(run.console)
    if how == "destroy":
        assert "destroy_realm(" in run.command(f"run share destroy {va:#x} 0x1234")
        reason = "no realm at this address"
    else:
        assert "): ok" in run.command(f"run share grant {va:#x} 0x1234 0x77 0")
        reason = f"no key of the domain is on realm {va:#010x}'s access list"
    # every node was made to flush its TLB before the call returned, so its next read faulted
    assert [run.node_field(node, "tlb_flushes") for node in (1, 2, 3)] == [f + 1 for f in flushes]
    for domain in watchers.values():
        stopped = wait_console(run, rf"domain {domain}: stopped: load page fault at {va:#010x} "
                                    rf"\(pc 0x[0-9a-f]+\): (.*)\n", start)
        assert stopped.group(1) == reason
    assert not re.search(r"watch: domain \d+ sees (?!5eed0001)", run.console)
    assert "4 up, 0 panicked" in run.command("status")


def test_a_long_program_survives_clock_interrupts_in_kernel_calls(kernel_elf: Path) -> None:
    """bench makes thousands of kernel calls over many ticks: interrupts arrive in U mode and
    inside kernel calls, and the program and the monitor both come through intact."""
    run = boot(kernel_elf)
    ticks = run.node_field(0, "ticks")
    out = run.command("run bench")
    counts = {name: int(n) for name, n in re.findall(r"bench: ([\w-]+) end (\d+) \d+\n", out)}
    assert counts == {"call": 2000, "open-fault": 32, "page-fault": 96, "touch": 128,
                      "make-destroy": 200, "make": 200, "destroy": 200, "swi": 2000,
                      "uswitch": 4002}, out
    assert "bench: exit 0" in out
    assert run.node_field(0, "ticks") - ticks > 20
    assert realms_state(run).startswith("free frames: 0:224/224")
    assert "hello: exit 0" in run.command("run hello")


@pytest.mark.parametrize("policy", ["none", "create", "open", "demand"])
def test_replicated_code_is_fetched_from_the_nodes_own_memory(kernel_elf: Path, policy: str) -> None:
    """A program's code lives on the king; node 3 runs it from its own copy, unless not replicated."""
    run = boot(kernel_elf, 4)
    assert f"programs' code is replicated: {policy}\n" == run.command(f"replicate {policy}")
    before = [node.cpu.remote_fetches for node in run.machine.nodes]
    start = len(run.console)
    assert run.command("spawn 3 hello") == ""
    banner = wait_console(run, r"hello: domain \d+, code (0x[0-9a-f]+)-0x[0-9a-f]+ on node 0, "
                               r"data 0x[0-9a-f]+-0x[0-9a-f]+ on node 3\n", start)
    wait_console(run, r"hello from domain \d+ on node 3 of 4", start)
    wait_console(run, r"hello: exit 0\n", start)
    fetched = [node.cpu.remote_fetches - b for node, b in zip(run.machine.nodes, before, strict=True)]
    assert fetched[:3] == [0, 0, 0]
    if policy == "none":
        assert fetched[3] > 0         # every instruction of hello came through the switch
    else:
        assert fetched[3] == 0        # from node 3's copy
    assert int(banner.group(1), 16) > 0
    # the copies went back to their pools with the realm (once node 3 has cleaned up)
    for _ in range(100):
        state = realms_state(run)
        if state == "free frames: 0:224/224 1:496/496 2:496/496 3:496/496\n":
            break
    assert state == "free frames: 0:224/224 1:496/496 2:496/496 3:496/496\n"


@pytest.mark.parametrize("policy", ["open", "demand"])
def test_a_program_on_two_nodes_runs_its_code_from_each_nodes_copy(kernel_elf: Path, policy: str) -> None:
    """threads' VPs run on node 2 (where it was spawned) and node 3: the domain opened its code
    realm once, on node 2, and node 3 still gets a copy at its first touch."""
    run = boot(kernel_elf, 4)
    run.command(f"replicate {policy}")
    before = [node.cpu.remote_fetches for node in run.machine.nodes]
    start = len(run.console)
    assert run.command("spawn 2 threads 4 200 rr") == ""
    wait_console(run, r"threads: vp 3 on node 3: \d+ processes done", start)
    wait_console(run, r"threads: exit 0\n", start)
    fetched = [node.cpu.remote_fetches - b for node, b in zip(run.machine.nodes, before, strict=True)]
    assert fetched == [0, 0, 0, 0], fetched


def test_make_domain_gives_the_maker_the_new_domains_descriptor(kernel_elf: Path) -> None:
    run = boot(kernel_elf)
    out = run.command("run family 0x4242 keep")
    made = re.search(r"family: domain (\d+) made domain (\d+), descriptor (0x[0-9a-f]+) "
                     r"\(magic 44595350\), gave it key ([0-9a-f]+)\n", out)
    assert made, out
    parent, child, desc = int(made.group(1)), int(made.group(2)), int(made.group(3), 16)
    assert child != parent and "family: exit 0" in out
    # the new domain outlives its maker, with its descriptor open in it; the maker's key
    # reads and writes the descriptor but may not destroy it as a realm
    state = realms_state(run)
    assert re.search(rf"{desc:#010x}-{desc + 0xFFF:#010x}\s+4 KiB node 0  access 00004242:rw---"
                     rf"  open in {child}\n", state), state
    assert f"destroy_realm({desc:#010x}): EKEY" in run.command(f"run share destroy {desc:#x} 0x4242")
    assert f"{desc:#010x}" in realms_state(run)


def test_destroy_domain_takes_its_makers_key(kernel_elf: Path) -> None:
    run = boot(kernel_elf)
    out = run.command("run family 0x4242")
    assert ("family: destroy_domain with another key: EKEY\nfamily: destroy_domain: ok\n"
            "family: destroy_domain again: ENOREALM\n") in out, out
    assert realms_state(run) == "free frames: 0:224/224\n"


def test_a_panicked_node_does_not_hold_up_a_shootdown(kernel_elf: Path) -> None:
    run = boot(kernel_elf, 4)
    va = make_shared(run, 0x1234)
    spawn_watcher(run, 2, va, 0x1234)
    start = len(run.console)
    run.command("panic 2")
    wait_console(run, r"panic: node 2 stopped; the other nodes run on\n", start)
    # node 2 had the realm mapped, but it runs no user code any more: destroy does not wait for it
    assert "destroy_realm(" in run.command(f"run share destroy {va:#x} 0x1234")
    assert "3 up, 1 panicked" in run.command("status")
    assert f"{va:#010x}" not in realms_state(run)
