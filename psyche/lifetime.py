"""Child processes that end with their parent, however the parent ends.

`psyche up` owns its machine process (docs/failure-modes.md).  A parent that
exits normally stops its child itself; one killed with SIGKILL runs no code at
all, so the child must be told by the kernel: Linux's parent-death signal,
`prctl(PR_SET_PDEATHSIG)`, which the kernel sends to a process when the thread
that started it ends.  It is set twice, each half closing a gap of the other:

* `psyche up` sets it in the child between fork and exec (`preexec`), and the
  child exits there if the parent has already gone: no window in which a
  parent's death goes unnoticed;
* `psyche machine --exit-with-parent` sets it again at its own start, so that
  the flag means the same thing whoever starts the machine.

Where prctl is not available (not Linux) both do nothing and say so.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
#: The signal the kernel sends a child whose parent ended: one that cannot be caught or blocked,
#: so that a machine stopped in a debugger's sense, or busy in a long round, ends all the same.
DEATH_SIGNAL = signal.SIGKILL

Prctl = Callable[[int, int, int, int, int], int]


def _prctl() -> Prctl | None:
    try:
        function: Prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


def exit_with_parent(sig: int = DEATH_SIGNAL) -> bool:
    """Have the kernel send `sig` to this process when its parent ends; False if it cannot."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def preexec(sig: int = DEATH_SIGNAL) -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child ends with the process that starts it.

    Call it in the parent (it looks up prctl there: nothing is loaded between fork and
    exec).  In the child it sets the parent-death signal and then checks that the parent
    is still the one that forked it: if the parent died in between, the signal will never
    come, and the child exits at once instead.
    """
    prctl = _prctl()
    parent = os.getpid()

    def in_child() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return in_child
