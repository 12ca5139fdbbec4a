"""The client end of the lld protocol, sans-IO: for the mux, the loopback driver and tests.

`LldClient` numbers requests, encodes them, matches replies to the requests
they answer, and says when a request is due for retransmission.  It never
reads a clock or a socket: the caller passes `now` (any monotonic number:
seconds, or ticks in a simulation) and moves the bytes.

Retransmission is always with the same frame (same seq), and it is safe for
every request because of the protocol's rules (docs/lld-protocol.md):

* reads (DESCRIBE, STATUS, READ_REGS, READ_MEM, LIST_*, TRANSLATE) change
  nothing;
* changes carry a guard, the node's gen they were computed against; lld
  applies one only while the gen is unchanged, and answers a repeat of the
  change that made the current gen as a duplicate.  So a retransmitted
  STEP or RESUME never steps or runs twice, and a late copy of an old
  request cannot undo a newer one;
* changes sent with ANY_GEN (allowed only for STOP, memory writes and
  breakpoint/watchpoint changes, which are idempotent) may be applied more
  than once with the same result, but are not ordered against other
  requests: use a real guard whenever order matters.

The client allows one outstanding request per node (stop-and-wait), which is
what the guards assume; requests to different nodes proceed in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lld import protocol as p
from lld.codec import Frame, FrameDecoder, encode_frame


@dataclass
class Pending:
    node: int
    seq: int
    request: p.Request
    wire: bytes
    sent_at: float
    attempts: int = 1


@dataclass(frozen=True)
class Completed:
    node: int
    seq: int
    request: p.Request
    reply: p.Reply
    attempts: int


@dataclass(frozen=True)
class Failed:
    """No reply after the last attempt: the node (or the line) is not answering."""

    node: int
    seq: int
    request: p.Request
    attempts: int


@dataclass
class ClientStats:
    sent: int = 0
    retransmitted: int = 0
    replies: int = 0
    stale_replies: int = 0     # replies to requests no longer outstanding (answers to repeats)
    undecodable: int = 0


def retransmit_safe(request: p.Request) -> bool:
    """Whether sending the request again can never do more than sending it once."""
    if not request.mutating:
        return True
    assert isinstance(request, p.Change)
    return request.guard != p.ANY_GEN or not request.needs_stop


#: Seconds between retransmissions of a REVERSE (LldClient.timeout_for).
REVERSE_TIMEOUT = 2.0


@dataclass
class LldClient:
    timeout: float = 0.25
    max_attempts: int = 40
    seq: int = 0
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    stats: ClientStats = field(default_factory=ClientStats)
    _pending: dict[int, Pending] = field(default_factory=dict)   # by node

    def timeout_for(self, request: p.Request) -> float:
        """Seconds before a retransmission: a REVERSE re-executes history (a second or more on a
        busy machine) and its node answers nothing until it is done."""
        return max(self.timeout, REVERSE_TIMEOUT) if isinstance(request, p.Reverse) else self.timeout

    def busy(self, node: int) -> bool:
        return node in self._pending

    def outstanding(self) -> list[Pending]:
        return list(self._pending.values())

    def send(self, node: int, request: p.Request, now: float) -> tuple[int, bytes]:
        """Start a request to node; returns its seq and the bytes to put on the line."""
        if node in self._pending:
            raise RuntimeError(f"node {node} already has request seq {self._pending[node].seq} outstanding")
        if not retransmit_safe(request):
            raise ValueError(f"{type(request).__name__} must name the node's gen (ANY_GEN is refused)")
        self.seq = (self.seq + 1) & 0xFFFF
        wire = encode_frame(Frame(node=node, seq=self.seq, code=request.code, payload=request.encode()))
        self._pending[node] = Pending(node, self.seq, request, wire, now)
        self.stats.sent += 1
        return self.seq, wire

    def cancel(self, node: int) -> None:
        self._pending.pop(node, None)

    def receive(self, data: bytes) -> list[Completed]:
        """Feed bytes from the line; returns the requests they completed."""
        done: list[Completed] = []
        for event in self.decoder.feed(data):
            if not isinstance(event, Frame) or not event.reply:
                continue
            pending = self._pending.get(event.node)
            if pending is None or pending.seq != event.seq or pending.request.code != event.code:
                self.stats.stale_replies += 1
                continue
            try:
                reply = p.decode_reply(event.code, event.status, event.payload)
            except p.PayloadError:
                self.stats.undecodable += 1
                continue
            del self._pending[event.node]
            self.stats.replies += 1
            done.append(Completed(event.node, event.seq, pending.request, reply, pending.attempts))
        return done

    def poll(self, now: float) -> tuple[bytes, list[Failed]]:
        """Bytes to retransmit now, and the requests that gave up."""
        out = bytearray()
        failed: list[Failed] = []
        for node, pending in list(self._pending.items()):
            if now - pending.sent_at < self.timeout_for(pending.request):
                continue
            if pending.attempts >= self.max_attempts:
                del self._pending[node]
                failed.append(Failed(node, pending.seq, pending.request, pending.attempts))
                continue
            pending.attempts += 1
            pending.sent_at = now
            self.stats.retransmitted += 1
            out += pending.wire
        return bytes(out), failed

    def next_deadline(self) -> float | None:
        """When poll() next has something to do, or None when nothing is outstanding."""
        if not self._pending:
            return None
        return min(pending.sent_at for pending in self._pending.values()) + self.timeout
