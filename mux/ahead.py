"""Steps the mux answers from the ISA before lld makes them: one node's, owned by its handle.

gdb steps over a breakpoint, and single-steps, one instruction at a time, each an lld
round trip through the debug line and the machine process.  Most instructions touch
only registers: what they do is the ISA's alone (`psyche.rv32.execute`), once lld has
said that the code at pc fetches without a trap or a side effect (CODE_PLAIN in an
expedited status).  Such a step, with interrupts masked, is answered at once with the
status lld would reply with (`predict`), and held:

* they are made only from the code they were answered from: the request that makes
  them names the CRC of the code window lld sent with the stop (CODE_CHECK), and lld
  makes none if that code changed since (another node wrote it), which is reported;
  so steps are answered only within that window (256 bytes around pc);
* a RESUME that comes next makes the held steps first (its STEPS count): gdb's step
  over a breakpoint and its continue cost one round trip, as on hardware;
* so does a STEP the ISA does not decide (a load, a store): a run of `stepi` costs
  one round trip at each of those and none in between;
* anything else anyone asks lld about the node (except READ_MEM: the steps wrote no
  memory) sends them first, as one counted STEP, and so sees the node after them (the
  link calls `release` before it queues the request); so does a short timer, so a
  node never stays behind what gdb was shown for longer than that.

lld's reply to a counted STEP is checked against the answer given (`StepStats`).  A
step the line or lld did not make is reported to whoever asks next (`StepNotMade`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from lld import protocol as p
from mux.link import LinkError, LldLink
from mux.target_xml import PC_REGNUM
from psyche import rv32

#: How long held steps wait for a RESUME before they go as a STEP of their own: longer than gdb
#: takes from a step's answer to the continue after it (half a millisecond here, a few under
#: load), short beside anything a person does.
HOLD_SECONDS = 0.01
#: Held steps go as a STEP of their own beyond this many (a long `stepi N` in plain code).
MAX_HELD = 256

log = logging.getLogger(__name__)


class StepNotMade(LinkError):
    """A step the mux answered itself could not be made on the node (the line failed, or lld
    refused it): what gdb was shown after it is not where the node is."""

    def __init__(self, node: int, why: str) -> None:
        super().__init__(f"node {node}: the last step was shown but not made ({why}); "
                         "the node is still before it")


@dataclasses.dataclass
class StepStats:
    """Steps answered from the ISA, and how lld's replies bore them out."""

    predicted: int = 0
    #: Made by the STEP or RESUME that followed them (its reply is after it: nothing to check).
    folded: int = 0
    #: lld's reply to their STEP differed from the answer given: a bug in psyche/rv32.py or in
    #: lld's CODE_PLAIN.
    mispredicted: int = 0
    #: Not made (the line failed, lld refused them).
    lost: int = 0


@dataclasses.dataclass(frozen=True)
class Held:
    """Steps answered and not yet made: how many, from which gen and which code (the CRC of the
    code window lld sent: they are made only if it is unchanged), and where they lead."""

    count: int
    guard: int
    code_crc: int
    predicted: p.Status


def predict(status: p.Status, registers: list[int], code: bytes | None) -> p.Status | None:
    """The status a masked STEP of a stopped node replies with, if the ISA alone says what it is.

    `registers` are x0..x31 and pc at `status`, `code` the 4 bytes at pc.  None unless lld
    said the code at pc is plain and the instruction touches only registers.
    """
    if (not status.stopped or code is None or not status.code_flags & p.CODE_PLAIN
            or status.flags & (p.FLAG_WAITING | p.FLAG_PAST)):
        return None
    outcome = rv32.execute(int.from_bytes(code, "little"), status.pc, registers)
    if outcome is None:
        return None
    rd, value, next_pc = outcome
    after = list(registers)
    if rd:
        after[rd] = value
    after[PC_REGNUM] = next_pc
    # The code check names the code window lld sent with the stop: further steps are answered
    # only within it.
    same_window = next_pc // p.CODE_WINDOW == status.pc // p.CODE_WINDOW
    # cycles: one per instruction, as far as anyone here reads it (time the node spent stopped
    # and remote fetches add to lld's figure; nothing in the mux looks at it).
    return p.Status(
        state=status.state, reason=p.REASON_STEP, priv=status.priv, flags=0,
        stops=(status.stops + 1) & rv32.M32, gen=(status.gen + 1) & rv32.M32, pc=next_pc, data_addr=0,
        cycles=status.cycles + 1, instret=status.instret + 1, registers=tuple(after),
        code_flags=status.code_flags if same_window else 0, code_crc=status.code_crc if same_window else 0)


