"""The event loop the mux's processes (`psyche up`, `psyche mux`) run on: uvloop's.

Every gdb packet is one turn of the loop: a readable socket, the callback, a write.
gdb's `stepi` on RISC-V is some twenty packets and one lld round trip, and asyncio's
own selector loop spends its Python on each turn; uvloop (libuv, in C) does the same
work in a fraction of the time.  Measured with gdb-multiarch 13 on one node, side by
side on the same machine: about 1.5 times the `stepi` rate and 1.3 times the
breakpoint hits per second (docs/architecture.md, "Speed").

The mux's code is plain asyncio and runs on either loop: the in-process tests use
asyncio's, the processes users start use this one.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a uvloop event loop."""
    return uvloop.run(main)
