"""A machine with the user level, driven through its shell as a person drives it (test helpers).

`user_world` boots `psyche up --files DIR`, waits for init to have made the servers, and hands
the console to the shell (docs/user-level.md).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gdb_util import Up, start_up

from gdbfront.console import ConsoleTap
from gdbfront.machine import PsycheMachine
from psyche.user.build import DEFAULT_OUT_DIR

SH = "psh> "
SERVER_VPS = 4                                          # names, files, loader, sh


@dataclass
class World:
    up: Up
    console: ConsoleTap
    files: Path                                         # what the host's file server serves

    def sh(self, line: str, timeout: float = 60) -> str:
        """A shell command's output, up to the next prompt."""
        return self.console.command(line, timeout=timeout, prompt=SH)

    def vps(self) -> list[list[str]]:
        """The rows of the monitor's VP table (`!vps`)."""
        out = self.sh("!vps")
        return [line.split() for line in out.splitlines() if line[:1].isdigit()]

    def realms(self) -> list[str]:
        """Each realm's address range (the monitor's `!realms`)."""
        return re.findall(r"^\s*(0x[0-9a-f]+-0x[0-9a-f]+)", self.sh("!realms"), re.M)


def program_files(directory: Path) -> Path:
    """A copy of the program files the build made, to serve (tests may add files of their own)."""
    for program in (DEFAULT_OUT_DIR / "files").iterdir():
        shutil.copy(program, directory)
    return directory


@contextmanager
def user_world(kernel_elf: Path, files: Path, nodes: int = 2) -> Iterator[World]:
    up = start_up(kernel_elf, nodes, "--files", str(files))
    console = ConsoleTap(up.console)
    try:
        console.wait_for(r"init: names, files, loader and sh are up in \d+ cycles", timeout=60)
        console.type("shell\r")
        console.wait_for(r"shell: input goes to vp \d+(.|\n)*" + re.escape(SH))
        yield World(up, console, files)
    finally:
        console.close()
        up.stop()


def placed_by(listing: str, who: str) -> list[str]:
    """The names in the shell's `programs` listing that `who` (init or the loader) placed."""
    rows = [line.split() for line in listing.splitlines()[1:]]
    return [row[1] for row in rows if len(row) > 5 and row[5] == who]


@contextmanager
def shell_machine(kernel_elf: Path, files: Path, nodes: int = 2) -> Iterator[PsycheMachine]:
    """A PsycheMachine (for gdb sessions through gdbfront's plugin) with the user level up and
    the console handed to the shell, serving the program files in files."""
    m = PsycheMachine.start(kernel_elf, nodes, extra=("--files", str(files)))
    try:
        m.console.wait_for(r"init: names, files, loader and sh are up in \d+ cycles", timeout=60)
        m.console.type("shell\r")
        m.console.wait_for(r"shell: input goes to vp \d+(.|\n)*" + re.escape(SH))
        yield m
    finally:
        m.stop()