def refusal(reply: p.Reply) -> str:
    return "lld: " + (reply.error.describe() if reply.error is not None
                      else p.ERROR_NAMES.get(reply.status, str(reply.status)))


class StepsAhead:
    """One node's steps answered ahead of lld (the module's docstring says how)."""

    def __init__(self, node: int, link: LldLink, *, made: Callable[[p.Status, int], None],
                 lost: Callable[[], None], prefetch: Callable[[], tuple[p.ReadMem, ...]],
                 epoch: Callable[[], int]) -> None:
        self.node = node
        self.link = link
        self.stats = StepStats()
        self._made = made
        self._lost = lost
        self._prefetch = prefetch
        self._epoch = epoch
        self._held: Held | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._confirming: asyncio.Task[None] | None = None
        self._failure: StepNotMade | None = None

    @property
    def in_flight(self) -> bool:
        """Steps released and not yet confirmed."""
        return self._confirming is not None and not self._confirming.done()

    def hold(self, before: p.Status, predicted: p.Status) -> None:
        """One more step answered (from `before`, to `predicted`), to be made later."""
        held = self._held
        if held is None:
            self.link.hold(self.node, self.release)
            held = Held(0, before.gen, before.code_crc, predicted)
        self._held = Held(held.count + 1, held.guard, held.code_crc, predicted)
        self.stats.predicted += 1
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(HOLD_SECONDS, self.release)
        if self._held.count >= MAX_HELD:
            self.release()

    def fold(self) -> Held | None:
        """The held steps, for a STEP or RESUME that makes them first itself; none are left held."""
        held = self._take()
        if held is not None:
            self.stats.folded += held.count
        return held

    def _take(self) -> Held | None:
        held, self._held = self._held, None
        if held is not None:
            self.link.unhold(self.node)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return held

    def release(self) -> None:
        """Send the held steps now, as one counted STEP, ahead of whatever comes next."""
        held = self._take()
        if held is None:
            return
        epoch = self._epoch()
        step = p.Step(held.guard, False, expedite=True, prefetch=self._prefetch(), count=held.count,
                      code_crc=held.code_crc)
        reply = self.link.submit(self.node, step)
        self._confirming = asyncio.get_running_loop().create_task(self._confirm(reply, held, epoch))

    async def _confirm(self, reply_future: asyncio.Future[p.Reply], held: Held, epoch: int) -> None:
        """lld's reply to released steps: it must be the answer given.

        Steps lld refuses are not tried again: lld refuses them because the node changed
        since the stop they were answered from, and what gdb was shown is not where the
        node is.
        """
        try:
            reply = await reply_future
        except LinkError as e:
            self._failure = self.failed(str(e))
            return
        if not reply.ok or not isinstance(reply.value, p.Status):
            self._failure = self.failed(refusal(reply))
            return
        made, predicted = reply.value, held.predicted
        if (made.registers, made.pc, made.reason, made.instret, made.gen) != (
                predicted.registers, predicted.pc, predicted.reason, predicted.instret, predicted.gen):
            self.stats.mispredicted += 1
            log.error("node %d: lld's steps gave %s, the mux answered %s", self.node, made, predicted)
        self._made(made, epoch)

    def failed(self, why: str) -> StepNotMade:
        """Steps answered were not made: the node's handle forgets what it showed; the error."""
        self.stats.lost += 1
        self._lost()
        return StepNotMade(self.node, why)

    async def settled(self) -> None:
        """Wait for lld's reply to released steps; StepNotMade (once) if they were not made."""
        confirming = self._confirming
        if confirming is not None:
            await asyncio.shield(confirming)
            if self._confirming is confirming:
                self._confirming = None
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    async def confirmed(self) -> None:
        """The node made every step answered (sent now if held); StepNotMade if one was not."""
        self.release()
        await self.settled()
