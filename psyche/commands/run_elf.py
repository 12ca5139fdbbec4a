"""`psyche run-elf`: run a bare-metal RV32 program on one node (riscv-tests convention)."""

from __future__ import annotations

import argparse
import sys

from psyche.machine import hotpath
from psyche.machine.cpu import STOP_TRAP_LOOP
from psyche.machine.elf import load_elf
from psyche.machine.machine import Machine, MachineConfig
from psyche.machine.tohost import TohostMonitor

EXIT_NO_RESULT = 3
EXIT_TRAP_LOOP = 4


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run-elf", help="run an RV32 ELF on one node until it writes tohost")
    p.add_argument("file", help="RV32 ELF executable with a `tohost` symbol")
    p.add_argument("--max-instructions", type=int, default=100_000_000, metavar="N",
                   help="give up after N instructions (default 100 million)")
    p.add_argument("--stats", action="store_true", help="print instructions, cycles and speed")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time

    image = load_elf(args.file)
    # One node has nobody to interleave with: long rounds cost least.
    machine = Machine(MachineConfig(nodes=1, quantum=100_000))
    monitor = TohostMonitor(machine, image)
    machine.load(image)
    cpu = machine.king.cpu
    started = time.perf_counter()
    while monitor.result is None and cpu.instret < args.max_instructions:
        stopped = machine.run_round()
        if stopped and stopped[0].stop_reason == STOP_TRAP_LOOP:
            print(f"{args.file}: trap loop: pc {cpu.pc:#010x}, mcause {cpu.csr.mcause:#x}, "
                  f"mtval {cpu.csr.mtval:#x}", file=sys.stderr)
            return EXIT_TRAP_LOOP
        if monitor.result is None and machine.idle():
            print(f"{args.file}: the program waits for an interrupt that can never come "
                  f"(pc {cpu.pc:#010x})", file=sys.stderr)
            return EXIT_NO_RESULT
    elapsed = time.perf_counter() - started
    sys.stdout.write(machine.console.output_tail(1 << 20).decode(errors="replace"))
    if args.stats:
        print(f"{cpu.instret} instructions, {cpu.cycles} cycles, {elapsed:.3f} s, "
              f"{cpu.instret / max(elapsed, 1e-9) / 1e6:.1f} MIPS ({hotpath.mode()})")
    if monitor.result is None:
        print(f"{args.file}: no result after {cpu.instret} instructions (pc {cpu.pc:#010x})",
              file=sys.stderr)
        return EXIT_NO_RESULT
    print(f"{args.file}: {monitor.result.describe()}")
    return 0 if monitor.result.passed else 1
