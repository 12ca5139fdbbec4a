"""Hostile and odd conversations on the whole-machine port (mux/machine_port.py), in process.

The machine port adds its own packets (non-stop mode, notifications and their acknowledgements,
per-thread actions on nodes that may not exist) to everything a node's port takes.  Whatever
comes, in all-stop or non-stop mode: every packet gets at most one reply and the ones that need
one get it, nothing escapes into the event loop, a detach answers OK, and afterwards lld holds
on every node only the breakpoints the machine and the console placed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mux_rig import MuxRig, live_rig
from test_mux_fuzz import SCALE, machines_own, replies_of, reset, settle, structured

from lld.testing import TargetGuest, build_target_guest
from mux import packets as rsp
from mux.rsp import encode_frame

pytestmark = pytest.mark.timeout(600)

#: The machine port's own packets, with thread ids in and out of range (node k is thread k + 1).
MACHINE_PACKETS = st.sampled_from([
    b"QNonStop:1", b"QNonStop:0", b"QNonStop:2", b"vStopped", b"vCtrlC", b"?",
    b"vCont;t", b"vCont;t:1", b"vCont;t:2", b"vCont;t:99", b"vCont;c:1", b"vCont;c:2", b"vCont;s:2",
    b"vCont;c:1;t:2", b"vCont;s:1;c", b"vCont;c:99", b"vCont;t:0", b"vCont;t:-1",
    b"Hg1", b"Hg2", b"Hg3", b"Hg99", b"Hg0", b"Hg-1", b"Hc2", b"T1", b"T2", b"T99",
    b"qThreadExtraInfo,2", b"qThreadExtraInfo,63", b"qXfer:threads:read::0,1000", b"qfThreadInfo",
    b"Z0,80000000,4", b"z0,80000000,4",
])
#: Requests whose reply, in all-stop mode, is a stop: a ctrl-C ends them if nothing else does.
RESUMES = (rsp.Continue, rsp.Step, rsp.VCont)


@pytest.fixture(scope="module")
def guest() -> TargetGuest:
    return build_target_guest()


@pytest.fixture(scope="module")
def live(guest: TargetGuest) -> Iterator[tuple[asyncio.AbstractEventLoop, MuxRig, list[int]]]:
    yield from live_rig(guest)


def packets(guest: TargetGuest) -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.one_of(MACHINE_PACKETS, MACHINE_PACKETS, structured(guest)), max_size=12)


def test_the_machine_port_answers_every_packet_and_leaves_lld_clean(
        live: tuple[asyncio.AbstractEventLoop, MuxRig, list[int]], guest: TargetGuest) -> None:
    loop, rig, registers = live

    async def conversation(steps: list[bytes]) -> None:
        await reset(rig, guest, registers)
        gdb = rig.machine_conversation()
        expected = 0
        non_stop = False
        for payload in steps:
            request = rsp.parse_request(payload)
            gdb.feed(encode_frame(payload))
            if isinstance(request, rsp.Kill):
                continue
            expected += 1
            if isinstance(request, rsp.SetNonStop):
                non_stop = request.enabled
            if isinstance(request, RESUMES) and not non_stop and not await settle(gdb, expected, 0.05):
                gdb.feed(b"\x03")      # an all-stop continue: its reply is the stop ctrl-C brings
            assert await settle(gdb, expected, 10), (payload, replies_of(gdb)[-3:])
            assert len(replies_of(gdb)) == expected, (payload, replies_of(gdb)[-3:])
        gdb.feed(encode_frame(b"D"))
        expected += 1
        assert await settle(gdb, expected, 10)
        await asyncio.sleep(0.005)
        assert replies_of(gdb)[-1] == b"OK"
        for node, stub in enumerate(rig.lld.nodes):
            held = set(stub.state.breakpoints)
            assert held <= machines_own(guest), (node, held)
        rig.check()

    @settings(max_examples=int(100 * SCALE), deadline=None, suppress_health_check=list(HealthCheck))
    @given(packets(guest))
    def check(steps: list[bytes]) -> None:
        loop.run_until_complete(conversation(steps))

    check()
