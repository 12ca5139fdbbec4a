"""Console input for a user-level shell (docs/kernel-interface.md, "Console input").

The program is psyche/user/progs/echoline.c, a toy shell: it attaches as the console's user reader
and prints `echo: LINE` for every line the monitor's `shell` forwards to it, until `quit`. Each
test spawns it on another node and types to the king's console as a user would; the monitor must
stay reachable throughout (`!CMD`), and take the input back when the shell goes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from psyche.kernel.harness import PROMPT, KernelRun


@pytest.fixture
def run(kernel_elf: Path) -> KernelRun:
    run = KernelRun(3, elf=kernel_elf)
    run.boot()
    return run


def spawn_echoline(run: KernelRun, node: int = 1, mode: str = "") -> int:
    """Start echoline on `node`; its VP's number once it has attached."""
    run.command(f"spawn {node} echoline {mode}".rstrip())
    vp = int(run.wait_for(rf"echoline: attached on node {node}, vp (\d+)\n").group(1))
    run.wait_for(re.escape("echo> "))
    return vp


def shell(run: KernelRun, vp: int) -> None:
    run.type("shell\r")
    run.wait_for(rf"shell: input goes to vp {vp}; ")


def printed(run: KernelRun, pattern: str, since: int, rounds: int = 200_000) -> None:
    """Run until the console shows `pattern` after index `since`, wherever the last wait stopped:
    another node's output reaches the console through the king, so it may come before or after
    what the king printed meanwhile."""
    for _ in range(rounds):
        if re.search(pattern, run.console[since:]):
            return
        run.run_round()
    raise AssertionError(f"no {pattern!r} on the console; console:\n{run.console[since:]}")


def say(run: KernelRun, line: str) -> None:
    """Type a line to the shell and wait for its echo."""
    run.type(line + "\r")
    run.wait_for(re.escape(f"echo: {line}\necho> "))


def test_a_shell_on_another_node_gets_the_lines_and_the_monitor_stays_reachable(run: KernelRun) -> None:
    vp = spawn_echoline(run)
    # attaching takes nothing from the monitor: commands still run
    assert "3 nodes: 3 up" in run.command("status")
    assert f"console reader: vp {vp} (the monitor has the input), 0 lines waiting" in run.command("vps")

    shell(run, vp)
    say(run, "hello world")
    say(run, "")                                   # an empty line is a line
    run.type("!status\r")                          # the fallback: one monitor command
    run.wait_for(r"3 nodes: 3 up, 0 panicked(.|\n)*node  state")
    run.type("!threads 1\r")
    run.wait_for(r"node 1 threads(.|\n)*daemon +blocked .*waits on software interrupt")
    say(run, "still here")
    assert PROMPT not in run.console[run.console.index("shell: input goes to"):]

    since = len(run.console)
    run.type("quit\r")
    run.wait_for(rf"shell: vp {vp} detached; the monitor has the input\n{re.escape(PROMPT)}")
    printed(run, r"echoline: detach: ok\necholine: bye\necholine: exit 0\n", since)
    assert "echo: !" not in run.console            # the shell never saw the monitor's lines
    assert "unknown command" not in run.console    # ... nor the monitor the shell's
    out = run.command("vps")
    # the 4 lines typed for it, and an empty one after `shell` and after each `!CMD`, to prompt again
    assert "console reader: none; 7 lines forwarded, 0 dropped" in out, out
    assert "hello: exit 0" in run.command("run hello")


def test_shell_without_a_reader_says_so_and_changes_nothing(run: KernelRun) -> None:
    out = run.command("shell")
    assert out == "shell: no user shell is attached (the user level starts at boot when the machine " \
                  "has a file server, `psyche up --files DIR`; or `spawn 1 echoline`)\n"
    assert "ticks (100 Hz)" in run.command("ticks")
    assert "shell " in run.command("help")
    # a `!` line is the monitor's in monitor mode too
    assert "3 nodes: 3 up" in run.command("!status")


def test_lines_typed_right_after_shell_go_to_the_shell(run: KernelRun) -> None:
    """The monitor routes lines in the order they were typed, even typed ahead."""
    vp = spawn_echoline(run)
    run.type("shell\rearly\r")
    run.wait_for(rf"shell: input goes to vp {vp}")
    run.wait_for(re.escape("echo: early\n"))
    run.type("quit\r")
    run.wait_for(re.escape(PROMPT))
    assert "early: unknown command" not in run.console


def test_one_reader_at_a_time_and_not_under_run(run: KernelRun) -> None:
    spawn_echoline(run, 1)
    run.command("spawn 2 echoline")
    run.wait_for(r"echoline: attach: EBUSY\necholine: exit 1\n")
    # `run` holds the monitor until the program ends: nobody could forward it a line
    out = run.command("run echoline")
    assert "echoline: attach: EPERM\necholine: exit 1\n" in out, out


def test_the_calls_errors_and_a_bad_buffer_leaves_the_line(run: KernelRun) -> None:
    run.command("spawn 1 echoline probe")
    run.wait_for(r"echoline: read before attach: EPERM\n"
                 r"echoline: detach before attach: EPERM\n"
                 r"echoline: attach again: ok\n"
                 r"echoline: attached on node 1, vp (\d+)\n")
    run.type("shell\r")
    run.wait_for("shell: input goes to vp")
    # EFAULT first, then the same line is still there; at most 8 bytes, the rest dropped
    run.type("abcdefghijk\r")
    run.wait_for(re.escape("echoline: bad buffer: EFAULT\necho: abcdefgh\necho> "))
    run.type("xy\r")
    run.wait_for(re.escape("echoline: bad buffer: EFAULT\necho: xy\necho> "))
    since = len(run.console)
    run.type("quit\r")
    run.wait_for(re.escape(PROMPT))
    printed(run, r"echoline: exit 0\n", since)


def test_a_reader_that_ends_without_detaching_gives_the_input_back(run: KernelRun) -> None:
    vp = spawn_echoline(run, 2, "leave")
    shell(run, vp)
    say(run, "one")
    since = len(run.console)
    run.type("quit\r")
    run.wait_for(rf"shell: vp {vp} ended; the monitor has the input\n{re.escape(PROMPT)}")
    printed(run, r"echoline: bye\necholine: exit 0\n", since)
    assert "detach:" not in run.console
    assert "console reader: none" in run.command("vps")
    # the console is free again: another shell may attach
    vp = spawn_echoline(run, 1)
    shell(run, vp)
    say(run, "two")
    run.type("quit\r")
    run.wait_for(re.escape(PROMPT))


def test_bang_monitor_takes_the_input_back_and_shell_gives_it_again(run: KernelRun) -> None:
    vp = spawn_echoline(run)
    shell(run, vp)
    say(run, "before")
    run.type("!monitor\r")
    run.wait_for(re.escape("shell: the monitor has the input; `shell` gives it back\n" + PROMPT))
    # the monitor has the input: commands run, the shell sees nothing
    assert "ticks (100 Hz)" in run.command("ticks")
    assert f"console reader: vp {vp} (the monitor has the input)" in run.command("vps")
    shell(run, vp)
    say(run, "after")
    run.type("quit\r")
    run.wait_for(rf"shell: vp {vp} detached; the monitor has the input\n{re.escape(PROMPT)}")
    assert "echo: ticks" not in run.console and "echo: vps" not in run.console
