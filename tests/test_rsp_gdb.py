"""The RSP layer against the real client: gdb-multiarch talks to a toy stub built on mux.rsp and
mux.packets, backed by an in-memory "target" (33 registers, some CSRs, 64 KiB of RAM, no CPU)."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from mux import packets as p
from mux import target_xml
from mux.rsp import BadPacket, Interrupt, Packet, RspConnection

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="needs gdb-multiarch"),
]

RAM_BASE = 0x80000000
RAM_SIZE = 0x10000
NOP = (0x00000013).to_bytes(4, "little")
THREAD = p.ThreadId(1)
#: What this stub implements: one thread, no thread list document.
FEATURES = (p.Feature(b"qXfer:features:read+"), p.Feature(b"swbreak+"), p.Feature(b"hwbreak+"),
            p.Feature(b"vContSupported+", vcont=("c", "C", "s", "S")),
            p.Feature(b"QStartNoAckMode+", reliable_only=True))
R = TypeVar("R")


@dataclass
class MemoryTarget:
    """A stopped hart that never runs: continuing jumps straight to a breakpoint or watchpoint."""

    regs: list[int] = field(default_factory=lambda: [0] * target_xml.G_REGISTER_COUNT)
    csrs: dict[int, int] = field(default_factory=lambda: {0x300: 0x1800, 0x301: 0x40141101})
    priv: int = 3
    # Real 4-byte instructions, or gdb plants 2-byte breakpoints (it sizes them by the opcode).
    ram: bytearray = field(default_factory=lambda: bytearray(NOP * (RAM_SIZE // 4)))
    breakpoints: set[int] = field(default_factory=set)
    watchpoints: dict[int, p.BreakpointType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.regs[target_xml.PC_REGNUM] = RAM_BASE
        self.regs[2] = RAM_BASE + RAM_SIZE

    def read(self, addr: int, length: int) -> bytes | None:
        if not (RAM_BASE <= addr and addr + length <= RAM_BASE + RAM_SIZE):
            return None
        return bytes(self.ram[addr - RAM_BASE:addr - RAM_BASE + length])

    def write(self, addr: int, data: bytes) -> bool:
        if not (RAM_BASE <= addr and addr + len(data) <= RAM_BASE + RAM_SIZE):
            return False
        self.ram[addr - RAM_BASE:addr - RAM_BASE + len(data)] = data
        return True

    def read_register(self, regnum: int) -> tuple[int, int] | None:
        reg = target_xml.register(regnum)
        if reg is None:
            return None
        if reg.kind is target_xml.RegisterKind.CSR:
            assert reg.csr is not None
            return self.csrs.get(reg.csr, 0), reg.size
        if reg.kind is target_xml.RegisterKind.PRIV:
            return self.priv, reg.size
        return self.regs[regnum], reg.size

    def write_register(self, regnum: int, value: int) -> bool:
        reg = target_xml.register(regnum)
        if reg is None:
            return False
        if reg.kind is target_xml.RegisterKind.CSR:
            assert reg.csr is not None
            self.csrs[reg.csr] = value
        elif reg.kind is target_xml.RegisterKind.PRIV:
            self.priv = value
        elif regnum:
            self.regs[regnum] = value
        return True

    def run(self) -> bytes | None:
        """'Execute' until the next breakpoint or watchpoint: its stop reply, or None to run on."""
        expedited = dict(enumerate(self.regs))
        for addr, kind in self.watchpoints.items():
            if kind is p.BreakpointType.WRITE_WATCH:
                self.ram[addr - RAM_BASE] ^= 0xFF
            stop = {p.BreakpointType.WRITE_WATCH: p.StopKind.WRITE_WATCH,
                    p.BreakpointType.READ_WATCH: p.StopKind.READ_WATCH,
                    p.BreakpointType.ACCESS_WATCH: p.StopKind.ACCESS_WATCH}[kind]
            return p.stop_reply(reason=p.StopReason(stop, addr), registers=expedited, thread=THREAD)
        if self.breakpoints:
            self.regs[target_xml.PC_REGNUM] = min(self.breakpoints)
            expedited = dict(enumerate(self.regs))
            return p.stop_reply(reason=p.StopReason(p.StopKind.SOFTWARE_BREAK), registers=expedited,
                                thread=THREAD)
        return None


class ToyStub:
    """What the mux will do for one gdb session, minus lld: requests -> replies."""

    def __init__(self, target: MemoryTarget, packet_size: int = 0x1000, no_ack_mode: bool = True) -> None:
        self.target = target
        self.packet_size = packet_size
        self.no_ack_mode = no_ack_mode
        self.requests: list[p.Request] = []
        self.interrupts = 0
        #: Set when a resume left the target running (nothing to stop at).
        self.running = threading.Event()

    def replies(self, request: p.Request) -> list[bytes] | None:
        """Payloads to send; None for no reply at all (k)."""
        self.requests.append(request)
        t = self.target
        match request:
            case p.QuerySupported():
                return [p.supported_reply(self.packet_size, FEATURES, reliable=self.no_ack_mode)]
            case p.StartNoAckMode() | p.SetThread() | p.ThreadAlive() | p.Detach() | p.QuerySymbol():
                return [p.OK]
            case p.HaltReason():
                return [p.stop_reply(registers={32: t.regs[32], 2: t.regs[2], 1: t.regs[1]},
                                     thread=THREAD)]
            case p.ReadRegisters():
                return [p.registers_reply(t.regs)]
            case p.WriteRegisters(data):
                t.regs[1:] = p.register_block(data)[1:]
                return [p.OK]
            case p.ReadRegister(regnum):
                found = t.read_register(regnum)
                return [p.error(1) if found is None else p.register_value(*found)]
            case p.WriteRegister(regnum):
                return [p.OK if t.write_register(regnum, request.value) else p.error(1)]
            case p.ReadMemory(addr, length):
                contents = t.read(addr, length)
                return [p.error(0x14) if contents is None else p.hex_bytes(contents)]
            case p.WriteMemory(addr, data):
                return [p.OK if t.write(addr, data) else p.error(0x14)]
            case p.VContQuery():
                return [p.vcont_reply(FEATURES)]
            case p.Continue() | p.VCont():
                stop = t.run()
                if stop is None:
                    self.running.set()
                    return []
                return [stop]
            case p.Breakpoint(insert, kind, addr):
                if kind is p.BreakpointType.SOFTWARE:
                    (t.breakpoints.add if insert else t.breakpoints.discard)(addr)
                elif insert:
                    t.watchpoints[addr] = kind
                else:
                    t.watchpoints.pop(addr, None)
                return [p.OK]
            case p.QueryAttached():
                return [p.ATTACHED]
            case p.QueryCurrentThread():
                return [p.current_thread(THREAD)]
            case p.QueryThreadInfo(first):
                return [p.thread_list([THREAD]) if first else p.THREAD_LIST_END]
            case p.ReadFeatures(annex, offset, length):
                doc = target_xml.ANNEXES.get(annex)
                return [p.error(0) if doc is None else p.xfer_chunk(doc, offset, length)]
            case p.MonitorCommand(command):
                return [p.console_output(f"toy stub got {command!r}\n".encode()), p.OK]
            case p.QueryOffsets():
                return [p.NO_OFFSETS]
            case p.Kill():
                return None
            case p.MalformedRequest():
                return [p.error(1)]
            case _:
                return [p.EMPTY]

    def serve(self, sock: socket.socket) -> None:
        """Serve one connection until gdb detaches, kills or hangs up.

        Acks and replies go out in one write: written separately, Nagle's
        algorithm holds the reply until gdb's delayed ACK of the '+', some
        40 ms per packet.
        """
        conn = RspConnection(max_packet_size=self.packet_size)
        with sock:
            while data := sock.recv(65536):
                out = bytearray(conn.receive_data(data))
                done = False
                while (event := conn.next_event()) is not None:
                    assert not isinstance(event, BadPacket), event
                    if isinstance(event, Interrupt):
                        self.interrupts += 1
                        out += conn.send_packet(p.stop_reply(p.SIGINT, thread=THREAD))
                    if not isinstance(event, Packet):
                        continue
                    request = p.parse_request(event.payload)
                    replies = self.replies(request)
                    for reply in replies or []:
                        out += conn.send_packet(reply)
                    if isinstance(request, p.StartNoAckMode):
                        conn.start_no_ack_mode()
                    done = done or replies is None or isinstance(request, p.Detach)
                sock.sendall(out)
                if done:
                    return

    def seen(self, kind: type[R]) -> list[R]:
        """The requests of one kind, in order."""
        return [r for r in self.requests if isinstance(r, kind)]


@contextmanager
def serving(stub: ToyStub) -> Iterator[int]:
    """Serve one gdb connection on an ephemeral port; yields the port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        failures: list[BaseException] = []

        def accept() -> None:
            try:
                sock, _ = server.accept()
                stub.serve(sock)
            except BaseException as e:  # surfaced in the test thread
                failures.append(e)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        thread.join(timeout=10)
    assert not failures, failures


