"""gdbfront: real gdb driven through pygdbmi for scripted debug regression tests, a pytest plugin
for them, and Psyche-aware gdb commands (docs/gdbfront.md)."""

from gdbfront.machine import PsycheMachine
from gdbfront.session import Breakpoint, Frame, GdbError, GdbSession, GdbTimeout, Stop, Watchpoint

__all__ = ["Breakpoint", "Frame", "GdbError", "GdbSession", "GdbTimeout", "PsycheMachine", "Stop",
           "Watchpoint"]
