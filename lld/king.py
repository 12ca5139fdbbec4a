"""Routing at the king node: node 0's lld owns the debug line and the switch fan-out.

As in the paper (section 5): the king's debug-line handler accumulates bytes
until the terminator, looks inside the frame for its node number, and either
serves it with its own lld or raises a remote interrupt that makes the target
node's lld serve it.  Replies travel back through the king onto the line.

In the simulator this happens at round boundaries only, so host input enters
at well-defined points in simulated time (which keeps the machine deterministic):

* frames for node 0 are served at the boundary where they arrive, and so are
  frames for a stopped node with nothing in its mailbox: its lld sits waiting
  for them, and the remote interrupt finds it at once;
* frames for another node cross the switch into that node's mailbox and are
  served at the next boundary, the remote interrupt's delivery.  A running
  node is not stopped to answer: it is interrupted between two of its
  quanta for no simulated time, and runs on.

Every frame that is not a well-formed request is dropped without a word
(lld never sends anything unasked, and an answer to a corrupted header could
go to the wrong requester).  A frame whose CRC checks but that names a node
the machine does not have gets an E_NO_NODE reply from the king.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lld import protocol as p
from lld.codec import Frame, FrameDecoder, encode_frame
from lld.stub import NodeLld
from psyche.machine.hostline import HostLine

#: Most bytes taken from the debug line at one boundary, so a flood cannot stall the machine.
READ_BUDGET = 16384


@dataclass
class KingStats:
    requests: int = 0
    forwarded: int = 0
    replies: int = 0
    ignored_replies: int = 0   # reply frames seen on the input (an echoing line)
    no_node: int = 0
    dropped_full: int = 0      # forwarded frames lost to a full mailbox (the client retransmits)


class King:
    def __init__(self, line: HostLine, nodes: list[NodeLld]) -> None:
        self.line = line
        self.nodes = nodes
        self.decoder = FrameDecoder()
        self.stats = KingStats()
        #: When the debug line last delivered bytes (time.monotonic()): a debugger talks.
        self.heard_at = float("-inf")
        #: Length on the line of the last reply sent (the runner's sign of a bulk transfer).
        self.last_reply_bytes = 0

    def busy(self) -> bool:
        """True while forwarded frames wait for their remote interrupt, or replies for a round."""
        return any(node.mailbox or node.settling for node in self.nodes)

    def service(self) -> None:
        """One round boundary: answer last boundary's expedited RESUMEs, deliver its remote
        interrupts, then read the line."""
        for node in self.nodes:
            for reply in node.settled():
                self._send(reply)
        for node in self.nodes[1:]:
            if node.mailbox:
                for reply in node.serve_mailbox():
                    self._send(reply)
        data = self.line.read_available(READ_BUDGET)
        if data:
            self.heard_at = time.monotonic()
            for event in self.decoder.feed(data):
                if isinstance(event, Frame):
                    self.route(event)

    def route(self, frame: Frame) -> None:
        if frame.reply:
            self.stats.ignored_replies += 1
            return
        self.stats.requests += 1
        if frame.node >= len(self.nodes):
            self.stats.no_node += 1
            self._send(Frame(node=frame.node, seq=frame.seq, code=frame.code, reply=True,
                             status=p.E_NO_NODE,
                             payload=p.encode_error(p.E_NO_NODE, message=f"{len(self.nodes)} nodes")))
            return
        target = self.nodes[frame.node]
        if frame.node == 0 or target.waits_for_frames():   # served here, at this boundary
            reply = target.serve(frame)
            if reply is not None:
                self._send(reply)
            return
        self.stats.forwarded += 1
        if not target.deliver(frame):
            self.stats.dropped_full += 1

    def _send(self, reply: Frame) -> None:
        self.stats.replies += 1
        data = encode_frame(reply)
        self.last_reply_bytes = len(data)
        self.line.write(data)

    @property
    def bad_frames(self) -> int:
        return self.decoder.stats.bad

    def describe_stats(self) -> str:
        s = self.stats
        return (f"{s.requests} requests ({s.forwarded} forwarded), {s.replies} replies, "
                f"{self.bad_frames} bad frames, {s.dropped_full} dropped on full mailboxes")
