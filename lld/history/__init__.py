"""The machine's recent history, kept in memory, and travel in it: lld's REVERSE request.

While the machine runs, `History` keeps a bounded ring of checkpoints (the whole machine and
lld's state, in memory, every `interval` simulated cycles at a service point) and every host
input since the oldest one: what a recording keeps (psyche/machine/record.py), service point by
service point.  The machine is deterministic, so any state between two checkpoints is reached
again by restoring the first and re-executing the inputs at the same service points.

A node's place in its own execution is its *progress*: (instret, traps taken since the last
retired instruction).  Every execution step of a hart (an instruction, or the entry into a trap
or interrupt handler) makes it strictly greater, and nothing else changes it, so "the state
before node k's last step" and "the first moment node k reached progress P" are well defined.
Re-execution stops the machine at such a moment, possibly in the middle of a round: a state the
machine went through (reexecute.py says why).

The parts, each knowing only the ones above it:

* progress.py: `progress`, `vector` and `where`, the terms moments are compared in;
* checkpoints.py: `CheckpointRing`, the checkpoints and the logged inputs between them (taking,
  restoring, their cost); nothing of searches or gdb;
* reexecute.py: `Reexecution`, one segment of the ring re-executed, with a target to stop at or
  a `Search` (breakpoints, watched ranges) whose `Hit`s it notes; `HistoryError` when it does
  not go where the history went;
* navigate.py: `Navigator`, the moments each request leads to (the first one at a progress, the
  one just before a step, a search's latest or next hit) and how to get there;
* travel.py: `History`, the recorder the runner reports inputs to and what lld's requests call:
  it travels (the host's lines swapped for re-execution's, the debugger's state carried across)
  and says how the node stopped.
"""

from lld.history.checkpoints import PAGE, Checkpoint
from lld.history.progress import Progress, Where, progress
from lld.history.reexecute import Arrived, HistoryError, Hit
from lld.history.travel import DEFAULT_INTERVAL, DEFAULT_KEEP, History

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_KEEP", "PAGE", "Arrived", "Checkpoint", "History", "HistoryError",
           "Hit", "Progress", "Where", "progress"]
