"""Which modules form the compiled hot path, and whether the build matches them.

The node CPU's hot path is compiled with mypyc when the package is installed.
A compiled module sits next to its source and Python imports it in
preference to the source, so an edit to the source would silently be ignored.
This module prevents that: the build records a hash of the hot-path sources,
and importing psyche.machine compares it with the sources on disk.

PSYCHE_PURE=1 in the environment runs the sources as plain Python even when
compiled modules are present (slower; for debugging the CPU itself).

This file is imported by setup.py by path, so it must not import psyche.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
HASH_FILE = PACKAGE_DIR / "_hotpath.sha256"

# (module name, source path relative to the repository root), in build order.
HOT_MODULES: list[tuple[str, str]] = [
    ("psyche.machine.isa", "psyche/machine/isa.py"),
    ("psyche.machine.csr", "psyche/machine/csr.py"),
    ("psyche.machine.physmem", "psyche/machine/physmem.py"),
    ("psyche.machine.mmu", "psyche/machine/mmu.py"),
    ("psyche.machine.cpu", "psyche/machine/cpu.py"),
]

REBUILD_HINT = "rebuild with `scripts/build` (or `pip install -e .`), or set PSYCHE_PURE=1 to run uncompiled"


class StaleBuildError(ImportError):
    pass


def source_hash() -> str:
    digest = hashlib.sha256()
    for _, path in HOT_MODULES:
        digest.update((REPO_ROOT / path).read_bytes())
    return digest.hexdigest()


def record_source_hash() -> None:
    HASH_FILE.write_text(source_hash() + "\n")


def _compiled_file(module: str) -> Path | None:
    stem = module.rsplit(".", 1)[1]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = PACKAGE_DIR / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


def pure_requested() -> bool:
    return os.environ.get("PSYCHE_PURE") == "1"


def mode() -> str:
    """'compiled' or 'pure': how the CPU runs in this process."""
    module = sys.modules.get("psyche.machine.cpu")
    if module is not None:
        return "pure" if str(getattr(module, "__file__", "")).endswith(".py") else "compiled"
    if pure_requested() or _compiled_file("psyche.machine.cpu") is None:
        return "pure"
    return "compiled"


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Loads the hot-path modules from their .py sources, ignoring compiled ones."""

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        for name, rel in HOT_MODULES:
            if name == fullname:
                return importlib.util.spec_from_file_location(fullname, REPO_ROOT / rel)
        return None


def check() -> None:
    """Called on import of psyche.machine: refuse a stale build, honour PSYCHE_PURE."""
    if pure_requested():
        if not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceFirst())
        return
    compiled = [name for name, _ in HOT_MODULES if _compiled_file(name) is not None]
    if not compiled:
        return
    recorded = HASH_FILE.read_text().strip() if HASH_FILE.exists() else ""
    if recorded != source_hash():
        raise StaleBuildError(
            "the compiled node CPU does not match its source "
            f"({', '.join(compiled)} were built from other sources): {REBUILD_HINT}"
        )
