"""The conformance suite's marker (registered here, so that pyproject.toml stays as it is)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: gdb against QEMU's gdbstub and against the mux, transcripts compared")
