"""mux.packets: what gdb-multiarch 13 sends to a bare-metal RV32 stub, and the replies we build.

The request payloads are copied from `set debug remote 1` sessions against QEMU and the toy stub
of test_rsp_gdb.py (X payloads as they are after the codec has undone the escapes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mux import packets as p
from mux.packets import BreakpointType as BT
from mux.packets import ThreadId as Tid

pytestmark = pytest.mark.timeout(60)

GDB_QSUPPORTED = (b"qSupported:multiprocess+;swbreak+;hwbreak+;qRelocInsn+;fork-events+;vfork-events+;"
                  b"exec-events+;vContSupported+;QThreadEvents+;no-resumed+;memory-tagging+;xmlRegisters=i386")

GDB_TRAFFIC: list[tuple[bytes, p.Request]] = [
    (b"vMustReplyEmpty", p.MustReplyEmpty()),
    (b"QStartNoAckMode", p.StartNoAckMode()),
    (b"Hg0", p.SetThread("g", Tid(0))),
    (b"Hgp0.0", p.SetThread("g", Tid(0, pid=0))),
    (b"Hc-1", p.SetThread("c", Tid(-1))),
    (b"qXfer:features:read:target.xml:0,ffb", p.ReadFeatures("target.xml", 0, 0xFFB)),
    (b"qXfer:threads:read::0,ffb", p.ReadThreads(0, 0xFFB)),
    (b"qThreadExtraInfo,2", p.QueryThreadExtraInfo(p.ThreadId(2))),
    (b"qXfer:features:read:riscv-csr.xml:17f7,ffb", p.ReadFeatures("riscv-csr.xml", 0x17F7, 0xFFB)),
    (b"qTStatus", p.QueryTraceStatus()),
    (b"?", p.HaltReason()),
    (b"qfThreadInfo", p.QueryThreadInfo(first=True)),
    (b"qsThreadInfo", p.QueryThreadInfo(first=False)),
    (b"qAttached", p.QueryAttached()),
    (b"qAttached:1", p.QueryAttached(1)),
    (b"qC", p.QueryCurrentThread()),
    (b"qOffsets", p.QueryOffsets()),
    (b"qSymbol::", p.QuerySymbol()),
    (b"qSymbol::6b65726e656c5f6d61696e", p.QuerySymbol(name="kernel_main")),
    (b"qSymbol:80001000:6b65726e656c5f6d61696e", p.QuerySymbol(name="kernel_main", value=0x80001000)),
    (b"g", p.ReadRegisters()),
    (b"G" + b"00000000" * 32 + b"00100080", p.WriteRegisters(bytes(128) + b"\x00\x10\x00\x80")),
    (b"p341", p.ReadRegister(0x341)),
    (b"p1041", p.ReadRegister(0x1041)),
    (b"P381=55000000", p.WriteRegister(0x381, b"\x55\x00\x00\x00")),
    (b"P1041=01", p.WriteRegister(0x1041, b"\x01")),
    (b"m80000000,4", p.ReadMemory(0x80000000, 4)),
    (b"m1000,40", p.ReadMemory(0x1000, 0x40)),
    (b"M80000000,4:78563412", p.WriteMemory(0x80000000, b"\x78\x56\x34\x12")),
    (b"X80000000,0:", p.WriteMemory(0x80000000, b"")),
    (b"X80000004,4:#$}*", p.WriteMemory(0x80000004, b"#$}*")),
    (b"X80000000,4:xV4\x12", p.WriteMemory(0x80000000, b"xV4\x12")),
    (b"c", p.Continue()),
    (b"c80000000", p.Continue(0x80000000)),
    (b"C02", p.Continue(signal=2)),
    (b"C02;80000000", p.Continue(0x80000000, 2)),
    (b"s", p.Step()),
    (b"S05;1000", p.Step(0x1000, 5)),
    (b"vCont?", p.VContQuery()),
    (b"vCont;c", p.VCont((p.VContAction("c"),))),
    (b"vCont;c:1", p.VCont((p.VContAction("c", Tid(1)),))),
    (b"vCont;c:p1.-1", p.VCont((p.VContAction("c", Tid(-1, pid=1)),))),
    (b"vCont;s:1;c", p.VCont((p.VContAction("s", Tid(1)), p.VContAction("c")))),
    (b"vCont;C02:1;t", p.VCont((p.VContAction("c", Tid(1), signal=2), p.VContAction("t")))),
    (b"vCont;r80000000,80000010:1",
     p.VCont((p.VContAction("r", Tid(1), step_range=(0x80000000, 0x80000010)),))),
    (b"Z0,80000010,4", p.Breakpoint(True, BT.SOFTWARE, 0x80000010, 4)),
    (b"z0,1004,4", p.Breakpoint(False, BT.SOFTWARE, 0x1004, 4)),
    (b"Z0,80000010,2", p.Breakpoint(True, BT.SOFTWARE, 0x80000010, 2)),
    (b"Z1,80000020,4", p.Breakpoint(True, BT.HARDWARE, 0x80000020, 4)),
    (b"Z2,80000100,4", p.Breakpoint(True, BT.WRITE_WATCH, 0x80000100, 4)),
    (b"z3,80000104,4", p.Breakpoint(False, BT.READ_WATCH, 0x80000104, 4)),
    (b"Z4,80000108,1", p.Breakpoint(True, BT.ACCESS_WATCH, 0x80000108, 1)),
    (b"Z0,80000010,4;X2,0a", p.Breakpoint(True, BT.SOFTWARE, 0x80000010, 4)),  # a condition, ignored
    (b"D", p.Detach()),
    (b"D;1", p.Detach(1)),
    (b"k", p.Kill()),
    (b"T1", p.ThreadAlive(Tid(1))),
    (b"Tp1.1", p.ThreadAlive(Tid(1, pid=1))),
    (b"qRcmd,68656c6c6f207468657265", p.MonitorCommand("hello there")),
]


@pytest.mark.parametrize(("payload", "request_"), GDB_TRAFFIC, ids=[t[0][:24].decode("latin-1")
                                                                  for t in GDB_TRAFFIC])
def test_gdb_packets_parse(payload: bytes, request_: p.Request) -> None:
    assert p.parse_request(payload) == request_


def test_qsupported_features() -> None:
    request = p.parse_request(GDB_QSUPPORTED)
    assert isinstance(request, p.QuerySupported)
    assert request.features["swbreak"] is True and request.features["multiprocess"] is True
    assert request.features["xmlRegisters"] == "i386"
    assert p.parse_request(b"qSupported:foo-") == p.QuerySupported({"foo": False})
    assert p.parse_request(b"qSupported") == p.QuerySupported()


@pytest.mark.parametrize(("payload", "request_"), [
    (b"QNonStop:1", p.SetNonStop(True)),
    (b"QNonStop:0", p.SetNonStop(False)),
    (b"vStopped", p.StopAck()),
    (b"vCtrlC", p.CtrlC()),
    (b"vCont;t:3", p.VCont((p.VContAction("t", p.ThreadId(3)),))),
])
def test_non_stop_packets(payload: bytes, request_: p.Request) -> None:
    assert p.parse_request(payload) == request_


def test_write_register_value() -> None:
    request = p.parse_request(b"P20=00100080")
    assert isinstance(request, p.WriteRegister) and request.value == 0x80001000


@pytest.mark.parametrize("payload", [
    b"vKill;a410",  # gdb's kill tries this first, then falls back to k
    b"qCRC:80000000,4",  # not qC
    b"qTfV",
    b"vFile:setfs:0",
    b"Z5,1000,4",
    b"vContX",
    b"QNonStop:2",
    b"",
    b"\xff\x00",
])
def test_unknown_packets_are_unsupported(payload: bytes) -> None:
    assert p.parse_request(payload) == p.Unsupported(payload)


@pytest.mark.parametrize("payload", [
    b"m80000000", b"mzz,4", b"m0x10,4", b"m 10,4", b"m1_0,4", b"M0,4:1234", b"M0,2:12345", b"M0,1:zz",
    b"X0,4:ab", b"pxyz", b"P20", b"P20=123", b"G123", b"Z0,1000", b"Hq0", b"Hg", b"cz",
    b"vCont;q", b"vCont;c:", b"vCont;C:1", b"qRcmd,6", b"qXfer:features:read:target.xml:0",
    b"qSymbol:1", b"D;x", b"qAttached:", b"T",
])
def test_malformed_packets(payload: bytes) -> None:
    request = p.parse_request(payload)
    assert isinstance(request, p.MalformedRequest) and request.payload == payload


@given(st.binary(max_size=80))
def test_parse_never_raises(payload: bytes) -> None:
    p.parse_request(payload)


@given(st.sampled_from([b"m", b"M", b"X", b"p", b"P", b"Z0,", b"vCont;", b"qXfer:features:read:",
                        b"H", b"qRcmd,", b"c", b"S"]), st.binary(max_size=40))
def test_parse_never_raises_on_known_prefixes(prefix: bytes, rest: bytes) -> None:
    p.parse_request(prefix + rest)


# -- replies --------------------------------------------------------------------------


def test_simple_replies() -> None:
    assert p.error(0x14) == b"E14" and p.error(1) == b"E01"
    assert p.hex_bytes(b"\x13\x00\x00\x00") == b"13000000"
    assert p.signal_stop() == b"S05"
    assert p.exited(0) == b"W00"
    assert p.terminated(p.SIGKILL) == b"X09"
    assert p.console_output(b"hi\n") == b"O68690a"
    assert p.thread_list([Tid(1), Tid(2)]) == b"m1,2"
    assert p.thread_list([Tid(1, pid=1)]) == b"mp1.1"
    assert p.current_thread(Tid(1)) == b"QC1"
    assert Tid(-1, pid=-1).encode() == b"p-1.-1"


def test_supported_and_vcont_replies_come_from_one_feature_table() -> None:
    features = (p.Feature(b"swbreak+"), p.Feature(b"vContSupported+", vcont=("c", "s")),
                p.Feature(b"QStartNoAckMode+", reliable_only=True), p.Feature(vcont=("t",)))
    assert p.supported_reply(0x1000, features) == b"PacketSize=1000;swbreak+;vContSupported+;QStartNoAckMode+"
    assert p.supported_reply(0x1000, features, reliable=False) == b"PacketSize=1000;swbreak+;vContSupported+"
    assert p.vcont_reply(features) == b"vCont;c;s;t"


def test_the_mux_announces_what_it_handles() -> None:
    from mux.gdb import FEATURES
    assert p.supported_reply(0x1000, FEATURES) == (
        b"PacketSize=1000;qXfer:features:read+;qXfer:threads:read+;swbreak+;hwbreak+;vContSupported+;"
        b"QStartNoAckMode+;ReverseStep+;ReverseContinue+")
    assert p.vcont_reply(FEATURES) == b"vCont;c;C;s;S"
    assert p.parse_request(b"bs") == p.ReverseStep() and p.parse_request(b"bc") == p.ReverseContinue()


def test_register_replies_are_little_endian() -> None:
    assert p.register_value(0x80001000) == b"00100080"
    assert p.register_value(3, size=1) == b"03"
    assert p.register_value(-1) == b"ffffffff"
    assert p.register_value(None) == b"xxxxxxxx"
    regs = [0] * 33
    regs[2], regs[32] = 0x80010000, 0x80000000
    block = p.registers_reply(regs)
    assert len(block) == 33 * 8 and block[16:24] == b"00000180" and block[-8:] == b"00000080"
    request = p.parse_request(b"G" + block)
    assert isinstance(request, p.WriteRegisters) and p.register_block(request.data) == regs
    with pytest.raises(ValueError):
        p.register_block(b"\x00" * 5)


def test_stop_replies() -> None:
    assert p.stop_reply() == b"T05"
    assert p.stop_reply(p.SIGINT, thread=Tid(1)) == b"T02thread:1;"
    regs = {0x20: 0x80000010, 2: 0x80010000, 1: 0x80000004}
    assert (p.stop_reply(reason=p.StopReason(p.StopKind.SOFTWARE_BREAK), registers=regs, thread=Tid(1))
            == b"T05swbreak:;20:10000080;02:00000180;01:04000080;thread:1;")
    assert p.stop_reply(reason=p.StopReason(p.StopKind.HARDWARE_BREAK)) == b"T05hwbreak:;"
    for kind, name in ((p.StopKind.WRITE_WATCH, b"watch"), (p.StopKind.READ_WATCH, b"rwatch"),
                       (p.StopKind.ACCESS_WATCH, b"awatch")):
        assert p.stop_reply(reason=p.StopReason(kind, 0x80000100)) == b"T05" + name + b":80000100;"


@given(st.lists(st.integers(0, 0xFFFFFFFF), min_size=33, max_size=33))
def test_a_whole_g_block_expedites_like_any_other_registers(values: list[int]) -> None:
    """The 33 registers of the `g` block, x0 to pc, are formatted in one go: byte for byte what
    the register-by-register way gives (which a block in another order still takes)."""
    expected = b"T05" + b"".join(b"%02x:%s;" % (n, v.to_bytes(4, "little").hex().encode())
                                 for n, v in enumerate(values))
    assert p.stop_reply(registers=dict(enumerate(values))) == expected
    backwards = dict(reversed(list(enumerate(values))))
    assert p.stop_reply(registers=backwards) == b"T05" + b"".join(
        b"%02x:%s;" % (n, v.to_bytes(4, "little").hex().encode()) for n, v in backwards.items())


@given(st.binary(max_size=300), st.integers(1, 64))
def test_xfer_chunks_reassemble(document: bytes, length: int) -> None:
    pieces: list[bytes] = []
    offset = 0
    while True:
        chunk = p.xfer_chunk(document, offset, length)
        assert chunk[:1] in (b"m", b"l") and len(chunk) - 1 <= length
        pieces.append(chunk[1:])
        offset += len(chunk) - 1
        if chunk[:1] == b"l":
            break
    assert b"".join(pieces) == document
    assert p.xfer_chunk(document, len(document) + 5, length) == b"l"
