"""Builds the node CPU's hot path with mypyc (see docs/cpu.md).

PSYCHE_PURE=1 at build time skips compilation; the same modules then run as
plain Python.  The sources' hash is recorded so that an import can refuse a
compiled module that no longer matches its source (psyche/machine/hotpath.py).
"""

import os
import sys

from setuptools import setup

import importlib.util

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

    hotpath.record_source_hash()
    return mypycify([path for _, path in hotpath.HOT_MODULES], opt_level="3")


setup(ext_modules=compiled_extensions())
