"""Builds the node CPU's hot path with mypyc (see docs/cpu.md).

PSYCHE_PURE=1 at build time skips compilation; the same modules then run as
plain Python.  The sources' hash is recorded after a successful build so that
an import can refuse a compiled module that no longer matches its source
(psyche/machine/hotpath.py).
"""

import importlib.util
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

_spec = importlib.util.spec_from_file_location(
    "_psyche_hotpath", os.path.join(os.path.dirname(os.path.abspath(__file__)), "psyche/machine/hotpath.py")
)
assert _spec is not None and _spec.loader is not None
hotpath = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hotpath)


def compiled_extensions() -> list:
    if os.environ.get("PSYCHE_PURE") == "1":
        print("PSYCHE_PURE=1: building without mypyc", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    extensions = mypycify([path for _, path in hotpath.HOT_MODULES], opt_level="3")
    for ext in extensions:
        # mypyc's C is all gotos, and GCC's static "goto means unlikely" guess
        # lays the interpreter loop out backwards (its hot paths become taken
        # jumps); without the guesses the loop runs in source order, faster.
        # Nothing interposes the extension's own functions, so calls between
        # them (to_i32, _sync, ...) may be inlined instead of going through the PLT.
        ext.extra_compile_args += ["-fno-guess-branch-probability", "-fno-semantic-interposition"]
    return extensions


class BuildExtRecordingHash(build_ext):
    """Record the sources' hash only once their compiled modules are built.

    Recorded earlier, a failed build would leave the old modules looking up
    to date; as it is, they keep the old hash and the import refuses them.
    """

    def run(self) -> None:
        super().run()
        if self.extensions:
            hotpath.record_source_hash()


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": BuildExtRecordingHash})
