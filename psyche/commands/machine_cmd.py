"""`psyche machine`: boot a kernel image on an N-node machine wired to the host."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import tftpy

from lld.attach import Lld
from lld.history import DEFAULT_INTERVAL, DEFAULT_KEEP, History
from lld.lossy import LossyLine
from lld.protocol import REASON_NAMES, REASON_PANIC, REASON_TRAP_LOOP
from psyche import lifetime
from psyche.kernel.harness import kernel_phys, member_offset
from psyche.machine import snapshot
from psyche.machine.elf import ElfImage, load_elf
from psyche.machine.hostline import HostLine, NullLine, open_host_line
from psyche.machine.machine import DEFAULT_QUANTUM, DEFAULT_REMOTE_PENALTY, Machine, MachineConfig, Node
from psyche.machine.netbridge import Forward, PcapWriter, UserNet, parse_forward
from psyche.machine.record import (
    CONSOLE,
    DEBUG,
    Recording,
    RecordingError,
    RecordingLine,
    RecordingWire,
    ReplayLine,
)
from psyche.machine.runner import ConsoleMatcher, Runner, RunOutcome
from psyche.netboot import build_netboot
from psyche.replay import replay


def add_reverse_arguments(p: argparse.ArgumentParser) -> None:
    """--reverse and its two knobs (psyche machine's, passed on by psyche up: reverse_argv)."""
    p.add_argument("--reverse", action="store_true",
                   help="with a debug line, keep the machine's recent history in memory for reverse "
                        "execution (gdb's reverse-stepi, reverse-continue; docs/replay.md): off by "
                        f"default; a checkpoint every {DEFAULT_INTERVAL} simulated cycles unless "
                        "--reverse-interval says otherwise")
    p.add_argument("--reverse-interval", type=int, metavar="CYCLES", default=None,
                   help="simulated cycles between the history's checkpoints (implies --reverse when "
                        f"above 0; default {DEFAULT_INTERVAL}); 0 keeps no history")
    p.add_argument("--reverse-keep", type=int, metavar="N", default=DEFAULT_KEEP,
                   help=f"checkpoints kept for reverse execution (default {DEFAULT_KEEP}): the history "
                        "reaches back about N x --reverse-interval cycles")


def reverse_interval(args: argparse.Namespace) -> int:
    """Cycles between checkpoints, 0 for no history: off unless --reverse or --reverse-interval."""
    if args.reverse_interval is not None:
        return max(0, args.reverse_interval)
    return DEFAULT_INTERVAL if args.reverse else 0


def reverse_argv(args: argparse.Namespace) -> list[str]:
    """The reverse-execution options as psyche machine takes them (for psyche up)."""
    argv = ["--reverse"] if args.reverse else []
    if args.reverse_interval is not None:
        argv += ["--reverse-interval", str(args.reverse_interval)]
    if args.reverse_keep != DEFAULT_KEEP:
        argv += ["--reverse-keep", str(args.reverse_keep)]
    return argv


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("machine", help="run a kernel image on a simulated Psyche machine")
    p.add_argument("--nodes", type=int, default=1, help="number of nodes, 1 to 128")
    p.add_argument("--kernel", help="kernel ELF image, loaded and started on the king node; with "
                                    "--restore, only read for its symbols (the panic breakpoint)")
    p.add_argument("--restore", metavar="FILE", help="start from a snapshot instead of booting a kernel")
    p.add_argument("--until", metavar="REGEX",
                   help="exit 0 once the console output matches REGEX")
    p.add_argument("--max-seconds", type=float, metavar="S", help="give up after S seconds of wall time")
    p.add_argument("--console", default="pty", metavar="SPEC",
                   help="console line: pty, tcp:PORT, tcp:HOST:PORT or null (default pty)")
    p.add_argument("--debug-line", default="pty", metavar="SPEC",
                   help="debug line, served by lld: pty, tcp:PORT or null (default pty)")
    p.add_argument("--debug-line-loss", type=float, default=0.0, metavar="RATE",
                   help="drop, corrupt or tear this fraction of debug-line frames, both ways (testing)")
    p.add_argument("--debug-line-seed", type=int, default=0, metavar="N",
                   help="seed of the debug-line loss injector")
    p.add_argument("--panic-symbol", default="panic", metavar="NAME",
                   help="with a debug line, stop a node that reaches this kernel symbol and report "
                        "a panic (default panic; '' for none)")
    p.add_argument("--halted", action="store_true",
                   help="start halted, as QEMU's -S: every node that would run is stopped before its "
                        "first instruction (the king at the ELF entry) and waits for a debugger; "
                        "nodes the kernel has not started yet stay held, and run when it starts them")
    p.add_argument("--baud", type=int, help="throttle both lines to this baud rate")
    p.add_argument("--quantum", type=int, default=DEFAULT_QUANTUM, help="cycles per scheduling round")
    p.add_argument("--remote-penalty", type=int, default=DEFAULT_REMOTE_PENALTY,
                   help="extra cycles for a reference to another node's RAM")
    p.add_argument("--stoptime", action="store_true",
                   help="stop a node's clock while a debugger holds it, like the RISC-V debug spec's "
                        "dcsr.stoptime (default: it goes on with the machine, so waits on `time` end; "
                        "see docs/debug-semantics.md); kept in snapshots")
    p.add_argument("--trap-misaligned", action="store_true",
                   help="misaligned loads and stores trap (cause 4/6) instead of being performed; "
                        "see docs/cpu.md")
    p.add_argument("--no-pace", action="store_true",
                   help="skip idle time at full speed instead of pacing it to wall time")
    p.add_argument("--save-snapshot", metavar="FILE", help="save the machine to FILE when the run ends")
    p.add_argument("--netboot", type=Path, metavar="DIR",
                   help="boot over the network: load only the boot loader, which fetches the kernel "
                        "(--kernel's file name) from DIR by TFTP (docs/network.md, \"Network boot\")")
    p.add_argument("--files", type=Path, metavar="DIR",
                   help="serve DIR over TFTP as the host's file server and start the user level at boot: "
                        "init, the name server, the file server, the loader and the shell "
                        "(docs/user-level.md); build/user/files holds the programs")
    p.add_argument("--replay", type=Path, metavar="DIR",
                   help="replay the recording in DIR (checked bit-exact), then run on live from where it "
                        "ended, with the console and debug line given (docs/replay.md)")
    p.add_argument("--record", type=Path, metavar="DIR",
                   help="record the run into DIR (a new directory), for `psyche replay DIR`: the start, "
                        "then everything the host does to the machine (docs/replay.md)")
    p.add_argument("--quiet", action="store_true", help="do not echo console output")
    add_reverse_arguments(p)
    add_network_arguments(p)
    p.add_argument("--exit-with-parent", action="store_true",
                   help="end when the process that started this one ends, however it ends (Linux's "
                        "parent-death signal; psyche up starts its machine so): a killed mux leaves no "
                        "orphan machine behind (docs/failure-modes.md)")
    p.set_defaults(handler=run)


def nic_nodes(text: str) -> tuple[int, ...]:
    """--nic-nodes: comma-separated node numbers ('' or 'none': no NIC anywhere)."""
    if text.strip() in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of node numbers") from None


def forward(text: str) -> Forward:
    try:
        return parse_forward(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_network_arguments(p: argparse.ArgumentParser) -> None:
    """The NIC and its host side (docs/network.md); `psyche up` passes them on to the machine."""
    p.add_argument("--nic-nodes", type=nic_nodes, default=(0,), metavar="LIST",
                   help="nodes with a network interface, e.g. 0,3 (default 0, the king; 'none' for "
                        "none); with --restore the snapshot's")
    p.add_argument("--net", type=forward, action="append", default=[], metavar="SPEC",
                   help="forward a UDP port from the host to the guest, QEMU hostfwd style: "
                        "udp:HOSTPORT-:GUESTPORT (127.0.0.1:HOSTPORT reaches 10.0.2.15:GUESTPORT; "
                        "',node=N' for another NIC than the first); repeatable")
    p.add_argument("--pcap", metavar="FILE",
                   help="write every frame of every NIC, both directions, to FILE (pcap, Ethernet)")
    p.add_argument("--net-loss", type=float, default=0.0, metavar="RATE",
                   help="lose this fraction of UDP datagrams on the host side, each way (testing)")
    p.add_argument("--net-loss-seed", type=int, default=0, metavar="N", help="seed of --net-loss")


def network_argv(args: argparse.Namespace) -> list[str]:
    """The network options as `psyche machine` arguments (for psyche up)."""
    argv = ["--nic-nodes", ",".join(map(str, args.nic_nodes)) or "none"]
    for fwd in args.net:
        argv += ["--net", f"udp:{fwd.host_port}-:{fwd.guest_port}"
                 + (f",node={fwd.node}" if fwd.node is not None else "")]
    if args.pcap:
        argv += ["--pcap", str(args.pcap)]
    if args.net_loss:
        argv += ["--net-loss", str(args.net_loss), "--net-loss-seed", str(args.net_loss_seed)]
    return argv


def attach_network(machine: Machine, forwards: list[Forward], pcap_path: str | None,
                   loss: float = 0.0, seed: int = 0) -> tuple[list[UserNet], PcapWriter | None]:
    """User-mode networking on every NIC (docs/network.md); the port forwards on theirs."""
    nodes = machine.config.nic_nodes
    for fwd in forwards:
        if (nodes[0] if fwd.node is None and nodes else fwd.node) not in nodes:
            raise ValueError(f"--net udp:{fwd.host_port}-:{fwd.guest_port}: no NIC on node "
                             f"{fwd.node if fwd.node is not None else 0} (see --nic-nodes)")
    pcap = PcapWriter(pcap_path) if pcap_path else None
    nets: list[UserNet] = []
    try:
        for k in nodes:
            mine = [f for f in forwards if (f.node if f.node is not None else nodes[0]) == k]
            net = UserNet(machine.nic(k).mac, mine, pcap, loss, seed + k)
            nets.append(net)
            machine.attach_wire(k, net)
    except (OSError, ValueError) as e:
        for net in nets:
            net.close()
        if pcap is not None:
            pcap.close()
        raise ValueError(f"network: {e}") from e
    for k, net in zip(nodes, nets, strict=True):
        forwards_text = "; ".join(net.describe()) or "no port forwards"
        print(f"psyche machine: NIC on node {k}: guest 10.0.2.15, gateway 10.0.2.2; {forwards_text}"
              + (f"; capture {pcap_path}" if pcap_path else ""), file=sys.stderr, flush=True)
    return nets, pcap


def _open_lines(args: argparse.Namespace) -> tuple[HostLine, HostLine]:
    if not 0.0 <= args.debug_line_loss <= 1.0:
        raise ValueError(f"--debug-line-loss {args.debug_line_loss} is not between 0 and 1")
    console = open_host_line(args.console, baud=args.baud)
    debug = open_host_line(args.debug_line, baud=args.baud)
    if args.debug_line_loss:
        debug = LossyLine(debug, args.debug_line_loss, args.debug_line_seed)
    return console, debug


def _replay_then_live(args: argparse.Namespace) -> int:
    """--replay DIR: the recording, replayed and checked, then the machine runs on live.  With
    --reverse, the history is kept from the replay's start: gdb can go back into the replayed run
    once it is over, and forward again through it to the present, which then runs live."""
    if args.record or args.restore or args.halted:
        raise ValueError("--replay starts from the recording: not with --record, --restore or --halted")
    live_console, live_debug = _open_lines(args)
    console = ReplayLine("console", then=live_console, echo=not args.quiet)
    debug = ReplayLine("debug line", then=live_debug)
    interval = reverse_interval(args)
    history = History(interval, args.reverse_keep) if interval > 0 and not isinstance(live_debug, NullLine) \
        else None
    print(f"psyche machine: replaying {args.replay}; console {console.describe()}; "
          f"debug line {debug.describe()}", flush=True)
    if history is not None:
        print("psyche machine: keeping the history from the replay's start (--reverse)", file=sys.stderr,
              flush=True)
    try:
        done = replay(args.replay, console=console, debug=debug, history=history)
    except RecordingError as e:
        raise ValueError(f"--replay {args.replay}: {e}") from None
    same, verdict = done.verdict()
    print(f"psyche machine: replayed {done.service_points} service points to machine time {done.time}: "
          f"{verdict}", file=sys.stderr, flush=True)
    if not same:
        return 1
    console.go_live()
    debug.go_live()
    machine, lld = done.machine, done.lld
    nets, pcap = attach_network(machine, args.net, args.pcap, args.net_loss, args.net_loss_seed)
    if history is not None:
        # The live wires' frames go to the history too, as the replayed ones did.
        for node in machine.nodes:
            nic = node.devices.nic
            if nic is not None:
                nic.replace_wire(RecordingWire(nic.wire, node.index, history))
    if not args.quiet:
        machine.console.add_output_listener(lambda data: (sys.stdout.buffer.write(data), sys.stdout.flush()))
    lines = [done.console or console, done.debug or debug]
    runner = Runner(machine, lines, pace=not args.no_pace, debug=lld, stop_on_node_stop=False,
                    on_stop=StopReporter(lld), recorder=history, history=history)
    if history is not None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: runner.request_stop())
    result = runner.run(max_seconds=args.max_seconds)
    if history is not None:
        print(f"psyche machine: history: {history.describe()}", file=sys.stderr, flush=True)
    for line in (console, debug, *nets):
        line.close()
    if pcap is not None:
        pcap.close()
    return _report(result, machine, args)


#: Seconds the netboot TFTP server waits for an ACK before it sends its block again.
NETBOOT_TIMEOUT = 0.2


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_tftp(directory: Path, what: str) -> tuple[tftpy.TftpServer, int]:
    """A TFTP server for `directory` on a free port of 127.0.0.1, in a thread, and its port."""
    server = tftpy.TftpServer(str(directory))
    port = _free_udp_port()
    logging.getLogger("tftpy").setLevel(logging.WARNING)
    # A lost block is the server's to send again, on its timeout: a short one, since a 16-node
    # boot waits for every block (tftpy's default is 5 s).
    threading.Thread(target=server.listen, args=("127.0.0.1", port),
                     kwargs={"timeout": NETBOOT_TIMEOUT, "retries": 20}, name=f"{what}-tftp",
                     daemon=True).start()
    return server, port


def _netboot(machine: Machine, args: argparse.Namespace) -> tftpy.TftpServer:
    """--netboot DIR: the machine was given the boot loader instead of the kernel; a TFTP server
    for DIR on a free port, which the loader is told, with the kernel's file name."""
    directory = Path(args.netboot).resolve()
    name = Path(args.kernel).name
    if not (directory / name).is_file():
        raise ValueError(f"--netboot {args.netboot}: no {name} there for the boot loader to fetch")
    loader = load_elf(build_netboot())
    server, port = _serve_tftp(directory, "netboot")
    machine.write_phys(loader.symbol("server_port"), port.to_bytes(4, "little"))
    machine.write_phys(loader.symbol("kernel_name"), name.encode()[:63] + b"\0")
    print(f"psyche machine: netboot: the boot loader fetches {name} from {directory} "
          f"(TFTP on 127.0.0.1:{port})", file=sys.stderr, flush=True)
    return server


def _files(machine: Machine, image: ElfImage, args: argparse.Namespace) -> tftpy.TftpServer:
    """--files DIR: the host's file server for the user level, whose port the kernel is told
    (bootargs.files_port), so that it starts init at boot."""
    directory = Path(args.files).resolve()
    if not directory.is_dir():
        raise ValueError(f"--files {args.files}: not a directory")
    server, port = _serve_tftp(directory, "files")
    offset = member_offset(Path(args.kernel), "bootargs", "files_port")
    machine.write_phys(kernel_phys(image.symbol("bootargs")) + offset, port.to_bytes(4, "little"))
    print(f"psyche machine: files: the user level's file server serves {directory} "
          f"(TFTP on 127.0.0.1:{port})", file=sys.stderr, flush=True)
    return server


class StopReporter:
    """Say on stderr that a node stopped and waits for a debugger (lld itself never speaks unasked).

    A panic or a trap loop is always said.  A breakpoint's or a watchpoint's stop is said only
    while no debugger talks on the line (nothing heard for QUIET_SECONDS): one that does hears
    of the stop from lld, and a gdb hitting a breakpoint in a loop would otherwise have a line
    written, on the reply's path, at every hit.
    """

    QUIET_SECONDS = 1.0
    ALWAYS = frozenset({REASON_PANIC, REASON_TRAP_LOOP})

    def __init__(self, lld: Lld) -> None:
        self.lld = lld

    def __call__(self, stopped: list[Node]) -> None:
        quiet = time.monotonic() - self.lld.heard_at() >= self.QUIET_SECONDS
        for node in stopped:
            if not quiet and self.lld.nodes[node.index].stop_reason() not in self.ALWAYS:
                continue
            status = self.lld.nodes[node.index].status()
            print(f"psyche machine: node {node.index} stopped "
                  f"({REASON_NAMES.get(status.reason, status.reason)}) at pc {status.pc:#010x}; "
                  f"waiting for a debugger", file=sys.stderr, flush=True)


def _halt(machine: Machine) -> None:
    """Stop every running node before its first instruction (`--halted`, QEMU's -S).

    The stop is a stop request, as if a debugger had asked for it at time zero: lld reports
    it (reason REQUESTED), the mux as SIGTRAP, and gdb finds pc at the entry point.
    """
    for node in machine.nodes:
        stops = node.stops
        machine.stop_node(node.index)   # a running node only: a held one stays held
        if node.stops != stops:
            print(f"psyche machine: node {node.index} halted at pc {node.cpu.pc:#010x} before its "
                  f"first instruction; waiting for a debugger", file=sys.stderr, flush=True)


def _exit_with_parent() -> None:
    """--exit-with-parent: the kernel ends this process when its parent ends (psyche/lifetime.py).

    Asked for at start-up: a parent that dies before that is not noticed, which is why
    `psyche up` also sets it between fork and exec.
    """
    if not lifetime.exit_with_parent():
        print("psyche machine: --exit-with-parent: this system has no parent-death signal (prctl); "
              "the machine will outlive its parent", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.exit_with_parent:
        _exit_with_parent()
    if args.netboot and (args.kernel is None or args.restore):
        raise ValueError("--netboot boots the kernel --kernel names (its symbols are read here, the file "
                         "is fetched from DIR): it needs --kernel, and cannot go with --restore")
    if args.files and (args.kernel is None or args.restore or args.netboot or args.replay):
        raise ValueError("--files starts the user level of the kernel --kernel names, booted from its "
                         "image: not with --restore, --netboot or --replay")
    if args.kernel is None and args.restore is None and args.replay is None:
        raise ValueError("give --kernel ELF, --restore SNAPSHOT, or both (the snapshot's kernel's symbols)")
    if args.halted and args.debug_line == "null":
        raise ValueError("--halted needs a debug line: only a debugger can start a halted node")
    if args.replay:
        return _replay_then_live(args)
    image = load_elf(args.kernel) if args.kernel else None
    recording = Recording(args.record) if args.record else None
    recorder = recording.recorder if recording is not None else None
    console, debug = _open_lines(args)
    # With a debug line, a stopped node waits for a debugger instead of ending the run,
    # and a node entering the kernel's panic path stops there for it (without one, the
    # panic runs its course and its report reaches the console).  (Asked of the line itself:
    # a recording's wrapper around a null line is still no debug line.)
    debugging = not isinstance(debug, NullLine)
    interval = reverse_interval(args)
    history = History(interval, args.reverse_keep, inner=recorder) if debugging and interval > 0 else None
    if history is not None:
        recorder = history   # the history takes every input first, and hands it on to a recording
    if recorder is not None:
        console, debug = RecordingLine(console, CONSOLE, recorder), RecordingLine(debug, DEBUG, recorder)
    if args.restore:
        machine = snapshot.restore(args.restore, console=console)
        if args.stoptime:
            machine.config.stoptime = True
    else:
        assert image is not None
        machine = Machine(
            MachineConfig(nodes=args.nodes, quantum=args.quantum, remote_penalty=args.remote_penalty,
                          stoptime=args.stoptime, trap_misaligned=args.trap_misaligned,
                          nic_nodes=args.nic_nodes),
            console=console,
        )
        machine.load(image if not args.netboot else load_elf(build_netboot()))
    servers = [_netboot(machine, args)] if args.netboot else []
    if args.files:
        assert image is not None
        servers.append(_files(machine, image, args))
    nets, pcap = attach_network(machine, args.net, args.pcap, args.net_loss, args.net_loss_seed)
    panic_pc = image.symbol(args.panic_symbol) if image is not None and args.panic_symbol else None
    lld = Lld(machine, debug)
    if debugging and panic_pc is not None:
        lld.arm_panic(panic_pc)
    print(f"psyche machine: {len(machine.nodes)} nodes; console {console.describe()}; "
          f"debug line {debug.describe()}", flush=True)
    if args.halted:
        _halt(machine)
    if recording is not None:
        recording.start(machine, panic_pc if debugging else None, recorder)
    if history is not None:
        history.attach(machine, lld, wires=recording is None)
    matcher = ConsoleMatcher(args.until) if args.until else None
    if matcher is not None:
        machine.console.add_output_listener(matcher.feed)
    if not args.quiet:
        machine.console.add_output_listener(lambda data: (sys.stdout.buffer.write(data), sys.stdout.flush()))
    runner = Runner(machine, [console, debug], pace=not args.no_pace, debug=lld,
                    stop_on_node_stop=not debugging,
                    on_stop=StopReporter(lld) if debugging else None,
                    recorder=recorder, history=history)
    if recording is not None or history is not None:
        # Ended by a signal (psyche up stops its machine with SIGTERM), a recording still ends at a
        # service point, so that its end is a state a replay reaches (and a history says what it
        # cost).
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: runner.request_stop())
    result = runner.run(max_seconds=args.max_seconds, until=matcher)
    if recording is not None:
        end = recording.end(machine)
        why = end.unreplayable()
        if why is None:
            print(f"psyche machine: recorded {end.service_points} service points into {args.record}; "
                  f"`psyche replay {args.record}` runs it again", file=sys.stderr, flush=True)
        else:
            print(f"psyche machine: recorded {end.service_points} service points into {args.record}, "
                  f"but {why}", file=sys.stderr, flush=True)
    if history is not None:
        print(f"psyche machine: history: {history.describe()}", file=sys.stderr, flush=True)
    if args.save_snapshot:
        snapshot.save(machine, args.save_snapshot)
    for line in (console, debug):
        line.close()
    for net in nets:
        net.close()
    if pcap is not None:
        pcap.close()
    for server in servers:
        server.stop(now=True)
    return _report(result, machine, args)


def _report(result, machine: Machine, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    if result.outcome is RunOutcome.MATCHED:
        print(f"\npsyche machine: console matched {args.until!r} after {result.wall_seconds:.2f} s, "
              f"simulated time {machine.time} cycles", file=sys.stderr)
        return 0
    if result.outcome is RunOutcome.INTERRUPTED:
        return 130
    if args.until is None and result.outcome is RunOutcome.TIMEOUT:
        print(f"\npsyche machine: ran {result.wall_seconds:.2f} s, simulated time {machine.time} cycles",
              file=sys.stderr)
        return 0
    tail = machine.console.output_tail(2000).decode(errors="replace")
    reason = {
        RunOutcome.TIMEOUT: f"no match for {args.until!r} within {args.max_seconds} s",
        RunOutcome.IDLE: "every node is idle and nothing can wake one",
        RunOutcome.STOPPED: "node(s) stopped: " + ", ".join(
            f"{n.index} (reason {n.stop_reason}, pc {n.cpu.pc:#010x})" for n in result.stopped),
    }.get(result.outcome, result.outcome.value)
    print(f"\npsyche machine: {reason}\n--- console tail ---\n{tail}", file=sys.stderr)
    return 1