def gdb_args(port: int, commands: list[str]) -> list[str]:
    args = ["gdb-multiarch", "-batch", "-nx", "-ex", "set architecture riscv:rv32",
            "-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    return args


def run_gdb(stub: ToyStub, commands: list[str]) -> str:
    """gdb's output, stderr included (target output goes there), for `commands` run against `stub`."""
    with serving(stub) as port:
        result = subprocess.run(gdb_args(port, commands), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=50, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout
    assert "Remote 'g' packet reply" not in result.stdout, result.stdout
    return result.stdout


CSR_MSTATUS = target_xml.CSR_REGNUM_BASE + 0x300
CSR_MSCRATCH = target_xml.CSR_REGNUM_BASE + 0x340


@pytest.mark.parametrize(("no_ack_mode", "packet_size"), [(True, 0x1000), (False, 0x200)])
def test_gdb_session(no_ack_mode: bool, packet_size: int) -> None:
    stub = ToyStub(MemoryTarget(), packet_size, no_ack_mode)
    out = run_gdb(stub, [
        "info registers pc",
        "x/4wx 0x80000000",
        "set *(int*)0x80000000 = 0x12345678",
        "x/wx 0x80000000",
        "set *(int*)0x80000004 = 0x2a7d2423",  # '#$}*': every byte needs an escape in X
        "x/wx 0x80000004",
        "info registers mstatus",
        "info registers misa",
        "p $priv",
        "info registers priv",
        "set $mscratch = 0x55",
        "p/x $mscratch",
        "p/x $stimecmp",
        "set $a0 = 0x1234",
        "break *0x80000010",
        "continue",
        "p $pc",
        "p/x $a0",
        "monitor hello psyche",
        "detach",
    ])
    assert "pc             0x80000000" in out
    assert "0x80000000:\t0x00000013\t0x00000013\t0x00000013\t0x00000013" in out
    assert "0x80000000:\t0x12345678" in out
    assert "0x80000004:\t0x2a7d2423" in out
    assert "MPP:3" in out  # gdb decodes mstatus: it took our CSR as its own
    assert "RV32AIMSU" in out
    assert "$1 = 3\n" in out
    assert "prv:3 [Machine]" in out
    assert "$2 = 0x55" in out and "$3 = 0x0" in out
    assert "Breakpoint 1, 0x80000010 in ?? ()" in out
    assert "$4 = (void (*)()) 0x80000010" in out
    assert "$5 = 0x1234" in out
    assert "toy stub got 'hello psyche'" in out
    assert "[Inferior 1 (Remote target) detached]" in out

    assert bool(stub.seen(p.StartNoAckMode)) == no_ack_mode
    annexes = {r.annex: r.offset for r in stub.seen(p.ReadFeatures)}  # last offset asked per annex
    assert set(annexes) == set(target_xml.ANNEXES)
    if packet_size < len(target_xml.ANNEXES["riscv-32bit-csr.xml"]):
        assert annexes["riscv-32bit-csr.xml"] > 0  # read in chunks
    assert p.WriteMemory(0x80000004, b"#$}*") in stub.requests
    assert p.ReadRegister(CSR_MSTATUS) in stub.requests
    assert p.ReadRegister(target_xml.PRIV_REGNUM) in stub.requests
    assert p.WriteRegister(CSR_MSCRATCH, (0x55).to_bytes(4, "little")) in stub.requests
    assert p.Breakpoint(True, p.BreakpointType.SOFTWARE, 0x80000010, 4) in stub.requests
    assert stub.target.csrs[0x340] == 0x55
    # The stop reply expedites all 33 registers, so gdb reads none after the stop.
    resumed = max(i for i, r in enumerate(stub.requests) if isinstance(r, p.VCont))
    assert not [r for r in stub.requests[resumed:] if isinstance(r, p.ReadRegisters | p.ReadRegister)]


def test_gdb_restore_and_dump_through_binary_writes(tmp_path: Path) -> None:
    """gdb fills memory with X packets cut to PacketSize, all 256 byte values escaped as needed."""
    blob = bytes(random.Random(7).choices(range(256), k=5000)) + b"}}}}####$$$$****"
    (tmp_path / "blob").write_bytes(blob)
    stub = ToyStub(MemoryTarget(), packet_size=0x200, no_ack_mode=False)
    end = RAM_BASE + len(blob)
    run_gdb(stub, [f"restore {tmp_path / 'blob'} binary {RAM_BASE:#x}",
                   f"dump binary memory {tmp_path / 'back'} {RAM_BASE:#x} {end:#x}", "detach"])
    assert stub.target.read(RAM_BASE, len(blob)) == blob
    assert (tmp_path / "back").read_bytes() == blob
    writes = [r for r in stub.seen(p.WriteMemory) if r.data]
    assert len(writes) > len(blob) // 0x200


def test_gdb_watchpoints_from_stop_reasons() -> None:
    stub = ToyStub(MemoryTarget())
    out = run_gdb(stub, ["watch *(int*)0x80000100", "continue", "delete",
                         "rwatch *(int*)0x80000104", "continue", "delete",
                         "awatch *(char*)0x80000108", "continue", "detach"])
    assert "Old value = 19\nNew value = 236" in out  # the toy target flips the watched byte
    assert "Hardware read watchpoint 2: *(int*)0x80000104\n\nValue = 19" in out
    assert "Hardware access (read/write) watchpoint 3: *(char*)0x80000108\n\nValue = 19" in out
    kinds = {r.type for r in stub.seen(p.Breakpoint)}
    assert {p.BreakpointType.WRITE_WATCH, p.BreakpointType.READ_WATCH,
            p.BreakpointType.ACCESS_WATCH} <= kinds


def test_gdb_ctrl_c_interrupts_a_running_target() -> None:
    stub = ToyStub(MemoryTarget(), no_ack_mode=False)
    with serving(stub) as port:
        gdb = subprocess.Popen(gdb_args(port, ["continue", "p $pc", "detach"]), text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert stub.running.wait(30)
            gdb.send_signal(signal.SIGINT)  # gdb turns it into a 0x03 byte on the wire
            out, err = gdb.communicate(timeout=30)
        finally:
            gdb.kill()
    assert gdb.returncode == 0, err
    assert "Program received signal SIGINT, Interrupt." in out
    assert "[Inferior 1 (Remote target) detached]" in out
    assert stub.interrupts == 1
