"""Loss and corruption on the debug line, injected at a chosen rate with a seed.

The lld protocol must not need a reliable line (the paper's debug line was not), and the
way to show it is to break the line on purpose.  `FrameMangler` is a sans-IO
filter over one direction of a byte stream: it cuts the stream at the
terminator and, with probability `rate` per frame, drops the frame, flips a
bit in it, or tears it (sends a prefix and no terminator, so the rest of the
frame is lost and the next frame's leading terminator ends the torn one).
`LossyLine` wraps a HostLine with one mangler per direction.

A seeded random.Random decides everything, so a lossy run is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from lld.codec import END
from psyche.machine.hostline import DEFAULT_READ_SIZE, HostLine

MODES = ("drop", "corrupt", "tear")


@dataclass
class ManglerStats:
    frames: int = 0
    dropped: int = 0
    corrupted: int = 0
    torn: int = 0

    @property
    def damaged(self) -> int:
        return self.dropped + self.corrupted + self.torn


@dataclass
class FrameMangler:
    rate: float
    seed: int = 0
    modes: tuple[str, ...] = MODES
    stats: ManglerStats = field(default_factory=ManglerStats)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"loss rate {self.rate} is not between 0 and 1")
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"modes must be drawn from {MODES}")
        self._rng = random.Random(self.seed)
        self._pending = bytearray()

    def process(self, data: bytes) -> bytes:
        """Pass data through; whole frames come out, possibly damaged, in order.

        Bytes after the last terminator are held until their terminator comes.
        """
        if self.rate == 0.0 and not self._pending:
            return data
        out = bytearray()
        for b in data:
            if b != END:
                self._pending.append(b)
                continue
            body = bytes(self._pending)
            self._pending.clear()
            if not body:
                out.append(END)
                continue
            self.stats.frames += 1
            if self._rng.random() >= self.rate:
                out += body
                out.append(END)
                continue
            mode = self._rng.choice(self.modes)
            if mode == "drop":
                self.stats.dropped += 1
            elif mode == "corrupt":
                self.stats.corrupted += 1
                damaged = bytearray(body)
                i = self._rng.randrange(len(damaged))
                damaged[i] ^= 1 << self._rng.randrange(8)
                out += damaged
                out.append(END)
            else:
                self.stats.torn += 1
                out += body[: self._rng.randrange(len(body))]
        return bytes(out)


class LossyLine(HostLine):
    """A HostLine whose frames are damaged in both directions at `rate`."""

    def __init__(self, inner: HostLine, rate: float, seed: int = 0) -> None:
        self.inner = inner
        self.incoming = FrameMangler(rate, seed)
        self.outgoing = FrameMangler(rate, seed + 1)

    def describe(self) -> str:
        return self.inner.describe()

    def fileno(self) -> int | None:
        return self.inner.fileno()

    def read_available(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        return self.incoming.process(self.inner.read_available(max_bytes))

    def write(self, data: bytes) -> None:
        out = self.outgoing.process(data)
        if out:
            self.inner.write(out)

    def pending_output(self) -> int:
        return self.inner.pending_output()

    def flush_some(self) -> None:
        self.inner.flush_some()

    def close(self) -> None:
        self.inner.close()
