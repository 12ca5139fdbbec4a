"""Psyche-aware gdb commands, loaded with `source gdbfront/gdbext/psyche.py` (gdbfront's sessions
and `psyche gdb` do it themselves):

    (gdb) psyche nodes
    (gdb) print $psyche_record(3).ticks

This file is the entry: the `psyche` prefix command and its list of subcommands; the commands
themselves are in the files beside it, one subject each: kernel.py (reading the kernel through
gdb's types, shared), nodes.py (`nodes`, `node N`, `locks`, `heap`, the `$psyche_*` functions),
vm.py (`realms`, `domains`, `vps`, `calls`, `magic [N]`), symbols.py (`symbols`), calls.py
(`step-call`, `finish-call`).  Each command
takes `-json` to print its data for programs (gdbfront's tests read that).  It all runs inside
gdb's own Python: gdb and the standard library only.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

import gdb

#: Every subcommand and its line in `psyche`'s list; an unknown one is an error naming these.
SUBCOMMANDS = {
    "nodes": ("", "every node: kernel state, lld state, pc and function, ticks, thread"),
    "node": ("N", "one node in detail: counters, threads, heap, panic"),
    "locks": ("", "every spin lock and semaphore: holder, waiters, counts"),
    "heap": ("", "the shared heap and every node's local heap"),
    "realms": ("", "the kernel map: every realm, its frames, access list, domains, operations"),
    "domains": ("", "every protection domain: descriptor, keys, open realms, page tables"),
    "vps": ("", "every virtual processor: node, domain, state, calls it serves and awaits"),
    "calls": ("", "protected calls in progress, chain by chain"),
    "magic": ("[N]", "a node's magic page: ticks, running VP, ready queues, VP statistics"),
    "symbols": ("[--auto]", "add-symbol-file for every user program loaded, at its address"),
    "step-call": ("", "run into the protected call this line makes: stop in its operation"),
    "finish-call": ("[-return]", "run until the call this VP serves returns: stop in its caller"),
}


class PsycheCommand(gdb.Command):
    """Psyche kernel commands: psyche nodes | node N | locks | heap | realms | domains | vps | calls |
magic [N] (each takes -json) | symbols | step-call | finish-call."""

    def __init__(self) -> None:
        super().__init__("psyche", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, argument: str, from_tty: bool) -> None:
        if argument.strip():
            # gdb hands the prefix command whatever is not one of its subcommands: a typo is an
            # error (a script must not go on as if it had its table), not the help text.
            raise gdb.GdbError(f"psyche: no subcommand {argument.split()[0]!r}; the subcommands are "
                               f"{', '.join(SUBCOMMANDS)}")
        usages = {name: (name + " " + usage).strip() for name, (usage, _) in SUBCOMMANDS.items()}
        width = max(map(len, usages.values()))
        for name, (_, what) in SUBCOMMANDS.items():
            gdb.write(f"psyche {usages[name]:{width}} {what}\n")
        gdb.write("the tables and symbols take -json; functions: $psyche_node(), $psyche_record([N]), "
                  "$psyche_ticks([N]), $psyche_pc(N)\n")


def _package() -> str:
    """Make this directory importable as gdbfront.gdbext, whatever gdb's Python has.

    The gdbfront package itself imports pygdbmi, which gdb's own Python (the system's) does not
    have: its parents are put in sys.modules as bare packages over their directories, so that the
    extension's files import each other as the package they are, without running gdbfront's
    __init__.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    for name, path in (("gdbfront", os.path.dirname(here)), ("gdbfront.gdbext", here)):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package
    return "gdbfront.gdbext"


PsycheCommand()
for _part in ("nodes", "vm", "symbols", "calls"):
    for _command in importlib.import_module(f"{_package()}.{_part}").COMMANDS:
        _command()
